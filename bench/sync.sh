#!/bin/bash
# shellcheck disable=SC2154  # n1_pid, n2_pid, NS_node1/2, N1/N2_ADDR are set by tests/lib.sh
# bench/sync.sh - the initial sync and the online verify (issue 16, item 6).
# Two ipmirrord nodes in their own network namespaces joined by a veth pair
# (tests/lib.sh netns_pair), a sync mirrored LUN whose copies have no common
# history (no generation files):
#   1. the physical limits, measured in the same run: raw TCP throughput over
#      the veth (1 and n streams of 1 MiB sends, python3, best of four runs),
#      the backing itself (fio 1M QD8 O_DIRECT libaio on a file of BENCH_DIR:
#      write, then read of the same file, then both mixed 50/50: a copy on
#      one disk reads and writes it at once);
#   2. initial sync of a dense LUN: node1's backing is BENCH_SIZE MiB of fio's
#      (non-zero) data, written O_DIRECT (so not in the page cache), node2's
#      a blank file; node2 starts first (inconsistent), then node1; the time
#      is node1's own "resync complete, N bytes in M ms", cross-checked by
#      the wall clock from node1's start to node2's uptodate; the copies must
#      end byte-identical;
#   3. online verify of the two equal copies (ipmirrorctl verify vol0 on
#      node1, no host load): both backings are synced and dropped from the
#      page cache first (per file: dd iflag=nocache, POSIX_FADV_DONTNEED; no
#      global drop_caches, other users share the machine), fincore shows what
#      stayed cached; the time is node1's "verify done in M ms: N bytes
#      compared", which must report 0 out of sync;
#   4. initial sync of a blank sparse LUN of BENCH_SPARSE (default 1T, sparse
#      files): the wall clock from node1's start to node2's uptodate (the
#      daemon's start, the connections and the probation included).
# Targets (issue 16, item 6), printed as "limit:" lines: initial sync >= 0.8
# x min(raw TCP, the backing's 1M write) (with both nodes' files on the one
# disk of BENCH_DIR a second line shows the ratio to the disk's rate when
# it reads and writes at once); the sparse LUN in sync < 10 s;
# verify >= 0.8 x the backing's 1M read (both copies are read at once from
# the one disk of BENCH_DIR: a second line shows the ratio to half of it, the
# physical limit there, unless BENCH_SEPARATE_DISKS=1). The table and a
# chart (PNG, gnuplot) also go to BENCH_OUT. No resync rate limit is set
# (the default: unlimited), which paces both the sync and the verify.
#
#   top_builddir=BUILD bench/sync.sh     as root; prints its estimate (~2 min)
#   BENCH_DIR=/var/tmp                   where the files go (4 x BENCH_SIZE,
#                                        plus two sparse files)
#   BENCH_SIZE=1024                      the dense LUN in MiB (64: a smoke run)
#   BENCH_SPARSE=1T                      the sparse LUN's size
#   BENCH_RUNTIME=5                      seconds of each raw fio run
#   BENCH_TCP_MIB=2048                   MiB per raw TCP run
#   BENCH_OUT=./bench-out                where the table and chart go
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
: "${top_srcdir:=$here}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
PY=/usr/bin/python3
SIZE_MIB=${BENCH_SIZE:-1024}
SPARSE=${BENCH_SPARSE:-1T}
RUNTIME=${BENCH_RUNTIME:-5}
TCP_BYTES=$((${BENCH_TCP_MIB:-2048} << 20))
CONNS=4

die() { echo "bench/sync.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, ipmirrorctl)"
for t in ip fio jq cmp awk timeout fincore dd; do command -v "$t" >/dev/null || die "$t not installed"; done
[ -x "$PY" ] || die "$PY not installed"
[ -x "$top_builddir/agent/ipmirrord" ] && [ -x "$top_builddir/agent/ipmirrorctl" ] ||
	die "no ipmirrord/ipmirrorctl in $top_builddir/agent (set top_builddir)"
case "$SIZE_MIB" in '' | *[!0-9]*) die "BENCH_SIZE must be MiB (a number), not '$SIZE_MIB'" ;; esac
[ "$SIZE_MIB" -ge 16 ] || die "BENCH_SIZE must be at least 16 (MiB)"

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
# four TCP runs (~3 s each at 1 GiB/s), two raw runs, the fill, the sync and
# the verify (~200 MiB/s each on a slow disk), the sparse LUN (10 s), set-up
bench_estimate $((4 * (TCP_BYTES >> 30) * 3 / 2 + 4 + 3 * RUNTIME + 3 * SIZE_MIB / 200 + 10 + 40)) \
	"bench/sync.sh (dense $SIZE_MIB MiB, sparse $SPARSE)"
