//! Manifests: what a stored object is, as typed data.
//!
//! A manifest read from storage is hostile until it passes here: every
//! field a check depends on must be present with the right type, or the
//! manifest is refused (exit 1, "manifest … lacks sha256"). Issue 10 found
//! that a manifest without `sha256`/`bytes` made `bucket-pull` restore
//! whatever its `url` named, unchecked; now a check can only be switched
//! off by a manifest that is refused.
//!
//! Fields a tool does not know are kept (`extra`), so metadata such as
//! `source` or `page_size` survives from the snapshot record through the
//! manifest into the `restored` record.

use super::chain::{self, Link};
use super::names::ObjectName;
use crate::crypt::Encryption;
use crate::exit::{Exit, fail};
use crate::record::Record;
use crate::time::Timestamp;
use anyhow::Result;
use serde::Serialize;
use serde_json::{Map, Value};

/// How an object's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A zstd frame: `zstd -d` restores it.
    Zstd,
    /// The database file as it is.
    None,
}

impl Compression {
    /// The name used in records.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::None => "none",
        }
    }
}

/// The manifest of a database snapshot (`<stem>.json`, `latest.json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SnapshotManifest {
    /// Always `object`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The object's address when it was stored (only its last segment is
    /// used to find it, so a moved remote still restores).
    pub url: String,
    /// Stored bytes.
    pub bytes: u64,
    /// SHA-256 of the stored bytes.
    pub sha256: String,
    /// When it was stored.
    pub stored_at: Timestamp,
    /// The database's name.
    pub db: String,
    /// When the snapshot was taken.
    pub taken_at: Timestamp,
    /// Size of the database itself.
    pub raw_bytes: u64,
    /// SHA-256 of the database itself.
    pub raw_sha256: String,
    /// How the object is stored.
    pub compression: Compression,
    /// Every other field, in order.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The objects that rebuild this point, oldest (a full snapshot) first
    /// and this point's own object last; empty for a snapshot stored
    /// without incremental state (its object alone restores it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<Link>,
    /// For an age file: whom it was encrypted to (public keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// The manifest of a plain file (`<name>.json` beside it).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileManifest {
    /// Always `object`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The object's address when it was stored.
    pub url: String,
    /// Stored bytes.
    pub bytes: u64,
    /// SHA-256 of the stored bytes.
    pub sha256: String,
    /// When it was stored.
    pub stored_at: Timestamp,
    /// The file's name.
    pub name: String,
    /// Every other field, in order.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The fields the typed part of a manifest owns: never taken from
/// `extra`, never duplicated into it.
pub const SNAPSHOT_FIELDS: [&str; 12] = [
    "type",
    "url",
    "bytes",
    "sha256",
    "stored_at",
    "db",
    "taken_at",
    "raw_bytes",
    "raw_sha256",
    "compression",
    "chain",
    "encryption",
];

/// The fields the typed part of a plain file's manifest owns.
pub const FILE_FIELDS: [&str; 6] = ["type", "url", "bytes", "sha256", "stored_at", "name"];

/// Fields that describe a local file or one run, never a stored object.
pub const LOCAL_ONLY: [&str; 10] = [
    "path",
    "state",
    "committed",
    "temporary",
    "requests",
    "latest",
    "retention",
    "dry_run",
    "snapshot_seconds",
    "push_seconds",
];

impl SnapshotManifest {
    /// Parses and checks a manifest read from `what` (for messages).
    pub fn parse(bytes: &[u8], what: &str) -> Result<SnapshotManifest> {
        SnapshotManifest::from_map(object(bytes, what)?, what)
    }

    /// Checks a record as a snapshot manifest (an `object` record from
    /// stdin carries one).
    pub fn from_record(record: &Record, what: &str) -> Result<SnapshotManifest> {
        SnapshotManifest::from_map(record.as_map().clone(), what)
    }

