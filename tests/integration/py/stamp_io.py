#!/usr/bin/python3
"""Stamped writes through NBD and their check after a failover.

    stamp_io.py write URI LOG --blocks N [--depth D] [--seconds S] [--run ID]
    stamp_io.py check URI LOG --blocks N --rule sync|prefix

write: DEPTH requests in flight (aio), each a whole 4 KiB block at a random
block among the first N, never one with a write still in flight (so the
writes of one block are ordered: each is issued after the previous one was
acknowledged). Every block is stamped: magic, run id, sequence number, its
offset, filler derived from those, and a SHA-256 of all that. The log gets
"I SEQ BLOCK" before a write is issued and "A SEQ BLOCK" once it is
acknowledged, fsynced as it goes: the host's view survives a crash of the
server. It stops after SECONDS or when the server goes away (that is the
point: the test kills it), and prints what it did.

check: reads the N blocks through NBD (the promoted node) and holds them to
the log.
  sync:   every acknowledged write is there, whole: each block holds the
          newest acknowledged stamp, or the later one that was in flight.
  prefix: what is there is a crash-consistent prefix: no write is present
          while a write that was acknowledged before it was issued is
          missing (a write counts as present when its block holds it or a
          later write of that block). The first violating pair is printed.
Both: every block is all zeroes (never written) or a whole stamp of this
run, at its own offset, of a write that the log says was issued there.
Exit 0 when the rule holds, 1 (with the first problem) when it does not.
"""
import argparse
import hashlib
import os
import random
import struct
import sys
import time

import nbd

BS = 4096
MAGIC = b"IPMSTAMP"
HDR = struct.Struct("<8s16sQQ")           # magic, run id, seq, offset
SUM = 32                                  # SHA-256 at the end of the block


