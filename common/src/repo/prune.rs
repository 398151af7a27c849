//! Pruning one database's snapshots: one listing, then a single DELETE
//! per file.
//!
//! Retention keeps restore points; an object goes only when no kept point
//! needs it, which the listing alone tells: a delta's name carries the
//! point it applies to, so every chain is known without a manifest read.
//!
//! Single deletes because batch deletes are not to be trusted (Cloudflare
//! R2 has answered them with 200 while deleting nothing); a failed DELETE
//! is an error, never silence. A snapshot's manifest goes before its
//! object, so an interrupted prune can leave an object no manifest names
//! (removed by the next prune), never a manifest naming a missing object.
//! Every key deleted came from the listing of `<db>/` and passed
//! [`Key`](crate::key::Key) validation there, so a prune cannot reach
//! outside the database's prefix.

use super::names::PointName;
use super::retention::{self, Policy};
use super::{Point, Repository};
use crate::key::Key;
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

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

/// Applies `policy` to `db`'s restore points, never deleting `protect`,
/// the newest, anything newer than `protect` (another run may be storing
/// it), or any object a kept point's chain needs.
pub fn prune(repo: &Repository, db: &Key, policy: &Policy, protect: &PointName) -> Result<Pruned> {
    let points = repo.points(db).context("listing snapshots for retention")?;
    let by_name: BTreeMap<&PointName, &Point> = points.iter().map(|p| (&p.name, p)).collect();
    // Only points that can be restored count for the rules: a point whose
    // chain lost an object is no restore point to keep.
    let restorable: Vec<PointName> = points
        .iter()
        .filter(|p| p.manifest.is_some() && chain_of(p, &by_name).is_some())
        .map(|p| p.name.clone())
        .collect();
    let mut keep = retention::keep(policy, &restorable, std::slice::from_ref(protect));
    keep.extend(
        points
            .iter()
            .filter(|p| p.name > *protect)
            .map(|p| p.name.clone()),
    );
    let mut needed: BTreeSet<PointName> = BTreeSet::new();
    for name in &keep {
        match by_name.get(name).and_then(|p| chain_of(p, &by_name)) {
            Some(chain) => needed.extend(chain),
            None => {
                needed.insert(name.clone());
            }
        }
    }
    let mut pruned = Pruned::default();
    for point in points.iter().rev() {
        if needed.contains(&point.name) {
            if keep.contains(&point.name) {
                pruned.kept.push(point.name.clone());
            }
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
        pruned.deleted.push(point.name.clone());
    }
    Ok(pruned)
}

/// The points that rebuild `point`, from its object's name and those of
/// its bases (no manifest read); None when an object is missing.
fn chain_of(point: &Point, by_name: &BTreeMap<&PointName, &Point>) -> Option<Vec<PointName>> {
    let mut chain = vec![point.name.clone()];
    let mut at = point;
    // Names that claim a circle of bases end the walk at the bound.
    while chain.len() <= super::chain::MAX_LINKS {
        at.object.as_ref()?;
        let Some(base) = &at.base else {
            return Some(chain);
        };
        if base.taken_at > at.name.taken_at {
            return None;
        }
        at = by_name.get(base)?;
        chain.push(at.name.clone());
    }
    None
}
