//! blob-sync on an Active Storage-like tree of 10,000 files, against a
//! local directory remote and against real S3 (rclone serve s3, with the
//! counting proxy in front).

use crate::s3server::{BUCKET, S3Server};
use crate::support::{Scratch, Tool, list_files, make_db};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// Files in the tree.
const FILES: usize = 10_000;

/// Builds `storage/` as Rails' disk service lays it out
/// (`ab/cd/<key>`, keys of 28 base-36 characters), with the SQLite
/// databases and their companions beside the uploads. Returns the upload
/// paths.
fn active_storage(root: &Path, files: usize) -> Vec<String> {
    let mut paths = Vec::with_capacity(files);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    for i in 0..files {
        let key: String = (0..28)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % 36) as usize] as char
            })
            .collect();
        let rel = format!("{}/{}/{key}", &key[..2], &key[2..4]);
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let size = 100 + (x % 3000) as usize;
        let body: Vec<u8> = format!("upload {i} {key} ")
            .bytes()
            .cycle()
            .take(size)
            .collect();
        std::fs::write(&path, body).unwrap();
        paths.push(rel);
    }
    make_db(&root.join("production.sqlite3"), 5, true);
    for extra in [
        "production.sqlite3-wal",
        "production.sqlite3-shm",
        "production_cache.sqlite3",
        "old-journal",
    ] {
        std::fs::write(root.join(extra), b"sqlite companion").unwrap();
    }
    paths
}

/// Changes `n` uploads: every 1000th file gets new content.
fn change_some(root: &Path, paths: &[String], n: usize) -> BTreeSet<String> {
    let changed: BTreeSet<String> = paths
        .iter()
        .step_by(paths.len() / n)
        .take(n)
        .cloned()
        .collect();
    for rel in &changed {
        let path = root.join(rel);
        let mut body = std::fs::read(&path).unwrap();
        body.extend_from_slice(b" (edited)");
        std::fs::write(&path, body).unwrap();
    }
    changed
}

