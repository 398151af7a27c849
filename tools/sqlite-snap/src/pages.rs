//! The `pages` method: every page of the database, read inside one read
//! transaction through the `sqlite_dbpage` virtual table and streamed
//! straight into the sink.
//!
//! Why not the backup API: measured here, `sqlite3_backup_step(N)` with
//! N > 0 (the CLI's `.backup`, rusqlite's `run_to_completion`) restarts
//! from the first page every time another connection writes, so it never
//! finishes while the application is busy. A single read transaction sees
//! one committed state for as long as it is open, in WAL mode without
//! blocking the writers, which is exactly a consistent snapshot. And
//! unlike `VACUUM INTO`, nothing uncompressed touches the disk.

use crate::sink::Sink;
use anyhow::{Context, Result, bail};
use rusqlite::Connection;
use std::io::Write;

/// What the copy saw.
#[derive(Debug, Clone, Copy)]
pub struct Copied {
    /// Page size of the snapshot.
    pub page_size: u32,
    /// Pages in the snapshot.
    pub page_count: u32,
}

/// Copies every page of `main` into `sink` inside one read transaction.
///
/// Page 1's file-format bytes are set to rollback-journal mode (1/1), as
/// `VACUUM INTO` writes them: the snapshot is a standalone file, and a WAL
/// marker would make a read-only open of it look for `-wal`/`-shm` files
/// that do not exist.
pub fn copy(
    conn: &Connection,
    sink: &mut Sink,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<Copied> {
    conn.execute_batch("BEGIN DEFERRED")
        .context("starting read transaction")?;
    let result = copy_in_transaction(conn, sink, progress);
    // A read transaction commits nothing; ending it releases the snapshot
    // so the application's checkpoints can proceed.
    let end = conn
        .execute_batch("COMMIT")
        .context("ending read transaction");
    let copied = result?;
    end?;
    Ok(copied)
}

/// The body of [`copy`], run between BEGIN and COMMIT.
fn copy_in_transaction(
    conn: &Connection,
    sink: &mut Sink,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<Copied> {
    // The first read starts the read transaction: page_count and every
    // page after it come from the same committed state.
    let page_count: u32 = conn
        .query_row("PRAGMA main.page_count", [], |r| r.get(0))
        .context("reading page count")?;
    let page_size: u32 = conn
        .query_row("PRAGMA main.page_size", [], |r| r.get(0))
        .context("reading page size")?;
    sink.pledge(u64::from(page_count) * u64::from(page_size))?;
    let mut stmt = conn
        .prepare("SELECT pgno, data FROM sqlite_dbpage('main')")
        .context("opening sqlite_dbpage (SQLite built without SQLITE_ENABLE_DBPAGE_VTAB?)")?;
    let mut rows = stmt.query([]).context("reading pages")?;
    let mut expected: u32 = 1;
    while let Some(row) = rows.next().context("reading pages")? {
        let pgno: u32 = row.get(0)?;
        let data = row
            .get_ref(1)?
            .as_blob()
            .context("page data is not a blob")?;
        if pgno != expected || data.len() != page_size as usize {
            bail!(
                "page {pgno} came back out of order or with {} bytes (expected page {expected}, {page_size} bytes)",
                data.len()
            );
        }
        if pgno == 1 {
            let mut first = data.to_vec();
            if first.len() >= 20 {
                first[18] = 1;
                first[19] = 1;
            }
            sink.write_all(&first)
        } else {
            sink.write_all(data)
        }
        .context("writing snapshot")?;
        if pgno.is_multiple_of(4096) {
            progress(pgno, page_count);
        }
        expected += 1;
    }
    let copied = expected - 1;
    if copied != page_count {
        bail!("read {copied} pages but the database has {page_count}");
    }
    Ok(Copied {
        page_size,
        page_count,
    })
}
