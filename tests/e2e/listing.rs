//! `bucket-pull --list` for people and for pipes: a table on a terminal,
//! records otherwise; a remote's root lists its databases; a mistyped
//! database or remote name gets "did you mean".

use crate::support::{Scratch, bin_dir, make_db};
use serde_json::Value;

/// Pushes `names` (one small database each) to the directory remote
/// `backups/`.
fn backups(s: &Scratch, names: &[&str]) {
    for name in names {
        make_db(&s.join(&format!("{name}.sqlite3")), 3, true);
        let snap = s.snap("snaps", &format!("{name}.sqlite3")).success();
        s.tool("bucket-push")
            .arg("backups")
            .stdin(snap.stdout())
            .run()
            .success();
    }
}

#[test]
fn a_terminal_gets_a_table_and_a_pipe_gets_records() {
    let s = Scratch::new();
    backups(&s, &["production", "production_queue"]);

    // Under a pseudo-terminal (Python's pty module runs the tool on one).
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))",
        ])
        .arg(bin_dir().join("bucket-pull"))
        .args(["-q", "backups/production", "--list"])
        .current_dir(s.path())
        .env("XDG_STATE_HOME", s.join(".state"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("TAKEN (UTC)") && text.contains("KIND") && text.contains("AGE"),
        "{text}"
    );
    assert!(text.contains("full") && text.contains("ago"), "{text}");
    assert!(!text.contains('{'), "records on a terminal: {text}");

    // Piped: one record per point, as before.
    let piped = s
        .tool("bucket-pull")
        .args(["backups/production", "--list"])
        .run()
        .success()
        .records();
    assert_eq!(piped.len(), 1);
    assert_eq!(piped[0]["type"], "object");
    assert_eq!(piped[0]["kind"], "full");

    // The remote's root: its databases.
    let dbs: Vec<Value> = s
        .tool("bucket-pull")
        .args(["backups", "--list"])
        .run()
        .success()
        .records();
    let names: Vec<&str> = dbs.iter().map(|r| r["db"].as_str().unwrap()).collect();
    assert_eq!(names, ["production", "production_queue"]);
    assert!(dbs.iter().all(|r| r["type"] == "database"));
}

#[test]
fn a_mistyped_name_gets_did_you_mean() {
    let s = Scratch::new();
    backups(&s, &["production"]);
    s.tool("bucket-pull")
        .args(["backups/prodution", "--list"])
        .run()
        .expect_code(3)
        .stderr_has("did you mean ")
        .stderr_has("backups/production?");
    s.tool("bucket-pull")
        .args(["backups/prodution", "-o", "x.sqlite3"])
        .run()
        .expect_code(3)
        .stderr_has("did you mean")
        .stderr_has("backups/production?");
    assert!(!s.join("x.sqlite3").exists());

    s.tool("bucket-pull")
        .args(["myb3:bucket/databases/production", "--list"])
        .env("RCLONE_CONFIG_MYB2_TYPE", "s3")
        .run()
        .expect_code(2)
        .stderr_has("did you mean myb2:?");
}