/// The paths a verbose run says it copied.
fn copied_paths(stderr: &str) -> BTreeSet<String> {
    stderr
        .lines()
        .filter(|l| l.contains(" INFO ") && l.contains("(copied, "))
        .map(|l| {
            l.split(" INFO ")
                .nth(1)
                .unwrap()
                .split(" (copied")
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// A blob-sync run with its cache in the scratch directory.
fn sync(s: &Scratch) -> Tool {
    s.tool("blob-sync").env("XDG_CACHE_HOME", s.join("cache"))
}

/// Asserts every upload arrived byte for byte and no SQLite file did.
fn same_uploads(from: &Path, to: &Path, paths: &[String]) {
    for rel in paths {
        assert_eq!(
            std::fs::read(from.join(rel)).unwrap(),
            std::fs::read(to.join(rel)).unwrap(),
            "{rel} differs"
        );
    }
    let sqlite: Vec<String> = list_files(to)
        .into_iter()
        .filter(|f| {
            f.contains("sqlite3")
                || f.ends_with("-wal")
                || f.ends_with("-shm")
                || f.ends_with("-journal")
        })
        .collect();
    assert!(sqlite.is_empty(), "SQLite files were synced: {sqlite:?}");
}

/// Large files copied in parallel go up in parts, two in flight per file:
/// four requests wanted at once by two transfers. The pool lets three
/// through (`--transfers` + 1) and opens no more connections than that,
/// in both directions. (Measured without the bound: 4 connections.)
#[test]
fn parallel_multipart_transfers_stay_within_transfers_plus_one_connections() {
    let s = Scratch::new();
    let (server, proxy, env) = S3Server::start_behind_proxy(s.path());
    // A distant server: each part is still in flight when the next ones
    // are ready, so the four senders would all be waiting at once.
    proxy.set_latency(std::time::Duration::from_millis(700));
    let mut rng = crate::support::Rng::new(7);
    let names: Vec<String> = (0..3).map(|i| format!("big/{i}.bin")).collect();
    for name in &names {
        // 17 MiB of noise: above the single-PUT limit, four parts.
        let data: Vec<u8> = (0..17 << 17)
            .flat_map(|_| rng.next().to_le_bytes())
            .collect();
        let path = s.join(&format!("storage/{name}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    let remote = format!("s3://{BUCKET}/files");
    sync(&s)
        .args(["storage", &remote, "--transfers", "2"])
        .envs(&env)
        .run()
        .success();
    let parts = proxy.count_ok("PUT", "partNumber=");
    assert_eq!(parts, 12, "{:#?}", proxy.seen());
    let up = proxy.connections();
    assert!(up.opened <= 3 && up.peak <= 3, "{up:?}");
    same_uploads(&s.join("storage"), &server.path("files"), &names);

    proxy.reset_seen();
    sync(&s)
        .args([&remote, "restored", "--transfers", "2"])
        .envs(&env)
        .run()
        .success();
    let down = proxy.connections();
    assert!(down.opened <= 3, "{down:?}");
    same_uploads(&s.join("storage"), &s.join("restored"), &names);
}

#[test]
fn sync_to_a_local_directory() {
    let s = Scratch::new();
    let storage = s.join("storage");
    let paths = active_storage(&storage, FILES);

    let first = sync(&s).args(["storage", "backups/files"]).run().success();
    let r = first.record();
    assert_eq!(r["copied"]["files"], FILES);
    assert_eq!(r["skipped"]["files"], 5, "the database and its companions");
    same_uploads(&storage, &s.join("backups/files"), &paths);
    assert!(s.join("backups/files/.sqlkeep-sync.json").is_file());

    let second = sync(&s).args(["storage", "backups/files"]).run().success();
    let r = second.record();
    assert_eq!(
        (
            r["copied"]["files"].as_u64(),
            r["unchanged"]["files"].as_u64()
        ),
        (Some(0), Some(FILES as u64))
    );
    assert_eq!(r["dest_state_from"], "walk");

    let changed = change_some(&storage, &paths, 10);
    let third = sync(&s)
        .args(["-v", "storage", "backups/files"])
        .run()
        .success();
    assert_eq!(third.record()["copied"]["files"], 10);
    assert_eq!(copied_paths(&third.stderr()), changed);
    same_uploads(&storage, &s.join("backups/files"), &paths);
}

#[test]
fn sync_to_s3_costs_no_request_when_nothing_changed() {
    let s = Scratch::new();
    let (server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let storage = s.join("storage");
    let paths = active_storage(&storage, FILES);
    let remote = format!("s3://{BUCKET}/files");

    let first = sync(&s)
        .args(["storage", &remote, "--transfers", "8"])
        .envs(&env)
        .run()
        .success();
    let r = first.record();
    assert_eq!(r["uploaded"]["files"], FILES);
    // rclone's server fails a few concurrent uploads into new directories
    // ("file does not exist" in its log); those are retried, and each
    // attempt is billed and counted.
    assert_eq!(
        proxy.count_ok("PUT", ""),
        FILES + 1,
        "every upload and the manifest, once each"
    );
    assert_eq!(
        r["requests"]["put"],
        proxy.count("PUT", ""),
        "every attempt is counted"
    );
    same_uploads(&storage, &server.path("files"), &paths);
    // --transfers 8: every upload over at most nine connections.
    let connections = proxy.connections();
    assert!(connections.opened <= 9, "{connections:?}");

    // Nothing changed: not one request, from the cache.
    proxy.reset_seen();
    let second = sync(&s)
        .args(["storage", &remote])
        .envs(&env)
        .run()
        .success();
    assert_eq!(proxy.seen().len(), 0, "{:#?}", proxy.seen());
    let r = second.record();
    assert_eq!(
        (
            r["uploaded"]["files"].as_u64(),
            r["unchanged"]["files"].as_u64()
        ),
        (Some(0), Some(FILES as u64))
    );
    assert_eq!(r["requests"]["class_b"], 0);
    assert_eq!(r["requests"]["class_c"], 0);

    // Without the cache (another machine): one GET of the manifest, still
    // no LIST, no HEAD, no upload.
    std::fs::remove_dir_all(s.join("cache")).unwrap();
    proxy.reset_seen();
    sync(&s)
        .args(["storage", &remote])
        .envs(&env)
        .run()
        .success();
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert!(seen[0].method == "GET" && seen[0].target.ends_with(".sqlkeep-sync.json"));

    // Ten changed files: exactly ten uploads, then the manifest.
    let changed = change_some(&storage, &paths, 10);
    proxy.reset_seen();
    let run = sync(&s)
        .args(["-v", "storage", &remote])
        .envs(&env)
        .run()
        .success();
    assert_eq!(copied_paths(&run.stderr()), changed);
    let puts: BTreeSet<String> = proxy
        .seen()
        .iter()
        .filter(|r| r.method == "PUT" && !r.target.ends_with(".sqlkeep-sync.json"))
        .map(|r| {
            r.target
                .trim_start_matches(&format!("/{BUCKET}/files/"))
                .to_string()
        })
        .collect();
    assert_eq!(puts, changed);
    assert_eq!(proxy.count_ok("PUT", ""), 11);
    // The manifest is read once just before it is rewritten, so another
    // run's entries are merged, never overwritten; no LIST, no HEAD.
    let others: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|r| r.method != "PUT")
        .collect();
    assert_eq!(others.len(), 1, "{others:#?}");
    assert!(others[0].method == "GET" && others[0].target.ends_with(".sqlkeep-sync.json"));

    // The restore: remote to an empty directory, byte for byte.
    let restore = sync(&s)
        .args([&remote, "restored"])
        .envs(&env)
        .run()
        .success();
    assert_eq!(restore.record()["downloaded"]["files"], FILES);
    same_uploads(&storage, &s.join("restored"), &paths);
    // The app's directory gets the app's files, and no manifest of ours:
    // what the next run needs is in the cache.
    assert_eq!(
        list_files(&s.join("restored")).len(),
        FILES,
        "the uploads, and nothing else"
    );
    assert!(!s.join("restored/.sqlkeep-sync.json").exists());
    let again = sync(&s)
        .args([&remote, "restored"])
        .envs(&env)
        .run()
        .success();
    assert_eq!(again.record()["downloaded"]["files"], 0);
    assert!(!s.join("restored/.sqlkeep-sync.json").exists());
}

/// An empty or missing source with --delete deletes nothing and exits 5;
/// so does a plan over --max-delete; a modest plan goes through.
#[test]
fn delete_safety() {
    let s = Scratch::new();
    let (server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let storage = s.join("storage");
    let paths = active_storage(&storage, 200);
    let remote = format!("s3://{BUCKET}/files");
    for dest in [remote.as_str(), "backups/files"] {
        sync(&s).args(["storage", dest]).envs(&env).run().success();
    }
    let before = list_files(&s.join("backups/files"));

    // An unmounted volume: the mount point exists, empty.
    std::fs::create_dir(s.join("unmounted")).unwrap();
    for source in ["unmounted", "missing"] {
        for dest in [remote.as_str(), "backups/files"] {
            proxy.reset_seen();
            let run = sync(&s)
                .args(["--delete", source, dest])
                .envs(&env)
                .run()
                .expect_code(5);
            assert!(
                run.stderr().contains("nothing was changed"),
                "{}",
                run.stderr()
            );
            assert!(run.stdout().is_empty());
            assert_eq!(proxy.count("DELETE", ""), 0);
        }
    }
    assert_eq!(list_files(&s.join("backups/files")), before);
    assert_eq!(list_files(&server.path("files")).len(), 201);

    // 30 of 200 is 15%: over the default 10%.
    for rel in &paths[..30] {
        std::fs::remove_file(storage.join(rel)).unwrap();
    }
    let run = sync(&s)
        .args(["--delete", "storage", &remote])
        .envs(&env)
        .run()
        .expect_code(5);
    assert!(
        run.stderr()
            .contains("refusing to delete 30 of 200 files, more than --max-delete allows (20)")
            && run.stderr().contains("allow them with --max-delete 30"),
        "{}",
        run.stderr()
    );
    assert_eq!(list_files(&server.path("files")).len(), 201);
    let run = sync(&s)
        .args(["--delete", "--max-delete", "30", "storage", &remote])
        .envs(&env)
        .run()
        .success();
    assert_eq!(run.record()["deleted"]["files"], 30);
    assert_eq!(list_files(&server.path("files")).len(), 171);
    for rel in &paths[..30] {
        assert!(!server.path("files").join(rel).exists());
    }

    // --dry-run shows the plan and changes nothing; a plan over the limit
    // is shown too, with the refusal the real run would meet.
    std::fs::remove_file(storage.join(&paths[50])).unwrap();
    let run = sync(&s)
        .args(["--dry-run", "--delete", "storage", "backups/files"])
        .run()
        .expect_code(5);
    let r = run.record();
    assert_eq!(r["plan"]["delete"].as_array().unwrap().len(), 31);
    assert!(
        r["refused"]
            .as_str()
            .unwrap()
            .contains("refusing to delete 31 of 200 files"),
        "{r}"
    );
    let run = sync(&s)
        .args([
            "--dry-run",
            "--delete",
            "--max-delete",
            "20%",
            "storage",
            "backups/files",
        ])
        .run()
        .success();
    assert!(run.record().get("refused").is_none());
    assert_eq!(list_files(&s.join("backups/files")), before);
}

/// Filters: default SQLite excludes, --exclude, --include, --exclude-from,
/// --no-default-excludes.
#[test]
fn filters() {
    let s = Scratch::new();
    let storage = s.join("storage");
    for rel in [
        "a/x.jpg",
        "a/y.png",
        "tmp/cache.bin",
        "b/tmp/keep.bin",
        "notes.txt",
    ] {
        std::fs::create_dir_all(storage.join(rel).parent().unwrap()).unwrap();
        std::fs::write(storage.join(rel), rel).unwrap();
    }
    std::fs::write(storage.join("app.sqlite3"), b"db").unwrap();
    std::fs::write(s.join("excludes.txt"), b"# comment\n/tmp/\n\n*.txt\n").unwrap();
    sync(&s)
        .args(["storage", "out1", "--exclude-from", "excludes.txt"])
        .run()
        .success();
    assert_eq!(
        list_files(&s.join("out1")),
        [".sqlkeep-sync.json", "a/x.jpg", "a/y.png", "b/tmp/keep.bin"]
    );
    sync(&s)
        .args(["storage", "out2", "--include", "*.jpg"])
        .run()
        .success();
    assert_eq!(
        list_files(&s.join("out2")),
        [".sqlkeep-sync.json", "a/x.jpg"]
    );
    sync(&s)
        .args([
            "storage",
            "out3",
            "--no-default-excludes",
            "--exclude",
            "*.bin",
        ])
        .run()
        .success();
    assert!(s.join("out3/app.sqlite3").is_file());
    let run = sync(&s)
        .args(["storage", "out4", "--exclude", "[unclosed"])
        .run()
        .expect_code(2);
    assert!(
        run.stderr().contains("bad filter pattern"),
        "{}",
        run.stderr()
    );
}

/// A missing source without --delete is "not found"; two remotes are a
/// usage error.
#[test]
fn bad_arguments() {
    let s = Scratch::new();
    sync(&s)
        .args(["nowhere", "out"])
        .run()
        .expect_code(3)
        .stderr_has("no such source");
    let env = S3Server::aws_env("http://127.0.0.1:9");
    sync(&s)
        .args(["s3://a/x", "s3://b/y"])
        .envs(&env)
        .run()
        .expect_code(2)
        .stderr_has("one side must be a local directory");
    let run = sync(&s)
        .args(["--max-delete", "lots", "a", "b"])
        .run()
        .expect_code(2);
    assert!(run.stderr().contains("--max-delete"));
    let _: Value = Value::Null;
}
