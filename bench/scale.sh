#!/bin/bash
# shellcheck disable=SC2154  # n1_pid, n2_pid are set by tests/lib.sh
# bench/scale.sh - many LUNs on one pair (issue 18, item 5). Two ipmirrord
# nodes on loopback (as bench/mirror.sh), BENCH_LUNS (64) sync mirrored LUNs
# of 64 MiB each (sparse files):
#   1. start to all uptodate: from starting both daemons to every LUN
#      "uptodate" on node1, polled every 0.1 s; once for a new pair (the
#      initial sync of sparse files: holes go as ZERO) and once for a restart
#      after a clean stop (the everyday case, the target: < 2 s);
#   2. RSS of each daemon after BENCH_IDLE (5) s idle (target: < 64 MiB);
#   3. one LUN, then 16 LUNs at once, 4k randwrite QD32 each, through fio
#      --ioengine=nbd: the 16 together must reach at least one LUN's IOPS;
#   4. during the one-LUN run, perf stat on both daemons: CPU cycles (or, in a
#      VM without the cycles counter, task-clock) per mirrored 4 KiB write,
#      and the daemons' CPU time from /proc/PID/stat, which also counts the
#      NBD reader thread that fio's connection starts after perf attached.
# Prints "figure:" and "limit:" lines and a summary; also to BENCH_OUT.
#
#   top_builddir=BUILD bench/scale.sh      as root; prints its estimate (~2 min)
#   BENCH_LUNS=64 BENCH_RUNTIME=5 BENCH_IDLE=5 BENCH_DIR=/var/tmp BENCH_OUT=./bench-out
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
: "${top_srcdir:=$here}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
NLUNS=${BENCH_LUNS:-64}
RUNTIME=${BENCH_RUNTIME:-5}
IDLE=${BENCH_IDLE:-5}
NPAR=16
[ "$NLUNS" -ge "$NPAR" ] || NPAR=$NLUNS

