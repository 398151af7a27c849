//! Rebuilding a point of an incremental chain: its full snapshot, then
//! each delta's pages written over it in order.
//!
//! The deltas download while the full snapshot streams into the new file,
//! up to [`AT_ONCE`] at a time, each into a scratch file beside the target
//! (bounded memory, however large the hourly deltas) and checked against
//! the size and SHA-256 its chain link gives before a page of it is used.
//! The rebuilt file is then read once and its SHA-256 compared with the
//! point's `raw_sha256` by the caller: nothing is installed unless the
//! whole state is exactly the one snapshotted.

use crate::restore::{Expected, check, download};
use anyhow::{Context, Result};
use sqlkeep_common::atomic::{AtomicFile, parent_dir};
use sqlkeep_common::compress::decoder;
use sqlkeep_common::crypt::Identities;
use sqlkeep_common::delta;
use sqlkeep_common::digest::{Digest, HashWriter, file_digest, hex, sha256_bytes};
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::key::Key;
use sqlkeep_common::private_dir::ScratchFile;
use sqlkeep_common::repo::chain::Link;
use sqlkeep_common::store::Store;
use std::fs::File;
use std::io::{BufWriter, Read, Seek};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Deltas downloaded at once.
pub const AT_ONCE: usize = 4;

/// A delta on local disk, checked.
struct Fetched {
    _scratch: ScratchFile,
    file: File,
}

/// Rebuilds the state `links` ends at into `file`; returns its digest.
/// The chain's objects are age files when `encrypted_to` is given (every
/// link alike: the chain's check says so).
pub fn rebuild(
    store: &dyn Store,
    links: &[(Key, Link)],
    file: &mut AtomicFile,
    ids: &Identities,
    encrypted_to: Option<&[String]>,
) -> Result<Digest> {
    let (full_key, full) = &links[0];
    let deltas = &links[1..];
    let dir = parent_dir(file.dest());
    let fetched: Vec<Mutex<Option<Result<Fetched>>>> =
        deltas.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..AT_ONCE.min(deltas.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((key, link)) = deltas.get(i) else {
                        break;
                    };
                    let result = fetch_delta(store, key, link, &dir);
                    let failed = result.is_err();
                    *fetched[i].lock().expect("not poisoned") = Some(result);
                    if failed {
                        // Stop the others: the restore fails anyway.
                        next.store(deltas.len(), Ordering::Relaxed);
                    }
                }
            });
        }
        let compressed = full.name().is_some_and(|n| n.compressed);
        // The full snapshot's own raw digest is not checked here: the
        // rebuilt state's is, and hashing twice would cost a pass.
        download(
            store,
            full_key,
            &Expected {
                stored: Some((full.bytes, full.sha256.clone())),
                raw: None,
                compressed,
                encrypted_to: encrypted_to.map(<[String]>::to_vec),
            },
            file,
            ids,
        )
        .with_context(|| format!("restoring {}", store.url(full_key)))?;
        Ok(())
    })?;
    let page_size = page_size_of(file.file()).context("reading the full snapshot's header")?;
    let mut base = sha256_bytes(&full.raw_sha256).ok_or_else(|| {
        fail(
            Exit::Failed,
            "the chain's full snapshot has a malformed raw_sha256",
        )
    })?;
    for (slot, (key, link)) in fetched.into_iter().zip(deltas) {
        let what = store.url(key);
        let got = slot
            .into_inner()
            .expect("not poisoned")
            .unwrap_or_else(|| Err(anyhow::anyhow!("not downloaded")))
            .with_context(|| format!("downloading {what}"))?;
        let applied = match encrypted_to {
            // age checks each chunk before handing it out, so no page of a
            // tampered delta reaches the file.
            Some(to) => {
                let plain = ids.decrypt(&got.file, to, &what)?;
                let mut input = decoder(DamagedChunk {
                    inner: plain,
                    what: &what,
                })?;
                delta::apply(&mut input, file.file(), page_size, &base, &what)?
            }
            None => {
                let mut input = decoder(&got.file)?;
                delta::apply(&mut input, file.file(), page_size, &base, &what)?
            }
        };
        base = applied.raw_sha256;
        if hex(&applied.raw_sha256) != link.raw_sha256 {
            return Err(fail(
                Exit::Failed,
                format!("damaged delta {what}: it completes another state than its manifest says"),
            ));
        }
    }
    file_digest(file.temp_path()).context("reading the rebuilt database")
}

/// Names a damaged age chunk as what it is, not as zstd's read error.
struct DamagedChunk<'a, R> {
    inner: R,
    what: &'a str,
}

impl<R: Read> Read for DamagedChunk<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                std::io::Error::new(
                    e.kind(),
                    format!("{}: damaged or tampered ciphertext ({e})", self.what),
                )
            } else {
                e
            }
        })
    }
}

/// Downloads one delta into a scratch file in `dir`, checked against its
/// link.
fn fetch_delta(
    store: &dyn Store,
    key: &Key,
    link: &Link,
    dir: &std::path::Path,
) -> Result<Fetched> {
    let (scratch, file) = ScratchFile::create(dir, "delta")?;
    let mut out = HashWriter::new(BufWriter::with_capacity(1 << 16, &file));
    store.get(key, &mut out)?;
    let (buffered, digest) = out.finish();
    buffered
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", scratch.path().display()))?;
    check(
        "sha256",
        "bytes",
        Some(&(link.bytes, link.sha256.clone())),
        &digest,
    )?;
    let mut file = file;
    file.rewind()?;
    Ok(Fetched {
        _scratch: scratch,
        file,
    })
}

/// The page size in a database header (bytes 16–17, big-endian; 1 means
/// 65536).
fn page_size_of(file: &File) -> Result<u32> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 2];
    file.read_exact_at(&mut b, 16)?;
    let size = match u16::from_be_bytes(b) {
        1 => 65536,
        n => u32::from(n),
    };
    if !delta::is_page_size(size) {
        return Err(fail(
            Exit::Failed,
            format!("damaged snapshot: its header says page size {size}"),
        ));
    }
    Ok(size)
}
