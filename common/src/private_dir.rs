//! The private working directory under `$TMPDIR`.
//!
//! `sqlite-snap` writes snapshots there when no `-o` is given, and
//! `sqlite-verify` decompresses snapshots there. In a shared `/tmp`,
//! another user could pre-create the directory to read or swap our files,
//! so it must be ours and closed to everyone else; anything else is refused.
//!
//! Temporary snapshots are removed by whoever consumes them (`bucket-push`,
//! or `sqlite-verify` at the end of a pipeline); those a pipeline never
//! consumed are removed by the next `sqlite-snap` once older than
//! [`STALE_SNAPSHOT_AGE`].

use crate::exit::{Exit, fail, io_error};
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A temporary snapshot nobody consumed for this long is debris: no
/// pipeline takes a day between `sqlite-snap` and its consumer.
pub const STALE_SNAPSHOT_AGE: Duration = Duration::from_secs(24 * 3600);

/// `$TMPDIR/sqlkeep-<uid>`, created mode 0700 if missing and checked to be
/// owned by us with no access for group or others.
pub fn private_dir() -> Result<PathBuf> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let dir = std::env::temp_dir().join(format!("sqlkeep-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    let meta =
        std::fs::symlink_metadata(&dir).with_context(|| format!("reading {}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(fail(
            Exit::Refused,
            format!(
                "{} is not a private directory of this user (owner {}, mode {:o}); remove it or set TMPDIR",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(dir)
}

/// What a record says about a temporary snapshot handed down a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Temporary {
    /// The record does not say `"temporary": true` with a `path`.
    NotOne,
    /// It says so, but the file is not in the private directory: never
    /// ours to delete, whatever the record claims.
    Foreign(PathBuf),
    /// A temporary snapshot in the private directory: whoever ends the
    /// pipeline removes it.
    Ours(PathBuf),
}

/// Reads a record's claim to carry a temporary snapshot.
pub fn temporary_snapshot(record: &crate::record::Record) -> Temporary {
    if record.get("temporary") != Some(&serde_json::Value::Bool(true)) {
        return Temporary::NotOne;
    }
    let Some(path) = record.str("path").map(PathBuf::from) else {
        return Temporary::NotOne;
    };
    if is_private_file(&path) {
        Temporary::Ours(path)
    } else {
        Temporary::Foreign(path)
    }
}

/// True when `path` is a file directly in the private directory: the only
/// files a "temporary" record may ever make us delete.
pub fn is_private_file(path: &Path) -> bool {
    match (private_dir(), path.canonicalize()) {
        (Ok(dir), Ok(file)) => file.parent() == Some(dir.as_path()),
        _ => false,
    }
}

/// Removes temporary snapshots in the private directory that no consumer
/// took within [`STALE_SNAPSHOT_AGE`]; returns what was removed.
pub fn reclaim_stale_snapshots(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_snapshot = name
            .to_str()
            .is_some_and(|n| !n.starts_with('.') && n.contains(".sqlite3"));
        let stale = entry.metadata().is_ok_and(|m| {
            m.is_file()
                && m.modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_SNAPSHOT_AGE)
        });
        if is_snapshot && stale && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// A scratch file that is removed when dropped.
pub struct ScratchFile {
    path: PathBuf,
}

impl ScratchFile {
    /// Creates a new empty file, mode 0600, in `dir`, its name starting
    /// with `hint` and naming its writer (see [`crate::debris`]).
    pub fn create(dir: &Path, hint: &str) -> Result<(ScratchFile, File)> {
        crate::debris::reclaim(dir);
        for attempt in 0u64.. {
            let path = dir.join(format!(
                ".{hint}.{}.scratch",
                crate::debris::writer_tag(attempt)
            ));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => return Ok((ScratchFile { path }, file)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 => {}
                Err(e) => return Err(io_error(dir, "cannot create a file in", e)),
            }
        }
        unreachable!("the loop returns")
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
