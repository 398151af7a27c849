//! `sqlkeep-metrics` at the end of real pipelines (a backup through
//! `rclone serve s3`, a restore drill), its textfile read back with the
//! Prometheus Python client's own exposition parser
//! (`tests/helpers/parse_prom.py`): every value is the records', every
//! database of earlier runs stays, records pass through byte for byte,
//! and a killed or failing run leaves the previous file whole.

use crate::s3server::{BUCKET, S3Server};
use crate::support::{Run, Scratch, campaign, debris, helper, list_files, make_db, world};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

/// The textfile every run of a test updates, relative to its scratch.
const PROM: &str = "metrics/sqlkeep.prom";

/// What the exposition parser read.
struct Parsed {
    /// Family name (without `_total` for counters) → its type.
    types: BTreeMap<String, String>,
    /// Families with a help text.
    helped: usize,
    /// (sample name, labels, value).
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Parsed {
    /// The value of the sample with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| *v)
            .collect();
        assert!(
            found.len() <= 1,
            "{name} {want:?} appears {} times",
            found.len()
        );
        found.first().copied()
    }

    /// Like [`Parsed::get`], for a sample that must be there.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in {:?}", self.samples))
    }

    /// The databases any sample names.
    fn dbs(&self) -> Vec<String> {
        let mut dbs: Vec<String> = self
            .samples
            .iter()
            .map(|(_, l, _)| l["db"].clone())
            .collect();
        dbs.sort();
        dbs.dedup();
        dbs
    }
}

/// Parses the textfile with prometheus_client (fails the test when the
/// parser rejects it).
fn parse(path: &Path) -> Parsed {
    let out = std::process::Command::new("python3")
        .arg(helper("parse_prom.py"))
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the exposition parser rejected {}: {}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let families = v["families"].as_object().unwrap();
    Parsed {
        types: families
            .iter()
            .map(|(k, f)| (k.clone(), f["type"].as_str().unwrap().to_string()))
            .collect(),
        helped: families
            .values()
            .filter(|f| !f["help"].as_str().unwrap().is_empty())
            .count(),
        samples: v["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels = s[1]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                (
                    s[0].as_str().unwrap().to_string(),
                    labels,
                    s[2].as_f64().unwrap(),
                )
            })
            .collect(),
    }
}

/// Unix seconds of an RFC 3339 time, by GNU date (not our own parser).
fn unix(rfc3339: &Value) -> f64 {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", rfc3339.as_str().unwrap(), "+%s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "date cannot read {rfc3339}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Now, in Unix seconds.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64
}

/// Runs a bash pipeline in the scratch directory with the tools on PATH;
/// `status.txt` receives every stage's exit code.
fn pipeline(s: &Scratch, env: &[(String, String)], script: &str) -> (Run, Vec<i32>) {
    let run = s
        .program(Path::new("/bin/bash"))
        .args([
            "-c",
            &format!("{script}; echo \"${{PIPESTATUS[@]}}\" > status.txt"),
        ])
        .envs(env)
        .run();
    let codes = std::fs::read_to_string(s.join("status.txt"))
        .unwrap()
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    (run, codes)
}

/// The one record of a JSON-lines file.
fn only_record(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{}: {text}", path.display());
    serde_json::from_str(lines[0]).unwrap()
}

