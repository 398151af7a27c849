//! Bad input gets a one-line error naming the file and the cause, the
//! contract's exit code, and leaves nothing partial behind.

use crate::support::{Scratch, make_db};

/// Asserts exactly one ERROR line, naming `subject` and `cause`.
fn one_error_line(stderr: &str, subject: &str, cause: &str) {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert_eq!(errors.len(), 1, "expected one ERROR line:\n{stderr}");
    assert!(
        errors[0].contains(subject),
        "error does not name {subject:?}: {}",
        errors[0]
    );
    assert!(
        errors[0].contains(cause),
        "error does not say {cause:?}: {}",
        errors[0]
    );
}

/// Runs sqlite-snap on `name` into `out` and checks code, message and that
/// `out` holds no file at all (not even a temporary one).
fn snap_fails(s: &Scratch, name: &str, code: i32, cause: &str) {
    let run = s
        .tool("sqlite-snap")
        .args(["-o", "out", name])
        .run()
        .expect_code(code);
    assert!(run.stdout().is_empty(), "no record for a failed snapshot");
    one_error_line(&run.stderr(), name, cause);
    assert_eq!(
        s.files_in("out"),
        Vec::<String>::new(),
        "partial output left behind"
    );
}

#[test]
fn snap_missing_file() {
    let s = Scratch::new();
    snap_fails(&s, "missing.sqlite3", 3, "no such file");
}

#[test]
fn snap_empty_file() {
    let s = Scratch::new();
    std::fs::write(s.join("empty.sqlite3"), b"").unwrap();
    snap_fails(&s, "empty.sqlite3", 1, "empty file, not a database");
}

#[test]
fn snap_not_sqlite() {
    let s = Scratch::new();
    std::fs::write(
        s.join("notes.sqlite3"),
        b"Dear diary, today I backed up nothing.\n".repeat(10),
    )
    .unwrap();
    snap_fails(&s, "notes.sqlite3", 1, "not a SQLite database");
}

#[test]
fn snap_damaged_header() {
    let s = Scratch::new();
    let db = s.join("broken.sqlite3");
    make_db(&db, 5, false);
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[16] = 0x03; // page size 1000: not a power of two
    bytes[17] = 0xe8;
    std::fs::write(&db, bytes).unwrap();
    snap_fails(
        &s,
        "broken.sqlite3",
        1,
        "damaged SQLite header: page size 1000",
    );
}

#[test]
fn snap_truncated_header() {
    let s = Scratch::new();
    std::fs::write(s.join("short.sqlite3"), b"SQLite format 3\0\x10\x00").unwrap();
    snap_fails(
        &s,
        "short.sqlite3",
        1,
        "damaged SQLite header: file is only 18 bytes",
    );
}

#[test]
fn snap_compressed_snapshot_given_as_database() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, false);
    let run = s.snap("snaps", "app.sqlite3");
    let zst = run.record()["path"].as_str().unwrap().to_string();
    let copy = s.join("snapshot.sqlite3");
    std::fs::copy(&zst, &copy).unwrap();
    snap_fails(
        &s,
        "snapshot.sqlite3",
        1,
        "zstd-compressed file, not a database",
    );
}

#[test]
fn snap_directory_without_databases() {
    let s = Scratch::new();
    std::fs::create_dir(s.join("storage")).unwrap();
    std::fs::write(s.join("storage/readme.txt"), b"x").unwrap();
    snap_fails(&s, "storage", 3, "no *.sqlite3 databases in this directory");
}

#[test]
fn snap_unwritable_output_directory() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, false);
    std::fs::write(s.join("blocker"), b"a file where the directory should be").unwrap();
    let run = s
        .tool("sqlite-snap")
        .args(["-o", "blocker/snaps", "app.sqlite3"])
        .run()
        .expect_code(2);
    one_error_line(
        &run.stderr(),
        "output directory blocker/snaps",
        "cannot create it",
    );
    assert_eq!(
        std::fs::read(s.join("blocker")).unwrap(),
        b"a file where the directory should be"
    );
}

