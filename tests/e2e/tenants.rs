//! A database per tenant (issue 13): nested databases keep distinct names
//! in the remote and come back at their paths with `bucket-pull --all`;
//! a run stores (and pays requests for) only the databases that changed;
//! and no write — in place, in the WAL, with the file's times put back —
//! is ever taken for "unchanged".

use crate::s3server::{BUCKET, S3Server};
use crate::support::{Scratch, sha256_file};
use rusqlite::Connection;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// Signals of files changed less than this before a run are not trusted
/// (the tools' default is 2 s; the tests shorten it so they need not wait
/// seconds, and wait out exactly this window where a test needs trust).
const RACY: Duration = Duration::from_millis(100);

fn racy_env() -> (String, String) {
    ("SQLKEEP_RACY_NS".into(), RACY.as_nanos().to_string())
}

/// Waits until the files written before `since` are older than the racy
/// window: a wait for the clock itself, not for another process.
fn outlive_racy_window(since: Instant) {
    let until = since + RACY + Duration::from_millis(20);
    let now = Instant::now();
    if until > now {
        std::thread::sleep(until - now);
    }
}

fn tenant_db(path: &Path, tenant: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO accounts (name) VALUES ('{tenant}');"
    ))
    .unwrap();
}

/// The method and target of each request `seen` more than once: what to
/// look at when a count is off.
fn repeated(seen: &[crate::proxy::Seen]) -> Vec<(&str, &str)> {
    let mut counts = std::collections::BTreeMap::new();
    for r in seen {
        *counts
            .entry((r.method.as_str(), r.target.as_str()))
            .or_insert(0) += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k)
        .collect()
}

/// A rare server failure, each one retried: the same request answered.
fn assert_retried(failed: &[crate::proxy::Seen], answered: &[crate::proxy::Seen]) {
    assert!(failed.len() <= 2, "{failed:?}");
    for f in failed {
        assert!(
            answered
                .iter()
                .any(|a| a.method == f.method && a.target == f.target),
            "not retried: {f:?}"
        );
    }
}

