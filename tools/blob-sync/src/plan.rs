//! The whole plan of a sync, computed before anything changes: what to
//! copy, what to delete, what is already there; and the checks that refuse
//! a dangerous plan.

use crate::side::Side;
use crate::tree::{Entry, Tree};
use anyhow::Result;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::key::Key;

/// What a sync will do.
#[derive(Debug, Default)]
pub struct Plan {
    /// Files to copy, with their source entry.
    pub copy: Vec<(Key, Entry)>,
    /// Destination files to delete.
    pub delete: Vec<(Key, Entry)>,
    /// Files already in place, as the manifest will record them.
    pub keep: Tree,
}

/// Which sides hold encrypted trees: their stored files are age files,
/// whose size and checksum say nothing of the plaintext.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sealed {
    /// The source is an encrypted tree.
    pub source: bool,
    /// The destination is an encrypted tree.
    pub dest: bool,
}

/// Compares the two trees. A file is in place when the sizes match and
/// either the modification times and recorded SHA-256 agree (no read at
/// all), or the SHA-256s of both sides agree once computed; a side whose
/// digest cannot be known (a remote that was listed) is compared by size.
/// An entry of an encrypted tree that its manifest does not vouch for is
/// never in place: only the manifest knows what an age file holds.
pub fn make(
    src: &Side,
    source: &Tree,
    dst: &Side,
    dest: &Tree,
    delete: bool,
    sealed: Sealed,
) -> Result<Plan> {
    let mut plan = Plan::default();
    for (path, s) in source {
        let Some(d) = dest.get(path) else {
            plan.copy.push((path.clone(), s.clone()));
            continue;
        };
        let unknown = (sealed.source && s.stored.is_none()) || (sealed.dest && d.stored.is_none());
        if d.bytes != s.bytes || unknown {
            plan.copy.push((path.clone(), s.clone()));
            continue;
        }
        if s.mtime_ns.is_some() && s.mtime_ns == d.mtime_ns && d.sha256.is_some() {
            plan.keep.insert(path.clone(), d.clone());
            continue;
        }
        let source_sha = match &s.sha256 {
            Some(sha) => Some(sha.clone()),
            None => src.local_sha256(path)?,
        };
        let dest_sha = match &d.sha256 {
            Some(sha) => Some(sha.clone()),
            None => dst.local_sha256(path)?,
        };
        let same = match (&source_sha, &dest_sha) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        if same {
            plan.keep.insert(
                path.clone(),
                Entry {
                    bytes: s.bytes,
                    mtime_ns: s.mtime_ns.or(d.mtime_ns),
                    sha256: source_sha.or(dest_sha),
                    stored: d.stored.clone(),
                },
            );
        } else {
            plan.copy.push((path.clone(), s.clone()));
        }
    }
    if delete {
        for (path, d) in dest {
            if !source.contains_key(path) {
                plan.delete.push((path.clone(), d.clone()));
            }
        }
    }
    Ok(plan)
}

impl Plan {
    /// Copies every source file, none left in place: a destination
    /// encrypted to other recipients (or not at all) is rewritten whole.
    pub fn rewrite_all(&mut self, source: &Tree) {
        self.copy = source.iter().map(|(k, e)| (k.clone(), e.clone())).collect();
        self.keep.clear();
    }
}

/// Refuses a re-encryption that would leave files behind under the old
/// keys (or in plaintext) while the manifest says every file is readable
/// with the new ones: destination files this run neither rewrites nor
/// deletes (not in the source, or outside the filters). Nothing has been
/// changed when this is called.
pub fn check_rewrite(plan: &Plan, dest_full: &Tree, was: &str) -> Result<()> {
    let rewritten: std::collections::BTreeSet<&Key> = plan
        .copy
        .iter()
        .chain(&plan.delete)
        .map(|(k, _)| k)
        .collect();
    let left: Vec<&Key> = dest_full
        .keys()
        .filter(|k| !rewritten.contains(k))
        .collect();
    let Some(first) = left.first() else {
        return Ok(());
    };
    Err(fail(
        Exit::Refused,
        format!(
            "refusing to re-encrypt: {} destination files are not in the source (e.g. {first}) \
             and would stay {was}; --delete removes them (or sync into a new destination); \
             nothing was changed",
            left.len()
        ),
    ))
}

/// The `--max-delete` limit: a count, or a percentage of the destination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxDelete {
    /// At most this many files.
    Count(u64),
    /// At most this share of the destination's files.
    Percent(f64),
}

impl MaxDelete {
    /// Parses `N` or `N%` (usage error otherwise).
    pub fn parse(text: &str) -> Result<MaxDelete> {
        let bad = || {
            fail(
                Exit::Usage,
                format!("bad --max-delete {text:?}: expected a number or a percentage like 10%"),
            )
        };
        match text.trim().strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(bad());
                }
                Ok(MaxDelete::Percent(p))
            }
            None => text.trim().parse().map(MaxDelete::Count).map_err(|_| bad()),
        }
    }

    /// The number of files this allows out of `total`.
    pub fn allowed(self, total: u64) -> u64 {
        match self {
            MaxDelete::Count(n) => n,
            MaxDelete::Percent(p) => (total as f64 * p / 100.0).floor() as u64,
        }
    }
}

/// Refuses a plan that deletes when the source looks wrong (missing or
/// empty: an unmounted volume) or deletes more than allowed. Nothing has
/// been changed when this is called.
pub fn check_deletes(
    plan: &Plan,
    source: &Tree,
    source_exists: bool,
    dest_files: u64,
    max: MaxDelete,
) -> Result<()> {
    if plan.delete.is_empty() {
        return Ok(());
    }
    if !source_exists {
        return Err(fail(
            Exit::Refused,
            format!(
                "refusing to delete {} files: the source does not exist; nothing was changed",
                plan.delete.len()
            ),
        ));
    }
    if source.is_empty() {
        return Err(fail(
            Exit::Refused,
            format!(
                "refusing to delete all {} files: the source is empty (an unmounted volume?); nothing was changed",
                plan.delete.len()
            ),
        ));
    }
    let allowed = max.allowed(dest_files);
    if plan.delete.len() as u64 > allowed {
        return Err(fail(
            Exit::Refused,
            format!(
                "refusing to delete {} of {dest_files} files, more than --max-delete allows ({allowed}); nothing was changed. If the deletions are meant, see them with --dry-run, then allow them with --max-delete {} (or --max-delete 100%)",
                plan.delete.len(),
                plan.delete.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_delete() {
        assert_eq!(MaxDelete::parse("10%").unwrap().allowed(1000), 100);
        assert_eq!(MaxDelete::parse("10%").unwrap().allowed(5), 0);
        assert_eq!(MaxDelete::parse("7").unwrap().allowed(1000), 7);
        assert!(MaxDelete::parse("ten").is_err());
        assert!(MaxDelete::parse("150%").is_err());
    }
}
