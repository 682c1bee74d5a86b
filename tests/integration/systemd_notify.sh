#!/bin/bash
# ipmirrord under a service manager, without systemd running: a listener on
# $NOTIFY_SOCKET (tests/tools/notify_listen.py, systemd's end of the
# protocol) receives READY=1 once the daemon serves, STATUS lines, a
# WATCHDOG=1 every half $WATCHDOG_USEC while the I/O path is healthy, none
# while it is stuck, and STOPPING=1 on SIGTERM. The I/O path is stuck for
# real: the LUN's backing file lives on a FUSE file system (nbdfuse) served
# by an nbdkit that the test stops with SIGSTOP, as a hung disk would, so a
# host write holds a worker in pwrite(2) while every other thread of the
# daemon runs on. Also the pidfile: a second daemon on it refuses and names
# the first, a stale one (kill -9) is taken over, a clean stop removes it.
T_LOG_ALLOW='watchdog: the I/O path is stuck'
. "$top_srcdir/tests/lib.sh"
plan 18

for c in nbdfuse nbdkit nbdsh fusermount3; do
	command -v "$c" >/dev/null || bail "$c is not installed"
done
[ -e /dev/fuse ] || bail "no /dev/fuse"

PY=/usr/bin/python3
mono() { "$PY" -c 'import time; print("%.3f" % time.monotonic())'; }
# messages MSG [FROM [TO]]: the times of the datagrams that are MSG, or
# start with MSG, between monotonic FROM and TO
messages() {
	awk -v m="$1" -v a="${2:-0}" -v b="${3:-1e12}" \
		'$1 >= a && $1 <= b && index(substr($0, index($0, " ") + 1), m) == 1 { print $1 }' \
		"$T_DIR/notify.log"
}
count() { messages "$@" | wc -l; }
has_msg() { [ -n "$(messages "$@")" ]; }
# the longest gap between consecutive watchdog pings in [FROM, TO]
max_gap() {
	messages WATCHDOG=1 "$1" "$2" | awk 'NR > 1 && $1 - p > g { g = $1 - p } { p = $1 } END { printf "%.2f", g }'
}

# ---- the wedgeable backing: nbdkit -> nbdfuse -> a file ---------------------
KPORT=$(free_port nbdkit)
nbdkit -f -i 127.0.0.1 -p "$KPORT" memory 64M >"$T_DIR/nbdkit.log" 2>&1 &
KPID=$!
T_PIDS="$T_PIDS $KPID"
wait_for 10 tcp_open 127.0.0.1 "$KPORT" || bail "nbdkit did not start: $(cat "$T_DIR/nbdkit.log")"
mkdir "$T_DIR/mnt"
nbdfuse -P "$T_DIR/nbdfuse.pid" "$T_DIR/mnt/disk" "nbd://127.0.0.1:$KPORT" \
	>"$T_DIR/nbdfuse.log" 2>&1 &
FPID=$!
T_PIDS="$T_PIDS $FPID"
wait_for 10 test -s "$T_DIR/nbdfuse.pid" || bail "nbdfuse did not start: $(cat "$T_DIR/nbdfuse.log")"
# whatever happens: nbdkit runs again before anything is stopped, the
# mount goes away after the daemon
cleanup_fuse() {
	kill -CONT "$KPID" 2>/dev/null
	[ -z "${d_pid:-}" ] || kill "$d_pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "${d_pid:-0}" 2>/dev/null || break; sleep 0.1; done
	fusermount3 -u "$T_DIR/mnt" 2>/dev/null
	t_cleanup
}
trap cleanup_fuse EXIT

PORT=$(free_port nbd)
SOCK="ipm-notify-$$"
cat >"$T_DIR/solo.xml" <<XML
<ipmirror version="1">
  <log level="info"/>
  <node name="solo"><nbd address="127.0.0.1" port="$PORT"/></node>
  <lun name="vol0" size="64M" mode="sync" mirrored="no" primary="solo">
    <backing path="$T_DIR/mnt/disk"/>
  </lun>
