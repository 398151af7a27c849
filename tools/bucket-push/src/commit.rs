//! Committing the incremental state `sqlite-snap --incremental` left
//! pending: the pipe carries the commit.
//!
//! A delta is stored only if it was taken against the state committed for
//! this remote (its `parent`); one taken against an older state was
//! overtaken by a newer commit and is skipped (the next increment covers
//! it). Once the object, its manifest and `latest.json` are stored, the
//! pending state is committed with the tag `latest.json` got, so the next
//! increment moves `latest.json` with `If-Match` and no read. A failed,
//! refused or killed push commits nothing: the next increment is taken
//! against the previous commit and covers the gap. When `latest.json` was
//! changed by another writer, the state is forgotten and the next run
//! takes a full snapshot: the chain in storage is no longer the one the
//! state names.

use crate::push::Increment;
use anyhow::Result;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::repo::{LatestMove, PointName, StoredSnapshot};
use sqlkeep_common::state::StateDir;

/// A pending state to commit after the push.
pub struct Pending {
    dir: StateDir,
    point: PointName,
    remote: String,
}

/// What to do with an incremental snapshot before storing it.
pub enum Before {
    /// Store it; `latest.json` is moved with `If-Match` on this tag when
    /// there is one.
    Store {
        /// The state to commit afterwards, when the record names one.
        pending: Option<Pending>,
        /// The tag `latest.json` had when the committed point was stored.
        latest_tag: Option<String>,
    },
    /// Skip it: a newer state was committed since it was taken.
    Superseded(String),
}

/// Decides whether an incremental snapshot for `remote` (its database
/// prefix's address) is stored.
pub fn before(inc: &Increment, remote: &str) -> Result<Before> {
    let Some(path) = &inc.state else {
        return Ok(Before::Store {
            pending: None,
            latest_tag: None,
        });
    };
    let (dir, point) = StateDir::of_pending(path)?;
    let committed = dir.committed()?;
    let pending = Pending {
        dir,
        point,
        remote: remote.to_string(),
    };
    let here = committed.as_ref().filter(|c| c.remote == remote);
    let state_file = pending.dir.state_path(&pending.point);
    if inc.base.is_none() {
        // A full snapshot restores on its own: it is stored even when a
        // newer commit already tidied its state away (then nothing is
        // committed after it).
        // Moved without a read only when newer than the committed point;
        // an older full goes through the read-compare-write, so
        // latest.json never moves back.
        // A full taken against the committed point is newer than it, even
        // within the same second (names in one second order by checksum).
        let parent = inc.parent.as_ref().map(PointName::stem);
        let latest_tag = here
            .filter(|c| {
                Some(&c.point) == parent.as_ref()
                    || PointName::parse_stem(&c.point)
                        .is_some_and(|p| p.taken_at < pending.point.taken_at)
            })
            .and_then(|c| c.latest_tag.clone());
        let pending = state_file.exists().then_some(pending);
        return Ok(Before::Store {
            latest_tag,
            pending,
        });
    }
    if let Some(c) = &committed
        && c.remote != remote
    {
        pending.dir.forget()?;
        return Err(fail(
            Exit::Failed,
            format!(
                "this delta continues the chain stored at {}, not here; the next run takes a full snapshot (give each remote its own --state-dir)",
                c.remote
            ),
        ));
    }
    let parent = inc.parent.as_ref().map(PointName::stem);
    match here {
        Some(c) if Some(&c.point) == parent.as_ref() => {
            sqlkeep_common::regular::check_regular(&state_file)?;
            Ok(Before::Store {
                latest_tag: c.latest_tag.clone(),
                pending: Some(pending),
            })
        }
        Some(c) => Ok(Before::Superseded(format!(
            "taken against {}, but {} was stored since; the next increment covers it",
            parent.as_deref().unwrap_or("nothing"),
            c.point
        ))),
        None => Ok(Before::Superseded(
            "its state is no longer committed; the next run takes a full snapshot".into(),
        )),
    }
}

/// What became of the state after a push.
pub enum After {
    /// Committed.
    Committed,
    /// A newer point was committed meanwhile: left as it is.
    Overtaken,
    /// `latest.json` had been changed by another writer: the state is
    /// forgotten, so the next run takes a full snapshot.
    Forgotten,
}

/// Commits `pending` now that `stored` is stored.
pub fn after(pending: &Pending, stored: &StoredSnapshot) -> Result<After> {
    let _lock = pending.dir.lock()?;
    if stored.latest == LatestMove::Changed {
        pending.dir.forget()?;
        return Ok(After::Forgotten);
    }
    if let Some(c) = pending.dir.committed()?
        && c.remote == pending.remote
        && PointName::parse_stem(&c.point)
            .is_some_and(|p| p.taken_at > pending.point.taken_at || p == pending.point)
    {
        return Ok(After::Overtaken);
    }
    let tag = match stored.latest {
        LatestMove::Moved | LatestMove::Unchanged => stored.latest_tag.clone(),
        _ => None,
    };
    pending.dir.commit(&pending.point, &pending.remote, tag)?;
    Ok(After::Committed)
}
