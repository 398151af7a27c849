//! `--all`: every database under a remote prefix, restored at its path
//! relative to that prefix (`tenants/acme/production` →
//! `DIR/tenants/acme/production.sqlite3`), for a whole server's recovery
//! or a container's first boot with `--if-missing`.
//!
//! One listing finds the databases (each prefix holding a `latest.json`);
//! each is then restored from its `latest.json` like a single prefix. The
//! names come from storage, so they are keys (validated: no `..`, no
//! absolute path) and the directories on the way are created through
//! `confine`, which never follows a symbolic link out of `-o`.

use crate::{Settings, restore_into};
use anyhow::Result;
use sqlkeep_common::address::Address;
use sqlkeep_common::confine;
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::input::Input;
use sqlkeep_common::key::Key;
use sqlkeep_common::log::Log;
use sqlkeep_common::record::Output;
use sqlkeep_common::repo::{Repository, locate};
use sqlkeep_common::tally::Tally;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

/// The databases under `root` (one listing), in key order.
pub fn databases(repo: &Repository) -> Result<Vec<Key>> {
    Ok(repo.databases()?.into_iter().map(|(db, _)| db).collect())
}

/// Restores every database under the prefix `input` names into `-o`.
pub(crate) fn pull_all(
    input: &Input,
    settings: &Settings<'_>,
    targets: &mut HashSet<PathBuf>,
    log: &Log,
    out: &mut Output,
    tally: &mut Tally,
) -> Result<()> {
    let Input::Plain(text) = input else {
        tally.report(
            log,
            &input.label(),
            &fail(Exit::Usage, "--all takes a remote prefix, not a record"),
        );
        return Ok(());
    };
    let root = Address::parse(text)?;
    let dir = std::path::absolute(settings.output.expect("clap requires -o with --all"))?;
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| {
            fail(
                Exit::Usage,
                format!("-o {}: cannot create it: {e}", dir.display()),
            )
        })?;
    }
    let repo = Repository::open(&root, settings.transfer)?;
    let dbs = match databases(&repo) {
        Ok(dbs) if dbs.is_empty() => {
            tally.report(
                log,
                text,
                &fail(
                    Exit::NotFound,
                    "no database under this prefix (no latest.json)",
                ),
            );
            return Ok(());
        }
        Ok(dbs) => dbs,
        Err(err) => {
            tally.report(log, text, &err);
            return Ok(());
        }
    };
    for db in dbs {
        let started = Instant::now();
        let label = format!("{text}/{db}");
        let result = (|| {
            let file = Key::parse(&format!("{db}.sqlite3"))?;
            let target = confine::prepare(&dir, &file)?;
            // A container's boot with a thousand tenants: a present
            // database costs no request at all.
            if settings.args.if_missing
                && std::fs::metadata(&target).is_ok_and(|m| m.is_file() && m.len() > 0)
            {
                log.skip(
                    &target.display().to_string(),
                    "present and not empty (--if-missing)",
                );
                return Ok(None);
            }
            let located = locate(&root.child(db.as_str()), None, settings.transfer)?;
            restore_into(&located, target, settings, targets, log, started)
        })();
        match result {
            Ok(Some(mut record)) => {
                // Its name under the prefix, not the last segment alone.
                record.set("db", db.as_str());
                out.emit(&record)?
            }
            Ok(None) => {}
            Err(err) => tally.report(log, &label, &err),
        }
    }
    Ok(())
}
