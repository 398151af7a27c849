//! What every sqlkeep tool needs once.
//!
//! The tools (`sqlite-snap`, `bucket-push`, `bucket-pull`, `sqlite-verify`,
//! `sqlite-maint`, `blob-sync`) are small programs composed in shell
//! pipelines; this crate holds the contract they share
//! (`../shared/design.md`, made precise in `docs/format.md`).
//!
//! The modules form layers, each using only those below it (a test in
//! this file keeps it so):
//!
//! 1. [`exit`]: exit codes and the error kinds callers tell apart.
//! 2. [`units`], [`time`], [`digest`], [`compress`], [`record`], [`key`],
//!    [`delta`], [`crypt`].
//! 3. [`log`], [`debris`], [`regular`], [`input`], [`address`], [`manual`].
//! 4. [`atomic`], [`lock`], [`confine`], [`tally`], [`private_dir`],
//!    [`sqlite`], [`discover`], [`open_files`], [`signals`], [`parallel`].
//! 5. [`store`]: the storage backends, over validated keys.
//! 6. [`repo`]: the one owner of the backup layout in a store.
//! 7. [`state`]: what the last stored snapshot of a database was, page by
//!    page (incremental snapshots).
//! 8. [`cli`]: the shared `main`.

pub mod address;
pub mod atomic;
pub mod cli;
pub mod compress;
pub mod confine;
pub mod crypt;
pub mod debris;
pub mod delta;
pub mod digest;
pub mod discover;
pub mod exit;
pub mod input;
pub mod key;
pub mod lock;
pub mod log;
pub mod manual;
pub mod open_files;
pub mod parallel;
pub mod private_dir;
pub mod progress;
pub mod record;
pub mod regular;
pub mod repo;
pub mod signals;
pub mod sqlite;
pub mod state;
pub mod store;
pub mod suggest;
pub mod tally;
pub mod time;
pub mod units;

pub use exit::{Exit, fail};

#[cfg(test)]
mod layering {
    //! `common/` has no import circle: every module's `crate::` uses point
    //! at modules that do not (transitively) use it back.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Top-level module name → the top-level modules its files use.
    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut files = Vec::new();
        collect(&src, &mut files);
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            let module = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if module == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let uses = graph.entry(module.clone()).or_default();
            for (i, _) in text.match_indices("crate::") {
                let name: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let braced = text[i + 7..].starts_with('{');
                if braced {
                    let inner = &text[i + 8..i + 8 + text[i + 8..].find('}').unwrap()];
                    for part in inner.split(',') {
                        let head: String = part
                            .trim()
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !head.is_empty() && head != module {
                            uses.insert(head);
                        }
                    }
                } else if !name.is_empty() && name != module {
                    uses.insert(name);
                }
            }
        }
        // `pub use exit::{Exit, fail}` at the crate root is a re-export,
        // not a module.
        for uses in graph.values_mut() {
            uses.retain(|m| m != "Exit" && m != "fail");
        }
        graph
    }

    fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn common_has_no_import_circle() {
        let graph = graph();
        assert!(graph.contains_key("exit") && graph.contains_key("repo"));
        assert!(
            graph["exit"].is_empty(),
            "exit must import nothing from the crate: {:?}",
            graph["exit"]
        );
        // Depth-first search for a back edge.
        fn visit(
            node: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) {
            if done.contains(node) {
                return;
            }
            if let Some(at) = path.iter().position(|n| n == node) {
                panic!("import circle: {} -> {node}", path[at..].join(" -> "));
            }
            path.push(node.to_string());
            for next in graph.get(node).into_iter().flatten() {
                visit(next, graph, path, done);
            }
            path.pop();
            done.insert(node.to_string());
        }
        let mut done = BTreeSet::new();
        for node in graph.keys() {
            visit(node, &graph, &mut Vec::new(), &mut done);
        }
    }
}
