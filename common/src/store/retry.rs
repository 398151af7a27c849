//! Retrying requests to object storage: exponential backoff with jitter,
//! only for faults that can pass (5xx, 429/503 SlowDown, timeouts,
//! connection resets, truncated bodies), then exit 4 with the last error.
//!
//! rust-s3's own retry is a process-wide setting without jitter that covers
//! only some requests; it is switched off and every request goes through
//! [`Retry::run`] instead, so every request kind is retried the same way
//! and every attempt is counted (each attempt is billed).

use crate::exit::{Exit, fail};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A failed attempt: either worth another try, or final.
#[derive(Debug)]
pub struct Fault {
    /// True when the same request may succeed if tried again.
    pub transient: bool,
    /// What went wrong (final faults carry their exit code).
    pub error: anyhow::Error,
}

impl Fault {
    /// A fault worth retrying.
    pub fn transient(error: anyhow::Error) -> Fault {
        Fault {
            transient: true,
            error,
        }
    }

    /// A fault that retrying cannot fix.
    pub fn fatal(error: anyhow::Error) -> Fault {
        Fault {
            transient: false,
            error,
        }
    }
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    /// The first backoff; each retry doubles it.
    pub base: Duration,
    /// The longest single backoff.
    pub cap: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(20),
        }
    }
}

impl Retry {
    /// Runs `attempt` (given the attempt number, from 0) until it succeeds,
    /// fails for good, or runs out of tries; `what` names the request in
    /// the final error. Exhausted retries exit 4 ("try again later").
    pub fn run<T>(
        &self,
        what: &str,
        mut attempt: impl FnMut(u32) -> Result<T, Fault>,
    ) -> anyhow::Result<T> {
        let attempts = self.attempts.max(1);
        for n in 0..attempts {
            match attempt(n) {
                Ok(value) => return Ok(value),
                Err(fault) if !fault.transient => {
                    return Err(fault.error.context(what.to_string()));
                }
                Err(fault) if n + 1 == attempts => {
                    return Err(fail(
                        Exit::Unavailable,
                        format!("{what}: {:#} (gave up after {attempts} tries)", fault.error),
                    ));
                }
                Err(_) => std::thread::sleep(self.backoff(n)),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// The pause after attempt `n`: half of the doubled delay fixed, half
    /// random ("equal jitter"), so that many clients failing together do
    /// not retry together, yet no retry comes at once.
    pub fn backoff(&self, n: u32) -> Duration {
        let doubled = self.base.saturating_mul(1u32 << n.min(16)).min(self.cap);
        let half = doubled / 2;
        half + half.mul_f64(random_unit())
    }
}

/// A number in [0, 1) from a small xorshift generator seeded by the clock
/// and process id: jitter needs spread, not cryptographic quality.
fn random_unit() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        x = nanos ^ (u64::from(std::process::id()) << 32) | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(attempts: u32) -> Retry {
        Retry {
            attempts,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
        }
    }

    #[test]
    fn retries_transient_faults_then_succeeds() {
        let mut calls = 0;
        let got = quick(3).run("get x", |_| {
            calls += 1;
            if calls < 3 {
                Err(Fault::transient(anyhow::anyhow!("503")))
            } else {
                Ok(7)
            }
        });
        assert_eq!(got.unwrap(), 7);
        assert_eq!(calls, 3);
    }

    #[test]
    fn gives_up_with_exit_4() {
        let mut calls = 0;
        let err = quick(2)
            .run::<()>("put x", |_| {
                calls += 1;
                Err(Fault::transient(anyhow::anyhow!("connection reset")))
            })
            .unwrap_err();
        assert_eq!(calls, 2);
        assert_eq!(crate::exit::exit_of(&err), Exit::Unavailable);
        assert_eq!(
            format!("{err:#}"),
            "put x: connection reset (gave up after 2 tries)"
        );
    }

    #[test]
    fn fatal_faults_are_not_retried() {
        let mut calls = 0;
        let err = quick(5)
            .run::<()>("get x", |_| {
                calls += 1;
                Err(Fault::fatal(fail(Exit::NotFound, "no such object")))
            })
            .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(crate::exit::exit_of(&err), Exit::NotFound);
    }

    #[test]
    fn backoff_grows_within_bounds() {
        let r = Retry {
            attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        for n in 0..8 {
            let d = r.backoff(n);
            let full = Duration::from_millis((100u64 << n).min(1000));
            assert!(d >= full / 2 && d <= full, "attempt {n}: {d:?}");
        }
    }
}
