//! From what an operator names — a database prefix, an object, a
//! manifest, a record — to the one object to restore and the manifest it
//! is checked against.
//!
//! | source | requests |
//! |---|---|
//! | `<remote>/<db>` | 1 GET (`latest.json`) |
//! | `<remote>/<db>` with a time | 1 LIST, 1 GET (the manifest) |
//! | `<remote>/<db>/<stem>.sqlite3.zst` or `.json` | 1 GET (the manifest) |
//! | an `object` record with its checksums | none |
//! | `<remote>/<name>` of a plain file | 2 GETs (`latest.json` missing, `<name>.json`) |
//!
//! then 1 GET for each object of the point's chain: the snapshot itself,
//! or a full snapshot and the deltas that rebuild the point from it.

use super::Repository;
use super::manifest::{FileManifest, SnapshotManifest};
use super::names::{self, ObjectName, PointName};
use crate::address::Address;
use crate::exit::{Exit, fail, is_missing};
use crate::key::Key;
use crate::record::Record;
use crate::store::Transfer;
use crate::time::Timestamp;
use anyhow::Result;

/// What will be restored.
#[derive(Debug, Clone)]
pub enum Restorable {
    /// A database snapshot, checked against its manifest.
    Snapshot {
        /// The database's name (its prefix).
        db: Key,
        /// The object's key.
        object: Key,
        /// Its manifest.
        manifest: SnapshotManifest,
    },
    /// A plain file stored with its manifest.
    File {
        /// The object's key.
        object: Key,
        /// Its manifest.
        manifest: FileManifest,
    },
    /// A snapshot object named by its address whose manifest is missing:
    /// only zstd's own frame checksum checks it (the caller warns).
    Unchecked {
        /// The database's name (its prefix).
        db: Key,
        /// The object's key.
        object: Key,
        /// Whether it is zstd-compressed.
        compressed: bool,
        /// Whether it is an age file (its name says so).
        encrypted: bool,
    },
}

/// An object found, in its repository.
pub struct Located {
    /// The repository holding it (its store counts the requests made).
    pub repo: Repository,
    /// What it is.
    pub what: Restorable,
}

impl Located {
    /// The object's key.
    pub fn object(&self) -> &Key {
        match &self.what {
            Restorable::Snapshot { object, .. }
            | Restorable::File { object, .. }
            | Restorable::Unchecked { object, .. } => object,
        }
    }

    /// The object's address.
    pub fn url(&self) -> String {
        self.repo.url(self.object())
    }

    /// The name to restore as when only a directory is given:
    /// `<db>.sqlite3` for a snapshot, the file's own name otherwise.
    pub fn file_name(&self) -> String {
        match &self.what {
            Restorable::Snapshot { db, .. } | Restorable::Unchecked { db, .. } => {
                format!("{}.sqlite3", db.name())
            }
            Restorable::File { object, .. } => object.name().to_string(),
        }
    }
}

