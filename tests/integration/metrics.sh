#!/bin/bash
# Prometheus metrics (doc/metrics.md) on a real pair in network namespaces:
# both daemons serve /metrics; the text passes a strict format 0.0.4 checker
# (tests/integration/py/promtext.py) at every scrape; a bounded fio load
# makes the byte counters grow by at least what fio wrote and read; a link
# cut moves the primary's state to journaling with journal bytes > 0 and
# its connections to 0, the heal back to uptodate; bad requests (garbage,
# oversized, another method, another path, a stalled client) get their
# error and the daemon goes on serving.
. "$top_srcdir/tests/lib.sh"
plan 37

PROM="$top_srcdir/tests/integration/py/promtext.py"
MPORT=9943   # inside each node's own namespace: no clash with other tests

netns_pair || bail "cannot create network namespaces"
pair_setup vol0:64M:sync:yes:node1
for n in 1 2; do
	a=$(eval echo "\$N${n}_ADDR"); p=$(eval echo "\$N${n}_NBD")
	sed -i "s|<nbd address=\"$a\" port=\"$p\"/>|&<metrics address=\"$a\" port=\"$MPORT\"/>|" \
		"$T_DIR/pair.xml"
done
grep -q "<metrics address=\"$N1_ADDR\"" "$T_DIR/pair.xml" || bail "no <metrics> in pair.xml"
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
VERSION=$("$IPMIRRORD" --version | awk '{print $NF}')

# scrape NODE NAME: GET /metrics into $T_DIR/NAME.raw, checked strictly;
# the series "name{sorted labels} value" into $T_DIR/NAME
scrape() {
	local a; a=$(eval echo "\$N${1#node}_ADDR")
	in_node "$1" curl -sS --max-time 5 -o "$T_DIR/$2.raw" -w '%{http_code} %{content_type}' \
		"http://$a:$MPORT/metrics" >"$T_DIR/$2.http" 2>&1 || return 1
	[ "$(cat "$T_DIR/$2.http")" = "200 text/plain; version=0.0.4; charset=utf-8" ] || {
		diag "$1: $(cat "$T_DIR/$2.http")"; return 1; }
	python3 "$PROM" check "$T_DIR/$2.raw" >"$T_DIR/$2" 2>"$T_DIR/$2.err" || {
		diag "$1: the text does not parse: $(cat "$T_DIR/$2.err")"; return 1; }
}
# val NAME SERIES: its value in scrape NAME ("" when absent)
val() { awk -v k="$2" '$1 == k { print $2 }' "$T_DIR/$1"; }
L1='lun="vol0",node="node1"'
L2='lun="vol0",node="node2"'
# is NODE SERIES VALUE: a fresh scrape of NODE has SERIES = VALUE
is() { scrape "$1" now && [ "$(val now "$2")" = "$3" ]; }
# above NODE SERIES N: a fresh scrape of NODE has SERIES > N
above() { scrape "$1" now && awk -v v="$(val now "$2")" -v n="$3" 'BEGIN { exit !(v != "" && v > n) }'; }
# conns_up NODE N: exactly N connection_up series of NODE are 1, and M are 0
conns() {
	scrape "$1" now &&
	[ "$(grep -c '^ipmirror_connection_up{.*} 1$' "$T_DIR/now")" = "$2" ] &&
	[ "$(grep -c '^ipmirror_connection_up{.*} 0$' "$T_DIR/now")" = "$3" ]
}
# fio_bytes JOB DIR: bytes fio's job moved in DIR (read/write)
fio_bytes() { sed -n '/^{/,$p' "$T_DIR/$1.json" | jq "[.jobs[].$2.io_bytes] | add"; }

check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate
sleep 1   # the status poller's next snapshot
check "node1 serves /metrics (text/plain 0.0.4) and it parses strictly" scrape node1 s0
check "node2 serves /metrics and it parses strictly" scrape node2 t0
check "build info names the version ($VERSION)" \
	test "$(val s0 "ipmirror_build_info{version=\"$VERSION\"}")" = 1
