//! age encryption of what leaves the machine with data in it.
//!
//! Objects are encrypted after compression with the age format (the
//! `age` crate, by the format's co-author), so `age -d -i key.txt OBJ |
//! zstd -d` restores a snapshot without sqlkeep. The machine that makes
//! backups needs only public keys (`age1…`): a compromised server cannot
//! read last month's backups. A passphrase (scrypt) is the alternative for
//! people who want one secret; age does not mix it with other recipients.
//!
//! Secrets never reach a message: errors name files and public keys only.
//!
//! Where it sits, so that no plaintext copy is ever made: in
//! `sqlite-snap`'s sink between zstd and the stored-bytes hash (pages →
//! SHA-256 raw → zstd → age → SHA-256 stored → file), so `raw_sha256`
//! proves the data and `sha256` catches a tampered object before any
//! decrypted byte is used; and in the restore between the stored-bytes
//! hash and zstd. The download is push-based (`Store::get` writes) and age
//! decrypts from a reader, so the restore needs a pipe and a thread
//! between the two. `blob-sync` encrypts while it uploads
//! ([`stream::EncryptingReader`], whose length is known in advance).
//!
//! Encryption happens where the object is made, not in `bucket-push`: an
//! incremental chain's links and state files name the stored bytes'
//! checksums, which must be the ciphertext's from the start.

pub mod args;
pub mod encryption;
pub mod stream;

pub use encryption::Encryption;

use crate::exit::{Exit, fail};
use age::secrecy::SecretString;
use anyhow::{Context, Result};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::str::FromStr;

/// Who can decrypt what is encrypted: public keys, or one passphrase.
#[derive(Default)]
pub struct Recipients {
    keys: Vec<age::x25519::Recipient>,
    passphrase: Option<SecretString>,
    /// scrypt's work factor (log2 N); None for age's default (about a
    /// second of work).
    work_factor: Option<u8>,
}

impl Recipients {
    /// No recipient yet.
    pub fn new() -> Recipients {
        Recipients::default()
    }

    /// Adds a public key, `age1…`. `from` names where it came from.
    pub fn add_key(&mut self, text: &str, from: &str) -> Result<()> {
        let key = age::x25519::Recipient::from_str(text.trim()).map_err(|_| {
            fail(
                Exit::Usage,
                format!("{from}: {:?} is not an age public key (age1…)", text.trim()),
            )
        })?;
        self.keys.push(key);
        Ok(())
    }

    /// Adds the keys of a recipients file in age's own format: one key a
    /// line, `#` comments and blank lines ignored (what `age-keygen -y`
    /// prints is one).
    pub fn add_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading recipients file {}", path.display()))?;
        let mut added = 0;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.add_key(line, &format!("{} line {}", path.display(), n + 1))?;
            added += 1;
        }
        if added == 0 {
            return Err(fail(
                Exit::Usage,
                format!("recipients file {} holds no key", path.display()),
            ));
        }
        Ok(())
    }

    /// Encrypts to a passphrase instead of keys.
    pub fn set_passphrase(&mut self, passphrase: SecretString) {
        self.passphrase = Some(passphrase);
    }

    /// Sets scrypt's work factor (log2 N) for a passphrase.
    pub fn set_work_factor(&mut self, log_n: u8) {
        self.work_factor = Some(log_n);
    }

    /// True when nothing would be encrypted to anyone.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.passphrase.is_none()
    }

    /// Whom the data is encrypted to, as manifests say it: the public
    /// keys, or `scrypt` for a passphrase (never the passphrase).
    pub fn public(&self) -> Vec<String> {
        match self.passphrase {
            Some(_) => vec!["scrypt".to_string()],
            None => self.keys.iter().map(ToString::to_string).collect(),
        }
    }

    /// Starts encrypting into `out`; `finish()` the writer to end it.
    pub fn encrypt<W: Write>(&self, out: W) -> Result<age::stream::StreamWriter<W>> {
        let encryptor = match (&self.passphrase, self.keys.is_empty()) {
            (Some(_), false) => {
                return Err(fail(
                    Exit::Usage,
                    "a passphrase cannot be combined with public keys (age's rule): choose one",
                ));
            }
            (Some(passphrase), true) => {
                let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
                if let Some(log_n) = self.work_factor {
                    recipient.set_work_factor(log_n);
                }
                age::Encryptor::with_recipients(std::iter::once(&recipient as _))
            }
            (None, false) => {
                age::Encryptor::with_recipients(self.keys.iter().map(|k| k as &dyn age::Recipient))
            }
            (None, true) => return Err(fail(Exit::Usage, "no recipient to encrypt to")),
        }
        .map_err(|e| fail(Exit::Usage, format!("cannot encrypt: {e}")))?;
        encryptor.wrap_output(out).context("starting encryption")
    }
}

