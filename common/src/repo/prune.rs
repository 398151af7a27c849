//! Pruning one database's snapshots: one listing, then a single DELETE
//! per file.
//!
//! Single deletes because batch deletes are not to be trusted (Cloudflare
//! R2 has answered them with 200 while deleting nothing); a failed DELETE
//! is an error, never silence. A snapshot's manifest goes before its
//! object, so an interrupted prune can leave an object no manifest names
//! (removed by the next prune), never a manifest naming a missing object.
//! Every key deleted came from the listing of `<db>/` and passed
//! [`Key`](crate::key::Key) validation there, so a prune cannot reach
//! outside the database's prefix.

use super::Repository;
use super::names::PointName;
use super::retention::{self, Policy};
use crate::key::Key;
use anyhow::{Context, Result};
use serde_json::{Value, json};

/// What a prune kept and deleted.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Points kept, oldest first.
    pub kept: Vec<PointName>,
    /// Points deleted, oldest first.
    pub deleted: Vec<PointName>,
}

impl Pruned {
    /// The record field (`would_delete` in a dry run).
    pub fn to_json(&self, dry_run: bool) -> Value {
        let times = |v: &[PointName]| v.iter().map(|p| p.taken_at.rfc3339()).collect::<Vec<_>>();
        let deleted_key = if dry_run { "would_delete" } else { "deleted" };
        json!({ "kept": times(&self.kept), deleted_key: times(&self.deleted) })
    }
}

/// Applies `policy` to `db`'s points, never deleting `protect` or the
/// newest.
pub fn prune(repo: &Repository, db: &Key, policy: &Policy, protect: &PointName) -> Result<Pruned> {
    let points = repo.points(db).context("listing snapshots for retention")?;
    let names: Vec<PointName> = points.iter().map(|p| p.name.clone()).collect();
    let keep = retention::keep(policy, &names, std::slice::from_ref(protect));
    let mut pruned = Pruned::default();
    for point in points.into_iter().rev() {
        if keep.contains(&point.name) {
            pruned.kept.push(point.name);
            continue;
        }
        // The manifest first: see the module comment.
        for key in point
            .manifest
            .iter()
            .chain(point.object.iter().map(|(k, _)| k))
        {
            repo.store()
                .delete(key)
                .with_context(|| format!("deleting {}", repo.url(key)))?;
        }
        pruned.deleted.push(point.name);
    }
    Ok(pruned)
}
