//! `--list`: the restore points under a database prefix, newest first,
//! each with its kind (`full` or `delta`, with the point a delta applies
//! to), its object's size and whether it is encrypted (its name ends in
//! `.age`).
//!
//! One listing (paged, 1,000 keys a page) and no manifest reads: the
//! repository reads the stamps from the object names and the sizes from
//! the listing. Listing is a class C request on B2, so nothing else in
//! sqlkeep lists unless asked.

use anyhow::Result;
use sqlkeep_common::address::Address;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::key::Key;
use sqlkeep_common::record::Record;
use sqlkeep_common::repo::{Repository, names};
use sqlkeep_common::store::Transfer;

/// The records `--list` prints for one prefix, and the repository they
/// came from (for its request counts). No snapshot at all is "not found".
pub fn records(address: &Address, transfer: Transfer) -> Result<(Vec<Record>, Repository)> {
    let (parent, name) = address.split_last().ok_or_else(|| {
        fail(
            Exit::Usage,
            format!("{address}: not a database prefix (<remote>/<db>)"),
        )
    })?;
    let db = Key::segment(&name)?;
    let repo = Repository::open(&parent, transfer)?;
    let records: Vec<Record> = repo
        .points(&db)?
        .into_iter()
        .filter_map(|point| {
            let (key, bytes) = point.object?;
            let mut r = Record::new("object");
            r.set("url", repo.url(&key))
                .set("db", db.as_str())
                .set("taken_at", point.name.taken_at.rfc3339())
                .set(
                    "kind",
                    if point.base.is_some() {
                        "delta"
                    } else {
                        "full"
                    },
                )
                .set("bytes", bytes)
                .set("encrypted", key.name().ends_with(names::AGE_EXT))
                .set("manifest", point.manifest.is_some());
            if let Some(base) = &point.base {
                r.set("base", base.stem());
            }
            Some(r)
        })
        .collect();
    if records.is_empty() {
        return Err(fail(Exit::NotFound, format!("no snapshot under {address}")));
    }
    Ok((records, repo))
}
