//! Killed at any moment, a tool leaves the previous good state: seeded
//! random SIGKILLs of the real binaries, each followed by a check of what
//! they leave, then one normal run that must succeed and reclaim every
//! temporary file of the killed ones (issue 10, "Losing the live
//! database" and "Debris").
//!
//! The moment of each kill is a uniform random point in the time an
//! unkilled run takes (measured first, in the same test, then following
//! the runs: `support::campaign`): a fault injection point, not a wait for
//! something to happen. Seeds are fixed and printed: a rerun draws the
//! same points of the span, though the span itself follows how fast the
//! machine runs that day.

use crate::bank::{Writer, check_invariants};
use crate::s3server::{BUCKET, S3Server};
use crate::support::{Scratch, assert_consistent, campaign, debris, list_files, make_db};
use rusqlite::Connection;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `command` to completion and returns how long it took; it must
/// succeed.
fn timed(command: Command) -> Duration {
    timed_allowing(command, &[0])
}

/// Like [`timed`], for a command whose exit code may be any of `codes`
/// (sqlite-maint's checkpoint may find the writer busy: exit 4).
fn timed_allowing(mut command: Command, codes: &[i32]) -> Duration {
    let started = Instant::now();
    let out = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some_and(|c| codes.contains(&c)),
        "calibration run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// Starts `command` and SIGKILLs it `after` later (unless it ended
/// first); returns whether the kill landed.
fn kill_after(mut command: Command, after: Duration) -> bool {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let landed = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let status = child.wait().unwrap();
    landed && status.code().is_none()
}

/// The median of three measured runs: one slow run (the other tests run
/// beside this one) does not push most kills past the end.
fn median_of_three(mut measure: impl FnMut() -> Duration) -> Duration {
    let mut runs = [measure(), measure(), measure()];
    runs.sort();
    runs[1]
}

/// Rows in the live database's main file, and rows only in its WAL.
const MAIN_ROWS: i64 = 2000;
const WAL_ROWS: i64 = 600;
/// Rows in the snapshot being restored.
const SNAPSHOT_ROWS: i64 = 3000;

/// Builds the live database: `origin` says 'live', `t` holds MAIN_ROWS
/// rows in the main file and WAL_ROWS more committed only in the WAL (the
/// writer process exits without checkpointing, as a killed app would).
fn live_template(dir: &Path) {
    let script = "import os,sqlite3,sys\n\
        c=sqlite3.connect(sys.argv[1],isolation_level=None)\n\
        c.execute('PRAGMA journal_mode=WAL')\n\
        c.execute('PRAGMA wal_autocheckpoint=0')\n\
        c.execute('CREATE TABLE origin(v TEXT)')\n\
        c.execute(\"INSERT INTO origin VALUES ('live')\")\n\
        c.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)')\n\
        m,w=int(sys.argv[2]),int(sys.argv[3])\n\
        c.execute('BEGIN')\n\
        for i in range(m): c.execute('INSERT INTO t(v) VALUES (randomblob(1000))')\n\
        c.execute('COMMIT')\n\
        c.execute('PRAGMA wal_checkpoint(TRUNCATE)')\n\
        c.execute('BEGIN')\n\
        for i in range(w): c.execute('INSERT INTO t(v) VALUES (randomblob(1000))')\n\
        c.execute('COMMIT')\n\
        os._exit(0)\n";
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(dir.join("live.sqlite3"))
        .arg(MAIN_ROWS.to_string())
        .arg(WAL_ROWS.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    // The newest rows really are only in the WAL: the main file alone
    // holds MAIN_ROWS.
    std::fs::create_dir_all(dir.join("main-only")).unwrap();
    std::fs::copy(dir.join("live.sqlite3"), dir.join("main-only/x.sqlite3")).unwrap();
    assert_eq!(
        rows(&dir.join("main-only/x.sqlite3")),
        ("live".into(), MAIN_ROWS)
    );
    assert!(
        std::fs::metadata(dir.join("live.sqlite3-wal"))
            .unwrap()
            .len()
            > 0
    );
}

/// (origin, rows in t) of a database, after checking its integrity,
/// opened read-write as the application would (which replays a WAL).
fn rows(db: &Path) -> (String, i64) {
    let conn = Connection::open(db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "{}", db.display());
    let origin: String = conn
        .query_row("SELECT v FROM origin", [], |r| r.get(0))
        .unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    (origin, n)
}

/// Puts the live database (main file and WAL) in place at `target`, as a
/// new file, with no companion left from before.
fn reset_live(template: &Path, target: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", target.display()));
    }
    std::fs::copy(template.join("live.sqlite3"), target).unwrap();
    std::fs::copy(
        template.join("live.sqlite3-wal"),
        format!("{}-wal", target.display()),
    )
    .unwrap();
}

/// Issue 10: `bucket-pull --force` over a WAL database deleted the old
/// -wal before the new file was in place, and a kill in between lost every
/// row that lived only in the WAL (3 of 3 tries). 50 seeded kills: after
/// each, the target opens, passes integrity_check, and holds either every
/// old committed row or exactly the restored snapshot; then one normal
/// restore succeeds and leaves no temporary or moved-aside file.
#[test]
fn a_killed_restore_never_loses_the_database_it_replaces() {
    const SEED: u64 = 0x5eed_0010;
    const KILLS: usize = 50;
    let s = Scratch::new();
    std::fs::create_dir_all(s.join("template")).unwrap();
    live_template(&s.join("template"));

    let snapshot = s.join("snap.sqlite3");
    {
        let conn = Connection::open(&snapshot).unwrap();
        conn.execute_batch(
            "CREATE TABLE origin(v TEXT); INSERT INTO origin VALUES ('snapshot');
             CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);",
        )
        .unwrap();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO t(v) SELECT randomblob(1000) FROM n",
            [SNAPSHOT_ROWS],
        )
        .unwrap();
    }
    let snap = s.snap("snaps", "snap.sqlite3");
    s.push("remote", &[], snap.stdout());

    let target = s.join("app/live.sqlite3");
    std::fs::create_dir_all(s.join("app")).unwrap();
    let pull = || {
        s.tool("bucket-pull")
            .args(["remote/snap", "--force", "-o"])
            .arg(&target)
            .command()
    };
    let span = median_of_three(|| {
        reset_live(&s.join("template"), &target);
        let took = timed(pull());
        assert_eq!(rows(&target), ("snapshot".into(), SNAPSHOT_ROWS));
        took
    });

    let (mut old, mut new) = (0, 0);
    let summary = campaign(SEED, span, KILLS, KILLS / 2, |kill, at| {
        reset_live(&s.join("template"), &target);
        let landed = kill_after(pull(), at);
        match rows(&target) {
            (origin, n) if origin == "live" => {
                assert_eq!(
                    n,
                    MAIN_ROWS + WAL_ROWS,
                    "seed {SEED:#x} kill {kill} at {at:?}: the old database lost rows"
                );
                old += 1;
            }
            (origin, n) => {
                assert_eq!(
                    (origin.as_str(), n),
                    ("snapshot", SNAPSHOT_ROWS),
                    "seed {SEED:#x} kill {kill} at {at:?}"
                );
                new += 1;
            }
        }
        landed
    });
    eprintln!("{summary}: {old} left the old database, {new} the restored one");

    reset_live(&s.join("template"), &target);
    s.tool("bucket-pull")
        .args(["remote/snap", "--force", "-o"])
        .arg(&target)
        .run()
        .success();
    assert_eq!(rows(&target), ("snapshot".into(), SNAPSHOT_ROWS));
    assert_eq!(debris(&s.join("app")), Vec::<String>::new());
}

