//! What the textfile says, kept between runs as JSON beside it
//! (`FILE.json`), so that each run adds its databases to those of every
//! earlier run and its request counts to theirs.
//!
//! JSON rather than a parse of our own textfile: the counts stay exact
//! integers, and node_exporter reads only `*.prom`, so the state in the
//! same directory is never scraped.

use crate::observe::{Classes, Event, Stored, Target};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The state's format; a newer one is refused rather than misread.
const VERSION: u32 = 1;

/// Every database any run has seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The format, [`VERSION`].
    pub version: u32,
    /// One entry per database and remote, sorted.
    pub databases: Vec<Database>,
}

impl Default for State {
    fn default() -> State {
        State {
            version: VERSION,
            databases: Vec::new(),
        }
    }
}

/// One database in one remote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Database {
    /// Its labels.
    #[serde(flatten)]
    pub target: Target,
    /// The newest backup stored, and the requests of all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Stored>,
    /// The latest drill, and the requests of all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillState>,
}

/// The latest drill of a database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillState {
    /// When it ran (Unix seconds).
    pub at: i64,
    /// Whether it passed.
    pub ok: bool,
    /// When the last drill that passed ran.
    pub last_success: Option<i64>,
    /// When the snapshot it restored was taken.
    pub taken_at: Option<i64>,
    /// Requests of every drill seen, by class.
    pub requests: Classes,
}

