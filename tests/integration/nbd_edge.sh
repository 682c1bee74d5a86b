#!/bin/bash
# Edge requests from a non-strict NBD client on a sync and an async mirrored
# LUN: zero-length WRITE/TRIM/WRITE_ZEROES/READ are answered as successful
# no-ops (doc/nbd.md), never mirrored, never journaled; writes ending at the
# last byte, FUA and FLUSH are mirrored. The LUNs stay up to date, the
# primary's log stays quiet, and both copies are byte-identical. Then the
# empty requests an older version sent: as frames from an older primary
# (answered as no-ops, the connection stays) and as journal records (the
# resync skips them and finishes).
. "$top_srcdir/tests/lib.sh"
plan 20

EDGE="/usr/bin/python3 $top_srcdir/tests/integration/py/nbd_edge.py"
FAKE="$top_builddir/tests/tools/fake_peer"
JAPPEND="$top_builddir/tests/tools/journal_append"
SIZE=$((64 * 1024 * 1024))

both_uptodate() { lun_state_is node1 "$1" uptodate && lun_state_is node2 "$1" uptodate; }

pair_setup vol0:64M:sync:yes:node1 vol1:64M:async:yes:node1
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "both LUNs up to date" wait_for 20 both_uptodate vol0 && wait_for 20 both_uptodate vol1

lines0=$(wc -l <"$T_DIR/n1.log")
for l in vol0 vol1; do
	out=$($EDGE "nbd://127.0.0.1:$N1_NBD/$l" 2>&1)
	rc=$?
	sed 's/^/#   /' <<<"$out"
	check "$l: every edge request answered as expected" test $rc = 0
done
check "sync lun up to date within 15 s of the edge requests" wait_for 15 both_uptodate vol0
check "async lun up to date within 15 s of the edge requests" wait_for 15 both_uptodate vol1
sleep 2
lines=$(( $(wc -l <"$T_DIR/n1.log") - lines0 ))
check "the primary logged fewer than 50 lines meanwhile ($lines)" test "$lines" -lt 50
check "no connection was dropped" bash -c "! grep -q 'connection .* down' '$T_DIR/n1.log'"
stop_pid "$n1_pid"; stop_pid "$n2_pid"
for l in vol0 vol1; do
	check "$l: both backing files identical" cmp "$T_DIR/node1-$l.img" "$T_DIR/node2-$l.img"
done

# while the mirror is away, empty requests are not journaled
pair_start || bail "daemons did not restart: $(cat "$T_DIR"/n*.log)"
wait_for 20 both_uptodate vol0
stop_pid "$n2_pid"
check "mirror stopped: the primary journals" wait_for 15 lun_state_is node1 vol0 journaling
$EDGE "nbd://127.0.0.1:$N1_NBD/vol0" --empty-only >/dev/null 2>&1
check "empty requests leave the journal empty" \
	test "$(lun_field node1 vol0 journal_records)" = 0
PATH=/usr/bin:$PATH nbdsh -u "nbd://127.0.0.1:$N1_NBD/vol0" -c 'h.pwrite(b"\x11" * 4096, 0)'
check "a real write is journaled" test "$(lun_field node1 vol0 journal_records)" = 1

# a journal holding empty records (written by an older version) replays
stop_pid "$n1_pid"
# the primary's copy got the last record's data when it took the write
printf '\x77%.0s' $(seq 4096) | dd of="$T_DIR/node1-vol0.img" bs=4096 seek=100 conv=notrunc 2>/dev/null
out=$("$JAPPEND" "$T_DIR/node1-vol0.img.journal" vol0 "$SIZE" write:8192:0 trim:0:0 \
	zero:4096:0 write:409600:4096:77 2>&1)
check "empty records appended to the journal ($out)" test $? = 0
pair_start || bail "daemons did not restart: $(cat "$T_DIR"/n*.log)"
check "resync over the empty records ends: both up to date" wait_for 40 both_uptodate vol0
check "journal emptied" test "$(lun_field node1 vol0 journal_bytes)" = 0
# ("protocol version N" is the connection-up line of the wire negotiation)
check "no replay error logged" bash -c "! grep -hiv 'protocol version' '$T_DIR/n1.log' '$T_DIR/n2.log' | grep -qiE 'replay stopped|protocol|without payload'"
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "vol0 after the replay: both backing files identical" \
	cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"

# an older primary's empty frames: answered as no-ops on the same connection
# (it claims node2's own generations, as the real node1 would)
node_start node2 || bail "mirror did not restart"
g0=$(lun_field node2 vol0 generation); g1=$(ctl node2 status vol1 --json | jq -r '.luns[0].generation')
out=$("$FAKE" --send-empty 127.0.0.1 "$N2_DATA" node1 node2 "$T_DIR/secret" \
	"vol0:$SIZE:sync:$g0" "vol1:$SIZE:async:$g1" 2>&1)
rc=$?
diag "fake older primary: $(tr '\n' ' ' <<<"$out")"
check "mirror answers empty WRITE/TRIM/ZERO frames and a write after them" test $rc = 0
check "the write after them was applied" \
	cmp -s -n 4096 <(head -c 4096 "$T_DIR/node2-vol0.img") <(printf '\x5a%.0s' $(seq 4096))
finish
