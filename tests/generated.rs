//! The man pages in `man/` and the completions in `completions/` are
//! generated from each tool's clap `Command` and its `MANUAL`, and
//! committed; this test fails when they are stale and says how to
//! regenerate them.
//!
//! `SQLKEEP_REGENERATE=1 cargo test --test generated` rewrites them.
//!
//! A page is assembled from clap_mangen's section renderers plus sections
//! of our own: a SYNOPSIS that names each option's argument, ENVIRONMENT,
//! EXIT STATUS, and EXAMPLES set in no-fill mode. clap_mangen's own page
//! put the examples in an EXTRA paragraph, where troff joined them into
//! running text and hyphenated them mid-word (issue 14).

use clap::ArgAction;
use clap_complete::Shell;
use clap_mangen::roff::{Roff, bold, roman};
use sqlkeep_common::manual::Manual;
use std::path::Path;
use std::process::Command;

/// A tool's name, its clap definition and its manual.
type Tool = (&'static str, fn() -> clap::Command, &'static Manual);

/// Every tool.
const TOOLS: [Tool; 7] = [
    (
        "sqlite-snap",
        sqlite_snap::command,
        &sqlite_snap::cli::MANUAL,
    ),
    (
        "bucket-push",
        bucket_push::command,
        &bucket_push::cli::MANUAL,
    ),
    (
        "bucket-pull",
        bucket_pull::command,
        &bucket_pull::cli::MANUAL,
    ),
    (
        "sqlite-verify",
        sqlite_verify::command,
        &sqlite_verify::cli::MANUAL,
    ),
    (
        "sqlite-maint",
        sqlite_maint::command,
        &sqlite_maint::cli::MANUAL,
    ),
    ("blob-sync", blob_sync::command, &blob_sync::cli::MANUAL),
    (
        "sqlkeep-metrics",
        sqlkeep_metrics::command,
        &sqlkeep_metrics::cli::MANUAL,
    ),
];

/// Roff source without the apostrophe preamble that every roff render
/// starts with: the page carries it once, at its top.
fn without_preamble(roff: Vec<u8>) -> String {
    let text = String::from_utf8(roff).expect("roff is UTF-8");
    text.lines()
        .filter(|l| !l.starts_with(".ie \\n(.g .ds Aq") && !l.starts_with(".el .ds Aq"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Renders one section with clap_mangen.
fn mangen_section(
    man: &clap_mangen::Man,
    render: fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>,
) -> String {
    let mut out = Vec::new();
    render(man, &mut out).expect("rendering a man page section");
    without_preamble(out)
}

/// Text for a roff line: backslashes and dashes escaped, as the roff
/// crate does.
fn roff_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('-', "\\-")
}

/// SYNOPSIS with every option's argument named (`--output-dir DIR`),
/// optional values (`--incremental-vacuum[=PAGES]`) and repeatable
/// options (`...`), which clap_mangen's synopsis leaves out. Options come
/// first and operands last, as in most man pages; each `[option VALUE]`
/// is held together with unbreakable spaces (`\ `, which the roff crate
/// cannot write), so a line never ends between an option and its value.
fn synopsis(cmd: &clap::Command) -> String {
    let mut items = Vec::new();
    let (operands, options): (Vec<&clap::Arg>, Vec<&clap::Arg>) = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .partition(|a| a.is_positional());
    for arg in options.into_iter().chain(operands) {
        let value = arg
            .get_value_names()
            .map(|names| names.join(" "))
            .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
        let value = format!("\\fI{}\\fR", roff_escape(&value));
        let range = arg.get_num_args().expect("built");
        let mut item = if arg.is_positional() {
            value.clone()
        } else {
            let flag = |f: String| format!("\\fB{}\\fR", roff_escape(&f));
            let mut names = Vec::new();
            if let Some(short) = arg.get_short() {
                names.push(flag(format!("-{short}")));
            }
            if let Some(long) = arg.get_long() {
                names.push(flag(format!("--{long}")));
            }
            let mut item = names.join("|");
            if range.takes_values() && range.min_values() == 0 {
                item += &format!("[={value}]");
            } else if range.takes_values() {
                item += &format!("\\ {value}");
            }
            item
        };
        if !arg.is_required_set() {
            item = format!("[{item}]");
        }
        let repeats = matches!(arg.get_action(), ArgAction::Append | ArgAction::Count);
        if repeats || (arg.is_positional() && range.max_values() > 1) {
            item += "...";
        }
        items.push(item);
    }
    format!(
        ".SH SYNOPSIS\n\\fB{}\\fR {}\n",
        roff_escape(cmd.get_name()),
        items.join(" ")
    )
}

/// ENVIRONMENT: each variable the tool reads, and what it changes.
fn environment(manual: &Manual) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["ENVIRONMENT"]);
    for var in manual.variables() {
        roff.control("TP", []);
        if var.name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            roff.text([bold(var.name)]);
        } else {
            roff.text([roman(var.name)]);
        }
        roff.text([roman(var.meaning)]);
    }
    roff
}

