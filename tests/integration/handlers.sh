#!/bin/bash
# <handlers> (doc/events.md) on two daemons in network namespaces: a handler
# script appends its event and environment to a file per node; each event
# fires it once with the right environment: peer-lost (link cut, both
# nodes), fenced (node1 in cluster mode with a stand-in fence handler),
# resync-start and resync-done (link healed), role-change (demote node1,
# promote node2), split-brain (both nodes), local-io-error (node1's backing
# fails a read, served from node2's copy: tests/tools/eio.c). A handler that hangs is killed at the
# timeout and logged, while host writes go on meanwhile.
# the split brain and the forced demotion that make it are logged as crit
T_LOG_ALLOW='crit: lun vol0: (SPLIT BRAIN|FORCED demotion against the safety check)'
. "$top_srcdir/tests/lib.sh"
plan 21

netns_pair || bail "cannot create network namespaces"
pair_setup vol0:64M:sync:yes:node1
H="$T_DIR/handler.sh"
cat >"$H" <<EOF
#!/bin/sh
# one line per run: the event, its arguments, the IPMIRROR_ environment
echo "run \$* \$(env | grep '^IPMIRROR_' | sort | tr '\n' ' ')" >>"$T_DIR/h-\$IPMIRROR_NODE"
# peer-lost hangs: the daemon kills it at the timeout
[ "\$IPMIRROR_EVENT" != peer-lost ] || sleep 30
exit 0
EOF
cat >"$T_DIR/fence.sh" <<EOF
#!/bin/sh
echo "\$*" >>"$T_DIR/fence.log"
EOF
chmod +x "$H" "$T_DIR/fence.sh"
ev="split-brain resync-start resync-done local-io-error peer-lost fenced role-change"
attrs=$(for e in $ev; do printf '%s="%s" ' "$e" "$H"; done)
sed -i "s|<log level=\"info\"/>|&\n  <handlers timeout=\"3\" $attrs/>|" "$T_DIR/pair.xml"
# node1 in cluster mode (its fencing feeds "fenced"); attrd_updater finds no
# cluster and publishes nothing
IPMIRROR_FENCE_HANDLER="$T_DIR/fence.sh" EIO_PATH=node1-vol0.img EIO_FLAG="$T_DIR/eio-on" \
	LD_PRELOAD="$top_builddir/tests/tools/.libs/eio.so" node_start node1 --attributes ||
	bail "node1 did not start: $(cat "$T_DIR/n1.log")"
node_start node2 || bail "node2 did not start: $(cat "$T_DIR/n2.log")"
check "mirroring is up" wait_for 20 lun_state_is node2 vol0 uptodate
sleep 1.5
: >"$T_DIR/h-node1"; : >"$T_DIR/h-node2"

# runs NODE EVENT: how many runs of EVENT NODE's file holds
runs() { grep -c "^run $2 " "$T_DIR/h-$1"; }
# ran NODE EVENT...: each event ran at least once on NODE (handlers run one
# at a time: one may wait for a hanging one's timeout)
ran() { local n="$1" e; shift; for e in "$@"; do [ "$(runs "$n" "$e")" -ge 1 ] || return 1; done; }
# env_has NODE EVENT NAME=VALUE...: its (one) run had these
env_has() {
	local n="$1" e="$2" line; shift 2
	line=$(grep "^run $e " "$T_DIR/h-$n") || return 1
	for kv in "$@"; do grep -q " $kv " <<<"$line " || { diag "$n $e: no $kv in: $line"; return 1; }; done
}

# ---- local-io-error -----------------------------------------------------
touch "$T_DIR/eio-on"
in_node node1 timeout 10 qemu-io -f raw "nbd://$N1_ADDR:$N1_NBD/vol0" -c 'read 0 64k' \
	>"$T_DIR/eio.out" 2>&1
rm -f "$T_DIR/eio-on"
# a read the backing fails is served from node2's copy (doc/io-errors.md)
check "a read of node1's failing backing is served from node2's copy" \
	eval '! grep -qi error "$T_DIR/eio.out" && grep -q "served from node2" "$T_DIR/n1.log"'
wait_for 10 ran node1 local-io-error
sleep 1
once() { [ "$(runs "$1" "$2")" = 1 ]; }
check "local-io-error fired once on node1 ($(runs node1 local-io-error))" once node1 local-io-error
check "its environment: the LUN, the node, its state and role" \
	env_has node1 local-io-error IPMIRROR_EVENT=local-io-error IPMIRROR_LUN=vol0 \
		IPMIRROR_NODE=node1 IPMIRROR_STATE=uptodate IPMIRROR_ROLE=primary
check "status counts it: local_io_errors >= 1" \
	test "$(ctl node1 status vol0 --get local_io_errors)" -ge 1

# ---- peer-lost, fenced --------------------------------------------------
link_down
wait_for 10 bash -c "[ \$(grep -c '^run peer-lost ' '$T_DIR/h-node1') -ge 1 ] && [ \$(grep -c '^run peer-lost ' '$T_DIR/h-node2') -ge 1 ]"
t0=$(date +%s.%N)
in_node node1 timeout 10 qemu-io -f raw "nbd://$N1_ADDR:$N1_NBD/vol0" -c 'write -P 0x5a 0 8M' >/dev/null
t1=$(date +%s.%N)
check "host writes go on while the peer-lost handler hangs ($(echo "$t1 - $t0" | bc) s for 8M)" \
	test "$(echo "$t1 - $t0 < 2" | bc)" = 1
