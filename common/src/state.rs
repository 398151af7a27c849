//! Incremental state: what the last *stored* snapshot of a database was,
//! page by page, so the next run can send only the pages that changed.
//!
//! One directory per database under the state root, named after the
//! database and a hash of its canonical path:
//!
//! ```text
//! <root>/<db>-<16 hex>/committed.json   which state reached storage, and where
//! <root>/<db>-<16 hex>/<stem>.state     a state: chain + page digests
//! ```
//!
//! `sqlite-snap --incremental` reads the committed state, writes the new
//! one as *pending* (`<stem>.state`, named in its record) and never
//! commits it itself when its output goes down a pipe: `bucket-push`
//! commits it (rewrites `committed.json`) only after the object, its
//! manifest and `latest.json` are stored. A failed, refused or killed push
//! leaves the previous commit, and the next increment is taken against it,
//! covering the gap. Every file is written to a temporary name, fsynced
//! and renamed; a state that fails its checksum is unreadable, and an
//! unreadable state means a full snapshot, never a wrong delta.

use crate::atomic::write_atomic;
use crate::digest::sha256_hex;
use crate::exit::{Exit, fail};
use crate::lock::DirLock;
use crate::repo::chain::Link;
use crate::repo::names::PointName;
use crate::signals::Signals;
use crate::time::Timestamp;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The first bytes of a state file.
const MAGIC: &[u8; 8] = b"SQLKSTA1";

/// File-name ending of a state file.
pub const STATE_EXT: &str = ".state";

/// The file naming the committed state.
pub const COMMITTED: &str = "committed.json";

/// The most a state header may hold (a chain of a few hundred links).
const HEADER_MAX: usize = 8 << 20;

/// How long a run waits for another holding the database's state.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The default state root: `$XDG_STATE_HOME/sqlkeep`, `/var/lib/sqlkeep`
/// for root, else `~/.local/state/sqlkeep`.
pub fn default_root() -> PathBuf {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    root_for(
        std::env::var_os("XDG_STATE_HOME"),
        uid,
        std::env::var_os("HOME"),
    )
}

/// [`default_root`] for these environment values and user.
fn root_for(
    xdg_state_home: Option<std::ffi::OsString>,
    uid: u32,
    home: Option<std::ffi::OsString>,
) -> PathBuf {
    if let Some(dir) = xdg_state_home.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("sqlkeep");
    }
    if uid == 0 {
        return PathBuf::from("/var/lib/sqlkeep");
    }
    match home.filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/sqlkeep"),
        None => PathBuf::from("/var/lib/sqlkeep"),
    }
}

/// What a state describes: one database state, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The database's name.
    pub db: String,
    /// Its canonical path.
    pub source: String,
    /// Device and inode of the file, to notice a replaced database.
    pub dev: u64,
    /// See `dev`.
    pub ino: u64,
    /// Page size of the state.
    pub page_size: u32,
    /// Pages in the state.
    pub page_count: u32,
    /// The chain that rebuilds the state, ending with its own point.
    pub chain: Vec<Link>,
    /// Whom the chain's objects are encrypted to (public keys, or
    /// `scrypt`); empty when they are not. A run with other recipients
    /// starts a new chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypted_to: Vec<String>,
    /// The database's file signals, recorded just before the state was
    /// read: equal signals later prove it unchanged (see
    /// [`crate::signals`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Signals>,
}

impl Header {
    /// The state's own link (the last of its chain).
    pub fn point(&self) -> &Link {
        self.chain.last().expect("a state's chain is never empty")
    }

    /// The newest link of level 0 or 1: what a level-1 delta applies to.
    pub fn diff_base(&self) -> &Link {
        self.chain
            .iter()
            .rev()
            .find(|l| l.level <= 1)
            .expect("a chain starts with a full snapshot")
    }

    /// Level-2 links after the diff base.
    pub fn deltas_since_diff(&self) -> usize {
        self.chain.iter().rev().take_while(|l| l.level == 2).count()
    }

