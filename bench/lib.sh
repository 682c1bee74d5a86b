# shellcheck shell=bash
# bench/lib.sh - what bench/mirror.sh, resync.sh and scale.sh share: the
# physical baselines measured in the same run (the backing file itself through
# fio O_DIRECT libaio, a 4 KiB TCP ping-pong), the "limit:" lines that compare
# a figure with its physical limit, a bar chart through gnuplot, and the
# duration estimate printed at the start. Sourced after tests/lib.sh.

# Where the report goes: the summary table (.txt), the chart (.png) and the
# data behind it (.dat), named after the script and the start time.
BENCH_OUT=${BENCH_OUT:-$PWD/bench-out}
mkdir -p "$BENCH_OUT"
# shellcheck disable=SC2034  # used by the scripts that source this
BENCH_STAMP=$(date +%Y%m%d-%H%M%S)

# bench_estimate SECONDS WHAT: the duration estimate, printed first, and the
# hard bound: the script kills itself (its cleanup runs) at 3x the estimate
# plus 5 min (BENCH_MAX_S overrides), so a wedged run never holds the machine.
bench_estimate() {
	local max=${BENCH_MAX_S:-$(($1 * 3 + 300))} me=$$
	printf 'estimate: %s takes about %d min %02d s (bounded: stopped after %d s)\n' \
		"$2" $(($1 / 60)) $(($1 % 60)) "$max"
	( sleep "$max" && echo "bench: $2 ran past its bound ($max s); stopping" >&2 &&
		kill -TERM "$me" ) </dev/null >/dev/null 2>&1 &
	T_PIDS="${T_PIDS:-} $!"
}

# bench_raw FILE RW BS QD SECONDS OUT.json: fio straight on FILE (O_DIRECT,
# libaio): the backing's own speed. Prints "IOPS MiB/s clat_us".
bench_raw() {
	timeout $(($5 + 60)) fio --name=raw --filename="$1" --ioengine=libaio --direct=1 \
		--rw="$2" --bs="$3" --iodepth="$4" --time_based --runtime="$5" \
		--output-format=json --output="$6" >/dev/null 2>&1 || return 1
	jq -r '.jobs[0].write | "\(.iops) \(.bw_bytes / 1048576) \(.clat_ns.mean / 1000)"' "$6"
}

# bench_pingpong_py: a 4 KiB TCP ping-pong, as a mirrored 4 KiB write talks
# (4 KiB + a header out, a short answer back), TCP_NODELAY both ways.
#   server ADDR PORT | client ADDR PORT SECONDS -> mean round trip in us
bench_pingpong_py() {
	cat <<'PY'
import socket, sys, time
def full(s, n):
    b = bytearray(n); mv = memoryview(b); got = 0
    while got < n:
        k = s.recv_into(mv[got:])
        if not k: return None
        got += k
    return b
if sys.argv[1] == "server":
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((sys.argv[2], int(sys.argv[3]))); ls.listen(1); print("listening", flush=True)
    c, _ = ls.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while full(c, 4096 + 64) is not None: c.sendall(b"\0" * 32)
else:
    s = socket.create_connection((sys.argv[2], int(sys.argv[3])))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = b"\1" * (4096 + 64); n = 0; t0 = time.monotonic(); end = t0 + float(sys.argv[4])
    while time.monotonic() < end:
        s.sendall(req); full(s, 32); n += 1
    print("%.1f" % ((time.monotonic() - t0) / n * 1e6))
PY
}

# bench_pingpong SERVER_NODE ADDR CLIENT_NODE SECONDS: mean 4 KiB round trip
# in us between two places of the pair ("here" for no namespace). Python adds
# a few us per round trip on each side: the floor it gives is a little high.
bench_pingpong() {
	local py="$T_DIR/pingpong.py" out="$T_DIR/pingpong.out" port pid
	bench_pingpong_py >"$py"
	port=$(free_port pingpong) || return 1
	: >"$out"
	in_node "$1" timeout $(($4 + 40)) /usr/bin/python3 "$py" server "$2" "$port" >"$out" 2>&1 &
	pid=$!
	T_PIDS="$T_PIDS $pid"
	wait_for 5 grep -q listening "$out" || return 1
	in_node "$3" timeout $(($4 + 30)) /usr/bin/python3 "$py" client "$2" "$port" "$4" || {
		kill "$pid" 2>/dev/null
		return 1
	}
	wait "$pid" 2>/dev/null || true
}

