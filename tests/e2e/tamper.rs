//! A tampered remote cannot make the tools write, read or delete outside
//! their target, nor restore unchecked data: manifests, `latest.json`,
//! sync manifests, listings, records and addresses, with traversal in
//! every encoding we could think of (issue 10, "Escaping the target" and
//! "Checks that a manifest can switch off").
//!
//! Each case asserts the exit code and message, and that the world around
//! the target (`world()`: every file's hash, every link) is unchanged.

use crate::s3server::{BUCKET, S3Server};
use crate::support::{Scratch, make_db, world};
use serde_json::{Value, json};

/// Names that must never reach outside a target, in the encodings a
/// server, a shell or a careless join might turn into `..` or `/`.
pub const TRAVERSALS: [&str; 14] = [
    "../pwn.txt",
    "ab/../../x",
    "../../otherbkt/prod/data.bin",
    "/etc/sqlkeep-pwned",
    "./x",
    "a//b",
    "..\\..\\x",
    "a\\..\\..\\x",
    "..",
    ".",
    "x/..",
    "a\u{0}b",
    "a\nb",
    "../dbs/app/latest.json",
];

/// Names that look like traversal but are ordinary names: they must stay
/// inside the target as files of exactly that name.
pub const LOOKALIKES: [&str; 4] = ["%2e%2e/x", "..%2fx", "\u{ff0e}\u{ff0e}/x", "..hidden"];

/// A local remote with one pushed snapshot of `app`; returns the record.
fn pushed(s: &Scratch) -> Value {
    make_db(&s.join("app.sqlite3"), 10, false);
    let snap = s.snap("snaps", "app.sqlite3");
    s.tool("bucket-push")
        .arg("remote")
        .stdin(snap.stdout())
        .run()
        .success()
        .record()
}

/// Rewrites `latest.json` (and the manifest beside the object) through
/// `edit`.
fn tamper_manifests(s: &Scratch, edit: impl Fn(&mut Value)) {
    for entry in std::fs::read_dir(s.join("remote/app")).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            edit(&mut v);
            std::fs::write(&path, v.to_string()).unwrap();
        }
    }
}

/// A manifest that lacks a checksum, or has one of the wrong type, is
/// refused before anything is written: the checks cannot be switched off.
#[test]
fn a_manifest_cannot_switch_checks_off() {
    let s = Scratch::new();
    pushed(&s);
    let pristine = std::fs::read(s.join("remote/app/latest.json")).unwrap();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("sha256", Value::Null, "lacks sha256"),
        ("bytes", Value::Null, "lacks bytes"),
        ("raw_sha256", Value::Null, "lacks raw_sha256"),
        ("bytes", json!("123"), "has a bad bytes"),
        ("sha256", json!(42), "has a bad sha256"),
        ("sha256", json!("ABC"), "has a bad sha256"),
        ("raw_sha256", json!({"x": 1}), "has a bad raw_sha256"),
        (
            "taken_at",
            json!("2026-02-30T03:00:00Z"),
            "has a bad taken_at",
        ),
    ];
    for (field, value, message) in cases {
        std::fs::write(s.join("remote/app/latest.json"), &pristine).unwrap();
        tamper_manifests(&s, |v| {
            if value.is_null() {
                v.as_object_mut().unwrap().remove(field);
            } else {
                v[field] = value.clone();
            }
        });
        std::fs::write(s.join("target.sqlite3"), b"").unwrap();
        let run = s
            .tool("bucket-pull")
            .args(["remote/app", "-o", "target.sqlite3"])
            .run()
            .expect_code(1);
        assert!(
            run.stderr().contains("manifest ") && run.stderr().contains(message),
            "{field}: {}",
            run.stderr()
        );
        assert_eq!(std::fs::read(s.join("target.sqlite3")).unwrap(), b"");
    }
}

