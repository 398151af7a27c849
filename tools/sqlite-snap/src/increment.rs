//! One `--incremental` run for one database: read the committed state,
//! take what the levels call for (a delta, or a full snapshot when a
//! delta is impossible or worthless), write the new state as pending, and
//! build the record that carries it to `bucket-push`.

use crate::cli::Method;
use crate::incremental::{self, DeltaPages, GiveUp, Plan};
use crate::pages;
use crate::sink::{Sink, Written};
use crate::{
    Incremental, Settings, Snapshot, claim_name, finish_record, identify, progress_display,
    snapshot_record,
};
use anyhow::{Context, Result};
use sqlkeep_common::digest::Digest;
use sqlkeep_common::discover::Target;
use sqlkeep_common::log::Log;
use sqlkeep_common::record::Record;
use sqlkeep_common::repo::chain::Link;
use sqlkeep_common::repo::names::{self, ObjectName, PointName};
use sqlkeep_common::signals::Signals;
use sqlkeep_common::sqlite;
use sqlkeep_common::state::{self, State, StateDir};
use sqlkeep_common::time::Timestamp;
use sqlkeep_common::units::{human_bytes, human_duration, record_seconds};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

/// What one incremental run took.
struct Taken {
    level: u8,
    name: ObjectName,
    dest: PathBuf,
    written: Written,
    copied: pages::Copied,
    digests: Vec<u64>,
    changed: Option<u32>,
}

