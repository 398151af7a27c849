//! `--incremental`: after the first full snapshot, only the pages that
//! changed since the last state that reached storage.
//!
//! Inside the one read transaction every page is read, as for a full
//! snapshot; each page's xxh3 digest is compared with the committed
//! state's, and only differing pages go into the delta (zstd-compressed,
//! `sqlkeep_common::delta`). The SHA-256 of the whole state is computed on
//! another thread from the same pages, so the delta's record carries the
//! `raw_sha256` a restore is checked against.
//!
//! Levels bound a restore: a full snapshot (level 0) every `--full-every`
//! or after `--diffs-per-full` level-1 deltas; a level-1 delta (against
//! the last level 0–1 point) every `--diff-every` or after
//! `--deltas-per-diff` level-2 deltas; otherwise a level-2 delta against
//! the last stored point. A chain thus has at most
//! `1 + diffs-per-full + deltas-per-diff` objects (83 by default), whatever
//! the run frequency.
//!
//! A full snapshot is taken instead of a delta when there is no committed
//! state or it cannot be read, the database file was replaced (another
//! inode), its page size changed, the clock went back, or more than half
//! of the pages changed (a VACUUM): a delta that large saves nothing.

use crate::pages::{self, Pages, Whole, page_digest};
use crate::sink::Sink;
use anyhow::{Result, anyhow};
use sqlkeep_common::delta;
use sqlkeep_common::digest::{HashThread, sha256_bytes};
use sqlkeep_common::repo::chain::Link;
use sqlkeep_common::repo::names::PointName;
use sqlkeep_common::state::State;
use sqlkeep_common::time::{Timestamp, format_duration};

/// The level settings.
#[derive(Debug, Clone, Copy)]
pub struct Levels {
    /// Seconds between full snapshots at most.
    pub full_every: i64,
    /// Seconds between level-1 deltas at most.
    pub diff_every: i64,
    /// Level-2 deltas between two level 0–1 points at most.
    pub deltas_per_diff: usize,
    /// Level-1 deltas between two full snapshots at most.
    pub diffs_per_full: usize,
}

/// What a run takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A full snapshot, and why.
    Full(String),
    /// A delta of this level (1 or 2).
    Delta(u8),
}

/// Decides what to take against the committed `state` (see the module
/// comment). `file` is the database file's (device, inode).
pub fn plan(state: &State, levels: &Levels, now: Timestamp, file: (u64, u64)) -> Plan {
    let h = &state.header;
    if (h.dev, h.ino) != file {
        return Plan::Full("the database file was replaced since the last snapshot".into());
    }
    if now < h.point().taken_at {
        return Plan::Full("the clock is behind the last snapshot".into());
    }
    let full_age = now.unix() - h.chain[0].taken_at.unix();
    if full_age >= levels.full_every {
        return Plan::Full(format!(
            "the last full snapshot is {} old (--full-every)",
            format_duration(full_age)
        ));
    }
    let diff_age = now.unix() - h.diff_base().taken_at.unix();
    if diff_age >= levels.diff_every || h.deltas_since_diff() >= levels.deltas_per_diff {
        if h.diffs_since_full() >= levels.diffs_per_full {
            return Plan::Full(format!(
                "{} level-1 deltas since the last full snapshot (--diffs-per-full)",
                h.diffs_since_full()
            ));
        }
        return Plan::Delta(1);
    }
    Plan::Delta(2)
}

/// Why a delta was given up for a full snapshot mid-read.
#[derive(Debug)]
pub struct GiveUp(pub String);

impl std::fmt::Display for GiveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GiveUp {}

/// The pages of a delta: compared, hashed, and the changed ones written.
pub struct DeltaPages<'a> {
    base: &'a [u64],
    base_page_size: u32,
    base_raw_sha256: [u8; 32],
    sink: Option<&'a mut Sink>,
    writer: Option<delta::Writer<&'a mut Sink>>,
    raw: Option<HashThread>,
    /// The digest of every page read.
    pub digests: Vec<u64>,
    limit: u32,
}

