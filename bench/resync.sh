#!/bin/bash
# shellcheck disable=SC2154  # n1_pid, n2_pid, NS_node1/2 are set by tests/lib.sh
# bench/resync.sh - resync speed after an outage, and the cost of journaling.
# Two ipmirrord nodes in their own network namespaces joined by a veth pair
# (tests/lib.sh netns_pair); on node1 a sync mirrored LUN vol0 (journal 4G),
# an unmirrored LUN vol1 and a sync mirrored LUN vol2 whose journal holds
# only 1 MiB (its backlog goes to the dirty-extent bitmap), each
# BENCH_BACKLOG MiB:
#   1. the physical limits, measured in the same run: raw TCP throughput over
#      the veth (1 and n streams, python3), a 4 KiB TCP ping-pong between the
#      namespaces, the backing itself (fio 1M QD8 O_DIRECT libaio on a file of
#      BENCH_DIR);
#   2. unmirrored write throughput: fio 1M seq write QD8 of the whole of vol1;
#   3. journal replay: the link goes down; once vol0 is journaling, the same
#      fio job writes the whole of vol0 (the journaling write throughput); the
#      link comes up and ipmirrorctl status --json is polled: journaling ->
#      probation -> resyncing -> uptodate. The replay time runs from the end
#      of probation to uptodate (probation excluded);
#   4. dirty-extent resync: the same with vol2 (past its 1 MiB journal the
#      writes mark 1 MiB extents; the resync copies them from node1's copy);
#   5. both daemons stop cleanly and vol0's and vol2's two backing files must
#      be equal, the journals empty.
# Targets (issue 18, item 4): replay and extent resync >= 0.8 x min(raw TCP,
# unmirrored 1M QD8 write); writing while journaling >= 0.9 x unmirrored; a
# 1 GiB journal replayed in < 10 s. Printed as "limit:" lines; the table and a
# chart (PNG, gnuplot) also go to BENCH_OUT.
# Probation is configured short (BENCH_PROBATION, default 2 s) so the run is
# quick; it is excluded from the resync times either way. The journal is
# likely still in the page cache when it is replayed (the files are synced
# before the link comes up, caches are not dropped: other users share them).
#
#   top_builddir=BUILD bench/resync.sh     as root; prints its estimate (~2 min)
#   BENCH_DIR=/var/tmp                     where the files go (4 x backlog)
#   BENCH_BACKLOG=1024                     backlog in MiB (also the LUN size)
#   BENCH_PROBATION=2                      seconds
#   BENCH_RUNTIME=5                        seconds of the ping-pong and raw runs
#   BENCH_OUT=./bench-out                  where the table and chart go
#   PREFILL=1                              backing files allocated whole
#                                          (fallocate; default: sparse)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
: "${top_srcdir:=$here}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
PY=/usr/bin/python3
PROBATION=${BENCH_PROBATION:-2}
BACKLOG_MIB=${BENCH_BACKLOG:-1024}
RUNTIME=${BENCH_RUNTIME:-5}
TCP_BYTES=$((2 << 30))
CONNS=4

