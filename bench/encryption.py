#!/usr/bin/env python3
"""Benchmark: what does age encryption (`sqlite-snap --recipient`) cost the
push pipeline, a snapshot, a restore and the stored bytes?

sqlkeep claims, for encrypted snapshots (issue 12):

  * time:   on the same database, `sqlite-snap --recipient age1... DB |
            bucket-push REMOTE` takes at most 10% longer than the same
            pipeline without --recipient (with / without <= 1.10), to a
            local directory and to S3 alike;
  * memory: every tool's peak RSS stays under 64 MiB with encryption on:
            sqlite-snap --recipient, bucket-push of the encrypted object,
            bucket-pull --identity.

Sections (names for --only):

  push      `sqlite-snap [--recipient KEY] DB | bucket-push REMOTE`, REMOTE
            a local directory on the database's filesystem and
            `s3://bkt/...` on a local `rclone serve s3`; without and with
            --recipient alternated (A/B/A/B...), each process's peak RSS
            measured on its own.
  snapshot  `sqlite-snap -o DIR DB` without and with --recipient, beside
            what a cron script does: `sqlite3 DB ".backup TMP"` then
            `zstd -3 -T0 TMP`, and the same piped into `age -r KEY`.
  restore   `bucket-pull REMOTE/<db> -o OUT` of the plain snapshot and
            `bucket-pull REMOTE/<db> -i key.txt -o OUT` of the encrypted
            one, from both remotes; and, for reference, `zstd -d OBJ` and
            `age -d -i key.txt OBJ | zstd -d` on the stored objects.

The stored bytes (encrypted against plain: age adds a header and 16 bytes
per 64 KiB chunk) come from the push section's objects, or from the
restore section's seeding when push is not run.

How it measures, and why:

  * The database is snapshot.py's generated Rails-like database
    (bench/data/rails-<SIZE>mb.sqlite3, generated if missing and kept), or
    --db PATH as it is. It is only read.
  * One key pair per run of the script, `age-keygen -o key.txt` in the
    scratch directory; the recipient is `age-keygen -y key.txt`, passed as
    --recipient age1... (a single X25519 recipient: what a server that
    only holds the public key does).
  * Every command runs once, untimed, before the timed runs (warm page
    cache for every row alike); the warm-up restores are checked against
    the snapshot's raw_sha256, and the decrypted object against the plain
    one. Timed runs go round-robin, without before with for every pair
    (A/B/A/B...), so drift on the machine lands on both alike; medians of
    --runs runs are reported, with the per-run times and the paired
    with/without ratios.
  * Peak RSS is per process, one process removed from this script: inside
    a pipeline each stage runs under its own launcher (GNU `time -f "%M
    %e %U %S"`, or a fork/exec/wait4 launcher like benchlib's), which
    reports the stage's ru_maxrss, i.e. the VmHWM its memory map had when
    it exited, its wall time and its CPU time (user + system). The CPU
    time says how much work encryption adds, whatever the scheduling of
    the cores made of it; on a 2-core VM both it and the wall time vary
    by 10-15% from run to run, as much as the effect measured, so the
    paired ratios and more runs say more than one median of 3. The
    pipeline runs under `bash -o pipefail`, so a failing stage fails the
    run.
  * sync(2) before every timed command; outputs deleted before each run.
    Objects pushed to the remotes are kept until the end (every push goes
    into a prefix that already holds earlier snapshots, as a nightly push
    does); everything under the scratch directory is removed at the end.
  * TMPDIR (where sqlite-snap writes a piped snapshot) is in the scratch
    directory, on the database's filesystem, as is the local remote.
  * Whether the machine was shared is measured, not assumed: the CPU time
    that processes other than this benchmark's used during the sections
    (the machine's busy time in /proc/stat, less this script's, its
    commands' and the server's) is printed with the machine lines, and per
    command in the progress lines; and /proc is sampled every 2 s for
    compilers and linkers (a build beside the benchmark).

Usage:
  python3 bench/encryption.py                       # 2048 MiB, the headline
  python3 bench/encryption.py --size-mb 20 --runs 1 # a check of the script
  python3 bench/encryption.py --db app.sqlite3 --only push

Results for docs/benchmarks.md: the Markdown tables and the lines under them.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchlib import (common_args, run_main, MiB, Runner, Server, clean_env, cpu_model, die,
                      first_line, first_record, log, nproc, resolve_rclone, sha256_of, tool_envs, wait_for_build)
import snapshot

BUCKET = "bkt"
SECTIONS = ("push", "snapshot", "restore")
MODES = ("plain", "age")        # without, with --recipient
REMOTES = ("local", "s3")

PUSH_TARGET = 1.10              # pipeline with --recipient / without, at most
RSS_TARGET_MIB = 64             # every tool with encryption on, under
AGE_CHUNK = 64 * 1024           # age's STREAM chunk of plaintext
AGE_TAG = 16                    # its Poly1305 tag per chunk
BUSY_NAMES = ("rustc", "cargo", "cc1", "cc1plus", "ld", "ld.lld", "rust-lld", "collect2")


# benchlib's launcher, also reporting the command's CPU time (user + system):
# wall time on a 2-core VM varies by ±10% from run to run, CPU time much
# less, and it says what encryption costs whatever the scheduling.
STAGE_LAUNCHER = r"""
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
    f.write(f"{ru.ru_maxrss} {secs} {ru.ru_utime} {ru.ru_stime}\n")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def fmt_mib(n: float) -> str:
    return f"{n / MiB:.1f}"


