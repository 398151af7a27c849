//! The bank writer: a separate process (tests/helpers/bank_writer.py,
//! Python's own SQLite) that moves money between accounts, and the
//! invariants every committed state of its database keeps. Shared by the
//! snapshot-consistency and maintenance tests.

use crate::support::helper;
use rusqlite::{Connection, OpenFlags};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// Accounts in the bank.
pub const ACCOUNTS: i64 = 50;
/// Each account's opening balance.
pub const INITIAL: i64 = 1000;

/// The writer process and its progress lines.
pub struct Writer {
    child: Child,
    lines: BufReader<ChildStdout>,
    /// Commits the writer has reported so far.
    pub committed: u64,
}

impl Writer {
    /// Starts the writer and waits until its tables exist.
    pub fn start(db: &Path, journal_mode: &str) -> Writer {
        Writer::start_with(db, journal_mode, None)
    }

    /// Starts a writer committing at most about `per_second` times a
    /// second: a test of hundreds of rounds keeps its database small.
    pub fn start_paced(db: &Path, journal_mode: &str, per_second: u32) -> Writer {
        Writer::spawn(db, journal_mode, None, Some(per_second))
    }

    /// Starts the writer with an auto_vacuum mode and cache churn.
    pub fn start_with(db: &Path, journal_mode: &str, auto_vacuum: Option<&str>) -> Writer {
        Writer::spawn(db, journal_mode, auto_vacuum, None)
    }

    fn spawn(
        db: &Path,
        journal_mode: &str,
        auto_vacuum: Option<&str>,
        pace: Option<u32>,
    ) -> Writer {
        let mut child = Command::new("python3")
            .arg(helper("bank_writer.py"))
            .arg(db)
            .arg(ACCOUNTS.to_string())
            .arg(INITIAL.to_string())
            .arg(journal_mode)
            .args(auto_vacuum)
            .env("BANK_PACE", pace.unwrap_or(0).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the writer");
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        lines.read_line(&mut first).unwrap();
        assert_eq!(first.trim(), "ready", "writer did not start");
        Writer {
            child,
            lines,
            committed: 0,
        }
    }

    /// Blocks until the writer reports at least `n` commits.
    pub fn wait_for(&mut self, n: u64) {
        while self.committed < n {
            let mut line = String::new();
            assert!(
                self.lines.read_line(&mut line).unwrap() > 0,
                "writer ended early"
            );
            if let Some(count) = line.trim().strip_prefix("committed ") {
                self.committed = count.parse().unwrap();
            }
        }
    }

    /// Stops the writer; returns its final commit count after checking it
    /// saw no errors.
    pub fn stop(mut self) -> u64 {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        for line in (&mut self.lines).lines() {
            rest = line.unwrap();
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the writer saw errors: {rest}");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(fields[0], "done", "{rest}");
        assert_eq!(fields[3], "0", "writer errors: {rest}");
        fields[1].parse().unwrap()
    }
}

impl Drop for Writer {
    /// A failed test must not leave the writer running into a deleted
    /// scratch directory.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks the bank's invariants in a restored snapshot; returns how many
/// transfers it holds.
pub fn check_invariants(db: &Path) -> i64 {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let total: i64 = conn
        .query_row("SELECT sum(balance) FROM accounts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        total,
        ACCOUNTS * INITIAL,
        "money appeared or vanished: torn snapshot"
    );
    let unbalanced: i64 = conn
        .query_row(
            "SELECT count(*) FROM accounts a WHERE balance != ?1
               - (SELECT coalesce(sum(amount), 0) FROM transfers WHERE src = a.id)
               + (SELECT coalesce(sum(amount), 0) FROM transfers WHERE dst = a.id)",
            [INITIAL],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        unbalanced, 0,
        "balances disagree with the transfer log: torn snapshot"
    );
    conn.query_row("SELECT count(*) FROM transfers", [], |r| r.get(0))
        .unwrap()
}
