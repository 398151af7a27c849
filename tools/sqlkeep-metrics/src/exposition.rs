//! The state in Prometheus' text exposition format (version 0.0.4), the
//! one node_exporter's textfile collector reads: per family a `# HELP` and
//! a `# TYPE` line, then its samples, each family once and together.
//!
//! Times are Unix seconds (Prometheus' `_timestamp_seconds` convention),
//! so an alert is `time() - metric > 26 * 3600`. A label with an empty
//! value is left out, which Prometheus reads the same way.

use crate::observe::Classes;
use crate::state::{Database, State};
use std::fmt::Write;

/// A database's samples of one family: the `class` label when the family
/// has one, and the value.
type Samples = Vec<(Option<&'static str>, f64)>;

/// One metric family: name, type, help, and how to get a database's value.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: fn(&Database) -> Samples,
}

/// A single sample without an extra label.
fn one(value: Option<f64>) -> Samples {
    value.map(|v| (None, v)).into_iter().collect()
}

/// One sample per request class.
fn classes(requests: Option<Classes>) -> Samples {
    requests
        .map(|r| {
            vec![
                (Some("a"), r.a as f64),
                (Some("b"), r.b as f64),
                (Some("c"), r.c as f64),
            ]
        })
        .unwrap_or_default()
}

const FAMILIES: [Family; 11] = [
    Family {
        name: "sqlkeep_backup_last_success_timestamp_seconds",
        kind: "gauge",
        help: "When the newest backup of the database was stored (bucket-push's stored_at), Unix time.",
        samples: |d| one(d.backup.as_ref().map(|b| b.stored_at as f64)),
    },
    Family {
        name: "sqlkeep_backup_taken_timestamp_seconds",
        kind: "gauge",
        help: "When the snapshot of the newest backup was taken (its taken_at): the recovery point, Unix time.",
        samples: |d| one(d.backup.as_ref().and_then(|b| b.taken_at).map(|t| t as f64)),
    },
    Family {
        name: "sqlkeep_backup_bytes",
        kind: "gauge",
        help: "Stored (compressed) size of the newest backup, bytes.",
        samples: |d| one(d.backup.as_ref().map(|b| b.bytes as f64)),
    },
    Family {
        name: "sqlkeep_backup_raw_bytes",
        kind: "gauge",
        help: "Size of the database the newest backup holds, bytes.",
        samples: |d| {
            one(d
                .backup
                .as_ref()
                .and_then(|b| b.raw_bytes)
                .map(|b| b as f64))
        },
    },
    Family {
        name: "sqlkeep_backup_duration_seconds",
        kind: "gauge",
        help: "How long the newest backup took: snapshot plus upload.",
        samples: |d| one(d.backup.as_ref().and_then(|b| b.seconds)),
    },
    Family {
        name: "sqlkeep_backup_requests_total",
        kind: "counter",
        help: "Storage requests made by backups, by billing class (B2's: a uploads and deletes, b downloads, c listings).",
        samples: |d| classes(d.backup.as_ref().map(|b| b.requests)),
    },
    Family {
        name: "sqlkeep_drill_ok",
        kind: "gauge",
        help: "1 when the latest restore drill passed every check, 0 when it failed.",
        samples: |d| one(d.drill.as_ref().map(|r| if r.ok { 1.0 } else { 0.0 })),
    },
    Family {
        name: "sqlkeep_drill_last_timestamp_seconds",
        kind: "gauge",
        help: "When the latest restore drill ran, passed or not, Unix time.",
        samples: |d| one(d.drill.as_ref().map(|r| r.at as f64)),
    },
    Family {
        name: "sqlkeep_drill_last_success_timestamp_seconds",
        kind: "gauge",
        help: "When the latest restore drill that passed ran, Unix time.",
        samples: |d| {
            one(d
                .drill
                .as_ref()
                .and_then(|r| r.last_success)
                .map(|t| t as f64))
        },
    },
    Family {
        name: "sqlkeep_drill_taken_timestamp_seconds",
        kind: "gauge",
        help: "When the snapshot the latest drill restored was taken, Unix time.",
        samples: |d| one(d.drill.as_ref().and_then(|r| r.taken_at).map(|t| t as f64)),
    },
    Family {
        name: "sqlkeep_drill_requests_total",
        kind: "counter",
        help: "Storage requests made by restore drills, by billing class.",
        samples: |d| classes(d.drill.as_ref().map(|r| r.requests)),
    },
];

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// The whole textfile.
pub fn render(state: &State) -> String {
    let mut text = String::new();
    for family in &FAMILIES {
        let mut lines = String::new();
        for database in &state.databases {
            for (class, value) in (family.samples)(database) {
                let mut labels = vec![("db", database.target.db.as_str())];
                if !database.target.remote.is_empty() {
                    labels.push(("remote", database.target.remote.as_str()));
                }
                if let Some(class) = class {
                    labels.push(("class", class));
                }
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                let _ = writeln!(lines, "{}{{{}}} {value}", family.name, labels.join(","));
            }
        }
        if !lines.is_empty() {
            let _ = writeln!(text, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(text, "# TYPE {} {}", family.name, family.kind);
            text.push_str(&lines);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{Backup, Event, Stored, Target};

    #[test]
    fn labels_are_escaped_and_families_grouped() {
        assert_eq!(escape_label("a\\b\"c\nd"), r#"a\\b\"c\nd"#);
        let mut state = State::default();
        for db in ["b", "a"] {
            state.apply(&Event::Backup(Backup {
                target: Target {
                    db: db.into(),
                    remote: "s3://x/\"q\"".into(),
                },
                stored: Stored {
                    stored_at: 1_795_316_400,
                    taken_at: None,
                    bytes: 1590,
                    raw_bytes: None,
                    seconds: Some(0.25),
                    requests: Classes { a: 3, b: 1, c: 0 },
                },
            }));
        }
        let text = render(&state);
        assert!(text.starts_with(
            "# HELP sqlkeep_backup_last_success_timestamp_seconds When the newest backup"
        ));
        assert!(text.contains(
            "sqlkeep_backup_last_success_timestamp_seconds{db=\"a\",remote=\"s3://x/\\\"q\\\"\"} 1795316400\n\
             sqlkeep_backup_last_success_timestamp_seconds{db=\"b\","
        ));
        assert!(text.contains(
            "sqlkeep_backup_requests_total{db=\"a\",remote=\"s3://x/\\\"q\\\"\",class=\"c\"} 0\n"
        ));
        assert!(text.contains("} 0.25\n"));
        // Nothing known, no family: no raw_bytes, no drill.
        assert!(!text.contains("raw_bytes") && !text.contains("drill"));
        assert_eq!(text.matches("# TYPE").count(), 4);
    }
}
