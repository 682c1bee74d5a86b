#!/bin/bash
# ipmirror-drill (agent/ipmirror-drill) on the two-node Corosync + Pacemaker
# lab of tests/lab: the cluster setup of pacemaker_lab.sh, then the drill runs
# inside node1 with --event move --json and must report PASS, a failover time
# above 0, the data read back identical on the new Promoted node, and the
# Promoted role on the other node; its ban is cleared afterwards. A usage
# error exits 2; kill-daemon is refused (FAIL, exit 1) off the Promoted node
# and passes on it (kill -9 of ipmirrord, Pacemaker recovers, data checked).
# T_KEEP=1 keeps $T_DIR.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

LAB="$top_srcdir/tests/lab/lab"
for c in corosync pacemakerd crm_mon crm_resource pcs nbdcopy nbdinfo unshare nsenter ip; do
	command -v "$c" >/dev/null 2>&1 || { echo "1..0 # SKIP $c not installed"; exit 0; }
done
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root"; exit 0; }
[ -d /usr/lib/ocf/resource.d ] || { echo "1..0 # SKIP no /usr/lib/ocf/resource.d"; exit 0; }

plan 14

export IPM_LAB_DIR="$T_DIR/lab" IPM_LAB_NS="ipmdr$(($$ % 10000))" IPM_LAB_TIMEOUT=90
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
	socket=ipmdr ipmirrord="$WRAP" ipmirrorctl="$IPMIRRORCTL" promotable notify=true \
	>"$T_DIR/pcs.out" 2>&1
check "pcs resource create vol0 ... promotable (live cluster, $((SECONDS - t0)) s)" test $? = 0
sed 's/^/# /' "$T_DIR/pcs.out"
t0=$SECONDS

settled() { one_each && sleep 2 && one_each; }
if within 90 settled; then
	ok "one Promoted and one Unpromoted instance ($((SECONDS - t0)) s after create)"
else
	not_ok "one Promoted and one Unpromoted instance"; dump_logs
	bail "the resource did not settle"
fi
# crm_mon -1 can fail for a moment (a CIB update, a loaded host): ask again
for _ in $(seq 20); do
	R=$(roles)
	case "$R" in node1/node2 | node2/node1) break ;; esac
	sleep 1
done
P=${R%/*} Q=${R#*/}
case "$P/$Q" in node1/node2 | node2/node1) ;; *) bail "roles changed at once: '$R'" ;; esac
diag "Promoted: $P, Unpromoted: $Q"

DRILL="$top_srcdir/agent/ipmirror-drill"
check "usage error: no --event exits 2" eval '"$DRILL" --lun vol0 >/dev/null 2>&1; test $? = 2'

if within 60 both_uptodate; then
	ok "ipmirror-vol0-state uptodate on both nodes before the drill"
else
	not_ok "ipmirror-vol0-state uptodate on both nodes before the drill"; dump_logs
fi

t0=$SECONDS
lab exec node1 timeout 300 "$DRILL" --lun vol0 --event move --json --size 16M --timeout 90 \
	--nbd-host node1=10.203.0.1 --nbd-host node2=10.203.0.2 \
	--ipmirrorctl "$IPMIRRORCTL" --socket ipmdr >"$T_DIR/drill.json" 2>"$T_DIR/drill.err"
RC=$?
diag "drill ($((SECONDS - t0)) s, exit $RC): $(cat "$T_DIR/drill.json")"
sed 's/^/# /' "$T_DIR/drill.err"
J=$(tr -d ' \n' <"$T_DIR/drill.json")
jval() { echo "$J" | sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" | tr -d '"'; }
check "ipmirror-drill --event move --json: exit 0, one JSON object with result PASS" \
	eval 'test $RC = 0 && test "$(wc -l <"$T_DIR/drill.json")" = 1 && test "$(jval result)" = PASS &&
		python3 -c "import json, sys; json.load(sys.stdin)" <"$T_DIR/drill.json"'
check "lun vol0, event move, from $P to $Q" \
	eval 'test "$(jval lun)/$(jval event)/$(jval from)/$(jval to)" = "vol0/move/$P/$Q"'
check "failover_s > 0 ($(jval failover_s)), resync_s >= 0 ($(jval resync_s))" \
	awk -v f="$(jval failover_s)" -v r="$(jval resync_s)" 'BEGIN { exit !(f + 0 > 0 && r != "" && r != "null" && r + 0 >= 0) }'
check "data_ok true" test "$(jval data_ok)" = true
check "the drill cleared its ban (no cli-ban constraint) and $Q is Promoted" \
	eval '! lab exec node1 timeout 10 cibadmin -Q -o constraints | grep -q cli-ban && roles_are "$Q" "$P"'
lab exec "$P" timeout 60 "$DRILL" --lun vol0 --event kill-daemon --nbd-host node1=10.203.0.1 \
	--nbd-host node2=10.203.0.2 --socket ipmdr --json >"$T_DIR/kill.json" 2>/dev/null
RC=$?
diag "kill-daemon on $P: $(cat "$T_DIR/kill.json")"
check "kill-daemon on the Unpromoted node $P: FAIL (run it on the Promoted node), exit 1, nothing killed" \
	eval 'test $RC = 1 && grep -q "\"result\":\"FAIL\".*run the drill on the Promoted node $Q" "$T_DIR/kill.json" &&
		roles_are "$Q" "$P" && lab exec "$P" pgrep -f -- "--socket ipmdr" >/dev/null'

# kill -9 of the daemon on the Promoted node: the agent's monitor sees it
# gone, Pacemaker recovers (here: promotes the other node)
t0=$SECONDS
lab exec "$Q" timeout 300 "$DRILL" --lun vol0 --event kill-daemon --json --size 16M --timeout 90 \
	--nbd-host node1=10.203.0.1 --nbd-host node2=10.203.0.2 \
	--ipmirrorctl "$IPMIRRORCTL" --socket ipmdr >"$T_DIR/drill.json" 2>"$T_DIR/drill.err"
RC=$?
diag "kill-daemon drill ($((SECONDS - t0)) s, exit $RC): $(cat "$T_DIR/drill.json")"
sed 's/^/# /' "$T_DIR/drill.err"
J=$(tr -d ' \n' <"$T_DIR/drill.json")
if [ $RC = 0 ] && [ "$(jval result)/$(jval event)/$(jval from)/$(jval data_ok)" = "PASS/kill-daemon/$Q/true" ] &&
	python3 -c "import json, sys; json.load(sys.stdin)" <"$T_DIR/drill.json"; then
	ok "ipmirror-drill --event kill-daemon on $Q: PASS, data identical on $(jval to) (failover $(jval failover_s) s)"
else
	not_ok "ipmirror-drill --event kill-daemon on $Q: PASS, data identical"; dump_logs
fi

t0=$SECONDS
lab down >"$T_DIR/down.log" 2>&1
RC=$?
check "lab down ($((SECONDS - t0)) s), no ipmirrord of this test left" \
	eval 'test $RC = 0 && ! pgrep -f -- "--config $CFG" >/dev/null'
diag "total runtime: $((SECONDS - T_START)) s"
finish
