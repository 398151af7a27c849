//! Paths confined below a root: a validated [`Key`] mapped onto a local
//! directory without following a symbolic link on the way.
//!
//! A [`Key`] cannot climb out lexically; this module makes sure the file
//! system cannot redirect it either. Every directory between the root and
//! the file must be a real directory: a symbolic link there (issue 10: a
//! symlinked directory inside a local destination was followed on every
//! run) is an error for that entry, never a redirect. The root itself may
//! be a link; that is the operator's choice, made on the command line.
//!
//! The checks are `lstat` calls just before the operation, so a process
//! that can write inside the target and races us could still swap a
//! directory for a link in between; `docs/reliability.md` states this.

use crate::exit::{Exit, fail};
use crate::key::Key;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The path of `key` below `root`, after checking that every directory on
/// the way below the root is a real directory (or missing). Nothing is
/// created.
pub fn resolve(root: &Path, key: &Key) -> Result<PathBuf> {
    walk(root, key, false)
}

/// Like [`resolve`], creating the missing directories on the way (each
/// new entry fsynced into its parent, so it survives a power cut).
pub fn prepare(root: &Path, key: &Key) -> Result<PathBuf> {
    walk(root, key, true)
}

/// Checks (and with `create`, makes) the directories of `key` below root.
fn walk(root: &Path, key: &Key, create: bool) -> Result<PathBuf> {
    let segments: Vec<&str> = key.segments().collect();
    let (last, dirs) = segments.split_last().expect("a key has a segment");
    let mut path = root.to_path_buf();
    let mut made = false;
    for (i, dir) in dirs.iter().enumerate() {
        path.push(dir);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(fail(
                    Exit::Failed,
                    format!(
                        "{} is a symbolic link; refusing to follow it below {}",
                        path.display(),
                        root.display()
                    ),
                ));
            }
            // For a read, a file on the way means the object is not there.
            Ok(meta) if !create => {
                return Err(fail(
                    Exit::NotFound,
                    format!(
                        "no such object {}: {} is {}",
                        key.below(root).display(),
                        path.display(),
                        crate::regular::kind_name(&meta)
                    ),
                ));
            }
            Ok(meta) => {
                return Err(fail(
                    Exit::Failed,
                    format!(
                        "{} is {}, where a directory is needed",
                        path.display(),
                        crate::regular::kind_name(&meta)
                    ),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                match std::fs::create_dir(&path) {
                    Ok(()) => made = true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(crate::exit::io_error(&path, "cannot create directory", e));
                    }
                }
                // Another run may have made it a link in between.
                let meta = std::fs::symlink_metadata(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                if !meta.is_dir() {
                    return Err(fail(
                        Exit::Failed,
                        format!("{} is not a directory", path.display()),
                    ));
                }
                if made {
                    crate::atomic::sync_dir(&crate::atomic::parent_dir(&path))?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Nothing below a missing directory can be a link.
                path.extend(&dirs[i + 1..]);
                path.push(last);
                return Ok(path);
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    path.push(last);
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_on_the_way_are_refused() {
        let root = std::env::temp_dir().join(format!("sqlkeep-confine-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("real")).unwrap();
        let outside = root.with_extension("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::fs::write(root.join("file"), b"x").unwrap();

        let ok = prepare(&root, &Key::parse("real/a/b/c.bin").unwrap()).unwrap();
        assert_eq!(ok, root.join("real/a/b/c.bin"));
        assert!(root.join("real/a/b").is_dir());
        let err = prepare(&root, &Key::parse("link/x/y").unwrap()).unwrap_err();
        assert!(format!("{err}").contains("is a symbolic link"), "{err}");
        assert!(!outside.join("x").exists());
        let err = prepare(&root, &Key::parse("file/y").unwrap()).unwrap_err();
        assert!(
            format!("{err}").contains("where a directory is needed"),
            "{err}"
        );
        let err = resolve(&root, &Key::parse("file/y").unwrap()).unwrap_err();
        assert_eq!(crate::exit::exit_of(&err), Exit::NotFound);
        assert_eq!(
            resolve(&root, &Key::parse("missing/deeper/z").unwrap()).unwrap(),
            root.join("missing/deeper/z")
        );
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }
}