/// Asserts the backup gauges of a database are those of the last of its
/// `objects`, and its request counters the sum of all of theirs.
fn assert_backup(p: &Parsed, remote: &str, objects: &[&Value]) {
    let object = objects.last().unwrap();
    let db = object["db"].as_str().unwrap();
    let labels = [("db", db), ("remote", remote)];
    assert_eq!(
        p.value("sqlkeep_backup_last_success_timestamp_seconds", &labels),
        unix(&object["stored_at"])
    );
    assert_eq!(
        p.value("sqlkeep_backup_taken_timestamp_seconds", &labels),
        unix(&object["taken_at"])
    );
    assert_eq!(
        p.value("sqlkeep_backup_bytes", &labels),
        object["bytes"].as_f64().unwrap()
    );
    assert_eq!(
        p.value("sqlkeep_backup_raw_bytes", &labels),
        object["raw_bytes"].as_f64().unwrap()
    );
    let seconds =
        object["snapshot_seconds"].as_f64().unwrap() + object["push_seconds"].as_f64().unwrap();
    let duration = p.value("sqlkeep_backup_duration_seconds", &labels);
    assert!((duration - seconds).abs() < 1e-9, "{duration} != {seconds}");
    assert!(duration > 0.0);
    for class in ["a", "b", "c"] {
        assert_eq!(
            p.value(
                "sqlkeep_backup_requests_total",
                &[("db", db), ("remote", remote), ("class", class)]
            ),
            objects
                .iter()
                .map(|o| o["requests"][format!("class_{class}")].as_f64().unwrap())
                .sum::<f64>(),
            "class {class}"
        );
    }
}

