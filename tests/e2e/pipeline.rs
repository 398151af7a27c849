//! The main job end to end, through the real binaries: snapshot, push to a
//! local directory remote, pull the latest back, verify it.

use crate::support::{Scratch, count, make_db, sha256_file, stem_of};
use serde_json::Value;
use std::path::Path;

/// `sqlite-snap app.sqlite3 | bucket-push ./remote`, then
/// `bucket-pull ./remote/app --latest -o restored.sqlite3 | sqlite-verify`.
#[test]
fn backup_restore_verify_round_trip() {
    let s = Scratch::new();
    let db = s.join("app.sqlite3");
    make_db(&db, 500, true);

    let snap = s.tool("sqlite-snap").arg("app.sqlite3").run().success();
    let snapshot = snap.record();
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["temporary"], true);
    let push = s
        .tool("bucket-push")
        .arg("./remote")
        .stdin(snap.stdout())
        .run()
        .success();
    let object = push.record();
    assert_eq!(object["type"], "object");
    for field in [
        "db",
        "taken_at",
        "raw_sha256",
        "sha256",
        "page_size",
        "method",
    ] {
        assert_eq!(
            object[field], snapshot[field],
            "{field} not carried through bucket-push"
        );
    }
    let stamp = stem_of(&snapshot);
    assert_eq!(
        s.files_in("remote"),
        [
            format!("app/{stamp}.json"),
            format!("app/{stamp}.sqlite3.zst"),
            "app/latest.json".to_string()
        ]
    );
    // The temporary snapshot is gone once stored; nothing is left behind.
    assert!(!Path::new(snapshot["path"].as_str().unwrap()).exists());
    assert!(object.get("path").is_none());
    assert_eq!(object["requests"]["put"], 3);

    let pull = s
        .tool("bucket-pull")
        .args(["./remote/app", "--latest", "-o", "restored.sqlite3"])
        .run()
        .success();
    let restored = pull.record();
    assert_eq!(restored["type"], "restored");
    assert_eq!(restored["raw_sha256"], snapshot["raw_sha256"]);
    assert_eq!(restored["taken_at"], snapshot["taken_at"]);
    assert_eq!(restored["requests"]["get"], 2, "latest.json and the object");
    let restored_path = s.join("restored.sqlite3");
    assert_eq!(
        sha256_file(&restored_path),
        snapshot["raw_sha256"].as_str().unwrap()
    );

    let verify = s
        .tool("sqlite-verify")
        .args([
            "--max-age",
            "1h",
            "--expect-table",
            "users",
            "--min-rows",
            "posts=1500",
        ])
        .stdin(pull.stdout())
        .run()
        .success();
    let verified = verify.record();
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["checks"]["raw_sha256"], "ok");
    for table in ["users", "posts"] {
        assert_eq!(
            verified["tables"][table],
            count(&db, table),
            "{table} row count differs from the source"
        );
        assert_eq!(count(&restored_path, table), count(&db, table));
    }
}

/// Pushing two snapshots keeps both; latest.json names the newer, and an
/// older snapshot pushed later does not take latest.json back.
#[test]
fn latest_names_the_newest_snapshot() {
    let s = Scratch::new();
    let db = s.join("app.sqlite3");
    make_db(&db, 10, false);
    let older = record_at(&s, &db, "2026-11-20T03:00:00Z");
    let newer = record_at(&s, &db, "2026-11-21T03:00:00Z");
    let lines = format!("{newer}\n{older}\n");
    s.tool("bucket-push")
        .arg("remote")
        .stdin(lines)
        .run()
        .success();
    let latest: Value =
        serde_json::from_slice(&std::fs::read(s.join("remote/app/latest.json")).unwrap()).unwrap();
    assert_eq!(latest["taken_at"], "2026-11-21T03:00:00Z");
    assert!(
        s.join(&format!("remote/app/{}.sqlite3.zst", stem_of(&older)))
            .exists()
    );
    let pull = s
        .tool("bucket-pull")
        .args(["remote/app", "-o", "r.sqlite3"])
        .run()
        .success();
    assert_eq!(pull.record()["taken_at"], "2026-11-21T03:00:00Z");
}

/// A snapshot record whose taken_at is set in the past, as retention
/// tests and re-pushes of old snapshots produce.
fn record_at(s: &Scratch, db: &Path, taken_at: &str) -> Value {
    let out = s.join(&format!("snaps-{}", taken_at.replace(':', "")));
    let run = s
        .tool("sqlite-snap")
        .arg("-o")
        .arg(&out)
        .arg(db)
        .run()
        .success();
    let mut record = run.record();
    record["taken_at"] = taken_at.into();
    record
}

