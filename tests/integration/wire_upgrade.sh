#!/bin/bash
# Rolling upgrade (issue 15 item 6): this build mirrors both ways with a
# peer of the previous release, which speaks protocol version 4 alone
# (IPM_WIRE_VERSION_MAX=4: its handshake code path, refusing versions 5-6 as
# 049e082 does; or the previous release itself when IPM_OLD_BUILD names its
# build directory), under fio --verify; then the peer is upgraded and the
# pair speaks version 6. Copies byte-identical at each stage. node1 is
# primary of two LUNs (vol0, vol2): a version 4 listener keeps one session
# at a time, so node1 gives them one session together (doc/roles.md) and
# both stay up to date.
. "$top_srcdir/tests/lib.sh"
plan 18

pair_setup vol0:64M:sync:yes:node1 vol1:64M:async:yes:node2 vol2:32M:sync:yes:node1
node_start node1 || bail "node1 did not start: $(cat "$T_DIR/n1.log")"
if [ -n "${IPM_OLD_BUILD:-}" ]; then
	diag "node2: the previous release from $IPM_OLD_BUILD"
	IPMIRRORD="$IPM_OLD_BUILD/agent/ipmirrord" node_start node2
else
	IPM_WIRE_VERSION_MAX=4 node_start node2
fi || bail "node2 did not start: $(cat "$T_DIR/n2.log")"

check "version 4 peer: connections up both ways" wait_for 20 connections_up node1 8
check "node1 offered 6, was refused by the older node2 and dialled again in 4" \
	grep -q "node2 speaks protocol version 4 only (it refused our 6): dialling again in 4" "$T_DIR/n1.log"
check "node1's connections to node2 speak protocol version 4" \
	grep -q "connection 0 to node2 is up (protocol version 4)" "$T_DIR/n1.log"
check "node2's connections to node1 (its HELLO of version 4) are served in version 4" \
	grep -q "connection 0 from node2 .* is up, 1 lun(s), protocol version 4" "$T_DIR/n1.log"

fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" v4a --size=24M &
f1=$!
fio_verify "nbd://127.0.0.1:$N2_NBD/vol1" v4b --size=24M &
f2=$!
wait $f1; r1=$?; wait $f2; r2=$?
check "version 4: fio verify on node1/vol0 (new primary) and node2/vol1 (old primary)" \
	test $r1 = 0 -a $r2 = 0
all_uptodate() { [ "$(ctl node1 status --json | jq -r '[.luns[].state] | unique | join(",")')" = uptodate ]; }
check "version 4: vol0, vol1 and vol2 up to date on node1" wait_for 20 all_uptodate
check "node1 gives its two LUNs one session for the version 4 peer" \
	grep -q "peer node2 speaks protocol version 4: the 2 luns primary here share one session" "$T_DIR/n1.log"
ok=0; for i in $(seq 15); do all_uptodate && ok=$((ok + 1)); sleep 0.2; done
check "version 4: they stay up to date (15 samples, no session taking turns)" test "$ok" = 15
# down and up of a grouped LUN re-make the group's session
ctl node1 down vol2 >"$T_DIR/du.out" 2>&1 && lun_state_is node1 vol2 down &&
	ctl node1 up vol2 >>"$T_DIR/du.out" 2>&1
check "version 4: down and up of vol2 on node1: $(tr '\n' ' ' <"$T_DIR/du.out")" test $? = 0
check "version 4: all up to date again after the group was re-made" wait_for 30 all_uptodate

stop_pid "$n1_pid"
stop_pid "$n2_pid"
for l in vol0 vol1 vol2; do
	check "version 4: $l byte-identical on both nodes" cmp "$T_DIR/node1-$l.img" "$T_DIR/node2-$l.img"
done

# node2 upgraded: the pair speaks this release's version
node_start node1 || bail "node1 did not restart"
node_start node2 || bail "node2 did not restart"
check "version 6 pair: connections up both ways" wait_for 20 connections_up node1 8
fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" v5a --size=16M &
f1=$!
fio_verify "nbd://127.0.0.1:$N2_NBD/vol1" v5b --size=16M &
f2=$!
wait $f1; r1=$?; wait $f2; r2=$?
check "version 6: fio verify both ways, connections in version 6" \
	test $r1 = 0 -a $r2 = 0 -a "$(grep -c "to node2 is up (protocol version 6)" "$T_DIR/n1.log")" -ge 4
stop_pid "$n1_pid"
stop_pid "$n2_pid"
for l in vol0 vol1; do
	check "version 6: $l byte-identical on both nodes" cmp "$T_DIR/node1-$l.img" "$T_DIR/node2-$l.img"
done
finish
