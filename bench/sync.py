#!/usr/bin/env python3
"""Benchmark: what does a no-change re-sync of an Active Storage tree cost,
in time and in requests, with blob-sync against `rclone sync`?

People back up Rails' uploaded files (Active Storage's disk service,
storage/ab/cd/<key>) with `rclone sync storage/ remote:files --exclude
"*.sqlite3*"`, nightly; on most nights nothing or almost nothing changed.
sqlkeep claims that blob-sync makes such a sync cheap, and this script
checks it on the same tree and the same S3 server, in one run:

  * requests: a no-change blob-sync makes no request at all with its local
              cache, and one GET (the destination's manifest) without it;
              10 changed files cost 10 PUTs plus the manifest's GET and PUT, and
              no other GET, no HEAD or LIST;
  * time:     a no-change blob-sync is at least as fast as a no-change
              `rclone sync` with rclone's defaults (rclone's time /
              blob-sync's time >= 1.0).

Rows measured:

  initial         the first, full sync of each tool into an empty prefix
                  (one run each; its time and requests are reported, not
                  compared)
  no change       blob-sync -q --cache-dir CACHE storage s3://bkt/blobsync
                  rclone sync storage bench:bkt/rclone --exclude "*.sqlite3*"
                  (one untimed warm-up each, then --runs timed runs,
                  round-robin; the median is reported)
                  and once each, after them:
                  blob-sync with --cache-dir an empty directory (the
                    one-GET path of a machine without the cache)
                  blob-sync --full-check (the listing path)
                  rclone sync --fast-list (rclone's cheapest listing)
  10 changed      10 files rewritten (new content, new size, new mtime),
                  then each tool syncs once

How it measures, and why:

  * The tree is bench/data/sync/storage: --files files laid out as Rails'
    disk service does, ab/cd/<28-char base36 key>, no extension, sizes from
    1 KiB to 200 KiB (lognormal, median 24 KiB: thumbnails and small
    photos), random bytes, modification times spread over two years; plus
    production.sqlite3, -wal and -shm at the top, which both tools exclude
    (blob-sync by default, rclone with --exclude "*.sqlite3*"). Every file
    comes from its own seeded RNG, so the tree is the same on every machine.
    It is kept (with a marker, bench/data/sync/storage.json) and reused
    while --files is the same.
  * The server is `rclone serve s3 --dir-cache-time 100ms` on 127.0.0.1
    with a port the OS picks, serving bench/data/sync/server/ (bucket
    `bkt`), started fresh for each run of this script and removed at the
    end. Not `--dir-cache-time 0s` (nor is transfer.py's): with it, rclone
    serve s3 stalls on uploads into many new nested directories (300 of
    them did not finish in 120 s); 100ms does not.
  * Both tools reach the server through a counting proxy in this script
    (127.0.0.1, a port the OS picks): it forwards every connection to the
    server byte for byte and reads the request lines in the client's bytes
    (skipping bodies by Content-Length or chunked framing, so keep-alive
    connections carrying many requests are counted right), classifying
    each as PUT, GET, HEAD (object or bucket), LIST (a GET on the bucket
    root), DELETE, POST or COPY. The counts are reset before every run, so
    each row's requests are its own, counted the same way for both tools.
    blob-sync's own count (the `requests` field of its record) is checked
    against the proxy's on every run.
  * B2's billing classes: class A (PUT, parts, POST, DELETE) is free;
    class B = GET + HEAD of an object; class C = LIST + HEAD of the bucket
    + COPY (and any other bucket-level GET); B and C are billed beyond
    2,500 a day each.
  * blob-sync gets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_REGION=us-east-1, AWS_ENDPOINT_URL_S3 (the proxy) and
    --cache-dir bench/data/sync/cache; rclone a remote `bench` (type s3,
    provider Other, the proxy as endpoint) from RCLONE_CONFIG_BENCH_*
    variables and --config /dev/null. Every other AWS_* and RCLONE_*
    variable is dropped: both tools run with their defaults.
  * Peak RSS is per command, measured one process removed from this script
    (GNU `time -f %M`, or a minimal fork/exec/wait4 launcher), as in
    transfer.py; the largest over the row's runs, warm-up included.
  * sync(2) is called before every run, outside the timed region. The
    tree, and the server's copies, are in the page cache for every row
    alike after the initial syncs and the warm-ups.
  * After the initial syncs and after the 10-changed run, both prefixes on
    the server's disk are checked, untimed, to hold exactly the tree (paths
    and sizes; the 10 changed files also by SHA-256), and no SQLite file.
    The 10 files are put back as generated at the end, so the kept tree
    stays the generated one.

Usage:
  python3 bench/sync.py                          # the headline: 10,000 files
  python3 bench/sync.py --files 2000 --runs 3    # a quick check

Results for docs/benchmarks.md: the Markdown tables and the lines under
them.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import os
import random
import shutil
import socket
import statistics
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from benchlib import (common_args, run_main, KiB, MiB, Runner, Server, clean_env, cpu_model, die, first_line, first_record, log,
                      nproc, resolve_rclone, sha256_of, tool_envs, wait_for_build)


BUCKET = "bkt"
BLOBSYNC_PREFIX = "blobsync"
RCLONE_PREFIX = "rclone"
BLOBSYNC_REMOTE = f"s3://{BUCKET}/{BLOBSYNC_PREFIX}"
RCLONE_REMOTE = f"bench:{BUCKET}/{RCLONE_PREFIX}"
RCLONE_EXCLUDE = "*.sqlite3*"
MANIFEST = ".sqlkeep-sync.json"  # blob-sync's manifest in the destination

SEED = "sqlkeep-bench-sync-1"
GENERATOR = 1                   # bump when the tree's recipe changes
BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
MIN_SIZE = 1 * KiB
MAX_SIZE = 200 * KiB
MEDIAN_SIZE = 24 * KiB
SIGMA = 0.9
MTIME_FROM = 1_700_000_000      # 2023-11-14; mtimes spread over two years after it
MTIME_SPAN = 2 * 365 * 86400
SQLITE_FILES = (("production.sqlite3", 8 * MiB), ("production.sqlite3-wal", 2 * MiB),
                ("production.sqlite3-shm", 32 * KiB))
CHANGED = 10

TIME_TARGET = 1.0               # rclone's time / blob-sync's time, at least



# --------------------------------------------------------------------------
# The tree
# --------------------------------------------------------------------------


def blob_key(i: int) -> str:
    """File i's Active Storage key: 28 base36 characters, like
    `SecureRandom.base36(28)`."""
    rng = random.Random(f"{SEED}:key:{i}")
    return "".join(rng.choice(BASE36) for _ in range(28))


def blob_path(i: int) -> str:
    """Where the disk service keeps file i: ab/cd/<key>."""
    key = blob_key(i)
    return f"{key[:2]}/{key[2:4]}/{key}"


def blob_content(i: int, variant: str = "") -> bytes:
    """File i's bytes (`variant` "changed" for its rewritten version)."""
    rng = random.Random(f"{SEED}:content{variant}:{i}")
    size = int(rng.lognormvariate(math.log(MEDIAN_SIZE), SIGMA))
    size = max(MIN_SIZE, min(MAX_SIZE, size))
    return rng.randbytes(size)