/// EXIT STATUS: one entry per status.
fn exit_status(manual: &Manual) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (exit, meaning) in manual.exit_status {
        roff.control("TP", []);
        roff.text([bold(exit.code().to_string())]);
        roff.text([roman(*meaning)]);
    }
    roff
}

/// EXAMPLES in no-fill mode: each line exactly as written, never joined,
/// wrapped or hyphenated.
fn examples(manual: &Manual) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    roff.control("RS", ["4"]);
    roff.control("nf", []);
    for line in manual.examples {
        roff.text([roman(*line)]);
    }
    roff.control("fi", []);
    roff.control("RE", []);
    roff
}

/// The roff man page of a tool.
fn man_page(cmd: clap::Command, manual: &Manual) -> Vec<u8> {
    let mut built = cmd.clone();
    built.build();
    let man = clap_mangen::Man::new(cmd);
    let mut page = Roff::new().render();
    page += &mangen_section(&man, clap_mangen::Man::render_title);
    // No hyphenation or justification anywhere: option names, paths and
    // variable names must read exactly as they are typed.
    page += ".nh\n.ad l\n";
    page += &mangen_section(&man, clap_mangen::Man::render_name_section);
    page += &synopsis(&built);
    page += &mangen_section(&man, clap_mangen::Man::render_description_section);
    page += &mangen_section(&man, clap_mangen::Man::render_options_section);
    for section in [environment(manual), exit_status(manual), examples(manual)] {
        page += &without_preamble(section.render().into_bytes());
    }
    page += &mangen_section(&man, clap_mangen::Man::render_version_section);
    page.into_bytes()
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
    for (name, command, manual) in TOOLS {
        files.push((format!("man/{name}.1"), man_page(command(), manual)));
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

/// The repository root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn man_pages_and_completions_are_current() {
    let regenerate = std::env::var_os("SQLKEEP_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (rel, content) in generated() {
        let path = root().join(&rel);
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

/// Every crate under `tools/` has its man page and completions generated
/// here: `./install` and the Debian package ship a tool only with them.
#[test]
fn every_tool_is_generated() {
    let mut dirs: Vec<String> = std::fs::read_dir(root().join("tools"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut listed: Vec<String> = TOOLS.iter().map(|(n, _, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(
        dirs, listed,
        "add the new tool to TOOLS in tests/generated.rs"
    );
}

/// The man page's roff source as text lines, with roff's escapes undone
/// (for comparing with what a user types).
fn unescape(line: &str) -> String {
    line.replace("\\*(Aq", "'")
        .replace("\\-", "-")
        .replace("\\&", "")
        .replace("\\\\", "\\")
}

/// Each page has the sections an operator looks for, and its examples sit
/// between `.nf` and `.fi`, one per source line, exactly as written.
#[test]
fn man_pages_have_environment_exit_status_and_verbatim_examples() {
    for (name, command, manual) in TOOLS {
        let page = String::from_utf8(man_page(command(), manual)).unwrap();
        let lines: Vec<&str> = page.lines().collect();
        for heading in [
            ".SH SYNOPSIS",
            ".SH ENVIRONMENT",
            ".SH \"EXIT STATUS\"",
            ".SH EXAMPLES",
        ] {
            assert!(lines.contains(&heading), "{name}.1 lacks {heading}");
        }
        let start = lines.iter().position(|l| *l == ".SH EXAMPLES").unwrap();
        let nf = start + lines[start..].iter().position(|l| *l == ".nf").unwrap();
        let fi = nf + lines[nf..].iter().position(|l| *l == ".fi").unwrap();
        let shown: Vec<String> = lines[nf + 1..fi].iter().map(|l| unescape(l)).collect();
        assert_eq!(
            shown, manual.examples,
            "{name}.1's examples are not verbatim"
        );
        assert!(!manual.examples.is_empty(), "{name} has no examples");
        // Success first, then the tool's statuses in order (a tool may
        // have no use for one, as sqlkeep-metrics has none for 3).
        let codes: Vec<u8> = manual.exit_status.iter().map(|(e, _)| e.code()).collect();
        assert_eq!(codes.first(), Some(&0), "{name}");
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "{name}: {codes:?}");
        for (_, meaning) in manual.exit_status {
            assert!(
                page.contains(&meaning.replace('-', "\\-")),
                "{name}: {meaning}"
            );
        }
        for var in manual.variables() {
            assert!(
                page.contains(&var.name.replace('-', "\\-")),
                "{name}: {}",
                var.name
            );
        }
    }
}

/// The synopsis names what each option takes.
#[test]
fn synopsis_names_option_arguments() {
    let page =
        String::from_utf8(man_page(sqlite_snap::command(), &sqlite_snap::cli::MANUAL)).unwrap();
    let synopsis = page
        .lines()
        .skip_while(|l| *l != ".SH SYNOPSIS")
        .nth(1)
        .unwrap();
    for part in [
        r"[\fB\-o\fR|\fB\-\-output\-dir\fR\ \fIDIR\fR]",
        r"[\fB\-\-exclude\fR\ \fIGLOB\fR]...",
        r"[\fIDB|DIR\fR]...",
    ] {
        assert!(synopsis.contains(part), "synopsis lacks {part}: {synopsis}");
    }
    let page = String::from_utf8(man_page(
        sqlite_maint::command(),
        &sqlite_maint::cli::MANUAL,
    ))
    .unwrap();
    assert!(
        page.contains(r"[\fB\-\-incremental\-vacuum\fR[=\fIPAGES\fR]]"),
        "sqlite-maint's optional value is not shown"
    );
}

/// Rendered by man, as an operator reads it on an 80-column terminal,
/// every example is one whole line: not joined to the next, not wrapped,
/// not hyphenated. Needs man-db (`./tests/run` installs it).
#[test]
fn man_renders_examples_unbroken() {
    // The page as generated, not the file in man/, which the staleness
    // test may be rewriting at this moment (SQLKEEP_REGENERATE) and checks
    // on its own.
    let dir = tempfile::tempdir().unwrap();
    for (name, command, manual) in TOOLS {
        let path = dir.path().join(format!("{name}.1"));
        std::fs::write(&path, man_page(command(), manual)).unwrap();
        let out = Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C")
            .env_remove("MAN_KEEP_FORMATTING")
            .env_remove("MANPAGER")
            .env_remove("PAGER")
            .output()
            .expect("running man (./tests/run installs man-db)");
        assert!(out.status.success(), "man -l {name}.1 failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let rendered: Vec<&str> = text.lines().map(str::trim).collect();
        for example in manual.examples {
            assert!(
                rendered.contains(example),
                "man {name} does not show {example:?} as one line:\n{text}"
            );
        }
    }
}

/// Every `--help` says where credentials come from and ends with the
/// examples and exit statuses.
#[test]
fn help_states_credentials() {
    // clap wraps help to the terminal's width: compare words, not lines.
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for (name, command, manual) in TOOLS {
        let help = words(&command().render_long_help().to_string());
        assert!(
            help.contains(&words(manual.credentials)),
            "{name} --help: {help}"
        );
        assert!(manual.credentials.starts_with("Credentials: "), "{name}");
        // One line of --help, which clap wraps at 100 columns.
        assert!(
            manual.credentials.len() <= 100,
            "{name}: {}",
            manual.credentials
        );
        assert!(help.contains("Exit status: 0 "), "{name} --help");
    }
}

/// The quoted names in a Rust source that look like environment variables
/// this project reads, outside its `#[cfg(test)]` part.
fn variables_named_in(source: &str) -> Vec<String> {
    // Escaped quotes and the quote character would pair the wrong quotes.
    let code = source
        .split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .replace("\\\"", "")
        .replace("'\"'", "");
    let families = ["AWS_", "RCLONE_", "SQLKEEP_", "XDG_", "SQLITE_", "SSL_"];
    code.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && (families.iter().any(|f| s.starts_with(f)) || *s == "TMPDIR" || *s == "HOME")
        })
        .map(str::to_string)
        .collect()
}

/// All `.rs` files below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A variable read anywhere in the tools' code is documented in some
/// man page's ENVIRONMENT, so a new one cannot slip in unmentioned.
#[test]
fn every_variable_read_is_documented() {
    let mut files = Vec::new();
    rust_files(&root().join("common/src"), &mut files);
    rust_files(&root().join("tools"), &mut files);
    let documented: Vec<&str> = TOOLS
        .iter()
        .flat_map(|(_, _, manual)| manual.variables().map(|v| v.name))
        .collect();
    let mut found = 0;
    for file in files {
        if file.ends_with("manual.rs") {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        for var in variables_named_in(&source) {
            found += 1;
            let covered = documented.contains(&var.as_str())
                || (var.starts_with("RCLONE_CONFIG_")
                    && documented.contains(&"RCLONE_CONFIG_<NAME>_<KEY>"));
            assert!(
                covered,
                "{} reads {var}, which no man page documents",
                file.display()
            );
        }
    }
    assert!(found >= 10, "the scan found only {found} variables");
}