#[test]
fn snap_bad_flags_are_usage_errors() {
    let s = Scratch::new();
    let run = s
        .tool("sqlite-snap")
        .args(["--level", "99", "x.sqlite3"])
        .run()
        .expect_code(2);
    assert!(run.stderr().contains("--level"), "{}", run.stderr());
    let run = s
        .tool("sqlite-snap")
        .args(["--busy-timeout", "soon", "x.sqlite3"])
        .run()
        .expect_code(2);
    one_error_line(&run.stderr(), "--busy-timeout", "invalid duration");
    s.tool("sqlite-snap")
        .args(["--method", "copy", "x.sqlite3"])
        .run()
        .expect_code(2);
}

/// One bad item does not stop the others; mixed failures exit 1.
#[test]
fn snap_keeps_going_after_a_failure() {
    let s = Scratch::new();
    make_db(&s.join("good.sqlite3"), 5, false);
    std::fs::write(s.join("empty.sqlite3"), b"").unwrap();
    let run = s
        .tool("sqlite-snap")
        .args([
            "-o",
            "out",
            "empty.sqlite3",
            "good.sqlite3",
            "missing.sqlite3",
        ])
        .run()
        .expect_code(1);
    assert_eq!(run.records().len(), 1);
    assert_eq!(
        run.stderr()
            .lines()
            .filter(|l| l.contains(" ERROR "))
            .count(),
        2
    );
    assert_eq!(s.files_in("out").len(), 1);
}

#[test]
fn stdin_garbage_line_is_named() {
    let s = Scratch::new();
    make_db(&s.join("good.sqlite3"), 5, false);
    let run = s
        .tool("sqlite-snap")
        .args(["-o", "out"])
        .stdin("{not json\ngood.sqlite3\n")
        .run()
        .expect_code(1);
    one_error_line(&run.stderr(), "stdin line 1", "invalid JSON");
    assert_eq!(run.records().len(), 1, "the good line was still processed");
}

#[test]
fn push_missing_file() {
    let s = Scratch::new();
    let run = s
        .tool("bucket-push")
        .args(["remote", "gone-20261122T030000Z.sqlite3.zst"])
        .run()
        .expect_code(3);
    one_error_line(
        &run.stderr(),
        "gone-20261122T030000Z.sqlite3.zst",
        "no such file",
    );
    assert_eq!(s.files_in("remote"), Vec::<String>::new());
}

/// A snapshot changed after sqlite-snap hashed it is refused, and nothing
/// (object, manifest or latest.json) appears in the remote.
#[test]
fn push_refuses_a_tampered_snapshot() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 50, false);
    let snap = s.snap("snaps", "app.sqlite3");
    let path = snap.record()["path"].as_str().unwrap().to_string();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let run = s
        .tool("bucket-push")
        .arg("remote")
        .stdin(snap.stdout())
        .run()
        .expect_code(1);
    one_error_line(&run.stderr(), &path, "checksum mismatch");
    assert_eq!(
        s.files_in("remote"),
        Vec::<String>::new(),
        "something was stored"
    );
}

#[test]
fn push_bad_remote_addresses() {
    let s = Scratch::new();
    let run = s
        .tool("bucket-push")
        .args(["b2://bucket/x", "f"])
        .run()
        .expect_code(2);
    one_error_line(
        &run.stderr(),
        "b2://bucket/x",
        "use s3://bucket/prefix, a named remote as b2:bucket/prefix",
    );
    let run = s
        .tool("bucket-push")
        .args(["s3://", "f"])
        .run()
        .expect_code(2);
    one_error_line(&run.stderr(), "s3://", "no bucket");
}