die() { echo "bench/scale.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
for t in fio jq awk timeout; do command -v "$t" >/dev/null || die "$t not installed"; done
[ -x "$top_builddir/agent/ipmirrord" ] && [ -x "$top_builddir/agent/ipmirrorctl" ] ||
	die "no ipmirrord/ipmirrorctl in $top_builddir/agent (set top_builddir)"
HAVE_PERF=1
command -v perf >/dev/null || HAVE_PERF=0

TMPDIR=${BENCH_DIR:-/var/tmp}
export TMPDIR
# shellcheck source=../tests/lib.sh
. "$top_srcdir/tests/lib.sh"
# shellcheck source=lib.sh
. "$top_srcdir/bench/lib.sh"
set -euo pipefail
bench_cleanup() { set +e; t_cleanup; }
trap bench_cleanup EXIT
trap 'exit 1' INT TERM
# two starts (bounded at 60 s each, a few s expected), idle, two fio runs
bench_estimate $((2 * 10 + IDLE + 2 * (RUNTIME + 8) + 20)) "bench/scale.sh ($NLUNS LUNs)"
D=$T_DIR
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

specs=()
for i in $(seq 0 $((NLUNS - 1))); do specs+=("vol$i:64M:sync:yes:node1"); done
PAIR_JOURNAL_MAX=64M pair_setup "${specs[@]}"
"$IPMIRRORD" --check-config --config "$D/pair.xml" >/dev/null ||
	die "config rejected: $("$IPMIRRORD" --check-config --config "$D/pair.xml" 2>&1)"

n_uptodate() { ctl node1 status --json 2>/dev/null | jq '[.luns[] | select(.state == "uptodate")] | length'; }
# start_time: both daemons started; $took: seconds until every LUN is
# uptodate on node1 (not in a subshell: pair_start sets the PIDs)
start_time() {
	local t0 t n
	t0=$(now)
	pair_start || die "daemons did not start: $(tail -5 "$D"/n*.log)"
	while :; do
		n=$(n_uptodate) || n=0
		t=$(now)
		[ "${n:-0}" -ge "$NLUNS" ] && break
		awk -v a="$t" -v b="$t0" 'BEGIN { exit !(a - b > 60) }' &&
			die "not all $NLUNS LUNs uptodate 60 s after the start ($n are)"
		sleep 0.1
	done
	took=$(calc %.2f "$t - $t0")
}
start_time
first=$took
echo "figure: new pair, start to $NLUNS LUNs uptodate (initial sync of sparse files): $first s"
stop_pid "$n1_pid" || true
stop_pid "$n2_pid" || true
start_time
again=$took
echo "figure: restart after a clean stop, start to $NLUNS LUNs uptodate: $again s"

sleep "$IDLE"
rss() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
rss1=$(rss "$n1_pid"); rss2=$(rss "$n2_pid")
echo "figure: RSS after $IDLE s idle with $NLUNS LUNs: node1 $rss1 MiB, node2 $rss2 MiB"

# fio_luns FIRST COUNT NAME: 4k randwrite QD32 on LUNs FIRST.., one job each; total IOPS
fio_luns() {
	local args=() i
	for i in $(seq "$1" $(($1 + $2 - 1))); do
		args+=(--name="vol$i" --uri="nbd://127.0.0.1:$N1_NBD/vol$i")
	done
	sync
	timeout $((RUNTIME + 60)) fio --ioengine=nbd --rw=randwrite --bs=4k --iodepth=32 --size=64M \
		--time_based --runtime="$RUNTIME" --output-format=json --output="$D/$3.json" \
		"${args[@]}" >"$D/$3.out" 2>&1 || die "fio $3 failed: $(tail -3 "$D/$3.out")"
	jq '[.jobs[].write.iops] | add' "$D/$3.json"
}
# perf stat on both daemons for the one-LUN run (started just before fio)
ev=cycles,task-clock
if [ "$HAVE_PERF" = 1 ] && perf stat -e cycles -- true 2>&1 | grep -q 'not supported'; then
	ev=task-clock  # a VM without the cycles counter
fi
[ "$HAVE_PERF" = 1 ] && {
	timeout $((RUNTIME + 30)) perf stat -x, -e "$ev" -p "$n1_pid,$n2_pid" -o "$D/perf.csv" -- \
		sleep $((RUNTIME + 1)) >/dev/null 2>&1 &
	PERF_PID=$!
	T_PIDS="$T_PIDS $PERF_PID"
}
# and both daemons' CPU time from /proc (every thread, also the NBD reader
# that fio's connection starts after perf attached: perf -p misses it)
proc_ticks() { awk '{ t += $14 + $15 } END { print t }' "/proc/$n1_pid/stat" "/proc/$n2_pid/stat"; }
t0=$(proc_ticks)
one=$(fio_luns 0 1 one)
t1=$(proc_ticks)
[ "$HAVE_PERF" = 1 ] && { wait "$PERF_PID" || true; }
par=$(fio_luns 0 "$NPAR" par)
printf 'figure: one LUN, 4k randwrite QD32, sync: %.0f IOPS\n' "$one"
printf 'figure: %d LUNs at once, 4k randwrite QD32 each, sync: %.0f IOPS together\n' "$NPAR" "$par"
writes=$(jq '.jobs[0].write.total_ios' "$D/one.json")
cyc=-; cpu_us=-
if [ -s "$D/perf.csv" ]; then
	cyc=$(awk -F, -v n="$writes" '$3 ~ /^cycles/ && $1 ~ /^[0-9]/ { printf "%.0f", $1 / n }' "$D/perf.csv")
	cpu_us=$(awk -F, -v n="$writes" '$3 ~ /task-clock/ && $1 ~ /^[0-9]/ { printf "%.1f", $1 * 1000 / n }' "$D/perf.csv")
	[ -n "$cyc" ] || cyc="not supported here"
	echo "figure: perf stat on both daemons during the one-LUN run ($writes writes, $(tr '\n' ' ' <"$D/perf.csv" | sed 's/  */ /g'))"
fi
echo "figure: CPU cycles per mirrored 4 KiB write (both daemons): $cyc"
echo "figure: CPU time per mirrored 4 KiB write (both daemons, perf stat -p): $cpu_us us"
proc_us=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$writes" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
echo "figure: CPU time per mirrored 4 KiB write (both daemons, every thread, /proc): $proc_us us"

stop_pid "$n1_pid" || true
stop_pid "$n2_pid" || true
{
echo
echo "Summary ($NLUNS LUNs of 64 MiB, loopback pair, load average $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-52s %14s\n' figure value
printf '%-52s %14s\n' "new pair: start to all uptodate" "$first s"
printf '%-52s %14s\n' "restart: start to all uptodate" "$again s"
printf '%-52s %14s\n' "RSS idle node1 / node2" "$rss1 / $rss2 MiB"
printf '%-52s %14.0f\n' "one LUN 4k QD32 sync IOPS" "$one"
printf '%-52s %14.0f\n' "$NPAR LUNs at once, IOPS together" "$par"
printf '%-52s %14s\n' "CPU cycles per mirrored 4 KiB write" "$cyc"
printf '%-52s %14s\n' "CPU us per mirrored 4 KiB write (perf -p)" "$cpu_us"
printf '%-52s %14s\n' "CPU us per mirrored 4 KiB write (/proc, all)" "$proc_us"
echo
bench_limit "2 s / restart to all uptodate, s (target < 2 s)" 2 "$again" 1
bench_limit "64 MiB / RSS idle node1, MiB (target < 64 MiB)" 64 "$rss1" 1
bench_limit "$NPAR LUNs at once / one LUN, IOPS" "$par" "$one" 1
} | tee "$BENCH_OUT/scale-$BENCH_STAMP.txt"
echo "report: $BENCH_OUT/scale-$BENCH_STAMP.txt"
