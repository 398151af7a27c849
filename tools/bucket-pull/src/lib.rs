//! `bucket-pull`: restore databases from a remote, checked and atomic.
//!
//! [`source`] resolves what to fetch (a prefix's newest snapshot, one
//! object, or an `object` record); [`restore`] decides whether the target
//! may be written and installs the checked file. One `restored` record per
//! file goes to stdout.

pub mod cli;
pub mod list;
pub mod restore;
pub mod source;

use anyhow::Result;
use clap::CommandFactory;
use cli::Args;
use restore::Decision;
use sqlkeep_common::exit::{Exit, Tally, fail};
use sqlkeep_common::input::{Input, inputs};
use sqlkeep_common::log::Log;
use sqlkeep_common::record::{Output, Record};
use sqlkeep_common::store::{Kind, Transfer};
use sqlkeep_common::time::Timestamp;
use sqlkeep_common::units::{human_bytes, human_duration};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The tool's clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Args::command()
}

/// Runs `bucket-pull`.
pub fn run(args: Args) -> Result<Exit> {
    let log = Log::new("bucket-pull", args.log.level());
    if args.sources.len() > 1 && args.output.as_ref().is_some_and(|o| !o.is_dir()) {
        return Err(fail(
            Exit::Usage,
            "several sources need -o to name an existing directory",
        ));
    }
    let transfer = args.remote_args.transfer()?;
    let at = args.at.as_deref().map(source::parse_at).transpose()?;
    let mut out = Output::stdout();
    let mut tally = Tally::default();
    let mut targets: HashSet<PathBuf> = HashSet::new();
    for item in inputs(&args.sources, "a source")? {
        let input = match item {
            Ok(input) => input,
            Err(err) => {
                tally.report(&log, "", &err);
                continue;
            }
        };
        if args.list {
            match list_one(&input, transfer, &log) {
                Ok(records) => {
                    for record in records {
                        out.emit(&record)?;
                    }
                }
                Err(err) => {
                    tally.report(&log, &input.label(), &err);
                }
            }
            continue;
        }
        match pull_one(&input, &args, at, transfer, &mut targets, &log) {
            Ok(Some(record)) => out.emit(&record)?,
            Ok(None) => {}
            Err(err) => {
                tally.report(&log, &input.label(), &err);
            }
        }
    }
    Ok(tally.exit())
}

/// Restores one source; None when `--if-missing` found the database there.
fn pull_one(
    input: &Input,
    args: &Args,
    at: Option<Timestamp>,
    transfer: Transfer,
    targets: &mut HashSet<PathBuf>,
    log: &Log,
) -> Result<Option<Record>> {
    let started = Instant::now();
    let plan = match (at, input) {
        (Some(at), Input::Plain(text)) => source::at_time(text, at, transfer)?,
        (Some(_), Input::Record(_)) => {
            return Err(fail(
                Exit::Usage,
                "--at takes a database prefix, not a record",
            ));
        }
        (None, _) => source::resolve(input, transfer)?,
    };
    let target = target_path(args.output.as_deref(), &plan.file_name())?;
    if !targets.insert(target.clone()) {
        return Err(fail(
            Exit::Usage,
            format!(
                "{} was already restored in this run; give -o a directory",
                target.display()
            ),
        ));
    }
    let (mode, replaces) = match restore::decide(&target, args.force, args.if_missing)? {
        Decision::Skip => {
            log.skip(
                &target.display().to_string(),
                "present and not empty (--if-missing)",
            );
            return Ok(None);
        }
        Decision::Restore { mode, replaces } => (mode, replaces),
    };
    let restored = restore::restore(&plan, &target, mode, log)?;
    let url = plan.url();

    let mut record = Record::new("restored");
    record
        .set("path", target.display().to_string())
        .set("db", plan.db.as_str())
        .set("source_url", url.as_str())
        .set("bytes", restored.stored.bytes)
        .set("sha256", restored.stored.sha256.as_str())
        .set("raw_bytes", restored.raw.bytes)
        .set("raw_sha256", restored.raw.sha256.as_str());
    if let Some(taken_at) = plan.manifest.as_ref().and_then(|m| m.str("taken_at")) {
        record.set("taken_at", taken_at);
    }
    if replaces {
        record.set("replaced", true);
    }
    if let Some(manifest) = &plan.manifest {
        record.carry(manifest);
        record.remove("url");
    }
    // The store was opened for this source alone, so its counts include
    // the manifest or latest.json read that located the object.
    record.set("requests", plan.store.requests().to_json());
    if plan.manifest.is_none() {
        log.warn(
            &url,
            "no manifest found: the download was not checked against a stored SHA-256",
        );
    }
    log.ok(
        &format!("{url} → {}", target.display()),
        &format!(
            "{} → {}, {}",
            human_bytes(restored.stored.bytes),
            human_bytes(restored.raw.bytes),
            human_duration(started.elapsed())
        ),
    );
    Ok(Some(record))
}

/// Lists the snapshots under one prefix (`--list`).
fn list_one(input: &Input, transfer: Transfer, log: &Log) -> Result<Vec<Record>> {
    let text = match input {
        Input::Plain(text) => text.as_str(),
        Input::Record(record) => record
            .str("url")
            .ok_or_else(|| fail(Exit::Failed, "record has no \"url\" to list"))?,
    };
    let address = sqlkeep_common::address::Address::parse(text)?;
    let (records, store) = list::records(&address, transfer)?;
    log.ok(
        &address.to_string(),
        &format!(
            "{} snapshots, {} listing requests",
            records.len(),
            store.requests().get(Kind::List)
        ),
    );
    Ok(records)
}

/// Where to restore: `-o FILE`, `-o DIR/<name>`, or `./<name>`. A target
/// that is a symbolic link is followed, so the linked file is replaced
/// rather than the link.
fn target_path(output: Option<&Path>, file_name: &str) -> Result<PathBuf> {
    let target = match output {
        Some(dir) if dir.is_dir() => dir.join(file_name),
        Some(file) => file.to_path_buf(),
        None => PathBuf::from(file_name),
    };
    let target = match std::fs::canonicalize(&target) {
        Ok(resolved) => resolved,
        Err(_) => std::path::absolute(&target)?,
    };
    Ok(target)
}
