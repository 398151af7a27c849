//! Restoring one object into a file without ever losing the database it
//! replaces, and without leaving a half-written or unchecked file in place.
//!
//! 1. The object streams through SHA-256 (as stored), zstd and SHA-256
//!    (raw) into a temporary file beside the target; both digests must
//!    match the manifest, and the file is fsynced.
//! 2. The database being replaced is *settled*: opened once with SQLite,
//!    which rolls back a hot journal, and checkpointed into its main file
//!    (`wal_checkpoint(TRUNCATE)`), so that every committed row is in the
//!    main file and its `-wal` holds nothing.
//! 3. Its `-wal`, `-shm` and `-journal` are moved aside (renamed, not
//!    deleted) — SQLite would apply an old WAL to the new database.
//! 4. The new file is renamed into place and the directory fsynced.
//! 5. What was moved aside is removed; if anything failed before the
//!    rename, it is put back.
//!
//! Issue 10 found the old order (companions deleted, then the new file
//! synced and renamed) losing every row that lived only in the WAL when a
//! kill fell in between. A kill now leaves either the old database with
//! every committed row (its main file alone holds them after step 2) or the
//! restored one. Files moved aside carry the old database's inode in their
//! name, so the next restore to the same target puts them back if the
//! rename never happened, and removes them if it did.

use crate::rebuild;
use anyhow::{Context, Result};
use sqlkeep_common::atomic::{AtomicFile, parent_dir};
use sqlkeep_common::compress::write_decoder;
use sqlkeep_common::crypt::{Identities, decrypt_while};
use sqlkeep_common::debris::{changed_at, writer_gone};
use sqlkeep_common::digest::{Digest, HashWriter};
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::log::Log;
use sqlkeep_common::repo::{Compression, Located, Restorable};
use sqlkeep_common::sqlite::companion;
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A new database is readable by its owner only.
pub const NEW_FILE_MODE: u32 = 0o600;

/// The files SQLite keeps beside a database.
const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Marks a companion moved aside during a restore.
const ASIDE_SUFFIX: &str = ".sqlkeep-aside";

/// Who the restored file belongs to, and its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The file mode.
    pub mode: u32,
    /// Owner and group: the replaced file's, else the directory's.
    pub owner: (u32, u32),
    /// True when the owner was asked for (`--owner`): failing to give the
    /// file to it is an error, not something to pass over.
    pub insist: bool,
}

impl Access {
    /// Gives `file` its owner and group where that is needed and allowed
    /// (only root can give a file away): the file must end up where the
    /// application can open it (a restore run as root into
    /// `/rails/storage` must not leave a root-owned 0600 database).
    pub fn apply(&self, file: &std::fs::File, shown: &Path) -> Result<()> {
        let meta = file.metadata()?;
        if (meta.uid(), meta.gid()) == self.owner {
            return Ok(());
        }
        match std::os::unix::fs::fchown(file, Some(self.owner.0), Some(self.owner.1)) {
            Ok(()) => {}
            // Not root: the file stays ours, as cp would leave it.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && !self.insist => {
                return Ok(());
            }
            Err(e) => {
                return Err(fail(
                    Exit::Usage,
                    format!(
                        "{}: cannot give the file to {}:{} ({e})",
                        shown.display(),
                        self.owner.0,
                        self.owner.1
                    ),
                ));
            }
        }
        // chown clears set-id bits; the mode is set again after it.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(self.mode))?;
        Ok(())
    }
}

/// What to do about the target file.
pub enum Decision {
    /// Restore, creating the file with this owner and mode.
    Restore {
        /// Owner, group and mode (kept from a replaced file).
        access: Access,
        /// True when a non-empty file will be replaced.
        replaces: bool,
    },
    /// Leave the present database alone (`--if-missing`).
    Skip,
}

