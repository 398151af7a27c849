//! The command line of `sqlite-maint`, from which its man page and shell
//! completions are generated.

use clap::{Parser, ValueEnum};
use sqlkeep_common::exit::Exit;
use sqlkeep_common::log::LogArgs;
use sqlkeep_common::manual::{Manual, Var};

/// SQLite's auto_vacuum modes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum AutoVacuum {
    /// Freed pages stay in the file until a full VACUUM (SQLite's default)
    None,
    /// Every commit gives freed pages back to the file system
    Full,
    /// Freed pages are given back when PRAGMA incremental_vacuum runs
    Incremental,
}

impl AutoVacuum {
    /// The value `PRAGMA auto_vacuum` uses.
    pub fn number(self) -> i64 {
        match self {
            AutoVacuum::None => 0,
            AutoVacuum::Full => 1,
            AutoVacuum::Incremental => 2,
        }
    }

    /// The mode a `PRAGMA auto_vacuum` value stands for.
    pub fn from_number(n: i64) -> AutoVacuum {
        match n {
            1 => AutoVacuum::Full,
            2 => AutoVacuum::Incremental,
            _ => AutoVacuum::None,
        }
    }

    /// The name used in records.
    pub fn name(self) -> &'static str {
        match self {
            AutoVacuum::None => "none",
            AutoVacuum::Full => "full",
            AutoVacuum::Incremental => "incremental",
        }
    }
}

/// WAL checkpoint modes (`PRAGMA wal_checkpoint(MODE)`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Checkpoint {
    /// Copy what it can without waiting for anyone
    Passive,
    /// Wait for writers, then copy every frame
    Full,
    /// As full, then wait for readers so the WAL restarts from the beginning
    Restart,
    /// As restart, then truncate the WAL file to zero bytes
    Truncate,
}

impl Checkpoint {
    /// The mode's SQL name.
    pub fn sql(self) -> &'static str {
        match self {
            Checkpoint::Passive => "PASSIVE",
            Checkpoint::Full => "FULL",
            Checkpoint::Restart => "RESTART",
            Checkpoint::Truncate => "TRUNCATE",
        }
    }
}

/// What sqlite-maint reads from the environment.
const ENVIRONMENT: &[Var] = &[
    Var {
        name: "SQLITE_TMPDIR",
        meaning: "Where SQLite writes the temporary copy a --rebuild (VACUUM) makes; its free \
space is checked before starting.",
    },
    Var {
        name: "TMPDIR",
        meaning: "The same, when SQLITE_TMPDIR is not set (else /var/tmp, /usr/tmp, /tmp).",
    },
];

/// The examples, credentials, environment and exit statuses of `sqlite-maint`, for
/// its `--help` and man page.
pub const MANUAL: Manual = Manual {
    examples: &[
        "# once: convert, so that freed pages can be given back",
        "sqlite-maint --auto-vacuum incremental --rebuild storage/production_cache.sqlite3",
        "# hourly from cron: reclaim at most 10,000 pages, truncate the WAL, refresh statistics",
        "sqlite-maint -q --incremental-vacuum=10000 --checkpoint truncate --optimize storage/",
        "# what would be reclaimed",
        "sqlite-maint --dry-run --incremental-vacuum --checkpoint truncate storage/*.sqlite3",
        "# which databases would gain from conversion, and how much; changes nothing",
        "sqlite-maint --status storage/",
    ],
    credentials: "Credentials: none; sqlite-maint works on local databases only.",
    environment: &[ENVIRONMENT],
    exit_status: &[
        (
            Exit::Ok,
            "all done (a database not converted to auto_vacuum = incremental is reported, not failed)",
        ),
        (
            Exit::Failed,
            "an operation failed or was skipped (read-only, an --auto-vacuum change without --rebuild, a damaged database)",
        ),
        (Exit::Usage, "usage"),
        (Exit::NotFound, "database not found"),
        (
            Exit::Unavailable,
            "database busy past --busy-timeout or checkpoint blocked",
        ),
        (
            Exit::Refused,
            "refused (not enough free disk for --rebuild)",
        ),
    ],
};

