//! Incremental snapshots (issue 11): every point of a chain restores to
//! exactly the state snapshotted, under a real concurrent writer, through
//! real S3; an increment costs three PUTs and nothing else; a failed or
//! killed push, a lost state, a VACUUM and a page-size change all end in a
//! chain that restores.

use crate::bank::{Writer, check_invariants};
use crate::proxy::Fault;
use crate::s3server::{BUCKET, S3Server};
use crate::support::{Rng, Scratch, campaign, sha256_file};
use rusqlite::Connection;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Small levels so a hundred runs hold several fulls: a chain has at
/// most 1 + 3 + 4 = 8 objects.
const LEVELS: [&str; 4] = ["--deltas-per-diff", "4", "--diffs-per-full", "3"];
const MAX_CHAIN: usize = 8;

/// Commits a second at most: hundreds of rounds in debug builds stay
/// quick with a database of a few MB, and every round still waits for
/// fresh commits.
const PACE: u32 = 400;

/// One database's incremental pipeline into one remote.
struct Chain<'a> {
    s: &'a Scratch,
    db: PathBuf,
    state: PathBuf,
    remote: String,
    env: Vec<(String, String)>,
}

impl<'a> Chain<'a> {
    /// The pipeline of `db` into `remote` (with `env` for S3), its state
    /// in the scratch directory.
    fn new(s: &'a Scratch, db: &Path, remote: String, env: Vec<(String, String)>) -> Chain<'a> {
        Chain {
            s,
            db: db.to_path_buf(),
            state: s.join("state"),
            remote,
            env,
        }
    }

    /// `sqlite-snap --incremental` alone; its record.
    fn snap(&self) -> Value {
        self.snap_with(&[])
    }

    /// The same with more flags (later ones win over [`LEVELS`]).
    fn snap_with(&self, extra: &[&str]) -> Value {
        self.s
            .tool("sqlite-snap")
            .args(["-q", "--incremental", "--state-dir"])
            .arg(&self.state)
            .args(LEVELS)
            .args(extra)
            .arg(&self.db)
            .run()
            .success()
            .record()
    }

    /// `bucket-push` of one record; the run.
    fn push(&self, record: &Value, extra: &[&str]) -> crate::support::Run {
        self.s
            .tool("bucket-push")
            .arg("-q")
            .args(extra)
            .arg(&self.remote)
            .envs(&self.env)
            .stdin(format!("{record}\n"))
            .run()
    }

    /// Restores `source` (relative to the remote) into `name`; the run.
    fn pull(&self, source: &str, name: &str) -> (crate::support::Run, PathBuf) {
        let target = self.s.join(name);
        let _ = std::fs::remove_file(&target);
        let run = self
            .s
            .tool("bucket-pull")
            .arg("-q")
            .arg(format!("{}/{source}", self.remote))
            .arg("-o")
            .arg(&target)
            .envs(&self.env)
            .run();
        (run, target)
    }
}

/// The stem (`<stamp>-<tag>`) of a pushed record's object.
fn stem(record: &Value) -> String {
    let name = record["url"].as_str().unwrap().rsplit('/').next().unwrap();
    name.split('.').next().unwrap().to_string()
}

/// The proof of consistency: a hundred increments at random
/// moments while the bank writer runs (levels mixed, several fulls), each
/// pushed to real S3 through the counting proxy; then every point is
/// restored from its manifest and must be byte for byte the state
/// snapshotted (`raw_sha256`), with the bank's invariants and
/// `integrity_check` holding and the transfers growing.
#[test]
fn every_point_of_a_hundred_increments_restores_exactly() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let db = s.join("bank.sqlite3");
    let mut writer = Writer::start_paced(&db, "wal", PACE);
    let chain = Chain::new(&s, &db, format!("s3://{BUCKET}/databases"), env);
    let mut rng = Rng::new(0x11_1C4E);
    let mut pushed: Vec<Value> = Vec::new();
    for run in 0..100 {
        writer.wait_for(writer.committed + 1 + rng.below(20));
        let record = chain.snap();
        assert_eq!(record["parent"].is_null(), run == 0, "run {run}: {record}");
        proxy.reset_seen();
        let push = chain.push(&record, &[]).success();
        let seen = proxy.seen();
        let out = push.record();
        assert_eq!(out["committed"], true, "run {run}: {out}");
        if record["kind"] == "delta" {
            // An increment: object, manifest, latest.json; nothing else.
            let puts = seen.iter().filter(|r| r.method == "PUT").count();
            assert_eq!(
                (puts, seen.len()),
                (3, 3),
                "run {run}: an increment made {seen:?}"
            );
            assert!(
                seen.iter().any(|r| r.if_match.is_some()),
                "latest.json is moved with If-Match: {seen:?}"
            );
        }
        let links = out["chain"].as_array().unwrap().len();
        assert!(links <= MAX_CHAIN, "run {run}: a chain of {links}");
        pushed.push(out);
    }
    writer.stop();
    let level = |l: u64| pushed.iter().filter(|r| r["level"] == l).count();
    assert!(
        level(0) >= 2 && level(1) >= 2 && level(2) >= 10,
        "levels {} {} {}",
        level(0),
        level(1),
        level(2)
    );

