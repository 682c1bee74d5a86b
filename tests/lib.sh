# tests/lib.sh - shared helpers for the shell integration tests (TAP output).
# Source it; then call plan N, ok/not_ok, and start daemons with start_daemon.
# Every process started here is remembered by PID and killed on exit.

set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${IPMIRROR_SCHEMA:=$top_srcdir/engine/ipmirror.rng}"
export IPMIRROR_SCHEMA
export PATH="/usr/bin:/usr/sbin:$PATH"   # Debian's python3 for nbdsh

IPMIRRORD="$top_builddir/agent/ipmirrord"
IPMIRRORCTL="$top_builddir/agent/ipmirrorctl"
T_NUM=0
T_FAILED=0
T_PIDS=""
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ipmirror-test.XXXXXX")

plan() { echo "1..$1"; }
ok() { T_NUM=$((T_NUM + 1)); echo "ok $T_NUM - $*"; }
not_ok() { T_NUM=$((T_NUM + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_NUM - $*"; }
diag() { echo "# $*"; }
# check "description" command...: ok when the command succeeds
check() { local d="$1"; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
bail() { echo "Bail out! $*"; exit 1; }

t_cleanup() {
	local p
	for p in $T_PIDS; do kill "$p" 2>/dev/null; done
	for p in $T_PIDS; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -9 "$p" 2>/dev/null
	done
	[ -n "${T_KEEP:-}" ] || rm -rf "$T_DIR"
}
trap t_cleanup EXIT

# A free TCP port on loopback, chosen from a range by a hash of the test name
# and then probed, so parallel tests do not collide.
free_port() {
	local base=$(( 20000 + ( $(echo "$0 $*" | cksum | cut -d' ' -f1) % 20000 ) ))
	local p
	for p in $(seq "$base" $((base + 200))); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
	done
	return 1
}

# wait_for N command...: retry the command every 0.1 s for up to N seconds
wait_for() {
	local n=$(( $1 * 10 )); shift
	while [ $n -gt 0 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; n=$((n - 1)); done
	return 1
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# start_daemon NAME ARGS...: run ipmirrord in the foreground in the background,
# log in $T_DIR/NAME.log, PID in variable NAME_pid
start_daemon() {
	local name="$1"; shift
	"$IPMIRRORD" --foreground "$@" >"$T_DIR/$name.log" 2>&1 &
	local pid=$!
	T_PIDS="$T_PIDS $pid"
	eval "${name}_pid=$pid"
}

# stop_pid PID: terminate one process we started and wait for it
stop_pid() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	T_PIDS=$(echo "$T_PIDS" | sed "s/\b$1\b//")
}

finish() { [ "$T_FAILED" -eq 0 ]; exit $?; }
