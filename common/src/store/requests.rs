//! Counting requests by kind, and by Backblaze B2's billing class.
//!
//! B2 bills class A (uploads, deletes) free, class B (GET, HEAD) and class C
//! (LIST, bucket HEAD, COPY) per request beyond 2,500 a day; the other
//! providers bill alike. Counts are atomic so parallel transfers can share
//! one counter.

use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// The kinds of request a backend makes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A single-request upload.
    Put,
    /// A download.
    Get,
    /// An object or bucket metadata request.
    Head,
    /// A listing page.
    List,
    /// A delete.
    Delete,
    /// A server-side copy.
    Copy,
    /// Starting, completing or aborting a multipart upload.
    Multipart,
    /// One part of a multipart upload.
    Part,
}

const KINDS: [(Kind, &str); 8] = [
    (Kind::Put, "put"),
    (Kind::Get, "get"),
    (Kind::Head, "head"),
    (Kind::List, "list"),
    (Kind::Delete, "delete"),
    (Kind::Copy, "copy"),
    (Kind::Multipart, "multipart"),
    (Kind::Part, "part"),
];

/// Request counters.
#[derive(Debug, Default)]
pub struct Requests {
    counts: [AtomicU64; 8],
}

impl Requests {
    /// Counts one request of `kind`.
    pub fn count(&self, kind: Kind) {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds another counter's counts to this one.
    pub fn add(&self, other: &Requests) {
        for (mine, theirs) in self.counts.iter().zip(&other.counts) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// How many requests of `kind` were made.
    pub fn get(&self, kind: Kind) -> u64 {
        self.counts[kind as usize].load(Ordering::Relaxed)
    }

    /// Total requests of every kind.
    pub fn total(&self) -> u64 {
        KINDS.iter().map(|(k, _)| self.get(*k)).sum()
    }

    /// The counts as a record field: each kind, then B2's classes.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for (kind, name) in KINDS {
            map.insert(name.into(), self.get(kind).into());
        }
        let g = |k| self.get(k);
        let class_a = g(Kind::Put) + g(Kind::Delete) + g(Kind::Multipart) + g(Kind::Part);
        let class_b = g(Kind::Get) + g(Kind::Head);
        let class_c = g(Kind::List) + g(Kind::Copy);
        map.insert("class_a".into(), class_a.into());
        map.insert("class_b".into(), class_b.into());
        map.insert("class_c".into(), class_c.into());
        Value::Object(map)
    }

    /// Counts since `earlier`, for per-item figures from a shared counter.
    pub fn since(&self, earlier: &Snapshot) -> Value {
        let now = self.snapshot();
        let diff = Requests::default();
        for (i, c) in diff.counts.iter().enumerate() {
            c.store(now.0[i] - earlier.0[i], Ordering::Relaxed);
        }
        diff.to_json()
    }

    /// The counts right now, to subtract later with [`Requests::since`].
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(std::array::from_fn(|i| {
            self.counts[i].load(Ordering::Relaxed)
        }))
    }
}

/// Request counts frozen at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot([u64; 8]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let r = Requests::default();
        r.count(Kind::Put);
        r.count(Kind::Put);
        let before = r.snapshot();
        r.count(Kind::Get);
        r.count(Kind::List);
        let v = r.to_json();
        assert_eq!(v["put"], 2);
        assert_eq!(v["class_a"], 2);
        assert_eq!(v["class_b"], 1);
        assert_eq!(v["class_c"], 1);
        let d = r.since(&before);
        assert_eq!((d["put"].as_u64(), d["get"].as_u64()), (Some(0), Some(1)));
    }
}