/// sqlite-snap killed at random while the application writes: the live
/// database is never harmed, no partial snapshot ever appears under a
/// snapshot's name, and the next run reclaims the killed runs' files.
#[test]
fn a_killed_snapshot_harms_nothing_and_leaves_nothing() {
    const SEED: u64 = 0x5eed_0011;
    let s = Scratch::new();
    let db = s.join("bank.sqlite3");
    let mut writer = Writer::start(&db, "wal");
    writer.wait_for(200);
    let snap = || {
        let mut cmd = s.tool("sqlite-snap").command();
        cmd.args(["--level", "9", "-o"])
            .arg(s.join("snaps"))
            .arg(&db);
        cmd
    };
    let span = median_of_three(|| timed(snap()));
    for f in list_files(&s.join("snaps")) {
        std::fs::remove_file(s.join("snaps").join(f)).unwrap();
    }
    let summary = campaign(SEED, span, 10, 3, |kill, at| {
        writer.wait_for(writer.committed + 25);
        let landed = kill_after(snap(), at);
        check_invariants(&db);
        // A kill after the rename leaves a whole snapshot; never a torn one
        // under a snapshot's name.
        for name in list_files(&s.join("snaps")) {
            if !name.starts_with('.') {
                let restored = s.join("check.sqlite3");
                let bytes =
                    zstd::decode_all(std::fs::File::open(s.join("snaps").join(&name)).unwrap())
                        .unwrap_or_else(|e| {
                            panic!("seed {SEED:#x} kill {kill}: {name} is torn: {e}")
                        });
                std::fs::write(&restored, bytes).unwrap();
                check_invariants(&restored);
            }
        }
        landed
    });
    eprintln!("{summary}");
    let run = s
        .tool("sqlite-snap")
        .arg("-o")
        .arg(s.join("snaps"))
        .arg(&db)
        .run()
        .success();
    writer.stop();
    assert_eq!(debris(&s.join("snaps")), Vec::<String>::new());
    let path = run.record()["path"].as_str().unwrap().to_string();
    let restored = s.join("check.sqlite3");
    std::fs::write(&restored, crate::support::unzstd(Path::new(&path))).unwrap();
    check_invariants(&restored);
}

