//! The outcome of a run over many items: tools go on after an item fails
//! and decide the exit status once at the end.
//!
//! Apart from [`crate::exit`] because it logs, and the log sits above the
//! error kinds.

use crate::exit::{Exit, exit_of};
use crate::log::Log;

/// Failures seen so far in a run.
#[derive(Debug, Default)]
pub struct Tally {
    failures: Vec<Exit>,
}

impl Tally {
    /// Records one failed item.
    pub fn fail(&mut self, exit: Exit) {
        self.failures.push(exit);
    }

    /// Logs a failed item's error as one ERROR line and counts it: what
    /// every tool does when an item fails and the run goes on.
    pub fn report(&mut self, log: &Log, subject: &str, err: &anyhow::Error) {
        log.error(subject, err);
        self.fail(exit_of(err));
    }

    /// How many items failed so far.
    pub fn failed(&self) -> usize {
        self.failures.len()
    }

    /// The run's status: 0 when nothing failed, the shared code when every
    /// failure had the same one (a lone missing database exits 3), else 1.
    pub fn exit(&self) -> Exit {
        match self.failures.split_first() {
            None => Exit::Ok,
            Some((first, rest)) if rest.iter().all(|e| e == first) => *first,
            Some(_) => Exit::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_shared_code_and_mixes_to_one() {
        let mut t = Tally::default();
        assert_eq!(t.exit(), Exit::Ok);
        t.fail(Exit::NotFound);
        t.fail(Exit::NotFound);
        assert_eq!(t.exit(), Exit::NotFound);
        t.fail(Exit::Refused);
        assert_eq!(t.exit(), Exit::Failed);
    }
}