/// Backups and drills of two databases through a real S3 server, a failed
/// drill, and a drill that printed nothing, all into one textfile.
#[test]
fn metrics_follow_backups_and_drills() {
    let s = Scratch::new();
    let server = S3Server::start(s.path());
    let env = S3Server::aws_env(&server.endpoint);
    let remote = format!("s3://{BUCKET}/databases");
    make_db(&s.join("app.sqlite3"), 200, true);
    make_db(&s.join("other.sqlite3"), 20, false);
    std::fs::create_dir(s.join("metrics")).unwrap();
    let prom = s.join(PROM);
    let backup = |db: &str| {
        let (run, codes) = pipeline(
            &s,
            &env,
            &format!(
                "sqlite-snap -q {db}.sqlite3 | bucket-push -q {remote} | tee pushed.jsonl \
                 | sqlkeep-metrics --textfile {PROM} > passed.jsonl"
            ),
        );
        assert_eq!(codes, [0, 0, 0, 0], "{}", run.stderr());
        // Passed on byte for byte.
        assert_eq!(
            std::fs::read(s.join("passed.jsonl")).unwrap(),
            std::fs::read(s.join("pushed.jsonl")).unwrap()
        );
        assert!(
            run.stderr().contains("sqlkeep-metrics OK"),
            "{}",
            run.stderr()
        );
        only_record(&s.join("pushed.jsonl"))
    };

    // A backup.
    let app = backup("app");
    assert_eq!(app["type"], "object");
    let p = parse(&prom);
    assert_backup(&p, &remote, &[&app]);
    assert_eq!(p.dbs(), ["app"]);
    assert_eq!(p.types["sqlkeep_backup_bytes"], "gauge");
    assert_eq!(p.types["sqlkeep_backup_requests"], "counter");
    assert_eq!(p.helped, p.types.len());
    assert!(
        p.get("sqlkeep_drill_ok", &[("db", "app"), ("remote", &remote)])
            .is_none()
    );
    assert_eq!(
        std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777,
        0o644
    );

    // A drill that passes.
    let drill = |db: &str, checks: &str| {
        let before = now();
        let (run, codes) = pipeline(
            &s,
            &env,
            &format!(
                "bucket-pull -q {remote}/{db} --latest --force -o drill.sqlite3 \
                 | sqlite-verify -q {checks} | tee verified.jsonl \
                 | sqlkeep-metrics -q --textfile {PROM} --expect-drill {db} > passed.jsonl"
            ),
        );
        assert_eq!(
            std::fs::read(s.join("passed.jsonl")).unwrap(),
            std::fs::read(s.join("verified.jsonl")).unwrap()
        );
        (run, codes, before, now())
    };
    let (run, codes, before, after) = drill("app", "--max-age 26h --expect-table users");
    assert_eq!(codes, [0, 0, 0, 0], "{}", run.stderr());
    assert_eq!(run.stderr(), "", "-q on success prints nothing");
    let verified = only_record(&s.join("verified.jsonl"));
    let p = parse(&prom);
    let labels = [("db", "app"), ("remote", remote.as_str())];
    assert_eq!(p.value("sqlkeep_drill_ok", &labels), 1.0);
    let drilled_at = p.value("sqlkeep_drill_last_timestamp_seconds", &labels);
    assert!(
        before <= drilled_at && drilled_at <= after,
        "{before} {drilled_at} {after}"
    );
    assert_eq!(
        p.value("sqlkeep_drill_last_success_timestamp_seconds", &labels),
        drilled_at
    );
    assert_eq!(
        p.value("sqlkeep_drill_taken_timestamp_seconds", &labels),
        unix(&app["taken_at"])
    );
    assert_eq!(
        p.value(
            "sqlkeep_drill_requests_total",
            &[("db", "app"), ("remote", &remote), ("class", "b")]
        ),
        verified["requests"]["class_b"].as_f64().unwrap()
    );
    assert_eq!(
        verified["requests"]["class_b"], 2,
        "latest.json and the object"
    );
    assert_backup(&p, &remote, &[&app]);

    // A second database: both are in the file, the first one unchanged.
    let other = backup("other");
    let p = parse(&prom);
    assert_eq!(p.dbs(), ["app", "other"]);
    assert_backup(&p, &remote, &[&other]);
    assert_backup(&p, &remote, &[&app]);
    assert_eq!(p.value("sqlkeep_drill_ok", &labels), 1.0);
    example_rules_read_what_the_textfile_has(&p);

    // The first database again: its gauges move, its counters add up.
    rusqlite::Connection::open(s.join("app.sqlite3"))
        .unwrap()
        .execute("DELETE FROM posts WHERE id % 2 = 0", [])
        .unwrap();
    let app2 = backup("app");
    assert_ne!(app2["sha256"], app["sha256"]);
    let p = parse(&prom);
    assert_backup(&p, &remote, &[&app, &app2]);
    assert_backup(&p, &remote, &[&other]);

    // A drill that fails a check: drill_ok 0, the last success kept, and
    // sqlkeep-metrics exits 1 too (the pipeline fails even without pipefail).
    let (run, codes, before, _) = drill("app", "--expect-table no_such_table");
    assert_eq!(codes, [0, 1, 0, 1], "{}", run.stderr());
    let p = parse(&prom);
    assert_eq!(p.value("sqlkeep_drill_ok", &labels), 0.0);
    assert!(p.value("sqlkeep_drill_last_timestamp_seconds", &labels) >= before);
    assert_eq!(
        p.value("sqlkeep_drill_last_success_timestamp_seconds", &labels),
        drilled_at
    );
    assert_eq!(
        p.value(
            "sqlkeep_drill_requests_total",
            &[("db", "app"), ("remote", &remote), ("class", "b")]
        ),
        4.0
    );
    assert!(
        p.get("sqlkeep_drill_ok", &[("db", "other"), ("remote", &remote)])
            .is_none(),
        "never drilled"
    );

    // A drill whose restore failed prints no record: --expect-drill makes
    // it a failed drill all the same (no remote known for a new name).
    let (run, codes, _, _) = drill("ghost", "");
    assert_eq!(codes, [3, 1, 0, 1], "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("sqlkeep-metrics ERROR ghost: no drill record arrived"),
        "{}",
        run.stderr()
    );
    let p = parse(&prom);
    assert_eq!(p.value("sqlkeep_drill_ok", &[("db", "ghost")]), 0.0);
    assert_eq!(p.dbs(), ["app", "ghost", "other"]);
    assert_backup(&p, &remote, &[&app, &app2]);
}

