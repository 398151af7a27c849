//! The command line of `blob-sync`, from which its man page and shell
//! completions are generated.

use clap::Parser;
use sqlkeep_common::crypt::args::EncryptArgs;
use sqlkeep_common::exit::Exit;
use sqlkeep_common::log::LogArgs;
use sqlkeep_common::manual::{self, Manual, Var};
use sqlkeep_common::store::RemoteArgs;
use std::path::PathBuf;

/// What blob-sync reads from the environment besides the remote's settings.
const ENVIRONMENT: &[Var] = &[Var {
    name: "XDG_CACHE_HOME",
    meaning: "Where the manifest of each destination is cached without --cache-dir: \
$XDG_CACHE_HOME/sqlkeep/blob-sync, else ~/.cache/sqlkeep/blob-sync.",
}];

/// The examples, credentials, environment and exit statuses of `blob-sync`, for
/// its `--help` and man page.
pub const MANUAL: Manual = Manual {
    examples: &[
        "blob-sync storage/ b2:my-bucket/files                 # nightly, Active Storage",
        "blob-sync --delete storage/ s3://my-bucket/files       # also remove deleted uploads",
        "blob-sync --dry-run --delete storage/ /mnt/nas/files   # show the plan",
        "blob-sync s3://my-bucket/files storage/                # restore",
        "blob-sync --recipients-file keys.txt storage/ s3://my-bucket/files   # encrypted",
        "blob-sync -i key.txt s3://my-bucket/files storage/     # restore an encrypted tree",
    ],
    credentials: manual::REMOTE_CREDENTIALS,
    environment: &[
        manual::S3,
        manual::RCLONE,
        manual::TLS,
        ENVIRONMENT,
        manual::HOME,
        manual::IDENTITY,
        manual::PASSPHRASE_ENV,
    ],
    exit_status: &[
        (Exit::Ok, "in sync"),
        (Exit::Failed, "a file failed (others still copied)"),
        (Exit::Usage, "usage"),
        (Exit::NotFound, "source not found"),
        (Exit::Unavailable, "storage unavailable after retries"),
        (
            Exit::Refused,
            "refused (source empty or missing, too many deletes)",
        ),
    ],
};

