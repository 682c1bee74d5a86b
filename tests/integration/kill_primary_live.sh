#!/bin/bash
# kill -9 of the primary while mirroring live under a write load: writes in
# flight reached the primary's disk but not the mirror. The activity log
# (extents with live writes, made durable before each write leaves) tells the
# restarted primary which extents to resync, so both copies end identical.
. "$top_srcdir/tests/lib.sh"
plan 7

pair_up vol0:128M:async:yes:node1 vol1:128M:sync:yes:node1
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

fios=""
for l in vol0 vol1; do
	in_node node1 timeout -k 10 90 fio --name="$l" --ioengine=nbd --uri="nbd://$N1_ADDR:$N1_NBD/$l" \
		--rw=randwrite --bs=64k --iodepth=32 --size=128M --time_based --runtime=30 \
		--output="$T_DIR/$l.fio" >/dev/null 2>&1 &
	fios="$fios $!"
done
check "writes are being mirrored live" field_grows node1 vol0 mirrored_bytes
kill9 "$n1_pid"
diag "primary killed at $(date +%T) under load"
for p in $fios; do wait "$p"; done   # they fail: their server is gone
node_start node1 || bail "primary did not restart: $(tail "$T_DIR"/n1.log)"
check "the restarted primary knows it stopped uncleanly" \
	wait_for 5 grep -q "did not stop cleanly" "$T_DIR/n1.log"
all_uptodate() { [ "$(ctl node1 status --json | jq -r '[.luns[].state] | unique | join(",")')" = uptodate ]; }
check "both luns up to date again" wait_for 60 all_uptodate
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "async lun: both backing files identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
check "sync lun: both backing files identical" cmp "$T_DIR/node1-vol1.img" "$T_DIR/node2-vol1.img"
finish