check "node1: vol0 is uptodate, one-hot over the 8 states (down included)" \
	test "$(val s0 "ipmirror_lun_state{$L1,state=\"uptodate\"}")-$(grep -c "^ipmirror_lun_state{$L1,.*} 0$" "$T_DIR/s0")" = 1-7
check "roles: primary on node1, mirror on node2" \
	test "$(val s0 "ipmirror_lun_role{$L1,role=\"primary\"}")$(val t0 "ipmirror_lun_role{$L2,role=\"mirror\"}")" = 11
check "node1: peer up, udp heartbeat up, 4 connections up" \
	test "$(val s0 'ipmirror_peer_up{node="node1",peer="node2"}')$(val s0 'ipmirror_peer_heartbeat_up{node="node1",path="udp",peer="node2"}')$(grep -c '^ipmirror_connection_up{.*direction="out".*} 1$' "$T_DIR/s0")" = 114
check "node1: journal empty" test "$(val s0 "ipmirror_lun_journal_bytes{$L1}")" = 0

# a bounded verifying load: writes and the verify's reads
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" load1 --size=8M --runtime=15
check "fio load 1 completed without error" test $? = 0
sleep 1
check "node1 scrape after the load parses strictly" scrape node1 s1
w0=$(val s0 "ipmirror_lun_written_bytes_total{$L1}"); w1=$(val s1 "ipmirror_lun_written_bytes_total{$L1}")
fw=$(fio_bytes load1 write)
check "written bytes grew by at least what fio wrote ($w0 -> $w1, fio $fw)" \
	test "$((w1 - w0))" -ge "$fw" -a "$fw" -gt 0
r0=$(val s0 "ipmirror_lun_read_bytes_total{$L1}"); r1=$(val s1 "ipmirror_lun_read_bytes_total{$L1}")
fr=$(fio_bytes load1 read)
check "read bytes grew by at least what fio read ($r0 -> $r1, fio $fr)" \
	test "$((r1 - r0))" -ge "$fr" -a "$fr" -gt 0
m0=$(val s0 "ipmirror_lun_mirrored_bytes_total{$L1}"); m1=$(val s1 "ipmirror_lun_mirrored_bytes_total{$L1}")
check "mirrored bytes grew by at least the writes ($m0 -> $m1)" test "$((m1 - m0))" -ge "$fw"
check "no host request left in flight" test "$(val s1 "ipmirror_lun_inflight_requests{$L1}")" = 0
check "no host bytes left in flight" test "$(val s1 "ipmirror_lun_inflight_bytes{$L1}")" = 0
# the write latency histogram: one count per host write, cumulative buckets
H=ipmirror_lun_write_latency_seconds
fios=$(sed -n '/^{/,$p' "$T_DIR/load1.json" | jq '[.jobs[].write.total_ios] | add')
c0=$(val s0 "${H}_count{$L1}"); c1=$(val s1 "${H}_count{$L1}")
check "latency count grew by at least fio's writes (${c0:-?} -> ${c1:-?}, fio $fios)" \
	test "$((c1 - c0))" -ge "$fios" -a "$fios" -gt 0
buckets=$(grep "^${H}_bucket{le=\"[^\"]*\",$L1} " "$T_DIR/s1" | awk '{print $2}' | tr '\n' ' ')
mono() { local p=0 v; for v in $buckets; do [ "$v" -ge "$p" ] || return 1; p=$v; done; }
check "15 cumulative buckets, +Inf = count ($buckets)" bash -c "
	$(declare -f mono); buckets='$buckets'; mono && [ \$(wc -w <<<'$buckets') = 15 ] &&
	[ '$(val s1 "${H}_bucket{le=\"+Inf\",$L1}")' = '$c1' ]"
check "latency sum > 0 s" awk -v v="$(val s1 "${H}_sum{$L1}")" 'BEGIN { exit !(v > 0) }'
# the mirror request latency: the primary's live requests, one count per
# write mirrored (and per flush); nothing on the mirror, which sends none
M=ipmirror_lun_mirror_latency_seconds
mc0=$(val s0 "${M}_count{$L1}"); mc1=$(val s1 "${M}_count{$L1}")
check "mirror latency count grew by at least fio's writes (${mc0:-?} -> ${mc1:-?}, fio $fios)" \
	test "$((mc1 - mc0))" -ge "$fios"
