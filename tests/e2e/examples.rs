//! The copy-paste operations in examples/, run as an operator would, against
//! a local directory remote and against real S3: backups, the restore
//! drill (with its dead-man's-switch ping), and a disaster recovered by the
//! container entrypoint.

use crate::s3server::{BUCKET, S3Server};
use crate::support::{Run, Scratch, count, list_files, make_db, sha256_file};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An example script's path.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// A health-check endpoint on loopback that counts its pings.
struct Pings {
    url: String,
    count: Arc<AtomicUsize>,
}

impl Pings {
    fn start() -> Pings {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ping", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                // Counted before answering, so the script cannot finish first.
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
                );
            }
        });
        Pings { url, count }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// An app's storage directory: two databases worth a backup, a cache that
/// is not, and a few uploads.
fn app_storage(s: &Scratch) -> Vec<String> {
    let storage = s.join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    make_db(&storage.join("production.sqlite3"), 60, true);
    make_db(&storage.join("production_queue.sqlite3"), 25, true);
    make_db(&storage.join("production_cache.sqlite3"), 5, true);
    let uploads: Vec<String> = (0..12)
        .map(|i| format!("q{}/w{}/upload{i}key", i % 3, i % 2))
        .collect();
    for rel in &uploads {
        let path = storage.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("uploaded file {rel}").repeat(50)).unwrap();
    }
    uploads
}

/// Runs an example script with variables.
fn run(
    s: &Scratch,
    name: &str,
    vars: &[(&str, &str)],
    env: &[(String, String)],
    args: &[&str],
) -> Run {
    let mut tool = s.program(&example(name)).envs(env).args(args);
    for (k, v) in vars {
        tool = tool.env(k, v);
    }
    tool.run()
}

/// The whole routine against one remote base (`backups` or an s3:// URL).
fn routine(s: &Scratch, base: &str, env: &[(String, String)]) {
    let uploads = app_storage(s);
    let pings = Pings::start();
    let databases = format!("{base}/databases");
    let files = format!("{base}/files");
    let originals: Vec<(i64, String)> = ["production", "production_queue"]
        .iter()
        .map(|db| {
            (
                count(&s.join(&format!("storage/{db}.sqlite3")), "users"),
                "users".to_string(),
            )
        })
        .collect();

    let backup = run(
        s,
        "backup-databases",
        &[
            ("DATABASES", "storage"),
            ("REMOTE", &databases),
            ("RECORDS", "records.jsonl"),
            ("HEALTHCHECK_URL", &pings.url),
        ],
        env,
        &[],
    )
    .success()
    .stderr_has("backup-databases OK storage → ");
    assert_eq!(pings.count(), 1, "the backup pinged its health check");
    let records = std::fs::read_to_string(s.join("records.jsonl")).unwrap();
    let dbs: Vec<String> = records
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["db"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        dbs,
        ["production", "production_queue"],
        "the cache database is excluded"
    );
    assert!(
        records.contains("\"retention\""),
        "the default retention ran"
    );
    assert_eq!(backup.stdout(), "");

    run(
        s,
        "backup-storage",
        &[("STORAGE", "storage"), ("REMOTE", &files)],
        env,
        &[],
    )
    .success();

    let drill_vars = [
        ("REMOTE", databases.as_str()),
        ("DATABASES", "production production_queue"),
        ("MAX_AGE", "1h"),
        ("EXPECT_TABLES", "users posts"),
        ("HEALTHCHECK_URL", pings.url.as_str()),
    ];
    run(s, "restore-drill", &drill_vars, env, &[])
        .success()
        .stderr_has("restore-drill OK");
    assert_eq!(pings.count(), 2);
    // A drill against a database that was never backed up fails, loudly,
    // and does not ping.
    let mut missing = drill_vars;
    missing[1] = ("DATABASES", "production nonexistent");
    run(s, "restore-drill", &missing, env, &[])
        .expect_code(1)
        .stderr_has("drill failed for: nonexistent");
    assert_eq!(pings.count(), 2, "a failed drill pinged");

    // The disaster: the volume is gone, databases, directory and uploads.
    std::fs::remove_dir_all(s.join("storage")).unwrap();
    let boot = run(
        s,
        "docker-entrypoint",
        &[
            ("REMOTE", &databases),
            ("DATABASES_DIR", "storage"),
            ("DATABASES", "production production_queue"),
            ("FILES_REMOTE", &files),
        ],
        env,
        &[
            "sh",
            "-c",
            "echo booted with $(ls storage/*.sqlite3 | wc -l) databases",
        ],
    )
    .success();
    assert_eq!(boot.stdout().trim(), "booted with 2 databases");
    for (db, (rows, table)) in ["production", "production_queue"].iter().zip(&originals) {
        assert_eq!(
            count(&s.join(&format!("storage/{db}.sqlite3")), table),
            *rows,
            "{db} is back"
        );
    }
    for rel in &uploads {
        assert_eq!(
            std::fs::read_to_string(s.join("storage").join(rel)).unwrap(),
            format!("uploaded file {rel}").repeat(50)
        );
    }
    assert!(!s.join("storage/production_cache.sqlite3").exists());

    // A second boot leaves the (now live) databases alone.
    let before = sha256_file(&s.join("storage/production.sqlite3"));
    run(
        s,
        "docker-entrypoint",
        &[("REMOTE", &databases), ("DATABASES_DIR", "storage")],
        env,
        &["true"],
    )
    .success();
    assert_eq!(sha256_file(&s.join("storage/production.sqlite3")), before);
    // The first deploy: no backup yet, the app boots anyway.
    run(
        s,
        "docker-entrypoint",
        &[
            ("REMOTE", &format!("{base}/fresh")),
            ("DATABASES_DIR", "fresh"),
            ("DATABASES", "production"),
        ],
        env,
        &["true"],
    )
    .success()
    .stderr_has("no backup under");
}

