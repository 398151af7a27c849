#!/usr/bin/env python3
"""Benchmark: sqlkeep against the scripts people run today, over an
emulated WAN (a latency proxy in front of the local S3 server).

On loopback a request costs well under a millisecond, so a tool that makes
a thousand needless requests, or opens a connection for each, looks as fast
as one that does not. Against a real provider in another region every round
trip costs tens of milliseconds and every new TLS connection more. This
script puts that cost back and compares, in one run:

  * tenants: the nightly backup of --tenants (1,000) databases of about
             --db-kb (1 MiB) each, --changed (50) of them changed since
             the last night: sqlkeep's nightly command against the seed
             script (`VACUUM INTO` each database, then `rclone sync`).
             Target: sqlkeep at least 10x faster (seed's time / sqlkeep's
             >= 10), and requests only for the changed databases;
  * files:   blob-sync's first sync of --files (10,000) small files into
             an empty prefix, and a restore of the same tree into an empty
             directory, against `rclone sync` (its defaults). Target:
             rclone's time / blob-sync's >= 1.0, with at most
             blob-sync's --transfers + 1 connections;

and for each row the connections opened and the requests by kind and by
B2 class.

Rows (--only names):

  tenants  storage/tenants/<tenant>/production.sqlite3 (generated once,
           kept, copied to a scratch directory for each run of this
           script). Each method backs the same directory up into its own
           prefix:
             sqlkeep: sqlite-snap -q --incremental --state-dir STATE storage/
                        | bucket-push -q s3://bkt/sqlkeep
             seed:    for each database, `rm -f out/<path>; sqlite3 DB
                        "VACUUM INTO 'out/<path>'"` (one process each, into
                        a directory kept between nights), then
                        `rclone sync out bench:bkt/seed`
           First night: each once, from nothing (reported, not compared).
           Then --runs times: --changed databases get a few inserts and an
           update (another set each run, the same for both methods), then
           each method's next night, timed.
  files    sync.py's Active Storage tree (bench/data/sync/storage, shared
           with it and kept). --runs times: `blob-sync -q --cache-dir EMPTY
           storage s3://bkt/files-blobsync-N` and `rclone sync storage
           bench:bkt/files-rclone-N --exclude "*.sqlite3*"`, then
           `blob-sync -q --cache-dir EMPTY s3://bkt/files-blobsync-N DIR`
           and `rclone sync bench:bkt/files-rclone-N DIR`.

How it measures, and why:

  * The WAN: a proxy in this script (LatencyProxy: sync.py's counting
    proxy with delay lines) on 127.0.0.1 in front of `rclone serve s3`.
    Each accepted connection is connected to the server at once, but
    nothing the client sends passes before --connect-ms (75) have gone by:
    a TCP and TLS handshake to a distant region. Then every chunk of bytes,
    both ways, is stamped when it arrives and forwarded when it is
    --one-way-ms (25) old, in order: a 50 ms round trip per request, 125 ms
    for a request on a new connection. Latency only: no bandwidth cap (the
    delay line reads as fast as the client sends), no packet loss, no
    jitter, no TCP slow start. A probe before the rows measures what the
    proxy adds, against the server alone, and prints it.
  * Both tools, and rclone, go through the same proxy to the same server.
    The proxy counts connections opened (accepted; a keep-alive connection
    carrying many requests counts once) and parses every request line
    (sync.py's RequestParser: bodies skipped by Content-Length or chunked
    framing, so keep-alive connections and bodies split across chunks are
    counted right), classified as in sync.py: class A = PUT, part, POST,
    DELETE; class B = GET and HEAD of an object; class C = LIST, HEAD of
    the bucket, COPY. It also sums the payload of uploads (incremental.py's
    proxy) and keeps each request's path, so the tenants row can say which
    databases a night touched.
  * sqlkeep's and blob-sync's own request counts (the `requests` field of
    their records) are checked against the proxy's on every run.
  * Times are wall-clock, the median of --runs; timed runs go round-robin
    (sqlkeep then seed; blob-sync then rclone), sync(2) before each run.
    After each change the script waits 2.5 s before the next night:
    sqlite-snap does not trust file signals recorded within 2 s of a
    change (it re-reads such a database once, at no request), and a real
    night comes hours after the day's writes.
  * Every result is checked, untimed, on the server's disk: sqlkeep's
    objects and latest.json for exactly the databases it stored, the seed
    copy of every database (the changed ones by SHA-256), both copies of
    the file tree (paths and sizes), and both restored trees (SHA-256 of
    every file). At the end three databases are restored with bucket-pull
    (directly from the server, untimed) and compared with their source:
    PRAGMA integrity_check and the rows of every table.

Usage:
  python3 bench/wan.py                                   # the headline
  python3 bench/wan.py --tenants 40 --changed 5 --files 400 --runs 1   # a check

Results for docs/benchmarks.md: the machine lines, the table and the lines
under it.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from benchlib import (MiB, Runner, Server, clean_env, common_args, cpu_model, die, first_line, log, nproc,
                      resolve_rclone, run_main, sha256_of, tool_envs, wait_for_build)
import incremental
import snapshot
import sync

BUCKET = sync.BUCKET            # the proxy's classifier knows this bucket name
ROWS = ("tenants", "files")

TENANTS_TARGET = 10.0           # seed's next night / sqlkeep's, at least
FILES_TARGET = 1.0              # rclone's time / blob-sync's, at least
SETTLE_SECS = 2.5               # after a change: sqlite-snap trusts signals older than 2 s

SEED = "sqlkeep-bench-wan-1"
GENERATOR = 1                   # bump when the tenants' recipe changes
PAGE_SIZE = 4096
TABLES = ("users", "posts", "comments")
SQLKEEP_PREFIX = "sqlkeep"
SEED_PREFIX = "seed"
SQLKEEP_LABEL = "sqlkeep: `sqlite-snap --incremental | bucket-push`"
SEED_LABEL = "seed: `VACUUM INTO` each + `rclone sync`"

# The seed script: what a cron job does today. One sqlite3 process per
# database, VACUUM INTO a directory kept between nights (VACUUM INTO will
# not overwrite, so last night's copy is removed first), then rclone sync
# with its defaults. It prints when each phase ended, for the breakdown.
SEED_SCRIPT = r"""set -eu
storage=$1 out=$2 remote=$3 rclone=$4 sqlite3=$5
cd "$storage"
echo "start $(date +%s.%N)"
find . -name '*.sqlite3' -type f | sort | while IFS= read -r db; do
  db=${db#./}
  mkdir -p "$out/$(dirname "$db")"
  rm -f "$out/$db"
  "$sqlite3" "$db" "VACUUM INTO '$out/$db'"
done
echo "vacuumed $(date +%s.%N)"
"$rclone" sync --config /dev/null "$out" "$remote"
echo "synced $(date +%s.%N)"
"""


# --------------------------------------------------------------------------
# The latency proxy
# --------------------------------------------------------------------------

_EOF, _RESET = object(), object()


class DelayLine:
    """One direction of a proxied connection. `read` takes chunks from `src`
    as fast as they come (through `parser`, if any, on arrival) and stamps
    each with when it may leave: `delay` seconds after it arrived, and never
    before `not_before` plus `delay`. `write` sends them to `dst` in order,
    each when due. A latency, not a bandwidth cap: reading never waits for
    writing. End of stream is passed on (half-close) after the same delay;
    a reset on either side ends both sockets."""

    def __init__(self, src: socket.socket, dst: socket.socket, parser: sync.RequestParser | None,
                 delay: float, late, not_before: float = 0.0):
        self.src, self.dst, self.parser = src, dst, parser
        self.delay, self.not_before = delay, not_before
        self.late = late  # (seconds) -> None: how long after its due time a chunk left
        self.queue: collections.deque = collections.deque()
        self.cond = threading.Condition()

    def _put(self, item) -> None:
        due = max(time.monotonic(), self.not_before) + self.delay
        with self.cond:
            self.queue.append((due, item))
            self.cond.notify()

    def read(self) -> None:
        end = _EOF
        try:
            while data := self.src.recv(256 * 1024):
                if self.parser is not None:
                    self.parser.feed(data)
                self._put(data)
        except OSError:
            end = _RESET
        self._put(end)

    def write(self) -> None:
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                due, item = self.queue.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.late(time.monotonic() - due)
            if item is _EOF:
                try:
                    self.dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                if item is _RESET:
                    raise OSError("reset")
                self.dst.sendall(item)
            except OSError:
                for s in (self.src, self.dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return


class LatencyProxy(incremental.Proxy):
    """sync.py's counting proxy (with incremental.py's upload-byte count),
    its bytes passed through a DelayLine each way: `connect_ms` before the
    first client byte may leave (the handshake of a new connection), then
    `one_way_ms` on every chunk in each direction. It also keeps every
    request's path, the most connections open at once (from the client's
    side: accepted, and not yet closed by the client), and how late the
    delay lines were (how long after its due time each chunk left: the
    proxy's own cost, which the emulated latency does not include)."""

    def __init__(self, upstream_port: int, one_way_ms: float, connect_ms: float):
        self.one_way = one_way_ms / 1000
        self.connect = connect_ms / 1000
        self._paths: list[str] = []
        self._late: list[float] = []
        self._open = 0
        self._open_peak = 0
        super().__init__(upstream_port)

    def _add_late(self, secs: float) -> None:
        with self._lock:
            self._late.append(secs)

    def _request(self, method: str, target: str, headers: dict[str, str]) -> None:
        super()._request(method, target, headers)
        path = unquote(urlsplit(target).path)
        with self._lock:
            self._paths.append(path)

    def take(self) -> sync.Counts:
        """The counts since the last take (with `.paths`, `.open_peak` and
        `.late`, the sorted lateness of every chunk), and a reset."""
        with self._lock:
            counts, self._counts = self._counts, collections.Counter()
            paths, self._paths = self._paths, []
            late, self._late = self._late, []
            peak, self._open_peak = self._open_peak, self._open
        c = sync.Counts(counts)
        c.paths = paths
        c.open_peak = peak
        c.late = sorted(late)
        return c

    def _relay(self, client: socket.socket, upstream: socket.socket, parser: sync.RequestParser) -> None:
        with self._lock:
            self._open += 1
            self._open_peak = max(self._open_peak, self._open)
        up = DelayLine(client, upstream, parser, self.one_way, self._add_late, time.monotonic() + self.connect)
        down = DelayLine(upstream, client, None, self.one_way, self._add_late)

        def client_side() -> None:
            up.read()  # returns when the client has closed (it raises nothing)
            with self._lock:
                self._open -= 1

        threads = [threading.Thread(target=f, daemon=True) for f in (client_side, up.write, down.read)]
        for t in threads:
            t.start()
        down.write()
        for t in threads:
            t.join()


def probe(endpoint: str, samples: int = 5) -> tuple[float, float]:
    """Median seconds of an unauthenticated `GET /` on a new connection,
    and of a second one on the same (keep-alive) connection."""
    host, port = urlsplit(endpoint).hostname, urlsplit(endpoint).port
    first, again = [], []
    for _ in range(samples):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            for out in (first, again):
                t0 = time.perf_counter()
                conn.request("GET", "/")
                conn.getresponse().read()
                out.append(time.perf_counter() - t0)
        finally:
            conn.close()
    return statistics.median(first), statistics.median(again)


# --------------------------------------------------------------------------
# The tenants
# --------------------------------------------------------------------------


def tenant_rel(i: int) -> str:
    """Tenant i's database, relative to storage/."""
    return f"tenants/{snapshot.LAST[i % len(snapshot.LAST)]}-{i:04d}/production.sqlite3"


def tenant_db(i: int) -> str:
    """Tenant i's name in sqlkeep (its path without the extension)."""
    return tenant_rel(i).removesuffix(".sqlite3")


def make_tenant(path: Path, i: int, db_kb: int, pool: snapshot.TextPool) -> None:
    """A Rails-like database (snapshot.py's schema) of about `db_kb` KiB for
    tenant i, from its own seeded RNG, in WAL mode."""
    rng = random.Random(f"{SEED}:tenant:{i}")
    pool.rng = rng  # the pool's slices come from this tenant's RNG too
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    con.executescript(snapshot.SCHEMA)
    now = 1_718_064_000.0
    con.executemany("INSERT INTO schema_migrations (version) VALUES (?)",
                    [("20240101000001",), ("20240101000002",), ("20240101000003",)])
    con.execute("INSERT INTO ar_internal_metadata VALUES ('environment', 'production', ?, ?)",
                (snapshot._ts(now), snapshot._ts(now)))
    clock = 1_609_459_200.0 + rng.uniform(0, 3e7)
    users, posts, comments = [], [], []
    n_users = rng.randint(20, 60)
    for u in range(1, n_users + 1):
        clock += rng.expovariate(1 / 3600.0)
        first, last = rng.choice(snapshot.FIRST), rng.choice(snapshot.LAST)
        users.append((u, f"{first}.{last}{u}@{rng.choice(snapshot.DOMAINS)}", f"{first.title()} {last.title()}",
                      snapshot._ts(clock), snapshot._ts(clock)))
    con.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?)", users)
    n_posts = n_comments = 0
    target = db_kb * 1024
    while con.execute("PRAGMA page_count").fetchone()[0] * PAGE_SIZE < target:
        posts, comments = [], []
        for _ in range(20):
            n_posts += 1
            clock += rng.expovariate(1 / 1800.0)
            c = snapshot._ts(clock)
            body_len = int(min(20_000, max(60, rng.lognormvariate(6.7, 1.0))))
            posts.append((n_posts, rng.randint(1, n_users), pool.take(rng.randint(15, 70)).rstrip(".?!"),
                          pool.take(body_len), c, c))
            for _ in range(rng.randint(0, 6)):
                n_comments += 1
                ts = snapshot._ts(clock + rng.uniform(0, 600))
                comments.append((n_comments, n_posts, rng.randint(1, n_users),
                                 pool.take(int(min(4000, max(8, rng.lognormvariate(4.8, 0.8))))), ts, ts))
        con.execute("BEGIN")
        con.executemany("INSERT INTO posts VALUES (?, ?, ?, ?, ?, ?)", posts)
        con.executemany("INSERT INTO comments VALUES (?, ?, ?, ?, ?, ?)", comments)
        con.execute("COMMIT")
    con.execute("PRAGMA journal_mode = WAL")
    con.close()  # the last connection: no -wal or -shm left


