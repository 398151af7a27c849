//! The two ends of a sync: a local directory or a remote, what state each
//! is in, and the copy and delete operations between them.
//!
//! A local side never follows a symbolic link below its root: files are
//! reached through `sqlkeep_common::confine`, so a link where a restore
//! would write (issue 10: a symlinked directory inside the destination was
//! followed on every run) fails that entry. A remote side is reached only
//! through validated keys, so nothing can be read, written or deleted
//! outside its prefix.

use crate::filter::Filter;
use crate::tree::{Entry, MANIFEST, Tree, from_nanos, manifest_key, nanos, parse_manifest, walk};
use anyhow::{Context, Result};
use sqlkeep_common::address::Address;
use sqlkeep_common::atomic::{AtomicFile, write_atomic};
use sqlkeep_common::confine;
use sqlkeep_common::digest::{HashReader, HashWriter};
use sqlkeep_common::exit::{Exit, fail, is_missing};
use sqlkeep_common::key::Key;
use sqlkeep_common::regular::open_regular;
use sqlkeep_common::store::{self, Condition, Fetched, SMALL_OBJECT_MAX, Store, Transfer};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Mode of restored files, as most files in a Rails app's storage are.
const FILE_MODE: u32 = 0o644;

/// A local directory side.
pub struct Dir {
    /// The directory.
    pub root: PathBuf,
    /// Whether links in it are followed (`--copy-links`, sources only).
    pub follow_links: bool,
}

impl Dir {
    /// The path of `key` in this directory: through real directories only,
    /// unless links are to be followed.
    pub fn file(&self, key: &Key) -> Result<PathBuf> {
        if self.follow_links {
            Ok(key.below(&self.root))
        } else {
            confine::resolve(&self.root, key)
        }
    }
}

impl AsRef<Path> for Dir {
    fn as_ref(&self) -> &Path {
        &self.root
    }
}

impl std::ops::Deref for Dir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.root
    }
}

/// One end of a sync.
pub enum Side {
    /// A local directory.
    Dir(Dir),
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
    /// Every file the side holds, filtered or not: what its manifest
    /// records, so a run with other filters loses no one's entries.
    pub full: Tree,
    /// Files left out by the filter.
    pub skipped: u64,
    /// Symbolic links not followed.
    pub links: u64,
    /// Files that could not be read.
    pub problems: Vec<String>,
    /// False when the side does not exist at all.
    pub exists: bool,
    /// How the state was learned.
    pub how: Source,
}