die() { echo "bench/resync.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, ipmirrorctl)"
for t in ip fio jq cmp awk timeout; do command -v "$t" >/dev/null || die "$t not installed"; done
[ -x "$PY" ] || die "$PY not installed"
[ -x "$top_builddir/agent/ipmirrord" ] && [ -x "$top_builddir/agent/ipmirrorctl" ] ||
	die "no ipmirrord/ipmirrorctl in $top_builddir/agent (set top_builddir)"

TMPDIR=${BENCH_DIR:-/var/tmp}
export TMPDIR
# shellcheck source=../tests/lib.sh
. "$top_srcdir/tests/lib.sh"
# shellcheck source=lib.sh
. "$top_srcdir/bench/lib.sh"
set -euo pipefail
bench_cleanup() { set +e; t_cleanup; }   # lib.sh's cleanup expects errexit off
trap bench_cleanup EXIT
trap 'exit 1' INT TERM
# four TCP runs (~3 s each), ping-pong and raw, the prefill, four writes of
# the backlog and two resyncs (at ~200 MiB/s each on a slow machine), set-up
bench_estimate $((4 * 3 + 2 * RUNTIME + 10 + 7 * BACKLOG_MIB / 200 + 2 * (PROBATION + 5) + 30)) \
	"bench/resync.sh (backlog $BACKLOG_MIB MiB)"
D=$T_DIR
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

netns_pair || die "cannot create network namespaces"
PAIR_CONNS=$CONNS PAIR_JOURNAL_MAX=4G \
	PAIR_HB="interval=\"0.5\" timeout=\"2.0\" probation=\"$PROBATION\"" \
	pair_setup "vol0:${BACKLOG_MIB}M:sync:yes:node1" "vol1:${BACKLOG_MIB}M:sync:no:node1" \
	"vol2:${BACKLOG_MIB}M:sync:yes:node1"
# vol2: a journal of 1 MiB, so its backlog is resynced as dirty extents
sed -i '/<lun name="vol2"/,/<\/lun>/ s/max-size="4G"/max-size="1M"/' "$D/pair.xml"
grep -A4 '<lun name="vol2"' "$D/pair.xml" | grep -q 'max-size="1M"' || die "vol2's journal size not set"
# PREFILL=1: the backing files allocated whole (fallocate), as an admin may
# keep a file backing; by default sparse, as pair_setup makes them
if [ "${PREFILL:-0}" = 1 ]; then
	for f in "$D"/node[12]-vol[012].img; do fallocate -l "${BACKLOG_MIB}M" "$f" || die "fallocate $f failed"; done
	echo "figure: backing files: allocated whole (PREFILL=1, fallocate)"
else
	echo "figure: backing files: sparse (PREFILL=1: allocated whole)"
fi
"$IPMIRRORD" --check-config --config "$D/pair.xml" >/dev/null ||
	die "config rejected: $("$IPMIRRORD" --check-config --config "$D/pair.xml" 2>&1)"
echo "figure: probation configured: $PROBATION s (heartbeat interval 0.5 s, timeout 2.0 s), excluded from the resync times"

# ---- 1. raw TCP over the veth ------------------------------------------------
tcp1=$(tcp_gibs 1)
tcpn=$(tcp_gibs $CONNS)
tcp=$(awk -v a="$tcp1" -v b="$tcpn" 'BEGIN { print (a > b ? a : b) }')
echo "figure: raw TCP over the veth, 1 stream: $tcp1 GiB/s"
echo "figure: raw TCP over the veth, $CONNS streams: $tcpn GiB/s"
ping=$(bench_pingpong node2 "$N2_ADDR" node1 "$RUNTIME") || die "ping-pong failed"
echo "figure: 4 KiB TCP ping-pong node1 -> node2 over the veth (python3, TCP_NODELAY): $ping us"
dd if=/dev/zero of="$D/raw.img" bs=4M count=$((BACKLOG_MIB / 4)) status=none
rawb=$(bench_raw "$D/raw.img" write 1M 8 "$RUNTIME" "$D/raw.json") || die "fio failed on the raw backing"
raw=$(awk '{ printf "%.0f", $2 }' <<<"$rawb")
echo "figure: the backing itself (fio 1M write QD8, O_DIRECT libaio, $TMPDIR): $raw MiB/s"
rm -f "$D/raw.img"

# ---- 2. the pair, and unmirrored write throughput --------------------------
pair_start || die "daemons did not start: $(tail -5 "$D"/n*.log)"
wait_for 30 lun_state_is node1 vol0 uptodate ||
	die "vol0 not uptodate: $(ctl node1 status 2>&1; tail -5 "$D"/n*.log)"
wait_for 30 lun_state_is node1 vol2 uptodate || die "vol2 not uptodate: $(ctl node1 status 2>&1)"
echo "figure: io in effect (node1/node2): vol0 $(lun_field node1 vol0 io)/$(lun_field node2 vol0 io)"

# write_mibs NAME LUN: MiB/s of a 1M QD8 sequential write of the whole LUN
write_mibs() {
	sync
	timeout 300 ip netns exec "$NS_node1" fio --name="$1" --ioengine=nbd \
		--uri="nbd://$N1_ADDR:$N1_NBD/$2" --rw=write --bs=1M --iodepth=8 \
		--size="${BACKLOG_MIB}M" --output-format=json --output="$D/$1.json" >"$D/$1.out" 2>&1 ||
		die "fio $1 failed: $(tail -3 "$D/$1.out")"
	jq -r '.jobs[0].write.bw_bytes / 1048576 | floor' "$D/$1.json"
}
unmir=$(write_mibs unmirrored vol1)
echo "figure: unmirrored write (vol1, 1M QD8, ${BACKLOG_MIB} MiB): $unmir MiB/s"

# outage LUN: the link goes down, a backlog of the whole LUN is written (its
# MiB/s in $journ), the link comes up; $backlog: bytes to resync. The resync
# time ($resync s) is node1's own "resync complete, N bytes in M ms" (from
# the end of probation to live, to the ms). Cross-check from outside: polls
# of the LUN's state every 0.2 s (each poll costs the daemon an IPC
# connection: polling flat out slowed the resync it measured): the resync
# starts between the last probation (or journaling) poll and the first
# resyncing / uptodate poll, and ends between the last resyncing poll and
# the first uptodate poll; the midpoints give $polled, half the gaps $err.
outage() {
	local lun=$1 t0 st t_up prev="" t_pre t_start_lo="" t_start_hi="" t_end_lo="" t_end_hi=""
	local t_prob="" t_prob_lo="" state t
	t0=$(now)
	link_down
	wait_for 15 lun_state_is node1 "$lun" journaling ||
		die "$lun did not start journaling: $(ctl node1 status 2>&1)"
	echo "figure: $lun: link down -> journaling: $(calc %.1f "$(now) - $t0") s"
	journ=$(write_mibs "journaling-$lun" "$lun")
	echo "figure: $lun: write while the link is down (1M QD8, ${BACKLOG_MIB} MiB): $journ MiB/s"
	st=$(ctl node1 status "$lun" --json)
	backlog=$(jq -r '.luns[0].journal_bytes' <<<"$st")
	echo "figure: $lun: backlog: $backlog bytes ($(jq -r ".luns[0].journal_records" <<<"$st") journal records; dirty extents counted in), state $(jq -r '.luns[0].state' <<<"$st")"
	[ "$(jq -r '.luns[0].state' <<<"$st")" = journaling ] || die "$lun left journaling with the link down"
	[ "$backlog" -ge $((BACKLOG_MIB << 20)) ] || die "$lun's backlog is less than the ${BACKLOG_MIB} MiB written"
	sync    # writeback must not compete with the timed resync
	link_up
	t_up=$(now)
	t_pre=$t_up
	while :; do
		t=$(now)
		state=$(lun_field node1 "$lun" state 2>/dev/null) || state=error
		echo "$t $state" >>"$D/poll-$lun.log"
		[ "$state" = "$prev" ] || echo "# $lun: $(calc %.2f "$t - $t_up") s after link up: $state"
		case $state in
		journaling|outdated|error) ;;
		probation) [ -n "$t_prob" ] || { t_prob=$t; t_prob_lo=$t_pre; } ;;
		resyncing|uptodate)
			if [ -z "$t_start_hi" ]; then t_start_lo=$t_pre; t_start_hi=$t; fi
			if [ "$state" = uptodate ]; then t_end_lo=$t_pre; t_end_hi=$t; break; fi ;;
		*) die "unexpected state $state during the resync" ;;
		esac
		t_pre=$t
		prev=$state
		awk -v a="$t" -v b="$t_up" 'BEGIN { exit !(a - b > 300) }' && die "$lun not uptodate 300 s after link up"
		sleep 0.2
	done
	[ "$t_start_lo" != "$t_end_lo" ] || t_end_lo=$t_start_hi   # straight from probation to uptodate
	polled=$(calc %.3f "(($t_end_lo + $t_end_hi) - ($t_start_lo + $t_start_hi)) / 2")
	err=$(calc %.3f "(($t_end_hi - $t_end_lo) + ($t_start_hi - $t_start_lo)) / 2")
	echo "figure: $lun: link up -> uptodate: $(calc %.2f "$t_end_hi - $t_up") s ($(wc -l <"$D/poll-$lun.log") status polls)"
	[ -z "$t_prob" ] || echo "figure: $lun: probation observed: $(calc %.2f "$t_start_lo - $t_prob") to $(calc %.2f "$t_start_hi - $t_prob_lo") s (configured $PROBATION s)"
	echo "figure: $lun: resync time from the polls (probation excluded): $polled s +- $err s"
	own=$(grep -o 'resync complete, [0-9]* bytes in [0-9]* ms' "$D/n1.log" | tail -1) || true
	echo "figure: $lun: node1's log says: ${own:-nothing}"
	resync=$(awk '{ printf "%.3f", $6 / 1000 }' <<<"$own")
	[ -n "$resync" ] || resync=$polled
	echo "figure: $lun: resync time: $resync s"
}
mibs() { calc %.0f "$1 / 1048576 / ($2 > 0 ? $2 : 1e-9)"; }

