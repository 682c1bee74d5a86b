#!/bin/bash
# A flapping link (down/up every 3 s for 30 s) under a verifying load: the
# heartbeat's probation (5 s here, longer than each "up" phase) restarts on
# every gap, so the primary never reconnects while the link flaps; once the
# link is stable it reconnects after probation, resyncs, and both backing
# files are byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 8

netns_pair || bail "cannot create network namespaces"
PAIR_HB='interval="0.5" timeout="2.0" probation="5"' pair_setup vol0:128M:sync:yes:node1
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" load --size=64M \
	--time_based --runtime=50 &
fio_pid=$!
sleep 2
seen="$T_DIR/states"
: >"$seen"
end=$(( $(date +%s) + 30 ))
while [ "$(date +%s)" -lt "$end" ]; do
	link_down
	for _ in 1 2 3 4 5 6; do lun_field node1 vol0 state >>"$seen"; sleep 0.5; done
	link_up
	for _ in 1 2 3 4 5 6; do lun_field node1 vol0 state >>"$seen"; sleep 0.5; done
done
diag "states seen while flapping: $(sort "$seen" | uniq -c | tr '\n' ' ')"
check "the outage was noticed (journaling seen)" grep -qx journaling "$seen"
check "probation was entered while flapping" grep -qx probation "$seen"
# the first samples can still show the pre-outage state
check "never reconnected while flapping (no resyncing/uptodate after the first outage)" \
	bash -c "! sed -n '/journaling/,\$p' '$seen' | grep -qxE 'resyncing|uptodate'"
check "stable link: probation ends, resync completes, up to date" \
	wait_for 60 lun_state_is node1 vol0 uptodate
wait $fio_pid
check "fio: no verify error" test $? = 0
check "journal emptied" test "$(lun_field node1 vol0 journal_bytes)" = 0
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "both backing files identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
