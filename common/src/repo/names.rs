//! Object and file names of the backup layout.
//!
//! ```text
//! <db>/<stamp>-<tag>.sqlite3.zst   a snapshot (a plain SQLite file, zstd-compressed)
//! <db>/<stamp>-<tag>.<base>.delta.zst   a delta: the pages changed since point <base>
//! <db>/<stamp>-<tag>.json          its manifest
//! <db>/latest.json                 the newest manifest, written last
//! ```
//!
//! `<stamp>` is the UTC second the snapshot was taken (`20261122T030000Z`),
//! so names sort by time; `<tag>` is the first eight hex digits of the
//! stored object's SHA-256, so two snapshots taken in the same second
//! never share a name (issue 10: two pipelines in one second wrote one
//! object name and `latest.json` named a checksum its object did not have).
//! Names without a tag, as written before, are still read.
//!
//! An encrypted object's name ends in `.age` (`<stem>.sqlite3.zst.age`):
//! it is an age file, and `age -d` then `zstd -d` restore it.
//!
//! A delta's name carries the point it applies to (`<base>` is that
//! point's `<stamp>-<tag>`), so one listing shows every chain without a
//! manifest read: retention needs no GET to know what a point depends on.
//!
//! Local snapshot files from `sqlite-snap` are `<db>-<stamp>-<tag>.sqlite3.zst`
//! (deltas `<db>-<stamp>-<tag>.<base>.delta.zst`).

use crate::key::Key;
use crate::time::Timestamp;
use std::path::Path;

/// The name of the newest manifest in a database's prefix.
pub const LATEST: &str = "latest.json";

/// File-name ending of a compressed snapshot.
pub const ZST_EXT: &str = ".sqlite3.zst";

/// File-name ending of an uncompressed snapshot.
pub const RAW_EXT: &str = ".sqlite3";

/// File-name ending of a delta.
pub const DELTA_EXT: &str = ".delta.zst";

/// File-name ending added to an encrypted object.
pub const AGE_EXT: &str = ".age";

/// File-name ending of a manifest.
pub const JSON_EXT: &str = ".json";

/// Hex digits of the checksum in a name.
const TAG_LEN: usize = 8;

/// One restore point's name: when it was taken and which content.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PointName {
    /// When the snapshot was taken (names sort by it).
    pub taken_at: Timestamp,
    /// The first hex digits of the stored object's SHA-256; None in names
    /// written before tags.
    pub tag: Option<String>,
}

impl PointName {
    /// The name of a snapshot taken at `taken_at` whose stored bytes have
    /// SHA-256 `stored_sha256` (lowercase hex).
    pub fn new(taken_at: Timestamp, stored_sha256: &str) -> PointName {
        PointName {
            taken_at,
            tag: Some(stored_sha256.chars().take(TAG_LEN).collect()),
        }
    }

    /// `20261122T030000Z-1a2b3c4d` (or the bare stamp of an old name).
    pub fn stem(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}-{tag}", self.taken_at.stamp()),
            None => self.taken_at.stamp(),
        }
    }

    /// The snapshot object's name in its database's prefix.
    pub fn object(&self, compressed: bool) -> String {
        format!(
            "{}{}",
            self.stem(),
            if compressed { ZST_EXT } else { RAW_EXT }
        )
    }

    /// The manifest's name beside the object.
    pub fn manifest(&self) -> String {
        format!("{}{JSON_EXT}", self.stem())
    }

    /// Reads a stem back: `<stamp>` or `<stamp>-<tag>`.
    pub fn parse_stem(stem: &str) -> Option<PointName> {
        let (stamp, tag) = match stem.split_once('-') {
            Some((stamp, tag)) if is_tag(tag) => (stamp, Some(tag.to_string())),
            Some(_) => return None,
            None => (stem, None),
        };
        let taken_at = Timestamp::parse_stamp(stamp).ok()?;
        Some(PointName { taken_at, tag })
    }

    /// Reads an object name back into its point and whether it is
    /// compressed.
    pub fn parse_object(name: &str) -> Option<(PointName, bool)> {
        if let Some(stem) = name.strip_suffix(ZST_EXT) {
            return Some((PointName::parse_stem(stem)?, true));
        }
        let stem = name.strip_suffix(RAW_EXT)?;
        Some((PointName::parse_stem(stem)?, false))
    }

    /// Reads a manifest name (not `latest.json`) back into its point.
    pub fn parse_manifest(name: &str) -> Option<PointName> {
        PointName::parse_stem(name.strip_suffix(JSON_EXT)?)
    }
}

