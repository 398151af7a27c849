//! The two ends of a sync: a local directory or a remote, what state each
//! is in, and the copy and delete operations between them.

use crate::filter::Filter;
use crate::tree::{Entry, MANIFEST, Tree, from_nanos, nanos, parse_manifest, walk};
use anyhow::{Context, Result};
use sqlkeep_common::address::Address;
use sqlkeep_common::atomic::{AtomicFile, is_temp_name, write_atomic};
use sqlkeep_common::digest::{HashReader, HashWriter, file_digest};
use sqlkeep_common::exit::{Exit, exit_of, fail};
use sqlkeep_common::store::{self, Store, Transfer, is_no_such_bucket};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Mode of restored files, as most files in a Rails app's storage are.
const FILE_MODE: u32 = 0o644;

/// One end of a sync.
pub enum Side {
    /// A local directory.
    Dir(PathBuf),
    /// A remote (S3 or named), rooted at its prefix.
    Remote(Box<dyn Store>),
}

/// How a side's state was learned, for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Walking a directory.
    Walk,
    /// The local cache of the manifest: no request.
    Cache,
    /// The manifest stored in the remote: one GET.
    Manifest,
    /// Listing the remote: class C requests.
    Listing,
}

impl Source {
    /// The name used in records.
    pub fn name(self) -> &'static str {
        match self {
            Source::Walk => "walk",
            Source::Cache => "cache",
            Source::Manifest => "manifest",
            Source::Listing => "listing",
        }
    }
}

/// What a side holds.
pub struct State {
    /// Files that pass the filter.
    pub tree: Tree,
    /// Files left out by the filter.
    pub skipped: u64,
    /// Files that could not be read.
    pub problems: Vec<String>,
    /// False when the side does not exist at all.
    pub exists: bool,
    /// How the state was learned.
    pub how: Source,
}

impl Side {
    /// Opens one end (no request is made).
    pub fn open(text: &str, transfer: Transfer) -> Result<Side> {
        match Address::parse(text)? {
            Address::Local(path) => Ok(Side::Dir(path)),
            remote => Ok(Side::Remote(store::open_with(&remote, transfer)?)),
        }
    }

    /// The store, for request counts.
    pub fn store(&self) -> Option<&dyn Store> {
        match self {
            Side::Dir(_) => None,
            Side::Remote(store) => Some(store.as_ref()),
        }
    }

    /// The state of this side as a source: a walk, or the remote's
    /// manifest (listing only with `full_check` or when there is none).
    pub fn source_state(&self, filter: &Filter, full_check: bool) -> Result<State> {
        match self {
            Side::Dir(dir) => {
                if !dir.is_dir() {
                    return Ok(State {
                        tree: Tree::new(),
                        skipped: 0,
                        problems: Vec::new(),
                        exists: false,
                        how: Source::Walk,
                    });
                }
                let w = walk(dir, filter)?;
                Ok(State {
                    tree: w.tree,
                    skipped: w.skipped,
                    problems: w.problems,
                    exists: true,
                    how: Source::Walk,
                })
            }
            Side::Remote(store) => remote_state(store.as_ref(), filter, full_check, None),
        }
    }

    /// The state of this side as a destination. A directory is walked, and
    /// SHA-256s it cannot know from stat come from its manifest; a remote
    /// comes from the cache, else its manifest, else a listing.
    pub fn dest_state(
        &self,
        filter: &Filter,
        full_check: bool,
        cached: Option<Tree>,
    ) -> Result<State> {
        match self {
            Side::Dir(dir) => {
                let mut state = self.source_state(filter, false)?;
                let known = cached.or_else(|| {
                    std::fs::read(dir.join(MANIFEST))
                        .ok()
                        .and_then(|b| parse_manifest(&b, "manifest").ok())
                });
                if let Some(known) = known {
                    for (path, entry) in state.tree.iter_mut() {
                        if let Some(k) = known.get(path)
                            && k.bytes == entry.bytes
                            && k.mtime_ns == entry.mtime_ns
                        {
                            entry.sha256 = k.sha256.clone();
                        }
                    }
                }
                Ok(state)
            }
            Side::Remote(store) => remote_state(store.as_ref(), filter, full_check, cached),
        }
    }

    /// The SHA-256 of a local file of this side (None for a remote).
    pub fn local_sha256(&self, rel: &str) -> Result<Option<String>> {
        match self {
            Side::Dir(dir) => Ok(Some(file_digest(&dir.join(rel))?.sha256)),
            Side::Remote(_) => Ok(None),
        }
    }

    /// Removes one file.
    pub fn delete(&self, rel: &str) -> Result<()> {
        match self {
            Side::Dir(dir) => match std::fs::remove_file(dir.join(rel)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).context("deleting"),
                _ => Ok(()),
            },
            Side::Remote(store) => store.delete(rel),
        }
    }

    /// Stores the manifest, last of all writes.
    pub fn write_manifest(&self, text: &str) -> Result<()> {
        match self {
            Side::Dir(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                write_atomic(&dir.join(MANIFEST), text.as_bytes(), 0o600)
            }
            Side::Remote(store) => store.put_bytes(MANIFEST, text.as_bytes()).map(|_| ()),
        }
    }
}

