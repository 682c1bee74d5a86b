#!/bin/bash
# shellcheck disable=SC2154  # n1_pid, n2_pid, NS_node1/2 are set by tests/lib.sh
# bench/mirror.sh - mirrored write performance, side by side in one run:
#   raw          the backing itself: fio O_DIRECT libaio on a file of the same
#                directory (the physical limit of one copy)
#   ipm-sync     ipmirror sync mirrored LUN, two daemons on loopback
#   ipm-async    ipmirror async mirrored LUN (same pair)
#   ipm-unmir    ipmirror unmirrored LUN (same primary daemon)
#   qemu-mirror  the userspace peer to beat: qemu-storage-daemon NBD export of
#                a file, blockdev-mirror sync=full copy-mode=write-blocking to
#                an nbdkit file export, measured once BLOCK_JOB_READY
#   nbdkit       nbdkit file plugin, no mirror
#   ipm-sync-tls ipm-sync over TLS 1.3 (<tls mode="psk"/>): a second pair
#                with vol0 alone, with BENCH_TLS=both
# Every target sits on its own 1 GiB file in one directory, prefilled with
# zeros (steady-state overwrites, no first-touch block allocation), and is
# driven by fio --ioengine=nbd over loopback TCP: 4k randwrite QD1 and QD32,
# 1M seq write QD1 and QD8. Runs are interleaved (repetition, workload,
# target) so drift hits every target alike; each cell is the median.
#
#   top_builddir=BUILD bench/mirror.sh      as root; ~7 min
#   QUICK=1 ...                             one 2 s run per cell; ~2 min
#   BENCH_RUNTIME=S BENCH_REPS=N            seconds per run, runs per cell
#   BENCH_DIR=/var/tmp                      where the files go
#   BENCH_TARGETS="qemu-mirror nbdkit"      a subset (e.g. without ipmirrord)
#   PREFILL=0                               leave the files sparse
#   BENCH_WORKLOADS="1M-write-QD1 1M-write-QD8"  a subset of the workloads (a
#                                           1M cell right after a 4k one on the
#                                           same LUN runs at about half speed:
#                                           doc/performance.md)
#
#   BENCH_IO=direct|buffered                the LUNs' io (default: none, i.e. auto)
#   BENCH_SEPARATE_DISKS=1                  the copies are on different disks
#                                           (two machines): the sync limit is
#                                           the backing's rate, not half of it
#   BENCH_OUT=./bench-out                   where the table and chart go
#   BENCH_TLS=off|psk|both                  the mirror connections' TLS: psk runs
#                                           the pair with <tls mode="psk"/>; both
#                                           adds ipm-sync-tls beside ipm-sync (the
#                                           cost of TLS: its rows and ratios)
#
# Prints "figure: value" lines, a summary table, the ratios ipm-sync /
# qemu-mirror and ipm-unmir / nbdkit, one "limit:" line per target of the
# speed issue (a figure over its physical limit: the raw backing, a 4 KiB
# TCP ping-pong measured in the same run), writes the table and a chart
# (PNG, gnuplot) to BENCH_OUT, and checks whether the mirrored copies are
# byte-identical (cmp). Exits 1 on a setup failure or a copy mismatch.
# Prints its duration estimate first and stops itself at 3x that.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
: "${top_srcdir:=$here}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
PY=/usr/bin/python3     # Debian's, whatever pyenv puts first in PATH

if [ "${QUICK:-0}" = 1 ]; then
	RUNTIME=${BENCH_RUNTIME:-2}; REPS=${BENCH_REPS:-1}
else
	RUNTIME=${BENCH_RUNTIME:-5}; REPS=${BENCH_REPS:-3}