check "mirror latency sum > 0 s, below the host's (${M}_sum $(val s1 "${M}_sum{$L1}"))" \
	awk -v m="$(val s1 "${M}_sum{$L1}")" -v h="$(val s1 "${H}_sum{$L1}")" 'BEGIN { exit !(m > 0 && m <= h) }'
check "node2 scrape after the load parses strictly" scrape node2 t1
check "node2: mirror latency count 0" test "$(val t1 "${M}_count{$L2}")" = 0
check "the status schema metric (1)" test "$(val s1 "ipmirror_status_schema{}")" = 1

# the link cut, under load
link_down
diag "link down at $(date +%T)"
load_start 16M 6 --rate_iops=500
check "link cut: node1's vol0 state goes to journaling" \
	wait_for 10 is node1 "ipmirror_lun_state{$L1,state=\"journaling\"}" 1
check "link cut: journal bytes > 0" wait_for 10 above node1 "ipmirror_lun_journal_bytes{$L1}" 0
check "link cut: journal records > 0" above node1 "ipmirror_lun_journal_records{$L1}" 0
check "link cut: every connection of node1 down (0 up, 4 down)" wait_for 10 conns node1 0 4
peer_gone() {
	is node1 'ipmirror_peer_up{node="node1",peer="node2"}' 0 &&
	above node1 'ipmirror_peer_heartbeat_age_seconds{node="node1",path="udp",peer="node2"}' 2
}
check "link cut: peer down, its udp heartbeat older than 2 s" wait_for 10 peer_gone
wait "$fio_pid"
check "fio load 2 completed without error across the cut" test $? = 0
link_up
check "healed: node1's vol0 uptodate again" \
	wait_for 30 is node1 "ipmirror_lun_state{$L1,state=\"uptodate\"}" 1
check "healed: journal empty (bytes and records)" test "$(val now "ipmirror_lun_journal_bytes{$L1}") $(val now "ipmirror_lun_journal_records{$L1}")" = "0 0"
check "healed: 4 connections up" wait_for 10 conns node1 4 0

# bad requests, each answered, the server goes on
req() { in_node node1 timeout 15 python3 "$PROM" http "$N1_ADDR" "$MPORT" "$(printf '%b' "$1" | od -An -tx1 -v | tr -d ' \n')"; }
big=$(printf 'X-Pad: %05000d\r\n' 0)
got=$(req 'garbage\r\n\r\n'; req 'GET /metrics HTTP/2.0\r\n\r\n'; req 'POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n'; \
	req 'DELETE / HTTP/1.0\r\n\r\n'; req 'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n'; \
	req "GET /metrics HTTP/1.1\r\n$big\r\n"; req 'GET /metrics?x=1 HTTP/1.0\r\n\r\n')
diag "answers: $(echo "$got" | tr '\n' '|')"
check "bad requests get 400, 400, 405, 405, 404, 431; a query string is fine (200)" test "$got" = \
"HTTP/1.0 400 Bad Request
HTTP/1.0 400 Bad Request
HTTP/1.0 405 Method Not Allowed
HTTP/1.0 405 Method Not Allowed
HTTP/1.0 404 Not Found
HTTP/1.0 431 Request Header Fields Too Large
HTTP/1.0 200 OK"
# a client that connects and sends nothing holds the server at most 2 s (it
# stays 5 s)
in_node node1 timeout 10 python3 -c "import socket, time; s = socket.create_connection(('$N1_ADDR', $MPORT)); time.sleep(5)" &
stall=$!
sleep 0.3
t0=$(date +%s.%N)
check "a scrape behind a stalled client is served" scrape node1 s2
check "... within 4 s ($(echo "$(date +%s.%N) - $t0" | bc) s)" test "$(echo "$(date +%s.%N) - $t0 < 4" | bc)" = 1
wait "$stall"
check "the daemon still serves, its text still parses" scrape node1 s3
finish
