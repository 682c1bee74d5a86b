#!/usr/bin/python3
"""Stamped writes with flushes and FUA through NBD, and their check after a
power cut (tests/integration/power_loss*.sh).

    power_io.py write URI LOG --blocks N [--depth D] [--seconds S]
                [--seed X] [--fua PERCENT] [--flush-every LO:HI] [--run ID]
    power_io.py check URI LOG --blocks N

write: zeroes the first N 4 KiB blocks of the export and flushes; then
DEPTH requests in flight (aio), each a whole block at a random block,
never one with a write still in flight (so the writes of one block are
ordered). Each block is stamped as in tests/integration/py/stamp_io.py:
magic, run id, sequence number, offset, filler, SHA-256. PERCENT of the
writes carry FUA; after every LO..HI (random) acknowledged writes a FLUSH is
issued. The log (fsynced as it goes, so it survives the server's death):
  R RUN N        the run
  I SEQ BLOCK    a write issued (U SEQ BLOCK: issued with FUA)
  a SEQ BLOCK    acknowledged, not yet durable
  F ID / f ID    a flush issued / acknowledged
  D SEQ BLOCK    durable: a FUA write acknowledged, or a write acknowledged
                 before a flush that was then acknowledged was issued
It stops after SECONDS or when the server goes away, and prints its counts.

check: reads the N blocks through NBD and holds them to the log: every
durable write is there, whole (the block holds it, or a later write of
that block that was issued); every block is zeroes or a whole stamp of this
run, at its own offset, of a write issued there. Exit 0 when so; 1 with the
first problem.
"""
import argparse
import os
import random
import sys
import time

import nbd

# the block format and the host's log are stamp_io.py's
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration", "py"))
from stamp_io import BS, Log, parse, stamp  # noqa: E402


def runid(s):
    return s.encode().ljust(16, b"\0")[:16]


def write(a):
    run = runid(a.run)
    rnd = random.Random(a.seed)
    lo, hi = (int(x) for x in a.flush_every.split(":"))
    h = nbd.NBD()
    h.connect_uri(a.uri)
    fua_ok = h.can_fua()
    # a clean start: the region zeroed and durable before the first stamp
    if h.can_zero():
        h.zero(a.blocks * BS, 0)
    else:
        h.pwrite(bytes(a.blocks * BS), 0)
    h.flush()
    log = Log(a.log)
    log.add(f"R {a.run} {a.blocks}")
    log.sync()
    busy = {}            # cookie -> ("w", seq, block, fua) or ("f", id, covered)
    held = set()
    acked = []           # (seq, block) acknowledged, not yet durable
    seq = flush_id = 0
    n = {"issued": 0, "acked": 0, "fua": 0, "flushes": 0, "durable": 0}
    next_flush = rnd.randint(lo, hi)
    end = time.monotonic() + a.seconds
    err = None
    try:
        while time.monotonic() < end:
            batch = []
            while sum(1 for v in busy.values() if v[0] == "w") + len(batch) < a.depth:
                b = rnd.randrange(a.blocks)
                if b in held:
                    continue
                seq += 1
                fua = fua_ok and rnd.randrange(100) < a.fua
                log.add(f"{'U' if fua else 'I'} {seq} {b}")
                batch.append((seq, b, fua))
                held.add(b)
            if next_flush <= 0:
                flush_id += 1
                log.add(f"F {flush_id}")
            log.sync()                    # logged before it can reach the server
            for s, b, fua in batch:
                c = h.aio_pwrite(stamp(run, s, b * BS), b * BS,
                                 flags=nbd.CMD_FLAG_FUA if fua else 0)
                busy[c] = ("w", s, b, fua)
                n["issued"] += 1
                n["fua"] += fua
            if next_flush <= 0:
                # covers exactly the writes acknowledged before it is issued
                busy[h.aio_flush()] = ("f", flush_id, acked)
                acked = []
                next_flush = rnd.randint(lo, hi)
            h.poll(1000)
            while True:
                c = h.aio_peek_command_completed()
                if not c:
                    break
                v = busy.pop(c)
                h.aio_command_completed(c)  # raises when the request failed
                if v[0] == "w":
                    _, s, b, fua = v
                    held.discard(b)
                    n["acked"] += 1
                    next_flush -= 1
                    if fua:
                        log.add(f"D {s} {b}")
                        n["durable"] += 1
                    else:
                        log.add(f"a {s} {b}")
                        acked.append((s, b))
                else:
                    _, fid, covered = v
                    log.add(f"f {fid}")
                    n["flushes"] += 1
                    for s, b in covered:
                        log.add(f"D {s} {b}")
                    n["durable"] += len(covered)
            log.sync()
    except nbd.Error as e:
        err = e
    log.sync()
    inflight = len(busy)
    print(f"issued {n['issued']} (fua {n['fua']}) acknowledged {n['acked']}"
          f" durable {n['durable']} flushes {n['flushes']} in flight {inflight}"
          f" last seq {seq}" + (f"; stopped: {err}" if err else ""))
    return 0 if n["durable"] else 1


def read_log(path):
    """issued {seq: block}, durable {seq}, run"""
    issued, durable = {}, set()
    run = None
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) == 3 and p[0] == "R":
                run = p[1]
            elif len(p) == 3 and p[0] in ("I", "U"):
                issued[int(p[1])] = int(p[2])
            elif len(p) == 3 and p[0] == "D":
                durable.add(int(p[1]))
    return issued, durable, run


def check(a):
    issued, durable, run_s = read_log(a.log)
    if run_s is None:
        print("FAIL the log names no run")
        return 1
    run = runid(run_s)
    h = nbd.NBD()
    h.connect_uri(a.uri)
    have = {}
    for first in range(0, a.blocks, 256):
        cnt = min(256, a.blocks - first)
        data = h.pread(cnt * BS, first * BS)
        for i in range(cnt):
            b = first + i
            s, why = parse(data[i * BS:(i + 1) * BS], run, b * BS)
            if why:
                print(f"FAIL block {b} (offset {b * BS}): {why}")
                return 1
            if s and issued.get(s) != b:
                print(f"FAIL block {b} holds seq {s}, never issued there")
                return 1
            have[b] = s or 0
    h.shutdown()
    newest = {}
    for s in durable:
        b = issued[s]
        newest[b] = max(newest.get(b, 0), s)
    missing = sorted(s for b, s in newest.items() if have[b] < s)
    print(f"log: {len(issued)} issued, {len(durable)} durable (acknowledged"
          f" and flushed, or FUA) in {len(newest)} blocks;"
          f" blocks holding a stamp: {sum(1 for s in have.values() if s)}")
    if missing:
        s = missing[0]
        b = issued[s]
        print(f"FAIL {len(missing)} durable writes lost; first: seq {s} at"
              f" block {b} (offset {b * BS}), the block holds seq"
              f" {have[b] or 'zeroes'}")
        return 1
    print("ok: every durable write is there, whole")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["write", "check"])
    p.add_argument("uri")
    p.add_argument("log")
    p.add_argument("--blocks", type=int, required=True)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--fua", type=int, default=5)
    p.add_argument("--flush-every", default="16:128")
    p.add_argument("--run", default=f"{os.getpid():x}-{int(time.time()):x}")
    a = p.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    return write(a) if a.mode == "write" else check(a)


if __name__ == "__main__":
    sys.exit(main())
