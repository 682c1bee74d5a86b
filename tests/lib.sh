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

# ---- two nodes on loopback -------------------------------------------------
# pair_setup: writes $T_DIR/pair.xml for node1/node2 on 127.0.0.1 with
# distinct ports, a secret, and the LUNs given as "name:size:mode:mirrored:primary"
# arguments; each node gets its own backing file $T_DIR/NODE-NAME.img.
# Sets N1_NBD / N2_NBD (NBD ports) and N1_DATA / N2_DATA (data ports).
pair_setup() {
	local base
	base=$(free_port pair)
	N1_DATA=$base; N1_HB=$((base + 1)); N1_NBD=$((base + 2))
	N2_DATA=$((base + 3)); N2_HB=$((base + 4)); N2_NBD=$((base + 5))
	( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T_DIR/secret" )
	{
		echo '<ipmirror version="1">'
		echo "  <secret file=\"$T_DIR/secret\"/>"
		echo "  <connections count=\"${PAIR_CONNS:-4}\"/>"
		echo "  <log level=\"info\"/>"
		echo "  <node name=\"node1\"><data address=\"127.0.0.1\" port=\"$N1_DATA\"/><heartbeat address=\"127.0.0.1\" port=\"$N1_HB\"/><nbd address=\"127.0.0.1\" port=\"$N1_NBD\"/></node>"
		echo "  <node name=\"node2\"><data address=\"127.0.0.1\" port=\"$N2_DATA\"/><heartbeat address=\"127.0.0.1\" port=\"$N2_HB\"/><nbd address=\"127.0.0.1\" port=\"$N2_NBD\"/></node>"
		local spec name size mode mirrored primary
		for spec in "$@"; do
			IFS=: read -r name size mode mirrored primary <<<"$spec"
			echo "  <lun name=\"$name\" size=\"$size\" mode=\"$mode\" mirrored=\"$mirrored\" primary=\"$primary\">"
			echo "    <backing node=\"node1\" path=\"$T_DIR/node1-$name.img\"/>"
			echo "    <backing node=\"node2\" path=\"$T_DIR/node2-$name.img\"/>"
			echo "  </lun>"
			truncate -s "$size" "$T_DIR/node1-$name.img" "$T_DIR/node2-$name.img"
		done
		echo '</ipmirror>'
	} >"$T_DIR/pair.xml"
}

# pair_start: both daemons, admin sockets ipm-$$-node1 / -node2
pair_start() {
	start_daemon n1 --config "$T_DIR/pair.xml" --node node1 --socket "ipm-$$-node1" "$@"
	start_daemon n2 --config "$T_DIR/pair.xml" --node node2 --socket "ipm-$$-node2" "$@"
	wait_for 10 tcp_open 127.0.0.1 "$N1_NBD" && wait_for 10 tcp_open 127.0.0.1 "$N2_NBD"
}

ctl() { local node="$1"; shift; "$IPMIRRORCTL" --socket "ipm-$$-$node" "$@"; }

# connections_up NODE N: NODE reports at least N connections up
connections_up() {
	[ "$(ctl "$1" status --json | jq '[.connections[] | select(.status == "up")] | length')" -ge "$2" ]
}

# fio_verify URI JOBNAME [extra fio args...]: random writes with crc32c
# verification; prints "ok" when fio exited 0 with no errors
fio_verify() {
	local uri="$1" name="$2"; shift 2
	fio --name="$name" --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
		--iodepth=32 --size=32M --verify=crc32c --verify_fatal=1 --do_verify=1 \
		--runtime=60 --output-format=json --output="$T_DIR/$name.json" "$@" \
		>"$T_DIR/$name.out" 2>&1 || return 1
	[ "$(jq '[.jobs[].error] | add' "$T_DIR/$name.json")" = 0 ]
}
