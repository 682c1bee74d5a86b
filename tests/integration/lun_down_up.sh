#!/bin/bash
# ipmirrorctl down / up (issue 15 item 2) take one LUN out of service on
# one node and bring it back, the other LUNs untouched: node1 is primary of
# vol0 (sync, under fio --verify) and vol1 (async). `down vol1` on node1
# disconnects vol1's client, refuses new opens naming the reason, drains
# the async writes to node2, closes the backing file and shows `down`;
# `up` serves it again, generation kept. `down vol1` on the mirror node2
# makes node1 journal vol1 alone; `up` resyncs it. vol0 is uptodate with
# journal_bytes 0 in every status sample throughout; copies byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 18

pair_local vol0:128M:sync:yes:node1 vol1:32M:async:yes:node1
both_uptodate() {
	local n l
	for n in node1 node2; do
		for l in vol0 vol1; do lun_state_is "$n" "$l" uptodate || return 1; done
	done
}
check "mirroring is up, both LUNs up to date on both nodes" wait_for 30 both_uptodate
fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" load --size=64M --time_based --runtime=20 &
f0=$!
field_grows node1 vol0 mirrored_bytes
lun_watch node1 vol0 16 "$T_DIR/watch1" &
w1=$!
lun_watch node2 vol0 16 "$T_DIR/watch2" &
w2=$!

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
gen=$(lun_field node1 vol1 generation)
# async: acknowledged before node2 has it; down drains it there
head -c 4M /dev/urandom >"$T_DIR/P"
PATH=/usr/bin:$PATH timeout 30 nbdsh -u "nbd://127.0.0.1:$N1_NBD/vol1" \
	-c "h.pwrite(open('$T_DIR/P','rb').read(), 0)"
out=$(ctl node1 down vol1 2>&1)
check "down vol1 on node1: $out" test $? = 0
check "node1 shows vol1 down" lun_state_is node1 vol1 down
wait "$vc"
check "the vol1 client on node1 was disconnected" grep -q "^disconnected" "$T_DIR/vol1-client.out"
out=$(LIBNBD_DEBUG=1 nbdinfo "nbd://127.0.0.1:$N1_NBD/vol1" 2>&1)
check "a new vol1 client on node1 is refused, naming the reason" \
	grep -q 'server error message: lun "vol1" is down on this node' <<<"$out"
check "the async writes before down reached node2 (drained)" \
	cmp -s -n 4194304 "$T_DIR/P" "$T_DIR/node2-vol1.img"
check "node1 closed vol1's backing file" \
	bash -c "! ls -l /proc/$n1_pid/fd 2>/dev/null | grep -q 'node1-vol1.img$'"
check "node2 shows vol1 outdated (its primary is out of service)" \
	wait_for 10 lun_state_is node2 vol1 outdated
out=$(ctl node1 up vol1 2>&1)
check "up vol1 on node1: $out" test $? = 0
wait_for 30 both_uptodate; rc=$?
gen2=$(lun_field node1 vol1 generation)
check "vol1 up to date again on both nodes, generation kept ($gen, now $gen2)" \
	test $rc = 0 -a "$gen2" = "$gen"

# the mirror's side down: the primary journals that LUN alone
out=$(ctl node2 down vol1 2>&1)
check "down vol1 on the mirror node2: $out" test $? = 0
head -c 4M /dev/urandom >"$T_DIR/Q"
PATH=/usr/bin:$PATH timeout 30 nbdsh -u "nbd://127.0.0.1:$N1_NBD/vol1" \
	-c "h.pwrite(open('$T_DIR/Q','rb').read(), 8 << 20); h.flush()"
st=$(lun_field node1 vol1 state); jb=$(lun_field node1 vol1 journal_bytes)
check "node1 journals vol1 while its mirror is down ($st, $jb journal bytes)" \
	test "$st" = journaling -a "$jb" -gt 0
out=$(ctl node2 up vol1 2>&1)
check "up vol1 on node2: $out" test $? = 0
check "vol1 resynced: up to date on both nodes" wait_for 30 both_uptodate
wait $w1 $w2
n=$(cat "$T_DIR/watch1" "$T_DIR/watch2" | wc -l)
bad=$(cat "$T_DIR/watch1" "$T_DIR/watch2" | grep -vc '^uptodate 0$')
check "vol0 uptodate with journal_bytes 0 in all $n samples on both nodes ($(sort "$T_DIR/watch1" "$T_DIR/watch2" | uniq -c | tr '\n' ' '))" \
	test "$n" -ge 20 -a "$bad" = 0
wait $f0
check "fio verify on vol0 through the downs and ups: no error" test $? = 0
stop_pid "$n1_pid"
stop_pid "$n2_pid"
check "both LUNs byte-identical on both nodes" \
	bash -c "cmp '$T_DIR/node1-vol0.img' '$T_DIR/node2-vol0.img' && cmp '$T_DIR/node1-vol1.img' '$T_DIR/node2-vol1.img'"
finish
