//! rclone's config file, read by rclone's own rules.
//!
//! rclone reads `rclone.conf` with goconfig, whose dialect is not any INI
//! crate's: a line is a `[section]` only if it both starts with `[` and ends
//! with `]`; a setting splits at its first `=` or `:`; `#` and `;` comment
//! whole lines only (a secret may contain ` #`); a value wrapped in
//! backticks or `"""` is unwrapped, one in `"` or `'` is kept as written; a
//! key may be quoted; settings before any section belong to `DEFAULT`;
//! there are no escapes and no continuation lines. rclone refuses a file
//! with a line that is none of these, or a setting under `[]`.
//!
//! Why not a crate: on 27 probe files run through `rclone config dump`,
//! `rust-ini` (quotes, escapes and multi-line values off) disagreed on 11 —
//! it accepts `[b2] x` and a bare `type s3` line by joining it to the next
//! line's key, joins a line ending in `\` to the next, keeps the byte-order
//! mark in a key and refuses indented comments — and `configparser` on 12,
//! including accepting `type s3` and cutting `v # c` to `v`. Either would
//! have needed a pre-pass that re-parses every line, i.e. this module.
//! `tests/e2e/rclone_ini.rs` holds this reader to rclone itself, on the
//! probe files and on generated ones.

use std::collections::BTreeMap;

/// The settings of one section, key → value.
pub type Section = BTreeMap<String, String>;

/// Every section of a config file, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RcloneIni {
    sections: BTreeMap<String, Section>,
}

/// Why rclone would refuse a file: the 1-based line and a reason that never
/// quotes more of the line than its first word (it may hold a secret).
#[derive(Debug, PartialEq, Eq)]
pub struct LineError {
    /// The line rclone would stop at, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub why: String,
}

/// Where settings before the first `[section]` go, as in goconfig.
const DEFAULT_SECTION: &str = "DEFAULT";

impl RcloneIni {
    /// Reads a whole config file's text.
    pub fn parse(text: &str) -> Result<RcloneIni, LineError> {
        let mut ini = RcloneIni::default();
        let mut section = DEFAULT_SECTION.to_string();
        // goconfig numbers the settings named `-` per section (`#1`, `#2`…).
        let mut count = 1;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, line) in text.split('\n').enumerate() {
            let line = line.trim();
            let number = index + 1;
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.len() >= 2 && line.starts_with('[') && line.ends_with(']') {
                section = line[1..line.len() - 1].trim().to_string();
                let name = if section.is_empty() {
                    DEFAULT_SECTION
                } else {
                    &section
                };
                ini.sections.entry(name.to_string()).or_default();
                count = 1;
                continue;
            }
            if section.is_empty() {
                return Err(LineError {
                    line: number,
                    why: "a setting under an empty section name []".into(),
                });
            }
            let Some((mut key, value)) = setting(line) else {
                return Err(LineError {
                    line: number,
                    why: format!("cannot parse {:?}", first_word(line)),
                });
            };
            if key == "-" {
                key = format!("#{count}");
                count += 1;
            }
            // goconfig drops a setting with an empty key without creating
            // its section.
            if !key.is_empty() {
                ini.sections
                    .entry(section.clone())
                    .or_default()
                    .insert(key, value.to_string());
            }
        }
        Ok(ini)
    }

    /// One section's settings; None when the file has no such section.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.get(name)
    }

    /// Every section's name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }
}

/// A trimmed, non-comment, non-header line as (key, value), or None when
/// rclone cannot parse it.
fn setting(line: &str) -> Option<(String, &str)> {
    let key_quote = if line.len() >= 6 && line.starts_with("\"\"\"") {
        Some("\"\"\"")
    } else if line.starts_with('"') {
        Some("\"")
    } else if line.starts_with('`') {
        Some("`")
    } else {
        None
    };
    let (key, separator) = match key_quote {
        Some(quote) => {
            let end = quote.len() + line[quote.len()..].find(quote)?;
            // Whatever sits between the closing quote and the separator is
            // ignored, as rclone ignores it.
            let separator = end + line[end..].find(['=', ':']).filter(|&at| at > 0)?;
            (line[quote.len()..end].to_string(), separator)
        }
        None => {
            let separator = line.find(['=', ':']).filter(|&at| at > 0)?;
            (line[..separator].trim().to_string(), separator)
        }
    };
    let right = line[separator + 1..].trim();
    let value_quote = if right.len() >= 2 && right.starts_with('`') {
        Some("`")
    } else if right.len() >= 6 && right.starts_with("\"\"\"") {
        Some("\"\"\"")
    } else {
        None
    };
    let value = match value_quote {
        Some(quote) => {
            let end = quote.len() + right[quote.len()..].rfind(quote)?;
            &right[quote.len()..end]
        }
        None => right,
    };
    Some((key, value))
}

/// The start of a line that could not be parsed, for an error message:
/// only its first word survives (the rest may be a secret).
fn first_word(line: &str) -> String {
    let word: String = line
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
        .take(40)
        .collect();
    if word.len() < line.len() {
        format!("{word} …")
    } else {
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str, section: &str) -> Section {
        RcloneIni::parse(text)
            .unwrap()
            .section(section)
            .cloned()
            .unwrap_or_else(|| panic!("no [{section}] in {text:?}"))
    }

    #[test]
    fn settings_split_at_the_first_separator_and_keep_quotes_rclone_keeps() {
        let b2 = one(
            "# c\n ; c\n[b2]\ntype = s3\nendpoint: https://x:443\nk = v # not a comment\n\
             q = \"kept\"\ns = 'kept'\nb = `unwrapped` tail\nt = \"\"\"unwrapped\"\"\"\n\
             \"a b\" = quoted key\nempty =\n",
            "b2",
        );
        let expected = [
            ("type", "s3"),
            ("endpoint", "https://x:443"),
            ("k", "v # not a comment"),
            ("q", "\"kept\""),
            ("s", "'kept'"),
            ("b", "unwrapped"),
            ("t", "unwrapped"),
            ("a b", "quoted key"),
            ("empty", ""),
        ];
        for (k, v) in expected {
            assert_eq!(b2.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(b2.len(), expected.len());
    }

    #[test]
    fn sections_merge_and_settings_before_any_belong_to_default() {
        let ini = RcloneIni::parse("\u{feff}k = 0\n[b2]\nk = 1\n[other]\n[b2]\nk = 2\n").unwrap();
        assert_eq!(ini.section("DEFAULT").unwrap()["k"], "0");
        assert_eq!(ini.section("b2").unwrap()["k"], "2", "the last one wins");
        assert_eq!(ini.names().collect::<Vec<_>>(), ["DEFAULT", "b2", "other"]);
        assert!(ini.section("B2").is_none(), "names are case-sensitive");
    }

    #[test]
    fn lines_rclone_refuses_are_refused_without_their_text() {
        for (bad, line) in [
            ("[b2]\ntype s3\n", 2),
            ("[b2]\n= s3\n", 2),
            ("[b2] x\ntype = s3\n", 1),
            ("[b2\n", 1),
            ("[\n", 1),
            ("[]\ntype = s3\n", 2),
            ("[b2]\nk = `unterminated\n", 2),
            ("[b2]\n\"k = v\n", 2),
            ("[b2]\nsecret_access_key SECRETVALUE\n", 2),
        ] {
            let error = RcloneIni::parse(bad).unwrap_err();
            assert_eq!(error.line, line, "{bad:?}: {}", error.why);
            assert!(!error.why.contains("SECRETVALUE"), "{}", error.why);
        }
    }
}
