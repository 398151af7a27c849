//! The harness every end-to-end test uses: the real binaries, run as a
//! shell user would, in a scratch directory per test.
//!
//! The binaries are built once per test run with the same cargo and
//! profile as the tests (so a plain `cargo test` never drives stale
//! binaries); `SQLKEEP_BIN_DIR` points the tests at installed ones instead.

#![allow(dead_code)]

use rusqlite::Connection;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The directory holding the tool binaries, built on first use.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SQLKEEP_BIN_DIR") {
            return PathBuf::from(dir);
        }
        // target/<profile>/deps/e2e-<hash> → target/<profile>
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target directory")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "--workspace", "--bins"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build");
        assert!(status.success(), "cargo build of the tools failed");
        dir
    })
}

/// A scratch directory for one test, removed when the test ends.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new empty scratch directory.
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("sqlkeep-e2e-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A command for one of our tools, run in this directory, with its own
    /// `$TMPDIR` so tests never share sqlite-snap's private directory.
    pub fn tool(&self, name: &str) -> Tool {
        self.program(&bin_dir().join(name))
    }

    /// `sqlite-snap -o OUT_DIR DB`, which must succeed: the first step of
    /// most pipeline tests.
    pub fn snap(&self, out_dir: &str, db: &str) -> Run {
        self.tool("sqlite-snap")
            .args(["-o", out_dir, db])
            .run()
            .success()
    }

    /// `bucket-push REMOTE` fed `stdin` (records or paths), with `env` for
    /// an S3 remote, which must succeed.
    pub fn push(&self, remote: &str, env: &[(String, String)], stdin: impl Into<Vec<u8>>) -> Run {
        self.tool("bucket-push")
            .arg(remote)
            .envs(env)
            .stdin(stdin)
            .run()
            .success()
    }

    /// A command for any program (an example script), with the tools on
    /// its `PATH` and the same scratch environment as [`Scratch::tool`].
    pub fn program(&self, program: &Path) -> Tool {
        let mut cmd = Command::new(program);
        let path = format!(
            "{}:{}",
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path)
            .env("XDG_CACHE_HOME", self.join(".cache"))
            .env("XDG_STATE_HOME", self.join(".state"));
        let tmp = self.join(".tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        cmd.current_dir(self.path())
            .env("TMPDIR", &tmp)
            .env_remove("RUST_BACKTRACE");
        // Hermetic: no storage configuration leaks in from the developer's
        // shell; tests set what they mean.
        for (name, _) in std::env::vars() {
            if name.starts_with("AWS_")
                || name.starts_with("RCLONE_")
                || name.starts_with("SQLKEEP_")
            {
                cmd.env_remove(name);
            }
        }
        cmd.env("RCLONE_CONFIG", "/nonexistent/rclone.conf");
        Tool {
            cmd,
            stdin: None,
            name: program
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        }
    }

    /// Files in a directory below this one (relative names, sorted),
    /// including hidden ones, so leftovers are caught.
    pub fn files_in(&self, rel: &str) -> Vec<String> {
        list_files(&self.join(rel))
    }
}

/// All files below `dir`, relative and sorted; empty when it is missing.
pub fn list_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// How long any tool may run in a test before it counts as hung.
pub const HANG_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// A tool invocation being prepared.
pub struct Tool {
    cmd: Command,
    stdin: Option<Vec<u8>>,
    name: String,
}

impl Tool {
    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Tool {
        self.cmd.arg(arg);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Tool {
        self.cmd.env(key, value);
        self
    }

    /// Sets several environment variables.
    pub fn envs(mut self, vars: &[(String, String)]) -> Tool {
        self.cmd.envs(vars.iter().map(|(k, v)| (k, v)));
        self
    }

    /// Feeds `data` on stdin (otherwise stdin is empty, not a terminal).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Tool {
        self.stdin = Some(data.into());
        self
    }

    /// Runs to completion, feeding the stdin given (or none). A tool still
    /// running after [`HANG_LIMIT`] is killed and fails the test, so a
    /// hang is a failure, never a stuck suite.
    pub fn run(self) -> Run {
        self.run_within(HANG_LIMIT)
    }

    /// Like [`Tool::run`] with a shorter limit: for inputs that used to
    /// make a tool hang (a FIFO).
    pub fn run_within(mut self, limit: std::time::Duration) -> Run {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.name));
        let mut stdin = child.stdin.take().unwrap();
        let data = self.stdin.take().unwrap_or_default();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let pid = child.id();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        // A watchdog, not synchronisation: it waits for the tool's end and
        // kills the tool only if that end does not come within the limit.
        let watchdog = std::thread::spawn(move || {
            if finished.recv_timeout(limit).is_err() {
                // SAFETY: kill has no memory preconditions.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                return true;
            }
            false
        });
        let output = child.wait_with_output().expect("waiting for tool");
        let _ = done.send(());
        writer.join().unwrap();
        let killed = watchdog.join().unwrap();
        assert!(
            !killed,
            "{} hung and was killed after {limit:?}; stderr:\n{}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        Run {
            name: self.name,
            output,
        }
    }

    /// The underlying command, for tests that wire pipes themselves.
    pub fn command(self) -> Command {
        self.cmd
    }
}

