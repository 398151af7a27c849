//! What a tool works on: its arguments, or else one item per stdin line.
//!
//! With no input arguments and stdin not a terminal, each stdin line is a
//! JSON record from an upstream tool or a plain path or address. Lines are
//! read lazily, so a tool downstream of `sqlite-snap` starts on the first
//! database's record while the second snapshot is still being taken.

use crate::exit::{Exit, fail};
use crate::record::Record;
use anyhow::{Context, Result};
use std::io::{BufRead, IsTerminal};

/// One thing to work on.
#[derive(Debug, Clone)]
pub enum Input {
    /// A path or address given as an argument or a plain stdin line.
    Plain(String),
    /// A record from an upstream tool.
    Record(Record),
}

impl Input {
    /// The path this input names: the plain text, or a record's `path`.
    pub fn path(&self) -> Option<&str> {
        match self {
            Input::Plain(text) => Some(text),
            Input::Record(record) => record.str("path"),
        }
    }

    /// The record, if this input is one.
    pub fn record(&self) -> Option<&Record> {
        match self {
            Input::Plain(_) => None,
            Input::Record(record) => Some(record),
        }
    }

    /// How to name this input in a log line.
    pub fn label(&self) -> String {
        match self {
            Input::Plain(text) => text.clone(),
            Input::Record(record) => record
                .str("path")
                .or_else(|| record.str("url"))
                .or_else(|| record.str("db"))
                .unwrap_or("record")
                .to_string(),
        }
    }
}

/// The inputs of a run: `args` when there are any, else stdin's lines.
///
/// Fails with a usage error when there are no arguments and stdin is a
/// terminal, since waiting for typed JSON is never what an operator meant.
pub fn inputs(args: &[String], what: &str) -> Result<Box<dyn Iterator<Item = Result<Input>>>> {
    if !args.is_empty() {
        let items: Vec<Result<Input>> = args.iter().map(|a| Ok(Input::Plain(a.clone()))).collect();
        return Ok(Box::new(items.into_iter()));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(fail(
            Exit::Usage,
            format!("no input: name {what} as arguments, or pipe paths or records into stdin"),
        ));
    }
    Ok(Box::new(stdin_items(stdin.lock())))
}

/// Parses each non-blank line of `reader` into an input, numbering lines
/// in errors so that a bad record upstream can be found.
pub fn stdin_items(reader: impl BufRead + 'static) -> impl Iterator<Item = Result<Input>> {
    reader.lines().enumerate().filter_map(|(index, line)| {
        let line = match line.with_context(|| format!("reading stdin line {}", index + 1)) {
            Ok(line) => line,
            Err(err) => return Some(Err(err)),
        };
        let text = line.trim();
        if text.is_empty() {
            return None;
        }
        if text.starts_with('{') {
            Some(
                Record::parse(text)
                    .map(Input::Record)
                    .with_context(|| format!("stdin line {}", index + 1)),
            )
        } else {
            Some(Ok(Input::Plain(text.to_string())))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_inputs() {
        let text = "a.sqlite3\n\n{\"type\":\"snapshot\",\"path\":\"/x\"}\n{bad\n";
        let items: Vec<_> = stdin_items(std::io::Cursor::new(text)).collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].as_ref().unwrap().path(), Some("a.sqlite3"));
        assert_eq!(items[1].as_ref().unwrap().path(), Some("/x"));
        let err = items[2].as_ref().unwrap_err();
        assert!(
            format!("{err:#}").starts_with("stdin line 4: invalid JSON"),
            "{err:#}"
        );
    }
}
