//! The checks themselves, each recorded as `"ok"`, `"failed: …"` or
//! `"skipped: …"` under its name in the `verified` record.
//!
//! A database that cannot be opened still gets a record (its `header` or
//! `open` check failed), so a drill's output always says what went wrong.

use crate::prepare::prepare;
use anyhow::{Context, Result};
use rusqlite::Connection;
use serde_json::{Map, Value};
use sqlkeep_common::record::Record;
use sqlkeep_common::repo::names;
use sqlkeep_common::sqlite::{self, quote_ident};
use sqlkeep_common::time::{Timestamp, format_duration};
use std::path::Path;
use std::time::Duration;

/// What every database must satisfy, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// `quick_check` instead of `integrity_check`.
    pub quick: bool,
    /// Maximum age of the snapshot, in seconds.
    pub max_age: Option<i64>,
    /// Tables that must exist.
    pub tables: Vec<String>,
    /// Tables that must have at least so many rows.
    pub min_rows: Vec<(String, u64)>,
    /// Busy timeout for opening live databases.
    pub busy_timeout: Duration,
}

/// The outcome of checking one database.
#[derive(Debug, Default)]
pub struct Report {
    /// Each check's result, in the order run.
    pub checks: Map<String, Value>,
    /// Names of the checks that failed.
    pub failed: Vec<String>,
    /// Row count per table.
    pub tables: Map<String, Value>,
}

impl Report {
    /// Records a passed check.
    fn pass(&mut self, name: &str, detail: Option<String>) {
        let text = match detail {
            Some(d) => format!("ok: {d}"),
            None => "ok".to_string(),
        };
        self.checks.insert(name.into(), text.into());
    }

    /// Records a failed check.
    fn fail(&mut self, name: &str, why: impl std::fmt::Display) {
        self.checks
            .insert(name.into(), format!("failed: {why}").into());
        self.failed.push(name.to_string());
    }

    /// Records a check that could not run.
    fn skip(&mut self, name: &str, why: &str) {
        self.checks
            .insert(name.into(), format!("skipped: {why}").into());
    }

