//! `--list` for a person: on a terminal the records become a table
//! (time, kind, size, age); piped, they stay records.

use sqlkeep_common::record::Record;
use sqlkeep_common::time::{Timestamp, format_duration};
use sqlkeep_common::units::human_bytes;
use std::io::Write;

/// Writes `records` (one source's `object` or `database` records) as a
/// table.
pub fn write(out: &mut impl Write, source: &str, records: &[Record]) -> std::io::Result<()> {
    let now = Timestamp::now().unix();
    let age = |at: Option<&str>| {
        at.and_then(|t| Timestamp::parse_rfc3339(t).ok())
            .map(|t| format!("{} ago", format_duration((now - t.unix()).max(0))))
            .unwrap_or_else(|| "-".into())
    };
    let when = |at: Option<&str>| {
        at.map(|t| t.replacen('T', " ", 1).chars().take(16).collect::<String>())
            .unwrap_or_else(|| "-".into())
    };
    let mut rows: Vec<[String; 4]> = Vec::new();
    let header = if records.iter().all(|r| r.kind() == Some("database")) {
        writeln!(out, "{} databases under {source}", records.len())?;
        for r in records {
            rows.push([
                r.str("db").unwrap_or("?").to_string(),
                when(r.str("stored_at")),
                age(r.str("stored_at")),
                String::new(),
            ]);
        }
        ["DATABASE", "LAST STORED (UTC)", "AGE", ""]
    } else {
        writeln!(
            out,
            "{} restore points of {source}, newest first",
            records.len()
        )?;
        for r in records {
            let mut kind = r.str("kind").unwrap_or("full").to_string();
            if r.get("encrypted").and_then(|v| v.as_bool()) == Some(true) {
                kind.push_str(", encrypted");
            }
            rows.push([
                when(r.str("taken_at")),
                kind,
                r.u64("bytes").map(human_bytes).unwrap_or_default(),
                age(r.str("taken_at")),
            ]);
        }
        ["TAKEN (UTC)", "KIND", "SIZE", "AGE"]
    };
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 2 && !header[2].is_empty() && header[2] == "SIZE" {
                text.push_str(&format!("{cell:>w$}  "));
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        text.trim_end().to_string()
    };
    writeln!(out, "{}", line(header))?;
    for row in &rows {
        writeln!(out, "{}", line(row.each_ref().map(String::as_str)))?;
    }
    Ok(())
}
