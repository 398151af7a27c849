//! Exit codes from the design contract, and the errors that carry one.
//!
//! This is the bottom of `common/`: it imports nothing from the crate, so
//! every other module may use it (issue 10 found `exit` importing `store`,
//! a ten-module import circle). Every failure a tool reports maps to one
//! of six codes so that shell scripts and cron can tell "try again later"
//! (4) from "refused for safety" (5) without parsing messages. An error
//! created with [`fail`] keeps its code however much `anyhow` context is
//! wrapped around it.
//!
//! The few causes that callers must tell apart by kind, not by code (a
//! missing bucket against a missing object, a lost conditional write, a
//! full disk) are typed errors here too, so that storage and file code
//! above can raise them and anyone can recognise them.

use std::fmt;
use std::path::Path;
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

/// The bucket itself does not exist. Kept apart from a missing object, so
/// a caller for whom a missing object is normal (no `latest.json` yet)
/// does not swallow it. Exits 3.
#[derive(Debug)]
pub struct NoSuchBucket(pub String);

impl fmt::Display for NoSuchBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no such bucket ({})", self.0)
    }
}

impl std::error::Error for NoSuchBucket {}

/// True when the error says the bucket does not exist.
pub fn is_no_such_bucket(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<NoSuchBucket>())
}

/// A conditional write lost: the object changed (or appeared) since it
/// was read. The caller re-reads and decides again; if it gives up, the
/// run is "try again later" (exit 4).
#[derive(Debug)]
pub struct Conflict(pub String);

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} changed while this run was writing it", self.0)
    }
}

impl std::error::Error for Conflict {}

/// True when the error is a lost conditional write.
pub fn is_conflict(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<Conflict>())
}

/// True when the error means "that object or file is not there" (but the
/// bucket is): for a manifest or `latest.json`, a question answered "no".
pub fn is_missing(err: &anyhow::Error) -> bool {
    exit_of(err) == Exit::NotFound && !is_no_such_bucket(err)
}

/// True for the I/O errors that mean the file system is full: ENOSPC, and
/// EDQUOT (a quota), which operators fix the same way.
pub fn is_no_space(io: &std::io::Error) -> bool {
    matches!(
        io.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(io.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Describes an I/O error on `path` in the words an operator acts on: a
/// full disk is "PATH: no space left on device" (exit 1) wherever it
/// happens, never a damaged snapshot or a network fault.
pub fn io_error(path: &Path, what: &str, io: std::io::Error) -> anyhow::Error {
    if is_no_space(&io) {
        return no_space(path);
    }
    anyhow::Error::new(io).context(format!("{what} {}", path.display()))
}

/// The error for a full file system at `path`.
pub fn no_space(path: &Path) -> anyhow::Error {
    fail(
        Exit::Failed,
        format!(
            "{}: no space left on device (free some space or write elsewhere)",
            path.display()
        ),
    )
}

/// True when a full file system appears anywhere in the error's chain.
pub fn has_no_space(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(is_no_space)
            || cause
                .downcast_ref::<Coded>()
                .is_some_and(|c| c.message.contains("no space left on device"))
    })
}

/// The exit code an error asks for.
///
/// An explicit [`Coded`] anywhere in the chain wins; otherwise a few causes
/// are recognised on their own (a missing file or bucket is "not found", a
/// busy database or a lost conditional write is "try again later"), and
/// anything else is a plain failure.
pub fn exit_of(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(coded) = cause.downcast_ref::<Coded>() {
            return coded.exit;
        }
    }
    if is_no_such_bucket(err) {
        return Exit::NotFound;
    }
    if is_conflict(err) {
        return Exit::Unavailable;
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
        assert!(is_missing(&err));
        let bucket = anyhow::Error::new(NoSuchBucket("b".into()));
        assert_eq!(exit_of(&bucket), Exit::NotFound);
        assert!(!is_missing(&bucket));
    }

    #[test]
    fn full_disk_is_named_as_such() {
        let io = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let err = io_error(Path::new("/srv/x.tmp"), "writing", io);
        assert_eq!(
            format!("{err:#}"),
            "/srv/x.tmp: no space left on device (free some space or write elsewhere)"
        );
        assert_eq!(exit_of(&err), Exit::Failed);
        assert!(has_no_space(&err));
        let quota = std::io::Error::from_raw_os_error(libc::EDQUOT);
        assert!(is_no_space(&quota));
    }

    #[test]
    fn lost_conditional_write_is_try_again() {
        let err = anyhow::Error::new(Conflict("latest.json".into())).context("storing");
        assert_eq!(exit_of(&err), Exit::Unavailable);
        assert!(is_conflict(&err));
    }
}
