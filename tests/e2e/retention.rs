//! History: retention on bucket-push, selection by time on bucket-pull,
//! and the restore drill failing loudly.

use crate::s3server::{BUCKET, S3Server};
use crate::support::{Scratch, list_files, make_db, stamp_of};
use rusqlite::Connection;
use serde_json::Value;
use sqlkeep_common::time::Timestamp;
use std::collections::BTreeSet;

/// One snapshot file and its record; records with other `taken_at`s are
/// made from it (a snapshot's name and stamp come from its record).
fn snapshot(s: &Scratch, db: &str) -> Value {
    make_db(&s.join(&format!("{db}.sqlite3")), 10, false);
    s.snap("snaps", &format!("{db}.sqlite3")).record()
}

/// `count` records an hour apart starting at `start`.
fn hourly(record: &Value, start: &str, count: i64) -> Vec<String> {
    let t0 = Timestamp::parse_rfc3339(start).unwrap().unix();
    (0..count)
        .map(|h| {
            let mut r = record.clone();
            r["taken_at"] = Timestamp::from_unix(t0 + h * 3600).rfc3339().into();
            r.to_string()
        })
        .collect()
}

/// The snapshot stamps stored for `db` in a local remote, each checked to
/// have both its object and its manifest.
fn stored(dir: &std::path::Path) -> BTreeSet<String> {
    let files = list_files(dir);
    let objects: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.strip_suffix(".sqlite3.zst").map(str::to_string))
        .collect();
    let manifests: BTreeSet<String> = files
        .iter()
        .filter(|f| *f != "latest.json")
        .filter_map(|f| f.strip_suffix(".json").map(str::to_string))
        .collect();
    assert_eq!(
        objects, manifests,
        "an object without its manifest, or the reverse"
    );
    objects.iter().map(|stem| stamp_of(stem)).collect()
}