/// A snapshot object's name: a full snapshot, or a delta and the point it
/// applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectName {
    /// The restore point the object completes.
    pub point: PointName,
    /// For a delta, the point whose state it applies to.
    pub base: Option<PointName>,
    /// Whether it is zstd-compressed (deltas always are).
    pub compressed: bool,
    /// Whether it is an age file.
    pub encrypted: bool,
}

impl ObjectName {
    /// A full snapshot's object name.
    pub fn full(point: PointName, compressed: bool) -> ObjectName {
        ObjectName {
            point,
            base: None,
            compressed,
            encrypted: false,
        }
    }

    /// A delta's object name.
    pub fn delta(point: PointName, base: PointName) -> ObjectName {
        ObjectName {
            point,
            base: Some(base),
            compressed: true,
            encrypted: false,
        }
    }

    /// The same object, encrypted or not.
    pub fn sealed(self, encrypted: bool) -> ObjectName {
        ObjectName { encrypted, ..self }
    }

    /// Reads a full snapshot's or a delta's object name.
    pub fn parse(name: &str) -> Option<ObjectName> {
        if let Some(inner) = name.strip_suffix(AGE_EXT) {
            return Some(ObjectName::parse_plain(inner)?.sealed(true));
        }
        ObjectName::parse_plain(name)
    }

    fn parse_plain(name: &str) -> Option<ObjectName> {
        if let Some(stems) = name.strip_suffix(DELTA_EXT) {
            let (stem, base) = stems.split_once('.')?;
            return Some(ObjectName::delta(
                PointName::parse_stem(stem)?,
                PointName::parse_stem(base)?,
            ));
        }
        let (point, compressed) = PointName::parse_object(name)?;
        Some(ObjectName::full(point, compressed))
    }

    /// True for a delta.
    pub fn is_delta(&self) -> bool {
        self.base.is_some()
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.base {
            Some(base) => write!(f, "{}.{}{DELTA_EXT}", self.point.stem(), base.stem())?,
            None => f.write_str(&self.point.object(self.compressed))?,
        }
        if self.encrypted {
            f.write_str(AGE_EXT)?;
        }
        Ok(())
    }
}