/// The flags that decide whether a target may be replaced.
#[derive(Debug, Clone, Copy)]
pub struct Permission {
    /// Replace existing content.
    pub force: bool,
    /// Restore only into an absent or empty target.
    pub if_missing: bool,
    /// Replace even a file another process has open.
    pub even_if_open: bool,
}

/// Decides whether `target` may be written: absent or empty files always,
/// a non-empty file only with `force` or when it is an unchanged restore
/// of ours (a drill's scratch file, [`crate::own`], noted under
/// `state_root`), never with `if_missing`; never a file that is not a
/// regular file, and never one another process has open unless
/// `even_if_open`.
pub fn decide(target: &Path, allow: Permission, state_root: &Path) -> Result<Decision> {
    let Some(meta) = sqlkeep_common::regular::check_target(target)? else {
        let dir = parent_dir(target);
        let dir_meta =
            std::fs::metadata(&dir).with_context(|| format!("reading {}", dir.display()))?;
        return Ok(Decision::Restore {
            access: Access {
                mode: NEW_FILE_MODE,
                owner: (dir_meta.uid(), dir_meta.gid()),
                insist: false,
            },
            replaces: false,
        });
    };
    let access = Access {
        mode: meta.mode() & 0o7777,
        owner: (meta.uid(), meta.gid()),
        insist: false,
    };
    let empty = meta.len() == 0;
    if !empty && allow.if_missing {
        return Ok(Decision::Skip);
    }
    if !empty && !allow.force && !crate::own::untouched(state_root, target) {
        return Err(fail(
            Exit::Refused,
            format!(
                "{} exists and is not empty; refusing to replace it without --force (it is not a file bucket-pull restored and nothing changed since; if it is an application's database, stop the application first)",
                target.display()
            ),
        ));
    }
    if !allow.even_if_open
        && let Some(who) = sqlkeep_common::open_files::holder(target)
    {
        return Err(fail(
            Exit::Refused,
            format!(
                "{} is in use: {who}; its writes would go on into the replaced file and be lost. Stop the application first (or pass --even-if-open)",
                target.display()
            ),
        ));
    }
    Ok(Decision::Restore {
        access,
        replaces: !empty,
    })
}

/// The digests of what was restored.
pub struct Restored {
    /// Of the object as stored.
    pub stored: Digest,
    /// Of the restored file.
    pub raw: Digest,
}

/// What the manifest promises about the object, when there is one.
pub struct Expected {
    /// Stored size and SHA-256.
    pub stored: Option<(u64, String)>,
    /// Raw size and SHA-256.
    pub raw: Option<(u64, String)>,
    /// Whether the object is zstd-compressed.
    pub compressed: bool,
    /// For an age file: the recipients it was encrypted to (for the
    /// message when no identity given matches; empty when unknown).
    pub encrypted_to: Option<Vec<String>>,
}

impl Expected {
    fn of(located: &Located) -> Expected {
        match &located.what {
            Restorable::Snapshot { manifest, .. } => Expected {
                stored: Some((manifest.bytes, manifest.sha256.clone())),
                raw: Some((manifest.raw_bytes, manifest.raw_sha256.clone())),
                compressed: manifest.compression == Compression::Zstd,
                encrypted_to: manifest.encryption.as_ref().map(|e| e.recipients.clone()),
            },
            Restorable::File { manifest, .. } => Expected {
                stored: Some((manifest.bytes, manifest.sha256.clone())),
                raw: None,
                compressed: false,
                encrypted_to: None,
            },
            Restorable::Unchecked {
                compressed,
                encrypted,
                ..
            } => Expected {
                stored: None,
                raw: None,
                compressed: *compressed,
                encrypted_to: encrypted.then(Vec::new),
            },
        }
    }
}

