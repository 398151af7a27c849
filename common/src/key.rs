//! Keys: validated relative paths, the only names the storage layer and
//! the local file code accept.
//!
//! Every name that comes from outside the program — a manifest entry, a
//! listing, a record, an address typed by the operator — becomes a [`Key`]
//! before any request or file operation uses it. A key is a `/`-separated
//! path below some root that cannot leave it: no absolute path, no `.`,
//! `..` or empty segment, no backslash (a separator on other systems and
//! in some servers' path handling), no NUL or other control character,
//! and at most 1,024 bytes (S3's limit). Anything else is refused with a
//! message naming it, so a hostile manifest cannot make us write, read or
//! delete outside the target (issue 10: `../pwn.txt`, `ab/../../x`,
//! `../../otherbkt/prod/data.bin`).
//!
//! Percent signs and look-alike dots are ordinary characters here: keys
//! are sent percent-encoded and never decoded, and files are named with
//! the key's bytes, so `%2e%2e` is a file called `%2e%2e`.

use crate::exit::{Exit, fail};
use anyhow::Result;
use std::fmt;
use std::path::{Path, PathBuf};

/// S3's limit on a key's length, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// A validated relative path of one or more segments.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    /// Validates `text` as a key; the error names the text and the reason
    /// (exit 1: data that cannot be used, not a usage error).
    pub fn parse(text: &str) -> Result<Key> {
        match problem(text) {
            None => Ok(Key(text.to_string())),
            Some(why) => Err(fail(Exit::Failed, format!("unsafe name {text:?}: {why}"))),
        }
    }

    /// Validates `name` as a key of exactly one segment.
    pub fn segment(name: &str) -> Result<Key> {
        if name.contains('/') {
            return Err(fail(
                Exit::Failed,
                format!("unsafe name {name:?}: must be a single name, without '/'"),
            ));
        }
        Key::parse(name)
    }

    /// The key `self/name`, `name` being validated as one segment.
    pub fn child(&self, name: &str) -> Result<Key> {
        Ok(self.join(&Key::segment(name)?))
    }

    /// The key `self/other`.
    pub fn join(&self, other: &Key) -> Key {
        Key(format!("{}/{}", self.0, other.0))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, first to last.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Everything but the last segment; None for a one-segment key.
    pub fn parent(&self) -> Option<Key> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| Key(parent.to_string()))
    }

    /// The rest of this key below `prefix`, when it is below it.
    pub fn strip_prefix(&self, prefix: &Key) -> Option<Key> {
        self.0
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .map(|rest| Key(rest.to_string()))
    }

    /// The path of this key below `root`, one path component per segment.
    /// Validation guarantees it stays below `root` lexically; see
    /// the `confine` module for the symbolic links on the way.
    pub fn below(&self, root: &Path) -> PathBuf {
        self.segments().fold(root.to_path_buf(), |p, s| p.join(s))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why `text` is not a safe key, or None when it is.
fn problem(text: &str) -> Option<&'static str> {
    if text.is_empty() {
        return Some("empty");
    }
    if text.len() > MAX_KEY_BYTES {
        return Some("longer than 1024 bytes");
    }
    if text.starts_with('/') {
        return Some("an absolute path");
    }
    if text.contains('\\') {
        return Some("has a backslash");
    }
    if text.contains('\0') {
        return Some("has a NUL character");
    }
    if text.chars().any(char::is_control) {
        return Some("has a control character");
    }
    for segment in text.split('/') {
        match segment {
            "" => return Some("has an empty path segment"),
            "." | ".." => return Some("has a '.' or '..' path segment"),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_keys() {
        for good in [
            "production",
            "app/20261122T030000Z.sqlite3.zst",
            "ab/cd/2y8vq1yyuk3ms4e0tb7xrdjd0ci2",
            ".sqlkeep-sync.json",
            "..hidden",
            "a..b/c",
            "%2e%2e/x",
            "\u{ff0e}\u{ff0e}/x",
            "tenants/acme/production",
            "with space/and 'quotes'",
        ] {
            assert!(Key::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn hostile_keys() {
        for bad in [
            "",
            "/etc/passwd",
            "../pwn.txt",
            "ab/../../x",
            "../../otherbkt/prod/data.bin",
            "a/./b",
            ".",
            "..",
            "a//b",
            "a/",
            "a\\..\\b",
            "..\\x",
            "a\0b",
            "a\nb",
            "a\u{7f}b",
            "a\u{85}b",
        ] {
            let err = Key::parse(bad).unwrap_err();
            assert!(
                format!("{err}").starts_with("unsafe name"),
                "{bad:?}: {err}"
            );
            assert_eq!(crate::exit::exit_of(&err), Exit::Failed);
        }
        assert!(Key::parse(&"x".repeat(1025)).is_err());
        assert!(Key::segment("a/b").is_err());
    }

    #[test]
    fn structure() {
        let k = Key::parse("databases/app/latest.json").unwrap();
        assert_eq!(k.name(), "latest.json");
        assert_eq!(k.parent().unwrap().as_str(), "databases/app");
        let prefix = Key::parse("databases").unwrap();
        assert_eq!(k.strip_prefix(&prefix).unwrap().as_str(), "app/latest.json");
        assert!(k.strip_prefix(&Key::parse("data").unwrap()).is_none());
        assert_eq!(
            k.below(Path::new("/r")),
            PathBuf::from("/r/databases/app/latest.json")
        );
        assert_eq!(prefix.child("app").unwrap().as_str(), "databases/app");
    }
}