</ipmirror>
XML

# ---- start under the listener -----------------------------------------------
"$PY" "$top_srcdir/tests/tools/notify_listen.py" "$T_DIR/notify.sock" "$T_DIR/notify.log" 120 &
LPID=$!
T_PIDS="$T_PIDS $LPID"
wait_for 5 test -S "$T_DIR/notify.sock" || bail "the listener did not bind"
touch "$T_DIR/notify.log"
export NOTIFY_SOCKET="$T_DIR/notify.sock" WATCHDOG_USEC=2000000
start_daemon d --config "$T_DIR/solo.xml" --node solo --socket "$SOCK" --pidfile "$T_DIR/d.pid"
unset NOTIFY_SOCKET WATCHDOG_USEC
wait_for 15 has_msg READY=1 || bail "no READY=1: $(cat "$T_DIR/d.log")"
T_READY=$(messages READY=1 | head -n1)
check "READY=1 arrives, with a STATUS naming the node" \
	grep -q ' READY=1|STATUS=node solo serving$' "$T_DIR/notify.log"
check "the NBD export serves when READY=1 has arrived" \
	eval "timeout 20 nbdinfo nbd://127.0.0.1:$PORT/vol0 >/dev/null"
check "a STATUS=starting line came before READY=1" \
	test "$(head -n1 "$T_DIR/notify.log" | cut -d' ' -f2-)" = "STATUS=starting (config $T_DIR/solo.xml)"
check "the pidfile holds the daemon's pid" test "$(cat "$T_DIR/d.pid")" = "$d_pid"

# ---- healthy: a ping every second (WATCHDOG_USEC 2 s) ---------------------------
sleep 5
T1=$(mono)
# some load meanwhile: the I/O path is busy, not stuck
timeout 20 nbdsh -u "nbd://127.0.0.1:$PORT/vol0" \
	-c 'for i in range(200): h.pwrite(b"a" * 65536, (i % 64) * 65536)' -c 'h.flush()' ||
	diag "the load failed"
N=$(count WATCHDOG=1 "$T_READY" "$T1")
GAP=$(max_gap "$T_READY" "$T1")
check "healthy: $N WATCHDOG=1 in the first $(awk -v a="$T_READY" -v b="$T1" 'BEGIN{printf "%.1f", b-a}') s, at most $GAP s apart (every 1 s expected)" \
	awk -v n="$N" -v g="$GAP" 'BEGIN { exit !(n >= 4 && g > 0 && g < 1.8) }'
check "STATUS names the LUN, its role and state" \
	grep -q ' STATUS=serving vol0 primary uptodate; peer none$' "$T_DIR/notify.log"

# ---- stuck: nbdkit stopped, a host write hangs in the worker -------------------
kill -STOP "$KPID"
T_STOP=$(mono)
timeout -k 2 40 nbdsh -u "nbd://127.0.0.1:$PORT/vol0" \
	-c 'h.pwrite(b"w" * 4096, 8 * 1048576)' -c 'h.flush()' >"$T_DIR/stuck-write.log" 2>&1 &
WPID=$!
T_PIDS="$T_PIDS $WPID"
# the request reaches a worker once nbdsh has connected (slow on a loaded
# machine): from the moment the daemon says it is stuck, no ping
wait_for 15 has_msg 'STATUS=I/O path stuck' "$T_STOP"
T_STUCK=$(messages 'STATUS=I/O path stuck' "$T_STOP" | head -n1)
check "stuck: a STATUS line says why, $(awk -v a="$T_STOP" -v b="${T_STUCK:-0}" 'BEGIN{printf "%.1f", b-a}') s after nbdkit stopped" \
	has_msg 'STATUS=I/O path stuck: a host request has been executing for' "$T_STOP"
