//! Only regular files: every tool refuses a FIFO, device, socket or
//! directory given as an input at once (exit 1, naming it), without
//! hanging and without an unbounded temporary file; a target that is not
//! a regular file is never replaced (exit 5, even with --force); and a
//! database another process has open is not replaced without
//! --even-if-open (issue 10, "Replacing what is not a database").

use crate::support::{Scratch, make_db, mkfifo, world};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Long enough for any tool to refuse; a tool that hangs fails the test.
const LIMIT: Duration = Duration::from_secs(20);

/// A unix socket at `path`, kept bound while the listener lives.
fn socket(path: &Path) -> std::os::unix::net::UnixListener {
    std::os::unix::net::UnixListener::bind(path).unwrap()
}

#[test]
fn inputs_that_are_not_regular_files_are_refused_at_once() {
    let s = Scratch::new();
    mkfifo(&s.join("fifo.sqlite3"));
    let _sock = socket(&s.join("sock.sqlite3"));
    std::fs::create_dir_all(s.join("remote")).unwrap();
    for input in ["fifo.sqlite3", "sock.sqlite3", "/dev/zero", "/dev/null"] {
        let what = if input.starts_with("/dev") {
            "a character device"
        } else if input.starts_with("fifo") {
            "a FIFO"
        } else {
            "a socket"
        };
        let snap = s
            .tool("sqlite-snap")
            .args(["-o", "snaps", input])
            .run_within(LIMIT)
            .expect_code(1);
        assert!(
            snap.stderr().contains(what),
            "snap {input}: {}",
            snap.stderr()
        );
        let maint = s
            .tool("sqlite-maint")
            .args(["--checkpoint", "passive", input])
            .run_within(LIMIT)
            .expect_code(1);
        assert!(
            maint.stderr().contains(what),
            "maint {input}: {}",
            maint.stderr()
        );
        let verify = s
            .tool("sqlite-verify")
            .arg(input)
            .run_within(LIMIT)
            .expect_code(1);
        assert!(
            verify.stdout().contains(what),
            "verify {input}: {}",
            verify.stdout()
        );
        let push = s
            .tool("bucket-push")
            .args(["remote", input])
            .run_within(LIMIT)
            .expect_code(1);
        assert!(
            push.stderr()
                .contains(&format!("is {what}, not a regular file")),
            "push {input}: {}",
            push.stderr()
        );
    }
    // A directory where a file is meant.
    let push = s
        .tool("bucket-push")
        .args(["remote", "snaps"])
        .run_within(LIMIT)
        .expect_code(1);
    assert!(
        push.stderr().contains("is a directory"),
        "{}",
        push.stderr()
    );
    assert!(
        crate::support::list_files(&s.join("remote")).is_empty(),
        "nothing stored, no temporary file"
    );
}

/// A FIFO among uploads is not a file to sync: skipped, never opened.
#[test]
fn blob_sync_never_reads_a_fifo() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.join("src/ab")).unwrap();
    std::fs::write(s.join("src/ab/file"), b"data").unwrap();
    mkfifo(&s.join("src/ab/pipe"));
    let run = s
        .tool("blob-sync")
        .args(["src", "dest"])
        .run_within(LIMIT)
        .success();
    assert_eq!(run.record()["copied"]["files"], 1);
    assert!(!s.join("dest/ab/pipe").exists());
}

