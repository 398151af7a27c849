//! Work on several items at once, results in input order.
//!
//! `sqlite-snap --jobs` and `bucket-push --transfers` handle a thousand
//! tenant databases N at a time, but a pipeline reads their records in
//! the order the databases were named, whatever finishes first: results
//! wait in a reorder buffer until those before them are out. Items are
//! read on the calling thread (stdin is read lazily, as it arrives), at
//! most `2 × jobs` ahead of the workers.
//!
//! Items with the same key (one database's increments) are worked on one
//! after the other, in input order: a delta is stored only after the one
//! it follows has been committed.

use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::{Mutex, mpsc};

/// Runs `work` on every item with `jobs` threads and hands each result to
/// `emit`, in item order. An error from `emit` (a closed stdout) stops the
/// run: the workers finish the item in hand and take no other.
pub fn in_order<I, R>(
    jobs: usize,
    items: impl Iterator<Item = I>,
    work: impl Fn(I) -> R + Sync,
    emit: impl FnMut(R) -> Result<()>,
) -> Result<()>
where
    I: Send,
    R: Send,
{
    in_order_by_key(jobs, items, |_| None, work, emit)
}

/// [`in_order`], and items whose `key` is the same never run at once and
/// run in item order (None: no such constraint).
pub fn in_order_by_key<I, R>(
    jobs: usize,
    items: impl Iterator<Item = I>,
    key: impl Fn(&I) -> Option<String>,
    work: impl Fn(I) -> R + Sync,
    mut emit: impl FnMut(R) -> Result<()>,
) -> Result<()>
where
    I: Send,
    R: Send,
{
    if jobs <= 1 {
        // One at a time on this thread: a closed stdout stops the run
        // before another item is even read.
        for item in items {
            emit(work(item))?;
        }
        return Ok(());
    }
    let turns = Turns::default();
    let mut tickets: std::collections::HashMap<String, u64> = Default::default();
    let (job_tx, job_rx) = mpsc::sync_channel::<(usize, Option<(String, u64)>, I)>(jobs);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, R)>();
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..jobs {
            let done_tx = done_tx.clone();
            let (job_rx, work, turns) = (&job_rx, &work, &turns);
            scope.spawn(move || {
                loop {
                    let job = job_rx.lock().expect("not poisoned").recv();
                    let Ok((i, ticket, item)) = job else { break };
                    if let Some((key, n)) = &ticket {
                        turns.wait_for(key, *n);
                    }
                    let result = work(item);
                    if let Some((key, _)) = &ticket {
                        turns.next(key);
                    }
                    if done_tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut waiting: BTreeMap<usize, R> = BTreeMap::new();
        let mut next = 0;
        let mut flush = |waiting: &mut BTreeMap<usize, R>, next: &mut usize| -> Result<()> {
            while let Some(result) = waiting.remove(next) {
                *next += 1;
                emit(result)?;
            }
            Ok(())
        };
        let mut sent = 0;
        for item in items {
            // Tickets are handed out in item order, so the lowest one of a
            // key is always with a worker, never waiting behind a higher.
            let ticket = key(&item).map(|k| {
                let n = tickets.entry(k.clone()).or_default();
                *n += 1;
                (k, *n - 1)
            });
            // A send waits while every worker is busy and the queue full.
            job_tx
                .send((sent, ticket, item))
                .expect("the workers outlive the items");
            sent += 1;
            while let Ok((i, result)) = done_rx.try_recv() {
                waiting.insert(i, result);
            }
            flush(&mut waiting, &mut next)?;
        }
        drop(job_tx);
        while next < sent {
            let (i, result) = done_rx.recv().expect("every item gets a result");
            waiting.insert(i, result);
            flush(&mut waiting, &mut next)?;
        }
        Ok(())
    })
}

/// Whose turn it is, per key.
#[derive(Default)]
struct Turns {
    serving: Mutex<std::collections::HashMap<String, u64>>,
    changed: std::sync::Condvar,
}

impl Turns {
    fn wait_for(&self, key: &str, ticket: u64) {
        let mut serving = self.serving.lock().expect("not poisoned");
        while serving.get(key).copied().unwrap_or(0) != ticket {
            serving = self.changed.wait(serving).expect("not poisoned");
        }
    }

    fn next(&self, key: &str) {
        *self
            .serving
            .lock()
            .expect("not poisoned")
            .entry(key.to_string())
            .or_default() += 1;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_leave_in_item_order_whatever_finishes_first() {
        for jobs in [1, 3, 8] {
            let mut out = Vec::new();
            in_order(
                jobs,
                0..50u64,
                |i| {
                    // Later items finish first.
                    std::thread::sleep(std::time::Duration::from_micros((50 - i) * 100));
                    i * 2
                },
                |r| {
                    out.push(r);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>(), "{jobs}");
        }
    }

    #[test]
    fn items_of_one_key_run_one_at_a_time_in_order() {
        let running: Mutex<std::collections::HashSet<u64>> = Default::default();
        let order: Mutex<Vec<u64>> = Default::default();
        in_order_by_key(
            4,
            0..40u64,
            |i| Some((i % 3).to_string()),
            |i| {
                assert!(
                    running.lock().unwrap().insert(i % 3),
                    "two of key {} at once",
                    i % 3
                );
                order.lock().unwrap().push(i);
                std::thread::yield_now();
                running.lock().unwrap().remove(&(i % 3));
            },
            |_| Ok(()),
        )
        .unwrap();
        let order = order.into_inner().unwrap();
        for k in 0..3 {
            let of_k: Vec<u64> = order.iter().copied().filter(|i| i % 3 == k).collect();
            let mut sorted = of_k.clone();
            sorted.sort();
            assert_eq!(of_k, sorted, "key {k} ran out of order");
        }
    }

    #[test]
    fn an_emit_error_stops_the_run() {
        let mut seen = 0;
        let err = in_order(
            2,
            0..1000,
            |i| i,
            |_| {
                seen += 1;
                if seen == 3 {
                    anyhow::bail!("closed")
                }
                Ok(())
            },
        )
        .unwrap_err();
        assert_eq!(format!("{err}"), "closed");
        assert_eq!(seen, 3);
    }
}
