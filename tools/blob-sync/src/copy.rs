//! Copying one file between the sides while it streams: as it is, sealed
//! with age on its way into the destination, or opened on its way out of
//! an encrypted tree. No copy of the plaintext or of the ciphertext is
//! made anywhere but in the destination's own temporary file, and what
//! reaches a local path was checked before it is renamed into place.

use crate::side::{Dir, Side};
use crate::tree::{Entry, Stored, from_nanos, nanos};
use anyhow::{Context, Result};
use sqlkeep_common::atomic::AtomicFile;
use sqlkeep_common::confine;
use sqlkeep_common::crypt::stream::EncryptingReader;
use sqlkeep_common::crypt::{Identities, Recipients, decrypt_while};
use sqlkeep_common::digest::{Digest, HashReader, HashWriter};
use sqlkeep_common::exit::{Exit, fail};
use sqlkeep_common::key::Key;
use sqlkeep_common::regular::open_regular;
use sqlkeep_common::store::Store;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// Mode of restored files, as most files in a Rails app's storage are.
const FILE_MODE: u32 = 0o644;

/// What a copy does to the bytes.
#[derive(Clone, Copy)]
pub enum Mode<'a> {
    /// Copies them as they are.
    Plain,
    /// Encrypts them to these recipients.
    Seal(&'a Recipients),
    /// Decrypts them; the source says they were encrypted to these.
    Open(&'a Identities, &'a [String]),
}

/// A copy's outcome: the destination's new entry, or a downloaded file
/// still to be made durable.
pub enum Copied {
    /// Stored; the destination's new entry.
    Done(Entry),
    /// Written and checked, not yet fsynced or renamed: [`Landing::land`]
    /// finishes it.
    Landing(Landing),
}

/// A downloaded file, complete and checked in its temporary file. The
/// disk's part of a restore (modification time, fsync, rename, the
/// directory's fsync) is done by [`Landing::land`], on another thread,
/// while the worker already fetches the next file: over a distant link a
/// worker otherwise leaves its connection idle for every fsync (about 8 ms
/// a file here, a sixth of a 50 ms round trip).
pub struct Landing {
    dest: PathBuf,
    file: AtomicFile,
    plain: Digest,
    stored: Option<Digest>,
    mtime_ns: Option<i64>,
}

impl Landing {
    /// Sets the modification time, fsyncs and renames the file into place
    /// (and fsyncs its directory); returns the destination's new entry.
    /// A failure leaves whatever was at the path before.
    pub fn land(self) -> Result<Entry> {
        let Landing {
            dest,
            mut file,
            plain,
            stored,
            mtime_ns,
        } = self;
        if let Some(ns) = mtime_ns {
            file.file()
                .set_modified(from_nanos(ns))
                .context("setting modification time")?;
        }
        file.commit()?;
        Ok(Entry {
            bytes: plain.bytes,
            mtime_ns: mtime_ns.or_else(|| {
                std::fs::metadata(&dest)
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .map(nanos)
            }),
            sha256: Some(plain.sha256),
            stored: stored.map(stored_of),
        })
    }
}

/// Copies one file from `src` to `dst`, checking what it can: an upload
/// is done when this returns, a download is left to [`Landing::land`].
pub fn copy(src: &Side, dst: &Side, rel: &Key, entry: &Entry, mode: Mode) -> Result<Copied> {
    match (src, dst) {
        (Side::Dir(from), Side::Remote(store)) => {
            upload(from, store.as_ref(), rel, mode).map(Copied::Done)
        }
        (_, Side::Dir(to)) => download(src, to, rel, entry, mode).map(Copied::Landing),
        (Side::Remote(_), Side::Remote(_)) => {
            Err(fail(Exit::Usage, "one side must be a local directory"))
        }
    }
}

/// A local file into a remote, sealed on the way when asked: the age
/// file's length is known before its first byte, as an upload needs.
fn upload(from: &Dir, store: &dyn Store, rel: &Key, mode: Mode) -> Result<Entry> {
    let path = from.file(rel)?;
    // A regular file only: a FIFO or device swapped in since the walk is
    // refused, not read forever.
    let (mut file, len) = open_regular(&path)?;
    let before = file.metadata().context("reading metadata")?;
    let (plain, stored) = match mode {
        Mode::Plain => (store.put(rel, &mut file, len, None)?, None),
        Mode::Seal(recipients) => {
            let mut sealed = EncryptingReader::new(recipients, HashReader::new(file), len)?;
            let sealed_len = sealed.len();
            let stored = store.put(rel, &mut sealed, sealed_len, None)?;
            (sealed.into_inner().finish(), Some(stored))
        }
        Mode::Open(..) => {
            return Err(fail(
                Exit::Usage,
                "an encrypted tree is restored into a local directory only",
            ));
        }
    };
    let after = std::fs::metadata(&path).context("reading metadata")?;
    if after.modified().ok() != before.modified().ok() || plain.bytes != len {
        return Err(fail(
            Exit::Failed,
            "changed while it was uploaded; it will be copied next run",
        ));
    }
    Ok(Entry {
        bytes: plain.bytes,
        mtime_ns: before.modified().ok().map(nanos),
        sha256: Some(plain.sha256),
        stored: stored.map(stored_of),
    })
}