    // The newest point: latest.json (one GET) and its chain, no listing.
    proxy.reset_seen();
    let (run, target) = chain.pull("bank", "latest.sqlite3");
    run.success();
    let last = pushed.last().unwrap();
    assert_eq!(sha256_file(&target), last["raw_sha256"].as_str().unwrap());
    let links = last["chain"].as_array().unwrap().len();
    assert_eq!(proxy.count("GET", ""), 1 + links, "{:?}", proxy.seen());
    assert_eq!(
        proxy.seen().len(),
        1 + links,
        "only GETs: {:?}",
        proxy.seen()
    );

    let mut previous = -1;
    for (i, point) in pushed.iter().enumerate() {
        proxy.reset_seen();
        let (run, target) = chain.pull(&format!("bank/{}.json", stem(point)), "point.sqlite3");
        run.success();
        assert_eq!(
            sha256_file(&target),
            point["raw_sha256"].as_str().unwrap(),
            "point {i} ({}, level {}) did not rebuild to its state",
            stem(point),
            point["level"]
        );
        let gets = proxy.count("GET", "");
        assert_eq!(
            gets,
            1 + point["chain"].as_array().unwrap().len(),
            "point {i}: one manifest and its chain"
        );
        assert!(gets <= 1 + MAX_CHAIN);
        let transfers = check_invariants(&target);
        assert!(
            transfers > previous,
            "point {i}: {transfers} after {previous}"
        );
        previous = transfers;
    }
}

