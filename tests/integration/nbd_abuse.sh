#!/bin/bash
# NBD availability under abuse (doc/nbd.md, "Limits"): while each attack
# runs, a good libnbd client from another address connects and its 4 KiB
# reads each complete in under 1 s, and the daemon's RSS stays bounded.
#  1. 300 clients from one address that handshake and then idle: all but
#     max-clients-per-address are refused (the refusal lines rate-limited),
#     the rest are evicted after idle-timeout.
#  2. 64 clients that send one handshake byte a second: each is dropped at
#     the handshake deadline (a total, not per byte).
#  3. 64 clients that ask for 32 MiB reads and never read the replies: no
#     worker is pinned, RSS stays within the pool's bound, and they are
#     disconnected after send-timeout.
#  4. 64 clients with 4 MiB replies they never read: as many as there are
#     workers, all within the pool, so only non-blocking sends keep the
#     good client served.
# First, a client that reads its replies slowly gets them whole (they go out
# in pieces through the sender thread). Attackers use 127.0.0.2-15
# (loopback), the good client 127.0.0.1.
. "$top_srcdir/tests/lib.sh"
plan 29

PORT=$(free_port nbd_abuse)
HS=3 IDLE=4 SEND=5 PER_ADDR=16
RSS_MAX_MB=512   # the shared pool is 256 MiB, plus threads and buffers
solo_setup "$PORT" 256M "handshake-timeout=\"$HS\" idle-timeout=\"$IDLE\" send-timeout=\"$SEND\" max-clients-per-address=\"$PER_ADDR\""

# The attackers: raw sockets, bounded in count and time.
cat >"$T_DIR/abuse.py" <<'EOF'
import select, socket, struct, sys, time
IHAVEOPT = 0x49484156454F5054
port, mode, srcs = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(',')
n, secs, ready = int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]

def recvn(s, k):
    b = b''
    while len(b) < k:
        d = s.recv(k - len(b))
        if not d:
            raise EOFError('closed')
        b += d
    return b

def connect(i, rcvbuf=0):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((srcs[i % len(srcs)], 0))
    s.settimeout(5)
    s.connect(('127.0.0.1', port))
    return s

def blocking(s):
    s.settimeout(None)  # else MSG_DONTWAIT still waits for the timeout
    return s

GO = struct.pack('>QII', IHAVEOPT, 7, 10) + struct.pack('>I', 4) + b'vol0' + struct.pack('>H', 0)

def handshake(s):
    assert recvn(s, 18)[:16] == b'NBDMAGICIHAVEOPT'
    s.sendall(struct.pack('>I', 3) + GO)
    while True:
        magic, opt, typ, ln = struct.unpack('>QIII', recvn(s, 20))
        recvn(s, ln)
        if typ == 1:
            return
        assert not typ & 0x80000000, 'GO refused'

def closed(s):
    """True when the server has closed s (EOF or reset); never blocks.
    Only for sockets that receive nothing else: it reads."""
    try:
        return s.recv(65536, socket.MSG_DONTWAIT) == b''
    except BlockingIOError:
        return False
    except OSError:
        return True

def watch(socks, t0):
    """Until secs after t0: when did the server close each socket?"""
    when = {}
    while time.time() < t0 + secs and len(when) < len(socks):
        left = [s for s in socks if s not in when]
        r, _, _ = select.select(left, [], [], 0.2)
        for s in r:
            if closed(s):
                when[s] = time.time()
    return when

def signal_ready():
    open(ready, 'w').close()

t0 = time.time()
if mode == 'idle':
    socks, refused = [], 0
    for i in range(n):
        try:
            s = connect(i)
            handshake(s)
            socks.append(blocking(s))
        except (EOFError, ConnectionError, socket.timeout):
            refused += 1
    signal_ready()
    when = watch(socks, time.time())
    print('idle accepted=%d refused=%d evicted=%d' % (len(socks), refused, len(when)))
elif mode == 'slowloris':
    socks = [connect(i) for i in range(n)]
    for s in socks:
        recvn(s, 18)
        blocking(s)
    start = time.time()
    signal_ready()
    msg, tick, when = struct.pack('>I', 3) + GO, 0, {}
    while time.time() < start + secs and len(when) < n:
        for s in socks:
            if s in when:
                continue
            if closed(s):
                when[s] = time.time()
                continue
            try:
                if tick % 10 == 0:  # one byte a second: never a full handshake
                    s.send(msg[tick // 10:tick // 10 + 1])
            except OSError:
                when[s] = time.time()
        tick += 1
        time.sleep(0.1)
    last = max(when.values()) - start if when else -1
    print('slowloris closed=%d of %d, the last after %.1f s' % (len(when), n, last))
elif mode == 'slowread':
    # 8 x 1 MiB reads, the replies read 64 KiB at a time, slowly: they go
    # out through the sender thread in pieces and must arrive whole
    pat = open(sys.argv[7], 'rb').read()
    s = connect(0, rcvbuf=4096)
    handshake(s)
    s = blocking(s)
    for j in range(8):
        s.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 0, j, j << 20, 1 << 20))
    signal_ready()
    time.sleep(1)  # let the socket fill up
    ok = 0
    for _ in range(8):
        magic, err, cookie = struct.unpack('>IIQ', recvn(s, 16))
        data = b''
        while len(data) < 1 << 20:
            data += recvn(s, min(65536, (1 << 20) - len(data)))
            time.sleep(0.02)
        ok += magic == 0x67446698 and err == 0 and data == pat[cookie << 20:(cookie + 1) << 20]
    print('slowread good=%d of 8 in %.1f s' % (ok, time.time() - t0))
