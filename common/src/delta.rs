//! The delta format: the pages of a database state that differ from an
//! earlier state, and the new page count.
//!
//! Before compression (a delta object is one zstd frame), all integers
//! little-endian:
//!
//! ```text
//! "SQLKDLT1"                       8 bytes
//! page_size        u32             of both states
//! page_count       u32             of the new state
//! base_raw_sha256  32 bytes        the state this delta applies to
//! { pgno u32 (1-based), page [page_size] }*   ascending page numbers
//! 0u32                             end of pages
//! changed          u32             how many pages came before
//! raw_sha256       32 bytes        the whole new state
//! ```
//!
//! To apply: write each page at `(pgno - 1) * page_size`, then cut or
//! extend the file to `page_count * page_size`. Everything read is checked
//! as it is read (the base it applies to and the page size before any
//! page is written; page numbers within the new count and ascending; the
//! counts in the trailer), so a damaged or hostile delta fails with a
//! message and never writes outside the new state's length. Its pages
//! are written as they come, so the file being rebuilt is only trusted
//! once the whole state's SHA-256 matches (the caller's check).

use crate::exit::{Exit, fail};
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

/// The first bytes of every delta.
pub const MAGIC: &[u8; 8] = b"SQLKDLT1";

/// The most pages a database can have (SQLite's own limit).
const MAX_PAGE_COUNT: u32 = u32::MAX - 1;

/// A delta's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Page size of both states.
    pub page_size: u32,
    /// Pages in the new state.
    pub page_count: u32,
    /// SHA-256 of the state the delta applies to.
    pub base_raw_sha256: [u8; 32],
}

/// Writes a delta into `out` (a compressor, usually).
pub struct Writer<W: Write> {
    out: W,
    page_size: u32,
    last: u32,
    changed: u32,
}

impl<W: Write> Writer<W> {
    /// Starts a delta.
    pub fn new(mut out: W, header: &Header) -> std::io::Result<Writer<W>> {
        out.write_all(MAGIC)?;
        out.write_all(&header.page_size.to_le_bytes())?;
        out.write_all(&header.page_count.to_le_bytes())?;
        out.write_all(&header.base_raw_sha256)?;
        Ok(Writer {
            out,
            page_size: header.page_size,
            last: 0,
            changed: 0,
        })
    }

    /// Adds one changed page; page numbers must ascend.
    pub fn page(&mut self, pgno: u32, data: &[u8]) -> std::io::Result<()> {
        assert!(pgno > self.last && data.len() == self.page_size as usize);
        self.out.write_all(&pgno.to_le_bytes())?;
        self.out.write_all(data)?;
        self.last = pgno;
        self.changed += 1;
        Ok(())
    }

    /// Pages added so far.
    pub fn changed(&self) -> u32 {
        self.changed
    }

    /// Ends the delta with the new state's SHA-256 and returns the writer.
    pub fn finish(mut self, raw_sha256: &[u8; 32]) -> std::io::Result<W> {
        self.out.write_all(&0u32.to_le_bytes())?;
        self.out.write_all(&self.changed.to_le_bytes())?;
        self.out.write_all(raw_sha256)?;
        Ok(self.out)
    }
}

/// What applying a delta did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The header read.
    pub header: Header,
    /// Pages written.
    pub changed: u32,
    /// The new state's SHA-256, as the delta states it.
    pub raw_sha256: [u8; 32],
}

/// Applies the (decompressed) delta read from `input` to `file`, which
/// holds the state of page size `page_size` and SHA-256 `base` it applies
/// to: a delta of another base is refused before a page is written.
/// `what` names the delta in errors.
pub fn apply(
    input: &mut dyn Read,
    file: &File,
    page_size: u32,
    base: &[u8; 32],
    what: &str,
) -> Result<Applied> {
    let damaged = |why: String| fail(Exit::Failed, format!("damaged delta {what}: {why}"));
    let mut magic = [0u8; 8];
    read_exact(input, &mut magic, what)?;
    if &magic != MAGIC {
        return Err(damaged("it does not start with SQLKDLT1".into()));
    }
    let header = Header {
        page_size: read_u32(input, what)?,
        page_count: read_u32(input, what)?,
        base_raw_sha256: read_32(input, what)?,
    };
    if !is_page_size(header.page_size) {
        return Err(damaged(format!("page size {}", header.page_size)));
    }
    if header.page_size != page_size {
        return Err(damaged(format!(
            "its page size is {} but the state it applies to has {page_size}",
            header.page_size
        )));
    }
    if header.base_raw_sha256 != *base {
        return Err(damaged(
            "it applies to another state than the one before it".into(),
        ));
    }
    if header.page_count > MAX_PAGE_COUNT {
        return Err(damaged(format!("page count {}", header.page_count)));
    }
    let size = header.page_size as usize;
    let mut page = vec![0u8; size];
    let mut last = 0u32;
    let mut changed = 0u32;
    loop {
        let pgno = read_u32(input, what)?;
        if pgno == 0 {
            break;
        }
        if pgno <= last || pgno > header.page_count {
            return Err(damaged(format!(
                "page {pgno} after page {last} in a state of {} pages",
                header.page_count
            )));
        }
        read_exact(input, &mut page, what)?;
        file.write_all_at(&page, u64::from(pgno - 1) * u64::from(header.page_size))
            .context("writing the rebuilt database")?;
        last = pgno;
        changed += 1;
    }
    let stated = read_u32(input, what)?;
    if stated != changed {
        return Err(damaged(format!(
            "{changed} pages but its trailer says {stated}"
        )));
    }
    let raw_sha256 = read_32(input, what)?;
    let mut extra = [0u8; 1];
    if input.read(&mut extra).context("reading delta")? != 0 {
        return Err(damaged("bytes after its trailer".into()));
    }
    file.set_len(u64::from(header.page_count) * u64::from(header.page_size))
        .context("sizing the rebuilt database")?;
    Ok(Applied {
        header,
        changed,
        raw_sha256,
    })
}

