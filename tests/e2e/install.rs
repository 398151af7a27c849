//! `./install`, run as a user would after a build: every tool under
//! `tools/` lands in a scratch prefix with its man page and its three
//! completions, each of them usable (man finds the page, bash, zsh and fish
//! load the completions, the binary runs), and `--uninstall` takes away exactly
//! what was added.
//!
//! The test installs the binaries this test run built (`--bin-dir`), so it
//! proves the copying, not cargo's release build; `.ci/deb` and the
//! Dockerfile recipe build for real.

use crate::support::{Scratch, bin_dir, list_files, sha256_file};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every tool, found the way `./install` finds them: the crates under
/// `tools/`. Read from the tree, not listed, so a new tool is covered.
fn tools() -> Vec<String> {
    let mut tools: Vec<String> = std::fs::read_dir(repo().join("tools"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    tools.sort();
    assert!(tools.len() >= 6, "tools/ holds {tools:?}");
    tools
}

/// Every directory below `dir`, relative and sorted.
fn list_dirs(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = all_paths(dir)
        .into_iter()
        .filter(|p| p.is_dir())
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

/// Every path below `dir`.
fn all_paths(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_paths(&path));
        }
        out.push(path);
    }
    out
}

/// Asserts an installed file is the repository's, byte for byte.
fn same_file(installed: &Path, shipped: &Path) {
    assert!(installed.is_file(), "{} is missing", installed.display());
    assert_eq!(
        sha256_file(installed),
        sha256_file(shipped),
        "{} differs from {}",
        installed.display(),
        shipped.display()
    );
}

