//! `--list`: the snapshots under a database prefix, newest first.
//!
//! One listing (paged, 1,000 keys a page) and no manifest reads: the object
//! names carry the stamps, the listing carries the sizes. Listing is a
//! class C request on B2, so nothing else in sqlkeep lists unless asked.

use anyhow::Result;
use sqlkeep_common::address::Address;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::layout;
use sqlkeep_common::record::Record;
use sqlkeep_common::store::{self, Store, Transfer};
use sqlkeep_common::time::Timestamp;
use std::collections::HashSet;

/// One stored snapshot, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// When it was taken (from its name).
    pub taken_at: Timestamp,
    /// The object's key in the prefix.
    pub key: String,
    /// Its size.
    pub bytes: u64,
    /// Whether its manifest is there too.
    pub has_manifest: bool,
}

/// The snapshots in `store` (rooted at a database prefix), newest first.
pub fn snapshots(store: &dyn Store) -> Result<Vec<Listed>> {
    let objects = store.list("")?;
    let manifests: HashSet<&str> = objects
        .iter()
        .filter(|o| o.key.ends_with(".json") && !o.key.contains('/'))
        .map(|o| o.key.as_str())
        .collect();
    let mut found: Vec<Listed> = objects
        .iter()
        .filter(|o| !o.key.contains('/') && !o.key.ends_with(".json"))
        .filter_map(|o| {
            let taken_at = layout::stamp_of_object(&o.key)?;
            Some(Listed {
                taken_at,
                key: o.key.clone(),
                bytes: o.bytes,
                has_manifest: manifests.contains(layout::manifest_name(taken_at).as_str()),
            })
        })
        .collect();
    found.sort_by(|a, b| b.taken_at.cmp(&a.taken_at).then_with(|| a.key.cmp(&b.key)));
    Ok(found)
}

/// The records `--list` prints for one prefix, and the store they came
/// from (for its request counts). No snapshot at all is "not found".
pub fn records(address: &Address, transfer: Transfer) -> Result<(Vec<Record>, Box<dyn Store>)> {
    let store = store::open_with(address, transfer)?;
    let listed = snapshots(store.as_ref())?;
    if listed.is_empty() {
        return Err(fail(Exit::NotFound, format!("no snapshot under {address}")));
    }
    let db = address.name().unwrap_or_default();
    let records = listed
        .iter()
        .map(|l| {
            let mut r = Record::new("object");
            r.set("url", store.url(&l.key))
                .set("db", db.as_str())
                .set("taken_at", l.taken_at.rfc3339())
                .set("bytes", l.bytes)
                .set("manifest", l.has_manifest);
            r
        })
        .collect();
    Ok((records, store))
}
