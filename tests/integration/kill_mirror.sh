#!/bin/bash
# kill -9 of the mirror daemon under a verifying load: the primary keeps
# serving and journals, the restarted mirror is resynced after probation,
# fio's verify sees no error and both backing files end byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 10

pair_up vol0:128M:sync:yes:node1
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" load --size=64M \
	--time_based --runtime=30 &
fio_pid=$!
check "the load is mirrored" field_grows node1 vol0 mirrored_bytes
kill9 "$n2_pid"
diag "mirror killed at $(date +%T)"
check "primary journals while the mirror is dead" wait_for 10 lun_state_is node1 vol0 journaling
check "the journal grows while the mirror is dead" field_grows node1 vol0 journal_bytes
node_start node2 || bail "mirror did not restart: $(tail "$T_DIR"/n2.log)"
check "restarted mirror is resynced: primary up to date" wait_for 60 lun_state_is node1 vol0 uptodate
wait $fio_pid
check "fio: no verify error across the mirror's crash" test $? = 0
check "journal emptied" test "$(lun_field node1 vol0 journal_bytes)" = 0
stop_pid "$n1_pid"
check "failover: vol0 promoted on node2, fio --verify_only finds every block of the load there" \
	failover_verify load
stop_pid "$n2_pid"
check "both backing files identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
