//! Records: the JSON objects that flow between tools, one per stdout line.
//!
//! A record is an ordered JSON object whose `"type"` comes first. Tools
//! take the fields they need and carry every other field along, so that
//! metadata such as `taken_at` or `raw_sha256` survives a pipeline of
//! several tools (`../shared/design.md`, "Input" and "Output").

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};
use std::io::Write;

/// One JSON object with a `type`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record(Map<String, Value>);

impl Record {
    /// A new record of the given type, `type` as its first field.
    pub fn new(kind: &str) -> Record {
        let mut map = Map::new();
        map.insert("type".into(), Value::from(kind));
        Record(map)
    }

    /// Parses one line of JSON, which must be an object.
    pub fn parse(line: &str) -> Result<Record> {
        let value: Value = serde_json::from_str(line).context("invalid JSON")?;
        match value {
            Value::Object(map) => Ok(Record(map)),
            _ => bail!("a record must be a JSON object"),
        }
    }

    /// The record's `type`, if it has one.
    pub fn kind(&self) -> Option<&str> {
        self.str("type")
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// A non-negative integer field.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.0.get(key).and_then(Value::as_u64)
    }

    /// Any field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Sets a field, replacing an earlier value in place.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Record {
        self.0.insert(key.to_string(), value.into());
        self
    }

    /// Removes a field, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.shift_remove(key)
    }

    /// Adds every field of `from` that this record does not have yet,
    /// except `type`: what a tool does not know, it passes on.
    pub fn carry(&mut self, from: &Record) -> &mut Record {
        for (key, value) in &from.0 {
            if key != "type" && !self.0.contains_key(key) {
                self.0.insert(key.clone(), value.clone());
            }
        }
        self
    }

    /// The record as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    /// The underlying JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

impl From<Map<String, Value>> for Record {
    fn from(map: Map<String, Value>) -> Record {
        Record(map)
    }
}

/// Where records go: stdout, one line each, flushed per line so that the
/// next tool in a pipeline starts on a record as soon as it exists.
pub struct Output {
    out: std::io::Stdout,
}

impl Output {
    /// The process's stdout as a record stream.
    pub fn stdout() -> Output {
        Output {
            out: std::io::stdout(),
        }
    }

    /// Writes one record. A closed pipe comes back as an error that
    /// [`crate::exit::is_broken_pipe`] recognises, ending the tool quietly.
    pub fn emit(&mut self, record: &Record) -> Result<()> {
        let mut line = record.to_line();
        line.push('\n');
        let mut out = self.out.lock();
        out.write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .context("writing a record to stdout")
    }
}

/// True when stdout is a pipe to another program: the next tool in the
/// pipeline then owns what a record names.
pub fn stdout_is_pipe() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.file_type().is_fifo())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carry_keeps_unknown_fields_and_own_values() {
        let input =
            Record::parse(r#"{"type":"snapshot","path":"/a","sha256":"ab","custom":1}"#).unwrap();
        let mut out = Record::new("object");
        out.set("url", "file:///r/x").set("path", "/b");
        out.carry(&input);
        assert_eq!(
            out.to_line(),
            r#"{"type":"object","url":"file:///r/x","path":"/b","sha256":"ab","custom":1}"#
        );
    }

    #[test]
    fn rejects_non_objects() {
        assert!(Record::parse("[1]").is_err());
        assert!(Record::parse("{").is_err());
    }
}
