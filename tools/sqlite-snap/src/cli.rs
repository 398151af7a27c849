//! The command line of `sqlite-snap`, from which its man page and shell
//! completions are generated.

use clap::{Parser, ValueEnum};
use sqlkeep_common::crypt::args::EncryptArgs;
use sqlkeep_common::exit::Exit;
use sqlkeep_common::log::LogArgs;
use sqlkeep_common::manual::{self, Manual, Var};
use std::path::PathBuf;

/// How the consistent copy is made.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Read every page inside one read transaction (sqlite_dbpage) and
    /// stream it into zstd: fastest, no uncompressed temporary copy
    Pages,
    /// VACUUM INTO a temporary file, then compress it: a compacted copy,
    /// slower, needs free disk for the uncompressed copy
    Vacuum,
}

impl Method {
    /// The name used in records.
    pub fn name(self) -> &'static str {
        match self {
            Method::Pages => "pages",
            Method::Vacuum => "vacuum",
        }
    }
}

/// What sqlite-snap reads from the environment.
const ENVIRONMENT: &[Var] = &[
    Var {
        name: "TMPDIR",
        meaning: "Without --output-dir, snapshots are written to a private directory \
$TMPDIR/sqlkeep-<uid> (mode 0700; default /tmp), from which bucket-push removes them once stored.",
    },
    Var {
        name: "XDG_STATE_HOME",
        meaning: "Where --incremental keeps page digests without --state-dir: \
$XDG_STATE_HOME/sqlkeep, else /var/lib/sqlkeep for root, else ~/.local/state/sqlkeep.",
    },
    Var {
        name: "HOME",
        meaning: "The base of ~/.local/state/sqlkeep.",
    },
    Var {
        name: "SQLKEEP_RACY_NS",
        meaning: "For tests only: how long before --incremental records a file's state its last \
change must be for the file to be trusted unchanged, in nanoseconds (default 2000000000).",
    },
];

/// The examples, credentials, environment and exit statuses of `sqlite-snap`, for
/// its `--help` and man page.
pub const MANUAL: Manual = Manual {
    examples: &[
        "sqlite-snap storage/production.sqlite3 | bucket-push /mnt/backups/databases",
        "sqlite-snap --exclude '*_cache.sqlite3' storage/ | bucket-push b2:my-bucket/databases",
        "sqlite-snap --method vacuum --level 9 -o /srv/snapshots app.sqlite3",
        "sqlite-snap --incremental storage/production.sqlite3 | bucket-push b2:my-bucket/databases",
        "sqlite-snap --recipients-file /etc/sqlkeep/recipients.txt storage/ | bucket-push b2:my-bucket/databases",
    ],
    credentials: "Credentials: none; sqlite-snap reads local files only (bucket-push holds the storage keys).",
    environment: &[ENVIRONMENT, manual::PASSPHRASE_ENV],
    exit_status: &[
        (Exit::Ok, "all done"),
        (Exit::Failed, "a snapshot failed"),
        (Exit::Usage, "usage"),
        (Exit::NotFound, "database not found"),
        (Exit::Unavailable, "database busy past --busy-timeout"),
        (Exit::Refused, "refused (unsafe output directory)"),
    ],
};

/// Take transactionally consistent, compressed, checksummed snapshots of
/// live SQLite databases.
#[derive(Parser, Debug)]
#[command(
    name = "sqlite-snap",
    version,
    about = "Take consistent, compressed, checksummed snapshots of live SQLite databases",
    long_about = "Take a transactionally consistent snapshot of each SQLite database while \
its application keeps writing, compress it with zstd, and print one `snapshot` record \
(JSON) per database on stdout. The snapshot is a plain SQLite file: `zstd -d` alone \
restores it.\n\nA directory argument means the *.sqlite3 files in it. With no arguments, \
each stdin line is a path or a JSON record with a `path`. Snapshots are written to \
--output-dir, or to a private directory under $TMPDIR (the record then says \
\"temporary\": true, and bucket-push removes the file once it is stored).\n\n\
With --recipient or --recipients-file (age public keys), or a passphrase from \
--passphrase-file or --passphrase-env, the compressed snapshot is encrypted with age as it is \
written (<name>.sqlite3.zst.age): only the holder of a matching identity can read it, and \
`age -d -i key.txt FILE | zstd -d > db.sqlite3` restores it without sqlkeep. The record \
says \"encryption\" with the public keys; its sha256 is of the encrypted file and its \
raw_sha256 of the database.",
    after_help = MANUAL.after_help()
)]
pub struct Args {
    /// Databases, or directories of *.sqlite3 databases (default: stdin lines)
    #[arg(value_name = "DB|DIR", value_hint = clap::ValueHint::AnyPath)]
    pub inputs: Vec<String>,

    /// Directory to write snapshots to (created if missing) [default: a private directory under $TMPDIR]
    #[arg(short, long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub output_dir: Option<PathBuf>,

    /// How to copy the database [default: pages]
    #[arg(long, value_enum)]
    pub method: Option<Method>,

    /// zstd compression level
    #[arg(long, value_name = "N", default_value_t = 3, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-7..=22))]
    pub level: i32,

    /// Write an uncompressed .sqlite3 file instead of .sqlite3.zst
    #[arg(long, conflicts_with = "level")]
    pub no_compress: bool,

    /// Compression worker threads [default: CPU cores, at most 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: Option<u32>,

    /// Databases snapshotted at once; records still leave in input order. The zstd workers are shared among the jobs, so memory does not multiply (measured on 4 × 2 GB: 36 MiB with 1 job, 19 MiB with 2, 31 MiB with 4) [default: CPU cores, at most 4]
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: Option<u32>,

    /// Skip databases in directories whose file name or path matches GLOB (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Store only the pages that changed since the last snapshot that
    /// reached storage (a delta), after a first full snapshot; bucket-push
    /// commits the new state once the delta is stored
    #[arg(long, conflicts_with_all = ["no_compress", "method"])]
    pub incremental: bool,

    /// Where --incremental keeps each database's page digests [default:
    /// $XDG_STATE_HOME/sqlkeep, /var/lib/sqlkeep for root, else
    /// ~/.local/state/sqlkeep]
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath, requires = "incremental")]
    pub state_dir: Option<PathBuf>,

    /// With --incremental: a full snapshot at least this often
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "24h",
        requires = "incremental"
    )]
    pub full_every: String,

    /// With --incremental: a level-1 delta (against the last full or
    /// level-1 point) at least this often; other runs take a level-2 delta
    /// against the previous point
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1h",
        requires = "incremental"
    )]
    pub diff_every: String,

    /// With --incremental: at most N level-2 deltas between level-1 points
    #[arg(long, value_name = "N", default_value_t = 59, requires = "incremental")]
    pub deltas_per_diff: usize,

    /// With --incremental: at most N level-1 deltas between full snapshots
    /// (a restore reads at most 1 + this + --deltas-per-diff objects)
    #[arg(long, value_name = "N", default_value_t = 23, requires = "incremental")]
    pub diffs_per_full: usize,

    /// How long to wait for a locked database, e.g. 5s or 1m
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub busy_timeout: String,

    /// Whom snapshots are encrypted to.
    #[command(flatten)]
    pub encrypt: EncryptArgs,

    /// -q and -v.
    #[command(flatten)]
    pub log: LogArgs,
}
