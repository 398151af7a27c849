//! The state of one side of a sync: relative path → size, modification
//! time, SHA-256. Built by walking a directory, from a manifest, or from a
//! listing; written as the manifest.
//!
//! Paths are [`Key`]s: a manifest entry or listed key that could reach
//! outside the destination (`../pwn.txt`, `ab/../../x`, `/etc/x`) fails the
//! whole run before anything is written or deleted (issue 10), and a local
//! file whose name cannot be a key (a backslash, a control character) is
//! skipped with a warning.
//!
//! An encrypted destination's manifest says so at its top
//! (`"encryption": {"format": "age", "recipients": [...]}`) and keeps, per
//! entry, `bytes` and `sha256` of the *plaintext* — so comparing it with a
//! source needs no decryption — and `stored_bytes` and `stored_sha256` of
//! the age file actually stored under the same key.

use crate::filter::Filter;
use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use sqlkeep_common::atomic::is_temp_name;
use sqlkeep_common::crypt::Encryption;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::key::Key;
use sqlkeep_common::time::Timestamp;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The manifest's name in a destination.
pub const MANIFEST: &str = ".sqlkeep-sync.json";

/// The manifest's key.
pub fn manifest_key() -> Key {
    Key::segment(MANIFEST).expect("the manifest name is a key")
}

/// One file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Size in bytes.
    pub bytes: u64,
    /// Modification time, nanoseconds since the epoch (None from a listing).
    pub mtime_ns: Option<i64>,
    /// SHA-256, when known.
    pub sha256: Option<String>,
    /// What is stored when it is not the file itself (an age file): None
    /// in a plaintext tree, and for a stored file the manifest does not
    /// vouch for.
    pub stored: Option<Stored>,
}

/// The bytes stored for an encrypted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Size of the age file.
    pub bytes: u64,
    /// Its SHA-256.
    pub sha256: String,
}

/// A manifest read back: the files, and whom they are encrypted to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// The files.
    pub tree: Tree,
    /// None for a plaintext tree.
    pub encryption: Option<Encryption>,
}

/// Files by relative path, in order.
pub type Tree = BTreeMap<Key, Entry>;

/// A walk of a local directory.
pub struct Walk {
    /// The files that pass the filter.
    pub tree: Tree,
    /// Files the filter left out.
    pub skipped: u64,
    /// Symbolic links not followed.
    pub links: u64,
    /// Paths that could not be used (unreadable, not UTF-8, not a safe
    /// name, a link), with why.
    pub problems: Vec<String>,
}

/// Walks `root`, stat-ing (not reading) every regular file; our own
/// manifest and temporary files are never part of a tree. Symbolic links
/// are skipped and counted unless `follow_links` (`--copy-links`).
pub fn walk(root: &Path, filter: &Filter, follow_links: bool) -> Result<Walk> {
    let mut out = Walk {
        tree: Tree::new(),
        skipped: 0,
        links: 0,
        problems: Vec::new(),
    };
    for entry in walkdir::WalkDir::new(root)
        .follow_links(follow_links)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                out.problems.push(format!("{e}"));
                continue;
            }
        };
        if entry.path_is_symlink() && !follow_links && entry.depth() > 0 {
            out.links += 1;
            out.problems.push(format!(
                "{}: a symbolic link, skipped (--copy-links copies what it points to)",
                entry.path().display()
            ));
            continue;
        }
        if !entry.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        if is_temp_name(&name) || name.ends_with(".scratch") {
            continue;
        }
        let Some(rel) = relative(root, entry.path()) else {
            out.problems.push(format!(
                "{}: name is not UTF-8, skipped",
                entry.path().display()
            ));
            continue;
        };
        if rel == MANIFEST {
            continue;
        }
        let key = match Key::parse(&rel) {
            Ok(key) => key,
            Err(e) => {
                out.problems
                    .push(format!("{}: {e}, skipped", entry.path().display()));
                continue;
            }
        };
        if !filter.allows(&rel) {
            out.skipped += 1;
            continue;
        }
        match entry.metadata() {
            Ok(meta) => {
                out.tree.insert(
                    key,
                    Entry {
                        bytes: meta.len(),
                        mtime_ns: meta.modified().ok().map(nanos),
                        sha256: None,
                        stored: None,
                    },
                );
            }
            Err(e) => out
                .problems
                .push(format!("{}: {e}", entry.path().display())),
        }
    }
    Ok(out)
}

