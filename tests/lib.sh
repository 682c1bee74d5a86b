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
# daemons started by start_daemon/node_start: "PID:LOG" each; those stopped
# (PID:STATUS) and those killed on purpose, for daemons_clean
T_DAEMONS=""
T_STOPPED=""
T_KILLED=""
# an ERE of the error/crit log lines a test provokes on purpose
: "${T_LOG_ALLOW:=}"
# seconds an ipmirrorctl call, a daemon's stop and the whole test may take
: "${CTL_TIMEOUT:=20}"
: "${STOP_TIMEOUT:=30}"
: "${T_LIMIT:=900}"

plan() { echo "1..$1"; }
ok() { T_NUM=$((T_NUM + 1)); echo "ok $T_NUM - $*"; }
not_ok() { T_NUM=$((T_NUM + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_NUM - $*"; }
diag() { echo "# $*"; }
# check "description" command...: ok when the command succeeds
check() { local d="$1"; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
bail() { echo "Bail out! $*"; exit 1; }

t_cleanup() {
	local p
	[ -z "${T_WATCHDOG:-}" ] || kill "$T_WATCHDOG" 2>/dev/null
	for p in $T_PIDS; do kill "$p" 2>/dev/null; done
	for p in $T_PIDS; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -9 "$p" 2>/dev/null
	done
	for p in ${T_NETNS:-}; do ip netns del "$p" 2>/dev/null; done
	[ -n "${T_KEEP:-}" ] || rm -rf "$T_DIR"
}
trap t_cleanup EXIT
# a wedged daemon or client fails the test instead of hanging make check
# (it sleeps a second at a time: stopping it leaves no long sleep behind)
t_watchdog() {
	local end=$(( $(date +%s) + T_LIMIT ))
	while [ "$(date +%s)" -lt "$end" ]; do sleep 1; done
	echo "Bail out! the test ran out of its $T_LIMIT s (T_LIMIT)"
	kill -TERM $$
	# the test's own children (a foreground client would hold up the trap)
	sleep 2; pkill -TERM -P $$
}
# disowned: a test's bare `wait` (for its own jobs) must not wait for it
t_watchdog & T_WATCHDOG=$!
disown "$T_WATCHDOG"
trap 'exit 1' TERM

# lab_lock: one Pacemaker lab at a time (make -j check), however long the
# others take: the watchdog starts again once the lock is held
lab_lock() {
	exec 8>"${TMPDIR:-/tmp}/ipmirror-lab.lock"
	flock -w "$T_LIMIT" 8 || bail "another Pacemaker lab held the lock for $T_LIMIT s"
	kill "$T_WATCHDOG" 2>/dev/null
	t_watchdog & T_WATCHDOG=$!
	disown "$T_WATCHDOG"
}

# free_port NAME [N]: the first of N consecutive free TCP ports on loopback,
# from a range chosen by a hash of the test and NAME, so parallel tests do
# not collide. Below the kernel's ephemeral range (32768 and up by default):
# there, a port free while its daemon restarts could become the source port
# of some client's connection, or of a dial to it (a TCP self-connect).
free_port() {
	local n=${2:-1} base p i busy
	base=$(( 20000 + ( $(echo "$0 $1" | cksum | cut -d' ' -f1) % 11500 ) ))
	for p in $(seq "$base" 7 $((base + 700))); do
		busy=
		for i in $(seq 0 $((n - 1))); do
			if (exec 3<>"/dev/tcp/127.0.0.1/$((p + i))") 2>/dev/null; then busy=1; break; fi
			# heartbeats are UDP: a bound UDP port is taken too
			if [ -n "$(ss -Hunl "( sport = :$((p + i)) )" 2>/dev/null)" ]; then busy=1; break; fi
		done
		[ -n "$busy" ] || { echo "$p"; return 0; }
	done
	return 1
}

# wait_for N command...: retry the command every 0.1 s until it succeeds,
# for at most N seconds of wall-clock time (however long each try takes)
wait_for() {
	local end=$(( $(date +%s) + $1 )); shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# within N command...: as wait_for, retrying every 0.5 s (for costly
# commands: a crm_mon takes a while)
within() {
	local end=$((SECONDS + $1)); shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.5
	done
}

# wait_while N command...: retry until the command fails, at most N seconds
wait_while() {
	local end=$(( $(date +%s) + $1 )); shift
	while :; do
		"$@" >/dev/null 2>&1 || return 0
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# start_daemon NAME ARGS...: run ipmirrord in the foreground in the background,
# log in $T_DIR/NAME.log, PID in variable NAME_pid
start_daemon() {
	local name="$1"; shift
	"$IPMIRRORD" --foreground "$@" >"$T_DIR/$name.log" 2>&1 &
	local pid=$!
	T_PIDS="$T_PIDS $pid"
	T_DAEMONS="$T_DAEMONS $pid:$T_DIR/$name.log"
	eval "${name}_pid=$pid"
}

# stop_pid PID: terminate one process we started and wait for it, at most
# STOP_TIMEOUT s (then kill -9); returns its exit status, remembered for
# daemons_clean
stop_pid() {
	local rc end=$(( $(date +%s) + STOP_TIMEOUT ))
	kill "$1" 2>/dev/null
	while kill -0 "$1" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.1; done
	kill -0 "$1" 2>/dev/null && { echo "# PID $1 did not stop in $STOP_TIMEOUT s: kill -9"; kill -9 "$1"; }
	wait "$1" 2>/dev/null; rc=$?
	T_PIDS=$(echo "$T_PIDS" | sed "s/\b$1\b//")
	T_STOPPED="$T_STOPPED $1:$rc"
	return "$rc"
}

# kill9 PID: kill -9 a daemon on purpose (daemons_clean does not count it)
kill9() {
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	T_PIDS=$(echo "$T_PIDS" | sed "s/\b$1\b//")
	T_KILLED="$T_KILLED $1"
}

# daemons_clean: every daemon the test started and did not kill9 exits 0
# (those still running are stopped here), and no daemon log holds an
# error/crit line the test did not announce in T_LOG_ALLOW (an ERE).
# finish runs it as the test's last check when daemons were started.
daemons_clean() {
	local d pid log rc bad="" logs="" lines
	for d in $T_DAEMONS; do
		pid=${d%%:*}; log=${d#*:}
		case " $logs " in *" $log "*) ;; *) logs="$logs $log" ;; esac
		case " $T_KILLED " in *" $pid "*) continue ;; esac
		case " $T_STOPPED " in
		*" $pid:"*) rc=$(echo "$T_STOPPED" | tr ' ' '\n' | sed -n "s/^$pid://p" | tail -n1) ;;
		*) if kill -0 "$pid" 2>/dev/null; then stop_pid "$pid"; rc=$?
		   else wait "$pid" 2>/dev/null; rc=$?; fi ;;
		esac
		[ "$rc" = 0 ] || bad="$bad $pid($(basename "$log"))=$rc"
	done
	# shellcheck disable=SC2086
	lines=$(grep -hE '\] (error|crit|alert|emerg): ' $logs 2>/dev/null |
		{ if [ -n "$T_LOG_ALLOW" ]; then grep -vE "$T_LOG_ALLOW"; else cat; fi; })
	[ -z "$bad" ] || diag "daemons that did not exit cleanly (pid(log)=status):$bad"
	[ -z "$lines" ] || echo "$lines" | head -n 20 | sed 's/^/# unexpected: /'
	check "the daemons exited cleanly and logged no unexpected error/crit line" \
		test -z "$bad$lines"
}

finish() {
	[ -z "$T_DAEMONS" ] || daemons_clean
	[ "$T_FAILED" -eq 0 ]; exit $?
}

# ---- two nodes on loopback -------------------------------------------------
# pair_setup: writes $T_DIR/pair.xml for node1/node2 on 127.0.0.1 with
# distinct ports, a secret, and the LUNs given as "name:size:mode:mirrored:primary"
# arguments; each node gets its own backing file $T_DIR/NODE-NAME.img.
# Sets N1_NBD / N2_NBD (NBD ports) and N1_DATA / N2_DATA (data ports).
pair_setup() {
	local base a1=${N1_ADDR:-127.0.0.1} a2=${N2_ADDR:-127.0.0.1}
	base=$(free_port pair 6)
	N1_DATA=$base; N1_HB=$((base + 1)); N1_NBD=$((base + 2))
	N2_DATA=$((base + 3)); N2_HB=$((base + 4)); N2_NBD=$((base + 5))
	( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T_DIR/secret" )
	{
		echo '<ipmirror version="1">'
		echo "  <secret file=\"$T_DIR/secret\"/>"
		echo "  <connections count=\"${PAIR_CONNS:-4}\"/>"
		echo "  <heartbeat ${PAIR_HB:-interval=\"0.5\" timeout=\"2.0\" probation=\"3\"}/>"
		echo "  <log level=\"info\"/>"
		[ -z "${PAIR_RESYNC_RATE:-}" ] || echo "  <resync rate=\"$PAIR_RESYNC_RATE\"/>"
		echo "  <node name=\"node1\"><data address=\"$a1\" port=\"$N1_DATA\"/><heartbeat address=\"$a1\" port=\"$N1_HB\"/><nbd address=\"$a1\" port=\"$N1_NBD\"/></node>"
		echo "  <node name=\"node2\"><data address=\"$a2\" port=\"$N2_DATA\"/><heartbeat address=\"$a2\" port=\"$N2_HB\"/><nbd address=\"$a2\" port=\"$N2_NBD\"/></node>"
		local spec name size mode mirrored primary
		for spec in "$@"; do
			IFS=: read -r name size mode mirrored primary <<<"$spec"
			echo "  <lun name=\"$name\" size=\"$size\" mode=\"$mode\" mirrored=\"$mirrored\" primary=\"$primary\">"
			echo "    <backing node=\"node1\" path=\"$T_DIR/node1-$name.img\"${PAIR_IO:+ io=\"$PAIR_IO\"}/>"
			echo "    <backing node=\"node2\" path=\"$T_DIR/node2-$name.img\"${PAIR_IO:+ io=\"$PAIR_IO\"}/>"
			[ -z "${PAIR_JOURNAL_MAX:-}" ] || echo "    <journal max-size=\"$PAIR_JOURNAL_MAX\"/>"
			echo "  </lun>"
			truncate -s "$size" "$T_DIR/node1-$name.img" "$T_DIR/node2-$name.img"
		done
		echo '</ipmirror>'
	} >"$T_DIR/pair.xml"
}

# solo_setup PORT SIZE [NBD_ATTRS]: one node "solo" serving NBD on
# 127.0.0.1:PORT (NBD_ATTRS: more attributes of its <nbd>) with one unmirrored
# LUN vol0 of SIZE on $T_DIR/vol0.img, config in $T_DIR/solo.xml. Sets IMG
# and URI.
solo_setup() {
	IMG="$T_DIR/vol0.img"
	URI="nbd://127.0.0.1:$1/vol0"
	truncate -s "$2" "$IMG"
	cat >"$T_DIR/solo.xml" <<EOF
<ipmirror version="1">
  <log level="info"/>
  <node name="solo">
    <nbd address="127.0.0.1" port="$1"${3:+ $3}/>
  </node>
  <lun name="vol0" size="$2" mode="sync" mirrored="no" primary="solo">
    <backing path="$IMG"/>
  </lun>
</ipmirror>
EOF
}

# in_node NODE CMD...: run CMD where NODE lives (its network namespace when
# NS_node1 / NS_node2 are set, else here)
in_node() {
	local node="$1" ns; shift
	ns=$(eval echo "\${NS_$node:-}")
	if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi
}

# node_start NODE [ARGS]: one daemon of the pair, PID in NODE_pid (n1/n2)
node_start() {
	local node="$1" short ns; shift
	short=n${node#node}
	ns=$(eval echo "\${NS_$node:-}")
	# started directly (ip netns exec execs it), so $! is the daemon itself
	if [ -n "$ns" ]; then
		ip netns exec "$ns" "$IPMIRRORD" --foreground --config "$T_DIR/pair.xml" \
			--node "$node" --socket "ipm-$$-$node" "$@" >>"$T_DIR/$short.log" 2>&1 &
	else
		"$IPMIRRORD" --foreground --config "$T_DIR/pair.xml" \
			--node "$node" --socket "ipm-$$-$node" "$@" >>"$T_DIR/$short.log" 2>&1 &
	fi
	local pid=$!
	T_PIDS="$T_PIDS $pid"
	T_DAEMONS="$T_DAEMONS $pid:$T_DIR/$short.log"
	eval "${short}_pid=$pid"
	local addr port
	addr=$(eval echo "\${N${node#node}_ADDR:-127.0.0.1}")
	port=$(eval echo "\$N${node#node}_NBD")
	wait_for 10 in_node "$node" bash -c "exec 3<>/dev/tcp/$addr/$port"
}

# pair_start: both daemons, admin sockets ipm-$$-node1 / -node2
pair_start() {
	node_start node1 "$@" && node_start node2 "$@"
}

# pair_local SPEC...: the pair here, on loopback (pair_setup SPEC...,
# pair_start); bails out, with the daemons' logs, when they do not start.
# PAIR_HB and the other PAIR_* settings apply as to pair_setup.
pair_local() {
	pair_setup "$@"
	pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
}

# pair_up SPEC...: the same in network namespaces of its own (netns_pair first)
pair_up() {
	netns_pair || bail "cannot create network namespaces"
	pair_local "$@"
}

# ctl NODE ARGS...: ipmirrorctl on NODE's daemon, at most CTL_TIMEOUT s
ctl() {
	local node="$1"; shift
	in_node "$node" timeout -k 5 "$CTL_TIMEOUT" "$IPMIRRORCTL" --socket "ipm-$$-$node" "$@"
}

# lun_field NODE LUN FIELD: one field of the LUN in NODE's status JSON
lun_field() { ctl "$1" status "$2" --json | jq -r ".luns[0].$3"; }
lun_state_is() { [ "$(lun_field "$1" "$2" state)" = "$3" ]; }
field_above() { [ "$(lun_field "$1" "$2" "$3")" -gt "$4" ]; }
# field_grows NODE LUN FIELD [SECONDS]: wait until a counter of the LUN
# (mirrored_bytes, journal_bytes) grows: a load is really running
field_grows() {
	local b0; b0=$(lun_field "$1" "$2" "$3")
	wait_for "${4:-20}" field_above "$1" "$2" "$3" "${b0:-0}"
}

# lun_watch NODE LUN SECONDS FILE: every 0.2 s for SECONDS, one line
# "STATE JOURNAL_BYTES" of the LUN into FILE (run it in the background)
lun_watch() {
	local end=$(( $(date +%s) + $3 ))
	while [ "$(date +%s)" -lt "$end" ]; do
		ctl "$1" status "$2" --json | jq -r '.luns[0] | "\(.state) \(.journal_bytes)"' >>"$4"
		sleep 0.2
	done
}

# ---- network namespaces for fault tests -----------------------------------
# netns_pair: two namespaces joined by a veth pair, 10.201.0.1 (node1) and
# 10.201.0.2 (node2); removed on exit. Sets NS_node1/NS_node2, N1_ADDR/N2_ADDR,
# VETH1/VETH2 (the interface inside each namespace).
netns_pair() {
	local tag=$$
	NS_node1="ipm${tag}a"; NS_node2="ipm${tag}b"
	VETH1="v${tag}a"; VETH2="v${tag}b"
	ip netns add "$NS_node1" && ip netns add "$NS_node2" || return 1
	T_NETNS="$NS_node1 $NS_node2"
	ip link add "$VETH1" type veth peer name "$VETH2" || return 1
	ip link set "$VETH1" netns "$NS_node1"
	ip link set "$VETH2" netns "$NS_node2"
	ip -n "$NS_node1" addr add 10.201.0.1/24 dev "$VETH1"
	ip -n "$NS_node2" addr add 10.201.0.2/24 dev "$VETH2"
	ip -n "$NS_node1" link set lo up; ip -n "$NS_node2" link set lo up
	ip -n "$NS_node1" link set "$VETH1" up; ip -n "$NS_node2" link set "$VETH2" up
	N1_ADDR=10.201.0.1; N2_ADDR=10.201.0.2
}
link_down() { ip -n "$NS_node1" link set "$VETH1" down; }
link_up() { ip -n "$NS_node1" link set "$VETH1" up; }

# ns_procs NS...: the processes in the namespaces as PID:STARTTIME words (the
# start time tells a process from a later one that reuses its PID)
ns_procs() {
	local ns p st
	for ns in "$@"; do
		for p in $(ip netns pids "$ns"); do
			st=$(cut -d' ' -f22 "/proc/$p/stat" 2>/dev/null) && echo "$p:$st"
		done
	done | tr '\n' ' '
}
# procs_left "PID:STARTTIME...": one line per process of the list still alive
# (a zombie is dead: orphans of a namespace are reaped by init, not by us)
procs_left() {
	local e st
	for e in $1; do
		st=$(cut -d' ' -f3,22 "/proc/${e%%:*}/stat" 2>/dev/null)
		[ "${st#* }" != "${e#*:}" ] || [ "${st%% *}" = Z ] ||
			echo "${e%%:*}:$(cut -d" " -f1-5 "/proc/${e%%:*}/stat" 2>/dev/null)"
	done
}

# connections_up NODE N: NODE reports at least N connections up
connections_up() {
	[ "$(ctl "$1" status --json | jq '[.connections[] | select(.status == "up")] | length')" -ge "$2" ]
}

# fio_verify URI JOBNAME [extra fio args...]: random writes with crc32c
# verification (also during the write phase, so time-based runs verify too);
# succeeds when fio exited 0 with no errors. FIO_NODE runs it
# inside that node's namespace. The job's arguments and its verify state
# stay in $T_DIR for fio_verify_only.
fio_verify() {
	local uri="$1" name="$2" rt=60 a; shift 2
	for a in "$@"; do case $a in --runtime=*) rt=${a#--runtime=} ;; esac; done
	printf '%s\n' "$@" >"$T_DIR/$name.args"
	# bounded: a wedged server fails fio after its runtime and a minute
	(cd "$T_DIR" && in_node "${FIO_NODE:-here}" timeout -k 10 $((rt + 60)) fio --name="$name" \
		--ioengine=nbd --uri="$uri" $(fio_job_args) --do_verify=1 \
		--verify_backlog=1024 --verify_state_save=1 --runtime=60 --output-format=json \
		--output="$T_DIR/$name.json" "$@") >"$T_DIR/$name.out" 2>&1 || return 1
	# fio may put warnings before the JSON document
	[ "$(sed -n '/^{/,$p' "$T_DIR/$name.json" | jq '[.jobs[].error] | add')" = 0 ]
}

# load_start SIZE SECONDS [FIO_ARGS...]: a verifying write load (fio_verify's
# job "load") through node1's NBD server on vol0, in the background for
# SECONDS; its PID in fio_pid (`wait $fio_pid` is fio_verify's verdict)
load_start() {
	local size="$1" secs="$2"; shift 2
	FIO_NODE=node1 fio_verify "nbd://${N1_ADDR:-127.0.0.1}:$N1_NBD/vol0" load --size="$size" \
		--time_based --runtime="$secs" "$@" &
	fio_pid=$!
}

fio_job_args() { echo "--rw=randwrite --bs=4k --iodepth=32 --size=32M --verify=crc32c --verify_fatal=1"; }

# fio_verify_only URI JOBNAME: reads back through URI (another node after a
# failover, FIO_NODE) what fio_verify's job JOBNAME wrote, with its saved
# verify state: every block it completed must carry its own checksum there
fio_verify_only() {
	local uri="$1" name="$2" a args=()
	while read -r a; do
		case $a in --time_based | --runtime=* | --rate_iops=*) ;; *) args+=("$a") ;; esac
	done <"$T_DIR/$name.args"
	(cd "$T_DIR" && in_node "${FIO_NODE:-here}" timeout -k 10 120 fio --name="$name" \
		--ioengine=nbd --uri="$uri" $(fio_job_args) --verify_only --verify_state_load=1 \
		--output-format=json --output="$T_DIR/$name-verify.json" "${args[@]}") \
		>"$T_DIR/$name-verify.out" 2>&1 || return 1
	[ "$(sed -n '/^{/,$p' "$T_DIR/$name-verify.json" | jq '[.jobs[].error] | add')" = 0 ] &&
		[ "$(sed -n '/^{/,$p' "$T_DIR/$name-verify.json" | jq '[.jobs[].read.io_bytes] | add')" -gt 0 ]
}

# failover_verify JOBNAME [LUN]: node1 stopped, the LUN (vol0) promoted on
# node2, and job JOBNAME's blocks verified there (fio --verify_only)
failover_verify() {
	local name="$1" lun="${2:-vol0}"
	kill -0 "$n1_pid" 2>/dev/null && { stop_pid "$n1_pid" || return 1; }
	wait_for 20 ctl node2 promote "$lun" || { diag "promote: $(ctl node2 promote "$lun" 2>&1)"; return 1; }
	FIO_NODE=node2 fio_verify_only "nbd://${N2_ADDR:-127.0.0.1}:$N2_NBD/$lun" "$name"
}