/// bucket-push killed at random, into a directory and into S3: whatever
/// it leaves, every manifest names a complete object with its checksum
/// and latest.json is one of them; the next push reclaims the debris.
#[test]
fn a_killed_push_never_leaves_a_manifest_naming_a_bad_object() {
    const SEED: u64 = 0x5eed_0012;
    let s = Scratch::new();
    let server = S3Server::start(s.path());
    let env = S3Server::aws_env(&server.endpoint);
    make_db(&s.join("app.sqlite3"), 4000, false);
    let remotes = [
        ("remote".to_string(), s.join("remote/app")),
        (format!("s3://{BUCKET}/db"), server.path("db/app")),
    ];
    for (seed, (remote, dir)) in (SEED..).zip(remotes) {
        let records: Vec<String> = (0..6)
            .map(|i| {
                let mut r = s.snap(&format!("snaps-{i}"), "app.sqlite3").record();
                r["taken_at"] = format!("2026-11-2{i}T03:00:00Z").into();
                r.to_string()
            })
            .collect();
        let push = |record: &str| {
            let mut cmd = s.tool("bucket-push").arg(&remote).envs(&env).command();
            cmd.arg(
                serde_json::from_str::<serde_json::Value>(record).unwrap()["path"]
                    .as_str()
                    .unwrap(),
            );
            cmd
        };
        // Calibrate on the first, stored whole.
        let span = median_of_three(|| timed(push(&records[0])));
        let summary = campaign(seed, span, 10, 3, |kill, at| {
            let landed = kill_after(push(&records[1 + kill % 5]), at);
            assert_consistent(&dir);
            landed
        });
        eprintln!("{remote}: {summary}");
        s.push(&remote, &env, records[5].clone());
        assert_consistent(&dir);
        assert_eq!(debris(&dir), Vec::<String>::new(), "{remote}");
    }
}