#[test]
fn examples_against_a_local_directory() {
    let s = Scratch::new();
    routine(&s, "backups", &[]);
    assert!(
        list_files(&s.join("backups/databases/production"))
            .iter()
            .any(|f| f.ends_with(".sqlite3.zst"))
    );
}

#[test]
fn examples_against_s3() {
    let s = Scratch::new();
    let server = S3Server::start(s.path());
    let env = S3Server::aws_env(&server.endpoint);
    routine(&s, &format!("s3://{BUCKET}"), &env);
    assert!(server.path("databases/production/latest.json").is_file());
}

/// An unreachable remote at boot is not "no backup": the entrypoint
/// refuses to start the app on an empty database.
#[test]
fn entrypoint_refuses_to_boot_when_the_restore_fails() {
    let s = Scratch::new();
    let env = S3Server::aws_env("http://127.0.0.1:9");
    let run = run(
        &s,
        "docker-entrypoint",
        &[
            ("REMOTE", &format!("s3://{BUCKET}/databases")),
            ("DATABASES_DIR", "storage"),
        ],
        &env,
        &["sh", "-c", "echo booted"],
    );
    assert_eq!(run.code(), 4, "unavailable, try again: {}", run.stderr());
    assert!(run.stdout().is_empty(), "the app started");
    assert!(run.stderr().contains("restore failed"), "{}", run.stderr());
}

/// The crontab's every-minute line, run as cron would (`sh -c`, paths
/// swapped for the scratch ones): the first run stores a full snapshot,
/// the next a delta; a run that finds the lock held exits at once, says
/// nothing and stores nothing; the chain restores.
#[test]
fn crontab_every_minute_line_runs_increments_under_its_lock() {
    let s = Scratch::new();
    let crontab = std::fs::read_to_string(example("crontab")).unwrap();
    let line = crontab
        .lines()
        .find(|l| l.starts_with("* * * * *"))
        .expect("an every-minute line");
    // Fields: five times, the user, then the command.
    let command = line
        .split_whitespace()
        .skip(6)
        .collect::<Vec<_>>()
        .join(" ");
    let db = s.join("production.sqlite3");
    make_db(&db, 30, true);
    let lock = s.join("incremental.lock");
    let command = command
        .replace("/srv/app/storage/production.sqlite3", db.to_str().unwrap())
        .replace("/run/lock/sqlkeep-incremental.lock", lock.to_str().unwrap());
    let remote = s.join("remote");
    let run = || {
        s.program(Path::new("/bin/sh"))
            .args(["-c", &command])
            .env("REMOTE_BASE", &remote)
            .run()
    };
    let stored = || list_files(&remote.join("databases/production"));
    let first = run().success();
    assert!(
        first.stderr().is_empty(),
        "cron would mail: {}",
        first.stderr()
    );
    let insert = |email: &str| {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute("INSERT INTO users(email) VALUES (?1)", [email])
            .unwrap();
    };
    insert("minute-1@example.com");
    run().success();
    let after_two = stored();
    assert_eq!(
        after_two
            .iter()
            .filter(|f| f.ends_with(".delta.zst"))
            .count(),
        1,
        "{after_two:?}"
    );
    assert_eq!(
        after_two
            .iter()
            .filter(|f| f.ends_with(".sqlite3.zst"))
            .count(),
        1
    );

    // The previous minute's run still holds the lock.
    let held = std::fs::File::create(&lock).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the call.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    insert("minute-2@example.com");
    let skipped = run();
    assert_ne!(skipped.code(), 0, "flock -n gives up at once");
    assert!(skipped.stderr().is_empty() && skipped.stdout().is_empty());
    assert_eq!(
        stored(),
        after_two,
        "a run under a held lock stores nothing"
    );
    drop(held);

    run().success();
    let restored = s.join("restored.sqlite3");
    s.tool("bucket-pull")
        .arg(remote.join("databases/production"))
        .arg("-o")
        .arg(&restored)
        .run()
        .success();
    assert_eq!(count(&restored, "users"), 32, "both minutes' rows");
}