fi
TARGETS=${BENCH_TARGETS:-raw ipm-sync ipm-async ipm-unmir qemu-mirror nbdkit}
BENCH_TLS=${BENCH_TLS:-off}
case $BENCH_TLS in
off | psk) ;;
both) [[ " $TARGETS " == *" ipm-sync-tls "* ]] || TARGETS="$TARGETS ipm-sync-tls" ;;
*) echo "bench/mirror.sh: BENCH_TLS=$BENCH_TLS: off, psk or both" >&2; exit 1 ;;
esac
WORKLOADS=("4k-randwrite-QD1 randwrite 4k 1" "4k-randwrite-QD32 randwrite 4k 32"
	"1M-write-QD1 write 1M 1" "1M-write-QD8 write 1M 8")
if [ -n "${BENCH_WORKLOADS:-}" ]; then
	sel=()
	for w in "${WORKLOADS[@]}"; do
		[[ " $BENCH_WORKLOADS " == *" ${w%% *} "* ]] && sel+=("$w")
	done
	[ ${#sel[@]} -gt 0 ] || { echo "bench/mirror.sh: BENCH_WORKLOADS=$BENCH_WORKLOADS: none of ${WORKLOADS[*]%% *}" >&2; exit 1; }
	WORKLOADS=("${sel[@]}")
fi

die() { echo "bench/mirror.sh: $*" >&2; exit 1; }
has() { [[ " $TARGETS " == *" $1 "* ]]; }
has_ipm() { has ipm-sync || has ipm-async || has ipm-unmir || has ipm-sync-tls; }

[ "$(id -u)" = 0 ] || die "must run as root (ipmirrorctl talks to the daemon as root)"
for t in fio jq cmp dd timeout; do command -v "$t" >/dev/null || die "$t not installed"; done
[ -x "$PY" ] || die "$PY not installed"
has nbdkit || has qemu-mirror && { command -v nbdkit >/dev/null || die "nbdkit not installed"; }
has qemu-mirror && { command -v qemu-storage-daemon >/dev/null ||
	die "qemu-storage-daemon not installed (Debian: qemu-system-common)"; }
has_ipm && { [ -x "$top_builddir/agent/ipmirrord" ] && [ -x "$top_builddir/agent/ipmirrorctl" ] ||
	die "no ipmirrord/ipmirrorctl in $top_builddir/agent (set top_builddir, or BENCH_TARGETS)"; }

# tests/lib.sh: pair_setup/pair_start/ctl, PID list and T_DIR removed on exit
TMPDIR=${BENCH_DIR:-/var/tmp}
export TMPDIR
# shellcheck source=../tests/lib.sh
. "$top_srcdir/tests/lib.sh"
# shellcheck source=lib.sh
. "$top_srcdir/bench/lib.sh"
set -euo pipefail
# each fio run: its seconds, fio's start and the sync before it (~4 s); each
# repetition: three baselines; setup: up to 10 prefilled 1 GiB files (~6 s
# each), QEMU's initial copy and the daemons (~40 s)
BENCH_EST=$((REPS * ${#WORKLOADS[@]} * $(wc -w <<<"$TARGETS") * (RUNTIME + 4) +
	REPS * (3 * RUNTIME + 10) + 10 * 6 + 40))
bench_estimate "$BENCH_EST" "bench/mirror.sh ($REPS x $RUNTIME s per cell)"
# lib.sh's cleanup is written for errexit off: a failing kill must not cut it short
bench_cleanup() { set +e; t_cleanup; }
trap bench_cleanup EXIT
trap 'exit 1' INT TERM
D=$T_DIR
SIZE=1G

prefill() {
	local f
	for f in "$@"; do
		if [ "${PREFILL:-1}" = 1 ]; then
			dd if=/dev/zero of="$f" bs=4M count=256 status=none
		else
			truncate -s "$SIZE" "$f"
		fi
	done
}

spawn() { # spawn LOGNAME CMD...: background process, PID remembered for cleanup
	local log="$1"; shift
	"$@" >"$D/$log.log" 2>&1 &
	LAST_PID=$!
	T_PIDS="$T_PIDS $LAST_PID"
}

declare -A URI

# ---- (a)(b)(c) ipmirror pair -----------------------------------------------
if has_ipm; then
	# the default io (auto) unless BENCH_IO says otherwise (doc/config.md)
	PAIR_IO=${BENCH_IO:-} PAIR_JOURNAL_MAX=4G pair_setup vol0:$SIZE:sync:yes:node1 vol1:$SIZE:async:yes:node1 \
		vol2:$SIZE:sync:no:node1
	prefill "$D/node1-vol0.img" "$D/node2-vol0.img" "$D/node1-vol1.img" "$D/node2-vol1.img" \
		"$D/node1-vol2.img"
	[ "$BENCH_TLS" != psk ] || sed -i 's|^  <log |  <tls mode="psk"/>\n  <log |' "$D/pair.xml"
	"$IPMIRRORD" --check-config --config "$D/pair.xml" >/dev/null ||
		die "config rejected: $("$IPMIRRORD" --check-config --config "$D/pair.xml" 2>&1)"
	pair_start || die "daemons did not start: $(tail -5 "$D"/n*.log)"
	wait_for 30 lun_state_is node1 vol0 uptodate ||
		die "vol0 not uptodate: $(ctl node1 status 2>&1; tail -5 "$D"/n*.log)"
	wait_for 30 lun_state_is node1 vol1 uptodate || die "vol1 not uptodate: $(ctl node1 status 2>&1)"
	URI[ipm-sync]="nbd://127.0.0.1:$N1_NBD/vol0"
	URI[ipm-async]="nbd://127.0.0.1:$N1_NBD/vol1"
	URI[ipm-unmir]="nbd://127.0.0.1:$N1_NBD/vol2"
	echo "figure: ipmirror pair: node1/node2 on 127.0.0.1, data ports $N1_DATA/$N2_DATA, $(grep -o 'connections count="[0-9]*"' "$D/pair.xml")"
	echo "figure: tls on the mirror connections: $(grep -o '<tls mode="[a-z0-9]*"' "$D/pair.xml" || echo off) (BENCH_TLS=$BENCH_TLS)"
	echo "figure: io in effect (ipmirrorctl status): vol0 $(lun_field node1 vol0 io)/$(lun_field node2 vol0 io), vol1 $(lun_field node1 vol1 io)/$(lun_field node2 vol1 io), vol2 $(lun_field node1 vol2 io) (node1/node2; BENCH_IO=${BENCH_IO:-unset: the default})"
fi
has raw && prefill "$D/raw.img"

# ---- ipm-sync-tls: the same sync LUN on a second pair with TLS 1.3 PSK -------
# (its own ports, backing files and admin sockets; vol0 alone)
tls_ctl() { timeout -k 5 "$CTL_TIMEOUT" "$IPMIRRORCTL" --socket "ipm-$$-tls-$1" "${@:2}"; }
tls_uptodate() { [ "$(tls_ctl node1 status --json | jq -r '.luns[0].state')" = uptodate ]; }
if has ipm-sync-tls; then
	TB=$(free_port pair-tls 6) || die "no free port"
	"$PY" - "$D/pair.xml" "$D/pair-tls.xml" "$TB" "$N1_DATA $N1_HB $N1_NBD $N2_DATA $N2_HB $N2_NBD" <<'EOF'
# the pair's config with <tls mode="psk"/>, ports base..base+5, vol0 alone on tls-* files
import sys, xml.etree.ElementTree as ET
src, dst, base, old = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split()
tree = ET.parse(src); root = tree.getroot()
for e in root.findall("tls"):
    root.remove(e)
t = ET.Element("tls", mode="psk"); t.tail = "\n  "; root.insert(0, t)
for e in root.iter():
    if e.get("port") in old:
        e.set("port", str(base + old.index(e.get("port"))))
for l in root.findall("lun"):
    if l.get("name") != "vol0":
        root.remove(l)
    for b in l.findall("backing"):
        b.set("path", b.get("path").replace("/node", "/tls-node"))
tree.write(dst)
EOF
	prefill "$D/tls-node1-vol0.img" "$D/tls-node2-vol0.img"
	for n in node1 node2; do
		spawn "tls-$n" "$IPMIRRORD" --foreground --config "$D/pair-tls.xml" --node "$n" \
			--socket "ipm-$$-tls-$n"
		eval "tls_${n}_pid=$LAST_PID"
	done
	wait_for 60 tls_uptodate || die "tls vol0 not uptodate: $(tls_ctl node1 status 2>&1; tail -5 "$D"/tls-n*.log)"
	URI[ipm-sync-tls]="nbd://127.0.0.1:$((TB + 2))/vol0"
	echo "figure: ipm-sync-tls pair: $(grep -o 'is up (protocol version [^)]*)' "$D/tls-node1.log" | head -1)"
fi

# ---- (e) nbdkit file plugin -------------------------------------------------
if has nbdkit; then
	prefill "$D/nbdkit.img"
	P=$(free_port nbdkit) || die "no free port"
	spawn nbdkit nbdkit -f -i 127.0.0.1 -p "$P" file file="$D/nbdkit.img"
	wait_for 10 tcp_open 127.0.0.1 "$P" || die "nbdkit did not start: $(cat "$D/nbdkit.log")"
	URI[nbdkit]="nbd://127.0.0.1:$P/"
fi

# ---- (d) QEMU mirror: qsd export -> blockdev-mirror -> nbdkit target -------
cat >"$D/qmp.py" <<'EOF'
# qmp.py SOCKET mirror PORT TIMEOUT | SOCKET check: a minimal QMP client
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
events = []
def rd():
    line = f.readline()
    if not line:
        sys.exit("qmp: connection closed")
    return json.loads(line)
def ex(name, args=None):
    msg = {"execute": name}
    if args:
        msg["arguments"] = args
    f.write(json.dumps(msg) + "\n"); f.flush()
    while True:
        r = rd()
        if "return" in r:
            return r["return"]
        if "error" in r:
            sys.exit("qmp %s: %s" % (name, r["error"]["desc"]))
        events.append(r)
rd()
ex("qmp_capabilities")
if sys.argv[2] == "mirror":
    ex("blockdev-add", {"driver": "nbd", "node-name": "tgt", "export": "",
        "server": {"type": "inet", "host": "127.0.0.1", "port": sys.argv[3]}})
    ex("blockdev-mirror", {"job-id": "m", "device": "src", "target": "tgt",
        "sync": "full", "copy-mode": "write-blocking"})
    deadline = time.monotonic() + float(sys.argv[4])
    while True:
        for e in events:
            ev = e.get("event")
            if ev == "BLOCK_JOB_READY":
                sys.exit(0)
            if ev in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_ERROR", "BLOCK_JOB_CANCELLED"):
                sys.exit("qmp: mirror ended: %s" % json.dumps(e))
        events.clear()
        left = deadline - time.monotonic()
        if left <= 0:
            sys.exit("qmp: no BLOCK_JOB_READY within %s s" % sys.argv[4])
        s.settimeout(left)
        events.append(rd())
else:
    jobs = [j for j in ex("query-block-jobs") if j["device"] == "m"]
    if not jobs:
        sys.exit("qmp: mirror job gone")
    j = jobs[0]
    print("status=%s ready=%s offset=%d len=%d" % (j["status"], j["ready"], j["offset"], j["len"]))
    sys.exit(0 if j["ready"] and j["status"] == "ready" else 1)
EOF
if has qemu-mirror; then
	prefill "$D/qemu-src.img" "$D/qemu-tgt.img"
	PT=$(free_port qemu-target) || die "no free port"
	spawn qemu-tgt nbdkit -f -i 127.0.0.1 -p "$PT" file file="$D/qemu-tgt.img"
	wait_for 10 tcp_open 127.0.0.1 "$PT" || die "nbdkit target did not start: $(cat "$D/qemu-tgt.log")"
	PQ=$(free_port qsd) || die "no free port"
	spawn qsd qemu-storage-daemon \
		--blockdev driver=file,filename="$D/qemu-src.img",node-name=src \
		--nbd-server addr.type=inet,addr.host=127.0.0.1,addr.port="$PQ" \
		--export type=nbd,id=e,node-name=src,name=vol0,writable=on \
		--chardev socket,id=qmp,path="$D/qmp.sock",server=on,wait=off \
		--monitor chardev=qmp
	wait_for 10 tcp_open 127.0.0.1 "$PQ" || die "qemu-storage-daemon did not start: $(cat "$D/qsd.log")"
	t0=$(date +%s.%N)
	"$PY" "$D/qmp.py" "$D/qmp.sock" mirror "$PT" 120 || die "QEMU mirror did not get ready"
	echo "figure: qemu-mirror initial sync=full of $SIZE: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }')"
	URI[qemu-mirror]="nbd://127.0.0.1:$PQ/vol0"
fi
sync

# ---- fio -------------------------------------------------------------------
# run TARGET WORKLOAD RW BS QD REP: appends "IOPS MiB/s clat_us" to RES[TARGET|WORKLOAD]
declare -A RES
run() {
	local out="$D/$1-$2-$6.json"
	if [ "$1" = raw ]; then
		RES[$1|$2]+="$(bench_raw "$D/raw.img" "$3" "$4" "$5" "$RUNTIME" "$out" ||
			die "fio failed on the raw backing $2");"
		return
	fi
	timeout $((RUNTIME + 60)) fio --name="$2" --ioengine=nbd --uri="${URI[$1]}" --rw="$3" \
		--bs="$4" --iodepth="$5" --size=$SIZE --time_based --runtime="$RUNTIME" \
		--output-format=json --output="$out" >"$D/$1-$2-$6.out" 2>&1 ||
		die "fio failed on $1 $2: $(tail -3 "$D/$1-$2-$6.out")"
	RES[$1|$2]+=$(jq -r '.jobs[0].write | "\(.iops) \(.bw_bytes / 1048576) \(.clat_ns.mean / 1000);"' "$out")
}

# the async LUN may still be shipping the previous run's writes: wait until
# the bytes sent to the peer stop growing, so that backlog is nobody's cost
settle_async() {
	local prev=-1 cur _
	for _ in $(seq 50); do
		cur=$(lun_field node1 vol1 mirrored_bytes 2>/dev/null) || cur=-2
		[ "$cur" = "$prev" ] && return 0
		prev=$cur
		sleep 0.3
	done
}

alive() {
	local p
	for p in $T_PIDS; do kill -0 "$p" 2>/dev/null || return 1; done
}

# ---- the ceilings of 1 MiB mirroring, measured in the same run --------------
# disk: fio straight on a file of the same directory, 1M sequential O_DIRECT
# writes QD8 (the mirror writes its copy through the same kind of file);
# tcp: one loopback TCP stream of 1 MiB sends (the mirror's payload path).
prefill "$D/disk.img"
cat >"$D/tcp.py" <<'EOF'
# tcp.py SECONDS: MiB/s of one loopback TCP stream, 1 MiB sends
import socket, sys, threading, time
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
def sink():
    c, _ = srv.accept(); b = bytearray(1 << 20)
    while c.recv_into(b):
        pass
t = threading.Thread(target=sink); t.start()
s = socket.create_connection(srv.getsockname()); buf = b"\0" * (1 << 20)
n, t0 = 0, time.monotonic()
while time.monotonic() - t0 < float(sys.argv[1]):
    s.sendall(buf); n += 1
s.close(); t.join()
print("%.1f" % (n / (time.monotonic() - t0)))
EOF
declare -A BASE
baselines() {
	local out="$D/disk-$1.json"
	timeout $((RUNTIME + 60)) fio --name=disk --filename="$D/disk.img" --ioengine=libaio --direct=1 \
		--rw=write --bs=1M --iodepth=8 --size=$SIZE --time_based --runtime="$RUNTIME" \
		--output-format=json --output="$out" >/dev/null 2>&1 || die "fio failed on the disk baseline"
	BASE[disk]+="$(jq -r '.jobs[0].write.bw_bytes / 1048576' "$out");"
	BASE[tcp]+="$(timeout $((RUNTIME + 30)) "$PY" "$D/tcp.py" "$RUNTIME" || die "tcp baseline failed");"
	BASE[ping]+="$(bench_pingpong here 127.0.0.1 here "$RUNTIME" || die "ping-pong baseline failed");"
}

echo "figure: load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs; other load skews every target, the event-loop servers most)"
n_runs=$((REPS * ${#WORKLOADS[@]} * $(wc -w <<<"$TARGETS")))
echo "figure: plan: $n_runs fio runs of $RUNTIME s (median of $REPS per cell), files in $D"
echo "figure: estimate given at the start: $BENCH_EST s"
for rep in $(seq "$REPS"); do
	for w in "${WORKLOADS[@]}"; do
		read -r name rw bs qd <<<"$w"
		for t in $TARGETS; do
			# the previous target's dirty pages are written back
			# now, not during this target's run
			sync
			run "$t" "$name" "$rw" "$bs" "$qd" "$rep"
			[ "$t" != ipm-async ] || settle_async
			alive || die "a server died during $t $name: $(tail -5 "$D"/*.log)"
		done
	done
	baselines "$rep"
	echo "# repetition $rep/$REPS done"
done
echo "figure: load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"

# median FIELD "a b c;a b c;...": median of column FIELD (1 IOPS, 2 MiB/s, 3 clat us)
median() {
	tr ';' '\n' <<<"$2" | awk -v f="$1" 'NF { print $f }' | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
			else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "-" }'; }

declare -A IOPS MIBS
for w in "${WORKLOADS[@]}"; do
	read -r name _ <<<"$w"
	for t in $TARGETS; do
		IOPS[$t|$name]=$(median 1 "${RES[$t|$name]}")
		MIBS[$t|$name]=$(median 2 "${RES[$t|$name]}")
		printf 'figure: %s %s: %.0f IOPS, %.1f MiB/s, %.0f us mean clat (runs IOPS: %s)\n' \
			"$name" "$t" "${IOPS[$t|$name]}" "${MIBS[$t|$name]}" "$(median 3 "${RES[$t|$name]}")" \
			"$(tr ';' '\n' <<<"${RES[$t|$name]}" | awk 'NF { printf "%s%.0f", s, $1; s = " " }')"
	done
	printf 'figure: %s ratio ipm-sync/qemu-mirror: %s\n' "$name" \
		"$(ratio "${IOPS[ipm-sync|$name]:-0}" "${IOPS[qemu-mirror|$name]:-0}")"
	printf 'figure: %s ratio ipm-unmir/nbdkit: %s\n' "$name" \
		"$(ratio "${IOPS[ipm-unmir|$name]:-0}" "${IOPS[nbdkit|$name]:-0}")"
	has ipm-sync-tls && printf 'figure: %s ratio ipm-sync-tls/ipm-sync (the cost of TLS): %s\n' "$name" \
		"$(ratio "${IOPS[ipm-sync-tls|$name]:-0}" "${IOPS[ipm-sync|$name]:-0}")"
done

DISK=$(tr ';' '\n' <<<"${BASE[disk]}" | awk 'NF { print $1 " 0 0" }' | tr '\n' ';')
TCP=$(tr ';' '\n' <<<"${BASE[tcp]}" | awk 'NF { print $1 " 0 0" }' | tr '\n' ';')
DISK=$(median 1 "$DISK"); TCP=$(median 1 "$TCP")
CEIL=$(awk -v a="$DISK" -v b="$TCP" 'BEGIN { print (a < b) ? a : b }')
printf 'figure: disk (fio 1M write QD8, O_DIRECT, same directory): %.0f MiB/s\n' "$DISK"
printf 'figure: loopback TCP (one stream, 1 MiB sends): %.0f MiB/s\n' "$TCP"

# ---- are the copies identical? ----------------------------------------------
mismatch=0
verdict() { # verdict LABEL FILE1 FILE2
	if cmp -s "$2" "$3"; then echo "figure: $1: identical"
	else echo "figure: $1: DIFFERENT ($(cmp "$2" "$3" 2>&1 | head -1))"; mismatch=1; fi
}
if has qemu-mirror; then
	state=$("$PY" "$D/qmp.py" "$D/qmp.sock" check 2>&1) || mismatch=1
	echo "figure: qemu mirror job at the end: $state"
	verdict "qemu-mirror source and target files (job running)" "$D/qemu-src.img" "$D/qemu-tgt.img"
fi
if has ipm-sync; then
	# sync: every acknowledged write is on the mirror, so no drain is needed
	verdict "ipm-sync backing files node1/node2 (daemons running)" "$D/node1-vol0.img" "$D/node2-vol0.img"
fi
if has ipm-sync-tls; then
	verdict "ipm-sync-tls backing files node1/node2 (daemons running)" "$D/tls-node1-vol0.img" \
		"$D/tls-node2-vol0.img"
	stop_pid "$tls_node1_pid" || true
	stop_pid "$tls_node2_pid" || true
fi
if has ipm-sync || has ipm-async || has ipm-unmir; then
	stop_pid "$n1_pid" || true
	stop_pid "$n2_pid" || true
	has ipm-async && verdict "ipm-async backing files node1/node2 (after a clean stop)" \
		"$D/node1-vol1.img" "$D/node2-vol1.img"
fi

# ---- summary: the table, the targets, the limits (also to BENCH_OUT) ---------
PING=$(tr ';' '\n' <<<"${BASE[ping]}" | awk 'NF { print $1 " 0 0" }' | tr '\n' ';')
PING=$(median 1 "$PING")
printf 'figure: 4 KiB TCP ping-pong round trip (loopback, python3, TCP_NODELAY): %.1f us\n' "$PING"
{
echo
echo "Summary: median of $REPS x ${RUNTIME} s fio runs per cell, $SIZE files, cell = IOPS / MiB/s"
printf '%-18s' workload
for t in $TARGETS; do printf ' %16s' "$t"; done
printf ' %10s %11s %12s %12s\n' sync/qemu sync/nbdkit async/nbdkit unmir/nbdkit
for w in "${WORKLOADS[@]}"; do
	read -r name _ <<<"$w"
	printf '%-18s' "$name"
	for t in $TARGETS; do
		printf ' %16s' "$(printf '%.0f / %.0f' "${IOPS[$t|$name]}" "${MIBS[$t|$name]}")"
	done
	printf ' %10s %11s %12s %12s\n' "$(ratio "${IOPS[ipm-sync|$name]:-0}" "${IOPS[qemu-mirror|$name]:-0}")" \
		"$(ratio "${IOPS[ipm-sync|$name]:-0}" "${IOPS[nbdkit|$name]:-0}")" \
		"$(ratio "${IOPS[ipm-async|$name]:-0}" "${IOPS[nbdkit|$name]:-0}")" \
		"$(ratio "${IOPS[ipm-unmir|$name]:-0}" "${IOPS[nbdkit|$name]:-0}")"
done
printf 'baselines: disk %.0f MiB/s, loopback TCP %.0f MiB/s\n' "$DISK" "$TCP"

# ---- the targets of the mirroring issue ---------------------------------------
target() { # target LABEL VALUE MIN
	printf 'target: %-40s %6s (>= %s) %s\n' "$1" "$2" "$3" \
		"$(awk -v v="$2" -v m="$3" 'BEGIN { print (v == "-") ? "not measured" : (v >= m) ? "met" : "MISSED" }')"
}
Q=4k-randwrite-QD32
target "4k QD32 sync / qemu-mirror" "$(ratio "${IOPS[ipm-sync|$Q]:-0}" "${IOPS[qemu-mirror|$Q]:-0}")" 1.5
target "4k QD32 sync / nbdkit" "$(ratio "${IOPS[ipm-sync|$Q]:-0}" "${IOPS[nbdkit|$Q]:-0}")" 0.8
target "4k QD32 async / nbdkit" "$(ratio "${IOPS[ipm-async|$Q]:-0}" "${IOPS[nbdkit|$Q]:-0}")" 0.95
target "1M QD8 sync / min(disk, loopback TCP)" "$(ratio "${MIBS[ipm-sync|1M-write-QD8]:-0}" "$CEIL")" 0.9
if has ipm-sync-tls; then
	target "4k QD32 sync tls / sync (cost <= 10 %)" "$(ratio "${IOPS[ipm-sync-tls|$Q]:-0}" "${IOPS[ipm-sync|$Q]:-0}")" 0.9
	target "1M QD8 sync tls / sync (cost <= 20 %)" \
		"$(ratio "${MIBS[ipm-sync-tls|1M-write-QD8]:-0}" "${MIBS[ipm-sync|1M-write-QD8]:-0}")" 0.8
fi

# the speed issue's targets against the physical limits measured above
Q1=4k-randwrite-QD1 share=0.5
rawlat=$(median 3 "${RES[raw|$Q1]:-}")
synclat=$(median 3 "${RES[ipm-sync|$Q1]:-}")
floor=$(awk -v a="$rawlat" -v b="$PING" 'BEGIN { printf "%.1f", a + b }')
[ "${BENCH_SEPARATE_DISKS:-0}" = 1 ] && share=1
echo
echo "Limits: the raw backing (fio O_DIRECT libaio, same directory) and a 4 KiB TCP ping-pong, same run"
bench_limit "sync 4k QD1 latency: floor (raw clat + ping-pong) / sync clat, us" "$floor" "$synclat" 0.77
bench_limit "sync 4k QD32 IOPS / ($share x raw 4k QD32 IOPS)" "${IOPS[ipm-sync|$Q]:-}" \
	"$(awk -v r="${IOPS[raw|$Q]:-0}" -v s=$share 'BEGIN { print r * s }')" 0.9
bench_limit "sync 4k QD32 IOPS / nbdkit IOPS" "${IOPS[ipm-sync|$Q]:-}" "${IOPS[nbdkit|$Q]:-}" 2
for w in "${WORKLOADS[@]}"; do
	read -r name _ <<<"$w"
	bench_limit "async / sync IOPS, $name" "${IOPS[ipm-async|$name]:-}" "${IOPS[ipm-sync|$name]:-}" 1
done
for w in "${WORKLOADS[@]}"; do
	read -r name _ <<<"$w"
	bench_limit "unmirrored / raw backing IOPS, $name (no target)" "${IOPS[ipm-unmir|$name]:-}" \
		"${IOPS[raw|$name]:-}" 0
done
} | tee "$BENCH_OUT/mirror-$BENCH_STAMP.txt"

# the chart: every target's IOPS over the raw backing's, per workload
{
	printf 'workload'
	for t in $TARGETS; do printf ' %s' "$t"; done
	echo
	for w in "${WORKLOADS[@]}"; do
		read -r name _ <<<"$w"
		printf '%s' "$name"
		for t in $TARGETS; do
			awk -v a="${IOPS[$t|$name]:-0}" -v b="${IOPS[raw|$name]:-0}" \
				'BEGIN { printf " %.3f", (b > 0) ? a / b : 0 }'
		done
		echo
	done
} >"$BENCH_OUT/mirror-$BENCH_STAMP.dat"
bench_chart "$BENCH_OUT/mirror-$BENCH_STAMP.dat" "$BENCH_OUT/mirror-$BENCH_STAMP.png" \
	"bench/mirror.sh $(date +%F): IOPS / the raw backing's (fio O_DIRECT), median of $REPS x $RUNTIME s; mirrored on one disk: at most 0.5" \
	"ratio to the raw backing"
echo "report: $BENCH_OUT/mirror-$BENCH_STAMP.txt"
[ "$mismatch" = 0 ] || die "a mirrored copy differs (see above)"