/// Where the state of `textfile` lives.
pub fn path_of(textfile: &Path) -> PathBuf {
    let mut name = textfile.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

impl State {
    /// Reads the state at `path`; a missing file is a first run. An
    /// unreadable one is an error, never a silent fresh start: that would
    /// drop every database not in this run from the dashboards.
    pub fn load(path: &Path) -> Result<State> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state: State = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a metrics state (move it aside to start afresh)",
                path.display()
            )
        })?;
        anyhow::ensure!(
            state.version == VERSION,
            "{} has state version {}, this sqlkeep-metrics reads {VERSION}",
            path.display(),
            state.version
        );
        Ok(state)
    }

    /// The entry of a database, created when new.
    fn entry(&mut self, target: &Target) -> &mut Database {
        let at = match self.databases.binary_search_by(|d| d.target.cmp(target)) {
            Ok(at) => at,
            Err(at) => {
                self.databases.insert(
                    at,
                    Database {
                        target: target.clone(),
                        backup: None,
                        drill: None,
                    },
                );
                at
            }
        };
        &mut self.databases[at]
    }

    /// Takes one event in. Request counts add up; the rest is the newest
    /// backup's (by `stored_at`: an older record replayed later does not
    /// take the gauges back) and the latest drill's.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Backup(b) => {
                // Once a database's remote is known, the placeholder an
                // --expect-drill without it created has served its turn.
                self.drop_placeholder(&b.target);
                let entry = self.entry(&b.target);
                let mut requests = entry
                    .backup
                    .as_ref()
                    .map(|s| s.requests)
                    .unwrap_or_default();
                requests.add(b.stored.requests);
                let newer = entry
                    .backup
                    .as_ref()
                    .is_none_or(|s| b.stored.stored_at >= s.stored_at);
                match (&mut entry.backup, newer) {
                    (Some(state), false) => state.requests = requests,
                    (slot, _) => {
                        *slot = Some(Stored {
                            requests,
                            ..b.stored.clone()
                        })
                    }
                }
            }
            Event::Drill(d) => {
                self.drop_placeholder(&d.target);
                let entry = self.entry(&d.target);
                let previous = entry.drill.take();
                let mut requests = previous.as_ref().map(|s| s.requests).unwrap_or_default();
                requests.add(d.requests);
                let last_success = if d.ok {
                    Some(d.at)
                } else {
                    previous.as_ref().and_then(|s| s.last_success)
                };
                entry.drill = Some(DrillState {
                    at: d.at,
                    ok: d.ok,
                    last_success,
                    taken_at: d.taken_at.or(previous.and_then(|s| s.taken_at)),
                    requests,
                });
            }
        }
    }

    /// Records a drill that printed no record (the restore failed before
    /// anything could be checked) as failed, for every remote the database
    /// is known in; for a database never seen, under an empty remote.
    pub fn drill_missing(&mut self, db: &str, at: i64) {
        let mut targets: Vec<Target> = self
            .databases
            .iter()
            .filter(|d| d.target.db == db && (d.drill.is_some() || d.backup.is_some()))
            .map(|d| d.target.clone())
            .collect();
        if targets.is_empty() {
            targets.push(Target {
                db: db.to_string(),
                remote: String::new(),
            });
        }
        for target in targets {
            let entry = self.entry(&target);
            let previous = entry.drill.take();
            entry.drill = Some(DrillState {
                at,
                ok: false,
                last_success: previous.as_ref().and_then(|s| s.last_success),
                taken_at: previous.as_ref().and_then(|s| s.taken_at),
                requests: previous.map(|s| s.requests).unwrap_or_default(),
            });
        }
    }

    /// Removes a database's entry without a remote when `known` names one.
    fn drop_placeholder(&mut self, known: &Target) {
        if !known.remote.is_empty() {
            self.databases
                .retain(|d| !(d.target.db == known.db && d.target.remote.is_empty()));
        }
    }

    /// The state as the bytes of its file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("state serializes");
        bytes.push(b'\n');
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{Backup, Drill};

    fn target(db: &str, remote: &str) -> Target {
        Target {
            db: db.into(),
            remote: remote.into(),
        }
    }

    fn backup(stored_at: i64, bytes: u64) -> Event {
        Event::Backup(Backup {
            target: target("app", "/r"),
            stored: Stored {
                stored_at,
                taken_at: Some(stored_at - 1),
                bytes,
                raw_bytes: Some(bytes * 4),
                seconds: Some(0.5),
                requests: Classes { a: 3, b: 1, c: 0 },
            },
        })
    }

    #[test]
    fn requests_add_up_and_an_older_backup_keeps_the_gauges() {
        let mut state = State::default();
        state.apply(&backup(200, 10));
        state.apply(&backup(100, 99));
        let b = state.databases[0].backup.as_ref().unwrap();
        assert_eq!((b.stored_at, b.bytes), (200, 10));
        assert_eq!(b.requests, Classes { a: 6, b: 2, c: 0 });
    }

    #[test]
    fn a_failed_drill_keeps_the_last_success() {
        let mut state = State::default();
        let drill = |at, ok| {
            Event::Drill(Drill {
                target: target("app", "/r"),
                at,
                ok,
                taken_at: Some(at - 5),
                requests: Classes { a: 0, b: 2, c: 0 },
            })
        };
        state.apply(&drill(100, true));
        state.apply(&drill(200, false));
        let d = state.databases[0].drill.as_ref().unwrap();
        assert_eq!((d.at, d.ok, d.last_success), (200, false, Some(100)));
        state.drill_missing("app", 300);
        let d = state.databases[0].drill.as_ref().unwrap();
        assert_eq!((d.at, d.ok, d.last_success), (300, false, Some(100)));
        assert_eq!(d.requests.b, 4);
        // Unknown: a placeholder without a remote, gone once the remote is known.
        state.drill_missing("new", 300);
        assert_eq!(state.databases.len(), 2);
        state.apply(&Event::Drill(Drill {
            target: target("new", "/r"),
            at: 400,
            ok: true,
            taken_at: None,
            requests: Classes::default(),
        }));
        let names: Vec<_> = state.databases.iter().map(|d| d.target.clone()).collect();
        assert_eq!(names, [target("app", "/r"), target("new", "/r")]);
    }

    #[test]
    fn round_trips_and_refuses_other_versions() {
        let dir =
            std::env::temp_dir().join(format!("sqlkeep-metrics-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        let mut state = State::default();
        state.apply(&backup(200, 10));
        std::fs::write(&path, state.to_bytes()).unwrap();
        assert_eq!(State::load(&path).unwrap(), state);
        std::fs::write(&path, br#"{"version":2,"databases":[]}"#).unwrap();
        assert!(State::load(&path).is_err());
        assert_eq!(
            State::load(&dir.join("none.json")).unwrap(),
            State::default()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