/// `path` relative to `root` with `/` separators, if it is valid UTF-8.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

/// A time as nanoseconds since the epoch.
pub fn nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

/// A nanosecond timestamp as a time.
pub fn from_nanos(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - std::time::Duration::from_nanos(ns.unsigned_abs())
    }
}

/// The manifest text for a tree; `encryption` when its files are stored
/// encrypted (every entry then says what is stored).
pub fn manifest_json(tree: &Tree, source: &str, encryption: Option<&Encryption>) -> String {
    let mut files = Map::new();
    for (path, e) in tree {
        let mut entry = json!({"bytes": e.bytes, "mtime_ns": e.mtime_ns, "sha256": e.sha256});
        if let Some(stored) = &e.stored {
            entry["stored_bytes"] = json!(stored.bytes);
            entry["stored_sha256"] = json!(stored.sha256);
        }
        files.insert(path.to_string(), entry);
    }
    let mut value = json!({
        "type": "sync_manifest",
        "version": 1,
        "written_at": Timestamp::now().rfc3339(),
        "source": source,
        "files": files,
    });
    if let Some(encryption) = encryption {
        value["encryption"] = encryption.to_value();
    }
    value.to_string() + "\n"
}

/// Reads a manifest back. Every entry is checked: a path that is not a
/// safe key, an entry without a size, or (in an encrypted manifest) one
/// without its plaintext and stored checksums fails the whole manifest
/// (exit 1, naming the entry), before anything acts on it. The recipients
/// are checked too: they end up in messages.
pub fn parse_manifest(text: &[u8], what: &str) -> Result<Manifest> {
    let value: Value = serde_json::from_slice(text)
        .map_err(|e| fail(Exit::Failed, format!("{what}: bad manifest: {e}")))?;
    if value["version"] != 1 {
        return Err(fail(
            Exit::Failed,
            format!("{what}: unknown manifest version {}", value["version"]),
        ));
    }
    let encryption = match value.get("encryption") {
        None | Some(Value::Null) => None,
        Some(e) => Some(Encryption::from_value(e).with_context(|| format!("{what}: manifest"))?),
    };
    let files = value["files"]
        .as_object()
        .ok_or_else(|| fail(Exit::Failed, format!("{what}: manifest has no files")))?;
    let mut tree = Tree::new();
    for (path, e) in files {
        let key = Key::parse(path)
            .with_context(|| format!("{what}: refusing the manifest's entry {path:?}"))?;
        let bad = |field: &str| {
            fail(
                Exit::Failed,
                format!("{what}: entry {path:?} has a bad {field}"),
            )
        };
        let sha = |field: &str| match &e[field] {
            Value::Null => Ok(None),
            Value::String(s) if sqlkeep_common::digest::is_sha256_hex(s) => Ok(Some(s.clone())),
            _ => Err(bad(field)),
        };
        let bytes = e["bytes"].as_u64().ok_or_else(|| bad("bytes"))?;
        let mtime_ns = match &e["mtime_ns"] {
            Value::Null => None,
            v => Some(v.as_i64().ok_or_else(|| bad("mtime_ns"))?),
        };
        let sha256 = sha("sha256")?;
        let stored_bytes = match &e["stored_bytes"] {
            Value::Null => None,
            v => Some(v.as_u64().ok_or_else(|| bad("stored_bytes"))?),
        };
        let stored = match (stored_bytes, sha("stored_sha256")?) {
            (None, None) => None,
            (Some(bytes), Some(sha256)) => Some(Stored { bytes, sha256 }),
            (None, Some(_)) => return Err(bad("stored_bytes")),
            (Some(_), None) => return Err(bad("stored_sha256")),
        };
        // Encrypted entries must be fully described, so a restore can
        // check both the stored file and what it decrypts to; a plaintext
        // tree has nothing stored but the file.
        match (&encryption, &stored) {
            (Some(_), None) => return Err(bad("stored_sha256 (the manifest is encrypted)")),
            (Some(_), Some(_)) if sha256.is_none() => {
                return Err(bad("sha256 (the manifest is encrypted)"));
            }
            (None, Some(_)) => return Err(bad("stored_sha256 (the manifest is not encrypted)")),
            _ => {}
        }
        tree.insert(
            key,
            Entry {
                bytes,
                mtime_ns,
                sha256,
                stored,
            },
        );
    }
    Ok(Manifest { tree, encryption })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip() {
        let mut tree = Tree::new();
        tree.insert(
            Key::parse("ab/cd/key").unwrap(),
            Entry {
                bytes: 3,
                mtime_ns: Some(1_700_000_000_123_456_789),
                sha256: Some("ab".repeat(32)),
                stored: None,
            },
        );
        tree.insert(
            Key::parse("x").unwrap(),
            Entry {
                bytes: 0,
                mtime_ns: None,
                sha256: None,
                stored: None,
            },
        );
        let text = manifest_json(&tree, "storage", None);
        let back = parse_manifest(text.as_bytes(), "m").unwrap();
        assert_eq!((back.tree, back.encryption), (tree, None));
        assert_eq!(nanos(from_nanos(-5)), -5);
    }

    #[test]
    fn encrypted_manifest_round_trip_and_incomplete_entries() {
        let key = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        let encryption = Encryption::age(vec![key.to_string()]);
        let mut tree = Tree::new();
        tree.insert(
            Key::parse("ab/file").unwrap(),
            Entry {
                bytes: 3,
                mtime_ns: Some(1),
                sha256: Some("ab".repeat(32)),
                stored: Some(Stored {
                    bytes: 200,
                    sha256: "cd".repeat(32),
                }),
            },
        );
        let text = manifest_json(&tree, "storage", Some(&encryption));
        let back = parse_manifest(text.as_bytes(), "m").unwrap();
        assert_eq!(back.tree, tree);
        assert_eq!(back.encryption, Some(encryption.clone()));

        let enc = encryption.to_value();
        let sha = "ab".repeat(32);
        for (manifest, field) in [
            (
                json!({"version": 1, "encryption": enc, "files": {"a": {"bytes": 1, "sha256": sha}}}),
                "stored_sha256",
            ),
            (
                json!({"version": 1, "encryption": enc, "files": {"a": {"bytes": 1, "stored_bytes": 9, "stored_sha256": sha}}}),
                "sha256",
            ),
            (
                json!({"version": 1, "files": {"a": {"bytes": 1, "stored_bytes": 9, "stored_sha256": sha}}}),
                "stored_sha256",
            ),
            (
                json!({"version": 1, "encryption": enc, "files": {"a": {"bytes": 1, "sha256": sha, "stored_bytes": 9}}}),
                "stored_sha256",
            ),
        ] {
            let err = parse_manifest(manifest.to_string().as_bytes(), "m").unwrap_err();
            assert!(format!("{err:#}").contains(field), "{field}: {err:#}");
        }
        let hostile = json!({"version": 1, "encryption": {"format": "age", "recipients": ["\u{1b}[2J"]}, "files": {}});
        assert!(parse_manifest(hostile.to_string().as_bytes(), "m").is_err());
    }

    #[test]
    fn hostile_entries_fail_the_whole_manifest() {
        for path in [
            "../pwn.txt",
            "ab/../../x",
            "/etc/passwd",
            "a\\b",
            "a//b",
            ".",
        ] {
            let text = json!({"version": 1, "files": {path: {"bytes": 1}, "ok": {"bytes": 1}}});
            let err = parse_manifest(text.to_string().as_bytes(), "m").unwrap_err();
            assert!(format!("{err:#}").contains(&format!("{path:?}")), "{err:#}");
            assert_eq!(sqlkeep_common::exit::exit_of(&err), Exit::Failed);
        }
        let text = json!({"version": 1, "files": {"a": {"bytes": "1"}}});
        assert!(parse_manifest(text.to_string().as_bytes(), "m").is_err());
        let text = json!({"version": 1, "files": {"a": {"bytes": 1, "sha256": "zz"}}});
        assert!(parse_manifest(text.to_string().as_bytes(), "m").is_err());
    }
}