/// A push that fails at each of its three writes, and one killed at a
/// random moment, commit nothing: the next increment is taken against the
/// last committed point, covers the gap, and restores.
#[test]
fn a_failed_or_killed_push_is_covered_by_the_next_increment() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let db = s.join("bank.sqlite3");
    let mut writer = Writer::start_paced(&db, "wal", PACE);
    let chain = Chain::new(&s, &db, format!("s3://{BUCKET}/databases"), env.clone());
    writer.wait_for(20);
    let first = chain.snap();
    let committed = chain.push(&first, &[]).success().record();
    let mut last_committed = stem(&committed);
    // The object's PUT, the manifest's (the first ".json" written),
    // latest.json's.
    for target in [".delta.zst", ".json", "latest.json"] {
        writer.wait_for(writer.committed + 10);
        let record = chain.snap();
        assert_eq!(record["parent"], last_committed.as_str());
        proxy.inject("PUT", target, Fault::Status(500, "InternalError"), 1);
        let run = chain.push(&record, &["--tries", "1"]);
        assert_ne!(run.code(), 0, "the push was made to fail");
        proxy.clear();
        // Nothing committed: the next increment's parent is unchanged.
        let next = chain.snap();
        assert_eq!(
            next["parent"],
            last_committed.as_str(),
            "after failing at {target}"
        );
        let pushed = chain.push(&next, &[]).success().record();
        last_committed = stem(&pushed);
        let (run, restored) = chain.pull("bank", "after-fail.sqlite3");
        run.success();
        assert_eq!(
            sha256_file(&restored),
            pushed["raw_sha256"].as_str().unwrap()
        );
        check_invariants(&restored);
    }

    // SIGKILL at random moments of a push (the span measured first).
    let span = {
        writer.wait_for(writer.committed + 10);
        let record = chain.snap();
        let started = Instant::now();
        let pushed = chain.push(&record, &[]).success().record();
        last_committed = stem(&pushed);
        started.elapsed()
    };
    let summary = campaign(0xC1_11ED, span, 8, 3, |kill, at| {
        writer.wait_for(writer.committed + 10);
        let record = chain.snap();
        let mut child = spawn_push(&s, &chain);
        let mut stdin = child.stdin.take().unwrap();
        use std::io::Write;
        stdin.write_all(format!("{record}\n").as_bytes()).unwrap();
        drop(stdin);
        std::thread::sleep(at);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let next = chain.snap();
        // Before its commit, a killed push leaves the previous point
        // committed; after it (the process had not exited yet), its own.
        let parent = next["parent"].as_str().unwrap().to_string();
        let own = stem_of_record(&record);
        assert!(
            parent == last_committed || parent == own,
            "kill {kill}: parent {parent}, neither {last_committed} nor {own}"
        );
        if status.success() {
            assert_eq!(parent, own, "kill {kill}: a finished push committed");
        }
        let pushed = chain.push(&next, &[]).success().record();
        last_committed = stem(&pushed);
        let (run, restored) = chain.pull("bank", "after-kill.sqlite3");
        run.success();
        assert_eq!(
            sha256_file(&restored),
            pushed["raw_sha256"].as_str().unwrap(),
            "kill {kill}"
        );
        check_invariants(&restored);
        !status.success()
    });
    eprintln!("bucket-push: {summary}");
    writer.stop();
}

/// A `bucket-push` reading its record from a pipe, spawned.
fn spawn_push(s: &Scratch, chain: &Chain) -> std::process::Child {
    let mut cmd: Command = s
        .tool("bucket-push")
        .arg("-q")
        .arg(&chain.remote)
        .envs(&chain.env)
        .command();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The stem of a snapshot record's own object (its chain's last link).
fn stem_of_record(record: &Value) -> String {
    let links = record["chain"].as_array().unwrap();
    let object = links.last().unwrap()["object"].as_str().unwrap();
    object.split('.').next().unwrap().to_string()
}

/// Without its state (deleted, or damaged), the next run is a full
/// snapshot, and the chain it starts restores.
#[test]
fn a_lost_or_damaged_state_means_a_full_snapshot() {
    let s = Scratch::new();
    let db = s.join("bank.sqlite3");
    let mut writer = Writer::start_paced(&db, "wal", PACE);
    let chain = Chain::new(&s, &db, s.join("remote").display().to_string(), Vec::new());
    writer.wait_for(10);
    chain.push(&chain.snap(), &[]).success();
    writer.wait_for(writer.committed + 10);
    let delta = chain.snap();
    assert_eq!(delta["kind"], "delta");
    chain.push(&delta, &[]).success();

    std::fs::remove_dir_all(&chain.state).unwrap();
    writer.wait_for(writer.committed + 10);
    let full = chain.snap();
    assert_eq!(full["kind"], "full");
    assert_eq!(full["full_reason"], "no committed state yet");
    chain.push(&full, &[]).success();

    // Damage the committed state file: one flipped byte.
    let dir = std::fs::read_dir(&chain.state)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let state_file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "state"))
        .unwrap();
    let mut bytes = std::fs::read(&state_file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&state_file, bytes).unwrap();
    writer.wait_for(writer.committed + 10);
    let run = s
        .tool("sqlite-snap")
        .args(["--incremental", "--state-dir"])
        .arg(&chain.state)
        .arg(&db)
        .run()
        .success()
        .stderr_has("checksum does not match");
    let again = run.record();
    assert_eq!(again["kind"], "full");
    assert_eq!(again["full_reason"], "the committed state is unreadable");
    let pushed = chain.push(&again, &[]).success().record();
    writer.wait_for(writer.committed + 10);
    let next = chain.snap();
    assert_eq!(next["kind"], "delta");
    let pushed_next = chain.push(&next, &[]).success().record();
    writer.stop();
    for point in [&pushed, &pushed_next] {
        let (run, restored) = chain.pull(&format!("bank/{}.json", stem(point)), "r.sqlite3");
        run.success();
        assert_eq!(
            sha256_file(&restored),
            point["raw_sha256"].as_str().unwrap()
        );
        check_invariants(&restored);
    }
}