# ---- 3. journal replay ---------------------------------------------------------
outage vol0
journ0=$journ replay=$resync replay_err=$err replay_bytes=$backlog
replay_mibs=$(mibs "$backlog" "$resync")
echo "figure: journal replay: $replay_mibs MiB/s"
# ---- 4. dirty-extent resync ----------------------------------------------------
outage vol2
journ2=$journ extent=$resync extent_err=$err
extent_mibs=$(mibs "$backlog" "$resync")
echo "figure: dirty-extent resync: $extent_mibs MiB/s"

# load from other users moves the reference: measure it again, keep the best
tcp1b=$(tcp_gibs 1)
tcpnb=$(tcp_gibs $CONNS)
echo "figure: raw TCP over the veth after the resyncs, 1 / $CONNS streams: $tcp1b / $tcpnb GiB/s"
tcp=$(printf '%s\n' "$tcp" "$tcp1b" "$tcpnb" | sort -g | tail -1)
tcp_mibs=$(calc %.0f "$tcp * 1024")
echo "figure: raw TCP reference (best of the four runs): $tcp GiB/s = $tcp_mibs MiB/s"

# ---- 5. the copies ---------------------------------------------------------
jb0=$(lun_field node1 vol0 journal_bytes)
jb2=$(lun_field node1 vol2 journal_bytes)
echo "figure: journal bytes after the resyncs: vol0 $jb0, vol2 $jb2"
stop_pid "$n1_pid" || true
stop_pid "$n2_pid" || true
same=yes
for l in vol0 vol2; do
	if cmp -s "$D/node1-$l.img" "$D/node2-$l.img"; then echo "figure: $l backing files identical after the resync: yes"
	else echo "figure: $l backing files identical after the resync: NO"; same=no; fi