/// True for eight lowercase hex digits.
fn is_tag(text: &str) -> bool {
    text.len() == TAG_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The database name of a database file: its name without the last
/// extension (`production.sqlite3` → `production`).
pub fn db_name_of(path: &Path) -> String {
    path.file_stem()
        .or_else(|| path.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database".to_string())
}

/// A database name as a key (its prefix in a remote): one segment, or
/// several for a database found below a directory
/// (`tenants/acme/production`), each validated.
pub fn db_key(name: &str) -> anyhow::Result<Key> {
    Key::parse(name)
}

/// How a database name is written in a local file name: a `/` cannot be,
/// so it is `%2F` (read back by [`parse_snapshot_file_name`]).
pub fn file_safe(db: &str) -> String {
    db.replace('/', SLASH)
}

/// What stands for `/` in a local file name.
const SLASH: &str = "%2F";

/// The local snapshot file name: `<db>-<stem>.sqlite3.zst`.
pub fn snapshot_file_name(db: &str, point: &PointName, compressed: bool) -> String {
    format!("{}-{}", file_safe(db), point.object(compressed))
}

/// The local file name of any snapshot object: `<db>-<object name>`.
pub fn object_file_name(db: &str, object: &ObjectName) -> String {
    format!("{}-{object}", file_safe(db))
}

/// Reads `<db>-<stem>.sqlite3[.zst]` back into its parts.
pub fn parse_snapshot_file_name(name: &str) -> Option<(String, PointName, bool)> {
    let (base, compressed) = match name.strip_suffix(ZST_EXT) {
        Some(base) => (base, true),
        None => (name.strip_suffix(RAW_EXT)?, false),
    };
    let (rest, last) = base.rsplit_once('-')?;
    let (db, stem) = if is_tag(last) {
        let (db, stamp) = rest.rsplit_once('-')?;
        (db, format!("{stamp}-{last}"))
    } else {
        (rest, last.to_string())
    };
    let point = PointName::parse_stem(&stem)?;
    (!db.is_empty()).then(|| (db.replace(SLASH, "/"), point, compressed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-22T03:00:00Z").unwrap()
    }

    #[test]
    fn names_round_trip() {
        let p = PointName::new(t(), &"1a2b3c4d".repeat(8));
        assert_eq!(p.object(true), "20261122T030000Z-1a2b3c4d.sqlite3.zst");
        assert_eq!(p.manifest(), "20261122T030000Z-1a2b3c4d.json");
        assert_eq!(
            PointName::parse_object(&p.object(true)),
            Some((p.clone(), true))
        );
        assert_eq!(
            PointName::parse_object(&p.object(false)),
            Some((p.clone(), false))
        );
        assert_eq!(PointName::parse_manifest(&p.manifest()), Some(p.clone()));
        assert_eq!(PointName::parse_manifest(LATEST), None);
        let file = snapshot_file_name("my-app", &p, true);
        assert_eq!(file, "my-app-20261122T030000Z-1a2b3c4d.sqlite3.zst");
        assert_eq!(
            parse_snapshot_file_name(&file),
            Some(("my-app".into(), p, true))
        );
    }

    #[test]
    fn delta_names_carry_their_base() {
        let base = PointName::new(t(), &"1a2b3c4d".repeat(8));
        let point = PointName::new(Timestamp::from_unix(t().unix() + 60), &"9f".repeat(32));
        let name = ObjectName::delta(point.clone(), base.clone());
        let text = name.to_string();
        assert_eq!(
            text,
            "20261122T030100Z-9f9f9f9f.20261122T030000Z-1a2b3c4d.delta.zst"
        );
        assert_eq!(ObjectName::parse(&text), Some(name));
        assert_eq!(PointName::parse_object(&text), None, "not a full snapshot");
        assert_eq!(
            ObjectName::parse(&base.object(true)),
            Some(ObjectName::full(base.clone(), true))
        );
        let sealed = ObjectName::delta(point.clone(), base.clone()).sealed(true);
        assert_eq!(sealed.to_string(), format!("{text}.age"));
        assert_eq!(ObjectName::parse(&sealed.to_string()), Some(sealed));
        let full = ObjectName::full(base.clone(), true).sealed(true);
        assert_eq!(
            full.to_string(),
            "20261122T030000Z-1a2b3c4d.sqlite3.zst.age"
        );
        assert_eq!(ObjectName::parse(&full.to_string()), Some(full));
        for junk in [
            "x.delta.zst",
            "20261122T030000Z-1a2b3c4d.sqlite3.zst.age.age",
            ".age",
            "20261122T030100Z.delta.zst",
            "a.b.c.delta.zst",
        ] {
            assert_eq!(ObjectName::parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn old_names_still_read() {
        let old = PointName {
            taken_at: t(),
            tag: None,
        };
        assert_eq!(
            PointName::parse_object("20261122T030000Z.sqlite3.zst"),
            Some((old.clone(), true))
        );
        assert_eq!(
            PointName::parse_manifest("20261122T030000Z.json"),
            Some(old.clone())
        );
        assert_eq!(
            parse_snapshot_file_name("app-20261122T030000Z.sqlite3.zst"),
            Some(("app".into(), old.clone(), true))
        );
        assert_eq!(parse_snapshot_file_name("production.sqlite3"), None);
        let nested = snapshot_file_name("tenants/acme/production", &old, true);
        assert_eq!(
            nested,
            "tenants%2Facme%2Fproduction-20261122T030000Z.sqlite3.zst"
        );
        assert_eq!(
            parse_snapshot_file_name(&nested).map(|(db, _, _)| db),
            Some("tenants/acme/production".into())
        );
    }

    #[test]
    fn points_in_one_second_are_distinct_and_ordered() {
        let a = PointName::new(t(), &"0".repeat(64));
        let b = PointName::new(t(), &"f".repeat(64));
        assert_ne!(a.object(true), b.object(true));
        assert!(a < b);
        let later = PointName::new(Timestamp::from_unix(t().unix() + 1), &"0".repeat(64));
        assert!(b < later);
    }

    #[test]
    fn impossible_stamps_are_not_names() {
        assert_eq!(
            PointName::parse_object("20260230T030000Z.sqlite3.zst"),
            None
        );
        assert_eq!(
            PointName::parse_object("20261122T030000Z-XYZ.sqlite3.zst"),
            None
        );
        assert_eq!(
            PointName::parse_object("20261122T030000Z-1A2B3C4D.sqlite3.zst"),
            None
        );
    }
}
