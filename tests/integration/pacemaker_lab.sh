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
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

LAB="$top_srcdir/tests/lab/lab"
for c in corosync pacemakerd crm_mon crm_resource pcs nbdcopy nbdinfo unshare nsenter ip; do
	command -v "$c" >/dev/null 2>&1 || { echo "1..0 # SKIP $c not installed"; exit 0; }
done
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root"; exit 0; }
[ -d /usr/lib/ocf/resource.d ] || { echo "1..0 # SKIP no /usr/lib/ocf/resource.d"; exit 0; }

plan 17

export IPM_LAB_DIR="$T_DIR/lab" IPM_LAB_NS="ipmpl$(($$ % 10000))" IPM_LAB_TIMEOUT=90
trap '"$LAB" down >/dev/null 2>&1; t_cleanup' EXIT
T_START=$SECONDS

lab() { "$LAB" "$@"; }
# within N command...: retry every 0.5 s until it succeeds, at most N s of wall clock
within() {
	local end=$((SECONDS + $1)); shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.5
	done
}
mon() { local n="$1"; shift; lab exec "$n" timeout 10 crm_mon -1 "$@" 2>/dev/null; }
addr_of() { echo "10.203.0.${1#node}"; }

# roles: "PROMOTED/UNPROMOTED" for vol0-clone as crm_mon on node1 lists
# them, e.g. "node1/node2" (one crm_mon, so both halves are from one moment)
roles() {
	local out p u try
	# crm_mon -1 can fail for a moment (a CIB update, a loaded host): ask again
	for try in 1 2 3 4 5; do
		out=$(mon node1 | sed -n '/Clone Set: vol0-clone/,/^  \* [^ ]/p')
		[ -n "$out" ] && break
		sleep 0.5
	done
	p=$(echo "$out" | sed -n 's/^ *\* Promoted: \[ \(.*\) \]$/\1/p')
	u=$(echo "$out" | sed -n 's/^ *\* Unpromoted: \[ \(.*\) \]$/\1/p')
	echo "$p/$u"
}
role_nodes() { local r; r=$(roles); [ "$1" = Promoted ] && echo "${r%/*}" || echo "${r#*/}"; }
# roles_are P U: exactly P is Promoted and exactly U is Unpromoted
roles_are() { [ "$(roles)" = "$1/$2" ]; }
one_each() { case "$(roles)" in node1/node2 | node2/node1) return 0 ;; esac; return 1; }
# promoted_at NODE: time (epoch s) of NODE's last successful promote, from its pacemaker.log
promoted_at() {
	local ts
	ts=$(grep "Result of promote operation for vol0 on $1: ok" "$IPM_LAB_DIR/$1/log/pacemaker.log" |
		tail -n1 | cut -c1-19)
	[ -n "$ts" ] && date -d "$ts" +%s.%N
}
# attr NODE NAME: the value of node attribute NAME of NODE in crm_mon -1 -A
attr() {
	mon node1 -A | sed -n "/^  \* Node: $1:/,/^  \* Node:/p" |
		sed -n "s/^ *\* $2[[:space:]]*: \([^[:space:]]*\).*/\1/p" | head -n1
}
attrs_ok() {
	[ -n "$(attr node1 ipmirror-vol0-state)" ] && [ -n "$(attr node2 ipmirror-vol0-state)" ] &&
		[ "$(attr node1 ipmirror-peer)" = up ] && [ "$(attr node2 ipmirror-peer)" = up ]
}
both_uptodate() {
	[ "$(attr node1 ipmirror-vol0-state)" = uptodate ] &&
		[ "$(attr node2 ipmirror-vol0-state)" = uptodate ]
}
dump_logs() {
	diag "---- crm_mon -1 -A (node1)"; mon node1 -A | sed 's/^/# /'
	diag "---- ipmirrord log"; tail -n 40 "$T_DIR/ipmirrord.log" 2>/dev/null | sed 's/^/# /'
	for n in node1 node2; do
		diag "---- $n pacemaker.log (ipmirror)"
		grep -E 'ipmirror|vol0' "$IPM_LAB_DIR/$n/log/pacemaker.log" 2>/dev/null |
			grep -vi 'debug' | tail -n 25 | sed 's/^/# /'
	done
}

