//! blob-sync with age encryption: every file copied into a destination (a
//! real S3 server, `rclone serve s3`, and a local directory) is an age file
//! with nothing readable in it, under its own name; the destination's
//! manifest says whom to; an unchanged tree uploads nothing; a restore
//! gives the tree back byte for byte with the identity (and `age -d` alone
//! reads any file), and without the right key, or from a tampered file,
//! writes nothing it cannot vouch for. Keys come from Debian's
//! `age-keygen` (tests/run installs it). Every run goes through
//! [`Secrets::run`], which fails the test if a secret key or passphrase
//! reaches stdout or stderr.

use crate::encryption::keygen;
use crate::s3server::{BUCKET, S3Server};
use crate::support::{Rng, Run, Scratch, Tool, debris, list_files, sha256_file, world};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Text only the plaintext files hold: it must never be readable in
/// storage.
const MARKER: &str = "sqlkeep-blob-marker-3c9a";

/// The first line of every age file.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// The destination's manifest.
const MANIFEST: &str = ".sqlkeep-sync.json";

/// What must never be printed.
struct Secrets(Vec<String>);

impl Secrets {
    /// Runs `tool`, failing the test if any secret is in its output.
    fn run(&self, tool: Tool) -> Run {
        let run = tool.run();
        for secret in &self.0 {
            for (name, text) in [("stdout", run.stdout()), ("stderr", run.stderr())] {
                assert!(
                    !text.contains(secret.as_str()),
                    "a secret reached {name}:\n{text}"
                );
            }
        }
        run
    }
}

/// `blob-sync` with the scratch directory's manifest cache.
fn sync(s: &Scratch) -> Tool {
    s.tool("blob-sync")
}

/// Deterministic bytes with the marker every `every` bytes, starting at
/// `first` (so a marker can straddle an age chunk edge at 64 KiB).
fn body(len: usize, first: usize, every: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    let mut at = first;
    while at + MARKER.len() <= len {
        out[at..at + MARKER.len()].copy_from_slice(MARKER.as_bytes());
        at += every;
    }
    out
}

/// Writes the tree under `root` and returns its files: relative path →
/// SHA-256. An empty file, a nested one, one crossing age's 64 KiB chunk
/// edges (a marker straddling the first), and one over 1 MiB.
fn write_tree(root: &Path) -> BTreeMap<String, String> {
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.txt", format!("hello {MARKER}\n").into_bytes()),
        ("empty", Vec::new()),
        ("ab/cd/nested.txt", MARKER.repeat(4).into_bytes()),
        (
            "chunky.bin",
            body(3 * 65_536 + 1_000, 65_536 - 10, 20_000, 7),
        ),
        ("big.bin", body(1_300_000, 1_000, 100_000, 11)),
    ];
    let mut want = BTreeMap::new();
    for (rel, bytes) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        want.insert(rel.to_string(), sha256_file(&path));
    }
    want
}

/// Every file below `dir` but the manifest, with its SHA-256; temporary
/// files left behind would show up too.
fn hashes(dir: &Path) -> BTreeMap<String, String> {
    list_files(dir)
        .into_iter()
        .filter(|f| f != MANIFEST)
        .map(|f| {
            let sha = sha256_file(&dir.join(&f));
            (f, sha)
        })
        .collect()
}

/// Asserts a stored file is an age file with no plaintext in it.
fn assert_sealed(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(AGE_MAGIC),
        "{} is not age",
        path.display()
    );
    assert!(
        !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
        "{} holds plaintext",
        path.display()
    );
}

/// Asserts every file of `want` is stored sealed in `stored`, under its own
/// name, and nothing else is stored.
fn assert_all_sealed(stored: &Path, want: &BTreeMap<String, String>) {
    let names: Vec<&String> = want.keys().collect();
    let listed = hashes(stored);
    assert_eq!(listed.keys().collect::<Vec<_>>(), names);
    for rel in want.keys() {
        assert_sealed(&stored.join(rel));
    }
}

fn manifest(stored: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(stored.join(MANIFEST)).unwrap()).unwrap()
}

/// The log lines of a run with `word` (OK, WARN, ERROR).
fn lines_with(run: &Run, word: &str) -> Vec<String> {
    run.stderr()
        .lines()
        .filter(|l| l.contains(&format!(" blob-sync {word} ")))
        .map(String::from)
        .collect()
}

