#!/bin/bash
# Backing I/O modes (<backing io="direct|buffered">): the mode in effect is
# shown in the status, small aligned requests bypass the page cache while
# odd-sized and large ones go through it, and the two paths stay coherent on
# both nodes: every
# read through NBD returns the last bytes written, whichever path wrote
# them, fio verify passes with unaligned sizes, and both copies end equal.
. "$top_srcdir/tests/lib.sh"
plan 10

pair_setup vol0:64M:sync:yes:node1 vol1:64M:async:yes:node1
# vol0 asks for direct I/O, vol1 for the page cache, on both nodes
sed -i "s|path=\"$T_DIR/node\([12]\)-vol0.img\"|& io=\"direct\"|" "$T_DIR/pair.xml"
sed -i "s|path=\"$T_DIR/node\([12]\)-vol1.img\"|& io=\"buffered\"|" "$T_DIR/pair.xml"
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
wait_for 15 connections_up node1 4 || bail "connections did not come up"

check "status: vol0 does direct I/O on node1" test "$(lun_field node1 vol0 io)" = direct
check "status: vol0 does direct I/O on node2" test "$(lun_field node2 vol0 io)" = direct
check "status: vol1 (io=buffered) does buffered I/O" test "$(lun_field node1 vol1 io)" = buffered

# Alternate aligned (O_DIRECT) and odd (page cache) writes and reads over
# the same pages; each read must see the newest bytes. Prints the first
# mismatch, or OK.
coherence() {
	PATH=/usr/bin:$PATH nbdsh -u "$1" -c '
import os
want = bytearray(1 << 20)
def w(data, off):
    h.pwrite(bytes(data), off)
    want[off:off + len(data)] = data
def r(off, n, what):
    got = h.pread(n, off)
    if got != bytes(want[off:off + n]):
        raise SystemExit("mismatch after " + what + " (read %d bytes at %d)" % (n, off))
w(os.urandom(65536), 0)              # aligned: direct
w(os.urandom(100), 100)              # odd: page cache, page read from disk
r(0, 4096, "odd write into a direct-written page")
w(os.urandom(4096), 0)               # aligned over a page the cache holds
r(50, 150, "direct write over a cached page (odd read)")
r(0, 8192, "direct write over a cached page (aligned read)")
w(os.urandom(262144), 262144)        # large: page cache (LUN_DIRECT_MAX)
r(266240, 4096, "direct read of a page a large write left in the cache")
w(os.urandom(4096), 270336)          # direct, into the range of the large one
r(262144, 262144, "large write then a direct one inside it")
w(os.urandom(1000), 8191)            # odd, across a page boundary
w(os.urandom(8192), 12288)           # aligned, overlapping the odd one
r(8000, 13000, "mixed writes across page boundaries")
h.flush()
r(0, 1 << 20, "flush")
print("OK")'
}
out=$(coherence "nbd://127.0.0.1:$N1_NBD/vol0" 2>&1)
check "direct LUN: mixed aligned and odd requests read back the newest bytes ($out)" \
	test "$out" = OK
out=$(coherence "nbd://127.0.0.1:$N1_NBD/vol1" 2>&1)
check "buffered LUN: the same sequence reads back the newest bytes ($out)" test "$out" = OK

# sizes of 1..16 KiB in 512-byte steps: some direct, some through the cache
check "direct LUN: fio randwrite with unaligned sizes, crc32c verify" \
	fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" odd --bsrange=512-16k --size=16M --offset=8M
check "buffered LUN: fio randwrite QD32 crc32c verify" \
	fio_verify "nbd://127.0.0.1:$N1_NBD/vol1" buf --size=16M --offset=8M

stop_pid "$n1_pid"
stop_pid "$n2_pid"
for l in vol0 vol1; do
	check "$l: both backing files identical" cmp "$T_DIR/node1-$l.img" "$T_DIR/node2-$l.img"
done
finish
