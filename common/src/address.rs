//! Where backups live: the address forms of the design contract.
//!
//! | form | meaning |
//! |---|---|
//! | `./backups`, `/mnt/nas/db`, `file:///mnt/nas/db` | a local directory used as a bucket |
//! | `s3://bucket/prefix` | S3-compatible storage from the standard AWS variables |
//! | `name:bucket/prefix` | a named remote, resolved like rclone does |
//!
//! An address is a location plus a key path under it. Tools go from a
//! remote to a database's prefix and on to an object with [`Address::child`],
//! and back with [`Address::split_last`].

use crate::exit::{Exit, fail};
use crate::key::Key;
use anyhow::Result;
use std::fmt;
use std::path::{Path, PathBuf};

/// A parsed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A local directory (or a file in one).
    Local(PathBuf),
    /// `s3://bucket/key`.
    S3 {
        /// The bucket name.
        bucket: String,
        /// Key path under the bucket, without leading or trailing `/`.
        key: String,
    },
    /// `remote:bucket/key`, a remote configured the rclone way.
    Named {
        /// The remote's name as configured.
        remote: String,
        /// The bucket name.
        bucket: String,
        /// Key path under the bucket, without leading or trailing `/`.
        key: String,
    },
}

impl Address {
    /// Parses an address; errors are usage errors (exit 2).
    pub fn parse(text: &str) -> Result<Address> {
        let bad = |why: &str| fail(Exit::Usage, format!("bad address {text:?}: {why}"));
        if text.is_empty() {
            return Err(bad("empty"));
        }
        if let Some(rest) = text.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad(
                    "a file:// address needs an absolute path, as file:///mnt/backups",
                ));
            }
            return Ok(Address::Local(PathBuf::from(rest)));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, key) = split_bucket(rest);
            if bucket.is_empty() {
                return Err(bad("no bucket after s3://"));
            }
            check_remote_path(&bucket, &key).map_err(|why| bad(&why))?;
            return Ok(Address::S3 { bucket, key });
        }
        if text.starts_with('/') || text.starts_with("./") || text.starts_with("../") || text == "."
        {
            return Ok(Address::Local(PathBuf::from(text)));
        }
        if let Some((scheme, _)) = text.split_once("://")
            && is_remote_name(scheme)
        {
            return Err(bad(&format!(
                "unsupported scheme {scheme}://; use s3://bucket/prefix, a named remote as {scheme}:bucket/prefix, or a directory"
            )));
        }
        if let Some((remote, rest)) = text.split_once(':')
            && is_remote_name(remote)
        {
            let (bucket, key) = split_bucket(rest);
            if bucket.is_empty() {
                return Err(bad(&format!(
                    "no bucket after {remote}:, as {remote}:bucket/prefix"
                )));
            }
            check_remote_path(&bucket, &key).map_err(|why| bad(&why))?;
            return Ok(Address::Named {
                remote: remote.to_string(),
                bucket,
                key,
            });
        }
        Ok(Address::Local(PathBuf::from(text)))
    }

    /// The address of `name` below this one.
    pub fn child(&self, name: &str) -> Address {
        let join = |key: &str| {
            if key.is_empty() {
                name.to_string()
            } else {
                format!("{key}/{name}")
            }
        };
        match self {
            Address::Local(path) => Address::Local(path.join(name)),
            Address::S3 { bucket, key } => Address::S3 {
                bucket: bucket.clone(),
                key: join(key),
            },
            Address::Named {
                remote,
                bucket,
                key,
            } => Address::Named {
                remote: remote.clone(),
                bucket: bucket.clone(),
                key: join(key),
            },
        }
    }

    /// Splits off the last path segment: `(parent, name)`. None at a
    /// bucket's root or a path without a name.
    pub fn split_last(&self) -> Option<(Address, String)> {
        let split = |key: &str| -> Option<(String, String)> {
            if key.is_empty() {
                return None;
            }
            Some(match key.rsplit_once('/') {
                Some((parent, name)) => (parent.to_string(), name.to_string()),
                None => (String::new(), key.to_string()),
            })
        };
        match self {
            Address::Local(path) => {
                let name = path.file_name()?.to_string_lossy().into_owned();
                let parent = crate::atomic::parent_dir(path);
                Some((Address::Local(parent), name))
            }
            Address::S3 { bucket, key } => {
                let (parent, name) = split(key)?;
                Some((
                    Address::S3 {
                        bucket: bucket.clone(),
                        key: parent,
                    },
                    name,
                ))
            }
            Address::Named {
                remote,
                bucket,
                key,
            } => {
                let (parent, name) = split(key)?;
                Some((
                    Address::Named {
                        remote: remote.clone(),
                        bucket: bucket.clone(),
                        key: parent,
                    },
                    name,
                ))
            }
        }
    }

    /// The last path segment, if any.
    pub fn name(&self) -> Option<String> {
        self.split_last().map(|(_, name)| name)
    }

    /// The local path, for local addresses.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Address::Local(path) => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for Address {
    /// The address in a form [`Address::parse`] reads back: local paths are
    /// made absolute so that records stay valid from another directory.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Local(path) => {
                let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                write!(f, "{}", abs.display())
            }
            Address::S3 { bucket, key } if key.is_empty() => write!(f, "s3://{bucket}"),
            Address::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Address::Named {
                remote,
                bucket,
                key,
            } if key.is_empty() => write!(f, "{remote}:{bucket}"),
            Address::Named {
                remote,
                bucket,
                key,
            } => write!(f, "{remote}:{bucket}/{key}"),
        }
    }
}

