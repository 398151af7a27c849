//! `sqlite-verify`: check databases and snapshots, one `verified` record
//! each, exit 1 if any fails.
//!
//! This is the end of a restore drill (`bucket-pull … | sqlite-verify`),
//! so it fails loudly: a failed check, an unreadable file and an empty
//! input (the restore upstream produced nothing) all exit 1.

pub mod checks;
pub mod cli;
pub mod prepare;

use anyhow::Result;
use checks::{Expectations, Report};
use clap::CommandFactory;
use cli::Args;
use serde_json::Value;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::input::{Input, inputs};
use sqlkeep_common::log::Log;
use sqlkeep_common::private_dir::{Temporary, temporary_snapshot};
use sqlkeep_common::record::{Output, Record};
use sqlkeep_common::time::duration_option;
use std::path::Path;
use std::time::Duration;

/// The tool's clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Args::command()
}

/// Runs `sqlite-verify`.
pub fn run(args: Args) -> Result<Exit> {
    let log = Log::new("sqlite-verify", args.log.level());
    let exp = expectations(&args)?;
    let mut out = Output::stdout();
    let (mut seen, mut failed) = (0usize, 0usize);
    for item in inputs(&args.inputs, "databases")? {
        seen += 1;
        let input = match item {
            Ok(input) => input,
            Err(err) => {
                log.error("", &err);
                failed += 1;
                continue;
            }
        };
        // Records with nothing here to open pass on, with a SKIP, so
        // `sqlite-snap … | sqlite-verify | bucket-push` keeps working.
        if let Some((record, why)) = input.record().and_then(|r| passed_over(r).map(|w| (r, w))) {
            log.skip(&input.label(), why);
            out.emit(record)?;
            continue;
        }
        let record = verify_one(&input, &exp, &log);
        if record.get("ok") != Some(&Value::Bool(true)) {
            failed += 1;
        }
        out.emit(&record)?;
    }
    if seen == 0 {
        log.error(
            "",
            &anyhow::anyhow!("nothing to verify: no database arrived on stdin"),
        );
        return Ok(Exit::Failed);
    }
    Ok(if failed == 0 { Exit::Ok } else { Exit::Failed })
}

/// Why a record is passed on unverified: a delta is pages, not a database
/// (checked when a restore rebuilds its point); an unchanged database has
/// no new snapshot; an encrypted one cannot be opened on the machine that
/// backs up, by design (it holds public keys only).
fn passed_over(record: &sqlkeep_common::record::Record) -> Option<&'static str> {
    if record.str("kind") == Some("delta") {
        return Some(
            "a delta, not a whole database: verify its point once restored (bucket-pull … | sqlite-verify)",
        );
    }
    if record.get("unchanged") == Some(&Value::Bool(true)) {
        return Some("unchanged since its stored point: no snapshot to verify");
    }
    if record.get("encryption").is_some_and(|e| !e.is_null()) {
        return Some(
            "encrypted (age): verify it once restored (bucket-pull --identity … | sqlite-verify)",
        );
    }
    None
}

/// Parses the expectation flags (usage errors exit 2).
fn expectations(args: &Args) -> Result<Expectations> {
    let max_age = args
        .max_age
        .as_deref()
        .map(|text| duration_option("--max-age", text))
        .transpose()?;
    let busy = duration_option("--busy-timeout", &args.busy_timeout)?;
    let mut min_rows = Vec::new();
    for spec in &args.min_rows {
        let parsed = spec
            .rsplit_once('=')
            .and_then(|(table, n)| Some((table.to_string(), n.trim().parse::<u64>().ok()?)))
            .filter(|(table, _)| !table.is_empty());
        match parsed {
            Some(pair) => min_rows.push(pair),
            None => {
                return Err(fail(
                    Exit::Usage,
                    format!("bad --min-rows {spec:?}: expected TABLE=N"),
                ));
            }
        }
    }
    Ok(Expectations {
        quick: args.quick,
        max_age,
        tables: args.expect_table.clone(),
        min_rows,
        busy_timeout: Duration::from_secs(busy as u64),
    })
}

/// Verifies one input and builds its record, logging the outcome.
fn verify_one(input: &Input, exp: &Expectations, log: &Log) -> Record {
    let label = input.label();
    let mut record = Record::new("verified");
    let report = match input.path() {
        Some(path) => {
            record.set("path", path);
            checks::verify(Path::new(path), input.record(), exp)
        }
        None => {
            let mut report = Report::default();
            report.failed.push("input".into());
            report.checks.insert(
                "input".into(),
                "failed: record has no \"path\" (verify a restored copy: bucket-pull … -o FILE | sqlite-verify)".into(),
            );
            report
        }
    };
    let ok = report.ok();
    let rows: u64 = report.tables.values().filter_map(Value::as_u64).sum();
    record
        .set("ok", ok)
        .set("failed", report.failed.clone())
        .set("checks", Value::Object(report.checks.clone()))
        .set("tables", Value::Object(report.tables.clone()));
    if let Some(carried) = input.record() {
        record.carry(carried);
    }
    let kept_note = match settle_temporary(input, log) {
        Settled::NotOne => String::new(),
        Settled::Removed => {
            record.set("removed", true);
            String::new()
        }
        Settled::Kept(path) => format!("; temporary snapshot kept for the next tool: {path}"),
    };
    if ok {
        log.ok(
            &label,
            &format!(
                "{} tables, {rows} rows, all checks passed{kept_note}",
                report.tables.len()
            ),
        );
    } else {
        let reasons: Vec<String> = report
            .failed
            .iter()
            .map(|name| {
                format!(
                    "{name} {}",
                    report.checks[name].as_str().unwrap_or_default()
                )
            })
            .collect();
        log.error(
            &label,
            &anyhow::anyhow!("{}{kept_note}", reasons.join("; ")),
        );
    }
    record
}

/// What became of a temporary snapshot `sqlite-snap` handed over.
enum Settled {
    /// The input is not one.
    NotOne,
    /// Removed: nothing downstream can take it.
    Removed,
    /// Kept for the tool stdout is piped to, at this path.
    Kept(String),
}

/// Removes a temporary snapshot once verified, unless stdout is a pipe
/// (`sqlite-snap | sqlite-verify | bucket-push`): then the next tool owns
/// it, and the log says where it is. Issue 10 found every snapshot piped
/// into `sqlite-verify` left behind in `$TMPDIR`.
fn settle_temporary(input: &Input, log: &Log) -> Settled {
    let Some(Temporary::Ours(path)) = input.record().map(temporary_snapshot) else {
        return Settled::NotOne;
    };
    let shown = path.display().to_string();
    if sqlkeep_common::record::stdout_is_pipe() {
        return Settled::Kept(shown);
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {
            log.info(&shown, "removed temporary snapshot");
            Settled::Removed
        }
        Err(_) => Settled::Kept(shown),
    }
}