/// Finds what `address` names: with `at`, the newest complete snapshot of
/// the database prefix taken at or before it.
pub fn locate(address: &Address, at: Option<Timestamp>, transfer: Transfer) -> Result<Located> {
    let name = address.name().unwrap_or_default();
    if let Some(at) = at {
        let (repo, db) = database(address, transfer)?;
        return at_time(repo, db, address, at);
    }
    if let Some(named) = ObjectName::parse(&name) {
        let (db_address, _) = split(address)?;
        let (repo, db) = database(&db_address, transfer)?;
        let object = db.child(&name)?;
        let compressed = named.compressed;
        let encrypted = named.encrypted;
        let manifest = match repo.manifest(&db, &named.point) {
            Ok(manifest) => manifest,
            Err(e) if is_missing(&e) && named.is_delta() => {
                return Err(e.context(format!(
                    "{address} is a delta and its manifest, which names the objects that rebuild it, is missing"
                )));
            }
            Err(e) if is_missing(&e) => {
                return Ok(Located {
                    repo,
                    what: Restorable::Unchecked {
                        db,
                        object,
                        compressed,
                        encrypted,
                    },
                });
            }
            Err(e) => return Err(e),
        };
        if repo.object_of(&db, &manifest)? != object {
            return Err(fail(
                Exit::Failed,
                format!("the manifest of {address} names another object"),
            ));
        }
        return Ok(snapshot(repo, db, manifest, object));
    }
    if name == names::LATEST || PointName::parse_manifest(&name).is_some() {
        let (db_address, _) = split(address)?;
        let (repo, db) = database(&db_address, transfer)?;
        let manifest = match PointName::parse_manifest(&name) {
            Some(point) => repo.manifest(&db, &point)?,
            None => repo.latest(&db)?,
        };
        let object = repo.object_of(&db, &manifest)?;
        return Ok(snapshot(repo, db, manifest, object));
    }
    let (repo, db) = database(address, transfer)?;
    match repo.latest(&db) {
        Ok(manifest) => {
            let object = repo.object_of(&db, &manifest)?;
            Ok(snapshot(repo, db, manifest, object))
        }
        Err(e) if is_missing(&e) => {
            // Not a database prefix: perhaps a plain file stored with its
            // manifest beside it (`<name>.json`).
            match repo.file_manifest(&db) {
                Ok(manifest) => Ok(Located {
                    repo,
                    what: Restorable::File {
                        object: db,
                        manifest,
                    },
                }),
                Err(missing) if is_missing(&missing) => Err(e),
                Err(other) => Err(other),
            }
        }
        Err(e) => Err(e),
    }
}

/// Finds what an `object` record names. A record that carries a whole
/// snapshot manifest (from `bucket-push`) costs no request; any other is
/// looked up by its `url`, so its checksums come from storage.
pub fn locate_record(record: &Record, transfer: Transfer) -> Result<Located> {
    let url = record
        .str("url")
        .ok_or_else(|| fail(Exit::Failed, "record has no \"url\" to restore from"))?;
    let address = Address::parse(url)?;
    let name = address.name().unwrap_or_default();
    if ObjectName::parse(&name).is_some()
        && let Ok(manifest) = SnapshotManifest::from_record(record, "from stdin")
    {
        let (db_address, _) = split(&address)?;
        let (repo, db) = database(&db_address, transfer)?;
        let object = repo.object_of(&db, &manifest)?;
        return Ok(snapshot(repo, db, manifest, object));
    }
    locate(&address, None, transfer)
}

/// The newest complete snapshot (object and manifest) taken at or before
/// `at`: one listing, then its manifest.
fn at_time(repo: Repository, db: Key, address: &Address, at: Timestamp) -> Result<Located> {
    let chosen = repo
        .points(&db)?
        .into_iter()
        .find(|p| p.name.taken_at <= at && p.object.is_some() && p.manifest.is_some());
    let Some(point) = chosen else {
        return Err(fail(
            Exit::NotFound,
            format!(
                "no snapshot under {address} taken at or before {}",
                at.rfc3339()
            ),
        ));
    };
    let manifest = repo.manifest(&db, &point.name)?;
    let object = repo.object_of(&db, &manifest)?;
    Ok(snapshot(repo, db, manifest, object))
}

/// A located snapshot.
fn snapshot(repo: Repository, db: Key, manifest: SnapshotManifest, object: Key) -> Located {
    Located {
        repo,
        what: Restorable::Snapshot {
            db,
            object,
            manifest,
        },
    }
}

/// Splits a database prefix address into its repository (the parent) and
/// the database's name.
fn database(address: &Address, transfer: Transfer) -> Result<(Repository, Key)> {
    let (parent, name) = split(address)?;
    let db = Key::segment(&name)?;
    Ok((Repository::open(&parent, transfer)?, db))
}

/// Splits an address into its parent and last segment.
fn split(address: &Address) -> Result<(Address, String)> {
    address.split_last().ok_or_else(|| {
        fail(
            Exit::Usage,
            format!("{address}: not a database prefix or an object in one (<remote>/<db>)"),
        )
    })
}