/// backup-databases and backup-storage with RECIPIENTS_FILE store only age
/// files; the drill
/// restores them only with the identity (SQLKEEP_AGE_IDENTITY_FILE), and
/// without it fails naming the recipient.
#[test]
fn encrypted_backups_pass_the_drill_only_with_the_identity() {
    let s = Scratch::new();
    app_storage(&s);
    let key = crate::encryption::keygen(&s, "key.txt");
    std::fs::write(s.join("recipients.txt"), format!("{}\n", key.public)).unwrap();
    run(
        &s,
        "backup-databases",
        &[
            ("DATABASES", "storage"),
            ("REMOTE", "backups/databases"),
            ("RECIPIENTS_FILE", "recipients.txt"),
        ],
        &[],
        &[],
    )
    .success();
    let objects: Vec<String> = list_files(&s.join("backups/databases"))
        .into_iter()
        .filter(|f| !f.ends_with(".json"))
        .collect();
    assert_eq!(objects.len(), 2, "{objects:?}");
    for object in &objects {
        assert!(object.ends_with(".sqlite3.zst.age"), "{object}");
        crate::encryption::assert_sealed(&s.join("backups/databases").join(object));
    }
    run(
        &s,
        "backup-storage",
        &[
            ("STORAGE", "storage"),
            ("REMOTE", "backups/files"),
            ("RECIPIENTS_FILE", "recipients.txt"),
        ],
        &[],
        &[],
    )
    .success();
    let files: Vec<String> = list_files(&s.join("backups/files"))
        .into_iter()
        .filter(|f| !f.ends_with(".json"))
        .collect();
    assert_eq!(files.len(), 12, "{files:?}");
    for file in &files {
        crate::encryption::assert_sealed(&s.join("backups/files").join(file));
    }
    let drill = [
        ("REMOTE", "backups/databases"),
        ("DATABASES", "production production_queue"),
        ("EXPECT_TABLES", "users posts"),
    ];
    run(&s, "restore-drill", &drill, &[], &[])
        .expect_code(1)
        .stderr_has(&key.public);
    let identity = key.file.display().to_string();
    let mut with_key = drill.to_vec();
    with_key.push(("SQLKEEP_AGE_IDENTITY_FILE", &identity));
    run(&s, "restore-drill", &with_key, &[], &[])
        .success()
        .stderr_has("restore-drill OK");
}

/// Every variable of a script run, with the tools' quiet setting.
fn quiet_run(s: &Scratch, name: &str, vars: &[(&str, &str)]) -> Run {
    run(s, name, vars, &[], &["-q"])
}

/// Asserts a run printed nothing at all: what cron mails on success.
fn assert_silent(run: &Run, what: &str) {
    assert_eq!(
        (run.stdout().as_str(), run.stderr().as_str()),
        ("", ""),
        "{what} printed something on success"
    );
}

