//! What an input asks to store: a snapshot (from its record, or a file
//! named like one) or a plain file. Everything about where it goes and in
//! which order is the repository's (`sqlkeep_common::repo`).

use anyhow::{Context, Result};
use sqlkeep_common::compress::is_zstd_file;
use sqlkeep_common::crypt::Encryption;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::input::Input;
use sqlkeep_common::key::Key;
use sqlkeep_common::record::Record;
use sqlkeep_common::repo::chain::Link;
use sqlkeep_common::repo::{Compression, PointName, names};
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
        /// What an incremental snapshot's record adds.
        increment: Option<Increment>,
        /// For an age file: to whom (from the record).
        encryption: Option<Encryption>,
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

/// What `sqlite-snap --incremental` says about a snapshot.
#[derive(Debug)]
pub struct Increment {
    /// For a delta, the point it applies to.
    pub base: Option<PointName>,
    /// The committed point the snapshot was compared with.
    pub parent: Option<PointName>,
    /// The chain that rebuilds it.
    pub chain: Vec<Link>,
    /// The pending state to commit once it is stored.
    pub state: Option<PathBuf>,
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
        let encryption = match record.get("encryption") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(Encryption::from_value(v).context("record's encryption")?),
        };
        return Ok(Upload::Snapshot {
            db: names::db_key(db)?,
            path,
            taken_at,
            compression,
            increment: increment(record)?,
            record: record.clone(),
            encryption,
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
            increment: None,
            encryption: None,
        });
    }
    if input.record().is_none()
        && let Some(inner) = name.strip_suffix(names::AGE_EXT)
        && (names::parse_snapshot_file_name(inner).is_some() || inner.ends_with(names::DELTA_EXT))
    {
        return Err(fail(
            Exit::Failed,
            "an encrypted snapshot is stored only with the record sqlite-snap printed for it (its checksums of the data cannot be computed without the key)",
        ));
    }
    if input.record().is_none() && name.ends_with(names::DELTA_EXT) {
        return Err(fail(
            Exit::Failed,
            "a delta is stored only with the record sqlite-snap printed for it (it names the chain it belongs to)",
        ));
    }
    Ok(Upload::Plain {
        path,
        name: Key::segment(&name)?,
        record: input.record().cloned(),
    })
}

/// Reads what an incremental snapshot's record adds; None for a snapshot
/// taken without `--incremental`.
fn increment(record: &Record) -> Result<Option<Increment>> {
    let kind = record.str("kind");
    if kind.is_none() && record.get("chain").is_none() {
        return Ok(None);
    }
    let stem = |field: &str| -> Result<Option<PointName>> {
        match record.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => PointName::parse_stem(s)
                .map(Some)
                .ok_or_else(|| fail(Exit::Failed, format!("record has a bad {field}: {s:?}"))),
            Some(other) => Err(fail(
                Exit::Failed,
                format!("record has a bad {field}: {other}"),
            )),
        }
    };
    let base = stem("base")?;
    match (kind, &base) {
        (Some("full"), None) | (Some("delta"), Some(_)) => {}
        _ => {
            return Err(fail(
                Exit::Failed,
                format!(
                    "record's kind {kind:?} does not go with its base {:?}",
                    record.get("base")
                ),
            ));
        }
    }
    let chain: Vec<Link> = match record.get("chain") {
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| fail(Exit::Failed, format!("record has a bad chain: {e}")))?,
        None => {
            return Err(fail(
                Exit::Failed,
                "record of an incremental snapshot has no chain",
            ));
        }
    };
    Ok(Some(Increment {
        base,
        parent: stem("parent")?,
        chain,
        state: record.str("state").map(PathBuf::from),
    }))
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
