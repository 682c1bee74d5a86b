#!/bin/bash
# The quorum check of promote on the real lab, with corosync's two_node off
# (IPM_LAB_TWO_NODE=0): a node alone in its partition has no quorum. Two
# daemons run inside the lab nodes (no Pacemaker resource); node1 demotes
# cleanly so node2 may be promoted (dry run: allowed while quorate). Cutting
# the cluster link (the replication link stays up) takes quorum away:
# `ipmirrorctl promote` on node2 is refused naming the lost quorum, --force
# promotes anyway with a LOG_CRIT line; after the heal the check passes again.
# T_KEEP=1 keeps $T_DIR.
T_LIMIT=${T_LIMIT:-1800}  # a whole cluster comes up and goes down
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

LAB_TAG=ipmqu
. "$top_srcdir/tests/lab/cluster.sh"
command -v corosync-quorumtool >/dev/null 2>&1 || { echo "1..0 # SKIP corosync-quorumtool not installed"; exit 0; }

plan 11
export IPM_LAB_TWO_NODE=0
cluster_env      # names, cleanup trap, helpers (lab, within)
cluster_config   # $CFG: data and heartbeat on 10.203.1.x; no Pacemaker resource here
quorate() { lab exec "$1" timeout 10 corosync-quorumtool -s 2>/dev/null | grep -Eq "^Quorate: +$2"; }
qctl() { local n="$1"; shift; lab exec "$n" timeout 30 "$IPMIRRORCTL" --socket "$LAB_TAG" "$@"; }
role_state() { qctl "$1" status vol0 --json | jq -r '.luns[0] | "\(.role)/\(.state)"'; }
is() { [ "$(role_state "$1")" = "$2" ]; }
role_is() { [ "$(role_state "$1" | cut -d/ -f1)" = "$2" ]; }

t0=$SECONDS
if lab up >"$T_DIR/up.log" 2>&1; then
	ok "lab up with two_node: 0 ($((SECONDS - t0)) s)"
else
	not_ok "lab up with two_node: 0"; sed 's/^/# /' "$T_DIR/up.log"
	bail "the lab did not come up"
fi
check "both partitions quorate, corosync.conf has two_node: 0" \
	eval 'within 30 quorate node1 Yes && within 30 quorate node2 Yes &&
		lab exec node2 grep -q "two_node: 0" /etc/corosync/corosync.conf'

for n in node1 node2; do
	lab exec "$n" "$IPMIRRORD" --config "$CFG" --node "$n" --socket "$LAB_TAG" >"$T_DIR/start-$n.out" 2>&1 ||
		bail "ipmirrord did not start in $n: $(cat "$T_DIR/start-$n.out")"
done
check "daemons in both nodes, node2 an up-to-date mirror of node1" within 30 is node2 mirror/uptodate

OUT=$(qctl node1 demote vol0 2>&1)
check "node1 demotes cleanly ($OUT)" within 20 role_is node1 mirror
OUT=$(qctl node2 promote vol0 --dry-run 2>&1)
RC=$?
diag "quorate, node2 promote --dry-run: exit $RC: $OUT"
check "quorate: node2 may be promoted (dry run exit 0)" eval 'test $RC = 0 && echo "$OUT" | grep -q "can be promoted"'

t0=$SECONDS
lab cut cluster
check "cluster link cut: both nodes have lost quorum ($((SECONDS - t0)) s), the replication link is still up" \
	eval 'within 60 quorate node2 No && within 30 quorate node1 No && lab exec node2 ping -c1 -W2 10.203.1.1 >/dev/null'
OUT=$(qctl node2 promote vol0 2>&1)
RC=$?
diag "without quorum, node2 promote: exit $RC: $OUT"
check "promote refused without quorum (exit 1), the reason names it, node2 still mirror" \
	eval 'test $RC = 1 && echo "$OUT" | grep -q "partition has no quorum" && is node2 mirror/outdated'
OUT=$(qctl node2 promote vol0 --force 2>&1)
RC=$?
diag "without quorum, node2 promote --force: exit $RC: $OUT"
check "promote --force overrides (exit 0, forced), logged as FORCED with the quorum reason" \
	eval 'test $RC = 0 && echo "$OUT" | grep -q forced && within 10 role_is node2 primary &&
		grep -q "FORCED promotion.*partition has no quorum" "$T_DIR/ipmirrord.log"'

t0=$SECONDS
lab heal cluster
check "healed: node1 quorate again ($((SECONDS - t0)) s)" within 60 quorate node1 Yes
# node1 is a mirror again: refused because node2 is primary, not for quorum
refused_for_primary() {
	OUT=$(qctl node1 promote vol0 --dry-run 2>&1)
	[ $? = 1 ] && echo "$OUT" | grep -q "demote it there first"
}
check "quorate again: node1's promote passes the quorum check (refused only as node2 is primary)" \
	within 30 refused_for_primary
diag "node1 promote --dry-run: $OUT"

cluster_finish
