//! `sqlite-maint`: keep SQLite files from growing forever, safely, while
//! the application runs. One `maint` record per database.
//!
//! Per database: check the file, decide whether it may be written
//! ([`access`]), read its [`state::State`], run what was asked in short
//! write transactions ([`ops`]), and report the state again. With
//! `--dry-run` (or no operation) the database is opened read-only and only
//! the plan is reported; `--status` reads each database without writing a
//! byte and says what would give space back.
//!
//! A database never converted to auto_vacuum = incremental is a state, not
//! a failure (issue 14): the hourly `--incremental-vacuum` line runs over a
//! whole storage directory, and failing every hour on a database nobody
//! chose to convert would teach operators to ignore the mail. Its record
//! says what converting would give back.

pub mod access;
pub mod cli;
pub mod ops;
pub mod state;

use anyhow::{Context, Result};
use clap::CommandFactory;
use cli::{Args, AutoVacuum, Checkpoint};
use ops::LockTime;
use rusqlite::{Connection, MAIN_DB, OpenFlags};
use serde_json::json;
use sqlkeep_common::discover::{self, Target};
use sqlkeep_common::exit::{Exit, exit_of};
use sqlkeep_common::input::inputs;
use sqlkeep_common::log::Log;
use sqlkeep_common::record::{Output, Record};
use sqlkeep_common::sqlite;
use sqlkeep_common::tally::Tally;
use sqlkeep_common::time::duration_option;
use sqlkeep_common::units::{human_bytes, human_duration};
use state::State;
use std::path::Path;
use std::time::{Duration, Instant};

/// The tool's clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Args::command()
}

/// What to do to every database.
struct Plan {
    auto_vacuum: Option<AutoVacuum>,
    rebuild: bool,
    incremental_vacuum: Option<Option<u64>>,
    checkpoint: Option<Checkpoint>,
    optimize: bool,
    analyze: bool,
    dry_run: bool,
    busy_timeout: Duration,
}

impl Plan {
    /// True when anything asked writes to the database.
    fn writes(&self) -> bool {
        self.auto_vacuum.is_some()
            || self.incremental_vacuum.is_some()
            || self.checkpoint.is_some()
            || self.optimize
            || self.analyze
    }
}

/// Something that kept an operation from being done.
struct Problem {
    exit: Exit,
    message: String,
}

/// What happened to one database: what ran, what could not, what is worth
/// knowing without being a failure, and how long the write lock was held.
#[derive(Default)]
struct Outcome {
    ran: Vec<String>,
    problems: Vec<Problem>,
    notes: Vec<String>,
    lock: LockTime,
}

impl Outcome {
    /// Counts an operation's error as a problem with the error's exit code.
    fn fail(&mut self, err: anyhow::Error) {
        self.problems.push(Problem {
            exit: exit_of(&err),
            message: format!("{err:#}"),
        });
    }
}

/// Runs `sqlite-maint`.
pub fn run(args: Args) -> Result<Exit> {
    let log = Log::new("sqlite-maint", args.log.level());
    let busy = duration_option("--busy-timeout", &args.busy_timeout)?;
    let excludes = discover::excludes(&args.exclude)?;
    let plan = Plan {
        auto_vacuum: args.auto_vacuum,
        rebuild: args.rebuild,
        incremental_vacuum: args.incremental_vacuum.map(|n| (n > 0).then_some(n)),
        checkpoint: args.checkpoint,
        optimize: args.optimize,
        analyze: args.analyze,
        dry_run: args.dry_run,
        busy_timeout: Duration::from_secs(busy as u64),
    };
    let mut out = Output::stdout();
    let mut tally = Tally::default();
    for item in inputs(&args.inputs, "databases")? {
        let targets = match discover::expand(item, &excludes) {
            Ok(targets) => targets,
            Err((label, err)) => {
                tally.report(&log, &label, &err);
                continue;
            }
        };
        for target in targets {
            if args.status {
                match status(&target, plan.busy_timeout, &log) {
                    Ok(record) => out.emit(&record)?,
                    Err(err) => {
                        let err = sqlite::explain(err, &target.path, &target.path);
                        tally.report(&log, &target.label, &err);
                    }
                }
                continue;
            }
            match maintain(&target, &plan, &log) {
                Ok((record, problems)) => {
                    for problem in &problems {
                        log.warn(&target.label, &problem.message);
                    }
                    if let Some(first) = problems.first() {
                        tally.fail(first.exit);
                    }
                    out.emit(&record)?;
                }
                Err(err) => {
                    let err = sqlite::explain(err, &target.path, &target.path);
                    tally.report(&log, &target.label, &err);
                }
            }
        }
    }
    Ok(tally.exit())
}

