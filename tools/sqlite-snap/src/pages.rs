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

/// Where the pages of one committed state go.
pub trait Pages {
    /// Called once before the first page, inside the transaction.
    fn start(&mut self, page_size: u32, page_count: u32) -> Result<()>;
    /// Called for every page in order (page 1's header already set to
    /// rollback-journal mode).
    fn page(&mut self, pgno: u32, data: &[u8]) -> Result<()>;
}

/// A whole snapshot: every page into the sink.
pub struct Whole<'a, 'b> {
    /// The snapshot being written.
    pub sink: &'a mut Sink,
    /// Also collects each page's digest, for incremental state.
    pub digests: Option<&'b mut Vec<u64>>,
}

impl Pages for Whole<'_, '_> {
    fn start(&mut self, page_size: u32, page_count: u32) -> Result<()> {
        if let Some(d) = self.digests.as_deref_mut() {
            d.clear();
            d.reserve(page_count as usize);
        }
        self.sink
            .pledge(u64::from(page_count) * u64::from(page_size))
    }

    fn page(&mut self, _pgno: u32, data: &[u8]) -> Result<()> {
        if let Some(d) = self.digests.as_deref_mut() {
            d.push(page_digest(data));
        }
        self.sink.write_all(data).context("writing snapshot")
    }
}

/// The digest incremental state keeps of a page.
pub fn page_digest(data: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(data)
}

/// Copies every page of `main` into `sink` inside one read transaction.
pub fn copy(
    conn: &Connection,
    sink: &mut Sink,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<Copied> {
    read(
        conn,
        &mut Whole {
            sink,
            digests: None,
        },
        progress,
    )
}

/// Reads every page of `main` into `to` inside one read transaction.
///
/// Page 1's file-format bytes are set to rollback-journal mode (1/1), as
/// `VACUUM INTO` writes them: the snapshot is a standalone file, and a WAL
/// marker would make a read-only open of it look for `-wal`/`-shm` files
/// that do not exist.
pub fn read(
    conn: &Connection,
    to: &mut dyn Pages,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<Copied> {
    conn.execute_batch("BEGIN DEFERRED")
        .context("starting read transaction")?;
    let result = read_in_transaction(conn, to, progress);
    // A read transaction commits nothing; ending it releases the snapshot
    // so the application's checkpoints can proceed.
    let end = conn
        .execute_batch("COMMIT")
        .context("ending read transaction");
    let copied = result?;
    end?;
    Ok(copied)
}

/// The body of [`read`], run between BEGIN and COMMIT.
fn read_in_transaction(
    conn: &Connection,
    to: &mut dyn Pages,
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
    to.start(page_size, page_count)?;
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
            to.page(pgno, &first)?;
        } else {
            to.page(pgno, data)?;
        }
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
