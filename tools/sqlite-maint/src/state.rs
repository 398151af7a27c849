//! What a database looks like on disk: the before and after of every
//! `maint` record.

use crate::cli::AutoVacuum;
use anyhow::{Context, Result};
use rusqlite::Connection;
use serde_json::{Value, json};
use sqlkeep_common::sqlite::Header;
use std::path::{Path, PathBuf};

/// Sizes and settings of one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// Size of the database file.
    pub file_bytes: u64,
    /// Size of its `-wal` file (0 when there is none).
    pub wal_bytes: u64,
    /// Page size.
    pub page_size: u64,
    /// Pages in the database.
    pub page_count: u64,
    /// Free pages inside the file.
    pub freelist_count: u64,
    /// The auto_vacuum mode.
    pub auto_vacuum: AutoVacuum,
    /// True in WAL journal mode.
    pub wal_mode: bool,
}

impl State {
    /// Reads the state through `conn` and the file system.
    pub fn read(conn: &Connection, path: &Path) -> Result<State> {
        let pragma = |name: &str| -> Result<i64> {
            conn.query_row(&format!("PRAGMA main.{name}"), [], |r| r.get(0))
                .with_context(|| format!("reading {name}"))
        };
        let journal: String = conn
            .query_row("PRAGMA main.journal_mode", [], |r| r.get(0))
            .context("reading journal_mode")?;
        Ok(State {
            file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            wal_bytes: wal_bytes(path),
            page_size: pragma("page_size")? as u64,
            page_count: pragma("page_count")? as u64,
            freelist_count: pragma("freelist_count")? as u64,
            auto_vacuum: AutoVacuum::from_number(pragma("auto_vacuum")?),
            wal_mode: journal.eq_ignore_ascii_case("wal"),
        })
    }

    /// The state as the header alone states it, for a WAL database whose
    /// WAL is missing or empty: the file then holds every committed page.
    /// Reading 100 bytes leaves no trace, where SQLite, even read-only,
    /// would create `-wal` and `-shm` files it then cannot remove.
    pub fn from_header(path: &Path, header: &Header) -> State {
        let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let page_size = u64::from(header.page_size);
        State {
            file_bytes,
            wal_bytes: wal_bytes(path),
            page_size,
            page_count: header.page_count.map_or(file_bytes / page_size, u64::from),
            freelist_count: u64::from(header.freelist_count),
            auto_vacuum: AutoVacuum::from_number(i64::from(header.auto_vacuum)),
            wal_mode: header.is_wal(),
        }
    }

    /// Bytes of the free pages inside the file.
    pub fn free_bytes(&self) -> u64 {
        self.freelist_count * self.page_size
    }

    /// What a one-time conversion to auto_vacuum = incremental would give
    /// back now: with auto_vacuum = none, free pages stay in the file until
    /// a VACUUM, and incremental vacuum cannot touch them.
    pub fn conversion_would_reclaim(&self) -> u64 {
        if self.auto_vacuum == AutoVacuum::None {
            self.free_bytes()
        } else {
            0
        }
    }

    /// Frames in the WAL file, from its size (32-byte header, then frames
    /// of a 24-byte header plus one page).
    pub fn wal_frames(&self) -> u64 {
        self.wal_bytes.saturating_sub(32) / (self.page_size + 24)
    }

    /// The state as a record field.
    pub fn to_json(self) -> Value {
        json!({
            "file_bytes": self.file_bytes,
            "wal_bytes": self.wal_bytes,
            "page_count": self.page_count,
            "freelist_count": self.freelist_count,
            "auto_vacuum": self.auto_vacuum.name(),
        })
    }
}

/// The size of a database's `-wal` file, 0 when there is none.
pub fn wal_bytes(path: &Path) -> u64 {
    std::fs::metadata(wal_path(path))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// The `-wal` file beside a database.
pub fn wal_path(path: &Path) -> PathBuf {
    sqlkeep_common::sqlite::companion(path, "-wal")
}
