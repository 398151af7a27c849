#!/usr/bin/env python3
"""Benchmark: how fast, and in how much memory, do bucket-push and bucket-pull
move a large file to and from S3-compatible storage, against `rclone copyto`?

rclone is the real alternative: people who already copy their backups to a
bucket do it with `rclone copyto`. sqlkeep claims two things about its
transfer tools, in both directions, and this script checks both on the same
file and the same S3 server, in one run:

  * throughput: bucket-push (upload) and bucket-pull (download) move the
                file at least as fast as `rclone copyto` with its defaults
                (rclone's time / sqlkeep's time >= 1.0);
  * memory:     their peak RSS is at most a third of rclone's.

Rows measured (names for --only):

  push         bucket-push -q s3://bkt/sqlkeep FILE
  rclone-up    rclone copyto FILE bench:bkt/rclone/bench.bin
  pull         bucket-pull -q s3://bkt/sqlkeep/bench.bin -o OUT --force
  rclone-down  rclone copyto bench:bkt/rclone/bench.bin OUT

How it measures, and why:

  * The file is `bench.bin`, --size-mb MiB of os.urandom bytes: it does not
    compress, like a zstd-compressed snapshot. It is a plain file, not one
    named like a snapshot (<db>-<stamp>.sqlite3.zst): bucket-push stores a
    plain file as <remote>/bench.bin with a manifest bench.bin.json carrying
    its SHA-256, and bucket-pull restores such an object byte for byte,
    checking the SHA-256 as it streams in. A snapshot-named object would be
    decompressed on the way down, which random bytes cannot survive, and the
    two directions should move the same object. The file is kept
    (bench/data/transfer/<SIZE>mb/bench.bin) and reused when its size is
    right.
  * The server is `rclone serve s3` on 127.0.0.1 with a port the OS picks,
    serving bench/data/transfer/server/ (the same filesystem as the file),
    bucket `bkt`, started fresh for each run of this script and stopped
    (and its data removed) at the end. Both tools talk to it alike: sqlkeep
    through the AWS_* variables, rclone through an `s3` remote defined by
    RCLONE_CONFIG_BENCH_* variables with `--config /dev/null`. Any other
    AWS_* and RCLONE_* variables of the caller's environment are dropped, so
    rclone runs with its defaults: nothing is tuned on either side.
  * Every command runs once, untimed, before the timed runs (the file, and
    the server's copy of it, are then in the page cache for every row alike);
    the uploaded objects and the downloaded files are then checked, once,
    against the file's SHA-256, outside the timed region.
  * The timed runs go round-robin (run 1 of every row, then run 2, ...), so
    a noisy neighbour or thermal drift lands on all rows alike; each row
    reports the median of --runs runs.
  * Before every run, outside the timed region, the row's destination is
    deleted (the object on the server's disk, or the downloaded file), and
    sync(2) is called: every run writes a new object or file (rclone would
    otherwise skip a copy whose destination is already identical), and one
    run's dirty pages are not written back during the next.
  * Peak RSS is per command (ru_maxrss, KiB on Linux), measured by a small
    launcher that forks the command and reaps it with wait4(2): GNU
    `time -f %M` if installed, else a minimal Python one; never as a direct
    child of this script, whose own memory a direct child's ru_maxrss would
    include. The launcher's own floor (what `true` shows) is printed. The
    server's memory is not the tools' and is not counted (its high-water
    mark is printed, for information).
  * Before anything runs, the release binaries must be newer than
    common/src/store/s3.rs (the S3 backend both tools use): if they are
    missing or older, the script waits for a build in progress, polling
    every 10 s for up to --wait-build seconds. It never builds them itself.

Usage:
  python3 bench/transfer.py --size-mb 200
  python3 bench/transfer.py --size-mb 2048
  python3 bench/transfer.py --size-mb 64 --runs 2 --only push,rclone-up

Results for docs/benchmarks.md: the Markdown table and the lines under it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from benchlib import (common_args, run_main, MiB, Runner, Server, clean_env, cpu_model, die, first_line, first_record, log,
                      nproc, resolve_rclone, sha256_of, tool_envs, wait_for_build)


BUCKET = "bkt"
FILE_NAME = "bench.bin"  # a plain file: not <db>-<stamp>.sqlite3.zst
SQLKEEP_REMOTE = f"s3://{BUCKET}/sqlkeep"
RCLONE_OBJECT = f"bench:{BUCKET}/rclone/{FILE_NAME}"

THROUGHPUT_TARGET = 1.0      # rclone's time / sqlkeep's time, at least
RSS_TARGET = 1 / 3           # sqlkeep's peak RSS / rclone's, at most



# --------------------------------------------------------------------------
# The rows
# --------------------------------------------------------------------------


class Layout:
    """Where everything is: the file, the server's bucket, the outputs."""

    def __init__(self, base: Path, size_mb: int):
        self.base = base                               # bench/data/transfer
        self.file = base / f"{size_mb}mb" / FILE_NAME  # the file moved
        self.server = base / "server"                  # what rclone serve s3 serves
        self.bucket = self.server / BUCKET
        self.scratch = base / "scratch"
        self.out = self.scratch / "out"
        self.logs = self.scratch / "logs"
        self.tmp = self.scratch / "tmp"

    # The objects as files on the server's disk.
    def sqlkeep_object(self) -> Path:
        return self.bucket / "sqlkeep" / FILE_NAME

    def sqlkeep_manifest(self) -> Path:
        return self.bucket / "sqlkeep" / f"{FILE_NAME}.json"

    def rclone_object(self) -> Path:
        return self.bucket / "rclone" / FILE_NAME


