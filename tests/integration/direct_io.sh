#!/bin/bash
# Backing I/O modes (<backing io="auto|direct|buffered">): the mode in effect
# is shown in the status, the default (auto) does direct I/O where the backing
# supports it, small aligned requests bypass the page cache while odd-sized
# and large ones go through it, and the two paths stay coherent on both
# nodes: every read through NBD returns the last bytes written, whichever path
# wrote them, fio verify passes with unaligned sizes, and both copies end
# equal. Then:
# - a backing that takes O_DIRECT at open but fails its I/O (the nodirect.so
#   shim): auto and direct fall back to the page cache at open (the aligned
#   read probe), say so in the log and serve correct data;
# - the Pacemaker lab failure that kept direct opt-in (both instances
#   outdated, none promoted; the cause was 66f43d7's, not the I/O mode): a new
#   cluster whose instances start Unpromoted, as the OCF agent starts them,
#   promotes one with the default io, and it mirrors.
. "$top_srcdir/tests/lib.sh"
plan 24

pair_setup vol0:64M:sync:yes:node1 vol1:64M:async:yes:node1 vol2:64M:sync:yes:node1
# vol0 asks for direct I/O, vol1 for the page cache, on both nodes; vol2
# says nothing (the default)
sed -i "s|path=\"$T_DIR/node\([12]\)-vol0.img\"|& io=\"direct\"|" "$T_DIR/pair.xml"
sed -i "s|path=\"$T_DIR/node\([12]\)-vol1.img\"|& io=\"buffered\"|" "$T_DIR/pair.xml"
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
wait_for 15 connections_up node1 4 || bail "connections did not come up"

check "status: vol0 does direct I/O on node1" test "$(lun_field node1 vol0 io)" = direct
check "status: vol0 does direct I/O on node2" test "$(lun_field node2 vol0 io)" = direct
check "status: vol1 (io=buffered) does buffered I/O" test "$(lun_field node1 vol1 io)" = buffered
# what this file system can do, asked without the daemon
want=buffered
dd if="$T_DIR/node1-vol2.img" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null && want=direct
check "status: vol2 (no io attribute: auto) does $want I/O on both nodes, as dd iflag=direct says" \
	eval 'test "$(lun_field node1 vol2 io)/$(lun_field node2 vol2 io)" = "$want/$want"'

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

# ---- a backing that accepts O_DIRECT at open and fails its I/O ----------------
SHIM=$top_builddir/tests/tools/.libs/nodirect.so
[ -f "$SHIM" ] || bail "no $SHIM (make check builds it)"
LD_PRELOAD=$SHIM node_start node1 || bail "node1 did not start with nodirect.so: $(tail -5 "$T_DIR/n1.log")"
node_start node2 || bail "node2 did not restart"
wait_for 15 connections_up node1 4 || bail "connections did not come up"
check "nodirect: vol2 (auto) falls back to buffered I/O on node1" test "$(lun_field node1 vol2 io)" = buffered
check "nodirect: vol0 (direct) falls back to buffered I/O on node1" test "$(lun_field node1 vol0 io)" = buffered
check "nodirect: node1's log names the failed probe for vol0 and vol2" \
	eval 'grep -q "lun \"vol0\": backing .* an aligned O_DIRECT read fails" "$T_DIR/n1.log" &&
		grep -q "lun \"vol2\": backing .* an aligned O_DIRECT read fails" "$T_DIR/n1.log"'
out=$(coherence "nbd://127.0.0.1:$N1_NBD/vol2" 2>&1)
check "nodirect: vol2 reads back the newest bytes ($out)" test "$out" = OK
check "nodirect: vol2 fio randwrite with unaligned sizes, crc32c verify" \
	fio_verify "nbd://127.0.0.1:$N1_NBD/vol2" nd --bsrange=512-16k --size=8M --offset=8M
stop_pid "$n1_pid"
stop_pid "$n2_pid"
check "nodirect: vol2 both backing files identical" cmp "$T_DIR/node1-vol2.img" "$T_DIR/node2-vol2.img"

# ---- the lab's drill failure: a new cluster with the default io --------------
# Both instances start Unpromoted (the agent demotes the configured primary at
# once), then Pacemaker promotes one: it must be promotable, the other not,
# and once promoted it must mirror. vol2 is new again (no generation files).
rm -f "$T_DIR"/node?-vol2.img.journal*
pair_start || bail "daemons did not restart: $(tail -5 "$T_DIR"/n*.log)"
ctl node1 demote vol2 >"$T_DIR/demote.out" 2>&1 || diag "demote: $(cat "$T_DIR/demote.out")"
within 10 lun_state_is node1 vol2 outdated || diag "node1 vol2: $(lun_field node1 vol2 state)"
sleep 1.5 # the status poll (every 0.5 s) has judged the demoted copy
ctl node1 promote vol2 --dry-run >"$T_DIR/dry1" 2>&1
ctl node2 promote vol2 --dry-run >"$T_DIR/dry2" 2>&1
check "new cluster, both Unpromoted: node1 can be promoted ($(cat "$T_DIR/dry1"))" \
	grep -q 'can be promoted' "$T_DIR/dry1"
check "new cluster, both Unpromoted: node2 cannot ($(head -1 "$T_DIR/dry2"))" \
	eval '! grep -q "can be promoted" "$T_DIR/dry2"'
ctl node1 promote vol2 >"$T_DIR/promote.out" 2>&1
RC=$?
check "node1 promoted (exit $RC: $(head -1 "$T_DIR/promote.out")), up to date" \
	eval 'test $RC = 0 && within 20 lun_state_is node1 vol2 uptodate'
check "node2 up to date behind it" within 30 lun_state_is node2 vol2 uptodate
check "status after the promotion: vol2 does $want I/O on both nodes" \
	eval 'test "$(lun_field node1 vol2 io)/$(lun_field node2 vol2 io)" = "$want/$want"'
check "the promoted LUN mirrors: fio verify through node1" \
	fio_verify "nbd://127.0.0.1:$N1_NBD/vol2" lab --size=8M --offset=16M
stop_pid "$n1_pid"
stop_pid "$n2_pid"
check "vol2 both backing files identical after the promotion" \
	cmp "$T_DIR/node1-vol2.img" "$T_DIR/node2-vol2.img"
finish