/// Make a destination match a source: Active Storage files to a bucket
/// and back.
#[derive(Parser, Debug)]
#[command(
    name = "blob-sync",
    version,
    about = "Sync Active Storage files to a bucket and back, incrementally, cheaply, never wiping a good backup",
    long_about = "Make DEST match SOURCE, where either is a local directory or a remote \
(a directory, s3://bucket/prefix or name:bucket/prefix); remote to local is the restore. \
Only new or changed files are copied. SQLite files (*.sqlite3*, *-wal, *-shm, *-journal) \
are never copied unless --no-default-excludes: back them up with sqlite-snap.\n\n\
Change detection costs no request per file: the destination keeps a manifest of its \
state (path, size, modification time, SHA-256) in DEST/.sqlkeep-sync.json, written last \
and atomically, and a copy is cached locally ($XDG_CACHE_HOME/sqlkeep/blob-sync). An \
unchanged tree syncs with no request at all; the destination is listed only when it has \
no manifest yet or with --full-check (then files of equal size count as unchanged). A \
local file is hashed only when its size or modification time moved.\n\n\
With --delete, destination files no longer in the source are removed. The whole plan is \
computed first; nothing is changed, and the run exits 5, when the source is missing or \
empty (an unmounted volume) or the plan would delete more than --max-delete files \
(a number, or a percentage of the destination).\n\n\
Filters (rclone-like): a pattern without a leading / matches at the end of a path, at any \
depth (`*.tmp`, `cache/*.bin`); a leading / anchors it at the top (`/tmp/**`); `*` and `?` \
stay within one path segment, `**` crosses them, `{a,b}` and `[a-z]` as usual; a pattern \
ending in / stands for everything under that directory. A file is skipped when an \
exclude (default, --exclude, --exclude-from) matches it; when --include is given, a file \
must also match an include. Excluded files are never deleted from the destination.\n\n\
Encryption: with --recipient/--recipients-file (age public keys) or --passphrase-file/\
--passphrase-env, every file copied into DEST is encrypted with age while it streams, \
whether DEST is a remote or a directory; no plaintext or ciphertext copy is made. Files \
keep their names; DEST's manifest says whom they are encrypted to (public keys, or \
\"scrypt\" for a passphrase), and keeps each file's plaintext size and SHA-256 (so an \
unchanged file is not copied again) with the stored file's. Each file is plain age: \
`age -d -i key.txt FILE` reads it without sqlkeep. An encrypted DEST is never given \
plaintext: a run without recipients is refused (exit 2). A DEST holding plaintext, or \
encrypted to other recipients (or another passphrase), is re-encrypted whole: every file \
is copied again so all of DEST opens with the current keys; one WARN line says why and \
the record counts them (\"reencrypted\"). A re-encryption that would leave files of DEST \
behind (not in SOURCE, or filtered out) is refused (exit 5) unless --delete removes them. \
A passphrase costs scrypt's work (about a second) for every file, each age file having its \
own salt: for many files prefer keys. As a manifest can only say \"scrypt\", a run with \
files to copy first tries the passphrase on DEST's smallest file (one GET).\n\n\
Restoring an encrypted tree (a remote, or a directory, whose manifest says it is \
encrypted) into a local directory needs --identity (or SQLKEEP_AGE_IDENTITY_FILE) or the \
passphrase flags, which then decrypt; without them, or with an identity that cannot \
decrypt, the run exits 2 before any file is written. Each file is decrypted while it \
downloads, its stored bytes and its plaintext checked against the manifest, written to a \
temporary file, fsynced and renamed: a damaged or tampered file fails alone (exit 1), \
leaving whatever was at its path. With --full-check the manifest is read too (one GET): \
only it says whether, and to whom, the files are encrypted.",
    after_help = MANUAL.after_help()
)]
pub struct Args {
    /// What to copy from: a directory or a remote
    #[arg(value_name = "SOURCE", value_hint = clap::ValueHint::AnyPath)]
    pub source: String,

    /// What to make match it: a directory or a remote
    #[arg(value_name = "DEST", value_hint = clap::ValueHint::AnyPath)]
    pub dest: String,

    /// Remove destination files that are no longer in the source
    #[arg(long)]
    pub delete: bool,

    /// With --delete, refuse a plan deleting more than N files, or N% of the destination
    #[arg(long, value_name = "N|N%", default_value = "10%")]
    pub max_delete: String,

    /// Print the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Files copied at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub transfers: u32,

    /// List the destination instead of trusting its manifest
    #[arg(long)]
    pub full_check: bool,

    /// Skip files matching GLOB (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Skip files matching the patterns in FILE, one per line (# comments)
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub exclude_from: Vec<PathBuf>,

    /// Copy only files matching GLOB (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,

    /// Follow symbolic links in SOURCE and copy what they point to (default: skip them with a warning)
    #[arg(long)]
    pub copy_links: bool,

    /// Do not exclude SQLite files (*.sqlite3*, *-wal, *-shm, *-journal)
    #[arg(long)]
    pub no_default_excludes: bool,

    /// Where to cache destination manifests [default: $XDG_CACHE_HOME/sqlkeep/blob-sync]
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub cache_dir: Option<PathBuf>,

    /// Retries and timeouts.
    #[command(flatten)]
    pub remote_args: RemoteArgs,

    /// Whom files copied into the destination are encrypted to; the
    /// passphrase flags also open an encrypted source.
    #[command(flatten)]
    pub encrypt: EncryptArgs,

    /// Decrypt with the age identities in FILE (what age-keygen writes); repeatable [env: SQLKEEP_AGE_IDENTITY_FILE]
    #[arg(short = 'i', long, value_name = "FILE", value_hint = clap::ValueHint::FilePath,
          help_heading = "Decryption")]
    pub identity: Vec<PathBuf>,

    /// -q and -v.
    #[command(flatten)]
    pub log: LogArgs,
}
