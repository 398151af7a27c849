//! The `vacuum` method: `VACUUM INTO` a temporary file, then stream that
//! into the sink.
//!
//! `VACUUM INTO` builds a compacted copy (free pages dropped, b-trees
//! rebuilt) from one read transaction, so it is consistent and finishes
//! under concurrent writers. It is slower than reading pages and needs
//! free disk for the uncompressed copy, which lives beside the snapshot
//! and is removed whatever happens.

use crate::pages::Copied;
use crate::sink::Sink;
use anyhow::{Context, Result};
use rusqlite::Connection;
use sqlkeep_common::private_dir::ScratchFile;
use std::path::Path;

/// `VACUUM INTO` a scratch file in `dir`, then copies it into `sink`.
pub fn copy(conn: &Connection, dir: &Path, sink: &mut Sink) -> Result<Copied> {
    let (scratch, _) = ScratchFile::create(dir, "vacuum-into")?;
    // The target name is a bound parameter, never SQL text, and absolute
    // (the caller canonicalised `dir`), so SQLite cannot read it as a URI.
    let target = scratch
        .path()
        .to_str()
        .context("scratch path is not UTF-8")?;
    conn.execute("VACUUM INTO ?1", [target])
        .context("VACUUM INTO failed")?;
    let mut file = std::fs::File::open(scratch.path()).context("reading the VACUUM INTO copy")?;
    sink.pledge(
        file.metadata()
            .context("reading the VACUUM INTO copy")?
            .len(),
    )?;
    let bytes = std::io::copy(&mut file, sink).context("writing snapshot")?;
    let header = sqlkeep_common::sqlite::check_file(scratch.path())
        .context("checking the VACUUM INTO copy")?;
    Ok(Copied {
        page_size: header.page_size,
        page_count: (bytes / u64::from(header.page_size)) as u32,
    })
}
