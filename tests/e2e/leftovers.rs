//! Temporary snapshots are removed by whoever ends their pipeline (issue
//! 10 found failed pushes and dry runs leaving them in `$TMPDIR`, and
//! every snapshot piped into sqlite-verify), and those nobody consumed are
//! removed a day later by the next sqlite-snap.

use crate::support::{Scratch, list_files, make_db};
use std::process::Stdio;

/// Files in sqlite-snap's private directory under the scratch `$TMPDIR`.
fn private(s: &Scratch) -> Vec<String> {
    list_files(&s.join(".tmp"))
}

#[test]
fn a_failed_push_and_a_dry_run_leave_no_temporary_snapshot() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, false);
    // A remote that cannot be created: a file is in the way.
    std::fs::write(s.join("blocked"), b"not a directory").unwrap();
    let snap = s.tool("sqlite-snap").arg("app.sqlite3").run().success();
    assert_eq!(private(&s).len(), 1);
    s.tool("bucket-push")
        .args(["-v", "blocked/remote"])
        .stdin(snap.stdout())
        .run()
        .expect_code(1)
        .stderr_has("removed temporary snapshot");
    assert_eq!(private(&s), Vec::<String>::new());

    let snap = s.tool("sqlite-snap").arg("app.sqlite3").run().success();
    let dry = s
        .tool("bucket-push")
        .args(["--dry-run", "remote"])
        .stdin(snap.stdout())
        .run()
        .success();
    assert_eq!(dry.record()["dry_run"], true);
    assert_eq!(private(&s), Vec::<String>::new());
    assert!(!s.join("remote").exists(), "a dry run stores nothing");
}

#[test]
fn a_snapshot_verified_at_the_end_of_a_pipeline_is_removed() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, false);
    let snap = s.tool("sqlite-snap").arg("app.sqlite3").run().success();
    // stdout to a file: nothing downstream can take the snapshot.
    let out = std::fs::File::create(s.join("verified.jsonl")).unwrap();
    let mut cmd = s.tool("sqlite-verify").command();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(snap.stdout().as_bytes())
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.join("verified.jsonl")).unwrap()).unwrap();
    assert_eq!(
        (record["ok"].as_bool(), record["removed"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(private(&s), Vec::<String>::new());

    // Piped on: the next tool owns it, and the log says where it is.
    let snap = s.tool("sqlite-snap").arg("app.sqlite3").run().success();
    let path = snap.record()["path"].as_str().unwrap().to_string();
    s.tool("sqlite-verify")
        .stdin(snap.stdout())
        .run()
        .success()
        .stderr_has(&format!(
            "temporary snapshot kept for the next tool: {path}"
        ));
    assert_eq!(private(&s).len(), 1);
}

#[test]
fn temporary_snapshots_nobody_took_are_removed_a_day_later() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, false);
    let first = s.tool("sqlite-snap").arg("app.sqlite3").run().success();
    let old = std::path::PathBuf::from(first.record()["path"].as_str().unwrap());
    let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(25 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(day_ago)
        .unwrap();
    // Another snapshot, of other content (so not of the same name).
    rusqlite::Connection::open(s.join("app.sqlite3"))
        .unwrap()
        .execute("DELETE FROM posts WHERE id = 1", [])
        .unwrap();
    let second = s
        .tool("sqlite-snap")
        .args(["-v", "app.sqlite3"])
        .run()
        .success();
    assert!(!old.exists(), "a day-old temporary snapshot stays");
    assert!(
        second
            .stderr()
            .contains("no pipeline consumed within a day")
    );
    assert!(std::path::Path::new(second.record()["path"].as_str().unwrap()).exists());
}
