#!/bin/bash
# 2000 silent connections at the mirror's data port (nobody says HELLO): the
# mirror gives at most 2 x <connections count> of them a handshake thread at
# a time, each for one handshake timeout in all, closes the others at once,
# and the real primary still connects: its LUN gets up to date and a write
# reaches the mirror's copy while the 2000 are held open. Refusals are
# logged in a burst of 5 lines, then at most one a second.
. "$top_srcdir/tests/lib.sh"
plan 9

CAP=8   # 2 x the pair's 4 connections
threads() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }

pair_setup vol0:32M:sync:yes:node1
node_start node2 || bail "mirror did not start: $(cat "$T_DIR"/n2.log)"
sleep 1
base=$(threads "$n2_pid")
diag "mirror threads before: $base"

# the flood: 2000 connections opened as fast as the kernel takes them, then
# held open and silent (bounded: 2000 sockets, at most 90 s)
( ulimit -n 4096; exec /usr/bin/python3 "$top_srcdir/tests/tools/conn_flood.py" \
	127.0.0.1 "$N2_DATA" 2000 90 "$T_DIR/flood.out" ) &
flood=$!
T_PIDS="$T_PIDS $flood"
wait_for 20 grep -q '^opened 2000' "$T_DIR/flood.out" || bail "flood did not start: $(cat "$T_DIR/flood.out")"
max=0
for _ in $(seq 30); do
	t=$(threads "$n2_pid"); [ "$t" -gt "$max" ] && max=$t
	sleep 0.1
done
diag "$(head -1 "$T_DIR/flood.out"); mirror threads during: up to $max"
check "2000 silent connections add at most $CAP threads ($base -> $max)" test $((max - base)) -le $CAP
check "the mirror closes those beyond the cap at once" \
	wait_for 5 awk -v min=$((2000 - CAP)) '/closed by the server/ { if ($NF >= min) ok = 1 } END { exit !ok }' "$T_DIR/flood.out"
refusals=$(grep -c 'refused' "$T_DIR/n2.log")
check "refusals are logged in a burst of 5, then once a second ($refusals lines)" \
	test "$refusals" -le 10
check "a refusal names the cap" grep -q "unauthenticated connections .*in their handshake already" "$T_DIR/n2.log"

node_start node1 || bail "primary did not start: $(cat "$T_DIR"/n1.log)"
check "the real primary connects: vol0 up to date" wait_for 40 lun_state_is node1 vol0 uptodate
check "the flood is still held open" kill -0 "$flood"
PATH=/usr/bin:$PATH nbdsh -u "nbd://127.0.0.1:$N1_NBD/vol0" \
	-c 'h.pwrite(b"\xa5" * 65536, 1 << 20)' >"$T_DIR/nbdsh.out" 2>&1
head -c 65536 /dev/zero | tr '\0' '\245' >"$T_DIR/want"
check "a write is mirrored while the flood is held" \
	wait_for 5 cmp -s -i 1048576:0 -n 65536 "$T_DIR/node2-vol0.img" "$T_DIR/want"
diag "mirror threads with the primary connected: $(threads "$n2_pid"); $(tail -1 "$T_DIR/flood.out")"
check "the flood has not grown the mirror's threads beyond the cap and the primary's" \
	test $(( $(threads "$n2_pid") - base )) -le $((CAP + 4))
stop_pid "$flood"
stop_pid "$n1_pid"; stop_pid "$n2_pid"
finish
