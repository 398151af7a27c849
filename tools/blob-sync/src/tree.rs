//! The state of one side of a sync: relative path → size, modification
//! time, SHA-256. Built by walking a directory, from a manifest, or from a
//! listing; written as the manifest.
//!
//! Paths are [`Key`]s: a manifest entry or listed key that could reach
//! outside the destination (`../pwn.txt`, `ab/../../x`, `/etc/x`) fails the
//! whole run before anything is written or deleted (issue 10), and a local
//! file whose name cannot be a key (a backslash, a control character) is
//! skipped with a warning.

use crate::filter::Filter;
use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use sqlkeep_common::atomic::is_temp_name;
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

/// The manifest text for a tree.
pub fn manifest_json(tree: &Tree, source: &str) -> String {
    let mut files = Map::new();
    for (path, e) in tree {
        files.insert(
            path.to_string(),
            json!({"bytes": e.bytes, "mtime_ns": e.mtime_ns, "sha256": e.sha256}),
        );
    }
    let value = json!({
        "type": "sync_manifest",
        "version": 1,
        "written_at": Timestamp::now().rfc3339(),
        "source": source,
        "files": files,
    });
    value.to_string() + "\n"
}

/// Reads a manifest back into a tree. Every entry is checked: a path that
/// is not a safe key, or an entry without a size, fails the whole manifest
/// (exit 1, naming the entry), before anything acts on it.
pub fn parse_manifest(text: &[u8], what: &str) -> Result<Tree> {
    let value: Value = serde_json::from_slice(text)
        .map_err(|e| fail(Exit::Failed, format!("{what}: bad manifest: {e}")))?;
    if value["version"] != 1 {
        return Err(fail(
            Exit::Failed,
            format!("{what}: unknown manifest version {}", value["version"]),
        ));
    }
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
        let bytes = e["bytes"].as_u64().ok_or_else(|| bad("bytes"))?;
        let mtime_ns = match &e["mtime_ns"] {
            Value::Null => None,
            v => Some(v.as_i64().ok_or_else(|| bad("mtime_ns"))?),
        };
        let sha256 = match &e["sha256"] {
            Value::Null => None,
            Value::String(s) if sqlkeep_common::digest::is_sha256_hex(s) => Some(s.clone()),
            _ => return Err(bad("sha256")),
        };
        tree.insert(
            key,
            Entry {
                bytes,
                mtime_ns,
                sha256,
            },
        );
    }
    Ok(tree)
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
            },
        );
        tree.insert(
            Key::parse("x").unwrap(),
            Entry {
                bytes: 0,
                mtime_ns: None,
                sha256: None,
            },
        );
        let text = manifest_json(&tree, "storage");
        assert_eq!(parse_manifest(text.as_bytes(), "m").unwrap(), tree);
        assert_eq!(nanos(from_nanos(-5)), -5);
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