/// Keep SQLite files from growing forever, safely, while the app runs.
#[derive(Parser, Debug)]
#[command(
    name = "sqlite-maint",
    version,
    about = "Keep SQLite files from growing forever: auto_vacuum, incremental vacuum, WAL checkpoints, optimize",
    long_about = "Maintain live SQLite databases from cron while the application writes. SQLite never \
shrinks a file by itself: pages freed by deleted rows (Solid Cache, Solid Queue) stay in it, and a \
WAL that grew during a long read stays large. Each operation runs only when asked; with none, \
sqlite-maint reports and changes nothing. Prints one `maint` record (JSON) per database with the \
file size, WAL size, page count, free pages and auto_vacuum mode before and after, what ran, \
the bytes reclaimed and how long the write lock was held.\n\n\
--status reports, without writing a byte, each database's auto_vacuum mode, page size, page count, \
free pages and WAL size, and what --incremental-vacuum or a one-time conversion would give back.\n\n\
Writes happen in short transactions (incremental vacuum in batches of 1,024 pages), each \
waiting at most --busy-timeout for the write lock (exit 4 if it never comes). A read-only file \
or directory (no write permission bits, whoever runs this) or a database SQLite can only open \
read-only is reported, with its writes skipped (WARN, exit 1). A WARN is printed before a \
checkpoint or rebuild when Litestream is replicating the database (a .<name>-litestream \
directory beside it).\n\n\
Switching auto_vacuum between none and full/incremental on an existing database needs a \
one-time VACUUM, run only with --rebuild: it holds the write lock for the whole rebuild and \
needs free disk of about the database's size (refused with exit 5 when there is not). \
--incremental-vacuum on a database never converted is not a failure: it is skipped, and the \
record's conversion_would_reclaim_bytes says what converting would give back (exit 0).",
    after_help = MANUAL.after_help()
)]
pub struct Args {
    /// Databases, or directories of *.sqlite3 databases (default: stdin lines)
    #[arg(value_name = "DB|DIR", value_hint = clap::ValueHint::AnyPath)]
    pub inputs: Vec<String>,

    /// Set the auto_vacuum mode (switching to or from none needs --rebuild)
    #[arg(long, value_enum, value_name = "MODE")]
    pub auto_vacuum: Option<AutoVacuum>,

    /// Allow the one-time VACUUM that an auto_vacuum change needs
    #[arg(long, requires = "auto_vacuum")]
    pub rebuild: bool,

    /// Give free pages back to the file system: all, or at most PAGES per run
    #[arg(long, value_name = "PAGES", num_args = 0..=1, require_equals = true, default_missing_value = "0")]
    pub incremental_vacuum: Option<u64>,

    /// Checkpoint the WAL into the database
    #[arg(long, value_enum, value_name = "MODE")]
    pub checkpoint: Option<Checkpoint>,

    /// Run PRAGMA optimize (refresh query planner statistics where useful)
    #[arg(long)]
    pub optimize: bool,

    /// Run ANALYZE (recompute all query planner statistics)
    #[arg(long)]
    pub analyze: bool,

    /// Report what would be done and reclaimed; write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Report each database's auto_vacuum mode, pages, free pages, WAL size and what conversion would gain; write nothing
    #[arg(long, conflicts_with_all = ["auto_vacuum", "rebuild", "incremental_vacuum", "checkpoint", "optimize", "analyze", "dry_run"])]
    pub status: bool,

    /// How long to wait for the write lock, e.g. 5s
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub busy_timeout: String,

    /// Skip databases in directories whose file name or path matches GLOB (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// -q and -v.
    #[command(flatten)]
    pub log: LogArgs,
}
