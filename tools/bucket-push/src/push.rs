//! What an input asks to store: a snapshot (from its record, or a file
//! named like one) or a plain file. Everything about where it goes and in
//! which order is the repository's (`sqlkeep_common::repo`).

use anyhow::{Context, Result};
use sqlkeep_common::compress::is_zstd_file;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::input::Input;
use sqlkeep_common::key::Key;
use sqlkeep_common::record::Record;
use sqlkeep_common::repo::{Compression, names};
use sqlkeep_common::time::Timestamp;
use std::path::PathBuf;

/// What an input asks to store.
#[derive(Debug)]
pub enum Upload {
    /// A database snapshot, stored in the snapshot layout.
    Snapshot {
        /// The local file.
        path: PathBuf,
        /// Database name (the prefix under the remote).
        db: Key,
        /// When the snapshot was taken.
        taken_at: Timestamp,
        /// How the file is stored.
        compression: Compression,
        /// The incoming record, or one built from the file name.
        record: Record,
    },
    /// Any other file, stored under its name.
    Plain {
        /// The local file.
        path: PathBuf,
        /// Its name in the remote.
        name: Key,
        /// The incoming record, if any.
        record: Option<Record>,
    },
}

impl Upload {
    /// The local file.
    pub fn path(&self) -> &PathBuf {
        match self {
            Upload::Snapshot { path, .. } | Upload::Plain { path, .. } => path,
        }
    }
}

/// Decides how an input is stored. Names from records are validated here,
/// so a record cannot steer a write outside its remote (`"db": "../x"`).
pub fn classify(input: &Input) -> Result<Upload> {
    let text = input
        .path()
        .ok_or_else(|| fail(Exit::Failed, "record has no \"path\" to store"))?;
    let path = PathBuf::from(text);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| fail(Exit::Failed, "path has no file name"))?;
    if let Some(record) = input.record()
        && let (Some(db), Some(taken_at)) = (record.str("db"), record.str("taken_at"))
    {
        let taken_at = Timestamp::parse_rfc3339(taken_at).context("record's taken_at")?;
        let compression = match record.str("compression") {
            Some("zstd") => Compression::Zstd,
            Some("none") => Compression::None,
            Some(other) => {
                return Err(fail(
                    Exit::Failed,
                    format!("record has an unknown compression {other:?}"),
                ));
            }
            None => sniff(&path)?,
        };
        return Ok(Upload::Snapshot {
            db: names::db_key(db)?,
            path,
            taken_at,
            compression,
            record: record.clone(),
        });
    }
    if input.record().is_none()
        && let Some((db, point, compressed)) = names::parse_snapshot_file_name(&name)
    {
        let compression = if compressed {
            Compression::Zstd
        } else {
            Compression::None
        };
        let mut record = Record::new("snapshot");
        record
            .set("db", db.as_str())
            .set("path", text)
            .set("taken_at", point.taken_at.rfc3339())
            .set("compression", compression.name());
        return Ok(Upload::Snapshot {
            db: names::db_key(&db)?,
            path,
            taken_at: point.taken_at,
            compression,
            record,
        });
    }
    Ok(Upload::Plain {
        path,
        name: Key::segment(&name)?,
        record: input.record().cloned(),
    })
}

/// The compression of a snapshot file whose record does not say.
fn sniff(path: &std::path::Path) -> Result<Compression> {
    sqlkeep_common::regular::check_regular(path)?;
    Ok(if is_zstd_file(path)? {
        Compression::Zstd
    } else {
        Compression::None
    })
}
