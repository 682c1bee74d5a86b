#!/bin/bash
# Storage-path heartbeat (doc/heartbeat.md) between two nodes in their own
# network namespaces joined by TWO links: the heartbeat network
# (10.205.0.x, UDP heartbeats) and the replication network (10.205.1.x,
# mirror connections, which carry the heartbeat-volume slots). Under a
# verifying write load: install refusals and a hot install; cutting only the
# UDP link (peer alive via storage, no journaling, promotion refused, agent
# scores the peer alive); a run-time method change (udp: the same cut now
# journals); cutting only the replication link (journaling, storage down,
# UDP up); uninstall/reinstall under load; killing the peer (both paths
# down, promotion allowed, agent scores the peer dead). No data lost.
. "$top_srcdir/tests/lib.sh"
plan 40

# ---- two links between two namespaces --------------------------------------
tag=$$
NS_node1="ipmsh${tag}a"; NS_node2="ipmsh${tag}b"
HB1="h${tag}a"; HB2="h${tag}b"; RP1="r${tag}a"; RP2="r${tag}b"
ip netns add "$NS_node1" && ip netns add "$NS_node2" || bail "cannot create namespaces"
T_NETNS="$NS_node1 $NS_node2"
ip link add "$HB1" type veth peer name "$HB2" && ip link add "$RP1" type veth peer name "$RP2" ||
	bail "cannot create veth pairs"
ip link set "$HB1" netns "$NS_node1"; ip link set "$HB2" netns "$NS_node2"
ip link set "$RP1" netns "$NS_node1"; ip link set "$RP2" netns "$NS_node2"
ip -n "$NS_node1" addr add 10.205.0.1/24 dev "$HB1"; ip -n "$NS_node2" addr add 10.205.0.2/24 dev "$HB2"
ip -n "$NS_node1" addr add 10.205.1.1/24 dev "$RP1"; ip -n "$NS_node2" addr add 10.205.1.2/24 dev "$RP2"
for ns in "$NS_node1" "$NS_node2"; do ip -n "$ns" link set lo up; done
ip -n "$NS_node1" link set "$HB1" up; ip -n "$NS_node2" link set "$HB2" up
ip -n "$NS_node1" link set "$RP1" up; ip -n "$NS_node2" link set "$RP2" up
N1_ADDR=10.205.1.1; N2_ADDR=10.205.1.2
hb_link() { ip -n "$NS_node1" link set "$HB1" "$1"; }
rep_link() { ip -n "$NS_node1" link set "$RP1" "$1"; }

PAIR_CONNS=2 PAIR_HB='interval="0.5" timeout="2.0" probation="3" method="both"' \
	pair_setup vol0:64M:sync:yes:node1
# UDP heartbeats on the other network; node1 declares its heartbeat volume
sed -i -e 's|<heartbeat address="10.205.1.1"|<heartbeat address="10.205.0.1"|' \
	-e 's|<heartbeat address="10.205.1.2"|<heartbeat address="10.205.0.2"|' \
	-e "s|<node name=\"node1\">|<node name=\"node1\"><heartbeat-volume path=\"$T_DIR/node1-hb.img\"/>|" \
	"$T_DIR/pair.xml"
"$IPMIRRORD" --check-config --config "$T_DIR/pair.xml" >"$T_DIR/check.out" 2>&1 ||
	bail "config refused: $(cat "$T_DIR/check.out")"
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

peer() { ctl "$1" status --json | jq -r ".peer.$2"; }
peer_is() { [ "$(peer "$1" "$2")" = "$3" ]; }
load_start 48M 150 --rate_iops=300

# ---- install: refusals, then a hot install under load ---------------------
truncate -s 4K "$T_DIR/small.img"
ctl node2 heartbeat install "$T_DIR/small.img" >"$T_DIR/out" 2>&1; rc=$?
check "install refuses a 4 KiB volume (exit 1, reason)" \
	bash -c "[ $rc = 1 ] && grep -q 'too small: 4096 bytes' '$T_DIR/out'"
ctl node2 heartbeat install "$T_DIR/node2-vol0.img" >"$T_DIR/out" 2>&1; rc=$?
check "install refuses a data LUN's backing (exit 1, reason)" \
	bash -c "[ $rc = 1 ] && grep -q 'is the backing of lun \"vol0\"' '$T_DIR/out'"
ctl node2 heartbeat method storage >"$T_DIR/out" 2>&1; rc=$?
check "method storage refused without a volume (exit 1, reason)" \
	bash -c "[ $rc = 1 ] && grep -q 'no heartbeat volume is installed' '$T_DIR/out'"
check "node2: storage heartbeat off before the install" peer_is node2 storage off
ctl node2 heartbeat install "$T_DIR/node2-hb.img" >"$T_DIR/out" 2>&1
check "hot install on node2 while writes run" test $? = 0
ctl node2 heartbeat install "$T_DIR/other-hb.img" >"$T_DIR/out" 2>&1; rc=$?
check "a second install is refused (exit 1, already installed)" \
	bash -c "[ $rc = 1 ] && grep -q 'already installed' '$T_DIR/out'"
both_storage_up() { peer_is node1 storage up && peer_is node2 storage up; }
check "storage heartbeat up on both nodes" wait_for 10 both_storage_up
s1=$(peer node2 storage_serial); sleep 2; s2=$(peer node2 storage_serial)
check "node2 reads node1's serial advancing from its local copy ($s1 -> $s2)" test "$s2" -gt "$s1"
check "node1's record landed in node2's copy of the volume (slot 0)" \
	bash -c "dd if='$T_DIR/node2-hb.img' bs=4096 count=1 2>/dev/null | grep -q node1"
