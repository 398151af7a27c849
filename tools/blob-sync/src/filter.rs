//! Which files take part: rclone-like include and exclude patterns.
//!
//! A pattern without a leading `/` matches at the end of the path, so at
//! any depth; with one it is anchored at the top. `*` and `?` stay within
//! a path segment, `**` crosses segments. A pattern ending in `/` means
//! everything under that directory.

use anyhow::{Context, Result};
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use sqlkeep_common::exit::{Exit, fail};
use std::path::Path;

/// SQLite files and their companions: never synced by default, since a
/// file copy of a live database can be torn (sqlite-snap is for those).
pub const DEFAULT_EXCLUDES: [&str; 4] = ["*.sqlite3*", "*-wal", "*-shm", "*-journal"];

/// The compiled filter.
#[derive(Debug, Clone)]
pub struct Filter {
    excludes: GlobSet,
    includes: Option<GlobSet>,
}

impl Filter {
    /// Builds a filter from the flags (usage error on a bad pattern or an
    /// unreadable `--exclude-from` file).
    pub fn new(
        excludes: &[String],
        exclude_files: &[std::path::PathBuf],
        includes: &[String],
        default_excludes: bool,
    ) -> Result<Filter> {
        let mut all = Vec::new();
        if default_excludes {
            all.extend(DEFAULT_EXCLUDES.iter().map(|s| s.to_string()));
        }
        all.extend(excludes.iter().cloned());
        for file in exclude_files {
            let text = std::fs::read_to_string(file).map_err(|e| {
                fail(
                    Exit::Usage,
                    format!("--exclude-from {}: {e}", file.display()),
                )
            })?;
            all.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
                    .map(str::to_string),
            );
        }
        Ok(Filter {
            excludes: compile(&all)?,
            includes: if includes.is_empty() {
                None
            } else {
                Some(compile(includes)?)
            },
        })
    }

    /// True when the file at `rel` (relative, `/`-separated) takes part.
    pub fn allows(&self, rel: &str) -> bool {
        let path = Path::new(rel);
        if self.excludes.is_match(path) {
            return false;
        }
        self.includes.as_ref().is_none_or(|inc| inc.is_match(path))
    }
}

/// Compiles patterns with the rclone-like rules.
fn compile(patterns: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        for glob in expand(pattern) {
            set.add(build(&glob).with_context(|| format!("pattern {pattern:?}"))?);
        }
    }
    set.build()
        .map_err(|e| fail(Exit::Usage, format!("bad filter: {e}")))
}

/// One pattern as the globs that implement its rclone meaning.
fn expand(pattern: &str) -> Vec<String> {
    let mut p = pattern.to_string();
    if p.ends_with('/') {
        p.push_str("**");
    }
    match p.strip_prefix('/') {
        Some(anchored) => vec![anchored.to_string()],
        None => vec![p.clone(), format!("**/{p}")],
    }
}

/// A glob whose `*` does not cross `/`.
fn build(glob: &str) -> Result<Glob> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|e| fail(Exit::Usage, format!("bad filter pattern {glob:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(ex: &[&str], inc: &[&str]) -> Filter {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Filter::new(&s(ex), &[], &s(inc), true).unwrap()
    }

    #[test]
    fn sqlite_files_are_excluded_by_default() {
        let f = filter(&[], &[]);
        for path in [
            "production.sqlite3",
            "production.sqlite3-wal",
            "a/b/x.sqlite3-shm",
            "db-journal",
            "x-wal",
        ] {
            assert!(!f.allows(path), "{path}");
        }
        assert!(f.allows("ab/cd/2y8vq1yyuk3ms4e0tb7xrdjd0ci2"));
        assert!(
            Filter::new(&[], &[], &[], false)
                .unwrap()
                .allows("production.sqlite3")
        );
    }

    #[test]
    fn rclone_like_rules() {
        let f = filter(&["*.tmp", "/cache/", "logs/*.log"], &[]);
        assert!(!f.allows("x.tmp") && !f.allows("a/b/x.tmp"));
        assert!(!f.allows("cache/a/b") && f.allows("a/cache/b"));
        assert!(!f.allows("logs/x.log") && !f.allows("app/logs/x.log") && f.allows("logs/a/x.log"));
        let only = filter(&[], &["*.jpg"]);
        assert!(only.allows("a/b.jpg") && !only.allows("a/b.png"));
        let both = filter(&["secret/**"], &["*.jpg"]);
        assert!(!both.allows("secret/x.jpg"), "excludes win");
    }
}