/// examples/prometheus/sqlkeep.rules.yml (no Prometheus here to load it):
/// every metric an alert's expression reads is one the textfile has, and
/// every `$labels.x` its text names is a label of those metrics.
fn example_rules_read_what_the_textfile_has(p: &Parsed) {
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/prometheus/sqlkeep.rules.yml");
    // PyYAML comes with moto, which ./tests/run installs.
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(&rules)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut alerts = 0;
    for rule in doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
    {
        let alert = rule["alert"].as_str().expect("an alerting rule");
        let expr = rule["expr"].as_str().unwrap();
        let metrics: Vec<&str> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("sqlkeep_"))
            .collect();
        assert!(!metrics.is_empty(), "{alert} reads no sqlkeep metric");
        let text = rule["annotations"].to_string();
        let used: Vec<&str> = text
            .split("$labels.")
            .skip(1)
            .map(|rest| {
                rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .unwrap()
            })
            .collect();
        for metric in metrics {
            let samples: Vec<_> = p.samples.iter().filter(|(n, _, _)| n == metric).collect();
            assert!(
                !samples.is_empty(),
                "{alert} reads {metric}, which the textfile lacks"
            );
            for label in &used {
                assert!(
                    samples.iter().all(|(_, l, _)| l.contains_key(*label)),
                    "{alert} names $labels.{label}, which {metric} lacks"
                );
            }
        }
        alerts += 1;
    }
    assert!(alerts >= 2, "{alerts} alerts");
}

/// An `object` record of `db` in `/srv/backups`, as bucket-push prints it.
fn record(db: &str, bytes: u64) -> String {
    format!(
        "{{\"type\":\"object\",\"url\":\"/srv/backups/{db}/20261122T030000Z-c80998b8.sqlite3.zst\",\"bytes\":{bytes},\"stored_at\":\"2026-11-22T03:00:05Z\",\"db\":\"{db}\",\"taken_at\":\"2026-11-22T03:00:00Z\",\"requests\":{{\"class_a\":3,\"class_b\":1,\"class_c\":0}}}}\n"
    )
}

/// A run killed before the end of its input, and a run that cannot read
/// its state, leave the previous textfile and state byte for byte (and no
/// temporary file); the records still pass through.
#[test]
fn a_killed_or_failing_run_leaves_the_previous_file() {
    let s = Scratch::new();
    std::fs::create_dir(s.join("metrics")).unwrap();
    let first = record("app", 1590);
    let run = s
        .tool("sqlkeep-metrics")
        .args(["--textfile", PROM])
        .stdin(first.clone())
        .run()
        .success();
    assert_eq!(run.stdout(), first);
    let p = parse(&s.join(PROM));
    assert_eq!(
        p.value(
            "sqlkeep_backup_bytes",
            &[("db", "app"), ("remote", "/srv/backups")]
        ),
        1590.0
    );
    assert_eq!(
        p.value(
            "sqlkeep_backup_last_success_timestamp_seconds",
            &[("db", "app"), ("remote", "/srv/backups")]
        ),
        1_795_316_405.0
    );
    let before = world(&s.join("metrics"));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        ["sqlkeep.prom", "sqlkeep.prom.json"]
    );

    // Killed once it has passed a record on (its output proves it read
    // it), before the end of its input.
    let mut command = s
        .tool("sqlkeep-metrics")
        .args(["--textfile", PROM])
        .command();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let second = record("other", 77);
    stdin.write_all(second.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut passed = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut passed)
        .unwrap();
    assert_eq!(passed, second);
    child.kill().unwrap();
    assert!(child.wait().unwrap().code().is_none(), "killed by a signal");
    drop(stdin);
    assert_eq!(world(&s.join("metrics")), before);

    // A state it cannot read: exit 1 naming the file, records passed on,
    // nothing replaced.
    std::fs::write(
        s.join("metrics/sqlkeep.prom.json"),
        b"{\"version\":1,\"databa",
    )
    .unwrap();
    let before = world(&s.join("metrics"));
    let run = s
        .tool("sqlkeep-metrics")
        .args(["--textfile", PROM])
        .stdin(second.clone())
        .run()
        .expect_code(1)
        .stderr_has("metrics/sqlkeep.prom.json is not a metrics state");
    assert_eq!(run.stdout(), second);
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    assert_eq!(world(&s.join("metrics")), before);

    // Usage: no --textfile.
    s.tool("sqlkeep-metrics").stdin(first).run().expect_code(2);
}