check "the install left the data path alone (still up to date)" lun_state_is node1 vol0 uptodate

# ---- cut only the UDP heartbeat link -------------------------------------------
hb_link down
check "UDP cut: node2 sees udp down" wait_for 8 peer_is node2 udp down
check "UDP cut: reported as a heartbeat-network failure" peer_is node2 failure heartbeat-network
check "UDP cut: the peer is alive for method both" peer_is node2 heartbeat up
sleep 3
check "UDP cut: no journaling, the primary is still up to date" lun_state_is node1 vol0 uptodate
check "UDP cut: mirror connections stay up" connections_up node2 2
ctl node2 promote vol0 --dry-run >"$T_DIR/out" 2>&1; rc=$?
check "UDP cut: promotion on the mirror refused (heartbeat-network failure)" \
	bash -c "[ $rc = 1 ] && grep -q 'heartbeat-network failure is no reason to promote' '$T_DIR/out'"
mkdir -p "$T_DIR/shim"
printf '#!/bin/sh\necho "$*" >>"%s"\n' "$T_DIR/score.log" >"$T_DIR/shim/crm_attribute"
cp "$T_DIR/shim/crm_attribute" "$T_DIR/shim/crm_master"; chmod +x "$T_DIR/shim/"*
score() { # NODE: the promotion score the agent's monitor sets there
	: >"$T_DIR/score.log"
	HA_SBIN_DIR="$T_DIR/shim" OCF_ROOT=/usr/lib/ocf OCF_RESKEY_lun=vol0 \
		OCF_RESKEY_socket="ipm-$$-$1" OCF_RESKEY_ipmirrorctl="$IPMIRRORCTL" \
		OCF_RESKEY_CRM_meta_interval=11000 in_node "$1" "$top_srcdir/ocf/ipmirror" monitor \
		>>"$T_DIR/ra.log" 2>&1
	grep -o -- '-v [0-9]*' "$T_DIR/score.log" | tail -n1 | cut -d' ' -f2
}
sc=$(score node2)
check "UDP cut: the agent scores node2 as a mirror with its peer alive (100, got $sc)" test "$sc" = 100
grep -q "heartbeat network failure" "$T_DIR/n2.log"
check "UDP cut: the log says which path failed" test $? = 0
hb_link up
check "UDP back: no path failure" wait_for 10 peer_is node2 failure none

# ---- the method changes at run time ------------------------------------------------
ctl node1 heartbeat method udp >"$T_DIR/out" 2>&1 && ctl node2 heartbeat method udp >>"$T_DIR/out" 2>&1 &&
	peer_is node1 method udp
check "method udp set at run time on both nodes" test $? = 0
hb_link down
check "method udp: the same UDP cut now makes the primary journal" \
	wait_for 10 lun_state_is node1 vol0 journaling
hb_link up
check "method udp: resync after the UDP link returns" wait_for 40 lun_state_is node1 vol0 uptodate
ctl node1 heartbeat method both >"$T_DIR/out" 2>&1 && ctl node2 heartbeat method both >>"$T_DIR/out" 2>&1
check "method both again" test $? = 0
check "storage heartbeat up again after the resync" wait_for 10 peer_is node2 storage up

# ---- cut only the replication link ------------------------------------------------
rep_link down
check "replication cut: the primary journals" wait_for 10 lun_state_is node1 vol0 journaling
paths_are() { # NODE "heartbeat storage udp failure"
	[ "$(ctl "$1" status --json | jq -r '[.peer.heartbeat, .peer.storage, .peer.udp, .peer.failure] | join(" ")')" = "$2" ]
}
check "replication cut: peer up, storage down, UDP up, named as replication-network" \
	wait_for 6 paths_are node2 "up down up replication-network"
rep_link up
check "replication back: resync, up to date" wait_for 40 lun_state_is node1 vol0 uptodate

# ---- uninstall and reinstall under load --------------------------------------------
ctl node2 heartbeat uninstall >"$T_DIR/out" 2>&1 && peer_is node2 storage off
check "uninstall on node2 under load; storage off there" test $? = 0
ctl node2 heartbeat uninstall >"$T_DIR/out" 2>&1; rc=$?
check "a second uninstall is refused (exit 1)" \
	bash -c "[ $rc = 1 ] && grep -q 'no heartbeat volume is installed' '$T_DIR/out'"
ctl node2 heartbeat install "$T_DIR/node2-hb.img" >"$T_DIR/out" 2>&1 &&
	wait_for 10 peer_is node2 storage up
check "reinstall; storage up again" test $? = 0
check "the data path never noticed (up to date)" lun_state_is node1 vol0 uptodate

wait $fio_pid
check "fio: no verify error across all the cuts" test $? = 0
check "after the load: the primary up to date" wait_for 30 lun_state_is node1 vol0 uptodate

# ---- kill the peer: both paths go down, failover is allowed -------------------------
kill9 "$n1_pid"
check "peer killed: node2 sees both paths down" wait_for 8 paths_are node2 "down down down both"
ctl node2 promote vol0 --dry-run >"$T_DIR/out" 2>&1
check "peer dead: promotion allowed on the mirror (dry run)" test $? = 0
sc=$(score node2)
check "peer dead: the agent scores the mirror alone (10, got $sc)" test "$sc" = 10
check "failover: vol0 promoted on node2, fio --verify_only finds every block of the load there" \
	failover_verify load
check "no data lost: the mirror's copy of vol0 equals the dead primary's" \
	cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