/// `latest.json` naming an object outside its database's prefix, in any
/// encoding, restores nothing from there: only the last segment of a url
/// is ever used, and it must be a snapshot object of the same time.
#[test]
fn latest_json_cannot_point_outside_its_prefix() {
    let s = Scratch::new();
    let record = pushed(&s);
    // A decoy the tampered manifest points at, outside the remote.
    std::fs::create_dir_all(s.join("outside")).unwrap();
    let object = record["url"].as_str().unwrap().rsplit('/').next().unwrap();
    std::fs::copy(
        s.join("remote/app").join(object),
        s.join("outside").join(object),
    )
    .unwrap();
    let before = world(&s.join("outside"));
    let pristine = std::fs::read(s.join("remote/app/latest.json")).unwrap();
    for url in [
        "../../../etc/passwd".to_string(),
        format!("../../outside/{object}x"),
        "/etc/shadow".into(),
        "..%2f..%2fetc%2fpasswd".into(),
        "app/..\\..\\x".into(),
        format!("{}/../../outside/not-a-snapshot.bin", s.path().display()),
    ] {
        std::fs::write(s.join("remote/app/latest.json"), &pristine).unwrap();
        tamper_manifests(&s, |v| v["url"] = url.clone().into());
        let run = s
            .tool("bucket-pull")
            .args(["remote/app", "-o", "t.sqlite3"])
            .run();
        assert_ne!(run.code(), 0, "{url}: {}", run.stderr());
        assert!(!s.join("t.sqlite3").exists(), "{url}");
    }
    assert_eq!(world(&s.join("outside")), before);
}

/// Addresses that would climb out of their bucket or prefix are usage
/// errors before any request: `s3://bkt/../other` once stored into bucket
/// `other`.
#[test]
fn addresses_cannot_climb_out() {
    let s = Scratch::new();
    let (server, proxy, env) = S3Server::start_behind_proxy(s.path());
    make_db(&s.join("app.sqlite3"), 5, false);
    let snap = s.snap("snaps", "app.sqlite3");
    std::fs::create_dir_all(server.root.join("other")).unwrap();
    for remote in [
        format!("s3://{BUCKET}/../other"),
        format!("s3://{BUCKET}/db/../../other"),
        format!("s3://{BUCKET}/./db"),
        format!("s3://{BUCKET}/db\\..\\x"),
        "s3://../x".to_string(),
    ] {
        let push = s
            .tool("bucket-push")
            .arg(&remote)
            .envs(&env)
            .stdin(snap.stdout())
            .run()
            .expect_code(2);
        assert!(push.stderr().contains("bad address"), "{}", push.stderr());
        let pull = s
            .tool("bucket-pull")
            .arg(format!("{remote}/app"))
            .envs(&env)
            .run()
            .expect_code(2);
        assert!(pull.stderr().contains("bad address"), "{}", pull.stderr());
    }
    assert!(proxy.seen().is_empty(), "{:#?}", proxy.seen());
    assert_eq!(
        std::fs::read_dir(server.root.join("other"))
            .unwrap()
            .count(),
        0
    );
}

/// A record cannot name a database or file that escapes the remote.
#[test]
fn records_cannot_steer_a_push_outside_the_remote() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, false);
    let snap = s.snap("snaps", "app.sqlite3").record();
    std::fs::create_dir_all(s.join("remote")).unwrap();
    let before = world(s.path());
    for db in TRAVERSALS {
        let mut r = snap.clone();
        r["db"] = db.into();
        let run = s
            .tool("bucket-push")
            .arg("remote")
            .stdin(r.to_string())
            .run()
            .expect_code(1);
        assert!(
            run.stderr().contains("unsafe name"),
            "{db:?}: {}",
            run.stderr()
        );
    }
    assert_eq!(world(s.path()), before, "nothing was written anywhere");
}

/// A symbolic link inside a local remote is never followed: a push does
/// not write through it, a prune does not delete through it.
#[test]
fn a_link_inside_a_local_remote_is_not_followed() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, false);
    let snap = s.snap("snaps", "app.sqlite3");
    std::fs::create_dir_all(s.join("remote")).unwrap();
    std::fs::create_dir_all(s.join("victim")).unwrap();
    std::fs::write(s.join("victim/latest.json"), b"precious").unwrap();
    std::os::unix::fs::symlink(s.join("victim"), s.join("remote/app")).unwrap();
    let before = world(&s.join("victim"));
    let run = s
        .tool("bucket-push")
        .args(["--keep-last", "1", "remote"])
        .stdin(snap.stdout())
        .run()
        .expect_code(1);
    assert!(
        run.stderr().contains("is a symbolic link"),
        "{}",
        run.stderr()
    );
    assert_eq!(world(&s.join("victim")), before);
}

