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
    // Downloads land (fsync, rename) on their own thread, a few behind.
    let (to_lander, landings) =
        std::sync::mpsc::sync_channel::<(usize, copy::Landing)>(transfers.max(1));
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
        lander: Mutex::new(Some(to_lander)),
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
        let pool = &pool;
        let lander = scope.spawn(move || {
            for (i, landing) in landings {
                let (path, entry) = &pool.files[i];
                match landing.land() {
                    Ok(new) => pool.copied(path, new),
                    Err(err) => pool.failure(path, entry, &err),
                }
            }
        });
        let workers: Vec<_> = (0..transfers.min(files.len().max(1)))
            .map(|_| scope.spawn(|| work(None)))
            .collect();
        for worker in workers {
            let _ = worker.join();
        }
        // The last sender: the lander ends once it has landed the rest.
        pool.lander.lock().unwrap().take();
        let _ = lander.join();
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
    /// Where downloads go to land; None once the workers are done.
    lander: Mutex<Option<std::sync::mpsc::SyncSender<(usize, copy::Landing)>>>,
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
                Ok(copy::Copied::Done(new)) => self.copied(path, new),
                Ok(copy::Copied::Landing(landing)) => {
                    // A sender of its own: a full queue blocks this worker
                    // alone, not every worker behind the lock.
                    let lander = self.lander.lock().unwrap().clone();
                    let sent = match lander {
                        Some(lander) => lander.send((i, landing)).map_err(|e| e.0.1),
                        None => Err(landing),
                    };
                    // No lander (the first file, tried before it starts,
                    // or after it stopped): land here.
                    if let Err(landing) = sent {
                        match landing.land() {
                            Ok(new) => self.copied(path, new),
                            Err(err) => self.failure(path, entry, &err),
                        }
                    }
                }
                Err(err) => self.failure(path, entry, &err),
            }
        }
    }

    /// A file copied (and, for a download, landed).
    fn copied(&self, path: &Key, new: Entry) {
        self.log.info(
            path.as_str(),
            &format!("copied, {}", human_bytes(new.bytes)),
        );
        self.done.lock().unwrap().push((path.clone(), new));
        self.progress.inc();
    }

    /// A file that could not be copied; a usage error stops everyone.
    fn failure(&self, path: &Key, entry: &Entry, err: &anyhow::Error) {
        self.log.error(&side::describe(self.src, path), err);
        if exit_of(err) == Exit::Usage {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.exits.lock().unwrap().push(exit_of(err));
        self.failed
            .lock()
            .unwrap()
            .push((path.clone(), entry.clone()));
        self.progress.inc();
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
