//! A dry run is a backend, not an `if` in every command (as in rustic):
//! [`DryRun`] wraps a store, passes reads through, and keeps writes and
//! deletes to itself, answering later reads as if they had happened. The
//! same code that stores and prunes then shows exactly what it would do,
//! and cannot change anything.

use super::{Condition, Fetched, ObjectInfo, Requests, Store, check_body};
use crate::digest::{Digest, HashReader};
use crate::exit::{Exit, fail};
use crate::key::Key;
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::Mutex;

/// Writes smaller than this are kept in memory so later reads see them.
const KEEP_BYTES: u64 = 1 << 20;

/// What the dry run would have written.
#[derive(Default)]
struct Pending {
    puts: BTreeMap<Key, (u64, Option<Vec<u8>>)>,
    deletes: BTreeSet<Key>,
}

/// A store that changes nothing.
pub struct DryRun {
    inner: Box<dyn Store>,
    pending: Mutex<Pending>,
}

impl DryRun {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Store>) -> DryRun {
        DryRun {
            inner,
            pending: Mutex::new(Pending::default()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record_put(&self, key: &Key, len: u64, bytes: Option<Vec<u8>>) {
        let mut p = self.pending();
        p.deletes.remove(key);
        p.puts.insert(key.clone(), (len, bytes));
    }
}

impl Store for DryRun {
    fn url(&self, key: &Key) -> String {
        self.inner.url(key)
    }

    fn root_url(&self) -> String {
        self.inner.root_url()
    }

    fn put(
        &self,
        key: &Key,
        body: &mut dyn Read,
        len: u64,
        sha256: Option<&str>,
    ) -> Result<Digest> {
        // Read it all, as the real upload would, so a bad source fails
        // the dry run too.
        let mut reader = HashReader::new(body.take(len + 1));
        let mut kept = Vec::new();
        if len <= KEEP_BYTES {
            reader.read_to_end(&mut kept)?;
        } else {
            std::io::copy(&mut reader, &mut std::io::sink())?;
        }
        let digest = reader.finish();
        check_body(&digest, len, sha256)?;
        self.record_put(key, len, (len <= KEEP_BYTES).then_some(kept));
        Ok(digest)
    }

    fn put_if(&self, key: &Key, bytes: &[u8], _condition: &Condition) -> Result<Option<String>> {
        self.record_put(key, bytes.len() as u64, Some(bytes.to_vec()));
        Ok(None)
    }

    fn get(&self, key: &Key, sink: &mut dyn Write) -> Result<u64> {
        let fetched = {
            let p = self.pending();
            if p.deletes.contains(key) {
                return Err(fail(
                    Exit::NotFound,
                    format!("no such object {}", self.url(key)),
                ));
            }
            p.puts.get(key).map(|(_, bytes)| bytes.clone())
        };
        match fetched {
            Some(Some(bytes)) => {
                sink.write_all(&bytes)?;
                Ok(bytes.len() as u64)
            }
            Some(None) => Err(fail(
                Exit::Failed,
                format!("{} is only in this dry run", self.url(key)),
            )),
            None => self.inner.get(key, sink),
        }
    }

    fn fetch(&self, key: &Key, max_bytes: u64) -> Result<Fetched> {
        let mut bytes = Vec::new();
        {
            let p = self.pending();
            if p.deletes.contains(key) {
                return Err(fail(
                    Exit::NotFound,
                    format!("no such object {}", self.url(key)),
                ));
            }
            if let Some((_, Some(kept))) = p.puts.get(key) {
                bytes.extend_from_slice(kept);
            }
        }
        if bytes.is_empty() {
            return self.inner.fetch(key, max_bytes);
        }
        Ok(Fetched { bytes, tag: None })
    }

    fn list(&self, under: Option<&Key>) -> Result<Vec<ObjectInfo>> {
        let mut found: BTreeMap<Key, ObjectInfo> = self
            .inner
            .list(under)?
            .into_iter()
            .map(|o| (o.key.clone(), o))
            .collect();
        let p = self.pending();
        for key in &p.deletes {
            found.remove(key);
        }
        for (key, (len, _)) in &p.puts {
            let below = match under {
                Some(prefix) => key.strip_prefix(prefix).is_some(),
                None => true,
            };
            if below {
                found.insert(
                    key.clone(),
                    ObjectInfo {
                        key: key.clone(),
                        bytes: *len,
                        modified: None,
                    },
                );
            }
        }
        Ok(found.into_values().collect())
    }

    fn delete(&self, key: &Key) -> Result<()> {
        let mut p = self.pending();
        p.puts.remove(key);
        p.deletes.insert(key.clone());
        Ok(())
    }

    fn requests(&self) -> &Requests {
        self.inner.requests()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    #[test]
    fn changes_nothing_but_answers_as_if() {
        let root = std::env::temp_dir().join(format!("sqlkeep-dry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let real = LocalStore::new(&root);
        let k = |s: &str| Key::parse(s).unwrap();
        real.put_bytes(&k("app/old.json"), b"old").unwrap();
        let dry = DryRun::new(Box::new(LocalStore::new(&root)));
        dry.put_bytes(&k("app/new.json"), b"new").unwrap();
        dry.delete(&k("app/old.json")).unwrap();
        let keys: Vec<String> = dry
            .list(Some(&k("app")))
            .unwrap()
            .into_iter()
            .map(|o| o.key.to_string())
            .collect();
        assert_eq!(keys, ["app/new.json"]);
        assert_eq!(dry.get_bytes(&k("app/new.json")).unwrap(), b"new");
        assert!(dry.get_bytes(&k("app/old.json")).is_err());
        assert_eq!(real.get_bytes(&k("app/old.json")).unwrap(), b"old");
        assert!(real.get_bytes(&k("app/new.json")).is_err());
        let _ = std::fs::remove_dir_all(&root);
    }
}
