//! bucket-push and bucket-pull against real S3 over HTTP: `rclone serve
//! s3` on loopback, with the fault-injecting proxy in front where a test
//! needs to see or break the wire.

use crate::proxy::Fault;
use crate::s3server::{BUCKET, KEY, S3Server, SECRET};
use crate::support::{Scratch, count, make_big_db, make_db, sha256_file, stem_of};
use serde_json::Value;

/// The whole pipeline through `s3://$BUCKET_NAME/databases` with exactly
/// the variables Fly.io sets for Tigris.
#[test]
fn pipeline_through_s3_with_fly_variables() {
    let s = Scratch::new();
    let server = S3Server::start(s.path());
    let env = S3Server::aws_env(&server.endpoint);
    make_db(&s.join("production.sqlite3"), 300, true);

    let snap = s
        .tool("sqlite-snap")
        .arg("production.sqlite3")
        .run()
        .success();
    let remote = format!("s3://{BUCKET}/databases");
    let push = s
        .tool("bucket-push")
        .arg(&remote)
        .envs(&env)
        .stdin(snap.stdout())
        .run()
        .success();
    let object = push.record();
    let stamp = stem_of(&object);
    assert_eq!(
        object["url"],
        format!("{remote}/production/{stamp}.sqlite3.zst")
    );
    for name in [
        format!("{stamp}.sqlite3.zst"),
        format!("{stamp}.json"),
        "latest.json".into(),
    ] {
        assert!(
            server.path("databases/production").join(&name).is_file(),
            "{name} not stored"
        );
    }

    let pull = s
        .tool("bucket-pull")
        .arg(format!("{remote}/production"))
        .args(["--latest", "-o", "restored.sqlite3"])
        .envs(&env)
        .run()
        .success();
    let verify = s
        .tool("sqlite-verify")
        .args(["--max-age", "1h", "--expect-table", "users"])
        .stdin(pull.stdout())
        .run()
        .success();
    let verified = verify.record();
    assert_eq!(verified["checks"]["raw_sha256"], "ok");
    assert_eq!(
        verified["tables"]["posts"],
        count(&s.join("production.sqlite3"), "posts")
    );
}

/// The same through a named remote, once from rclone's variables and once
/// from an rclone config file.
#[test]
fn pipeline_through_named_remotes() {
    let s = Scratch::new();
    let server = S3Server::start(s.path());
    make_db(&s.join("app.sqlite3"), 50, true);
    let snap = s.snap("snaps", "app.sqlite3");

    let from_vars = S3Server::rclone_env("my-store", &server.endpoint);
    s.tool("bucket-push")
        .arg(format!("my-store:{BUCKET}/db"))
        .envs(&from_vars)
        .stdin(snap.stdout())
        .run()
        .success();
    s.tool("bucket-pull")
        .arg(format!("my-store:{BUCKET}/db/app"))
        .args(["-o", "a.sqlite3"])
        .envs(&from_vars)
        .run()
        .success();
    assert_eq!(count(&s.join("a.sqlite3"), "users"), 50);

    let conf = s.join("rclone.conf");
    std::fs::write(
        &conf,
        format!(
            "[other]\ntype = local\n\n[b2s3]\ntype = s3\nprovider = Other\nendpoint = {}\n\
             access_key_id = {KEY}\nsecret_access_key = {SECRET}\n",
            server.endpoint
        ),
    )
    .unwrap();
    let from_file = vec![("RCLONE_CONFIG".to_string(), conf.display().to_string())];
    let pull = s
        .tool("bucket-pull")
        .arg(format!("b2s3:{BUCKET}/db/app"))
        .args(["-o", "b.sqlite3"])
        .envs(&from_file)
        .run()
        .success();
    assert_eq!(pull.record()["raw_sha256"], snap.record()["raw_sha256"]);
}