/// A VACUUM between runs (most pages move) and a page-size change each
/// give a full snapshot; a file replaced by another (new inode) too.
#[test]
fn vacuum_page_size_change_and_a_replaced_file_take_full_snapshots() {
    let s = Scratch::new();
    let db = s.join("app.sqlite3");
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=wal; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 4000)
             INSERT INTO t(v) SELECT printf('%0500d', i) FROM n;",
        )
        .unwrap();
    }
    let chain = Chain::new(&s, &db, s.join("remote").display().to_string(), Vec::new());
    let mut points = Vec::new();
    let mut step = |sql: &str, kind: &str, reason: &str| {
        if !sql.is_empty() {
            Connection::open(&db).unwrap().execute_batch(sql).unwrap();
        }
        let record = chain.snap();
        assert_eq!(record["kind"], kind, "after {sql:?}: {record}");
        if !reason.is_empty() {
            let why = record["full_reason"].as_str().unwrap_or_default();
            assert!(why.contains(reason), "after {sql:?}: {why}");
        }
        points.push(chain.push(&record, &[]).success().record());
    };
    step("", "full", "no committed state");
    step("UPDATE t SET v = 'x' WHERE id = 7", "delta", "");
    step(
        "DELETE FROM t WHERE id % 3 != 0; VACUUM",
        "full",
        "more than half",
    );
    step("UPDATE t SET v = 'y' WHERE id = 9", "delta", "");
    step(
        "PRAGMA journal_mode=delete; PRAGMA page_size=8192; VACUUM; PRAGMA journal_mode=wal",
        "full",
        "page size changed",
    );
    step("UPDATE t SET v = 'z' WHERE id = 12", "delta", "");
    let copy = s.join("copy.sqlite3");
    Connection::open(&db)
        .unwrap()
        .execute_batch(&format!("VACUUM INTO '{}'", copy.display()))
        .unwrap();
    std::fs::rename(&copy, &db).unwrap();
    step("", "full", "replaced");
    for (i, point) in points.iter().enumerate() {
        let (run, restored) = chain.pull(&format!("app/{}.json", stem(point)), "r.sqlite3");
        run.success();
        assert_eq!(
            sha256_file(&restored),
            point["raw_sha256"].as_str().unwrap(),
            "point {i}"
        );
        let ok: String = Connection::open(&restored)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }
}

