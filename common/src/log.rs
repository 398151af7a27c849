//! The human log on stderr: one line per event, cron-friendly.
//!
//! `2026-11-22T03:00:01Z sqlite-snap OK storage/production.sqlite3 (48.1 MiB → 9.6 MiB, 0.41 s)`
//!
//! Words are `OK`, `SKIP`, `WARN`, `ERROR`, plus `INFO` for the detail that
//! `-v` adds. `-q` keeps only WARN and ERROR. stdout is reserved for
//! records, so nothing here ever writes there.

use crate::time::Timestamp;
use std::io::{IsTerminal, Write};

/// How much the log says.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// WARN and ERROR only (`-q`).
    Quiet,
    /// OK, SKIP, WARN, ERROR.
    Normal,
    /// Everything, with INFO detail lines (`-v`).
    Verbose,
}

/// The -q/-v flags every tool shares.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// Log only warnings and errors on stderr
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log detail lines (INFO) too
    #[arg(short, long)]
    pub verbose: bool,
}

impl LogArgs {
    /// The level these flags ask for.
    pub fn level(&self) -> Level {
        match (self.quiet, self.verbose) {
            (true, _) => Level::Quiet,
            (_, true) => Level::Verbose,
            _ => Level::Normal,
        }
    }
}

/// A tool's stderr log. Cheap to share between threads: each line is
/// written whole under stderr's lock, so parallel transfers do not
/// interleave halves of lines.
#[derive(Debug, Clone)]
pub struct Log {
    tool: &'static str,
    level: Level,
}

impl Log {
    /// A log for `tool` at `level`.
    pub fn new(tool: &'static str, level: Level) -> Log {
        Log { tool, level }
    }

    /// The name of the tool writing this log.
    pub fn tool(&self) -> &'static str {
        self.tool
    }

    /// True when detail lines are wanted, so callers can skip building them.
    pub fn verbose(&self) -> bool {
        self.level >= Level::Verbose
    }

    /// True when stderr is a terminal, the only place a progress display may
    /// appear.
    pub fn interactive(&self) -> bool {
        self.level >= Level::Normal && std::io::stderr().is_terminal()
    }

    /// A finished item.
    pub fn ok(&self, subject: &str, detail: &str) {
        self.line(Level::Normal, "OK", subject, detail);
    }

    /// An item left alone on purpose.
    pub fn skip(&self, subject: &str, detail: &str) {
        self.line(Level::Normal, "SKIP", subject, detail);
    }

    /// Something the operator should know that did not fail the item.
    pub fn warn(&self, subject: &str, message: &str) {
        self.line(Level::Quiet, "WARN", &format!("{subject}: {message}"), "");
    }

    /// A failed item, with its whole cause on one line.
    pub fn error(&self, subject: &str, err: &anyhow::Error) {
        let message = format!("{err:#}").replace('\n', " ");
        let text = if subject.is_empty() {
            message
        } else {
            format!("{subject}: {message}")
        };
        self.line(Level::Quiet, "ERROR", &text, "");
    }

    /// Detail shown with `-v`.
    pub fn info(&self, subject: &str, detail: &str) {
        self.line(Level::Verbose, "INFO", subject, detail);
    }

    /// Writes one line when the level allows it; a failing stderr is
    /// ignored, since there is nowhere left to report it.
    fn line(&self, needs: Level, word: &str, subject: &str, detail: &str) {
        if self.level < needs {
            return;
        }
        let mut text = format!(
            "{} {} {word} {subject}",
            Timestamp::now().rfc3339(),
            self.tool
        );
        if !detail.is_empty() {
            text.push_str(&format!(" ({detail})"));
        }
        text.push('\n');
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}
