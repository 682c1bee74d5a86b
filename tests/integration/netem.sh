#!/bin/bash
# A lossy, slow network on the link that carries both heartbeats and data:
# 50 ms delay each way and 20% loss. Where the kernel has sch_netem, tc netem
# does both; else (this project's CI VM) the delay comes from a delay line
# in each namespace (tests/tools/delay_relay.py, traffic steered into it by
# nftables) and the loss from nftables. The delay is measured (a sync write
# and FLUSH take a round trip of >= 100 ms). Mirroring keeps going under the
# 20% loss with fio's verify seeing no error; then a burst that drops
# everything for 6 s (twice the heartbeat timeout) makes the primary journal
# and, once it ends, resync; once the network is clean again both backing
# files are byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 14

netns_pair || bail "cannot create network namespaces"
PAIR_HB='interval="0.5" timeout="3.0" probation="3"' pair_setup vol0:64M:sync:yes:node1 vol1:64M:async:yes:node1
RELAY="$top_srcdir/tests/tools/delay_relay.py"
MARK=0x4d

# the delay: tc netem where the kernel has it, else the delay lines
if ip netns exec "$NS_node1" tc qdisc add dev "$VETH1" root netem delay 50ms 2>/dev/null; then
	DELAY=netem
	ip netns exec "$NS_node2" tc qdisc add dev "$VETH2" root netem delay 50ms
	diag "tc netem: 50 ms delay on both ends"
else
	DELAY=relay
	# relay NODE MODE PORT TARGET-ADDR TARGET-PORT: a delay line in NODE's namespace
	relay() {
		local a ns; a=$(eval echo "\$N${1#node}_ADDR"); ns=$(eval echo "\$NS_$1")
		# ip netns exec execs timeout, which passes the stop on: $! is timeout's
		ip netns exec "$ns" timeout -k 5 "$T_LIMIT" /usr/bin/python3 "$RELAY" "$2" "$a" "$3" "$4" "$5" \
			50 "$MARK" "$T_LIMIT" >"$T_DIR/relay-$1-$2.out" 2>&1 &
		T_PIDS="$T_PIDS $!"
		eval "relay_${1}_$2=$!"
		wait_for 10 grep -q ready "$T_DIR/relay-$1-$2.out"
	}
	# steer NODE PROTO DST-ADDR DST-PORT RELAY-PORT: the node's own traffic to
	# DST goes through its relay (the relay's marked sockets go straight on)
	steer() {
		local a; a=$(eval echo "\$N${1#node}_ADDR")
		in_node "$1" nft add rule ip ipmdelay out meta mark != "$MARK" ip daddr "$3" "$2" dport "$4" \
			dnat to "$a:$5"
	}
	for n in node1 node2; do
		in_node "$n" nft add table ip ipmdelay &&
			in_node "$n" nft add chain ip ipmdelay out '{ type nat hook output priority -100; }' ||
			bail "nftables nat is missing"
	done
	# data connections are dialled by node1: one relay delays both directions
	relay node1 tcp 17001 "$N2_ADDR" "$N2_DATA" && steer node1 tcp "$N2_ADDR" "$N2_DATA" 17001 &&
		relay node1 udp 17002 "$N2_ADDR" "$N2_HB" && steer node1 udp "$N2_ADDR" "$N2_HB" 17002 &&
		relay node2 udp 17002 "$N1_ADDR" "$N1_HB" && steer node2 udp "$N1_ADDR" "$N1_HB" 17002 ||
		bail "the delay lines did not start: $(cat "$T_DIR"/relay-*.out)"
	diag "this kernel has no sch_netem: 50 ms delay lines (TCP both ways, UDP on each end) in the namespaces"
fi
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "mirroring is up through the delay" wait_for 30 lun_state_is node1 vol0 uptodate