    /// Level-1 links in the chain.
    pub fn diffs_since_full(&self) -> usize {
        self.chain.iter().filter(|l| l.level == 1).count()
    }
}

/// A state: its header and the xxh3 digest of every page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// What it describes.
    pub header: Header,
    /// One digest per page of this state.
    pub digests: Vec<u64>,
    /// The digests of the diff base, when that is not this state itself.
    pub diff_digests: Option<Vec<u64>>,
}

impl State {
    /// The state file's bytes, checksummed.
    fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).expect("a header serializes");
        let mut out = Vec::with_capacity(64 + header.len() + 8 * self.digests.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        push_digests(&mut out, Some(&self.digests));
        push_digests(&mut out, self.diff_digests.as_deref());
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Reads a state file's bytes; any damage is an error.
    fn decode(bytes: &[u8]) -> std::result::Result<State, String> {
        if bytes.len() < MAGIC.len() + 32 || &bytes[..8] != MAGIC {
            return Err("not a sqlkeep state file".into());
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return Err("its checksum does not match (damaged or cut short)".into());
        }
        let mut at = 8;
        let header_len = take_u32(body, &mut at)? as usize;
        if header_len > HEADER_MAX || at + header_len > body.len() {
            return Err("its header is too long".into());
        }
        let header: Header = serde_json::from_slice(&body[at..at + header_len])
            .map_err(|e| format!("its header is unreadable: {e}"))?;
        at += header_len;
        let digests = take_digests(body, &mut at)?.ok_or("it has no page digests")?;
        let diff_digests = take_digests(body, &mut at)?;
        if at != body.len() {
            return Err("bytes after its digests".into());
        }
        if header.chain.first().is_none_or(|l| l.level != 0)
            || digests.len() != header.page_count as usize
        {
            return Err("its chain or page count does not match its digests".into());
        }
        // A level-2 point keeps its diff base's digests: without them a
        // level-1 delta would be compared with the wrong state.
        let needs_diff = header.point().level == 2;
        let diff_pages = header.diff_base().raw_bytes / u64::from(header.page_size.max(1));
        match &diff_digests {
            Some(d) if needs_diff && d.len() as u64 == diff_pages => {}
            None if !needs_diff => {}
            _ => return Err("its diff base's digests do not match its chain".into()),
        }
        Ok(State {
            header,
            digests,
            diff_digests,
        })
    }

    /// The digests a delta of `level` compares against.
    pub fn base_digests(&self, level: u8) -> &[u64] {
        match (level, &self.diff_digests) {
            (1, Some(diff)) => diff,
            _ => &self.digests,
        }
    }
}

fn push_digests(out: &mut Vec<u8>, digests: Option<&[u64]>) {
    match digests {
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        Some(d) => {
            out.extend_from_slice(&(d.len() as u32).to_le_bytes());
            for x in d {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
}

fn take_u32(body: &[u8], at: &mut usize) -> std::result::Result<u32, String> {
    let bytes = body.get(*at..*at + 4).ok_or("it ends early")?;
    *at += 4;
    Ok(u32::from_le_bytes(bytes.try_into().expect("four bytes")))
}

fn take_digests(body: &[u8], at: &mut usize) -> std::result::Result<Option<Vec<u64>>, String> {
    let n = take_u32(body, at)?;
    if n == u32::MAX {
        return Ok(None);
    }
    let len = n as usize * 8;
    let bytes = body.get(*at..*at + len).ok_or("it ends early")?;
    *at += len;
    Ok(Some(
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("eight bytes")))
            .collect(),
    ))
}

/// Which state reached storage (`committed.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The committed point's stem.
    pub point: String,
    /// Where it was stored: the database prefix's address, or `local:`
    /// and the directory `sqlite-snap -o` wrote it to.
    pub remote: String,
    /// The tag `latest.json` got when this point was stored, so the next
    /// increment moves it with `If-Match` and no read first.
    pub latest_tag: Option<String>,
    /// When it was committed.
    pub committed_at: Timestamp,
}

