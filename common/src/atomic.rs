//! Atomic file replacement: write a temporary file, fsync it, rename it.
//!
//! Every file sqlkeep creates goes through here, so a failed or interrupted
//! run leaves the previous good state: either the old file or the complete
//! new one, never a torn mix. The temporary file is hidden (dot-prefixed),
//! named with its writer (see [`crate::debris`], which removes those of
//! killed runs before the first write into a directory), and lives in the
//! destination's directory so the rename cannot cross file systems; it is
//! removed when the write is abandoned.
//!
//! Write and sync errors name the file, and a full disk says so in those
//! words wherever it happens (issue 10: it was reported as a damaged
//! snapshot).

use crate::exit::{io_error, is_no_space};
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Marks our temporary files, so listings can skip them.
pub const TEMP_SUFFIX: &str = ".sqlkeep-tmp";

/// A file being written that appears at its destination only on commit.
pub struct AtomicFile {
    dest: PathBuf,
    temp: PathBuf,
    file: File,
    committed: bool,
}

impl AtomicFile {
    /// Starts writing `dest`: creates a new hidden temporary file beside it
    /// with exactly `mode` (umask does not widen or narrow it).
    pub fn create(dest: &Path, mode: u32) -> Result<AtomicFile> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let dir = parent_dir(dest);
        let name = dest
            .file_name()
            .with_context(|| format!("{} has no file name", dest.display()))?
            .to_string_lossy();
        crate::debris::reclaim(&dir);
        let temp = dir.join(format!(
            ".{name}.{}{TEMP_SUFFIX}",
            crate::debris::writer_tag(SEQUENCE.fetch_add(1, Ordering::Relaxed))
        ));
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)
            .map_err(|e| io_error(&dir, "cannot create a file in", e))?;
        let atomic = AtomicFile {
            dest: dest.to_path_buf(),
            temp,
            file,
            committed: false,
        };
        atomic
            .file
            .set_permissions(Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", atomic.temp.display()))?;
        Ok(atomic)
    }

    /// The temporary file's path.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The destination this file will take on commit.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The open temporary file, for metadata calls; write through
    /// [`Write`] so that errors name the file.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Makes the file's content durable without putting it in place yet,
    /// for callers with more to do between the two (a restore moves the
    /// replaced database's companions aside first).
    pub fn sync(&mut self) -> Result<()> {
        self.file
            .flush()
            .and_then(|()| self.file.sync_all())
            .map_err(|e| io_error(&self.temp, "syncing", e))
    }

    /// Makes the file durable and puts it in place: fsync the data, rename
    /// over the destination, fsync the directory so the rename survives a
    /// power cut.
    pub fn commit(mut self) -> Result<()> {
        self.sync()?;
        self.rename_into_place()
    }

    /// Commits under another name in the same directory, chosen once the
    /// content is known (a snapshot's name carries its checksum).
    pub fn commit_as(mut self, dest: &Path) -> Result<()> {
        self.dest = dest.to_path_buf();
        self.commit()
    }

    /// The rename and directory sync of [`AtomicFile::commit`], for a file
    /// already synced with [`AtomicFile::sync`].
    pub fn rename_into_place(mut self) -> Result<()> {
        std::fs::rename(&self.temp, &self.dest)
            .with_context(|| format!("renaming into {}", self.dest.display()))?;
        self.committed = true;
        sync_dir(&parent_dir(&self.dest))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf).map_err(|e| name_io(e, &self.temp))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().map_err(|e| name_io(e, &self.temp))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// An I/O error that names its file; a full disk keeps a kind that
/// [`crate::exit::has_no_space`] recognises after any wrapping.
pub fn name_io(e: std::io::Error, path: &Path) -> std::io::Error {
    if is_no_space(&e) {
        return std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("{}: no space left on device", path.display()),
        );
    }
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Writes a small file atomically in one call.
pub fn write_atomic(dest: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = AtomicFile::create(dest, mode)?;
    file.write_all(bytes).context("writing")?;
    file.commit()
}

/// Fsyncs a directory so that entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// The directory a path lives in; `.` for a bare file name.
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// True for the temporary files [`AtomicFile`] creates.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sqlkeep-atomic-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn appears_only_on_commit() {
        let dir = scratch("commit");
        let dest = dir.join("out.bin");
        std::fs::write(&dest, b"old").unwrap();
        let mut f = AtomicFile::create(&dest, 0o600).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&dest).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn abandoned_write_leaves_nothing() {
        let dir = scratch("abandon");
        let dest = dir.join("out.bin");
        let mut f = AtomicFile::create(&dest, 0o600).unwrap();
        f.write_all(b"partial").unwrap();
        let name = f
            .temp_path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(is_temp_name(&name));
        assert_eq!(
            crate::debris::writer_of(&name).unwrap().0,
            std::process::id()
        );
        drop(f);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }
}
