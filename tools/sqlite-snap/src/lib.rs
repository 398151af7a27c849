//! `sqlite-snap`: transactionally consistent, compressed, checksummed
//! snapshots of live SQLite databases, one `snapshot` record each.
//!
//! The flow per database: check the header (precise errors for bad
//! input), open read-only with a busy timeout, copy one committed state
//! ([`pages`] or [`vacuum`]) into a [`sink::Sink`] that hashes, compresses
//! and writes a temporary file, then fsync and rename it into place. A
//! failure at any step leaves no snapshot file behind.

pub mod cli;
mod increment;
pub mod incremental;
pub mod pages;
pub mod sink;
pub mod vacuum;

use anyhow::{Context, Result};
use clap::CommandFactory;
use cli::{Args, Method};
use incremental::Levels;
use sink::{Compression, Sink, Written};
use sqlkeep_common::crypt::{Encryption, Recipients};
use sqlkeep_common::discover::{self, Target};
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::input::inputs;
use sqlkeep_common::log::Log;
use sqlkeep_common::private_dir::{ScratchFile, private_dir};
use sqlkeep_common::record::{Output, Record};
use sqlkeep_common::repo::names::{self, ObjectName, PointName};
use sqlkeep_common::sqlite;
use sqlkeep_common::state;
use sqlkeep_common::tally::Tally;
use sqlkeep_common::time::{Timestamp, duration_option};
use sqlkeep_common::units::{human_bytes, human_duration, record_seconds};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tool's clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Args::command()
}

/// Settings shared by every snapshot of one run.
pub(crate) struct Settings {
    out_dir: PathBuf,
    temporary: bool,
    method: Method,
    compression: Compression,
    busy_timeout: Duration,
    incremental: Option<Incremental>,
    /// Whom snapshots are encrypted to, if anyone.
    recipients: Option<Recipients>,
    /// Their public form, for records and state (empty: not encrypted).
    encrypted_to: Vec<String>,
}

/// The settings of `--incremental`.
pub(crate) struct Incremental {
    root: PathBuf,
    levels: Levels,
    /// The snapshot is committed by this run: `-o DIR` with stdout not a
    /// pipe, so no tool after this one stores it.
    commit_now: bool,
}

/// Runs `sqlite-snap`: one snapshot and one record per database.
pub fn run(args: Args) -> Result<Exit> {
    let log = Log::new("sqlite-snap", args.log.level());
    let recipients = args.encrypt.recipients()?;
    if recipients.is_some() && args.no_compress {
        return Err(fail(
            Exit::Usage,
            "--no-compress cannot be combined with encryption (an encrypted snapshot is age over zstd)",
        ));
    }
    let busy_secs = duration_option("--busy-timeout", &args.busy_timeout)?;
    let excludes = discover::excludes(&args.exclude)?;
    let (out_dir, temporary) = match &args.output_dir {
        Some(dir) => (prepare_output_dir(dir)?, false),
        None => {
            let dir = private_dir()?;
            for stale in sqlkeep_common::private_dir::reclaim_stale_snapshots(&dir) {
                log.info(
                    &stale.display().to_string(),
                    "removed a temporary snapshot no pipeline consumed within a day",
                );
            }
            (dir, true)
        }
    };
    let settings = Settings {
        out_dir,
        temporary,
        method: args.method.unwrap_or(Method::Pages),
        incremental: incremental_settings(&args)?,
        compression: Compression {
            level: (!args.no_compress).then_some(args.level),
            // The cores are shared: N jobs get a share of the zstd
            // workers each, so memory grows with N by one pipeline's
            // buffers, not by N thread pools.
            threads: args.threads.unwrap_or_else(|| {
                (sqlkeep_common::compress::default_threads()
                    / args
                        .jobs
                        .unwrap_or_else(sqlkeep_common::compress::default_threads))
                .max(1)
            }),
        },
        busy_timeout: Duration::from_secs(busy_secs as u64),
        encrypted_to: recipients
            .as_ref()
            .map(Recipients::public)
            .unwrap_or_default(),
        recipients,
    };

    let jobs = args
        .jobs
        .unwrap_or_else(sqlkeep_common::compress::default_threads) as usize;
    let mut out = Output::stdout();
    let mut tally = Tally::default();
    let written: Mutex<HashSet<PathBuf>> = Mutex::new(HashSet::new());
    // Each directory expands into its databases as stdin is read; a bad
    // input is an item too, so its error line keeps its place.
    let items = inputs(&args.inputs, "databases")?.flat_map(|item| {
        match discover::expand(item, &excludes) {
            Ok(targets) => targets.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(bad) => vec![Err(bad)],
        }
    });
    sqlkeep_common::parallel::in_order(
        jobs,
        items,
        |item| match item {
            Ok(target) => {
                let result = snapshot(&target, &settings, &written, &log);
                (target.label, result)
            }
            Err((label, err)) => (label, Err(err)),
        },
        |(label, result)| {
            match result {
                Ok(record) => out.emit(&record)?,
                Err(err) => tally.report(&log, &label, &err),
            }
            Ok(())
        },
    )?;
    Ok(tally.exit())
}

