//! `bucket-push`: store snapshots and files in a remote, each with its
//! manifest, and print one `object` record per stored file.
//!
//! See [`push`] for the write order that keeps a remote consistent. This
//! module runs the loop: classify each input, store it, then tidy up the
//! temporary snapshot it came from.

pub mod cli;
pub mod prune;
pub mod push;
pub mod retention;

use anyhow::Result;
use clap::CommandFactory;
use cli::Args;
use push::Upload;
use retention::Policy;
use sqlkeep_common::address::Address;
use sqlkeep_common::exit::{Exit, Tally, fail};
use sqlkeep_common::input::inputs;
use sqlkeep_common::log::Log;
use sqlkeep_common::private_dir::private_dir;
use sqlkeep_common::record::{Output, Record};
use sqlkeep_common::store::{self, Store};
use sqlkeep_common::time::{Timestamp, parse_duration};
use sqlkeep_common::units::{human_bytes, human_duration};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// The tool's clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Args::command()
}

/// What every input of a run shares.
struct Settings {
    policy: Policy,
    dry_run: bool,
}

/// Runs `bucket-push`.
pub fn run(args: Args) -> Result<Exit> {
    let log = Log::new("bucket-push", args.log.level());
    let remote = Address::parse(&args.remote)?;
    let settings = Settings {
        policy: policy(&args)?,
        dry_run: args.dry_run,
    };
    let store = store::open_with(&remote, args.remote_args.transfer()?)?;
    let mut out = Output::stdout();
    let mut tally = Tally::default();
    let mut newest: HashMap<String, Timestamp> = HashMap::new();

    for item in inputs(&args.files, "files")? {
        let input = match item {
            Ok(input) => input,
            Err(err) => {
                tally.report(&log, "", &err);
                continue;
            }
        };
        let label = input.label();
        match push_one(store.as_ref(), &input, &settings, &mut newest, &log) {
            Ok((record, problem)) => {
                out.emit(&record)?;
                if let Some(err) = problem {
                    tally.report(&log, &label, &err);
                }
            }
            Err(err) => {
                tally.report(&log, &label, &err);
            }
        }
    }
    Ok(tally.exit())
}

/// The retention policy the --keep-* flags ask for.
fn policy(args: &Args) -> Result<Policy> {
    let within = args
        .keep_within
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| fail(Exit::Usage, format!("bad --keep-within: {e:#}")))?;
    Ok(Policy {
        last: args.keep_last.unwrap_or(0),
        hourly: args.keep_hourly.unwrap_or(0),
        daily: args.keep_daily.unwrap_or(0),
        weekly: args.keep_weekly.unwrap_or(0),
        monthly: args.keep_monthly.unwrap_or(0),
        within,
    })
}

/// Stores one input (then prunes its database, when asked) and returns
/// its `object` record, with a pruning failure apart: the upload itself
/// succeeded and is reported as such.
fn push_one(
    store: &dyn Store,
    input: &sqlkeep_common::input::Input,
    settings: &Settings,
    newest: &mut HashMap<String, Timestamp>,
    log: &Log,
) -> Result<(Record, Option<anyhow::Error>)> {
    let started = Instant::now();
    let before = store.requests().snapshot();
    let upload = push::classify(input)?;
    if settings.dry_run {
        return dry_run(store, &upload, input, settings, log).map(|r| (r, None));
    }
    let update_latest = match &upload {
        Upload::Snapshot { db, taken_at, .. } => {
            let newer_seen = newest.get(db).is_some_and(|seen| seen > taken_at);
            if !newer_seen {
                newest.insert(db.clone(), *taken_at);
            }
            !newer_seen
        }
        Upload::Plain { path, .. } => {
            warn_if_live_database(path, log);
            true
        }
    };
    let stored = push::store(store, &upload, update_latest)?;
    let mut record = stored.record;
    if let Upload::Snapshot {
        path,
        record: incoming,
        ..
    } = &upload
        && incoming.get("temporary") == Some(&serde_json::Value::Bool(true))
        && remove_temporary(path, log)
    {
        record.remove("path");
        record.remove("temporary");
    }
    let mut problem = None;
    let mut pruned_note = String::new();
    if let (Upload::Snapshot { db, taken_at, .. }, false) = (&upload, settings.policy.is_empty()) {
        match prune::prune(store, db, &settings.policy, *taken_at, None, false) {
            Ok(pruned) => {
                pruned_note = format!(
                    ", kept {}, deleted {}",
                    pruned.kept.len(),
                    pruned.deleted.len()
                );
                record.set("retention", pruned.to_json(false));
            }
            Err(err) => {
                record.set(
                    "retention",
                    serde_json::json!({"error": format!("{err:#}")}),
                );
                problem = Some(err.context("retention"));
            }
        }
    }
    record.set("requests", store.requests().since(&before));
    log.ok(
        &format!("{} → {}", input.label(), stored.url),
        &format!(
            "{}, {}{pruned_note}",
            human_bytes(stored.bytes),
            human_duration(started.elapsed())
        ),
    );
    Ok((record, problem))
}

