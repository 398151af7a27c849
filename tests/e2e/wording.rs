//! Errors that say what happened (issue 10, "Wrong words"), and the
//! storage faults behind some of them: a hot journal, a bad `-o`, an
//! rclone config line rclone would refuse, days that do not exist, a
//! multipart completion whose answer is lost, a fatal part, an object
//! replaced while it downloads.

use crate::proxy::Fault;
use crate::s3server::{BUCKET, S3Server};
use crate::support::{Scratch, make_big_db, make_db, sha256_file};
use std::process::Command;

/// A database with a hot journal: a process changed pages of the main
/// file inside a transaction and died before committing.
fn hot_journal_db(path: &std::path::Path) {
    let script = "import os,sqlite3,sys\n\
        c=sqlite3.connect(sys.argv[1],isolation_level=None)\n\
        c.execute('PRAGMA journal_mode=DELETE')\n\
        c.execute('CREATE TABLE t(x BLOB)')\n\
        c.execute('BEGIN')\n\
        for i in range(200): c.execute('INSERT INTO t VALUES (randomblob(4000))')\n\
        c.execute('COMMIT')\n\
        c.execute('PRAGMA cache_size=2')\n\
        c.execute('BEGIN')\n\
        c.execute('UPDATE t SET x=randomblob(4000)')\n\
        os._exit(0)\n";
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    let journal = format!("{}-journal", path.display());
    assert!(
        std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0),
        "no hot journal was left"
    );
}

/// A hot journal is named as such, with what to do, instead of "attempt
/// to write a readonly database: Error code 776".
#[test]
fn a_hot_journal_says_what_to_do() {
    let s = Scratch::new();
    hot_journal_db(&s.join("app.sqlite3"));
    let before = sha256_file(&s.join("app.sqlite3"));
    let hint = "has a hot journal: open it once with the application (or sqlite3) to roll it back";
    let snap = s
        .tool("sqlite-snap")
        .args(["-o", "snaps", "app.sqlite3"])
        .run()
        .expect_code(1);
    assert!(snap.stderr().contains(hint), "{}", snap.stderr());
    assert!(!snap.stderr().contains("776"), "{}", snap.stderr());
    let verify = s
        .tool("sqlite-verify")
        .arg("app.sqlite3")
        .run()
        .expect_code(1);
    assert!(verify.stdout().contains(hint), "{}", verify.stdout());
    // Neither tool rolled it back: that is the application's to do.
    assert_eq!(sha256_file(&s.join("app.sqlite3")), before);
}

/// `-o DIR/` names a directory, created before anything is downloaded; an
/// `-o` that cannot be used fails at once, before any request.
#[test]
fn a_missing_output_directory_is_made_or_refused_first() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    make_db(&s.join("app.sqlite3"), 5, false);
    let snap = s.snap("snaps", "app.sqlite3");
    let remote = format!("s3://{BUCKET}/db");
    s.push(&remote, &env, snap.stdout());
    let run = s
        .tool("bucket-pull")
        .args([&format!("{remote}/app"), "-o", "new/dir/"])
        .envs(&env)
        .run()
        .success();
    assert_eq!(
        run.record()["path"],
        s.join("new/dir/app.sqlite3")
            .canonicalize()
            .unwrap()
            .display()
            .to_string()
    );
    std::fs::write(s.join("plain"), b"a file").unwrap();
    proxy.reset_seen();
    let refused = s
        .tool("bucket-pull")
        .args([&format!("{remote}/app"), "-o", "plain/"])
        .envs(&env)
        .run()
        .expect_code(2);
    assert!(
        refused.stderr().contains("is not a directory"),
        "{}",
        refused.stderr()
    );
    assert!(proxy.seen().is_empty(), "refused before any request");
}

/// An rclone config line rclone itself would refuse is refused the same
/// way (exit 2), naming the file and line and never the line's value.
#[test]
fn a_config_line_rclone_would_refuse_is_refused() {
    let s = Scratch::new();
    std::fs::write(
        s.join("rclone.conf"),
        "[b2]\ntype = s3\nsecret_access_key SECRET-VALUE-123\n",
    )
    .unwrap();
    let run = s
        .tool("bucket-pull")
        .arg("b2:bucket/db/app")
        .env("RCLONE_CONFIG", s.join("rclone.conf"))
        .run()
        .expect_code(2);
    assert!(
        run.stderr().contains("rclone.conf line 3"),
        "{}",
        run.stderr()
    );
    assert!(
        !run.stderr().contains("SECRET-VALUE-123"),
        "{}",
        run.stderr()
    );
}