#[test]
fn pull_no_snapshot_under_prefix() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.join("remote/app")).unwrap();
    let run = s
        .tool("bucket-pull")
        .args(["remote/app", "-o", "r.sqlite3"])
        .run()
        .expect_code(3);
    one_error_line(&run.stderr(), "remote/app", "no snapshot under");
    assert!(!s.join("r.sqlite3").exists());
}

/// Pushes one snapshot of a small database; returns the object's path.
fn pushed(s: &Scratch) -> String {
    make_db(&s.join("app.sqlite3"), 100, false);
    let snap = s.snap("snaps", "app.sqlite3");
    let push = s
        .tool("bucket-push")
        .arg("remote")
        .stdin(snap.stdout())
        .run()
        .success();
    push.record()["url"].as_str().unwrap().to_string()
}

/// A damaged object in the remote is detected; an existing target is left
/// exactly as it was and no temporary file remains.
#[test]
fn pull_detects_a_damaged_object() {
    let s = Scratch::new();
    let object = pushed(&s);
    let mut bytes = std::fs::read(&object).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x55;
    std::fs::write(&object, bytes).unwrap();
    std::fs::write(s.join("target.sqlite3"), b"").unwrap();
    let run = s
        .tool("bucket-pull")
        .args(["remote/app", "-o", "target.sqlite3", "--if-missing"])
        .run()
        .expect_code(1);
    one_error_line(&run.stderr(), "remote/app", "damaged snapshot");
    assert_eq!(
        std::fs::read(s.join("target.sqlite3")).unwrap(),
        b"",
        "target changed"
    );
    assert!(
        s.files_in(".").iter().all(|f| !f.contains("sqlkeep-tmp")),
        "temporary file left"
    );
}

/// A truncated object (without a manifest to compare against) is caught by
/// zstd's frame check; nothing is restored.
#[test]
fn pull_detects_a_truncated_object_without_manifest() {
    let s = Scratch::new();
    let object = pushed(&s);
    let bytes = std::fs::read(&object).unwrap();
    let lone = s.join("lone");
    std::fs::create_dir(&lone).unwrap();
    let copy = lone.join("20261122T030000Z.sqlite3.zst");
    std::fs::write(&copy, &bytes[..bytes.len() / 2]).unwrap();
    let run = s
        .tool("bucket-pull")
        .arg(&copy)
        .args(["-o", "r.sqlite3"])
        .run()
        .expect_code(1);
    one_error_line(
        &run.stderr(),
        &copy.display().to_string(),
        "damaged snapshot: zstd says",
    );
    assert!(!s.join("r.sqlite3").exists());
}

#[test]
fn pull_several_sources_need_a_directory() {
    let s = Scratch::new();
    let run = s
        .tool("bucket-pull")
        .args(["a/x", "a/y", "-o", "one.sqlite3"])
        .run()
        .expect_code(2);
    one_error_line(
        &run.stderr(),
        "",
        "several sources need -o to name an existing directory",
    );
}

#[test]
fn verify_reports_unreadable_inputs_as_failed_records() {
    let s = Scratch::new();
    std::fs::write(s.join("empty.sqlite3"), b"").unwrap();
    let run = s
        .tool("sqlite-verify")
        .args(["empty.sqlite3", "missing.sqlite3"])
        .run()
        .expect_code(1);
    let records = run.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["ok"], false);
    assert_eq!(
        records[0]["checks"]["header"],
        "failed: empty file, not a database"
    );
    assert_eq!(records[1]["checks"]["header"], "failed: no such file");
    assert!(
        run.stderr()
            .contains("missing.sqlite3: header failed: no such file"),
        "{}",
        run.stderr()
    );
}

#[test]
fn verify_bad_min_rows_is_usage() {
    let s = Scratch::new();
    let run = s
        .tool("sqlite-verify")
        .args(["--min-rows", "users", "x.sqlite3"])
        .run()
        .expect_code(2);
    one_error_line(&run.stderr(), "--min-rows", "expected TABLE=N");
}