def blob_mtime_ns(i: int) -> int:
    rng = random.Random(f"{SEED}:mtime:{i}")
    return (MTIME_FROM + rng.randrange(MTIME_SPAN)) * 1_000_000_000 + rng.randrange(1_000_000_000)


def write_blob(storage: Path, i: int, data: bytes, mtime_ns: int) -> None:
    path = storage / blob_path(i)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def marker_of(files: int) -> dict:
    return {"files": files, "seed": SEED, "generator": GENERATOR}


def source_tree(storage: Path) -> dict[str, int]:
    """Every file a sync should copy (path relative to the tree -> size):
    everything but the SQLite files."""
    tree = {}
    for dirpath, _, names in os.walk(storage):
        for name in names:
            p = Path(dirpath) / name
            rel = p.relative_to(storage).as_posix()
            if ".sqlite3" not in name:
                tree[rel] = p.stat().st_size
    return tree


def make_tree(storage: Path, marker: Path, files: int) -> float | None:
    """The tree of `files` blobs plus the SQLite files, reused when the
    marker says it is this one. Returns the seconds it took, or None."""
    want = marker_of(files)
    try:
        if json.loads(marker.read_text()) == want and storage.is_dir():
            n = sum(len(names) for _, _, names in os.walk(storage))
            if n == files + len(SQLITE_FILES):
                log(f"reusing {storage} ({files} files)")
                return None
    except (OSError, ValueError):
        pass
    marker.unlink(missing_ok=True)
    if storage.exists():
        shutil.rmtree(storage)
    storage.mkdir(parents=True)
    if shutil.disk_usage(storage).free < files * 60 * KiB * 3 + 512 * MiB:
        die(f"not enough free disk under {storage} for {files} files and two copies of them")
    log(f"generating {files} files under {storage} ...")
    t0 = time.perf_counter()
    seen = set()
    for i in range(files):
        key = blob_key(i)
        if key in seen:
            die(f"key collision at file {i}: change SEED")
        seen.add(key)
        write_blob(storage, i, blob_content(i), blob_mtime_ns(i))
        if (i + 1) % 2000 == 0:
            log(f"  {i + 1}/{files}")
    rng = random.Random(f"{SEED}:sqlite")
    for name, size in SQLITE_FILES:
        with open(storage / name, "wb") as f:
            f.write(b"SQLite format 3\0" if name.endswith("sqlite3") else b"")
            f.write(rng.randbytes(size - f.tell()))
    os.sync()
    marker.write_text(json.dumps(want) + "\n")
    return time.perf_counter() - t0