/// A listing entry that is not a safe key fails a prune before any
/// delete, naming the entry (a file with a backslash in its name, as a
/// careless tool on another system might have stored).
#[test]
fn a_hostile_listing_fails_before_any_delete() {
    let s = Scratch::new();
    pushed(&s);
    std::fs::write(s.join("remote/app/evil\\..\\name.json"), b"{}").unwrap();
    let before = world(&s.join("remote"));
    std::fs::remove_file(s.join("app.sqlite3")).unwrap();
    make_db(&s.join("app.sqlite3"), 6, false);
    let snap = s.snap("snaps2", "app.sqlite3");
    let run = s
        .tool("bucket-push")
        .args(["--keep-last", "1", "remote"])
        .stdin(snap.stdout())
        .run()
        .expect_code(1);
    assert!(run.stderr().contains("has a backslash"), "{}", run.stderr());
    // The new snapshot was stored; nothing was deleted.
    let after = world(&s.join("remote"));
    for (path, hash) in &before {
        if !path.ends_with("latest.json") {
            assert_eq!(after.get(path), Some(hash), "{path} changed or vanished");
        }
    }
}

/// The sync manifest of a remote, rewritten with `files`.
fn sync_manifest(files: Value) -> String {
    json!({"type": "sync_manifest", "version": 1, "files": files}).to_string()
}

/// Starts a server whose bucket already holds `files/` with a tampered
/// sync manifest and one good file, and a victim object elsewhere.
fn tampered_sync_remote(s: &Scratch, entry: &str) -> (S3Server, Vec<(String, String)>) {
    let data = s.join("s3data");
    std::fs::create_dir_all(data.join(BUCKET).join("files/ab")).unwrap();
    std::fs::create_dir_all(data.join("otherbkt/prod")).unwrap();
    std::fs::create_dir_all(data.join(BUCKET).join("dbs/app")).unwrap();
    std::fs::write(data.join("otherbkt/prod/data.bin"), b"other bucket").unwrap();
    std::fs::write(data.join(BUCKET).join("dbs/app/latest.json"), b"{}").unwrap();
    std::fs::write(data.join(BUCKET).join("files/ab/good"), b"good").unwrap();
    std::fs::write(
        data.join(BUCKET).join("files/.sqlkeep-sync.json"),
        sync_manifest(json!({
            "ab/good": {"bytes": 4},
            entry: {"bytes": 3},
        })),
    )
    .unwrap();
    // Written before the server starts, so its directory cache sees them.
    let server = S3Server::start(s.path());
    let env = S3Server::aws_env(&server.endpoint);
    (server, env)
}

/// A sync manifest entry that would reach outside the destination fails
/// the whole run before anything is written or deleted, in a restore and
/// in a `--delete` upload.
#[test]
fn a_hostile_sync_manifest_fails_before_any_write_or_delete() {
    for entry in TRAVERSALS {
        let s = Scratch::new();
        let (server, env) = tampered_sync_remote(&s, entry);
        let remote = format!("s3://{BUCKET}/files");
        std::fs::create_dir_all(s.join("place/dest")).unwrap();
        let before = world(&s.join("place"));
        let restore = s
            .tool("blob-sync")
            .args([&remote, "place/dest"])
            .envs(&env)
            .run()
            .expect_code(1);
        assert!(
            restore.stderr().contains("refusing the manifest's entry"),
            "{entry:?}: {}",
            restore.stderr()
        );
        assert_eq!(world(&s.join("place")), before, "{entry:?}: restore wrote");

        std::fs::create_dir_all(s.join("src/ab")).unwrap();
        std::fs::write(s.join("src/ab/good"), b"good").unwrap();
        let server_before = world(&server.root);
        let upload = s
            .tool("blob-sync")
            .args(["--delete", "--max-delete", "100%", "src", &remote])
            .envs(&env)
            .run()
            .expect_code(1);
        assert!(
            upload.stderr().contains("refusing the manifest's entry"),
            "{entry:?}: {}",
            upload.stderr()
        );
        assert_eq!(
            world(&server.root),
            server_before,
            "{entry:?}: upload changed the server"
        );
    }
}