/// An incremental snapshot: a delta against the committed state when the
/// levels allow one, a full snapshot otherwise (see [`crate::incremental`]).
pub(crate) fn snapshot(
    target: &Target,
    s: &Settings,
    inc: &Incremental,
    written: &std::sync::Mutex<HashSet<PathBuf>>,
    log: &Log,
) -> Result<Record> {
    let started = Instant::now();
    let (source, db) = identify(target)?;
    let meta = std::fs::metadata(&source)?;
    let dir = StateDir::for_database(&inc.root, &source, &db)?;
    let _lock = dir.lock()?;
    let (previous, mut why_full) = committed_state(&dir, log, &target.label);
    // Recorded before the read transaction starts: see signals.rs for why
    // that order makes a false "unchanged" impossible.
    let signals = Signals::read(&source)?;
    let conn = sqlite::open_read_only(&source, s.busy_timeout)?;
    let mut taken_at = Timestamp::now();
    let mut progress = progress_display(log, &target.label);
    let mut taken = None;
    if let Some(state) = &previous {
        let plan = if state.header.encrypted_to != s.encrypted_to {
            // A chain is read with one set of keys; and a new recipient
            // must be able to read the whole chain of every later point.
            Plan::Full("encryption recipients changed".into())
        } else {
            incremental::plan(state, &inc.levels, taken_at, (meta.dev(), meta.ino()))
        };
        match plan {
            Plan::Full(why) => why_full = why,
            Plan::Delta(_)
                if state
                    .header
                    .signals
                    .as_ref()
                    .is_some_and(|old| old.differs(&signals).is_none()) =>
            {
                return Ok(unchanged(target, &db, &source, state, "file signals", log));
            }
            Plan::Delta(level) => {
                match take_delta(&conn, s, &db, taken_at, state, level, &mut progress) {
                    Ok(t) if t.written.raw.sha256 == state.header.point().raw_sha256 => {
                        // Read, and found to be the stored state itself:
                        // nothing to store, and the next run can trust
                        // the signals it recorded.
                        let _ = std::fs::remove_file(&t.dest);
                        if let Some(point) = state.header.point().point() {
                            dir.refresh_signals(&point, signals)?;
                        }
                        progress(0, 0);
                        return Ok(unchanged(target, &db, &source, state, "sha256", log));
                    }
                    Ok(t) => taken = Some(t),
                    Err(e) => match e.downcast_ref::<GiveUp>() {
                        Some(gave_up) => {
                            why_full = gave_up.0.clone();
                            // The full snapshot reads in a new transaction:
                            // it is of a later moment.
                            taken_at = Timestamp::now();
                        }
                        None => return Err(sqlite::explain(e, &target.path, &s.out_dir)),
                    },
                }
            }
        }
    }
    let taken = match taken {
        Some(t) => t,
        None => take_full(&conn, s, &db, taken_at, &mut progress)
            .map_err(|e| sqlite::explain(e, &target.path, &s.out_dir))?,
    };
    progress(0, 0);
    drop(conn);
    claim_name(written, &taken.dest, &db)?;

    let own = Link {
        object: taken.name.to_string(),
        level: taken.level,
        taken_at,
        bytes: taken.written.stored.bytes,
        sha256: taken.written.stored.sha256.clone(),
        raw_bytes: taken.written.raw.bytes,
        raw_sha256: taken.written.raw.sha256.clone(),
    };
    let (chain, diff_digests) = match (&previous, taken.level) {
        (Some(state), level @ 1..) => (
            incremental::chain_for(state, level, own),
            incremental::diff_digests_after(state, level),
        ),
        _ => (vec![own], None),
    };
    let state = State {
        header: state::Header {
            db: db.clone(),
            source: source.display().to_string(),
            dev: meta.dev(),
            ino: meta.ino(),
            page_size: taken.copied.page_size,
            page_count: taken.copied.page_count,
            chain: chain.clone(),
            encrypted_to: s.encrypted_to.clone(),
            signals: Some(signals),
        },
        digests: taken.digests,
        diff_digests,
    };
    let pending = dir.write_pending(&state)?;
    if inc.commit_now {
        dir.commit(
            &taken.name.point,
            &format!("local:{}", s.out_dir.display()),
            None,
        )?;
    }

    let kind = if taken.level == 0 { "full" } else { "delta" };
    let detail = match taken.changed {
        Some(changed) => format!(
            "level-{} delta, {changed} of {} pages changed",
            taken.level, taken.copied.page_count
        ),
        None => format!("full snapshot: {why_full}"),
    };
    log.ok(
        &target.label,
        &format!(
            "{detail}, {} → {}, {}",
            human_bytes(taken.written.raw.bytes),
            human_bytes(taken.written.stored.bytes),
            human_duration(started.elapsed())
        ),
    );
    let mut record = snapshot_record(&Snapshot {
        db: &db,
        source: &source,
        dest: &taken.dest,
        taken_at,
        written: &taken.written,
        copied: taken.copied,
        compressed: true,
        method: Method::Pages,
        encrypted_to: &s.encrypted_to,
    });
    record
        .set("kind", kind)
        .set("level", taken.level)
        .set("snapshot_seconds", record_seconds(started.elapsed()));
    match &taken.name.base {
        Some(base) => {
            record.set("base", base.stem());
        }
        None => {
            record.set("full_reason", why_full);
        }
    }
    if let Some(changed) = taken.changed {
        record.set("changed_pages", changed);
    }
    record
        .set(
            "parent",
            previous
                .as_ref()
                .and_then(|p| p.header.point().point())
                .map(|p| serde_json::Value::from(p.stem()))
                .unwrap_or(serde_json::Value::Null),
        )
        .set(
            "chain",
            serde_json::to_value(&chain).expect("links serialize"),
        )
        .set("state", pending.display().to_string());
    if inc.commit_now {
        record.set("committed", true);
    }
    Ok(finish_record(record, s, target))
}

/// The record of a database found unchanged since its committed state:
/// nothing to store, no request (`bucket-push` passes over it). `proof`
/// says how it was shown: `file signals` without a read, or `sha256` of
/// the whole state read.
fn unchanged(
    target: &Target,
    db: &str,
    source: &std::path::Path,
    state: &State,
    proof: &str,
    log: &Log,
) -> Record {
    let point = state
        .header
        .point()
        .point()
        .map(|p| p.stem())
        .unwrap_or_default();
    log.skip(
        &target.label,
        &format!("unchanged since the stored point {point} (proved by {proof}): nothing to store"),
    );
    let mut record = Record::new("snapshot");
    record
        .set("db", db)
        .set("source", source.display().to_string())
        .set("taken_at", Timestamp::now().rfc3339())
        .set("unchanged", true)
        .set("unchanged_since", point)
        .set("proof", proof)
        .set("raw_sha256", state.header.point().raw_sha256.as_str());
    if let Some(carried) = &target.carried {
        record.carry(carried);
    }
    record
}