/// The `--incremental` settings the flags ask for.
fn incremental_settings(args: &Args) -> Result<Option<Incremental>> {
    if !args.incremental {
        return Ok(None);
    }
    let levels = Levels {
        full_every: duration_option("--full-every", &args.full_every)?,
        diff_every: duration_option("--diff-every", &args.diff_every)?,
        deltas_per_diff: args.deltas_per_diff,
        diffs_per_full: args.diffs_per_full,
    };
    Ok(Some(Incremental {
        root: std::path::absolute(args.state_dir.clone().unwrap_or_else(state::default_root))?,
        levels,
        commit_now: args.output_dir.is_some() && !sqlkeep_common::record::stdout_is_pipe(),
    }))
}

/// Creates the output directory if needed and proves it writable, so an
/// unusable `-o` is one configuration error (exit 2) rather than a failure
/// per database.
fn prepare_output_dir(dir: &Path) -> Result<PathBuf> {
    let unusable = |why: String| {
        fail(
            Exit::Usage,
            format!("output directory {}: {why}", dir.display()),
        )
    };
    if dir.exists() && !dir.is_dir() {
        return Err(unusable("exists and is not a directory".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| unusable(format!("cannot create it: {e}")))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| unusable(e.to_string()))?;
    ScratchFile::create(&dir, "write-test")
        .map_err(|e| unusable(format!("not writable: {:#}", e.root_cause())))?;
    Ok(dir)
}

/// Takes one snapshot and builds its record.
fn snapshot(
    target: &Target,
    s: &Settings,
    written: &Mutex<HashSet<PathBuf>>,
    log: &Log,
) -> Result<Record> {
    if let Some(inc) = &s.incremental {
        return increment::snapshot(target, s, inc, written, log);
    }
    let started = Instant::now();
    let (source, db) = identify(target)?;
    let conn = sqlite::open_read_only(&source, s.busy_timeout)?;

    let taken_at = Timestamp::now();
    let compressed = s.compression.level.is_some();
    // The final name carries the snapshot's checksum; until it is known,
    // the temporary file is named after the bare stamp.
    let encrypted = s.recipients.is_some();
    let object_of = |tag: Option<String>| {
        ObjectName::full(PointName { taken_at, tag }, compressed).sealed(encrypted)
    };
    let provisional = s
        .out_dir
        .join(names::object_file_name(&db, &object_of(None)));
    let mut sink = Sink::create(&provisional, s.compression, s.recipients.as_ref())?;
    let copied = match s.method {
        Method::Pages => {
            let mut progress = progress_display(log, &target.label);
            let copied = pages::copy(&conn, &mut sink, &mut progress);
            progress(0, 0);
            copied
        }
        Method::Vacuum => vacuum::copy(&conn, &s.out_dir, &mut sink),
    }
    .map_err(|e| sqlite::explain(e, &target.path, &s.out_dir))?;
    drop(conn);
    let (digests, dest) = sink
        .commit(|w| {
            let point = PointName::new(taken_at, &w.stored.sha256);
            s.out_dir
                .join(names::object_file_name(&db, &object_of(point.tag)))
        })
        .with_context(|| format!("writing a snapshot in {}", s.out_dir.display()))?;
    claim_name(written, &dest, &db)?;

    log.ok(
        &target.label,
        &format!(
            "{} → {}, {}",
            human_bytes(digests.raw.bytes),
            human_bytes(digests.stored.bytes),
            human_duration(started.elapsed())
        ),
    );
    let mut record = snapshot_record(&Snapshot {
        db: &db,
        source: &source,
        dest: &dest,
        taken_at,
        written: &digests,
        copied,
        compressed,
        method: s.method,
        encrypted_to: &s.encrypted_to,
    });
    record.set("snapshot_seconds", record_seconds(started.elapsed()));
    Ok(finish_record(record, s, target))
}

/// The database a target names: its canonical path and its name in a
/// remote (checked to be one).
pub(crate) fn identify(target: &Target) -> Result<(PathBuf, String)> {
    sqlite::check_file(&target.path)?;
    let source = sqlite::canonical(&target.path)?;
    let db = target.name.clone();
    names::db_key(&db)?;
    Ok((source, db))
}

/// What every `snapshot` record says, incremental or not.
pub(crate) struct Snapshot<'a> {
    pub(crate) db: &'a str,
    pub(crate) source: &'a Path,
    pub(crate) dest: &'a Path,
    pub(crate) taken_at: Timestamp,
    pub(crate) written: &'a Written,
    pub(crate) copied: pages::Copied,
    pub(crate) compressed: bool,
    pub(crate) method: Method,
    pub(crate) encrypted_to: &'a [String],
}