/// A page size SQLite allows: a power of two from 512 to 65536.
pub fn is_page_size(size: u32) -> bool {
    (512..=65536).contains(&size) && size.is_power_of_two()
}

fn read_exact(input: &mut dyn Read, buf: &mut [u8], what: &str) -> Result<()> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            fail(Exit::Failed, format!("damaged delta {what}: it ends early"))
        } else {
            anyhow::Error::new(e).context(format!("reading delta {what}"))
        }
    })
}

fn read_u32(input: &mut dyn Read, what: &str) -> Result<u32> {
    let mut b = [0u8; 4];
    read_exact(input, &mut b, what)?;
    Ok(u32::from_le_bytes(b))
}

fn read_32(input: &mut dyn Read, what: &str) -> Result<[u8; 32]> {
    let mut b = [0u8; 32];
    read_exact(input, &mut b, what)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(pages: &[(u32, u8)], page_count: u32) -> Vec<u8> {
        let header = Header {
            page_size: 512,
            page_count,
            base_raw_sha256: [7; 32],
        };
        let mut w = Writer::new(Vec::new(), &header).unwrap();
        for (pgno, fill) in pages {
            w.page(*pgno, &[*fill; 512]).unwrap();
        }
        w.finish(&[9; 32]).unwrap()
    }

    #[test]
    fn applies_pages_and_resizes() {
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(&[1u8; 512 * 4], 0).unwrap();
        let bytes = delta(&[(2, 5), (5, 6)], 5);
        let applied = apply(&mut &bytes[..], &file, 512, &[7; 32], "d").unwrap();
        assert_eq!(applied.changed, 2);
        assert_eq!(applied.raw_sha256, [9; 32]);
        let mut all = vec![0u8; 512 * 5];
        file.read_exact_at(&mut all, 0).unwrap();
        assert!(all[..512].iter().all(|&b| b == 1));
        assert!(all[512..1024].iter().all(|&b| b == 5));
        assert!(all[2048..].iter().all(|&b| b == 6));
        let shrink = delta(&[], 1);
        apply(&mut &shrink[..], &file, 512, &[7; 32], "d").unwrap();
        assert_eq!(file.metadata().unwrap().len(), 512);
    }

    #[test]
    fn hostile_deltas_write_nothing_outside() {
        let file = tempfile::tempfile().unwrap();
        let mut beyond = delta(&[(1, 1)], 1);
        beyond[8 + 4..8 + 8].copy_from_slice(&0u32.to_le_bytes()); // page_count 0
        assert!(apply(&mut &beyond[..], &file, 512, &[7; 32], "d").is_err());
        assert_eq!(file.metadata().unwrap().len(), 0);
        let mut order = delta(&[(1, 1), (2, 2)], 3);
        let second = 8 + 4 + 4 + 32 + 4 + 512;
        order[second..second + 4].copy_from_slice(&1u32.to_le_bytes());
        assert!(apply(&mut &order[..], &file, 512, &[7; 32], "d").is_err());
        let good = delta(&[(1, 1)], 1);
        assert!(apply(&mut &good[..good.len() - 1], &file, 512, &[7; 32], "d").is_err());
        assert!(apply(&mut &good[..], &file, 1024, &[7; 32], "d").is_err());
        assert!(
            apply(&mut &good[..], &file, 512, &[8; 32], "d").is_err(),
            "another base"
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(apply(&mut &trailing[..], &file, 512, &[7; 32], "d").is_err());
    }
}