    fn from_map(map: Map<String, Value>, what: &str) -> Result<SnapshotManifest> {
        let f = Fields { map: &map, what };
        let compression = match f.opt_str("compression")? {
            Some("zstd") => Compression::Zstd,
            Some("none") => Compression::None,
            None => {
                return Err(f.lacks("compression"));
            }
            Some(other) => {
                return Err(f.bad("compression", &format!("unknown compression {other:?}")));
            }
        };
        let url = f.string("url")?;
        let object = url.rsplit('/').next().unwrap_or_default();
        let chain: Vec<Link> = match map.get("chain") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => {
                serde_json::from_value(v.clone()).map_err(|e| f.bad("chain", &format!("{e}")))?
            }
        };
        let named = ObjectName::parse(object);
        let is_delta = named.as_ref().is_some_and(|n| n.is_delta());
        if is_delta && chain.is_empty() {
            return Err(f.lacks("chain"));
        }
        let encryption = match map.get("encryption") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                Encryption::from_value(v).map_err(|e| f.bad("encryption", &format!("{e:#}")))?,
            ),
        };
        if named.is_some_and(|n| n.encrypted != encryption.is_some()) {
            return Err(f.bad(
                "encryption",
                "the object's name and the manifest disagree on whether it is encrypted",
            ));
        }
        if !chain.is_empty() {
            chain::check(&chain, object, what)?;
        }
        Ok(SnapshotManifest {
            kind: "object",
            url,
            bytes: f.u64("bytes")?,
            sha256: f.sha256("sha256")?,
            stored_at: f.time("stored_at")?,
            db: f.string("db")?,
            taken_at: f.time("taken_at")?,
            raw_bytes: f.u64("raw_bytes")?,
            raw_sha256: f.sha256("raw_sha256")?,
            compression,
            extra: rest(&map, &SNAPSHOT_FIELDS),
            chain,
            encryption,
        })
    }

    /// The manifest as one line of JSON with a newline, as stored.
    pub fn to_text(&self) -> String {
        text_of(self)
    }

    /// The manifest as a record, for output.
    pub fn to_record(&self) -> Record {
        record_of(self)
    }

    /// The chain that rebuilds this point: its own, or for a snapshot
    /// stored without one, its object alone.
    pub fn links(&self) -> Vec<Link> {
        if !self.chain.is_empty() {
            return self.chain.clone();
        }
        vec![Link {
            object: self.url.rsplit('/').next().unwrap_or_default().to_string(),
            level: 0,
            taken_at: self.taken_at,
            bytes: self.bytes,
            sha256: self.sha256.clone(),
            raw_bytes: self.raw_bytes,
            raw_sha256: self.raw_sha256.clone(),
        }]
    }
}

impl FileManifest {
    /// Parses and checks a plain file's manifest read from `what`.
    pub fn parse(bytes: &[u8], what: &str) -> Result<FileManifest> {
        let map = object(bytes, what)?;
        let f = Fields { map: &map, what };
        Ok(FileManifest {
            kind: "object",
            url: f.string("url")?,
            bytes: f.u64("bytes")?,
            sha256: f.sha256("sha256")?,
            stored_at: f.time("stored_at")?,
            name: f.string("name")?,
            extra: rest(&map, &FILE_FIELDS),
        })
    }

    /// The manifest as one line of JSON with a newline, as stored.
    pub fn to_text(&self) -> String {
        text_of(self)
    }

    /// The manifest as a record, for output.
    pub fn to_record(&self) -> Record {
        record_of(self)
    }
}

/// A manifest as stored: one line of JSON and a newline.
fn text_of(manifest: &impl Serialize) -> String {
    serde_json::to_string(manifest).expect("a manifest serializes") + "\n"
}

/// A manifest as a record.
fn record_of(manifest: &impl Serialize) -> Record {
    match serde_json::to_value(manifest).expect("a manifest serializes") {
        Value::Object(map) => Record::from(map),
        _ => unreachable!("a struct serializes to an object"),
    }
}

/// The fields of `map` other than `owned` and the local-only ones.
pub fn rest(map: &Map<String, Value>, owned: &[&str]) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !owned.contains(&k.as_str()) && !LOCAL_ONLY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Parses bytes as one JSON object.
fn object(bytes: &[u8], what: &str) -> Result<Map<String, Value>> {
    let bad = |why: String| {
        fail(
            Exit::Failed,
            format!("manifest {what} is unreadable: {why}"),
        )
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad("not a JSON object".into())),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Typed, named access to a manifest's fields.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    what: &'a str,
}

