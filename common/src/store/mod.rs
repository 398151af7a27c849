//! Storage backends: a local directory used as a bucket, and (later) S3.
//!
//! Tools speak to one [`Store`] rooted at an address and name objects by
//! keys below it (`app/20261122T030000Z.sqlite3.zst`). Every backend
//! counts the requests it makes, by kind, because object stores bill per
//! request and the records say what a run cost.

mod local;
mod requests;
pub mod retry;
mod s3;
pub mod s3_config;
mod s3_part;

pub use local::LocalStore;
pub use requests::{Kind, Requests};
pub use s3::{S3Store, Transfer, part_size};

use crate::address::Address;
use crate::digest::Digest;
use crate::exit::{Exit, fail};
use crate::time::Timestamp;
use anyhow::Result;
use std::io::{Read, Write};

/// The bucket itself does not exist. Kept apart from a missing object, so
/// a caller for whom a missing object is normal (no `latest.json` yet)
/// does not swallow it. Exits 3.
#[derive(Debug)]
pub struct NoSuchBucket(pub String);

impl std::fmt::Display for NoSuchBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no such bucket ({})", self.0)
    }
}

impl std::error::Error for NoSuchBucket {}

/// True when the error says the bucket does not exist.
pub fn is_no_such_bucket(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<NoSuchBucket>())
}

/// One object found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the store's root.
    pub key: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Last modification time, when the backend reports one.
    pub modified: Option<Timestamp>,
}

/// A place objects are stored: complete or not at all.
pub trait Store: Send + Sync {
    /// The address of `key`, for records and log lines (never with secrets).
    fn url(&self, key: &str) -> String;

    /// Stores exactly `len` bytes from `body` at `key`. When `sha256` is
    /// given, the object is made visible only if the bytes match it; a
    /// mismatch or short read leaves any earlier object at `key` alone.
    fn put(&self, key: &str, body: &mut dyn Read, len: u64, sha256: Option<&str>)
    -> Result<Digest>;

    /// Streams the object at `key` into `sink`, returning its size. A
    /// missing object is a not-found error (exit 3).
    fn get(&self, key: &str, sink: &mut dyn Write) -> Result<u64>;

    /// Lists the objects whose keys start with `prefix`, in key order.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Deletes the object at `key`.
    fn delete(&self, key: &str) -> Result<()>;

    /// The requests made so far.
    fn requests(&self) -> &Requests;

    /// Stores a small object from memory.
    fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<Digest> {
        self.put(key, &mut &bytes[..], bytes.len() as u64, None)
    }

    /// Reads a small object into memory.
    fn get_bytes(&self, key: &str) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.get(key, &mut buf)?;
        Ok(buf)
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
            return Err(crate::exit::fail(
                crate::exit::Exit::Usage,
                "bad --timeout: must be more than 0s",
            ));
        }
        Ok(Transfer {
            retry: retry::Retry {
                attempts: self.tries,
                ..retry::Retry::default()
            },
            request_timeout: std::time::Duration::from_secs(secs as u64),
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
