#!/bin/bash
# A lossy, slow network: tc netem 20% loss and 50 ms delay on the link that
# carries both heartbeats and data. Mirroring keeps going (or journals and
# resyncs when the heartbeat gives up), fio's verify sees no error, and once
# the network is clean again both backing files are byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 5

netns_pair || bail "cannot create network namespaces"
PAIR_HB='interval="0.5" timeout="3.0" probation="3"' pair_setup vol0:64M:sync:yes:node1 vol1:64M:async:yes:node1
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

for n in 1 2; do
	ns=$(eval echo "\$NS_node$n"); dev=$(eval echo "\$VETH$n")
	ip netns exec "$ns" tc qdisc add dev "$dev" root netem loss 20% delay 50ms
done
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" sync --size=8M \
	--time_based --runtime=25 --iodepth=8 &
f0=$!
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol1" async --size=8M \
	--time_based --runtime=25 --iodepth=8 &
f1=$!
wait $f0; r0=$?
wait $f1; r1=$?
diag "mirrored bytes under netem: $(lun_field node1 vol0 mirrored_bytes) / $(lun_field node1 vol1 mirrored_bytes)"
check "sync lun: fio verify without error under 20% loss / 50 ms" test $r0 = 0
check "async lun: fio verify without error under 20% loss / 50 ms" test $r1 = 0
for n in 1 2; do
	ns=$(eval echo "\$NS_node$n"); dev=$(eval echo "\$VETH$n")
	ip netns exec "$ns" tc qdisc del dev "$dev" root
done
all_uptodate() { [ "$(ctl node1 status --json | jq -r '[.luns[].state] | unique | join(",")')" = uptodate ]; }
check "clean network: both luns up to date" wait_for 60 all_uptodate
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "backing files identical (vol0 and vol1)" \
	bash -c "cmp '$T_DIR/node1-vol0.img' '$T_DIR/node2-vol0.img' && cmp '$T_DIR/node1-vol1.img' '$T_DIR/node2-vol1.img'"
finish
