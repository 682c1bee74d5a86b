#!/usr/bin/python3
"""A small database service for cib-examples/lun-with-filesystem.xml: SQLite
on the mirrored file system, one row per transaction, run by
ocf:heartbeat:anything.

    sqlite-writer.py run DB LOG [--interval S] [--synchronous FULL|EXTRA|NORMAL|OFF]
    sqlite-writer.py check DB LOG

run: journal_mode=WAL and synchronous=FULL (durable at COMMIT); goes on from
the highest row id in DB, so it resumes after a failover. Row i holds a
payload derived from i. After each COMMIT returned it appends "i NODE TIME"
to LOG (keep LOG outside the LUN) and fsyncs it. Sleeps S seconds (default
0.01) between rows; stops at SIGTERM, or with exit 1 at the first error
(the file system went away: Pacemaker restarts it where the stack runs).

check: PRAGMA integrity_check is "ok" and every row id in LOG is in DB with
its payload. Exit 0 when both hold, 1 with the first problem.
"""
import hashlib
import os
import signal
import socket
import sqlite3
import sys
import time

stopping = False


def payload(i):
    return hashlib.sha256(str(i).encode()).digest() * 64   # 2 KiB


def on_term(_sig, _frame):
    global stopping
    stopping = True


def run(db_path, log_path, interval, sync):
    signal.signal(signal.SIGTERM, on_term)
    node = socket.gethostname()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    db = sqlite3.connect(db_path, isolation_level=None, timeout=5)
    mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        print(f"journal_mode is {mode}, not wal", flush=True)
        return 1
    db.execute(f"PRAGMA synchronous={sync}")
    db.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    i = db.execute("SELECT coalesce(max(id), 0) FROM t").fetchone()[0]
    print(f"{node}: resuming after row {i} (synchronous={sync})", flush=True)
    while not stopping:
        i += 1
        db.execute("BEGIN")
        db.execute("INSERT INTO t VALUES(?, ?)", (i, payload(i)))
        db.execute("COMMIT")
        os.write(fd, f"{i} {node} {time.time():.3f}\n".encode())
        os.fsync(fd)
        if interval:
            time.sleep(interval)
    db.close()
    print(f"{node}: stopped after row {i}", flush=True)
    return 0


def check(db_path, log_path):
    with open(log_path) as f:
        ids = [int(line.split()[0]) for line in f if line.strip()]
    db = sqlite3.connect(db_path, isolation_level=None, timeout=5)
    res = [r[0] for r in db.execute("PRAGMA integrity_check")]
    if res != ["ok"]:
        print("FAIL integrity_check: " + "; ".join(res[:5]))
        return 1
    rows = dict(db.execute("SELECT id, v FROM t"))
    print(f"integrity_check ok; {len(rows)} rows, {len(ids)} logged as committed")
    missing = [i for i in ids if i not in rows]
    if missing:
        print(f"FAIL {len(missing)} committed rows missing; first: {missing[0]}")
        return 1
    wrong = [i for i in ids if rows[i] != payload(i)]
    if wrong:
        print(f"FAIL row {wrong[0]} holds another payload")
        return 1
    print("ok: every committed row is there, with its payload")
    return 0


def main():
    a = sys.argv[1:]
    opts = {"--interval": "0.01", "--synchronous": "FULL"}
    while len(a) >= 2 and a[-2] in opts:
        opts[a[-2]] = a[-1]
        a = a[:-2]
    if len(a) == 3 and a[0] == "run" and opts["--synchronous"] in ("FULL", "EXTRA", "NORMAL", "OFF"):
        try:
            return run(a[1], a[2], float(opts["--interval"]), opts["--synchronous"])
        except (sqlite3.Error, OSError) as e:
            print(f"stopped: {e}", flush=True)
            return 1
    if len(a) == 3 and a[0] == "check":
        return check(a[1], a[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
