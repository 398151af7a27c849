//! The command line of `bucket-pull`, from which its man page and shell
//! completions are generated.

use clap::Parser;
use sqlkeep_common::crypt::args::DecryptArgs;
use sqlkeep_common::exit::Exit;
use sqlkeep_common::log::LogArgs;
use sqlkeep_common::manual::{self, Manual};
use sqlkeep_common::store::RemoteArgs;
use std::path::PathBuf;

/// The examples, credentials, environment and exit statuses of `bucket-pull`, for
/// its `--help` and man page.
pub const MANUAL: Manual = Manual {
    examples: &[
        "bucket-pull /mnt/backups/databases/production -o storage/production.sqlite3 --if-missing",
        "bucket-pull b2:my-bucket/databases/production --latest -o /tmp/drill.sqlite3 | sqlite-verify --max-age 26h",
        "bucket-pull ./backups/app/20261122T030000Z-c80998b8.sqlite3.zst -o restored.sqlite3",
        "bucket-pull s3://my-bucket/databases/production --list",
        "bucket-pull s3://my-bucket/databases --all -o storage/ --if-missing",
        "bucket-pull b2:my-bucket/databases/production -i ~/.config/sqlkeep/key.txt -o /tmp/drill.sqlite3",
        "bucket-pull s3://my-bucket/databases/production --at 2026-11-20 -o /tmp/before.sqlite3",
        "bucket-pull s3://my-bucket/databases/production --at 2026-11-20T14:30:00Z -o /tmp/before.sqlite3",
    ],
    credentials: manual::REMOTE_CREDENTIALS,
    environment: &[
        manual::S3,
        manual::RCLONE,
        manual::TLS,
        manual::HOME,
        manual::IDENTITY,
        manual::PASSPHRASE_ENV,
        manual::TMPDIR,
    ],
    exit_status: &[
        (Exit::Ok, "restored (or present, with --if-missing)"),
        (Exit::Failed, "a check failed"),
        (Exit::Usage, "usage"),
        (Exit::NotFound, "no such snapshot"),
        (Exit::Unavailable, "storage unavailable after retries"),
        (Exit::Refused, "refused to replace a file"),
    ],
};

/// Download, check, decompress and restore snapshots atomically.
#[derive(Parser, Debug)]
#[command(
    name = "bucket-pull",
    version,
    about = "Download, check, decompress and restore snapshots atomically",
    long_about = "Restore a database from a remote. SOURCE is a database's prefix \
(<remote>/<db>: its newest snapshot, named by latest.json) or one object's address \
(<remote>/<db>/<stamp>-<tag>.sqlite3.zst); with no SOURCE, `object` records are read from stdin. \
A manifest that lacks a checksum, or names anything outside its database's prefix, is \
refused (exit 1) before anything is written.\n\n\
The stored SHA-256 is checked while the object streams in, the data is decompressed and \
its raw SHA-256 checked, and only then is the file fsynced and renamed into place: a failed \
restore leaves the previous file untouched. A replaced database is first checkpointed, \
its -wal, -shm and -journal are moved aside until the new file is in place, then removed: \
a restore killed at any moment leaves the old database with every committed row, or the \
new one. Prints one `restored` record (JSON) per file.\n\n\
An existing non-empty file is never replaced without --force (exit 5), a file another \
process has open never without --even-if-open as well (exit 5), and a target that is not \
a regular file (a device, a FIFO) never at all. One exception makes a daily drill work \
every day: a file bucket-pull itself restored, whose bytes are still exactly those it \
wrote (SHA-256, noted under the state directory) and whose -wal and -journal hold \
nothing, is replaced without --force. With --if-missing, a present database is \
left alone and the run exits 0: the boot-time restore for a fresh Fly.io volume or a new \
server. -o DIR/ (with the slash) names a directory, created if missing.\n\n\
A restored file gets the owner, group and mode of the file it replaces, or else the owner \
and group of its directory and mode 600 (so a restore run as root into the app's storage \
leaves a file the app can open); --owner and --mode override them.\n\n\
An encrypted snapshot (sqlite-snap --recipient; its manifest says to whom) is decrypted \
with --identity FILE (age identity files, repeatable; or SQLKEEP_AGE_IDENTITY_FILE) or a \
passphrase (--passphrase-file, --passphrase-env). No identity, or none that matches: exit 2, \
naming the recipients. A tampered ciphertext: exit 1, and nothing is written to the target. \
An identity file others can read gets a WARN.",
    after_help = MANUAL.after_help()
)]
pub struct Args {
    /// A database prefix (<remote>/<db>) or an object address (default: object records from stdin)
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,

    /// File to restore to, or a directory to restore into as <db>.sqlite3 [default: ./<db>.sqlite3]
    #[arg(short, long, value_name = "PATH", value_hint = clap::ValueHint::AnyPath)]
    pub output: Option<PathBuf>,

    /// Restore the newest snapshot under a prefix (the default for prefixes)
    #[arg(long)]
    pub latest: bool,

    /// Replace an existing non-empty file (stop the application first); not needed for an unchanged file bucket-pull restored (a drill's scratch file)
    #[arg(long, conflicts_with = "if_missing")]
    pub force: bool,

    /// Replace the target even when another process has it open (its writes go to the old file and are lost)
    #[arg(long, requires = "force")]
    pub even_if_open: bool,

    /// Restore only when the target is absent or empty; otherwise exit 0 quietly
    #[arg(long)]
    pub if_missing: bool,

    /// Owner of the restored file, USER[:GROUP] (names or numbers) [default: the replaced file's, else the directory's owner and group]
    #[arg(long, value_name = "USER[:GROUP]", conflicts_with = "list")]
    pub owner: Option<String>,

    /// Mode of the restored file, in octal [default: the replaced file's, else 600]
    #[arg(long, value_name = "MODE", value_parser = parse_mode, conflicts_with = "list")]
    pub mode: Option<u32>,

    /// Restore the newest restore point taken at or before TIME (RFC 3339; 2026-11-20T14:30 for the end of that minute, or YYYY-MM-DD for the end of that day, UTC)
    #[arg(long, value_name = "TIME", conflicts_with = "latest")]
    pub at: Option<String>,

    /// Restore every database under SOURCE (each prefix holding a latest.json) into the directory -o, at its path relative to SOURCE (tenants/acme/production → DIR/tenants/acme/production.sqlite3)
    #[arg(long, requires = "output", conflicts_with_all = ["at", "list"])]
    pub all: bool,

    /// Print one `object` record per stored snapshot under each prefix, newest first (on a terminal: a table of time, kind, size and age), and restore nothing; a prefix holding databases lists them (`database` records)
    #[arg(long, conflicts_with_all = ["output", "force", "if_missing", "latest", "at"])]
    pub list: bool,

    /// Identities for encrypted snapshots.
    #[command(flatten)]
    pub decrypt: DecryptArgs,

    /// Retries and timeouts.
    #[command(flatten)]
    pub remote_args: RemoteArgs,

    /// -q and -v.
    #[command(flatten)]
    pub log: LogArgs,
}

/// An octal file mode (`640`, `0640`); no set-id or sticky bits.
fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{text:?} is not an octal file mode such as 640"))
}
