#!/bin/bash
# A flapping link (down/up every 3 s for 30 s) under a verifying load: the
# heartbeat's probation (5 s here, longer than each "up" phase) restarts on
# every gap, so the primary never reconnects while the link flaps; once the
# link is stable it reconnects after probation, resyncs, and both backing
# files are byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 11

PAIR_HB='interval="0.5" timeout="2.0" probation="5"' pair_up vol0:128M:sync:yes:node1
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" load --size=64M \
	--time_based --runtime=50 &
fio_pid=$!
check "the load is mirrored" field_grows node1 vol0 mirrored_bytes
seen="$T_DIR/states"
: >"$seen"
end=$(( $(date +%s) + 30 ))
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# sample the state for 3 s of wall-clock time (a slow status call must not
# stretch the phase: an "up" phase longer than probation would reconnect)
sample_3s() {
	local stop=$(( $(now_ms) + 3000 ))
	while [ "$(now_ms)" -lt "$stop" ]; do
		in_node node1 timeout 1 "$IPMIRRORCTL" --socket "ipm-$$-node1" status vol0 --json 2>/dev/null |
			jq -r '.luns[0].state' >>"$seen"
		sleep 0.2
	done
}
while [ "$(date +%s)" -lt "$end" ]; do
	link_down
	sample_3s
	link_up
	sample_3s
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
stop_pid "$n1_pid"
check "failover: vol0 promoted on node2, fio --verify_only finds every block of the load there" \
	failover_verify load
stop_pid "$n2_pid"
check "both backing files identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
