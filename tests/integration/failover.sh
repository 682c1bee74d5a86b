#!/bin/bash
# Failover onto the mirror. A host (a python libnbd client in node1's
# namespace) writes uniquely stamped 4 KiB blocks (run id, sequence number,
# offset, SHA-256) with 8 requests in flight through NBD on the primary
# node1, logging each write when issued and when acknowledged (fsynced;
# tests/integration/py/stamp_io.py); node1's daemon is killed -9 mid-load;
# the mirror is promoted the way an admin would (`ipmirrorctl promote vol0`,
# retried until the dead primary is seen gone; no --force: the mirror was
# up to date); the host reads the blocks back through NBD on node2 (from
# node2's namespace). sync (this script): every acknowledged write is there,
# whole. async (failover_async.sh sets FAILOVER_MODE=async, and holds the
# mirror link to 4 Mbit/s so the mirror lags): the promoted copy is a
# crash-consistent prefix: no write present while one acknowledged before
# it was issued is missing. Prints the seconds from the kill to NBD served.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
MODE=${FAILOVER_MODE:-sync}
case "$MODE" in sync) RULE=sync ;; async) RULE=prefix ;; *) bail "FAILOVER_MODE sync|async" ;; esac
PY="/usr/bin/python3 $top_srcdir/tests/integration/py/stamp_io.py"
BLOCKS=4096 # 16 MiB of the LUN: overwrites of a block happen often
plan 9

pair_up vol0:64M:$MODE:yes:node1
both_uptodate() { lun_state_is node1 vol0 uptodate && lun_state_is node2 vol0 uptodate; }
check "$MODE LUN mirrored, up to date on both nodes" wait_for 30 both_uptodate

URI1="nbd://$N1_ADDR:$N1_NBD/vol0" URI2="nbd://$N2_ADDR:$N2_NBD/vol0"
LOG="$T_DIR/host.log"
# async: the mirror link is held to 4 Mbit/s (tbf on node1's side of the
# veth), so the mirror lags and the kill loses a tail of acknowledged
# writes, the case the prefix rule is about. The host runs in node1's
# namespace (NBD over its loopback), so its own traffic is not held back.
if [ "$MODE" = async ]; then
	tc -n "$NS_node1" qdisc add dev "$VETH1" root tbf rate 4mbit burst 32kb latency 400ms ||
		bail "cannot throttle the mirror link"
fi
in_node node1 timeout 60 $PY write "$URI1" "$LOG" --blocks $BLOCKS --depth 8 --seconds 45 \
	>"$T_DIR/writer.out" 2>&1 &
W=$!
acks() { [ "$(grep -c '^A ' "$LOG" 2>/dev/null)" -ge "$1" ]; }
check "host writing through node1: 1500 writes acknowledged" wait_for 30 acks 1500
kill -9 "$n1_pid"
T_KILLED="$T_KILLED $n1_pid"   # on purpose: daemons_clean does not count it
t_kill=$(date +%s.%N)
wait "$W" 2>/dev/null
RC=$?
wait "$n1_pid" 2>/dev/null
diag "writer (exit $RC): $(cat "$T_DIR/writer.out")"
check "primary killed -9 mid-load: the writer had writes in flight and was stopped by it" \
	eval 'test $RC = 0 && grep -q "stopped:" "$T_DIR/writer.out" && ! grep -q "in flight 0 " "$T_DIR/writer.out"'
T_PIDS=$(echo "$T_PIDS" | sed "s/\b$n1_pid\b//")

# what an admin does: promote the survivor once it sees its primary gone
promoted() { ctl node2 promote vol0 >"$T_DIR/promote.out" 2>&1; }
wait_for 20 promoted
RC=$?
check "node2 promoted without --force: $(tr '\n' ' ' <"$T_DIR/promote.out")" test $RC = 0
served() { in_node node2 timeout 5 nbdinfo --size "$URI2"; }
if wait_for 20 served; then
	FO=$(echo "$(date +%s.%N) - $t_kill" | bc)
	ok "node2 serves vol0 over NBD, $(printf '%.2f' "$FO") s after the kill"
	diag "failover ($MODE): $(printf '%.2f' "$FO") s from kill -9 of the primary to NBD served by the mirror"
else
	not_ok "node2 serves vol0 over NBD"; tail -n 20 "$T_DIR/n2.log" | sed 's/^/# /'
fi
check "node2 reports vol0 primary" test "$(lun_field node2 vol0 role)" = primary

in_node node2 timeout 60 $PY check "$URI2" "$LOG" --blocks $BLOCKS --rule $RULE >"$T_DIR/check.out" 2>&1
RC=$?
sed 's/^/# /' "$T_DIR/check.out"
case $RULE in
sync) check "every acknowledged write is on the promoted mirror, whole" test $RC = 0 ;;
prefix) check "the promoted mirror holds a crash-consistent prefix of the writes" test $RC = 0 ;;
esac
check "the checker read through node2's NBD: $(grep '^log:' "$T_DIR/check.out")" grep -q '^log:' "$T_DIR/check.out"
finish