# ---- the agent, the daemon and the configuration ----------------------------
RA="$T_DIR/resource.d"
mkdir -p "$RA/ipmirror"
cp "$top_srcdir/ocf/ipmirror" "$RA/ipmirror/ipmirror"
chmod 755 "$RA/ipmirror/ipmirror"
PROVIDERS=""
for d in /usr/lib/ocf/resource.d/*/; do
	p=$(basename "$d")
	[ "$p" = ipmirror ] && continue
	mkdir -p "$RA/$p"
	PROVIDERS="$PROVIDERS $p"
done

# Pacemaker runs agents with an environment of its own: the uninstalled
# daemon gets the source tree's schema through this wrapper.
WRAP="$T_DIR/ipmirrord"
cat >"$WRAP" <<EOF
#!/bin/sh
IPMIRROR_SCHEMA='$IPMIRROR_SCHEMA' exec '$IPMIRRORD' "\$@"
EOF
chmod 755 "$WRAP"

CFG="$T_DIR/ipmirror.xml"
LUN_SIZE=32M
( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T_DIR/secret" )
cat >"$CFG" <<EOF
<ipmirror version="1">
  <secret file="$T_DIR/secret"/>
  <connections count="2"/>
  <heartbeat interval="0.5" timeout="2" probation="2"/>
  <log level="info" file="$T_DIR/ipmirrord.log"/>
  <node name="node1"><data address="10.203.0.1" port="7788"/><heartbeat address="10.203.0.1" port="7789"/><nbd address="10.203.0.1" port="10809"/></node>
  <node name="node2"><data address="10.203.0.2" port="7788"/><heartbeat address="10.203.0.2" port="7789"/><nbd address="10.203.0.2" port="10809"/></node>
  <lun name="vol0" size="$LUN_SIZE" mode="sync" mirrored="yes" primary="node1">
    <backing node="node1" path="$T_DIR/node1-vol0.img"/>
    <backing node="node2" path="$T_DIR/node2-vol0.img"/>
  </lun>
</ipmirror>
EOF
truncate -s "$LUN_SIZE" "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
"$IPMIRRORD" --check-config --config "$CFG" >"$T_DIR/check.out" 2>&1 ||
	bail "config rejected: $(cat "$T_DIR/check.out")"

# ---- 1. the lab, with the agent installed inside each node ------------------
t0=$SECONDS
if lab up >"$T_DIR/up.log" 2>&1; then
	ok "lab up ($((SECONDS - t0)) s)"
else
	not_ok "lab up"; sed 's/^/# /' "$T_DIR/up.log"
	bail "the lab did not come up; logs in $IPM_LAB_DIR/node*/log (T_KEEP=1 keeps them)"
fi

# shellcheck disable=SC2016 # expanded by the inner shell
install_agent='set -e
	for p in $PROVIDERS; do mount --bind "/usr/lib/ocf/resource.d/$p" "$RA/$p"; done
	mount --rbind "$RA" /usr/lib/ocf/resource.d'
for n in node1 node2; do
	lab exec "$n" env RA="$RA" PROVIDERS="$PROVIDERS" sh -c "$install_agent" ||
		bail "cannot mount the agent inside $n"
done
check "agent visible as ocf:ipmirror:ipmirror inside both nodes (not on the host), heartbeat agents still there" \
	eval 'for n in node1 node2; do
		lab exec $n test -x /usr/lib/ocf/resource.d/ipmirror/ipmirror || exit 1
		lab exec $n test -x /usr/lib/ocf/resource.d/heartbeat/IPaddr2 || exit 1
	done; test ! -e /usr/lib/ocf/resource.d/ipmirror'

# ---- 2./3. the promotable resource -------------------------------------------
t0=$SECONDS
lab exec node1 timeout 120 pcs resource create vol0 ocf:ipmirror:ipmirror lun=vol0 config="$CFG" \
	socket=ipmpl ipmirrord="$WRAP" ipmirrorctl="$IPMIRRORCTL" promotable notify=true \
	>"$T_DIR/pcs.out" 2>&1
check "pcs resource create vol0 ... promotable (live cluster, $((SECONDS - t0)) s)" test $? = 0
sed 's/^/# /' "$T_DIR/pcs.out"
t0=$SECONDS

# settled: one of each, still so 2 s later (right after create the cluster
# may still be moving the roles, shown per instance rather than collapsed)
settled() { one_each && sleep 2 && one_each; }
if within 90 settled; then
	ok "one Promoted and one Unpromoted instance ($((SECONDS - t0)) s after create)"
else
	not_ok "one Promoted and one Unpromoted instance"; dump_logs
	bail "the resource did not settle"
fi
for _ in $(seq 20); do
	R=$(roles)
	case "$R" in node1/node2 | node2/node1) break ;; esac
	sleep 1
done
P=${R%/*} Q=${R#*/}
case "$P/$Q" in node1/node2 | node2/node1) ;; *) bail "roles changed at once: '$R'" ;; esac
diag "Promoted: $P, Unpromoted: $Q"
# every role change restarts the engine and flaps the peer's heartbeat
# state: the scores must not make Pacemaker move the role back and forth
stays() { # stays SECONDS ROLES: crm_mon shows ROLES all the time
	local end=$((SECONDS + $1))
	while [ "$SECONDS" -lt "$end" ]; do
		[ "$(roles)" = "$2" ] || { diag "roles changed to $(roles)"; return 1; }
		sleep 1
	done
}
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

# every lab process, with its start time, to tell it from PID reuse
procs=""
for n in 1 2; do
	for p in $(ip netns pids "$IPM_LAB_NS-n$n"); do
		st=$(cut -d' ' -f22 "/proc/$p/stat" 2>/dev/null) && procs="$procs $p:$st"
	done
done
diag "lab processes: $(echo "$procs" | wc -w)"
left() {
	local e st
	for e in $procs; do
		st=$(cut -d' ' -f3,22 "/proc/${e%%:*}/stat" 2>/dev/null)
		[ "${st#* }" != "${e#*:}" ] || [ "${st%% *}" = Z ] || echo "${e%%:*}"
	done
}
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
