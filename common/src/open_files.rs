//! Is a database open in another process?
//!
//! Replacing a database that an application has open loses data without
//! a word: the application goes on writing into the unlinked old file.
//! `bucket-pull` refuses unless told otherwise, and asks two questions:
//!
//! 1. **`/proc/*/fd`**: does any other process hold a descriptor on the
//!    database or its `-wal`, `-shm` or `-journal` (same device and inode)?
//!    This sees every opener in our PID namespace whose `/proc/<pid>/fd`
//!    we may read: all of them as root, only our own user's otherwise.
//! 2. **SQLite's locks**: does any process hold a lock on the WAL index's
//!    dead-man-switch byte (every open connection of a WAL database does,
//!    for as long as it is open), or on the database file's lock bytes (a
//!    rollback-journal database inside a transaction)? POSIX locks are
//!    visible across PID namespaces and containers sharing the volume.
//!
//! What neither sees: an idle connection to a rollback-journal database
//! in another PID namespace (it holds no lock and is not in our `/proc`),
//! processes of other users when we are not root, and openers on other
//! hosts of a network file system whose locks do not reach us.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Byte of the `-shm` file every connection of a WAL database holds a
/// shared lock on while open (SQLite's `UNIX_SHM_DMS`).
const SHM_DMS: i64 = 128;

/// First byte of SQLite's lock range in the database file (`PENDING_BYTE`)
/// and the range's length (pending, reserved, shared bytes).
const LOCK_RANGE: (i64, i64) = (0x4000_0000, 2 + 510);

/// Who has the database open, in words for an error; None when nobody
/// visible does.
pub fn holder(db: &Path) -> Option<String> {
    let files = companions(db);
    if let Some(found) = proc_holder(&files) {
        return Some(found);
    }
    let shm = &files[2];
    if lock_held(shm, SHM_DMS, 1) {
        return Some(format!(
            "a process holds {} (an open WAL connection)",
            shm.display()
        ));
    }
    if lock_held(db, LOCK_RANGE.0, LOCK_RANGE.1) {
        return Some(format!("a process holds a SQLite lock on {}", db.display()));
    }
    None
}

/// The database and its `-wal`, `-shm` and `-journal` files.
fn companions(db: &Path) -> [PathBuf; 4] {
    let with = |suffix| crate::sqlite::companion(db, suffix);
    [
        db.to_path_buf(),
        with("-wal"),
        with("-shm"),
        with("-journal"),
    ]
}

/// A process other than us with one of `files` open, from `/proc`.
fn proc_holder(files: &[PathBuf]) -> Option<String> {
    let ids: Vec<(u64, u64)> = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if ids.is_empty() {
        return None;
    }
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            // stat follows the fd's link to the open file itself, even
            // when that file was renamed or unlinked.
            let Ok(meta) = std::fs::metadata(fd.path()) else {
                continue;
            };
            if ids.contains(&(meta.dev(), meta.ino())) {
                let name = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_else(|_| "?".into());
                return Some(format!("process {pid} ({name}) has it open"));
            }
        }
    }
    None
}

/// True when another process holds a POSIX lock on `len` bytes of `path`
/// from `start` (F_GETLK: nothing is locked by asking).
fn lock_held(path: &Path, start: i64, len: i64) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: flock is plain data; zeroed is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = start as libc::off_t;
    lock.l_len = len as libc::off_t;
    // SAFETY: the descriptor is open and `lock` is a valid flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    rc == 0 && lock.l_type != libc::F_UNLCK as libc::c_short
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn another_process_holding_the_file_is_seen() {
        let dir = std::env::temp_dir().join(format!("sqlkeep-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("app.sqlite3");
        std::fs::write(&db, b"x").unwrap();
        assert_eq!(holder(&db), None);
        // Our own descriptors do not count.
        let _mine = std::fs::File::open(&db).unwrap();
        assert_eq!(holder(&db), None);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec 3<\"$0\"; echo ready; read _")
            .arg(&db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let found = holder(&db).expect("the shell holds it open");
        assert!(found.contains(&child.id().to_string()), "{found}");
        drop(child.stdin.take());
        child.wait().unwrap();
        assert_eq!(holder(&db), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