/// Replaces one base64 symbol of an age header with another, so the
/// header still parses but its recipient stanza opens with no key. The
/// field is random: `+` and `/` are symbols too (one in thirty-two).
fn swap_base64(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    assert!(
        bytes[at].is_ascii_alphanumeric() || b"+/".contains(&bytes[at]),
        "not in a base64 field"
    );
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(path, bytes).unwrap();
}

/// Flips one bit of the file at `at` bytes from its start.
fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn an_encrypted_tree_is_stored_sealed_and_restores_byte_for_byte() {
    let s = Scratch::new();
    let (server, _proxy, env) = S3Server::start_behind_proxy(s.path());
    let key = keygen(&s, "key.txt");
    let secrets = Secrets(vec![key.secret.clone()]);
    let want = write_tree(&s.join("storage"));
    std::fs::write(s.join("recipients.txt"), format!("{}\n", key.public)).unwrap();
    let remote = format!("s3://{BUCKET}/files");

    let to_s3 = ["--recipient", key.public.as_str()];
    let to_dir = ["--recipients-file", "recipients.txt"];
    for (dest, stored, flags) in [
        (remote.as_str(), server.path("files"), to_s3),
        ("backups/files", s.join("backups/files"), to_dir),
    ] {
        let run = secrets
            .run(sync(&s).args(flags).args(["storage", dest]).envs(&env))
            .success();
        let r = run.record();
        assert_eq!(
            r["encryption"],
            json!({"format": "age", "recipients": [key.public]}),
            "{dest}"
        );
        let direction = if dest == remote { "uploaded" } else { "copied" };
        assert_eq!(r[direction]["files"], want.len(), "{dest}");
        assert_eq!(r["reencrypted"], 0, "{dest}: a new destination");
        assert_all_sealed(&stored, &want);

        // The manifest says whom to, and keeps the plaintext's facts (for
        // change detection) beside the stored file's.
        let m = manifest(&stored);
        assert_eq!(m["encryption"]["recipients"], json!([key.public]));
        for (rel, sha) in &want {
            let e = &m["files"][rel];
            let plain = std::fs::metadata(s.join("storage").join(rel))
                .unwrap()
                .len();
            let sealed = std::fs::metadata(stored.join(rel)).unwrap().len();
            assert_eq!(e["sha256"], json!(sha), "{dest} {rel}");
            assert_eq!(e["bytes"], json!(plain), "{dest} {rel}");
            assert_eq!(
                e["stored_sha256"],
                json!(sha256_file(&stored.join(rel))),
                "{dest} {rel}"
            );
            assert_eq!(e["stored_bytes"], json!(sealed), "{dest} {rel}");
            assert!(sealed > plain, "{dest} {rel}: age adds a header and tags");
        }

        // Plain age: the age CLI reads a stored file without sqlkeep.
        let out = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&key.file)
            .arg(stored.join("big.bin"))
            .output()
            .expect("age runs (tests/run installs it)");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            out.stdout,
            std::fs::read(s.join("storage/big.bin")).unwrap(),
            "{dest}: age -d gives back big.bin"
        );
    }

    // Restored with --identity from S3, with SQLKEEP_AGE_IDENTITY_FILE from
    // the directory: byte for byte, nothing else left.
    let run = secrets
        .run(
            sync(&s)
                .args(["-i", key.file.to_str().unwrap(), &remote, "restored-s3"])
                .envs(&env),
        )
        .success();
    assert_eq!(run.record()["downloaded"]["files"], want.len());
    assert_eq!(hashes(&s.join("restored-s3")), want);
    secrets
        .run(
            sync(&s)
                .env("SQLKEEP_AGE_IDENTITY_FILE", &key.file)
                .args(["backups/files", "restored-dir"]),
        )
        .success();
    assert_eq!(hashes(&s.join("restored-dir")), want);
}