D=$T_DIR
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
# mibs BYTES MS: MiB/s
mibs() { calc %.0f "$1 / 1048576 / ($2 > 0 ? $2 / 1000 : 1e-9)"; }
# poll SECONDS INTERVAL CMD...: wait_for with a gentler pace (each status
# poll costs the daemon an IPC connection: resync.sh saw polling flat out
# slow the resync it measured)
poll() {
	local end=$(($(date +%s) + $1)) iv=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep "$iv"
	done
}
# cached FILE: bytes of FILE in the page cache
cached() { fincore --bytes --noheadings --output RES "$1" | tr -d ' '; }
# uncache FILE...: write back, then drop these files' pages only
uncache() {
	local f
	sync
	for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none; done
}

netns_pair || die "cannot create network namespaces"

# ---- 1. raw TCP over the veth, the backing itself ---------------------------
tcp1=$(tcp_gibs 1)
tcpn=$(tcp_gibs $CONNS)
echo "figure: raw TCP over the veth, 1 / $CONNS streams: $tcp1 / $tcpn GiB/s"

dd if=/dev/zero of="$D/raw.img" bs=4M count=$((SIZE_MIB / 4)) status=none
rawb=$(bench_raw "$D/raw.img" write 1M 8 "$RUNTIME" "$D/raw-write.json") || die "fio write failed on the raw backing"
raw_w=$(awk '{ printf "%.0f", $2 }' <<<"$rawb")
echo "figure: the backing, 1M write QD8 (fio O_DIRECT libaio, $TMPDIR): $raw_w MiB/s"
timeout $((RUNTIME + 60)) fio --name=rawread --filename="$D/raw.img" --ioengine=libaio --direct=1 \
	--rw=read --bs=1M --iodepth=8 --time_based --runtime="$RUNTIME" \
	--output-format=json --output="$D/raw-read.json" >/dev/null 2>&1 || die "fio read failed on the raw backing"
raw_r=$(jq -r '.jobs[0].read.bw_bytes / 1048576 | floor' "$D/raw-read.json")
echo "figure: the backing, 1M read QD8 (fio O_DIRECT libaio, $TMPDIR): $raw_r MiB/s"
# a copy on one disk reads and writes it at once: 1M reads and writes
# mixed half and half, the rate of each direction
timeout $((RUNTIME + 60)) fio --name=rawcopy --filename="$D/raw.img" --ioengine=libaio --direct=1 \
	--rw=rw --rwmixread=50 --bs=1M --iodepth=8 --time_based --runtime="$RUNTIME" \
	--output-format=json --output="$D/raw-copy.json" >/dev/null 2>&1 || die "fio read+write failed on the raw backing"
raw_c=$(jq -r '[.jobs[0].read.bw_bytes, .jobs[0].write.bw_bytes] | min / 1048576 | floor' "$D/raw-copy.json")
echo "figure: the backing, 1M reads and writes at once, 50/50 QD8 (fio rw=rw O_DIRECT): $raw_c MiB/s each way"
rm -f "$D/raw.img"

# ---- 2. initial sync of a dense LUN ------------------------------------------
PAIR_CONNS=$CONNS pair_setup "vol0:${SIZE_MIB}M:sync:yes:node1"
"$IPMIRRORD" --check-config --config "$D/pair.xml" >/dev/null ||
	die "config rejected: $("$IPMIRRORD" --check-config --config "$D/pair.xml" 2>&1)"
# fio's buffers are not zeros: every extent must be sent
timeout $((SIZE_MIB / 10 + 120)) fio --name=fill --filename="$D/node1-vol0.img" --ioengine=libaio \
	--direct=1 --rw=write --bs=1M --iodepth=8 --size="${SIZE_MIB}M" >"$D/fill.out" 2>&1 ||
	die "cannot fill node1's backing: $(tail -3 "$D/fill.out")"
