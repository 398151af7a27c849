//! `bucket-push`: store snapshots and files in a remote, each with its
//! manifest, and print one `object` record per stored file.
//!
//! The layout and the order of writes that keep a remote consistent are
//! the repository's (`sqlkeep_common::repo`); this module runs the loop:
//! classify each input ([`push`]), open it (regular files only), store it,
//! prune its database when asked, and remove the temporary snapshot it
//! came from whatever happened. `--dry-run` is the same loop over a store
//! that changes nothing.

pub mod cli;
pub mod commit;
pub mod push;

use anyhow::Result;
use clap::CommandFactory;
use cli::Args;
use commit::{After, Before};
use push::Upload;
use sqlkeep_common::address::Address;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::input::{Input, inputs};
use sqlkeep_common::log::Log;
use sqlkeep_common::private_dir::{Temporary, temporary_snapshot};
use sqlkeep_common::record::{Output, Record};
use sqlkeep_common::regular::open_regular;
use sqlkeep_common::repo::retention::Policy;
use sqlkeep_common::repo::{LatestMove, Repository, SnapshotUpload};
use sqlkeep_common::store::{self, DryRun, Store};
use sqlkeep_common::tally::Tally;
use sqlkeep_common::time::parse_duration;
use sqlkeep_common::units::{human_bytes, human_duration, record_seconds};
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
    require_encryption: bool,
}

