//! Getting a database file ready to check, and checking its bytes.
//!
//! A `.zst` snapshot is decompressed into a private scratch file while
//! both digests are computed; a plain database is hashed only when its
//! record has a `raw_sha256` to compare with, since hashing a large live
//! database for nothing is wasted I/O.

use anyhow::{Context, Result};
use sqlkeep_common::compress::{decoder, is_zstd_file};
use sqlkeep_common::digest::{Digest, HashReader, HashWriter, file_digest};
use sqlkeep_common::private_dir::{ScratchFile, private_dir};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// A database ready to open, and the digests computed on the way.
pub struct Prepared {
    /// The file to open (the scratch copy for a snapshot).
    pub path: PathBuf,
    /// Holds the scratch copy until the checks are done.
    pub scratch: Option<ScratchFile>,
    /// Digest of the file as given (compressed, for a snapshot).
    pub stored: Option<Digest>,
    /// Digest of the database itself.
    pub raw: Option<Digest>,
    /// Why the raw digest was not computed, when it was wanted.
    pub raw_skipped: Option<&'static str>,
}

/// Prepares `path`; `want_raw` asks for the database's digest.
pub fn prepare(path: &Path, want_raw: bool) -> Result<Prepared> {
    if is_zstd_file(path)? {
        let dir = private_dir()?;
        let (scratch, file) = ScratchFile::create(&dir, "verify")?;
        let input = std::fs::File::open(path).context("cannot open snapshot")?;
        let mut stored = HashReader::new(input);
        let mut raw = HashWriter::new(BufWriter::with_capacity(1 << 20, file));
        std::io::copy(&mut decoder(&mut stored)?, &mut raw).map_err(|e| {
            // The scratch disk filling up is not the snapshot's fault.
            if sqlkeep_common::exit::is_no_space(&e) {
                return sqlkeep_common::exit::no_space(scratch.path());
            }
            sqlkeep_common::fail(
                sqlkeep_common::Exit::Failed,
                format!("damaged snapshot: zstd says {e}"),
            )
        })?;
        let (out, raw) = raw.finish();
        out.into_inner()
            .map_err(|e| e.into_error())
            .map_err(|e| sqlkeep_common::exit::io_error(scratch.path(), "writing", e))?;
        return Ok(Prepared {
            path: scratch.path().to_path_buf(),
            scratch: Some(scratch),
            stored: Some(stored.finish()),
            raw: Some(raw),
            raw_skipped: None,
        });
    }
    let mut prepared = Prepared {
        path: path.to_path_buf(),
        scratch: None,
        stored: None,
        raw: None,
        raw_skipped: None,
    };
    if want_raw {
        if has_live_wal(path) {
            prepared.raw_skipped =
                Some("the database has a non-empty -wal file, so its bytes are not the snapshot's");
        } else {
            let digest = file_digest(path)?;
            prepared.stored = Some(digest.clone());
            prepared.raw = Some(digest);
        }
    }
    Ok(prepared)
}

/// True when a non-empty `-wal` file sits beside the database.
fn has_live_wal(path: &Path) -> bool {
    std::fs::metadata(sqlkeep_common::sqlite::companion(path, "-wal")).is_ok_and(|m| m.len() > 0)
}
