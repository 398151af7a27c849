//! The repository: the one owner of how backups are laid out in a store.
//!
//! ```text
//! <db>/<stamp>-<tag>.sqlite3.zst   a snapshot (see [`names`])
//! <db>/<stamp>-<tag>.json          its manifest (see [`manifest`])
//! <db>/latest.json                 the newest manifest, written last
//! <name>, <name>.json              a plain file and its manifest
//! ```
//!
//! Tools ask a [`Repository`] to store a snapshot, read the newest one,
//! list restore points, read a manifest, or prune; none of them builds an
//! object name or parses a manifest itself (issue 10 found three tools
//! doing it three ways). What the repository promises:
//!
//! - **Complete before named.** An object is stored (and its SHA-256
//!   checked on the way) before its manifest, and the manifest before
//!   `latest.json`: whatever a manifest names is complete.
//! - **Never two objects under one name.** Names carry the stored bytes'
//!   checksum, so two snapshots in one second are two restore points, and
//!   a manifest never names an object with other content than its own.
//! - **`latest.json` only moves forward** in `taken_at`: it is read first
//!   (the one GET of a nightly run) and replaced only by a newer snapshot,
//!   with a conditional write where the storage has one, so two runs
//!   racing cannot move it back. An older snapshot pushed later is stored
//!   with its manifest and leaves `latest.json` alone.
//! - **Nothing read is trusted.** Manifests are typed and checked,
//!   listings and the names in manifests become [`Key`]s before use.
//!
//! A nightly push costs 3 PUTs (object, manifest, `latest.json`) and 1
//! GET per database; a restore of the newest snapshot 2 GETs.

pub mod chain;
pub mod locate;
pub mod manifest;
pub mod names;
mod prune;
pub mod retention;

pub use locate::{Located, Restorable, locate, locate_record};
pub use manifest::{Compression, FileManifest, SnapshotManifest};
pub use names::{ObjectName, PointName};
pub use prune::Pruned;

use crate::address::Address;
use crate::compress::write_decoder;
use crate::crypt::Encryption;
use crate::digest::{Digest, HashReader, HashWriter};
use crate::exit::{Conflict, Exit, fail, is_conflict, is_missing};
use crate::key::Key;
use crate::record::Record;
use crate::store::{self, Condition, Store, Transfer};
use crate::time::Timestamp;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::Seek;

/// The most a manifest may hold.
const MANIFEST_MAX: u64 = 1 << 20;

/// How often `latest.json` is re-read when another run changed it between
/// our read and our write.
const LATEST_TRIES: u32 = 5;

/// Backups in one store.
pub struct Repository {
    store: Box<dyn Store>,
}

/// A snapshot file to store.
pub struct SnapshotUpload<'a> {
    /// The open file (a regular file, checked by the caller).
    pub file: &'a mut File,
    /// Its size.
    pub len: u64,
    /// The database's name in the remote.
    pub db: Key,
    /// When the snapshot was taken.
    pub taken_at: Timestamp,
    /// How the file is stored.
    pub compression: Compression,
    /// The incoming record: its checksums are checked, its other fields
    /// kept in the manifest.
    pub record: &'a Record,
    /// For a delta, the point it applies to.
    pub base: Option<PointName>,
    /// The chain that rebuilds this point (empty for a snapshot taken
    /// without incremental state): checked, then stored in the manifest.
    pub chain: Vec<chain::Link>,
    /// The tag `latest.json` had when this chain's previous point was
    /// stored: moved with `If-Match` on it, without reading it first.
    pub latest_tag: Option<String>,
    /// For an age file (made by `sqlite-snap --recipient`): to whom.
    pub encryption: Option<Encryption>,
}

/// What became of `latest.json` after a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatestMove {
    /// It now names this snapshot.
    Moved,
    /// It already named a newer snapshot, taken at this time: left alone.
    KeptNewer(Timestamp),
    /// It already named this very snapshot.
    Unchanged,
    /// Another writer changed it since this chain's previous point was
    /// stored: left alone.
    Changed,
}

/// A stored snapshot.
#[derive(Debug, Clone)]
pub struct StoredSnapshot {
    /// Its manifest, as stored.
    pub manifest: SnapshotManifest,
    /// Its restore point.
    pub point: PointName,
    /// What happened to `latest.json`.
    pub latest: LatestMove,
    /// Whether an unreadable `latest.json` was replaced.
    pub replaced_unreadable_latest: bool,
    /// The tag `latest.json` got, when this push wrote it and the storage
    /// said.
    pub latest_tag: Option<String>,
}