/// Downloads, checks and installs the object at `target`: for a point
/// of an incremental chain, its full snapshot and every delta after it,
/// rebuilt and checked against the point's `raw_sha256` (see [`rebuild`]).
pub fn restore(
    located: &Located,
    target: &Path,
    access: Access,
    ids: &Identities,
    log: &Log,
) -> Result<Restored> {
    let expected = Expected::of(located);
    if let Some(to) = &expected.encrypted_to
        && ids.is_empty()
    {
        // Before a byte is downloaded or a file created.
        return Err(no_identity(&located.url(), to));
    }
    recover_aside(target, log);
    let mut file = AtomicFile::create(target, access.mode)?;
    access.apply(file.file(), target)?;
    let restored = match &located.what {
        Restorable::Snapshot { db, manifest, .. } if manifest.chain.len() > 1 => {
            let links = located.repo.chain_of(db, manifest)?;
            let raw = rebuild::rebuild(
                located.repo.store(),
                &links,
                &mut file,
                ids,
                expected.encrypted_to.as_deref(),
            )?;
            check(
                "raw_sha256",
                "raw_bytes",
                Some(&(manifest.raw_bytes, manifest.raw_sha256.clone())),
                &raw,
            )?;
            let stored = links.iter().map(|(_, l)| l.bytes).sum::<u64>();
            Restored {
                stored: Digest {
                    sha256: manifest.sha256.clone(),
                    bytes: stored,
                },
                raw,
            }
        }
        _ => {
            let restored = download(
                located.repo.store(),
                located.object(),
                &expected,
                &mut file,
                ids,
            )?;
            check(
                "raw_sha256",
                "raw_bytes",
                expected.raw.as_ref(),
                &restored.raw,
            )?;
            restored
        }
    };
    file.sync()?;
    install(file, target, log)?;
    Ok(restored)
}

/// The one line for an encrypted object and no identity given.
pub fn no_identity(what: &str, to: &[String]) -> anyhow::Error {
    fail(
        Exit::Usage,
        format!(
            "{what} is encrypted{}; give --identity FILE (or {}), or --passphrase-file",
            if to.is_empty() {
                String::new()
            } else {
                format!(" to {}", to.join(", "))
            },
            sqlkeep_common::crypt::args::IDENTITY_FILE_ENV
        ),
    )
}

/// Streams one object into `file` through SHA-256 (as stored), age when
/// encrypted, zstd when compressed and SHA-256 (raw), checking the stored
/// digest.
pub fn download(
    store: &dyn sqlkeep_common::store::Store,
    object: &sqlkeep_common::key::Key,
    expected: &Expected,
    file: &mut AtomicFile,
    ids: &Identities,
) -> Result<Restored> {
    let sink_failed = Arc::new(AtomicBool::new(false));
    let out = Watched {
        inner: BufWriter::with_capacity(1 << 20, file),
        failed: Arc::clone(&sink_failed),
    };
    let raw = HashWriter::new(out);
    let (stored, raw) = if let Some(to) = &expected.encrypted_to {
        if !expected.compressed {
            return Err(fail(
                Exit::Failed,
                format!(
                    "{}: an encrypted object must be compressed",
                    store.url(object)
                ),
            ));
        }
        let mut plain = Damaged {
            inner: write_decoder(raw)?,
            sink_failed: Arc::clone(&sink_failed),
        };
        let what = store.url(object);
        let stored_digest = decrypt_while(ids, to, &what, &mut plain, |w| {
            let mut stored = HashWriter::new(w);
            store.get(object, &mut stored)?;
            let (_, digest) = stored.finish();
            check("sha256", "bytes", expected.stored.as_ref(), &digest)?;
            Ok(digest)
        })?;
        let raw = plain
            .inner
            .finish()
            .map_err(|e| damaged_or_sink(e, &sink_failed))?;
        let (out, raw_digest) = raw.finish();
        finish_writing(out)?;
        (stored_digest, raw_digest)
    } else if expected.compressed {
        let mut stored = HashWriter::new(Damaged {
            inner: write_decoder(raw)?,
            sink_failed: Arc::clone(&sink_failed),
        });
        store.get(object, &mut stored)?;
        let (damaged, stored_digest) = stored.finish();
        check("sha256", "bytes", expected.stored.as_ref(), &stored_digest)?;
        let raw = damaged
            .inner
            .finish()
            .map_err(|e| damaged_or_sink(e, &sink_failed))?;
        let (out, raw_digest) = raw.finish();
        finish_writing(out)?;
        (stored_digest, raw_digest)
    } else {
        let mut raw = raw;
        store.get(object, &mut raw)?;
        let (out, digest) = raw.finish();
        check("sha256", "bytes", expected.stored.as_ref(), &digest)?;
        finish_writing(out)?;
        (digest.clone(), digest)
    };
    Ok(Restored { stored, raw })
}

