//! Which snapshots to keep: restic-style rules on UTC calendar boundaries.
//!
//! Snapshots are walked newest first. Each rule (`--keep-last`,
//! `--keep-hourly`, `--keep-daily`, `--keep-weekly`, `--keep-monthly`)
//! keeps a snapshot when it falls in a different hour, day, ISO week or
//! month than the last one that rule kept, until the rule has kept its
//! count; a snapshot may count for several rules at once. `--keep-within`
//! keeps everything taken within that long of the newest snapshot. The
//! result is the union, plus the newest snapshot and any protected one
//! (the snapshot just uploaded), which are never deleted.

use super::names::PointName;
use crate::time::Timestamp;
use std::collections::BTreeSet;

/// The retention flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// The newest N snapshots.
    pub last: u32,
    /// The newest snapshot of each of the last N hours that have one.
    pub hourly: u32,
    /// The newest snapshot of each of the last N days that have one.
    pub daily: u32,
    /// The newest snapshot of each of the last N ISO weeks that have one.
    pub weekly: u32,
    /// The newest snapshot of each of the last N months that have one.
    pub monthly: u32,
    /// Everything taken within this many seconds of the newest snapshot.
    pub within: Option<i64>,
}

impl Policy {
    /// True when no rule is given: retention does not run at all.
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

/// A calendar bucket: two snapshots in the same bucket count once.
type Bucket = (i64, i64);

/// A rule: how many buckets it keeps, and which bucket a snapshot is in.
type Rule = (u32, fn(Timestamp) -> Option<Bucket>);

/// The points to keep out of `points` (any order): the union of the
/// rules, the newest, and the protected ones.
pub fn keep(policy: &Policy, points: &[PointName], protected: &[PointName]) -> BTreeSet<PointName> {
    let mut newest_first: Vec<&PointName> = points.iter().collect();
    newest_first.sort_by(|a, b| b.cmp(a));
    newest_first.dedup();
    let mut kept: BTreeSet<PointName> = protected.iter().cloned().collect();
    let Some(&newest) = newest_first.first() else {
        return kept;
    };
    kept.insert(newest.clone());

    let rules: [Rule; 5] = [
        // Every snapshot is its own bucket, even two in one second.
        (policy.last, |_| None),
        (policy.hourly, |t| Some((t.unix().div_euclid(3600), 0))),
        (policy.daily, |t| Some((t.days(), 0))),
        (policy.weekly, |t| {
            let (year, week) = t.iso_week();
            Some((year, i64::from(week)))
        }),
        (policy.monthly, |t| {
            let c = t.civil();
            Some((c.year, i64::from(c.month)))
        }),
    ];
    for (count, bucket_of) in rules {
        let mut left = count;
        let mut last: Option<Bucket> = None;
        for &p in &newest_first {
            if left == 0 {
                break;
            }
            let bucket = bucket_of(p.taken_at);
            if bucket.is_none() || last != bucket {
                kept.insert(p.clone());
                last = bucket;
                left -= 1;
            }
        }
    }
    if let Some(within) = policy.within {
        let from = newest.taken_at.unix() - within;
        kept.extend(
            newest_first
                .iter()
                .filter(|p| p.taken_at.unix() >= from)
                .map(|p| (*p).clone()),
        );
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PointName {
        PointName {
            taken_at: Timestamp::parse_rfc3339(s).unwrap(),
            tag: Some("00000000".into()),
        }
    }

    fn at(secs: i64) -> PointName {
        PointName::new(Timestamp::from_unix(secs), &"0".repeat(64))
    }

    #[test]
    fn newest_and_protected_survive_an_empty_rule_set() {
        let points = [
            p("2026-01-01T00:00:00Z"),
            p("2026-01-02T00:00:00Z"),
            p("2026-01-03T00:00:00Z"),
        ];
        let policy = Policy {
            last: 1,
            ..Policy::default()
        };
        let kept = keep(&policy, &points, &[points[0].clone()]);
        assert_eq!(
            kept,
            [points[0].clone(), points[2].clone()].into_iter().collect()
        );
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let points: Vec<PointName> = (0..72).map(|h| at(1_767_225_600 + h * 3600)).collect();
        let policy = Policy {
            daily: 2,
            ..Policy::default()
        };
        let kept = keep(&policy, &points, &[]);
        let days: Vec<String> = kept.iter().map(|p| p.taken_at.rfc3339()).collect();
        assert_eq!(days, ["2026-01-02T23:00:00Z", "2026-01-03T23:00:00Z"]);
    }

    #[test]
    fn within_counts_back_from_the_newest() {
        let points: Vec<PointName> = (0..10).map(|h| at(h * 3600)).collect();
        let policy = Policy {
            within: Some(2 * 3600),
            ..Policy::default()
        };
        assert_eq!(keep(&policy, &points, &[]).len(), 3);
    }

    #[test]
    fn keep_last_counts_two_snapshots_of_one_second() {
        let t = Timestamp::from_unix(1_767_225_600);
        let points = [
            PointName::new(t, &"a".repeat(64)),
            PointName::new(t, &"b".repeat(64)),
            PointName::new(Timestamp::from_unix(t.unix() - 60), &"c".repeat(64)),
        ];
        let policy = Policy {
            last: 2,
            ..Policy::default()
        };
        let kept = keep(&policy, &points, &[]);
        assert_eq!(kept.len(), 2);
        assert!(!kept.contains(&points[2]));
    }
}
