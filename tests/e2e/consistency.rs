//! Snapshots taken while another process writes must be transactionally
//! consistent, every time, and must never fail with "database is locked".
//!
//! The writer (tests/helpers/bank_writer.py, Python's own SQLite, a
//! separate process) moves money between accounts; the invariants it
//! keeps hold in every committed state and break in any torn copy.

use crate::support::{Scratch, helper, unzstd};
use rusqlite::{Connection, OpenFlags};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

const ACCOUNTS: i64 = 50;
const INITIAL: i64 = 1000;

/// The writer process and its progress lines.
struct Writer {
    child: Child,
    lines: BufReader<ChildStdout>,
    committed: u64,
}

impl Writer {
    /// Starts the writer and waits until its tables exist.
    fn start(db: &Path, journal_mode: &str) -> Writer {
        let mut child = Command::new("python3")
            .arg(helper("bank_writer.py"))
            .arg(db)
            .arg(ACCOUNTS.to_string())
            .arg(INITIAL.to_string())
            .arg(journal_mode)
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
    fn wait_for(&mut self, n: u64) {
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
    fn stop(mut self) -> u64 {
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
fn check_invariants(db: &Path) -> i64 {
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

/// Takes `rounds` snapshots with `method` while the writer runs, waiting
/// for fresh commits before each, and checks every one.
fn snapshots_stay_consistent(journal_mode: &str, method: &str, rounds: u32) {
    let s = Scratch::new();
    let db = s.join("bank.sqlite3");
    let mut writer = Writer::start(&db, journal_mode);
    let mut previous = -1;
    for round in 0..rounds {
        writer.wait_for(writer.committed + 25);
        let out = s.join(&format!("snaps{round}"));
        let run = s
            .tool("sqlite-snap")
            .args(["--method", method, "-o"])
            .arg(&out)
            .arg(&db)
            .run()
            .success();
        let record = run.record();
        let snapshot = Path::new(record["path"].as_str().unwrap());
        let restored = s.join(&format!("restored{round}.sqlite3"));
        std::fs::write(&restored, unzstd(snapshot)).unwrap();
        let transfers = check_invariants(&restored);
        assert!(
            transfers > previous,
            "round {round}: snapshot holds {transfers} transfers, not more than the previous {previous}: the writer was not running"
        );
        previous = transfers;
    }
    let committed = writer.stop();
    assert!(
        committed as i64 > previous,
        "the writer kept committing after the last snapshot"
    );
}

#[test]
fn pages_snapshots_of_a_busy_wal_database_are_consistent() {
    snapshots_stay_consistent("wal", "pages", 20);
}

#[test]
fn vacuum_snapshots_of_a_busy_wal_database_are_consistent() {
    snapshots_stay_consistent("wal", "vacuum", 10);
}

#[test]
fn pages_snapshots_of_a_busy_rollback_journal_database_are_consistent() {
    snapshots_stay_consistent("delete", "pages", 10);
}

/// A snapshot read through stdin records: the writer keeps going, and the
/// pipeline into bucket-push stores a consistent copy.
#[test]
fn snapshot_piped_to_push_while_writing_is_consistent() {
    let s = Scratch::new();
    let db = s.join("bank.sqlite3");
    let mut writer = Writer::start(&db, "wal");
    writer.wait_for(50);
    let snap = s.tool("sqlite-snap").arg(&db).run().success();
    let push = s
        .tool("bucket-push")
        .arg("remote")
        .stdin(snap.stdout())
        .run()
        .success();
    let object = push.record();
    let stored = Path::new(object["url"].as_str().unwrap());
    let restored = s.join("restored.sqlite3");
    let mut f = std::fs::File::create(&restored).unwrap();
    f.write_all(&unzstd(stored)).unwrap();
    assert!(check_invariants(&restored) > 0);
    writer.stop();
}