/// A file from either side into a local directory: written to a temporary
/// file and checked against the source's entry; [`Landing::land`] then
/// fsyncs and renames it, so a failed copy leaves whatever was at the path
/// before.
fn download(src: &Side, to: &Dir, rel: &Key, entry: &Entry, mode: Mode) -> Result<Landing> {
    let mut out = Lazy {
        to,
        rel,
        file: None,
        failed: None,
    };
    let result = (|| -> Result<(Digest, Option<Digest>)> {
        match mode {
            Mode::Plain => {
                let mut plain = HashWriter::new(&mut out);
                read_from(src, rel, &mut plain)?;
                Ok((plain.finish().1, None))
            }
            Mode::Seal(recipients) => {
                let sealed = recipients.encrypt(HashWriter::new(&mut out))?;
                let mut plain = HashWriter::new(sealed);
                read_from(src, rel, &mut plain)?;
                let (sealed, plain) = plain.finish();
                let (_, stored) = sealed.finish().context("encrypting")?.finish();
                Ok((plain, Some(stored)))
            }
            Mode::Open(ids, encrypted_to) => {
                let mut plain = HashWriter::new(&mut out);
                decrypt_from(src, rel, entry, ids, encrypted_to, &mut plain)?;
                let (_, plain) = plain.finish();
                if plain.bytes != entry.bytes {
                    return Err(fail(
                        Exit::Failed,
                        format!(
                            "decrypted {} bytes, the manifest says {}",
                            plain.bytes, entry.bytes
                        ),
                    ));
                }
                // The destination is plaintext: nothing else is stored.
                Ok((plain, None))
            }
        }
    })();
    let (plain, stored) = result.map_err(|e| out.cause(e))?;
    if let Some(expected) = &entry.sha256
        && *expected != plain.sha256
    {
        return Err(fail(
            Exit::Failed,
            format!(
                "checksum mismatch: got {}, the manifest says {expected}",
                plain.sha256
            ),
        ));
    }
    let (dest, file) = out.finish()?;
    Ok(Landing {
        dest,
        file,
        plain,
        stored,
        mtime_ns: entry.mtime_ns,
    })
}

/// Decrypts the stored file `rel` of `side` into `out`, checking the
/// stored bytes against `entry` when it knows them; returns their digest.
///
/// The download runs to its end even when decryption stops early, so the
/// stored checksum decides what a failure was: a file that is not what
/// its manifest says is damaged (exit 1, whatever age made of it); an
/// intact file that no identity opens is the identity's fault (exit 2).
pub fn decrypt_from(
    side: &Side,
    rel: &Key,
    entry: &Entry,
    ids: &Identities,
    encrypted_to: &[String],
    out: &mut dyn Write,
) -> Result<Digest> {
    // The log line names the file already.
    let what = "stored file";
    decrypt_while(ids, encrypted_to, what, out, |w| {
        let mut stored = HashWriter::new(Drain {
            inner: w,
            gone: false,
        });
        read_from(side, rel, &mut stored)?;
        let (_, digest) = stored.finish();
        if let Some(expected) = &entry.stored
            && (expected.sha256 != digest.sha256 || expected.bytes != digest.bytes)
        {
            return Err(fail(
                Exit::Failed,
                format!(
                    "damaged or tampered: the stored file is {} bytes with SHA-256 {}, \
                     the manifest says {} bytes with {}",
                    digest.bytes, digest.sha256, expected.bytes, expected.sha256
                ),
            ));
        }
        Ok(digest)
    })
}

/// Streams the stored bytes of `rel` from a side into `sink`.
pub fn read_from(side: &Side, rel: &Key, sink: &mut dyn Write) -> Result<()> {
    match side {
        Side::Remote(store) => {
            store.get(rel, sink)?;
        }
        Side::Dir(from) => {
            let path = from.file(rel)?;
            let (mut file, _) = open_regular(&path)?;
            std::io::copy(&mut file, sink)
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}

fn stored_of(d: Digest) -> Stored {
    Stored {
        bytes: d.bytes,
        sha256: d.sha256,
    }
}

/// The destination's temporary file, created at the first byte (or at the
/// end, for an empty file): a restore whose identity cannot decrypt the
/// file creates nothing at all, not even its directories.
struct Lazy<'a> {
    to: &'a Dir,
    rel: &'a Key,
    file: Option<(PathBuf, BufWriter<AtomicFile>)>,
    /// Why creating it failed, which a write can only report as text.
    failed: Option<anyhow::Error>,
}

impl Lazy<'_> {
    fn open(&mut self) -> Result<&mut BufWriter<AtomicFile>> {
        if self.file.is_none() {
            let dest = confine::prepare(self.to, self.rel)?;
            if let Ok(meta) = std::fs::symlink_metadata(&dest)
                && meta.is_dir()
            {
                return Err(fail(
                    Exit::Failed,
                    format!("{} is a directory where a file belongs", dest.display()),
                ));
            }
            let file = AtomicFile::create(&dest, FILE_MODE)?;
            self.file = Some((dest, BufWriter::new(file)));
        }
        Ok(&mut self.file.as_mut().expect("just created").1)
    }

    /// The file, complete and flushed (not yet synced or renamed).
    fn finish(mut self) -> Result<(PathBuf, AtomicFile)> {
        self.open()?;
        let (dest, file) = self.file.take().expect("opened");
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .context("writing")?;
        Ok((dest, file))
    }

    /// The error that ended a copy: creating the file, if that is what a
    /// write failed on (its exit code intact), else `err`.
    fn cause(&mut self, err: anyhow::Error) -> anyhow::Error {
        self.failed.take().unwrap_or(err)
    }
}

impl Write for Lazy<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.open() {
            Ok(file) => file.write(buf),
            Err(e) => {
                let io = std::io::Error::other(format!("{e:#}"));
                self.failed = Some(e);
                Err(io)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some((_, file)) => file.flush(),
            None => Ok(()),
        }
    }
}

/// Passes bytes on until the reader at the other end of the pipe goes
/// away, then swallows the rest, so the download still ends and its
/// checksum is known.
struct Drain<W> {
    inner: W,
    gone: bool,
}

impl<W: Write> Write for Drain<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.gone {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.gone = true;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.gone {
            return Ok(());
        }
        match self.inner.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }
}