sleep 4
T_CONT=$(mono)
check "the daemon is alive while stuck (its admin socket answers)" \
	eval 'timeout 10 "$IPMIRRORCTL" --socket "$SOCK" status >/dev/null'
N=$(count WATCHDOG=1 "${T_STUCK:-0}" "$T_CONT")
check "stuck: no WATCHDOG=1 in the $(awk -v a="${T_STUCK:-0}" -v b="$T_CONT" 'BEGIN{printf "%.1f", b-a}') s after it ($N; a healthy daemon sends one a second)" \
	eval '[ -n "$T_STUCK" ] && [ "$N" = 0 ]'
LAST=$(messages WATCHDOG=1 0 "$T_CONT" | tail -n1)
check "stuck: the last ping came at most 1.5 s before (at $LAST, stuck at $T_STUCK)" \
	awk -v l="$LAST" -v s="${T_STUCK:-0}" 'BEGIN { exit !(s > 0 && l <= s && s - l <= 1.5) }'
check "stuck: the log says so" grep -q 'watchdog: the I/O path is stuck' "$T_DIR/d.log"

# ---- moving again ----------------------------------------------------------------
kill -CONT "$KPID"
wait "$WPID"; WRC=$?
T_PIDS=$(echo "$T_PIDS" | sed "s/\b$WPID\b//")
check "the stuck write completes once nbdkit continues" test "$WRC" = 0
sleep 3
T2=$(mono)
N=$(count WATCHDOG=1 "$T_CONT" "$T2")
check "moving again: $N WATCHDOG=1 in the $(awk -v a="$T_CONT" -v b="$T2" 'BEGIN{printf "%.1f", b-a}') s after nbdkit continued, STATUS back to serving" \
	eval '[ "$N" -ge 2 ] && [ -n "$(messages "STATUS=serving vol0" "$T_CONT" "$T2")" ]'

# ---- the pidfile -----------------------------------------------------------------
PORT2=$(free_port second)
sed "s/port=\"$PORT\"/port=\"$PORT2\"/" "$T_DIR/solo.xml" >"$T_DIR/second.xml"
"$IPMIRRORD" --foreground --config "$T_DIR/second.xml" --node solo --socket "$SOCK-2" \
	--pidfile "$T_DIR/d.pid" >"$T_DIR/second.log" 2>&1 &
SPID=$!
T_PIDS="$T_PIDS $SPID"
wait_while 10 kill -0 "$SPID"
wait "$SPID"; SRC=$?
check "a second daemon on the same pidfile exits 1 naming the first ($(cat "$T_DIR/second.log"))" \
	eval '[ "$SRC" = 1 ] && grep -q "pidfile $T_DIR/d.pid is in use by pid $d_pid" "$T_DIR/second.log"'

# ---- stop: STOPPING=1 ---------------------------------------------------------
T3=$(mono)
stop_pid "$d_pid"; DRC=$?
check "SIGTERM: STOPPING=1 (with STATUS=stopping) and a clean exit ($DRC)" \
	eval '[ "$DRC" = 0 ] && grep -q " STOPPING=1|STATUS=stopping$" "$T_DIR/notify.log"'
check "a clean stop removes the pidfile" test ! -e "$T_DIR/d.pid"

# a daemon killed with -9 leaves its pidfile; the next one takes it over
start_daemon k --config "$T_DIR/second.xml" --node solo --socket "$SOCK-3" --pidfile "$T_DIR/k.pid"
wait_for 10 test -s "$T_DIR/k.pid"
kill9 "$k_pid"
start_daemon k2 --config "$T_DIR/second.xml" --node solo --socket "$SOCK-3" --pidfile "$T_DIR/k.pid"
wait_for 10 eval 'test "$(cat "$T_DIR/k.pid" 2>/dev/null)" = "$k2_pid"'
check "a stale pidfile (kill -9) is taken over by the next daemon" \
	eval 'kill -0 "$k2_pid" && test "$(cat "$T_DIR/k.pid")" = "$k2_pid"'
finish
