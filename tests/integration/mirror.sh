#!/bin/bash
# Two real daemons on loopback mirror LUNs both ways: sync and async under
# fio --verify, bidirectional load, role guard, unmirrored LUN stays local,
# sync FLUSH reaches the mirror, and in the end every mirrored LUN's two
# backing files are byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 15

pair_local vol0:128M:sync:yes:node1 vol1:128M:async:yes:node1 \
	vol2:128M:sync:yes:node2 vol3:64M:sync:no:node1

check "node1 has 4 outgoing and node2 4 incoming connections up" \
	wait_for 15 connections_up node1 8
check "sync lun: fio randwrite QD32 crc32c verify without error" \
	fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" sync
check "async lun: fio randwrite QD32 crc32c verify without error" \
	fio_verify "nbd://127.0.0.1:$N1_NBD/vol1" async

# both directions at once: node1 primary of vol0, node2 primary of vol2
fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" bidi0 --rw=randrw --size=48M &
f1=$!
fio_verify "nbd://127.0.0.1:$N2_NBD/vol2" bidi2 --rw=randrw --size=48M &
f2=$!
wait $f1; r1=$?; wait $f2; r2=$?
check "bidirectional: fio verify on node1/vol0 and node2/vol2 at once" test $r1 = 0 -a $r2 = 0

# libnbd shows the server's message text in its debug output
out=$(LIBNBD_DEBUG=1 nbdinfo "nbd://127.0.0.1:$N2_NBD/vol0" 2>&1)
check "role guard: node2 refuses vol0 with a message naming its primary node1" \
	grep -q 'server error message: lun "vol0" is mirrored here; node "node1" is its primary' <<<"$out"

# sync FLUSH completes only once the mirror has the data on its disk: the
# mirror's fdatasync of its backing file (seen by strace) falls between the
# client's FLUSH and its reply, and the data is there when the reply comes
head -c 1M /dev/urandom >"$T_DIR/pattern"
timeout 60 strace -f -y -ttt -T -e trace=fdatasync -p "$n2_pid" -o "$T_DIR/n2.strace" \
	2>"$T_DIR/strace.err" &
st=$!
wait_for 10 grep -q attached "$T_DIR/strace.err" || diag "strace: $(cat "$T_DIR/strace.err")"
PATH=/usr/bin:$PATH timeout 30 nbdsh -u "nbd://127.0.0.1:$N1_NBD/vol0" -c "
import time
h.pwrite(open('$T_DIR/pattern','rb').read(), 100*1024*1024)
t0 = time.time(); h.flush(); t1 = time.time()
print('%.6f %.6f' % (t0, t1))" >"$T_DIR/flush.times"
check "sync flush: the data is in node2's backing file when flush returns" \
	cmp -s -n 1048576 "$T_DIR/pattern" <(tail -c +$((100 * 1024 * 1024 + 1)) "$T_DIR/node2-vol0.img")
kill "$st" 2>/dev/null; wait "$st" 2>/dev/null
read -r t0 t1 <"$T_DIR/flush.times"
# "PID 1796.123456 fdatasync(9</path/node2-vol0.img>) = 0 <0.000321>"
syncs=$(awk -v t0="${t0:-0}" -v t1="${t1:-0}" -v f="node2-vol0.img>" '
	$3 ~ /^fdatasync\(/ && index($3, f) && $(NF - 1) == 0 {
		d = $NF; gsub(/[<>]/, "", d)
		if ($2 >= t0 && $2 + d <= t1) n++
	} END { print n + 0 }' "$T_DIR/n2.strace")
check "sync flush: node2 fdatasynced its vol0 backing file within the FLUSH ($syncs time(s))" \
	test "$syncs" -ge 1

# an unmirrored LUN never goes on the wire
PATH=/usr/bin:$PATH nbdsh -u "nbd://127.0.0.1:$N1_NBD/vol3" \
	-c "h.pwrite(b'\xab' * 1048576, 0); h.flush()"
check "unmirrored lun: data written on node1" \
	cmp -s -n 1048576 <(head -c 1M "$T_DIR/node1-vol3.img") <(head -c 1M /dev/zero | tr '\0' '\253')
check "unmirrored lun: node2's backing file stays all zeros" \
	cmp -s "$T_DIR/node2-vol3.img" <(head -c 64M /dev/zero)
check "unmirrored lun: nothing counted as mirrored" \
	test "$(ctl node1 status vol3 --json | jq '.luns[0].mirrored_bytes')" = 0
check "mirrored lun: bytes counted as mirrored" \
	test "$(ctl node1 status vol0 --json | jq '.luns[0].mirrored_bytes')" -gt 0

# stop the primaries (a clean stop drains what is in flight), then compare
stop_pid "$n1_pid"
stop_pid "$n2_pid"
for l in vol0 vol1 vol2; do
	check "$l: both backing files identical" cmp "$T_DIR/node1-$l.img" "$T_DIR/node2-$l.img"
done
finish