fn names(conn_path: &Path) -> Vec<String> {
    let conn = Connection::open(conn_path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM accounts ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// 200 tenant databases and a flat one go to real S3 under their relative
/// names and come back at their paths; after 10 change, a run makes
/// exactly 10 increments' requests (3 PUTs each) and nothing for the
/// other 191; with nothing changed, none at all.
#[test]
fn two_hundred_tenants_round_trip_and_only_the_changed_cost_requests() {
    let s = Scratch::new();
    let (_server, proxy, mut env) = S3Server::start_behind_proxy(&s.join("s3"));
    env.push(racy_env());
    let storage = s.join("storage");
    let tenants: Vec<String> = (0..200).map(|i| format!("t{i:03}")).collect();
    for t in &tenants {
        tenant_db(&storage.join(format!("tenants/{t}/production.sqlite3")), t);
    }
    tenant_db(&storage.join("production.sqlite3"), "main");
    let written = Instant::now();
    let remote = format!("s3://{BUCKET}/databases");
    // Four jobs at once: the records still leave in discovery order.
    let run = |label: &str| -> Vec<Value> {
        let snap = s
            .tool("sqlite-snap")
            .args(["-q", "--jobs", "4", "--incremental", "--state-dir"])
            .arg(s.join("state"))
            .arg(&storage)
            .envs(&env)
            .run()
            .success();
        // sqlite-snap makes no request: what the proxy sees from here on
        // is bucket-push's.
        proxy.reset_seen();
        s.tool("bucket-push")
            .args(["-q", &remote])
            .envs(&env)
            .stdin(snap.stdout())
            .run()
            .success();
        // The default --transfers 4: at most five connections, however
        // many databases.
        let connections = proxy.connections();
        assert!(connections.opened <= 5, "{label}: {connections:?}");
        let records = snap.records();
        assert_eq!(records.len(), 201, "{label}");
        records
    };

    let first = run("first");
    // 201 fulls, 4 requests each (object, manifest, latest.json read and
    // written), over the same few connections.
    // A request the server failed is retried, at the cost of one more.
    let (answered, failed) = proxy.answered_and_failed();
    assert_eq!(
        answered.len(),
        804,
        "failed: {failed:?}; seen more than once: {:?}",
        repeated(&answered)
    );
    assert_retried(&failed, &answered);
    assert!(proxy.connections().opened >= 1);
    let dbs: Vec<&str> = first.iter().map(|r| r["db"].as_str().unwrap()).collect();
    assert_eq!(dbs[0], "production");
    for (t, db) in tenants.iter().zip(&dbs[1..]) {
        assert_eq!(*db, format!("tenants/{t}/production"));
    }
    assert!(first.iter().all(|r| r["kind"] == "full"));

    let restored = s.join("restored");
    proxy.reset_seen();
    let all = s
        .tool("bucket-pull")
        .args(["-q", &remote, "--all", "-o"])
        .arg(&restored)
        .envs(&env)
        .run()
        .success()
        .records();
    assert_eq!(all.len(), 201);
    // A listing and 201 × (manifest, object), on five connections at most.
    let connections = proxy.connections();
    assert!(
        connections.opened <= 5 && proxy.seen().len() > 400,
        "{connections:?}, {} requests",
        proxy.seen().len()
    );
    for record in &first {
        let db = record["db"].as_str().unwrap();
        let path = restored.join(format!("{db}.sqlite3"));
        assert_eq!(
            sha256_file(&path),
            record["raw_sha256"].as_str().unwrap(),
            "{db}"
        );
        let expected = db.split('/').nth(1).unwrap_or("main");
        assert_eq!(names(&path), [expected], "{db}");
    }

    // Ten tenants change; the others are left alone.
    outlive_racy_window(written);
    let changed: Vec<&String> = tenants.iter().step_by(20).collect();
    for t in &changed {
        let conn =
            Connection::open(storage.join(format!("tenants/{t}/production.sqlite3"))).unwrap();
        conn.execute("INSERT INTO accounts (name) VALUES ('new')", [])
            .unwrap();
    }
    // The untouched ones' signals were recorded right after they were
    // written (racy): this run proves them unchanged by reading them once.
    outlive_racy_window(Instant::now());
    proxy.reset_seen();
    let second = run("second");
    let (seen, failed) = proxy.answered_and_failed();
    assert_retried(&failed, &seen);
    let deltas: Vec<&str> = second
        .iter()
        .filter(|r| r["kind"] == "delta")
        .map(|r| r["db"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = changed
        .iter()
        .map(|t| format!("tenants/{t}/production"))
        .collect();
    assert_eq!(deltas, expected);
    let unchanged = second.iter().filter(|r| r["unchanged"] == true).count();
    assert_eq!(unchanged, 191);
    let puts = seen.iter().filter(|r| r.method == "PUT").count();
    assert_eq!((puts, seen.len()), (30, 30), "{seen:?}");

    // Nothing changed: no request at all, and no page read.
    proxy.reset_seen();
    let third = run("third");
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    assert!(
        third
            .iter()
            .all(|r| r["unchanged"] == true && r["proof"] == "file signals"),
        "{third:?}"
    );

    // A container's boot: everything present, nothing requested but the
    // listing.
    proxy.reset_seen();
    s.tool("bucket-pull")
        .args(["-q", &remote, "--all", "--if-missing", "-o"])
        .arg(&restored)
        .envs(&env)
        .run()
        .success();
    assert!(
        proxy
            .seen()
            .iter()
            .all(|r| r.method == "GET" && r.target.contains("list-type")),
        "{:?}",
        proxy.seen()
    );
}

/// Writes that try to look like nothing happened are stored: a write that
/// stays in the WAL, an in-place write that keeps the file's size (rollback
/// journal), and the same with the file's mtime put back to the
/// nanosecond. Each run after them takes a delta, and the delta restores
/// the new content. A mere touch is read once and found unchanged.
#[test]
fn no_write_passes_for_unchanged() {
    let s = Scratch::new();
    let env = vec![racy_env()];
    let remote = s.join("backups");
    for mode in ["wal", "delete"] {
        let db = s.join(&format!("{mode}.sqlite3"));
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = {mode};
             CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO accounts (name) VALUES ('aaaa');"
        ))
        .unwrap();
        let snap = |expect: &str| -> Value {
            let snap = s
                .tool("sqlite-snap")
                .args(["-q", "--incremental", "--state-dir"])
                .arg(s.join("state"))
                .arg(&db)
                .envs(&env)
                .run()
                .success();
            let record = snap.record();
            if record["unchanged"] != true {
                s.tool("bucket-push")
                    .args(["-q"])
                    .arg(&remote)
                    .stdin(snap.stdout())
                    .run()
                    .success();
            }
            match expect {
                "full" | "delta" => assert_eq!(record["kind"], expect, "{mode}: {record}"),
                "unchanged" => assert_eq!(record["unchanged"], true, "{mode}: {record}"),
                proof => assert_eq!(record["proof"], proof, "{mode}: {record}"),
            }
            record
        };
        let restores_to = |record: &Value, name: &str| {
            let target = s.join("check.sqlite3");
            let _ = std::fs::remove_file(&target);
            s.tool("bucket-pull")
                .arg(format!("{}/{mode}", remote.display()))
                .arg("-o")
                .arg(&target)
                .run()
                .success();
            assert_eq!(sha256_file(&target), record["raw_sha256"].as_str().unwrap());
            assert_eq!(names(&target), [name], "{mode}");
        };
        let mut last_write = Instant::now();
        snap("full");
        outlive_racy_window(last_write);
        // Proved by a read or by the full snapshot's signals, depending on
        // how soon after the write it ran; from then on by signals.
        snap("unchanged");
        snap("file signals");

        // The same size, in place; then the same with mtime put back.
        for put_back in [false, true] {
            let meta = std::fs::metadata(&db).unwrap();
            let wal_path = s.join(&format!("{mode}.sqlite3-wal"));
            let wal_meta = std::fs::metadata(&wal_path).ok();
            let value = if put_back { "cccc" } else { "bbbb" };
            conn.execute("UPDATE accounts SET name = ?1", [value])
                .unwrap();
            last_write = Instant::now();
            if put_back {
                let f = std::fs::File::options().write(true).open(&db).unwrap();
                f.set_modified(meta.modified().unwrap()).unwrap();
                if let Some(old) = &wal_meta {
                    let f = std::fs::File::options()
                        .write(true)
                        .open(&wal_path)
                        .unwrap();
                    f.set_modified(old.modified().unwrap()).unwrap();
                }
            }
            assert_eq!(std::fs::metadata(&db).unwrap().len(), meta.len());
            outlive_racy_window(last_write);
            let record = snap("delta");
            restores_to(&record, value);
            snap("file signals");
        }

        // A touch alone: read once, found unchanged by its SHA-256.
        let f = std::fs::File::options().write(true).open(&db).unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
        last_write = Instant::now();
        outlive_racy_window(last_write);
        snap("sha256");
        snap("file signals");
    }
}

/// `--all` takes database names from storage: a directory on the way that
/// is a symbolic link is never followed out of `-o`, and the other
/// databases are still restored.
#[test]
fn all_never_writes_through_a_link() {
    let s = Scratch::new();
    let storage = s.join("storage");
    tenant_db(&storage.join("tenants/acme/production.sqlite3"), "acme");
    tenant_db(&storage.join("production.sqlite3"), "main");
    let remote = s.join("backups");
    let snap = s.tool("sqlite-snap").arg(&storage).run().success();
    s.tool("bucket-push")
        .arg(&remote)
        .stdin(snap.stdout())
        .run()
        .success();
    let out = s.join("restored");
    let elsewhere = s.join("elsewhere");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("tenants")).unwrap();
    let run = s
        .tool("bucket-pull")
        .arg(&remote)
        .args(["--all", "-o"])
        .arg(&out)
        .run()
        .expect_code(1);
    assert!(
        run.stderr().contains("tenants/acme/production"),
        "{}",
        run.stderr()
    );
    assert!(crate::support::list_files(&elsewhere).is_empty());
    assert_eq!(names(&out.join("production.sqlite3")), ["main"]);
}
