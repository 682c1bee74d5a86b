#!/bin/bash
# Each LUN is its own resource (issue 15 item 1): node1 is primary of vol0
# and vol1; under fio --verify on vol0, vol1 moves node1 -> node2 -> node1
# (written on each primary). vol0, which nobody touched, is uptodate with
# journal_bytes 0 in every status sample taken every 0.2 s on both nodes,
# its mirror connections are never re-made, fio verifies, and both LUNs end
# byte-identical on both nodes.
. "$top_srcdir/tests/lib.sh"
plan 13

pair_local vol0:128M:sync:yes:node1 vol1:64M:sync:yes:node1
both_uptodate() {
	local n l
	for n in node1 node2; do
		for l in vol0 vol1; do lun_state_is "$n" "$l" uptodate || return 1; done
	done
}
check "mirroring is up, both LUNs up to date on both nodes" wait_for 30 both_uptodate

fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" load --size=64M --time_based --runtime=16 &
f0=$!
check "the load on vol0 is running" field_grows node1 vol0 mirrored_bytes
lun_watch node1 vol0 12 "$T_DIR/watch1" &
w1=$!
lun_watch node2 vol0 12 "$T_DIR/watch2" &
w2=$!
sleep 1
head -c 1M /dev/urandom >"$T_DIR/B"; head -c 1M /dev/urandom >"$T_DIR/C"
put() { # NODE-NBD-PORT FILE OFFSET: write and flush one pattern to vol1
	PATH=/usr/bin:$PATH timeout 30 nbdsh -u "nbd://127.0.0.1:$1/vol1" \
		-c "h.pwrite(open('$2','rb').read(), $3); h.flush()"
}
moved=0
ctl node1 demote vol1 >"$T_DIR/m1.out" 2>&1 && ctl node2 promote vol1 >>"$T_DIR/m1.out" 2>&1 &&
	moved=1
check "vol1 moved to node2 under the load on vol0: $(tr '\n' ' ' <"$T_DIR/m1.out")" test $moved = 1
check "vol1 written on node2" put "$N2_NBD" "$T_DIR/B" $((8 << 20))
moved=0
ctl node2 demote vol1 >"$T_DIR/m2.out" 2>&1 && ctl node1 promote vol1 >>"$T_DIR/m2.out" 2>&1 &&
	moved=1
check "vol1 moved back to node1: $(tr '\n' ' ' <"$T_DIR/m2.out")" test $moved = 1
check "vol1 written on node1 again" put "$N1_NBD" "$T_DIR/C" $((16 << 20))
wait $w1 $w2
n=$(cat "$T_DIR/watch1" "$T_DIR/watch2" | wc -l)
bad=$(cat "$T_DIR/watch1" "$T_DIR/watch2" | grep -vc '^uptodate 0$')
check "vol0 uptodate with journal_bytes 0 in all $n samples on both nodes ($bad others: $(sort "$T_DIR/watch1" "$T_DIR/watch2" | uniq -c | tr '\n' ' '))" \
	test "$n" -ge 20 -a "$bad" = 0
wait $f0
check "fio verify on vol0 across both moves: no error" test $? = 0
# node1's log: vol1's sessions came and went; vol0's outgoing connections
# (the first four) were never re-made
check "vol0's session never went down, the engines were never re-made" \
	bash -c "! grep -qE 'lun vol0: peer node2 unreachable|engine stopped' '$T_DIR/n1.log' '$T_DIR/n2.log' &&
		[ \$(cat '$T_DIR/n1.log' '$T_DIR/n2.log' | grep -c 'engine started') = 2 ]"
check "vol0 and vol1 up to date again on both nodes" wait_for 40 both_uptodate
stop_pid "$n1_pid"
stop_pid "$n2_pid"
check "both LUNs byte-identical on both nodes" \
	bash -c "cmp '$T_DIR/node1-vol0.img' '$T_DIR/node2-vol0.img' && cmp '$T_DIR/node1-vol1.img' '$T_DIR/node2-vol1.img'"
check "vol1 holds what both of its primaries wrote" \
	bash -c "cmp -s -n 1048576 -i 0:$((8 << 20)) '$T_DIR/B' '$T_DIR/node1-vol1.img' && cmp -s -n 1048576 -i 0:$((16 << 20)) '$T_DIR/C' '$T_DIR/node1-vol1.img'"
finish