/// Two increments taken against one committed point: the first stored
/// commits, the second is skipped (nothing stored, exit 0), and the next
/// run builds on the first.
#[test]
fn a_delta_overtaken_by_a_newer_commit_is_skipped() {
    let s = Scratch::new();
    let (_server, proxy, env) = S3Server::start_behind_proxy(s.path());
    let db = s.join("bank.sqlite3");
    let mut writer = Writer::start_paced(&db, "wal", PACE);
    let chain = Chain::new(&s, &db, format!("s3://{BUCKET}/databases"), env);
    writer.wait_for(10);
    chain.push(&chain.snap(), &[]).success();
    writer.wait_for(writer.committed + 5);
    let a = chain.snap();
    writer.wait_for(writer.committed + 5);
    let b = chain.snap();
    assert_eq!(a["parent"], b["parent"]);
    chain.push(&b, &[]).success();
    proxy.reset_seen();
    let run = chain.push(&a, &[]).success();
    assert!(run.stdout().is_empty(), "no record for a skipped delta");
    assert!(
        run.stderr().is_empty(),
        "-q keeps a skip quiet: {}",
        run.stderr()
    );
    assert!(
        proxy.seen().is_empty(),
        "nothing stored: {:?}",
        proxy.seen()
    );
    writer.wait_for(writer.committed + 5);
    let c = chain.snap();
    assert_eq!(c["parent"], stem_of_record(&b).as_str());
    let pushed = chain.push(&c, &[]).success().record();
    writer.stop();
    let (run, restored) = chain.pull("bank", "r.sqlite3");
    run.success();
    assert_eq!(
        sha256_file(&restored),
        pushed["raw_sha256"].as_str().unwrap()
    );
}

/// Retention keeps restore points, not objects: after pruning (which runs
/// only when a full is pushed), every point left restores, and the
/// objects a kept delta needs survive even when their own points are not
/// kept.
#[test]
fn retention_never_breaks_a_kept_chain() {
    let s = Scratch::new();
    let db = s.join("bank.sqlite3");
    let mut writer = Writer::start_paced(&db, "wal", PACE);
    let remote = s.join("remote");
    let chain = Chain::new(&s, &db, remote.display().to_string(), Vec::new());
    let mut pruned_runs = 0;
    for run in 0..45 {
        writer.wait_for(writer.committed + 3);
        let record = chain.snap();
        let out = chain
            .push(&record, &["--keep-last", "3"])
            .success()
            .record();
        let lists = out["requests"]["list"].as_u64().unwrap();
        if out.get("retention").is_some() {
            assert_eq!(record["kind"], "full", "run {run}: pruned on an increment");
            assert!(lists >= 1, "run {run}: pruning lists");
            pruned_runs += 1;
        } else {
            assert_eq!(lists, 0, "run {run}: an increment never lists");
        }
    }
    writer.stop();
    assert!(pruned_runs >= 2);
    let listed = s
        .tool("bucket-pull")
        .arg("--list")
        .arg(remote.join("bank"))
        .run()
        .success()
        .records();
    assert!(
        listed.len() > 3,
        "points not kept by rule stay while a kept chain needs them"
    );
    let kinds: Vec<&str> = listed.iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"full") && kinds.contains(&"delta"),
        "{kinds:?}"
    );
    for point in &listed {
        assert!(point["bytes"].as_u64().unwrap() > 0);
        assert_eq!(
            point["base"].is_string(),
            point["kind"] == "delta",
            "{point}"
        );
    }

    // --at a second restores the newest point of that second (points of
    // one second order by their checksum tag): a delta that is the newest
    // of its second, rebuilt to its state.
    let second = |p: &Value| p["taken_at"].as_str().unwrap().to_string();
    let stem_of = |p: &Value| {
        let url = p["url"].as_str().unwrap();
        url.rsplit('/')
            .next()
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .to_string()
    };
    let alone = listed
        .iter()
        .find(|p| {
            p["kind"] == "delta"
                && listed
                    .iter()
                    .filter(|q| second(q) == second(p))
                    .all(|q| stem_of(q) <= stem_of(p))
        })
        .expect("a delta newest in its second");
    let stem = stem_of(alone);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(remote.join(format!("bank/{stem}.json"))).unwrap())
            .unwrap();
    let at = s.join("at.sqlite3");
    s.tool("bucket-pull")
        .arg(remote.join("bank"))
        .args(["--at", &second(alone)])
        .arg("-o")
        .arg(&at)
        .run()
        .success();
    assert_eq!(sha256_file(&at), manifest["raw_sha256"].as_str().unwrap());
    for point in &listed {
        let url = point["url"].as_str().unwrap();
        let stem = url.rsplit('/').next().unwrap().split('.').next().unwrap();
        let target = s.join("r.sqlite3");
        let _ = std::fs::remove_file(&target);
        s.tool("bucket-pull")
            .arg(format!("{}/bank/{stem}.json", remote.display()))
            .arg("-o")
            .arg(&target)
            .run()
            .success();
        check_invariants(&target);
    }
}