#[test]
fn install_places_every_tool_and_uninstall_removes_exactly_that() {
    let s = Scratch::new();
    let prefix = s.join("usr");
    // What was there before must survive uninstall: another program, and
    // another tool's completion in a directory both share.
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::write(prefix.join("bin/other-tool"), "#!/bin/sh\n").unwrap();
    let completions = prefix.join("share/bash-completion/completions");
    std::fs::create_dir_all(&completions).unwrap();
    std::fs::write(completions.join("other-tool"), "complete -W x other-tool\n").unwrap();
    let files_before = list_files(&prefix);
    let dirs_before = list_dirs(&prefix);

    let install = repo().join("install");
    let prefix_arg = prefix.to_str().unwrap();
    let run = s
        .program(&install)
        .args(["--prefix", prefix_arg, "--bin-dir"])
        .arg(bin_dir())
        .run()
        .success();
    let said = run.stdout();
    let tools = tools();
    for tool in &tools {
        assert!(
            said.contains(tool.as_str()),
            "install did not name {tool}:\n{said}"
        );
    }
    assert!(said.contains("--uninstall"), "no uninstall hint:\n{said}");

    for tool in &tools {
        let bin = prefix.join("bin").join(tool);
        same_file(&bin, &bin_dir().join(tool));
        let mode = std::fs::metadata(&bin).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{} mode {mode:o}", bin.display());
        let version = Command::new(&bin).arg("--version").output().unwrap();
        assert!(version.status.success(), "{tool} --version failed");
        let version = String::from_utf8_lossy(&version.stdout).into_owned();
        assert!(
            version.starts_with(&format!("{tool} ")),
            "{tool} --version printed {version:?}"
        );

        let page = prefix.join(format!("share/man/man1/{tool}.1"));
        same_file(&page, &repo().join(format!("man/{tool}.1")));
        // man itself must find the page where the prefix's man directory
        // is searched, not only the file be there.
        let man = Command::new("man")
            .args(["-w", tool])
            .env("MANPATH", prefix.join("share/man"))
            .output()
            .expect("running man -w (./tests/run installs man-db)");
        assert!(
            man.status.success(),
            "man -w {tool} failed: {}",
            String::from_utf8_lossy(&man.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&man.stdout).trim(),
            page.to_str().unwrap(),
            "man -w {tool} found another page"
        );

        let bash = completions.join(tool);
        same_file(&bash, &repo().join(format!("completions/{tool}.bash")));
        same_file(
            &prefix.join(format!("share/zsh/site-functions/_{tool}")),
            &repo().join(format!("completions/_{tool}")),
        );
        same_file(
            &prefix.join(format!("share/fish/vendor_completions.d/{tool}.fish")),
            &repo().join(format!("completions/{tool}.fish")),
        );
        // Loading the completion registers it for the tool's name: what
        // bash-completion does when the user first presses Tab.
        let complete = Command::new("bash")
            .args(["-c", r#"source "$1" && complete -p "$2""#, "bash"])
            .arg(&bash)
            .arg(tool)
            .output()
            .unwrap();
        let registered = String::from_utf8_lossy(&complete.stdout).into_owned();
        assert!(
            complete.status.success() && registered.trim_end().ends_with(&format!(" {tool}")),
            "bash did not register a completion for {tool}: {registered:?} {}",
            String::from_utf8_lossy(&complete.stderr)
        );
        zsh_finds_completion(&s, &prefix, tool);
        fish_completes(&s, &prefix, tool);
    }

    s.program(&install)
        .args(["--uninstall", "--prefix", prefix_arg])
        .run()
        .success();
    assert_eq!(
        list_files(&prefix),
        files_before,
        "uninstall left or took files"
    );
    assert_eq!(
        list_dirs(&prefix),
        dirs_before,
        "uninstall left or took directories"
    );
}

/// zsh's completion system, pointed at the prefix's site-functions as
/// /usr/local's are by default, maps the tool to its completion function
/// and can load that function (a file zsh cannot parse fails here).
fn zsh_finds_completion(s: &Scratch, prefix: &Path, tool: &str) {
    let script = r#"fpath=("$1" $fpath)
autoload -U compinit && compinit -u -d "$HOME/zcompdump"
print -r -- "$_comps[$2]"
autoload -Uz +X "_$2""#;
    let out = Command::new("zsh")
        .args(["-f", "-c", script, "zsh"])
        .arg(prefix.join("share/zsh/site-functions"))
        .arg(tool)
        .env("HOME", s.path())
        .output()
        .expect("running zsh (./tests/run installs it)");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == format!("_{tool}"),
        "zsh did not find the completion of {tool}: {:?} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// fish, with the prefix in its data directories and the tool on PATH (as
/// after an install to /usr/local), completes the tool's options: fish
/// loads vendor completions on its own, so this is what Tab would show.
fn fish_completes(s: &Scratch, prefix: &Path, tool: &str) {
    let path = format!(
        "{}:{}",
        prefix.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("fish")
        .args(["-c", r#"complete -C "$argv[1] --""#, tool])
        .env("HOME", s.path())
        .env("XDG_DATA_DIRS", prefix.join("share"))
        .env("PATH", path)
        .output()
        .expect("running fish (./tests/run installs it)");
    let said = String::from_utf8_lossy(&out.stdout);
    let options: Vec<&str> = said
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert!(
        out.status.success() && options.contains(&"--help") && options.contains(&"--version"),
        "fish did not complete {tool}'s options: {said:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tool whose binary is missing fails the install before anything is
/// copied: no half-installed set of tools.
#[test]
fn install_without_every_binary_copies_nothing() {
    let s = Scratch::new();
    let bins = s.join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    let tools = tools();
    // Every binary but the last one.
    for tool in &tools[..tools.len() - 1] {
        std::fs::copy(bin_dir().join(tool), bins.join(tool)).unwrap();
    }
    let prefix = s.join("usr");
    s.program(&repo().join("install"))
        .args(["--prefix", prefix.to_str().unwrap(), "--bin-dir", "bins"])
        .run()
        .expect_code(2)
        .stderr_has(tools.last().unwrap());
    assert_eq!(list_files(&prefix), Vec::<String>::new());
}

/// examples/Dockerfile cannot be built here (no Docker engine), so its
/// build stage is played instead: its `./install` line runs with the same
/// arguments (staged in a scratch directory, with this run's binaries),
/// and every `COPY --from=sqlkeep` source must then exist, the copied bin
/// directory must hold every tool, and the ENTRYPOINT must be a copied
/// file. A tool added, a script renamed or the install layout changed
/// breaks the recipe here rather than in a user's image build.
#[test]
fn the_dockerfile_recipe_copies_what_its_build_stage_made() {
    let s = Scratch::new();
    let text = std::fs::read_to_string(repo().join("examples/Dockerfile")).unwrap();
    let lines: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .filter(|w: &Vec<&str>| !w.is_empty())
        .collect();
    let stage_start = lines
        .iter()
        .position(|w| w[0] == "FROM" && w.ends_with(&["AS", "sqlkeep"]))
        .expect("no `FROM … AS sqlkeep` build stage");
    let stage: Vec<&Vec<&str>> = lines[stage_start + 1..]
        .iter()
        .take_while(|w| w[0] != "FROM")
        .collect();
    let clone_dir = stage
        .iter()
        .find(|w| w.starts_with(&["RUN", "git", "clone"]))
        .map(|w| *w.last().unwrap())
        .expect("the build stage does not clone sqlkeep");
    assert!(
        stage.iter().any(|w| w[..] == ["WORKDIR", clone_dir]),
        "the build stage does not work in its clone {clone_dir}"
    );
    let install = stage
        .iter()
        .find(|w| w.starts_with(&["RUN", "./install"]))
        .expect("the build stage does not run ./install");
    let mut args: Vec<String> = install[2..].iter().map(|a| a.to_string()).collect();
    let at = args
        .iter()
        .position(|a| a == "--destdir")
        .expect("./install in the recipe stages nothing (--destdir)");
    let destdir = args[at + 1].clone();
    args[at + 1] = s.join("out").to_str().unwrap().to_string();
    s.program(&repo().join("install"))
        .args(&args)
        .arg("--bin-dir")
        .arg(bin_dir())
        .run()
        .success();

    // Where a path of the build stage is on this machine.
    let here = |path: &str| -> PathBuf {
        if let Some(rest) = path.strip_prefix(&format!("{destdir}/")) {
            s.join("out").join(rest)
        } else if let Some(rest) = path.strip_prefix(&format!("{clone_dir}/")) {
            repo().join(rest)
        } else {
            panic!("the recipe copies {path}, which the build stage did not make")
        }
    };
    let mut copied = Vec::new();
    let mut bin_copied = false;
    for words in lines.iter().filter(|w| w[0] == "COPY") {
        assert_eq!(words[1], "--from=sqlkeep", "{words:?}");
        let paths: Vec<&str> = words[2..]
            .iter()
            .copied()
            .filter(|w| !w.starts_with("--"))
            .collect();
        let (destination, sources) = paths.split_last().unwrap();
        for source in sources {
            let path = here(source);
            assert!(path.exists(), "COPY source {source} is missing");
            if path.is_dir() {
                for tool in tools() {
                    assert!(
                        path.join(&tool).is_file(),
                        "{source} lacks {tool}: the image would not have it"
                    );
                }
                bin_copied = true;
                // A directory's contents are copied, not the directory.
                continue;
            }
            copied.push(if destination.ends_with('/') {
                format!(
                    "{destination}{}",
                    Path::new(source).file_name().unwrap().to_str().unwrap()
                )
            } else {
                destination.to_string()
            });
        }
    }
    assert!(bin_copied, "the recipe copies no directory of tools");
    let entrypoint = lines
        .iter()
        .find(|w| w[0] == "ENTRYPOINT")
        .expect("no ENTRYPOINT");
    let first = entrypoint[1]
        .trim_start_matches("[\"")
        .trim_end_matches("\",");
    assert!(
        copied.iter().any(|c| c == first),
        "ENTRYPOINT {first} is not a file the recipe copies ({copied:?})"
    );
}
