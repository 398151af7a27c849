//! age encryption of snapshots (issue 12): what reaches the remote holds
//! no plaintext, restores with `--identity` and with `age -d | zstd -d`
//! alone, a chain restores at every point, and a wrong or missing key or
//! a flipped ciphertext byte fails with its exit code and leaves nothing
//! behind. Keys come from Debian's `age-keygen` (tests/run installs it).

use crate::bank::{Writer, check_invariants};
use crate::s3server::{BUCKET, S3Server};
use crate::support::{Run, Scratch, debris, list_files, sha256_file};
use rusqlite::Connection;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A row only the database holds: it must never be readable in storage.
const MARKER: &str = "sqlkeep-plaintext-marker-7d1e";

/// The first line of every age file.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// An age key pair made by `age-keygen`: the identity file and its
/// public key.
pub struct Key {
    pub file: PathBuf,
    pub public: String,
    pub secret: String,
}

/// Makes an identity file `name` in the scratch directory.
pub fn keygen(s: &Scratch, name: &str) -> Key {
    let file = s.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&file)
        .output()
        .expect("age-keygen runs (tests/run installs age)");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let secret = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("a secret key line")
        .to_string();
    let public = String::from_utf8(
        Command::new("age-keygen")
            .arg("-y")
            .arg(&file)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    assert!(public.starts_with("age1"), "{public}");
    Key {
        file,
        public,
        secret,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Commits a second at most: the databases stay small and every delta
/// stays a delta.
const PACE: u32 = 400;

/// Starts the bank writer on `db` and adds the marker row (and padding)
/// beside its tables, committed while the writer runs.
fn live_db(db: &Path) -> Writer {
    let mut writer = Writer::start_paced(db, "wal", PACE);
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    // 2 MB of padding: the writer's commits between two runs then change
    // far fewer than half the pages, so every increment stays a delta.
    conn.execute_batch(&format!(
        "BEGIN;
         CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('{MARKER}');
         CREATE TABLE padding (b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
           INSERT INTO padding SELECT randomblob(4000) FROM n;
         COMMIT;"
    ))
    .unwrap();
    writer.wait_for(writer.committed + 50);
    writer
}

/// Asserts a stored object is an age file with nothing readable in it.
pub fn assert_sealed(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(AGE_MAGIC),
        "{} is not age",
        path.display()
    );
    // Long strings only: four bytes such as zstd's magic turn up in a
    // megabyte of ciphertext by chance.
    for plain in [&b"SQLite format 3\0"[..], MARKER.as_bytes()] {
        assert!(
            !bytes.windows(plain.len()).any(|w| w == plain),
            "{} holds {:?}",
            path.display(),
            String::from_utf8_lossy(plain)
        );
    }
}

/// The restored database holds the marker and the bank's invariants.
fn assert_restored(db: &Path) {
    check_invariants(db);
    let conn = Connection::open(db).unwrap();
    let body: String = conn
        .query_row("SELECT body FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(body, MARKER);
}

/// `age -d -i KEY OBJ | zstd -d > OUT`, the generic tools alone.
fn generic_restore(key: &Path, object: &Path, out: &Path) {
    let status = Command::new("bash")
        .arg("-c")
        .arg("set -o pipefail; age -d -i \"$1\" \"$2\" | zstd -q -d > \"$3\"")
        .arg("sh")
        .arg(key)
        .arg(object)
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "age -d | zstd -d failed");
}

/// The stored object a pushed record names, on disk.
fn object_file(push: &Value, server_root: Option<&Path>) -> PathBuf {
    let url = push["url"].as_str().unwrap();
    match server_root {
        Some(root) => root
            .join(BUCKET)
            .join(url.split_once(&format!("/{BUCKET}/")).unwrap().1),
        None => PathBuf::from(url),
    }
}

/// The nightly pipeline, encrypted to a recipients file, into a local
/// directory and into S3 (through the counting proxy) while the bank
/// writer runs: the object is age with no plaintext in it, the manifest
/// names the public key and no secret, the push costs what an unencrypted
/// one does (3 PUTs, 1 GET), and the point restores with `--identity`
/// and with `age -d | zstd -d` to exactly the state snapshotted.
#[test]
fn an_encrypted_nightly_restores_with_the_identity_and_with_age_and_zstd() {
    let s = Scratch::new();
    let key = keygen(&s, "key.txt");
    let recipients = s.join("recipients.txt");
    std::fs::write(&recipients, format!("# ops\n{}\n", key.public)).unwrap();
    let db = s.join("production.sqlite3");
    let mut writer = live_db(&db);
    let (server, proxy, env) = S3Server::start_behind_proxy(&s.join("s3"));
    for (remote, env, root) in [
        (s.join("backups").display().to_string(), vec![], None),
        (format!("s3://{BUCKET}/databases"), env, Some(&server.root)),
    ] {
        writer.wait_for(writer.committed + 25);
        let snap = s
            .tool("sqlite-snap")
            .arg("--recipients-file")
            .arg(&recipients)
            .arg(&db)
            .run()
            .success();
        let record = snap.record();
        assert_eq!(record["encryption"]["recipients"][0], key.public.as_str());
        proxy.reset_seen();
        let push = s
            .tool("bucket-push")
            .args(["--require-encryption", &remote])
            .envs(&env)
            .stdin(snap.stdout())
            .run()
            .success()
            .record();
        if root.is_some() {
            let seen = proxy.seen();
            let count = |m: &str| seen.iter().filter(|r| r.method == m).count();
            assert_eq!(
                (count("PUT"), count("GET"), seen.len()),
                (3, 1, 4),
                "{seen:?}"
            );
        }
        let object = object_file(&push, root.map(PathBuf::as_path));
        assert!(object.to_string_lossy().ends_with(".sqlite3.zst.age"));
        assert_sealed(&object);
        assert_eq!(push["sha256"], sha256_file(&object).as_str());
        let manifest_dir = object.parent().unwrap();
        let latest = std::fs::read_to_string(manifest_dir.join("latest.json")).unwrap();
        let latest: Value = serde_json::from_str(&latest).unwrap();
        assert_eq!(
            latest["encryption"],
            serde_json::json!({"format": "age", "recipients": [key.public]})
        );
        for file in list_files(manifest_dir) {
            let text = std::fs::read(manifest_dir.join(&file)).unwrap();
            assert!(!String::from_utf8_lossy(&text).contains("AGE-SECRET-KEY"));
        }

        let restored = s.join("restored.sqlite3");
        let _ = std::fs::remove_file(&restored);
        let pulled = s
            .tool("bucket-pull")
            .arg(format!("{remote}/production"))
            .arg("--identity")
            .arg(&key.file)
            .arg("-o")
            .arg(&restored)
            .envs(&env)
            .run()
            .success()
            .record();
        assert_eq!(
            sha256_file(&restored),
            record["raw_sha256"].as_str().unwrap()
        );
        assert_eq!(pulled["raw_sha256"], record["raw_sha256"]);
        assert_restored(&restored);

        let generic = s.join("generic.sqlite3");
        let _ = std::fs::remove_file(&generic);
        generic_restore(&key.file, &object, &generic);
        assert_eq!(
            sha256_file(&generic),
            record["raw_sha256"].as_str().unwrap()
        );
        assert_restored(&generic);
    }
    writer.stop();
}

/// An incremental chain under `--recipient`: every object (full and
/// deltas) is age, every point restores to exactly its state from its
/// object's address, and a change of recipients starts a new chain that
/// only the new key reads.
#[test]
fn an_encrypted_chain_restores_at_every_point() {
    let s = Scratch::new();
    let key = keygen(&s, "key.txt");
    let db = s.join("production.sqlite3");
    let mut writer = live_db(&db);
    let (server, _proxy, env) = S3Server::start_behind_proxy(&s.join("s3"));
    let remote = format!("s3://{BUCKET}/databases");
    let state = s.join("state");
    let increment = |recipient: &str| -> (Value, Value) {
        let snap = s
            .tool("sqlite-snap")
            .args(["-q", "--incremental", "--deltas-per-diff", "2"])
            .arg("--state-dir")
            .arg(&state)
            .args(["--recipient", recipient])
            .arg(&db)
            .run()
            .success();
        let push = s
            .tool("bucket-push")
            .args(["-q", &remote])
            .envs(&env)
            .stdin(snap.stdout())
            .run()
            .success()
            .record();
        assert_eq!(push["committed"], true, "{push}");
        (snap.record(), push)
    };
    let mut points = Vec::new();
    for _ in 0..6 {
        writer.wait_for(writer.committed + 25);
        points.push(increment(&key.public));
    }
    let kinds: Vec<&str> = points
        .iter()
        .map(|(r, _)| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["full", "delta", "delta", "delta", "delta", "delta"]);
    assert!(points.iter().any(|(r, _)| r["level"] == 1));

    let restore = |push: &Value, key: &Key| -> (Run, PathBuf) {
        let name = push["url"].as_str().unwrap().rsplit('/').next().unwrap();
        let target = s.join("point.sqlite3");
        let _ = std::fs::remove_file(&target);
        let run = s
            .tool("bucket-pull")
            .arg(format!("{remote}/production/{name}"))
            .arg("-i")
            .arg(&key.file)
            .arg("-o")
            .arg(&target)
            .envs(&env)
            .run();
        (run, target)
    };
    for (record, push) in &points {
        assert_sealed(&object_file(push, Some(&server.root)));
        assert!(push["url"].as_str().unwrap().ends_with(".age"));
        let (run, target) = restore(push, &key);
        run.success();
        assert_eq!(sha256_file(&target), record["raw_sha256"].as_str().unwrap());
        assert_restored(&target);
    }

    // A new recipient: the next run is a full snapshot to it alone.
    let new_key = keygen(&s, "new-key.txt");
    writer.wait_for(writer.committed + 25);
    let (record, push) = increment(&new_key.public);
    assert_eq!(record["kind"], "full", "{record}");
    assert_eq!(record["full_reason"], "encryption recipients changed");
    let (run, _) = restore(&push, &key);
    run.expect_code(2).stderr_has(&new_key.public);
    let (run, target) = restore(&push, &new_key);
    run.success();
    assert_eq!(sha256_file(&target), record["raw_sha256"].as_str().unwrap());
    writer.stop();
}

/// No identity, a wrong one, a tampered object (with and without its
/// manifest's checksum rewritten to match) and a tampered delta: each
/// exits with its code in one line and leaves the target as it was
/// (absent, or the old database under `--force`) with no debris.
#[test]
fn wrong_or_missing_keys_and_tampering_leave_nothing_behind() {
    let s = Scratch::new();
    let key = keygen(&s, "key.txt");
    let stranger = keygen(&s, "stranger.txt");
    let db = s.join("production.sqlite3");
    let writer = live_db(&db);
    let remote = s.join("backups");
    let snap = s
        .tool("sqlite-snap")
        .args(["--recipient", &key.public])
        .arg(&db)
        .run()
        .success();
    let push = s
        .tool("bucket-push")
        .arg(&remote)
        .stdin(snap.stdout())
        .run()
        .success()
        .record();
    writer.stop();
    let object = object_file(&push, None);
    let source = format!("{}/production", remote.display());
    let out = s.join("out");
    std::fs::create_dir(&out).unwrap();
    let target = out.join("restored.sqlite3");
    let pull = |extra: &[&str], id: Option<&Path>| {
        let mut tool = s.tool("bucket-pull").arg(&source).args(extra);
        if let Some(id) = id {
            tool = tool.arg("-i").arg(id);
        }
        tool.arg("-o").arg(&target).run()
    };
    let one_line = |run: &Run| {
        let errors = run
            .stderr()
            .lines()
            .filter(|l| l.contains(" ERROR "))
            .count();
        assert_eq!(errors, 1, "{}", run.stderr());
    };

    let run = pull(&[], None).expect_code(2).stderr_has(&key.public);
    one_line(&run);
    assert!(list_files(&out).is_empty(), "{:?}", list_files(&out));
    let run = pull(&[], Some(&stranger.file))
        .expect_code(2)
        .stderr_has(&key.public);
    one_line(&run);
    assert!(list_files(&out).is_empty(), "{:?}", list_files(&out));

    // The environment variable names the identity as well.
    s.tool("bucket-pull")
        .arg(&source)
        .arg("-o")
        .arg(&target)
        .env("SQLKEEP_AGE_IDENTITY_FILE", &key.file)
        .run()
        .success();
    let good = sha256_file(&target);

    // One flipped byte in the middle of the ciphertext: age's chunk
    // authentication fails; the old database stays under --force.
    let original = std::fs::read(&object).unwrap();
    let mut tampered = original.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x20;
    std::fs::write(&object, &tampered).unwrap();
    let run = pull(&["--force"], Some(&key.file)).expect_code(1);
    one_line(&run);
    assert_eq!(sha256_file(&target), good);
    assert!(debris(&out).is_empty(), "{:?}", debris(&out));

    // The same with the manifest's checksum rewritten to the tampered
    // bytes' (an attacker with write access to the bucket): age alone
    // catches it, and says so.
    let manifest_path = object.with_file_name("latest.json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    let forged = manifest.replace(push["sha256"].as_str().unwrap(), &sha256_hex(&tampered));
    assert_ne!(forged, manifest);
    std::fs::write(&manifest_path, &forged).unwrap();
    let run = pull(&["--force"], Some(&key.file))
        .expect_code(1)
        .stderr_has("tampered");
    one_line(&run);
    assert_eq!(sha256_file(&target), good);
    assert!(debris(&out).is_empty(), "{:?}", debris(&out));
    // A manifest stripped of its "encryption" (so the ciphertext would be
    // handed to zstd as if it were plain) is refused before a byte is
    // written: the object's name says it is an age file.
    let mut stripped: Value = serde_json::from_str(&manifest).unwrap();
    stripped.as_object_mut().unwrap().remove("encryption");
    std::fs::write(&manifest_path, format!("{stripped}\n")).unwrap();
    let run = pull(&["--force"], Some(&key.file))
        .expect_code(1)
        .stderr_has("disagree on whether it is encrypted");
    one_line(&run);
    assert_eq!(sha256_file(&target), good);
    std::fs::write(&manifest_path, &manifest).unwrap();
    std::fs::write(&object, &original).unwrap();
    pull(&["--force"], Some(&key.file)).success();
    assert_eq!(sha256_file(&target), good);
}

/// A tampered delta in an encrypted chain fails the restore (exit 1)
/// before the target changes.
#[test]
fn a_tampered_encrypted_delta_fails_the_restore() {
    let s = Scratch::new();
    let key = keygen(&s, "key.txt");
    let db = s.join("production.sqlite3");
    let mut writer = live_db(&db);
    let remote = s.join("backups");
    let state = s.join("state");
    let mut pushed = Vec::new();
    for _ in 0..3 {
        writer.wait_for(writer.committed + 25);
        let snap = s
            .tool("sqlite-snap")
            .args(["-q", "--incremental", "--state-dir"])
            .arg(&state)
            .args(["--recipient", &key.public])
            .arg(&db)
            .run()
            .success();
        pushed.push(
            s.tool("bucket-push")
                .arg(&remote)
                .stdin(snap.stdout())
                .run()
                .success()
                .record(),
        );
    }
    writer.stop();
    assert!(
        pushed[1]["url"]
            .as_str()
            .unwrap()
            .ends_with(".delta.zst.age")
    );
    let delta = object_file(&pushed[1], None);
    let mut bytes = std::fs::read(&delta).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 1;
    std::fs::write(&delta, &bytes).unwrap();
    let target = s.join("restored.sqlite3");
    std::fs::write(&target, b"").unwrap();
    s.tool("bucket-pull")
        .arg(format!("{}/production", remote.display()))
        .arg("-i")
        .arg(&key.file)
        .arg("-o")
        .arg(&target)
        .run()
        .expect_code(1);
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 0);
    assert!(debris(s.path()).is_empty(), "{:?}", debris(s.path()));
}

/// A passphrase from a file or from a named variable (never an
/// argument): the snapshot restores with it, a wrong one is exit 2, and
/// the manifest says `scrypt`, never the passphrase.
#[test]
fn a_passphrase_encrypts_and_restores() {
    let s = Scratch::new();
    let db = s.join("app.sqlite3");
    crate::support::make_db(&db, 30, true);
    let pass = s.join("pass.txt");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let remote = s.join("backups");
    let snap = s
        .tool("sqlite-snap")
        .arg("--passphrase-file")
        .arg(&pass)
        .args(["--scrypt-work-factor", "2"])
        .arg(&db)
        .run()
        .success();
    let record = snap.record();
    assert_eq!(
        record["encryption"],
        serde_json::json!({"format": "age", "recipients": ["scrypt"]})
    );
    s.push(&remote.display().to_string(), &[], snap.stdout())
        .success();
    let source = format!("{}/app", remote.display());
    let target = s.join("r.sqlite3");
    s.tool("bucket-pull")
        .arg(&source)
        .args(["--passphrase-env", "SQLKEEP_TEST_PASS"])
        .env("SQLKEEP_TEST_PASS", "wrong horse")
        .arg("-o")
        .arg(&target)
        .run()
        .expect_code(2)
        .stderr_has("scrypt");
    assert!(!target.exists());
    s.tool("bucket-pull")
        .arg(&source)
        .args(["--passphrase-env", "SQLKEEP_TEST_PASS"])
        .env("SQLKEEP_TEST_PASS", "correct horse battery staple")
        .arg("-o")
        .arg(&target)
        .run()
        .success();
    assert_eq!(sha256_file(&target), record["raw_sha256"].as_str().unwrap());
}

/// `--require-encryption` keeps plaintext out of the remote, even when a
/// record claims encryption its file does not have; `--dry-run` shows the
/// recipients a push would use and stores nothing.
#[test]
fn require_encryption_refuses_plaintext_and_dry_run_shows_recipients() {
    let s = Scratch::new();
    let key = keygen(&s, "key.txt");
    let db = s.join("app.sqlite3");
    crate::support::make_db(&db, 10, true);
    let remote = s.join("backups");
    let plain = s.snap("snaps", "app.sqlite3").success();
    s.tool("bucket-push")
        .args(["--require-encryption", &remote.display().to_string()])
        .stdin(plain.stdout())
        .run()
        .expect_code(5)
        .stderr_has("not encrypted");
    let mut lying = plain.record();
    lying["encryption"] = serde_json::json!({"format": "age", "recipients": [key.public]});
    s.tool("bucket-push")
        .args(["--require-encryption", &remote.display().to_string()])
        .stdin(format!("{lying}\n"))
        .run()
        .expect_code(5)
        .stderr_has("not an age file");
    assert!(!remote.exists() || list_files(&remote).is_empty());

    let sealed = s
        .tool("sqlite-snap")
        .args(["-o", "snaps", "--recipient", &key.public])
        .arg(&db)
        .run()
        .success();
    let dry = s
        .tool("bucket-push")
        .args(["--dry-run", &remote.display().to_string()])
        .stdin(sealed.stdout())
        .run()
        .success()
        .stderr_has(&format!("encrypted to {}", key.public));
    assert_eq!(
        dry.record()["encryption"]["recipients"][0],
        key.public.as_str()
    );
    assert!(!remote.exists() || list_files(&remote).is_empty());
}

/// Keys and passphrases appear in no output of any run, verbose or
/// failing, nor in anything stored (objects, manifests, state), and an
/// identity file others can read gets a WARN (as ssh does).
#[test]
fn keys_and_passphrases_never_leak() {
    let s = Scratch::new();
    let key = keygen(&s, "key.txt");
    let stranger = keygen(&s, "stranger.txt");
    const PASS: &str = "sqlkeep-PASSPHRASE-91f3";
    let pass = s.join("pass.txt");
    std::fs::write(&pass, format!("{PASS}\n")).unwrap();
    let db = s.join("app.sqlite3");
    crate::support::make_db(&db, 20, true);
    let (server, _proxy, env) = S3Server::start_behind_proxy(&s.join("s3"));
    let remote = format!("s3://{BUCKET}/db");
    let state = s.join("state");
    let mut runs = Vec::new();
    let snap = s
        .tool("sqlite-snap")
        .args(["-v", "--incremental", "--state-dir"])
        .arg(&state)
        .args(["--recipient", &key.public])
        .arg(&db)
        .run()
        .success();
    let push = s
        .tool("bucket-push")
        .args(["-v", &remote])
        .envs(&env)
        .stdin(snap.stdout())
        .run()
        .success();
    runs.extend([snap, push]);
    std::fs::set_permissions(&key.file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = s
        .tool("bucket-pull")
        .args(["-v", &format!("{remote}/app"), "-o", "r1.sqlite3", "-i"])
        .arg(&key.file)
        .envs(&env)
        .run()
        .success()
        .stderr_has("chmod 600");
    runs.push(loose);
    for (id, code) in [(&stranger.file, 2), (&pass, 2)] {
        runs.push(
            s.tool("bucket-pull")
                .args(["-v", &format!("{remote}/app"), "-o", "r2.sqlite3", "-i"])
                .arg(id)
                .envs(&env)
                .run()
                .expect_code(code),
        );
    }
    let psnap = s
        .tool("sqlite-snap")
        .args([
            "-v",
            "-o",
            "p",
            "--scrypt-work-factor",
            "2",
            "--passphrase-env",
            "P",
        ])
        .env("P", PASS)
        .arg(&db)
        .run()
        .success();
    let ppush = s
        .tool("bucket-push")
        .args(["-v", &format!("{remote}/p")])
        .envs(&env)
        .stdin(psnap.stdout())
        .run()
        .success();
    runs.extend([psnap, ppush]);
    runs.push(
        s.tool("bucket-pull")
            .args(["-v", &format!("{remote}/p/app"), "-o", "r3.sqlite3"])
            .args(["--passphrase-env", "P"])
            .env("P", "not it")
            .envs(&env)
            .run()
            .expect_code(2),
    );
    runs.push(
        s.tool("bucket-pull")
            .args(["-v", &format!("{remote}/p/app"), "-o", "r3.sqlite3"])
            .arg("--passphrase-file")
            .arg(&pass)
            .envs(&env)
            .run()
            .success(),
    );
    for run in &runs {
        for secret in [key.secret.as_str(), stranger.secret.as_str(), PASS] {
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
    for dir in [&server.root, &state] {
        for file in list_files(dir) {
            let text =
                String::from_utf8_lossy(&std::fs::read(dir.join(&file)).unwrap()).into_owned();
            for secret in [key.secret.as_str(), PASS] {
                assert!(!text.contains(secret), "secret stored in {file}");
            }
        }
    }
}
