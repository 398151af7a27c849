//! Encryption inside the streams the tools already run: a writer stage
//! (sqlite-snap's sink) and a reader whose length is known before the
//! first byte (an upload must declare it).

use super::Recipients;
use anyhow::Result;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

/// age's payload chunk (the STREAM construction's fixed size).
const CHUNK: u64 = 64 << 10;

/// The tag each chunk gains (ChaCha20-Poly1305).
const TAG: u64 = 16;

/// The size of an age file holding `plain` bytes, after a header (with
/// the payload nonce) of `header` bytes: every chunk gains a tag, and even
/// an empty payload is one (empty) chunk.
pub fn encrypted_len(header: u64, plain: u64) -> u64 {
    header + plain + TAG * plain.div_ceil(CHUNK).max(1)
}

/// A writer stage that encrypts or passes through.
pub enum Seal<W: Write> {
    /// No encryption.
    Plain(W),
    /// age.
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Seal<W> {
    /// Encrypts into `out` when there are recipients.
    pub fn new(recipients: Option<&Recipients>, out: W) -> Result<Seal<W>> {
        Ok(match recipients {
            Some(r) => Seal::Age(r.encrypt(out)?),
            None => Seal::Plain(out),
        })
    }

    /// Ends the age payload (its last chunk) and hands back the writer.
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            Seal::Plain(w) => Ok(w),
            Seal::Age(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for Seal<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Seal::Plain(w) => w.write(buf),
            Seal::Age(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Seal::Plain(w) => w.flush(),
            Seal::Age(w) => w.flush(),
        }
    }
}

/// Where the encryptor's output collects until it is read.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads `inner` (of a known length) as an age file: the ciphertext is
/// made a chunk at a time as it is read, so memory stays at one chunk.
pub struct EncryptingReader<R: Read> {
    inner: R,
    writer: Option<age::stream::StreamWriter<Shared>>,
    out: Shared,
    /// Bytes of `out` already handed out.
    taken: usize,
    chunk: Vec<u8>,
    len: u64,
}

impl<R: Read> EncryptingReader<R> {
    /// Encrypts `inner`, which holds `plain_len` bytes, to `recipients`.
    pub fn new(recipients: &Recipients, inner: R, plain_len: u64) -> Result<EncryptingReader<R>> {
        let out = Shared::default();
        let writer = recipients.encrypt(out.clone())?;
        let header = out.0.lock().expect("not poisoned").len() as u64;
        Ok(EncryptingReader {
            inner,
            writer: Some(writer),
            out,
            taken: 0,
            chunk: vec![0; CHUNK as usize],
            len: encrypted_len(header, plain_len),
        })
    }

    /// The ciphertext's length (if `inner` holds what was said).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true: an age file has at least a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The reader underneath (to learn what it hashed).
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for EncryptingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            {
                let mut out = self.out.0.lock().expect("not poisoned");
                if self.taken < out.len() {
                    let n = buf.len().min(out.len() - self.taken);
                    buf[..n].copy_from_slice(&out[self.taken..self.taken + n]);
                    self.taken += n;
                    if self.taken == out.len() {
                        out.clear();
                        self.taken = 0;
                    }
                    return Ok(n);
                }
            }
            let Some(writer) = self.writer.as_mut() else {
                return Ok(0);
            };
            let n = self.inner.read(&mut self.chunk)?;
            if n == 0 {
                self.writer.take().expect("present").finish()?;
            } else {
                writer.write_all(&self.chunk[..n])?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Identities;
    use super::*;

    #[test]
    fn the_reader_says_its_length_and_decrypts_back() {
        let id = age::x25519::Identity::generate();
        let mut r = Recipients::new();
        r.add_key(&id.to_public().to_string(), "test").unwrap();
        let mut ids = Identities::new();
        ids.list.push(Box::new(id));
        for n in [0usize, 1, 65_535, 65_536, 65_537, 200_000, 3 * 65_536] {
            let data: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
            let mut reader = EncryptingReader::new(&r, &data[..], n as u64).unwrap();
            let said = reader.len();
            let mut sealed = Vec::new();
            // Small reads, to cross chunk edges mid-read.
            let mut piece = [0u8; 1000];
            loop {
                let got = reader.read(&mut piece).unwrap();
                if got == 0 {
                    break;
                }
                sealed.extend_from_slice(&piece[..got]);
            }
            assert_eq!(sealed.len() as u64, said, "length for {n} bytes");
            let mut plain = Vec::new();
            ids.decrypt(&sealed[..], &r.public(), "x")
                .unwrap()
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(plain, data);
        }
    }

    #[test]
    fn the_writer_stage_passes_through_without_recipients() {
        let mut w = Seal::new(None, Vec::new()).unwrap();
        w.write_all(b"plain").unwrap();
        assert_eq!(w.finish().unwrap(), b"plain");
    }
}