# bench_limit LABEL VALUE LIMIT MIN: one "limit:" line, VALUE / LIMIT
# against MIN; "not measured" when either is missing.
bench_limit() {
	awk -v l="$1" -v v="$2" -v p="$3" -v m="$4" 'BEGIN {
		if (v == "" || p == "" || v == "-" || p == "-" || p + 0 <= 0) {
			printf "limit: %-58s %10s / %-10s %6s (>= %s) not measured\n", l,
				(v == "") ? "-" : sprintf("%.1f", v), (p == "") ? "-" : sprintf("%.1f", p), "-", m
			exit }
		r = v / p
		printf "limit: %-58s %10.1f / %-10.1f %6.2f (>= %s) %s\n", l, v, p, r, m, (r >= m) ? "met" : "MISSED" }'
}

# bench_chart DAT PNG TITLE YLABEL: grouped bars from DAT (first line: the
# column titles; then one row per group: its name and one value per column).
bench_chart() {
	command -v gnuplot >/dev/null || { echo "chart: gnuplot not installed, $1 kept"; return 0; }
	gnuplot <<GP 2>"$2.err" && rm -f "$2.err" && echo "chart: $2" || echo "chart: gnuplot failed: $(cat "$2.err")"
set terminal png size 1100,560 noenhanced
set output "$2"
set title "$3"
set ylabel "$4"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key outside right top
set grid ytics
set yrange [0:*]
set xtics nomirror
plot for [c=2:*] "$1" using c:xtic(1) title columnheader(c)
GP
}

# bench_tcpbw_py: N parallel TCP streams; the server prints "bytes seconds"
# once every stream has closed
bench_tcpbw_py() {
	cat <<'EOF'
# tcpbw.py server ADDR PORT N | client ADDR PORT N BYTES: N parallel TCP
# streams; the server prints "bytes seconds" once every stream has closed
import socket, sys, threading, time
def server(addr, port, n):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port)); ls.listen(n)
    print("listening", flush=True)
    conns = [ls.accept()[0] for _ in range(n)]
    tot = [0] * n
    def rx(i):
        mv = memoryview(bytearray(1 << 20))
        while True:
            k = conns[i].recv_into(mv)
            if not k:
                break
            tot[i] += k
    t0 = time.monotonic()
    th = [threading.Thread(target=rx, args=(i,)) for i in range(n)]
    for x in th: x.start()
    for x in th: x.join()
    print("%d %.6f" % (sum(tot), time.monotonic() - t0), flush=True)
def client(addr, port, n, nbytes):
    cs = [socket.create_connection((addr, port)) for _ in range(n)]
    buf = memoryview(bytes(1 << 20))
    def tx(c):
        for _ in range(nbytes // n >> 20): c.sendall(buf)
        c.close()
    th = [threading.Thread(target=tx, args=(c,)) for c in cs]
    for x in th: x.start()
    for x in th: x.join()
if sys.argv[1] == "server": server(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
else: client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
EOF
}

# tcp_gibs N: GiB/s of N streams node1 -> node2 (netns_pair's namespaces),
# TCP_BYTES in all
tcp_gibs() {
	local out="$T_DIR/tcp$1.out" py="$T_DIR/tcpbw.py" pid
	[ -f "$py" ] || bench_tcpbw_py >"$py"
	: >"$out"
	ip netns exec "$NS_node2" timeout 90 "$PY" "$py" server "$N2_ADDR" 5201 "$1" >"$out" 2>&1 &
	pid=$!
	T_PIDS="$T_PIDS $pid"
	wait_for 5 grep -q listening "$out" || die "tcp server did not start: $(cat "$out")"
	timeout 60 ip netns exec "$NS_node1" "$PY" "$py" client "$N2_ADDR" 5201 "$1" "$TCP_BYTES" ||
		die "tcp client failed"
	wait "$pid" || die "tcp server failed: $(cat "$out")"
	awk '$2 > 0 { printf "%.3f", $1 / $2 / 1073741824 }' "$out"
}
