//! Turning a SOURCE into the one object to fetch and what its manifest
//! says about it.
//!
//! A prefix costs one GET for `latest.json`; an object address costs one
//! GET for its sibling manifest; an `object` record from stdin carries its
//! manifest already, costing nothing. Then one GET for the object itself.

use anyhow::{Context, Result};
use sqlkeep_common::address::Address;
use sqlkeep_common::exit::{Exit, exit_of, fail};
use sqlkeep_common::input::Input;
use sqlkeep_common::layout;
use sqlkeep_common::record::Record;
use sqlkeep_common::store::{self, Store, Transfer};
use sqlkeep_common::time::Timestamp;

/// One object to restore.
pub struct Plan {
    /// The store holding the object (its directory or prefix).
    pub store: Box<dyn Store>,
    /// The object's key in that store (its name).
    pub key: String,
    /// The object's manifest, when one was found.
    pub manifest: Option<Record>,
    /// The database name (or, for a plain file, its name).
    pub db: String,
}

impl Plan {
    /// The object's address.
    pub fn url(&self) -> String {
        self.store.url(&self.key)
    }

    /// True when the object is a database snapshot (restored as
    /// `<db>.sqlite3`), not a plain file (restored under its own name).
    pub fn is_snapshot(&self) -> bool {
        layout::stamp_of_object(&self.key).is_some()
    }

    /// The file name to restore as when only a directory is given.
    pub fn file_name(&self) -> String {
        if self.is_snapshot() {
            format!("{}.sqlite3", self.db)
        } else {
            self.db.clone()
        }
    }

    /// True when the stored object is zstd-compressed.
    pub fn compressed(&self) -> bool {
        match self.manifest.as_ref().and_then(|m| m.str("compression")) {
            Some(kind) => kind == "zstd",
            None => self.key.ends_with(".zst"),
        }
    }
}

/// Resolves one input to a plan.
pub fn resolve(input: &Input, transfer: Transfer) -> Result<Plan> {
    match input {
        Input::Record(record) => from_record(record, transfer),
        Input::Plain(text) => from_address(&Address::parse(text)?, transfer),
    }
}

/// An `object` record: its `url` names the object, and the record is the
/// manifest.
///
/// A record without checksums (from `--list`) is completed with the
/// object's manifest, so the restore is still checked.
fn from_record(record: &Record, transfer: Transfer) -> Result<Plan> {
    let url = record
        .str("url")
        .ok_or_else(|| fail(Exit::Failed, "record has no \"url\" to restore from"))?;
    let address = Address::parse(url)?;
    if record.str("sha256").is_none() {
        return from_address(&address, transfer);
    }
    let (parent, key) = split(&address)?;
    let db = name_of(Some(record), &parent, &key);
    Ok(Plan {
        store: store::open_with(&parent, transfer)?,
        key,
        manifest: Some(record.clone()),
        db,
    })
}

/// An address: an object, a manifest, or a database prefix.
fn from_address(address: &Address, transfer: Transfer) -> Result<Plan> {
    let name = address.name().unwrap_or_default();
    let is_object = name.ends_with(layout::ZST_EXT) || name.ends_with(layout::RAW_EXT);
    if is_object {
        let (parent, key) = split(address)?;
        let store = store::open_with(&parent, transfer)?;
        let manifest = match layout::stamp_of_object(&key) {
            Some(stamp) => {
                fetch_manifest(store.as_ref(), &layout::manifest_name(stamp)).or_else(|e| {
                    if is_missing_object(&e) {
                        Ok(None)
                    } else {
                        Err(e)
                    }
                })?
            }
            None => None,
        };
        let db = name_of(manifest.as_ref(), &parent, &key);
        return Ok(Plan {
            store,
            key,
            manifest,
            db,
        });
    }
    if name.ends_with(".json") {
        let (parent, key) = split(address)?;
        let store = store::open_with(&parent, transfer)?;
        let manifest = fetch_manifest(store.as_ref(), &key)?.context("empty manifest")?;
        let key = object_key(&manifest)?;
        let db = name_of(Some(&manifest), &parent, &key);
        return Ok(Plan {
            store,
            key,
            manifest: Some(manifest),
            db,
        });
    }
    let store = store::open_with(address, transfer)?;
    let manifest = match fetch_manifest(store.as_ref(), layout::LATEST) {
        Ok(Some(manifest)) => manifest,
        Ok(None) => {
            return Err(fail(
                Exit::Failed,
                format!("{address}: latest.json is empty"),
            ));
        }
        Err(e) if is_missing_object(&e) => {
            // Not a database prefix: perhaps a plain file stored with its
            // manifest beside it (`<name>.json`).
            if let Some(plan) = plain_object(address, transfer)? {
                return Ok(plan);
            }
            return Err(fail(
                Exit::NotFound,
                format!("no snapshot under {address} (no latest.json there)"),
            ));
        }
        Err(e) => return Err(e),
    };
    let key = object_key(&manifest)?;
    let db = name_of(Some(&manifest), address, &key);
    Ok(Plan {
        store,
        key,
        manifest: Some(manifest),
        db,
    })
}