# --------------------------------------------------------------------------
# The counting proxy
# --------------------------------------------------------------------------


class RequestParser:
    """Finds every request in one connection's client-to-server bytes (a
    keep-alive connection carries many): the head up to the blank line,
    then the body, skipped by its Content-Length or its chunked framing, so
    body bytes are never read as a request line. It only watches: the
    bytes are forwarded as they came whatever it makes of them."""

    MAX_HEAD = 1 * MiB

    def __init__(self, on_request, on_lost):
        self.on_request = on_request  # (method, target, headers) -> None
        self.on_lost = on_lost        # () -> None: the stream could not be parsed
        self.buf = bytearray()
        self.state = "head"           # head | body | chunk-size | chunk-data | trailer | lost
        self.left = 0                 # bytes still to skip in body / chunk-data

    def feed(self, data: bytes) -> None:
        try:
            self._feed(memoryview(data))
        except Exception:  # noqa: BLE001 - a parser bug must not stop the forwarding
            self._lose()

    def _lose(self) -> None:
        if self.state != "lost":
            self.state = "lost"
            self.buf = bytearray()
            self.on_lost()

    def _feed(self, view: memoryview) -> None:
        while len(view) and self.state != "lost":
            if self.state in ("body", "chunk-data"):
                take = min(self.left, len(view))
                view = view[take:]
                self.left -= take
                if self.left == 0:
                    self.state = "head" if self.state == "body" else "chunk-size"
                continue
            # The line-oriented states: gather up to the terminator.
            self.buf += view
            view = memoryview(b"")
            while self.state in ("head", "chunk-size", "trailer"):
                if self.state == "head":
                    while self.buf[:2] == b"\r\n":  # stray CRLFs between requests
                        del self.buf[:2]
                    end = self.buf.find(b"\r\n\r\n")
                    if end < 0:
                        if len(self.buf) > self.MAX_HEAD:
                            self._lose()
                        return
                    head = bytes(self.buf[:end])
                    rest = bytes(self.buf[end + 4:])
                    self.buf = bytearray()
                    self._head(head)
                else:
                    end = self.buf.find(b"\r\n")
                    if end < 0:
                        if len(self.buf) > self.MAX_HEAD:
                            self._lose()
                        return
                    line = bytes(self.buf[:end])
                    rest = bytes(self.buf[end + 2:])
                    self.buf = bytearray()
                    if self.state == "chunk-size":
                        size = int(line.split(b";")[0].strip(), 16)
                        if size == 0:
                            self.state = "trailer"
                        else:
                            self.state, self.left = "chunk-data", size + 2  # data and its CRLF
                    elif line == b"":
                        self.state = "head"  # end of the trailers
                if self.state in ("body", "chunk-data", "lost"):
                    view = memoryview(rest)
                    break
                self.buf += rest
                if not self.buf:
                    return

    def _head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
            self._lose()
            return
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        self.on_request(parts[0], parts[1], headers)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.state = "chunk-size"
        else:
            length = int(headers.get("content-length", "0") or 0)
            if length > 0:
                self.state, self.left = "body", length
            else:
                self.state = "head"


