//! Recording what a run changed in the destination's manifest, without
//! losing what another run recorded.
//!
//! Issue 10 found two `blob-sync` runs from different sources into one
//! destination each writing the manifest of its own view: the last one
//! won, and the other run's files were invisible to restores. A run now
//! records its *changes* (files copied or learned, files deleted) and
//! applies them to the manifest as it is at the moment of writing: re-read
//! just before (one GET, only when something changed), merged, and written
//! with `If-Match` on what was read (`If-None-Match: *` when there was
//! none). When another run wrote in between, the condition fails, and the
//! run re-reads, merges and tries again; after [`TRIES`] it gives up with
//! exit 4. Where the storage cannot check conditions (rclone's server), the
//! re-read leaves a window of one request; a local destination is locked
//! for the whole run instead.

use crate::side::Side;
use crate::tree::{Entry, Tree, manifest_json};
use anyhow::{Context, Result};
use sqlkeep_common::exit::{Conflict, is_conflict};
use sqlkeep_common::key::Key;
use sqlkeep_common::store::Condition;

/// Attempts at writing the manifest before giving up.
const TRIES: u32 = 5;

/// What one run changed in the destination.
#[derive(Debug, Default)]
pub struct Changes {
    /// Files now present with these entries (copied, or learned).
    pub updated: Vec<(Key, Entry)>,
    /// Files now gone.
    pub deleted: Vec<Key>,
}

impl Changes {
    /// True when there is nothing to record.
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty() && self.deleted.is_empty()
    }

    /// `base` with these changes applied.
    pub fn apply(&self, base: &Tree) -> Tree {
        let mut tree = base.clone();
        for (key, entry) in &self.updated {
            tree.insert(key.clone(), entry.clone());
        }
        for key in &self.deleted {
            tree.remove(key);
        }
        tree
    }
}

/// Writes the destination's manifest: `planned` (the full state this run
/// started from) with `changes` applied, merged into whatever another run
/// recorded meanwhile. Returns the manifest text now stored (for the
/// cache), or None when nothing changed and nothing was written.
pub fn write(
    dst: &Side,
    planned: &Tree,
    changes: &Changes,
    source: &str,
) -> Result<Option<String>> {
    if changes.is_empty() {
        return Ok(None);
    }
    if let Side::Dir(_) = dst {
        let text = manifest_json(&changes.apply(planned), source);
        dst.write_manifest(&text, &Condition::Any)
            .context("writing the destination manifest")?;
        return Ok(Some(text));
    }
    for _ in 0..TRIES {
        let current = dst
            .current_manifest()
            .context("reading the destination manifest before writing it")?;
        let (base, condition) = match &current {
            Some((tree, fetched)) => (tree, Condition::unchanged_since(Some(fetched))),
            None => (planned, Condition::Absent),
        };
        let text = manifest_json(&changes.apply(base), source);
        match dst.write_manifest(&text, &condition) {
            Ok(()) => return Ok(Some(text)),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(e.context("writing the destination manifest")),
        }
    }
    Err(
        anyhow::Error::new(Conflict("the destination manifest".into())).context(format!(
            "other runs kept writing the destination manifest ({TRIES} tries); try again later"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(bytes: u64) -> Entry {
        Entry {
            bytes,
            mtime_ns: None,
            sha256: None,
        }
    }

    #[test]
    fn changes_apply_over_another_runs_entries() {
        let k = |s: &str| Key::parse(s).unwrap();
        let theirs: Tree = [
            (k("theirs/a"), e(1)),
            (k("shared"), e(2)),
            (k("gone"), e(3)),
        ]
        .into_iter()
        .collect();
        let changes = Changes {
            updated: vec![(k("mine/b"), e(4)), (k("shared"), e(5))],
            deleted: vec![k("gone")],
        };
        let merged = changes.apply(&theirs);
        let keys: Vec<&str> = merged.keys().map(Key::as_str).collect();
        assert_eq!(keys, ["mine/b", "shared", "theirs/a"]);
        assert_eq!(merged[&k("shared")].bytes, 5);
    }
}