/// A finished tool run.
pub struct Run {
    name: String,
    /// What the process produced.
    pub output: Output,
}

impl Run {
    /// The exit code.
    pub fn code(&self) -> i32 {
        self.output.status.code().expect("exited normally")
    }

    /// stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts the exit code, showing stderr when it differs.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "{} exited {} (expected {code})\nstdout:\n{}\nstderr:\n{}",
            self.name,
            self.code(),
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts success.
    pub fn success(self) -> Run {
        self.expect_code(0)
    }

    /// Asserts stderr contains `text`.
    pub fn stderr_has(self, text: &str) -> Run {
        assert!(
            self.stderr().contains(text),
            "{} stderr lacks {text:?}:\n{}",
            self.name,
            self.stderr()
        );
        self
    }

    /// Every stdout line parsed as a JSON object.
    pub fn records(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bad record {line:?}: {e}"));
                assert!(
                    v.is_object() && v["type"].is_string(),
                    "not a record: {line}"
                );
                v
            })
            .collect()
    }

    /// The single record on stdout.
    pub fn record(&self) -> Value {
        let records = self.records();
        assert_eq!(
            records.len(),
            1,
            "expected one record, got:\n{}",
            self.stdout()
        );
        records.into_iter().next().unwrap()
    }
}

/// Creates a Rails-like database (users, posts with a foreign key, an
/// index) with `users` users and three posts each, in WAL mode when `wal`.
pub fn make_db(path: &Path, users: u32, wal: bool) {
    let conn = Connection::open(path).unwrap();
    if wal {
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
    }
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, created_at TEXT);
         CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), body TEXT);
         CREATE INDEX index_posts_on_user_id ON posts(user_id);",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for i in 1..=users {
        tx.execute(
            "INSERT INTO users (id, email, created_at) VALUES (?1, ?2, '2026-11-22T03:00:00Z')",
            rusqlite::params![i, format!("user{i}@example.com")],
        )
        .unwrap();
        for p in 0..3 {
            tx.execute(
                "INSERT INTO posts (user_id, body) VALUES (?1, ?2)",
                rusqlite::params![
                    i,
                    format!("post {p} by user {i}: {}", "lorem ipsum ".repeat(8))
                ],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Row count of a table.
pub fn count(path: &Path, table: &str) -> i64 {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// The stamp of a snapshot object or manifest stem, `<stamp>-<tag>`: the
/// tag (eight hex digits of the stored checksum) is checked and dropped.
pub fn stamp_of(stem: &str) -> String {
    let (stamp, tag) = stem
        .split_once('-')
        .unwrap_or_else(|| panic!("{stem:?} has no checksum tag"));
    assert!(
        tag.len() == 8 && tag.bytes().all(|b| b.is_ascii_hexdigit()),
        "{stem:?}: bad tag"
    );
    stamp.to_string()
}

/// The object name stem a snapshot record is stored under:
/// `<stamp>-<first 8 hex digits of its sha256>`.
pub fn stem_of(record: &Value) -> String {
    let stamp = record["taken_at"].as_str().unwrap().replace(['-', ':'], "");
    format!("{stamp}-{}", &record["sha256"].as_str().unwrap()[..8])
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Decompresses a zstd file into memory.
pub fn unzstd(path: &Path) -> Vec<u8> {
    zstd::decode_all(std::fs::File::open(path).unwrap()).unwrap()
}

/// The path of a helper script in tests/helpers.
pub fn helper(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helpers")
        .join(name)
}

/// Everything below `dir`, as relative path → what it is: a file's
/// SHA-256, a link's target, or "dir". Compared before and after a run to
/// prove nothing outside its target changed.
pub fn world(dir: &Path) -> std::collections::BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, format!("link:{}", target.display()));
            } else if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &path, out);
            } else if meta.is_file() {
                out.insert(rel, sha256_file(&path));
            } else {
                out.insert(rel, "special".into());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Our temporary and scratch files below `dir` (debris of killed runs).
pub fn debris(dir: &Path) -> Vec<String> {
    list_files(dir)
        .into_iter()
        .filter(|f| {
            let name = f.rsplit('/').next().unwrap_or(f);
            name.starts_with('.')
                && (name.ends_with(".sqlkeep-tmp")
                    || name.ends_with(".scratch")
                    || name.ends_with(".sqlkeep-aside"))
        })
        .collect()
}

/// A small seeded generator (xorshift64*) for fault tests: the seed is
/// printed by the tests that use it, so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value but 0).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Runs `script` with sh as root of a private user and mount namespace in
/// which `dir/tiny` is a tmpfs of `size` (e.g. "2m"): a full disk without
/// touching the host. The mount disappears with the namespace.
pub fn on_tiny_tmpfs(dir: &Path, size: &str, script: &str) -> Output {
    let full = format!(
        "set -e; mkdir -p {dir}/tiny; mount -t tmpfs -o size={size} tmpfs {dir}/tiny; set +e; {script}",
        dir = dir.display()
    );
    Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &full])
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("unshare runs")
}