def _busy_jiffies() -> int:
    """CPU time the whole machine has spent busy since boot, in clock ticks."""
    f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f[:8])
    return user + nice + system + irq + softirq + steal


def _proc_cpu_ticks(pid: int) -> int:
    """A live process's user + system CPU time, in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


class BusyWatch:
    """Says whether the timed runs shared the machine. Two measures: the CPU
    time spent by processes that are not this benchmark's (the machine's
    busy time from /proc/stat, less this script's, its reaped commands' and
    the S3 server's), and /proc sampled every 2 s for compilers and linkers
    (a build beside the benchmark)."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.hz = os.sysconf("SC_CLK_TCK")
        self.samples = 0
        self.busy = 0
        self.seen: set[str] = set()
        self.t0 = time.monotonic()
        self.start = self._ours_and_all()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _ours_and_all(self) -> tuple[float, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + _proc_cpu_ticks(self.server_pid) / self.hz
        return ours, _busy_jiffies() / self.hz

    def since_last(self) -> float:
        """The others' CPU-seconds since the last call (for the progress lines)."""
        now = self._ours_and_all()
        last = getattr(self, "_last", self.start)
        self._last = now
        return max(0.0, (now[1] - last[1]) - (now[0] - last[0]))

    def _loop(self) -> None:
        while not self._stop.wait(2.0):
            names = set()
            for p in Path("/proc").iterdir():
                if not p.name.isdigit():
                    continue
                try:
                    comm = (p / "comm").read_text().strip()
                except OSError:
                    continue
                if comm in BUSY_NAMES:
                    names.add(comm)
            self.samples += 1
            if names:
                self.busy += 1
                self.seen |= names

    def stop(self) -> str:
        """One line: the others' CPU share, and the compilers seen."""
        self._stop.set()
        self._thread.join(5)
        ours, total = self._ours_and_all()
        wall = time.monotonic() - self.t0
        others = max(0.0, (total - self.start[1]) - (ours - self.start[0]))
        share = others / (wall * nproc()) if wall > 0 else 0.0
        line = (f"other processes used {others:.0f} CPU-seconds during the {wall:.0f} s of the sections "
                f"({100 * share:.0f}% of the {nproc()} cores)")
        if self.busy:
            line += (f"; WARNING: {', '.join(sorted(self.seen))} running in {self.busy} of {self.samples} "
                     "samples (every 2 s): a build shared the machine")
        else:
            line += f"; no compiler or linker in {self.samples} samples (every 2 s)"
        return line


class Bench:
    def __init__(self, args, here: Path, db: Path, scratch: Path):
        self.args = args
        self.bin = args.bin_dir.resolve()
        self.snap = str(self.bin / "sqlite-snap")
        self.push_bin = str(self.bin / "bucket-push")
        self.pull = str(self.bin / "bucket-pull")
        self.db = db
        self.scratch = scratch
        self.logs = scratch / "logs"
        self.tmp = scratch / "tmp"
        self.out = scratch / "out"
        self.stage_dir = scratch / "stages"
        self.local_root = scratch / "remote"          # the local-directory remote
        self.server_root = scratch / "server"         # what rclone serve s3 serves
        self.key = scratch / "key.txt"
        self.lines: list[str] = []                    # the report, printed at the end
        # Per tool, per mode: the largest peak RSS (KiB) over every run.
        self.tool_rss: dict[tuple[str, str], int] = {}
        # The last object each (remote, mode) push stored: its record.
        self.objects: dict[tuple[str, str], dict] = {}
        self.watch: BusyWatch | None = None

    # Environments and remotes ---------------------------------------------

    def env_for(self, remote: str) -> dict:
        return self.env_s3 if remote == "s3" else self.env

    def remote_url(self, remote: str, mode: str) -> str:
        return f"s3://{BUCKET}/{mode}" if remote == "s3" else str(self.local_root / mode)

    def remote_label(self, remote: str, mode: str) -> str:
        return f"s3://{BUCKET}/{mode}" if remote == "s3" else f"DIR/{mode}"

    def recipient_args(self, mode: str) -> list[str]:
        return ["--recipient", self.recipient] if mode == "age" else []

    # Running pipelines, one launcher per stage ------------------------------

    def launcher(self, report: Path) -> list[str]:
        if self.runner.gnu_time:
            return [self.runner.gnu_time, "-f", "%M %e %U %S", "-o", str(report)]
        return [sys.executable, "-S", "-I", str(self.py_launcher), str(report)]

    def stages(self, stages: list[tuple[str, list[str]]], env: dict, stdout: Path | None = None
               ) -> tuple[float, dict[str, tuple[int, float]], str]:
        """Runs `stage1 | stage2 | ... [> stdout]` under bash -o pipefail,
        each stage under its own launcher. Returns the wall seconds of the
        whole, {stage name: (peak RSS KiB, seconds)}, and the pipeline's
        stdout (when not redirected)."""
        parts = []
        reports = {}
        for i, (name, argv) in enumerate(stages):
            report = self.stage_dir / f"{i}-{name}"
            report.unlink(missing_ok=True)
            reports[name] = report
            parts.append(" ".join(_q(a) for a in self.launcher(report) + argv))
        script = "set -o pipefail; " + " | ".join(parts)
        if stdout is not None:
            script += f" > {_q(str(stdout))}"
        secs, _, out = self.runner.run(["bash", "-c", script], env)
        got = {}
        for name, report in reports.items():
            try:
                fields = report.read_text().splitlines()[-1].split()
                got[name] = (int(fields[0]), float(fields[1]), float(fields[2]) + float(fields[3]))
            except (OSError, ValueError, IndexError):
                die(f"could not read the peak RSS of stage {name} of: {script}", 1)
        return secs, got, out

    def note_rss(self, mode: str, got: dict[str, tuple[int, float]]) -> None:
        for name, (kib, *_) in got.items():
            k = (name, mode)
            self.tool_rss[k] = max(self.tool_rss.get(k, 0), kib)

    def push(self, remote: str, mode: str) -> tuple[float, dict[str, tuple[int, float]], dict]:
        secs, got, out = self.stages([
            ("sqlite-snap", [self.snap, "-q", *self.recipient_args(mode), str(self.db)]),
            ("bucket-push", [self.push_bin, "-q", self.remote_url(remote, mode)]),
        ], self.env_for(remote))
        rec = first_record(out)
        if not rec:
            die(f"bucket-push printed no record ({remote}, {mode})", 1)
        self.objects[(remote, mode)] = rec
        self.note_rss(mode, got)
        return secs, got, rec

    def check_record(self, rec: dict, mode: str, where: str) -> None:
        """An encrypted push must say so, and end in .age; a plain one must not."""
        name = str(rec.get("url") or rec.get("path") or "")
        enc = rec.get("encryption")
        if mode == "age" and (not enc or not name.endswith(".age")):
            die(f"{where}: the encrypted snapshot's record has no encryption or no .age name: {rec}", 1)
        if mode == "plain" and (enc or name.endswith(".age")):
            die(f"{where}: the plain snapshot's record says it is encrypted: {rec}", 1)

    def sync(self) -> None:
        """sync(2), then the start of a command's window of others' CPU time."""
        os.sync()
        if self.watch is not None:
            self.watch.since_last()

    def others(self) -> str:
        """The CPU time others used since the last sync(): for the progress lines."""
        return f"; others {self.watch.since_last():.1f} CPU-s" if self.watch is not None else ""

    # Sections -----------------------------------------------------------------

    def section_push(self) -> None:
        a = self.args
        log("== push: sqlite-snap [--recipient] DB | bucket-push REMOTE, without/with alternated")
        keys = [(r, m) for r in REMOTES for m in MODES]
        times = {k: [] for k in keys}
        snap_secs = {k: [] for k in keys}
        cpu = {k: {"sqlite-snap": [], "bucket-push": []} for k in keys}
        rss = {k: {"sqlite-snap": 0, "bucket-push": 0} for k in keys}
        records = {}
        for run in range(0, a.runs + 1):
            log(f"run {run}/{a.runs}" + (" (warm-up)" if run == 0 else ""))
            for remote in REMOTES:
                for mode in MODES:
                    k = (remote, mode)
                    self.sync()
                    secs, got, rec = self.push(remote, mode)
                    for name, (kib, *_) in got.items():
                        rss[k][name] = max(rss[k][name], kib)
                    if run == 0:
                        self.check_record(rec, mode, f"push {remote}")
                        records[k] = rec
                    else:
                        times[k].append(secs)
                        snap_secs[k].append(got["sqlite-snap"][1])
                        for name in cpu[k]:
                            cpu[k][name].append(got[name][2])
                    log(f"  {remote:5} {mode:5} {secs:8.3f} s (sqlite-snap {got['sqlite-snap'][1]:.2f} s) CPU "
                        f"snap {got['sqlite-snap'][2]:.2f} s, push {got['bucket-push'][2]:.2f} s, "
                        f"RSS snap {got['sqlite-snap'][0] / 1024:.1f} MiB, push {got['bucket-push'][0] / 1024:.1f} MiB"
                        + self.others())
        med = {k: statistics.median(v) for k, v in times.items()}
        L = self.lines
        L.append("### Push pipeline: `sqlite-snap [--recipient KEY] DB | bucket-push REMOTE`")
        L.append("")
        L.append("| remote | mode | command | median s | with / without | CPU s sqlite-snap + bucket-push | "
                 "sqlite-snap peak RSS MiB | bucket-push peak RSS MiB | object MiB |")
        L.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
        for remote in REMOTES:
            for mode in MODES:
                k = (remote, mode)
                rcp = "--recipient age1… " if mode == "age" else ""
                label = f"`sqlite-snap {rcp}DB \\| bucket-push {self.remote_label(remote, mode)}`"
                ratio = med[k] / med[(remote, "plain")]
                L.append(f"| {'local directory' if remote == 'local' else 'rclone serve s3'} | "
                         f"{'with --recipient' if mode == 'age' else 'without'} | {label} | {med[k]:.3f} | "
                         f"{ratio:.3f} | {statistics.median(cpu[k]['sqlite-snap']):.2f} + "
                         f"{statistics.median(cpu[k]['bucket-push']):.2f} | {rss[k]['sqlite-snap'] / 1024:.1f} | {rss[k]['bucket-push'] / 1024:.1f} | "
                         f"{fmt_mib(records[k].get('bytes', 0))} |")
        L.append("")
        L.append("Per-run seconds (pipeline; sqlite-snap's own part in brackets): " + "; ".join(
            f"{r}-{m} " + " ".join(f"{t:.3f} [{s:.2f}]" for t, s in zip(times[(r, m)], snap_secs[(r, m)]))
            for r, m in keys))
        for remote in REMOTES:
            paired = [w / p for w, p in zip(times[(remote, "age")], times[(remote, "plain")])]
            snap_ratio = statistics.median(snap_secs[(remote, "age")]) / statistics.median(snap_secs[(remote, "plain")])
            c = {m: {t: statistics.median(cpu[(remote, m)][t]) for t in ("sqlite-snap", "bucket-push")} for m in MODES}
            c_all = {m: sum(c[m].values()) for m in MODES}
            L.append(f"{remote}: paired with/without ratios {' '.join(f'{x:.3f}' for x in paired)} "
                     f"(median {statistics.median(paired):.3f}); sqlite-snap's own part with/without "
                     f"{snap_ratio:.3f}; CPU-seconds with/without: sqlite-snap {c['age']['sqlite-snap'] / c['plain']['sqlite-snap']:.3f} "
                     f"({c['age']['sqlite-snap'] - c['plain']['sqlite-snap']:+.2f} s), bucket-push "
                     f"{c['age']['bucket-push'] / c['plain']['bucket-push']:.3f} "
                     f"({c['age']['bucket-push'] - c['plain']['bucket-push']:+.2f} s), both "
                     f"{c_all['age'] / c_all['plain']:.3f}; bucket-push's requests with: "
                     f"{_requests(records[(remote, 'age')])}, without: {_requests(records[(remote, 'plain')])}")
        L.append("")
        self.push_med = med

    def section_snapshot(self) -> None:
        a = self.args
        log("== snapshot: sqlite-snap -o DIR [--recipient] DB, and .backup + zstd [| age]")
        out = self.out / "snap"
        tmp_copy = out / "backup.sqlite3"
        R = self.recipient

        def rows():
            return {
                "snap-plain": [[("sqlite-snap", [self.snap, "-q", "-o", str(out / "plain"), str(self.db)])]],
                "snap-age": [[("sqlite-snap", [self.snap, "-q", "--recipient", R, "-o", str(out / "age"),
                                               str(self.db)])]],
                "cron-plain": [[("sqlite3", ["sqlite3", str(self.db), f".backup {_sqlq(tmp_copy)}"])],
                               [("zstd", ["zstd", "-3", "-T0", "-q", str(tmp_copy), "-o", str(out / "cron.zst")])]],
                "cron-age": [[("sqlite3", ["sqlite3", str(self.db), f".backup {_sqlq(tmp_copy)}"])],
                             [("zstd", ["zstd", "-3", "-T0", "-q", "-c", str(tmp_copy)]),
                              ("age", ["age", "-r", R])]],
            }
        redirect = {"cron-age": out / "cron.zst.age"}
        labels = {
            "snap-plain": "`sqlite-snap -o DIR DB`",
            "snap-age": "`sqlite-snap --recipient age1… -o DIR DB`",
            "cron-plain": "`sqlite3 DB \".backup TMP\"` + `zstd -3 -T0 TMP`",
            "cron-age": "`sqlite3 DB \".backup TMP\"` + `zstd -3 -T0 -c TMP \\| age -r age1… > OUT`",
        }
        times = {k: [] for k in labels}
        cpus = {k: [] for k in labels}
        rss: dict[str, dict[str, int]] = {k: {} for k in labels}
        size = {}
        for run in range(0, a.runs + 1):
            log(f"run {run}/{a.runs}" + (" (warm-up)" if run == 0 else ""))
            for name, steps in rows().items():
                if out.exists():
                    shutil.rmtree(out)
                out.mkdir(parents=True)
                self.sync()
                total = cpu = 0.0
                for i, step in enumerate(steps):
                    last = i == len(steps) - 1
                    secs, got, stdout = self.stages(step, self.env, redirect.get(name) if last else None)
                    total += secs
                    cpu += sum(c for _, _, c in got.values())
                    for proc, (kib, *_) in got.items():
                        rss[name][proc] = max(rss[name].get(proc, 0), kib)
                    if name.startswith("snap"):
                        self.note_rss("age" if name == "snap-age" else "plain", got)
                        if run == 0:
                            self.check_record(first_record(stdout) or {}, "age" if name == "snap-age" else "plain",
                                              name)
                tmp_copy.unlink(missing_ok=True)  # a cron script removes it too (untimed)
                files = [p for p in out.rglob("*") if p.is_file()]
                size[name] = sum(p.stat().st_size for p in files)
                if run:
                    times[name].append(total)
                    cpus[name].append(cpu)
                log(f"  {name:10} {total:8.3f} s  CPU {cpu:.2f} s  " + ", ".join(f"{p} {k / 1024:.1f} MiB" for p, k in rss[name].items())
                    + self.others())
        if out.exists():
            shutil.rmtree(out)
        med = {k: statistics.median(v) for k, v in times.items()}
        L = self.lines
        L.append("### Snapshot alone, and what a cron script does")
        L.append("")
        L.append("| command | median s | × sqlite-snap without | with / without (same tool) | CPU s | "
                 "CPU with / without | peak RSS MiB | output MiB |")
        L.append("|---|---:|---:|---:|---:|---:|---|---:|")
        base = {"snap-plain": "snap-plain", "snap-age": "snap-plain", "cron-plain": "cron-plain", "cron-age": "cron-plain"}
        for k, label in labels.items():
            r = ", ".join(f"{p} {v / 1024:.1f}" for p, v in rss[k].items())
            cm = statistics.median(cpus[k])
            L.append(f"| {label} | {med[k]:.3f} | {med[k] / med['snap-plain']:.3f} | "
                     f"{med[k] / med[base[k]]:.3f} | {cm:.2f} | {cm / statistics.median(cpus[base[k]]):.3f} | "
                     f"{r} | {fmt_mib(size[k])} |")
        L.append("")
        L.append("Per-run seconds: " + "; ".join(f"{k} " + " ".join(f"{t:.3f}" for t in v) for k, v in times.items()))
        paired = [w / p for w, p in zip(times["snap-age"], times["snap-plain"])]
        L.append(f"sqlite-snap paired with/without ratios: {' '.join(f'{x:.3f}' for x in paired)}; encrypted "
                 f"sqlite-snap / encrypted cron line = {med['snap-age'] / med['cron-age']:.3f}. sqlite-snap fsyncs "
                 "its output; the cron line's sqlite3, zstd and age do not.")
        L.append("")

    def seed_objects(self) -> None:
        """One push of each (remote, mode), when the push section did not run."""
        for remote in REMOTES:
            for mode in MODES:
                if (remote, mode) not in self.objects:
                    log(f"  seeding {remote} {mode}")
                    _, _, rec = self.push(remote, mode)
                    self.check_record(rec, mode, f"push {remote}")

    def local_object(self, mode: str) -> Path:
        rec = self.objects[("local", mode)]
        url = str(rec.get("url") or "")
        p = Path(url[len("file://"):] if url.startswith("file://") else url)
        if not p.is_file():
            die(f"cannot find the local object of {mode} on disk: {url}", 1)
        return p

    def section_restore(self) -> None:
        a = self.args
        log("== restore: bucket-pull REMOTE/<db> [-i key.txt], and zstd -d / age -d | zstd -d")
        self.seed_objects()
        out = self.out / "restore"
        out.mkdir(parents=True, exist_ok=True)
        dest = out / "restored.sqlite3"
        db_name = self.objects[("local", "plain")].get("db") or self.db.stem
        want = self.objects[("local", "plain")].get("raw_sha256")
        obj = {m: self.local_object(m) for m in MODES}

        def pull(remote: str, mode: str) -> list[tuple[str, list[str]]]:
            ident = ["-i", str(self.key)] if mode == "age" else []
            return [("bucket-pull", [self.pull, "-q", f"{self.remote_url(remote, mode)}/{db_name}", *ident,
                                     "-o", str(dest), "--force"])]

        rows = {}
        for remote in REMOTES:
            for mode in MODES:
                rows[f"{remote}-{mode}"] = (pull(remote, mode), self.env_for(remote), None)
        rows["zstd-plain"] = ([("zstd", ["zstd", "-d", "-q", str(obj["plain"]), "-o", str(dest)])], self.env, None)
        rows["age-zstd"] = ([("age", ["age", "-d", "-i", str(self.key), str(obj["age"])]),
                             ("zstd", ["zstd", "-d", "-q", "-c"])], self.env, dest)
        idl = lambda m: " -i key.txt" if m == "age" else ""  # noqa: E731
        labels = {f"{r}-{m}": f"`bucket-pull {self.remote_label(r, m)}/{db_name}{idl(m)} -o OUT`"
                  for r in REMOTES for m in MODES}
        labels["zstd-plain"] = "`zstd -d OBJ -o OUT` (the local plain object)"
        labels["age-zstd"] = "`age -d -i key.txt OBJ \\| zstd -d > OUT` (the local encrypted object)"
        times = {k: [] for k in rows}
        cpus = {k: [] for k in rows}
        rss: dict[str, dict[str, int]] = {k: {} for k in rows}
        for run in range(0, a.runs + 1):
            log(f"run {run}/{a.runs}" + (" (warm-up)" if run == 0 else ""))
            for name, (stages, env, redirect) in rows.items():
                for p in (dest, Path(f"{dest}-wal"), Path(f"{dest}-shm")):
                    p.unlink(missing_ok=True)
                self.sync()
                secs, got, _ = self.stages(stages, env, redirect)
                for proc, (kib, *_) in got.items():
                    rss[name][proc] = max(rss[name].get(proc, 0), kib)
                if name.startswith(REMOTES):  # the bucket-pull rows
                    self.note_rss(name.rsplit("-", 1)[1], got)
                if run == 0:
                    got_sha = sha256_of(dest)
                    if want and got_sha != want:
                        die(f"restore {name}: SHA-256 {got_sha}, want the snapshot's raw_sha256 {want}", 1)
                cpu = sum(c for _, _, c in got.values())
                if run:
                    times[name].append(secs)
                    cpus[name].append(cpu)
                log(f"  {name:11} {secs:8.3f} s  CPU {cpu:.2f} s  " + ", ".join(f"{p} {k / 1024:.1f} MiB" for p, (k, *_) in got.items())
                    + self.others())
        for p in (dest, Path(f"{dest}-wal"), Path(f"{dest}-shm")):
            p.unlink(missing_ok=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        base = {k: k.rsplit("-", 1)[0] + "-plain" for k in labels if k.startswith(REMOTES)}
        base.update({"zstd-plain": "zstd-plain", "age-zstd": "zstd-plain"})
        L = self.lines
        L.append("### Restore")
        L.append("")
        L.append("| command | median s | with / without | CPU s | CPU with / without | peak RSS MiB |")
        L.append("|---|---:|---:|---:|---:|---|")
        for k, label in labels.items():
            r = ", ".join(f"{p} {v / 1024:.1f}" for p, v in rss[k].items())
            cm = statistics.median(cpus[k])
            L.append(f"| {label} | {med[k]:.3f} | {med[k] / med[base[k]]:.3f} | {cm:.2f} | "
                     f"{cm / statistics.median(cpus[base[k]]):.3f} | {r} |")
        L.append("")
        L.append("Per-run seconds: " + "; ".join(f"{k} " + " ".join(f"{t:.3f}" for t in v) for k, v in times.items()))
        L.append(f"Every warm-up restore checked: SHA-256 = the snapshot's raw_sha256 ({(want or '?')[:16]}…). "
                 "bucket-pull fsyncs the restored file before renaming it into place; zstd and age do not.")
        L.append("")

    def bytes_lines(self) -> None:
        """Encrypted against plain stored bytes, and the decrypted object
        against the plain one."""
        if ("local", "plain") not in self.objects or ("local", "age") not in self.objects:
            return
        plain = self.local_object("plain")
        enc = self.local_object("age")
        p_bytes, e_bytes = plain.stat().st_size, enc.stat().st_size
        dec = self.scratch / "decrypted.zst"
        subprocess.run(["age", "-d", "-i", str(self.key), "-o", str(dec), str(enc)], check=True, env=self.env)
        d_bytes = dec.stat().st_size
        same = d_bytes == p_bytes and sha256_of(dec) == sha256_of(plain)
        dec.unlink()
        chunks = max(1, -(-d_bytes // AGE_CHUNK))
        tags = AGE_TAG * chunks
        header = e_bytes - d_bytes - tags
        s3_sizes = {m: self.objects.get(("s3", m), {}).get("bytes") for m in MODES}
        L = self.lines
        L.append("### Stored bytes")
        L.append("")
        L.append("| object | bytes | MiB |")
        L.append("|---|---:|---:|")
        L.append(f"| plain `{plain.name}` | {p_bytes:,} | {fmt_mib(p_bytes)} |")
        L.append(f"| encrypted `{enc.name}` | {e_bytes:,} | {fmt_mib(e_bytes)} |")
        L.append(f"| its plaintext (`age -d`) | {d_bytes:,} | {fmt_mib(d_bytes)} |")
        L.append("")
        s3 = (f" The S3 remote's objects (records): plain {s3_sizes['plain']:,}, encrypted {s3_sizes['age']:,} bytes."
              if all(s3_sizes.values()) else "")
        L.append(f"Encrypted − plaintext = {e_bytes - d_bytes:,} bytes = {chunks:,} chunks of 64 KiB × {AGE_TAG} "
                 f"({tags:,}) + {header:,} bytes of header: {100 * (e_bytes - d_bytes) / d_bytes:.4f}% of the "
                 f"plaintext. The encrypted object's plaintext is the plain object byte for byte: "
                 f"{'yes' if same else 'NO'}.{s3}")
        L.append("")

    def checks(self, sections: list[str]) -> None:
        L = self.lines
        if "push" in sections:
            for remote in REMOTES:
                x = self.push_med[(remote, "age")] / self.push_med[(remote, "plain")]
                L.append(f"push pipeline time, {'local directory' if remote == 'local' else 'S3 (rclone serve s3)'}: "
                         f"with --recipient / without = {x:.3f} (target ≤ {PUSH_TARGET:.2f}) "
                         f"{'PASS' if x <= PUSH_TARGET else 'FAIL'}")
        parts = []
        worst = 0
        for tool in ("sqlite-snap", "bucket-push", "bucket-pull"):
            kib = self.tool_rss.get((tool, "age"))
            if kib is None:
                continue
            worst = max(worst, kib)
            plain = self.tool_rss.get((tool, "plain"))
            parts.append(f"{tool} {kib / 1024:.1f}" + (f" (without: {plain / 1024:.1f})" if plain else ""))
        if parts:
            L.append(f"peak RSS with encryption: {', '.join(parts)} MiB (target < {RSS_TARGET_MIB} each) "
                     f"{'PASS' if worst / 1024 < RSS_TARGET_MIB else 'FAIL'}")


def _sqlq(path: Path) -> str:
    s = str(path)
    if "'" in s:
        die(f"paths with a single quote are not supported: {s}")
    return f"'{s}'"


def _requests(rec: dict) -> str:
    r = rec.get("requests")
    if not isinstance(r, dict):
        return "n/a"
    return ", ".join(f"{k} {v}" for k, v in r.items() if v and not k.startswith("class_")) or "none"


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(
        description="Time, peak RSS and bytes of age encryption in sqlkeep: the push pipeline, the snapshot "
        "and the restore with and without --recipient, on snapshot.py's generated database.",
        epilog="sections: " + ", ".join(SECTIONS))
    ap.add_argument("--size-mb", type=int, default=2048, help="database size in MiB (default 2048)")
    ap.add_argument("--db", type=Path, help="benchmark this database as it is (only read) instead of the "
                    "generated bench/data/rails-<SIZE>mb.sqlite3")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per row; the median is reported (default 3)")
    ap.add_argument("--only", help="comma-separated sections to run (default: all)")
    common_args(ap, here, "sqlite-snap, bucket-push and bucket-pull are", "database")
    args = ap.parse_args()
    if args.size_mb < 1:
        die("--size-mb must be at least 1")
    if args.runs < 1:
        die("--runs must be at least 1")
    sections = list(SECTIONS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in SECTIONS]
        if unknown:
            die(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
        sections = [s for s in SECTIONS if s in names]
    for tool in ("sqlite3", "zstd", "age", "age-keygen", "bash"):
        if shutil.which(tool) is None:
            die(f"{tool} is not installed or not on PATH (apt-get install sqlite3 zstd age)")
    rclone = resolve_rclone(args.rclone)
    bin_dir = args.bin_dir.resolve()
    tools = ("sqlite-snap", "bucket-push", "bucket-pull")
    # Binaries built from this checkout must be newer than its sources;
    # binaries elsewhere (another worktree's target) are taken as they are.
    sources = []
    if here.parent in bin_dir.parents:
        sources = sorted((here.parent / "common" / "src").rglob("*.rs")) + [
            p for b in tools for p in (here.parent / "tools" / b / "src").rglob("*.rs")]
    wait_for_build([bin_dir / b for b in tools], sources, args.wait_build)
    helptext = subprocess.run([str(bin_dir / "sqlite-snap"), "--help"], capture_output=True, text=True).stdout
    if "--recipient" not in helptext:
        die(f"{bin_dir / 'sqlite-snap'} has no --recipient: binaries from before issue 12")

    # The database.
    gen_secs = None
    generated = False
    if args.db:
        db = args.db.resolve()
        if not db.is_file():
            die(f"{db} not found")
        log(f"using {db} as it is ({db.stat().st_size / MiB:.1f} MiB)")
        scratch = db.with_name(db.name + ".encryption-scratch")
    else:
        db = here / "data" / f"rails-{args.size_mb}mb.sqlite3"
        db.parent.mkdir(parents=True, exist_ok=True)
        generated = True
        if db.exists() and snapshot.read_marker(db) == snapshot._marker(args.size_mb):
            log(f"reusing {db} ({db.stat().st_size / MiB:.1f} MiB)")
        else:
            if db.exists():
                die(f"{db} exists and was not generated by snapshot.py's generator for {args.size_mb} MiB")
            log(f"generating {db} ({args.size_mb} MiB) with snapshot.py's generator ...")
            gen_secs = snapshot.generate(db, args.size_mb)
        scratch = here / "data" / "scratch" / "encryption"
    db_bytes = db.stat().st_size
    # Live at once: two remotes × two modes × (runs + 1) compressed copies,
    # a .backup copy, a restored database, its compressed copies.
    need = db_bytes * (0.35 * 4 * (args.runs + 1) + 2.5) + 512 * MiB
    if shutil.disk_usage(db.parent).free < need:
        die(f"not enough free disk under {db.parent}: need about {need / MiB:.0f} MiB")
    if scratch.exists():
        shutil.rmtree(scratch)
    B = Bench(args, here, db, scratch)
    for d in (B.logs, B.tmp, B.out, B.stage_dir, B.local_root, B.server_root / BUCKET):
        d.mkdir(parents=True)
    if os.stat(scratch).st_dev != os.stat(db).st_dev:
        die(f"{scratch} is not on the same filesystem as {db}")
    B.py_launcher = scratch / "launcher.py"
    B.py_launcher.write_text(STAGE_LAUNCHER)

    base_env = {k: v for k, v in clean_env({}, B.tmp).items() if not k.startswith("SQLKEEP_")}
    subprocess.run(["age-keygen", "-o", str(B.key)], check=True, capture_output=True, env=base_env)
    B.recipient = subprocess.run(["age-keygen", "-y", str(B.key)], check=True, capture_output=True, text=True,
                                 env=base_env).stdout.strip()
    if not B.recipient.startswith("age1"):
        die(f"age-keygen -y printed no age1 recipient: {B.recipient!r}", 1)

    server = Server(rclone, B.server_root, base_env)
    watch = None
    try:
        assert server.endpoint is not None
        log(f"rclone serve s3 on {server.endpoint}, serving {B.server_root}")
        B.env = base_env
        B.env_s3 = {k: v for k, v in tool_envs(server.endpoint, B.tmp)["sqlkeep"].items()
                    if not k.startswith("SQLKEEP_")}
        B.runner = Runner(B.logs, args.launcher, server, env=base_env)
        load_before = os.getloadavg()
        watch = B.watch = BusyWatch(server.proc.pid)
        t0 = time.perf_counter()
        for s in sections:
            getattr(B, f"section_{s}")()
        B.bytes_lines()
        B.checks(sections)
        total = time.perf_counter() - t0
        busy = watch.stop()
        watch = None
        load_after = os.getloadavg()
        server_hwm = server.peak_rss_kib()
    finally:
        if watch is not None:
            watch.stop()
        server.stop()

    snap_rec = B.objects.get(("local", "plain"), {})
    print()
    print(f"Machine: nproc {nproc()}, CPU {cpu_model()}, sqlite3 {first_line(['sqlite3', '--version']).split()[0]}, "
          f"{first_line(['zstd', '--version']).strip('* ').split(', by')[0]}, age {first_line(['age', '--version'])}, "
          f"{first_line([rclone, 'version'])} (server), DB {db_bytes / MiB:.1f} MiB ({db.name})")
    print(f"{first_line([B.snap, '--version'])} (its bundled SQLite {snap_rec.get('sqlite_version', '?')}) from "
          f"{bin_dir}; load average 1 min: {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"{total:.0f} s for the sections {', '.join(sections)}; {busy}")
    print(f"Runs: {args.runs} timed (median reported) after 1 untimed warm-up; warm page cache; round-robin, "
          f"without before with (A/B/A/B); sync(2) before each timed command. Peak RSS per process via "
          f"{B.runner.kind} (floor {B.runner.floor_kib / 1024:.1f} MiB). One X25519 recipient (age-keygen).")
    if gen_secs is not None:
        print(f"Database generated in {gen_secs:.1f} s")
    if server_hwm:
        print(f"rclone serve s3 (not counted) peak RSS: {server_hwm / 1024:.1f} MiB")
    print()
    print("\n".join(B.lines))

    if generated:
        snapshot.read_marker(db)  # tidies the empty -wal/-shm that read-only openers leave
        if not args.keep:
            for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                p.unlink(missing_ok=True)
            log(f"removed {db} (--no-keep)")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        scratch.parent.rmdir() if scratch.parent.name == "scratch" else None
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    run_main(main)
