//! Storing one file: the object first, then its manifest, then (for a
//! snapshot) `latest.json`.
//!
//! The order is the safety property of the remote layout: at every moment,
//! whatever a manifest or `latest.json` names is complete, because it was
//! stored before them. The object's SHA-256 is checked against the
//! incoming record while it is copied, so a snapshot damaged between
//! `sqlite-snap` and here is refused rather than stored.

use anyhow::{Context, Result};
use sqlkeep_common::compress::is_zstd_file;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::input::Input;
use sqlkeep_common::layout;
use sqlkeep_common::record::Record;
use sqlkeep_common::store::Store;
use sqlkeep_common::time::Timestamp;
use std::path::PathBuf;

/// Fields that describe the local file, not the stored object: they stay
/// out of manifests.
const LOCAL_ONLY: [&str; 3] = ["path", "temporary", "requests"];

/// What an input asks to store.
#[derive(Debug)]
pub enum Upload {
    /// A database snapshot, stored in the snapshot layout.
    Snapshot {
        /// The local file.
        path: PathBuf,
        /// Database name (the prefix under the remote).
        db: String,
        /// When the snapshot was taken (names the object).
        taken_at: Timestamp,
        /// Whether the file is zstd-compressed.
        compressed: bool,
        /// The incoming record, or one built from the file name.
        record: Record,
    },
    /// Any other file, stored under its name.
    Plain {
        /// The local file.
        path: PathBuf,
        /// Its name in the remote.
        name: String,
        /// The incoming record, if any.
        record: Option<Record>,
    },
}

/// Decides how an input is stored.
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
        let compressed = match record.str("compression") {
            Some("zstd") => true,
            Some("none") => false,
            _ => is_zstd_file(&path)?,
        };
        return Ok(Upload::Snapshot {
            db: layout::check_segment(db)?.to_string(),
            path,
            taken_at,
            compressed,
            record: record.clone(),
        });
    }
    if input.record().is_none()
        && let Some((db, taken_at, compressed)) = layout::parse_snapshot_file_name(&name)
    {
        let mut record = Record::new("snapshot");
        record
            .set("db", db.as_str())
            .set("path", text)
            .set("taken_at", taken_at.rfc3339())
            .set("compression", if compressed { "zstd" } else { "none" });
        return Ok(Upload::Snapshot {
            db: layout::check_segment(&db)?.to_string(),
            path,
            taken_at,
            compressed,
            record,
        });
    }
    Ok(Upload::Plain {
        path,
        name: layout::check_segment(&name)?.to_string(),
        record: input.record().cloned(),
    })
}

/// Where an upload goes: the object's key and its manifest's key.
pub fn keys(upload: &Upload) -> (String, String) {
    match upload {
        Upload::Snapshot {
            db,
            taken_at,
            compressed,
            ..
        } => (
            format!("{db}/{}", layout::object_name(*taken_at, *compressed)),
            format!("{db}/{}", layout::manifest_name(*taken_at)),
        ),
        Upload::Plain { name, .. } => (name.clone(), format!("{name}.json")),
    }
}

/// The outcome of storing one file.
#[derive(Debug)]
pub struct Stored {
    /// The `object` record (the manifest's content plus local fields).
    pub record: Record,
    /// Bytes stored.
    pub bytes: u64,
    /// Address of the stored object.
    pub url: String,
}

/// Stores a file and its manifest; for snapshots `latest.json` too unless
/// `update_latest` is false (a newer snapshot of the same database was
/// already stored in this run).
pub fn store(store: &dyn Store, upload: &Upload, update_latest: bool) -> Result<Stored> {
    let (key, manifest_key) = keys(upload);
    let (path, incoming) = match upload {
        Upload::Snapshot { path, record, .. } => (path, Some(record)),
        Upload::Plain { path, record, .. } => (path, record.as_ref()),
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(
                Exit::NotFound,
                format!("{}: no such file", path.display()),
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let len = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if let Some(expected) = incoming.and_then(|r| r.u64("bytes"))
        && expected != len
    {
        return Err(fail(
            Exit::Failed,
            format!(
                "{} is {len} bytes but its record says {expected}: the file changed after it was taken",
                path.display()
            ),
        ));
    }
    let expected_sha = incoming.and_then(|r| r.str("sha256"));
    let digest = store
        .put(&key, &mut file, len, expected_sha)
        .with_context(|| format!("storing {}", path.display()))?;
    let url = store.url(&key);

    let mut manifest = Record::new("object");
    manifest
        .set("url", url.as_str())
        .set("bytes", digest.bytes)
        .set("sha256", digest.sha256.as_str())
        .set("stored_at", Timestamp::now().rfc3339());
    if let Upload::Plain { name, .. } = upload {
        manifest.set("name", name.as_str());
    }
    if let Some(incoming) = incoming {
        manifest.carry(incoming);
    }
    for field in LOCAL_ONLY {
        manifest.remove(field);
    }
    let text = manifest.to_line() + "\n";
    store
        .put_bytes(&manifest_key, text.as_bytes())
        .with_context(|| format!("storing manifest {}", store.url(&manifest_key)))?;
    if let (Upload::Snapshot { db, .. }, true) = (upload, update_latest) {
        let latest = format!("{db}/{}", layout::LATEST);
        store
            .put_bytes(&latest, text.as_bytes())
            .with_context(|| format!("storing {}", store.url(&latest)))?;
    }

    let mut record = manifest;
    if let Some(incoming) = incoming {
        record.carry(incoming);
    } else {
        record.set("path", path.display().to_string());
    }
    Ok(Stored {
        record,
        bytes: digest.bytes,
        url,
    })
}