/// A tampered delta is caught before anything is installed, and a
/// manifest whose chain reaches outside the database's prefix is refused.
#[test]
fn tampered_deltas_and_chains_restore_nothing() {
    let s = Scratch::new();
    let db = s.join("bank.sqlite3");
    let mut writer = Writer::start_paced(&db, "wal", PACE);
    let remote = s.join("remote");
    let chain = Chain::new(&s, &db, remote.display().to_string(), Vec::new());
    for _ in 0..3 {
        writer.wait_for(writer.committed + 5);
        chain.push(&chain.snap(), &[]).success();
    }
    writer.stop();
    let prefix = remote.join("bank");
    let delta = std::fs::read_dir(&prefix)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".delta.zst"))
        .unwrap();
    let original = std::fs::read(&delta).unwrap();
    let mut bytes = original.clone();
    let at = bytes.len() - 8;
    bytes[at] ^= 1;
    std::fs::write(&delta, &bytes).unwrap();
    let (run, target) = chain.pull("bank", "tampered.sqlite3");
    run.expect_code(1).stderr_has("damaged");
    assert!(!target.exists(), "nothing installed");
    assert!(
        crate::support::debris(s.path()).is_empty(),
        "{:?}",
        crate::support::debris(s.path())
    );
    std::fs::write(&delta, &original).unwrap();

    let latest = prefix.join("latest.json");
    let text = std::fs::read_to_string(&latest).unwrap();
    let mut manifest: Value = serde_json::from_str(&text).unwrap();
    manifest["chain"][0]["object"] = "../../outside.sqlite3.zst".into();
    std::fs::write(&latest, manifest.to_string()).unwrap();
    let (run, target) = chain.pull("bank", "escape.sqlite3");
    run.expect_code(1).stderr_has("bad chain");
    assert!(!target.exists());
    std::fs::write(&latest, &text).unwrap();
    chain.pull("bank", "fine.sqlite3").0.success();

    // A record naming a state file outside any state directory.
    let mut record = chain.snap();
    record["state"] = "/etc/passwd".into();
    chain
        .push(&record, &[])
        .expect_code(1)
        .stderr_has("not a state file");
}

/// `sqlite-snap --incremental -o DIR` with no push after it (stdout not a
/// pipe): the files in DIR are the chain, so it commits at once.
#[test]
fn output_dir_without_a_push_commits_itself() {
    let s = Scratch::new();
    let db = s.join("app.sqlite3");
    crate::support::make_db(&db, 50, true);
    let out = s.join("out");
    let records = s.join("records.jsonl");
    for round in 0..2 {
        Connection::open(&db)
            .unwrap()
            .execute_batch(&format!("INSERT INTO users(email) VALUES ('r{round}@x')"))
            .unwrap();
        let file = std::fs::File::create(&records).unwrap();
        let status = s
            .tool("sqlite-snap")
            .args(["-q", "--incremental", "--state-dir"])
            .arg(s.join("state"))
            .arg("-o")
            .arg(&out)
            .arg(&db)
            .command()
            .stdout(file)
            .status()
            .unwrap();
        assert!(status.success());
        let record: Value =
            serde_json::from_str(std::fs::read_to_string(&records).unwrap().trim()).unwrap();
        assert_eq!(record["committed"], true);
        assert_eq!(record["kind"], if round == 0 { "full" } else { "delta" });
        assert!(Path::new(record["path"].as_str().unwrap()).exists());
    }
}

