//! What a run does about encryption, decided before anything is copied.
//!
//! Files copied into a destination are sealed with age when recipients (or
//! a passphrase) are given, whatever the destination is; an encrypted tree
//! (its manifest says so) copied into a local directory is opened with the
//! identities (or passphrase) given. The passphrase flags serve whichever
//! of the two the run does: opening when the source is encrypted, else
//! sealing.
//!
//! The rules an operator relies on:
//! - a destination encrypted to someone is never given plaintext: a run
//!   without recipients is refused (exit 2) before anything is copied;
//! - a destination in plaintext, or encrypted to other recipients, is
//!   rewritten whole, so every file in it opens with the current keys;
//! - a restore without anything to decrypt with is refused (exit 2) before
//!   anything is downloaded or written.

use crate::cli::Args;
use crate::copy::{self, Mode};
use crate::plan::Plan;
use crate::side::{Side, State, describe};
use anyhow::Result;
use sqlkeep_common::crypt::args::{DecryptArgs, IDENTITY_FILE_ENV};
use sqlkeep_common::crypt::encryption::SCRYPT;
use sqlkeep_common::crypt::{Encryption, Identities, Recipients};
use sqlkeep_common::exit::{Exit, exit_of, fail};
use sqlkeep_common::log::Log;
use std::path::PathBuf;

/// The keys of one run.
pub struct Keys {
    /// Whom to encrypt what is copied into the destination to.
    pub seal: Option<Recipients>,
    /// What to decrypt an encrypted source with.
    pub open: Option<Opening>,
    /// The passphrase flags, to check a passphrase-encrypted destination.
    passphrase: DecryptArgs,
}

/// Decrypting an encrypted source.
pub struct Opening {
    /// The identity files (from --identity or SQLKEEP_AGE_IDENTITY_FILE).
    files: Vec<PathBuf>,
    /// Whom the source says its files are encrypted to.
    pub encrypted_to: Vec<String>,
}

impl Keys {
    /// The keys the flags give, read against the source's encryption:
    /// usage errors (exit 2) for a restore with nothing to decrypt with,
    /// recipients given for a restore, or an encrypted tree sent to a
    /// remote.
    pub fn new(
        args: &Args,
        source: Option<&Encryption>,
        source_name: &str,
        dest_is_local: bool,
        log: &Log,
    ) -> Result<Keys> {
        let passphrase = DecryptArgs {
            identity: Vec::new(),
            passphrase_file: args.encrypt.passphrase_file.clone(),
            passphrase_env: args.encrypt.passphrase_env.clone(),
        };
        let Some(source) = source else {
            let seal = args.encrypt.recipients()?;
            return Ok(Keys {
                seal,
                open: None,
                passphrase,
            });
        };
        if !args.encrypt.recipient.is_empty() || !args.encrypt.recipients_file.is_empty() {
            return Err(fail(
                Exit::Usage,
                format!(
                    "{source_name} is an encrypted tree: restore it without \
                     --recipient/--recipients-file (they encrypt what is copied into a destination)"
                ),
            ));
        }
        if !dest_is_local {
            return Err(fail(
                Exit::Usage,
                format!(
                    "{source_name} is an encrypted tree: it is restored into a local directory only"
                ),
            ));
        }
        let mut files = args.identity.clone();
        if files.is_empty()
            && let Some(env) = std::env::var_os(IDENTITY_FILE_ENV).filter(|v| !v.is_empty())
        {
            files.push(PathBuf::from(env));
        }
        let has_passphrase =
            args.encrypt.passphrase_file.is_some() || args.encrypt.passphrase_env.is_some();
        let (usable, give) = if is_passphrase(source) {
            (has_passphrase, "--passphrase-file or --passphrase-env")
        } else {
            (
                !files.is_empty(),
                "--identity (or SQLKEEP_AGE_IDENTITY_FILE)",
            )
        };
        if !usable {
            return Err(fail(
                Exit::Usage,
                format!(
                    "{source_name} is encrypted {}; give {give} to restore it; nothing was copied",
                    whom(source)
                ),
            ));
        }
        let keys = Keys {
            seal: None,
            open: Some(Opening {
                files,
                encrypted_to: source.recipients.clone(),
            }),
            passphrase,
        };
        // Read once here, so a bad file or passphrase fails the run before
        // anything is copied and a loose identity file is warned about once.
        keys.identities(Some(log))?;
        Ok(keys)
    }

    /// Identities for one copying thread, or None when nothing is to be
    /// decrypted. age's identities cannot be shared between threads, so
    /// each worker reads them again; `log` (the first reading only) gets
    /// the warnings.
    pub fn identities(&self, log: Option<&Log>) -> Result<Option<Identities>> {
        let Some(open) = &self.open else {
            return Ok(None);
        };
        // A tree is encrypted either to keys or with a passphrase, never
        // both: only what can open it is read.
        if open.encrypted_to == [SCRYPT] {
            // (This also reads SQLKEEP_AGE_IDENTITY_FILE when set, and warns
            // about it again per worker if others can read it: common's
            // DecryptArgs offers no passphrase-only reading.)
            let fallback = Log::new("blob-sync", sqlkeep_common::log::Level::Quiet);
            return self
                .passphrase
                .identities(log.unwrap_or(&fallback))
                .map(Some);
        }
        let mut ids = Identities::new();
        for file in &open.files {
            if let Some(warning) = ids.add_file(file)?
                && let Some(log) = log
            {
                log.warn(&file.display().to_string(), &warning);
            }
        }
        Ok(Some(ids))
    }