def stamp(run, seq, off):
    hdr = HDR.pack(MAGIC, run, seq, off)
    fill = hashlib.sha256(hdr).digest()
    body = hdr + (fill * (BS // len(fill)))[:BS - SUM - len(hdr)]
    return body + hashlib.sha256(body).digest()


def parse(block, run, off):
    """(seq, None) for a whole stamp of this run at off, (None, None) for a
    zero block, (None, why) for anything else."""
    if block == bytes(BS):
        return None, None
    magic, brun, seq, boff = HDR.unpack_from(block)
    if magic != MAGIC:
        return None, "no stamp (not zero either)"
    if hashlib.sha256(block[:-SUM]).digest() != block[-SUM:]:
        return None, f"torn: checksum mismatch (header says seq {seq})"
    if brun != run:
        return None, f"stamp of another run ({brun!r})"
    if boff != off:
        return None, f"seq {seq} stamped for offset {boff}, found at {off}"
    return seq, None


class Log:
    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.buf = []

    def add(self, line):
        self.buf.append(line)

    def sync(self):
        if self.buf:
            os.write(self.fd, ("\n".join(self.buf) + "\n").encode())
            self.buf = []
            os.fsync(self.fd)


def connect(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    return h


def write(a):
    run = a.run.encode().ljust(16, b"\0")[:16]
    log = Log(a.log)
    log.add(f"R {a.run} {a.blocks}")
    log.sync()
    h = connect(a.uri)
    rnd = random.Random(a.seed)
    busy = {}                             # cookie -> (seq, block)
    held = set()                          # blocks with a write in flight
    seq = issued = acked = 0
    end = time.monotonic() + a.seconds
    err = None
    try:
        while time.monotonic() < end:
            batch = []
            while len(busy) + len(batch) < a.depth:
                b = rnd.randrange(a.blocks)
                if b in held:
                    continue
                seq += 1
                log.add(f"I {seq} {b}")
                batch.append((seq, b))
                held.add(b)
            log.sync()                    # logged before it can reach the server
            for s, b in batch:
                busy[h.aio_pwrite(stamp(run, s, b * BS), b * BS)] = (s, b)
                issued += 1
            h.poll(1000)
            while True:
                c = h.aio_peek_command_completed()
                if not c:
                    break
                s, b = busy.pop(c)
                held.discard(b)
                h.aio_command_completed(c)  # raises when the write failed
                log.add(f"A {s} {b}")
                acked += 1
            log.sync()
    except nbd.Error as e:
        err = e
    log.sync()
    print(f"issued {issued} acknowledged {acked} in flight {len(busy)}"
          f" last seq {seq}" + (f"; stopped: {err}" if err else ""))
    return 0 if acked else 1


def read_log(path):
    """writes {seq: (block, issue_pos, ack_pos or None)}, run, blocks"""
    writes = {}
    run = blocks = None
    with open(path) as f:
        for pos, line in enumerate(f):
            p = line.split()
            if len(p) != 3:                 # a torn last line
                continue
            if p[0] == "R":
                run, blocks = p[1], int(p[2])
            elif p[0] == "I":
                writes[int(p[1])] = [int(p[2]), pos, None]
            elif p[0] == "A":
                writes[int(p[1])][2] = pos
    return writes, run, blocks


def read_blocks(uri, run, n):
    h = connect(uri)
    have, bad = {}, []
    chunk = 256
    for first in range(0, n, chunk):
        cnt = min(chunk, n - first)
        data = h.pread(cnt * BS, first * BS)
        for i in range(cnt):
            b = first + i
            seq, why = parse(data[i * BS:(i + 1) * BS], run, b * BS)
            if why:
                bad.append((b, why))
            have[b] = seq if seq is not None else 0
    h.shutdown()
    return have, bad


def check(a):
    writes, run_s, blocks = read_log(a.log)
    run = run_s.encode().ljust(16, b"\0")[:16]
    have, bad = read_blocks(a.uri, run, a.blocks)
    for b, why in bad:
        print(f"FAIL block {b} (offset {b * BS}): {why}")
        return 1
    for b, s in have.items():
        if s and (s not in writes or writes[s][0] != b):
            print(f"FAIL block {b} holds seq {s}, never issued there")
            return 1
    acked = [(w[2], s, w[0]) for s, w in writes.items() if w[2] is not None]
    print(f"log: {len(writes)} issued, {len(acked)} acknowledged;"
          f" blocks holding a stamp: {sum(1 for s in have.values() if s)}")

    def present(s):
        return have[writes[s][0]] >= s

    if a.rule == "sync":
        missing = sorted(s for _, s, _ in acked if not present(s))
        if missing:
            s = missing[0]
            b = writes[s][0]
            print(f"FAIL {len(missing)} acknowledged writes missing; first:"
                  f" seq {s} at block {b} (offset {b * BS}), the block holds"
                  f" seq {have[b] or 'zeroes'}")
            return 1
        print("ok: every acknowledged write is there, whole")
        return 0
    # prefix: the earliest-acknowledged missing write against the
    # earliest-issued present write issued after that acknowledgement
    missing = sorted((w[2], s) for s, w in writes.items()
                     if w[2] is not None and not present(s))
    if missing:
        ack_pos, y = missing[0]
        later = sorted((w[1], s) for s, w in writes.items()
                       if w[1] > ack_pos and present(s))
        if later:
            x = later[0][1]
            print(f"FAIL write seq {x} (block {writes[x][0]}) is present but"
                  f" seq {y} (block {writes[y][0]}), acknowledged before seq"
                  f" {x} was issued, is missing (its block holds seq"
                  f" {have[writes[y][0]] or 'zeroes'});"
                  f" {len(missing)} acknowledged writes missing in all")
            return 1
    lost = len(missing)
    print(f"ok: a crash-consistent prefix ({lost} acknowledged writes at the"
          f" end not there, none present after a missing one)")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["write", "check"])
    p.add_argument("uri")
    p.add_argument("log")
    p.add_argument("--blocks", type=int, required=True)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--run", default=f"{os.getpid():x}-{int(time.time()):x}")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--rule", choices=["sync", "prefix"], default="sync")
    a = p.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    return write(a) if a.mode == "write" else check(a)


if __name__ == "__main__":
    sys.exit(main())