/// Days that do not exist (30 February) are refused wherever a time is
/// read: flags, records, object names.
#[test]
fn days_that_do_not_exist_are_refused_everywhere() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, false);
    let mut record = s.snap("snaps", "app.sqlite3").record();
    for at in [
        "2026-02-30",
        "2026-02-30T10:00:00Z",
        "2025-02-29",
        "2026-04-31T00:00:00Z",
    ] {
        let run = s
            .tool("bucket-pull")
            .args(["remote/app", "--at", at])
            .run()
            .expect_code(2);
        assert!(run.stderr().contains("bad --at"), "{at}: {}", run.stderr());
    }
    record["taken_at"] = "2026-02-30T03:00:00Z".into();
    let push = s
        .tool("bucket-push")
        .arg("remote")
        .stdin(record.to_string())
        .run()
        .expect_code(1);
    assert!(push.stderr().contains("taken_at"), "{}", push.stderr());
    let verify = s
        .tool("sqlite-verify")
        .args(["--max-age", "1d"])
        .stdin(record.to_string())
        .run()
        .expect_code(1);
    assert!(
        verify.stdout().contains("bad taken_at"),
        "{}",
        verify.stdout()
    );
    assert!(!s.join("remote").exists());

    // An object named with a stamp that does not exist is not a restore
    // point (it once listed as 2 March).
    let good = s.snap("snaps2", "app.sqlite3");
    s.push("remote", &[], good.stdout());
    std::fs::write(s.join("remote/app/20260230T030000Z.sqlite3.zst"), b"x").unwrap();
    let list = s
        .tool("bucket-pull")
        .args(["remote/app", "--list"])
        .run()
        .success();
    assert_eq!(list.records().len(), 1, "{}", list.stdout());
    assert!(!list.stdout().contains("2026-03-02"), "{}", list.stdout());
}

/// A snapshot stored in parts, from a big database.
fn big_snapshot(s: &Scratch) -> serde_json::Value {
    make_big_db(&s.join("big.sqlite3"), 20);
    s.snap("snaps", "big.sqlite3").record()
}

/// A multipart completion whose answer never arrives whole: the object is
/// looked up (one HEAD) and found complete, so the upload is neither
/// aborted nor reported as failed.
#[test]
fn a_completed_upload_whose_answer_is_lost_is_not_aborted() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let record = big_snapshot(&s);
    proxy.inject("POST", "uploadId=", Fault::Truncate(20), 1);
    let push = s
        .tool("bucket-push")
        .arg(format!("s3://{BUCKET}/db"))
        .envs(&env)
        .stdin(record.to_string())
        .run()
        .success();
    assert_eq!(proxy.count("HEAD", ""), 1, "{:#?}", proxy.seen());
    assert_eq!(proxy.count("DELETE", "uploadId="), 0, "not aborted");
    assert_eq!(push.record()["sha256"], record["sha256"]);
    s.tool("bucket-pull")
        .arg(format!("s3://{BUCKET}/db/big"))
        .args(["-o", "back.sqlite3"])
        .envs(&env)
        .run()
        .success();
    assert_eq!(
        sha256_file(&s.join("back.sqlite3")),
        record["raw_sha256"].as_str().unwrap()
    );
}

/// A fatal error on one part stops the whole upload at once: the other
/// parts are not sent, and the upload is aborted.
#[test]
fn a_fatal_part_error_stops_the_upload_at_once() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let record = big_snapshot(&s);
    let parts = record["bytes"]
        .as_u64()
        .unwrap()
        .div_ceil(sqlkeep_common::store::part_size(
            record["bytes"].as_u64().unwrap(),
        ));
    assert!(parts >= 3, "{parts}");
    proxy.inject(
        "PUT",
        "partNumber=1&",
        Fault::Status(403, "AccessDenied"),
        1,
    );
    let push = s
        .tool("bucket-push")
        .arg(format!("s3://{BUCKET}/db"))
        .envs(&env)
        .stdin(record.to_string())
        .run()
        .expect_code(2);
    assert!(push.stderr().contains("access denied"), "{}", push.stderr());
    let sent = proxy.count("PUT", "partNumber=");
    assert!(
        sent <= 3,
        "{sent} of {parts} parts were sent after a fatal error"
    );
    assert_eq!(proxy.count("DELETE", "uploadId="), 1, "aborted");
}

/// A download resumed after a fault asks for the same object (If-Match on
/// its ETag); if the object was replaced meanwhile, the restore fails and
/// the target is untouched: never the start of one object spliced to the
/// rest of another.
#[test]
fn a_resumed_download_never_splices_two_objects() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    make_db(&s.join("app.sqlite3"), 300, false);
    let snap = s.snap("snaps", "app.sqlite3");
    let remote = format!("s3://{BUCKET}/db");
    s.push(&remote, &env, snap.stdout());

    proxy.reset_seen();
    proxy.inject("GET", ".sqlite3.zst", Fault::Truncate(1000), 1);
    s.tool("bucket-pull")
        .args([&format!("{remote}/app"), "-o", "one.sqlite3"])
        .envs(&env)
        .run()
        .success();
    let gets: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|r| r.method == "GET" && r.target.ends_with(".sqlite3.zst"))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert_eq!(gets[1].range.as_deref(), Some("bytes=1000-"));
    assert!(
        gets[1].if_match.as_deref().is_some_and(|t| t.len() > 2),
        "{gets:#?}"
    );

    std::fs::write(s.join("two.sqlite3"), b"").unwrap();
    proxy.inject("GET", ".sqlite3.zst", Fault::Truncate(1000), 1);
    proxy.inject(
        "GET",
        ".sqlite3.zst",
        Fault::Status(412, "PreconditionFailed"),
        1,
    );
    let run = s
        .tool("bucket-pull")
        .args([&format!("{remote}/app"), "-o", "two.sqlite3"])
        .envs(&env)
        .run()
        .expect_code(1);
    assert!(
        run.stderr().contains("replaced while it was downloaded"),
        "{}",
        run.stderr()
    );
    assert_eq!(std::fs::read(s.join("two.sqlite3")).unwrap(), b"");
}