/// The scripts' comments promise that cron mails only trouble: with -q (or
/// QUIET=1) a successful run prints nothing, and a failing one still prints
/// its error and exits non-zero.
#[test]
fn example_scripts_are_silent_on_success_with_q_and_loud_on_failure() {
    let s = Scratch::new();
    app_storage(&s);
    let backup = [("DATABASES", "storage"), ("REMOTE", "backups/databases")];
    let r = quiet_run(&s, "backup-databases", &backup).success();
    assert_silent(&r, "backup-databases -q");
    let r = run(
        &s,
        "backup-databases",
        &[backup[0], backup[1], ("QUIET", "1")],
        &[],
        &[],
    )
    .success();
    assert_silent(&r, "QUIET=1 backup-databases");
    let files = [("STORAGE", "storage"), ("REMOTE", "backups/files")];
    let r = quiet_run(&s, "backup-storage", &files).success();
    assert_silent(&r, "backup-storage -q");
    let drill = [
        ("REMOTE", "backups/databases"),
        ("DATABASES", "production production_queue"),
        ("EXPECT_TABLES", "users posts"),
        ("CHECKS", "production --min-rows users=60"),
    ];
    let r = quiet_run(&s, "restore-drill", &drill).success();
    assert_silent(&r, "restore-drill -q");
    // The entrypoint has no -q: a boot with nothing to restore is silent.
    let r = run(
        &s,
        "docker-entrypoint",
        &[
            ("REMOTE", "backups/databases"),
            ("DATABASES_DIR", "storage"),
            ("DATABASES", "production production_queue"),
            ("FILES_REMOTE", "backups/files"),
        ],
        &[],
        &["true"],
    )
    .success();
    assert_silent(&r, "docker-entrypoint");

    // Failures, still with -q: the tool's ERROR line and the script's own.
    quiet_run(
        &s,
        "backup-databases",
        &[("DATABASES", "nowhere"), ("REMOTE", "backups/databases")],
    )
    .expect_code(3)
    .stderr_has("nowhere: no such file")
    .stderr_has("backup-databases ERROR backing up nowhere to backups/databases failed (exit 3)");
    let r = quiet_run(
        &s,
        "backup-storage",
        &[("STORAGE", "nowhere"), ("REMOTE", "backups/files")],
    );
    assert_ne!(r.code(), 0);
    let r = r.stderr_has("backup-storage ERROR syncing nowhere to backups/files failed");
    assert!(r.stderr().contains("blob-sync ERROR"), "{}", r.stderr());
    quiet_run(
        &s,
        "restore-drill",
        &[drill[0], ("DATABASES", "production nonexistent")],
    )
    .expect_code(1)
    .stderr_has("drill failed for: nonexistent");
    run(&s, "restore-drill", &drill, &[], &["--loud"])
        .expect_code(2)
        .stderr_has("unknown argument --loud");
}

