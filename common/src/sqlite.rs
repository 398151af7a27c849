//! Opening SQLite files safely, and telling bad input apart precisely.
//!
//! Before SQLite sees a file, its first 100 bytes are checked here, so an
//! operator gets "empty file, not a database" or "damaged SQLite header:
//! page size 1000 is not a power of two" instead of SQLite's one generic
//! "file is not a database". Paths reach SQLite only as canonical absolute
//! file names (never inside SQL text, never as `file:` URIs), so quotes,
//! spaces and non-ASCII in names are harmless.

use crate::exit::{Exit, fail};
use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The 16 bytes every SQLite database file starts with.
pub const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The default busy timeout: long enough to ride out an application's
/// write transactions, short enough for cron.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The facts the database header states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Page size in bytes.
    pub page_size: u32,
    /// File format write version: 1 rollback journal, 2 WAL.
    pub write_version: u8,
    /// File format read version: 1 rollback journal, 2 WAL.
    pub read_version: u8,
    /// Size of the file on disk.
    pub file_bytes: u64,
    /// The page count the header states, or None when SQLite would not
    /// trust it either: zero, or written by a version that did not keep it
    /// (its change counter and "version-valid-for" number differ).
    pub page_count: Option<u32>,
    /// Pages on the freelist: what a VACUUM or incremental vacuum gives back.
    pub freelist_count: u32,
    /// The auto_vacuum mode as `PRAGMA auto_vacuum` numbers it: 0 none,
    /// 1 full, 2 incremental.
    pub auto_vacuum: u8,
}

impl Header {
    /// True when the database is in WAL mode.
    pub fn is_wal(&self) -> bool {
        self.write_version == 2 || self.read_version == 2
    }
}

/// Reads and checks the header of the file at `path`.
///
/// Errors are one line without the path (the caller names the file): a
/// missing file exits 3, anything else that is not a database exits 1.
pub fn check_file(path: &Path) -> Result<Header> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(Exit::NotFound, "no such file"));
        }
        Err(e) => return Err(e).context("cannot read file metadata"),
    };
    if meta.is_dir() {
        return Err(fail(Exit::Failed, "is a directory, not a database"));
    }
    if !meta.is_file() {
        // A FIFO or device would hang or never end if opened.
        return Err(fail(
            Exit::Failed,
            format!(
                "is {}, not a regular file",
                crate::regular::kind_name(&meta)
            ),
        ));
    }
    if meta.len() == 0 {
        return Err(fail(Exit::Failed, "empty file, not a database"));
    }
    let mut head = [0u8; 100];
    let (mut file, _) = crate::regular::open_regular(path)?;
    let n = crate::compress::read_up_to(&mut file.by_ref(), &mut head)?;
    if n < 16 || &head[..16] != MAGIC {
        let what = if head[..n.min(4)] == crate::compress::ZSTD_MAGIC[..n.min(4)] && n >= 4 {
            "a zstd-compressed file, not a database (decompress it first)"
        } else {
            "not a SQLite database (no SQLite header)"
        };
        return Err(fail(Exit::Failed, what));
    }
    if n < 100 {
        return Err(fail(
            Exit::Failed,
            format!("damaged SQLite header: file is only {n} bytes long"),
        ));
    }
    let mut header = parse_header(&head)?;
    header.file_bytes = meta.len();
    Ok(header)
}

/// Checks the fixed fields of a 100-byte header.
pub fn parse_header(head: &[u8; 100]) -> Result<Header> {
    if &head[..16] != MAGIC {
        return Err(fail(
            Exit::Failed,
            "not a SQLite database (no SQLite header)",
        ));
    }
    let raw = u32::from(u16::from_be_bytes([head[16], head[17]]));
    let page_size = if raw == 1 { 65_536 } else { raw };
    if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(fail(
            Exit::Failed,
            format!(
                "damaged SQLite header: page size {raw} is not a power of two from 512 to 65536"
            ),
        ));
    }
    let (write_version, read_version) = (head[18], head[19]);
    if !matches!(write_version, 1 | 2) || !matches!(read_version, 1 | 2) {
        return Err(fail(
            Exit::Failed,
            format!(
                "damaged SQLite header: file format versions {write_version}/{read_version} are not 1 or 2"
            ),
        ));
    }
    if head[21] != 64 || head[22] != 32 || head[23] != 32 {
        return Err(fail(
            Exit::Failed,
            "damaged SQLite header: payload fractions are not 64/32/32",
        ));
    }
    let be32 = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let stated_pages = be32(28);
    // A non-zero "largest root b-tree page" means auto_vacuum is on; the
    // incremental-vacuum flag then tells its two modes apart.
    let auto_vacuum = match (be32(52), be32(64)) {
        (0, _) => 0,
        (_, 0) => 1,
        _ => 2,
    };
    Ok(Header {
        page_size,
        write_version,
        read_version,
        file_bytes: 0,
        page_count: (stated_pages != 0 && be32(24) == be32(92)).then_some(stated_pages),
        freelist_count: be32(36),
        auto_vacuum,
    })
}