elif mode == 'noread':
    mib, reads = int(sys.argv[7]), int(sys.argv[8])
    socks = []
    for i in range(n):
        s = connect(i, rcvbuf=4096)
        handshake(s)
        for j in range(reads):  # replies never read
            off = ((i * reads + j) * mib % 224) << 20
            s.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 0, j, off, mib << 20))
        socks.append(s)
    signal_ready()
    time.sleep(secs)  # reading nothing, not even to see the close
    print('noread clients=%d' % len(socks))
EOF

# The good client: connect, then 4 KiB reads for SECS; every one < 1 s.
cat >"$T_DIR/good.py" <<'EOF'
import random, sys, time
import nbd
uri, secs, pid = sys.argv[1], float(sys.argv[2]), sys.argv[3]

def rss_mb():
    for line in open('/proc/%s/status' % pid):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) // 1024
    return -1

t = time.time()
h = nbd.NBD()
h.connect_uri(uri)
connect_ms = (time.time() - t) * 1000
worst, reads, rss = connect_ms, 0, rss_mb()
end = time.time() + secs
while time.time() < end:
    t = time.time()
    h.pread(4096, random.randrange(0, (256 << 20) // 4096) * 4096)
    worst = max(worst, (time.time() - t) * 1000)
    reads += 1
    rss = max(rss, rss_mb())
    time.sleep(0.01)
h.shutdown()
print('good connect_ms=%.1f reads=%d worst_ms=%.1f rss_mb=%d' % (connect_ms, reads, worst, rss))
sys.exit(0 if worst < 1000 else 1)
EOF

# attack NAME MODE SRCS N SECS [MiB READS]: start an attacker, wait until
# it is set up
attack() {
	rm -f "$T_DIR/$1.ready"
	/usr/bin/python3 "$T_DIR/abuse.py" "$PORT" "$2" "$3" "$4" "$5" "$T_DIR/$1.ready" "${@:6}" \
		>"$T_DIR/$1.out" 2>&1 &
	eval "${1}_pid=$!"
	wait_for 30 test -e "$T_DIR/$1.ready"
}
# good NAME SECS: the good client's reads during an attack (bounded in time)
good() {
	timeout $(($2 + 20)) /usr/bin/python3 "$T_DIR/good.py" "$URI" "$2" "$d_pid" \
		>"$T_DIR/$1.good" 2>&1
	local rc=$?
	diag "$1: $(cat "$T_DIR/$1.good")"
	return $rc
}
rss_ok() {
	local mb
	mb=$(sed -n 's/.*rss_mb=\([0-9]*\).*/\1/p' "$T_DIR/$1.good")
	diag "$1: daemon RSS at most $mb MiB during the attack (bound $RSS_MAX_MB MiB)"
	[ -n "$mb" ] && [ "$mb" -lt "$RSS_MAX_MB" ]
}
field() { sed -n "s/.*$2=\([0-9]*\).*/\1/p" "$T_DIR/$1.out"; }
count() { grep -c -- "$1" "$T_DIR/d.log"; }
# connected A B: the daemon's established clients from 127.0.0.A-B
connected() {
	ss -Htn state established "( sport = :$PORT )" |
		awk -v a="$1" -v b="$2" '{ split($4, p, ":"); split(p[1], q, ".");
			if (p[1] ~ /^127\.0\.0\./ && q[4] >= a && q[4] <= b) n++ } END { print n + 0 }'
}
addrs() { local a="" i; for i in $(seq "$1" "$2"); do a="$a,127.0.0.$i"; done; echo "${a#,}"; }

start_daemon d --config "$T_DIR/solo.xml" --node solo --socket "ipm-test-$$"
wait_for 10 tcp_open 127.0.0.1 "$PORT" || bail "daemon did not listen: $(cat "$T_DIR/d.log")"
check "a good client works before the attacks" good before 1
head -c 8M /dev/urandom >"$T_DIR/pat.bin"
nbdsh -u "$URI" -c "h.pwrite(open('$T_DIR/pat.bin', 'rb').read(), 0)" >"$T_DIR/pat.out" 2>&1

# ---- 0. a slow reader is served, not cut off ---------------------------------
check "slow reader: set up" attack slowread slowread 127.0.0.15 1 0 "$T_DIR/pat.bin"
wait "$slowread_pid"
diag "$(cat "$T_DIR/slowread.out")"
check "slow reader: 8 x 1 MiB replies sent in pieces arrive whole and right" \
	grep -q "slowread good=8 of 8" "$T_DIR/slowread.out"

# ---- 1. idle clients from one address ------------------------------------
check "idle: 300 clients from 127.0.0.2 set up" attack idle idle 127.0.0.2 300 $((IDLE + 3))
check "idle: a good client from 127.0.0.1 connects, 4 KiB reads < 1 s" good idle 3
check "idle: daemon RSS bounded" rss_ok idle
wait "$idle_pid"
diag "$(cat "$T_DIR/idle.out")"
check "idle: $PER_ADDR accepted from one address, the others refused" \
	test "$(field idle accepted)" = "$PER_ADDR" -a "$(field idle refused)" = $((300 - PER_ADDR))
check "idle: refusals logged naming the limit" \
	grep -q "nbd client 127.0.0.2:[0-9]*: refused: already $PER_ADDR clients from 127.0.0.2 (max-clients-per-address)" "$T_DIR/d.log"
diag "refusal lines logged: $(count 'refused: already') for $(field idle refused) refusals"
check "idle: refusal lines rate-limited (at most 10)" test "$(count 'refused: already')" -le 10
check "idle: the idle clients evicted after idle-timeout" test "$(field idle evicted)" = "$PER_ADDR"
check "idle: eviction logged" grep -q "idle for $IDLE s (idle-timeout), disconnecting" "$T_DIR/d.log"

# ---- 2. one handshake byte a second ----------------------------------------
check "slowloris: 64 clients from 127.0.0.3-6 set up" \
	attack slow slowloris "$(addrs 3 6)" 64 $((HS + 4))
check "slowloris: a good client connects, 4 KiB reads < 1 s" good slow 3
check "slowloris: daemon RSS bounded" rss_ok slow
wait "$slow_pid"
diag "$(cat "$T_DIR/slow.out")"
check "slowloris: all 64 dropped" grep -q "closed=64 of 64" "$T_DIR/slow.out"
last=$(sed -n 's/.*the last after \([0-9.]*\) s.*/\1/p' "$T_DIR/slow.out")
check "slowloris: dropped at the $HS s deadline (last after $last s)" \
	awk -v t="$last" -v hs="$HS" 'BEGIN { exit !(t >= 0 && t <= hs + 1.5) }'
check "slowloris: logged" grep -q "handshake timed out after $HS s (handshake-timeout)" "$T_DIR/d.log"
diag "handshake timeout lines logged: $(count 'handshake timed out') for 64 clients"
check "slowloris: timeout lines rate-limited" test "$(count 'handshake timed out')" -le 10

# ---- 3. large reads, replies never read ------------------------------------
check "noread: 64 clients from 127.0.0.7-10 with 4 x 32 MiB reads each" \
	attack noread noread "$(addrs 7 10)" 64 $((SEND + 8)) 32 4
check "noread: a good client connects, 4 KiB reads < 1 s" good noread 8
check "noread: daemon RSS bounded" rss_ok noread
# the attackers read nothing, not even the close: count the daemon's side
left=$(connected 7 10)
diag "noread: $left of 64 attackers still connected 9 s in"
check "noread: clients not reading disconnected after send-timeout (at least a pool's worth)" test "$left" -le 60
wait "$noread_pid"
diag "$(cat "$T_DIR/noread.out")"
check "noread: logged" grep -q "not reading replies for $SEND s (send-timeout), closing" "$T_DIR/d.log"

# ---- 4. as many stuck replies as there are workers ---------------------------
# 4 MiB replies: more than the socket buffers, and 64 of them fit the pool,
# so 64 stuck senders would pin all 64 workers if a send could block one.
check "noread 4M: 64 clients from 127.0.0.11-14 with a 4 MiB read each" \
	attack noread4 noread "$(addrs 11 14)" 64 $((SEND + 5)) 4 1
check "noread 4M: a good client connects, 4 KiB reads < 1 s" good noread4 $((SEND + 2))
check "noread 4M: daemon RSS bounded" rss_ok noread4
left=$(connected 11 14)
diag "noread 4M: $left of 64 attackers still connected $((SEND + 3)) s in"
check "noread 4M: all stuck clients disconnected after send-timeout" test "$left" -le 8
wait "$noread4_pid"

check "after the attacks: the daemon is alive and a good client works" good after 1
finish
