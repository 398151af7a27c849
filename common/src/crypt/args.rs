//! The encryption and decryption flags the tools share.
//!
//! A passphrase is never a command-line argument (any user on the machine
//! can read another's `/proc/<pid>/cmdline`): it comes from a file or
//! from an environment variable the flag names.

use super::{Identities, Recipients};
use crate::exit::{Exit, fail};
use crate::log::Log;
use age::secrecy::SecretString;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The environment variable naming an identity file when `--identity` is
/// not given.
pub const IDENTITY_FILE_ENV: &str = "SQLKEEP_AGE_IDENTITY_FILE";

/// The most a passphrase file may hold: a passphrase, not a database.
const PASSPHRASE_FILE_MAX: u64 = 64 << 10;

/// Whom to encrypt to.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EncryptArgs {
    /// Encrypt to this age public key, age1… (repeatable; only public keys are needed to back up)
    #[arg(long, value_name = "KEY", help_heading = "Encryption")]
    pub recipient: Vec<String>,

    /// Encrypt to every key in FILE, age's recipients format (`age-keygen -y key.txt` prints one); repeatable
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath, help_heading = "Encryption")]
    pub recipients_file: Vec<PathBuf>,

    /// Use the passphrase in FILE (its first line) instead of keys
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath,
          help_heading = "Encryption", conflicts_with = "passphrase_env")]
    pub passphrase_file: Option<PathBuf>,

    /// Use the passphrase in the environment variable VAR instead of keys
    #[arg(long, value_name = "VAR", help_heading = "Encryption")]
    pub passphrase_env: Option<String>,

    /// scrypt work factor (log2 N) for a passphrase; tests lower it
    #[arg(long, value_name = "N", hide = true,
          value_parser = clap::value_parser!(u8).range(1..=30))]
    pub scrypt_work_factor: Option<u8>,
}

impl EncryptArgs {
    /// The recipients the flags name, or None when nothing is to be
    /// encrypted.
    pub fn recipients(&self) -> Result<Option<Recipients>> {
        let mut r = Recipients::new();
        for key in &self.recipient {
            r.add_key(key, "--recipient")?;
        }
        for file in &self.recipients_file {
            r.add_file(file)?;
        }
        if let Some(passphrase) = passphrase(&self.passphrase_file, &self.passphrase_env)? {
            if !r.is_empty() {
                return Err(fail(
                    Exit::Usage,
                    "a passphrase cannot be combined with public keys (age's rule): choose one",
                ));
            }
            r.set_passphrase(passphrase);
            if let Some(n) = self.scrypt_work_factor {
                r.set_work_factor(n);
            }
        }
        Ok((!r.is_empty()).then_some(r))
    }
}

/// What can decrypt.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DecryptArgs {
    /// Decrypt with the age identities in FILE (what age-keygen writes); repeatable [env: SQLKEEP_AGE_IDENTITY_FILE]
    #[arg(short = 'i', long, value_name = "FILE", value_hint = clap::ValueHint::FilePath,
          help_heading = "Decryption")]
    pub identity: Vec<PathBuf>,

    /// Decrypt with the passphrase in FILE (its first line)
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath,
          help_heading = "Decryption", conflicts_with = "passphrase_env")]
    pub passphrase_file: Option<PathBuf>,

    /// Decrypt with the passphrase in the environment variable VAR
    #[arg(long, value_name = "VAR", help_heading = "Decryption")]
    pub passphrase_env: Option<String>,
}

impl DecryptArgs {
    /// The identities the flags (or `SQLKEEP_AGE_IDENTITY_FILE`) name;
    /// an identity file others can read gets a WARN, as ssh does.
    pub fn identities(&self, log: &Log) -> Result<Identities> {
        let mut ids = Identities::new();
        let mut files = self.identity.clone();
        if files.is_empty()
            && let Some(env) = std::env::var_os(IDENTITY_FILE_ENV).filter(|v| !v.is_empty())
        {
            files.push(PathBuf::from(env));
        }
        for file in &files {
            if let Some(warning) = ids.add_file(file)? {
                log.warn(&file.display().to_string(), &warning);
            }
        }
        if let Some(passphrase) = passphrase(&self.passphrase_file, &self.passphrase_env)? {
            ids.set_passphrase(passphrase);
        }
        Ok(ids)
    }
}

/// The passphrase from a file's first line or an environment variable.
fn passphrase(file: &Option<PathBuf>, env: &Option<String>) -> Result<Option<SecretString>> {
    let text = match (file, env) {
        (Some(path), _) => read_passphrase_file(path)?,
        (None, Some(var)) => std::env::var(var).map_err(|_| {
            fail(
                Exit::Usage,
                format!("--passphrase-env {var}: the variable is not set (or not UTF-8)"),
            )
        })?,
        (None, None) => return Ok(None),
    };
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        let from = match (file, env) {
            (Some(path), _) => format!("passphrase file {}", path.display()),
            (_, Some(var)) => format!("environment variable {var}"),
            _ => unreachable!("one of them is given"),
        };
        return Err(fail(
            Exit::Usage,
            format!("{from} holds an empty passphrase"),
        ));
    }
    Ok(Some(SecretString::from(line)))
}

fn read_passphrase_file(path: &Path) -> Result<String> {
    let meta = crate::regular::check_regular(path)
        .with_context(|| format!("passphrase file {}", path.display()))?;
    if meta.len() > PASSPHRASE_FILE_MAX {
        return Err(fail(
            Exit::Usage,
            format!(
                "passphrase file {} is {} bytes: not a passphrase",
                path.display(),
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading passphrase file {}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| {
        fail(
            Exit::Usage,
            format!("passphrase file {} is not UTF-8 text", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn passphrases_come_from_a_file_line_or_a_named_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(&file, "tr0ub4dor &3\nignored\n").unwrap();
        let got = passphrase(&Some(file.clone()), &None).unwrap().unwrap();
        assert_eq!(got.expose_secret(), "tr0ub4dor &3");

        std::fs::write(&file, "\n").unwrap();
        let err = passphrase(&Some(file.clone()), &None).unwrap_err();
        assert!(format!("{err}").contains("empty passphrase"), "{err}");

        let err = passphrase(&None, &Some("SQLKEEP_TEST_SURELY_UNSET".into())).unwrap_err();
        assert!(format!("{err}").contains("not set"), "{err}");
        assert!(passphrase(&None, &None).unwrap().is_none());
    }

    #[test]
    fn no_flag_means_no_encryption_and_keys_do_not_mix_with_a_passphrase() {
        assert!(EncryptArgs::default().recipients().unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(&file, "secret words\n").unwrap();
        let id = age::x25519::Identity::generate();
        let args = EncryptArgs {
            recipient: vec![id.to_public().to_string()],
            passphrase_file: Some(file),
            ..EncryptArgs::default()
        };
        let err = args.recipients().err().unwrap();
        assert!(format!("{err}").contains("choose one"), "{err}");
        assert!(!format!("{err}").contains("secret words"));
    }
}