/// Flushes the buffered writer into the temporary file.
fn finish_writing<W: Write>(out: Watched<BufWriter<W>>) -> Result<()> {
    out.inner
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing restored file")?;
    Ok(())
}

/// Steps 2 to 5 of the module comment, for a checked and synced file.
fn install(file: AtomicFile, target: &Path, log: &Log) -> Result<()> {
    settle(target, log);
    let aside = move_aside(target)?;
    match file.rename_into_place() {
        Ok(()) => {
            for (_, moved) in &aside {
                let _ = std::fs::remove_file(moved);
            }
            if !aside.is_empty() {
                log.info(
                    &target.display().to_string(),
                    "removed the replaced database's -wal/-shm/-journal",
                );
            }
            Ok(())
        }
        Err(e) => {
            put_back(&aside);
            Err(e)
        }
    }
}

/// Opens the database about to be replaced once, so SQLite rolls back a
/// hot journal and its WAL is checkpointed into the main file. Best
/// effort: a file SQLite cannot open (damaged, not a database, read-only)
/// is left as it is, and its companions are still moved aside, not lost.
fn settle(target: &Path, log: &Log) {
    if !target.exists() {
        return;
    }
    let result = (|| -> rusqlite::Result<()> {
        let conn = rusqlite::Connection::open_with_flags(
            target,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            if busy != 0 {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some("the checkpoint could not complete".into()),
                ));
            }
        }
        conn.close().map_err(|(_, e)| e)
    })();
    if let Err(e) = result {
        log.info(
            &target.display().to_string(),
            &format!("the replaced file could not be checkpointed first ({e}); its companions are moved aside"),
        );
    }
}

/// The name a companion takes while moved aside: hidden, with the old
/// database's inode and our writer tag, so [`recover_aside`] can tell
/// whether the rename that followed ever happened.
fn aside_name(companion: &Path, ino: u64, sequence: u64) -> PathBuf {
    let name = companion
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(companion).join(format!(
        ".{name}.{ino}.{}{ASIDE_SUFFIX}",
        sqlkeep_common::debris::writer_tag(sequence)
    ))
}

/// Renames the target's companions aside; returns (original, aside) pairs.
/// On a failure part-way, what was moved is put back.
fn move_aside(target: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let ino = std::fs::metadata(target).map(|m| m.ino()).unwrap_or(0);
    let mut moved = Vec::new();
    for (i, suffix) in COMPANIONS.iter().enumerate() {
        let companion = companion(target, suffix);
        if std::fs::symlink_metadata(&companion).is_err() {
            continue;
        }
        let aside = aside_name(&companion, ino, i as u64);
        if let Err(e) = std::fs::rename(&companion, &aside) {
            put_back(&moved);
            return Err(e).with_context(|| format!("cannot move {} aside", companion.display()));
        }
        moved.push((companion, aside));
    }
    if !moved.is_empty() {
        sqlkeep_common::atomic::sync_dir(&parent_dir(target))?;
    }
    Ok(moved)
}

/// Puts moved-aside companions back where they were.
fn put_back(moved: &[(PathBuf, PathBuf)]) {
    for (original, aside) in moved {
        let _ = std::fs::rename(aside, original);
    }
    if let Some((original, _)) = moved.first() {
        let _ = sqlkeep_common::atomic::sync_dir(&parent_dir(original));
    }
}