impl Side {
    /// Opens one end (no request is made); `follow_links` for a source
    /// given `--copy-links`.
    pub fn open(text: &str, transfer: Transfer, follow_links: bool) -> Result<Side> {
        match Address::parse(text)? {
            Address::Local(root) => Ok(Side::Dir(Dir { root, follow_links })),
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
                        full: Tree::new(),
                        skipped: 0,
                        links: 0,
                        problems: Vec::new(),
                        exists: false,
                        how: Source::Walk,
                    });
                }
                let w = walk(dir, filter, dir.follow_links)?;
                Ok(State {
                    full: w.tree.clone(),
                    tree: w.tree,
                    skipped: w.skipped,
                    links: w.links,
                    problems: w.problems,
                    exists: true,
                    how: Source::Walk,
                })
            }
            Side::Remote(store) => remote_state(store.as_ref(), filter, full_check, None),
        }
    }

    /// The state of this side as a destination. A directory is walked (its
    /// links are not part of it), and SHA-256s it cannot know from stat
    /// come from its manifest; a remote comes from the cache, else its
    /// manifest, else a listing.
    pub fn dest_state(
        &self,
        filter: &Filter,
        full_check: bool,
        cached: Option<Tree>,
    ) -> Result<State> {
        match self {
            Side::Dir(dir) => {
                let mut state = self.source_state(filter, false)?;
                // Links in a destination are not files of it: not worth a
                // warning each, and never followed.
                state.problems.retain(|p| !p.contains("a symbolic link"));
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
    pub fn local_sha256(&self, rel: &Key) -> Result<Option<String>> {
        match self {
            Side::Dir(dir) => {
                let path = dir.file(rel)?;
                let (file, _) = open_regular(&path)?;
                let mut reader = HashReader::new(file);
                std::io::copy(&mut reader, &mut std::io::sink())
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(Some(reader.finish().sha256))
            }
            Side::Remote(_) => Ok(None),
        }
    }

    /// Removes one file; only ever a regular file below a local root (a
    /// link or directory there is an error), or a key below a remote prefix.
    pub fn delete(&self, rel: &Key) -> Result<()> {
        match self {
            Side::Dir(dir) => {
                let path = confine::resolve(dir, rel)?;
                match std::fs::symlink_metadata(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Ok(meta) if !meta.is_file() => {
                        return Err(fail(
                            Exit::Failed,
                            format!(
                                "{} is {}; not deleted",
                                path.display(),
                                sqlkeep_common::regular::kind_name(&meta)
                            ),
                        ));
                    }
                    _ => {}
                }
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(e).with_context(|| format!("deleting {}", path.display()))
                    }
                    _ => Ok(()),
                }
            }
            Side::Remote(store) => store.delete(rel),
        }
    }

    /// Reads the remote manifest as it is now, with its tag (None when
    /// there is none, or for a directory).
    pub fn current_manifest(&self) -> Result<Option<(Tree, Fetched)>> {
        let Side::Remote(store) = self else {
            return Ok(None);
        };
        let key = manifest_key();
        match store.fetch(&key, SMALL_OBJECT_MAX) {
            Ok(fetched) => {
                let tree = parse_manifest(&fetched.bytes, &store.url(&key))?;
                Ok(Some((tree, fetched)))
            }
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores the manifest, last of all writes: for a remote, only if the
    /// manifest is still as `condition` says (a lost condition is a
    /// `Conflict`, and the caller merges and tries again).
    pub fn write_manifest(&self, text: &str, condition: &Condition) -> Result<()> {
        match self {
            Side::Dir(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                write_atomic(&dir.join(MANIFEST), text.as_bytes(), 0o600)
            }
            Side::Remote(store) => store
                .put_if(&manifest_key(), text.as_bytes(), condition)
                .map(|_| ()),
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
            let key = manifest_key();
            match store.get_bytes(&key) {
                Ok(bytes) => Some(parse_manifest(&bytes, &store.url(&key))?),
                Err(e) if is_missing(&e) => None,
                Err(e) => return Err(e),
            }
        }
        (true, _) => None,
    };
    if tree.is_none() {
        how = Source::Listing;
        let mut listed = Tree::new();
        for object in store.list(None)? {
            if object.key.as_str() == MANIFEST
                || sqlkeep_common::atomic::is_temp_name(object.key.name())
            {
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
    let filtered: Tree = full
        .iter()
        .filter(|(path, _)| filter.allows(path.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(State {
        skipped: (full.len() - filtered.len()) as u64,
        tree: filtered,
        full,
        links: 0,
        problems: Vec::new(),
        exists,
        how,
    })
}

/// Copies one file from `src` to `dst`, checking what it can, and returns
/// the destination's new entry.
pub fn copy(src: &Side, dst: &Side, rel: &Key, entry: &Entry) -> Result<Entry> {
    match (src, dst) {
        (Side::Dir(from), Side::Remote(store)) => {
            let path = from.file(rel)?;
            // A regular file only: a FIFO or device swapped in since the
            // walk is refused, not read forever.
            let (mut file, len) = open_regular(&path)?;
            let before = file.metadata().context("reading metadata")?;
            let digest = store.put(rel, &mut file, len, None)?;
            let after = std::fs::metadata(&path).context("reading metadata")?;
            if after.modified().ok() != before.modified().ok() {
                return Err(fail(
                    Exit::Failed,
                    "changed while it was uploaded; it will be copied next run",
                ));
            }
            Ok(Entry {
                bytes: digest.bytes,
                mtime_ns: before.modified().ok().map(nanos),
                sha256: Some(digest.sha256),
            })
        }
        (_, Side::Dir(to)) => {
            let dest = confine::prepare(to, rel)?;
            if let Ok(meta) = std::fs::symlink_metadata(&dest)
                && meta.is_dir()
            {
                return Err(fail(
                    Exit::Failed,
                    format!("{} is a directory where a file belongs", dest.display()),
                ));
            }
            let mut out = AtomicFile::create(&dest, FILE_MODE)?;
            let digest = {
                let mut hashing = HashWriter::new(BufWriter::new(&mut out));
                match src {
                    Side::Remote(store) => {
                        store.get(rel, &mut hashing)?;
                    }
                    Side::Dir(from) => {
                        let path = from.file(rel)?;
                        let (file, _) = open_regular(&path)?;
                        let mut reader = HashReader::new(file);
                        std::io::copy(&mut reader, &mut hashing).context("copying")?;
                    }
                }
                let (writer, digest) = hashing.finish();
                writer
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .context("writing")?
                    .flush()?;
                digest
            };
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

/// The path of a file of a side (for messages).
pub fn describe(side: &Side, rel: &Key) -> String {
    match side {
        Side::Dir(dir) => rel.below(dir).display().to_string(),
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
