//! `sqlkeep-metrics`: pass records through unchanged and keep a
//! node_exporter textfile of what they say (issue 14, "Metrics for the
//! dashboards people already have").
//!
//! A seventh tool rather than a flag on the six: it composes like them
//! (after `bucket-push`, after `sqlite-verify`, or both in turn into one
//! file), the tools stay unaware of Prometheus, and records saved to a file
//! can be replayed into it. Each stdin line goes to stdout byte for byte as
//! soon as it is read; the textfile is written once, at the end of the
//! input, so a thousand databases cost one write, not a thousand.
//!
//! [`observe`] reads the records, [`state`] keeps what every run saw
//! (beside the textfile), [`exposition`] writes the format.

pub mod cli;
pub mod exposition;
pub mod observe;
pub mod state;

use anyhow::{Context, Result};
use clap::CommandFactory;
use cli::Args;
use observe::Event;
use sqlkeep_common::atomic::{parent_dir, write_atomic};
use sqlkeep_common::exit::{Exit, fail, is_broken_pipe};
use sqlkeep_common::lock::DirLock;
use sqlkeep_common::log::Log;
use sqlkeep_common::record::Record;
use sqlkeep_common::time::Timestamp;
use state::State;
use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

/// The tool's clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Args::command()
}

/// node_exporter runs as another user than the backups: it must be able to
/// read the file. Nothing in it is secret (names, sizes, times, counts).
const MODE: u32 = 0o644;

/// How long to wait for another run updating the same file (a drill
/// finishing while the backup does).
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Runs `sqlkeep-metrics`.
pub fn run(args: Args) -> Result<Exit> {
    let log = Log::new("sqlkeep-metrics", args.log.level());
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(fail(
            Exit::Usage,
            "no input: pipe records into stdin (… | bucket-push REMOTE | sqlkeep-metrics --textfile FILE)",
        ));
    }
    if args.textfile.file_name().is_none() {
        return Err(fail(
            Exit::Usage,
            format!("--textfile {} names no file", args.textfile.display()),
        ));
    }
    let seen = pass_through(stdin.lock(), &log)?;
    let now = Timestamp::now().unix();
    let mut failed = seen.failed;
    let missing: Vec<&String> = args
        .expect_drill
        .iter()
        .filter(|db| !seen.drilled.contains(db.as_str()))
        .collect();
    for db in &missing {
        log.error(
            db,
            &anyhow::anyhow!(
                "no drill record arrived (the restore or the check failed upstream): recorded as a failed drill"
            ),
        );
        failed += 1;
    }
    update(&args.textfile, &seen.events, &missing, now).with_context(|| {
        format!(
            "{}: not updated (records were passed on)",
            args.textfile.display()
        )
    })?;
    let drills = seen.drilled.len() + missing.len();
    let backups = seen.events.len() - seen.drilled_events;
    log.ok(
        &args.textfile.display().to_string(),
        &format!(
            "{} recorded",
            [(backups, "backup"), (drills, "drill")]
                .map(|(n, what)| format!("{n} {what}{}", if n == 1 { "" } else { "s" }))
                .join(", ")
        ),
    );
    Ok(if failed == 0 { Exit::Ok } else { Exit::Failed })
}

/// What the input said.
#[derive(Default)]
struct Seen {
    /// Backups and drills, in input order.
    events: Vec<Event>,
    /// How many of them are drills.
    drilled_events: usize,
    /// The databases a drill record arrived for.
    drilled: BTreeSet<String>,
    /// Records that report a failure, and lines that are not records.
    failed: usize,
}

/// Copies every line from `input` to stdout as it is read, unchanged, and
/// gathers what the records say. A closed stdout ends the copy quietly;
/// what was read until then still counts.
fn pass_through(mut input: impl BufRead, log: &Log) -> Result<Seen> {
    let mut out = std::io::stdout().lock();
    let mut seen = Seen::default();
    let mut line = Vec::new();
    let mut number = 0usize;
    let mut open = true;
    while open {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("reading stdin")?
            == 0
        {
            break;
        }
        number += 1;
        if let Err(err) = out.write_all(&line).and_then(|()| out.flush()) {
            let err = anyhow::Error::new(err).context("writing a record to stdout");
            if !is_broken_pipe(&err) {
                return Err(err);
            }
            open = false;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if !text.starts_with('{') {
            // A plain path between tools says nothing about a backup.
            continue;
        }
        let record = match Record::parse(text) {
            Ok(record) => record,
            Err(err) => {
                log.error(&format!("stdin line {number}"), &err);
                seen.failed += 1;
                continue;
            }
        };
        let (event, failed) = observe::observe(&record, Timestamp::now().unix());
        seen.failed += usize::from(failed);
        if let Some(event) = event {
            if let Event::Drill(drill) = &event {
                seen.drilled.insert(drill.target.db.clone());
                seen.drilled_events += 1;
            }
            seen.events.push(event);
        }
    }
    Ok(seen)
}

/// Merges this run into the state beside `textfile` and rewrites both,
/// under a lock on their directory so two pipelines never lose each
/// other's update. The state goes first: a run killed between the two
/// renames leaves a textfile one run behind, which the next run rewrites.
fn update(textfile: &Path, events: &[Event], missing: &[&String], now: i64) -> Result<()> {
    let dir = parent_dir(textfile);
    let _lock = DirLock::exclusive(&dir, LOCK_WAIT)?;
    let state_path = state::path_of(textfile);
    let mut state = State::load(&state_path)?;
    for event in events {
        state.apply(event);
    }
    for db in missing {
        state.drill_missing(db, now);
    }
    write_atomic(&state_path, &state.to_bytes(), MODE)?;
    write_atomic(textfile, exposition::render(&state).as_bytes(), MODE)
}