/// The canonical absolute path SQLite is given, so that a relative name
/// starting with `file:` is never taken for a URI.
pub fn canonical(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).context("cannot resolve path")
}

/// Opens a database read-only with a busy timeout. The source of a
/// snapshot or a verification is never opened for writing.
pub fn open_read_only(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let path = canonical(path)?;
    let mut conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .context("cannot open database")?;
    set_busy_timeout(&mut conn, busy_timeout)?;
    Ok(conn)
}

/// The busy timeout of this process's connections, in milliseconds; read
/// by [`poll_busy`], which as a C callback cannot capture it.
static BUSY_TIMEOUT_MS: AtomicU64 = AtomicU64::new(5000);

/// Waits up to `timeout` for a locked database by polling every
/// millisecond.
///
/// SQLite's own busy handler backs off to 100 ms sleeps. In rollback-journal
/// mode a writer that commits back to back holds its PENDING lock most of
/// the time, and a reader that looks only every 100 ms keeps missing the
/// gaps until it times out with "database is locked" (measured here: 3 of
/// 15 snapshots failed under a writer doing 3,000 commits a second). A
/// 1 ms poll costs one `fcntl` per try and finds the gaps.
pub fn set_busy_timeout(conn: &mut Connection, timeout: Duration) -> Result<()> {
    BUSY_TIMEOUT_MS.store(timeout.as_millis() as u64, Ordering::Relaxed);
    conn.busy_handler(Some(poll_busy))
        .context("setting busy handler")
}

/// The busy handler: sleep 1 ms and try again, until the timeout.
fn poll_busy(tries: i32) -> bool {
    if tries as u64 >= BUSY_TIMEOUT_MS.load(Ordering::Relaxed) {
        return false;
    }
    std::thread::sleep(Duration::from_millis(1));
    true
}

/// The path of a database's companion file: `db` with `suffix` (`-wal`,
/// `-shm`, `-journal`) appended to its name.
pub fn companion(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// SQLite's extended result code for "a hot journal must be rolled back,
/// and this connection is read-only" (SQLITE_READONLY_ROLLBACK).
const READONLY_ROLLBACK: i32 = 776;

/// Rewords the SQLite errors an operator acts on, wherever they surface:
/// a hot journal in the database at `path` (issue 10: it read "attempt to
/// write a readonly database: Error code 776") and a full disk where the
/// operation writes (`written`). Other errors pass unchanged.
pub fn explain(err: anyhow::Error, path: &Path, written: &Path) -> anyhow::Error {
    for cause in err.chain() {
        if let Some(rusqlite::Error::SqliteFailure(e, _)) = cause.downcast_ref::<rusqlite::Error>()
        {
            if e.extended_code == READONLY_ROLLBACK {
                return fail(
                    Exit::Failed,
                    format!(
                        "{} has a hot journal: open it once with the application (or sqlite3) to roll it back",
                        path.display()
                    ),
                );
            }
            if e.code == rusqlite::ErrorCode::DiskFull {
                return crate::exit::no_space(written);
            }
        }
    }
    err
}

/// Quotes an identifier for SQL text (`"my ""odd"" table"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The version of the SQLite library linked in.
pub fn library_version() -> &'static str {
    rusqlite::version()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_with(page: [u8; 2]) -> [u8; 100] {
        let mut h = [0u8; 100];
        h[..16].copy_from_slice(MAGIC);
        h[16..18].copy_from_slice(&page);
        h[18] = 1;
        h[19] = 1;
        h[21] = 64;
        h[22] = 32;
        h[23] = 32;
        h
    }

    #[test]
    fn page_sizes() {
        assert_eq!(
            parse_header(&header_with([0x10, 0])).unwrap().page_size,
            4096
        );
        assert_eq!(
            parse_header(&header_with([0, 1])).unwrap().page_size,
            65_536
        );
        let err = parse_header(&header_with([0x03, 0xe8])).unwrap_err();
        assert!(format!("{err}").contains("page size 1000"), "{err}");
    }

    /// The header's page facts are SQLite's own, in each auto_vacuum mode.
    #[test]
    fn header_facts_match_the_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        for (mode, number) in [("NONE", 0), ("FULL", 1), ("INCREMENTAL", 2)] {
            let path = dir.path().join(format!("{mode}.sqlite3"));
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "PRAGMA auto_vacuum = {mode}; CREATE TABLE t (v BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
                 INSERT INTO t SELECT randomblob(3000) FROM n;
                 DELETE FROM t WHERE rowid % 2 = 0;"
            ))
            .unwrap();
            let pragma = |name: &str| -> i64 {
                conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                    .unwrap()
            };
            let header = check_file(&path).unwrap();
            assert_eq!(i64::from(header.auto_vacuum), number, "{mode}");
            assert_eq!(pragma("auto_vacuum"), number, "{mode}");
            assert_eq!(header.page_count.map(i64::from), Some(pragma("page_count")));
            assert_eq!(i64::from(header.freelist_count), pragma("freelist_count"));
            if number != 1 {
                assert!(header.freelist_count > 50, "{mode}: {header:?}");
            }
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
    }
}