/// A nightly push of N databases makes only PUTs (counted on the wire, not
/// only by the tool), and a pull of the latest makes two GETs.
#[test]
fn request_counts_on_the_wire() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    std::fs::create_dir(s.join("storage")).unwrap();
    for name in ["production", "production_queue", "production_cable"] {
        make_db(&s.join(&format!("storage/{name}.sqlite3")), 20, true);
    }
    let snap = s.tool("sqlite-snap").arg("storage").run().success();
    // One at a time: rclone's server sometimes answers 500 to concurrent
    // first writes into new directories (retried, and then counted here);
    // storage with no directories has no such race.
    let push = s
        .tool("bucket-push")
        .args(["--transfers", "1"])
        .arg(format!("s3://{BUCKET}/databases"))
        .envs(&env)
        .stdin(snap.stdout())
        .run()
        .success();
    let seen = proxy.seen();
    // One transfer: its requests share a connection (the bound is
    // --transfers + 1).
    let connections = proxy.connections();
    assert!(connections.opened <= 2, "{connections:?}");
    assert_eq!(
        seen.len(),
        12,
        "3 databases × (object, manifest, latest.json read and written): {seen:#?}"
    );
    let puts = seen.iter().filter(|r| r.method == "PUT").count();
    let gets: Vec<_> = seen.iter().filter(|r| r.method == "GET").collect();
    assert_eq!((puts, gets.len()), (9, 3), "{seen:#?}");
    assert!(
        gets.iter().all(|r| r.target.ends_with("/latest.json")),
        "the one GET per database reads latest.json: {seen:#?}"
    );
    for record in push.records() {
        let r = &record["requests"];
        assert_eq!(
            (r["put"].as_u64(), r["class_a"].as_u64()),
            (Some(3), Some(3)),
            "{r}"
        );
        assert_eq!(
            (r["get"].as_u64(), r["class_b"].as_u64()),
            (Some(1), Some(1)),
            "{r}"
        );
        for kind in [
            "head",
            "list",
            "delete",
            "copy",
            "multipart",
            "part",
            "class_c",
        ] {
            assert_eq!(r[kind], 0, "{kind} in {r}");
        }
        assert_eq!(record["latest"], true);
    }

    proxy.reset_seen();
    let pull = s
        .tool("bucket-pull")
        .arg(format!("s3://{BUCKET}/databases/production"))
        .args(["--latest", "-o", "r.sqlite3"])
        .envs(&env)
        .run()
        .success();
    let seen = proxy.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        seen[0].target.ends_with("/production/latest.json")
            && seen[1].target.ends_with(".sqlite3.zst")
    );
    let r = &pull.record()["requests"];
    assert_eq!(
        (r["get"].as_u64(), r["class_b"].as_u64(), r["list"].as_u64()),
        (Some(2), Some(2), Some(0))
    );
}

/// A snapshot larger than one part goes up as a multipart upload, in parts
/// that are counted, and comes back byte for byte.
#[test]
fn large_snapshot_goes_multipart() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    make_big_db(&s.join("big.sqlite3"), 20);
    let snap = s.snap("snaps", "big.sqlite3");
    let bytes = snap.record()["bytes"].as_u64().unwrap();
    assert!(
        bytes > 16 << 20,
        "snapshot should need several parts: {bytes}"
    );
    let push = s
        .tool("bucket-push")
        .arg(format!("s3://{BUCKET}/db"))
        .envs(&env)
        .stdin(snap.stdout())
        .run()
        .success();
    let parts = bytes.div_ceil(sqlkeep_common::store::part_size(bytes));
    assert!(parts >= 3, "{parts} parts");
    let r = &push.record()["requests"];
    let counts = (
        r["multipart"].as_u64(),
        r["part"].as_u64(),
        r["put"].as_u64(),
    );
    assert_eq!(counts, (Some(2), Some(parts), Some(2)), "{r}");
    assert_eq!(proxy.count("PUT", "partNumber=") as u64, parts);
    assert_eq!(proxy.count("POST", "uploads"), 1);
    assert!(
        proxy
            .seen()
            .iter()
            .all(|r| !r.target.contains("list-type") && r.method != "HEAD")
    );
    let pull = s
        .tool("bucket-pull")
        .arg(format!("s3://{BUCKET}/db/big"))
        .args(["-o", "back.sqlite3"])
        .envs(&env)
        .run()
        .success();
    assert_eq!(pull.record()["raw_sha256"], snap.record()["raw_sha256"]);
    assert_eq!(
        sha256_file(&s.join("back.sqlite3")),
        snap.record()["raw_sha256"].as_str().unwrap()
    );
}

