//! What a database looks like on disk: the before and after of every
//! `maint` record.

use crate::cli::AutoVacuum;
use anyhow::{Context, Result};
use rusqlite::Connection;
use serde_json::{Value, json};
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
            wal_bytes: std::fs::metadata(wal_path(path))
                .map(|m| m.len())
                .unwrap_or(0),
            page_size: pragma("page_size")? as u64,
            page_count: pragma("page_count")? as u64,
            freelist_count: pragma("freelist_count")? as u64,
            auto_vacuum: AutoVacuum::from_number(pragma("auto_vacuum")?),
            wal_mode: journal.eq_ignore_ascii_case("wal"),
        })
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

/// The `-wal` file beside a database.
pub fn wal_path(path: &Path) -> PathBuf {
    sqlkeep_common::sqlite::companion(path, "-wal")
}