/// Maintains one database; returns its record and what could not be done.
fn maintain(target: &Target, plan: &Plan, log: &Log) -> Result<(Record, Vec<Problem>)> {
    let started = Instant::now();
    sqlite::check_file(&target.path)?;
    let path = sqlite::canonical(&target.path)?;
    let mut read_only = if plan.dry_run {
        None
    } else {
        access::read_only_reason(&path)?
    };
    let open_read_only = plan.dry_run || read_only.is_some() || !plan.writes();
    let conn = open(&path, open_read_only, plan.busy_timeout)?;
    if !open_read_only && conn.is_readonly(MAIN_DB).unwrap_or(false) {
        read_only = Some(
            "SQLite can only open it read-only (read-only file system or no write permission)"
                .into(),
        );
    }
    let before = State::read(&conn, &path)?;
    let mut record = Record::new("maint");
    record
        .set("path", path.display().to_string())
        .set("db", target.name.as_str())
        .set("before", before.to_json());
    let mut outcome = Outcome::default();

    if plan.dry_run {
        let (lines, would_reclaim) = dry_run(plan, &before, &path)?;
        record
            .set("dry_run", true)
            .set("plan", lines)
            .set("would_reclaim_bytes", would_reclaim)
            .set(
                "conversion_would_gain",
                before.conversion_would_reclaim() > 0,
            )
            .set(
                "conversion_would_reclaim_bytes",
                before.conversion_would_reclaim(),
            );
        log.ok(
            &target.label,
            &format!(
                "dry run: would reclaim about {}",
                human_bytes(would_reclaim)
            ),
        );
        return Ok((record, outcome.problems));
    }
    match (&read_only, plan.writes()) {
        (Some(reason), true) => outcome.problems.push(Problem {
            exit: Exit::Failed,
            message: format!("{reason}: write operations skipped, report only"),
        }),
        _ => {
            if (plan.checkpoint.is_some() || plan.rebuild)
                && let Some(dir) = access::litestream_dir(&path)
            {
                log.warn(
                    &target.label,
                    &format!(
                        "Litestream is replicating this database ({} exists): a checkpoint or rebuild by another process can break its WAL tracking",
                        dir.display()
                    ),
                );
            }
            run_operations(
                &conn,
                &path,
                plan,
                &before,
                &mut outcome,
                &mut record,
                log,
                &target.label,
            );
        }
    }

    // Page facts come from SQLite; sizes are read again after closing,
    // since closing the last connection can checkpoint and remove the WAL.
    let mut after = State::read(&conn, &path)?;
    drop(conn);
    after.file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    after.wal_bytes = std::fs::metadata(state::wal_path(&path))
        .map(|m| m.len())
        .unwrap_or(0);
    let reclaimed =
        (before.file_bytes + before.wal_bytes) as i64 - (after.file_bytes + after.wal_bytes) as i64;
    let Outcome {
        ran,
        problems,
        notes,
        lock,
    } = outcome;
    record
        .set("after", after.to_json())
        .set("ran", ran.clone())
        .set("reclaimed_bytes", reclaimed)
        .set("lock_held_ms", lock.total.as_millis() as u64)
        .set("lock_held_max_ms", lock.longest.as_millis() as u64)
        .set(
            "conversion_would_gain",
            after.conversion_would_reclaim() > 0,
        )
        .set(
            "conversion_would_reclaim_bytes",
            after.conversion_would_reclaim(),
        )
        .set("ok", problems.is_empty())
        .set(
            "problems",
            problems
                .iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>(),
        )
        .set("notes", notes.clone());
    if let Some(carried) = &target.carried {
        record.carry(carried);
    }
    let mut summary = if ran.is_empty() && problems.is_empty() {
        format!(
            "report only: {} in file, {} free pages, WAL {}",
            human_bytes(before.file_bytes),
            before.freelist_count,
            human_bytes(before.wal_bytes)
        )
    } else {
        format!(
            "reclaimed {}, free pages {} → {}, WAL {} → {}, lock held {}, {}",
            human_bytes(reclaimed.max(0) as u64),
            before.freelist_count,
            after.freelist_count,
            human_bytes(before.wal_bytes),
            human_bytes(after.wal_bytes),
            human_duration(lock.total),
            human_duration(started.elapsed())
        )
    };
    for note in &notes {
        summary.push_str("; ");
        summary.push_str(note);
    }
    if problems.is_empty() {
        log.ok(&target.label, &summary);
    } else {
        log.info(&target.label, &summary);
    }
    Ok((record, problems))
}