uncache "$D/node1-vol0.img" "$D/node2-vol0.img"
echo "figure: dense LUN: node1's backing $SIZE_MIB MiB of data ($(cached "$D/node1-vol0.img") bytes of it in the page cache), node2's blank"
node_start node2 || die "node2 did not start: $(tail -5 "$D/n2.log")"
wait_for 10 lun_state_is node2 vol0 inconsistent || die "node2 not inconsistent: $(ctl node2 status 2>&1)"
t0=$(now)
node_start node1 || die "node1 did not start: $(tail -5 "$D/n1.log")"
poll $((SIZE_MIB / 10 + 120)) 0.5 lun_state_is node2 vol0 uptodate ||
	die "vol0 not in sync in time: $(ctl node1 status 2>&1)"
t1=$(now)
own=$(grep -o 'resync complete, [0-9]* bytes in [0-9]* ms' "$D/n1.log" | head -1) ||
	die "node1 did not log its resync"
echo "figure: dense LUN: node1's log says: $own"
read -r sync_bytes sync_ms < <(sed 's/[^0-9 ]//g' <<<"$own" | awk '{ print $1, $2 }')
sync_mibs=$(mibs "$sync_bytes" "$sync_ms")
sync_wall=$(calc %.2f "$t1 - $t0")
echo "figure: dense LUN: initial sync $sync_mibs MiB/s ($sync_ms ms; node1's start to node2 uptodate, polled every 0.5 s: $sync_wall s)"
[ "$sync_bytes" -ge $((SIZE_MIB << 20)) ] || die "only $sync_bytes bytes sent of the $SIZE_MIB MiB of data"
if cmp -s "$D/node1-vol0.img" "$D/node2-vol0.img"; then same=yes; else same=NO; fi
echo "figure: dense LUN: backing files identical after the sync: $same"

# ---- 3. verify of the two equal copies ---------------------------------------
uncache "$D/node1-vol0.img" "$D/node2-vol0.img"
c1=$(cached "$D/node1-vol0.img") c2=$(cached "$D/node2-vol0.img")
echo "figure: verify: in the page cache before it: node1 $c1, node2 $c2 bytes (of $((SIZE_MIB << 20)) each)"
ctl node1 verify vol0 >"$D/verify.out" 2>&1 || die "verify refused: $(cat "$D/verify.out")"
verify_idle() { [ "$(lun_field node1 vol0 verify.running)" = false ]; }
poll $((SIZE_MIB / 10 + 120)) 0.5 verify_idle || die "verify did not end in time: $(ctl node1 status 2>&1)"
vown=$(grep -o 'verify done in [0-9]* ms: [0-9]* bytes compared' "$D/n1.log" | tail -1) ||
	die "node1 did not log its verify"
echo "figure: verify: node1's log says: $vown"
read -r ver_ms ver_bytes < <(sed 's/[^0-9 ]//g' <<<"$vown" | awk '{ print $1, $2 }')
oos=$(lun_field node1 vol0 verify.out_of_sync_bytes)
ver_mibs=$(mibs "$ver_bytes" "$ver_ms")
echo "figure: verify: $ver_mibs MiB/s ($ver_ms ms, $oos bytes out of sync)"
[ "$ver_bytes" = $((SIZE_MIB << 20)) ] || die "verify compared $ver_bytes bytes, not the LUN's $((SIZE_MIB << 20))"
[ "$oos" = 0 ] || die "verify of two equal copies reported $oos bytes out of sync"
stop_pid "$n1_pid" || true
stop_pid "$n2_pid" || true
rm -f "$D"/node?-vol0.img*

# ---- 4. a blank sparse LUN ---------------------------------------------------
PAIR_CONNS=$CONNS pair_setup "vol0:$SPARSE:sync:yes:node1"
node_start node2 || die "node2 did not start: $(tail -5 "$D/n2.log")"
wait_for 10 lun_state_is node2 vol0 inconsistent || die "node2 not inconsistent: $(ctl node2 status 2>&1)"
t0=$(now)
node_start node1 || die "node1 did not start: $(tail -5 "$D/n1.log")"
poll 60 0.2 lun_state_is node2 vol0 uptodate || die "the sparse LUN not in sync within 60 s: $(ctl node1 status 2>&1)"
t1=$(now)
sparse_s=$(calc %.2f "$t1 - $t0")
sown=$(grep -o 'resync complete, [0-9]* bytes in [0-9]* ms' "$D/n1.log" | tail -1) || true
used=$(du -k "$D/node2-vol0.img" | cut -f1)
echo "figure: sparse $SPARSE LUN: node1's start to node2 uptodate (polled every 0.2 s): $sparse_s s (node1's log: ${sown:-nothing}; node2's copy: $used KiB allocated)"
stop_pid "$n1_pid" || true
stop_pid "$n2_pid" || true
rm -f "$D"/node?-vol0.img*