/// One restore point found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// Its name.
    pub name: PointName,
    /// The snapshot object's key and size, when it is there.
    pub object: Option<(Key, u64)>,
    /// The manifest's key, when it is there.
    pub manifest: Option<Key>,
    /// For a delta, the point it applies to (from its object's name).
    pub base: Option<PointName>,
}

impl Repository {
    /// A repository over `store` (rooted where the databases' prefixes are).
    pub fn new(store: Box<dyn Store>) -> Repository {
        Repository { store }
    }

    /// Opens the repository at `address`. Makes no request.
    pub fn open(address: &Address, transfer: Transfer) -> Result<Repository> {
        Ok(Repository::new(store::open_with(address, transfer)?))
    }

    /// The store underneath, for request counts and object transfers.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The address of a key.
    pub fn url(&self, key: &Key) -> String {
        self.store.url(key)
    }

    /// Stores a snapshot: the object, its manifest, then `latest.json` if
    /// this snapshot is newer than the one it names.
    pub fn put_snapshot(&self, up: SnapshotUpload<'_>) -> Result<StoredSnapshot> {
        if let Some(expected) = up.record.u64("bytes")
            && expected != up.len
        {
            return Err(fail(
                Exit::Failed,
                format!(
                    "the file is {} bytes but its record says {expected}: it changed after it was taken",
                    up.len
                ),
            ));
        }
        let compressed = up.compression == Compression::Zstd;
        let given_sha = checksum_field(up.record, "sha256")?;
        let given_raw = match (
            checksum_field(up.record, "raw_sha256")?,
            up.record.u64("raw_bytes"),
        ) {
            (Some(sha256), Some(bytes)) => Some(Digest { sha256, bytes }),
            _ => None,
        };
        // A snapshot stored without its record (a file named like one)
        // has no checksums yet: they are computed first, because the
        // object's name carries one and its manifest must carry both.
        let (sha256, raw) = match (given_sha, given_raw) {
            (Some(sha), Some(raw)) => (sha, raw),
            _ if up.encryption.is_some() => {
                return Err(fail(
                    Exit::Failed,
                    "an encrypted snapshot is stored only with its record's checksums (sqlite-snap prints them)",
                ));
            }
            (given_sha, _) => {
                let (stored, raw) = digest_snapshot(up.file, compressed)?;
                if let Some(given) = given_sha
                    && given != stored.sha256
                {
                    return Err(fail(
                        Exit::Failed,
                        format!(
                            "checksum mismatch: the file's SHA-256 is {}, its record says {given}",
                            stored.sha256
                        ),
                    ));
                }
                (stored.sha256, raw)
            }
        };
        let point = PointName::new(up.taken_at, &sha256);
        let name = match &up.base {
            Some(base) => ObjectName::delta(point.clone(), base.clone()),
            None => ObjectName::full(point.clone(), compressed),
        }
        .sealed(up.encryption.is_some());
        if name.is_delta() && !compressed {
            return Err(fail(Exit::Failed, "a delta must be zstd-compressed"));
        }
        let object_name = name.to_string();
        if !up.chain.is_empty() || name.is_delta() {
            chain::check(&up.chain, &object_name, "from the record")?;
            let own = &up.chain[up.chain.len() - 1];
            if own.sha256 != sha256 || own.raw_sha256 != raw.sha256 || own.bytes != up.len {
                return Err(fail(
                    Exit::Failed,
                    "record's chain does not end with this snapshot's checksums",
                ));
            }
        }
        let object = up.db.child(&object_name)?;
        let digest = self
            .store
            .put(&object, up.file, up.len, Some(&sha256))
            .context("storing the snapshot")?;
        let manifest = SnapshotManifest {
            kind: "object",
            url: self.store.url(&object),
            bytes: digest.bytes,
            sha256: digest.sha256,
            stored_at: Timestamp::now(),
            db: up.db.to_string(),
            taken_at: up.taken_at,
            raw_bytes: raw.bytes,
            raw_sha256: raw.sha256,
            compression: up.compression,
            extra: manifest::rest(up.record.as_map(), &manifest::SNAPSHOT_FIELDS),
            chain: up.chain,
            encryption: up.encryption,
        };
        let manifest_key = up.db.child(&point.manifest())?;
        self.store
            .put_bytes(&manifest_key, manifest.to_text().as_bytes())
            .with_context(|| format!("storing manifest {}", self.store.url(&manifest_key)))?;
        let mut moved = match &up.latest_tag {
            Some(tag) => self.replace_latest(&up.db, &manifest, tag)?,
            None => self.advance_latest(&up.db, &manifest, &point)?,
        };
        // A full snapshot stands alone: when another writer moved
        // latest.json, it is placed by the usual read-compare-write.
        if moved.0 == LatestMove::Changed && up.base.is_none() {
            moved = self.advance_latest(&up.db, &manifest, &point)?;
        }
        let (latest, replaced_unreadable_latest, latest_tag) = moved;
        Ok(StoredSnapshot {
            manifest,
            point,
            latest,
            replaced_unreadable_latest,
            latest_tag,
        })
    }