/// `sqlite-verify` between the two keeps the pipeline working: a full
/// snapshot is verified, a delta (pages, not a database) passes on with a
/// SKIP, and both are stored.
#[test]
fn sqlite_verify_in_the_pipe_passes_deltas_on() {
    let s = Scratch::new();
    let db = s.join("app.sqlite3");
    crate::support::make_db(&db, 50, true);
    let remote = s.join("remote");
    for (round, kind) in ["full", "delta"].iter().enumerate() {
        Connection::open(&db)
            .unwrap()
            .execute_batch(&format!("INSERT INTO users(email) VALUES ('v{round}@x')"))
            .unwrap();
        let snap = s
            .tool("sqlite-snap")
            .args(["-q", "--incremental", "--state-dir"])
            .arg(s.join("state"))
            .arg(&db)
            .run()
            .success();
        let verify = s.tool("sqlite-verify").stdin(snap.stdout()).run().success();
        let passed = verify.record();
        assert_eq!(passed["kind"], *kind);
        if *kind == "delta" {
            assert_eq!(passed["type"], "snapshot", "passed on as it came");
            verify.stderr_has("SKIP");
        }
        let out = s
            .tool("bucket-push")
            .arg(&remote)
            .stdin(format!("{passed}\n"))
            .run()
            .success()
            .record();
        assert_eq!(out["committed"], true);
    }
    let restored = s.join("r.sqlite3");
    s.tool("bucket-pull")
        .arg(remote.join("app"))
        .arg("-o")
        .arg(&restored)
        .run()
        .success();
    assert_eq!(crate::support::count(&restored, "users"), 52);
}

/// On a server that enforces `If-Match` (moto): a push that moved
/// `latest.json` and died before it committed (its commit undone here,
/// which is exactly what such a kill leaves) does not stop the next
/// increment from moving `latest.json` (1 GET and 1 PUT more: the lost
/// condition, then its sibling replaced). Another writer's `latest.json`
/// is left alone: the delta is stored, the state forgotten, and the next
/// run is a full snapshot.
#[test]
fn latest_json_after_a_push_killed_before_its_commit_and_after_another_writer() {
    let s = Scratch::new();
    let (_moto, proxy, env) = crate::s3server::MotoServer::start_behind_proxy();
    let db = s.join("bank.sqlite3");
    let mut writer = Writer::start_paced(&db, "wal", PACE);
    let chain = Chain::new(&s, &db, format!("s3://{BUCKET}/db"), env);
    writer.wait_for(10);
    chain.push(&chain.snap(), &[]).success();
    let state_dir = std::fs::read_dir(&chain.state)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let files = |dir: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect()
    };
    let before = files(&state_dir);

    writer.wait_for(writer.committed + 10);
    let killed = chain.snap();
    chain.push(&killed, &[]).success();
    // Undo its commit (committed.json, and the tidying of older states).
    for (path, bytes) in &before {
        std::fs::write(path, bytes).unwrap();
    }

    writer.wait_for(writer.committed + 10);
    let next = chain.snap();
    assert_eq!(
        next["parent"], killed["parent"],
        "taken against the same commit"
    );
    proxy.reset_seen();
    let pushed = chain.push(&next, &[]).success().record();
    assert_eq!(pushed["latest"], true, "{pushed}");
    let latest_puts: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.target.ends_with("latest.json"))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        latest_puts,
        [Some(412), Some(200)],
        "the lost condition, then the replace"
    );
    // Paused while the restore and the other writer run: on a loaded
    // machine they take seconds, and 400 commits a second would change
    // more than half of this small database's pages (a full snapshot by
    // design), which is not what this test is about.
    writer.stop();
    let (run, restored) = chain.pull("bank", "r.sqlite3");
    run.success();
    assert_eq!(
        sha256_file(&restored),
        pushed["raw_sha256"].as_str().unwrap()
    );

    // Another writer: a plain snapshot of another database pushed as this
    // one's newest point.
    let other = s.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let foreign_db = other.join("bank.sqlite3");
    crate::support::make_db(&foreign_db, 5, false);
    let mut foreign = s
        .tool("sqlite-snap")
        .arg(&foreign_db)
        .run()
        .success()
        .record();
    // Newer than any point of ours, whatever the second: points in one
    // second order by checksum.
    let later = sqlkeep_common::time::Timestamp::now().unix() + 3600;
    foreign["taken_at"] = sqlkeep_common::time::Timestamp::from_unix(later)
        .rfc3339()
        .into();
    s.tool("bucket-push")
        .arg(&chain.remote)
        .envs(&chain.env)
        .stdin(format!("{foreign}\n"))
        .run()
        .success();
    let mut writer = Writer::start_paced(&db, "wal", PACE);
    writer.wait_for(10);
    let after = chain.snap();
    assert_eq!(after["kind"], "delta", "{after}");
    let out = chain
        .push(&after, &[])
        .success()
        .stderr_has("changed by another writer")
        .record();
    assert_eq!(
        (out["latest"].clone(), out["committed"].clone()),
        (false.into(), false.into())
    );
    writer.wait_for(writer.committed + 10);
    let full = chain.snap();
    assert_eq!(full["kind"], "full", "the state was forgotten");
    writer.stop();
}

