#!/bin/bash
# ipmirrorctl against a running one-node ipmirrord (one unmirrored LUN):
# status as a table and as JSON (its schema version, in-flight requests and
# bytes, the last handshake refusal), status --get's plain values, the LUN
# filter, wait with and without reaching the state, events --now, usage
# errors (exit 2), root-only access, a second daemon on the same --socket,
# and the message when the daemon is gone (also to an events stream).
# the non-root client below is refused by libqb's connection setup
T_LOG_ALLOW='error: Error in connection setup .*: Operation not permitted'
. "$top_srcdir/tests/lib.sh"
plan 35

PORT=$(free_port ctl_status)
SOCK="ipm-ctl-$$"
MiB=$((1024 * 1024))
truncate -s 64M "$T_DIR/vol0.img"
solo_config() { # FILE PORT IMAGE
	cat >"$1" <<XML
<ipmirror version="1">
  <log level="info"/>
  <node name="node1"><nbd address="127.0.0.1" port="$2"/></node>
  <lun name="vol0" size="64M" mode="sync" mirrored="no" primary="node1">
    <backing path="$3"/>
  </lun>
</ipmirror>
XML
}
solo_config "$T_DIR/solo.xml" "$PORT" "$T_DIR/vol0.img"
ctl() { timeout -k 5 "$CTL_TIMEOUT" "$IPMIRRORCTL" --socket "$SOCK" "$@"; }
# run CMD...: stdout in $T_DIR/out, stderr in $T_DIR/err, exit status in $RC
run() { "$@" >"$T_DIR/out" 2>"$T_DIR/err"; RC=$?; }

start_daemon d --config "$T_DIR/solo.xml" --node node1 --socket "$SOCK"
wait_for 10 ctl status || bail "ipmirrorctl cannot reach the daemon: $(cat "$T_DIR/d.log")"
ok "daemon answers on service $SOCK"

# ---- status, human table ------------------------------------------------
run ctl status
check "status: exit 0" test "$RC" = 0
check "status: node line says there is no peer" grep -qx 'node node1 (no peer)' "$T_DIR/out"
check "status: vol0 row (primary, sync, unmirrored, uptodate, 64 MiB)" \
	grep -Eq '^vol0 +primary +sync +no +uptodate +64\.0 MiB ' "$T_DIR/out"

# ---- status --json ------------------------------------------------------
run ctl status --json
check "status --json: exit 0 and valid JSON" \
	eval '[ "$RC" = 0 ] && jq -e . "$T_DIR/out" >/dev/null'
check "json: .node is node1" test "$(jq -r .node "$T_DIR/out")" = node1
check "json: .peer is null without a peer" test "$(jq -c .peer "$T_DIR/out")" = null
check "json: .connections is an (empty) array" \
	test "$(jq -c .connections "$T_DIR/out")" = '[]'
check "json: .luns[0].state is uptodate" test "$(jq -r '.luns[0].state' "$T_DIR/out")" = uptodate
check "json: .luns[0].size is 64 MiB" test "$(jq '.luns[0].size' "$T_DIR/out")" = $((64 * MiB))
check "json: every LUN key of ipmirrorctl(8), with its type" test "$(jq -c '.luns[0] |
	[(.name, .role, .mode, .state, .generation | type),
	 (.mirrored | type),
	 (.journal_bytes, .journal_records, .resync_done_bytes, .resync_total_bytes,
	  .mirrored_bytes | type)] | unique' "$T_DIR/out")" = '["boolean","number","string"]'
check "json: .schema is 1" test "$(jq .schema "$T_DIR/out")" = 1
check "json: in-flight requests and bytes (0 at rest), no refusal" test "$(jq -c '.luns[0] |
	[.inflight, .inflight_bytes, .refusal, .refusal_age_ms]' "$T_DIR/out")" = '[0,0,"",-1]'

# ---- status --get: plain values for scripts --------------------------------
run ctl status vol0 --get role,state,size
check "status vol0 --get role,state,size: one value a line" \
	test "$RC $(tr '\n' ' ' <"$T_DIR/out")" = "0 primary uptodate $((64 * MiB)) "
run ctl status --get node,heartbeat,schema
check "status --get node keys without a LUN" test "$RC $(tr '\n' ' ' <"$T_DIR/out")" = "0 node1 off 1 "
run ctl status --get state
check "status --get state without a LUN: exit 2, says so" \
	test "$RC" = 2 -a "$(cat "$T_DIR/err")" = 'ipmirrorctl: key "state" is a LUN'"'"'s: name the LUN'
run ctl status vol0 --get role,colour
check "status --get an unknown key: exit 2 naming it" \
	test "$RC" = 2 -a "$(cat "$T_DIR/err")" = 'ipmirrorctl: unknown key "colour" (see ipmirrorctl(8))'