/// Names that only look like traversal are ordinary names: restored as
/// files of exactly that name, inside the destination.
#[test]
fn lookalike_names_stay_inside() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.join("src")).unwrap();
    for name in LOOKALIKES {
        let path = s.join("src").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, name.as_bytes()).unwrap();
    }
    s.tool("blob-sync").args(["src", "mid"]).run().success();
    let before = world(s.path());
    s.tool("blob-sync")
        .args(["mid", "out/dest"])
        .run()
        .success();
    for name in LOOKALIKES {
        assert_eq!(
            std::fs::read(s.join("out/dest").join(name)).unwrap(),
            name.as_bytes(),
            "{name:?}"
        );
    }
    let after = world(s.path());
    for (path, hash) in &before {
        assert_eq!(after.get(path), Some(hash), "{path} changed");
    }
    let gained: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(
        gained
            .iter()
            .all(|k| k.starts_with("out") || k.starts_with(".cache")),
        "only out/ (and the manifest cache) gained files: {gained:?}"
    );
}

/// A symbolic link inside a local destination is never followed: the
/// entries below it fail, the rest are restored, and the place it points
/// at is untouched.
#[test]
fn a_link_in_the_destination_is_an_error_not_a_redirect() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.join("src/ab")).unwrap();
    std::fs::create_dir_all(s.join("src/cd")).unwrap();
    std::fs::write(s.join("src/ab/one"), b"1").unwrap();
    std::fs::write(s.join("src/cd/two"), b"2").unwrap();
    std::fs::create_dir_all(s.join("dest")).unwrap();
    std::fs::create_dir_all(s.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(s.join("elsewhere"), s.join("dest/ab")).unwrap();
    let run = s
        .tool("blob-sync")
        .args(["src", "dest"])
        .run()
        .expect_code(1);
    assert!(
        run.stderr().contains("is a symbolic link"),
        "{}",
        run.stderr()
    );
    assert_eq!(std::fs::read_dir(s.join("elsewhere")).unwrap().count(), 0);
    assert_eq!(std::fs::read(s.join("dest/cd/two")).unwrap(), b"2");
    // The next run fails the same way: a link is never taken for a place.
    s.tool("blob-sync")
        .args(["src", "dest"])
        .run()
        .expect_code(1);
    assert_eq!(std::fs::read_dir(s.join("elsewhere")).unwrap().count(), 0);
}

/// Symbolic links in a source are skipped with a warning and counted,
/// unless --copy-links: then what they point to is copied.
#[test]
fn source_links_are_skipped_unless_asked() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.join("src/ab")).unwrap();
    std::fs::create_dir_all(s.join("secret")).unwrap();
    std::fs::write(s.join("secret/key"), b"do not upload").unwrap();
    std::fs::write(s.join("src/ab/file"), b"upload me").unwrap();
    std::os::unix::fs::symlink(s.join("secret"), s.join("src/linked-dir")).unwrap();
    std::os::unix::fs::symlink(s.join("secret/key"), s.join("src/ab/linked-file")).unwrap();
    let run = s
        .tool("blob-sync")
        .args(["src", "dest"])
        .run()
        .success()
        .stderr_has("WARN")
        .stderr_has("a symbolic link, skipped");
    assert_eq!(run.record()["links_skipped"], 2);
    assert!(!s.join("dest/linked-dir").exists());
    assert!(!s.join("dest/ab/linked-file").exists());
    assert!(s.join("dest/ab/file").exists());
    let run = s
        .tool("blob-sync")
        .args(["--copy-links", "src", "dest2"])
        .run()
        .success();
    assert_eq!(run.record()["links_skipped"], 0);
    assert_eq!(
        std::fs::read(s.join("dest2/linked-dir/key")).unwrap(),
        b"do not upload"
    );
    assert!(
        !std::fs::symlink_metadata(s.join("dest2/ab/linked-file"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
