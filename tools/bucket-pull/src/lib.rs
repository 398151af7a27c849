//! `bucket-pull`: restore databases from a remote, checked and atomic.
//!
//! The repository (`sqlkeep_common::repo::locate`) finds what a source
//! names and the manifest it is checked against; [`restore`] decides
//! whether the target may be written and installs the checked file without
//! losing the one it replaces. One `restored` record per file goes to
//! stdout.

pub mod all;
pub mod cli;
pub mod list;
pub mod own;
pub mod rebuild;
pub mod restore;
pub mod table;

use anyhow::Result;
use clap::CommandFactory;
use cli::Args;
use restore::{Decision, Permission};
use sqlkeep_common::address::Address;
use sqlkeep_common::crypt::Identities;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::input::{Input, inputs};
use sqlkeep_common::log::Log;
use sqlkeep_common::record::{Output, Record};
use sqlkeep_common::repo::{Located, Restorable, locate, locate_record};
use sqlkeep_common::store::{Kind, Transfer};
use sqlkeep_common::tally::Tally;
use sqlkeep_common::time::Timestamp;
use sqlkeep_common::units::{human_bytes, human_duration};
use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The tool's clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Args::command()
}

/// Runs `bucket-pull`.
pub fn run(args: Args) -> Result<Exit> {
    let log = Log::new("bucket-pull", args.log.level());
    let output = prepare_output(args.output.as_deref())?;
    if args.sources.len() > 1 && !output.as_ref().is_some_and(|o| o.is_dir()) {
        return Err(fail(
            Exit::Usage,
            "several sources need -o to name an existing directory",
        ));
    }
    let transfer = args.remote_args.transfer()?;
    let at = args.at.as_deref().map(parse_at).transpose()?;
    let ids = args.decrypt.identities(&log)?;
    let owner = args.owner.as_deref().map(owner_ids).transpose()?;
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
        let settings = Settings {
            args: &args,
            output: output.as_deref(),
            at,
            transfer,
            ids: &ids,
            owner,
        };
        if args.all {
            all::pull_all(&input, &settings, &mut targets, &log, &mut out, &mut tally)?;
            continue;
        }
        if args.list {
            match list_one(&input, transfer, &log) {
                // A person at a terminal gets a table; a pipe, records.
                Ok(records) if std::io::stdout().is_terminal() => {
                    table::write(&mut std::io::stdout().lock(), &input.label(), &records)?;
                }
                Ok(records) => {
                    for record in records {
                        out.emit(&record)?;
                    }
                }
                Err(err) => tally.report(&log, &input.label(), &err),
            }
            continue;
        }
        match pull_one(&input, &settings, &mut targets, &log) {
            Ok(Some(record)) => out.emit(&record)?,
            Ok(None) => {}
            Err(err) => tally.report(&log, &input.label(), &err),
        }
    }
    Ok(tally.exit())
}

/// Makes `-o DIR/` (a trailing slash names a directory) and the parent
/// directory of `-o FILE` exist before anything is downloaded, so a bad
/// `-o` fails at once rather than after the whole download.
fn prepare_output(output: Option<&Path>) -> Result<Option<PathBuf>> {
    let Some(output) = output else {
        return Ok(None);
    };
    let text = output.as_os_str().to_string_lossy();
    let as_dir = text.ends_with('/');
    let dir = if as_dir {
        // Without the slash: stat of "file/" fails with ENOTDIR, not with
        // the answer "a file is there".
        PathBuf::from(text.trim_end_matches('/'))
    } else if output.is_dir() {
        return Ok(Some(output.to_path_buf()));
    } else {
        sqlkeep_common::atomic::parent_dir(output)
    };
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(fail(
                Exit::Usage,
                format!(
                    "-o {}: {} is not a directory",
                    output.display(),
                    dir.display()
                ),
            ));
        }
        Err(_) => std::fs::create_dir_all(&dir).map_err(|e| {
            fail(
                Exit::Usage,
                format!(
                    "-o {}: cannot create {}: {e}",
                    output.display(),
                    dir.display()
                ),
            )
        })?,
    }
    Ok(Some(output.to_path_buf()))
}

