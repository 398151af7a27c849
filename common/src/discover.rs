//! Turning arguments and stdin lines into the databases to work on.
//!
//! A directory stands for the `*.sqlite3` files directly in it (never their
//! `-wal`/`-shm` companions), minus those matching `--exclude`. A directory
//! holding no database is an error (exit 3), because a nightly job that
//! quietly backs up nothing is the failure operators find too late.

use crate::exit::{Exit, fail};
use crate::input::Input;
use crate::record::Record;
use anyhow::{Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::path::{Path, PathBuf};

/// One database to work on.
#[derive(Debug, Clone)]
pub struct Target {
    /// The path as the operator wrote it, for log lines.
    pub label: String,
    /// The database file.
    pub path: PathBuf,
    /// The record it came from, whose fields are carried along.
    pub carried: Option<Record>,
}

/// Compiles the `--exclude` patterns (a usage error when one is invalid).
pub fn excludes(patterns: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern)
            .map_err(|e| fail(Exit::Usage, format!("bad --exclude {pattern:?}: {e}")))?;
        set.add(glob);
    }
    set.build()
        .map_err(|e| fail(Exit::Usage, format!("bad --exclude: {e}")))
}

/// The databases an input item stands for; on failure, the label to name
/// in the error line (empty for an unreadable stdin line, whose error
/// already says which).
pub fn expand(
    item: Result<Input>,
    excludes: &GlobSet,
) -> std::result::Result<Vec<Target>, (String, anyhow::Error)> {
    let input = item.map_err(|err| (String::new(), err))?;
    targets(&input, excludes).map_err(|err| (input.label(), err))
}

/// The databases one input stands for.
pub fn targets(input: &Input, excludes: &GlobSet) -> Result<Vec<Target>> {
    let text = input
        .path()
        .ok_or_else(|| fail(Exit::Failed, "record has no \"path\""))?;
    let path = PathBuf::from(text);
    let carried = input.record().cloned();
    if !path.is_dir() {
        return Ok(vec![Target {
            label: text.to_string(),
            path,
            carried,
        }]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&path)
        .with_context(|| "cannot list directory")?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "sqlite3"))
        .filter(|p| !is_excluded(p, excludes))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(fail(
            Exit::NotFound,
            "no *.sqlite3 databases in this directory",
        ));
    }
    Ok(found
        .into_iter()
        .map(|p| Target {
            label: p.display().to_string(),
            path: p,
            carried: carried.clone(),
        })
        .collect())
}

/// True when the file name or the whole path matches an exclude pattern.
fn is_excluded(path: &Path, excludes: &GlobSet) -> bool {
    excludes.is_match(path) || path.file_name().is_some_and(|name| excludes.is_match(name))
}
