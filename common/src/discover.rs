//! Turning arguments and stdin lines into the databases to work on.
//!
//! A directory stands for the `*.sqlite3` files below it, at any depth
//! (never their `-wal`/`-shm` companions, never through a symbolic link),
//! minus those matching `--exclude`. Each is named by its path relative to
//! the directory without the extension (`tenants/acme/production` for
//! `storage/tenants/acme/production.sqlite3`): one database per tenant
//! (Rails' `activerecord-tenanted`) gives many files named `production`,
//! and their names must not collide in a remote. A database directly in
//! the directory keeps its stem, as a file given by path does. A directory
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
    /// Its name in a remote: its stem, or its path relative to the
    /// directory it was found in, without the extension.
    pub name: String,
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
            name: crate::repo::names::db_name_of(&path),
            path,
            carried,
        }]);
    }
    let mut found: Vec<(PathBuf, String)> = Vec::new();
    for entry in walkdir::WalkDir::new(&path).sort_by_file_name() {
        let entry = entry.with_context(|| "cannot list directory")?;
        let p = entry.path();
        if !entry.file_type().is_file() || p.extension().is_none_or(|e| e != "sqlite3") {
            continue;
        }
        let rel = p.strip_prefix(&path).expect("below the walked directory");
        if is_excluded(p, excludes) || excludes.is_match(rel) {
            continue;
        }
        let name = rel.with_extension("").to_string_lossy().into_owned();
        found.push((p.to_path_buf(), name));
    }
    if found.is_empty() {
        return Err(fail(
            Exit::NotFound,
            "no *.sqlite3 databases in this directory",
        ));
    }
    Ok(found
        .into_iter()
        .map(|(p, name)| Target {
            label: p.display().to_string(),
            path: p,
            name,
            carried: carried.clone(),
        })
        .collect())
}

/// True when the file name or the whole path matches an exclude pattern.
fn is_excluded(path: &Path, excludes: &GlobSet) -> bool {
    excludes.is_match(path) || path.file_name().is_some_and(|name| excludes.is_match(name))
}
