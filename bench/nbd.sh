#!/bin/bash
# bench/nbd.sh - NBD server throughput: ipmirrord (one unmirrored LUN) side by
# side with nbdkit's file plugin, each on a preallocated 1 GiB file in the
# same directory, driven by fio --ioengine=nbd over loopback TCP.
#
#   top_builddir=BUILD bash bench/nbd.sh        (BUILD defaults to the source tree)
#   BENCH_DIR=/var/tmp BENCH_RUNTIME=10 ...     (where the files go; seconds per run)
#
# Runs: 4k randwrite QD1, 4k randwrite QD32, 1M seq write QD8, alternating
# targets per workload. Prints a table and the ratio ipmirrord/nbdkit.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
: "${top_builddir:=$here}"
IPMIRRORD="$top_builddir/agent/ipmirrord"
RUNTIME=${BENCH_RUNTIME:-10}
DIR=$(mktemp -d "${BENCH_DIR:-/var/tmp}/ipm-nbd-bench.XXXXXX") || exit 1
PIDS=""

cleanup() {
	local p
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do
		for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

die() { echo "bench/nbd.sh: $*" >&2; exit 1; }
[ -x "$IPMIRRORD" ] || die "no $IPMIRRORD (set top_builddir)"
for t in fio nbdkit jq; do command -v $t >/dev/null || die "$t not installed"; done

free_port() {
	local p
	for p in $(seq "$1" $(($1 + 200))); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
	done
	return 1
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_listen() {
	local _
	for _ in $(seq 100); do listening "$1" && return 0; sleep 0.1; done
	return 1
}

P1=$(free_port 41809) || die "no free port"
P2=$(free_port $((P1 + 1))) || die "no free port"
for f in ipmirrord nbdkit; do
	fallocate -l 1G "$DIR/$f.img" 2>/dev/null || truncate -s 1G "$DIR/$f.img"
done
cat >"$DIR/bench.xml" <<EOF
<ipmirror version="1">
  <node name="bench">
    <nbd address="127.0.0.1" port="$P1"/>
  </node>
  <lun name="vol0" size="1G" mode="sync" mirrored="no" primary="bench">
    <backing path="$DIR/ipmirrord.img"/>
  </lun>
</ipmirror>
EOF

"$IPMIRRORD" --foreground --config "$DIR/bench.xml" --node bench --socket "ipm-bench-$$" \
	>"$DIR/ipmirrord.log" 2>&1 &
PIDS="$PIDS $!"
nbdkit -f -i 127.0.0.1 -p "$P2" file file="$DIR/nbdkit.img" >"$DIR/nbdkit.log" 2>&1 &
PIDS="$PIDS $!"
wait_listen "$P1" || die "ipmirrord did not start: $(cat "$DIR/ipmirrord.log")"
wait_listen "$P2" || die "nbdkit did not start: $(cat "$DIR/nbdkit.log")"

declare -A URI=([ipmirrord]="nbd://127.0.0.1:$P1/vol0" [nbdkit]="nbd://127.0.0.1:$P2/")

# run TARGET NAME RW BS QD: prints "IOPS MiB/s"
run() {
	local out="$DIR/$1-$2.json"
	timeout $((RUNTIME + 60)) fio --name="$2" --ioengine=nbd --uri="${URI[$1]}" --rw="$3" \
		--bs="$4" --iodepth="$5" --size=1G --time_based --runtime="$RUNTIME" \
		--output-format=json --output="$out" >"$DIR/$1-$2.out" 2>&1 ||
		{ echo "0 0"; echo "fio failed on $1 $2: $(tail -3 "$DIR/$1-$2.out")" >&2; return; }
	jq -r '.jobs[0].write | "\(.iops | floor) \(.bw / 1024 | floor)"' "$out"
}

printf '%-22s %12s %10s %12s %10s %8s\n' workload "ipmirrord" "MiB/s" "nbdkit" "MiB/s" ratio
for spec in "4k-randwrite-QD1 randwrite 4k 1" "4k-randwrite-QD32 randwrite 4k 32" \
	"1M-write-QD8 write 1M 8"; do
	read -r name rw bs qd <<<"$spec"
	read -r i_iops i_bw <<<"$(run ipmirrord "$name" "$rw" "$bs" "$qd")"
	read -r k_iops k_bw <<<"$(run nbdkit "$name" "$rw" "$bs" "$qd")"
	ratio=$(awk -v a="$i_iops" -v b="$k_iops" 'BEGIN { printf(b > 0 ? "%.2f" : "-", a / (b > 0 ? b : 1)) }')
	printf '%-22s %12s %10s %12s %10s %8s\n' "$name" "$i_iops IOPS" "$i_bw" "$k_iops IOPS" \
		"$k_bw" "$ratio"
done
echo "(${RUNTIME} s per run, files in ${BENCH_DIR:-/var/tmp}, ratio = ipmirrord/nbdkit IOPS)"