# a sync write and FLUSH wait for the mirror: at least one round trip
rt=$(in_node node1 timeout 30 nbdsh -u "nbd://$N1_ADDR:$N1_NBD/vol0" -c '
import time
h.pwrite(b"d" * 4096, 0)
t = time.time(); h.pwrite(b"e" * 4096, 4096); h.flush(); print("%d" % ((time.time() - t) * 1000))')
check "the delay is in place: a sync write and flush take ${rt:-?} ms (>= 100)" test "${rt:-0}" -ge 100

# the loss: netem where it exists, else nftables; bursts always nftables
loss() { # on|off PERCENT
	local n ns dev
	for n in 1 2; do
		ns=$(eval echo "\$NS_node$n"); dev=$(eval echo "\$VETH$n")
		if [ "$1" = on ]; then
			ip netns exec "$ns" nft add table inet ipmloss
			ip netns exec "$ns" nft add chain inet ipmloss out '{ type filter hook output priority 0; }'
			if [ "$2" = 100 ]; then
				ip netns exec "$ns" nft add rule inet ipmloss out oifname "$dev" drop
			else
				ip netns exec "$ns" nft add rule inet ipmloss out oifname "$dev" numgen random mod 100 '<' "$2" drop
			fi
		else
			ip netns exec "$ns" nft delete table inet ipmloss
		fi
	done
}
loss on 20
loss=$(in_node node1 ping -q -c 100 -i 0.01 -W 1 "$N2_ADDR" | sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p')
check "the loss is in place: ping loses ${loss:-?}% (20% each way)" \
	test "${loss%.*}" -ge 15 -a "${loss%.*}" -le 70
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" sync --size=8M \
	--time_based --runtime=25 --iodepth=8 &
f0=$!
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol1" async --size=8M \
	--time_based --runtime=25 --iodepth=8 &
f1=$!
wait $f0; r0=$?
wait $f1; r1=$?
diag "mirrored bytes under 20% loss: $(lun_field node1 vol0 mirrored_bytes) / $(lun_field node1 vol1 mirrored_bytes); vol0 $(lun_field node1 vol0 state)"
check "sync lun: fio verify without error under the impaired network" test $r0 = 0
check "async lun: fio verify without error under the impaired network" test $r1 = 0
loss off

# a burst that outlasts the heartbeat timeout (3 s) under a verifying load
check "before the burst: vol0 up to date again" wait_for 60 lun_state_is node1 vol0 uptodate
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" burst --size=8M \
	--time_based --runtime=20 --iodepth=8 &
f2=$!
field_grows node1 vol0 mirrored_bytes
lun_watch node1 vol0 6 "$T_DIR/burst.states" &
w=$!
loss on 100
wait "$w"
diag "vol0 during the burst: $(sort "$T_DIR/burst.states" | cut -d' ' -f1 | uniq -c | tr '\n' ' ')"
check "a 6 s burst of total loss trips the heartbeat timeout: the primary journals" \
	grep -q '^journaling ' "$T_DIR/burst.states"
check "the journal holds the writes made during the burst" field_above node1 vol0 journal_bytes 0
loss off
check "after the burst: resync, the primary up to date with an empty journal" \
	wait_for 60 eval 'lun_state_is node1 vol0 uptodate && [ "$(lun_field node1 vol0 journal_bytes)" = 0 ]'
wait $f2
check "fio verify without error across the burst and the resync" test $? = 0

all_uptodate() { [ "$(ctl node1 status --json | jq -r '[.luns[].state] | unique | join(",")')" = uptodate ]; }
check "clean network (the delay stays): both luns up to date" wait_for 60 all_uptodate
stop_pid "$n1_pid"
check "failover: both luns promoted on node2, fio --verify_only finds every block written there" \
	eval 'failover_verify burst vol0 && failover_verify async vol1'
stop_pid "$n2_pid"
check "backing files identical (vol0 and vol1)" \
	bash -c "cmp '$T_DIR/node1-vol0.img' '$T_DIR/node2-vol0.img' && cmp '$T_DIR/node1-vol1.img' '$T_DIR/node2-vol1.img'"
if [ "$DELAY" = relay ]; then
	for r in "$relay_node1_tcp" "$relay_node1_udp" "$relay_node2_udp"; do stop_pid "$r"; done
	diag "delay lines: $(cat "$T_DIR"/relay-*.out | grep delayed | tr '\n' ' ')"
fi
finish
