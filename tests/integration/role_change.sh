#!/bin/bash
# A role change keeps the other LUNs' NBD clients: node1 is primary of vol0
# and vol1; while fio with crc32c verify runs on vol0 through node1, vol1 is
# moved to node2 (demote on node1, promote on node2) and back. fio on vol0
# sees no error (its connection is never dropped), a client of vol1 on node1
# is disconnected and then refused with a message naming the new primary,
# vol1 is written on each of its primaries, and both LUNs end byte-identical
# on both nodes, holding what was written.
. "$top_srcdir/tests/lib.sh"
plan 15

pair_local vol0:128M:sync:yes:node1 vol1:64M:sync:yes:node1
check "mirroring is up" wait_for 20 lun_state_is node2 vol0 uptodate

# a client of vol1 on node1 that stays connected (nbdsh reads every 0.2 s)
PATH=/usr/bin:$PATH timeout 60 nbdsh -u "nbd://127.0.0.1:$N1_NBD/vol1" -c '
import time
try:
    for i in range(250):
        h.pread(4096, 0)
        time.sleep(0.2)
    print("never disconnected")
except Exception as e:
    print("disconnected:", e)
' >"$T_DIR/vol1-client.out" 2>&1 &
vc=$!
fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" load --size=64M --time_based --runtime=25 &
f0=$!
check "the load on vol0 is running" field_grows node1 vol0 mirrored_bytes
ctl node1 demote vol1 >"$T_DIR/demote.out" 2>&1; rc=$?
check "vol1 demoted on node1 under load: $(cat "$T_DIR/demote.out")" test "$rc" = 0
ctl node2 promote vol1 >"$T_DIR/promote.out" 2>&1; rc=$?
check "vol1 promoted on node2: $(cat "$T_DIR/promote.out")" test "$rc" = 0
wait "$vc"
check "the vol1 client on node1 was disconnected" grep -q "^disconnected" "$T_DIR/vol1-client.out"
# libnbd shows the server's message text in its debug output
out=$(LIBNBD_DEBUG=1 nbdinfo "nbd://127.0.0.1:$N1_NBD/vol1" 2>&1)
check "a new vol1 client on node1 is refused, naming node2" \
	grep -q 'server error message: lun "vol1" is mirrored here; node "node2" is its primary' <<<"$out"
# vol1 written on each primary in turn: the copies compared below hold data
head -c 1M /dev/urandom >"$T_DIR/B"; head -c 1M /dev/urandom >"$T_DIR/C"
put() { # NODE-NBD-PORT FILE OFFSET: write and flush one pattern to vol1
	PATH=/usr/bin:$PATH timeout 30 nbdsh -u "nbd://127.0.0.1:$1/vol1" \
		-c "h.pwrite(open('$2','rb').read(), $3); h.flush()"
}
check "vol1 written on its new primary node2" put "$N2_NBD" "$T_DIR/B" $((8 << 20))
ctl node2 demote vol1 >/dev/null 2>&1 && ctl node1 promote vol1 >/dev/null 2>&1; rc=$?
check "vol1 moved back to node1 while the load goes on" \
	bash -c "[ $rc = 0 ] && kill -0 $f0"
check "vol1 written on node1 again" put "$N1_NBD" "$T_DIR/C" $((16 << 20))
wait "$f0"
check "fio verify on vol0 across both role changes: no error, never disconnected" test $? = 0
# both sides: the mirror's word alone once hid a resync still under way
both_uptodate() {
	local n l
	for n in node1 node2; do
		for l in vol0 vol1; do lun_state_is "$n" "$l" uptodate || return 1; done
	done
}
check "vol0 and vol1 up to date again on both nodes" wait_for 40 both_uptodate
stop_pid "$n1_pid"
check "failover: vol0 promoted on node2, fio --verify_only finds every block of the load there" \
	failover_verify load
stop_pid "$n2_pid"
check "both LUNs identical on both nodes" \
	bash -c "cmp '$T_DIR/node1-vol0.img' '$T_DIR/node2-vol0.img' && cmp '$T_DIR/node1-vol1.img' '$T_DIR/node2-vol1.img'"
has() { cmp -s -n 1048576 "$2" <(tail -c +$(($3 + 1)) "$1"); }
check "node1's copy of vol1 holds what both primaries wrote" \
	bash -c "$(declare -f has); has '$T_DIR/node1-vol1.img' '$T_DIR/B' $((8 << 20)) && has '$T_DIR/node1-vol1.img' '$T_DIR/C' $((16 << 20))"
finish
