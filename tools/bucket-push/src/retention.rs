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

use sqlkeep_common::time::Timestamp;
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
type Rule = (u32, fn(Timestamp) -> Bucket);

/// The snapshots to keep out of `stamps` (any order).
pub fn keep(policy: &Policy, stamps: &[Timestamp], protected: &[Timestamp]) -> BTreeSet<Timestamp> {
    let mut newest_first: Vec<Timestamp> = stamps.to_vec();
    newest_first.sort_by(|a, b| b.cmp(a));
    newest_first.dedup();
    let mut kept: BTreeSet<Timestamp> = protected.iter().copied().collect();
    let Some(&newest) = newest_first.first() else {
        return kept;
    };
    kept.insert(newest);

    let rules: [Rule; 5] = [
        (policy.last, |t| (t.unix(), 0)),
        (policy.hourly, |t| (t.unix().div_euclid(3600), 0)),
        (policy.daily, |t| (t.days(), 0)),
        (policy.weekly, |t| {
            let (year, week) = t.iso_week();
            (year, i64::from(week))
        }),
        (policy.monthly, |t| {
            let c = t.civil();
            (c.year, i64::from(c.month))
        }),
    ];
    for (count, bucket_of) in rules {
        let mut left = count;
        let mut last: Option<Bucket> = None;
        for &t in &newest_first {
            if left == 0 {
                break;
            }
            let bucket = bucket_of(t);
            if last != Some(bucket) {
                kept.insert(t);
                last = Some(bucket);
                left -= 1;
            }
        }
    }
    if let Some(within) = policy.within {
        let from = newest.unix() - within;
        kept.extend(newest_first.iter().filter(|t| t.unix() >= from));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn newest_and_protected_survive_an_empty_rule_set() {
        let stamps = [
            t("2026-01-01T00:00:00Z"),
            t("2026-01-02T00:00:00Z"),
            t("2026-01-03T00:00:00Z"),
        ];
        let kept = keep(
            &Policy {
                last: 1,
                ..Policy::default()
            },
            &stamps,
            &[stamps[0]],
        );
        assert_eq!(kept, [stamps[0], stamps[2]].into_iter().collect());
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let stamps: Vec<Timestamp> = (0..72)
            .map(|h| Timestamp::from_unix(1_767_225_600 + h * 3600))
            .collect();
        let kept = keep(
            &Policy {
                daily: 2,
                ..Policy::default()
            },
            &stamps,
            &[],
        );
        let days: Vec<String> = kept.iter().map(|t| t.rfc3339()).collect();
        assert_eq!(days, ["2026-01-02T23:00:00Z", "2026-01-03T23:00:00Z"]);
    }

    #[test]
    fn within_counts_back_from_the_newest() {
        let stamps: Vec<Timestamp> = (0..10).map(|h| Timestamp::from_unix(h * 3600)).collect();
        let kept = keep(
            &Policy {
                within: Some(2 * 3600),
                ..Policy::default()
            },
            &stamps,
            &[],
        );
        assert_eq!(kept.len(), 3);
    }
}
