//! Files bucket-pull restored itself, so a daily drill into the same
//! scratch file works every day without `--force`, while a database
//! anybody has written since stays protected.
//!
//! After a restore, a note in the state directory (`restored/`, one file
//! per target path) records the file's size and SHA-256 as installed. A
//! later restore may replace a non-empty target without `--force` only
//! when its bytes are still exactly those (hashed again, not judged by
//! size and times: the kernel's file times are coarse, so a write in the
//! same tick as the restore would leave them as they were) and its `-wal`
//! and `-journal` are absent or empty (SQLite in WAL mode writes the WAL,
//! not the main file, until a checkpoint). Replacing such a file loses
//! nothing: every byte of it is in the backup it came from.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sqlkeep_common::atomic::AtomicFile;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file as it was installed.
#[derive(Serialize, Deserialize, Debug)]
struct Note {
    path: String,
    size: u64,
    sha256: String,
}

/// The note's file for `target`: named by the SHA-256 of its absolute
/// path (the parent resolved, so `./x` and `/abs/x` are one target).
fn note_path(root: &Path, target: &Path) -> Option<PathBuf> {
    let absolute = absolute(target)?;
    let digest = sqlkeep_common::digest::sha256_hex(absolute.as_os_str().as_encoded_bytes());
    Some(
        root.join("restored")
            .join(format!("{}.json", &digest[..32])),
    )
}

fn absolute(target: &Path) -> Option<PathBuf> {
    let parent = sqlkeep_common::atomic::parent_dir(target)
        .canonicalize()
        .ok()?;
    Some(parent.join(target.file_name()?))
}

/// Records `target` as this restore left it: `bytes` and `sha256` of
/// the restored file. A note that cannot be written only costs the next
/// drill a refusal, so the caller warns and the restore stands.
pub fn remember(root: &Path, target: &Path, bytes: u64, sha256: &str) -> Result<()> {
    let (Some(path), Some(absolute)) = (note_path(root, target), absolute(target)) else {
        return Ok(());
    };
    let dir = path.parent().expect("a note has a directory");
    std::fs::create_dir_all(dir)?;
    let mut file = AtomicFile::create(&path, 0o600)?;
    file.write_all(&serde_json::to_vec(&Note {
        path: absolute.display().to_string(),
        size: bytes,
        sha256: sha256.to_string(),
    })?)?;
    file.commit()
}

/// True when `target` holds exactly the bytes bucket-pull restored there
/// and no WAL or journal beside it holds more (see the module comment).
pub fn untouched(root: &Path, target: &Path) -> bool {
    let Some(path) = note_path(root, target) else {
        return false;
    };
    let Ok(bytes) = std::fs::read(&path) else {
        return false;
    };
    // A note is ours, but read as any file is: anything unexpected in it
    // means "not known", which keeps the protection.
    let Ok(note) = serde_json::from_slice::<Note>(&bytes) else {
        return false;
    };
    let Ok(meta) = std::fs::symlink_metadata(target) else {
        return false;
    };
    if !meta.is_file()
        || meta.len() != note.size
        || absolute(target).is_none_or(|a| a.display().to_string() != note.path)
    {
        return false;
    }
    let companions_empty = ["-wal", "-journal"].iter().all(|suffix| {
        let companion = sqlkeep_common::sqlite::companion(target, suffix);
        std::fs::symlink_metadata(companion).map_or(true, |m| m.len() == 0)
    });
    companions_empty
        && sqlkeep_common::digest::file_digest(target).is_ok_and(|d| d.sha256 == note.sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remember_now(root: &Path, target: &Path) {
        let d = sqlkeep_common::digest::file_digest(target).unwrap();
        remember(root, target, d.bytes, &d.sha256).unwrap();
    }

    #[test]
    fn a_restored_file_is_known_until_its_bytes_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let target = dir.path().join("drill.sqlite3");
        std::fs::write(&target, b"restored bytes").unwrap();
        assert!(!untouched(&root, &target), "no note yet");
        remember_now(&root, &target);
        assert!(untouched(&root, &target));

        // A non-empty WAL beside it: frames not yet in the main file.
        let wal = sqlkeep_common::sqlite::companion(&target, "-wal");
        std::fs::write(&wal, b"frames").unwrap();
        assert!(!untouched(&root, &target));
        std::fs::write(&wal, b"").unwrap();
        assert!(untouched(&root, &target), "an empty WAL holds nothing");

        // A write in place that keeps the size, straight after the
        // restore (the same tick of the kernel's clock, as likely as not).
        std::fs::write(&target, b"RESTORED BYTES").unwrap();
        assert!(!untouched(&root, &target));

        // The same path reached another way is the same target.
        remember_now(&root, &target);
        let dotted = dir.path().join(".").join("drill.sqlite3");
        assert!(untouched(&root, &dotted));

        // A damaged note keeps the protection.
        let note = note_path(&root, &target).unwrap();
        std::fs::write(&note, b"{not json").unwrap();
        assert!(!untouched(&root, &target));
    }
}
