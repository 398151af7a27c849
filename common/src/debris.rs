//! Reclaiming the temporary files of killed runs.
//!
//! A run that is killed (SIGKILL, OOM, a power cut) cannot remove its
//! temporary file; issue 10 found 856 MB of them after five killed
//! snapshots. Every temporary and scratch file we create is named with its
//! writer's PID and a tag of its host, and a tool writing into a directory
//! first removes the ones of its own naming whose writer is gone:
//!
//! - same host, and no process with that PID, or one that started after
//!   the file last changed (the PID was reused): the writer is dead;
//! - another host (a NAS shared by several servers, or a container whose
//!   hostname changed at the last deploy): left alone unless unchanged
//!   for [`FOREIGN_AGE`], because its PID means nothing here;
//! - this very process: never (its files are live).
//!
//! "Last changed" is the inode's change time (ctime), never the
//! modification time: a writer may set a file's mtime to the past (blob-sync
//! gives a restored file its source's mtime before the rename; a CI run
//! caught the reclaim taking such a live file for debris), but every write
//! and every mtime change moves the ctime to now. A live writer's file is
//! therefore always changed after its writer started, so a reused PID
//! cannot protect debris and a live file is never taken for debris. Where
//! `/proc` cannot tell (not mounted, unreadable), nothing is reclaimed.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// Files of another host are debris once untouched this long.
pub const FOREIGN_AGE: Duration = Duration::from_secs(24 * 3600);

/// Slack between a process's start time (clock ticks) and a file time.
const CLOCK_SLACK: Duration = Duration::from_secs(1);

/// The endings of our temporary and scratch files.
const ENDINGS: [&str; 2] = [".sqlkeep-tmp", ".scratch"];

/// Eight hex digits naming this host in temporary file names.
pub fn host_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname
        // NUL-terminates within it or truncates.
        let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = if ok {
            &buf[..end]
        } else {
            b"unknown".as_slice()
        };
        crate::digest::sha256_hex(name)[..8].to_string()
    })
}

/// The part of a temporary file name after the target's name:
/// `<pid>-<sequence>-<host>`, so [`reclaim`] can tell whose it is.
pub fn writer_tag(sequence: u64) -> String {
    format!("{}-{sequence}-{}", std::process::id(), host_tag())
}

/// The writer a temporary or scratch file name names: (pid, host), the
/// host None for names from before host tags.
pub fn writer_of(name: &str) -> Option<(u32, Option<String>)> {
    if !name.starts_with('.') {
        return None;
    }
    let stem = ENDINGS.iter().find_map(|e| name.strip_suffix(e))?;
    parse_tag(stem.rsplit('.').next()?)
}

/// Reads a writer tag `<pid>-<sequence>[-<host>]` back into (pid, host).
fn parse_tag(tag: &str) -> Option<(u32, Option<String>)> {
    let mut parts = tag.split('-');
    let pid = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    let host = parts.next().map(str::to_string);
    if parts.next().is_some() {
        return None;
    }
    Some((pid, host))
}

/// Removes the debris of dead writers in `dir`, once per directory per
/// process; returns the paths removed. Failures are ignored: reclaiming is
/// housekeeping and never fails a run.
pub fn reclaim(dir: &Path) -> Vec<PathBuf> {
    static SWEPT: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
        if !swept
            .get_or_insert_with(HashSet::new)
            .insert(dir.to_path_buf())
        {
            return Vec::new();
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((pid, host)) = writer_of(name) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let changed = changed_at(&meta);
        if is_stale(pid, host.as_deref(), changed) && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// True when the writer named by `tag` (see [`writer_tag`]) of a file
/// last changed at `changed` is gone: the same judgement [`reclaim`] makes,
/// for files other modules name with a writer tag (a restore's
/// moved-aside companions). An unreadable tag is never judged gone.
pub fn writer_gone(tag: &str, changed: SystemTime) -> bool {
    parse_tag(tag).is_some_and(|(pid, host)| is_stale(pid, host.as_deref(), changed))
}

/// The inode change time of a file: moved by every write and every
/// metadata change, and unlike the mtime never set to the past by a writer.
pub fn changed_at(meta: &std::fs::Metadata) -> SystemTime {
    SystemTime::UNIX_EPOCH
        + Duration::new(
            meta.ctime().max(0) as u64,
            meta.ctime_nsec().clamp(0, 999_999_999) as u32,
        )
}

/// True when the writer of a file last changed at `changed` is gone.
fn is_stale(pid: u32, host: Option<&str>, changed: SystemTime) -> bool {
    if host.is_some_and(|h| h != host_tag()) {
        return changed.elapsed().is_ok_and(|age| age > FOREIGN_AGE);
    }
    if pid == std::process::id() || !Path::new("/proc/self/stat").exists() {
        return false;
    }
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return true;
    }
    // The PID lives: the writer is gone only if this process started after
    // the file last changed. Unknown means alive.
    process_start(pid).is_some_and(|started| started > changed + CLOCK_SLACK)
}

/// When process `pid` started, or None when there is no such process.
fn process_start(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime, clock ticks after boot) comes after the
    // command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')')?.1;
    let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let boot = boot_time()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Some(boot + Duration::from_millis(ticks * 1000 / hz))
}

/// When this machine booted (`btime` in /proc/stat).
fn boot_time() -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let secs: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_writer() {
        let name = format!(".app.sqlite3.{}.sqlkeep-tmp", writer_tag(3));
        let (pid, host) = writer_of(&name).unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(host.as_deref(), Some(host_tag()));
        assert_eq!(writer_of(".x.sqlite3.123-0.sqlkeep-tmp"), Some((123, None)));
        assert_eq!(writer_of("app.sqlite3"), None);
        assert_eq!(writer_of(".verify.77-1-abcdef01.scratch").unwrap().0, 77);
        assert_eq!(writer_of(".x.notapid-1.sqlkeep-tmp"), None);
    }

    #[test]
    fn live_writers_are_left_and_dead_ones_reclaimed() {
        let dir = std::env::temp_dir().join(format!("sqlkeep-debris-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mine = dir.join(format!(".a.{}.sqlkeep-tmp", writer_tag(0)));
        std::fs::write(&mine, b"live").unwrap();
        // PID 0 is never a user process: its writer is certainly gone.
        let dead = dir.join(format!(".b.0-0-{}.sqlkeep-tmp", host_tag()));
        std::fs::write(&dead, b"dead").unwrap();
        let foreign = dir.join(".c.0-0-00000000.sqlkeep-tmp");
        std::fs::write(&foreign, b"other host").unwrap();
        let other = dir.join("user-file.sqlkeep-tmp");
        std::fs::write(&other, b"not ours").unwrap();
        // A live writer's file whose mtime was set to the past (as
        // blob-sync does before its rename) is still live: its ctime is
        // now. PID 1 lives, and started before the file changed.
        let backdated = dir.join(format!(".d.1-0-{}.sqlkeep-tmp", host_tag()));
        std::fs::write(&backdated, b"live, backdated").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&backdated)
            .unwrap()
            .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
            .unwrap();
        let removed = reclaim(&dir);
        assert_eq!(removed, vec![dead.clone()]);
        assert!(mine.exists() && foreign.exists() && other.exists() && backdated.exists());
        assert!(reclaim(&dir).is_empty(), "once per directory");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