impl<'a> DeltaPages<'a> {
    /// A delta against `base` (its digests, page size and state checksum).
    pub fn new(
        base: &'a [u64],
        base_page_size: u32,
        base_raw_sha256: &str,
        sink: &'a mut Sink,
    ) -> Result<DeltaPages<'a>> {
        Ok(DeltaPages {
            base,
            base_page_size,
            base_raw_sha256: unhex(base_raw_sha256)?,
            sink: Some(sink),
            writer: None,
            raw: Some(HashThread::start()),
            digests: Vec::new(),
            limit: 0,
        })
    }

    /// Ends the delta: the pages changed and the state's SHA-256 (hex).
    pub fn finish(mut self) -> Result<(u32, String)> {
        let raw = self.raw.take().expect("finished once").finish();
        let writer = self
            .writer
            .take()
            .ok_or_else(|| anyhow!("no page was read"))?;
        let changed = writer.changed();
        writer.finish(&unhex(&raw.sha256)?)?;
        Ok((changed, raw.sha256))
    }
}

impl Pages for DeltaPages<'_> {
    fn start(&mut self, page_size: u32, page_count: u32) -> Result<()> {
        if page_size != self.base_page_size {
            return Err(GiveUp(format!(
                "the page size changed from {} to {page_size}",
                self.base_page_size
            ))
            .into());
        }
        self.digests.reserve(page_count as usize);
        self.limit = page_count / 2;
        let header = delta::Header {
            page_size,
            page_count,
            base_raw_sha256: self.base_raw_sha256,
        };
        let sink = self.sink.take().ok_or_else(|| anyhow!("started twice"))?;
        self.writer = Some(delta::Writer::new(sink, &header)?);
        Ok(())
    }

    fn page(&mut self, pgno: u32, data: &[u8]) -> Result<()> {
        let digest = page_digest(data);
        self.digests.push(digest);
        if let Some(raw) = self.raw.as_mut() {
            raw.update(data);
        }
        if self.base.get(pgno as usize - 1) != Some(&digest) {
            let writer = self.writer.as_mut().expect("started");
            writer.page(pgno, data)?;
            if writer.changed() > self.limit.max(16) {
                return Err(
                    GiveUp("more than half of the pages changed (a VACUUM?)".into()).into(),
                );
            }
        }
        Ok(())
    }
}

/// Reads every page into a full snapshot, collecting digests.
pub fn full(
    conn: &rusqlite::Connection,
    sink: &mut Sink,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<(pages::Copied, Vec<u64>)> {
    let mut digests = Vec::new();
    let copied = pages::read(
        conn,
        &mut Whole {
            sink,
            digests: Some(&mut digests),
        },
        progress,
    )?;
    Ok((copied, digests))
}

/// The chain of a new point: what its base's chain was up to the base,
/// then itself.
pub fn chain_for(state: &State, level: u8, own: Link) -> Vec<Link> {
    let h = &state.header;
    let mut chain = match level {
        1 => {
            let base = h.diff_base();
            let end = h
                .chain
                .iter()
                .position(|l| l == base)
                .expect("the diff base is in the chain");
            h.chain[..=end].to_vec()
        }
        _ => h.chain.clone(),
    };
    chain.push(own);
    chain
}

/// The point a delta of `level` applies to.
pub fn base_point(state: &State, level: u8) -> Result<(PointName, &Link)> {
    let link = match level {
        1 => state.header.diff_base(),
        _ => state.header.point(),
    };
    let point = link
        .point()
        .ok_or_else(|| anyhow!("the state names {:?}, not a snapshot object", link.object))?;
    Ok((point, link))
}

/// The digests of the diff base a new state of `level` keeps beside its
/// own: none when the new point is itself level 0 or 1.
pub fn diff_digests_after(state: &State, level: u8) -> Option<Vec<u64>> {
    match level {
        2 => Some(
            state
                .diff_digests
                .clone()
                .unwrap_or_else(|| state.digests.clone()),
        ),
        _ => None,
    }
}

fn unhex(text: &str) -> Result<[u8; 32]> {
    sha256_bytes(text).ok_or_else(|| anyhow!("not a SHA-256: {text:?}"))
}
