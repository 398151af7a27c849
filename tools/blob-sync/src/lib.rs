//! `blob-sync`: make a destination match a source — Active Storage files
//! to a bucket and back — copying only what changed, asking the storage as
//! little as possible, and refusing plans that would wipe a good backup.
//!
//! The run: lock a local destination against other runs, learn both
//! sides' state ([`side`], a walk and the cached or stored manifest, no
//! per-file request), compute the whole [`plan`], refuse it if it deletes
//! too much, copy in parallel, delete, and record the changes in the
//! destination's manifest last ([`commit`]), merged with any other run's.
//! What is encrypted or decrypted on the way is decided ([`crypt`]) as
//! soon as both sides' manifests are known, before anything is copied;
//! files are sealed or opened while they stream ([`copy`]).

pub mod cache;
pub mod cli;
pub mod commit;
pub mod copy;
pub mod crypt;
pub mod filter;
pub mod plan;
pub mod side;
pub mod tree;
pub mod workers;

use anyhow::{Context, Result};
use clap::CommandFactory;
use cli::Args;
use crypt::Keys;
use filter::Filter;
use plan::{MaxDelete, Sealed};
use serde_json::json;
use side::Side;
use sqlkeep_common::address::Address;
use sqlkeep_common::exit::{Exit, exit_of, fail};
use sqlkeep_common::key::Key;
use sqlkeep_common::lock::DirLock;
use sqlkeep_common::log::Log;
use sqlkeep_common::record::{Output, Record};
use sqlkeep_common::units::{human_bytes, human_duration};
use std::time::Instant;
use tree::{Entry, Tree};

/// The tool's clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Args::command()
}