# ---- events --now ------------------------------------------------------------
run ctl events --now --timeout 0.3
check "events --now: the LUN's state, then 'exists -' (exit 0 at --timeout)" \
	eval '[ "$RC" = 0 ] && grep -q " exists lun name:vol0 role:primary state:uptodate$" "$T_DIR/out" &&
	[ "$(tail -n1 "$T_DIR/out")" = "exists -" ]'
run ctl events --now --json --timeout 0.3
check "events --now --json: each line parses" \
	eval '[ "$RC" = 0 ] && jq -e .action "$T_DIR/out" >/dev/null'

run ctl status vol0 --json
check "status vol0 --json: one LUN, vol0" \
	test "$(jq -c '[.luns[].name]' "$T_DIR/out")" = '["vol0"]'

# ---- unknown LUN ---------------------------------------------------------
run ctl status nope
check "status nope: exit 4 (no such LUN) with 'no lun' message" \
	test "$RC" = 4 -a "$(cat "$T_DIR/err")" = 'ipmirrorctl: no lun "nope" on node1'

# ---- wait --------------------------------------------------------------
run ctl wait vol0 --state uptodate --timeout 5
check "wait vol0 --state uptodate: exit 0" test "$RC" = 0
start=$(date +%s%N)
run ctl wait vol0 --state resyncing --timeout 1
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "wait for an unreached state: exit 1 after the timeout (${elapsed_ms} ms)" \
	test "$RC" = 1 -a "$elapsed_ms" -ge 1000 -a "$elapsed_ms" -lt 4000
check "wait timeout message names the current state" grep -q 'is uptodate, not resyncing' "$T_DIR/err"
run ctl wait nope --state uptodate --timeout 1
check "wait on an unknown LUN: exit 4" test "$RC" = 4 -a -s "$T_DIR/err"

# ---- usage errors: exit 2 with the usage on stderr ----------------------
usage_error() { run ctl "$@"; [ "$RC" = 2 ] && grep -q '^usage: ipmirrorctl' "$T_DIR/err"; }
check "unknown command: exit 2, usage on stderr" usage_error frobnicate
check "wait without --state / LUN: exit 2" \
	eval 'usage_error wait vol0 && usage_error wait --state uptodate'
check "bad --timeout value / unknown state name: exit 2" \
	eval 'usage_error wait vol0 --state uptodate --timeout soon && usage_error wait vol0 --state fine'
check "events with a LUN / --now elsewhere / --get with --json: exit 2" \
	eval 'usage_error events vol0 && usage_error status --now && usage_error status vol0 --get role --json'
check "--help: exit 0, usage on stdout" eval 'run ctl --help; [ "$RC" = 0 ] && grep -q "^usage:" "$T_DIR/out"'

# ---- root only -----------------------------------------------------------
# a copy readable by nobody (the build tree may not be)
pubdir=$(mktemp -d /tmp/ipmirrorctl-pub.XXXXXX)
chmod 755 "$pubdir"; cp "$IPMIRRORCTL" "$pubdir/"; chmod 755 "$pubdir/ipmirrorctl"
run setpriv --reuid=65534 --regid=65534 --clear-groups "$pubdir/ipmirrorctl" --socket "$SOCK" status
rm -rf "$pubdir"
check "a non-root client is refused (exit 1, says root only)" \
	test "$RC" = 1 -a -n "$(grep 'root only' "$T_DIR/err")"

# ---- a second daemon on the same service name ------------------------------
truncate -s 64M "$T_DIR/vol0b.img"
solo_config "$T_DIR/solo2.xml" "$(free_port ctl_status second)" "$T_DIR/vol0b.img"
"$IPMIRRORD" --foreground --config "$T_DIR/solo2.xml" --node node1 --socket "$SOCK" \
	>"$T_DIR/second.log" 2>&1 &
second=$!
T_PIDS="$T_PIDS $second"
wait_while 10 kill -0 "$second"
wait "$second"; RC=$?
check "a second daemon on the same --socket exits 1 saying it is in use" \
	test "$RC" = 1 -a -n "$(grep -i 'in use' "$T_DIR/second.log")"

# ---- daemon gone ------------------------------------------------------------
ctl events >"$T_DIR/ev" 2>"$T_DIR/ev.err" & ev_pid=$!
sleep 0.5
stop_pid "$d_pid"
wait "$ev_pid"; RC=$?
check "an events stream ends with exit 1 when the daemon stops" \
	eval '[ "$RC" = 1 ] && grep -q "closed the event stream" "$T_DIR/ev.err"'
run ctl status
check "after the daemon stopped: exit 3, 'cannot reach' message" test "$RC" = 3 -a \
	"$(cat "$T_DIR/err")" = "ipmirrorctl: cannot reach ipmirrord (service \"$SOCK\"): is the daemon running? (Connection refused)"
finish