#[test]
fn an_unchanged_encrypted_tree_uploads_nothing() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let key = keygen(&s, "key.txt");
    let secrets = Secrets(vec![key.secret.clone()]);
    let want = write_tree(&s.join("storage"));
    let remote = format!("s3://{BUCKET}/files");
    let push = |dest: &str| {
        sync(&s)
            .args(["-v", "--recipient", &key.public, "storage", dest])
            .envs(&env)
    };

    secrets.run(push(&remote)).success();
    assert_eq!(
        proxy.count_ok("PUT", ""),
        want.len() + 1,
        "files and manifest"
    );

    // From the cache: not one request.
    proxy.reset_seen();
    let r = secrets.run(push(&remote)).success().record();
    assert_eq!(proxy.seen().len(), 0, "{:#?}", proxy.seen());
    assert_eq!(
        (
            r["uploaded"]["files"].as_u64(),
            r["unchanged"]["files"].as_u64()
        ),
        (Some(0), Some(want.len() as u64))
    );

    // Without the cache: the manifest's plaintext checksums still match
    // the source, so one GET of it and no upload.
    std::fs::remove_dir_all(s.join(".cache")).unwrap();
    proxy.reset_seen();
    secrets.run(push(&remote)).success();
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert!(seen[0].method == "GET" && seen[0].target.ends_with(MANIFEST));

    // One changed file: that file and the manifest.
    let path = s.join("storage/ab/cd/nested.txt");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b" (edited)");
    std::fs::write(&path, bytes).unwrap();
    proxy.reset_seen();
    let run = secrets.run(push(&remote)).success();
    let puts: Vec<String> = proxy
        .seen()
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(puts.len(), 2, "{puts:#?}");
    assert!(puts.iter().any(|t| t.ends_with("/files/ab/cd/nested.txt")));
    assert_eq!(run.record()["uploaded"]["files"], 1);

    // A local directory: the second run copies nothing and changes nothing.
    secrets.run(push("backups/files")).success();
    let before = world(&s.join("backups/files"));
    let r = secrets.run(push("backups/files")).success().record();
    assert_eq!(
        (
            r["copied"]["files"].as_u64(),
            r["unchanged"]["files"].as_u64()
        ),
        (Some(0), Some(want.len() as u64))
    );
    assert_eq!(world(&s.join("backups/files")), before);
}

#[test]
fn restoring_without_the_right_key_writes_nothing() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let key = keygen(&s, "key.txt");
    let other = keygen(&s, "other.txt");
    let secrets = Secrets(vec![key.secret.clone(), other.secret.clone()]);
    write_tree(&s.join("storage"));
    let remote = format!("s3://{BUCKET}/files");
    for dest in [remote.as_str(), "backups/files"] {
        secrets
            .run(
                sync(&s)
                    .args(["--recipient", &key.public, "storage", dest])
                    .envs(&env),
            )
            .success();
    }

    for (n, source) in [remote.as_str(), "backups/files"].into_iter().enumerate() {
        // No identity at all: one line naming the recipient, before any
        // file is downloaded or the destination created.
        proxy.reset_seen();
        let into = s.join(&format!("none-{n}"));
        let run = secrets
            .run(sync(&s).args([source, into.to_str().unwrap()]).envs(&env))
            .expect_code(2);
        let errors = lines_with(&run, "ERROR");
        assert_eq!(errors.len(), 1, "{}", run.stderr());
        assert!(
            errors[0].contains(&key.public) && errors[0].contains("--identity"),
            "{}",
            errors[0]
        );
        assert!(
            !into.exists(),
            "{source}: the restore created its destination"
        );
        if source == remote {
            let seen = proxy.seen();
            assert_eq!(seen.len(), 1, "only the manifest is read: {seen:#?}");
            assert!(seen[0].target.ends_with(MANIFEST), "{seen:#?}");
        }

        // The wrong identity: exit 2, naming the recipient, no file written.
        let into = s.join(&format!("wrong-{n}"));
        let run = secrets
            .run(
                sync(&s)
                    .args(["-i", other.file.to_str().unwrap()])
                    .args([source, into.to_str().unwrap()])
                    .envs(&env),
            )
            .expect_code(2);
        assert!(
            run.stderr()
                .contains(&format!("encrypted to {}", key.public)),
            "{}",
            run.stderr()
        );
        assert_eq!(
            lines_with(&run, "ERROR").len(),
            2,
            "one file tried, then the summary:\n{}",
            run.stderr()
        );
        assert_eq!(list_files(&into), Vec::<String>::new(), "{source}");
    }
}