/// A restore target that is a device, FIFO or socket is refused for
/// safety, with or without --force: `-o /dev/null --force` once replaced
/// the host's /dev/null. The device here is /dev/null bind-mounted over a
/// scratch file in a private mount namespace, so not even a broken tool
/// can touch the host's.
#[test]
fn targets_that_are_not_regular_files_are_never_replaced() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, false);
    let snap = s.snap("snaps", "app.sqlite3");
    s.push("remote", &[], snap.stdout());
    mkfifo(&s.join("fifo"));
    let _sock = socket(&s.join("sock"));
    for target in ["fifo", "sock"] {
        for force in [false, true] {
            let mut pull = s.tool("bucket-pull").args(["remote/app", "-o", target]);
            if force {
                pull = pull.arg("--force");
            }
            let run = pull.run_within(LIMIT).expect_code(5);
            assert!(
                run.stderr()
                    .contains("not a regular file; refusing to replace it"),
                "{target} force={force}: {}",
                run.stderr()
            );
        }
    }
    assert!(
        std::fs::metadata(s.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );

    let dir = s.path().display();
    let script = format!(
        "cd {dir}; touch device; mount --bind /dev/null device; \
         for force in '' --force; do \
           TMPDIR={dir}/.tmp bucket-pull remote/app -o device $force 2>> device-err.txt; \
           echo $? >> device-codes.txt; \
         done; test -c device && echo device > device-after.txt"
    );
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .env(
            "PATH",
            format!(
                "{}:{}",
                crate::support::bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(s.join(name)).unwrap_or_default();
    assert_eq!(
        read("device-codes.txt"),
        "5\n5\n",
        "{}",
        read("device-err.txt")
    );
    assert!(
        read("device-err.txt").contains("is a character device, not a regular file"),
        "{}",
        read("device-err.txt")
    );
    assert_eq!(
        read("device-after.txt"),
        "device\n",
        "the device was replaced"
    );
    assert!(crate::support::debris(s.path()).is_empty());
}

/// A process holding a database open, through the Python sqlite3 module
/// (another process, as an application would). Stops when dropped.
struct Holder {
    child: Child,
}

impl Holder {
    /// Opens `db` in WAL mode in a new process and keeps it open.
    fn start(db: &Path, wrapper: &[&str]) -> Holder {
        let script = "import sqlite3,sys\n\
            c=sqlite3.connect(sys.argv[1])\n\
            c.execute('PRAGMA journal_mode=WAL')\n\
            c.execute('SELECT count(*) FROM users').fetchone()\n\
            print('ready', flush=True)\n\
            sys.stdin.read()\n";
        let mut cmd = Command::new(wrapper.first().copied().unwrap_or("python3"));
        if !wrapper.is_empty() {
            cmd.args(&wrapper[1..]).arg("python3");
        }
        let mut child = cmd
            .args(["-c", script])
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Holder { child }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// A database another process has open is not replaced, even with
/// --force: the application would write on into the replaced file. The
/// refusal names the process; --even-if-open overrides it.
#[test]
fn an_open_database_is_not_replaced_without_even_if_open() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, true);
    let snap = s.snap("snaps", "app.sqlite3");
    s.push("remote", &[], snap.stdout());
    make_db(&s.join("live.sqlite3"), 9, true);
    let holder = Holder::start(&s.join("live.sqlite3"), &[]);
    let before = world(s.path());
    let run = s
        .tool("bucket-pull")
        .args(["remote/app", "-o", "live.sqlite3", "--force"])
        .run()
        .expect_code(5);
    assert!(
        run.stderr().contains("is in use: process")
            && run.stderr().contains(&holder.child.id().to_string())
            && run.stderr().contains("--even-if-open"),
        "{}",
        run.stderr()
    );
    assert_eq!(world(s.path()), before);
    s.tool("bucket-pull")
        .args([
            "remote/app",
            "-o",
            "live.sqlite3",
            "--force",
            "--even-if-open",
        ])
        .run()
        .success();
    assert_eq!(crate::support::count(&s.join("live.sqlite3"), "users"), 5);
}

/// An application in another PID namespace (a container sharing the
/// volume) is invisible in our /proc; its WAL connection's lock on the
/// -shm file still shows it, and the restore is refused.
#[test]
fn an_open_database_in_another_pid_namespace_is_seen_by_its_lock() {
    let s = Scratch::new();
    make_db(&s.join("app.sqlite3"), 5, true);
    let snap = s.snap("snaps", "app.sqlite3");
    s.push("remote", &[], snap.stdout());
    make_db(&s.join("live.sqlite3"), 9, true);
    let _holder = Holder::start(&s.join("live.sqlite3"), &[]);
    // bucket-pull runs in a new PID namespace with its own /proc, where
    // the holder does not exist.
    let out = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--mount",
            "--mount-proc",
        ])
        .arg(crate::support::bin_dir().join("bucket-pull"))
        .args(["remote/app", "-o", "live.sqlite3", "--force"])
        .current_dir(s.path())
        .env("TMPDIR", s.join(".tmp"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("an open WAL connection"), "{stderr}");
    assert_eq!(crate::support::count(&s.join("live.sqlite3"), "users"), 9);
}
