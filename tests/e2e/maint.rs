//! sqlite-maint on real files: files shrink, WALs are truncated, the
//! application keeps writing without errors, and read-only or bad input is
//! reported with the documented exit codes.

use crate::bank::{Writer, check_invariants};
use crate::support::{Scratch, sha256_file};
use rusqlite::Connection;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A Solid Cache-like database: `entries` rows of 4 KiB, then three in
/// four deleted, leaving free pages. `auto_vacuum` is set before any table.
fn cache_db(path: &Path, auto_vacuum: &str, entries: u32) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!("PRAGMA auto_vacuum = {auto_vacuum};"))
        .unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch("CREATE TABLE entries (id INTEGER PRIMARY KEY, key TEXT, value BLOB);")
        .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for i in 0..entries {
        tx.execute(
            "INSERT INTO entries (key, value) VALUES (?1, randomblob(4000))",
            [format!("k{i}")],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    conn.execute_batch("DELETE FROM entries WHERE id % 4 != 0;")
        .unwrap();
}

/// The size of a file.
fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A PRAGMA's integer value, read-only.
fn pragma(path: &Path, name: &str) -> i64 {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn incremental_vacuum_shrinks_the_file() {
    let s = Scratch::new();
    let db = s.join("cache.sqlite3");
    cache_db(&db, "incremental", 3000);
    let free = pragma(&db, "freelist_count") as u64;
    assert!(free > 2000, "{free}");
    let full = size(&db);

    // At most 100 pages per run: exactly 100 given back.
    let run = s
        .tool("sqlite-maint")
        .args(["--incremental-vacuum=100", "cache.sqlite3"])
        .run()
        .success();
    let r = run.record();
    assert_eq!(r["after"]["freelist_count"], free - 100);
    assert_eq!(r["reclaimed_bytes"], 100 * 4096);
    assert_eq!(size(&db), full - 100 * 4096);

    let run = s
        .tool("sqlite-maint")
        .args(["--incremental-vacuum", "cache.sqlite3"])
        .run()
        .success();
    let r = run.record();
    assert_eq!(r["after"]["freelist_count"], 0);
    assert_eq!(size(&db), r["after"]["file_bytes"].as_u64().unwrap());
    assert!(size(&db) < full / 3, "{} of {full}", size(&db));
    assert!(
        r["ran"][0]
            .as_str()
            .unwrap()
            .starts_with("incremental_vacuum(all)")
    );
    assert!(r["lock_held_max_ms"].as_u64().unwrap() <= r["lock_held_ms"].as_u64().unwrap());
    let conn = Connection::open(&db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 750);
}

#[test]
fn converting_none_to_incremental_needs_rebuild_then_shrinks() {
    let s = Scratch::new();
    let db = s.join("cache.sqlite3");
    cache_db(&db, "none", 2000);
    let before = sha256_file(&db);

    let run = s
        .tool("sqlite-maint")
        .args(["--auto-vacuum", "incremental", "cache.sqlite3"])
        .run()
        .expect_code(1)
        .stderr_has("pass --rebuild");
    assert_eq!(run.record()["ok"], false);
    assert_eq!(sha256_file(&db), before, "changed without --rebuild");
    // Incremental vacuum on a none database is a state, not a failure: it
    // says what to do and changes nothing.
    let run = s
        .tool("sqlite-maint")
        .args(["--incremental-vacuum", "cache.sqlite3"])
        .run()
        .success()
        .stderr_has("converting once (--auto-vacuum incremental --rebuild) would give back");
    let r = run.record();
    assert_eq!(
        (r["ok"].as_bool(), r["conversion_would_gain"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(sha256_file(&db), before, "changed by a skipped vacuum");

    let run = s
        .tool("sqlite-maint")
        .args(["--auto-vacuum", "incremental", "--rebuild", "cache.sqlite3"])
        .run()
        .success()
        .stderr_has("the application's writes wait until it finishes");
    let r = run.record();
    assert_eq!(
        (
            r["before"]["auto_vacuum"].as_str(),
            r["after"]["auto_vacuum"].as_str()
        ),
        (Some("none"), Some("incremental"))
    );
    assert_eq!(pragma(&db, "auto_vacuum"), 2);
    assert!(r["reclaimed_bytes"].as_i64().unwrap() > 0);

    // Now deletions can be given back incrementally.
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("DELETE FROM entries WHERE id % 8 = 0;")
        .unwrap();
    drop(conn);
    let grown = size(&db);
    assert!(pragma(&db, "freelist_count") > 100);
    let run = s
        .tool("sqlite-maint")
        .args(["--incremental-vacuum", "cache.sqlite3"])
        .run()
        .success();
    assert_eq!(run.record()["after"]["freelist_count"], 0);
    assert!(size(&db) < grown);
}

/// A WAL grown past 100 MB (auto-checkpoint off, the connection still
/// open, as under a long read) is truncated to nothing.
#[test]
fn checkpoint_truncate_resets_a_big_wal() {
    let s = Scratch::new();
    let db = s.join("app.sqlite3");
    let conn = Connection::open(&db).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (v BLOB);")
        .unwrap();
    for _ in 0..11 {
        conn.execute_batch(
            "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
             INSERT INTO t SELECT randomblob(10000) FROM n; COMMIT;",
        )
        .unwrap();
    }
    let wal = s.join("app.sqlite3-wal");
    assert!(size(&wal) > 100_000_000, "WAL is {} bytes", size(&wal));

    let run = s
        .tool("sqlite-maint")
        .args(["--checkpoint", "truncate", "app.sqlite3"])
        .run()
        .success();
    let r = run.record();
    assert_eq!(size(&wal), 0);
    assert_eq!(r["after"]["wal_bytes"], 0);
    assert!(r["before"]["wal_bytes"].as_u64().unwrap() > 100_000_000);
    let c = &r["checkpoint"];
    assert_eq!(
        (c["blocked"].as_bool(), c["wal_frames_after"].as_u64()),
        (Some(false), Some(0))
    );
    assert!(c["wal_frames_before"].as_u64().unwrap() > 24_000, "{c}");
    assert_eq!(
        c["checkpointed"], c["wal_frames_after"],
        "SQLite reports 0 and 0 after a truncate"
    );
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 11_000);

    // A reader holding an old snapshot blocks a truncating checkpoint:
    // reported, exit 4, nothing lost.
    conn.execute_batch("INSERT INTO t VALUES (randomblob(100));")
        .unwrap();
    let reader = Connection::open(&db).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM t;")
        .unwrap();
    conn.execute_batch("INSERT INTO t VALUES (randomblob(100));")
        .unwrap();
    let run = s
        .tool("sqlite-maint")
        .args([
            "--checkpoint",
            "truncate",
            "--busy-timeout",
            "1s",
            "app.sqlite3",
        ])
        .run()
        .expect_code(4)
        .stderr_has("blocked by a reader or writer");
    assert_eq!(run.record()["checkpoint"]["blocked"], true);
    reader.execute_batch("COMMIT;").unwrap();
}

/// Maintenance while another process writes: the writer sees no error,
/// every invariant holds, and the file stays intact.
#[test]
fn maintenance_under_a_concurrent_writer() {
    let s = Scratch::new();
    let db = s.join("bank.sqlite3");
    let mut writer = Writer::start_with(&db, "wal", Some("incremental"));
    let mut reclaimed_any = false;
    for round in 0..8 {
        writer.wait_for(writer.committed + 50);
        let run = s
            .tool("sqlite-maint")
            .args([
                "--incremental-vacuum",
                "--checkpoint",
                "truncate",
                "--optimize",
                "bank.sqlite3",
            ])
            .run();
        // A truncating checkpoint may find the writer mid-transaction and
        // report itself blocked (exit 4); anything else is a failure.
        assert!(
            matches!(run.code(), 0 | 4),
            "round {round}: {}",
            run.stderr()
        );
        let vacuumed = run.record()["ran"][0].as_str().unwrap().to_string();
        let pages: u64 = vacuumed
            .strip_prefix("incremental_vacuum(all): ")
            .and_then(|rest| rest.strip_suffix(" pages"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected {vacuumed:?}"));
        reclaimed_any |= pages > 0;
    }
    assert!(reclaimed_any, "the churn never left pages to reclaim");
    let committed = writer.stop();
    assert!(committed >= 400);
    assert!(check_invariants(&db) > 0);
    let run = s.tool("sqlite-verify").arg("bank.sqlite3").run().success();
    assert_eq!(run.record()["checks"]["integrity_check"], "ok");
}

/// A read-only file or directory: writes skipped with a WARN and exit 1,
/// the report still made, nothing changed.
#[test]
fn read_only_files_and_directories_are_reported_not_written() {
    let s = Scratch::new();
    let dir = s.join("ro");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("cache.sqlite3");
    cache_db(&db, "incremental", 500);
    let before = sha256_file(&db);

    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let run = s
        .tool("sqlite-maint")
        .args([
            "--incremental-vacuum",
            "--checkpoint",
            "truncate",
            "ro/cache.sqlite3",
        ])
        .run()
        .expect_code(1)
        .stderr_has("WARN ro/cache.sqlite3: the file is read-only");
    let r = run.record();
    assert!(
        r["before"]["freelist_count"].as_u64().unwrap() > 0,
        "the report was still made"
    );
    assert_eq!(r["ran"], serde_json::json!([]));
    assert_eq!(sha256_file(&db), before);

    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    s.tool("sqlite-maint")
        .args(["--incremental-vacuum", "ro/cache.sqlite3"])
        .run()
        .expect_code(1)
        .stderr_has("is read-only (SQLite must create its journal there)");
    assert_eq!(sha256_file(&db), before);
    // Reporting alone needs no write access.
    s.tool("sqlite-maint")
        .arg("ro/cache.sqlite3")
        .run()
        .success();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A database SQLite itself can only open read-only: another user's file.
/// As root, the tool runs as `nobody`; otherwise as the current user on a
/// file it cannot write.
#[test]
fn a_database_sqlite_opens_read_only_is_reported() {
    let s = Scratch::new();
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = s.join("cache.sqlite3");
    cache_db(&db, "incremental", 200);
    // Roll back journal mode, so a read-only open needs no -shm.
    let conn = Connection::open(&db).unwrap();
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let before = sha256_file(&db);
    if effective_uid() != 0 {
        return assert_not_root_variant(&s, &db);
    }
    // Root's file, mode 0644: writable by its owner, so the permission bits
    // do not decide; `nobody` can read it but not write it.
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(crate::support::bin_dir().join("sqlite-maint"));
    let out = cmd
        .args(["--incremental-vacuum", db.to_str().unwrap()])
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("SQLite can only open it read-only"),
        "{stderr}"
    );
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["ok"], false);
    assert_eq!(sha256_file(&db), before);
}

/// Without root the "another user's file" case cannot be built; the same
/// read-only path is reached through a file without write permission.
fn assert_not_root_variant(s: &Scratch, db: &Path) {
    std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o444)).unwrap();
    s.tool("sqlite-maint")
        .args(["--incremental-vacuum"])
        .arg(db)
        .run()
        .expect_code(1)
        .stderr_has("read-only");
}

/// The effective user id: the owner of a file this process creates.
fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let probe = std::env::temp_dir().join(format!("sqlkeep-uid-{}", std::process::id()));
    std::fs::write(&probe, b"").unwrap();
    let uid = std::fs::metadata(&probe).unwrap().uid();
    let _ = std::fs::remove_file(&probe);
    uid
}

/// The write lock never comes: exit 4 with the reason.
#[test]
fn busy_database_exits_4() {
    let s = Scratch::new();
    let db = s.join("cache.sqlite3");
    cache_db(&db, "incremental", 300);
    let holder = Connection::open(&db).unwrap();
    holder
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO entries (key) VALUES ('held');")
        .unwrap();
    let run = s
        .tool("sqlite-maint")
        .args([
            "--incremental-vacuum",
            "--busy-timeout",
            "1s",
            "cache.sqlite3",
        ])
        .run()
        .expect_code(4)
        .stderr_has("could not get the write lock within 1s");
    assert_eq!(run.record()["ok"], false);
    holder.execute_batch("COMMIT").unwrap();
}

/// --dry-run reports the plan and writes nothing.
#[test]
fn dry_run_writes_nothing() {
    let s = Scratch::new();
    let db = s.join("cache.sqlite3");
    cache_db(&db, "none", 800);
    let (hash, wal) = (sha256_file(&db), size(&s.join("cache.sqlite3-wal")));
    let run = s
        .tool("sqlite-maint")
        .args([
            "--dry-run",
            "--auto-vacuum",
            "incremental",
            "--rebuild",
            "--checkpoint",
            "truncate",
            "cache.sqlite3",
        ])
        .run()
        .success();
    let r = run.record();
    assert_eq!(r["dry_run"], true);
    assert!(
        r["plan"][0]
            .as_str()
            .unwrap()
            .starts_with("rebuild with VACUUM"),
        "{r}"
    );
    assert!(r["would_reclaim_bytes"].as_u64().unwrap() > 500 * 4096);
    assert_eq!(
        (sha256_file(&db), size(&s.join("cache.sqlite3-wal"))),
        (hash, wal)
    );
}

/// A rebuild that would not fit on the disk is refused (exit 5) before
/// anything is written: the database sits on a 6 MiB tmpfs in a private
/// mount namespace (`unshare`, no mount left behind).
#[test]
fn rebuild_without_room_is_refused() {
    let s = Scratch::new();
    let db = s.join("cache.sqlite3");
    cache_db(&db, "none", 1000);
    let maint = crate::support::bin_dir().join("sqlite-maint");
    let script = format!(
        "set -e; mkdir -p {dir}/tiny; mount -t tmpfs -o size=6m tmpfs {dir}/tiny; \
         cp {dir}/cache.sqlite3 {dir}/tiny/; before=$(sha256sum {dir}/tiny/cache.sqlite3); \
         TMPDIR={dir}/tiny SQLITE_TMPDIR={dir}/tiny {maint} --auto-vacuum incremental --rebuild {dir}/tiny/cache.sqlite3 && exit 99; \
         code=$?; test \"$before\" = \"$(sha256sum {dir}/tiny/cache.sqlite3)\" || exit 98; exit $code",
        dir = s.path().display(),
        maint = maint.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("not enough free disk for the rebuild"),
        "{stderr}"
    );
}

/// Bad input: clear error, contract exit code, nothing created.
#[test]
fn bad_input() {
    let s = Scratch::new();
    std::fs::write(s.join("empty.sqlite3"), b"").unwrap();
    std::fs::write(
        s.join("text.sqlite3"),
        b"hello, I am not a database at all, sorry".repeat(4),
    )
    .unwrap();
    for (name, code, message) in [
        ("missing.sqlite3", 3, "missing.sqlite3: no such file"),
        (
            "empty.sqlite3",
            1,
            "empty.sqlite3: empty file, not a database",
        ),
        ("text.sqlite3", 1, "text.sqlite3: not a SQLite database"),
    ] {
        let run = s
            .tool("sqlite-maint")
            .args(["--incremental-vacuum", "--checkpoint", "truncate", name])
            .run()
            .expect_code(code)
            .stderr_has(message);
        assert!(run.stdout().is_empty());
    }
    assert!(
        !s.join("missing.sqlite3").exists(),
        "the missing database was created"
    );
    assert_eq!(std::fs::read(s.join("empty.sqlite3")).unwrap(), b"");
    assert!(!s.join("empty.sqlite3-wal").exists() && !s.join("empty.sqlite3-journal").exists());
}

/// A Litestream directory beside the database earns a WARN before a
/// checkpoint.
#[test]
fn litestream_is_warned_about() {
    let s = Scratch::new();
    let db = s.join("app.sqlite3");
    cache_db(&db, "incremental", 50);
    std::fs::create_dir(s.join(".app.sqlite3-litestream")).unwrap();
    s.tool("sqlite-maint")
        .args(["--checkpoint", "truncate", "app.sqlite3"])
        .run()
        .success()
        .stderr_has("WARN app.sqlite3: Litestream is replicating this database");
}

/// The command of the hourly `sqlite-maint` cron line in `file` (README or
/// examples/crontab), as cron would run it: fields after the five times and
/// the user.
fn hourly_line(file: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("0 * * * *") && l.contains("sqlite-maint"))
        .unwrap_or_else(|| panic!("{file} has no hourly sqlite-maint line"));
    line.split_whitespace()
        .skip(6)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A storage directory as the hourly line finds it: one database converted
/// to auto_vacuum = incremental, one never converted, both with free pages.
/// Returns the free pages of each.
fn mixed_storage(dir: &Path) -> (i64, i64) {
    std::fs::create_dir_all(dir).unwrap();
    cache_db(&dir.join("production_cache.sqlite3"), "incremental", 600);
    cache_db(&dir.join("production_queue.sqlite3"), "none", 600);
    (
        pragma(&dir.join("production_cache.sqlite3"), "freelist_count"),
        pragma(&dir.join("production_queue.sqlite3"), "freelist_count"),
    )
}

/// The hourly line exactly as README and examples/crontab document it, on a
/// directory where one database was never converted: exit 0 and nothing on
/// stderr (cron mails nothing); the converted database shrinks, the other
/// is left alone and its record says what converting would give back. A
/// damaged database in the same directory still fails the run.
#[test]
fn the_documented_hourly_line_is_quiet_on_a_mixed_directory() {
    for file in ["README.md", "examples/crontab"] {
        let s = Scratch::new();
        let storage = s.join("storage");
        let (converted_free, unconverted_free) = mixed_storage(&storage);
        assert!(converted_free > 300 && unconverted_free > 300);
        let unconverted = storage.join("production_queue.sqlite3");
        let log = s.join("maint.jsonl");
        let command = hourly_line(file)
            .replace("/srv/app/storage/", &format!("{}/", storage.display()))
            .replace("/var/log/sqlkeep/maint.jsonl", log.to_str().unwrap())
            // examples/crontab throws the records away; keep them to check.
            .replace("> /dev/null", &format!("> {}", log.display()));
        let cron = || s.program(Path::new("/bin/sh")).args(["-c", &command]).run();
        let run = cron().success();
        assert_eq!(run.stderr(), "", "{file}: cron would mail");
        let records: Vec<Value> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 2, "{file}");
        let by_db = |db: &str| records.iter().find(|r| r["db"] == db).unwrap().clone();

        let done = by_db("production_cache");
        assert_eq!(done["ok"], true);
        assert_eq!(done["after"]["freelist_count"], 0);
        // Every free page went back (PRAGMA optimize may add a page or two).
        assert!(
            done["reclaimed_bytes"].as_i64().unwrap() >= (converted_free - 4) * 4096,
            "{done}"
        );
        assert_eq!(done["conversion_would_gain"], false);

        let left = by_db("production_queue");
        assert_eq!(left["ok"], true, "{left}");
        assert_eq!(left["problems"], serde_json::json!([]));
        assert_eq!(left["after"]["auto_vacuum"], "none");
        assert_eq!(left["conversion_would_gain"], true);
        assert_eq!(
            left["conversion_would_reclaim_bytes"],
            unconverted_free * 4096
        );
        assert!(
            left["notes"][0]
                .as_str()
                .unwrap()
                .starts_with("incremental vacuum skipped: auto_vacuum is none"),
            "{left}"
        );
        assert_eq!(pragma(&unconverted, "freelist_count"), unconverted_free);

        // A real failure stays one, loudly, and the others are still done.
        std::fs::write(
            storage.join("broken.sqlite3"),
            b"not a database at all".repeat(8),
        )
        .unwrap();
        cron()
            .expect_code(1)
            .stderr_has("broken.sqlite3: not a SQLite database");
    }
}

/// A database SQLite's own read-only connection would leave `-wal` and
/// `-shm` files beside: a WAL database whose last connection closed.
fn closed_wal_db(path: &Path, auto_vacuum: &str) {
    cache_db(path, auto_vacuum, 400);
}

/// --status reads every database without changing a byte or leaving a
/// file behind, and its numbers are SQLite's: a converted database, a
/// never-converted one, one in rollback-journal mode, and a live WAL
/// database whose newest page 1 is still in the WAL.
#[test]
fn status_reports_without_changing_a_byte() {
    let s = Scratch::new();
    let storage = s.join("storage");
    std::fs::create_dir(&storage).unwrap();
    closed_wal_db(&storage.join("converted.sqlite3"), "incremental");
    closed_wal_db(&storage.join("unconverted.sqlite3"), "none");
    let rollback = storage.join("rollback.sqlite3");
    cache_db(&rollback, "none", 300);
    Connection::open(&rollback)
        .unwrap()
        .query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .unwrap();
    let before = crate::support::world(&storage);
    assert_eq!(before.len(), 3, "{before:?}");

    let run = s
        .tool("sqlite-maint")
        .args(["--status", "storage"])
        .run()
        .success()
        .stderr_has("unconverted.sqlite3 (auto_vacuum none")
        .stderr_has("converting once would give back")
        .stderr_has("--incremental-vacuum would give back");
    assert_eq!(
        crate::support::world(&storage),
        before,
        "--status changed or left a file"
    );
    let records = run.records();
    assert_eq!(records.len(), 3);
    let quiet = s
        .tool("sqlite-maint")
        .args(["--status", "-q", "storage"])
        .run()
        .success();
    assert_eq!(quiet.stderr(), "");
    assert_eq!(quiet.records().len(), 3);
    assert_eq!(crate::support::world(&storage), before);

    // Now the expected numbers, from SQLite itself (this read-only open
    // may create -wal/-shm files: it comes after the comparison).
    for r in &records {
        let path = Path::new(r["path"].as_str().unwrap());
        let free = pragma(path, "freelist_count") as u64;
        assert!(free > 100, "{r}");
        assert_eq!(r["type"], "maint");
        assert_eq!(r["status"], true);
        assert_eq!(r["freelist_count"], free, "{r}");
        assert_eq!(r["page_count"], pragma(path, "page_count"), "{r}");
        assert_eq!(r["page_size"], pragma(path, "page_size"), "{r}");
        assert_eq!(r["free_bytes"], free * 4096);
        assert_eq!(r["file_bytes"], size(path));
        let converted = pragma(path, "auto_vacuum") == 2;
        assert_eq!(
            r["auto_vacuum"],
            if converted { "incremental" } else { "none" }
        );
        assert_eq!(
            (
                r["conversion_would_gain"].as_bool(),
                r["conversion_would_reclaim_bytes"].as_u64(),
                r["incremental_vacuum_would_reclaim_bytes"].as_u64()
            ),
            if converted {
                (Some(false), Some(0), Some(free * 4096))
            } else {
                (Some(true), Some(free * 4096), Some(0))
            },
            "{r}"
        );
    }
    let wal_mode: Vec<bool> = ["converted", "rollback", "unconverted"]
        .iter()
        .map(|db| {
            records.iter().find(|r| r["db"] == *db).unwrap()["wal_mode"]
                .as_bool()
                .unwrap()
        })
        .collect();
    assert_eq!(wal_mode, [true, false, true]);

    // A live database: the writer's deletions are still in its WAL, so the
    // file's own header is out of date; the report is the writer's view,
    // and neither the database nor its WAL changes.
    let live = s.join("live.sqlite3");
    cache_db(&live, "incremental", 200);
    let writer = Connection::open(&live).unwrap();
    writer
        .execute_batch("PRAGMA wal_autocheckpoint = 0; DELETE FROM entries WHERE id % 2 = 0;")
        .unwrap();
    let writer_free: i64 = writer
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    let wal = s.join("live.sqlite3-wal");
    let (db_hash, wal_hash) = (sha256_file(&live), sha256_file(&wal));
    assert!(size(&wal) > 0);
    let r = s
        .tool("sqlite-maint")
        .args(["--status", "live.sqlite3"])
        .run()
        .success()
        .record();
    assert_eq!(r["freelist_count"], writer_free, "{r}");
    assert_eq!(r["wal_bytes"], size(&wal));
    assert_eq!((sha256_file(&live), sha256_file(&wal)), (db_hash, wal_hash));
    drop(writer);

    // A file that cannot be read still fails, naming it; the others are
    // still reported.
    std::fs::write(
        storage.join("broken.sqlite3"),
        b"not a database at all".repeat(8),
    )
    .unwrap();
    let run = s
        .tool("sqlite-maint")
        .args(["--status", "-q", "storage"])
        .run()
        .expect_code(1)
        .stderr_has("broken.sqlite3: not a SQLite database");
    assert_eq!(run.records().len(), 3);

    // --status writes nothing, so it takes no operation.
    s.tool("sqlite-maint")
        .args(["--status", "--incremental-vacuum", "storage"])
        .run()
        .expect_code(2);
}