/// restore-drill's CHECKS hold each database to its own expectations: rows
/// per table and a --max-age of its own in place of MAX_AGE; a name that
/// is not drilled is a configuration error, not a silently dropped check.
#[test]
fn restore_drill_takes_expectations_per_database() {
    let s = Scratch::new();
    app_storage(&s);
    quiet_run(
        &s,
        "backup-databases",
        &[("DATABASES", "storage"), ("REMOTE", "backups")],
    )
    .success();
    let drill = |checks: &str| {
        quiet_run(
            &s,
            "restore-drill",
            &[
                ("REMOTE", "backups"),
                ("DATABASES", "production production_queue"),
                ("MAX_AGE", "1h"),
                ("RECORDS", "drill.jsonl"),
                ("CHECKS", checks),
            ],
        )
    };
    // production has 60 users, production_queue 25.
    drill("production --min-rows users=60; production_queue --min-rows users=26")
        .expect_code(1)
        .stderr_has("drill failed for: production_queue");
    // One line per database works as well as ";", and a --max-age of its
    // own replaces MAX_AGE (sqlite-verify refuses the flag twice).
    let _ = std::fs::remove_file(s.join("drill.jsonl"));
    let r = drill(
        "production --min-rows users=60 --max-age 10m\n  production_queue --min-rows users=25 --expect-table posts",
    )
    .success();
    assert_silent(&r, "restore-drill -q with CHECKS");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(s.join("drill.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    let limit = |r: &serde_json::Value| r["checks"]["max_age"].as_str().unwrap().to_string();
    assert!(limit(&records[0]).ends_with("limit 10m"), "{}", records[0]);
    assert!(limit(&records[1]).ends_with("limit 1h"), "{}", records[1]);
    drill("produciton --min-rows users=1")
        .expect_code(2)
        .stderr_has("CHECKS names produciton, which is not among DATABASES");
}

/// The entrypoint restores uploaded files only into a storage directory
/// that holds none yet, so a reboot never brings back a file the app
/// deleted; a restore that failed part-way is finished by the next boot.
#[test]
fn entrypoint_restores_files_only_into_an_empty_storage_directory() {
    let s = Scratch::new();
    let uploads = app_storage(&s);
    quiet_run(
        &s,
        "backup-storage",
        &[("STORAGE", "storage"), ("REMOTE", "backups/files")],
    )
    .success();
    let boot = |s: &Scratch| {
        run(
            s,
            "docker-entrypoint",
            &[
                ("DATABASES_DIR", "storage"),
                ("FILES_REMOTE", "backups/files"),
            ],
            &[],
            &["true"],
        )
        .success()
    };
    let storage = s.join("storage");
    // The app deleted an upload; the backup still has it.
    std::fs::remove_file(storage.join(&uploads[0])).unwrap();
    let before = crate::support::world(&storage);
    boot(&s);
    assert!(
        !storage.join(&uploads[0]).exists(),
        "a deleted upload came back"
    );
    assert_eq!(crate::support::world(&storage), before);

    // A volume holding only the databases (just restored, or kept) and a
    // file system's lost+found gets every upload back.
    for dir in ["q0", "q1", "q2"] {
        std::fs::remove_dir_all(storage.join(dir)).unwrap();
    }
    std::fs::create_dir(storage.join("lost+found")).unwrap();
    boot(&s);
    for rel in &uploads {
        assert!(storage.join(rel).is_file(), "{rel} not restored");
    }
    assert!(storage.join("production.sqlite3").is_file());

    // A restore that stopped part-way: one upload there, the marker left.
    for dir in ["q0", "q1", "q2"] {
        std::fs::remove_dir_all(storage.join(dir)).unwrap();
    }
    let kept = storage.join(&uploads[1]);
    std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
    std::fs::write(&kept, format!("uploaded file {}", uploads[1]).repeat(50)).unwrap();
    std::fs::write(storage.join(".sqlkeep-restore-incomplete"), b"").unwrap();
    boot(&s);
    for rel in &uploads {
        assert!(storage.join(rel).is_file(), "{rel} not restored");
    }
    assert!(!storage.join(".sqlkeep-restore-incomplete").exists());
}

/// The quick start resolves its argument against the caller's directory
/// and writes its demo there (it used to cd into the clone first).
/// SQLKEEP_BIN_DIR spares the test a release build.
#[test]
fn quickstart_takes_paths_relative_to_the_caller() {
    let s = Scratch::new();
    std::fs::create_dir(s.join("mine")).unwrap();
    make_db(&s.join("mine/shop.sqlite3"), 40, true);
    s.program(&example("quickstart"))
        .env("SQLKEEP_BIN_DIR", crate::support::bin_dir())
        .arg("mine/shop.sqlite3")
        .run()
        .success()
        .stderr_has("== done");
    assert!(
        list_files(&s.join("demo/backups/shop"))
            .iter()
            .any(|f| f.ends_with(".sqlite3.zst"))
    );
    assert_eq!(count(&s.join("demo/restored.sqlite3"), "users"), 40);
}

/// The shell scripts of the repository, found by their `#!` line: the
/// examples, tests/run and .ci/run.
fn shell_scripts() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut scripts = Vec::new();
    for dir in ["examples", "tests", ".ci"] {
        for rel in list_files(&root.join(dir)) {
            let path = root.join(dir).join(rel);
            let text = std::fs::read(&path).unwrap_or_default();
            let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
            let first = String::from_utf8_lossy(first);
            let Some(command) = first.strip_prefix("#!") else {
                continue;
            };
            let mut words = command.split_whitespace();
            let mut program = words.next().unwrap_or_default().rsplit('/').next().unwrap();
            if program == "env" {
                program = words.next().unwrap_or_default();
            }
            if matches!(program, "sh" | "bash" | "dash" | "ksh") {
                scripts.push(path);
            }
        }
    }
    scripts
}

/// shellcheck finds nothing in any shell script (tests/run installs it).
#[test]
fn every_shell_script_passes_shellcheck() {
    let scripts = shell_scripts();
    let names: Vec<String> = scripts
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["backup-databases", "docker-entrypoint", "quickstart", "run"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not found: {names:?}"
        );
    }
    let out = std::process::Command::new("shellcheck")
        .args(&scripts)
        .output()
        .unwrap_or_else(|e| {
            panic!("shellcheck: {e} (./tests/run installs it: apt-get install shellcheck)")
        });
    assert!(
        out.status.success(),
        "shellcheck found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