# The request kinds, the table column each goes in, and B2's class.
KINDS = {
    "PUT":         ("PUT", "A"),    # a single-request upload
    "PART":        ("PUT", "A"),    # one part of a multipart upload
    "POST":        (None, "A"),     # multipart start/complete, multi-delete
    "DELETE":      (None, "A"),
    "GET":         ("GET", "B"),    # an object download
    "HEAD":        ("HEAD", "B"),   # object metadata
    "HEAD-bucket": ("HEAD", "C"),
    "LIST":        ("LIST", "C"),   # a listing page (GET on the bucket root)
    "LIST-buckets": ("LIST", "C"),  # GET /
    "COPY":        (None, "C"),     # PUT with x-amz-copy-source
    "GET-bucket":  (None, "C"),     # other bucket-level GETs (?location, ...)
    "OTHER":       (None, None),
}
LIST_PARAMS = {"list-type", "prefix", "delimiter", "marker", "continuation-token",
               "start-after", "max-keys", "uploads", "versions"}


def classify(method: str, target: str, headers: dict[str, str]) -> str:
    """The kind of one path-style S3 request."""
    url = urlsplit(target)
    path = unquote(url.path)
    query = parse_qs(url.query, keep_blank_values=True)
    on_root = path in ("", "/")
    on_bucket = path.strip("/") == BUCKET
    if method == "GET":
        if on_root:
            return "LIST-buckets"
        if on_bucket:
            return "LIST" if not query or LIST_PARAMS & set(query) else "GET-bucket"
        return "GET"
    if method == "HEAD":
        return "HEAD-bucket" if on_bucket else "HEAD"
    if method == "PUT":
        if "x-amz-copy-source" in headers:
            return "COPY"
        return "PART" if "partNumber" in query else "PUT"
    if method in ("POST", "DELETE"):
        return method
    return "OTHER"


class Counts:
    """Requests of one run, by kind, plus connections."""

    def __init__(self, kinds: collections.Counter | None = None):
        self.kinds = kinds or collections.Counter()

    def col(self, column: str) -> int:
        return sum(n for k, n in self.kinds.items() if KINDS.get(k, (None, None))[0] == column)

    def cls(self, c: str) -> int:
        return sum(n for k, n in self.kinds.items() if KINDS.get(k, (None, None))[1] == c)

    def requests(self) -> int:
        return sum(n for k, n in self.kinds.items() if k in KINDS)

    def key(self) -> tuple:
        return tuple(sorted((k, n) for k, n in self.kinds.items() if k in KINDS or k == "unparsed"))

    def detail(self) -> str:
        parts = [f"{k} {self.kinds[k]:,}" for k in KINDS if self.kinds.get(k)]
        if self.kinds.get("unparsed"):
            parts.append(f"UNPARSED connections {self.kinds['unparsed']}")
        return ", ".join(parts) or "none"

    def as_record(self) -> dict[str, int]:
        """The proxy's counts in the terms of blob-sync's `requests` field."""
        k = self.kinds
        return {"put": k["PUT"], "get": k["GET"], "head": k["HEAD"] + k["HEAD-bucket"],
                "list": k["LIST"] + k["LIST-buckets"], "delete": k["DELETE"], "copy": k["COPY"],
                "multipart": k["POST"], "part": k["PART"]}


