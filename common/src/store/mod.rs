//! Storage backends: a local directory used as a bucket, and S3.
//!
//! Tools speak to one [`Store`] rooted at an address and name objects by
//! validated [`Key`]s below it (`app/20261122T030000Z-1a2b3c4d.sqlite3.zst`),
//! so nothing a manifest or listing says can reach outside the root. Every
//! backend counts the requests it makes, by kind, because object stores
//! bill per request and the records say what a run cost.
//!
//! The layout of database backups inside a store is not known here: that
//! is the `repo` module's alone.

mod dry_run;
pub mod http;
mod local;
pub mod rclone_ini;
mod requests;
pub mod retry;
mod s3;
pub mod s3_config;
mod s3_request;

pub use crate::exit::{NoSuchBucket, is_no_such_bucket};
pub use dry_run::DryRun;
pub use local::LocalStore;
pub use requests::{Kind, Requests};
pub use s3::{S3Store, Transfer, part_size};

use crate::address::Address;
use crate::digest::Digest;
use crate::exit::{Exit, fail};
use crate::key::Key;
use crate::time::Timestamp;
use anyhow::Result;
use std::io::{Read, Write};

/// One object found by a listing, its key already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the store's root.
    pub key: Key,
    /// Size in bytes.
    pub bytes: u64,
    /// Last modification time, when the backend reports one.
    pub modified: Option<Timestamp>,
}

/// When a small write may happen: the compare half of a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Always.
    Any,
    /// Only if no object is at the key (`If-None-Match: *`).
    Absent,
    /// Only if the object is still the one read with this tag (`If-Match`).
    Matches(String),
}

impl Condition {
    /// The condition that the object is still as `fetched` found it.
    pub fn unchanged_since(fetched: Option<&Fetched>) -> Condition {
        match fetched.and_then(|f| f.tag.clone()) {
            Some(tag) => Condition::Matches(tag),
            None if fetched.is_none() => Condition::Absent,
            None => Condition::Any,
        }
    }
}

/// A small object read whole, with the tag a conditional write compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The object's bytes.
    pub bytes: Vec<u8>,
    /// Its entity tag (S3's ETag; a content hash for a directory).
    pub tag: Option<String>,
}

/// The most a small object may hold: manifests and state files, which a
/// hostile store could otherwise make us read without end.
pub const SMALL_OBJECT_MAX: u64 = 256 << 20;

/// A place objects are stored: complete or not at all.
pub trait Store: Send + Sync {
    /// The address of `key`, for records and log lines (never with secrets).
    fn url(&self, key: &Key) -> String;

    /// The address of the store's root.
    fn root_url(&self) -> String;

    /// Stores exactly `len` bytes from `body` at `key`. When `sha256` is
    /// given, the object is made visible only if the bytes match it; a
    /// mismatch or short read leaves any earlier object at `key` alone.
    fn put(&self, key: &Key, body: &mut dyn Read, len: u64, sha256: Option<&str>)
    -> Result<Digest>;

    /// Stores a small object only if `condition` holds; a lost condition is
    /// a [`crate::exit::Conflict`] error. Where the storage cannot check a
    /// condition, the write happens unconditionally (the caller read the
    /// object just before, so the window is that of one request). Returns
    /// the new object's tag when the storage says it.
    fn put_if(&self, key: &Key, bytes: &[u8], condition: &Condition) -> Result<Option<String>>;

    /// Streams the object at `key` into `sink`, returning its size. A
    /// missing object is a not-found error (exit 3).
    fn get(&self, key: &Key, sink: &mut dyn Write) -> Result<u64>;

    /// Reads a small object (at most `max_bytes`) with its tag.
    fn fetch(&self, key: &Key, max_bytes: u64) -> Result<Fetched>;

    /// Lists every object below `under` (the whole store when None), in
    /// key order. A listed key that is not a safe [`Key`] fails the listing.
    fn list(&self, under: Option<&Key>) -> Result<Vec<ObjectInfo>>;

    /// Deletes the object at `key`.
    fn delete(&self, key: &Key) -> Result<()>;

    /// The requests made so far.
    fn requests(&self) -> &Requests;

    /// Stores a small object from memory, unconditionally.
    fn put_bytes(&self, key: &Key, bytes: &[u8]) -> Result<Digest> {
        self.put(key, &mut &bytes[..], bytes.len() as u64, None)
    }

    /// Reads a small object into memory.
    fn get_bytes(&self, key: &Key) -> Result<Vec<u8>> {
        Ok(self.fetch(key, SMALL_OBJECT_MAX)?.bytes)
    }
}

/// The flags every tool that talks to a remote shares.
#[derive(clap::Args, Debug, Clone)]
pub struct RemoteArgs {
    /// Tries per request to object storage before giving up with exit 4
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub tries: u32,

    /// Limit on one request to object storage (a part, a manifest, a
    /// listing page), e.g. 5m; downloads instead fail when no data arrives
    /// for 30 s
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub timeout: String,
}

impl RemoteArgs {
    /// The transfer settings these flags ask for (usage error on a bad
    /// duration).
    pub fn transfer(&self) -> Result<Transfer> {
        let secs = crate::time::duration_option("--timeout", &self.timeout)?;
        if secs == 0 {
            return Err(fail(Exit::Usage, "bad --timeout: must be more than 0s"));
        }
        Ok(Transfer {
            retry: retry::Retry {
                attempts: self.tries,
                ..retry::Retry::default()
            },
            request_timeout: std::time::Duration::from_secs(secs as u64),
            ..Transfer::default()
        })
    }
}

/// Checks a body read for upload against its expected size and SHA-256,
/// before anything becomes visible.
pub(crate) fn check_body(digest: &Digest, len: u64, sha256: Option<&str>) -> Result<()> {
    if digest.bytes != len {
        return Err(fail(
            Exit::Failed,
            format!(
                "source changed while it was stored: expected {len} bytes, read {}",
                digest.bytes
            ),
        ));
    }
    if let Some(expected) = sha256
        && digest.sha256 != expected
    {
        return Err(fail(
            Exit::Failed,
            format!(
                "checksum mismatch: the file's SHA-256 is {}, its record says {expected}",
                digest.sha256
            ),
        ));
    }
    Ok(())
}

/// Opens the store an address names, rooted at that address, with
/// default transfer settings.
pub fn open(address: &Address) -> Result<Box<dyn Store>> {
    open_with(address, Transfer::default())
}

/// Opens the store an address names, rooted at that address. Makes no
/// request: configuration problems surface here (exit 2), the storage's
/// own answers on first use.
pub fn open_with(address: &Address, transfer: Transfer) -> Result<Box<dyn Store>> {
    match address {
        Address::Local(path) => Ok(Box::new(LocalStore::new(path))),
        Address::S3 { .. } | Address::Named { .. } => {
            let config = s3_config::resolve(address, &s3_config::process_env)?;
            Ok(Box::new(S3Store::open(&config, transfer)?))
        }
    }
}