/// One database's state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// The state directory of the database at canonical path `source`,
    /// created (mode 0700) if missing.
    pub fn for_database(root: &Path, source: &Path, db: &str) -> Result<StateDir> {
        let hash = sha256_hex(source.as_os_str().as_encoded_bytes());
        let safe: String = db
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dir = root.join(format!("{safe}-{}", &hash[..16]));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| {
                fail(
                    Exit::Usage,
                    format!("state directory {}: cannot create it: {e}", dir.display()),
                )
            })?;
        Ok(StateDir { dir })
    }

    /// The state directory a pending state file named in a record lives
    /// in. The name must be a state file's (`<stem>.state`): a record
    /// cannot steer a commit anywhere else. The file itself may be gone (a
    /// newer commit tidied it away); [`StateDir::commit`] reads it.
    pub fn of_pending(path: &Path) -> Result<(StateDir, PointName)> {
        let refuse = |why: &str| {
            fail(
                Exit::Failed,
                format!("record names state {}, {why}", path.display()),
            )
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let point = name
            .strip_suffix(STATE_EXT)
            .and_then(PointName::parse_stem)
            .ok_or_else(|| refuse("which is not a state file's name"))?;
        let dir = crate::atomic::parent_dir(path);
        Ok((StateDir { dir }, point))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Serializes runs on this database's state.
    pub fn lock(&self) -> Result<DirLock> {
        DirLock::exclusive(&self.dir, LOCK_WAIT)
    }

    /// The path of the state of `point`.
    pub fn state_path(&self, point: &PointName) -> PathBuf {
        self.dir.join(format!("{}{STATE_EXT}", point.stem()))
    }

    /// The committed state's record, None when nothing was ever committed.
    pub fn committed(&self) -> Result<Option<Committed>> {
        let path = self.dir.join(COMMITTED);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| fail(Exit::Failed, format!("{}: unreadable: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Reads the state of `point`.
    pub fn load(&self, point: &PointName) -> Result<State> {
        let path = self.state_path(point);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        State::decode(&bytes)
            .map_err(|why| fail(Exit::Failed, format!("{}: {why}", path.display())))
    }

    /// Writes `state` as a pending state; returns its path.
    pub fn write_pending(&self, state: &State) -> Result<PathBuf> {
        let point = state
            .header
            .point()
            .point()
            .context("a state's own link is not a snapshot object")?;
        let path = self.state_path(&point);
        write_atomic(&path, &state.encode(), 0o600)
            .with_context(|| format!("writing state {}", path.display()))?;
        Ok(path)
    }

    /// Commits the state of `point` (which must be readable) as stored at
    /// `remote`, under the lock.
    pub fn commit(
        &self,
        point: &PointName,
        remote: &str,
        latest_tag: Option<String>,
    ) -> Result<()> {
        self.load(point)?;
        let committed = Committed {
            point: point.stem(),
            remote: remote.to_string(),
            latest_tag,
            committed_at: Timestamp::now(),
        };
        let text = serde_json::to_string(&committed).expect("serializes") + "\n";
        write_atomic(&self.dir.join(COMMITTED), text.as_bytes(), 0o600)
            .context("committing the incremental state")?;
        self.tidy(point);
        Ok(())
    }

    /// Rewrites the committed state of `point` with new signals, after a
    /// run proved the database still holds exactly that state (its
    /// SHA-256 compared): later runs then skip it without a read.
    pub fn refresh_signals(&self, point: &PointName, signals: Signals) -> Result<()> {
        let mut state = self.load(point)?;
        state.header.signals = Some(signals);
        let path = self.state_path(point);
        write_atomic(&path, &state.encode(), 0o600)
            .with_context(|| format!("writing state {}", path.display()))
    }

    /// Forgets the committed state: the next run takes a full snapshot.
    pub fn forget(&self) -> Result<()> {
        match std::fs::remove_file(self.dir.join(COMMITTED)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context("forgetting the incremental state")
            }
            _ => Ok(()),
        }
    }

    /// Removes the state files taken before `committed`'s second: no run
    /// will take a delta against them again. Newer ones may still be
    /// committed by a push in flight.
    pub fn tidy(&self, committed: &PointName) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(point) = name.strip_suffix(STATE_EXT).and_then(PointName::parse_stem) else {
                continue;
            };
            // Points of one second order by checksum, not by time: a state
            // of the committed point's second may be newer, and stays.
            if point.taken_at < committed.taken_at {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let t = Timestamp::from_unix(1_767_225_600);
        let point = PointName::new(t, &"a".repeat(64));
        State {
            header: Header {
                db: "app".into(),
                source: "/srv/app.sqlite3".into(),
                dev: 1,
                ino: 2,
                page_size: 4096,
                page_count: 3,
                chain: vec![Link {
                    object: point.object(true),
                    level: 0,
                    taken_at: t,
                    bytes: 10,
                    sha256: "a".repeat(64),
                    raw_bytes: 3 * 4096,
                    raw_sha256: "b".repeat(64),
                }],
                encrypted_to: Vec::new(),
                signals: None,
            },
            digests: vec![1, 2, 3],
            diff_digests: None,
        }
    }

    #[test]
    fn the_default_root_follows_xdg_then_root_then_home() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            root_for(os("/x"), 0, os("/home/a")),
            Path::new("/x/sqlkeep")
        );
        assert_eq!(
            root_for(os(""), 0, os("/home/a")),
            Path::new("/var/lib/sqlkeep")
        );
        assert_eq!(
            root_for(None, 1000, os("/home/a")),
            Path::new("/home/a/.local/state/sqlkeep")
        );
        assert_eq!(root_for(None, 1000, None), Path::new("/var/lib/sqlkeep"));
    }

    #[test]
    fn a_state_round_trips_and_damage_is_caught() {
        let s = state();
        let bytes = s.encode();
        assert_eq!(State::decode(&bytes).unwrap(), s);
        for cut in [0, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(State::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(State::decode(&flipped).is_err());

        // A level-2 point must carry its diff base's digests.
        let mut level2 = state();
        let mut link = level2.header.chain[0].clone();
        link.level = 2;
        link.taken_at = Timestamp::from_unix(link.taken_at.unix() + 60);
        level2.header.chain.push(link);
        assert!(State::decode(&level2.encode()).is_err());
        level2.diff_digests = Some(vec![7, 8, 9]);
        assert_eq!(State::decode(&level2.encode()).unwrap(), level2);
    }

    #[test]
    fn commit_names_a_readable_state_and_tidies_older_ones() {
        let root = tempfile::tempdir().unwrap();
        let dir =
            StateDir::for_database(root.path(), Path::new("/srv/app.sqlite3"), "app").unwrap();
        assert_eq!(dir.committed().unwrap(), None);
        let s = state();
        let path = dir.write_pending(&s).unwrap();
        let (again, point) = StateDir::of_pending(&path).unwrap();
        assert_eq!(again.path(), dir.path());
        again
            .commit(&point, "s3://b/app", Some("\"e\"".into()))
            .unwrap();
        let committed = dir.committed().unwrap().unwrap();
        assert_eq!(committed.point, point.stem());
        assert_eq!(dir.load(&point).unwrap(), s);
        let older = PointName::new(Timestamp::from_unix(1), &"c".repeat(64));
        std::fs::write(dir.state_path(&older), b"x").unwrap();
        dir.tidy(&point);
        assert!(!dir.state_path(&older).exists());
        assert!(dir.state_path(&point).exists());
        assert!(StateDir::of_pending(Path::new("/etc/passwd")).is_err());
    }
}
