//! Exit codes from the design contract and errors that carry one.
//!
//! Every failure a tool reports maps to one of six codes so that shell
//! scripts and cron can tell "try again later" (4) from "refused for
//! safety" (5) without parsing messages. An error created with [`fail`]
//! keeps its code however much `anyhow` context is wrapped around it.

use std::fmt;
use std::process::ExitCode;

/// The exit statuses of `../shared/design.md`, in one place.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked was done, including "nothing to do".
    Ok = 0,
    /// At least one item failed; the others were still processed.
    Failed = 1,
    /// Usage or configuration error: bad flag, bad address, no credentials.
    Usage = 2,
    /// Not found: source database, remote object, no snapshot under a prefix.
    NotFound = 3,
    /// Temporarily unavailable after retries: try again later.
    Unavailable = 4,
    /// Refused for safety: would overwrite a live database, delete too much.
    Refused = 5,
}

impl Exit {
    /// The numeric status handed to the operating system.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// An error that knows its exit code; the message is the whole cause.
#[derive(Debug)]
pub struct Coded {
    /// The status the tool should end with when this error decides it.
    pub exit: Exit,
    message: String,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// Builds an error with an exit code, so callers can write
/// `return Err(fail(Exit::NotFound, "no such file"))`.
pub fn fail(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        exit,
        message: message.into(),
    })
}

/// The exit code an error asks for.
///
/// An explicit [`Coded`] anywhere in the chain wins; otherwise a few causes
/// are recognised on their own (a missing file is "not found", a busy
/// database is "try again later"), and anything else is a plain failure.
pub fn exit_of(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(coded) = cause.downcast_ref::<Coded>() {
            return coded.exit;
        }
    }
    if crate::store::is_no_such_bucket(err) {
        return Exit::NotFound;
    }
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::NotFound
        {
            return Exit::NotFound;
        }
        if let Some(rusqlite::Error::SqliteFailure(e, _)) = cause.downcast_ref::<rusqlite::Error>()
            && matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        {
            return Exit::Unavailable;
        }
    }
    Exit::Failed
}

/// True when the error is a write to a closed pipe, which ends a tool
/// quietly (`sqlite-snap … | head -1`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The outcome of a run over many items: tools go on after an item fails
/// and decide the exit status once at the end.
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
    pub fn report(&mut self, log: &crate::log::Log, subject: &str, err: &anyhow::Error) {
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
    use anyhow::Context;

    #[test]
    fn code_survives_context() {
        let err = Err::<(), _>(fail(Exit::Refused, "would overwrite"))
            .context("restoring app.sqlite3")
            .unwrap_err();
        assert_eq!(exit_of(&err), Exit::Refused);
        assert_eq!(format!("{err:#}"), "restoring app.sqlite3: would overwrite");
    }

    #[test]
    fn missing_file_is_not_found() {
        let err = anyhow::Error::new(std::fs::File::open("/nonexistent/x").unwrap_err());
        assert_eq!(exit_of(&err), Exit::NotFound);
    }

    #[test]
    fn tally_keeps_a_shared_code_and_mixes_to_one() {
        let mut t = Tally::default();
        assert_eq!(t.exit(), Exit::Ok);
        t.fail(Exit::NotFound);
        t.fail(Exit::NotFound);
        assert_eq!(t.exit(), Exit::NotFound);
        t.fail(Exit::Refused);
        assert_eq!(t.exit(), Exit::Failed);
    }
}