# load from other users moves the reference: measure it again, keep the best
tcp1b=$(tcp_gibs 1)
tcpnb=$(tcp_gibs $CONNS)
echo "figure: raw TCP over the veth at the end, 1 / $CONNS streams: $tcp1b / $tcpnb GiB/s"
tcp=$(printf '%s\n' "$tcp1" "$tcpn" "$tcp1b" "$tcpnb" | sort -g | tail -1)
tcp_mibs=$(calc %.0f "$tcp * 1024")

# ---- summary ---------------------------------------------------------------
lim=$(awk -v a="$tcp_mibs" -v b="$raw_w" 'BEGIN { print (a < b) ? a : b }')
share=2
[ "${BENCH_SEPARATE_DISKS:-0}" = 1 ] && share=1
{
echo
echo "Summary (dense LUN $SIZE_MIB MiB, sparse LUN $SPARSE, $CONNS connections, veth between two netns, $TMPDIR)"
printf '%-48s %16s\n' figure value
printf '%-48s %16s\n' "raw TCP (best of 1/$CONNS streams x2)" "$tcp_mibs MiB/s"
printf '%-48s %16s\n' "the backing, 1M write QD8 O_DIRECT" "$raw_w MiB/s"
printf '%-48s %16s\n' "the backing, 1M read QD8 O_DIRECT" "$raw_r MiB/s"
printf '%-48s %16s\n' "the backing, 1M read+write 50/50, each way" "$raw_c MiB/s"
printf '%-48s %16s\n' "initial sync, dense" "$sync_mibs MiB/s"
printf '%-48s %16s\n' "  time (node1's log; start to uptodate)" "$sync_ms ms; $sync_wall s"
printf '%-48s %16s\n' "  copies identical" "$same"
printf '%-48s %16s\n' "verify, two equal copies" "$ver_mibs MiB/s"
printf '%-48s %16s\n' "  time (node1's log), out of sync" "$ver_ms ms, $oos B"
printf '%-48s %16s\n' "  page cache before (node1/node2)" "$c1/$c2 B"
printf '%-48s %16s\n' "initial sync, blank sparse $SPARSE" "$sparse_s s"
echo
echo "Limits, same run: min(raw TCP, backing write) = $lim MiB/s; backing read = $raw_r MiB/s"
bench_limit "initial sync / min(raw TCP, backing 1M write), MiB/s" "$sync_mibs" "$lim" 0.8
[ "$share" = 1 ] ||
	bench_limit "initial sync / (backing read+write at once: one disk)" "$sync_mibs" "$raw_c" 0.8
bench_limit "10 s / time to sync a blank sparse $SPARSE (target < 10 s)" 10 "$sparse_s" 1
bench_limit "verify / backing 1M read, MiB/s" "$ver_mibs" "$raw_r" 0.8
[ "$share" = 1 ] ||
	bench_limit "verify / (backing read / 2: both copies on one disk), MiB/s" "$ver_mibs" "$(calc %.1f "$raw_r / 2")" 0.8
} | tee "$BENCH_OUT/sync-$BENCH_STAMP.txt"
{
	echo "what raw-TCP backing-write backing-read backing-read+write initial-sync verify"
	echo "MiB/s $tcp_mibs $raw_w $raw_r $raw_c $sync_mibs $ver_mibs"
} >"$BENCH_OUT/sync-$BENCH_STAMP.dat"
bench_chart "$BENCH_OUT/sync-$BENCH_STAMP.dat" "$BENCH_OUT/sync-$BENCH_STAMP.png" \
	"bench/sync.sh $(date +%F): dense $SIZE_MIB MiB initial sync and verify, node1 -> node2 over a veth" "MiB/s"
echo "report: $BENCH_OUT/sync-$BENCH_STAMP.txt"
[ "$same" = yes ] || die "the initial sync left the copies different"
