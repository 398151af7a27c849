//! The copy phase: `--transfers` workers, each streaming one file at a
//! time, so memory stays bounded whatever the tree holds.

use crate::copy;
use crate::crypt::Keys;
use crate::side::{self, Side};
use crate::tree::Entry;
use sqlkeep_common::exit::{Exit, exit_of};
use sqlkeep_common::key::Key;
use sqlkeep_common::log::Log;
use sqlkeep_common::progress::Progress;
use sqlkeep_common::units::human_bytes;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The result of the copy phase.
pub struct Copied {
    /// Files copied, with their new destination entries.
    pub done: Vec<(Key, Entry)>,
    /// Files that failed, with their source entries.
    pub failed: Vec<(Key, Entry)>,
    /// Workers that could not start (their identities unreadable).
    pub unstarted: usize,
    /// The exit every failure asked for, when they agree.
    pub worst: Option<Exit>,
}

/// Copies `files` from `src` to `dst` with `transfers` workers. A usage
/// error (keys that cannot decrypt) stops them all: every other file would
/// fail the same way. A restore tries its keys on one file before the
/// workers start, so such keys fail once, not once per worker.
pub fn copy_all(
    src: &Side,
    dst: &Side,
    files: &[(Key, Entry)],
    transfers: usize,
    keys: &Keys,
    log: &Log,
) -> Copied {
    let pool = Pool {
        src,
        dst,
        files,
        log,
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        unstarted: AtomicUsize::new(0),
        done: Mutex::new(Vec::new()),
        failed: Mutex::new(Vec::new()),
        exits: Mutex::new(Vec::new()),
        progress: Progress::new(log, "", files.len() as u64, "{pos}/{len} files"),
    };
    // Each worker holds its own identities: age's cannot be shared
    // between threads.
    let work = |limit: Option<usize>| match keys.identities(None) {
        Ok(ids) => pool.work(keys.mode(ids.as_ref()), limit),
        Err(err) => pool.unstart(&err),
    };
    if keys.open.is_some() {
        work(Some(1));
    }
    std::thread::scope(|scope| {
        for _ in 0..transfers.min(files.len().max(1)) {
            scope.spawn(|| work(None));
        }
    });
    pool.finish()
}

/// What the workers share.
struct Pool<'a> {
    src: &'a Side,
    dst: &'a Side,
    files: &'a [(Key, Entry)],
    log: &'a Log,
    next: AtomicUsize,
    stop: AtomicBool,
    unstarted: AtomicUsize,
    done: Mutex<Vec<(Key, Entry)>>,
    failed: Mutex<Vec<(Key, Entry)>>,
    exits: Mutex<Vec<Exit>>,
    progress: Progress,
}

impl Pool<'_> {
    /// Copies the next files until there are none (or `limit` of them),
    /// or a usage error stops everyone.
    fn work(&self, mode: copy::Mode, limit: Option<usize>) {
        let mut taken = 0;
        while !self.stop.load(Ordering::Relaxed) && limit.is_none_or(|l| taken < l) {
            taken += 1;
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some((path, entry)) = self.files.get(i) else {
                break;
            };
            match copy::copy(self.src, self.dst, path, entry, mode) {
                Ok(new) => {
                    self.log.info(
                        path.as_str(),
                        &format!("copied, {}", human_bytes(new.bytes)),
                    );
                    self.done.lock().unwrap().push((path.clone(), new));
                }
                Err(err) => {
                    self.log.error(&side::describe(self.src, path), &err);
                    if exit_of(&err) == Exit::Usage {
                        self.stop.store(true, Ordering::Relaxed);
                    }
                    self.exits.lock().unwrap().push(exit_of(&err));
                    self.failed
                        .lock()
                        .unwrap()
                        .push((path.clone(), entry.clone()));
                }
            }
            self.progress.inc();
        }
    }

    /// A worker that could not read its identities: nothing more is
    /// copied, as the others would fail the same way.
    fn unstart(&self, err: &anyhow::Error) {
        self.log.error("", err);
        self.unstarted.fetch_add(1, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        self.exits.lock().unwrap().push(exit_of(err));
    }

    fn finish(self) -> Copied {
        drop(self.progress);
        let mut exits = self.exits.into_inner().unwrap();
        exits.dedup();
        Copied {
            done: self.done.into_inner().unwrap(),
            failed: self.failed.into_inner().unwrap(),
            unstarted: self.unstarted.into_inner(),
            worst: if exits.len() == 1 {
                exits.first().copied()
            } else {
                None
            },
        }
    }
}
