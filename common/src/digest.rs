//! Streaming SHA-256: hash bytes as they pass through a reader or writer.
//!
//! Snapshots, uploads and restores are checked end to end without reading
//! any file twice: the hash is computed on the same pass that compresses,
//! uploads or decompresses the data.

use anyhow::{Context, Result};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::path::Path;

/// The SHA-256 (lowercase hex) and length of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Number of bytes hashed.
    pub bytes: u64,
}

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True for a SHA-256 as the contract writes it: 64 lowercase hex digits.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A SHA-256 written as 64 hex digits, as its 32 bytes.
pub fn sha256_bytes(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The SHA-256 of a byte string, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A writer that hashes everything written through it.
pub struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> HashWriter<W> {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The inner writer, for callers that must reach it mid-stream.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Ends hashing, returning the inner writer and the digest.
    pub fn finish(self) -> (W, Digest) {
        let digest = Digest {
            sha256: hex(&self.hasher.finalize()),
            bytes: self.bytes,
        };
        (self.inner, digest)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes everything read through it.
pub struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> HashReader<R> {
        HashReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Ends hashing and returns the digest of what was read.
    pub fn finish(self) -> Digest {
        Digest {
            sha256: hex(&self.hasher.finalize()),
            bytes: self.bytes,
        }
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// SHA-256 on another thread: the caller hands over bytes in large
/// pieces and goes on reading while they are hashed, so reading a
/// database and hashing it take the time of the slower, not of both.
/// Memory is bounded: at most [`HashThread::DEPTH`] pieces in flight.
pub struct HashThread {
    buf: Vec<u8>,
    to_hasher: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    worker: Option<std::thread::JoinHandle<Digest>>,
}

impl HashThread {
    /// Bytes handed over at once.
    pub const PIECE: usize = 1 << 20;
    /// Pieces queued at most.
    pub const DEPTH: usize = 4;

    /// Starts the hashing thread.
    pub fn start() -> HashThread {
        let (to_hasher, work) = std::sync::mpsc::sync_channel::<Vec<u8>>(Self::DEPTH);
        let (give_back, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(Self::DEPTH + 2);
        let worker = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            let mut bytes = 0u64;
            for mut piece in work {
                hasher.update(&piece);
                bytes += piece.len() as u64;
                piece.clear();
                let _ = give_back.try_send(piece);
            }
            Digest {
                sha256: hex(&hasher.finalize()),
                bytes,
            }
        });
        HashThread {
            buf: Vec::with_capacity(Self::PIECE),
            to_hasher: Some(to_hasher),
            spare,
            worker: Some(worker),
        }
    }

    /// Hashes `data` (in order with everything before it).
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = Self::PIECE - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == Self::PIECE {
                self.hand_over();
            }
        }
    }

    fn hand_over(&mut self) {
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(Self::PIECE));
        let full = std::mem::replace(&mut self.buf, next);
        if let Some(tx) = &self.to_hasher {
            // The worker only stops when the sender is dropped.
            let _ = tx.send(full);
        }
    }

    /// Waits for the thread and returns the digest of everything given.
    pub fn finish(mut self) -> Digest {
        if !self.buf.is_empty() {
            self.hand_over();
        }
        drop(self.to_hasher.take());
        self.worker
            .take()
            .expect("finished once")
            .join()
            .expect("the hashing thread does not panic")
    }
}

/// Hashes a whole file.
pub fn file_digest(path: &Path) -> Result<Digest> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = HashReader::new(file);
    std::io::copy(&mut reader, &mut std::io::sink())
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(reader.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn writer_and_reader_agree_with_known_vector() {
        let mut w = HashWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (inner, d) = w.finish();
        assert_eq!(inner, b"abc");
        assert_eq!(
            d,
            Digest {
                sha256: ABC.into(),
                bytes: 3
            }
        );
        let mut t = HashThread::start();
        t.update(b"a");
        t.update(b"bc");
        assert_eq!(t.finish().sha256, ABC);
        let big: Vec<u8> = (0..3 * HashThread::PIECE + 17).map(|i| i as u8).collect();
        let mut t = HashThread::start();
        for piece in big.chunks(4096 + 3) {
            t.update(piece);
        }
        assert_eq!(t.finish().sha256, sha256_hex(&big));
        let mut r = HashReader::new(&b"abc"[..]);
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        assert_eq!(r.finish().sha256, ABC);
    }
}
