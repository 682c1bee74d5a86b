#!/bin/bash
# The OCF agent waits on ipmirrord's event stream, not by asking again and
# again: its await_in_service (the start's wait for a LUN in service, run
# here alone from the agent's own functions on a one-node daemon) returns
# within half a second of `ipmirrorctl up` on a LUN that was down, at once
# for a LUN in service, and with 1 after its time for one that stays down
# (the stream's --now snapshot may be a moment old: it asks the status once
# it is subscribed).
. "$top_srcdir/tests/lib.sh"
plan 4   # and daemons_clean at the finish

SOCK="ipm-$$-solo"
PORT=$(free_port solo)
solo_setup "$PORT" 64M ""
start_daemon solo --config "$T_DIR/solo.xml" --node solo --socket "$SOCK"
c() { timeout -k 5 60 "$IPMIRRORCTL" --socket "$SOCK" "$@"; }
wait_for 10 c status vol0 >/dev/null || bail "the daemon did not start: $(cat "$T_DIR/solo.log")"
export OCF_ROOT=/usr/lib/ocf OCF_RESKEY_lun=vol0 OCF_RESKEY_socket="$SOCK" OCF_RESKEY_ipmirrorctl="$IPMIRRORCTL"
# the agent's functions, without its action dispatch
AGENT_FNS=$(sed '/^usage()/,$d' "$top_srcdir/ocf/ipmirror")
# await SECONDS: await_in_service's exit status and when it returned
await() { ( set +eu; eval "$AGENT_FNS"; await_in_service "$1"; echo "$? $EPOCHREALTIME" ); }

c down vol0 >/dev/null
await 20 >"$T_DIR/aw1" 2>&1 & p=$!
sleep 2
t_up=$EPOCHREALTIME
c up vol0 >/dev/null
t_upd=$EPOCHREALTIME
wait "$p"
read -r rc t_ret <"$T_DIR/aw1"
check "down, then up 2 s later: await_in_service returned $rc, $(awk "BEGIN { printf \"%.2f\", ${t_ret:-0} - $t_upd }") s after up returned" \
	awk -v r="$rc" -v a="${t_ret:-0}" -v u="$t_up" -v d="$t_upd" 'BEGIN { exit !(r == 0 && a > u && a - d < 0.5) }'

t0=$EPOCHREALTIME
await 10 >"$T_DIR/aw2" 2>&1
read -r rc t_ret <"$T_DIR/aw2"
check "in service: await_in_service returned $rc in $(awk "BEGIN { printf \"%.2f\", ${t_ret:-0} - $t0 }") s" \
	awk -v r="$rc" -v a="${t_ret:-0}" -v t="$t0" 'BEGIN { exit !(r == 0 && a - t < 2) }'

c down vol0 >/dev/null
t0=$EPOCHREALTIME
await 2 >"$T_DIR/aw3" 2>&1
read -r rc t_ret <"$T_DIR/aw3"
check "down all along: await_in_service 2 returned $rc after $(awk "BEGIN { printf \"%.2f\", ${t_ret:-0} - $t0 }") s" \
	awk -v r="$rc" -v a="${t_ret:-0}" -v t="$t0" 'BEGIN { exit !(r == 1 && a - t >= 1.9 && a - t < 5) }'
finish
