#!/bin/bash
# The two-node Corosync + Pacemaker lab (tests/lab/lab): both nodes come up
# Online in their own namespaces, commands run inside a chosen node, a node
# attribute set on node1 reaches node2, cutting the link makes node1 see node2
# OFFLINE/UNCLEAN, healing brings both back, and `down` leaves no namespace,
# process or mount behind (and may be repeated).
T_LIMIT=${T_LIMIT:-1800}  # a whole cluster comes up and goes down
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

LAB="$top_srcdir/tests/lab/lab"
for c in corosync pacemakerd crm_mon attrd_updater unshare nsenter ip; do
	command -v "$c" >/dev/null 2>&1 || { echo "1..0 # SKIP $c not installed"; exit 0; }
done
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root"; exit 0; }
lab_lock

plan 14

# names of our own, so a lab someone left up does not get in the way
export IPM_LAB_DIR="$T_DIR/lab" IPM_LAB_NS="ipt$(($$ % 100000))" IPM_LAB_TIMEOUT=90
trap '"$LAB" down >/dev/null 2>&1; t_cleanup' EXIT

host_uts=$(uname -n)
# shellcheck disable=SC2034 # used in an eval below
host_conf=$(cksum </etc/corosync/corosync.conf 2>/dev/null)

lab() { "$LAB" "$@"; }
# mon NODE: crm_mon -1 [-A] as seen from NODE, bounded
mon() { local n="$1"; shift; lab exec "$n" timeout 10 crm_mon -1 "$@" 2>/dev/null; }
both_online() { mon "$1" | grep -q '^  \* Online: \[ node1 node2 \]$'; }
node2_lost() { mon node1 | grep -Eq '^  \* OFFLINE: \[ node2 \]$|^  \* Node node2: UNCLEAN'; }
attr_seen() { mon node2 -A | grep -A1 '^  \* Node: node1:' | grep -Eq 'ipmlab-test[[:space:]]*: 42\b'; }

t0=$SECONDS
if lab up >"$T_DIR/up.log" 2>&1; then
	ok "lab up ($((SECONDS - t0)) s)"
else
	not_ok "lab up"; sed 's/^/# /' "$T_DIR/up.log"
	bail "the lab did not come up; logs in $IPM_LAB_DIR/node*/log (T_KEEP=1 keeps them)"
fi
diag "$(tail -1 "$T_DIR/up.log")"

check "node1 sees node1 and node2 Online" both_online node1
check "node2 sees node1 and node2 Online" both_online node2
check "exec node2 uname -n prints node2" test "$(lab exec node2 uname -n)" = node2
check "exec node1 uname -n prints node1, the host name is unchanged" \
	test "$(lab exec node1 uname -n) $(uname -n)" = "node1 $host_uts"
check "each node has its own PID namespace whose PID 1 is its lab init" \
	eval 'lab exec node1 cat /proc/1/cmdline | grep -aq "__init.node1" &&
		lab exec node2 cat /proc/1/cmdline | grep -aq "__init.node2"'
check "/var/lib/pacemaker/cib inside node1 is hacluster:haclient, corosync.conf has two_node" \
	test "$(lab exec node1 stat -c %U:%G /var/lib/pacemaker/cib) $(lab exec node1 grep -c 'two_node: 1' /etc/corosync/corosync.conf)" = "hacluster:haclient 1"

t0=$SECONDS
if lab exec node1 attrd_updater -n ipmlab-test -U 42 && within 20 attr_seen; then
	ok "attribute set on node1 is shown by crm_mon -1 -A on node2 ($((SECONDS - t0)) s)"
else
	not_ok "attribute set on node1 is shown by crm_mon -1 -A on node2"
	mon node2 -A | sed 's/^/# /'
fi

t0=$SECONDS
lab cut
if within 60 node2_lost; then
	ok "after cut node1 reports node2 OFFLINE/UNCLEAN ($((SECONDS - t0)) s)"
else
	not_ok "after cut node1 reports node2 OFFLINE/UNCLEAN"; mon node1 | sed 's/^/# /'
fi

t0=$SECONDS
lab heal
if within 60 both_online node1 && within 20 both_online node2; then
	ok "after heal both nodes see both Online ($((SECONDS - t0)) s)"
else
	not_ok "after heal both nodes see both Online"; mon node1 | sed 's/^/# /'
fi

# every process of the lab, with its start time, to tell it from PID reuse
procs=$(ns_procs "$IPM_LAB_NS-n1" "$IPM_LAB_NS-n2")
diag "lab processes: $(echo "$procs" | wc -w)"
# left: the lab processes still alive
left() { procs_left "$procs"; }
lab_gone() {
	[ -z "$(left)" ] && [ ! -e "/run/netns/$IPM_LAB_NS-n1" ] && [ ! -e "/run/netns/$IPM_LAB_NS-n2" ]
}

t0=$SECONDS
check "lab down" lab down
diag "down took $((SECONDS - t0)) s"
if lab_gone; then
	ok "no lab process or namespace left"
else
	not_ok "no lab process or namespace left"
	diag "left: $(left | tr "\n" " ")"
	for f in /run/netns/"$IPM_LAB_NS"-*; do [ ! -e "$f" ] || diag "netns left: $f"; done
fi
check "no mount left on the host, host corosync.conf untouched" \
	eval '! grep -e "$IPM_LAB_NS" -e "$T_DIR" -e lab-run -e lab-shm /proc/self/mountinfo &&
		test "$(cksum </etc/corosync/corosync.conf 2>/dev/null)" = "$host_conf"'
check "lab down again succeeds and exec fails cleanly" \
	eval 'lab down && ! lab exec node1 true 2>/dev/null'

finish
