//! sqlite-verify as the end of a restore drill: it must fail loudly.

use crate::support::{Scratch, make_db};
use rusqlite::Connection;

/// An empty input (the restore upstream failed) fails the drill.
#[test]
fn nothing_to_verify_fails() {
    let s = Scratch::new();
    let run = s.tool("sqlite-verify").stdin("").run().expect_code(1);
    assert!(
        run.stderr().contains("nothing to verify"),
        "{}",
        run.stderr()
    );
    // And so does the whole drill when the prefix does not exist.
    let pull = s
        .tool("bucket-pull")
        .args(["remote/app", "-o", "d.sqlite3"])
        .run()
        .expect_code(3);
    s.tool("sqlite-verify")
        .stdin(pull.stdout())
        .run()
        .expect_code(1);
}

/// Stale snapshots fail --max-age; fresh ones pass.
#[test]
fn max_age_uses_taken_at() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, false);
    let snap = s.snap("snaps", "app.sqlite3");
    let mut record = snap.record();
    s.tool("sqlite-verify")
        .arg("--max-age")
        .arg("1h")
        .stdin(snap.stdout())
        .run()
        .success();
    record["taken_at"] = "2026-01-01T00:00:00Z".into();
    let run = s
        .tool("sqlite-verify")
        .args(["--max-age", "26h"])
        .stdin(record.to_string())
        .run()
        .expect_code(1);
    let r = run.record();
    assert_eq!(r["failed"], serde_json::json!(["max_age"]));
    assert!(
        r["checks"]["max_age"]
            .as_str()
            .unwrap()
            .starts_with("failed: taken "),
        "{r}"
    );
    // A plain database with no record has no taken_at to check.
    let run = s
        .tool("sqlite-verify")
        .args(["--max-age", "26h", "app.sqlite3"])
        .run()
        .expect_code(1);
    assert!(
        run.record()["checks"]["max_age"]
            .as_str()
            .unwrap()
            .contains("no taken_at known")
    );
}

/// Expectations on tables and rows.
#[test]
fn expectations() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, false);
    let pass = s
        .tool("sqlite-verify")
        .args([
            "--expect-table",
            "users",
            "--min-rows",
            "posts=15",
            "app.sqlite3",
        ])
        .run()
        .success();
    assert_eq!(pass.record()["tables"]["posts"], 15);
    let run = s
        .tool("sqlite-verify")
        .args([
            "--expect-table",
            "accounts",
            "--min-rows",
            "posts=16",
            "app.sqlite3",
        ])
        .run()
        .expect_code(1);
    assert_eq!(
        run.record()["failed"],
        serde_json::json!(["table:accounts", "min_rows:posts"])
    );
}

/// A corrupted page and a broken foreign key are both caught.
#[test]
fn corruption_and_foreign_keys() {
    let s = Scratch::new();
    let db = s.join("fk.sqlite3");
    make_db(&db, 5, false);
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF; INSERT INTO posts (user_id, body) VALUES (999, 'orphan');",
    )
    .unwrap();
    drop(conn);
    let run = s
        .tool("sqlite-verify")
        .arg("fk.sqlite3")
        .run()
        .expect_code(1);
    let r = run.record();
    assert_eq!(r["failed"], serde_json::json!(["foreign_key_check"]));
    assert!(
        r["checks"]["foreign_key_check"]
            .as_str()
            .unwrap()
            .contains("posts row"),
        "{r}"
    );

    let db = s.join("corrupt.sqlite3");
    make_db(&db, 300, false);
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    for b in &mut bytes[3 * page..4 * page] {
        *b = 0x5a;
    }
    std::fs::write(&db, bytes).unwrap();
    let run = s
        .tool("sqlite-verify")
        .arg("corrupt.sqlite3")
        .run()
        .expect_code(1);
    let r = run.record();
    assert_eq!(r["ok"], false);
    assert!(
        r["failed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "integrity_check"),
        "{r}"
    );
}

/// A compressed snapshot is checked against both of its digests.
#[test]
fn snapshot_digests_are_checked() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 20, false);
    let snap = s.snap("snaps", "app.sqlite3");
    let ok = s.tool("sqlite-verify").stdin(snap.stdout()).run().success();
    let r = ok.record();
    assert_eq!(
        (
            r["checks"]["sha256"].as_str(),
            r["checks"]["raw_sha256"].as_str()
        ),
        (Some("ok"), Some("ok"))
    );
    let mut record = snap.record();
    record["raw_sha256"] = "0".repeat(64).into();
    let bad = s
        .tool("sqlite-verify")
        .stdin(record.to_string())
        .run()
        .expect_code(1);
    assert_eq!(bad.record()["failed"], serde_json::json!(["raw_sha256"]));
}
