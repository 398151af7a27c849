//! S3 over TLS with a private CA (issue 13): a self-hosted MinIO or Garage
//! behind its own CA is reached when `AWS_CA_BUNDLE` (or `SSL_CERT_FILE`)
//! names that CA, and refused with a message that says what to set when
//! not. The CA and the server's certificate (for 127.0.0.1) are made here
//! with openssl; the server is `rclone serve s3 --cert --key`.

use crate::s3server::{BUCKET, S3Server};
use crate::support::{Scratch, make_db, sha256_file};
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (tests/run installs it)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA (`ca.pem`) and a certificate for 127.0.0.1 it signed
/// (`server.pem`, `server.key`).
fn private_ca(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=sqlkeep test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

#[test]
fn a_private_ca_is_trusted_through_aws_ca_bundle_and_refused_without() {
    let s = Scratch::new();
    let pki = s.join("pki");
    std::fs::create_dir(&pki).unwrap();
    private_ca(&pki);
    let server = S3Server::start_tls(
        &s.join("s3"),
        &pki.join("server.pem"),
        &pki.join("server.key"),
    );
    assert!(
        server.endpoint.starts_with("https://"),
        "{}",
        server.endpoint
    );
    let env = S3Server::aws_env(&server.endpoint);
    make_db(&s.join("app.sqlite3"), 20, true);
    let remote = format!("s3://{BUCKET}/db");

    // Without the CA: exit 2, one line naming the host and what to set.
    let snap = s.tool("sqlite-snap").arg("app.sqlite3").run().success();
    let refused = s
        .tool("bucket-push")
        .arg(&remote)
        .envs(&env)
        .stdin(snap.stdout())
        .run()
        .expect_code(2);
    let port = server.endpoint.rsplit(':').next().unwrap();
    for needed in [
        "TLS",
        &format!("127.0.0.1:{port}"),
        "for the name 127.0.0.1",
        "AWS_CA_BUNDLE",
    ] {
        assert!(
            refused.stderr().contains(needed),
            "{needed}: {}",
            refused.stderr()
        );
    }
    assert!(crate::support::list_files(&server.root.join(BUCKET)).is_empty());

    // With it: stored, listed and restored over TLS (the snapshot kept in
    // a directory, as it is pushed twice).
    let snap = s
        .tool("sqlite-snap")
        .args(["-o", "snaps", "app.sqlite3"])
        .run()
        .success();
    let record = snap.record();
    for var in ["AWS_CA_BUNDLE", "SSL_CERT_FILE"] {
        s.tool("bucket-push")
            .arg(&remote)
            .envs(&env)
            .env(var, pki.join("ca.pem"))
            .stdin(snap.stdout())
            .run()
            .success();
        s.tool("bucket-pull")
            .arg(format!("{remote}/app"))
            .arg("--list")
            .envs(&env)
            .env(var, pki.join("ca.pem"))
            .run()
            .success();
        let target = s.join(&format!("restored-{var}.sqlite3"));
        s.tool("bucket-pull")
            .arg(format!("{remote}/app"))
            .arg("-o")
            .arg(&target)
            .envs(&env)
            .env(var, pki.join("ca.pem"))
            .run()
            .success();
        assert_eq!(sha256_file(&target), record["raw_sha256"].as_str().unwrap());
    }

    // A bundle that cannot be read is a configuration error, said at once.
    s.tool("bucket-pull")
        .arg(format!("{remote}/app"))
        .arg("--list")
        .envs(&env)
        .env("AWS_CA_BUNDLE", s.join("missing.pem"))
        .run()
        .expect_code(2)
        .stderr_has("AWS_CA_BUNDLE=");
}

/// An endpoint written without a scheme means https; when the server
/// speaks plain HTTP the handshake fails, and the line says what was
/// assumed and what to write. A local directory whose name has a colon
/// gets the `./` hint.
#[test]
fn an_endpoint_without_a_scheme_says_https_was_assumed() {
    let s = Scratch::new();
    let server = S3Server::start(&s.join("s3"));
    let bare = server.endpoint.trim_start_matches("http://").to_string();
    let env = S3Server::aws_env(&bare);
    let run = s
        .tool("bucket-pull")
        .args([&format!("s3://{BUCKET}/db/app"), "--list"])
        .envs(&env)
        .run()
        .expect_code(2);
    for needed in ["TLS", &bare, "https is assumed", "write http://"] {
        assert!(run.stderr().contains(needed), "{needed}: {}", run.stderr());
    }
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());

    s.tool("bucket-pull")
        .args(["nowhere:backups/app", "--list"])
        .run()
        .expect_code(2)
        .stderr_has("write ./nowhere:");
}