#[test]
fn a_flipped_byte_fails_that_file_alone() {
    let s = Scratch::new();
    let (server, _proxy, env) = S3Server::start_behind_proxy(s.path());
    let key = keygen(&s, "key.txt");
    let secrets = Secrets(vec![key.secret.clone()]);
    let want = write_tree(&s.join("storage"));
    let remote = format!("s3://{BUCKET}/files");
    for dest in [remote.as_str(), "backups/files"] {
        secrets
            .run(
                sync(&s)
                    .args(["--recipient", &key.public, "storage", dest])
                    .envs(&env),
            )
            .success();
    }
    // In the payload of chunky.bin (both stores), and in the recipient
    // stanza of big.bin's header (the directory): damage either way, not a
    // key that does not fit, though age sees no key opening that stanza:
    // the stored checksum tells the two apart (big.bin is larger than a
    // pipe holds, so it is read to its end after decryption gave up).
    let chunky_len = std::fs::metadata(s.join("backups/files/chunky.bin"))
        .unwrap()
        .len() as usize;
    flip(&s.join("backups/files/chunky.bin"), chunky_len / 2);
    flip(&server.path("files/chunky.bin"), chunky_len / 2);
    let stanza = AGE_MAGIC.len() + "-> X25519 ".len() + 3;
    swap_base64(&s.join("backups/files/big.bin"), stanza);

    for (n, source) in [remote.as_str(), "backups/files"].into_iter().enumerate() {
        let into = s.join(&format!("restored-{n}"));
        std::fs::create_dir_all(&into).unwrap();
        std::fs::write(into.join("chunky.bin"), b"the previous version").unwrap();
        let run = secrets
            .run(
                sync(&s)
                    .args(["-i", key.file.to_str().unwrap(), source])
                    .arg(&into)
                    .envs(&env),
            )
            .expect_code(1);
        let errors = lines_with(&run, "ERROR");
        assert!(
            errors
                .iter()
                .any(|l| l.contains("chunky.bin") && l.contains("damaged or tampered")),
            "{}",
            run.stderr()
        );
        assert!(!run.stderr().contains("no identity"), "{}", run.stderr());
        assert_eq!(
            std::fs::read(into.join("chunky.bin")).unwrap(),
            b"the previous version",
            "{source}: the failed file left what was there"
        );
        assert_eq!(debris(&into), Vec::<String>::new(), "{source}");
        let mut expect = want.clone();
        expect.insert("chunky.bin".into(), sha256_file(&into.join("chunky.bin")));
        if source == "backups/files" {
            expect.remove("big.bin");
            assert!(
                errors
                    .iter()
                    .any(|l| l.contains("big.bin") && l.contains("damaged or tampered")),
                "{}",
                run.stderr()
            );
        }
        assert_eq!(hashes(&into), expect, "{source}: the others are restored");
        assert_eq!(run.record()["errors"], want.len() - expect.len() + 1);
    }
}