/// Creates a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// Every manifest in a database's prefix names an object whose checksum
/// is the manifest's, and latest.json is one of them.
pub fn assert_consistent(dir: &Path) -> std::collections::BTreeSet<String> {
    let mut checksums = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let object = dir.join(m["url"].as_str().unwrap().rsplit('/').next().unwrap());
        assert_eq!(
            sha256_file(&object),
            m["sha256"].as_str().unwrap(),
            "{} names an object with other content",
            path.display()
        );
        checksums.insert(m["sha256"].as_str().unwrap().to_string());
    }
    checksums
}

/// A database big enough that its snapshot goes up in several parts:
/// random blobs do not compress.
pub fn make_big_db(path: &std::path::Path, mib: usize) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL);")
        .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for _ in 0..mib {
        tx.execute("INSERT INTO blobs (data) VALUES (randomblob(1048576))", [])
            .unwrap();
    }
    tx.commit().unwrap();
}

/// Kills at uniform random moments of `span` (a fault injection point,
/// not a wait for something to happen): `kill(n, at)` starts run `n`,
/// kills it `at` later, checks what it left and says whether the kill
/// landed mid-run. At least `tries` kills; more, up to four times as
/// many, until `want` have landed.
///
/// The span follows the runs: a kill that landed stretches it by 5%, one
/// that came after the end shrinks it by 10%, so about two kills in three
/// land and the rest fall just past the end, and the moments cover the
/// whole run, its last steps included. It was measured on a machine the
/// other tests share: a fixed span from a slow calibration run sent most
/// kills past the end (CI once saw 21 of 50 land), and one from a quick
/// run let none reach a run's last steps. Fewer than `want` landed fails:
/// kills that never land test nothing.
pub fn campaign(
    seed: u64,
    mut span: Duration,
    tries: usize,
    want: usize,
    mut kill: impl FnMut(usize, Duration) -> bool,
) -> String {
    let mut rng = Rng::new(seed);
    let (mut landed, mut n) = (0, 0);
    while n < tries || (landed < want && n < 4 * tries) {
        let at = moment(&mut rng, span);
        if kill(n, at) {
            landed += 1;
            span = span.mul_f64(1.05);
        } else {
            span = span.mul_f64(0.9);
        }
        n += 1;
    }
    let summary =
        format!("{landed} of {n} kills landed mid-run (seed {seed:#x}, last span {span:?})");
    assert!(landed >= want, "too few kills landed: {summary}");
    summary
}

/// A random moment in `0..=span`.
fn moment(rng: &mut Rng, span: Duration) -> Duration {
    Duration::from_micros(rng.below(span.as_micros() as u64 + 1))
}