/// The record's common fields, in the contract's order; the caller adds
/// its own, then [`finish_record`].
pub(crate) fn snapshot_record(t: &Snapshot<'_>) -> Record {
    let mut record = Record::new("snapshot");
    record
        .set("db", t.db)
        .set("source", t.source.display().to_string())
        .set("path", t.dest.display().to_string())
        .set("taken_at", t.taken_at.rfc3339())
        .set("bytes", t.written.stored.bytes)
        .set("sha256", t.written.stored.sha256.as_str())
        .set("raw_bytes", t.written.raw.bytes)
        .set("raw_sha256", t.written.raw.sha256.as_str())
        .set("page_size", t.copied.page_size)
        .set("page_count", t.copied.page_count)
        .set("compression", if t.compressed { "zstd" } else { "none" })
        .set("method", t.method.name())
        .set("sqlite_version", sqlite::library_version());
    if !t.encrypted_to.is_empty() {
        record.set(
            "encryption",
            Encryption::age(t.encrypted_to.to_vec()).to_value(),
        );
    }
    record
}

/// Marks a temporary snapshot and carries the input record's fields on.
pub(crate) fn finish_record(mut record: Record, s: &Settings, target: &Target) -> Record {
    if s.temporary {
        record.set("temporary", true);
    }
    if let Some(carried) = &target.carried {
        record.carry(carried);
    }
    record
}

/// Refuses a second snapshot under one file name in a run.
pub(crate) fn claim_name(written: &Mutex<HashSet<PathBuf>>, dest: &Path, db: &str) -> Result<()> {
    if !written
        .lock()
        .expect("not poisoned")
        .insert(dest.to_path_buf())
    {
        return Err(fail(
            Exit::Failed,
            format!(
                "another database named {db:?} with the same content was snapshotted to {} in this same second; give them different --output-dir",
                dest.display()
            ),
        ));
    }
    Ok(())
}

/// A progress callback: a percentage on stderr when it is a terminal,
/// nothing otherwise. Called with (0, 0) to clear the line.
pub(crate) fn progress_display<'a>(log: &'a Log, label: &'a str) -> impl FnMut(u32, u32) + 'a {
    let mut line: Option<sqlkeep_common::progress::Progress> = None;
    move |done, total| {
        if total == 0 {
            line = None;
            return;
        }
        line.get_or_insert_with(|| {
            sqlkeep_common::progress::Progress::new(
                log,
                label,
                u64::from(total),
                "{msg} {percent}%",
            )
        })
        .set(u64::from(done));
    }
}