/// Pulling an object address, and an `object` record on stdin.
#[test]
fn pull_by_object_address_and_by_record() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 20, true);
    let snap = s.snap("snaps", "app.sqlite3");
    let push = s
        .tool("bucket-push")
        .arg("remote")
        .stdin(snap.stdout())
        .run()
        .success();
    let url = push.record()["url"].as_str().unwrap().to_string();

    let by_address = s
        .tool("bucket-pull")
        .arg(&url)
        .args(["-o", "a.sqlite3"])
        .run()
        .success();
    assert_eq!(
        by_address.record()["requests"]["get"],
        2,
        "the manifest and the object"
    );
    assert_eq!(count(&s.join("a.sqlite3"), "users"), 20);

    let by_record = s
        .tool("bucket-pull")
        .args(["-o", "b.sqlite3"])
        .stdin(push.stdout())
        .run()
        .success();
    assert_eq!(
        by_record.record()["requests"]["get"],
        1,
        "the record is the manifest"
    );
    assert_eq!(
        sha256_file(&s.join("a.sqlite3")),
        sha256_file(&s.join("b.sqlite3"))
    );

    // A directory as -o restores as <db>.sqlite3 inside it.
    std::fs::create_dir(s.join("into")).unwrap();
    s.tool("bucket-pull")
        .args(["remote/app", "-o", "into"])
        .run()
        .success();
    assert_eq!(count(&s.join("into/app.sqlite3"), "users"), 20);
}

/// An existing database is never replaced without --force; --if-missing
/// leaves it alone and succeeds; --force replaces it and removes the old
/// database's -wal and -shm.
#[test]
fn restore_safety_rules() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 30, true);
    s.tool("sqlite-snap").arg("app.sqlite3").run().success();
    let snap = s.tool("sqlite-snap").arg("app.sqlite3").run().success();
    s.tool("bucket-push")
        .arg("remote")
        .stdin(snap.stdout())
        .run()
        .success();

    let live = s.join("live.sqlite3");
    make_db(&live, 5, false);
    let before = sha256_file(&live);
    let refused = s
        .tool("bucket-pull")
        .args(["remote/app", "-o", "live.sqlite3"])
        .run()
        .expect_code(5)
        .stderr_has("exists and is not empty; refusing to replace it without --force");
    assert!(refused.stdout().is_empty());
    assert_eq!(sha256_file(&live), before, "the live database was touched");

    let skipped = s
        .tool("bucket-pull")
        .args(["remote/app", "-o", "live.sqlite3", "--if-missing"])
        .run()
        .success()
        .stderr_has("SKIP");
    assert!(skipped.stdout().is_empty());
    assert_eq!(sha256_file(&live), before);

    // A zero-length file is the failed-first-boot case: --if-missing restores.
    std::fs::write(s.join("empty.sqlite3"), b"").unwrap();
    s.tool("bucket-pull")
        .args(["remote/app", "-o", "empty.sqlite3", "--if-missing"])
        .run()
        .success();
    assert_eq!(count(&s.join("empty.sqlite3"), "users"), 30);

    std::fs::write(s.join("live.sqlite3-wal"), b"stale wal frames").unwrap();
    std::fs::write(s.join("live.sqlite3-shm"), b"stale shm").unwrap();
    let forced = s
        .tool("bucket-pull")
        .args(["remote/app", "-o", "live.sqlite3", "--force"])
        .run()
        .success();
    assert_eq!(forced.record()["replaced"], true);
    assert!(!s.join("live.sqlite3-wal").exists() && !s.join("live.sqlite3-shm").exists());
    assert_eq!(count(&live, "users"), 30);
    assert_eq!(
        s.files_in(".")
            .iter()
            .filter(|f| f.contains("sqlkeep-tmp"))
            .count(),
        0,
        "temporary files left behind"
    );
}

/// A disaster: the database and its directory are gone; one command with
/// --if-missing brings them back.
#[test]
fn restore_into_a_missing_directory() {
    let s = Scratch::new();
    std::fs::create_dir(s.join("storage")).unwrap();
    make_db(&s.join("storage/production.sqlite3"), 40, true);
    let snap = s.tool("sqlite-snap").arg("storage/").run().success();
    s.tool("bucket-push")
        .arg("backups")
        .stdin(snap.stdout())
        .run()
        .success();
    std::fs::remove_dir_all(s.join("storage")).unwrap();
    s.tool("bucket-pull")
        .args([
            "backups/production",
            "--if-missing",
            "-o",
            "storage/production.sqlite3",
        ])
        .run()
        .success();
    assert_eq!(count(&s.join("storage/production.sqlite3"), "posts"), 120);
}

/// A plain file that is not a snapshot is stored under its name with a
/// manifest carrying its SHA-256, and restores byte for byte.
#[test]
fn plain_files_round_trip() {
    let s = Scratch::new();
    std::fs::write(s.join("notes.txt"), b"not a database\n").unwrap();
    let push = s
        .tool("bucket-push")
        .args(["remote", "notes.txt"])
        .run()
        .success();
    let object = push.record();
    assert_eq!(object["sha256"], sha256_file(&s.join("notes.txt")));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(s.join("remote/notes.txt.json")).unwrap()).unwrap();
    assert_eq!(manifest["sha256"], object["sha256"]);
    s.tool("bucket-pull")
        .args(["remote/notes.txt", "-o", "back.txt"])
        .run()
        .success();
    assert_eq!(
        std::fs::read(s.join("back.txt")).unwrap(),
        b"not a database\n"
    );
}
