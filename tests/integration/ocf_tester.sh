#!/bin/bash
# The OCF agent alone on one node whose peer is absent (node2 of the config
# never runs): resource-agents' ocf-tester passes on vol0 with no complaint
# but the known one about the OCF 1.0 DTD, while vol1, started first by the
# agent, keeps the daemon running: so stop is `ipmirrorctl down` (monitor 7
# with the daemon up), start is `up`, and vol1 stays in service throughout.
# Then stopping vol1, the last LUN the agent runs here, stops the daemon. The
# Promoted monitor returns 191 (degraded) while journaling, 8 with
# degraded=false or as a probe; clone meta that cannot work (promoted-max 2,
# clone-max 3) is refused with a reason; reload-agent is advertised and runs.
# The agent starts the daemon as Pacemaker would have it: in a UTS namespace
# named node1 (the daemon's node is `uname -n`).
. "$top_srcdir/tests/lib.sh"
command -v ocf-tester >/dev/null 2>&1 || { echo "1..0 # SKIP ocf-tester not installed"; exit 0; }
command -v unshare >/dev/null 2>&1 || { echo "1..0 # SKIP unshare not installed"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (a UTS namespace, /run/ipmirror)"; exit 0; }
plan 17

AGENT="$top_srcdir/ocf/ipmirror"
SOCK="ipm-$$-ocf"
export OCF_ROOT=/usr/lib/ocf HA_RSCTMP="$T_DIR/rsctmp"
mkdir -p "$HA_RSCTMP"
pair_setup vol0:16M:sync:yes:node1 vol1:16M:sync:yes:node1
sed -i "s|<log level=\"info\"/>|<log level=\"info\" file=\"$T_DIR/daemon.log\"/>|" "$T_DIR/pair.xml"
# a command as node1 (uname -n): what the daemon the agent starts takes
AS_NODE1=(unshare -u bash -c 'hostname node1 && exec "$@"' as_node1)
ra() { # LUN ACTION [VAR=VALUE...]: the agent on LUN; exit status in RC
	local lun="$1" action="$2"; shift 2
	env OCF_RESKEY_lun="$lun" OCF_RESKEY_config="$T_DIR/pair.xml" OCF_RESKEY_socket="$SOCK" \
		OCF_RESKEY_ipmirrord="$IPMIRRORD" OCF_RESKEY_ipmirrorctl="$IPMIRRORCTL" \
		OCF_RESKEY_fencing=false OCF_RESKEY_CRM_meta_interval=9000 OCF_RESOURCE_INSTANCE="$lun" "$@" \
		"${AS_NODE1[@]}" "$AGENT" "$action" >>"$T_DIR/ra.log" 2>&1
	RC=$?
}
sctl() { timeout -k 5 "$CTL_TIMEOUT" "$IPMIRRORCTL" --socket "$SOCK" "$@"; }
state_of() { sctl status "$1" --json | jq -r '.luns[0].state'; }
daemon_pid() { cat "/run/ipmirror/ipmirrord-$SOCK.pid" 2>/dev/null; }
cleanup_daemon() { local p; p=$(daemon_pid); [ -z "$p" ] || kill "$p" 2>/dev/null; }
trap 'cleanup_daemon; t_cleanup' EXIT

ra vol1 start
check "agent start vol1: the daemon runs, vol1 in service" \
	eval '[ $RC = 0 ] && [ -n "$(daemon_pid)" ] && [ "$(state_of vol1)" != down ]'
P0=$(daemon_pid)
# the daemon serves vol0 too (its config's); the agent's stop takes it down
ra vol0 stop
check "agent stop vol0 (never started by it): down, the daemon serves vol1 on" \
	eval '[ $RC = 0 ] && [ "$(state_of vol0)" = down ] && [ "$(daemon_pid)" = "$P0" ] && [ "$(state_of vol1)" != down ]'

timeout 300 "${AS_NODE1[@]}" ocf-tester -n vol0 -o lun=vol0 -o config="$T_DIR/pair.xml" -o socket="$SOCK" \
	-o ipmirrord="$IPMIRRORD" -o ipmirrorctl="$IPMIRRORCTL" -o fencing=false \
	"$AGENT" >"$T_DIR/tester.out" 2>&1
grep -E '^\* ' "$T_DIR/tester.out" | sed 's/^/# /'
check "ocf-tester on vol0: the only error is the OCF 1.0 DTD one (1.1 meta-data)" \
	eval 'test "$(grep -c "^\* rc=" "$T_DIR/tester.out")" = 1 && grep -q "^\* rc=.*ra-api-1.dtd" "$T_DIR/tester.out" &&
		grep -q "failed 1 tests" "$T_DIR/tester.out"'
check "after ocf-tester's stop: vol0 down, monitor 7 with the daemon running" \
	eval '[ "$(state_of vol0)" = down ] && ra vol0 monitor && [ $RC = 7 ] && [ "$(daemon_pid)" = "$P0" ]'
check "vol1 stayed in service, the same daemon all along (pid $P0)" \
	eval '[ "$(state_of vol1)" != down ] && [ "$(daemon_pid)" = "$P0" ]'

# ---- the Promoted monitor: degraded while journaling (no peer here) ----------
ra vol0 start; ra vol0 promote
check "vol0 started and promoted: primary, journaling (the peer is absent)" \
	eval '[ $RC = 0 ] && [ "$(state_of vol0)" = journaling ]'
ra vol0 monitor
check "monitor of the journaling Promoted instance: 191 (degraded)" test $RC = 191
ra vol0 monitor OCF_RESKEY_degraded=false
check "with degraded=false: 8" test $RC = 8
ra vol0 monitor OCF_RESKEY_CRM_meta_interval=0
check "as a probe: 8" test $RC = 8
ra vol0 reload-agent OCF_RESKEY_degraded=false
check "reload-agent: 0" test $RC = 0
check "meta-data: reload-agent, and ipmirrorctl, ipmirrord, degraded reloadable" \
	eval '"$AGENT" meta-data | grep -q "<action name=\"reload-agent\"" &&
		[ "$("$AGENT" meta-data | grep -c "reloadable=\"1\"")" = 3 ]'

# ---- clone meta that cannot work ------------------------------------------------
ra vol0 monitor OCF_RESKEY_CRM_meta_promoted_max=2
check "promoted-max=2: 6 (not configured), the reason named" \
	eval '[ $RC = 6 ] && grep -q "promoted-max=2: a LUN has one primary" "$T_DIR/ra.log"'
ra vol0 start OCF_RESKEY_CRM_meta_clone_max=3
check "clone-max=3: start refused with 6, the reason named" \
	eval '[ $RC = 6 ] && grep -q "clone-max=3: a LUN has two copies" "$T_DIR/ra.log"'
ra vol0 monitor OCF_RESKEY_CRM_meta_master_max=2
check "the old name master-max=2: 6 as well" test $RC = 6

# ---- the last LUN's stop stops the daemon ----------------------------------------
ra vol0 demote; ra vol0 stop
check "vol0 stopped: down, the daemon still serves vol1" \
	eval '[ $RC = 0 ] && [ "$(state_of vol0)" = down ] && kill -0 "$P0"'
ra vol1 stop
check "vol1 stopped, the last LUN the agent ran here: the daemon exits" \
	eval '[ $RC = 0 ] && wait_while 20 kill -0 "$P0"'
ra vol1 monitor
check "monitor after that: 7; the daemon logged no error" \
	eval '[ $RC = 7 ] && ! grep -E "\] (error|crit): " "$T_DIR/daemon.log" | grep -v "attrd_updater\|attribute"'
sed 's/^/# ra: /' "$T_DIR/ra.log" | grep -i 'exit-reason\|error' | head -n 10
finish