/// `--dry-run`: the record of what would be stored, and what pruning would
/// delete (which takes the one listing).
fn dry_run(
    store: &dyn Store,
    upload: &Upload,
    input: &sqlkeep_common::input::Input,
    settings: &Settings,
    log: &Log,
) -> Result<Record> {
    let before = store.requests().snapshot();
    let path = match upload {
        Upload::Snapshot { path, .. } | Upload::Plain { path, .. } => path,
    };
    if !path.is_file() {
        return Err(fail(
            Exit::NotFound,
            format!("{}: no such file", path.display()),
        ));
    }
    let (key, _) = push::keys(upload);
    let mut record = Record::new("object");
    record.set("url", store.url(&key)).set("dry_run", true);
    if let Some(incoming) = input.record() {
        record.carry(incoming);
    }
    let mut note = String::new();
    if let (Upload::Snapshot { db, taken_at, .. }, false) = (upload, settings.policy.is_empty()) {
        let pruned = prune::prune(
            store,
            db,
            &settings.policy,
            *taken_at,
            Some(*taken_at),
            true,
        )?;
        note = format!(
            ", would keep {}, delete {}",
            pruned.kept.len(),
            pruned.deleted.len()
        );
        record.set("retention", pruned.to_json(true));
    }
    record.set("requests", store.requests().since(&before));
    log.ok(
        &format!("{} → {}", input.label(), store.url(&key)),
        &format!("dry run: would store{note}"),
    );
    Ok(record)
}

/// Deletes a snapshot that `sqlite-snap` wrote to its private temporary
/// directory, now that it is stored. Only files in that directory are ever
/// removed, whatever a record claims. Returns true when the file is gone.
fn remove_temporary(path: &Path, log: &Log) -> bool {
    let inside_private = match (private_dir(), path.canonicalize()) {
        (Ok(dir), Ok(file)) => file.parent() == Some(dir.as_path()),
        _ => false,
    };
    if !inside_private {
        log.warn(
            &path.display().to_string(),
            "record says temporary but the file is not in sqlite-snap's private directory; kept",
        );
        return false;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {
            log.info(&path.display().to_string(), "removed temporary snapshot");
            true
        }
        Err(e) => {
            log.warn(
                &path.display().to_string(),
                &format!("cannot remove temporary snapshot: {e}"),
            );
            false
        }
    }
}

/// Warns when a plain file is a SQLite database in use: a file copy of a
/// live database can be inconsistent, which is what `sqlite-snap` is for.
fn warn_if_live_database(path: &Path, log: &Log) {
    if sqlkeep_common::sqlite::check_file(path).is_err() {
        return;
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if Path::new(&wal).exists() {
        log.warn(
            &path.display().to_string(),
            "is a live SQLite database (it has a -wal file); a file copy may be inconsistent: push a sqlite-snap snapshot instead",
        );
    }
}