/// How long a run waits for another run into the same local directory.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs `blob-sync`.
pub fn run(args: Args) -> Result<Exit> {
    let started = Instant::now();
    let log = Log::new("blob-sync", args.log.level());
    let filter = Filter::new(
        &args.exclude,
        &args.exclude_from,
        &args.include,
        !args.no_default_excludes,
    )?;
    let max_delete = MaxDelete::parse(&args.max_delete)?;
    let mut transfer = args.remote_args.transfer()?;
    // One connection per transfer, and one for the manifests and listings.
    transfer.connections = args.transfers as usize + 1;
    let source_address = Address::parse(&args.source)?;
    let dest_address = Address::parse(&args.dest)?;
    if source_address.local_path().is_none() && dest_address.local_path().is_none() {
        return Err(fail(Exit::Usage, "one side must be a local directory"));
    }
    let direction = match (source_address.local_path(), dest_address.local_path()) {
        (Some(_), None) => "uploaded",
        (None, Some(_)) => "downloaded",
        _ => "copied",
    };
    let src = Side::open(&args.source, transfer, args.copy_links)?;
    let dst = Side::open(&args.dest, transfer, false)?;
    let source_name = source_address.to_string();
    let dest_name = dest_address.to_string();

    // The source first, and what it takes to read it: a restore that
    // cannot decrypt stops here, before the destination is even created.
    let source = src.source_state(&filter, args.full_check)?;
    for problem in &source.problems {
        log.warn(&source_name, problem);
    }
    if !source.exists && !args.delete {
        return Err(fail(
            Exit::NotFound,
            format!("{source_name}: no such source"),
        ));
    }
    let keys = Keys::new(
        &args,
        source.encryption.as_ref(),
        &source_name,
        dest_address.local_path().is_some(),
        &log,
    )?;

    // Two runs into one local directory take turns; a remote destination
    // is protected by the conditional write of its manifest instead.
    let _lock = match (&dst, args.dry_run) {
        (Side::Dir(dir), false) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            Some(DirLock::exclusive(dir, LOCK_WAIT)?)
        }
        _ => None,
    };
    let cache_path = cache::path(&dest_name, args.cache_dir.as_deref());
    let cached = if args.full_check {
        None
    } else {
        cache_path.as_deref().and_then(cache::load)
    };
    let dest = dst.dest_state(&filter, args.full_check, cached)?;
    keys.check_dest(dest.encryption.as_ref(), &dest_name)?;
    let sealed = Sealed {
        source: source.encryption.is_some(),
        dest: dest.encryption.is_some(),
    };
    let mut plan = plan::make(&src, &source.tree, &dst, &dest.tree, args.delete, sealed)?;
    let rewrite = keys.rewrite_reason(&dst, &dest, &plan, &log)?;
    if let Some(why) = &rewrite {
        plan.rewrite_all(&source.tree);
        log.warn(&dest_name, why);
    }
    let mut refusal = plan::check_deletes(
        &plan,
        &source.tree,
        source.exists,
        dest.tree.len() as u64,
        max_delete,
    )
    .and_then(|()| match (&rewrite, &dest.encryption) {
        (Some(_), Some(was)) => plan::check_rewrite(&plan, &dest.full, &crypt::whom(was)),
        (Some(_), None) => plan::check_rewrite(&plan, &dest.full, "in plaintext"),
        (None, _) => Ok(()),
    });
    if !args.dry_run {
        std::mem::replace(&mut refusal, Ok(()))?;
    }

    let mut record = Record::new("sync");
    record
        .set("source", source_name.as_str())
        .set("dest", dest_name.as_str())
        .set("dest_state_from", dest.how.name());
    if let Some(label) = keys.label() {
        record.set("encryption", label.to_value());
    }
    if let Some(from) = &source.encryption {
        record.set("source_encryption", from.to_value());
    }
    // How many files are (or, in a dry run, would be) copied only to be
    // encrypted to the current keys.
    let reencrypted = |copied: usize| if rewrite.is_some() { copied } else { 0 };
    if args.dry_run {
        for (path, _) in &plan.copy {
            log.info(path.as_str(), "would copy");
        }
        for (path, _) in &plan.delete {
            log.info(path.as_str(), "would delete");
        }
        if keys.seal.is_some() {
            record.set("reencrypted", reencrypted(plan.copy.len()));
        }
        record.set("dry_run", true).set(
            "plan",
            json!({
                "copy": plan.copy.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
                "delete": plan.delete.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            }),
        );
        fill_counts(
            &mut record,
            direction,
            &plan.copy,
            &plan.delete,
            &plan.keep,
            source.skipped,
            0,
        );
        record.set("requests", requests(&src, &dst));
        let subject = format!("{source_name} → {dest_name}");
        let exit = match &refusal {
            Ok(()) => {
                let counts = (plan.copy.len(), plan.delete.len(), plan.keep.len());
                log.ok(
                    &subject,
                    &format!(
                        "dry run: would copy {} files, delete {}, {} in place",
                        counts.0, counts.1, counts.2
                    ),
                );
                Exit::Ok
            }
            Err(err) => {
                record.set("refused", format!("{err:#}"));
                log.error(
                    &subject,
                    &anyhow::anyhow!("dry run: the sync would be refused: {err:#}"),
                );
                exit_of(err)
            }
        };
        Output::stdout().emit(&record)?;
        return Ok(exit);
    }

    // Copy, then delete, then record the changes: an interrupted run
    // leaves a manifest that is at worst out of date in the safe direction
    // (files it lists as present are, or will be copied again).
    let copied = workers::copy_all(&src, &dst, &plan.copy, args.transfers as usize, &keys, &log);
    let mut errors = copied.failed.len() + copied.unstarted;
    let mut changes = commit::Changes {
        encryption: keys.label(),
        planned: dest.encryption.clone(),
        rewrite_all: rewrite.is_some(),
        ..commit::Changes::default()
    };
    changes.updated.extend(copied.done.iter().cloned());
    // Files in place whose entry this run learned more about (a checksum,
    // a modification time) are recorded too.
    for (path, entry) in &plan.keep {
        if dest.tree.get(path) != Some(entry) {
            changes.updated.push((path.clone(), entry.clone()));
        }
    }
    let mut deleted = Vec::new();
    for (path, entry) in &plan.delete {
        match dst.delete(path) {
            Ok(()) => {
                log.info(path.as_str(), "deleted");
                deleted.push((path.clone(), entry.clone()));
                changes.deleted.push(path.clone());
            }
            Err(err) => {
                log.error(&side::describe(&dst, path), &err);
                errors += 1;
            }
        }
    }
    // The manifest is rewritten only when something changed: an unchanged
    // tree costs no request, even when its state came from a GET.
    let restore = matches!(src, Side::Remote(_));
    let manifest = match commit::write(&dst, &dest.full, &changes, &source_name, restore)? {
        Some(text) => text,
        None => tree::manifest_json(&dest.full, &source_name, dest.encryption.as_ref()),
    };
    if let Some(path) = &cache_path
        && let Err(e) = cache::save(path, &manifest)
    {
        log.warn(
            &path.display().to_string(),
            &format!("cannot write the manifest cache: {e:#}"),
        );
    }

    let copied_entries: Vec<(Key, Entry)> = copied.done;
    fill_counts(
        &mut record,
        direction,
        &copied_entries,
        &deleted,
        &plan.keep,
        source.skipped,
        errors,
    );
    record.set("links_skipped", source.links);
    if keys.seal.is_some() {
        record.set("reencrypted", reencrypted(copied_entries.len()));
    }
    record.set("requests", requests(&src, &dst)).set(
        "seconds",
        (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    );
    let bytes: u64 = copied_entries.iter().map(|(_, e)| e.bytes).sum();
    let summary = format!(
        "{} {} files ({}), deleted {}, {} in place, {} skipped by filter, {}",
        direction,
        copied_entries.len(),
        human_bytes(bytes),
        deleted.len(),
        plan.keep.len(),
        source.skipped,
        human_duration(started.elapsed())
    );
    if errors == 0 {
        log.ok(&format!("{source_name} → {dest_name}"), &summary);
    } else {
        log.error(
            &format!("{source_name} → {dest_name}"),
            &anyhow::anyhow!("{errors} files failed; {summary}"),
        );
    }
    Output::stdout().emit(&record)?;
    Ok(match copied.worst {
        Some(exit) if errors > 0 => exit,
        _ if errors > 0 => Exit::Failed,
        _ => Exit::Ok,
    })
}

/// Adds the counts of a run to its record.
fn fill_counts(
    record: &mut Record,
    direction: &str,
    copied: &[(Key, Entry)],
    deleted: &[(Key, Entry)],
    kept: &Tree,
    skipped: u64,
    errors: usize,
) {
    let count = |files: &mut dyn Iterator<Item = &Entry>| {
        let (n, bytes) = files.fold((0u64, 0u64), |(n, b), e| (n + 1, b + e.bytes));
        json!({"files": n, "bytes": bytes})
    };
    record
        .set(direction, count(&mut copied.iter().map(|(_, e)| e)))
        .set("deleted", count(&mut deleted.iter().map(|(_, e)| e)))
        .set("unchanged", count(&mut kept.values()))
        .set("skipped", json!({"files": skipped}))
        .set("errors", errors);
}

/// The requests both sides made.
fn requests(src: &Side, dst: &Side) -> serde_json::Value {
    let total = sqlkeep_common::store::Requests::default();
    for side in [src, dst] {
        if let Some(store) = side.store() {
            total.add(store.requests());
        }
    }
    total.to_json()
}