class Row:
    """One row of the table: one command, timed and RSS-measured."""

    def __init__(self, name, direction, tool, label, argv, prepare, product):
        self.name = name
        self.direction = direction  # "upload" or "download"
        self.tool = tool            # "sqlkeep" or "rclone"
        self.label = label
        self.argv = argv            # (layout, bin_dir, rclone) -> argv
        self.prepare = prepare      # (layout) -> None: removes the destination
        self.product = product      # (layout) -> Path: the object or file it makes


def _remove(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _remove_outputs(out: Path, name: str) -> None:
    """The file and anything a tool left beside it (rclone's .partial)."""
    if out.is_dir():
        for p in out.iterdir():
            if p.name.startswith(name):
                p.unlink(missing_ok=True)


ROWS = [
    Row("push", "upload", "sqlkeep", f"`bucket-push -q {SQLKEEP_REMOTE} FILE`",
        lambda L, b, r: [str(b / "bucket-push"), "-q", SQLKEEP_REMOTE, str(L.file)],
        lambda L: _remove(L.sqlkeep_object(), L.sqlkeep_manifest()),
        lambda L: L.sqlkeep_object()),
    Row("rclone-up", "upload", "rclone", f"`rclone copyto FILE {RCLONE_OBJECT}`",
        lambda L, b, r: [r, "copyto", "--config", "/dev/null", str(L.file), RCLONE_OBJECT],
        lambda L: _remove(L.rclone_object()),
        lambda L: L.rclone_object()),
    Row("pull", "download", "sqlkeep", f"`bucket-pull -q {SQLKEEP_REMOTE}/{FILE_NAME} -o OUT --force`",
        lambda L, b, r: [str(b / "bucket-pull"), "-q", f"{SQLKEEP_REMOTE}/{FILE_NAME}",
                         "-o", str(L.out / "sqlkeep.bin"), "--force"],
        lambda L: _remove_outputs(L.out, "sqlkeep.bin"),
        lambda L: L.out / "sqlkeep.bin"),
    Row("rclone-down", "download", "rclone", f"`rclone copyto {RCLONE_OBJECT} OUT`",
        lambda L, b, r: [r, "copyto", "--config", "/dev/null", RCLONE_OBJECT, str(L.out / "rclone.bin")],
        lambda L: _remove_outputs(L.out, "rclone.bin"),
        lambda L: L.out / "rclone.bin"),
]
BY_NAME = {r.name: r for r in ROWS}
# The upload whose object a download row reads.
SOURCE_OF = {"pull": "push", "rclone-down": "rclone-up"}


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def make_file(path: Path, size_mb: int) -> float | None:
    """`size_mb` MiB of random bytes at `path`, reused if already that size.
    Returns the seconds it took to write, or None if reused."""
    want = size_mb * MiB
    if path.exists() and path.stat().st_size == want:
        log(f"reusing {path} ({size_mb} MiB)")
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(path.parent).free < want + 256 * MiB:
        die(f"not enough free disk under {path.parent} for a {size_mb} MiB file")
    log(f"writing {path} ({size_mb} MiB of random bytes) ...")
    t0 = time.perf_counter()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(MiB))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return time.perf_counter() - t0


