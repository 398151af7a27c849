//! A closed stdout (`… | head -1`) ends a tool quietly with status 0.

use crate::support::{Scratch, make_db};
use std::process::Stdio;

#[test]
fn closed_stdout_ends_quietly() {
    let s = Scratch::new();
    make_db(&s.join("a.sqlite3"), 3, false);
    make_db(&s.join("b.sqlite3"), 3, false);
    // The read end is closed before the tool starts, so its first record
    // write fails with EPIPE every time.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = s
        .tool("sqlite-snap")
        .args(["-o", "out", "--jobs", "1", "a.sqlite3", "b.sqlite3"])
        .command();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("ERROR"), "{stderr}");
    // It stopped at the first record: the second database was never taken
    // (one job; with N, at most the N in hand are finished).
    assert_eq!(s.files_in("out").len(), 1);
}