/// 503 SlowDown, a 500, a dropped connection and a truncated download are
/// all retried; the result is intact.
#[test]
fn transient_faults_are_retried() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    make_db(&s.join("app.sqlite3"), 200, true);
    let snap = s.snap("snaps", "app.sqlite3");

    proxy.inject("PUT", ".sqlite3.zst", Fault::Status(503, "SlowDown"), 1);
    proxy.inject("PUT", ".sqlite3.zst", Fault::Drop, 1);
    proxy.inject("PUT", "latest.json", Fault::Status(500, "InternalError"), 1);
    let push = s
        .tool("bucket-push")
        .arg(format!("s3://{BUCKET}/db"))
        .envs(&env)
        .stdin(snap.stdout())
        .run()
        .success();
    assert_eq!(
        push.record()["requests"]["put"],
        6,
        "3 PUTs and 3 retries, each billed"
    );
    let injected = proxy.seen().iter().filter(|r| r.fault.is_some()).count();
    assert_eq!(injected, 3, "every injected fault was met and survived");

    // The first download is cut after 1,000 bytes: the retry asks only for
    // the rest, with a Range header, and the checksums still match.
    proxy.reset_seen();
    proxy.inject("GET", ".sqlite3.zst", Fault::Truncate(1000), 1);
    let pull = s
        .tool("bucket-pull")
        .arg(format!("s3://{BUCKET}/db/app"))
        .args(["-o", "r.sqlite3"])
        .envs(&env)
        .run()
        .success();
    let ranges: Vec<Option<String>> = proxy
        .seen()
        .iter()
        .filter(|r| r.target.ends_with(".zst"))
        .map(|r| r.range.clone())
        .collect();
    assert_eq!(ranges, [None, Some("bytes=1000-".to_string())]);
    assert_eq!(pull.record()["raw_sha256"], snap.record()["raw_sha256"]);
    assert_eq!(count(&s.join("r.sqlite3"), "users"), 200);
}

/// The latest.json of a remote, as text.
fn latest(server: &S3Server, db: &str) -> String {
    std::fs::read_to_string(server.path(&format!("db/{db}/latest.json"))).unwrap()
}

/// A push that fails for good (object PUT, or one part of a multipart
/// upload) exits 4 and leaves no manifest naming an incomplete object;
/// latest.json still names the previous snapshot.
#[test]
fn failed_pushes_leave_the_previous_state() {
    let s = Scratch::new();
    let (server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let remote = format!("s3://{BUCKET}/db");
    make_big_db(&s.join("app.sqlite3"), 20);
    let first = s.snap("one", "app.sqlite3");
    s.tool("bucket-push")
        .arg(&remote)
        .envs(&env)
        .stdin(first.stdout())
        .run()
        .success();
    let before = latest(&server, "app");

    // A later snapshot whose object PUTs always fail.
    let mut second = first.record();
    second["taken_at"] = "2030-01-01T00:00:00Z".into();
    proxy.inject(
        "PUT",
        "partNumber=2",
        Fault::Status(500, "InternalError"),
        usize::MAX,
    );
    let run = s
        .tool("bucket-push")
        .args([&remote, "--tries", "2"])
        .envs(&env)
        .stdin(second.to_string())
        .run()
        .expect_code(4);
    assert!(
        run.stderr().contains("uploading part 2") && run.stderr().contains("gave up after 2 tries"),
        "{}",
        run.stderr()
    );
    assert_eq!(
        proxy.count("DELETE", "uploadId="),
        1,
        "the incomplete upload was not aborted"
    );
    assert!(!server.path("db/app/20300101T000000Z.sqlite3.zst").exists());
    assert!(!server.path("db/app/20300101T000000Z.json").exists());
    assert_eq!(latest(&server, "app"), before);

    // And a small file whose single PUT always fails.
    proxy.clear();
    make_db(&s.join("small.sqlite3"), 5, false);
    let small = s.snap("two", "small.sqlite3");
    proxy.inject(
        "PUT",
        ".sqlite3.zst",
        Fault::Status(503, "SlowDown"),
        usize::MAX,
    );
    s.tool("bucket-push")
        .args([&remote, "--tries", "2"])
        .envs(&env)
        .stdin(small.stdout())
        .run()
        .expect_code(4);
    assert!(
        !server.path("db/small").exists(),
        "something of the failed push was stored"
    );
}

/// A download that keeps breaking exits 4 and leaves the target as it was.
#[test]
fn failed_pull_leaves_the_target() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    make_db(&s.join("app.sqlite3"), 100, true);
    let snap = s.snap("snaps", "app.sqlite3");
    s.tool("bucket-push")
        .arg(format!("s3://{BUCKET}/db"))
        .envs(&env)
        .stdin(snap.stdout())
        .run()
        .success();
    std::fs::write(s.join("target.sqlite3"), b"").unwrap();
    proxy.inject("GET", ".sqlite3.zst", Fault::Truncate(500), usize::MAX);
    let run = s
        .tool("bucket-pull")
        .arg(format!("s3://{BUCKET}/db/app"))
        .args(["-o", "target.sqlite3", "--if-missing", "--tries", "3"])
        .envs(&env)
        .run()
        .expect_code(4);
    assert!(
        run.stderr().contains("gave up after 3 tries"),
        "{}",
        run.stderr()
    );
    assert_eq!(std::fs::read(s.join("target.sqlite3")).unwrap(), b"");
    assert!(s.files_in(".").iter().all(|f| !f.contains("sqlkeep-tmp")));
}

