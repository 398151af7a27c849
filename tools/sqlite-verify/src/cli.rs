//! The command line of `sqlite-verify`, from which its man page and shell
//! completions are generated.

use clap::Parser;
use sqlkeep_common::exit::Exit;
use sqlkeep_common::log::LogArgs;
use sqlkeep_common::manual::{Manual, Var};

/// What sqlite-verify reads from the environment.
const ENVIRONMENT: &[Var] = &[Var {
    name: "TMPDIR",
    meaning: "A compressed snapshot is decompressed to check it into a private directory \
$TMPDIR/sqlkeep-<uid> (mode 0700; default /tmp), and removed afterwards.",
}];

/// The examples, credentials, environment and exit statuses of `sqlite-verify`, for
/// its `--help` and man page.
pub const MANUAL: Manual = Manual {
    examples: &[
        "bucket-pull b2:my-bucket/databases/production -o /tmp/drill.sqlite3 | sqlite-verify --max-age 26h --expect-table users",
        "sqlite-verify --quick storage/*.sqlite3",
        "sqlite-snap app.sqlite3 | sqlite-verify --min-rows users=1",
    ],
    credentials: "Credentials: none; sqlite-verify reads local files only (bucket-pull holds the storage keys).",
    environment: &[ENVIRONMENT],
    exit_status: &[
        (Exit::Ok, "every database passed"),
        (Exit::Failed, "a check failed (or nothing to verify)"),
        (Exit::Usage, "usage"),
    ],
};

/// Check SQLite databases and snapshots.
#[derive(Parser, Debug)]
#[command(
    name = "sqlite-verify",
    version,
    about = "Check SQLite databases and snapshots: integrity, foreign keys, checksums, freshness",
    long_about = "Check each database read-only and print one `verified` record (JSON) per \
database, with `ok`, the result of every check and each table's row count. Exits 0 only \
if every database passed, 1 otherwise, and 1 when no database arrived at all: a restore \
drill whose restore failed must fail too.\n\n\
Inputs are DB arguments, or else stdin lines: paths, or any record with a `path` \
(`restored` records from bucket-pull, `snapshot` records from sqlite-snap). A .zst \
snapshot is decompressed to a private temporary file first. When the record carries \
`sha256`/`raw_sha256`, they are checked; `--max-age` is checked against its `taken_at` \
(or the stamp in a snapshot's file name).",
    after_help = MANUAL.after_help()
)]
pub struct Args {
    /// Databases or .zst snapshots (default: paths or records from stdin)
    #[arg(value_name = "DB", value_hint = clap::ValueHint::FilePath)]
    pub inputs: Vec<String>,

    /// Run PRAGMA quick_check instead of the full integrity_check
    #[arg(long)]
    pub quick: bool,

    /// Fail when the snapshot was taken longer ago than DURATION (e.g. 26h, 7d)
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,

    /// Fail unless the table exists (repeatable)
    #[arg(long, value_name = "NAME")]
    pub expect_table: Vec<String>,

    /// Fail unless TABLE has at least N rows (repeatable)
    #[arg(long, value_name = "TABLE=N")]
    pub min_rows: Vec<String>,

    /// How long to wait for a locked database, e.g. 5s
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub busy_timeout: String,

    /// -q and -v.
    #[command(flatten)]
    pub log: LogArgs,
}
