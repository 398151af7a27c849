//! A full disk says "no space left on device" with the path, exits 1, and
//! leaves the previous state, in every tool (issue 10 found a full disk
//! during a restore or a verify reported as a "damaged snapshot").
//!
//! Each case runs in a private user and mount namespace on a 2 MiB tmpfs
//! (`on_tiny_tmpfs`), so the host's disks are never filled; what the tool
//! left on the tmpfs is checked inside the namespace, before it vanishes.

use crate::s3server::{BUCKET, S3Server};
use crate::support::{Scratch, make_big_db, on_tiny_tmpfs};
use std::path::Path;

/// Runs one tool command line on the tiny tmpfs; returns (exit code,
/// stderr, files left on the tmpfs, the old file's content afterwards).
fn full(s: &Scratch, setup: &str, command: &str) -> (i32, String, String, String) {
    let dir = s.path().display().to_string();
    let script = format!(
        "cd {dir}; {setup}; {command} > {dir}/out.txt 2> {dir}/err.txt; echo $? > {dir}/code.txt; \
         ls -A -R tiny > {dir}/left.txt; cat tiny/old.sqlite3 > {dir}/old.txt 2>/dev/null; true"
    );
    let out = on_tiny_tmpfs(s.path(), "2m", &script);
    assert!(
        out.status.success(),
        "namespace failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(s.join(name)).unwrap_or_default();
    (
        read("code.txt").trim().parse().unwrap(),
        read("err.txt") + &read("out.txt"),
        read("left.txt"),
        read("old.txt"),
    )
}

/// Asserts the message names the full disk and a path on it, never a
/// damaged snapshot.
fn says_full(what: &str, text: &str) {
    assert!(
        text.contains("no space left on device") && text.contains("tiny/"),
        "{what}: {text}"
    );
    assert!(!text.contains("damaged"), "{what}: {text}");
}

/// No temporary file of ours on the tmpfs.
fn no_debris(what: &str, left: &str) {
    assert!(
        !left.contains(".sqlkeep-tmp") && !left.contains(".scratch"),
        "{what} left: {left}"
    );
}

#[test]
fn a_full_disk_is_named_in_every_tool() {
    let s = Scratch::new();
    // 6 MiB of random blobs: its snapshot (and the database) cannot fit.
    make_big_db(&s.join("big.sqlite3"), 6);
    let snap = s.snap("snaps", "big.sqlite3").record();
    let snapshot = snap["path"].as_str().unwrap().to_string();
    s.tool("bucket-push")
        .arg("remote")
        .arg(&snapshot)
        .run()
        .success();
    let server = S3Server::start(s.path());
    let env = S3Server::aws_env(&server.endpoint);
    let exports: String = env
        .iter()
        .map(|(k, v)| format!("export {k}='{v}'; "))
        .collect();
    s.tool("bucket-push")
        .arg(format!("s3://{BUCKET}/db"))
        .arg(&snapshot)
        .envs(&env)
        .run()
        .success();
    let old = "echo previous > tiny/old.sqlite3";

    // A restore from a directory and from S3 over a file that must survive.
    for source in ["remote/big".to_string(), format!("s3://{BUCKET}/db/big")] {
        let (code, text, left, kept) = full(
            &s,
            &format!("{exports}{old}"),
            &format!("bucket-pull {source} --force -o tiny/old.sqlite3"),
        );
        assert_eq!(code, 1, "{text}");
        says_full(&format!("bucket-pull {source}"), &text);
        no_debris("bucket-pull", &left);
        assert_eq!(kept, "previous\n", "the old file was touched");
    }

    // Verifying a snapshot decompresses it into $TMPDIR.
    let (code, text, left, _) = full(
        &s,
        "true",
        &format!(
            "TMPDIR={}/tiny sqlite-verify {snapshot}",
            s.path().display()
        ),
    );
    assert_eq!(code, 1, "{text}");
    says_full("sqlite-verify", &text);
    no_debris("sqlite-verify", &left);

    // A snapshot into a full directory.
    let (code, text, left, _) = full(&s, "true", "sqlite-snap -o tiny/snaps big.sqlite3");
    assert_eq!(code, 1, "{text}");
    says_full("sqlite-snap", &text);
    no_debris("sqlite-snap", &left);

    // A push into a directory remote on the full disk.
    let (code, text, left, _) = full(&s, "true", &format!("bucket-push tiny/remote {snapshot}"));
    assert_eq!(code, 1, "{text}");
    says_full("bucket-push", &text);
    no_debris("bucket-push", &left);

    // blob-sync restoring files that do not fit.
    std::fs::create_dir_all(s.join("files")).unwrap();
    for i in 0..3 {
        std::fs::copy(&snapshot, s.join(&format!("files/blob-{i}"))).unwrap();
    }
    let (code, text, left, _) = full(&s, "true", "blob-sync files tiny/files");
    assert_eq!(code, 1, "{text}");
    says_full("blob-sync", &text);
    no_debris("blob-sync", &left);
    assert!(Path::new(&snapshot).exists());
}

/// A point of an incremental chain restored onto a full disk: the full
/// snapshot and the deltas (downloaded beside the target) do not fit. The
/// disk is named, nothing of ours is left, and the old file is untouched.
#[test]
fn a_chain_restore_onto_a_full_disk_leaves_the_old_file() {
    let s = Scratch::new();
    make_big_db(&s.join("big.sqlite3"), 6);
    let step = |sql: &str| {
        if !sql.is_empty() {
            rusqlite::Connection::open(s.join("big.sqlite3"))
                .unwrap()
                .execute_batch(sql)
                .unwrap();
        }
        let snap = s
            .tool("sqlite-snap")
            .args(["--incremental", "--state-dir", "state", "big.sqlite3"])
            .run()
            .success();
        s.tool("bucket-push")
            .arg("remote")
            .stdin(snap.stdout())
            .run()
            .success()
            .record()
    };
    step("");
    let last = step("INSERT INTO blobs (data) VALUES (randomblob(1048576))");
    assert_eq!(
        last["chain"].as_array().unwrap().len(),
        2,
        "a full and a delta"
    );
    let (code, text, left, kept) = full(
        &s,
        "echo previous > tiny/old.sqlite3",
        "bucket-pull remote/big --force -o tiny/old.sqlite3",
    );
    assert_eq!(code, 1, "{text}");
    says_full("bucket-pull of a chain", &text);
    no_debris("bucket-pull of a chain", &left);
    assert_eq!(kept, "previous\n", "the old file was touched");
}