    /// Moves `latest.json` to `manifest` if it is still the one with `tag`
    /// (written by this chain's previous push): one PUT, no read. An
    /// increment every minute thus costs no GET.
    fn replace_latest(
        &self,
        db: &Key,
        manifest: &SnapshotManifest,
        tag: &str,
    ) -> Result<(LatestMove, bool, Option<String>)> {
        let key = db.child(names::LATEST)?;
        let condition = Condition::Matches(tag.to_string());
        match self
            .store
            .put_if(&key, manifest.to_text().as_bytes(), &condition)
        {
            Ok(new_tag) => Ok((LatestMove::Moved, false, new_tag)),
            Err(e) if is_conflict(&e) || is_missing(&e) => self.replace_sibling(&key, manifest),
            Err(e) => Err(e.context(format!("storing {}", self.store.url(&key)))),
        }
    }

    /// After a lost `If-Match`: when `latest.json` names a sibling of this
    /// point (taken against the same parent: a push of ours that stored
    /// it and was killed before it committed), and not a newer one, it is
    /// replaced after all (1 GET, 1 PUT). Anything else is another
    /// writer's: left alone.
    fn replace_sibling(
        &self,
        key: &Key,
        manifest: &SnapshotManifest,
    ) -> Result<(LatestMove, bool, Option<String>)> {
        let url = self.store.url(key);
        let changed = Ok((LatestMove::Changed, false, None));
        let fetched = match self.store.fetch(key, MANIFEST_MAX) {
            Ok(fetched) => fetched,
            Err(e) if is_missing(&e) => return changed,
            Err(e) => return Err(e.context(format!("reading {url}"))),
        };
        let Ok(theirs) = SnapshotManifest::parse(&fetched.bytes, &url) else {
            return changed;
        };
        let parent = |m: &SnapshotManifest| {
            m.extra
                .get("parent")
                .and_then(|p| p.as_str())
                .map(str::to_string)
        };
        let sibling = parent(&theirs).is_some() && parent(&theirs) == parent(manifest);
        if !sibling || theirs.taken_at > manifest.taken_at {
            return changed;
        }
        let condition = Condition::unchanged_since(Some(&fetched));
        match self
            .store
            .put_if(key, manifest.to_text().as_bytes(), &condition)
        {
            Ok(tag) => Ok((LatestMove::Moved, false, tag)),
            Err(e) if is_conflict(&e) => changed,
            Err(e) => Err(e.context(format!("storing {url}"))),
        }
    }