/// The name an object restores under: the manifest's `db` (or `name` for
/// a plain file); else, for a snapshot, the database prefix it sits in;
/// else the object's own name.
fn name_of(manifest: Option<&Record>, parent: &Address, key: &str) -> String {
    let named = manifest.and_then(|m| m.str("db").or_else(|| m.str("name")));
    let name = match named {
        Some(name) => name.to_string(),
        None if layout::stamp_of_object(key).is_some() => {
            parent.name().unwrap_or_else(|| "database".into())
        }
        None => key.to_string(),
    };
    layout::check_segment(&name)
        .map(str::to_string)
        .unwrap_or_else(|_| "database".into())
}

/// A plain file at `address` with its manifest `<name>.json` beside it, if
/// that manifest exists.
fn plain_object(address: &Address, transfer: Transfer) -> Result<Option<Plan>> {
    let Some((parent, key)) = address.split_last() else {
        return Ok(None);
    };
    let store = store::open_with(&parent, transfer)?;
    let manifest = match fetch_manifest(store.as_ref(), &format!("{key}.json")) {
        Ok(manifest) => manifest,
        Err(e) if is_missing_object(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let db = name_of(manifest.as_ref(), &parent, &key);
    Ok(Some(Plan {
        store,
        key,
        manifest,
        db,
    }))
}

/// True when a request failed because the object is not there (but the
/// bucket is): for a manifest or `latest.json`, a question answered "no".
fn is_missing_object(e: &anyhow::Error) -> bool {
    exit_of(e) == Exit::NotFound && !store::is_no_such_bucket(e)
}

/// The newest snapshot under a database prefix taken at or before `at`:
/// one listing, then the object's manifest.
pub fn at_time(text: &str, at: Timestamp, transfer: Transfer) -> Result<Plan> {
    let address = Address::parse(text)?;
    let store = store::open_with(&address, transfer)?;
    let listed = crate::list::snapshots(store.as_ref())?;
    let Some(chosen) = listed.into_iter().find(|l| l.taken_at <= at) else {
        return Err(fail(
            Exit::NotFound,
            format!(
                "no snapshot under {address} taken at or before {}",
                at.rfc3339()
            ),
        ));
    };
    let manifest = fetch_manifest(store.as_ref(), &layout::manifest_name(chosen.taken_at))
        .or_else(|e| {
            if is_missing_object(&e) {
                Ok(None)
            } else {
                Err(e)
            }
        })?;
    let db = name_of(manifest.as_ref(), &address, &chosen.key);
    Ok(Plan {
        store,
        key: chosen.key,
        manifest,
        db,
    })
}

/// Reads a `--at` time: RFC 3339, or a date meaning the end of that day
/// (UTC), so that `--at 2026-11-20` includes that day's snapshots.
pub fn parse_at(text: &str) -> Result<Timestamp> {
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        return Ok(t);
    }
    let day = Timestamp::parse_date(text).map_err(|_| {
        fail(
            Exit::Usage,
            format!("bad --at {text:?}: expected RFC 3339 (2026-11-20T14:30:00Z) or YYYY-MM-DD"),
        )
    })?;
    Ok(Timestamp::from_unix(day.unix() + 86_399))
}

/// Reads and parses a manifest.
fn fetch_manifest(store: &dyn Store, key: &str) -> Result<Option<Record>> {
    let bytes = store.get_bytes(key)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| fail(Exit::Failed, format!("{}: not UTF-8", store.url(key))))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    Record::parse(text.trim())
        .map(Some)
        .with_context(|| format!("{}: bad manifest", store.url(key)))
}

/// The object a manifest names, as a key beside the manifest: the last
/// segment of its `url`, so a remote that was moved or mounted elsewhere
/// still restores.
fn object_key(manifest: &Record) -> Result<String> {
    let url = manifest
        .str("url")
        .ok_or_else(|| fail(Exit::Failed, "manifest has no \"url\""))?;
    let name = url.rsplit('/').next().unwrap_or_default();
    Ok(layout::check_segment(name)?.to_string())
}

/// Splits an address into its parent (the store) and last segment (key).
fn split(address: &Address) -> Result<(Address, String)> {
    address
        .split_last()
        .ok_or_else(|| fail(Exit::Usage, format!("{address}: not an object address")))
}
