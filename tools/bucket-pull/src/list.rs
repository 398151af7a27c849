//! `--list`: the restore points under a database prefix, newest first,
//! each with its kind (`full` or `delta`, with the point a delta applies
//! to), its object's size and whether it is encrypted (its name ends in
//! `.age`).
//!
//! One listing (paged, 1,000 keys a page) and no manifest reads: the
//! repository reads the stamps from the object names and the sizes from
//! the listing. Listing is a class C request on B2, so nothing else in
//! sqlkeep lists unless asked.
//!
//! A prefix with no restore points of its own may be a remote's root:
//! then the databases below it are listed (`database` records, one more
//! listing). When there are none either, the parent's databases are
//! listed once more to suggest the name that was probably meant.

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
    let Some((parent, name)) = address.split_last() else {
        // A bucket's root: its databases, if any.
        let root = Repository::open(address, transfer)?;
        let records = database_records(address, &root)?;
        if records.is_empty() {
            return Err(fail(
                Exit::NotFound,
                format!("no database under {address} (no latest.json)"),
            ));
        }
        return Ok((records, root));
    };
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
    if !records.is_empty() {
        return Ok((records, repo));
    }
    let root = Repository::open(address, transfer)?;
    let records = database_records(address, &root)?;
    if !records.is_empty() {
        return Ok((records, root));
    }
    let hint = repo
        .suggest(&name)
        .map(|url| format!("; did you mean {url}?"))
        .unwrap_or_default();
    Err(fail(
        Exit::NotFound,
        format!("no snapshot under {address}{hint}"),
    ))
}

/// One `database` record per database under `root` (at `address`): its
/// name below the prefix, its address, and when its `latest.json` was
/// last written.
fn database_records(address: &Address, root: &Repository) -> Result<Vec<Record>> {
    Ok(root
        .databases()?
        .into_iter()
        .map(|(db, stored)| {
            let mut r = Record::new("database");
            r.set("db", db.as_str())
                .set("url", address.child(db.as_str()).to_string());
            if let Some(stored) = stored {
                r.set("stored_at", stored.rfc3339());
            }
            r
        })
        .collect())
}
