#!/bin/bash
# A lasting flood of silent connections from an address that is not the
# peer's (node2's own namespace: 10.201.0.2), re-opened as fast as the mirror
# closes them (up to 300 a second, 60 s at most): they take every handshake
# slot of their pool, yet the real primary, dialling from its data address
# 10.201.0.1, has slots of its own. It connects, its LUN gets up to date and a
# write reaches the mirror's copy while the flood goes on; the mirror's
# threads grow by no more than the two pools and the primary's connections.
. "$top_srcdir/tests/lib.sh"
plan 6

[ "$(id -u)" = 0 ] && ip netns list >/dev/null 2>&1 || { echo "1..0 # SKIP needs root and ip netns"; exit 77; }
netns_pair || bail "cannot create network namespaces"
CAP=8   # per pool: 2 x the pair's 4 connections
threads() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }

pair_setup vol0:32M:sync:yes:node1
node_start node2 || bail "mirror did not start: $(cat "$T_DIR"/n2.log)"
sleep 1
base=$(threads "$n2_pid")
ip netns exec "$NS_node2" bash -c 'ulimit -n 4096; exec /usr/bin/python3 "$0" "$@"' \
	"$top_srcdir/tests/tools/conn_flood.py" "$N2_ADDR" "$N2_DATA" 500 60 "$T_DIR/flood.out" 300 &
flood=$!
T_PIDS="$T_PIDS $flood"
wait_for 20 grep -q '^opened' "$T_DIR/flood.out" || bail "flood did not start"
sleep 2
node_start node1 || bail "primary did not start: $(cat "$T_DIR"/n1.log)"
check "under the flood the real primary connects: vol0 up to date" \
	wait_for 30 lun_state_is node1 vol0 uptodate
in_node node1 env PATH=/usr/bin:$PATH nbdsh -u "nbd://$N1_ADDR:$N1_NBD/vol0" \
	-c 'h.pwrite(b"\x5b" * 65536, 2 << 20)' >"$T_DIR/nbdsh.out" 2>&1
head -c 65536 /dev/zero | tr '\0' '\133' >"$T_DIR/want"
check "a write is mirrored while the flood goes on" \
	wait_for 5 cmp -s -i 2097152:0 -n 65536 "$T_DIR/node2-vol0.img" "$T_DIR/want"
t=$(threads "$n2_pid")
diag "mirror threads: $base before, $t now; $(tail -1 "$T_DIR/flood.out")"
check "the mirror's threads: at most both pools and the primary's 4 more" \
	test $((t - base)) -le $((2 * CAP + 4))
check "the flood lasted: the mirror kept closing re-opened connections" \
	awk '/closed by the server/ { c = $NF } END { exit !(c > 500) }' "$T_DIR/flood.out"
check "the flood was still running" kill -0 "$flood"
stop_pid "$flood"
stop_pid "$n1_pid"; stop_pid "$n2_pid"
finish
