//! A local directory used as a bucket: a mounted disk, a NAS, `./backups`.
//!
//! Keys map to paths below the root through [`crate::confine`], so no
//! symbolic link inside the directory can redirect a write, read or
//! delete. Every object is written through [`AtomicFile`], so a reader of
//! the directory sees a complete object or none, exactly as with an object
//! store. Conditional writes hold a lock on the object's directory while
//! they compare and rename, so they are true compare-and-swaps here.

use super::{Condition, Fetched, Kind, ObjectInfo, Requests, Store, check_body};
use crate::atomic::{AtomicFile, is_temp_name, sync_dir};
use crate::confine;
use crate::digest::{Digest, HashReader, sha256_hex};
use crate::exit::{Conflict, Exit, fail, io_error};
use crate::key::Key;
use crate::lock::DirLock;
use crate::time::Timestamp;
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Objects are private to the backup's owner.
const OBJECT_MODE: u32 = 0o600;

/// How long a conditional write waits for another run's.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// A directory used as a bucket.
pub struct LocalStore {
    root: PathBuf,
    requests: Requests,
}

impl LocalStore {
    /// A store rooted at `root` (created on the first write).
    pub fn new(root: &Path) -> LocalStore {
        LocalStore {
            root: root.to_path_buf(),
            requests: Requests::default(),
        }
    }

    /// Creates the root if it is missing (fsyncing each new directory
    /// into its parent), then the directories of `key` below it.
    fn prepare(&self, key: &Key) -> Result<PathBuf> {
        if !self.root.is_dir() {
            let mut missing = Vec::new();
            let mut cur = self.root.as_path();
            while !cur.exists() {
                missing.push(cur.to_path_buf());
                match cur.parent() {
                    Some(p) if !p.as_os_str().is_empty() => cur = p,
                    _ => break,
                }
            }
            std::fs::create_dir_all(&self.root)
                .map_err(|e| io_error(&self.root, "cannot create directory", e))?;
            for created in missing.iter().rev() {
                sync_dir(&crate::atomic::parent_dir(created))?;
            }
        }
        confine::prepare(&self.root, key)
    }

