//! Whether a database may be written, and whether there is room to
//! rebuild it.
//!
//! A file or directory without write permission bits is treated as
//! read-only whoever runs the tool, root included: `chmod a-w` is how an
//! operator says "do not touch", and root's ability to ignore it is no
//! reason to. SQLite's own verdict (a file on a read-only mount, a file the
//! user cannot write) is checked after opening.

use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why the database must not be written, if it must not.
pub fn read_only_reason(path: &Path) -> Result<Option<String>> {
    let meta = std::fs::metadata(path).context("reading file metadata")?;
    if meta.permissions().mode() & 0o222 == 0 {
        return Ok(Some("the file is read-only (no write permission)".into()));
    }
    let dir = sqlkeep_common::atomic::parent_dir(path);
    let dir_meta = std::fs::metadata(&dir).with_context(|| format!("reading {}", dir.display()))?;
    if dir_meta.permissions().mode() & 0o222 == 0 {
        return Ok(Some(format!(
            "its directory {} is read-only (SQLite must create its journal there)",
            dir.display()
        )));
    }
    Ok(None)
}

/// Free bytes for unprivileged writers on the file system holding `path`,
/// and that file system's device id.
pub fn free_space(path: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let stat = nix::sys::statvfs::statvfs(path)
        .map_err(std::io::Error::from)
        .with_context(|| format!("statvfs {}", path.display()))?;
    let device = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .dev();
    Ok((stat.blocks_available() * stat.fragment_size(), device))
}

/// The directory SQLite puts temporary files in: `SQLITE_TMPDIR`, then
/// `TMPDIR`, then `/var/tmp`, `/usr/tmp`, `/tmp` (the first that exists).
pub fn sqlite_temp_dir() -> std::path::PathBuf {
    for var in ["SQLITE_TMPDIR", "TMPDIR"] {
        if let Some(dir) = std::env::var_os(var).map(std::path::PathBuf::from)
            && dir.is_dir()
        {
            return dir;
        }
    }
    for dir in ["/var/tmp", "/usr/tmp", "/tmp"] {
        if Path::new(dir).is_dir() {
            return dir.into();
        }
    }
    ".".into()
}

/// Checks there is room for a VACUUM of a database of `bytes`: a temporary
/// copy in SQLite's temporary directory, and as much again for the journal
/// or WAL beside the database. Returns the shortfall message when there is
/// not.
pub fn rebuild_room(path: &Path, bytes: u64) -> Result<Option<String>> {
    let dir = sqlkeep_common::atomic::parent_dir(path);
    let (beside, beside_dev) = free_space(&dir)?;
    let temp = sqlite_temp_dir();
    let (in_temp, temp_dev) = free_space(&temp)?;
    let needed_beside = if beside_dev == temp_dev {
        2 * bytes
    } else {
        bytes
    };
    let human = sqlkeep_common::units::human_bytes;
    if beside < needed_beside {
        return Ok(Some(format!(
            "not enough free disk for the rebuild: {} free in {}, about {} needed",
            human(beside),
            dir.display(),
            human(needed_beside)
        )));
    }
    if beside_dev != temp_dev && in_temp < bytes {
        return Ok(Some(format!(
            "not enough free disk for the rebuild: {} free in {} (SQLite's temporary directory), about {} needed",
            human(in_temp),
            temp.display(),
            human(bytes)
        )));
    }
    Ok(None)
}

/// A Litestream metadata directory beside the database, if one exists.
pub fn litestream_dir(path: &Path) -> Option<std::path::PathBuf> {
    let dir = sqlkeep_common::atomic::parent_dir(path);
    let name = path.file_name()?.to_string_lossy().into_owned();
    [format!(".{name}-litestream"), format!("{name}-litestream")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_dir())
}