    /// True when every check passed.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Checks the database at `path`, with the record it came with.
pub fn verify(path: &Path, record: Option<&Record>, exp: &Expectations) -> Report {
    let mut report = Report::default();
    let want_raw = record.is_some_and(|r| r.str("raw_sha256").is_some());
    let prepared = match sqlite::check_file(path)
        .map(|_| ())
        .or_else(|e| if is_zstd(path) { Ok(()) } else { Err(e) })
        .and_then(|()| prepare(path, want_raw))
    {
        Ok(prepared) => prepared,
        Err(err) => {
            report.fail("header", format!("{err:#}"));
            return report;
        }
    };
    if let Err(err) = sqlite::check_file(&prepared.path) {
        report.fail("header", format!("{err:#}"));
        return report;
    }
    report.pass("header", None);
    check_digests(&mut report, record, &prepared);
    check_age(&mut report, path, record, exp);

    // SQLite opens lazily: the first read is where a hot journal or a
    // damaged file shows, and is reported as the open that failed.
    let opened = open(&prepared.path, prepared.scratch.is_some(), exp).and_then(|conn| {
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
            .context("cannot read the schema")?;
        Ok(conn)
    });
    let conn = match opened {
        Ok(conn) => conn,
        Err(err) => {
            let err = sqlite::explain(err, path, &scratch_dir(&prepared));
            report.fail("open", format!("{err:#}"));
            return report;
        }
    };
    check_integrity(&mut report, &conn, exp.quick);
    check_foreign_keys(&mut report, &conn);
    match count_rows(&conn) {
        Ok(tables) => report.tables = tables,
        Err(err) => report.fail("row_counts", format!("{err:#}")),
    }
    for table in &exp.tables {
        let name = format!("table:{table}");
        if report.tables.contains_key(table) {
            report.pass(&name, None);
        } else {
            report.fail(&name, "no such table");
        }
    }
    for (table, min) in &exp.min_rows {
        let name = format!("min_rows:{table}");
        match report.tables.get(table).and_then(Value::as_u64) {
            Some(n) if n >= *min => report.pass(&name, Some(format!("{n} rows"))),
            Some(n) => report.fail(&name, format!("{n} rows, fewer than {min}")),
            None => report.fail(&name, "no such table"),
        }
    }
    report
}

/// True when the file starts with the zstd magic number.
fn is_zstd(path: &Path) -> bool {
    sqlkeep_common::compress::is_zstd_file(path).unwrap_or(false)
}

/// Where a check writes: the scratch copy's directory, else the database's.
fn scratch_dir(prepared: &crate::prepare::Prepared) -> std::path::PathBuf {
    sqlkeep_common::atomic::parent_dir(&prepared.path)
}

/// Opens read-only; a private scratch copy is opened immutable, so SQLite
/// takes no locks and creates no `-wal`/`-shm` for it.
fn open(path: &Path, scratch: bool, exp: &Expectations) -> Result<Connection> {
    if scratch {
        let path = sqlite::canonical(path)?;
        let uri = format!(
            "file:{}?immutable=1",
            percent_encode(&path.to_string_lossy())
        );
        return Connection::open_with_flags(
            uri,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
        .context("cannot open database");
    }
    sqlite::open_read_only(path, exp.busy_timeout)
}

/// Escapes a path for a `file:` URI (our scratch paths, but `$TMPDIR` may
/// hold anything).
fn percent_encode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Compares the computed digests with the record's.
fn check_digests(
    report: &mut Report,
    record: Option<&Record>,
    prepared: &crate::prepare::Prepared,
) {
    let Some(record) = record else { return };
    let compressed = prepared.scratch.is_some();
    if compressed && let (Some(expected), Some(got)) = (record.str("sha256"), &prepared.stored) {
        if expected == got.sha256 {
            report.pass("sha256", None);
        } else {
            report.fail(
                "sha256",
                format!("file is {}, record says {expected}", got.sha256),
            );
        }
    }
    if let Some(expected) = record.str("raw_sha256") {
        match (&prepared.raw, prepared.raw_skipped) {
            (Some(got), _) if got.sha256 == expected => report.pass("raw_sha256", None),
            (Some(got), _) => report.fail(
                "raw_sha256",
                format!("database is {}, record says {expected}", got.sha256),
            ),
            (None, Some(why)) => report.skip("raw_sha256", why),
            (None, None) => report.skip("raw_sha256", "not computed"),
        }
    }
}

/// Checks `--max-age` against the record's `taken_at`, or the stamp in a
/// snapshot file's name.
fn check_age(report: &mut Report, path: &Path, record: Option<&Record>, exp: &Expectations) {
    let Some(max_age) = exp.max_age else { return };
    let from_record = record
        .and_then(|r| r.str("taken_at"))
        .map(Timestamp::parse_rfc3339);
    let from_name = || {
        path.file_name()
            .and_then(|n| names::parse_snapshot_file_name(&n.to_string_lossy()))
            .map(|(_, p, _)| p.taken_at)
    };
    let taken_at = match from_record {
        Some(Ok(t)) => t,
        Some(Err(e)) => return report.fail("max_age", format!("bad taken_at: {e}")),
        None => match from_name() {
            Some(t) => t,
            None => {
                return report.fail(
                    "max_age",
                    "no taken_at known: pipe a record from bucket-pull or sqlite-snap",
                );
            }
        },
    };
    let age = Timestamp::now().unix() - taken_at.unix();
    let detail = format!(
        "taken {} ago at {}, limit {}",
        format_duration(age.max(0)),
        taken_at.rfc3339(),
        format_duration(max_age)
    );
    if age <= max_age {
        report.pass("max_age", Some(detail));
    } else {
        report.fail("max_age", detail);
    }
}

/// `PRAGMA integrity_check` (or `quick_check`), keeping the first errors.
fn check_integrity(report: &mut Report, conn: &Connection, quick: bool) {
    let name = if quick {
        "quick_check"
    } else {
        "integrity_check"
    };
    let result: Result<Vec<String>> = (|| {
        let mut stmt = conn.prepare(&format!("PRAGMA {name}(20)"))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })();
    match result {
        Ok(rows) if rows == ["ok"] => report.pass(name, None),
        Ok(rows) => report.fail(name, rows.join("; ")),
        Err(err) => report.fail(name, format!("{err:#}")),
    }
}

/// `PRAGMA foreign_key_check`: every reference must resolve.
fn check_foreign_keys(report: &mut Report, conn: &Connection) {
    let result: Result<Vec<String>> = (|| {
        let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
        let rows = stmt.query_map([], |r| {
            let table: String = r.get(0)?;
            let rowid: Option<i64> = r.get(1)?;
            let parent: String = r.get(2)?;
            Ok(format!(
                "{table} row {} references a missing {parent} row",
                rowid.map_or("?".to_string(), |id| id.to_string())
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })();
    match result {
        Ok(rows) if rows.is_empty() => report.pass("foreign_key_check", None),
        Ok(rows) => report.fail(
            "foreign_key_check",
            format!("{} violations, first: {}", rows.len(), rows[0]),
        ),
        Err(err) => report.fail("foreign_key_check", format!("{err:#}")),
    }
}

/// Row counts of every ordinary table.
fn count_rows(conn: &Connection) -> Result<Map<String, Value>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut tables = Map::new();
    for name in names {
        let count: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {}", quote_ident(&name)),
                [],
                |r| r.get(0),
            )
            .with_context(|| format!("counting rows of {name}"))?;
        tables.insert(name, count.max(0).into());
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_uri_paths() {
        assert_eq!(percent_encode("/tmp/a b?#%.db"), "/tmp/a%20b%3F%23%25.db");
    }
}
