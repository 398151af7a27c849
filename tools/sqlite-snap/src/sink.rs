//! Where a snapshot's bytes go: hashed raw, compressed, encrypted when
//! there are recipients, hashed again, written to a temporary file that
//! becomes the snapshot only on commit. No plaintext copy is ever made.
//!
//! Both copy methods write the uncompressed database into a [`Sink`]; the
//! two SHA-256 digests (of the database and of the stored file) are
//! computed on that single pass.

use anyhow::{Context, Result};
use sqlkeep_common::atomic::AtomicFile;
use sqlkeep_common::compress;
use sqlkeep_common::crypt::Recipients;
use sqlkeep_common::crypt::stream::Seal;
use sqlkeep_common::digest::{Digest, HashWriter};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Buffer between the compressor and the file: large enough that writes
/// reach the kernel in big pieces, small next to the memory budget.
const WRITE_BUFFER: usize = 1 << 20;

/// Compression settings for a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Compression {
    /// zstd level, or None to store the database uncompressed.
    pub level: Option<i32>,
    /// zstd worker threads.
    pub threads: u32,
}

/// The digests of a committed snapshot.
#[derive(Debug, Clone)]
pub struct Written {
    /// Of the uncompressed database.
    pub raw: Digest,
    /// Of the file as stored.
    pub stored: Digest,
}

type FileOut = BufWriter<AtomicFile>;

/// The stage after the raw hash: a compressor (then age, when asked) or
/// the file itself.
enum Stage {
    Zstd(Box<compress::Encoder<Seal<HashWriter<FileOut>>>>),
    Plain(FileOut),
}

impl Write for Stage {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stage::Zstd(enc) => enc.write(buf),
            Stage::Plain(out) => out.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stage::Zstd(enc) => enc.flush(),
            Stage::Plain(out) => out.flush(),
        }
    }
}

/// A snapshot being written.
pub struct Sink {
    raw: HashWriter<Stage>,
}

impl Sink {
    /// Starts a snapshot file at `dest` (mode 0600, invisible until
    /// commit), encrypted to `recipients` when given (compressed only).
    pub fn create(
        dest: &Path,
        compression: Compression,
        recipients: Option<&Recipients>,
    ) -> Result<Sink> {
        let file = AtomicFile::create(dest, 0o600)?;
        let out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let stage = match compression.level {
            Some(level) => Stage::Zstd(Box::new(compress::encoder(
                Seal::new(recipients, HashWriter::new(out))?,
                level,
                compression.threads,
            )?)),
            None if recipients.is_some() => {
                return Err(anyhow::anyhow!("an encrypted snapshot is compressed"));
            }
            None => Stage::Plain(out),
        };
        Ok(Sink {
            raw: HashWriter::new(stage),
        })
    }

    /// Declares the database's size before any byte is written, so the
    /// zstd frame records its content size (`zstd -l` shows it) and zstd
    /// fails loudly if the copy comes out a different length.
    pub fn pledge(&mut self, raw_bytes: u64) -> Result<()> {
        if let Stage::Zstd(enc) = self.raw.get_mut() {
            enc.set_pledged_src_size(Some(raw_bytes))
                .context("configuring zstd content size")?;
        }
        Ok(())
    }

    /// Finishes compression, fsyncs, and renames the snapshot into place
    /// under the name `name_for` gives its digests (a snapshot's name
    /// carries its checksum, known only now).
    pub fn commit(
        self,
        name_for: impl FnOnce(&Written) -> std::path::PathBuf,
    ) -> Result<(Written, std::path::PathBuf)> {
        let (stage, raw) = self.raw.finish();
        let (out, stored) = match stage {
            Stage::Zstd(enc) => {
                let sealed = enc.finish().context("finishing zstd compression")?;
                let hashed = sealed.finish().context("finishing encryption")?;
                hashed.finish()
            }
            Stage::Plain(out) => (out, raw.clone()),
        };
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .context("writing snapshot")?;
        let written = Written { raw, stored };
        let dest = name_for(&written);
        file.commit_as(&dest)?;
        Ok((written, dest))
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.raw.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.raw.flush()
    }
}
