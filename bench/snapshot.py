#!/usr/bin/env python3
"""Benchmark: how fast, and in how much memory, can a live SQLite database be
snapshotted, sqlite-snap against the ways people do it today?

The reference is what a cron backup script does now: `VACUUM INTO` a copy,
then `zstd -3 -T0` it. sqlkeep claims two things about `sqlite-snap`, and this
script checks both on one database, in one run:

  * time:   compressed sqlite-snap (--method pages, zstd level 3) takes at most
            half the time of `VACUUM INTO` + `zstd -3 -T0`;
  * memory: sqlite-snap's peak RSS stays at or under 64 MiB, whatever the
            database size (it streams pages; it never holds the database).

Rows measured (names for --only):

  cp                 cp DB OUT: the floor, a plain file copy (NOT a consistent
                     snapshot of a live database; here only because the
                     benchmark DB is idle and fully checkpointed)
  vacuum-into        sqlite3 DB "VACUUM INTO 'OUT'"
  backup             sqlite3 DB ".backup 'OUT'" (the online backup API)
  vacuum-into+zstd   sqlite3 DB "VACUUM INTO 'OUT'" && zstd -3 -T0 -q OUT -o OUT.zst
                     the reference: time of the pair, peak RSS = max of the two
  snap-pages         sqlite-snap --method pages -o DIR DB (compressed, level 3)
  snap-vacuum        sqlite-snap --method vacuum -o DIR DB
  snap-pages-raw     sqlite-snap --method pages --no-compress -o DIR DB

How it measures, and why:

  * The database is generated, not downloaded: a Rails-like schema (users,
    posts, comments with the indexes and foreign keys Rails migrations create)
    filled with text drawn from a fixed vocabulary with a seeded RNG, so every
    run on every machine gets the same bytes, and the data compresses like real
    application data (about 3-6x with zstd -3) rather than like random bytes
    (1x) or a repeated string (100x), either of which would make the
    compression cost meaningless. It is kept (bench/data/) and reused when a
    marker in it says it was made by this generator version for this size.
  * Dropping the page cache needs root, which we cannot count on, so every
    method runs once untimed first and all are measured warm: the database is
    in the page cache for every row alike, and the comparison is about CPU and
    write work, not about who ran first.
  * The timed runs go round-robin (run 1 of every method, then run 2, ...), so
    a noisy neighbour or thermal drift lands on all rows alike; each row
    reports the median of --runs runs.
  * Outputs are deleted, and sync(2) called, between runs, outside the timed
    region, so one run's dirty pages are not written back during the next.
  * Peak RSS is per command (ru_maxrss, KiB on Linux), measured by a small
    launcher that forks the command and reaps it with wait4(2): GNU
    `time -f %M` if installed, else a minimal Python one. Never as a direct
    child of this script: on Linux a process's ru_maxrss includes the memory
    it had before exec(2), i.e. a copy of its parent's, so wait4 on a direct
    child reports this script's size (we saw 66 MiB for `cp`). The launcher's
    own floor (what `true` shows, ~1 MiB with GNU time) is printed.
  * Text is generated with ~4x zstd compressibility at every size; the
    reference and sqlite-snap compress the very same bytes.
  * Scratch outputs go to a directory beside the database (same filesystem),
    and TMPDIR points there too, so a tool's temporary copy lands on the same
    disk as everyone else's output.

Usage:
  python3 bench/snapshot.py --size-mb 200
  python3 bench/snapshot.py --size-mb 2048
  python3 bench/snapshot.py --size-mb 20 --runs 3 --only vacuum-into+zstd,snap-pages

Results for docs/benchmarks.md: the Markdown table and the lines under it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import sqlite3
import statistics
import time
from pathlib import Path

from benchlib import common_args, run_main, MiB, Runner, cpu_model, die, first_line, log, nproc

GENERATOR_VERSION = 1
MARKER_KEY = "sqlkeep_bench"
SEED = 20240611
PAGE_SIZE = 4096  # SQLite's (and Rails') default

REFERENCE = "vacuum-into+zstd"
TARGET_METHOD = "snap-pages"
TIME_TARGET = 0.5
RSS_TARGET_MIB = 64


# --------------------------------------------------------------------------
# Database generation
# --------------------------------------------------------------------------

# A fixed vocabulary: common English words (the head of the distribution)
# followed by words of a web app's domain. A Zipf-like weighting over it gives
# text with the letter and word statistics of prose, which is what makes it
# compress like a real app's posts and comments.
_WORDS = """
the of and to a in is it you that he was for on are with as i his they be at
one have this from or had by hot but some what there we can out other were all
your when up use word how said an each she which do their time if will way
about many then them would write like so these her long make thing see him two
has look more day could go come did my sound no most number who over know water
than call first people may down side been now find any new work part take get
place made live where after back little only round man year came show every
good me give our under name very through just form much great think say help
low line before turn cause same mean differ move right boy old too does tell
sentence set three want air well also play small end put home read hand port
large spell add even land here must big high such follow act why ask men change
went light kind off need house picture try us again animal point mother world
near build self earth father head stand own page should country found answer
school grow study still learn plant cover food sun four thought let keep eye
never last door between city tree cross since hard start might story saw far
sea draw left late run don't while press close night real life few stop open
seem together next white children begin got walk example ease paper often always
music those both mark book letter until mile river car feet care second group
carry took rain eat room friend began idea fish mountain north once base hear
horse cut sure watch color face wood main enough plain girl usual young ready
above ever red list though feel talk bird soon body dog family direct pose leave
song measure state product black short numeral class wind question happen
complete ship area half rock order fire south problem piece told knew pass farm
top whole king size heard best hour better true during hundred am remember step
early hold west ground interest reach fast five sing listen six table travel
less morning ten simple several vowel toward war lay against pattern slow center
love person money serve appear road map science rule govern pull cold notice
voice fall power town fine certain fly unit lead cry dark machine note wait plan
figure star box noun field rest correct able pound done beauty drive stood
contain front teach week final gave green oh quick develop sleep warm free
minute strong special mind behind clear tail produce fact street inch lot
nothing course stay wheel full force blue object decide surface deep moon island
foot yet busy test record boat common gold possible plane age dry wonder laugh
thousand ago ran check game shape yes miss brought heat snow bed bring sit
perhaps fill east weight language among account order invoice customer deploy
server database backup release feature branch commit merge review ticket issue
bug fix update user admin dashboard report export import email password login
session cache queue job worker retry timeout request response header payload
token api endpoint migration schema column index table record model controller
view route params render redirect flash notice alert partial layout asset
stylesheet javascript turbo stimulus hotwire rails ruby gem bundle kamal docker
container volume cron schedule nightly weekly monthly invoice payment refund
subscription plan trial upgrade downgrade cancel renew receipt tax discount
coupon cart checkout shipping address city postal phone profile avatar settings
notification comment reply thread mention like share follow unfollow block mute
tag category archive draft publish schedule preview edit delete restore
""".split()


def _vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """The head words plus a long tail of pseudo-words (names, jargon, typos),
    with Zipf weights (s = 1.07) over the whole list."""
    head = list(dict.fromkeys(_WORDS))
    syll = "ka lo mi ne ru sa ti po de va le ro ma ni ko su ba ze fi gu".split()
    tail = set()
    while len(tail) < 6000:
        tail.add("".join(rng.choice(syll) for _ in range(rng.randint(2, 4))))
    words = head + sorted(tail)
    rest = words[len(head) // 4 :]  # keep the most common words on top, mix the rest
    rng.shuffle(rest)
    words[len(head) // 4 :] = rest
    weights = list(itertools.accumulate(1.0 / (rank + 1) ** 1.07 for rank in range(len(words))))
    return words, weights


class TextPool:
    """A large pool of generated prose; each body is a slice of it at a random
    offset. Generating every body word by word runs at ~15 MB/s in Python,
    too slow for a 2 GB database; slicing a pool is nearly free. The pool is
    far larger than zstd -3's 2 MiB window, so slices do not give zstd
    unrealistically long matches.

    Sentences are made of stock phrases (1-5 words, themselves Zipf-drawn from
    the vocabulary), and phrases are Zipf-drawn too (s = 0.9 over 20,000): text
    of independent random words compresses only ~3x with zstd -3, since LZ
    finds nothing longer than a word to match, while real posts and comments
    repeat phrases. With phrases the database compresses ~4x."""

    def __init__(self, rng: random.Random, size: int):
        words, weights = _vocabulary(rng)
        phrases = [
            " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(1, 5)))
            for _ in range(20_000)
        ]
        pweights = list(itertools.accumulate(1.0 / (rank + 1) ** 0.9 for rank in range(len(phrases))))
        sentences: list[str] = []
        total = 0
        while total < size:
            n = 20_000
            toks = rng.choices(phrases, cum_weights=pweights, k=n)
            i = 0
            while i < n:
                k = rng.randint(2, 6)
                s = " ".join(toks[i : i + k])
                i += k
                if not s:
                    continue
                end = ". " if rng.random() < 0.85 else ("? " if rng.random() < 0.5 else "! ")
                s = s[0].upper() + s[1:] + end
                if rng.random() < 0.12:
                    s += "\n\n"
                sentences.append(s)
                total += len(s)
        self.text = "".join(sentences)
        self.n = len(self.text)
        self.rng = rng

    def take(self, length: int) -> str:
        text = self.text
        start = self.rng.randrange(0, self.n - length - 64)
        sp = text.find(" ", start, start + 64)
        if sp >= 0:
            start = sp + 1
        s = text[start : start + length]
        cut = s.rfind(" ")
        if cut > length // 2:
            s = s[:cut]
        s = s.strip()
        return s[:1].upper() + s[1:] if s else "ok"


FIRST = """james mary robert patricia john jennifer michael linda david elizabeth william
barbara richard susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy
matthew betty anthony sandra mark margaret donald ashley steven kimberly andrew emily paul donna
joshua michelle kenneth carol kevin amanda brian melissa george deborah timothy stephanie ronald
rebecca jason sharon edward laura jeffrey cynthia ryan dorothy jacob amy gary kathleen nicholas
angela eric shirley jonathan emma stephen brenda larry pamela justin nicole scott anna brandon
samantha benjamin katherine samuel christine gregory debra alexander rachel patrick carolyn frank
janet raymond maria jack olivia dennis heather jerry helen tyler catherine aaron diane jose julie
adam victoria nathan joyce henry lauren zachary kelly douglas christina peter ruth kyle joan noah
virginia ethan judith jeremy evelyn walter hannah christian andrea keith megan roger cheryl terry
jacqueline austin martha sean madison gerald teresa carl kathryn harold sara dylan janice arthur
julia lawrence kelly jordan abigail jesse sophia bryan frances billy jean bruce alice gabriel
judy joe isabella logan julie alan grace juan amber albert denise willie danielle elijah
marilyn wayne beverly randy charlotte vincent natalie mason theresa roy diana ralph brittany
bobby doris russell kayla bradley alexis philip lori eugene""".split()
LAST = """smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez
lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris
sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen hill
flores green adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans
turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers gutierrez
ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks
chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel myers
long ross foster jimenez powell jenkins perry russell sullivan bell coleman butler henderson
barnes gonzales fisher vasquez simmons romero jordan patterson alexander hamilton graham
reynolds griffin wallace moreno west cole hayes bryant herrera gibson ellis tran medina aguilar
stevens murray ford castro marshall owens harrison fernandez mcdonald woods washington kennedy
wells vargas henry chen freeman webb tucker guzman burns crawford olson simpson porter hunter
gordon mendez silva shaw snyder mason dixon munoz hunt hicks holmes palmer wagner black
robertson boyd rose stone salazar fox warren mills meyer rice schmidt garza daniels ferguson
nichols stephens soto weaver ryan gardner payne grant dunn kelley spencer hawkins arnold pierce
vazquez hansen peters santos hart bradley knight elliott cunningham duncan armstrong hudson
carroll lane riley andrews alvarado ray delgado berry perkins hoffman johnston matthews pena
richards contreras willis carpenter lawrence sandoval""".split()
DOMAINS = "gmail.com yahoo.com outlook.com hotmail.com icloud.com proton.me fastmail.com example.com".split()

SCHEMA = """
CREATE TABLE "schema_migrations" ("version" varchar NOT NULL PRIMARY KEY);
CREATE TABLE "ar_internal_metadata" ("key" varchar NOT NULL PRIMARY KEY, "value" varchar,
  "created_at" datetime(6) NOT NULL, "updated_at" datetime(6) NOT NULL);