def make_tenants(root: Path, marker: Path, tenants: int, db_kb: int) -> float | None:
    """The tenants' storage/ directory, reused when the marker says it is
    this one. Returns the seconds it took, or None."""
    want = {"tenants": tenants, "db_kb": db_kb, "seed": SEED, "generator": GENERATOR}
    try:
        if json.loads(marker.read_text()) == want and all((root / tenant_rel(i)).is_file() for i in range(tenants)):
            log(f"reusing {root} ({tenants} tenant databases)")
            return None
    except (OSError, ValueError):
        pass
    marker.unlink(missing_ok=True)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    need = tenants * db_kb * 1024 * 6 + 512 * MiB
    if shutil.disk_usage(root).free < need:
        die(f"not enough free disk under {root}: need about {need / MiB:.0f} MiB for the tenants and their copies")
    log(f"generating {tenants} tenant databases of about {db_kb} KiB under {root} ...")
    t0 = time.perf_counter()
    pool = snapshot.TextPool(random.Random(f"{SEED}:pool"), 4 * MiB)
    for i in range(tenants):
        make_tenant(root / tenant_rel(i), i, db_kb, pool)
        if (i + 1) % 100 == 0:
            log(f"  {i + 1}/{tenants}")
    os.sync()
    marker.write_text(json.dumps(want) + "\n")
    return time.perf_counter() - t0