/// `--status`: one database's auto_vacuum mode, pages, free pages and WAL,
/// and what would give space back, read without writing a byte.
///
/// A WAL database whose WAL is missing or empty is read from its header:
/// even a read-only SQLite connection would create `-wal` and `-shm` files
/// beside it and, unable to remove them, leave them behind. Otherwise
/// SQLite reads it read-only (in a live WAL database it takes its read lock
/// in the `-shm` index, as every reader of the application does).
fn status(target: &Target, busy: Duration, log: &Log) -> Result<Record> {
    let header = sqlite::check_file(&target.path)?;
    let path = sqlite::canonical(&target.path)?;
    let state = if header.is_wal() && state::wal_bytes(&path) == 0 {
        State::from_header(&path, &header)
    } else {
        let conn = sqlite::open_read_only(&path, busy)?;
        State::read(&conn, &path)?
    };
    let vacuum_would_reclaim = if state.auto_vacuum == AutoVacuum::Incremental {
        state.free_bytes()
    } else {
        0
    };
    let mut record = Record::new("maint");
    record
        .set("path", path.display().to_string())
        .set("db", target.name.as_str())
        .set("status", true)
        .set("auto_vacuum", state.auto_vacuum.name())
        .set("wal_mode", state.wal_mode)
        .set("page_size", state.page_size)
        .set("page_count", state.page_count)
        .set("freelist_count", state.freelist_count)
        .set("free_bytes", state.free_bytes())
        .set("file_bytes", state.file_bytes)
        .set("wal_bytes", state.wal_bytes)
        .set(
            "incremental_vacuum_would_reclaim_bytes",
            vacuum_would_reclaim,
        )
        .set(
            "conversion_would_gain",
            state.conversion_would_reclaim() > 0,
        )
        .set(
            "conversion_would_reclaim_bytes",
            state.conversion_would_reclaim(),
        )
        .set("ok", true);
    if let Some(carried) = &target.carried {
        record.carry(carried);
    }
    let advice = match state.auto_vacuum {
        AutoVacuum::None if state.freelist_count > 0 => format!(
            "converting once would give back {}: sqlite-maint --auto-vacuum incremental --rebuild {}",
            human_bytes(state.free_bytes()),
            target.label
        ),
        AutoVacuum::None => "nothing free now; convert once (--auto-vacuum incremental \
                             --rebuild) so that pages freed later can be given back"
            .to_string(),
        AutoVacuum::Incremental if vacuum_would_reclaim > 0 => format!(
            "--incremental-vacuum would give back {}",
            human_bytes(vacuum_would_reclaim)
        ),
        _ => "nothing to give back".to_string(),
    };
    log.ok(
        &target.label,
        &format!(
            "auto_vacuum {}, {} pages of {} ({}), {} free ({}), WAL {}; {advice}",
            state.auto_vacuum.name(),
            state.page_count,
            human_bytes(state.page_size),
            human_bytes(state.file_bytes),
            state.freelist_count,
            human_bytes(state.free_bytes()),
            human_bytes(state.wal_bytes),
        ),
    );
    Ok(record)
}

