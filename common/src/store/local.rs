//! A local directory used as a bucket: a mounted disk, a NAS, `./backups`.
//!
//! Keys map to paths below the root. Every object is written through
//! [`AtomicFile`], so a reader of the directory sees a complete object or
//! none, exactly as with an object store.

use super::{Kind, ObjectInfo, Requests, Store, check_body};
use crate::atomic::{AtomicFile, is_temp_name, sync_dir};
use crate::digest::{Digest, HashReader};
use crate::exit::{Exit, fail};
use crate::time::Timestamp;
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Objects are private to the backup's owner.
const OBJECT_MODE: u32 = 0o600;

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

    /// The file a key maps to.
    fn path(&self, key: &str) -> PathBuf {
        key.split('/').fold(self.root.clone(), |p, seg| p.join(seg))
    }

    /// Creates the directories above `path`, fsyncing each new entry's
    /// parent so the new directory survives a power cut.
    fn make_parents(&self, path: &Path) -> Result<()> {
        let dir = crate::atomic::parent_dir(path);
        if dir.is_dir() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut cur = dir.as_path();
        while !cur.exists() {
            missing.push(cur.to_path_buf());
            match cur.parent() {
                Some(p) if !p.as_os_str().is_empty() => cur = p,
                _ => break,
            }
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
        for created in missing.iter().rev() {
            sync_dir(&crate::atomic::parent_dir(created))?;
        }
        Ok(())
    }
}

impl Store for LocalStore {
    fn url(&self, key: &str) -> String {
        let path = self.path(key);
        std::path::absolute(&path)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn put(
        &self,
        key: &str,
        body: &mut dyn Read,
        len: u64,
        sha256: Option<&str>,
    ) -> Result<Digest> {
        let dest = self.path(key);
        self.make_parents(&dest)?;
        let mut file = AtomicFile::create(&dest, OBJECT_MODE)?;
        let mut reader = HashReader::new(body);
        std::io::copy(&mut reader, file.file())
            .with_context(|| format!("writing {}", dest.display()))?;
        let digest = reader.finish();
        check_body(&digest, len, sha256)?;
        self.requests.count(Kind::Put);
        file.commit()?;
        Ok(digest)
    }

    fn get(&self, key: &str, sink: &mut dyn Write) -> Result<u64> {
        self.requests.count(Kind::Get);
        let path = self.path(key);
        let mut file = match std::fs::File::open(&path) {
            Ok(file) if path.is_file() => file,
            Ok(_) => {
                return Err(fail(
                    Exit::NotFound,
                    format!("{} is not a file", path.display()),
                ));
            }
            Err(e) if is_missing(&e) => {
                return Err(fail(
                    Exit::NotFound,
                    format!("no such object {}", path.display()),
                ));
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        std::io::copy(&mut file, sink).with_context(|| format!("reading {}", path.display()))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.requests.count(Kind::List);
        let mut found = Vec::new();
        let (dir_key, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let start = if dir_key.is_empty() {
            self.root.clone()
        } else {
            self.path(dir_key)
        };
        if !start.is_dir() {
            return Ok(found);
        }
        walk(&self.root, &start, &mut found)?;
        found.retain(|o| o.key.starts_with(prefix));
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.requests.count(Kind::Delete);
        let path = self.path(key);
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

/// True for the errors that mean "no such object": the file is absent, or
/// a path component that should be a directory is a file.
fn is_missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// Collects the files below `dir` as objects keyed relative to `root`,
/// skipping our own temporary files.
fn walk(root: &Path, dir: &Path, found: &mut Vec<ObjectInfo>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        let meta = entry
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        if meta.is_dir() {
            walk(root, &path, found)?;
            continue;
        }
        if !meta.is_file() || is_temp_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let key = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
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

    #[test]
    fn put_get_list_delete() {
        let root = std::env::temp_dir().join(format!("sqlkeep-local-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = LocalStore::new(&root);
        store.put_bytes("app/a.json", b"{}").unwrap();
        store.put_bytes("app/b.json", b"[]").unwrap();
        store.put_bytes("other/c.json", b"1").unwrap();
        assert_eq!(store.get_bytes("app/b.json").unwrap(), b"[]");
        let keys: Vec<_> = store
            .list("app/")
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["app/a.json", "app/b.json"]);
        let err = store.get_bytes("app/missing.json").unwrap_err();
        assert_eq!(crate::exit::exit_of(&err), Exit::NotFound);
        let wrong = store
            .put("app/a.json", &mut &b"xx"[..], 2, Some("00"))
            .unwrap_err();
        assert!(format!("{wrong}").contains("checksum mismatch"));
        assert_eq!(store.get_bytes("app/a.json").unwrap(), b"{}");
        store.delete("app/a.json").unwrap();
        assert_eq!(store.list("app/").unwrap().len(), 1);
        assert_eq!(store.requests().get(Kind::Put), 3);
        let _ = std::fs::remove_dir_all(&root);
    }
}