def change_tenant(path: Path, run: int, i: int) -> None:
    """What a tenant's day does to its database: a new post, a few comments,
    an edited post (deterministic for run and tenant)."""
    rng = random.Random(f"{SEED}:change:{run}:{i}")
    stamp = snapshot._ts(1_764_000_000 + run * 86_400 + rng.uniform(0, 3600))

    def text(n: int) -> str:
        return " ".join(rng.choices(snapshot._WORDS, k=n)).capitalize() + "."

    con = sqlite3.connect(path, isolation_level=None, timeout=60)
    try:
        users = con.execute("SELECT max(id) FROM users").fetchone()[0]
        top = con.execute("SELECT max(id) FROM posts").fetchone()[0]
        con.execute("BEGIN IMMEDIATE")
        cur = con.execute("INSERT INTO posts (user_id, title, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                          (rng.randint(1, users), text(6), text(rng.randint(40, 200)), stamp, stamp))
        post = cur.lastrowid
        for _ in range(rng.randint(2, 5)):
            con.execute("INSERT INTO comments (post_id, user_id, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                        (rng.choice((post, rng.randint(1, top))), rng.randint(1, users), text(rng.randint(5, 30)),
                         stamp, stamp))
        con.execute("UPDATE posts SET body = ?, updated_at = ? WHERE id = ?",
                    (text(rng.randint(40, 200)), stamp, rng.randint(1, top)))
        con.execute("COMMIT")
    finally:
        con.close()


