//! sqlite-snap on its own: what the snapshot and its record contain.

use crate::support::{Scratch, count, make_db, sha256_file, unzstd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Every field of the record is true of the file it names.
#[test]
fn record_describes_the_snapshot() {
    let s = Scratch::new();
    let db = s.join("app.sqlite3");
    make_db(&db, 200, true);
    for method in ["pages", "vacuum"] {
        let out = s.join(method);
        let run = s
            .tool("sqlite-snap")
            .args(["--method", method, "-o"])
            .arg(&out)
            .arg(&db)
            .run()
            .success();
        let r = run.record();
        let path = Path::new(r["path"].as_str().unwrap());
        assert_eq!(path.parent().unwrap(), std::fs::canonicalize(&out).unwrap());
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("app-") && name.ends_with(".sqlite3.zst"),
            "{name}"
        );
        assert_eq!(r["db"], "app");
        assert_eq!(r["method"], method);
        assert_eq!(r["compression"], "zstd");
        assert_eq!(
            r["source"],
            std::fs::canonicalize(&db).unwrap().display().to_string()
        );
        assert_eq!(r["bytes"], std::fs::metadata(path).unwrap().len());
        assert_eq!(r["sha256"], sha256_file(path));
        let raw = unzstd(path);
        assert_eq!(r["raw_bytes"], raw.len() as u64);
        assert_eq!(
            r["raw_bytes"],
            r["page_size"].as_u64().unwrap() * r["page_count"].as_u64().unwrap()
        );
        assert_eq!(&raw[..16], b"SQLite format 3\0");
        assert_eq!(raw[18..20], [1, 1], "a standalone rollback-mode file");
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(r["taken_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            r["sqlite_version"].as_str().unwrap().split('.').next(),
            Some("3")
        );
        let copy = s.join(&format!("copy-{method}.sqlite3"));
        std::fs::write(&copy, &raw).unwrap();
        let digest = crate::support::sha256_file(&copy);
        assert_eq!(r["raw_sha256"], digest);
        assert_eq!(count(&copy, "posts"), 600);
    }
}

/// A path with a quote, spaces and non-ASCII reaches SQLite intact.
#[test]
fn awkward_paths_work() {
    let s = Scratch::new();
    let dir = s.join("it's my \"data\" — ünïcode");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("o'brien & co.sqlite3");
    make_db(&db, 5, true);
    for method in ["pages", "vacuum"] {
        let out = dir.join(format!("out {method}"));
        let run = s
            .tool("sqlite-snap")
            .args(["--method", method, "-o"])
            .arg(&out)
            .arg(&db)
            .run()
            .success();
        let r = run.record();
        assert_eq!(r["db"], "o'brien & co");
        assert!(Path::new(r["path"].as_str().unwrap()).exists());
    }
}

/// --no-compress writes a plain .sqlite3 whose checksums agree.
#[test]
fn uncompressed_snapshot() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 50, false);
    let run = s
        .tool("sqlite-snap")
        .args(["--no-compress", "-o", "out", "app.sqlite3"])
        .run()
        .success();
    let r = run.record();
    let path = Path::new(r["path"].as_str().unwrap());
    assert!(
        path.to_str().unwrap().ends_with(".sqlite3") && !path.to_str().unwrap().ends_with(".zst")
    );
    assert_eq!(r["compression"], "none");
    assert_eq!(r["sha256"], r["raw_sha256"]);
    assert_eq!(r["sha256"], sha256_file(path));
    assert_eq!(count(path, "users"), 50);
}

/// A directory means its *.sqlite3 files, minus --exclude, never the
/// -wal/-shm companions; stdin lines work as inputs, carrying fields.
#[test]
fn directories_excludes_and_stdin() {
    let s = Scratch::new();
    std::fs::create_dir(s.join("storage")).unwrap();
    for name in ["production", "production_cache", "production_queue"] {
        make_db(&s.join(&format!("storage/{name}.sqlite3")), 3, true);
    }
    std::fs::write(s.join("storage/notes.txt"), b"x").unwrap();
    let run = s
        .tool("sqlite-snap")
        .args(["-o", "out", "--exclude", "*_cache.sqlite3", "storage"])
        .run()
        .success();
    let dbs: Vec<String> = run
        .records()
        .iter()
        .map(|r| r["db"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(dbs, ["production", "production_queue"]);
    assert_eq!(s.files_in("out").len(), 2);

    let stdin = "storage/production.sqlite3\n{\"path\":\"storage/production_queue.sqlite3\",\"app\":\"billing\"}\n";
    let run = s
        .tool("sqlite-snap")
        .args(["-o", "out2"])
        .stdin(stdin)
        .run()
        .success();
    let records = run.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["app"], "billing", "unknown fields are carried");
    assert_eq!(records[1]["type"], "snapshot");
}

/// -q silences OK lines; -v adds INFO; the log line has the contract's shape.
#[test]
fn log_lines() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 3, false);
    let run = s.snap("out", "app.sqlite3");
    let line = run.stderr();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(words[0].ends_with('Z') && words[0].len() == 20, "{line}");
    assert_eq!(&words[1..4], ["sqlite-snap", "OK", "app.sqlite3"]);
    assert!(
        line.contains(" → ") && line.trim_end().ends_with(" s)"),
        "{line}"
    );
    let quiet = s
        .tool("sqlite-snap")
        .args(["-q", "-o", "out", "app.sqlite3"])
        .run()
        .success();
    assert_eq!(quiet.stderr(), "");
}
