//! The layout of a remote, shared by the tools that write and read it.
//!
//! ```text
//! <prefix>/<db>/<stamp>.sqlite3.zst   the snapshot
//! <prefix>/<db>/<stamp>.json          its manifest
//! <prefix>/<db>/latest.json           the newest manifest, written last
//! ```
//!
//! Local snapshot files are named `<db>-<stamp>.sqlite3.zst`. Names built
//! from records are checked here, so a record cannot steer a write outside
//! its remote (`"db": "../../etc"`).

use crate::exit::{Exit, fail};
use crate::time::Timestamp;
use anyhow::Result;
use std::path::Path;

/// The name of the newest manifest in a database's prefix.
pub const LATEST: &str = "latest.json";

/// File-name ending of a compressed snapshot.
pub const ZST_EXT: &str = ".sqlite3.zst";

/// File-name ending of an uncompressed snapshot.
pub const RAW_EXT: &str = ".sqlite3";

/// Checks that a name is safe as one path segment of a remote key.
pub fn check_segment(name: &str) -> Result<&str> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\\')
        || name.chars().any(char::is_control);
    if bad {
        return Err(fail(
            Exit::Failed,
            format!("unusable name {name:?} for a remote path"),
        ));
    }
    Ok(name)
}

/// The database name of a database file: its name without the last
/// extension (`production.sqlite3` → `production`).
pub fn db_name_of(path: &Path) -> String {
    path.file_stem()
        .or_else(|| path.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database".to_string())
}

/// The local snapshot file name: `<db>-<stamp>.sqlite3.zst`.
pub fn snapshot_file_name(db: &str, taken_at: Timestamp, compressed: bool) -> String {
    format!(
        "{db}-{}{}",
        taken_at.stamp(),
        if compressed { ZST_EXT } else { RAW_EXT }
    )
}

/// Reads `<db>-<stamp>.sqlite3[.zst]` back into its parts.
pub fn parse_snapshot_file_name(name: &str) -> Option<(String, Timestamp, bool)> {
    let (base, compressed) = match name.strip_suffix(ZST_EXT) {
        Some(base) => (base, true),
        None => (name.strip_suffix(RAW_EXT)?, false),
    };
    let (db, stamp) = base.rsplit_once('-')?;
    let taken_at = Timestamp::parse_stamp(stamp).ok()?;
    (!db.is_empty()).then(|| (db.to_string(), taken_at, compressed))
}

/// The snapshot object's name in a database's prefix: `<stamp>.sqlite3.zst`.
pub fn object_name(taken_at: Timestamp, compressed: bool) -> String {
    format!(
        "{}{}",
        taken_at.stamp(),
        if compressed { ZST_EXT } else { RAW_EXT }
    )
}

/// The manifest's name beside a snapshot object: `<stamp>.json`.
pub fn manifest_name(taken_at: Timestamp) -> String {
    format!("{}.json", taken_at.stamp())
}

/// Reads an object name `<stamp>.sqlite3[.zst]` or manifest `<stamp>.json`
/// back into its stamp.
pub fn stamp_of_object(name: &str) -> Option<Timestamp> {
    let base = name
        .strip_suffix(ZST_EXT)
        .or_else(|| name.strip_suffix(RAW_EXT))
        .or_else(|| name.strip_suffix(".json"))?;
    Timestamp::parse_stamp(base).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-22T03:00:00Z").unwrap();
        let name = snapshot_file_name("my-app", t, true);
        assert_eq!(name, "my-app-20261122T030000Z.sqlite3.zst");
        assert_eq!(
            parse_snapshot_file_name(&name),
            Some(("my-app".into(), t, true))
        );
        assert_eq!(object_name(t, true), "20261122T030000Z.sqlite3.zst");
        assert_eq!(stamp_of_object("20261122T030000Z.json"), Some(t));
        assert_eq!(stamp_of_object(LATEST), None);
        assert_eq!(parse_snapshot_file_name("production.sqlite3"), None);
    }

    #[test]
    fn segments() {
        assert!(check_segment("production").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a\nb"] {
            assert!(check_segment(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            db_name_of(Path::new("storage/production.sqlite3")),
            "production"
        );
    }
}