/// Runs `bucket-push`.
pub fn run(args: Args) -> Result<Exit> {
    let log = Log::new("bucket-push", args.log.level());
    let remote = Address::parse(&args.remote)?;
    let settings = Settings {
        policy: policy(&args)?,
        dry_run: args.dry_run,
        require_encryption: args.require_encryption,
    };
    let mut transfer = args.remote_args.transfer()?;
    // One connection per transfer, and one for the manifests and listings.
    transfer.connections = args.transfers as usize + 1;
    // A repository per input, so each record counts its own requests
    // while others are stored at the same time (opening makes none).
    let open = || -> Result<Repository> {
        let mut store: Box<dyn Store> = store::open_with(&remote, transfer)?;
        if settings.dry_run {
            store = Box::new(DryRun::new(store));
        }
        Ok(Repository::new(store))
    };
    open()?;
    let mut out = Output::stdout();
    let mut tally = Tally::default();

    // Several databases at once (a thousand tenants); records still leave
    // in input order.
    // One database's records (its increments) go one after the other.
    sqlkeep_common::parallel::in_order_by_key(
        args.transfers as usize,
        inputs(&args.files, "files")?,
        |item| {
            item.as_ref().ok().and_then(|input| {
                input
                    .record()
                    .and_then(|r| r.str("db").map(str::to_string))
                    .or_else(|| input.path().map(str::to_string))
            })
        },
        |item| {
            let input = match item {
                Ok(input) => input,
                Err(err) => return (String::new(), Err(err), false),
            };
            let outcome = open().and_then(|repo| push_one(&repo, &input, &settings, &log));
            let removed = remove_temporary(&input, &log);
            (input.label(), outcome, removed)
        },
        |(label, outcome, removed)| {
            match outcome {
                Ok(None) => {}
                Ok(Some((mut record, problem))) => {
                    if removed {
                        record.remove("path");
                        record.remove("temporary");
                    }
                    out.emit(&record)?;
                    if let Some(err) = problem {
                        tally.report(&log, &label, &err);
                    }
                }
                Err(err) => tally.report(&log, &label, &err),
            }
            Ok(())
        },
    )?;
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
/// succeeded and is reported as such. None when a delta was overtaken.
fn push_one(
    repo: &Repository,
    input: &Input,
    settings: &Settings,
    log: &Log,
) -> Result<Option<(Record, Option<anyhow::Error>)>> {
    let started = Instant::now();
    if let Some(record) = input.record()
        && record.get("unchanged") == Some(&serde_json::Value::Bool(true))
    {
        log.skip(
            record.str("db").unwrap_or("database"),
            "unchanged since its stored point: nothing to store, no request",
        );
        return Ok(None);
    }
    let before = repo.store().requests().snapshot();
    let upload = push::classify(input)?;
    let (mut file, len) = open_regular(upload.path())?;
    let encrypted_to = match &upload {
        Upload::Snapshot { encryption, .. } => encryption.as_ref().map(|e| e.recipients.clone()),
        Upload::Plain { .. } => None,
    };
    if settings.require_encryption {
        require_encryption(&upload, encrypted_to.is_some())?;
    }
    let mut notes = Vec::new();
    let mut problem = None;
    let (mut record, url, bytes) = match &upload {
        Upload::Snapshot {
            db,
            taken_at,
            compression,
            record,
            increment,
            encryption,
            ..
        } => {
            let (pending, latest_tag) = match increment {
                Some(inc) => match commit::before(inc, &repo.url(db))? {
                    Before::Store {
                        pending,
                        latest_tag,
                    } => (pending, latest_tag),
                    Before::Superseded(why) => {
                        log.skip(&input.label(), &why);
                        return Ok(None);
                    }
                },
                None => (None, None),
            };
            let stored = repo.put_snapshot(SnapshotUpload {
                file: &mut file,
                len,
                db: db.clone(),
                taken_at: *taken_at,
                compression: *compression,
                record,
                base: increment.as_ref().and_then(|i| i.base.clone()),
                chain: increment
                    .as_ref()
                    .map(|i| i.chain.clone())
                    .unwrap_or_default(),
                latest_tag,
                encryption: encryption.clone(),
            })?;
            let mut out = stored.manifest.to_record();
            out.carry(record);
            if let Some(pending) = pending.filter(|_| !settings.dry_run) {
                match commit::after(&pending, &stored)? {
                    After::Committed => {
                        out.set("committed", true);
                    }
                    After::Overtaken => {
                        out.set("committed", false);
                    }
                    After::Forgotten => {
                        out.set("committed", false);
                        log.warn(
                            &input.label(),
                            "latest.json was changed by another writer since this chain's last push; the delta is stored but not the latest, and the next run takes a full snapshot",
                        );
                    }
                }
            }
            match &stored.latest {
                LatestMove::Moved | LatestMove::Unchanged => {
                    out.set("latest", true);
                }
                LatestMove::Changed => {
                    out.set("latest", false);
                }
                LatestMove::KeptNewer(newer) => {
                    out.set("latest", false)
                        .set("latest_taken_at", newer.rfc3339());
                    notes.push(format!(
                        "latest.json left at the newer snapshot of {}",
                        newer.rfc3339()
                    ));
                }
            }
            if stored.replaced_unreadable_latest {
                log.warn(
                    &input.label(),
                    "latest.json was unreadable; it now names this snapshot",
                );
            }
            // Pruning lists the prefix: once per full snapshot, never on
            // every increment.
            let full = increment.as_ref().is_none_or(|i| i.base.is_none());
            if !settings.policy.is_empty() && full {
                match repo.prune(db, &settings.policy, &stored.point) {
                    Ok(pruned) => {
                        let verb = if settings.dry_run {
                            "would delete"
                        } else {
                            "deleted"
                        };
                        notes.push(format!(
                            "kept {}, {verb} {}",
                            pruned.kept.len(),
                            pruned.deleted.len()
                        ));
                        out.set("retention", pruned.to_json(settings.dry_run));
                    }
                    Err(err) => {
                        out.set(
                            "retention",
                            serde_json::json!({"error": format!("{err:#}")}),
                        );
                        problem = Some(err.context("retention"));
                    }
                }
            }
            let bytes = stored.manifest.bytes;
            (out, stored.manifest.url, bytes)
        }
        Upload::Plain {
            path, name, record, ..
        } => {
            warn_if_live_database(path, log);
            let manifest = repo.put_file(&mut file, len, name, record.as_ref())?;
            let mut out = manifest.to_record();
            match record {
                Some(incoming) => {
                    out.carry(incoming);
                }
                None => {
                    out.set("path", path.display().to_string());
                }
            }
            let bytes = manifest.bytes;
            (out, manifest.url, bytes)
        }
    };
    if settings.dry_run {
        record.set("dry_run", true);
    }
    record
        .set("requests", repo.store().requests().since(&before))
        .set("push_seconds", record_seconds(started.elapsed()));
    let mut detail = format!(
        "{}, {}",
        human_bytes(bytes),
        human_duration(started.elapsed())
    );
    for note in &notes {
        detail.push_str(", ");
        detail.push_str(note);
    }
    if let Some(to) = &encrypted_to {
        detail.push_str(&format!(", encrypted to {}", to.join(", ")));
    }
    if settings.dry_run {
        detail = format!("dry run: would store, {detail}");
    }
    log.ok(&format!("{} → {url}", input.label()), &detail);
    Ok(Some((record, problem)))
}

/// Refuses an input that is not an age file: `--require-encryption`
/// keeps plaintext out of the remote even if the line before it in the
/// pipeline loses its `--recipient`.
fn require_encryption(upload: &Upload, record_says: bool) -> Result<()> {
    let path = upload.path();
    let is_age = sqlkeep_common::crypt::is_age_file(path)?;
    let why = match (upload, record_says, is_age) {
        (Upload::Snapshot { .. }, true, true) | (Upload::Plain { .. }, _, true) => return Ok(()),
        (Upload::Snapshot { .. }, true, false) => {
            "its record says it is encrypted but it is not an age file"
        }
        _ => "it is not encrypted (give sqlite-snap --recipient or --recipients-file)",
    };
    Err(fail(
        Exit::Refused,
        format!("--require-encryption: {} not stored: {why}", path.display()),
    ))
}

/// Deletes a snapshot that `sqlite-snap` wrote to its private temporary
/// directory, once this run is done with it, stored or not: a failed push
/// is retried by the next run with a new snapshot, and a dry run needed it
/// only to read. Only files in that directory are ever removed, whatever a
/// record claims. True when the file is gone.
fn remove_temporary(input: &Input, log: &Log) -> bool {
    let path = match input.record().map(temporary_snapshot) {
        Some(Temporary::Ours(path)) => path,
        Some(Temporary::Foreign(path)) => {
            if path.exists() {
                log.warn(
                    &path.display().to_string(),
                    "record says temporary but the file is not in sqlite-snap's private directory; kept",
                );
            }
            return false;
        }
        _ => return false,
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {
            log.info(&path.display().to_string(), "removed temporary snapshot");
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
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
    if sqlkeep_common::sqlite::companion(path, "-wal").exists() {
        log.warn(
            &path.display().to_string(),
            "is a live SQLite database (it has a -wal file); a file copy may be inconsistent: push a sqlite-snap snapshot instead",
        );
    }
}
