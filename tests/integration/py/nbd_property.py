#!/usr/bin/python3
"""A seeded random mix of NBD requests from a non-strict client, several in
flight at once: WRITE of 0..32 MiB (odd sizes too, offsets up to the last
byte, overlapping each other in a hot region), with and without FUA, TRIM,
WRITE_ZEROES with and without NO_HOLE, READ, FLUSH, and empty requests.
Every request inside the export must succeed. Prints the seed and counts;
on failure the seed, the request and its error.

    nbd_property.py URI SEED SECONDS
"""
import os
import random
import sys
import time

import nbd

MAX = 32 << 20
DEPTH = 8


def pick_len(rnd):
    r = rnd.random()
    if r < 0.05:
        return 0
    if r < 0.60:
        return rnd.randint(1, 64 << 10)          # small, odd sizes included
    if r < 0.95:
        return rnd.randint(64 << 10, 2 << 20)
    return rnd.choice([MAX, rnd.randint(2 << 20, MAX)])


def pick_off(rnd, size, length):
    r = rnd.random()
    if r < 0.3:                                   # hot region: overlaps in flight
        off = rnd.randint(0, 1 << 20)
    elif r < 0.4:                                 # ending at the last byte
        off = size - length
    else:
        off = rnd.randint(0, size - length)
    return max(0, min(off, size - length))


def main():
    uri, seed, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    rnd = random.Random(seed)
    pool = random.Random(seed ^ 0x5EED).randbytes(MAX + 4096)
    h = nbd.NBD()
    h.set_strict_mode(0)
    h.connect_uri(uri)
    size = h.get_size()
    inflight = {}
    counts = {}
    end = time.monotonic() + seconds

    def issue():
        kind = rnd.choices(["write", "fua", "trim", "zero", "zero-nohole", "read", "flush"],
                           [40, 10, 10, 8, 8, 14, 4])[0]
        length = pick_len(rnd)
        if kind in ("trim", "zero", "zero-nohole") and rnd.random() < 0.5:
            length = rnd.randint(0, 64 << 20) & ~4095   # larger ranges, no payload
            length = min(length, size)
        off = pick_off(rnd, size, length)
        if kind in ("write", "fua"):
            at = rnd.randint(0, 4096)
            buf = nbd.Buffer.from_bytearray(bytearray(pool[at:at + length]))
            flags = nbd.CMD_FLAG_FUA if kind == "fua" else 0
            c = h.aio_pwrite(buf, off, flags=flags)
        elif kind == "trim":
            c = h.aio_trim(length, off, flags=nbd.CMD_FLAG_FUA if rnd.random() < 0.2 else 0)
        elif kind.startswith("zero"):
            flags = nbd.CMD_FLAG_NO_HOLE if kind == "zero-nohole" else 0
            c = h.aio_zero(length, off, flags=flags)
        elif kind == "read":
            length = min(length, MAX)
            c = h.aio_pread(nbd.Buffer(length), off)
        else:
            length, off = 0, 0
            c = h.aio_flush()
        inflight[c] = (kind, off, length)
        counts[kind] = counts.get(kind, 0) + 1

    def reap():
        for c in list(inflight):
            try:
                done = h.aio_command_completed(c)
            except nbd.Error as e:
                kind, off, length = inflight[c]
                print(f"FAIL seed {seed}: {kind} offset {off} length {length}: {e}")
                sys.exit(1)
            if done:
                del inflight[c]

    deadline = end + 60  # a request unanswered this long is a failure

    def wait():
        h.poll(1000)
        reap()
        if inflight and time.monotonic() > deadline:
            kind, off, length = next(iter(inflight.values()))
            print(f"FAIL seed {seed}: {len(inflight)} request(s) unanswered after "
                  f"{seconds + 60:.0f} s, e.g. {kind} offset {off} length {length}")
            sys.exit(1)

    while time.monotonic() < end:
        while len(inflight) < DEPTH:
            issue()
        wait()
    while inflight:
        wait()
    h.flush()
    h.shutdown()
    print(f"seed {seed}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


main()
