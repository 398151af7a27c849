//! The private working directory under `$TMPDIR`.
//!
//! `sqlite-snap` writes snapshots there when no `-o` is given, and
//! `sqlite-verify` decompresses snapshots there. In a shared `/tmp`,
//! another user could pre-create the directory to read or swap our files,
//! so it must be ours and closed to everyone else; anything else is refused.

use crate::exit::{Exit, fail};
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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

/// A scratch file that is removed when dropped.
pub struct ScratchFile {
    path: PathBuf,
}

impl ScratchFile {
    /// Creates a new empty file, mode 0600, in `dir`, its name starting
    /// with `hint`.
    pub fn create(dir: &Path, hint: &str) -> Result<(ScratchFile, File)> {
        for attempt in 0u32.. {
            let path = dir.join(format!(".{hint}.{}-{attempt}.scratch", std::process::id()));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => return Ok((ScratchFile { path }, file)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create a file in {}", dir.display()));
                }
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