/// Wrong credentials, a missing bucket, an unknown remote, a native B2
/// remote, missing credentials and an unreachable endpoint: one clear line
/// each, with the contract's exit code.
#[test]
fn configuration_errors_are_clear() {
    let s = Scratch::new();
    let server = S3Server::start(s.path());
    make_db(&s.join("app.sqlite3"), 5, false);
    let snap = s.snap("snaps", "app.sqlite3");
    let file = snap.record()["path"].as_str().unwrap().to_string();
    let mut wrong = S3Server::aws_env(&server.endpoint);
    wrong[1].1 = "not-the-secret".into();
    /// Variables, remote, exit code, expected message.
    type Case = (Vec<(String, String)>, String, i32, &'static str);
    let cases: Vec<Case> = vec![
        (
            wrong,
            format!("s3://{BUCKET}/x"),
            2,
            "access denied (HTTP 403 SignatureDoesNotMatch",
        ),
        (
            S3Server::aws_env(&server.endpoint),
            "s3://no-such-bucket/x".into(),
            3,
            "no such bucket",
        ),
        (
            vec![],
            "nowhere:bkt/x".into(),
            2,
            "unknown remote \"nowhere\": no RCLONE_CONFIG_NOWHERE_TYPE variable",
        ),
        (
            vec![("RCLONE_CONFIG_OLDB2_TYPE".into(), "b2".into())],
            "oldb2:bkt/x".into(),
            2,
            "type = s3, provider = Other, endpoint = s3.<region>.backblazeb2.com",
        ),
        (
            vec![],
            format!("s3://{BUCKET}/x"),
            2,
            "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ),
        (
            S3Server::aws_env("http://127.0.0.1:9"),
            format!("s3://{BUCKET}/x"),
            4,
            "gave up after 2 tries",
        ),
    ];
    for (env, remote, code, message) in cases {
        let run = s
            .tool("bucket-push")
            .args([&remote, &file, "--tries", "2"])
            .envs(&env)
            .run()
            .expect_code(code);
        let errors: Vec<&str> = run
            .stderr()
            .lines()
            .filter(|l| l.contains(" ERROR "))
            .map(|_| "")
            .collect();
        assert_eq!(errors.len(), 1, "{}", run.stderr());
        assert!(run.stderr().contains(message), "{remote}: {}", run.stderr());
        assert!(run.stdout().is_empty());
    }
    let run = s
        .tool("bucket-pull")
        .arg("s3://no-such-bucket/db/app")
        .args(["-o", "x.sqlite3"])
        .envs(&S3Server::aws_env(&server.endpoint))
        .run()
        .expect_code(3);
    assert!(run.stderr().contains("no such bucket"), "{}", run.stderr());
}

/// The secret key and session token appear in no stdout, stderr, record
/// or stored manifest of any tool, on success or on failure, quiet or
/// verbose.
#[test]
fn secrets_never_leak() {
    const TOKEN: &str = "sqlkeep-TOKEN-5be0d417";
    let s = Scratch::new();
    let (server, proxy, mut env) = S3Server::start_behind_proxy(s.path());
    let mut outputs = Vec::new();
    make_db(&s.join("app.sqlite3"), 20, true);
    let remote = format!("s3://{BUCKET}/db");

    let snap = s
        .tool("sqlite-snap")
        .args(["-v", "app.sqlite3"])
        .envs(&env)
        .run()
        .success();
    let push = s
        .tool("bucket-push")
        .args(["-v", &remote])
        .envs(&env)
        .stdin(snap.stdout())
        .run()
        .success();
    let pull = s
        .tool("bucket-pull")
        .args(["-v", &format!("{remote}/app"), "-o", "r.sqlite3"])
        .envs(&env)
        .run()
        .success();
    let verify = s
        .tool("sqlite-verify")
        .arg("-v")
        .envs(&env)
        .stdin(pull.stdout())
        .run()
        .success();
    let list = s
        .tool("bucket-pull")
        .args([&format!("{remote}/app"), "--list"])
        .envs(&env)
        .run()
        .success();
    outputs.extend([snap, push, pull, verify, list]);
    // Failures print errors: a fault, a wrong key id, a session token.
    proxy.inject("*", "", Fault::Status(500, "InternalError"), usize::MAX);
    outputs.push(
        s.tool("bucket-pull")
            .args([&format!("{remote}/app"), "-o", "f.sqlite3", "--tries", "1"])
            .envs(&env)
            .run()
            .expect_code(4),
    );
    proxy.clear();
    env[0].1 = "unknown-key-id".into();
    env.push(("AWS_SESSION_TOKEN".into(), TOKEN.into()));
    outputs.push(
        s.tool("bucket-push")
            .args([&remote, "app.sqlite3"])
            .envs(&env)
            .run()
            .expect_code(2),
    );
    outputs.push(
        s.tool("bucket-pull")
            .args(["-v", &format!("{remote}/app"), "--list"])
            .envs(&env)
            .run()
            .expect_code(2),
    );

    for run in &outputs {
        for secret in [SECRET, TOKEN] {
            assert!(
                !run.stdout().contains(secret),
                "secret in stdout:\n{}",
                run.stdout()
            );
            assert!(
                !run.stderr().contains(secret),
                "secret in stderr:\n{}",
                run.stderr()
            );
        }
    }
    for file in crate::support::list_files(&server.root) {
        let text =
            String::from_utf8_lossy(&std::fs::read(server.root.join(&file)).unwrap()).into_owned();
        assert!(
            !text.contains(SECRET) && !text.contains(TOKEN),
            "secret stored in {file}"
        );
    }
}

/// `--list` follows the listing past 1,000 keys, newest first.
#[test]
fn list_follows_pagination() {
    let s = Scratch::new();
    let (server, proxy, env) = S3Server::start_behind_proxy(s.path());
    // 1,050 snapshots and their manifests: 2,100 keys, written straight
    // into the server's directory (its PUTs are slow).
    let dir = server.path("many/app");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..1050u32 {
        let stamp = format!(
            "2026{:02}{:02}T{:02}0000Z",
            1 + i / 672,
            1 + i / 24 % 28,
            i % 24
        );
        std::fs::write(
            dir.join(format!("{stamp}.sqlite3.zst")),
            vec![b'z'; 10 + i as usize],
        )
        .unwrap();
        std::fs::write(dir.join(format!("{stamp}.json")), b"{}").unwrap();
    }
    let run = s
        .tool("bucket-pull")
        .arg(format!("s3://{BUCKET}/many/app"))
        .arg("--list")
        .envs(&env)
        .run()
        .success();
    let records: Vec<Value> = run.records();
    assert_eq!(records.len(), 1050);
    assert_eq!(
        records[0]["taken_at"], "2026-02-16T17:00:00Z",
        "snapshot 1,049 is the newest"
    );
    assert_eq!(records[0]["bytes"], 10 + 1049);
    assert!(
        records
            .windows(2)
            .all(|w| w[0]["taken_at"].as_str() > w[1]["taken_at"].as_str())
    );
    assert!(
        records
            .iter()
            .all(|r| r["manifest"] == true && r["db"] == "app")
    );
    assert_eq!(
        proxy.count("GET", "list-type=2"),
        3,
        "2,100 keys take three pages"
    );
    assert!(
        run.stderr().contains("1050 snapshots, 3 listing requests"),
        "{}",
        run.stderr()
    );
}