/// The example scripts keep the textfile when METRICS_FILE is set: the
/// backup's databases, then each drill's result, a database with no backup
/// as a failed drill.
#[test]
fn example_scripts_update_the_textfile() {
    let s = Scratch::new();
    std::fs::create_dir(s.join("storage")).unwrap();
    std::fs::create_dir(s.join("metrics")).unwrap();
    make_db(&s.join("storage/production.sqlite3"), 30, true);
    make_db(&s.join("storage/production_queue.sqlite3"), 5, false);
    let script = |name: &str| {
        s.program(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(name),
        )
        .env("REMOTE", "backups")
        .env("METRICS_FILE", PROM)
        .env("RECORDS", "records.jsonl")
    };
    script("backup-databases")
        .env("DATABASES", "storage")
        .run()
        .success();
    let remote = s
        .join("backups")
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    let p = parse(&s.join(PROM));
    assert_eq!(p.dbs(), ["production", "production_queue"]);
    let records = std::fs::read_to_string(s.join("records.jsonl")).unwrap();
    let objects: Vec<Value> = records
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2, "records still reach RECORDS");
    for object in &objects {
        assert_backup(&p, &remote, &[object]);
    }

    script("restore-drill")
        .env("DATABASES", "production nonexistent")
        .run()
        .expect_code(1)
        .stderr_has("drill failed for: nonexistent");
    let p = parse(&s.join(PROM));
    assert_eq!(
        p.value(
            "sqlkeep_drill_ok",
            &[("db", "production"), ("remote", &remote)]
        ),
        1.0
    );
    assert_eq!(p.value("sqlkeep_drill_ok", &[("db", "nonexistent")]), 0.0);
    assert!(
        p.get(
            "sqlkeep_drill_ok",
            &[("db", "production_queue"), ("remote", &remote)]
        )
        .is_none()
    );
}

/// SIGKILLed at seeded random moments of a run that rewrites a textfile of
/// 2,000 databases: whenever it dies, the file parses and names every
/// database (never torn or truncated), and the next run leaves no
/// temporary file behind.
#[test]
fn killed_at_random_the_textfile_is_never_torn() {
    const SEED: u64 = 0x6d65_7472_6963_7331;
    const DATABASES: usize = 2000;
    let s = Scratch::new();
    std::fs::create_dir(s.join("metrics")).unwrap();
    let records: String = (0..DATABASES)
        .map(|i| record(&format!("tenants/t{i:04}/production"), i as u64))
        .collect();
    std::fs::write(s.join("records.jsonl"), &records).unwrap();
    let metrics = || {
        let mut command = s
            .tool("sqlkeep-metrics")
            .args(["-q", "--textfile", PROM])
            .command();
        command
            .stdin(std::fs::File::open(s.join("records.jsonl")).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    // The first run creates the file (and builds the tools, when they are
    // not built yet); the second one measures a run that rewrites it.
    assert!(metrics().status().unwrap().success());
    assert_eq!(parse(&s.join(PROM)).dbs().len(), DATABASES);
    let started = std::time::Instant::now();
    assert!(metrics().status().unwrap().success());
    let span = started.elapsed();

    let summary = campaign(SEED, span, 10, 1, |kill, at| {
        let mut child = metrics().spawn().unwrap();
        // The moment of the fault, not a synchronisation: the run is
        // killed wherever it happens to be.
        std::thread::sleep(at);
        let landed = matches!(child.try_wait(), Ok(None));
        let _ = child.kill();
        child.wait().unwrap();
        let p = parse(&s.join(PROM));
        assert_eq!(
            p.dbs().len(),
            DATABASES,
            "seed {SEED:#x} kill {kill} at {at:?}"
        );
        landed
    });
    eprintln!("sqlkeep-metrics: {summary}");
    assert!(metrics().status().unwrap().success());
    assert_eq!(debris(&s.join("metrics")), Vec::<String>::new());
    assert_eq!(
        list_files(&s.join("metrics")),
        ["sqlkeep.prom", "sqlkeep.prom.json"]
    );
}
