//! Restore chains: a full snapshot and the deltas that rebuild a later
//! state from it.
//!
//! Every incremental restore point names its whole chain (in its manifest
//! and in `latest.json`), so a restore reads one manifest and then exactly
//! the objects it needs, each checked against the size and SHA-256 the
//! chain gives. A chain read from storage is hostile until [`check`]ed:
//! it starts with a full snapshot, each delta applies to the link before
//! it (its object name says which), times never go back, and it ends at
//! the point it belongs to.
//!
//! Levels keep chains short (see `docs/format.md`): level 0 is a full
//! snapshot, level 1 a delta against the previous level-0 or level-1
//! point, level 2 a delta against the previous point of any level. With
//! at most `D` level-1 points per full and `M` level-2 points per level-1,
//! a chain has at most `1 + D + M` links (83 with the defaults 23 and 59).

use super::names::{ObjectName, PointName};
use crate::exit::{Exit, fail};
use crate::time::Timestamp;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The most links a chain read from storage may have: far above any
/// bound the levels allow, low enough that a hostile manifest cannot make
/// a restore download without end.
pub const MAX_LINKS: usize = 10_000;

/// One object of a restore chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The object's name in its database's prefix.
    pub object: String,
    /// Its level: 0 full, 1 delta against the last level 0–1 point, 2 delta
    /// against the previous point.
    pub level: u8,
    /// When its state was taken.
    pub taken_at: Timestamp,
    /// Stored bytes.
    pub bytes: u64,
    /// SHA-256 of the stored bytes.
    pub sha256: String,
    /// Size of the database state it completes.
    pub raw_bytes: u64,
    /// SHA-256 of the database state it completes.
    pub raw_sha256: String,
}

impl Link {
    /// The object's parsed name (checked by [`check`]).
    pub fn name(&self) -> Option<ObjectName> {
        ObjectName::parse(&self.object)
    }

    /// The restore point this link is.
    pub fn point(&self) -> Option<PointName> {
        self.name().map(|n| n.point)
    }
}

/// Checks a chain read from `what` that should end at `last` (an object
/// name): see the module comment for the rules. The error names the first
/// broken link.
pub fn check(chain: &[Link], last: &str, what: &str) -> Result<()> {
    let bad = |why: String| {
        fail(
            Exit::Failed,
            format!("manifest {what} has a bad chain: {why}"),
        )
    };
    if chain.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if chain.len() > MAX_LINKS {
        return Err(bad(format!("{} links (at most {MAX_LINKS})", chain.len())));
    }
    let mut previous: Option<(PointName, u8)> = None;
    let encrypted = chain[chain.len() - 1]
        .object
        .ends_with(super::names::AGE_EXT);
    for (i, link) in chain.iter().enumerate() {
        let Some(name) = link.name() else {
            return Err(bad(format!(
                "link {i} names {:?}, not a snapshot object",
                link.object
            )));
        };
        // sqlite-snap starts a new chain when encryption changes, so a
        // restore needs one set of keys for all of it.
        if name.encrypted != encrypted {
            return Err(bad(format!(
                "link {i} is {}encrypted and the chain's end is not",
                if name.encrypted { "" } else { "not " }
            )));
        }
        if !crate::digest::is_sha256_hex(&link.sha256)
            || !crate::digest::is_sha256_hex(&link.raw_sha256)
        {
            return Err(bad(format!("link {i} has a malformed checksum")));
        }
        if name.point.taken_at != link.taken_at {
            return Err(bad(format!("link {i}'s time is not its object's")));
        }
        match (&previous, &name.base) {
            (None, None) if link.level == 0 => {}
            (None, _) => return Err(bad("it does not start with a full snapshot".into())),
            (Some((prev, _)), Some(base)) if base == prev && link.level > 0 => {}
            (Some(_), None) => {
                return Err(bad(format!("link {i} is a full snapshot inside the chain")));
            }
            (Some(_), Some(_)) => {
                return Err(bad(format!(
                    "link {i} ({}) does not apply to the link before it",
                    link.object
                )));
            }
        }
        if let Some((prev, prev_level)) = &previous {
            // Two points can share a second: times may tie, never go back.
            if name.point.taken_at < prev.taken_at || name.point == *prev {
                return Err(bad(format!("link {i} is older than the link before it")));
            }
            // A level-1 delta applies to a level 0–1 point, never to a
            // level-2 one; level-2 deltas apply to anything.
            if link.level == 1 && *prev_level == 2 {
                return Err(bad(format!(
                    "link {i} is level 1 but follows a level-2 link"
                )));
            }
        }
        if link.level > 2 {
            return Err(bad(format!("link {i} has level {}", link.level)));
        }
        previous = Some((name.point, link.level));
    }
    let end = &chain[chain.len() - 1].object;
    if end != last {
        return Err(bad(format!("it ends at {end:?}, not at {last:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(at: i64, tag: char, base: Option<(i64, char)>, level: u8) -> Link {
        let t = Timestamp::from_unix(1_767_225_600 + at);
        let point = PointName::new(t, &tag.to_string().repeat(64));
        let name = ObjectName {
            point,
            base: base.map(|(b, c)| {
                PointName::new(
                    Timestamp::from_unix(1_767_225_600 + b),
                    &c.to_string().repeat(64),
                )
            }),
            compressed: true,
            encrypted: false,
        };
        Link {
            object: name.to_string(),
            level,
            taken_at: t,
            bytes: 1,
            sha256: tag.to_string().repeat(64),
            raw_bytes: 4096,
            raw_sha256: "0".repeat(64),
        }
    }

    #[test]
    fn a_well_formed_chain_passes() {
        let chain = [
            link(0, 'a', None, 0),
            link(60, 'b', Some((0, 'a')), 2),
            link(3600, 'c', Some((0, 'a')), 1),
            link(3660, 'd', Some((3600, 'c')), 2),
        ];
        // The level-1 link skips the level-2 one: it applies to the full.
        let kept: Vec<Link> = vec![chain[0].clone(), chain[2].clone(), chain[3].clone()];
        check(&kept, &chain[3].object, "m").unwrap();
        check(&chain[..2], &chain[1].object, "m").unwrap();
    }

    #[test]
    fn broken_chains_are_refused() {
        let full = link(0, 'a', None, 0);
        let delta = link(60, 'b', Some((0, 'a')), 2);
        let stray = link(120, 'c', Some((30, 'f')), 2);
        for (chain, last) in [
            (vec![], "x"),
            (vec![delta.clone()], delta.object.as_str()),
            (vec![full.clone(), stray.clone()], stray.object.as_str()),
            (vec![full.clone(), full.clone()], full.object.as_str()),
            (vec![full.clone(), delta.clone()], full.object.as_str()),
        ] {
            assert!(check(&chain, last, "m").is_err(), "{chain:?}");
        }
        let mut bad_sum = full.clone();
        bad_sum.sha256 = "../x".into();
        assert!(check(&[bad_sum], &full.object, "m").is_err());
        let mut sealed = delta.clone();
        sealed.object.push_str(".age");
        assert!(check(&[full.clone(), sealed.clone()], &sealed.object, "m").is_err());
        let mut escape = full.clone();
        escape.object = "../../etc/passwd".into();
        assert!(check(&[escape.clone()], &escape.object, "m").is_err());
    }
}
