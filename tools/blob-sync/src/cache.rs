//! The local cache of a destination's manifest.
//!
//! With it, an unchanged tree syncs without a single request: the walk of
//! the source is compared with the cached state of the destination. The
//! destination is assumed to change only through blob-sync runs that
//! share this cache; `--full-check` lists it when that is not so.

use crate::tree::{Manifest, parse_manifest};
use anyhow::Result;
use sqlkeep_common::atomic::write_atomic;
use sqlkeep_common::digest::sha256_hex;
use std::path::{Path, PathBuf};

/// Where the cache for `dest` lives: `DIR/<hash of the address>.json`.
pub fn path(dest: &str, dir: Option<&Path>) -> Option<PathBuf> {
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?
            .join("sqlkeep/blob-sync"),
    };
    let key = sha256_hex(dest.as_bytes());
    Some(dir.join(format!("{}.json", &key[..16])))
}

/// The cached manifest, if there is a readable one.
pub fn load(path: &Path) -> Option<Manifest> {
    let bytes = std::fs::read(path).ok()?;
    parse_manifest(&bytes, &path.display().to_string()).ok()
}

/// Replaces the cache (private to its owner).
pub fn save(path: &Path, manifest: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_atomic(path, manifest.as_bytes(), 0o600)
}