check "the hanging handler is killed at the 3 s timeout and logged" \
	wait_for 10 grep -q 'handler peer-lost (lun -): .* killed after 3 s' "$T_DIR/n1.log"
check "fenced fires once on node1 (its fence handler ran: $(head -n1 "$T_DIR/fence.log" 2>/dev/null))" \
	wait_for 10 bash -c "[ \$(grep -c '^run fenced ' '$T_DIR/h-node1') = 1 ]"
check "its environment: lun, node, peer, state, role" env_has node1 fenced IPMIRROR_EVENT=fenced \
	IPMIRROR_LUN=vol0 IPMIRROR_NODE=node1 IPMIRROR_PEER=node2 IPMIRROR_STATE=journaling \
	IPMIRROR_ROLE=primary
sleep 1
check "peer-lost fired once on each node" bash -c "[ $(runs node1 peer-lost) = 1 ] && [ $(runs node2 peer-lost) = 1 ]"
lost_env() {
	env_has node1 peer-lost IPMIRROR_EVENT=peer-lost IPMIRROR_LUN= IPMIRROR_NODE=node1 \
		IPMIRROR_PEER=node2 IPMIRROR_STATE=down IPMIRROR_PEER_HEARTBEAT=down &&
	env_has node2 peer-lost IPMIRROR_NODE=node2 IPMIRROR_PEER=node1 IPMIRROR_STATE=down
}
check "peer-lost's environment: no LUN, the node, the peer, state down" lost_env

# ---- resync-start, resync-done -----------------------------------------
link_up
check "the link heals: up to date" wait_for 40 lun_state_is node1 vol0 uptodate
wait_for 20 lun_state_is node2 vol0 uptodate
wait_for 10 ran node1 resync-start resync-done; wait_for 10 ran node2 resync-done
sleep 1.5
check "resync-start and resync-done fired once on node1 ($(runs node1 resync-start), $(runs node1 resync-done))" \
	bash -c "[ $(runs node1 resync-start) = 1 ] && [ $(runs node1 resync-done) = 1 ]"
resync_env() {
	env_has node1 resync-start IPMIRROR_STATE=resyncing IPMIRROR_OLD_STATE=probation \
		IPMIRROR_ROLE=primary IPMIRROR_LUN=vol0 &&
	env_has node1 resync-done IPMIRROR_STATE=uptodate IPMIRROR_OLD_STATE=resyncing &&
	grep -q '^run resync-done vol0 ' "$T_DIR/h-node1"
}
check "their environment: states, old states, role, arguments" resync_env
check "resync-done fired once on node2 ($(runs node2 resync-done))" test "$(runs node2 resync-done)" = 1

# ---- role-change -------------------------------------------------------
out=$(ctl node1 demote vol0 2>&1) || diag "demote: $out"
wait_for 20 ctl node2 promote vol0 || diag "promote: $(ctl node2 promote vol0 2>&1)"
wait_for 20 lun_state_is node2 vol0 uptodate
wait_for 10 ran node1 role-change; wait_for 10 ran node2 role-change
sleep 1.5
check "role-change fired once on each node ($(runs node1 role-change), $(runs node2 role-change))" \
	bash -c "[ $(runs node1 role-change) = 1 ] && [ $(runs node2 role-change) = 1 ]"
role_env() {
	env_has node1 role-change IPMIRROR_ROLE=mirror IPMIRROR_OLD_ROLE=primary IPMIRROR_LUN=vol0 &&
	env_has node2 role-change IPMIRROR_ROLE=primary IPMIRROR_OLD_ROLE=mirror
}
check "role-change's environment: the new role and the old" role_env
check "a role change's fresh engine is no peer-lost (still 1 on each node)" \
	bash -c "[ $(runs node1 peer-lost) = 1 ] && [ $(runs node2 peer-lost) = 1 ]"

# ---- split-brain (as splitbrain.sh makes one, roles swapped) -------------
link_down
wait_for 15 lun_state_is node2 vol0 journaling
in_node node2 timeout 10 qemu-io -f raw "nbd://$N2_ADDR:$N2_NBD/vol0" -c 'write -P 0x11 0 1M' >/dev/null
wait_for 15 lun_state_is node1 vol0 outdated
ctl node1 promote vol0 --force >/dev/null 2>&1
in_node node1 timeout 10 qemu-io -f raw "nbd://$N1_ADDR:$N1_NBD/vol0" -c 'write -P 0x22 0 1M' >/dev/null
ctl node1 demote vol0 --force >/dev/null 2>&1
link_up
wait_for 30 lun_state_is node1 vol0 splitbrain && wait_for 30 lun_state_is node2 vol0 splitbrain
wait_for 10 ran node1 split-brain; wait_for 10 ran node2 split-brain
sleep 1.5
check "split-brain fired once on each node ($(runs node1 split-brain), $(runs node2 split-brain))" \
	bash -c "[ $(runs node1 split-brain) = 1 ] && [ $(runs node2 split-brain) = 1 ]"
sb_env() {
	env_has node1 split-brain IPMIRROR_STATE=splitbrain IPMIRROR_LUN=vol0 IPMIRROR_PEER=node2 &&
	env_has node2 split-brain IPMIRROR_STATE=splitbrain IPMIRROR_ROLE=primary
}
check "split-brain's environment" sb_env
finish
