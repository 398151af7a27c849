//! Advisory locks on directories, serializing runs that write into the
//! same local place (a backup directory's `latest.json`, a `blob-sync`
//! destination).
//!
//! `flock` on the directory itself: no lock file to leave behind, released
//! by the kernel when the process dies however it dies, and honoured over
//! NFS by Linux's emulation. A lock still held after the wait is "try
//! again later" (exit 4), never a silent overwrite.

use crate::exit::{Exit, fail};
use anyhow::{Context, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// An exclusive lock on a directory, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _dir: File,
}

impl DirLock {
    /// Takes the lock on `dir`, waiting up to `wait` for another holder.
    pub fn exclusive(dir: &Path, wait: Duration) -> Result<DirLock> {
        let file = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            // SAFETY: the descriptor is open for the duration of the call.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(DirLock { _dir: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(err).with_context(|| format!("locking {}", dir.display()));
            }
            if started.elapsed() >= wait {
                return Err(fail(
                    Exit::Unavailable,
                    format!(
                        "{} is locked by another run that did not finish within {} s; try again later",
                        dir.display(),
                        wait.as_secs()
                    ),
                ));
            }
            // Waiting on another process's lock: there is no event to wait
            // on with flock but the lock itself, so poll with backoff.
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_then_gives_up() {
        let dir = std::env::temp_dir();
        let first = DirLock::exclusive(&dir, Duration::ZERO).unwrap();
        // flock locks belong to the open file description: a second open
        // in the same process contends like another process would.
        let err = DirLock::exclusive(&dir, Duration::from_millis(20)).unwrap_err();
        assert_eq!(crate::exit::exit_of(&err), Exit::Unavailable);
        drop(first);
        DirLock::exclusive(&dir, Duration::ZERO).unwrap();
    }
}
