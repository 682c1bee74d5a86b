#!/bin/bash
# ipmirror-drill (agent/ipmirror-drill) on the two-node Corosync + Pacemaker
# lab of tests/lab: the cluster setup of pacemaker_lab.sh, then the drill runs
# inside node1 with --event move --json and must report PASS, a failover time
# above 0, the data read back identical on the new Promoted node, and the
# Promoted role on the other node; its ban is cleared afterwards. A usage
# error exits 2; kill-daemon is refused (FAIL, exit 1) off the Promoted node
# and passes on it (kill -9 of ipmirrord, Pacemaker fails over to the other
# node, data checked there).
# T_KEEP=1 keeps $T_DIR.
T_LIMIT=${T_LIMIT:-1800}  # a whole cluster comes up and goes down
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

LAB_TAG=ipmdr
. "$top_srcdir/tests/lab/cluster.sh"

plan 14
cluster_start

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
# gone, Pacemaker promotes the other node
t0=$SECONDS
lab exec "$Q" timeout 300 "$DRILL" --lun vol0 --event kill-daemon --json --size 16M --timeout 90 \
	--nbd-host node1=10.203.0.1 --nbd-host node2=10.203.0.2 \
	--ipmirrorctl "$IPMIRRORCTL" --socket ipmdr >"$T_DIR/drill.json" 2>"$T_DIR/drill.err"
RC=$?
diag "kill-daemon drill ($((SECONDS - t0)) s, exit $RC): $(cat "$T_DIR/drill.json")"
sed 's/^/# /' "$T_DIR/drill.err"
J=$(tr -d ' \n' <"$T_DIR/drill.json")
# a failover, not a restart in place (the drill would accept both): the
# other node $P is Promoted and holds the data
if [ $RC = 0 ] && [ "$(jval result)/$(jval event)/$(jval from)/$(jval to)/$(jval data_ok)" = "PASS/kill-daemon/$Q/$P/true" ] &&
	python3 -c "import json, sys; json.load(sys.stdin)" <"$T_DIR/drill.json"; then
	ok "ipmirror-drill --event kill-daemon on $Q: PASS, failed over to $P, data identical there (failover $(jval failover_s) s)"
else
	not_ok "ipmirror-drill --event kill-daemon on $Q: PASS, failed over to $P (got to=$(jval to)), data identical"; dump_logs
fi

cluster_finish