/// Splits `bucket/some/key/` into the bucket and a tidy key.
fn split_bucket(rest: &str) -> (String, String) {
    let rest = rest.trim_matches('/');
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let key = key
        .split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    (bucket.to_string(), key)
}

/// Checks a remote address's bucket and key path: a bucket name of the
/// characters providers allow, and a key that is a safe [`Key`], so that
/// `s3://bkt/../other` cannot become a request to bucket `other` once an
/// HTTP client normalises the path.
fn check_remote_path(bucket: &str, key: &str) -> std::result::Result<(), String> {
    let bucket_ok = bucket
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !bucket.starts_with('.')
        && !bucket.contains("..");
    if !bucket_ok {
        return Err(format!(
            "bucket name {bucket:?} has characters no provider allows"
        ));
    }
    if !key.is_empty() {
        Key::parse(key).map_err(|e| format!("{e}"))?;
    }
    Ok(())
}

/// The key path below the bucket, validated (None at a bucket's root or
/// for a local address).
pub fn remote_key(address: &Address) -> Option<Key> {
    match address {
        Address::S3 { key, .. } | Address::Named { key, .. } if !key.is_empty() => {
            Key::parse(key).ok()
        }
        _ => None,
    }
}

/// A remote name as rclone accepts it: letters, digits, `_ - . + @` and
/// spaces, not starting with `-` or a space.
fn is_remote_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', ' '])
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '@' | ' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_forms() {
        assert_eq!(
            Address::parse("./backups").unwrap(),
            Address::Local("./backups".into())
        );
        assert_eq!(
            Address::parse("/mnt/nas/db").unwrap(),
            Address::Local("/mnt/nas/db".into())
        );
        assert_eq!(
            Address::parse("file:///mnt/nas/db").unwrap(),
            Address::Local("/mnt/nas/db".into())
        );
        assert_eq!(
            Address::parse("backups").unwrap(),
            Address::Local("backups".into())
        );
        assert!(Address::parse("file://host/x").is_err());
    }

    #[test]
    fn remote_forms() {
        assert_eq!(
            Address::parse("s3://bkt/databases/").unwrap(),
            Address::S3 {
                bucket: "bkt".into(),
                key: "databases".into()
            }
        );
        assert_eq!(
            Address::parse("b2:bkt//a/b").unwrap(),
            Address::Named {
                remote: "b2".into(),
                bucket: "bkt".into(),
                key: "a/b".into()
            }
        );
        let err = Address::parse("b2://bkt/x").unwrap_err();
        assert!(format!("{err}").contains("b2:bucket/prefix"), "{err}");
        assert!(Address::parse("s3://").is_err());
        assert!(Address::parse("b2:").is_err());
        for hostile in [
            "s3://bkt/../other",
            "s3://bkt/a/../../other/x",
            "s3://../x",
            "b2:bkt/./x",
            "b2:bkt/a\\b",
            "s3://bkt/a\u{1}b",
        ] {
            let err = Address::parse(hostile).unwrap_err();
            assert_eq!(crate::exit::exit_of(&err), Exit::Usage, "{hostile}");
        }
    }

    #[test]
    fn child_and_parent() {
        let a = Address::parse("s3://bkt/databases").unwrap();
        let obj = a.child("app").child("20261122T030000Z.sqlite3.zst");
        assert_eq!(
            obj.to_string(),
            "s3://bkt/databases/app/20261122T030000Z.sqlite3.zst"
        );
        let (parent, name) = obj.split_last().unwrap();
        assert_eq!(name, "20261122T030000Z.sqlite3.zst");
        assert_eq!(parent.to_string(), "s3://bkt/databases/app");
        assert!(Address::parse("s3://bkt").unwrap().split_last().is_none());
        let (p, n) = Address::parse("/r/app").unwrap().split_last().unwrap();
        assert_eq!((p, n.as_str()), (Address::Local("/r".into()), "app"));
    }
}
