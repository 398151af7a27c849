//! The maintenance operations, each in short write transactions whose
//! lock time is measured.
//!
//! The application keeps writing while these run: every write transaction
//! starts with `BEGIN IMMEDIATE`, waiting at most the busy timeout for the
//! write lock, and stays short (incremental vacuum goes in batches), so an
//! application's own busy timeout rides it out.

use crate::cli::{AutoVacuum, Checkpoint};
use anyhow::{Context, Result};
use rusqlite::{Connection, ErrorCode};
use sqlkeep_common::exit::{Exit, fail};
use std::time::{Duration, Instant};

/// Pages given back per incremental-vacuum transaction: 4 MiB at the
/// common 4 KiB page size, a few milliseconds of write lock.
pub const VACUUM_BATCH: u64 = 1024;

/// How long the write lock was held, in all and at most at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct LockTime {
    /// Sum over all transactions.
    pub total: Duration,
    /// The longest single hold.
    pub longest: Duration,
}

impl LockTime {
    /// Adds one hold of the lock.
    pub fn add(&mut self, held: Duration) {
        self.total += held;
        self.longest = self.longest.max(held);
    }
}

/// Runs `work` in a write transaction, timing the lock from the moment it
/// is granted. A lock that never comes within the busy timeout is exit 4.
pub fn in_write_txn<T>(
    conn: &Connection,
    lock: &mut LockTime,
    busy_timeout: Duration,
    work: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        return Err(busy_or(e, busy_timeout));
    }
    let granted = Instant::now();
    let result = work(conn).and_then(|value| {
        conn.execute_batch("COMMIT")
            .map_err(|e| busy_or(e, busy_timeout))?;
        Ok(value)
    });
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    lock.add(granted.elapsed());
    result
}

/// A busy error as "try again later" with the reason; others unchanged.
fn busy_or(e: rusqlite::Error, busy_timeout: Duration) -> anyhow::Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => fail(
            Exit::Unavailable,
            format!(
                "could not get the write lock within {}: the application holds it; try again later",
                sqlkeep_common::time::format_duration(busy_timeout.as_secs() as i64)
            ),
        ),
        _ => anyhow::Error::new(e),
    }
}

/// Free pages in the file.
pub fn freelist_count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn
        .query_row("PRAGMA main.freelist_count", [], |r| r.get(0))
        .context("reading freelist_count")?;
    Ok(n.max(0) as u64)
}

/// Gives free pages back to the file system in batches, at most `limit`
/// pages (all when None). Returns the pages freed.
pub fn incremental_vacuum(
    conn: &Connection,
    limit: Option<u64>,
    lock: &mut LockTime,
    busy: Duration,
) -> Result<u64> {
    let mut freed = 0;
    loop {
        let free = freelist_count(conn)?;
        let room = limit.map_or(u64::MAX, |l| l.saturating_sub(freed));
        let pages = free.min(room).min(VACUUM_BATCH);
        if pages == 0 {
            break;
        }
        in_write_txn(conn, lock, busy, |c| {
            // The pragma frees one page per step: step it to the end.
            let mut stmt = c.prepare(&format!("PRAGMA main.incremental_vacuum({pages})"))?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        })
        .context("incremental vacuum")?;
        let after = freelist_count(conn)?;
        if after >= free {
            break;
        }
        freed += free - after;
    }
    Ok(freed)
}

/// The outcome of a checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct Checkpointed {
    /// True when a reader or writer kept it from completing.
    pub blocked: bool,
    /// Frames left in the WAL (SQLite's "log" column).
    pub wal_frames_after: i64,
    /// Frames copied into the database.
    pub checkpointed: i64,
}

/// `PRAGMA wal_checkpoint(MODE)`. Full, restart and truncate wait (up to
/// the busy timeout) for writers and readers, and block writers while they
/// run, so their time counts as lock time.
pub fn checkpoint(
    conn: &Connection,
    mode: Checkpoint,
    lock: &mut LockTime,
) -> Result<Checkpointed> {
    let started = Instant::now();
    let (busy, log, done): (i64, i64, i64) = conn
        .query_row(
            &format!("PRAGMA main.wal_checkpoint({})", mode.sql()),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .context("checkpoint")?;
    if mode != Checkpoint::Passive {
        lock.add(started.elapsed());
    }
    Ok(Checkpointed {
        blocked: busy != 0,
        wal_frames_after: log.max(0),
        checkpointed: done.max(0),
    })
}

/// Sets auto_vacuum where no rebuild is needed (a database with no pages
/// yet, or a switch between full and incremental, which keep the same
/// page layout).
pub fn set_auto_vacuum(
    conn: &Connection,
    mode: AutoVacuum,
    lock: &mut LockTime,
    busy: Duration,
) -> Result<()> {
    in_write_txn(conn, lock, busy, |c| {
        c.execute_batch(&format!("PRAGMA main.auto_vacuum = {}", mode.number()))?;
        Ok(())
    })
}

/// True when changing auto_vacuum from `current` to `target` needs a
/// VACUUM: between none and the other two, once the database has content.
pub fn needs_rebuild(current: AutoVacuum, target: AutoVacuum, page_count: u64) -> bool {
    (current == AutoVacuum::None) != (target == AutoVacuum::None) && page_count > 1
}

/// Sets auto_vacuum and rebuilds the database with VACUUM, which holds the
/// write lock for the whole rebuild.
pub fn rebuild(
    conn: &Connection,
    mode: AutoVacuum,
    lock: &mut LockTime,
    busy: Duration,
) -> Result<()> {
    conn.execute_batch(&format!("PRAGMA main.auto_vacuum = {}", mode.number()))
        .context("setting auto_vacuum")?;
    let started = Instant::now();
    let result = conn.execute_batch("VACUUM").map_err(|e| busy_or(e, busy));
    lock.add(started.elapsed());
    result.context("VACUUM")
}

/// `PRAGMA optimize` or `ANALYZE`, in a write transaction.
pub fn statistics(conn: &Connection, sql: &str, lock: &mut LockTime, busy: Duration) -> Result<()> {
    in_write_txn(conn, lock, busy, |c| {
        c.execute_batch(sql)?;
        Ok(())
    })
    .with_context(|| sql.to_string())
}