done

# ---- summary ---------------------------------------------------------------
lim=$(awk -v a="$tcp_mibs" -v b="$unmir" 'BEGIN { print (a < b) ? a : b }')
gib_s=$(calc %.2f "$replay * 1073741824 / $replay_bytes")
{
echo
echo "Summary (backlog $BACKLOG_MIB MiB per LUN, probation $PROBATION s excluded, veth between two netns)"
printf '%-44s %14s\n' figure value
printf '%-44s %14s\n' "raw TCP (best of 1/$CONNS streams x2)" "$tcp_mibs MiB/s"
printf '%-44s %14s\n' "4 KiB TCP ping-pong round trip" "$ping us"
printf '%-44s %14s\n' "the backing (fio 1M QD8 O_DIRECT)" "$raw MiB/s"
printf '%-44s %14s\n' "unmirrored write 1M QD8" "$unmir MiB/s"
printf '%-44s %14s\n' "write while journaling 1M QD8 (vol0)" "$journ0 MiB/s"
printf '%-44s %14s\n' "write while marking extents 1M QD8 (vol2)" "$journ2 MiB/s"
printf '%-44s %14s\n' "journal replay" "$replay_mibs MiB/s"
printf '%-44s %14s\n' "  time (node1's log; polls: +- $replay_err s)" "$replay s"
printf '%-44s %14s\n' "dirty-extent resync" "$extent_mibs MiB/s"
printf '%-44s %14s\n' "  time (node1's log; polls: +- $extent_err s)" "$extent s"
printf '%-44s %14s\n' "copies identical, journals empty" "$same $jb0/$jb2"
echo
echo "Limits: min(raw TCP, unmirrored write) = $lim MiB/s, same run"
bench_limit "journal replay / min(raw TCP, unmirrored write), MiB/s" "$replay_mibs" "$lim" 0.8
bench_limit "dirty-extent resync / min(raw TCP, unmirrored write), MiB/s" "$extent_mibs" "$lim" 0.8
bench_limit "write while journaling / unmirrored write, MiB/s" "$journ0" "$unmir" 0.9
bench_limit "10 s / time to replay 1 GiB (target < 10 s)" 10 "$gib_s" 1
bench_limit "unmirrored write / the backing (no target), MiB/s" "$unmir" "$raw" 0
} | tee "$BENCH_OUT/resync-$BENCH_STAMP.txt"
{
	echo "what raw-TCP backing unmirrored journaling replay extent-resync"
	echo "MiB/s $tcp_mibs $raw $unmir $journ0 $replay_mibs $extent_mibs"
} >"$BENCH_OUT/resync-$BENCH_STAMP.dat"
bench_chart "$BENCH_OUT/resync-$BENCH_STAMP.dat" "$BENCH_OUT/resync-$BENCH_STAMP.png" \
	"bench/resync.sh $(date +%F): backlog $BACKLOG_MIB MiB, node1 -> node2 over a veth" "MiB/s"
echo "report: $BENCH_OUT/resync-$BENCH_STAMP.txt"
[ "$same" = yes ] && [ "$jb0" = 0 ] && [ "$jb2" = 0 ] ||
	die "a resync left the copies different or a journal non-empty"