def parse_size(s: str) -> int | None:
    """rclone's SizeSuffix as shown in its help: 5Mi, 200Mi, 64Mi, 1Gi."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i)?", s.strip())
    if not m:
        return None
    mult = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}[m.group(2)]
    return int(float(m.group(1)) * mult)


def rclone_defaults(rclone: str, env: dict) -> dict[str, str]:
    """The defaults this rclone reports for the flags that shape a big copy."""
    wanted = ("s3-upload-cutoff", "s3-chunk-size", "s3-upload-concurrency",
              "multi-thread-cutoff", "multi-thread-streams", "multi-thread-chunk-size")
    try:
        text = subprocess.run([rclone, "help", "flags"], capture_output=True, text=True,
                              timeout=60, env=env).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found = {}
    for flag in wanted:
        m = re.search(rf"--{flag}\s+\S+\s+.*\(default ([^)]+)\)", text)
        if m:
            found[flag] = m.group(1)
    return found


def rclone_plan(defaults: dict[str, str], size: int) -> tuple[str, str]:
    """What rclone's defaults make of a file of `size` bytes, up and down."""
    def get(flag):
        return defaults.get(flag, "?")

    cutoff = parse_size(get("s3-upload-cutoff"))
    chunk = parse_size(get("s3-chunk-size"))
    mt_cutoff = parse_size(get("multi-thread-cutoff"))
    if cutoff is None or chunk is None or mt_cutoff is None:
        return "?", "?"
    if size < cutoff:
        up = f"one PUT (below --s3-upload-cutoff {get('s3-upload-cutoff')})"
    else:
        via = "multi-thread copy" if size >= mt_cutoff else "the s3 backend's multipart uploader"
        up = (f"multipart, {math.ceil(size / chunk)} parts of {get('s3-chunk-size')}, "
              f"{get('s3-upload-concurrency')} at a time (--s3-upload-concurrency; via {via})")
    if size >= mt_cutoff:
        down = (f"multi-thread, {get('multi-thread-streams')} streams of "
                f"{get('multi-thread-chunk-size')} ranges (--multi-thread-streams)")
    else:
        down = f"one GET stream (below --multi-thread-cutoff {get('multi-thread-cutoff')})"
    return up, down


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(
        description="Time and peak RSS of bucket-push and bucket-pull against `rclone copyto`, "
        "up and down, on one file and one local `rclone serve s3` server.",
        epilog="rows: " + ", ".join(BY_NAME),
    )
    ap.add_argument("--size-mb", type=int, default=2048, help="file size in MiB (default 2048)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per row; the median is reported (default 3)")
    common_args(ap, here, "bucket-push and bucket-pull are", "file")
    ap.add_argument("--only", help="comma-separated rows to run (default: all)")
    args = ap.parse_args()

    if args.size_mb < 1:
        die("--size-mb must be at least 1")
    if args.runs < 1:
        die("--runs must be at least 1")
    rows = ROWS
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            die(f"unknown row(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
        rows = [r for r in ROWS if r.name in names]
    rclone = resolve_rclone(args.rclone)
    bin_dir = args.bin_dir.resolve()
    # bucket-push also seeds bucket-pull's object when push itself is not run.
    need_bins = (["bucket-push"] if any(r.tool == "sqlkeep" for r in rows) else []) + \
        (["bucket-pull"] if any(r.name == "pull" for r in rows) else [])
    if need_bins:
        sources = sorted((here.parent / "common" / "src").rglob("*.rs")) + \
            [p for b in need_bins for p in (here.parent / "tools" / b / "src").rglob("*.rs")]
        wait_for_build([bin_dir / b for b in need_bins], sources, args.wait_build)

    L = Layout(here / "data" / "transfer", args.size_mb)
    L.base.mkdir(parents=True, exist_ok=True)
    gen_secs = make_file(L.file, args.size_mb)
    size = L.file.stat().st_size
    size_mib = size / MiB
    # The source, two objects on the server, two downloads.
    if shutil.disk_usage(L.base).free < size * 4 + 256 * MiB:
        die(f"not enough free disk under {L.base}: need about {size_mib * 4:.0f} MiB besides the file")
    for d in (L.server, L.scratch):
        if d.exists():
            shutil.rmtree(d)
    for d in (L.bucket, L.out, L.logs, L.tmp):
        d.mkdir(parents=True)
    if os.stat(L.server).st_dev != os.stat(L.file).st_dev:
        die(f"{L.server} is not on the same filesystem as {L.file}")

    base_env = clean_env({}, L.tmp)
    defaults = rclone_defaults(rclone, base_env)
    rclone_version = first_line([rclone, "version"], base_env)
    log(f"hashing {L.file.name} ...")
    want_sha = sha256_of(L.file)

    server = Server(rclone, L.server, base_env)
    try:
        endpoint = server.endpoint
        assert endpoint is not None
        log(f"rclone serve s3 listening on {endpoint}, serving {L.server}")
        env_of = tool_envs(endpoint, L.tmp)
        runner = Runner(L.logs, args.launcher, server)
        # What rclone takes before it moves a byte: the Go runtime and an
        # 80 MB static binary. A third of rclone's RSS is never below a third
        # of this.
        rclone_floor_kib = runner.run([rclone, "version"], env_of["rclone"])[1]

        def run(row: Row) -> tuple[float, int, str]:
            row.prepare(L)
            os.sync()
            return runner.run(row.argv(L, bin_dir, rclone), env_of[row.tool])

        # Objects for the download rows whose upload row is not run.
        names = {r.name for r in rows}
        for down, up in SOURCE_OF.items():
            if down in names and up not in names:
                log(f"seeding the object for {down} with {up} (untimed)")
                run(BY_NAME[up])

        # Warm-up: one untimed run of each, in table order, so uploads come
        # before the downloads of their objects.
        times: dict[str, list[float]] = {r.name: [] for r in rows}
        rss: dict[str, int] = {r.name: 0 for r in rows}
        records: dict[str, dict | None] = {}
        log(f"warm-up: one untimed run of each of {len(rows)} rows")
        for r in rows:
            _, kib, stdout = run(r)
            rss[r.name] = max(rss[r.name], kib)
            records[r.name] = first_record(stdout)

        # The check: every object and download is the file, byte for byte.
        log("checking SHA-256 of the uploaded objects and downloaded files (untimed)")
        checked = []
        products = {r.name: r.product(L) for r in rows}
        for down, up in SOURCE_OF.items():
            if down in names and up not in names:
                products[up] = BY_NAME[up].product(L)
        for name, path in products.items():
            got = sha256_of(path) if path.exists() else "missing"
            if got != want_sha:
                die(f"{name}: {path} is not the file (SHA-256 {got}, want {want_sha})", 1)
            checked.append(name)
        if "push" in products:
            try:
                manifest = json.loads(L.sqlkeep_manifest().read_text())
            except (OSError, ValueError) as e:
                die(f"bucket-push's manifest {L.sqlkeep_manifest()}: {e}", 1)
            if want_sha not in json.dumps(manifest):
                die(f"bucket-push's manifest does not carry the file's SHA-256: {manifest}", 1)

        load_before = os.getloadavg()
        for n in range(1, args.runs + 1):
            log(f"run {n}/{args.runs}")
            for r in rows:
                secs, kib, _ = run(r)
                made = r.product(L)
                if not made.exists() or made.stat().st_size != size:
                    die(f"{r.name}: no {size}-byte {made} after the run", 1)
                times[r.name].append(secs)
                rss[r.name] = max(rss[r.name], kib)
                log(f"  {r.name:12} {secs:8.3f} s  {size_mib / secs:7.1f} MiB/s  {kib / 1024:7.1f} MiB")
        load_after = os.getloadavg()
        server_hwm = server.peak_rss_kib()
    finally:
        server.stop()
        shutil.rmtree(L.server, ignore_errors=True)
        shutil.rmtree(L.scratch, ignore_errors=True)

    # Report.
    median = {n: statistics.median(t) for n, t in times.items()}
    other = {"push": "rclone-up", "pull": "rclone-down"}
    up_plan, down_plan = rclone_plan(defaults, size)
    print()
    print(f"Machine: nproc {nproc()}, CPU {cpu_model()}, {rclone_version} (client and server), "
          f"file {size_mib:.0f} MiB of random bytes ({L.file.name})")
    sk_bin = bin_dir / ("bucket-push" if (bin_dir / "bucket-push").exists() else "bucket-pull")
    print(f"{first_line([str(sk_bin), '--version'])}; load average 1 min: {load_before[0]:.2f} "
          f"before the timed runs, {load_after[0]:.2f} after")
    print(f"Runs: {args.runs} timed per row (median reported) after 1 untimed warm-up; warm page cache; "
          f"round-robin order; destination deleted and sync(2) before each run. Peak RSS via "
          f"{runner.kind} (floor {runner.floor_kib / 1024:.1f} MiB: what `true` shows)")
    if defaults:
        print("rclone defaults (from `rclone help flags`): " +
              ", ".join(f"--{k} {v}" for k, v in defaults.items()))
    print(f"rclone with them, for this file: upload {up_plan}; download {down_plan}")
    print(f"rclone's own floor: `rclone version` peaks at {rclone_floor_kib / 1024:.1f} MiB RSS")
    if gen_secs is not None:
        print(f"File written in {gen_secs:.1f} s")
    print()
    print("| direction | tool | command | median s | MiB/s | peak RSS MiB | throughput × rclone | RSS ÷ rclone |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        med = median[r.name]
        ref = other.get(r.name)
        if ref in median:
            tput = f"{median[ref] / med:.2f}"
            mem = f"{rss[r.name] / rss[ref]:.2f}" if rss[ref] else "n/a"
        elif r.tool == "sqlkeep":
            tput = mem = "n/a"
        else:
            tput = mem = "(reference)"
        print(f"| {r.direction} | {r.tool} | {r.label} | {med:.3f} | {size_mib / med:.0f} | "
              f"{rss[r.name] / 1024:.1f} | {tput} | {mem} |")
    print()
    print("Per-run seconds: " + "; ".join(
        f"{n} " + " ".join(f"{t:.3f}" for t in ts) for n, ts in times.items()))
    print(f"SHA-256 checked once, untimed: {', '.join(checked)} all match the file")
    for name, what in (("push", "bucket-push"), ("pull", "bucket-pull")):
        rec = records.get(name)
        if rec and isinstance(rec.get("requests"), dict):
            req = rec["requests"]
            line = f"{what} requests per {'upload' if name == 'push' else 'download'}: " + \
                ", ".join(f"{k} {v}" for k, v in req.items() if v)
            parts = req.get("part") or 0
            if name == "push" and parts:
                part_mib = math.ceil(size / parts / MiB)
                line += f" ({parts} parts: part size {part_mib} MiB)"
            elif name == "push":
                line += " (one PUT, no multipart)"
            print(line)
        elif name in median:
            print(f"{what}: no `requests` field in its record: {json.dumps(rec)[:300]}")
    if server_hwm:
        print(f"rclone serve s3 (not counted in any row) peak RSS over the whole run: {server_hwm / 1024:.1f} MiB")
    print()

    # The four targets.
    for direction, mine, ref in (("upload", "push", "rclone-up"), ("download", "pull", "rclone-down")):
        if mine in median and ref in median:
            x = median[ref] / median[mine]
            verdict = "PASS" if x >= THROUGHPUT_TARGET else "FAIL"
            # Three decimals: a ratio just under 1 must not print as 1.00 and FAIL.
            print(f"{direction} throughput: sqlkeep / rclone = {x:.3f}× "
                  f"(target ≥ {THROUGHPUT_TARGET:.1f}×) {verdict}")
            m = rss[mine] / rss[ref] if rss[ref] else float("inf")
            verdict = "PASS" if m <= RSS_TARGET else "FAIL"
            print(f"{direction} peak RSS: sqlkeep / rclone = {m:.3f} ({rss[mine] / 1024:.1f} / "
                  f"{rss[ref] / 1024:.1f} MiB; target ≤ 1/3 = {RSS_TARGET:.3f}) {verdict}")
        else:
            print(f"{direction} throughput: n/a (needs {mine} and {ref} in --only)")
            print(f"{direction} peak RSS: n/a (needs {mine} and {ref} in --only)")

    if not args.keep:
        L.file.unlink(missing_ok=True)
        try:
            L.file.parent.rmdir()
        except OSError:
            pass
        log(f"removed {L.file} (--no-keep)")
    return 0


if __name__ == "__main__":
    run_main(main)