    /// Moves `latest.json` to `manifest` if it is newer than what it names.
    fn advance_latest(
        &self,
        db: &Key,
        manifest: &SnapshotManifest,
        point: &PointName,
    ) -> Result<(LatestMove, bool, Option<String>)> {
        let key = db.child(names::LATEST)?;
        let url = self.store.url(&key);
        for _ in 0..LATEST_TRIES {
            let current = match self.store.fetch(&key, MANIFEST_MAX) {
                Ok(fetched) => Some(fetched),
                Err(e) if is_missing(&e) => None,
                Err(e) => return Err(e.context(format!("reading {url}"))),
            };
            let mut unreadable = false;
            if let Some(fetched) = &current {
                match SnapshotManifest::parse(&fetched.bytes, &url) {
                    Ok(theirs) => {
                        let named = PointName::new(theirs.taken_at, &theirs.sha256);
                        if named == *point {
                            return Ok((LatestMove::Unchanged, false, fetched.tag.clone()));
                        }
                        if named > *point {
                            return Ok((LatestMove::KeptNewer(theirs.taken_at), false, None));
                        }
                    }
                    // A damaged latest.json names nothing restorable; the
                    // newest good snapshot replaces it (the caller warns).
                    Err(_) => unreadable = true,
                }
            }
            let condition = Condition::unchanged_since(current.as_ref());
            match self
                .store
                .put_if(&key, manifest.to_text().as_bytes(), &condition)
            {
                Ok(tag) => return Ok((LatestMove::Moved, unreadable, tag)),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.context(format!("storing {url}"))),
            }
        }
        Err(anyhow::Error::new(Conflict(url)).context(format!(
            "other runs kept changing latest.json ({LATEST_TRIES} tries)"
        )))
    }

    /// Stores a plain file as `name` with its manifest `name.json`.
    pub fn put_file(
        &self,
        file: &mut File,
        len: u64,
        name: &Key,
        record: Option<&Record>,
    ) -> Result<FileManifest> {
        let expected = match record {
            Some(r) => checksum_field(r, "sha256")?,
            None => None,
        };
        let digest = self
            .store
            .put(name, file, len, expected.as_deref())
            .context("storing the file")?;
        let manifest = FileManifest {
            kind: "object",
            url: self.store.url(name),
            bytes: digest.bytes,
            sha256: digest.sha256,
            stored_at: Timestamp::now(),
            name: name.to_string(),
            extra: record
                .map(|r| manifest::rest(r.as_map(), &manifest::FILE_FIELDS))
                .unwrap_or_default(),
        };
        let manifest_key = manifest_of_file(name)?;
        self.store
            .put_bytes(&manifest_key, manifest.to_text().as_bytes())
            .with_context(|| format!("storing manifest {}", self.store.url(&manifest_key)))?;
        Ok(manifest)
    }

    /// The newest snapshot of `db`, from `latest.json` (one GET). Not found
    /// (exit 3) when there is none.
    pub fn latest(&self, db: &Key) -> Result<SnapshotManifest> {
        let key = db.child(names::LATEST)?;
        let url = self.store.url(&key);
        match self.store.fetch(&key, MANIFEST_MAX) {
            Ok(fetched) => SnapshotManifest::parse(&fetched.bytes, &url),
            Err(e) if is_missing(&e) => {
                // Only on this failure path: one listing, to name the
                // database that was probably meant.
                let hint = self
                    .suggest(db.as_str())
                    .map(|url| format!("; did you mean {url}?"))
                    .unwrap_or_default();
                Err(fail(
                    Exit::NotFound,
                    format!(
                        "no snapshot under {} (no latest.json there){hint}",
                        self.store.url(db)
                    ),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// The address of the database in this repository most like `name`
    /// (a mistyped one), when one is alike enough: one listing, for error
    /// messages only.
    pub fn suggest(&self, name: &str) -> Option<String> {
        let known = self.databases().ok()?;
        let best = crate::suggest::closest(name, known.iter().map(|(k, _)| k.as_str()))?;
        Some(self.store.url(&Key::parse(best).ok()?))
    }

    /// The databases in this repository, by the prefixes holding a
    /// `latest.json` (one listing), in key order, each with the time its
    /// `latest.json` was last written when the storage reports it.
    pub fn databases(&self) -> Result<Vec<(Key, Option<crate::time::Timestamp>)>> {
        let mut found = Vec::new();
        for object in self.store.list(None)? {
            if object.key.name() == names::LATEST
                && let Some(db) = object.key.parent()
            {
                found.push((db, object.modified));
            }
        }
        Ok(found)
    }

    /// The manifest of one restore point of `db` (one GET).
    pub fn manifest(&self, db: &Key, point: &PointName) -> Result<SnapshotManifest> {
        let key = db.child(&point.manifest())?;
        let fetched = self.store.fetch(&key, MANIFEST_MAX)?;
        SnapshotManifest::parse(&fetched.bytes, &self.store.url(&key))
    }

    /// The manifest stored beside a plain file.
    pub fn file_manifest(&self, name: &Key) -> Result<FileManifest> {
        let key = manifest_of_file(name)?;
        let fetched = self.store.fetch(&key, MANIFEST_MAX)?;
        FileManifest::parse(&fetched.bytes, &self.store.url(&key))
    }

    /// The object a snapshot manifest names, as a key in `db`'s prefix:
    /// the last segment of its `url` (so a moved remote still restores),
    /// which must be a snapshot object of the same time and compression.
    pub fn object_of(&self, db: &Key, manifest: &SnapshotManifest) -> Result<Key> {
        let name = manifest.url.rsplit('/').next().unwrap_or_default();
        let object = db.child(name)?;
        let refuse = |why: &str| {
            fail(
                Exit::Failed,
                format!("manifest of {} names {name:?}, {why}", self.store.url(db)),
            )
        };
        let Some(named) = ObjectName::parse(name) else {
            return Err(refuse("which is not a snapshot object"));
        };
        if named.point.taken_at != manifest.taken_at {
            return Err(refuse(
                "which was taken at another time than the manifest says",
            ));
        }
        if named.compressed != (manifest.compression == Compression::Zstd) {
            return Err(refuse("whose compression is not the manifest's"));
        }
        if named.encrypted != manifest.encryption.is_some() {
            return Err(refuse("whose encryption is not the manifest's"));
        }
        Ok(object)
    }

    /// The objects that rebuild the point `manifest` describes, oldest
    /// first, as keys in `db`'s prefix with what each must be.
    pub fn chain_of(
        &self,
        db: &Key,
        manifest: &SnapshotManifest,
    ) -> Result<Vec<(Key, chain::Link)>> {
        let own = self.object_of(db, manifest)?;
        let links = manifest.links();
        let mut out = Vec::with_capacity(links.len());
        for link in links {
            out.push((db.child(&link.object)?, link));
        }
        if out.last().map(|(k, _)| k) != Some(&own) {
            return Err(fail(
                Exit::Failed,
                format!(
                    "the chain of {} does not end at its object",
                    self.store.url(&own)
                ),
            ));
        }
        Ok(out)
    }

    /// The restore points of `db`, newest first (one listing).
    pub fn points(&self, db: &Key) -> Result<Vec<Point>> {
        let mut points: std::collections::BTreeMap<PointName, Point> = Default::default();
        for object in self.store.list(Some(db))? {
            let Some(name) = object.key.strip_prefix(db) else {
                continue;
            };
            if name.parent().is_some() {
                continue; // deeper: not part of this database's layout
            }
            let name = name.as_str();
            if let Some(named) = ObjectName::parse(name) {
                let point = points
                    .entry(named.point.clone())
                    .or_insert_with(|| empty_point(named.point));
                point.object = Some((object.key.clone(), object.bytes));
                point.base = named.base;
            } else if let Some(point) = PointName::parse_manifest(name) {
                points
                    .entry(point.clone())
                    .or_insert_with(|| empty_point(point))
                    .manifest = Some(object.key.clone());
            }
        }
        let mut found: Vec<Point> = points.into_values().collect();
        found.reverse();
        Ok(found)
    }

    /// Applies a retention policy to `db`'s snapshots, never deleting
    /// `protect` or the newest (see [`prune`]).
    pub fn prune(
        &self,
        db: &Key,
        policy: &retention::Policy,
        protect: &PointName,
    ) -> Result<Pruned> {
        prune::prune(self, db, policy, protect)
    }
}

/// A point with neither object nor manifest yet.
fn empty_point(name: PointName) -> Point {
    Point {
        name,
        object: None,
        manifest: None,
        base: None,
    }
}

/// The manifest key of a plain file: `<name>.json`.
fn manifest_of_file(name: &Key) -> Result<Key> {
    let file = format!("{}{}", name.name(), names::JSON_EXT);
    match name.parent() {
        Some(parent) => parent.child(&file),
        None => Key::segment(&file),
    }
}

/// A checksum field of an incoming record: absent, or 64 lowercase hex
/// digits (anything else is refused, never ignored).
fn checksum_field(record: &Record, field: &str) -> Result<Option<String>> {
    match record.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if crate::digest::is_sha256_hex(s) => {
            Ok(Some(s.clone()))
        }
        Some(other) => Err(fail(
            Exit::Failed,
            format!("record has a bad {field}: {other} is not 64 lowercase hex digits"),
        )),
    }
}

/// Reads a snapshot file once, hashing it as stored and as a database
/// (decompressing on the way), then rewinds it for the upload.
fn digest_snapshot(file: &mut File, compressed: bool) -> Result<(Digest, Digest)> {
    file.rewind().context("reading the snapshot")?;
    let mut stored = HashReader::new(&mut *file);
    let raw = if compressed {
        let mut raw = write_decoder(HashWriter::new(std::io::sink()))?;
        std::io::copy(&mut stored, &mut raw)
            .map_err(|e| fail(Exit::Failed, format!("damaged snapshot: zstd says {e}")))?;
        let (_, digest) = raw
            .finish()
            .map_err(|e| fail(Exit::Failed, format!("damaged snapshot: zstd says {e}")))?
            .finish();
        Some(digest)
    } else {
        std::io::copy(&mut stored, &mut std::io::sink()).context("reading the snapshot")?;
        None
    };
    let stored = stored.finish();
    file.rewind().context("reading the snapshot")?;
    let raw = raw.unwrap_or_else(|| stored.clone());
    Ok((stored, raw))
}