/// Opens the database (never creating it) with the busy timeout.
fn open(path: &Path, read_only: bool, busy: Duration) -> Result<Connection> {
    if read_only {
        return sqlite::open_read_only(path, busy);
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .context("cannot open database")?;
    sqlite::set_busy_timeout(&mut conn, busy)?;
    Ok(conn)
}

/// Runs the asked operations in a safe order: the auto_vacuum change
/// first (it decides what incremental vacuum can do), statistics next, the
/// checkpoint last so that it also folds in what the others wrote.
#[allow(clippy::too_many_arguments)]
fn run_operations(
    conn: &Connection,
    path: &Path,
    plan: &Plan,
    before: &State,
    out: &mut Outcome,
    record: &mut Record,
    log: &Log,
    label: &str,
) {
    let busy = plan.busy_timeout;
    if let Some(mode) = plan.auto_vacuum
        && before.auto_vacuum != mode
    {
        if !ops::needs_rebuild(before.auto_vacuum, mode, before.page_count) {
            match ops::set_auto_vacuum(conn, mode, &mut out.lock, busy) {
                Ok(()) => out.ran.push(format!("auto_vacuum = {}", mode.name())),
                Err(err) => out.fail(err),
            }
        } else if !plan.rebuild {
            out.problems.push(Problem {
                exit: Exit::Failed,
                message: format!(
                    "auto_vacuum is {}; switching it to {} rewrites the file: pass --rebuild \
                     (a VACUUM that holds the write lock throughout and needs about {} free)",
                    before.auto_vacuum.name(),
                    mode.name(),
                    human_bytes(before.file_bytes)
                ),
            });
        } else {
            match access::rebuild_room(path, before.file_bytes + before.wal_bytes) {
                Ok(Some(shortfall)) => out.problems.push(Problem {
                    exit: Exit::Refused,
                    message: shortfall,
                }),
                Err(err) => out.fail(err),
                Ok(None) => {
                    log.warn(
                        label,
                        &format!(
                            "rebuilding with VACUUM ({}): the application's writes wait until it finishes",
                            human_bytes(before.file_bytes)
                        ),
                    );
                    match ops::rebuild(conn, mode, &mut out.lock, busy) {
                        Ok(()) => out.ran.push(format!("auto_vacuum = {}", mode.name())),
                        Err(err) => out.fail(err),
                    }
                    out.ran.push("VACUUM".into());
                }
            }
        }
    }
    if let Some(limit) = plan.incremental_vacuum {
        let what = format!(
            "incremental_vacuum({})",
            limit.map_or("all".to_string(), |n| n.to_string())
        );
        let current = conn
            .query_row("PRAGMA main.auto_vacuum", [], |r| r.get::<_, i64>(0))
            .map(AutoVacuum::from_number);
        match current {
            Ok(AutoVacuum::Incremental) => {
                match ops::incremental_vacuum(conn, limit, &mut out.lock, busy) {
                    Ok(freed) => out.ran.push(format!("{what}: {freed} pages")),
                    Err(err) => out.fail(err),
                }
            }
            Ok(AutoVacuum::Full) => out.ran.push(format!(
                "{what}: nothing to do, auto_vacuum = full frees pages on commit"
            )),
            Ok(AutoVacuum::None) => out.notes.push(format!(
                "incremental vacuum skipped: auto_vacuum is none, so free pages stay in the \
                 file; converting once (--auto-vacuum incremental --rebuild) would give back {}",
                human_bytes(before.conversion_would_reclaim())
            )),
            Err(err) => out.fail(anyhow::Error::new(err)),
        }
    }
    for (wanted, sql) in [
        (plan.analyze, "ANALYZE"),
        (plan.optimize, "PRAGMA optimize"),
    ] {
        if wanted {
            match ops::statistics(conn, sql, &mut out.lock, busy) {
                Ok(()) => out.ran.push(sql.to_string()),
                Err(err) => out.fail(err),
            }
        }
    }
    if let Some(mode) = plan.checkpoint {
        if !before.wal_mode {
            out.ran.push(format!(
                "wal_checkpoint({}): not in WAL mode, nothing to do",
                mode.sql()
            ));
            return;
        }
        let frames_before = State::read(conn, path)
            .map(|s| s.wal_frames())
            .unwrap_or(before.wal_frames());
        match ops::checkpoint(conn, mode, &mut out.lock) {
            Ok(c) => {
                out.ran.push(format!("wal_checkpoint({})", mode.sql()));
                record.set(
                    "checkpoint",
                    json!({
                        "mode": mode.sql().to_lowercase(),
                        "blocked": c.blocked,
                        "wal_frames_before": frames_before,
                        "wal_frames_after": c.wal_frames_after,
                        "checkpointed": c.checkpointed,
                    }),
                );
                if c.blocked {
                    out.problems.push(Problem {
                        exit: Exit::Unavailable,
                        message: format!(
                            "checkpoint ({}) blocked by a reader or writer within the busy timeout: {} WAL frames remain; try again later",
                            mode.sql(),
                            c.wal_frames_after
                        ),
                    });
                }
            }
            Err(err) => out.fail(err),
        }
    }
}

/// What `--dry-run` reports: one line per operation, and the bytes it
/// would reclaim.
fn dry_run(plan: &Plan, before: &State, path: &Path) -> Result<(Vec<String>, u64)> {
    let mut lines = Vec::new();
    let mut reclaim = 0u64;
    let free_bytes = before.freelist_count * before.page_size;
    let mut mode = before.auto_vacuum;
    if let Some(target) = plan.auto_vacuum
        && target != before.auto_vacuum
    {
        if !ops::needs_rebuild(before.auto_vacuum, target, before.page_count) {
            lines.push(format!("set auto_vacuum = {}", target.name()));
            mode = target;
        } else if !plan.rebuild {
            lines.push(format!(
                "refuse: auto_vacuum {} → {} needs --rebuild",
                before.auto_vacuum.name(),
                target.name()
            ));
        } else if let Some(shortfall) =
            access::rebuild_room(path, before.file_bytes + before.wal_bytes)?
        {
            lines.push(format!("refuse: {shortfall}"));
        } else {
            lines.push(format!(
                "rebuild with VACUUM as auto_vacuum = {}: holds the write lock throughout, reclaims about {}",
                target.name(),
                human_bytes(free_bytes)
            ));
            reclaim += free_bytes;
            mode = target;
        }
    }
    if let Some(limit) = plan.incremental_vacuum {
        if mode == AutoVacuum::Incremental {
            let pages = limit.map_or(before.freelist_count, |l| l.min(before.freelist_count));
            lines.push(format!(
                "incremental vacuum of {pages} pages ({})",
                human_bytes(pages * before.page_size)
            ));
            if reclaim == 0 {
                reclaim += pages * before.page_size;
            }
        } else {
            lines.push(format!(
                "incremental vacuum: nothing to reclaim with auto_vacuum = {}",
                mode.name()
            ));
        }
    }
    for (wanted, sql) in [
        (plan.analyze, "ANALYZE"),
        (plan.optimize, "PRAGMA optimize"),
    ] {
        if wanted {
            lines.push(format!("run {sql}"));
        }
    }
    if let Some(checkpoint) = plan.checkpoint {
        if before.wal_mode {
            lines.push(format!(
                "checkpoint ({}) of {} WAL frames",
                checkpoint.sql(),
                before.wal_frames()
            ));
            if checkpoint == Checkpoint::Truncate {
                reclaim += before.wal_bytes;
            }
        } else {
            lines.push("checkpoint: not in WAL mode".into());
        }
    }
    Ok((lines, reclaim))
}