class CountingProxy:
    """A TCP proxy on 127.0.0.1 (port picked by the OS) in front of the
    server: every accepted connection gets its own connection to the
    server, and two threads pump the bytes both ways unchanged; the
    client-to-server bytes also go through a RequestParser, before they are
    forwarded (so a request is counted before the server can answer it, and
    so before the tool that sent it can exit)."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self._lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def take(self) -> Counts:
        """The counts since the last take, and a reset."""
        with self._lock:
            counts, self._counts = self._counts, collections.Counter()
        return Counts(counts)

    def _add(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def _request(self, method: str, target: str, headers: dict[str, str]) -> None:
        """Counts one parsed request (a subclass may count more of it)."""
        self._add(classify(method, target, headers))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._add("connections")
        try:
            upstream = socket.create_connection(self.upstream, timeout=30)
            upstream.settimeout(None)
        except OSError:
            self._add("proxy-errors")
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        parser = RequestParser(self._request, lambda: self._add("unparsed"))
        self._relay(client, upstream, parser)
        client.close()
        upstream.close()

    def _relay(self, client: socket.socket, upstream: socket.socket, parser: RequestParser) -> None:
        """Moves one connection's bytes both ways until both directions are
        done, the client's through `parser` (a subclass may delay them:
        wan.py's latency proxy)."""
        back = threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True)
        back.start()
        self._pump(client, upstream, parser)
        back.join()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, parser: RequestParser | None) -> None:
        try:
            while data := src.recv(256 * KiB):
                if parser is not None:
                    parser.feed(data)
                dst.sendall(data)
        except OSError:
            # A reset on either side ends both directions.
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return
        try:
            dst.shutdown(socket.SHUT_WR)  # pass the half-close on
        except OSError:
            pass

    def stop(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(5)




def check_remote(prefix_dir: Path, want: dict[str, int], what: str, extra: set[str]) -> None:
    """The server's copy (files under `prefix_dir` on its disk) holds
    exactly `want` (path -> size), besides the names in `extra`."""
    got = {}
    if prefix_dir.is_dir():
        for dirpath, _, names in os.walk(prefix_dir):
            for name in names:
                p = Path(dirpath) / name
                rel = p.relative_to(prefix_dir).as_posix()
                if rel not in extra:
                    got[rel] = p.stat().st_size
    if got != want:
        missing = sorted(set(want) - set(got))
        unexpected = sorted(set(got) - set(want))
        wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        die(f"{what}: the server's copy is not the tree: {len(missing)} missing {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}, {len(wrong)} of another size {wrong[:3]}", 1)


class Row:
    """One row of a table: runs of one command, their times, peak RSS and
    request counts."""

    def __init__(self, label: str, tool: str):
        self.label = label
        self.tool = tool                 # "blob-sync" or "rclone"
        self.times: list[float] = []
        self.rss_kib = 0
        self.counts: list[Counts] = []   # one per timed run
        self.records: list[dict | None] = []

    def median(self) -> float:
        return statistics.median(self.times)

    def typical(self) -> Counts:
        """The requests of a run: the most common counts over the runs."""
        by_key = collections.Counter(c.key() for c in self.counts)
        key = by_key.most_common(1)[0][0]
        return next(c for c in self.counts if c.key() == key)

    def varied(self) -> bool:
        return len({c.key() for c in self.counts}) > 1


def table(title: str, rows: list[Row]) -> None:
    print(f"**{title}**")
    print()
    print("| tool / variant | runs | median s | peak RSS MiB | PUT | GET | HEAD | LIST | class B | class C |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        c = r.typical()
        print(f"| {r.label} | {len(r.times)} | {r.median():.3f} | {r.rss_kib / 1024:.1f} | "
              f"{c.col('PUT'):,} | {c.col('GET'):,} | {c.col('HEAD'):,} | {c.col('LIST'):,} | "
              f"{c.cls('B'):,} | {c.cls('C'):,} |")
    print()
    for r in rows:
        c = r.typical()
        line = f"- {r.label}: {c.detail()}; {c.kinds.get('connections', 0):,} connections"
        if len(r.times) > 1:
            line += "; per-run s " + " ".join(f"{t:.3f}" for t in r.times)
        if r.varied():
            line += "; requests varied: " + " | ".join(c.detail() for c in r.counts)
        print(line)
    print()


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(
        description="Time, peak RSS and requests of a no-change re-sync of an Active Storage-like "
        "tree: blob-sync against `rclone sync`, on one local `rclone serve s3` server "
        "behind a counting proxy.")
    ap.add_argument("--files", type=int, default=10000, help="files in the tree (default 10000)")
    ap.add_argument("--runs", type=int, default=5,
                    help="timed no-change runs per tool; the median is reported (default 5)")
    common_args(ap, here, "blob-sync is", "tree")
    args = ap.parse_args()

    if args.files < CHANGED:
        die(f"--files must be at least {CHANGED}")
    if args.runs < 1:
        die("--runs must be at least 1")
    rclone = resolve_rclone(args.rclone)
    bin_dir = args.bin_dir.resolve()
    blob_sync = bin_dir / "blob-sync"
    sources = sorted((here.parent / "tools" / "blob-sync" / "src").rglob("*.rs")) + \
        sorted((here.parent / "common" / "src").rglob("*.rs"))
    wait_for_build([blob_sync], sources, args.wait_build)

    base = here / "data" / "sync"
    storage = base / "storage"
    marker = base / "storage.json"
    server_root = base / "server"
    bucket = server_root / BUCKET
    cache = base / "cache"
    scratch = base / "scratch"
    logs, tmp = scratch / "logs", scratch / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    gen_secs = make_tree(storage, marker, args.files)
    want = source_tree(storage)
    tree_bytes = sum(want.values())
    if shutil.disk_usage(base).free < tree_bytes * 2 + 512 * MiB:
        die(f"not enough free disk under {base}: need about {tree_bytes * 2 / MiB:.0f} MiB for two copies")
    for d in (server_root, cache, scratch):
        if d.exists():
            shutil.rmtree(d)
    for d in (bucket, cache, logs, tmp):
        d.mkdir(parents=True)

    base_env = clean_env({}, tmp)
    rclone_version = first_line([rclone, "version"], base_env)
    blob_sync_version = first_line([str(blob_sync), "--version"])
    changed_ids = [i * args.files // CHANGED for i in range(CHANGED)]
    modified = False

    server = Server(rclone, server_root, base_env)
    proxy = None
    try:
        assert server.port is not None
        proxy = CountingProxy(server.port)
        log(f"rclone serve s3 on 127.0.0.1:{server.port}, serving {server_root}; "
            f"counting proxy on {proxy.endpoint}")
        envs = tool_envs(proxy.endpoint, tmp)
        envs["blob-sync"] = envs.pop("sqlkeep")
        runner = Runner(logs, args.launcher, server)
        rclone_floor_kib = runner.run([rclone, "version"], envs["rclone"])[1]
        mismatches: list[str] = []

        def blob_argv(*extra: str, cache_dir: Path = cache) -> list[str]:
            return [str(blob_sync), "-q", "--cache-dir", str(cache_dir), *extra,
                    str(storage), BLOBSYNC_REMOTE]

        def rclone_argv(*extra: str) -> list[str]:
            return [rclone, "sync", "--config", "/dev/null", *extra, str(storage), RCLONE_REMOTE,
                    "--exclude", RCLONE_EXCLUDE]

        def run(row: Row, argv: list[str], timed: bool = True) -> Counts:
            os.sync()
            proxy.take()
            secs, kib, stdout = runner.run(argv, envs[row.tool])
            counts = proxy.take()
            row.rss_kib = max(row.rss_kib, kib)
            if timed:
                row.times.append(secs)
                row.counts.append(counts)
            if row.tool == "blob-sync":
                rec = first_record(stdout)
                row.records.append(rec)
                own = rec.get("requests") if isinstance(rec, dict) else None
                mine = counts.as_record()
                if not isinstance(own, dict) or any(own.get(k, 0) != v for k, v in mine.items()) or \
                        any(v and k not in mine for k, v in own.items() if not k.startswith("class_")):
                    mismatches.append(f"{row.label}: proxy {mine}, blob-sync's record {own}")
            if counts.kinds.get("unparsed") or counts.kinds.get("proxy-errors"):
                mismatches.append(f"{row.label}: the proxy lost track ({counts.detail()}, "
                                  f"{counts.kinds.get('proxy-errors', 0)} proxy errors)")
            log(f"  {row.label:42} {secs:8.3f} s  {kib / 1024:6.1f} MiB  {counts.detail()}")
            return counts

        # 1. The initial full syncs.
        log(f"initial sync of {len(want)} files ({tree_bytes / MiB:.0f} MiB) by each tool")
        initial = [Row("blob-sync", "blob-sync"), Row("rclone sync", "rclone")]
        run(initial[0], blob_argv())
        run(initial[1], rclone_argv())
        check_remote(bucket / BLOBSYNC_PREFIX, want, "blob-sync, initial", {MANIFEST})
        check_remote(bucket / RCLONE_PREFIX, want, "rclone, initial", set())

        # 2. No change: a warm-up each, then the timed runs, round-robin.
        main_rows = [
            (Row("`blob-sync` (local cache)", "blob-sync"), blob_argv()),
            (Row("`rclone sync` (defaults)", "rclone"), rclone_argv()),
        ]
        log("no change: one untimed warm-up run of each")
        for row, argv in main_rows:
            run(row, argv, timed=False)
        load_before = os.getloadavg()
        for n in range(1, args.runs + 1):
            log(f"no change: run {n}/{args.runs}")
            for row, argv in main_rows:
                run(row, argv)
        load_after = os.getloadavg()
        log("no change: the variants, once each")
        variants = []
        empty_cache = scratch / "empty-cache"
        empty_cache.mkdir()
        row = Row("`blob-sync`, no local cache (empty `--cache-dir`)", "blob-sync")
        run(row, blob_argv(cache_dir=empty_cache))
        variants.append(row)
        row = Row("`blob-sync --full-check`", "blob-sync")
        run(row, blob_argv("--full-check"))
        variants.append(row)
        row = Row("`rclone sync --fast-list`", "rclone")
        run(row, rclone_argv("--fast-list"))
        variants.append(row)

        # 3. Ten files changed: rewritten once, then each tool syncs.
        log(f"{CHANGED} files changed: rewriting them, then one sync each")
        modified = True
        now_ns = time.time_ns()
        new_content = {}
        for i in changed_ids:
            data = blob_content(i, "changed")
            write_blob(storage, i, data, now_ns)
            new_content[blob_path(i)] = data
            want[blob_path(i)] = len(data)
        changed_rows = [Row("blob-sync", "blob-sync"), Row("rclone sync", "rclone")]
        run(changed_rows[0], blob_argv())
        run(changed_rows[1], rclone_argv())
        check_remote(bucket / BLOBSYNC_PREFIX, want, "blob-sync, 10 changed", {MANIFEST})
        check_remote(bucket / RCLONE_PREFIX, want, "rclone, 10 changed", set())
        sha_want = {p: hashlib.sha256(d).hexdigest() for p, d in new_content.items()}
        for prefix in (BLOBSYNC_PREFIX, RCLONE_PREFIX):
            for p, h in sha_want.items():
                if sha256_of(bucket / prefix / p) != h:
                    die(f"{prefix}: {p} on the server is not the changed file", 1)
        server_hwm = server.peak_rss_kib()
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()
        if modified:
            for i in changed_ids:
                write_blob(storage, i, blob_content(i), blob_mtime_ns(i))
        shutil.rmtree(server_root, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)

    # Report.
    print()
    print(f"Machine: nproc {nproc()}, CPU {cpu_model()}; {rclone_version} (client and server); "
          f"{blob_sync_version}")
    print(f"Tree: {len(want):,} files, {tree_bytes / MiB:.0f} MiB (ab/cd/<key>, 1-200 KiB, median "
          f"{statistics.median(want.values()) / KiB:.0f} KiB), plus {len(SQLITE_FILES)} SQLite files "
          "both tools exclude" + (f"; generated in {gen_secs:.1f} s" if gen_secs is not None else ""))
    print(f"Server: rclone serve s3 --dir-cache-time 100ms on 127.0.0.1, behind this script's counting "
          f"proxy (both tools alike). Peak RSS via {runner.kind} (floor {runner.floor_kib / 1024:.1f} MiB: "
          f"what `true` shows); rclone's own floor: `rclone version` peaks at "
          f"{rclone_floor_kib / 1024:.1f} MiB")
    print(f"No-change runs: {args.runs} timed per tool (median reported) after 1 untimed warm-up, "
          f"round-robin, sync(2) before each; load average 1 min: {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after. Requests per run, from the proxy; class B = GET + HEAD of "
          "an object, class C = LIST + HEAD of the bucket + COPY")
    print()
    table("Initial full sync (once each, into an empty prefix)", initial)
    rows = [r for r, _ in main_rows] + variants
    table("No-change re-sync", rows)
    table(f"{CHANGED} files changed (rewritten: new content, size and mtime), one sync each", changed_rows)
    if server_hwm:
        print(f"rclone serve s3 (not counted in any row) peak RSS over the whole run: "
              f"{server_hwm / 1024:.1f} MiB")
        print()

    # The checks.
    blob_row, rclone_row = main_rows[0][0], main_rows[1][0]
    c = blob_row.typical()
    ok = c.requests() == 0 and not blob_row.varied()
    print(f"no change, with its cache: blob-sync requests per run = {c.requests()} "
          f"(target 0) {'PASS' if ok else 'FAIL'}")
    c = variants[0].typical()
    ok = c.requests() == 1 and c.kinds["GET"] == 1
    print(f"no change, without its cache: blob-sync requests = {c.detail()} "
          f"(target: 1 GET, nothing else) {'PASS' if ok else 'FAIL'}")
    x = rclone_row.median() / blob_row.median()
    print(f"no change, time: rclone / blob-sync = {x:.3f}× ({rclone_row.median():.3f} / "
          f"{blob_row.median():.3f} s; target ≥ {TIME_TARGET:.1f}×) {'PASS' if x >= TIME_TARGET else 'FAIL'}")
    def billable(r: Row) -> int:
        return r.typical().cls("B") + r.typical().cls("C")

    rc = rclone_row.typical()
    print(f"no change, billable requests (class B + C) per run: blob-sync {billable(blob_row):,} "
          f"({billable(variants[0]):,} without its cache), rclone {billable(rclone_row):,} "
          f"({rc.cls('B'):,} B + {rc.cls('C'):,} C; with --fast-list {billable(variants[2]):,}); "
          "B2 bills B and C beyond 2,500 a day each")
    c = changed_rows[0].typical()
    # Since issue 10 the manifest is read just before it is rewritten, so
    # another run's entries are merged rather than lost: one GET more.
    ok = c.kinds["PUT"] == CHANGED + 1 and c.kinds["GET"] == 1 and c.requests() == CHANGED + 2
    print(f"{CHANGED} files changed: blob-sync requests = {c.detail()} (target: {CHANGED + 1} PUTs, "
          f"the files and the manifest, and 1 GET of the manifest before it is rewritten; no HEAD "
          f"or LIST) {'PASS' if ok else 'FAIL'}")
    if mismatches:
        print("request counts, proxy against blob-sync's own record and the proxy's parsing: FAIL")
        for m in mismatches:
            print(f"  {m}")
    else:
        print("request counts: the proxy's equal blob-sync's own record on every blob-sync run, and "
              "every request line was parsed: PASS")

    if not args.keep:
        shutil.rmtree(storage, ignore_errors=True)
        marker.unlink(missing_ok=True)
        log(f"removed {storage} (--no-keep)")
    return 0


if __name__ == "__main__":
    run_main(main)
