#!/bin/bash
# A lossy, slow network: tc netem 20% loss and 50 ms delay on the link that
# carries both heartbeats and data (kernels without sch_netem get the 20% loss
# from nftables, without the delay). Mirroring keeps going (or journals and
# resyncs when the heartbeat gives up), fio's verify sees no error, and once
# the network is clean again both backing files are byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 7

netns_pair || bail "cannot create network namespaces"
PAIR_HB='interval="0.5" timeout="3.0" probation="3"' pair_setup vol0:64M:sync:yes:node1 vol1:64M:async:yes:node1
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

# tc netem where the kernel has sch_netem; else (e.g. a VM kernel without
# modules) the loss half of the fault through nftables, and say so
impair() {
	local n ns dev
	for n in 1 2; do
		ns=$(eval echo "\$NS_node$n"); dev=$(eval echo "\$VETH$n")
		if [ "$1" = on ]; then
			if ip netns exec "$ns" tc qdisc add dev "$dev" root netem loss 20% delay 50ms 2>/dev/null; then
				IMPAIR=netem
			else
				IMPAIR=nft
				ip netns exec "$ns" nft add table inet ipmloss
				ip netns exec "$ns" nft add chain inet ipmloss out '{ type filter hook output priority 0; }'
				ip netns exec "$ns" nft add rule inet ipmloss out oifname "$dev" numgen random mod 100 '<' 20 drop
			fi
		elif [ "$IMPAIR" = netem ]; then
			ip netns exec "$ns" tc qdisc del dev "$dev" root
		else
			ip netns exec "$ns" nft delete table inet ipmloss
		fi
	done
}
impair on
if [ "$IMPAIR" = netem ]; then
	diag "tc netem: 20% loss and 50 ms delay on both ends"
else
	diag "this kernel has no sch_netem: 20% random loss through nftables on both ends, no added delay"
fi
loss=$(in_node node1 ping -q -c 100 -i 0.01 -W 1 "$N2_ADDR" | sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p')
check "the impairment is in place: ping loses ${loss}% (20% each way)" \
	test "${loss%.*}" -ge 15 -a "${loss%.*}" -le 70
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" sync --size=8M \
	--time_based --runtime=25 --iodepth=8 &
f0=$!
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol1" async --size=8M \
	--time_based --runtime=25 --iodepth=8 &
f1=$!
wait $f0; r0=$?
wait $f1; r1=$?
diag "mirrored bytes under netem: $(lun_field node1 vol0 mirrored_bytes) / $(lun_field node1 vol1 mirrored_bytes)"
check "sync lun: fio verify without error under the impaired network" test $r0 = 0
check "async lun: fio verify without error under the impaired network" test $r1 = 0
impair off
all_uptodate() { [ "$(ctl node1 status --json | jq -r '[.luns[].state] | unique | join(",")')" = uptodate ]; }
check "clean network: both luns up to date" wait_for 60 all_uptodate
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "backing files identical (vol0 and vol1)" \
	bash -c "cmp '$T_DIR/node1-vol0.img' '$T_DIR/node2-vol0.img' && cmp '$T_DIR/node1-vol1.img' '$T_DIR/node2-vol1.img'"
finish