/// Finishes what a killed restore to `target` left: companions moved
/// aside by a dead writer go back if the database they belong to is still
/// there (same inode) and nothing has taken their place, and are removed
/// otherwise.
pub fn recover_aside(target: &Path, log: &Log) {
    let dir = parent_dir(target);
    let Some(base) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let current_ino = std::fs::metadata(target).map(|m| m.ino()).ok();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(ASIDE_SUFFIX) else {
            continue;
        };
        let Some(rest) = COMPANIONS
            .iter()
            .find_map(|s| stem.strip_prefix(&format!(".{base}{s}.")).map(|r| (s, r)))
        else {
            continue;
        };
        let (suffix, tail) = rest;
        let Some((ino, tag)) = tail.split_once('.') else {
            continue;
        };
        // A restore still running (or one of another host, less than a
        // day old) owns its files; a dead one's are finished here.
        let gone = entry
            .metadata()
            .is_ok_and(|meta| writer_gone(tag, changed_at(&meta)));
        if !gone {
            continue;
        }
        let original = companion(target, suffix);
        let same_db = ino.parse::<u64>().ok() == current_ino;
        if same_db && std::fs::symlink_metadata(&original).is_err() {
            if std::fs::rename(entry.path(), &original).is_ok() {
                log.warn(
                    &original.display().to_string(),
                    "put back: an interrupted restore had moved it aside",
                );
            }
        } else {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The file side of the restore pipeline: remembers that it failed, so an
/// error surfacing through the decompressor is reported as what it is (a
/// full disk), not as a damaged snapshot.
struct Watched<W> {
    inner: W,
    failed: Arc<AtomicBool>,
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|_| {
            self.failed.store(true, Ordering::Relaxed);
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|_| {
            self.failed.store(true, Ordering::Relaxed);
        })
    }
}

/// Labels the decompressor's own errors, so a corrupt object reads
/// "damaged snapshot" (exit 1) and is not mistaken for a storage or
/// network fault; errors of the file below pass through as they are.
struct Damaged<W> {
    inner: W,
    sink_failed: Arc<AtomicBool>,
}

impl<W: Write> Write for Damaged<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let sink_failed = &self.sink_failed;
        self.inner.write(buf).map_err(|e| relabel(e, sink_failed))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let sink_failed = &self.sink_failed;
        self.inner.flush().map_err(|e| relabel(e, sink_failed))
    }
}

/// A decompressor error as "damaged snapshot", unless the file failed.
fn relabel(e: std::io::Error, sink_failed: &AtomicBool) -> std::io::Error {
    if sink_failed.load(Ordering::Relaxed) {
        return e;
    }
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("damaged snapshot: zstd says {e}"),
    )
}

/// The error of finishing decompression, worded by who failed.
fn damaged_or_sink(e: std::io::Error, sink_failed: &AtomicBool) -> anyhow::Error {
    if sink_failed.load(Ordering::Relaxed) {
        return anyhow::Error::new(e).context("writing restored file");
    }
    fail(Exit::Failed, format!("damaged snapshot: zstd says {e}"))
}

/// Compares a digest with what the manifest says, when there is one.
pub fn check(
    sha_field: &str,
    bytes_field: &str,
    expected: Option<&(u64, String)>,
    digest: &Digest,
) -> Result<()> {
    let Some((bytes, sha256)) = expected else {
        return Ok(());
    };
    if *bytes != digest.bytes {
        return Err(fail(
            Exit::Failed,
            format!(
                "damaged snapshot: {} bytes where the manifest says {bytes} ({bytes_field})",
                digest.bytes
            ),
        ));
    }
    if *sha256 != digest.sha256 {
        return Err(fail(
            Exit::Failed,
            format!(
                "damaged snapshot: {sha_field} is {} but the manifest says {sha256}",
                digest.sha256
            ),
        ));
    }
    Ok(())
}
