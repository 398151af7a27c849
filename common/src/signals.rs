//! Proving a database unchanged without reading its pages.
//!
//! Before `sqlite-snap --incremental` reads a database, it records the
//! *signals* of its files: device, inode, size, mtime and ctime of the
//! database; inode, size, mtime and the 32-byte header of its `-wal`;
//! whether a `-journal` is there; and the database header's file change
//! counter. They are kept with the state the run takes. A later run whose
//! signals are equal, and whose recorded ones were not *racy*, stores
//! nothing: the database is the state already stored.
//!
//! Why a false "unchanged" cannot happen:
//! - Every committed write reaches the database file or its `-wal` with
//!   `write(2)`, which sets the file's mtime (and ctime) to the current
//!   time. A replaced file has another inode. The database's ctime cannot
//!   be set back by any program. (The `-wal`'s ctime is not used: SQLite
//!   `fchown`s the WAL each time a connection opens it, so a mere read
//!   moves it.) A WAL that restarts gets new salts in its header.
//! - Timestamps are coarse (one clock tick): a write in the same tick as
//!   the recording could leave them equal. So signals of a file changed
//!   less than [`RACY_NS`] before the moment they were recorded are marked
//!   racy and never prove anything (git's "racily clean" rule); the next
//!   run reads the pages and compares the whole state's SHA-256 instead.
//! - Signals are recorded before the read transaction starts: a write
//!   between the recording and the read is in the state read, and its
//!   times differ from the recorded ones, so the next run reads again.
//! - A `-journal` (a transaction in progress, or a hot journal a crash left
//!   that the next open rolls back) means the file may change without a
//!   new write: such signals prove nothing.
//!
//! What remains: a program that writes the `-wal` in place without
//! changing its size and then sets its mtime back to the exact nanosecond
//! it had, or a clock stepped back to the very tick of the recording.
//! SQLite and applications do neither; `touch` makes the times differ,
//! which costs one read, never a wrong answer.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How long before the recording a file's last change must be for its
/// signals to be trusted: many ticks of any kernel's clock.
pub const RACY_NS: i64 = 2_000_000_000;

/// [`RACY_NS`], or `SQLKEEP_RACY_NS` (tests shorten it, to prove the fast
/// path without waiting seconds).
fn racy_ns() -> i64 {
    std::env::var("SQLKEEP_RACY_NS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RACY_NS)
}

/// Now, in ns since the epoch.
fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// One file's signals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSignals {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Status change time, ns since the epoch.
    pub ctime_ns: i64,
}

impl FileSignals {
    fn of(meta: &std::fs::Metadata) -> FileSignals {
        FileSignals {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        }
    }
}

/// A database's signals at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signals {
    /// The database file.
    pub db: FileSignals,
    /// Its `-wal`, when there is one (its ctime is not compared).
    pub wal: Option<FileSignals>,
    /// The `-wal`'s header (magic, page size, checkpoint sequence, salts,
    /// checksums), hex; empty for an empty or missing WAL.
    #[serde(default)]
    pub wal_header: String,
    /// The header's file change counter (bytes 24–27).
    pub change_counter: u32,
    /// A `-journal` was there.
    pub journal: bool,
    /// A file changed too close to the recording for these to prove
    /// anything.
    pub racy: bool,
}

impl Signals {
    /// Records the signals of the database at `path` now.
    pub fn read(path: &Path) -> Result<Signals> {
        let now = now_ns();
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        let db = FileSignals::of(&meta);
        let wal = match std::fs::metadata(crate::sqlite::companion(path, "-wal")) {
            Ok(m) => Some(FileSignals::of(&m)),
            Err(_) => None,
        };
        let journal = crate::sqlite::companion(path, "-journal").exists();
        let mut wal_head = Vec::new();
        if wal.as_ref().is_some_and(|w| w.size > 0) {
            let _ = std::fs::File::open(crate::sqlite::companion(path, "-wal"))
                .and_then(|f| f.take(32).read_to_end(&mut wal_head));
        }
        let mut header = [0u8; 28];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut header))
            .with_context(|| format!("reading the header of {}", path.display()))?;
        let change_counter = u32::from_be_bytes(header[24..28].try_into().expect("four bytes"));
        let window = racy_ns();
        let racy = db.ctime_ns.max(db.mtime_ns) > now - window
            || wal
                .as_ref()
                .is_some_and(|w| w.size > 0 && w.mtime_ns > now - window);
        Ok(Signals {
            db,
            wal,
            wal_header: crate::digest::hex(&wal_head),
            change_counter,
            journal,
            racy,
        })
    }

    /// Why `now` does not prove the database unchanged since `self` was
    /// recorded; None when it does.
    pub fn differs(&self, now: &Signals) -> Option<&'static str> {
        if self.racy {
            return Some("its last recorded change was too recent to trust its file times");
        }
        if self.journal || now.journal {
            return Some("a -journal is there");
        }
        if self.db != now.db || self.change_counter != now.change_counter {
            return Some("the database file changed");
        }
        // An empty WAL holds nothing: a reader's open may create one, and
        // a checkpoint that empties it writes the database file.
        let content = |w: Option<&FileSignals>| {
            w.filter(|w| w.size > 0)
                .map(|w| (w.dev, w.ino, w.size, w.mtime_ns))
        };
        if content(self.wal.as_ref()) != content(now.wal.as_ref())
            || self.wal_header != now.wal_header
        {
            return Some("its -wal changed");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("app.sqlite3");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
        )
        .unwrap();
        path
    }

    #[test]
    fn a_fresh_recording_is_racy_and_proves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = db(dir.path());
        let s = Signals::read(&path).unwrap();
        assert!(s.racy, "written just now");
        assert!(s.differs(&Signals::read(&path).unwrap()).is_some());
    }

    #[test]
    fn any_write_or_touch_is_a_difference() {
        let dir = tempfile::tempdir().unwrap();
        let path = db(dir.path());
        let mut old = Signals::read(&path).unwrap();
        old.racy = false; // as if recorded long after the last write
        assert_eq!(old.differs(&Signals::read(&path).unwrap()), None);

        // A commit that stays in the WAL.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE t SET x = 2", []).unwrap();
        assert_eq!(
            old.differs(&Signals::read(&path).unwrap()),
            Some("its -wal changed")
        );

        // The database file's times put back (as `touch -d` or rsync
        // would) still move its ctime, once the clock has ticked past the
        // last write.
        let mut old = Signals::read(&path).unwrap();
        old.racy = false;
        let probe = dir.path().join("probe");
        let ns = |m: std::fs::Metadata| m.ctime() * 1_000_000_000 + m.ctime_nsec();
        while {
            std::fs::write(&probe, b"tick").unwrap();
            ns(std::fs::metadata(&probe).unwrap()) <= old.db.ctime_ns
        } {}
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(std::fs::metadata(&path).unwrap().modified().unwrap())
            .unwrap();
        assert_eq!(
            old.differs(&Signals::read(&path).unwrap()),
            Some("the database file changed")
        );
        // A touch of the -wal moves its mtime.
        let mut old = Signals::read(&path).unwrap();
        old.racy = false;
        let wal = crate::sqlite::companion(&path, "-wal");
        let f = std::fs::File::options().write(true).open(&wal).unwrap();
        f.set_modified(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(
            old.differs(&Signals::read(&path).unwrap()),
            Some("its -wal changed")
        );
    }
}
