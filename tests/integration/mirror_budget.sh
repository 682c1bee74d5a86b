#!/bin/bash
# An authenticated but buggy primary (tests/tools/fake_peer with the secret)
# sends requests that all wait for one it never sends. The mirror holds as
# many as the window the primary announced and WIRE_MAX_INFLIGHT_BYTES
# (1 GiB) of their payload; one more and it forgets the session: the
# connection closes and the next handshake names a new ordering record, so
# a real primary would journal and resync (doc/wire.md). The real primary,
# which keeps within both, then mirrors with no such refusal.
. "$top_srcdir/tests/lib.sh"
plan 11

pair_setup vol0:64M:sync:yes:node1
node_start node2 || bail "mirror did not start: $(cat "$T_DIR"/n2.log)"
FAKE="$top_builddir/tests/tools/fake_peer"
wait_for 10 ctl node2 status --json || bail "no status from the mirror"
# our data descends from the mirror's, so it accepts the LUN
export FAKE_PEER_GEN=$(lun_field node2 vol0 generation)
diag "mirror's generation: $FAKE_PEER_GEN"
buggy() { FAKE_PEER_WAITING="$1" "$FAKE" 127.0.0.1 "$N2_DATA" node1 node2 "$T_DIR/secret" vol0:67108864:sync; }

out=$(buggy 16:16:4096); diag "$(tr '\n' ';' <<<"$out")"
check "window 16: 16 waiting requests are held" grep -q "holds all 16 waiting" <<<"$out"
check "window 16: within it the session stays (same record)" grep -q "record is the same" <<<"$out"
out=$(buggy 16:17:4096); diag "$(tr '\n' ';' <<<"$out")"
check "window 16: the 17th waiting request closes the connection" \
	grep -q "closed the connection at waiting request 17 of 17" <<<"$out"
check "window 16: the session is forgotten (new record: the primary resyncs)" \
	grep -q "record changed" <<<"$out"
check "the mirror logs the request over the window" \
	wait_for 5 grep -q "request 18 .* would pass the mirror's budget for waiting requests (16 requests" "$T_DIR/n2.log"
# 32 x 32 MiB = 1 GiB waiting is still held; the 33rd passes the byte budget
out=$(buggy 65536:33:33554432); diag "$(tr '\n' ';' <<<"$out")"
check "32 MiB writes: the 33rd (past 1 GiB waiting) closes, not before" \
	grep -q "closed the connection at waiting request 33 of 33" <<<"$out"
check "the mirror logs the request over the byte budget" \
	wait_for 5 grep -q "request 34 .* would pass the mirror's budget.* 1073741824 bytes" "$T_DIR/n2.log"
rss_below() { [ "$(awk '/^VmRSS/ { print $2 }' "/proc/$n2_pid/status")" -lt "$1" ]; }
check "the 1 GiB it held is given back" wait_for 5 rss_below 262144
diag "mirror VmRSS: $(awk '/^VmRSS/ { print $2, $3 }' "/proc/$n2_pid/status")"

node_start node1 || bail "primary did not start: $(cat "$T_DIR"/n1.log)"
before=$(grep -c "would pass the mirror's budget" "$T_DIR/n2.log")
check "the real primary connects: vol0 up to date" wait_for 40 lun_state_is node1 vol0 uptodate
fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" good --size=32M --bs=4k,1M --runtime=20
check "the real primary mirrors (fio verify) and never passes the budget" \
	test $? = 0 -a "$(grep -c "would pass the mirror's budget" "$T_DIR/n2.log")" = "$before"
stop_pid "$n1_pid"; stop_pid "$n2_pid"
finish