/// What can decrypt: identity files' private keys, or a passphrase.
#[derive(Default)]
pub struct Identities {
    list: Vec<Box<dyn age::Identity>>,
    passphrase: Option<SecretString>,
}

impl Identities {
    /// None yet.
    pub fn new() -> Identities {
        Identities::default()
    }

    /// Adds the keys of an age identity file (what `age-keygen` writes).
    /// Returns a warning when others than its owner can read it.
    pub fn add_file(&mut self, path: &Path) -> Result<Option<String>> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("reading identity file {}", path.display()))?;
        let file = std::fs::File::open(path)
            .with_context(|| format!("reading identity file {}", path.display()))?;
        let parsed = age::IdentityFile::from_buffer(BufReader::new(file))
            .and_then(|f| {
                f.into_identities()
                    .map_err(|e| std::io::Error::other(e.to_string()))
            })
            .map_err(|_| {
                fail(
                    Exit::Usage,
                    format!("identity file {} holds no age identity", path.display()),
                )
            })?;
        if parsed.is_empty() {
            return Err(fail(
                Exit::Usage,
                format!("identity file {} holds no age identity", path.display()),
            ));
        }
        self.list.extend(parsed);
        Ok(loose_permissions(meta.permissions().mode()).then(|| {
            format!(
                "identity file {} is readable by others than its owner (chmod 600 it)",
                path.display()
            )
        }))
    }

    /// Adds a passphrase.
    pub fn set_passphrase(&mut self, passphrase: SecretString) {
        self.passphrase = Some(passphrase);
    }

    /// True when nothing was given to decrypt with.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.passphrase.is_none()
    }

    /// Decrypts `input`, encrypted to `encrypted_to` (public keys, for the
    /// message when no identity matches: exit 2). A damaged or tampered
    /// ciphertext is exit 1; the reader fails on a damaged chunk before
    /// handing out its bytes.
    pub fn decrypt<R: Read>(
        &self,
        input: R,
        encrypted_to: &[String],
        what: &str,
    ) -> Result<age::stream::StreamReader<R>> {
        let decryptor = age::Decryptor::new(input).map_err(|e| damaged(e, what))?;
        let is_scrypt = decryptor.is_scrypt();
        let scrypt;
        let identities: Vec<&dyn age::Identity> = if decryptor.is_scrypt() {
            let Some(passphrase) = &self.passphrase else {
                return Err(no_match(encrypted_to, what));
            };
            scrypt = age::scrypt::Identity::new(passphrase.clone());
            vec![&scrypt as &dyn age::Identity]
        } else {
            self.list.iter().map(|i| i.as_ref()).collect()
        };
        decryptor
            .decrypt(identities.into_iter())
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys | age::DecryptError::KeyDecryptionFailed => {
                    no_match(encrypted_to, what)
                }
                // A wrong passphrase fails to open scrypt's stanza: that is
                // the key's fault, not the object's.
                age::DecryptError::DecryptionFailed if is_scrypt => no_match(encrypted_to, what),
                age::DecryptError::ExcessiveWork { .. } => fail(
                    Exit::Usage,
                    format!(
                        "{what}: its passphrase's scrypt work factor is beyond what is accepted"
                    ),
                ),
                other => damaged(other, what),
            })
    }
}

