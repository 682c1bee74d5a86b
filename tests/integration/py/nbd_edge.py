#!/usr/bin/python3
"""Edge requests from a careless (non-strict) NBD client: zero-length WRITE,
TRIM, WRITE_ZEROES and READ (also with FUA and at the very end), writes
ending at the last byte, FUA writes, a FLUSH, and requests past the end.
Prints one line per request; exit 1 on the first unexpected answer.

    nbd_edge.py URI [--empty-only]
"""
import os
import sys

import nbd


def main():
    uri = sys.argv[1]
    empty_only = "--empty-only" in sys.argv
    h = nbd.NBD()
    h.set_strict_mode(0)  # libnbd refuses zero-length requests otherwise
    h.connect_uri(uri)
    size = h.get_size()
    fua = nbd.CMD_FLAG_FUA

    def ok(name, fn):
        try:
            fn()
        except nbd.Error as e:
            print(f"FAIL {name}: {e}")
            sys.exit(1)
        print(f"ok {name}")

    def refused(name, fn):
        try:
            fn()
        except nbd.Error as e:
            print(f"ok {name}: refused ({e.errnum})")
            return
        print(f"FAIL {name}: accepted")
        sys.exit(1)

    ok("zero-length write", lambda: h.pwrite(b"", 4096))
    ok("zero-length write at the end", lambda: h.pwrite(b"", size))
    ok("zero-length FUA write", lambda: h.pwrite(b"", 8192, fua))
    ok("zero-length trim", lambda: h.trim(0, 4096))
    ok("zero-length write_zeroes", lambda: h.zero(0, 4096))
    ok("zero-length write_zeroes no-hole FUA",
       lambda: h.zero(0, 12288, nbd.CMD_FLAG_NO_HOLE | fua))
    ok("zero-length read", lambda: h.pread(0, 4096))
    refused("zero-length write past the end", lambda: h.pwrite(b"", size + 1))
    if not empty_only:
        tail = os.urandom(4096)
        ok("4 KiB write ending at the last byte", lambda: h.pwrite(tail, size - 4096))
        ok("odd 1001-byte write ending at the last byte",
           lambda: h.pwrite(b"\x5a" * 1001, size - 1001))
        ok("FUA write", lambda: h.pwrite(os.urandom(65536), 1 << 20, fua))
        ok("FUA write_zeroes", lambda: h.zero(65536, (1 << 20) + 4096, fua))
        ok("FUA trim", lambda: h.trim(65536, 2 << 20, fua))
        ok("flush", h.flush)
        refused("write past the end", lambda: h.pwrite(b"x", size))
        if h.pread(1001, size - 1001) != b"\x5a" * 1001:
            print("FAIL the last 1001 bytes read back differ")
            sys.exit(1)
        print("ok the last bytes read back")
    h.shutdown()


main()
