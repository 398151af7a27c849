//! The command line of `bucket-push`, from which its man page and shell
//! completions are generated.

use clap::Parser;
use sqlkeep_common::log::LogArgs;
use sqlkeep_common::store::RemoteArgs;

/// Store snapshots and files in a remote, with manifests, atomically.
#[derive(Parser, Debug)]
#[command(
    name = "bucket-push",
    version,
    about = "Store snapshots and files in a remote, each with its manifest, atomically",
    long_about = "Store each snapshot in REMOTE as <db>/<stamp>.sqlite3.zst with its manifest \
<db>/<stamp>.json, then replace <db>/latest.json last, so that nothing ever names an \
object that is not complete. Prints one `object` record (JSON) per stored file.\n\n\
Inputs are the FILE arguments, or else stdin lines: `snapshot` records from sqlite-snap, \
or plain paths. A path named like a snapshot (<db>-<stamp>.sqlite3.zst) is stored as one; \
any other file is stored as <name> with a manifest <name>.json carrying its SHA-256.\n\n\
The file's SHA-256 is checked against its record while it is copied; a mismatch stores \
nothing. A snapshot that sqlite-snap wrote to its private temporary directory \
(\"temporary\": true) is deleted once it is stored.\n\n\
REMOTE is a directory (./backups, /mnt/nas/db, file:///mnt/nas/db), s3://bucket/prefix, \
or name:bucket/prefix.",
    after_help = "Examples:\n  \
sqlite-snap storage/production.sqlite3 | bucket-push /mnt/backups/databases\n  \
bucket-push ./backups app-20261122T030000Z.sqlite3.zst\n\n\
Exit status: 0 all stored, 1 a file failed (checksum, I/O), 2 usage or bad remote, \
3 input file not found, 4 storage unavailable after retries."
)]
pub struct Args {
    /// Where to store: a directory, s3://bucket/prefix or name:bucket/prefix
    #[arg(value_name = "REMOTE", value_hint = clap::ValueHint::DirPath)]
    pub remote: String,

    /// Files to store (default: records or paths from stdin)
    #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub files: Vec<String>,

    /// Retries and timeouts.
    #[command(flatten)]
    pub remote_args: RemoteArgs,

    /// -q and -v.
    #[command(flatten)]
    pub log: LogArgs,
}