/// A remote's state: the cache when given, else its manifest, else (or
/// with `full_check`) a listing.
fn remote_state(
    store: &dyn Store,
    filter: &Filter,
    full_check: bool,
    cached: Option<Tree>,
) -> Result<State> {
    let mut how = Source::Cache;
    let mut tree = match (full_check, cached) {
        (false, Some(tree)) => Some(tree),
        (false, None) => {
            how = Source::Manifest;
            match store.get_bytes(MANIFEST) {
                Ok(bytes) => Some(parse_manifest(&bytes, &store.url(MANIFEST))?),
                Err(e) if exit_of(&e) == Exit::NotFound && !is_no_such_bucket(&e) => None,
                Err(e) => return Err(e),
            }
        }
        (true, _) => None,
    };
    if tree.is_none() {
        how = Source::Listing;
        let mut listed = Tree::new();
        for object in store.list("")? {
            let name = object.key.rsplit('/').next().unwrap_or_default();
            if object.key == MANIFEST || is_temp_name(name) {
                continue;
            }
            listed.insert(
                object.key,
                Entry {
                    bytes: object.bytes,
                    mtime_ns: None,
                    sha256: None,
                },
            );
        }
        tree = Some(listed);
    }
    let full = tree.unwrap_or_default();
    let exists = !full.is_empty() || how != Source::Listing;
    let before = full.len() as u64;
    let tree: Tree = full
        .into_iter()
        .filter(|(path, _)| filter.allows(path))
        .collect();
    Ok(State {
        skipped: before - tree.len() as u64,
        tree,
        problems: Vec::new(),
        exists,
        how,
    })
}

/// Copies one file from `src` to `dst`, checking what it can, and returns
/// the destination's new entry.
pub fn copy(src: &Side, dst: &Side, rel: &str, entry: &Entry) -> Result<Entry> {
    match (src, dst) {
        (Side::Dir(from), Side::Remote(store)) => {
            let path = from.join(rel);
            let mut file = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let meta = file.metadata().context("reading metadata")?;
            let digest = store.put(rel, &mut file, meta.len(), None)?;
            let after = std::fs::metadata(&path).context("reading metadata")?;
            if after.modified().ok() != meta.modified().ok() {
                return Err(fail(
                    Exit::Failed,
                    "changed while it was uploaded; it will be copied next run",
                ));
            }
            Ok(Entry {
                bytes: digest.bytes,
                mtime_ns: meta.modified().ok().map(nanos),
                sha256: Some(digest.sha256),
            })
        }
        (_, Side::Dir(to)) => {
            let dest = to.join(rel);
            let dir = sqlkeep_common::atomic::parent_dir(&dest);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut out = AtomicFile::create(&dest, FILE_MODE)?;
            let mut hashing = HashWriter::new(BufWriter::new(out.file()));
            match src {
                Side::Remote(store) => {
                    store.get(rel, &mut hashing)?;
                }
                Side::Dir(from) => {
                    let mut reader = HashReader::new(
                        std::fs::File::open(from.join(rel))
                            .with_context(|| format!("opening {}", from.join(rel).display()))?,
                    );
                    std::io::copy(&mut reader, &mut hashing).context("copying")?;
                }
            }
            let (writer, digest) = hashing.finish();
            writer
                .into_inner()
                .map_err(|e| e.into_error())
                .context("writing")?
                .flush()?;
            if let Some(expected) = &entry.sha256
                && *expected != digest.sha256
            {
                return Err(fail(
                    Exit::Failed,
                    format!(
                        "checksum mismatch: got {}, the manifest says {expected}",
                        digest.sha256
                    ),
                ));
            }
            if let Some(ns) = entry.mtime_ns {
                out.file()
                    .set_modified(from_nanos(ns))
                    .context("setting modification time")?;
            }
            out.commit()?;
            Ok(Entry {
                bytes: digest.bytes,
                mtime_ns: entry.mtime_ns.or_else(|| {
                    std::fs::metadata(&dest)
                        .ok()
                        .and_then(|m| m.modified().ok())
                        .map(nanos)
                }),
                sha256: Some(digest.sha256),
            })
        }
        (Side::Remote(_), Side::Remote(_)) => {
            Err(fail(Exit::Usage, "one side must be a local directory"))
        }
    }
}

/// The path of a file of a local side (for messages).
pub fn describe(side: &Side, rel: &str) -> String {
    match side {
        Side::Dir(dir) => dir.join(rel).display().to_string(),
        Side::Remote(store) => store.url(rel),
    }
}

/// True when a local directory side exists but holds nothing at all: the
/// signature of an unmounted volume.
pub fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}
