//! Restoring one object into a file without ever leaving a half-written
//! or unchecked database in place.
//!
//! The object streams through SHA-256 (as stored), zstd, SHA-256 (raw)
//! into a temporary file beside the target. Only when both digests match
//! the manifest is the file fsynced and renamed over the target. Stale
//! `-wal`/`-shm` files are removed just before the rename: an old WAL
//! replayed onto a new database would corrupt it.

use crate::source::Plan;
use anyhow::{Context, Result};
use sqlkeep_common::atomic::AtomicFile;
use sqlkeep_common::compress::write_decoder;
use sqlkeep_common::digest::{Digest, HashWriter};
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::log::Log;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A new database is readable by its owner only.
const NEW_FILE_MODE: u32 = 0o600;

/// What to do about the target file.
pub enum Decision {
    /// Restore, creating the file with this mode.
    Restore {
        /// The file mode to use (kept from a replaced file).
        mode: u32,
        /// True when a non-empty file will be replaced.
        replaces: bool,
    },
    /// Leave the present database alone (`--if-missing`).
    Skip,
}

/// Decides whether `target` may be written: absent or empty files always,
/// a non-empty file only with `force`, never with `if_missing`.
pub fn decide(target: &Path, force: bool, if_missing: bool) -> Result<Decision> {
    let meta = match std::fs::metadata(target) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Decision::Restore {
                mode: NEW_FILE_MODE,
                replaces: false,
            });
        }
        Err(e) => {
            return Err(e).with_context(|| format!("{}: cannot inspect target", target.display()));
        }
    };
    if meta.is_dir() {
        return Err(fail(
            Exit::Usage,
            format!("{} is a directory", target.display()),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if meta.len() == 0 {
        return Ok(Decision::Restore {
            mode,
            replaces: false,
        });
    }
    if if_missing {
        return Ok(Decision::Skip);
    }
    if !force {
        return Err(fail(
            Exit::Refused,
            format!(
                "{} exists and is not empty; refusing to replace it without --force (stop the application first)",
                target.display()
            ),
        ));
    }
    Ok(Decision::Restore {
        mode,
        replaces: true,
    })
}

/// The digests of what was restored.
pub struct Restored {
    /// Of the object as stored.
    pub stored: Digest,
    /// Of the restored file.
    pub raw: Digest,
}

/// Downloads, checks and installs the object at `target`.
pub fn restore(plan: &Plan, target: &Path, mode: u32, log: &Log) -> Result<Restored> {
    let dir = sqlkeep_common::atomic::parent_dir(target);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = AtomicFile::create(target, mode)?;
    let raw = HashWriter::new(BufWriter::with_capacity(1 << 20, file));
    let (out, stored, raw) = if plan.compressed() {
        let mut stored = HashWriter::new(Damaged(write_decoder(raw)?));
        plan.store.get(&plan.key, &mut stored)?;
        let (Damaged(decoder), stored_digest) = stored.finish();
        check(plan, "sha256", "bytes", &stored_digest)?;
        let raw = decoder
            .finish()
            .map_err(|e| fail(Exit::Failed, format!("damaged snapshot: zstd says {e}")))?;
        let (out, raw_digest) = raw.finish();
        (out, stored_digest, raw_digest)
    } else {
        let mut raw = raw;
        plan.store.get(&plan.key, &mut raw)?;
        let (out, digest) = raw.finish();
        check(plan, "sha256", "bytes", &digest)?;
        (out, digest.clone(), digest)
    };
    check(plan, "raw_sha256", "raw_bytes", &raw)?;
    let mut file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing restored file")?;
    file.flush().context("writing restored file")?;
    remove_stale_companions(target, log)?;
    file.commit()?;
    Ok(Restored { stored, raw })
}

/// Labels the decompressor's errors, so a corrupt object reads "damaged
/// snapshot" (exit 1) and is not mistaken for a storage or network fault.
struct Damaged<W>(W);

impl<W: Write> Write for Damaged<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(label_damaged)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(label_damaged)
    }
}

/// Rewords a zstd error as a damaged snapshot.
fn label_damaged(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("damaged snapshot: zstd says {e}"),
    )
}

/// Compares a digest with the manifest's fields, when it has them.
fn check(plan: &Plan, sha_field: &str, bytes_field: &str, digest: &Digest) -> Result<()> {
    let Some(manifest) = &plan.manifest else {
        return Ok(());
    };
    if let Some(expected) = manifest.u64(bytes_field)
        && expected != digest.bytes
    {
        return Err(fail(
            Exit::Failed,
            format!(
                "damaged snapshot: {} bytes where the manifest says {expected} ({bytes_field})",
                digest.bytes
            ),
        ));
    }
    if let Some(expected) = manifest.str(sha_field)
        && expected != digest.sha256
    {
        return Err(fail(
            Exit::Failed,
            format!(
                "damaged snapshot: {sha_field} is {} but the manifest says {expected}",
                digest.sha256
            ),
        ));
    }
    Ok(())
}

/// Removes `-wal`, `-shm` and `-journal` files beside the target: they
/// belong to the database being replaced, and SQLite would apply them to
/// the restored one.
fn remove_stale_companions(target: &Path, log: &Log) -> Result<()> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = target.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match std::fs::remove_file(&path) {
            Ok(()) => log.info(
                &path.display().to_string(),
                "removed stale file of the replaced database",
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove stale {}", path.display()));
            }
        }
    }
    Ok(())
}