/// What every restore of a run shares.
pub(crate) struct Settings<'a> {
    args: &'a Args,
    output: Option<&'a Path>,
    at: Option<Timestamp>,
    transfer: Transfer,
    ids: &'a Identities,
    /// `--owner`, resolved to ids.
    owner: Option<(u32, u32)>,
}

/// Restores one source; None when `--if-missing` found the database there.
fn pull_one(
    input: &Input,
    settings: &Settings<'_>,
    targets: &mut HashSet<PathBuf>,
    log: &Log,
) -> Result<Option<Record>> {
    let Settings {
        output,
        at,
        transfer,
        ..
    } = *settings;
    let started = Instant::now();
    let located = match (at, input) {
        (Some(_), Input::Record(_)) => {
            return Err(fail(
                Exit::Usage,
                "--at takes a database prefix, not a record",
            ));
        }
        (_, Input::Plain(text)) => locate(&Address::parse(text)?, at, transfer)?,
        (None, Input::Record(record)) => locate_record(record, transfer)?,
    };
    let target = target_path(output, &located.file_name())?;
    restore_into(&located, target, settings, targets, log, started)
}

/// Restores what `located` names into `target`, when the flags allow.
pub(crate) fn restore_into(
    located: &Located,
    target: PathBuf,
    settings: &Settings<'_>,
    targets: &mut HashSet<PathBuf>,
    log: &Log,
    started: Instant,
) -> Result<Option<Record>> {
    let Settings {
        args, ids, owner, ..
    } = *settings;
    if !targets.insert(target.clone()) {
        return Err(fail(
            Exit::Usage,
            format!(
                "{} was already restored in this run; give -o a directory",
                target.display()
            ),
        ));
    }
    let allow = Permission {
        force: args.force,
        if_missing: args.if_missing,
        even_if_open: args.even_if_open,
    };
    let state_root = sqlkeep_common::state::default_root();
    let (mut access, replaces) = match restore::decide(&target, allow, &state_root)? {
        Decision::Skip => {
            log.skip(
                &target.display().to_string(),
                "present and not empty (--if-missing)",
            );
            return Ok(None);
        }
        Decision::Restore { access, replaces } => (access, replaces),
    };
    if let Some(mode) = args.mode {
        access.mode = mode;
    }
    if let Some(owner) = owner {
        access.owner = owner;
        access.insist = true;
    }
    let restored = restore::restore(located, &target, access, ids, log)?;
    if let Err(e) = own::remember(
        &state_root,
        &target,
        restored.raw.bytes,
        &restored.raw.sha256,
    ) {
        log.warn(
            &target.display().to_string(),
            &format!(
                "cannot note this restore under {} ({e:#}): the next restore here will need --force",
                state_root.display()
            ),
        );
    }
    let url = located.url();
    let record = restored_record(located, &target, &restored, replaces);
    if let Restorable::Unchecked { .. } = located.what {
        log.warn(
            &url,
            "no manifest found: the download was checked only by zstd's own frame checksum",
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

/// The `restored` record: the restored file, its digests, and the
/// manifest's other fields carried along.
fn restored_record(
    located: &Located,
    target: &Path,
    restored: &restore::Restored,
    replaces: bool,
) -> Record {
    let (db, manifest) = match &located.what {
        Restorable::Snapshot { db, manifest, .. } => (db.to_string(), Some(manifest.to_record())),
        Restorable::File { manifest, .. } => (manifest.name.clone(), Some(manifest.to_record())),
        Restorable::Unchecked { db, .. } => (db.to_string(), None),
    };
    let mut record = Record::new("restored");
    record
        .set("path", target.display().to_string())
        .set("db", db.as_str())
        .set("source_url", located.url())
        .set("bytes", restored.stored.bytes)
        .set("sha256", restored.stored.sha256.as_str())
        .set("raw_bytes", restored.raw.bytes)
        .set("raw_sha256", restored.raw.sha256.as_str());
    if let Restorable::Snapshot { manifest, .. } = &located.what {
        record.set("taken_at", manifest.taken_at.rfc3339());
        if manifest.chain.len() > 1 {
            let links = &manifest.chain;
            record
                .set("chain_objects", links.len())
                .set("chain_bytes", links.iter().map(|l| l.bytes).sum::<u64>());
        }
    }
    if replaces {
        record.set("replaced", true);
    }
    if let Some(manifest) = manifest {
        record.carry(&manifest);
        record.remove("url");
    }
    // The repository was opened for this source alone, so its counts
    // include the manifest or latest.json read that located the object.
    record.set("requests", located.repo.store().requests().to_json());
    record
}

/// Lists the snapshots under one prefix (`--list`).
fn list_one(input: &Input, transfer: Transfer, log: &Log) -> Result<Vec<Record>> {
    let text = match input {
        Input::Plain(text) => text.as_str(),
        Input::Record(record) => record
            .str("url")
            .ok_or_else(|| fail(Exit::Failed, "record has no \"url\" to list"))?,
    };
    let address = Address::parse(text)?;
    let (records, repo) = list::records(&address, transfer)?;
    let what = if records.iter().all(|r| r.kind() == Some("database")) {
        "databases"
    } else {
        "snapshots"
    };
    log.ok(
        &address.to_string(),
        &format!(
            "{} {what}, {} listing requests",
            records.len(),
            repo.store().requests().get(Kind::List)
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

/// Reads a `--at` time: RFC 3339; a minute (`2026-11-20T14:30`, UTC)
/// meaning the end of that minute, so an incremental chain's point of
/// that minute is included; or a date meaning the end of that day (UTC),
/// so that `--at 2026-11-20` includes that day's snapshots.
pub fn parse_at(text: &str) -> Result<Timestamp> {
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        return Ok(t);
    }
    let minute = text.strip_suffix('Z').unwrap_or(text);
    if minute.len() == 16
        && minute.as_bytes()[10] == b'T'
        && let Ok(t) = Timestamp::parse_rfc3339(&format!("{minute}:59Z"))
    {
        return Ok(t);
    }
    let day = Timestamp::parse_date(text).map_err(|_| {
        fail(
            Exit::Usage,
            format!(
                "bad --at {text:?}: expected RFC 3339 (2026-11-20T14:30:00Z), a UTC minute (2026-11-20T14:30) or YYYY-MM-DD"
            ),
        )
    })?;
    Ok(Timestamp::from_unix(day.unix() + 86_399))
}

/// `--owner USER[:GROUP]` as ids: names through the system's user and
/// group databases (NSS), or numbers; without a group, the user's own.
fn owner_ids(text: &str) -> Result<(u32, u32)> {
    use nix::unistd::{Group, Uid, User};
    let bad = |why: String| fail(Exit::Usage, format!("--owner {text}: {why}"));
    let (user, group) = match text.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (text, None),
    };
    let user = if let Ok(uid) = user.parse::<u32>() {
        User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or((uid, None), |u| (uid, Some(u.gid.as_raw())))
    } else {
        let found = User::from_name(user)
            .ok()
            .flatten()
            .ok_or_else(|| bad(format!("no user named {user:?}")))?;
        (found.uid.as_raw(), Some(found.gid.as_raw()))
    };
    let gid = match group.filter(|g| !g.is_empty()) {
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => Group::from_name(group)
                .ok()
                .flatten()
                .ok_or_else(|| bad(format!("no group named {group:?}")))?
                .gid
                .as_raw(),
        },
        None => user.1.ok_or_else(|| {
            bad(format!(
                "user {} has no entry to take a group from; give USER:GROUP",
                user.0
            ))
        })?,
    };
    Ok((user.0, gid))
}

#[cfg(test)]
mod tests {
    use super::parse_at;

    #[test]
    fn at_reads_seconds_minutes_and_days() {
        let at = |t: &str| parse_at(t).unwrap().rfc3339();
        assert_eq!(at("2026-11-20T14:30:05Z"), "2026-11-20T14:30:05Z");
        assert_eq!(at("2026-11-20T14:30"), "2026-11-20T14:30:59Z");
        assert_eq!(at("2026-11-20T14:30Z"), "2026-11-20T14:30:59Z");
        assert_eq!(at("2026-11-20"), "2026-11-20T23:59:59Z");
        for bad in [
            "2026-11-20T14",
            "2026-11-20T14:3",
            "2026-11-20 14:30",
            "14:30",
        ] {
            assert!(parse_at(bad).is_err(), "{bad}");
        }
    }
}