/// The time-driven levels: `--full-every` makes the next run a full
/// snapshot and says why, `--diff-every` a level-1 delta; `--keep-within`
/// keeps every point of its window, deltas included, and the default
/// state directory is under `$XDG_STATE_HOME`.
#[test]
fn time_driven_levels_keep_within_and_the_default_state_directory() {
    let s = Scratch::new();
    let db = s.join("app.sqlite3");
    crate::support::make_db(&db, 20, true);
    let remote = s.join("remote");
    let chain = Chain::new(&s, &db, remote.display().to_string(), Vec::new());
    let write = |n: usize| {
        Connection::open(&db)
            .unwrap()
            .execute("INSERT INTO users(email) VALUES (?1)", [format!("t{n}@x")])
            .unwrap();
    };
    let mut pushed = 0;
    let mut push = |record: &Value| {
        let out = chain
            .push(record, &["--keep-within", "48h"])
            .success()
            .record();
        pushed += 1;
        out
    };
    push(&chain.snap());
    write(1);
    let delta = chain.snap();
    assert_eq!(
        (delta["kind"].as_str(), delta["level"].as_u64()),
        (Some("delta"), Some(2))
    );
    push(&delta);
    write(2);
    let diff = chain.snap_with(&["--diff-every", "0s"]);
    assert_eq!(
        (diff["kind"].as_str(), diff["level"].as_u64()),
        (Some("delta"), Some(1))
    );
    push(&diff);
    write(3);
    let full = chain.snap_with(&["--full-every", "0s"]);
    assert_eq!(full["kind"], "full");
    assert!(
        full["full_reason"]
            .as_str()
            .unwrap()
            .contains("--full-every"),
        "{full}"
    );
    let out = push(&full);
    assert_eq!(out["retention"]["deleted"], serde_json::json!([]), "{out}");
    let listed = s
        .tool("bucket-pull")
        .arg("--list")
        .arg(remote.join("app"))
        .run()
        .success()
        .records();
    assert_eq!(listed.len(), pushed, "--keep-within 48h keeps every point");

    // Without --state-dir: $XDG_STATE_HOME/sqlkeep/<db>-<hash>/.
    let record = s
        .tool("sqlite-snap")
        .args(["-q", "--incremental"])
        .arg(&db)
        .run()
        .success()
        .record();
    let state = Path::new(record["state"].as_str().unwrap());
    assert!(
        state.starts_with(s.join(".state/sqlkeep")),
        "{}",
        state.display()
    );
    assert!(
        state
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("app-")
    );
}
