//! The man pages in `man/` and the completions in `completions/` are
//! generated from each tool's clap `Command` and committed; this test
//! fails when they are stale and says how to regenerate them.
//!
//! `SQLKEEP_REGENERATE=1 cargo test --test generated` rewrites them.

use clap_complete::Shell;
use std::path::Path;

/// A tool's name and the function returning its clap definition.
type Tool = (&'static str, fn() -> clap::Command);

/// Every tool.
const TOOLS: [Tool; 7] = [
    ("sqlite-snap", sqlite_snap::command),
    ("bucket-push", bucket_push::command),
    ("bucket-pull", bucket_pull::command),
    ("sqlite-verify", sqlite_verify::command),
    ("sqlite-maint", sqlite_maint::command),
    ("blob-sync", blob_sync::command),
    ("sqlkeep-metrics", sqlkeep_metrics::command),
];

/// The roff man page of a command.
fn man_page(cmd: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("rendering man page");
    out
}

/// A shell completion script for a command.
fn completion(cmd: clap::Command, name: &str, shell: Shell) -> Vec<u8> {
    let mut cmd = cmd;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// Every generated file: its path in the repository and its content.
fn generated() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (name, command) in TOOLS {
        files.push((format!("man/{name}.1"), man_page(command())));
        files.push((
            format!("completions/{name}.bash"),
            completion(command(), name, Shell::Bash),
        ));
        files.push((
            format!("completions/_{name}"),
            completion(command(), name, Shell::Zsh),
        ));
        files.push((
            format!("completions/{name}.fish"),
            completion(command(), name, Shell::Fish),
        ));
    }
    files
}

#[test]
fn man_pages_and_completions_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let regenerate = std::env::var_os("SQLKEEP_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (rel, content) in generated() {
        let path = root.join(&rel);
        if std::fs::read(&path).ok().as_deref() == Some(content.as_slice()) {
            continue;
        }
        if regenerate {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap();
        } else {
            stale.push(rel);
        }
    }
    assert!(
        stale.is_empty(),
        "generated files are outdated: {}\nregenerate them with: SQLKEEP_REGENERATE=1 cargo test --test generated",
        stale.join(", ")
    );
}

/// Each man page documents the exit status, so operators find it there.
#[test]
fn man_pages_state_exit_status() {
    for (name, command) in TOOLS {
        let page = String::from_utf8(man_page(command())).unwrap();
        assert!(page.contains("Exit status"), "{name}.1 has no exit status");
        assert!(page.contains(name), "{name}.1 does not name its tool");
    }
}
