//! The command line of `blob-sync`, from which its man page and shell
//! completions are generated.

use clap::Parser;
use sqlkeep_common::log::LogArgs;
use sqlkeep_common::store::RemoteArgs;
use std::path::PathBuf;

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
must also match an include. Excluded files are never deleted from the destination.",
    after_help = "Examples:\n  \
blob-sync storage/ b2:my-bucket/files                 # nightly, Active Storage\n  \
blob-sync --delete storage/ s3://my-bucket/files       # also remove deleted uploads\n  \
blob-sync --dry-run --delete storage/ /mnt/nas/files   # show the plan\n  \
blob-sync s3://my-bucket/files storage/                # restore\n\n\
Exit status: 0 in sync, 1 a file failed (others still copied), 2 usage, 3 source not found, \
4 storage unavailable after retries, 5 refused (source empty or missing, too many deletes)."
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

    /// -q and -v.
    #[command(flatten)]
    pub log: LogArgs,
}
