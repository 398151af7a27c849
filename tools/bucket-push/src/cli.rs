//! The command line of `bucket-push`, from which its man page and shell
//! completions are generated.

use clap::Parser;
use sqlkeep_common::exit::Exit;
use sqlkeep_common::log::LogArgs;
use sqlkeep_common::manual::{self, Manual, Var};
use sqlkeep_common::store::RemoteArgs;

/// What bucket-push reads from the environment besides the remote's settings.
const ENVIRONMENT: &[Var] = &[Var {
    name: "TMPDIR",
    meaning: "A snapshot sqlite-snap wrote without --output-dir is removed once stored only if it \
is in $TMPDIR/sqlkeep-<uid> (default /tmp), whatever its record says.",
}];

/// The examples, credentials, environment and exit statuses of `bucket-push`, for
/// its `--help` and man page.
pub const MANUAL: Manual = Manual {
    examples: &[
        "sqlite-snap storage/production.sqlite3 | bucket-push /mnt/backups/databases",
        "sqlite-snap storage/ | bucket-push --keep-daily 7 --keep-weekly 4 --keep-monthly 6 s3://bkt/databases",
        "bucket-push ./backups app-20261122T030000Z.sqlite3.zst",
    ],
    credentials: manual::REMOTE_CREDENTIALS,
    environment: &[
        manual::S3,
        manual::RCLONE,
        manual::TLS,
        manual::HOME,
        ENVIRONMENT,
    ],
    exit_status: &[
        (Exit::Ok, "all stored"),
        (Exit::Failed, "a file failed (checksum, I/O)"),
        (Exit::Usage, "usage or bad remote"),
        (Exit::NotFound, "input file not found"),
        (Exit::Unavailable, "storage unavailable after retries"),
        (
            Exit::Refused,
            "refused (--require-encryption and an input that is not encrypted)",
        ),
    ],
};

/// Store snapshots and files in a remote, with manifests, atomically.
#[derive(Parser, Debug)]
#[command(
    name = "bucket-push",
    version,
    about = "Store snapshots and files in a remote, each with its manifest, atomically",
    long_about = "Store each snapshot in REMOTE as <db>/<stamp>-<tag>.sqlite3.zst (the tag: 8 hex \
digits of its SHA-256, so two snapshots of one second never share a name) with its manifest \
<db>/<stamp>-<tag>.json, then <db>/latest.json, so that nothing ever names an object that \
is not complete. latest.json is read first and replaced only by a newer snapshot (with a \
conditional write where the storage enforces them): pushing an older snapshot stores it but \
leaves latest.json alone, and the record says \"latest\": false. Prints one `object` record \
(JSON) per stored file.\n\n\
Inputs are the FILE arguments, or else stdin lines: `snapshot` records from sqlite-snap, \
or plain paths. A path named like a snapshot (<db>-<stamp>[-<tag>].sqlite3.zst) is stored as one; \
any other file is stored as <name> with a manifest <name>.json carrying its SHA-256.\n\n\
The file's SHA-256 is checked against its record while it is copied; a mismatch stores \
nothing.\n\n\
Snapshots are encrypted where they are made (sqlite-snap --recipient): such a snapshot is \
stored as <stem>.sqlite3.zst.age (deltas <stem>.<base>.delta.zst.age), and its manifest \
says \"encryption\": {\"format\": \"age\", \"recipients\": [...]} with the public keys. \
--require-encryption refuses anything else.\n\n\
With --keep-* flags, each successful upload is followed by pruning that database's \
snapshots, restic-style on UTC calendar boundaries: one listing, then one DELETE per file \
(a snapshot's manifest before its object). The union of the rules is kept, and the newest \
snapshot and the one just uploaded are never deleted. Without --keep-* flags nothing is \
ever listed or deleted. A snapshot that sqlite-snap wrote to its private temporary directory \
(\"temporary\": true) is deleted once this run is done with it, stored or not (a failed push \
is retried by the next run with a new snapshot).\n\n\
REMOTE is a directory (./backups, /mnt/nas/db, file:///mnt/nas/db), s3://bucket/prefix, \
or name:bucket/prefix.",
    after_help = MANUAL.after_help()
)]
pub struct Args {
    /// Where to store: a directory, s3://bucket/prefix or name:bucket/prefix
    #[arg(value_name = "REMOTE", value_hint = clap::ValueHint::DirPath)]
    pub remote: String,

    /// Files to store (default: records or paths from stdin)
    #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub files: Vec<String>,

    /// After storing, keep the newest N snapshots of the database (with the other --keep rules: their union)
    #[arg(long, value_name = "N", help_heading = "Retention")]
    pub keep_last: Option<u32>,

    /// Keep the newest snapshot of each of the last N hours
    #[arg(long, value_name = "N", help_heading = "Retention")]
    pub keep_hourly: Option<u32>,

    /// Keep the newest snapshot of each of the last N days (UTC)
    #[arg(long, value_name = "N", help_heading = "Retention")]
    pub keep_daily: Option<u32>,

    /// Keep the newest snapshot of each of the last N ISO weeks
    #[arg(long, value_name = "N", help_heading = "Retention")]
    pub keep_weekly: Option<u32>,

    /// Keep the newest snapshot of each of the last N months
    #[arg(long, value_name = "N", help_heading = "Retention")]
    pub keep_monthly: Option<u32>,

    /// Keep every snapshot taken within DURATION of the newest (e.g. 48h, 14d)
    #[arg(long, value_name = "DURATION", help_heading = "Retention")]
    pub keep_within: Option<String>,

    /// Store nothing and delete nothing: print what would be stored and pruned (and to whom it is encrypted)
    #[arg(long)]
    pub dry_run: bool,

    /// Inputs stored at once (a thousand tenant databases); records still leave in input order. Each holds at most one upload's parts in memory (three parts of 5 MiB or more for a large file)
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub transfers: u32,

    /// Refuse (exit 5) any input that is not an age file: plaintext never reaches the remote
    #[arg(long, help_heading = "Encryption")]
    pub require_encryption: bool,

    /// Retries and timeouts.
    #[command(flatten)]
    pub remote_args: RemoteArgs,

    /// -q and -v.
    #[command(flatten)]
    pub log: LogArgs,
}
