//! What a record says about a database's backups and drills.
//!
//! Only two kinds of record are facts about a database's protection: the
//! `object` record bucket-push prints once a snapshot is stored, and the
//! `verified` record sqlite-verify prints for a copy bucket-pull restored
//! (it carries the `restored` record's `source_url`). Everything else
//! (snapshots not yet stored, maintenance, syncs, plain files) passes by
//! without a metric.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlkeep_common::record::Record;
use sqlkeep_common::time::Timestamp;

/// Requests by billing class (B2's: A uploads and deletes, B downloads,
/// C listings), as every tool counts them in its record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Classes {
    /// Class A requests.
    pub a: u64,
    /// Class B requests.
    pub b: u64,
    /// Class C requests.
    pub c: u64,
}

impl Classes {
    /// The counts of a record's `requests` object; none when it has none.
    fn of(record: &Record) -> Classes {
        let field = |name: &str| {
            record
                .get("requests")
                .and_then(|r| r.get(name))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        Classes {
            a: field("class_a"),
            b: field("class_b"),
            c: field("class_c"),
        }
    }

    /// Adds another run's counts.
    pub fn add(&mut self, other: Classes) {
        self.a += other.a;
        self.b += other.b;
        self.c += other.c;
    }
}

/// Which database, stored where: the labels of its metrics.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Target {
    /// The database's name in the remote (`production`, `tenants/acme/production`).
    pub db: String,
    /// The remote it is stored in, as the record's address names it; empty
    /// when unknown.
    pub remote: String,
}

/// A snapshot stored in a remote.
#[derive(Debug, Clone, PartialEq)]
pub struct Backup {
    /// The database and remote.
    pub target: Target,
    /// What was stored, with this upload's requests.
    pub stored: Stored,
}

/// What the textfile shows of a stored snapshot: in an [`Event`] with one
/// upload's requests, in the state with every upload's, summed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// When it was stored (Unix seconds).
    pub stored_at: i64,
    /// When the snapshot was taken (Unix seconds).
    pub taken_at: Option<i64>,
    /// Stored bytes.
    pub bytes: u64,
    /// The database's size.
    pub raw_bytes: Option<u64>,
    /// Snapshot plus upload, when the records say.
    pub seconds: Option<f64>,
    /// Requests, by class.
    pub requests: Classes,
}

/// A restore drill: a restored copy checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Drill {
    /// The database and remote.
    pub target: Target,
    /// When the drill was seen (Unix seconds).
    pub at: i64,
    /// Whether every check passed.
    pub ok: bool,
    /// When the restored snapshot was taken (Unix seconds).
    pub taken_at: Option<i64>,
    /// What the restore cost.
    pub requests: Classes,
}

/// One fact a record gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A backup was stored.
    Backup(Backup),
    /// A drill ran.
    Drill(Drill),
}

/// What a record says, if it is about a database's protection; `failed`
/// is set when the record reports a failure (a drill that did not pass,
/// a retention that failed after the upload).
pub fn observe(record: &Record, now: i64) -> (Option<Event>, bool) {
    let Some(db) = record.str("db") else {
        return (None, false);
    };
    let time = |field: &str| {
        record
            .str(field)
            .and_then(|t| Timestamp::parse_rfc3339(t).ok())
            .map(Timestamp::unix)
    };
    match record.kind() {
        Some("object") => {
            // A dry run stored nothing.
            if record.get("dry_run") == Some(&Value::Bool(true)) {
                return (None, false);
            }
            let (Some(url), Some(stored_at), Some(bytes)) =
                (record.str("url"), time("stored_at"), record.u64("bytes"))
            else {
                return (None, false);
            };
            let retention_failed = record
                .get("retention")
                .is_some_and(|r| r.get("error").is_some());
            let seconds = ["snapshot_seconds", "push_seconds"]
                .iter()
                .filter_map(|f| record.get(f).and_then(Value::as_f64))
                .fold(None, |sum: Option<f64>, s| Some(sum.unwrap_or(0.0) + s));
            let backup = Backup {
                target: Target {
                    db: db.to_string(),
                    remote: remote_of(url, db),
                },
                stored: Stored {
                    stored_at,
                    taken_at: time("taken_at"),
                    bytes,
                    raw_bytes: record.u64("raw_bytes"),
                    seconds,
                    requests: Classes::of(record),
                },
            };
            (Some(Event::Backup(backup)), retention_failed)
        }
        Some("verified") => {
            // A copy bucket-pull restored, not a local database checked.
            let Some(url) = record.str("source_url") else {
                return (None, false);
            };
            let ok = record.get("ok") == Some(&Value::Bool(true));
            let drill = Drill {
                target: Target {
                    db: db.to_string(),
                    remote: remote_of(url, db),
                },
                at: now,
                ok,
                taken_at: time("taken_at"),
                requests: Classes::of(record),
            };
            (Some(Event::Drill(drill)), !ok)
        }
        _ => (None, false),
    }
}

/// The remote an object's address lies in: the address without
/// `/<db>/<object name>` (the layout of `docs/format.md`).
pub fn remote_of(url: &str, db: &str) -> String {
    let dir = url.rsplit_once('/').map_or("", |(dir, _)| dir);
    dir.strip_suffix(db)
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or(dir)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_is_the_address_above_the_database() {
        assert_eq!(
            remote_of(
                "s3://b/databases/production/20261122T030000Z-c80998b8.sqlite3.zst",
                "production"
            ),
            "s3://b/databases"
        );
        assert_eq!(
            remote_of(
                "/mnt/b/tenants/acme/production/x.sqlite3.zst",
                "tenants/acme/production"
            ),
            "/mnt/b"
        );
    }

    #[test]
    fn a_failed_drill_and_a_dry_run() {
        let failed = Record::parse(
            r#"{"type":"verified","ok":false,"db":"app","source_url":"/r/app/x.sqlite3.zst","taken_at":"2026-11-22T03:00:00Z","requests":{"class_b":2}}"#,
        )
        .unwrap();
        let (event, bad) = observe(&failed, 7);
        assert!(bad);
        let Some(Event::Drill(drill)) = event else {
            panic!("not a drill: {event:?}")
        };
        assert_eq!(drill.target.remote, "/r");
        assert_eq!(drill.requests, Classes { a: 0, b: 2, c: 0 });
        assert_eq!(drill.taken_at, Some(1_795_316_400));
        let dry = Record::parse(
            r#"{"type":"object","url":"/r/app/x","bytes":1,"stored_at":"2026-11-22T03:00:00Z","db":"app","dry_run":true}"#,
        )
        .unwrap();
        assert_eq!(observe(&dry, 7), (None, false));
    }
}
