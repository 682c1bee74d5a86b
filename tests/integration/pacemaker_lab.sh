#!/bin/bash
# ocf:ipmirror:ipmirror on a real two-node Corosync + Pacemaker cluster (the
# lab of tests/lab): pcs creates the promotable resource, the cluster starts
# ipmirrord through the agent on both nodes and promotes exactly one of them,
# crm_mon -A shows the daemon's node attributes, 16 MiB written through NBD on
# the Promoted node read back unchanged on the other node after moving the
# Promoted role there (crm_resource --ban --promoted), the failover time is
# reported, the role stays put (no flapping: every role change restarts the
# daemon's engine and briefly flaps the peer's heartbeat state and the
# promotion scores) also after the ban is cleared, and `lab down` leaves
# nothing behind. T_KEEP=1 keeps $T_DIR: lab/nodeN/log, ipmirrord.log.
#
# The agent is made visible as /usr/lib/ocf/resource.d/ipmirror/ipmirror
# inside each node's private mount namespace only: a copy of resource.d
# (bind mounts of the host's provider directories plus ours) is bind-mounted
# over it there. The host's /usr is not touched.
T_LIMIT=${T_LIMIT:-1800}  # a whole cluster comes up and goes down
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

LAB_TAG=ipmpl
. "$top_srcdir/tests/lab/cluster.sh"

plan 17
cluster_start
# every role change restarts the engine and flaps the peer's heartbeat
# state: the scores must not make Pacemaker move the role back and forth
check "the roles stay put for 20 s (no flapping between the nodes)" stays 20 "$P/$Q"

# ---- 4. node attributes --------------------------------------------------------
if within 30 attrs_ok && within 30 both_uptodate; then
	ok "crm_mon -1 -A: ipmirror-vol0-state uptodate on both nodes, ipmirror-peer up"
else
	not_ok "crm_mon -1 -A: ipmirror-vol0-state uptodate on both nodes, ipmirror-peer up"
	dump_logs
fi
scores_ok() { [ "$(attr "$P" master-vol0)/$(attr "$Q" master-vol0)" = 110/100 ]; }
check "promotion scores: 110 on the Promoted node, 100 on the Unpromoted one (consistent, peer up)" \
	within 30 scores_ok

# ---- 5. data through NBD, then move the Promoted role ----------------------------
head -c $((16 << 20)) /dev/urandom >"$T_DIR/data.bin"
check "nbdcopy writes 16 MiB through NBD on the Promoted node $P" \
	lab exec "$P" timeout 60 nbdcopy --flush "$T_DIR/data.bin" "nbd://$(addr_of "$P"):10809/vol0"

t0=$(date +%s.%N)
lab exec node1 timeout 30 crm_resource --ban --promoted --resource vol0-clone --node "$P" \
	>"$T_DIR/ban.out" 2>&1
check "crm_resource --ban --promoted --resource vol0-clone --node $P" test $? = 0
if within 60 roles_are "$Q" "$P"; then
	t1=$(date +%s.%N)
	FAILOVER=$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")
	ok "$Q is Promoted and $P Unpromoted after the ban (failover ${FAILOVER} s)"
	diag "failover time, ban to crm_mon showing $Q Promoted: ${FAILOVER} s"
	t2=$(promoted_at "$Q") &&
		diag "failover time, ban to the promote on $Q done (its pacemaker.log): $(awk "BEGIN { printf \"%.1f\", $t2 - $t0 }") s"
else
	not_ok "$Q is Promoted and $P Unpromoted after the ban"; dump_logs
fi

rm -f "$T_DIR/back.bin"
lab exec "$Q" timeout 60 nbdcopy "nbd://$(addr_of "$Q"):10809/vol0" "$T_DIR/back.bin" \
	>"$T_DIR/read.out" 2>&1
check "the 16 MiB read back through NBD on the new Promoted node $Q are identical" \
	cmp -n $((16 << 20)) "$T_DIR/data.bin" "$T_DIR/back.bin"
lab exec "$P" timeout 30 nbdinfo "nbd://$(addr_of "$P"):10809/vol0" >"$T_DIR/guard.out" 2>&1
RC=$?
check "the old Promoted node $P now refuses NBD opens of vol0" test "$RC" != 0

# ---- 6. clear the ban, take the lab down ------------------------------------------
# Pacemaker may move the Promoted role back once the ban is gone: let it
# settle, then the data must be there on whichever node is Promoted.
lab exec node1 timeout 30 crm_resource --clear --resource vol0-clone >"$T_DIR/clear.out" 2>&1
lab exec node1 timeout 90 crm_resource --wait --timeout 60s >>"$T_DIR/clear.out" 2>&1
check "ban cleared: no cli-ban constraint left, $Q stays Promoted (no move back) for 15 s" \
	eval '! lab exec node1 timeout 10 cibadmin -Q -o constraints | grep -q cli-ban && stays 15 "$Q/$P"'
R=$(role_nodes Promoted)
diag "after clearing the ban and settling: Promoted ${R:-none}"
rm -f "$T_DIR/back2.bin"
[ -z "$R" ] || lab exec "$R" timeout 60 nbdcopy "nbd://$(addr_of "$R"):10809/vol0" "$T_DIR/back2.bin" \
	>"$T_DIR/read2.out" 2>&1
check "the 16 MiB are still identical on the Promoted node ${R:-none} after settling" \
	cmp -n $((16 << 20)) "$T_DIR/data.bin" "$T_DIR/back2.bin"

procs=$(ns_procs "$IPM_LAB_NS-n1" "$IPM_LAB_NS-n2")
diag "lab processes: $(echo "$procs" | wc -w)"
left() { procs_left "$procs"; }
t0=$SECONDS
lab down >"$T_DIR/down.log" 2>&1
check "lab down ($((SECONDS - t0)) s)" test $? = 0
if [ -z "$(left)" ] && [ ! -e "/run/netns/$IPM_LAB_NS-n1" ] && [ ! -e "/run/netns/$IPM_LAB_NS-n2" ] &&
	! pgrep -f -- "--config $CFG" >/dev/null; then
	ok "nothing left: no lab process, no ipmirrord of this test, no namespace"
else
	not_ok "nothing left: no lab process, no ipmirrord of this test, no namespace"
	diag "left: $(left | tr '\n' ' ') $(pgrep -f -- "--config $CFG" | tr '\n' ' ')"
fi
check "no mount left on the host, no agent installed on the host" \
	eval '! grep -e "$T_DIR" -e "$IPM_LAB_NS" /proc/self/mountinfo && test ! -e /usr/lib/ocf/resource.d/ipmirror'
diag "total runtime: $((SECONDS - T_START)) s"
finish
