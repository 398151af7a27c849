#!/usr/bin/env python3
"""A separate writer process for consistency tests: moves money between
accounts in transactions, as an application under load would.

Usage: bank_writer.py DB ACCOUNTS INITIAL JOURNAL_MODE [AUTO_VACUUM]

Creates the tables, then loops: each transaction debits one account,
credits another, and logs the transfer. The total balance is always
ACCOUNTS * INITIAL, and each account's balance always equals INITIAL plus
its incoming minus its outgoing transfers, in every committed state: a
snapshot that is not transactionally consistent breaks one of these.

With AUTO_VACUUM (none, full, incremental) it also churns a `cache` table
the way Solid Cache does: every transfer inserts a 2 KiB entry and deletes
the oldest beyond 50, so freed pages keep appearing for maintenance.

With BANK_PACE=N in the environment it commits at most about N times a
second (a long test keeps its database small; the tests still wait on the
writer's lines, never on time). It prints "ready" once set up, then "committed N" every 25 commits, so a
test can wait for progress by reading lines (no sleeps). It stops when
stdin closes, printing "done N errors E", and exits 1 if any write failed.
"""

import os
import random
import sqlite3
import sys
import threading

db, accounts, initial, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
auto_vacuum = sys.argv[5] if len(sys.argv) > 5 else None
conn = sqlite3.connect(db, timeout=30, isolation_level=None)
if auto_vacuum:
    conn.execute(f"PRAGMA auto_vacuum = {auto_vacuum}")
conn.execute(f"PRAGMA journal_mode = {mode}")
conn.execute("PRAGMA busy_timeout = 30000")
conn.execute("BEGIN IMMEDIATE")
# IF NOT EXISTS / OR IGNORE: a writer started again on a bank an earlier
# one left goes on from its state (the invariants still hold).
conn.execute("CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
conn.execute(
    "CREATE TABLE IF NOT EXISTS transfers (id INTEGER PRIMARY KEY, src INTEGER NOT NULL, dst INTEGER NOT NULL,"
    " amount INTEGER NOT NULL, memo TEXT)"
)
conn.executemany("INSERT OR IGNORE INTO accounts (id, balance) VALUES (?, ?)", [(i, initial) for i in range(accounts)])
if auto_vacuum:
    conn.execute("CREATE TABLE IF NOT EXISTS cache (id INTEGER PRIMARY KEY, value BLOB NOT NULL)")
conn.execute("COMMIT")

stop = threading.Event()
pace = float(os.environ.get("BANK_PACE", "0"))


def watch_stdin():
    sys.stdin.read()
    stop.set()


threading.Thread(target=watch_stdin, daemon=True).start()
print("ready", flush=True)

rng = random.Random(42)
committed = errors = 0
while not stop.is_set():
    src, dst = rng.sample(range(accounts), 2)
    amount = rng.randint(1, 100)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, src))
        # A memo of some size makes the database grow while snapshots run.
        conn.execute(
            "INSERT INTO transfers (src, dst, amount, memo) VALUES (?, ?, ?, ?)",
            (src, dst, amount, "x" * rng.randint(100, 900)),
        )
        conn.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, dst))
        if auto_vacuum:
            conn.execute("INSERT INTO cache (value) VALUES (randomblob(2048))")
            conn.execute("DELETE FROM cache WHERE id <= (SELECT max(id) - 50 FROM cache)")
        conn.execute("COMMIT")
        committed += 1
        if committed % 25 == 0:
            print(f"committed {committed}", flush=True)
        if pace:
            stop.wait(1 / pace)
    except sqlite3.Error as e:
        errors += 1
        print(f"error {e} ({getattr(e, 'sqlite_errorname', '?')})", file=sys.stderr, flush=True)
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

print(f"done {committed} errors {errors}", flush=True)
sys.exit(1 if errors else 0)