CREATE TABLE "users" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "email" varchar NOT NULL,
  "name" varchar NOT NULL, "created_at" datetime(6) NOT NULL, "updated_at" datetime(6) NOT NULL);
CREATE UNIQUE INDEX "index_users_on_email" ON "users" ("email");
CREATE TABLE "posts" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "user_id" integer NOT NULL,
  "title" varchar NOT NULL, "body" text, "created_at" datetime(6) NOT NULL,
  "updated_at" datetime(6) NOT NULL,
  CONSTRAINT "fk_rails_5b5ddfd518" FOREIGN KEY ("user_id") REFERENCES "users" ("id"));
CREATE INDEX "index_posts_on_user_id" ON "posts" ("user_id");
CREATE INDEX "index_posts_on_created_at" ON "posts" ("created_at");
CREATE TABLE "comments" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "post_id" integer NOT NULL,
  "user_id" integer NOT NULL, "body" text NOT NULL, "created_at" datetime(6) NOT NULL,
  "updated_at" datetime(6) NOT NULL,
  CONSTRAINT "fk_rails_2fd19c0db7" FOREIGN KEY ("post_id") REFERENCES "posts" ("id"),
  CONSTRAINT "fk_rails_03de2dc08c" FOREIGN KEY ("user_id") REFERENCES "users" ("id"));
