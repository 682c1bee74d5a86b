#!/bin/bash
# Failover onto the mirror in the Pacemaker lab (tests/lab), the whole
# Promoted node killed. A host in the Unpromoted node Q writes uniquely
# stamped blocks through NBD on the Promoted node P with 8 requests in
# flight, logging each write when issued and when acknowledged (fsynced;
# tests/integration/py/stamp_io.py). Mid-load P's init gets SIGKILL:
# corosync, pacemaker and ipmirrord of P die at once. Pacemaker on Q sees
# P lost (stonith-enabled=false in the lab) and promotes Q, which serves NBD
# and holds every acknowledged write, whole (sync, this script), or a
# crash-consistent prefix of the writes (failover_lab_async.sh sets
# FAILOVER_MODE=async and holds P's replication link to 4 Mbit/s, so that
# the mirror lags). Prints the seconds from the kill to NBD served on Q.
# T_KEEP=1 keeps $T_DIR.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

: "${LAB_TAG:=ipmfo}"
MODE=${FAILOVER_MODE:-sync}
case "$MODE" in sync) RULE=sync ;; async) RULE=prefix ;; *) echo "Bail out! FAILOVER_MODE sync|async"; exit 1 ;; esac
LUN_MODE=$MODE
. "$top_srcdir/tests/lab/cluster.sh"
PY="/usr/bin/python3 $top_srcdir/tests/integration/py/stamp_io.py"
BLOCKS=2048 # 8 MiB of the 32 MiB LUN

plan 14
cluster_start
check "$MODE LUN: crm_mon -1 -A shows ipmirror-vol0-state uptodate on both nodes" within 90 both_uptodate
# the failover of a settled pair: the mirror's score comes with its first
# monitor after it was up to date (up to 11 s later); a kill before that
# waits for the survivor's next monitor (doc/pacemaker.md)
within 30 scored vol0 || diag "the mirror has no promotion score yet"

if [ "$MODE" = async ]; then
	lab exec "$P" tc qdisc add dev "$IPM_LAB_NS-d${P#node}" root tbf rate 4mbit burst 32kb latency 400ms ||
		bail "cannot throttle $P's replication link"
fi
URIP="nbd://$(addr_of "$P"):10809/vol0" URIQ="nbd://$(addr_of "$Q"):10809/vol0"
LOG="$T_DIR/host.log"
lab exec "$Q" timeout 90 $PY write "$URIP" "$LOG" --blocks $BLOCKS --depth 8 --seconds 60 \
	>"$T_DIR/writer.out" 2>&1 &
W=$!
acks() { [ "$(grep -c '^A ' "$LOG" 2>/dev/null)" -ge "$1" ]; }
check "host in $Q writing through NBD on $P: 1000 writes acknowledged" within 40 acks 1000

# the whole node: SIGKILL to its init ends its PID namespace
INIT=$("$LAB" pids | awk -v n="$P" '$1 == n { print $2 }')
case "$INIT" in '' | - | *[!0-9]*) bail "no init PID for $P: $("$LAB" pids)" ;; esac
kill -KILL "$INIT"
t_kill=$(date +%s.%N)
diag "$P killed (its init, host pid $INIT) at $(date -u +%T.%N | cut -c1-12)"
wait "$W"
RC=$?
diag "writer (exit $RC): $(cat "$T_DIR/writer.out")"
check "the writer had writes in flight and was stopped by the kill" \
	eval 'test $RC = 0 && grep -q "stopped:" "$T_DIR/writer.out" && ! grep -q "in flight 0 " "$T_DIR/writer.out"'
gone() { ! "$LAB" pids | grep -q "^$P [0-9]"; }
check "$P is gone: no init, so no corosync, pacemaker or ipmirrord of it" within 10 gone

# from here on, only Q can answer
VIEW=$Q
export VIEW
offline() { mon "$Q" | grep -q "OFFLINE: \[ $P \]"; }
check "Pacemaker on $Q sees $P OFFLINE" within 60 offline
served() { lab exec "$Q" timeout 5 nbdinfo --size "$URIQ"; }
if within 90 served; then
	FO=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t_kill }")
	ok "$Q serves vol0 over NBD, $FO s after the kill"
	diag "failover time, SIGKILL of $P's init to NBD served by $Q: $FO s"
else
	not_ok "$Q serves vol0 over NBD"; dump_logs
fi
promoted_q() { [ "$(role_nodes Promoted)" = "$Q" ]; }
check "crm_mon on $Q: $Q Promoted" within 30 promoted_q
t2=$(promoted_at "$Q") &&
	diag "failover time, SIGKILL of $P's init to the promote on $Q done (its pacemaker.log): $(awk "BEGIN { printf \"%.1f\", $t2 - $t_kill }") s"
diag "  $Q's pacemaker.log, s after the kill: $(failover_breakdown "$Q" "$t_kill")"
diag "  timeline on $Q (s after the kill):"
failover_timeline "$Q" "$t_kill" "$t2" | sed 's/^/#   /'

lab exec "$Q" timeout 60 $PY check "$URIQ" "$LOG" --blocks $BLOCKS --rule $RULE >"$T_DIR/check.out" 2>&1
RC=$?
sed 's/^/# /' "$T_DIR/check.out"
case $RULE in
sync) check "every acknowledged write is on $Q, whole" test $RC = 0 ;;
prefix) check "$Q holds a crash-consistent prefix of the writes" test $RC = 0 ;;
esac
check "the checker read through NBD on $Q: $(grep '^log:' "$T_DIR/check.out")" grep -q '^log:' "$T_DIR/check.out"

cluster_finish
