#!/usr/bin/python3
"""An application on a mirrored LUN: SQLite committing one row per
transaction, and the check of the database after a failover.

    sqlite_rows.py write DB LOG SECONDS
    sqlite_rows.py check DB LOG

write: journal_mode=WAL, synchronous=FULL (durable at COMMIT); row i holds
a payload derived from i. After each COMMIT returned, i goes to LOG (outside
the LUN), fsynced. Stops after SECONDS or at the first error (the LUN's
primary was killed: that is the point), printing the count.

check: PRAGMA integrity_check is "ok"; every row id in LOG is in the table
with its own payload; no row beyond the last logged id + 1 (the one whose
COMMIT may have returned just before the log line could be written).
Exit 0 when all hold, 1 with the first problem.
"""
import hashlib
import os
import sqlite3
import sys
import time


def payload(i):
    d = hashlib.sha256(str(i).encode()).digest()
    return d * 64                        # 2 KiB: a few rows per page


def write(db_path, log_path, seconds):
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    n = 0
    err = None
    try:
        db = sqlite3.connect(db_path, isolation_level=None, timeout=5)
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            print(f"journal_mode is {mode}, not wal")
            return 1
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            i = n + 1
            db.execute("BEGIN")
            db.execute("INSERT INTO t VALUES(?, ?)", (i, payload(i)))
            db.execute("COMMIT")
            os.write(fd, f"{i}\n".encode())
            os.fsync(fd)
            n = i
    except (sqlite3.Error, OSError) as e:
        err = e
    print(f"committed {n} rows" + (f"; stopped: {err}" if err else ""))
    return 0 if n else 1


def check(db_path, log_path):
    with open(log_path) as f:
        ids = [int(x) for x in f.read().split()]
    last = ids[-1] if ids else 0
    db = sqlite3.connect(db_path, isolation_level=None, timeout=5)
    res = [r[0] for r in db.execute("PRAGMA integrity_check")]
    if res != ["ok"]:
        print("FAIL integrity_check: " + "; ".join(res[:5]))
        return 1
    rows = dict(db.execute("SELECT id, v FROM t"))
    print(f"integrity_check ok; {len(rows)} rows, {len(ids)} logged as committed"
          f" (last {last})")
    missing = [i for i in ids if i not in rows]
    if missing:
        print(f"FAIL {len(missing)} committed rows missing; first: {missing[0]}")
        return 1
    wrong = [i for i in ids if rows[i] != payload(i)]
    if wrong:
        print(f"FAIL row {wrong[0]} holds another payload")
        return 1
    extra = [i for i in rows if i > last + 1]
    if extra:
        print(f"FAIL row {extra[0]} was never committed (last logged {last})")
        return 1
    print("ok: every committed row is there, with its payload")
    return 0


def main():
    sys.stdout.reconfigure(line_buffering=True)
    if len(sys.argv) == 5 and sys.argv[1] == "write":
        return write(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    if len(sys.argv) == 4 and sys.argv[1] == "check":
        return check(sys.argv[2], sys.argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
