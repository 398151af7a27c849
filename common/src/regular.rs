//! Only regular files: inputs and targets that are FIFOs, devices, sockets
//! or directories are refused at once, by name.
//!
//! Issue 10 found `bucket-push REMOTE /dev/zero` writing a 6 GB temporary
//! file, `sqlite-verify FIFO` hanging forever, and `-o /dev/null --force`
//! replacing the host's `/dev/null`. An input is checked before it is
//! opened and opened without blocking (a FIFO swapped in after the check
//! cannot hang the open), then checked again on the open descriptor, so
//! what is read is the regular file that was checked.

use crate::exit::{Exit, fail};
use anyhow::{Context, Result};
use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What kind of file a metadata describes, in words for an error.
pub fn kind_name(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// The refusal for an input that is not a regular file (exit 1).
fn not_regular(path: &Path, meta: &Metadata) -> anyhow::Error {
    fail(
        Exit::Failed,
        format!(
            "{} is {}, not a regular file",
            path.display(),
            kind_name(meta)
        ),
    )
}

/// Checks that `path` (following symbolic links) is a regular file; a
/// missing file is "not found" (exit 3), anything else not regular exit 1.
pub fn check_regular(path: &Path) -> Result<Metadata> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(
                Exit::NotFound,
                format!("{}: no such file", path.display()),
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    Ok(meta)
}

/// Opens an input for reading, refusing anything but a regular file
/// without ever blocking on it. Returns the file and its size.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    check_regular(path)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                fail(Exit::NotFound, format!("{}: no such file", path.display()))
            }
            _ => anyhow::Error::new(e).context(format!("cannot open {}", path.display())),
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    Ok((file, meta.len()))
}

/// Checks a target about to be replaced: absent (None) or a regular file
/// (its metadata). Anything else is refused for safety (exit 5), whatever
/// flags were given: a device or FIFO is never "empty" and never ours.
pub fn check_target(path: &Path) -> Result<Option<Metadata>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(meta)),
        Ok(meta) => Err(fail(
            Exit::Refused,
            format!(
                "{} is {}, not a regular file; refusing to replace it",
                path.display(),
                kind_name(&meta)
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}: cannot inspect target", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused() {
        let err = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            format!("{err}"),
            "/dev/zero is a character device, not a regular file"
        );
        assert_eq!(crate::exit::exit_of(&err), Exit::Failed);
        let err = open_regular(Path::new("/")).unwrap_err();
        assert!(format!("{err}").contains("is a directory"), "{err}");
        let err = open_regular(Path::new("/nonexistent/x")).unwrap_err();
        assert_eq!(crate::exit::exit_of(&err), Exit::NotFound);
        let err = check_target(Path::new("/dev/null")).unwrap_err();
        assert_eq!(crate::exit::exit_of(&err), Exit::Refused);
        assert!(check_target(Path::new("/nonexistent/x")).unwrap().is_none());
    }

    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let dir = std::env::temp_dir().join(format!("sqlkeep-regular-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = open_regular(&fifo).unwrap_err();
        assert!(format!("{err}").ends_with("is a FIFO, not a regular file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