impl Fields<'_> {
    fn lacks(&self, field: &str) -> anyhow::Error {
        fail(
            Exit::Failed,
            format!("manifest {} lacks {field}", self.what),
        )
    }

    fn bad(&self, field: &str, why: &str) -> anyhow::Error {
        fail(
            Exit::Failed,
            format!("manifest {} has a bad {field}: {why}", self.what),
        )
    }

    fn get(&self, field: &str) -> Result<&Value> {
        match self.map.get(field) {
            None | Some(Value::Null) => Err(self.lacks(field)),
            Some(v) => Ok(v),
        }
    }

    fn opt_str(&self, field: &str) -> Result<Option<&str>> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.bad(field, "expected a string")),
        }
    }

    fn string(&self, field: &str) -> Result<String> {
        match self.get(field)? {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            Value::String(_) => Err(self.bad(field, "empty")),
            _ => Err(self.bad(field, "expected a string")),
        }
    }

    fn u64(&self, field: &str) -> Result<u64> {
        self.get(field)?
            .as_u64()
            .ok_or_else(|| self.bad(field, "expected a whole number of bytes"))
    }

    fn sha256(&self, field: &str) -> Result<String> {
        match self.get(field)? {
            Value::String(s) if crate::digest::is_sha256_hex(s) => Ok(s.clone()),
            _ => Err(self.bad(field, "expected 64 lowercase hex digits")),
        }
    }

    fn time(&self, field: &str) -> Result<Timestamp> {
        match self.get(field)? {
            Value::String(s) => {
                Timestamp::parse_rfc3339(s).map_err(|e| self.bad(field, &format!("{e:#}")))
            }
            _ => Err(self.bad(field, "expected an RFC 3339 time")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Value {
        serde_json::json!({
            "type": "object",
            "url": "s3://b/db/app/20261122T030000Z-aaaaaaaa.sqlite3.zst",
            "bytes": 10,
            "sha256": "a".repeat(64),
            "stored_at": "2026-11-22T03:00:05Z",
            "db": "app",
            "source": "/srv/app.sqlite3",
            "taken_at": "2026-11-22T03:00:00Z",
            "raw_bytes": 4096,
            "raw_sha256": "b".repeat(64),
            "compression": "zstd",
            "page_size": 4096,
            "path": "/tmp/x",
        })
    }

    #[test]
    fn a_good_manifest_round_trips_with_its_extra_fields() {
        let text = good().to_string();
        let m = SnapshotManifest::parse(text.as_bytes(), "latest.json").unwrap();
        assert_eq!(m.bytes, 10);
        assert_eq!(m.extra["source"], "/srv/app.sqlite3");
        assert!(!m.extra.contains_key("path"), "local fields stay out");
        let again = SnapshotManifest::parse(m.to_text().as_bytes(), "x").unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn checks_cannot_be_switched_off() {
        for field in [
            "sha256",
            "bytes",
            "raw_sha256",
            "raw_bytes",
            "url",
            "taken_at",
            "compression",
        ] {
            let mut v = good();
            v.as_object_mut().unwrap().remove(field);
            let err = SnapshotManifest::parse(v.to_string().as_bytes(), "m.json").unwrap_err();
            assert_eq!(format!("{err}"), format!("manifest m.json lacks {field}"));
            assert_eq!(crate::exit::exit_of(&err), Exit::Failed);
            let mut v = good();
            v[field] = Value::Null;
            assert!(SnapshotManifest::parse(v.to_string().as_bytes(), "m").is_err());
        }
        for (field, value) in [
            ("bytes", serde_json::json!("10")),
            ("bytes", serde_json::json!(-1)),
            ("bytes", serde_json::json!(1.5)),
            ("sha256", serde_json::json!(12)),
            ("sha256", serde_json::json!("A".repeat(64))),
            ("sha256", serde_json::json!("a".repeat(63))),
            ("raw_sha256", serde_json::json!(["x"])),
            ("taken_at", serde_json::json!("2026-02-30T00:00:00Z")),
            ("compression", serde_json::json!("gzip")),
        ] {
            let mut v = good();
            v[field] = value.clone();
            let err = SnapshotManifest::parse(v.to_string().as_bytes(), "m.json").unwrap_err();
            assert!(
                format!("{err}").starts_with(&format!("manifest m.json has a bad {field}")),
                "{field} = {value}: {err}"
            );
        }
        for junk in [&b""[..], b"[]", b"{", b"\xff\xfe", b"null"] {
            assert!(SnapshotManifest::parse(junk, "m").is_err());
        }
    }
}