def db_facts(path: Path) -> tuple[str, dict[str, int]]:
    """A database's integrity_check answer and the rows of each table."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        return ok, {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        con.close()


# --------------------------------------------------------------------------
# Rows and the report
# --------------------------------------------------------------------------


class Row(sync.Row):
    """sync.py's row (times, counts per run), with the row's group, the
    reference it is compared with, and notes."""

    def __init__(self, group: str, label: str, tool: str, ref: Row | None = None, target: bool = False):
        super().__init__(label, tool)
        self.group = group
        self.ref = ref
        self.target = target  # the ratio has a target (bold in the table)
        self.notes: list[str] = []

    def connections(self) -> list[int]:
        return [c.kinds.get("connections", 0) for c in self.counts]

    def late_ms(self) -> tuple[float, float, float]:
        """The proxy's lateness over the row's runs: median, 99th
        percentile and largest, in ms."""
        late = sorted(x for c in self.counts for x in getattr(c, "late", []))
        if not late:
            return 0.0, 0.0, 0.0
        return (late[len(late) // 2] * 1000, late[min(len(late) - 1, len(late) * 99 // 100)] * 1000,
                late[-1] * 1000)

    def ratio(self) -> float | None:
        """The reference's median time / this row's (above 1: this is faster)."""
        return self.ref.median() / self.median() if self.ref is not None else None

    def as_json(self) -> dict:
        c = self.typical()
        return {"group": self.group, "label": self.label, "tool": self.tool, "times": self.times,
                "median": self.median(), "ratio": self.ratio(), "connections": self.connections(),
                "open_peak": [getattr(x, "open_peak", None) for x in self.counts],
                "requests": {k: v for k, v in c.kinds.items() if k in sync.KINDS},
                "class": {k: c.cls(k) for k in "ABC"}, "bytes_up": incremental.up_bytes(c),
                "proxy_late_ms": dict(zip(("p50", "p99", "max"), self.late_ms())),
                "requests_varied": self.varied(), "notes": self.notes}


def kind(c: sync.Counts, name: str) -> int:
    return c.kinds.get(name, 0)


def table(rows: list[Row]) -> None:
    print("| row | tool | runs | median s | speed-up | connections | class A | class B | class C "
          "| PUT | GET | HEAD | LIST | COPY | other | MiB up |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        c = r.typical()
        shown = c.col("PUT") + c.col("GET") + c.col("HEAD") + c.col("LIST") + kind(c, "COPY")
        ratio = r.ratio()
        speed = "(reference)" if ratio is None else f"**{ratio:.2f}×**" if r.target else f"{ratio:.2f}×"
        label = r.label.replace("|", "\\|")  # a pipe inside a table cell, code span or not
        print(f"| {r.group} | {label} | {len(r.times)} | {r.median():.2f} | {speed} | "
              f"{int(statistics.median(r.connections())):,} | {c.cls('A'):,} | {c.cls('B'):,} | {c.cls('C'):,} | "
              f"{c.col('PUT'):,} | {c.col('GET'):,} | {c.col('HEAD'):,} | {c.col('LIST'):,} | "
              f"{kind(c, 'COPY'):,} | {c.requests() - shown:,} | {incremental.up_bytes(c) / MiB:.1f} |")
    print()
    for r in rows:
        c = r.typical()
        line = f"- {r.group}, {r.label}: {c.detail()}"
        conns = r.connections()
        line += f"; connections {' '.join(f'{n:,}' for n in conns)}"
        peaks = [getattr(x, "open_peak", 0) for x in r.counts]
        line += f" (at most {max(peaks)} open at once)"
        line += "; proxy late p50 {:.1f} / p99 {:.1f} / max {:.1f} ms".format(*r.late_ms())
        if len(r.times) > 1:
            line += "; per-run s " + " ".join(f"{t:.2f}" for t in r.times)
        if r.varied():
            line += "; requests varied: " + " | ".join(x.detail() for x in r.counts)
        for note in r.notes:
            line += f"; {note}"
        print(line)
    print()


# --------------------------------------------------------------------------
# The bench
# --------------------------------------------------------------------------


class Bench:
    def __init__(self, args, here: Path, rclone: str):
        self.args = args
        self.rclone = rclone
        self.bin = args.bin_dir.resolve()
        self.snap = str(self.bin / "sqlite-snap")
        self.push = str(self.bin / "bucket-push")
        self.pull = str(self.bin / "bucket-pull")
        self.blob_sync = str(self.bin / "blob-sync")
        self.sqlite3 = shutil.which("sqlite3") or "sqlite3"
        self.base = here / "data" / "wan"
        self.tenants_src = self.base / "tenants"
        self.tenants_marker = self.base / "tenants.json"
        self.files_src = here / "data" / "sync" / "storage"
        self.files_marker = here / "data" / "sync" / "storage.json"
        self.scratch = self.base / "scratch"
        self.logs = self.scratch / "logs"
        self.tmp = self.scratch / "tmp"
        self.server_root = self.scratch / "server"
        self.bucket = self.server_root / BUCKET
        self.rows: list[Row] = []
        self.lines: list[str] = []     # under the table
        self.checks: list[tuple[str, bool]] = []
        self.mismatches: list[str] = []

    def check(self, text: str, ok: bool) -> None:
        self.checks.append((text, ok))

    # One run ---------------------------------------------------------------

    def run(self, row: Row, argv: list[str], env: dict, timed: bool = True) -> tuple[sync.Counts, str]:
        """Runs one command (sync(2) first), with the proxy's counts of just
        that command."""
        os.sync()
        self.proxy.take()
        secs, _, stdout = self.runner.run(argv, env)
        counts = self.proxy.take()
        if timed:
            row.times.append(secs)
            row.counts.append(counts)
        if counts.kinds.get("unparsed") or counts.kinds.get("proxy-errors"):
            self.mismatches.append(f"{row.group}, {row.label}: the proxy lost track ({counts.detail()}, "
                                   f"{counts.kinds.get('proxy-errors', 0)} proxy errors)")
        log(f"  {row.group + ', ' + row.label:44} {secs:8.2f} s  {counts.kinds.get('connections', 0):6,} conn  "
            f"{counts.detail()}")
        return counts, stdout

    def own_counts(self, row: Row, counts: sync.Counts, recs: list[dict]) -> None:
        """Compares the proxy's counts with the sum of the tools' own
        `requests` fields."""
        own: collections.Counter = collections.Counter()
        for rec in recs:
            for k, v in (rec.get("requests") or {}).items():
                if not k.startswith("class_"):
                    own[k] += v
        mine = counts.as_record()
        if any(own.get(k, 0) != v for k, v in mine.items()) or any(v and k not in mine for k, v in own.items()):
            self.mismatches.append(f"{row.group}, {row.label}: proxy {mine}, the records' {dict(own)}")

    # Tenants ---------------------------------------------------------------

    def section_tenants(self) -> None:
        a = self.args
        storage = self.scratch / "storage"
        out = self.scratch / "seed-out"
        state = self.scratch / "state"
        script = self.scratch / "seed-night.sh"
        script.write_text(SEED_SCRIPT)
        log(f"== tenants: copying {a.tenants} databases to {storage}")
        shutil.copytree(self.tenants_src, storage)
        out.mkdir()
        total = sum(p.stat().st_size for p in storage.rglob("*.sqlite3"))
        self.lines.append(f"Tenants: {a.tenants:,} databases ({total / MiB:.0f} MiB, "
                          f"{total / a.tenants / 1024:.0f} KiB each on average; snapshot.py's schema, WAL mode) at "
                          f"storage/tenants/<tenant>/production.sqlite3; {a.changed} changed before each next night "
                          f"(a post, 2-5 comments and an edit each; another {a.changed} each run)")
        time.sleep(SETTLE_SECS)
        env_sk, env_rc = self.envs["sqlkeep"], self.envs["rclone"]
        sk_remote = f"s3://{BUCKET}/{SQLKEEP_PREFIX}"
        q = incremental._q
        sk_argv = ["bash", "-o", "pipefail", "-c",
                   (f"{q(self.snap)} -q --incremental --state-dir {q(str(state))} {q(str(storage))}/ "
                    f"| {q(self.push)} -q {q(sk_remote)}")]
        seed_argv = ["sh", str(script), str(storage), str(out), f"bench:{BUCKET}/{SEED_PREFIX}", self.rclone,
                     self.sqlite3]
        everyone = {tenant_db(i) for i in range(a.tenants)}

        def sqlkeep(row: Row, expect: set[str]) -> None:
            counts, stdout = self.run(row, sk_argv, env_sk)
            recs = [r for r in incremental.records(stdout) if r.get("type") == "object"]
            self.own_counts(row, counts, recs)
            stored = {r.get("db") for r in recs}
            if stored != expect:
                die(f"tenants, {row.label}: bucket-push stored {len(stored)} databases, expected "
                    f"{len(expect)}: {sorted(stored ^ expect)[:5]} differ", 1)
            for r in recs:
                obj = self.bucket / urlsplit(r["url"]).path.lstrip("/")  # s3://bkt/<key>
                if not obj.is_file() or obj.stat().st_size != r["bytes"]:
                    die(f"tenants, {row.label}: {r['url']} is not on the server with {r['bytes']} bytes", 1)
                latest = json.loads((self.bucket / SQLKEEP_PREFIX / r["db"] / "latest.json").read_text())
                if latest.get("url") != r["url"]:
                    die(f"tenants, {row.label}: latest.json of {r['db']} names {latest.get('url')}, not {r['url']}", 1)
            touched = set()
            for p in counts.paths:
                m = re.match(rf"/{BUCKET}/{SQLKEEP_PREFIX}/(.+)/[^/]+$", p)
                touched.add(m.group(1) if m else p)
            row.notes.append(f"run {len(row.times)}: stored {len(recs)}, "
                             f"requests touched {len(touched)} databases"
                             + ("" if touched <= expect else f" and {sorted(touched - expect)[:3]}"))
            row.touched = touched

        def seed(row: Row, changed: set[int]) -> None:
            _, stdout = self.run(row, seed_argv, env_rc)
            stamps = dict(line.split() for line in stdout.splitlines() if len(line.split()) == 2)
            try:
                vac = float(stamps["vacuumed"]) - float(stamps["start"])
                rcl = float(stamps["synced"]) - float(stamps["vacuumed"])
                row.notes.append(f"run {len(row.times)}: VACUUM INTO {vac:.2f} s, rclone sync {rcl:.2f} s")
            except (KeyError, ValueError):
                pass
            for i in range(a.tenants):
                rel = tenant_rel(i)
                got, want = self.bucket / SEED_PREFIX / rel, out / rel
                if not got.is_file() or got.stat().st_size != want.stat().st_size:
                    die(f"tenants, {row.label}: {SEED_PREFIX}/{rel} is missing on the server or of another size", 1)
                if i in changed and sha256_of(got) != sha256_of(want):
                    die(f"tenants, {row.label}: {SEED_PREFIX}/{rel} on the server is not last night's copy", 1)

        first_seed = Row("tenants, first night", SEED_LABEL, "seed")
        first_sk = Row("tenants, first night", SQLKEEP_LABEL, "sqlkeep", ref=first_seed)
        log("tenants: first night, each method once")
        sqlkeep(first_sk, everyone)
        seed(first_seed, set(range(a.tenants)))
        self.rows += [first_sk, first_seed]

        next_seed = Row("tenants, next night", SEED_LABEL, "seed")
        next_sk = Row("tenants, next night", SQLKEEP_LABEL, "sqlkeep", ref=next_seed, target=True)
        order = random.Random(f"{SEED}:changed").sample(range(a.tenants), a.tenants)
        only_changed = True
        last = []
        for n in range(a.runs):
            changed = [order[(n * a.changed + k) % a.tenants] for k in range(a.changed)]
            log(f"tenants: run {n + 1}/{a.runs}: changing {len(changed)} databases")
            for i in changed:
                change_tenant(storage / tenant_rel(i), n, i)
            time.sleep(SETTLE_SECS)
            expect = {tenant_db(i) for i in changed}
            sqlkeep(next_sk, expect)
            only_changed &= next_sk.touched == expect
            seed(next_seed, set(changed))
            last = changed
        self.rows += [next_sk, next_seed]

        # Restores, untimed and straight from the server: two databases of
        # the last change (full + deltas) and one never changed (the full);
        # the seed's copies of the same, copied out of the server's tree
        # first (opening a WAL-mode file makes a -shm beside it).
        ever = {order[(n * a.changed + k) % a.tenants] for n in range(a.runs) for k in range(a.changed)}
        never = next((i for i in range(a.tenants) if i not in ever), None)
        picks = last[:2] + ([never] if never is not None else [])
        restore = self.scratch / "restore"
        direct = tool_envs(self.server.endpoint, self.tmp)["sqlkeep"]
        said = []
        for i in picks:
            dest, seed_copy = restore / f"{i}.sqlite3", restore / f"{i}.seed.sqlite3"
            self.runner.run([self.pull, "-q", f"s3://{BUCKET}/{SQLKEEP_PREFIX}/{tenant_db(i)}", "-o", str(dest)],
                            direct)
            shutil.copyfile(self.bucket / SEED_PREFIX / tenant_rel(i), seed_copy)
            want = db_facts(storage / tenant_rel(i))
            for what, got in (("bucket-pull", db_facts(dest)), ("seed copy", db_facts(seed_copy))):
                if got != want or got[0] != "ok":
                    die(f"tenants: the {what} of {tenant_db(i)} is not the database: {got} against {want}", 1)
            said.append(f"{tenant_db(i)} ({', '.join(f'{n:,} {t}' for t, n in want[1].items())})")
        self.lines.append("Tenants restored with bucket-pull (and the seed's copies opened) match their source, "
                          f"integrity_check ok and the same rows: {'; '.join(said)}")

        r = next_sk.ratio()
        self.check(f"tenants, next night: seed / sqlkeep = {r:.2f}× ({next_seed.median():.2f} / "
                   f"{next_sk.median():.2f} s; target ≥ {TENANTS_TARGET:.0f}×)", r >= TENANTS_TARGET)
        c = next_sk.typical()
        self.check(f"tenants, next night: sqlkeep's requests touched only the {a.changed} changed databases, on "
                   f"every run ({c.requests():,} requests: {c.detail()}; "
                   f"{c.requests() / a.changed:.1f} per changed database)", only_changed)

    # Files -----------------------------------------------------------------

    def section_files(self) -> None:
        a = self.args
        self.files_gen = sync.make_tree(self.files_src, self.files_marker, a.files)
        want = sync.source_tree(self.files_src)
        log(f"== files: hashing the {len(want):,} files of {self.files_src}")
        hashes = {p: sha256_of(self.files_src / p) for p in sorted(want)}
        size = sum(want.values())
        self.lines.append(f"Files: sync.py's tree, {len(want):,} files, {size / MiB:.0f} MiB (ab/cd/<key>, 1-200 KiB), "
                          f"plus {len(sync.SQLITE_FILES)} SQLite files both tools exclude")
        help_text = subprocess.run([self.blob_sync, "--help"], check=False, capture_output=True, text=True).stdout
        m = re.search(r"--transfers <N>.*?\[default: (\d+)\]", help_text, re.DOTALL)
        transfers = int(m.group(1)) if m else 4
        env_bs, env_rc = self.envs["sqlkeep"], self.envs["rclone"]
        up_rc = Row("files, first sync", "`rclone sync` (defaults)", "rclone")
        up_bs = Row("files, first sync", "`blob-sync`", "blob-sync", ref=up_rc, target=True)
        down_rc = Row("files, restore", "`rclone sync` (defaults)", "rclone")
        down_bs = Row("files, restore", "`blob-sync`", "blob-sync", ref=down_rc, target=True)

        def verify(tree: Path, what: str) -> None:
            got = {}
            for dirpath, _, names in os.walk(tree):
                for name in names:
                    p = Path(dirpath) / name
                    rel = p.relative_to(tree).as_posix()
                    if rel != sync.MANIFEST:
                        got[rel] = sha256_of(p)
            if got != hashes:
                bad = sorted(k for k in set(got) | set(hashes) if got.get(k) != hashes.get(k))
                die(f"files, {what}: the restored tree is not the source: {len(bad)} files differ {bad[:3]}", 1)

        for n in range(1, a.runs + 1):
            log(f"files: run {n}/{a.runs}")
            bs_prefix, rc_prefix = f"files-blobsync-{n}", f"files-rclone-{n}"
            caches = [self.scratch / f"cache-{n}-{k}" for k in ("up", "down")]
            dests = [self.scratch / f"restore-{n}-{k}" for k in ("blob-sync", "rclone")]
            for d in caches:
                d.mkdir()
            counts, stdout = self.run(up_bs, [self.blob_sync, "-q", "--cache-dir", str(caches[0]),
                                              str(self.files_src), f"s3://{BUCKET}/{bs_prefix}"], env_bs)
            self.own_counts(up_bs, counts, incremental.records(stdout))
            self.run(up_rc, [self.rclone, "sync", "--config", "/dev/null", str(self.files_src),
                             f"bench:{BUCKET}/{rc_prefix}", "--exclude", sync.RCLONE_EXCLUDE], env_rc)
            sync.check_remote(self.bucket / bs_prefix, want, f"blob-sync, first sync {n}", {sync.MANIFEST})
            sync.check_remote(self.bucket / rc_prefix, want, f"rclone, first sync {n}", set())
            counts, stdout = self.run(down_bs, [self.blob_sync, "-q", "--cache-dir", str(caches[1]),
                                                f"s3://{BUCKET}/{bs_prefix}", str(dests[0])], env_bs)
            self.own_counts(down_bs, counts, incremental.records(stdout))
            self.run(down_rc, [self.rclone, "sync", "--config", "/dev/null", f"bench:{BUCKET}/{rc_prefix}",
                               str(dests[1])], env_rc)
            verify(dests[0], f"blob-sync restore {n}")
            verify(dests[1], f"rclone restore {n}")
            for d in caches + dests + [self.bucket / bs_prefix, self.bucket / rc_prefix]:
                shutil.rmtree(d, ignore_errors=True)
        self.rows += [up_bs, up_rc, down_bs, down_rc]
        self.lines.append("Files checked: both copies on the server are the tree (paths and sizes) after every first "
                          "sync, and both restored trees are the tree (SHA-256 of every file) after every restore")

        for row in (up_bs, down_bs):
            r = row.ratio()
            self.check(f"{row.group}: rclone / blob-sync = {r:.2f}× ({row.ref.median():.2f} / {row.median():.2f} s; "
                       f"target ≥ {FILES_TARGET:.1f}×)", r >= FILES_TARGET)
            most = max(row.connections())
            runs = f"{len(row.times)} run" + ("s" if len(row.times) > 1 else "")
            self.check(f"{row.group}: blob-sync connections = {most:,} (the most in {runs}; target ≤ "
                       f"--transfers + 1 = {transfers + 1})", most <= transfers + 1)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(
        description="sqlkeep against the seed script (VACUUM INTO + rclone sync) on a nightly backup of tenant "
        "databases, and blob-sync against rclone sync on a first sync and a restore of small files, over "
        "an emulated WAN: a latency proxy in front of a local `rclone serve s3`.",
        epilog="rows: " + ", ".join(ROWS))
    ap.add_argument("--tenants", type=int, default=1000, help="tenant databases (default 1000)")
    ap.add_argument("--db-kb", type=int, default=1024, help="size of each tenant database in KiB (default 1024)")
    ap.add_argument("--changed", type=int, default=50, help="databases changed before each next night (default 50)")
    ap.add_argument("--files", type=int, default=10000, help="files in the tree (default 10000)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each row; the median is reported (default 3)")
    ap.add_argument("--one-way-ms", type=float, default=25.0,
                    help="delay on every chunk, each way (default 25: a 50 ms round trip)")
    ap.add_argument("--connect-ms", type=float, default=75.0,
                    help="extra delay before a new connection's first byte (default 75: a TLS handshake far away)")
    ap.add_argument("--only", help="comma-separated rows to run (default: all)")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    common_args(ap, here, "sqlite-snap, bucket-push, bucket-pull and blob-sync are", "tenant databases and file tree")
    args = ap.parse_args()

    if args.runs < 1:
        die("--runs must be at least 1")
    if args.tenants < 3 or not 1 <= args.changed <= args.tenants:
        die("--tenants must be at least 3, and --changed between 1 and --tenants")
    if args.db_kb < 64:
        die("--db-kb must be at least 64")
    if args.files < 1:
        die("--files must be at least 1")
    if args.one_way_ms < 0 or args.connect_ms < 0:
        die("--one-way-ms and --connect-ms cannot be negative")
    rows = list(ROWS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in ROWS]
        if unknown:
            die(f"unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
        rows = [r for r in ROWS if r in names]
    if "tenants" in rows and shutil.which("sqlite3") is None:
        die("sqlite3 is not installed or not on PATH (the seed script's VACUUM INTO)")
    rclone = resolve_rclone(args.rclone)
    bin_dir = args.bin_dir.resolve()
    tools = ("sqlite-snap", "bucket-push", "bucket-pull", "blob-sync")
    # Binaries built from this checkout must be newer than its sources;
    # binaries elsewhere (another worktree's target) are taken as they are.
    sources = []
    if here.parent in bin_dir.parents:
        sources = sorted((here.parent / "common" / "src").rglob("*.rs")) + [
            p for t in tools for p in (here.parent / "tools" / t / "src").rglob("*.rs")]
    wait_for_build([bin_dir / t for t in tools], sources, args.wait_build)

    B = Bench(args, here, rclone)
    B.base.mkdir(parents=True, exist_ok=True)
    gen_secs = None
    if "tenants" in rows:
        gen_secs = make_tenants(B.tenants_src, B.tenants_marker, args.tenants, args.db_kb)
    if B.scratch.exists():
        shutil.rmtree(B.scratch)
    for d in (B.logs, B.tmp, B.bucket):
        d.mkdir(parents=True)
    B.files_gen = None

    base_env = clean_env({}, B.tmp)
    server = Server(rclone, B.server_root, base_env)
    proxy = None
    t0 = time.perf_counter()
    try:
        assert server.endpoint is not None and server.port is not None
        proxy = LatencyProxy(server.port, args.one_way_ms, args.connect_ms)
        B.server, B.proxy = server, proxy
        B.envs = tool_envs(proxy.endpoint, B.tmp)
        B.runner = Runner(B.logs, args.launcher, server, env=base_env)
        log(f"rclone serve s3 on {server.endpoint}, serving {B.server_root}; latency proxy on {proxy.endpoint} "
            f"({args.one_way_ms:g} ms each way, {args.connect_ms:g} ms more per new connection)")
        direct = probe(server.endpoint)
        through = probe(proxy.endpoint)
        proxy.take()
        load_before = os.getloadavg()
        for r in rows:
            getattr(B, f"section_{r}")()
        load_after = os.getloadavg()
        server_hwm = server.peak_rss_kib()
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()
        shutil.rmtree(B.scratch, ignore_errors=True)
    total = time.perf_counter() - t0

    versions = {"rclone": first_line([rclone, "version"], base_env),
                "sqlkeep": first_line([B.snap, "--version"]),
                "sqlite3": first_line([B.sqlite3, "--version"]).split(" ")[0] if "tenants" in rows else None}
    machine = (f"Machine: nproc {nproc()}, CPU {cpu_model()}; {versions['rclone']} (client and server); "
               f"{versions['sqlkeep']} from {bin_dir}" +
               (f"; sqlite3 {versions['sqlite3']} (the seed script)" if versions["sqlite3"] else ""))
    wan = (f"WAN: this script's latency proxy in front of rclone serve s3 --dir-cache-time 100ms on 127.0.0.1: "
           f"{args.one_way_ms:g} ms each way on every chunk, {args.connect_ms:g} ms more before a new connection's "
           f"first byte; no bandwidth cap, no loss. Probe (GET /, median of 5): a new connection "
           f"{through[0] * 1000:.0f} ms through the proxy ({direct[0] * 1000:.1f} ms direct), a reused one "
           f"{through[1] * 1000:.0f} ms ({direct[1] * 1000:.1f} ms direct)")
    print()
    print(machine)
    print(wan)
    print(f"Runs: {args.runs} timed per row (median reported), round-robin, sync(2) before each; load average 1 min: "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; {total:.0f} s for the rows {', '.join(rows)}. "
          "Connections and requests per run, from the proxy (the typical run's); class A = PUT, part, POST, "
          "DELETE; B = GET, HEAD of an object; C = LIST, HEAD of the bucket, COPY")
    if gen_secs is not None:
        print(f"Tenant databases generated in {gen_secs:.1f} s")
    if B.files_gen is not None:
        print(f"File tree generated in {B.files_gen:.1f} s")
    print()
    table(B.rows)
    for line in B.lines:
        print(line)
    if server_hwm:
        print(f"rclone serve s3 (not counted in any row) peak RSS: {server_hwm / 1024:.1f} MiB")
    print()
    for text, ok in B.checks:
        print(f"{text} {'PASS' if ok else 'FAIL'}")
    if B.mismatches:
        print("request counts, proxy against the tools' own records and the proxy's parsing: FAIL")
        for m in B.mismatches:
            print(f"  {m}")
    else:
        print("request counts: the proxy's equal sqlkeep's and blob-sync's own records on every run, and every "
              "request line was parsed: PASS")

    if args.json:
        args.json.write_text(json.dumps({
            "machine": {"nproc": nproc(), "cpu": cpu_model(), **versions},
            "wan": {"one_way_ms": args.one_way_ms, "connect_ms": args.connect_ms,
                    "probe_new_ms": through[0] * 1000, "probe_reused_ms": through[1] * 1000,
                    "direct_new_ms": direct[0] * 1000, "direct_reused_ms": direct[1] * 1000},
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "rows": [r.as_json() for r in B.rows],
            "lines": B.lines,
            "checks": [{"check": t, "pass": ok} for t, ok in B.checks],
            "mismatches": B.mismatches,
        }, indent=2) + "\n")
        log(f"wrote {args.json}")

    if not args.keep:
        shutil.rmtree(B.tenants_src, ignore_errors=True)
        B.tenants_marker.unlink(missing_ok=True)
        if B.files_gen is not None:
            shutil.rmtree(B.files_src, ignore_errors=True)
            B.files_marker.unlink(missing_ok=True)
        log("removed the generated data (--no-keep)")
    try:
        B.base.rmdir()
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    run_main(main)