    /// Reads a file whole, refusing anything but a regular file.
    fn read_small(&self, path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
        let mut file = open_object(path)?;
        let mut bytes = Vec::new();
        (&mut file)
            .take(max_bytes + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", path.display()))?;
        if bytes.len() as u64 > max_bytes {
            return Err(fail(
                Exit::Failed,
                format!("{} is larger than {max_bytes} bytes", path.display()),
            ));
        }
        Ok(bytes)
    }
}

impl Store for LocalStore {
    fn url(&self, key: &Key) -> String {
        let path = key.below(&self.root);
        std::path::absolute(&path)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn root_url(&self) -> String {
        std::path::absolute(&self.root)
            .unwrap_or_else(|_| self.root.clone())
            .display()
            .to_string()
    }

    fn put(
        &self,
        key: &Key,
        body: &mut dyn Read,
        len: u64,
        sha256: Option<&str>,
    ) -> Result<Digest> {
        let dest = self.prepare(key)?;
        let mut file = AtomicFile::create(&dest, OBJECT_MODE)?;
        // One byte more than promised is enough to tell a growing source.
        let mut reader = HashReader::new(body.take(len + 1));
        std::io::copy(&mut reader, &mut file)
            .with_context(|| format!("writing {}", dest.display()))?;
        let digest = reader.finish();
        check_body(&digest, len, sha256)?;
        self.requests.count(Kind::Put);
        file.commit()?;
        Ok(digest)
    }

    fn put_if(&self, key: &Key, bytes: &[u8], condition: &Condition) -> Result<Option<String>> {
        let tag = Some(sha256_hex(bytes));
        if *condition == Condition::Any {
            return self.put_bytes(key, bytes).map(|_| tag);
        }
        let dest = self.prepare(key)?;
        let _lock = DirLock::exclusive(&crate::atomic::parent_dir(&dest), LOCK_WAIT)?;
        let current = match self.read_small(&dest, super::SMALL_OBJECT_MAX) {
            Ok(bytes) => Some(sha256_hex(&bytes)),
            Err(e) if crate::exit::is_missing(&e) => None,
            Err(e) => return Err(e),
        };
        let holds = match condition {
            Condition::Any => true,
            Condition::Absent => current.is_none(),
            Condition::Matches(tag) => current.as_ref() == Some(tag),
        };
        if !holds {
            return Err(anyhow::Error::new(Conflict(self.url(key))));
        }
        self.put_bytes(key, bytes).map(|_| tag)
    }

    fn get(&self, key: &Key, sink: &mut dyn Write) -> Result<u64> {
        self.requests.count(Kind::Get);
        let path = confine::resolve(&self.root, key)?;
        let mut file = open_object(&path)?;
        // Errors of the sink (a full disk at the target) are its own and
        // name its file; only errors reading the object say "reading".
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {}", path.display()));
                }
            };
            sink.write_all(&buf[..n])?;
            total += n as u64;
        }
    }

    fn fetch(&self, key: &Key, max_bytes: u64) -> Result<Fetched> {
        self.requests.count(Kind::Get);
        let path = confine::resolve(&self.root, key)?;
        let bytes = self.read_small(&path, max_bytes)?;
        let tag = Some(sha256_hex(&bytes));
        Ok(Fetched { bytes, tag })
    }

    fn list(&self, under: Option<&Key>) -> Result<Vec<ObjectInfo>> {
        self.requests.count(Kind::List);
        let mut found = Vec::new();
        let start = match under {
            Some(key) => confine::resolve(&self.root, key)?,
            None => self.root.clone(),
        };
        match std::fs::symlink_metadata(&start) {
            Ok(meta) if meta.is_dir() => {}
            // The root may be a link the operator chose; below it, never.
            Ok(meta) if under.is_none() && meta.file_type().is_symlink() && start.is_dir() => {}
            _ => return Ok(found),
        }
        walk(&self.root, &start, &mut found)?;
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn delete(&self, key: &Key) -> Result<()> {
        self.requests.count(Kind::Delete);
        let path = confine::resolve(&self.root, key)?;
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                return Err(fail(
                    Exit::Failed,
                    format!("{} is a directory, not an object", path.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            _ => {}
        }
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&crate::atomic::parent_dir(&path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {}", path.display())),
        }
    }

    fn requests(&self) -> &Requests {
        &self.requests
    }
}

/// Opens an object file: missing is "no such object" (exit 3), anything
/// but a regular file is refused, and nothing can block the open.
fn open_object(path: &Path) -> Result<std::fs::File> {
    match std::fs::symlink_metadata(path) {
        Err(e) if is_missing(&e) => {
            return Err(fail(
                Exit::NotFound,
                format!("no such object {}", path.display()),
            ));
        }
        Ok(meta) if !meta.is_file() => {
            return Err(fail(
                Exit::Failed,
                format!(
                    "{} is {}, not an object",
                    path.display(),
                    crate::regular::kind_name(&meta)
                ),
            ));
        }
        _ => {}
    }
    Ok(crate::regular::open_regular(path)?.0)
}

/// True for the errors that mean "no such object": the file is absent, or
/// a path component that should be a directory is a file.
fn is_missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// Collects the files below `dir` as objects keyed relative to `root`,
/// skipping our own temporary files and never following a link.
fn walk(root: &Path, dir: &Path, found: &mut Vec<ObjectInfo>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        // DirEntry::metadata does not follow symbolic links.
        let meta = entry
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        if meta.is_dir() {
            walk(root, &path, found)?;
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if !meta.is_file() || is_temp_name(&name) || name.ends_with(".scratch") {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let text: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
        let text = text.map(|parts| parts.join("/")).ok_or_else(|| {
            fail(
                Exit::Failed,
                format!("{}: name is not UTF-8", path.display()),
            )
        })?;
        let key = Key::parse(&text).with_context(|| format!("listing {}", root.display()))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| Timestamp::from_unix(d.as_secs() as i64));
        found.push(ObjectInfo {
            key,
            bytes: meta.len(),
            modified,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn put_get_list_delete() {
        let root = std::env::temp_dir().join(format!("sqlkeep-local-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = LocalStore::new(&root);
        store.put_bytes(&k("app/a.json"), b"{}").unwrap();
        store.put_bytes(&k("app/b.json"), b"[]").unwrap();
        store.put_bytes(&k("other/c.json"), b"1").unwrap();
        assert_eq!(store.get_bytes(&k("app/b.json")).unwrap(), b"[]");
        let keys: Vec<_> = store
            .list(Some(&k("app")))
            .unwrap()
            .into_iter()
            .map(|o| o.key.to_string())
            .collect();
        assert_eq!(keys, ["app/a.json", "app/b.json"]);
        let err = store.get_bytes(&k("app/missing.json")).unwrap_err();
        assert_eq!(crate::exit::exit_of(&err), Exit::NotFound);
        let wrong = store
            .put(&k("app/a.json"), &mut &b"xx"[..], 2, Some("00"))
            .unwrap_err();
        assert!(format!("{wrong}").contains("checksum mismatch"));
        assert_eq!(store.get_bytes(&k("app/a.json")).unwrap(), b"{}");
        store.delete(&k("app/a.json")).unwrap();
        assert_eq!(store.list(Some(&k("app"))).unwrap().len(), 1);
        assert_eq!(store.requests().get(Kind::Put), 3);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn conditional_writes_compare_and_swap() {
        let root = std::env::temp_dir().join(format!("sqlkeep-local-cas-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = LocalStore::new(&root);
        let key = k("app/latest.json");
        store.put_if(&key, b"one", &Condition::Absent).unwrap();
        let err = store.put_if(&key, b"two", &Condition::Absent).unwrap_err();
        assert!(crate::exit::is_conflict(&err));
        let seen = store.fetch(&key, 100).unwrap();
        store
            .put_if(&key, b"two", &Condition::unchanged_since(Some(&seen)))
            .unwrap();
        let err = store
            .put_if(&key, b"three", &Condition::unchanged_since(Some(&seen)))
            .unwrap_err();
        assert!(crate::exit::is_conflict(&err));
        assert_eq!(store.get_bytes(&key).unwrap(), b"two");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn links_inside_the_store_are_not_followed() {
        let root = std::env::temp_dir().join(format!("sqlkeep-local-ln-{}", std::process::id()));
        let outside = root.with_extension("outside");
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&outside);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("latest.json"), b"victim").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("app")).unwrap();
        let store = LocalStore::new(&root);
        assert!(store.put_bytes(&k("app/latest.json"), b"x").is_err());
        assert!(store.delete(&k("app/latest.json")).is_err());
        assert!(store.get_bytes(&k("app/latest.json")).is_err());
        assert!(store.list(Some(&k("app"))).unwrap().is_empty());
        assert_eq!(
            std::fs::read(outside.join("latest.json")).unwrap(),
            b"victim"
        );
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&outside);
    }
}