#[test]
fn an_encrypted_destination_takes_no_plaintext_and_a_new_key_rewrites_it_whole() {
    let s = Scratch::new();
    let (server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let old = keygen(&s, "old.txt");
    let new = keygen(&s, "new.txt");
    let secrets = Secrets(vec![old.secret.clone(), new.secret.clone()]);
    let want = write_tree(&s.join("storage"));
    let remote = format!("s3://{BUCKET}/files");
    for dest in [remote.as_str(), "backups/files"] {
        secrets
            .run(
                sync(&s)
                    .args(["--recipient", &old.public, "storage", dest])
                    .envs(&env),
            )
            .success();
    }

    // Without recipients: refused before anything is copied.
    for (dest, stored) in [
        (remote.as_str(), server.path("files")),
        ("backups/files", s.join("backups/files")),
    ] {
        std::fs::write(s.join("storage/new.txt"), MARKER).unwrap();
        let before = world(&stored);
        proxy.reset_seen();
        let run = secrets
            .run(sync(&s).args(["storage", dest]).envs(&env))
            .expect_code(2);
        let errors = lines_with(&run, "ERROR");
        assert_eq!(errors.len(), 1, "{}", run.stderr());
        assert!(
            errors[0].contains(&format!(
                "destination is encrypted to {}; give --recipient/--recipients-file",
                old.public
            )),
            "{}",
            errors[0]
        );
        assert_eq!(proxy.count("PUT", ""), 0, "{dest}");
        assert_eq!(world(&stored), before, "{dest}");
        std::fs::remove_file(s.join("storage/new.txt")).unwrap();
    }

    // A new key, in a dry run: the whole rewrite is shown, nothing sent.
    proxy.reset_seen();
    let run = secrets
        .run(
            sync(&s)
                .args(["--dry-run", "--recipient", &new.public, "storage", &remote])
                .envs(&env),
        )
        .success();
    let r = run.record();
    assert_eq!(r["reencrypted"], want.len());
    assert_eq!(r["plan"]["copy"].as_array().unwrap().len(), want.len());
    assert_eq!(proxy.count("PUT", ""), 0);

    // For real: every file again, said once, and only the new key opens
    // the destination.
    proxy.reset_seen();
    let run = secrets
        .run(
            sync(&s)
                .args(["--recipient", &new.public, "storage", &remote])
                .envs(&env),
        )
        .success();
    let warns = lines_with(&run, "WARN");
    assert_eq!(warns.len(), 1, "{}", run.stderr());
    assert!(
        warns[0].contains(&old.public)
            && warns[0].contains(&new.public)
            && warns[0].contains("re-encrypting every file"),
        "{}",
        warns[0]
    );
    let r = run.record();
    assert_eq!(r["reencrypted"], want.len());
    assert_eq!(r["encryption"]["recipients"], json!([new.public]));
    assert_eq!(proxy.count_ok("PUT", ""), want.len() + 1);
    assert_all_sealed(&server.path("files"), &want);
    let run = secrets
        .run(
            sync(&s)
                .args(["-i", old.file.to_str().unwrap(), &remote, "with-old"])
                .envs(&env),
        )
        .expect_code(2);
    assert!(run.stderr().contains(&new.public), "{}", run.stderr());
    assert_eq!(list_files(&s.join("with-old")), Vec::<String>::new());
    secrets
        .run(
            sync(&s)
                .args(["-i", new.file.to_str().unwrap(), &remote, "with-new"])
                .envs(&env),
        )
        .success();
    assert_eq!(hashes(&s.join("with-new")), want);

    // Plaintext made encrypted: rewritten whole too.
    secrets
        .run(sync(&s).args(["storage", "plain/files"]))
        .success();
    let run = secrets
        .run(sync(&s).args(["--recipient", &new.public, "storage", "plain/files"]))
        .success();
    assert!(
        lines_with(&run, "WARN")
            .iter()
            .any(|l| l.contains("in plaintext: re-encrypting every file")),
        "{}",
        run.stderr()
    );
    assert_eq!(run.record()["reencrypted"], want.len());
    assert_all_sealed(&s.join("plain/files"), &want);

    // A file no longer in the source could not be re-encrypted: refused
    // unless --delete removes it.
    std::fs::remove_file(s.join("storage/a.txt")).unwrap();
    let before = world(&s.join("backups/files"));
    let run = secrets
        .run(sync(&s).args(["--recipient", &new.public, "storage", "backups/files"]))
        .expect_code(5);
    assert!(
        run.stderr()
            .contains("refusing to re-encrypt: 1 destination files")
            && run.stderr().contains("a.txt"),
        "{}",
        run.stderr()
    );
    assert_eq!(world(&s.join("backups/files")), before);
    let run = secrets
        .run(sync(&s).args([
            "--recipient",
            &new.public,
            "--delete",
            "--max-delete",
            "100%",
            "storage",
            "backups/files",
        ]))
        .success();
    let r = run.record();
    assert_eq!(
        (r["reencrypted"].as_u64(), r["deleted"]["files"].as_u64()),
        (Some(want.len() as u64 - 1), Some(1))
    );
    let mut rest = want.clone();
    rest.remove("a.txt");
    assert_all_sealed(&s.join("backups/files"), &rest);
    secrets
        .run(sync(&s).args(["-i", new.file.to_str().unwrap(), "backups/files", "last"]))
        .success();
    assert_eq!(hashes(&s.join("last")), rest);
}

#[test]
fn a_passphrase_encrypts_and_restores() {
    let s = Scratch::new();
    let first = "correct horse battery staple";
    let second = "tr0ub4dor and three";
    let secrets = Secrets(vec![first.into(), second.into()]);
    std::fs::write(s.join("pass"), format!("{first}\n")).unwrap();
    std::fs::write(s.join("pass2"), format!("{second}\n")).unwrap();
    let want = write_tree(&s.join("storage"));
    let push = |pass: &str| {
        sync(&s).args([
            "--passphrase-file",
            pass,
            "--scrypt-work-factor",
            "2",
            "storage",
            "backups/files",
        ])
    };

    let r = secrets.run(push("pass")).success().record();
    assert_eq!(r["encryption"]["recipients"], json!(["scrypt"]));
    assert_all_sealed(&s.join("backups/files"), &want);
    assert_eq!(
        manifest(&s.join("backups/files"))["encryption"]["recipients"],
        json!(["scrypt"])
    );
    let r = secrets.run(push("pass")).success().record();
    assert_eq!(
        r["copied"]["files"], 0,
        "the same passphrase: nothing to do"
    );

    // Restored with the passphrase from the environment.
    secrets
        .run(sync(&s).env("BLOB_PASS", first).args([
            "--passphrase-env",
            "BLOB_PASS",
            "backups/files",
            "restored",
        ]))
        .success();
    assert_eq!(hashes(&s.join("restored")), want);

    // Without it, or with another: exit 2, nothing written.
    let run = secrets
        .run(sync(&s).args(["backups/files", "none"]))
        .expect_code(2);
    assert!(
        run.stderr()
            .contains("encrypted with a passphrase; give --passphrase-file"),
        "{}",
        run.stderr()
    );
    assert!(!s.join("none").exists());
    secrets
        .run(sync(&s).args(["--passphrase-file", "pass2", "backups/files", "wrong"]))
        .expect_code(2);
    assert_eq!(list_files(&s.join("wrong")), Vec::<String>::new());

    // A changed passphrase, with a changed file to copy: the manifest can
    // only say "scrypt", so the passphrase is tried on a stored file, and
    // the destination is rewritten whole.
    std::fs::write(s.join("storage/a.txt"), format!("edited {MARKER}")).unwrap();
    let run = secrets.run(push("pass2")).success();
    assert!(
        lines_with(&run, "WARN")
            .iter()
            .any(|l| l.contains("another passphrase")),
        "{}",
        run.stderr()
    );
    assert_eq!(run.record()["reencrypted"], want.len());
    let mut now = want.clone();
    now.insert("a.txt".into(), sha256_file(&s.join("storage/a.txt")));
    secrets
        .run(sync(&s).args(["--passphrase-file", "pass2", "backups/files", "again"]))
        .success();
    assert_eq!(hashes(&s.join("again")), now);
    secrets
        .run(sync(&s).args(["--passphrase-file", "pass", "backups/files", "old"]))
        .expect_code(2);
}

#[test]
fn no_key_or_passphrase_is_printed_or_stored() {
    let s = Scratch::new();
    let (server, _proxy, env) = S3Server::start_behind_proxy(s.path());
    let key = keygen(&s, "key.txt");
    let other = keygen(&s, "other.txt");
    let passphrase = "a passphrase nobody may see";
    std::fs::write(s.join("pass"), passphrase).unwrap();
    let secrets = Secrets(vec![
        key.secret.clone(),
        other.secret.clone(),
        passphrase.into(),
    ]);
    write_tree(&s.join("storage"));
    let remote = format!("s3://{BUCKET}/files");

    // Verbose runs down every path: upload, restore, no key, wrong key,
    // wrong passphrase, a passphrase tree and its restore.
    let runs: Vec<(Tool, i32)> = vec![
        (
            sync(&s).args(["-v", "--recipient", &key.public, "storage", &remote]),
            0,
        ),
        (
            sync(&s).args(["-v", "-i", key.file.to_str().unwrap(), &remote, "r1"]),
            0,
        ),
        (sync(&s).args(["-v", &remote, "r2"]), 2),
        (
            sync(&s).args(["-v", "-i", other.file.to_str().unwrap(), &remote, "r3"]),
            2,
        ),
        (
            sync(&s).args(["-v", "--passphrase-file", "pass", &remote, "r4"]),
            2,
        ),
        (
            sync(&s).args([
                "-v",
                "--passphrase-file",
                "pass",
                "--scrypt-work-factor",
                "2",
                "storage",
                "sealed",
            ]),
            0,
        ),
        (
            sync(&s).args(["-v", "--passphrase-file", "pass", "sealed", "r5"]),
            0,
        ),
        (
            sync(&s).args(["-v", "-i", key.file.to_str().unwrap(), "sealed", "r6"]),
            2,
        ),
    ];
    for (tool, code) in runs {
        secrets.run(tool.envs(&env)).expect_code(code);
    }

    // Nor is any stored: not in the stored files, the manifests, the
    // cache, or anything restored.
    assert!(server.root.starts_with(s.path()));
    let files = list_files(s.path());
    assert!(files.iter().any(|f| f.starts_with(".cache/")), "{files:#?}");
    for rel in files {
        if ["key.txt", "other.txt", "pass"].contains(&rel.as_str()) {
            continue;
        }
        let bytes = std::fs::read(s.join(&rel)).unwrap();
        for secret in &secrets.0 {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{rel} holds a secret"
            );
        }
    }
}
