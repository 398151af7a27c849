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
//!
//! The manifest also says whom the files are encrypted to, so entries may
//! only be merged under the label they were written with: a manifest
//! relabelled (a re-encryption) keeps only the entries this run wrote, and
//! a run that finds the destination relabelled by another run under a
//! third label records nothing (exit 4: run again).

use crate::crypt::same;
use crate::side::Side;
use crate::tree::{Entry, Manifest, Tree, manifest_json};
use anyhow::{Context, Result};
use sqlkeep_common::crypt::Encryption;
use sqlkeep_common::exit::{Conflict, Exit, fail, is_conflict};
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
    /// Whom the files this run wrote are encrypted to (None: plaintext).
    pub encryption: Option<Encryption>,
    /// The destination's encryption when this run planned.
    pub planned: Option<Encryption>,
    /// Every file was written anew (a re-encryption): no entry this run did
    /// not write is vouched for, whatever its label says.
    pub rewrite_all: bool,
}

impl Changes {
    /// True when there is nothing to record.
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty()
            && self.deleted.is_empty()
            && !self.rewrite_all
            && same(self.encryption.as_ref(), self.planned.as_ref())
    }

    /// `base` with these changes applied. Entries of `base` are kept only
    /// when they carry this run's label; a base under a label this run
    /// neither planned against nor writes is a conflict (exit 4).
    pub fn apply(&self, base: &Manifest) -> Result<Tree> {
        let ours = same(base.encryption.as_ref(), self.encryption.as_ref());
        if !ours && !same(base.encryption.as_ref(), self.planned.as_ref()) {
            return Err(fail(
                Exit::Unavailable,
                "the destination's encryption changed during this run (another run with other \
                 recipients?); its files were copied but not recorded: run again",
            ));
        }
        let mut tree = if ours && !self.rewrite_all {
            base.tree.clone()
        } else {
            Tree::new()
        };
        for (key, entry) in &self.updated {
            tree.insert(key.clone(), entry.clone());
        }
        for key in &self.deleted {
            tree.remove(key);
        }
        // Under an encryption label, an entry must say what is stored; one
        // that cannot (a file found changed whose copy then failed) is not
        // vouched for, and the next run copies it again.
        if self.encryption.is_some() {
            tree.retain(|_, e| e.stored.is_some());
        }
        Ok(tree)
    }
}

/// Writes the destination's manifest: `planned` (the full state this run
/// started from) with `changes` applied, merged into whatever another run
/// recorded meanwhile. Returns the manifest text (for the cache), or None
/// when nothing changed.
///
/// A restore into a local directory (`restore`: the source is a remote)
/// stores no manifest there: the directory is the app's (Active Storage's
/// `storage/`), listing it costs nothing, and what the manifest would add
/// (checksums, whom the source was encrypted to) stays in the cache. A
/// manifest an older version left there is removed, so it cannot go stale.
pub fn write(
    dst: &Side,
    planned: &Tree,
    changes: &Changes,
    source: &str,
    restore: bool,
) -> Result<Option<String>> {
    if changes.is_empty() {
        return Ok(None);
    }
    let label = changes.encryption.as_ref();
    if let Side::Dir(dir) = dst {
        let base = Manifest {
            tree: planned.clone(),
            encryption: changes.planned.clone(),
        };
        let text = manifest_json(&changes.apply(&base)?, source, label);
        if restore {
            match std::fs::remove_file(dir.join(crate::tree::MANIFEST)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("removing an old manifest from {}", dir.display())));
                }
                _ => {}
            }
        } else {
            dst.write_manifest(&text, &Condition::Any)
                .context("writing the destination manifest")?;
        }
        return Ok(Some(text));
    }
    for _ in 0..TRIES {
        let current = dst
            .current_manifest()
            .context("reading the destination manifest before writing it")?;
        let (base, condition) = match current {
            Some((manifest, fetched)) => (manifest, Condition::unchanged_since(Some(&fetched))),
            None => (
                Manifest {
                    tree: planned.clone(),
                    encryption: changes.planned.clone(),
                },
                Condition::Absent,
            ),
        };
        let text = manifest_json(&changes.apply(&base)?, source, label);
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
            stored: None,
        }
    }

    fn k(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn changes_apply_over_another_runs_entries() {
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
            ..Changes::default()
        };
        let merged = changes
            .apply(&Manifest {
                tree: theirs,
                encryption: None,
            })
            .unwrap();
        let keys: Vec<&str> = merged.keys().map(Key::as_str).collect();
        assert_eq!(keys, ["mine/b", "shared", "theirs/a"]);
        assert_eq!(merged[&k("shared")].bytes, 5);
    }

    #[test]
    fn a_relabelled_manifest_keeps_only_what_this_run_wrote() {
        let old = Encryption::age(vec![
            "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into(),
        ]);
        let new = Encryption::age(vec![
            "age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg".into(),
        ]);
        let base = Manifest {
            tree: [(k("left/behind"), e(1)), (k("rewritten"), e(2))]
                .into_iter()
                .collect(),
            encryption: Some(old.clone()),
        };
        let sealed = Entry {
            stored: Some(crate::tree::Stored {
                bytes: 200,
                sha256: "ab".repeat(32),
            }),
            ..e(3)
        };
        let changes = Changes {
            updated: vec![(k("rewritten"), sealed), (k("unvouched"), e(4))],
            encryption: Some(new.clone()),
            planned: Some(old.clone()),
            rewrite_all: true,
            ..Changes::default()
        };
        let tree = changes.apply(&base).unwrap();
        assert_eq!(
            tree.keys().map(Key::as_str).collect::<Vec<_>>(),
            ["rewritten"],
            "neither the old label's entries nor one without its stored bytes"
        );

        // Another run relabelled the destination meanwhile: nothing is
        // recorded under a label neither run planned.
        let third = Manifest {
            tree: Tree::new(),
            encryption: None,
        };
        let err = changes.apply(&third).unwrap_err();
        assert_eq!(sqlkeep_common::exit::exit_of(&err), Exit::Unavailable);

        // A plain run into a plain destination merges as always.
        let plain = Changes {
            updated: vec![(k("mine"), e(1))],
            ..Changes::default()
        };
        assert!(!plain.is_empty());
        assert!(Changes::default().is_empty());
        let relabel = Changes {
            encryption: Some(new),
            ..Changes::default()
        };
        assert!(!relabel.is_empty(), "a new label alone is worth writing");
    }
}