/// Hourly snapshots over 40 days, 2026-01-05 (a Monday) 00:00 to
/// 2026-02-13 (a Friday) 23:00, with `--keep-daily 7 --keep-weekly 4
/// --keep-monthly 6`. Worked out by hand:
/// - daily 7: the last hour of 7–13 February;
/// - weekly 4: the newest of ISO weeks 7 (13 Feb), 6 (Sun 8 Feb),
///   5 (Sun 1 Feb) and 4 (Sun 25 Jan);
/// - monthly 6: the newest of February (13 Feb) and January (31 Jan);
///
/// ten snapshots in all.
#[test]
fn forty_days_of_hourly_snapshots() {
    let s = Scratch::new();
    let record = snapshot(&s, "app");
    let lines = hourly(&record, "2026-01-05T00:00:00Z", 40 * 24).join("\n");
    let push = s
        .tool("bucket-push")
        .args([
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
            "--keep-monthly",
            "6",
            "remote",
        ])
        .stdin(lines)
        .run()
        .success();
    let expected: BTreeSet<String> = [
        "20260125T230000Z",
        "20260131T230000Z",
        "20260201T230000Z",
        "20260207T230000Z",
        "20260208T230000Z",
        "20260209T230000Z",
        "20260210T230000Z",
        "20260211T230000Z",
        "20260212T230000Z",
        "20260213T230000Z",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(stored(&s.join("remote/app")), expected);
    let latest: Value =
        serde_json::from_slice(&std::fs::read(s.join("remote/app/latest.json")).unwrap()).unwrap();
    assert_eq!(latest["taken_at"], "2026-02-13T23:00:00Z");

    let records = push.records();
    assert_eq!(records.len(), 960);
    for r in &records {
        assert_eq!(r["requests"]["list"], 1, "one listing per pruning run: {r}");
        assert_eq!(r["requests"]["head"], 0);
    }
    let last = records.last().unwrap();
    assert_eq!(last["retention"]["kept"].as_array().unwrap().len(), 10);
    // The second hour's push pruned the first: it was not the newest of
    // its day any more.
    assert_eq!(
        records[1]["retention"]["deleted"],
        serde_json::json!(["2026-01-05T00:00:00Z"])
    );
    assert_eq!(records[1]["requests"]["delete"], 2, "manifest and object");
}

/// Retention on S3: one LIST per pruning run, single DELETEs, and exactly
/// the union of the rules left.
#[test]
fn retention_on_s3() {
    let s = Scratch::new();
    let (server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let record = snapshot(&s, "app");
    let lines = hourly(&record, "2026-03-01T00:00:00Z", 48).join("\n");
    s.tool("bucket-push")
        .args([
            "--keep-hourly",
            "3",
            "--keep-daily",
            "2",
            &format!("s3://{BUCKET}/db"),
        ])
        .envs(&env)
        .stdin(lines)
        .run()
        .success();
    let expected: BTreeSet<String> = [
        "20260301T230000Z",
        "20260302T210000Z",
        "20260302T220000Z",
        "20260302T230000Z",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(stored(&server.path("db/app")), expected);
    assert_eq!(
        proxy.count("GET", "list-type=2"),
        48,
        "one listing per upload"
    );
    assert_eq!(
        proxy.count_ok("DELETE", ""),
        2 * (48 - 4),
        "a manifest and an object per pruned snapshot"
    );
    assert_eq!(proxy.count("POST", "delete"), 0, "no batch delete");
    assert_eq!(proxy.count("HEAD", ""), 0);
}

/// The snapshot just uploaded and the newest one are never deleted; a dry
/// run deletes and stores nothing; a failed upload prunes nothing.
#[test]
fn retention_safety() {
    let s = Scratch::new();
    let record = snapshot(&s, "app");
    let newer = hourly(&record, "2026-05-10T03:00:00Z", 1).remove(0);
    let older = hourly(&record, "2026-05-01T03:00:00Z", 1).remove(0);
    s.tool("bucket-push")
        .args(["--keep-last", "1", "remote"])
        .stdin(newer)
        .run()
        .success();
    let push = s
        .tool("bucket-push")
        .args(["--keep-last", "1", "remote"])
        .stdin(older.clone())
        .run()
        .success();
    assert_eq!(
        stored(&s.join("remote/app")),
        ["20260501T030000Z", "20260510T030000Z"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(push.record()["retention"]["deleted"], serde_json::json!([]));

    let later = hourly(&record, "2026-05-11T03:00:00Z", 1).remove(0);
    let before = list_files(&s.join("remote"));
    let dry = s
        .tool("bucket-push")
        .args(["--keep-last", "1", "--dry-run", "remote"])
        .stdin(later)
        .run()
        .success();
    let r = dry.record();
    assert_eq!(r["dry_run"], true);
    assert_eq!(
        r["retention"]["would_delete"],
        serde_json::json!(["2026-05-01T03:00:00Z", "2026-05-10T03:00:00Z"])
    );
    assert_eq!(
        list_files(&s.join("remote")),
        before,
        "a dry run changed the remote"
    );

    // A snapshot that fails its checksum is not stored, and nothing is pruned.
    let mut bad: Value =
        serde_json::from_str(&hourly(&record, "2026-05-12T03:00:00Z", 1).remove(0)).unwrap();
    bad["sha256"] = "0".repeat(64).into();
    s.tool("bucket-push")
        .args(["--keep-last", "1", "remote"])
        .stdin(bad.to_string())
        .run()
        .expect_code(1)
        .stderr_has("checksum mismatch");
    assert_eq!(list_files(&s.join("remote")), before);
}

/// A database whose content tells which snapshot it came from: `n` rows.
fn snapshot_with_rows(s: &Scratch, n: i64, taken_at: &str) -> String {
    let db = s.join("app.sqlite3");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE IF NOT EXISTS marks (n INTEGER);")
        .unwrap();
    conn.execute("INSERT INTO marks VALUES (?1)", [n]).unwrap();
    drop(conn);
    let mut r = s
        .tool("sqlite-snap")
        .args(["-o", &format!("snaps-{n}"), "app.sqlite3"])
        .run()
        .success()
        .record();
    r["taken_at"] = taken_at.into();
    r.to_string()
}

/// `--at` restores the newest snapshot taken at or before the time.
#[test]
fn at_picks_the_right_snapshot() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let times = [
        "2026-11-18T03:00:00Z",
        "2026-11-19T03:00:00Z",
        "2026-11-20T03:00:00Z",
        "2026-11-20T15:00:00Z",
    ];
    let lines: Vec<String> = times
        .iter()
        .enumerate()
        .map(|(i, t)| snapshot_with_rows(&s, i as i64 + 1, t))
        .collect();
    let remotes = ["local".to_string(), format!("s3://{BUCKET}/db")];
    for remote in &remotes {
        s.tool("bucket-push")
            .arg(remote)
            .envs(&env)
            .stdin(lines.join("\n"))
            .run()
            .success();
    }
    for remote in &remotes {
        for (at, rows, taken) in [
            ("2026-11-20T12:00:00Z", 3, "2026-11-20T03:00:00Z"),
            ("2026-11-20T15:00:00Z", 4, "2026-11-20T15:00:00Z"),
            ("2026-11-19", 2, "2026-11-19T03:00:00Z"),
            ("2026-11-20T14:00:00+01:00", 3, "2026-11-20T03:00:00Z"),
        ] {
            proxy.reset_seen();
            let out = s.join("at.sqlite3");
            let _ = std::fs::remove_file(&out);
            let run = s
                .tool("bucket-pull")
                .args([&format!("{remote}/app"), "--at", at, "-o", "at.sqlite3"])
                .envs(&env)
                .run()
                .success();
            let r = run.record();
            assert_eq!(r["taken_at"], taken, "{remote} --at {at}");
            let conn = Connection::open(&out).unwrap();
            let count: i64 = conn
                .query_row("SELECT count(*) FROM marks", [], |r| r.get(0))
                .unwrap();
            assert_eq!(
                count, rows,
                "{remote} --at {at}: the wrong snapshot's content"
            );
            if remote.starts_with("s3://") {
                let seen = proxy.seen();
                let kinds: Vec<&str> = seen
                    .iter()
                    .map(|r| {
                        if r.target.contains("list-type") {
                            "LIST"
                        } else {
                            r.method.as_str()
                        }
                    })
                    .collect();
                assert_eq!(
                    kinds,
                    ["LIST", "GET", "GET"],
                    "a listing, the manifest, the object"
                );
            }
        }
        s.tool("bucket-pull")
            .args([
                &format!("{remote}/app"),
                "--at",
                "2026-11-17",
                "-o",
                "none.sqlite3",
            ])
            .envs(&env)
            .run()
            .expect_code(3)
            .stderr_has("no snapshot under");
        s.tool("bucket-pull")
            .args([&format!("{remote}/app"), "--at", "yesterday"])
            .envs(&env)
            .run()
            .expect_code(2);
    }
}

/// The drill of the README, as a shell pipeline: it passes on a good
/// backup and fails on a stale, a missing and a corrupted one.
#[test]
fn the_drill_fails_loudly() {
    let s = Scratch::new();
    let drill = |remote: &str| {
        let script = format!(
            "bucket-pull {remote} --latest -o drill.sqlite3 --force | sqlite-verify --max-age 26h --expect-table users"
        );
        let path = format!(
            "{}:{}",
            crate::support::bin_dir().display(),
            std::env::var("PATH").unwrap()
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .current_dir(s.path())
            .env("PATH", path)
            .env("TMPDIR", s.join(".tmp"))
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    make_db(&s.join("app.sqlite3"), 20, true);
    std::fs::create_dir_all(s.join(".tmp")).unwrap();
    let snap = s.snap("snaps", "app.sqlite3");
    s.tool("bucket-push")
        .arg("good")
        .stdin(snap.stdout())
        .run()
        .success();
    assert_eq!(drill("good/app").0, 0, "a fresh, intact backup passes");

    let mut stale = snap.record();
    stale["taken_at"] = "2026-01-01T03:00:00Z".into();
    s.tool("bucket-push")
        .arg("stale")
        .stdin(stale.to_string())
        .run()
        .success();
    let (code, err) = drill("stale/app");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("max_age failed"), "{err}");

    let (code, err) = drill("missing/app");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no snapshot under") && err.contains("nothing to verify"),
        "{err}"
    );

    s.tool("bucket-push")
        .arg("corrupt")
        .stdin(snap.stdout())
        .run()
        .success();
    let object = list_files(&s.join("corrupt/app"))
        .into_iter()
        .find(|f| f.ends_with(".zst"))
        .unwrap();
    let path = s.join(&format!("corrupt/app/{object}"));
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let (code, err) = drill("corrupt/app");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("damaged snapshot"), "{err}");
}
