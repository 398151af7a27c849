//! The two ends of a sync: a local directory or a remote, what state each
//! is in, and the copy and delete operations between them.
//!
//! A local side never follows a symbolic link below its root: files are
//! reached through `sqlkeep_common::confine`, so a link where a restore
//! would write (issue 10: a symlinked directory inside the destination was
//! followed on every run) fails that entry. A remote side is reached only
//! through validated keys, so nothing can be read, written or deleted
//! outside its prefix.
//!
//! An encrypted tree (its manifest says so) is known by its manifest, on
//! either kind of side: what is stored is age files, whose sizes and
//! checksums say nothing about the plaintext a source is compared with.

use crate::filter::Filter;
use crate::tree::{Entry, MANIFEST, Manifest, Tree, manifest_key, parse_manifest, walk};
use anyhow::{Context, Result};
use sqlkeep_common::address::Address;
use sqlkeep_common::atomic::write_atomic;
use sqlkeep_common::confine;
use sqlkeep_common::crypt::Encryption;
use sqlkeep_common::digest::HashReader;
use sqlkeep_common::exit::{Exit, fail, is_missing};
use sqlkeep_common::key::Key;
use sqlkeep_common::regular::open_regular;
use sqlkeep_common::store::{self, Condition, Fetched, SMALL_OBJECT_MAX, Store, Transfer};
use std::path::{Path, PathBuf};

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
    /// Whom the side's files are encrypted to, as its manifest says (None:
    /// plaintext, or no manifest).
    pub encryption: Option<Encryption>,
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
    /// manifest (listing only with `full_check` or when there is none). A
    /// directory holding an encrypted tree is known by its manifest.
    pub fn source_state(&self, filter: &Filter, full_check: bool) -> Result<State> {
        match self {
            Side::Dir(dir) => {
                if dir.is_dir()
                    && let Some(manifest) = encrypted_dir_manifest(dir)?
                {
                    return Ok(from_manifest(manifest, filter, Source::Manifest));
                }
                walk_state(dir, filter)
            }
            Side::Remote(store) => remote_state(store.as_ref(), filter, full_check, None),
        }
    }

    /// The state of this side as a destination. A directory is walked (its
    /// links are not part of it), and what stat cannot say comes from its
    /// manifest: the SHA-256s, and for an encrypted tree the plaintext's
    /// size and checksum of each file still as the manifest records it (a
    /// file changed behind its back is left without a checksum, so it is
    /// copied again). A remote comes from the cache, else its manifest,
    /// else a listing.
    pub fn dest_state(
        &self,
        filter: &Filter,
        full_check: bool,
        cached: Option<Manifest>,
    ) -> Result<State> {
        match self {
            Side::Dir(dir) => {
                let mut state = walk_state(dir, filter)?;
                // Links in a destination are not files of it: not worth a
                // warning each, and never followed.
                state.problems.retain(|p| !p.contains("a symbolic link"));
                let known = cached.or_else(|| {
                    std::fs::read(dir.join(MANIFEST))
                        .ok()
                        .and_then(|b| parse_manifest(&b, "manifest").ok())
                });
                if let Some(known) = known {
                    join(&mut state.tree, &known);
                    state.full = state.tree.clone();
                    state.encryption = known.encryption;
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
    pub fn current_manifest(&self) -> Result<Option<(Manifest, Fetched)>> {
        let Side::Remote(store) = self else {
            return Ok(None);
        };
        let key = manifest_key();
        match store.fetch(&key, SMALL_OBJECT_MAX) {
            Ok(fetched) => {
                let manifest = parse_manifest(&fetched.bytes, &store.url(&key))?;
                Ok(Some((manifest, fetched)))
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
/// with `full_check`) a listing. The manifest is read even with
/// `full_check` (one GET), since only it says whether the files are
/// encrypted, and what the age files listed hold.
fn remote_state(
    store: &dyn Store,
    filter: &Filter,
    full_check: bool,
    cached: Option<Manifest>,
) -> Result<State> {
    let (manifest, mut how) = match cached {
        Some(manifest) if !full_check => (Some(manifest), Source::Cache),
        _ => {
            let key = manifest_key();
            let manifest = match store.get_bytes(&key) {
                Ok(bytes) => Some(parse_manifest(&bytes, &store.url(&key))?),
                Err(e) if is_missing(&e) => None,
                Err(e) => return Err(e),
            };
            (manifest, Source::Manifest)
        }
    };
    let manifest = match manifest {
        Some(manifest) if !full_check => manifest,
        known => {
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
                        stored: None,
                    },
                );
            }
            let encryption = known.as_ref().and_then(|m| m.encryption.clone());
            // A plaintext tree keeps the listing's word (files of equal
            // size are unchanged); an encrypted one needs its manifest to
            // say what each age file holds.
            if let Some(known) = known.filter(|m| m.encryption.is_some()) {
                join_listing(&mut listed, &known);
            }
            Manifest {
                tree: listed,
                encryption,
            }
        }
    };
    let mut state = from_manifest(manifest, filter, how);
    state.exists = !state.full.is_empty() || how != Source::Listing;
    Ok(state)
}

/// A directory's walk as a state, whatever its manifest says.
fn walk_state(dir: &Dir, filter: &Filter) -> Result<State> {
    let exists = dir.is_dir();
    let w = if exists {
        walk(dir, filter, dir.follow_links)?
    } else {
        crate::tree::Walk {
            tree: Tree::new(),
            skipped: 0,
            links: 0,
            problems: Vec::new(),
        }
    };
    Ok(State {
        full: w.tree.clone(),
        tree: w.tree,
        skipped: w.skipped,
        links: w.links,
        problems: w.problems,
        exists,
        how: Source::Walk,
        encryption: None,
    })
}

/// A state from a manifest (or a listing), filtered.
fn from_manifest(manifest: Manifest, filter: &Filter, how: Source) -> State {
    let full = manifest.tree;
    let filtered: Tree = full
        .iter()
        .filter(|(path, _)| filter.allows(path.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    State {
        skipped: (full.len() - filtered.len()) as u64,
        tree: filtered,
        full,
        links: 0,
        problems: Vec::new(),
        exists: true,
        how,
        encryption: manifest.encryption,
    }
}

/// The manifest of a directory, when it says the directory holds an
/// encrypted tree; a manifest that says so but is not sound fails the run
/// (it would otherwise be copied as if it were plaintext).
fn encrypted_dir_manifest(dir: &Dir) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(None);
    };
    let says_encrypted = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .is_some_and(|v| v.get("encryption").is_some_and(|e| !e.is_null()));
    if !says_encrypted {
        return Ok(None);
    }
    parse_manifest(&bytes, &path.display().to_string()).map(Some)
}

/// Completes walked entries from what the manifest knows of them: for a
/// plaintext tree the SHA-256 of a file unchanged since (size and
/// modification time), for an encrypted one the whole entry of an age
/// file unchanged since.
fn join(walked: &mut Tree, known: &Manifest) {
    for (path, entry) in walked.iter_mut() {
        let Some(k) = known.tree.get(path) else {
            continue;
        };
        if k.mtime_ns != entry.mtime_ns {
            continue;
        }
        match (&known.encryption, &k.stored) {
            (None, _) if k.bytes == entry.bytes => entry.sha256 = k.sha256.clone(),
            (Some(_), Some(stored)) if stored.bytes == entry.bytes => *entry = k.clone(),
            _ => {}
        }
    }
}

/// Completes listed age files from an encrypted manifest: an object of the
/// size the manifest records is taken for the entry it records.
fn join_listing(listed: &mut Tree, known: &Manifest) {
    for (path, entry) in listed.iter_mut() {
        if let Some(k) = known.tree.get(path)
            && k.stored.as_ref().is_some_and(|s| s.bytes == entry.bytes)
        {
            *entry = k.clone();
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