/// Runs `produce` (a download writing the ciphertext) on a thread, the
/// decryption on another, and copies the plaintext into `out` on this one,
/// through two pipes: the restore stream is push-based and age decrypts
/// from a reader. With decryption off this thread, it no longer shares a
/// core with decompression, hashing and the write (measured: a 2 GB
/// restore with `-i` took 1.10–1.15× the plain one when it did). No copy
/// touches the disk; memory is the pipes' and age's 64 KiB chunk.
///
/// Errors, the cause first: a failed download (not merely the broken pipe
/// a failed decryption left it), then a failed decryption (a tampered
/// chunk: exit 1, and no byte of it reaches `out`), then the write.
pub fn decrypt_while<T: Send>(
    identities: &Identities,
    encrypted_to: &[String],
    what: &str,
    out: &mut dyn Write,
    produce: impl FnOnce(&mut dyn Write) -> Result<T> + Send,
) -> Result<T> {
    let (reader, mut writer) = std::io::pipe().context("creating a pipe")?;
    let (plain_reader, mut plain_writer) = std::io::pipe().context("creating a pipe")?;
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let result = produce(&mut writer);
            drop(writer);
            result
        });
        // The header is read here: a wrong key fails before any thread
        // decrypts anything.
        let decrypted = identities
            .decrypt(reader, encrypted_to, what)
            .map(|mut plain| {
                scope.spawn(move || {
                    let copied = std::io::copy(&mut plain, &mut plain_writer);
                    drop(plain_writer);
                    copied
                })
            });
        let written = match &decrypted {
            Ok(_) => std::io::copy(&mut { plain_reader }, out)
                .map(|_| ())
                .map_err(|e| anyhow::Error::new(e).context("writing decrypted data")),
            Err(_) => {
                drop(plain_reader);
                Ok(())
            }
        };
        let decrypted = decrypted.and_then(|thread| {
            thread
                .join()
                .expect("the decryption thread does not panic")
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        fail(
                            Exit::Failed,
                            format!("{what}: damaged or tampered ciphertext ({e})"),
                        )
                    } else {
                        anyhow::Error::new(e).context("decrypting")
                    }
                })
        });
        // Whatever happened, the producer must not block on a full pipe:
        // the reader end is gone once the decryption is done with it.
        let produced = producer.join().expect("the download thread does not panic");
        let quiet = |e: &anyhow::Error| crate::exit::is_broken_pipe(e);
        match (produced, decrypted, written) {
            (Err(p), _, _) if !quiet(&p) => Err(p),
            (_, Err(d), _) if !quiet(&d) => Err(d),
            (_, _, Err(w)) => Err(w),
            (Err(p), _, _) => Err(p),
            (_, Err(d), _) => Err(d),
            (Ok(value), Ok(_), Ok(())) => Ok(value),
        }
    })
}

/// The first line of every age file.
pub const MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// True when the file at `path` begins like an age file.
pub fn is_age_file(path: &Path) -> Result<bool> {
    let mut head = [0u8; MAGIC.len()];
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(&head[..got] == MAGIC)
}

/// True for a mode that lets group or others read.
pub fn loose_permissions(mode: u32) -> bool {
    mode & 0o044 != 0
}

fn no_match(encrypted_to: &[String], what: &str) -> anyhow::Error {
    fail(
        Exit::Usage,
        format!(
            "{what}: no identity given can decrypt it; it was encrypted to {}",
            if encrypted_to.is_empty() {
                "recipients its manifest does not name".to_string()
            } else {
                encrypted_to.join(", ")
            }
        ),
    )
}

