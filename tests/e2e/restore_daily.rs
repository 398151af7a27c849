//! The operator's side of a restore: the README's drill runs every day
//! without --force, and a restored database belongs to whoever the app
//! runs as.

use crate::s3server::{BUCKET, S3Server};
use crate::support::{Scratch, bin_dir, count, make_db};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// The README's "Restore drill" command, continuation lines joined.
fn readme_drill() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("\n## Restore drill\n")
        .nth(1)
        .expect("README has a Restore drill section");
    let block = section
        .split("```bash\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a bash block in the Restore drill section");
    block.replace("\\\n", " ")
}

/// Runs `script` with bash, the tools first on PATH.
fn bash(s: &Scratch, script: &str, env: &[(String, String)]) -> (i32, String) {
    let path = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap());
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .current_dir(s.path())
        .env("PATH", path)
        .env("XDG_STATE_HOME", s.join(".state"))
        .env("TMPDIR", s.join(".tmp"))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_readme_drill_runs_every_day_and_never_replaces_a_written_file() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.join(".tmp")).unwrap();
    let server = S3Server::start(&s.join("s3"));
    let env = S3Server::aws_env(&server.endpoint);
    make_db(&s.join("production.sqlite3"), 25, true);
    let snap = s.snap("snaps", "production.sqlite3").success();
    s.tool("bucket-push")
        .arg(format!("s3://{BUCKET}/databases"))
        .envs(&env)
        .stdin(snap.stdout())
        .run()
        .success();

    let drill = readme_drill();
    assert!(
        drill.contains("bucket-pull") && drill.contains("| sqlite-verify"),
        "{drill}"
    );
    let scratch = s.join("drill.sqlite3");
    let script = drill
        .replace(
            "s3://my-bucket/databases/",
            &format!("s3://{BUCKET}/databases/"),
        )
        .replace("/tmp/drill.sqlite3", scratch.to_str().unwrap());
    for day in 1..=3 {
        let (code, err) = bash(&s, &script, &env);
        assert_eq!(code, 0, "day {day}: {err}");
        assert_eq!(count(&scratch, "users"), 25, "day {day}");
    }

    // Somebody used the scratch copy: it is not replaced without --force.
    let conn = rusqlite::Connection::open(&scratch).unwrap();
    conn.execute(
        "INSERT INTO users (id, email) VALUES (1000, 'console@example.com')",
        [],
    )
    .unwrap();
    drop(conn);
    let (code, err) = bash(&s, &script, &env);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("refusing to replace it without --force"),
        "{err}"
    );
    assert_eq!(
        count(&scratch, "users"),
        26,
        "the written file was replaced"
    );
}

/// Ids of `nobody`, whom the tests give files to.
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    let probe = std::env::temp_dir().join(format!("sqlkeep-owner-{}", std::process::id()));
    std::fs::write(&probe, b"").unwrap();
    let uid = std::fs::metadata(&probe).unwrap().uid();
    let _ = std::fs::remove_file(&probe);
    uid == 0
}

#[test]
fn a_restore_run_as_root_belongs_to_the_app() {
    let s = Scratch::new();
    make_db(&s.join("production.sqlite3"), 12, true);
    let snap = s.snap("snaps", "production.sqlite3").success();
    s.tool("bucket-push")
        .arg("backups")
        .stdin(snap.stdout())
        .run()
        .success();
    let storage = s.join("storage");
    std::fs::create_dir(&storage).unwrap();
    let target = storage.join("production.sqlite3");
    let meta = |p: &Path| std::fs::metadata(p).unwrap();

    if !is_root() {
        // Without root nothing can be given away: the file is ours, 0600,
        // and asking for another owner is refused before anything is
        // written.
        s.tool("bucket-pull")
            .args(["backups/production", "-o"])
            .arg(&target)
            .run()
            .success();
        assert_eq!(meta(&target).mode() & 0o777, 0o600);
        s.tool("bucket-pull")
            .args(["backups/production", "--force", "--owner", "0:0", "-o"])
            .arg(&target)
            .run()
            .expect_code(2)
            .stderr_has("cannot give the file to 0:0");
        return;
    }

    // The app's directory belongs to the app's user (here: nobody).
    std::os::unix::fs::chown(&storage, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&storage, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    s.tool("bucket-pull")
        .args(["backups/production", "-o"])
        .arg(&target)
        .run()
        .success();
    let m = meta(&target);
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o777),
        (NOBODY, NOBODY, 0o600)
    );
    // The app, running as that user, can open and write it (the system's
    // python: a per-user install's shim is not for nobody to run).
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("python3");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", python, "-c"])
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"INSERT INTO users (email) VALUES ('app@example.com')\"); c.commit(); print(c.execute('SELECT count(*) FROM users').fetchone()[0])")
        .arg(&target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "13");

    // A replaced file's owner, group and mode are kept.
    std::os::unix::fs::chown(&target, Some(NOBODY), Some(100)).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    s.tool("bucket-pull")
        .args(["backups/production", "--force", "-o"])
        .arg(&target)
        .run()
        .success();
    let m = meta(&target);
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (NOBODY, 100, 0o640));
    assert_eq!(count(&target, "users"), 12, "the backup, not the app's row");

    // Flags override both.
    s.tool("bucket-pull")
        .args([
            "backups/production",
            "--force",
            "--owner",
            "0:0",
            "--mode",
            "644",
            "-o",
        ])
        .arg(&target)
        .run()
        .success();
    let m = meta(&target);
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (0, 0, 0o644));
    s.tool("bucket-pull")
        .args([
            "backups/production",
            "--force",
            "--owner",
            "no-such-user-here",
            "-o",
        ])
        .arg(&target)
        .run()
        .expect_code(2)
        .stderr_has("no user named");
    s.tool("bucket-pull")
        .args(["backups/production", "--force", "--mode", "u+rw", "-o"])
        .arg(&target)
        .run()
        .expect_code(2)
        .stderr_has("octal");
}
