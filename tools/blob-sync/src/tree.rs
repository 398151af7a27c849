//! The state of one side of a sync: relative path → size, modification
//! time, SHA-256. Built by walking a directory, from a manifest, or from a
//! listing; written as the manifest.

use crate::filter::Filter;
use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use sqlkeep_common::atomic::is_temp_name;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::time::Timestamp;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The manifest's name in a destination.
pub const MANIFEST: &str = ".sqlkeep-sync.json";

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

/// Files by relative, `/`-separated path, in order.
pub type Tree = BTreeMap<String, Entry>;

/// A walk of a local directory.
pub struct Walk {
    /// The files that pass the filter.
    pub tree: Tree,
    /// Files the filter left out.
    pub skipped: u64,
    /// Paths that could not be used (unreadable, not UTF-8), with why.
    pub problems: Vec<String>,
}

/// Walks `root`, stat-ing (not reading) every regular file; our own
/// manifest and temporary files are never part of a tree.
pub fn walk(root: &Path, filter: &Filter) -> Result<Walk> {
    let mut out = Walk {
        tree: Tree::new(),
        skipped: 0,
        problems: Vec::new(),
    };
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                out.problems.push(format!("{e}"));
                continue;
            }
        };
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
        if !filter.allows(&rel) {
            out.skipped += 1;
            continue;
        }
        match entry.metadata() {
            Ok(meta) => {
                out.tree.insert(
                    rel,
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
            path.clone(),
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

/// Reads a manifest back into a tree.
pub fn parse_manifest(text: &[u8], what: &str) -> Result<Tree> {
    let value: Value =
        serde_json::from_slice(text).with_context(|| format!("{what}: bad manifest"))?;
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
        let bytes = e["bytes"]
            .as_u64()
            .ok_or_else(|| fail(Exit::Failed, format!("{what}: bad entry {path:?}")))?;
        tree.insert(
            path.clone(),
            Entry {
                bytes,
                mtime_ns: e["mtime_ns"].as_i64(),
                sha256: e["sha256"].as_str().map(str::to_string),
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
            "ab/cd/key".into(),
            Entry {
                bytes: 3,
                mtime_ns: Some(1_700_000_000_123_456_789),
                sha256: Some("ab".repeat(32)),
            },
        );
        tree.insert(
            "x".into(),
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
}
