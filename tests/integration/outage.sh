#!/bin/bash
# A real network outage between two nodes in their own network namespaces,
# under a verifying write load: the link goes down for 15 s, the primary
# journals, the link comes back, probation lasts at least the configured 10 s,
# the journal is replayed in order, the LUN is up to date again, fio saw no
# verify error and both backing files are byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 13

PAIR_HB='interval="1.5" timeout="4.0" probation="10"' pair_up vol0:256M:sync:yes:node1
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" load --size=200M \
	--time_based --runtime=55 &
fio_pid=$!
check "the load is mirrored" field_grows node1 vol0 mirrored_bytes
link_down
diag "link down at $(date +%T)"
check "heartbeat timeout: primary is journaling" wait_for 10 lun_state_is node1 vol0 journaling
j1=$(lun_field node1 vol0 journal_bytes)
sleep 8
j2=$(lun_field node1 vol0 journal_bytes)
check "the journal grows while the link is down ($j1 -> $j2 bytes)" test "$j2" -gt "$j1"
check "the mirror knows it is outdated" lun_state_is node2 vol0 outdated
sleep 3
link_up
p0=$(date +%s.%N)
diag "link up at $(date +%T)"
check "probation starts when heartbeats return" wait_for 10 lun_state_is node1 vol0 probation
wait_while 30 lun_state_is node1 vol0 probation
p1=$(date +%s.%N)
plen=$(echo "$p1 - $p0" | bc)
check "probation lasted >= 10 s after the link came back (${plen} s)" test "$(echo "$plen >= 9.9" | bc)" = 1
check "resync completes: primary up to date" wait_for 60 lun_state_is node1 vol0 uptodate
check "journal emptied after the resync" test "$(lun_field node1 vol0 journal_bytes)" = 0
wait $fio_pid
check "fio: no verify error across the outage" test $? = 0
stop_pid "$n1_pid"
check "failover: vol0 promoted on node2, fio --verify_only finds every block of the load there" \
	failover_verify load
stop_pid "$n2_pid"
check "both backing files identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