CREATE INDEX "index_comments_on_post_id" ON "comments" ("post_id");
CREATE INDEX "index_comments_on_user_id" ON "comments" ("user_id");
CREATE INDEX "index_comments_on_created_at" ON "comments" ("created_at");
"""


def _marker(size_mb: int) -> dict:
    return {"generator": GENERATOR_VERSION, "size_mb": size_mb, "seed": SEED}


def read_marker(db: Path) -> dict | None:
    """The generator's marker in ar_internal_metadata, or None if there is none.
    (A read-write connection, so that closing it, as the last one, checkpoints
    and removes the -wal and -shm files a read-only one would leave behind.)"""
    try:
        con = sqlite3.connect(db)
        try:
            row = con.execute(
                "SELECT value FROM ar_internal_metadata WHERE key = ?", (MARKER_KEY,)
            ).fetchone()
        finally:
            con.close()
        return json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError):
        return None


def _ts(t: float) -> str:
    """A Rails datetime(6) string for epoch seconds t."""
    us = int((t % 1) * 1_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{us:06d}"


def generate(db: Path, size_mb: int) -> float:
    """Create a Rails-like database of about size_mb MiB at db; returns seconds taken."""
    t0 = time.perf_counter()
    target = size_mb * MiB
    tmp = db.with_name(db.name + ".generating")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
        p.unlink(missing_ok=True)

    rng = random.Random(SEED)
    pool = TextPool(rng, min(48 * MiB, max(4 * MiB, target // 2)))
    log(f"  text pool: {pool.n / MiB:.0f} MiB in {time.perf_counter() - t0:.1f} s")

    con = sqlite3.connect(tmp, isolation_level=None)
    con.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -262144")  # 256 MiB: index inserts stay in memory
    con.execute("PRAGMA temp_store = MEMORY")
    con.executescript(SCHEMA)
    now = 1_718_064_000.0  # fixed (2024-06-11), so the same seed gives the same bytes
    con.executemany(
        "INSERT INTO schema_migrations (version) VALUES (?)",
        [("20240101000001",), ("20240101000002",), ("20240101000003",)],
    )
    con.execute(
        "INSERT INTO ar_internal_metadata VALUES ('environment', 'production', ?, ?)",
        (_ts(now), _ts(now)),
    )

    clock = 1_609_459_200.0  # 2021-01-01: rows get increasing timestamps, as in life
    n_users = n_posts = n_comments = 0
    est_per_post = 3000.0  # bytes of file per post with its comments; refined as we go
    last_report = 0.0

    def size_now() -> int:
        return con.execute("PRAGMA page_count").fetchone()[0] * PAGE_SIZE

    size = size_now()
    while size < target:
        remaining = target - size
        batch = int(max(50, min(5000, remaining / est_per_post * 0.9)))
        size_before = size

        # Users: about one per ten posts, at least a hundred to begin with.
        new_users = max(1, batch // 10) if n_users >= 100 else 100
        users = []
        for _ in range(new_users):
            n_users += 1
            clock += rng.expovariate(1 / 30.0)
            first, last = rng.choice(FIRST), rng.choice(LAST)
            c = _ts(clock)
            u = c if rng.random() < 0.6 else _ts(clock + rng.uniform(0, 3e7))
            users.append(
                (n_users, f"{first}.{last}{n_users}@{rng.choice(DOMAINS)}",
                 f"{first.title()} {last.title()}", c, u)
            )

        posts = []
        comments = []
        for _ in range(batch):
            n_posts += 1
            clock += rng.expovariate(1 / 20.0)
            c = _ts(clock)
            u = c if rng.random() < 0.7 else _ts(clock + rng.uniform(0, 1e7))
            body_len = int(min(40_000, max(60, rng.lognormvariate(6.7, 1.0))))  # median ~800 B
            posts.append(
                (n_posts, rng.randint(1, n_users), pool.take(rng.randint(15, 70)).rstrip(".?!"),
                 pool.take(body_len), c, u)
            )
            for _ in range(rng.randint(0, 10)):
                n_comments += 1
                t = clock + rng.uniform(0, 60)
                # Mostly recent posts, now and then an old one.
                post_id = (
                    max(1, n_posts - int(rng.expovariate(1 / 200.0)))
                    if rng.random() < 0.9 else rng.randint(1, n_posts)
                )
                clen = int(min(8000, max(8, rng.lognormvariate(4.8, 0.8))))  # median ~120 B
                ts = _ts(t)
                comments.append((n_comments, post_id, rng.randint(1, n_users), pool.take(clen), ts, ts))

        con.execute("BEGIN")
        con.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?)", users)
        con.executemany("INSERT INTO posts VALUES (?, ?, ?, ?, ?, ?)", posts)
        con.executemany("INSERT INTO comments VALUES (?, ?, ?, ?, ?, ?)", comments)
        con.execute("COMMIT")

        size = size_now()
        grown = size - size_before
        if grown > 0:
            est_per_post = 0.5 * est_per_post + 0.5 * grown / batch
        elapsed = time.perf_counter() - t0
        if elapsed - last_report >= 5:
            last_report = elapsed
            log(f"  {size / MiB:7.0f} / {size_mb} MiB  {elapsed:5.0f} s  "
                f"({n_users} users, {n_posts} posts, {n_comments} comments)")

    con.execute(
        "INSERT INTO ar_internal_metadata VALUES (?, ?, ?, ?)",
        (MARKER_KEY, json.dumps(_marker(size_mb)), _ts(now), _ts(now)),
    )
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.close()  # last connection: checkpoints and removes -wal/-shm
    os.replace(tmp, db)
    secs = time.perf_counter() - t0
    log(f"  generated {db} ({db.stat().st_size / MiB:.1f} MiB: {n_users} users, "
        f"{n_posts} posts, {n_comments} comments) in {secs:.1f} s")
    return secs


# --------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------


def _sql_str(path: Path) -> str:
    s = str(path)
    if "'" in s:
        die(f"paths with a single quote are not supported: {s}")
    return f"'{s}'"


class Method:
    """One row of the table: a sequence of commands (each timed and RSS-
    measured on its own) that produce outputs under out_dir."""

    def __init__(self, name, label, steps, outputs, is_snap=False):
        self.name = name
        self.label = label
        self.steps = steps        # (db, out_dir, bin_dir) -> [argv, ...]
        self.outputs = outputs    # (out_dir) -> [Path] whose sizes make the output size
        self.is_snap = is_snap


def _files(d: Path) -> list[Path]:
    return [p for p in d.iterdir() if p.is_file()] if d.is_dir() else []


METHODS = [
    Method("cp", "`cp DB OUT`",
           lambda db, o, b: [["cp", str(db), str(o / "out.sqlite3")]],
           lambda o: [o / "out.sqlite3"]),
    Method("vacuum-into", "`sqlite3 DB \"VACUUM INTO 'OUT'\"`",
           lambda db, o, b: [["sqlite3", str(db), f"VACUUM INTO {_sql_str(o / 'out.sqlite3')}"]],
           lambda o: [o / "out.sqlite3"]),
    Method("backup", "`sqlite3 DB \".backup 'OUT'\"`",
           lambda db, o, b: [["sqlite3", str(db), f".backup {_sql_str(o / 'out.sqlite3')}"]],
           lambda o: [o / "out.sqlite3"]),
    Method(REFERENCE, "`VACUUM INTO` + `zstd -3 -T0` (reference)",
           lambda db, o, b: [
               ["sqlite3", str(db), f"VACUUM INTO {_sql_str(o / 'out.sqlite3')}"],
               ["zstd", "-3", "-T0", "-q", str(o / "out.sqlite3"), "-o", str(o / "out.sqlite3.zst")],
           ],
           lambda o: [o / "out.sqlite3.zst"]),
    Method(TARGET_METHOD, "`sqlite-snap --method pages` (zstd -3)",
           lambda db, o, b: [[str(b / "sqlite-snap"), "--method", "pages", "-o", str(o / "snap"), str(db)]],
           lambda o: _files(o / "snap"), is_snap=True),
    Method("snap-vacuum", "`sqlite-snap --method vacuum` (zstd -3)",
           lambda db, o, b: [[str(b / "sqlite-snap"), "--method", "vacuum", "-o", str(o / "snap"), str(db)]],
           lambda o: _files(o / "snap"), is_snap=True),
    Method("snap-pages-raw", "`sqlite-snap --method pages --no-compress`",
           lambda db, o, b: [[str(b / "sqlite-snap"), "--method", "pages", "--no-compress",
                              "-o", str(o / "snap"), str(db)]],
           lambda o: _files(o / "snap"), is_snap=True),
]
BY_NAME = {m.name: m for m in METHODS}


def clean(out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    os.sync()


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(
        description="Time and peak RSS of sqlite-snap against cp, VACUUM INTO, .backup "
        "and VACUUM INTO + zstd on a generated Rails-like database.",
        epilog="methods: " + ", ".join(BY_NAME),
    )
    ap.add_argument("--size-mb", type=int, default=200, help="database size in MiB (default 200)")
    ap.add_argument("--db", type=Path, help="database path (default bench/data/rails-<SIZE>mb.sqlite3)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per method; the median is reported (default 5)")
    common_args(ap, here, "sqlite-snap is", "database", rclone=False)
    ap.add_argument("--only", help="comma-separated methods to run (default: all)")
    ap.add_argument("--use-existing", action="store_true",
                    help="benchmark --db as it is, even if this script did not generate it")
    args = ap.parse_args()

    if args.size_mb < 1:
        die("--size-mb must be at least 1")
    if args.runs < 1:
        die("--runs must be at least 1")
    for tool in ("sqlite3", "zstd"):
        if shutil.which(tool) is None:
            die(f"{tool} is not installed or not on PATH (e.g. apt-get install sqlite3 zstd)")

    methods = METHODS
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            die(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
        methods = [m for m in METHODS if m.name in names]
    bin_dir = args.bin_dir.resolve()
    if any(m.is_snap for m in methods) and not os.access(bin_dir / "sqlite-snap", os.X_OK):
        die(f"{bin_dir / 'sqlite-snap'} not found: run `cargo build --release --bins` or pass --bin-dir")

    # The database.
    db = (args.db or here / "data" / f"rails-{args.size_mb}mb.sqlite3").resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    gen_secs = None
    marker = read_marker(db) if db.exists() else None
    if db.exists() and args.use_existing:
        log(f"using {db} as it is ({db.stat().st_size / MiB:.1f} MiB)")
    elif db.exists() and marker == _marker(args.size_mb):
        log(f"reusing {db} ({db.stat().st_size / MiB:.1f} MiB)")
    else:
        if db.exists() and marker is None:
            die(f"{db} exists and was not generated by this script; "
                "remove it, choose another --db, or pass --use-existing to benchmark it")
        need = args.size_mb * MiB * 1.1
        if shutil.disk_usage(db.parent).free < need:
            die(f"not enough free disk under {db.parent} to generate {args.size_mb} MiB")
        log(f"generating {db} ({args.size_mb} MiB) ...")
        gen_secs = generate(db, args.size_mb)
    generated_by_us = read_marker(db) is not None

    db_bytes = db.stat().st_size
    db_mib = db_bytes / MiB
    # Beside the database, so on the same filesystem; a name of our own unless
    # the database is in bench/data.
    scratch = db.parent / "scratch" if db.parent == here / "data" else db.with_name(db.name + ".bench-scratch")
    made_scratch = not scratch.exists()
    scratch.mkdir(exist_ok=True)
    if os.stat(scratch).st_dev != os.stat(db).st_dev:
        die(f"{scratch} is not on the same filesystem as {db}")
    # The largest set of outputs alive at once: VACUUM INTO's copy plus its .zst.
    if shutil.disk_usage(scratch).free < db_bytes * 1.6 + 64 * MiB:
        die(f"not enough free disk under {scratch}: need about {db_mib * 1.6:.0f} MiB")
    out_dir = scratch / "out"
    log_dir = scratch / "logs"
    tmp_dir = scratch / "tmp"
    for d in (log_dir, tmp_dir):
        d.mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(tmp_dir))
    runner = Runner(log_dir, args.launcher, env=env)

    # Warm-up: one untimed run of each, so every row is measured with the
    # database in the page cache. Also records each output size.
    times: dict[str, list[float]] = {m.name: [] for m in methods}
    rss: dict[str, int] = {m.name: 0 for m in methods}
    out_size: dict[str, int] = {}
    snap_record: dict | None = None
    log(f"warm-up: one untimed run of each of {len(methods)} methods")
    for m in methods:
        clean(out_dir)
        for argv in m.steps(db, out_dir, bin_dir):
            _, kib, stdout = runner.run(argv)
            rss[m.name] = max(rss[m.name], kib)
            if m.is_snap and snap_record is None:
                try:
                    snap_record = json.loads(stdout.splitlines()[0])
                except (ValueError, IndexError):
                    pass
        out_size[m.name] = sum(p.stat().st_size for p in m.outputs(out_dir))

    load_before = os.getloadavg()
    for run in range(1, args.runs + 1):
        log(f"run {run}/{args.runs}")
        for m in methods:
            clean(out_dir)
            total = 0.0
            for argv in m.steps(db, out_dir, bin_dir):
                secs, kib, _ = runner.run(argv)
                total += secs
                rss[m.name] = max(rss[m.name], kib)
            times[m.name].append(total)
            log(f"  {m.name:18} {total:8.3f} s  {rss[m.name] / 1024:7.1f} MiB")
    clean(out_dir)
    load_after = os.getloadavg()

    # Report.
    median = {n: statistics.median(t) for n, t in times.items()}
    ref = median.get(REFERENCE)
    print()
    print(f"Machine: nproc {nproc()}, CPU {cpu_model()}, sqlite3 {first_line(['sqlite3', '--version']).split()[0]}, "
          f"{first_line(['zstd', '--version']).strip('* ').split(', by')[0]}, "
          f"DB {db_mib:.1f} MiB ({db.name})")
    if snap_record or any(m.is_snap for m in methods):
        snap_ver = first_line([str(bin_dir / "sqlite-snap"), "--version"])
        bundled = (snap_record or {}).get("sqlite_version", "?")
        print(f"{snap_ver} (its bundled SQLite {bundled}); load average 1 min: "
              f"{load_before[0]:.2f} before the timed runs, {load_after[0]:.2f} after")
    print(f"Runs: {args.runs} timed per method (median reported) after 1 untimed warm-up; "
          f"warm page cache; round-robin order. Peak RSS via {runner.kind} "
          f"(floor {runner.floor_kib / 1024:.1f} MiB: what `true` shows)")
    if gen_secs is not None:
        print(f"Database generated in {gen_secs:.1f} s")
    print()
    print("| method | median s | DB MiB/s | × time of VACUUM INTO + zstd | peak RSS MiB | output MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for m in methods:
        med = median[m.name]
        rel = f"{med / ref:.2f}" if ref else "n/a"
        compressed = m.name in (REFERENCE, TARGET_METHOD, "snap-vacuum")
        out = f"{out_size[m.name] / MiB:.1f}" + (" (zstd)" if compressed else "")
        print(f"| {m.label} | {med:.3f} | {db_mib / med:.0f} | {rel} | "
              f"{rss[m.name] / 1024:.1f} | {out} |")
    print()
    print("Per-run seconds: " + "; ".join(
        f"{n} " + " ".join(f"{t:.3f}" for t in ts) for n, ts in times.items()))
    if REFERENCE in out_size and out_size[REFERENCE]:
        print(f"zstd -3 ratio of the VACUUM INTO copy: {db_bytes / out_size[REFERENCE]:.2f}x")
    print()

    # The two targets.
    if ref and TARGET_METHOD in median:
        x = median[TARGET_METHOD] / ref
        verdict = "PASS" if x <= TIME_TARGET else "FAIL"
        print(f"compressed sqlite-snap time / (VACUUM INTO + zstd) = {x:.2f} (target ≤ {TIME_TARGET}) {verdict}")
    else:
        print(f"compressed sqlite-snap time / (VACUUM INTO + zstd) = n/a "
              f"(needs {TARGET_METHOD} and {REFERENCE} in --only)")
    snaps = [m.name for m in methods if m.is_snap]
    if snaps:
        peak = max(rss[n] for n in snaps) / 1024
        verdict = "PASS" if peak <= RSS_TARGET_MIB else "FAIL"
        detail = ", ".join(f"{n} {rss[n] / 1024:.1f}" for n in snaps)
        print(f"sqlite-snap peak RSS = {peak:.1f} MiB (target ≤ {RSS_TARGET_MIB}) {verdict}  [max of {detail}]")
    else:
        print("sqlite-snap peak RSS = n/a (no sqlite-snap method in --only)")

    if generated_by_us:
        read_marker(db)  # tidies the empty -wal/-shm that read-only openers leave
    if not args.keep and generated_by_us:
        for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            p.unlink(missing_ok=True)
        log(f"removed {db} (--no-keep)")
    if made_scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        for d in (out_dir, log_dir, tmp_dir):
            shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