/// The committed state, or None and why a full snapshot is taken.
fn committed_state(dir: &StateDir, log: &Log, label: &str) -> (Option<State>, String) {
    let committed = match dir.committed() {
        Ok(Some(c)) => c,
        Ok(None) => return (None, "no committed state yet".into()),
        Err(e) => {
            log.warn(label, &format!("{e:#}; taking a full snapshot"));
            return (None, "the committed state is unreadable".into());
        }
    };
    let Some(point) = PointName::parse_stem(&committed.point) else {
        log.warn(
            label,
            "committed.json names no point; taking a full snapshot",
        );
        return (None, "the committed state is unreadable".into());
    };
    match dir.load(&point) {
        Ok(state) => (Some(state), String::new()),
        Err(e) => {
            log.warn(label, &format!("{e:#}; taking a full snapshot"));
            (None, "the committed state is unreadable".into())
        }
    }
}

/// Takes a delta of `level` against `state`.
fn take_delta(
    conn: &rusqlite::Connection,
    s: &Settings,
    db: &str,
    taken_at: Timestamp,
    state: &State,
    level: u8,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<Taken> {
    let (base, base_link) = incremental::base_point(state, level)?;
    let provisional = s.out_dir.join(format!(
        "{}-{}{}",
        names::file_safe(db),
        taken_at.stamp(),
        names::DELTA_EXT
    ));
    let mut sink = Sink::create(&provisional, s.compression, s.recipients.as_ref())?;
    let mut delta = DeltaPages::new(
        state.base_digests(level),
        state.header.page_size,
        &base_link.raw_sha256,
        &mut sink,
    )?;
    let copied = pages::read(conn, &mut delta, progress)?;
    let digests = std::mem::take(&mut delta.digests);
    let (changed, raw_sha256) = delta.finish()?;
    let mut name = None;
    let (mut written, dest) = sink
        .commit(|w| {
            let point = PointName::new(taken_at, &w.stored.sha256);
            let object = ObjectName::delta(point, base.clone()).sealed(s.recipients.is_some());
            let dest = s.out_dir.join(names::object_file_name(db, &object));
            name = Some(object);
            dest
        })
        .with_context(|| format!("writing a delta in {}", s.out_dir.display()))?;
    // The sink hashed the delta's own bytes; the record's raw digest is of
    // the database state the delta completes.
    written.raw = Digest {
        sha256: raw_sha256,
        bytes: u64::from(copied.page_count) * u64::from(copied.page_size),
    };
    Ok(Taken {
        level,
        name: name.expect("named on commit"),
        dest,
        written,
        copied,
        digests,
        changed: Some(changed),
    })
}

/// Takes a full snapshot, collecting page digests.
fn take_full(
    conn: &rusqlite::Connection,
    s: &Settings,
    db: &str,
    taken_at: Timestamp,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<Taken> {
    let provisional = s.out_dir.join(names::snapshot_file_name(
        db,
        &PointName {
            taken_at,
            tag: None,
        },
        true,
    ));
    let mut sink = Sink::create(&provisional, s.compression, s.recipients.as_ref())?;
    let (copied, digests) = incremental::full(conn, &mut sink, progress)?;
    let mut name = None;
    let (written, dest) = sink
        .commit(|w| {
            let object = ObjectName::full(PointName::new(taken_at, &w.stored.sha256), true)
                .sealed(s.recipients.is_some());
            let dest = s.out_dir.join(names::object_file_name(db, &object));
            name = Some(object);
            dest
        })
        .with_context(|| format!("writing a snapshot in {}", s.out_dir.display()))?;
    Ok(Taken {
        level: 0,
        name: name.expect("named on commit"),
        dest,
        written,
        copied,
        digests,
        changed: None,
    })
}
