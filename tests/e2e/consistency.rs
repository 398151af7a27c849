//! Snapshots taken while another process writes must be transactionally
//! consistent, every time, and must never fail with "database is locked".
//!
//! The writer (tests/helpers/bank_writer.py, Python's own SQLite, a
//! separate process) moves money between accounts; the invariants it
//! keeps hold in every committed state and break in any torn copy.

use crate::bank::{Writer, check_invariants};
use crate::support::{Scratch, unzstd};
use std::io::Write;
use std::path::Path;

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