/// blob-sync killed at random while restoring 300 files: every file in
/// the destination is complete (the source's bytes) or absent, never torn;
/// the next run completes the restore and leaves no temporary file.
#[test]
fn a_killed_sync_never_leaves_a_torn_file() {
    const SEED: u64 = 0x5eed_0013;
    let s = Scratch::new();
    let mut files = Vec::new();
    for i in 0..300 {
        let rel = format!("{:02x}/{:02x}/blob-{i}", i % 7, i % 13);
        let path = s.join("src").join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{rel} ").repeat(2000 + i * 37)).unwrap();
        files.push(rel);
    }
    let sync = || {
        let mut cmd = s.tool("blob-sync").command();
        cmd.arg(s.join("src")).arg(s.join("dest"));
        cmd
    };
    let cache = s.join(".cache");
    // Every run restores everything: the files a killed run completed are
    // removed before the next (its temporary files are left, for the
    // next runs to reclaim).
    let restart = || {
        let _ = std::fs::remove_dir_all(&cache);
        for f in list_files(&s.join("dest")) {
            if !debris(&s.join("dest")).contains(&f) {
                std::fs::remove_file(s.join("dest").join(&f)).unwrap();
            }
        }
    };
    let span = median_of_three(|| {
        restart();
        timed(sync())
    });
    std::fs::remove_dir_all(s.join("dest")).unwrap();
    let summary = campaign(SEED, span, 10, 3, |kill, at| {
        restart();
        let landed = kill_after(sync(), at);
        for rel in &files {
            if let Ok(got) = std::fs::read(s.join("dest").join(rel)) {
                assert_eq!(
                    got,
                    std::fs::read(s.join("src").join(rel)).unwrap(),
                    "seed {SEED:#x} kill {kill} at {at:?}: {rel} is torn"
                );
            }
        }
        landed
    });
    eprintln!("{summary}");
    s.tool("blob-sync")
        .arg(s.join("src"))
        .arg(s.join("dest"))
        .run()
        .success();
    for rel in &files {
        assert!(s.join("dest").join(rel).is_file(), "{rel} missing");
    }
    assert_eq!(debris(&s.join("dest")), Vec::<String>::new());
}

/// sqlite-maint killed at random while the application writes, and
/// sqlite-verify killed at random while it decompresses a snapshot into
/// its scratch file: the live database keeps its invariants and the
/// writer never sees an error; the next verify leaves no scratch file.
#[test]
fn a_killed_maintenance_or_verify_harms_nothing_and_leaves_nothing() {
    const SEED: u64 = 0x5eed_0014;
    let s = Scratch::new();
    let db = s.join("bank.sqlite3");
    let mut writer = Writer::start_with(&db, "wal", Some("incremental"));
    writer.wait_for(200);
    let maint = || {
        let mut cmd = s.tool("sqlite-maint").command();
        cmd.args([
            "--incremental-vacuum",
            "--checkpoint",
            "truncate",
            "--optimize",
        ])
        .arg(&db);
        cmd
    };
    // A truncating checkpoint may find the writer mid-transaction and say
    // so (exit 4), as in maint::maintenance_under_a_concurrent_writer.
    let span = median_of_three(|| timed_allowing(maint(), &[0, 4]));
    let summary = campaign(SEED, span, 10, 3, |_, at| {
        writer.wait_for(writer.committed + 25);
        let landed = kill_after(maint(), at);
        check_invariants(&db);
        landed
    });
    eprintln!("sqlite-maint: {summary}");

    // A snapshot big enough that decompressing it takes a while.
    let snapshot = s
        .tool("sqlite-snap")
        .args(["-o", "snaps"])
        .arg(&db)
        .run()
        .success()
        .record()["path"]
        .as_str()
        .unwrap()
        .to_string();
    writer.stop();
    let verify = || {
        let mut cmd = s.tool("sqlite-verify").command();
        cmd.arg(&snapshot);
        cmd
    };
    let span = median_of_three(|| timed(verify()));
    let summary = campaign(SEED + 1, span, 10, 3, |_, at| kill_after(verify(), at));
    eprintln!("sqlite-verify: {summary}");
    s.tool("sqlite-verify").arg(&snapshot).run().success();
    assert_eq!(debris(&s.join(".tmp")), Vec::<String>::new());
}
