//! Pruning one database's snapshots after an upload: one listing, then a
//! single DELETE per file.
//!
//! Single deletes because batch deletes are not to be trusted (Cloudflare
//! R2 has answered them with 200 while deleting nothing); a failed DELETE
//! is an error, never silence. A snapshot's manifest goes before its
//! object, so an interrupted prune can leave an object no manifest names
//! (removed by the next prune), never a manifest naming a missing object.

use crate::retention::{self, Policy};
use anyhow::{Context, Result};
use serde_json::{Value, json};
use sqlkeep_common::layout;
use sqlkeep_common::store::Store;
use sqlkeep_common::time::Timestamp;
use std::collections::BTreeMap;

/// What a prune kept and deleted.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Snapshots kept, oldest first.
    pub kept: Vec<Timestamp>,
    /// Snapshots deleted (or, in a dry run, to be deleted), oldest first.
    pub deleted: Vec<Timestamp>,
}

impl Pruned {
    /// The record field.
    pub fn to_json(&self, dry_run: bool) -> Value {
        let stamps = |v: &[Timestamp]| v.iter().map(|t| t.rfc3339()).collect::<Vec<_>>();
        let deleted_key = if dry_run { "would_delete" } else { "deleted" };
        json!({ "kept": stamps(&self.kept), deleted_key: stamps(&self.deleted) })
    }
}

/// Applies `policy` to `db`'s snapshots, never deleting `protect` or the
/// newest. `incoming` is a snapshot about to be stored (dry runs), counted
/// as if it were there.
pub fn prune(
    store: &dyn Store,
    db: &str,
    policy: &Policy,
    protect: Timestamp,
    incoming: Option<Timestamp>,
    dry_run: bool,
) -> Result<Pruned> {
    let mut files: BTreeMap<Timestamp, Vec<String>> = BTreeMap::new();
    for object in store
        .list(&format!("{db}/"))
        .context("listing snapshots for retention")?
    {
        let Some(name) = object.key.strip_prefix(&format!("{db}/")) else {
            continue;
        };
        if name.contains('/') {
            continue;
        }
        if let Some(stamp) = layout::stamp_of_object(name) {
            files.entry(stamp).or_default().push(object.key.clone());
        }
    }
    if let Some(stamp) = incoming {
        files.entry(stamp).or_default();
    }
    let stamps: Vec<Timestamp> = files.keys().copied().collect();
    let keep = retention::keep(policy, &stamps, &[protect]);
    let mut pruned = Pruned::default();
    for (stamp, mut keys) in files {
        if keep.contains(&stamp) {
            pruned.kept.push(stamp);
            continue;
        }
        if !dry_run {
            // The manifest first: see the module comment.
            keys.sort_by_key(|k| !k.ends_with(".json"));
            for key in &keys {
                store
                    .delete(key)
                    .with_context(|| format!("deleting {}", store.url(key)))?;
            }
        }
        pruned.deleted.push(stamp);
    }
    Ok(pruned)
}