    /// How each file is copied, by a worker holding `ids` (from
    /// [`Keys::identities`]).
    pub fn mode<'a>(&'a self, ids: Option<&'a Identities>) -> Mode<'a> {
        match (&self.seal, &self.open, ids) {
            (Some(recipients), _, _) => Mode::Seal(recipients),
            (None, Some(o), Some(ids)) => Mode::Open(ids, &o.encrypted_to),
            _ => Mode::Plain,
        }
    }

    /// What the destination's manifest says after this run.
    pub fn label(&self) -> Option<Encryption> {
        self.seal.as_ref().map(|r| {
            let mut public = r.public();
            public.sort();
            Encryption::age(public)
        })
    }

    /// Refuses plaintext into an encrypted destination (exit 2).
    pub fn check_dest(&self, dest: Option<&Encryption>, dest_name: &str) -> Result<()> {
        match (dest, &self.seal) {
            (Some(dest), None) => {
                let give = if is_passphrase(dest) {
                    "--passphrase-file/--passphrase-env"
                } else {
                    "--recipient/--recipients-file"
                };
                Err(fail(
                    Exit::Usage,
                    format!(
                        "{dest_name}: destination is encrypted {}; give {give}; nothing was copied",
                        whom(dest)
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Why the destination must be rewritten whole, if it must: it holds
    /// plaintext, or files encrypted to others. A destination encrypted
    /// with a passphrase says only "scrypt", so when there is something to
    /// copy, the passphrase is tried on its smallest file first.
    pub fn rewrite_reason(
        &self,
        dst: &Side,
        dest: &State,
        plan: &Plan,
        log: &Log,
    ) -> Result<Option<String>> {
        let Some(ours) = self.label() else {
            return Ok(None);
        };
        if dest.full.is_empty() {
            return Ok(None);
        }
        let was = match &dest.encryption {
            None => {
                return Ok(Some(format!(
                    "the destination holds {} files in plaintext: re-encrypting every file {}",
                    dest.full.len(),
                    whom(&ours)
                )));
            }
            Some(was) => was,
        };
        if !same(Some(was), Some(&ours)) {
            return Ok(Some(format!(
                "the destination is encrypted {}, not {}: re-encrypting every file",
                whom(was),
                whom(&ours)
            )));
        }
        if !is_passphrase(was) || plan.copy.is_empty() {
            return Ok(None);
        }
        let smallest = dest
            .tree
            .iter()
            .filter_map(|(k, e)| e.stored.as_ref().map(|s| (s.bytes, k, e)))
            .min_by_key(|(bytes, _, _)| *bytes);
        let Some((_, key, entry)) = smallest else {
            return Ok(None);
        };
        let ids = self.passphrase.identities(log)?;
        let to = [SCRYPT.to_string()];
        match copy::decrypt_from(dst, key, entry, &ids, &to, &mut std::io::sink()) {
            Ok(_) => Ok(None),
            Err(e) if exit_of(&e) == Exit::Usage => Ok(Some(
                "the destination is encrypted with another passphrase: re-encrypting every file"
                    .to_string(),
            )),
            Err(e) => {
                log.warn(
                    &describe(dst, key),
                    &format!(
                        "cannot try the passphrase on it ({e:#}); taking it for the one the \
                         destination was encrypted with"
                    ),
                );
                Ok(None)
            }
        }
    }
}

/// True when two labels name the same recipients (in any order); None is
/// plaintext.
pub fn same(a: Option<&Encryption>, b: Option<&Encryption>) -> bool {
    let set = |e: &Encryption| {
        let mut r = e.recipients.clone();
        r.sort();
        r.dedup();
        (e.format.clone(), r)
    };
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => set(a) == set(b),
        _ => false,
    }
}

/// "to age1…, age1…" or "with a passphrase", for messages.
pub fn whom(e: &Encryption) -> String {
    if is_passphrase(e) {
        "with a passphrase".to_string()
    } else {
        format!("to {}", e.recipients.join(", "))
    }
}

fn is_passphrase(e: &Encryption) -> bool {
    e.recipients == [SCRYPT]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_compare_as_sets() {
        let a = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".to_string();
        let b = "age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg".to_string();
        let ab = Encryption::age(vec![a.clone(), b.clone()]);
        let ba = Encryption::age(vec![b.clone(), a.clone()]);
        assert!(same(Some(&ab), Some(&ba)));
        assert!(!same(Some(&ab), Some(&Encryption::age(vec![a.clone()]))));
        assert!(!same(Some(&ab), None));
        assert!(same(None, None));
        assert_eq!(whom(&Encryption::age(vec![a.clone()])), format!("to {a}"));
        assert_eq!(
            whom(&Encryption::age(vec![SCRYPT.into()])),
            "with a passphrase"
        );
    }
}
