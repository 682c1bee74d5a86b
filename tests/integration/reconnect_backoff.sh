#!/bin/bash
# A mirror that refuses every connection of a reachable primary (here: its
# config lacks one of the primary's LUNs) is dialled with a backoff that
# doubles from 100 ms to 5 s per connection, not a fixed pause that other
# connections' wake-ups cut short; the primary keeps serving its hosts.
. "$top_srcdir/tests/lib.sh"
plan 5

pair_setup vol0:16M:sync:yes:node1 vol1:16M:sync:yes:node1
# node2 has never heard of vol1
sed '/<lun name="vol1"/,/<\/lun>/d' "$T_DIR/pair.xml" >"$T_DIR/pair2.xml"
node_start node1 || bail "node1 did not start: $(cat "$T_DIR/n1.log")"
"$IPMIRRORD" --foreground --config "$T_DIR/pair2.xml" --node node2 --socket "ipm-$$-node2" \
	>>"$T_DIR/n2.log" 2>&1 &
n2_pid=$!
T_PIDS="$T_PIDS $n2_pid"
T_DAEMONS="$T_DAEMONS $n2_pid:$T_DIR/n2.log"
check "the mirror refuses the primary's handshake (unknown lun vol1)" \
	wait_for 20 grep -q 'vol1' "$T_DIR/n2.log"
t0=$(date +%s)
r0=$(grep -c 'vol1' "$T_DIR/n2.log")
sleep 20
r1=$(grep -c 'vol1' "$T_DIR/n2.log")
n=$((r1 - r0))
diag "refusals in 20 s over 4 connections: $n"
# 100 ms doubling to 5 s: at most 8 dials per connection in 20 s, 32 in all
check "at most 40 dials in 20 s over 4 connections ($n)" test "$n" -le 40
check "and it keeps trying (at least 4)" test "$n" -ge 4
check "the primary still serves its hosts" \
	env PATH=/usr/bin:$PATH nbdsh -u "nbd://127.0.0.1:$N1_NBD/vol0" -c 'h.pwrite(b"x" * 4096, 0)'
finish