fn damaged(e: age::DecryptError, what: &str) -> anyhow::Error {
    fail(
        Exit::Failed,
        format!("{what}: damaged or tampered ciphertext ({e})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn keypair() -> (age::x25519::Identity, String) {
        let id = age::x25519::Identity::generate();
        let public = id.to_public().to_string();
        (id, public)
    }

    fn encrypt(r: &Recipients, data: &[u8]) -> Vec<u8> {
        let mut w = r.encrypt(Vec::new()).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn identity_file(dir: &Path, id: &age::x25519::Identity, mode: u32) -> std::path::PathBuf {
        let path = dir.join("key.txt");
        std::fs::write(
            &path,
            format!("# a key\n{}\n", id.to_string().expose_secret()),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn keys_round_trip_and_the_wrong_key_names_the_recipients() {
        let dir = tempfile::tempdir().unwrap();
        let (id, public) = keypair();
        let (_, other) = keypair();
        let mut r = Recipients::new();
        r.add_key(&public, "--recipient").unwrap();
        r.add_key(&other, "--recipient").unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let sealed = encrypt(&r, &data);
        assert!(sealed.starts_with(b"age-encryption.org/v1"));

        let mut ids = Identities::new();
        assert_eq!(
            ids.add_file(&identity_file(dir.path(), &id, 0o600))
                .unwrap(),
            None
        );
        let mut plain = Vec::new();
        ids.decrypt(&sealed[..], &r.public(), "obj")
            .unwrap()
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, data);

        let (stranger, _) = keypair();
        let mut wrong = Identities::new();
        let sub = dir.path().join("wrong");
        std::fs::create_dir(&sub).unwrap();
        let warned = wrong
            .add_file(&identity_file(&sub, &stranger, 0o644))
            .unwrap();
        assert!(warned.unwrap().contains("chmod 600"));
        let err = wrong
            .decrypt(&sealed[..], &r.public(), "obj")
            .err()
            .unwrap();
        assert_eq!(crate::exit::exit_of(&err), Exit::Usage);
        let text = format!("{err}");
        assert!(text.contains(&public) && text.contains(&other), "{text}");
        assert!(
            !text.contains("AGE-SECRET-KEY"),
            "no secret in a message: {text}"
        );
    }

    #[test]
    fn tampering_is_caught_before_the_bytes_are_used() {
        let (id, public) = keypair();
        let mut r = Recipients::new();
        r.add_key(&public, "test").unwrap();
        let data = vec![7u8; 100_000];
        let mut sealed = encrypt(&r, &data);
        let at = sealed.len() - 10;
        sealed[at] ^= 1;
        let mut ids = Identities::new();
        ids.list.push(Box::new(id));
        let mut out = Vec::new();
        let err = ids
            .decrypt(&sealed[..], &r.public(), "obj")
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(
            out.len() < data.len(),
            "the damaged chunk is never handed out"
        );
    }

    #[test]
    fn a_passphrase_round_trips_and_names_no_key() {
        let mut r = Recipients::new();
        r.set_passphrase(SecretString::from("correct horse".to_string()));
        r.set_work_factor(2);
        assert_eq!(r.public(), ["scrypt"]);
        let sealed = encrypt(&r, b"rows");
        let mut ids = Identities::new();
        ids.set_passphrase(SecretString::from("correct horse".to_string()));
        let mut plain = Vec::new();
        ids.decrypt(&sealed[..], &r.public(), "obj")
            .unwrap()
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, b"rows");
        let err = Identities::new()
            .decrypt(&sealed[..], &r.public(), "obj")
            .err()
            .unwrap();
        assert_eq!(crate::exit::exit_of(&err), Exit::Usage);
        let (_, public) = keypair();
        r.add_key(&public, "test").unwrap();
        assert!(r.encrypt(Vec::new()).is_err(), "age does not mix the two");
    }

    #[test]
    fn decrypting_a_pushed_stream() {
        let (id, public) = keypair();
        let mut r = Recipients::new();
        r.add_key(&public, "test").unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let sealed = encrypt(&r, &data);
        let mut ids = Identities::new();
        ids.list.push(Box::new(id));
        let mut out = Vec::new();
        let n = decrypt_while(&ids, &r.public(), "obj", &mut out, |w| {
            for piece in sealed.chunks(7777) {
                w.write_all(piece)?;
            }
            Ok(sealed.len())
        })
        .unwrap();
        assert_eq!((n, out), (sealed.len(), data.clone()));

        // A download that fails half-way reports its own error.
        let mut out = Vec::new();
        let err = decrypt_while(&ids, &r.public(), "obj", &mut out, |w| {
            w.write_all(&sealed[..sealed.len() / 2])?;
            Err::<(), _>(anyhow::anyhow!("connection reset"))
        })
        .unwrap_err();
        assert_eq!(format!("{err}"), "connection reset");

        // A tampered byte: exit 1, never the whole plaintext.
        let mut bad = sealed.clone();
        let at = bad.len() / 2;
        bad[at] ^= 1;
        let mut out = Vec::new();
        let err = decrypt_while(&ids, &r.public(), "obj", &mut out, |w| {
            w.write_all(&bad)?;
            Ok(())
        })
        .unwrap_err();
        assert_eq!(crate::exit::exit_of(&err), Exit::Failed, "{err}");
        assert!(format!("{err}").contains("tampered"), "{err}");
        assert!(out.len() < data.len());
    }

    #[test]
    fn recipients_files_and_bad_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (_, a) = keypair();
        let (_, b) = keypair();
        let file = dir.path().join("recipients.txt");
        std::fs::write(&file, format!("# ops\n{a}\n\n{b}\n")).unwrap();
        let mut r = Recipients::new();
        r.add_file(&file).unwrap();
        assert_eq!(r.public(), [a, b]);
        std::fs::write(&file, "# nothing\n").unwrap();
        assert!(Recipients::new().add_file(&file).is_err());
        std::fs::write(&file, "ssh-ed25519 AAAA\n").unwrap();
        let err = Recipients::new().add_file(&file).unwrap_err();
        assert!(format!("{err}").contains("line 1"), "{err}");
        assert!(
            Recipients::new()
                .add_key("age1nope", "--recipient")
                .is_err()
        );
        assert!(loose_permissions(0o640) && !loose_permissions(0o600));
    }
}
