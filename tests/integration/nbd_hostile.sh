#!/bin/bash
# Hostile and broken NBD clients: garbage handshakes, truncated handshakes,
# huge option lengths, bad request magic, unknown commands and options,
# out-of-range requests, oversized writes, a client vanishing with requests in
# flight, a client that says nothing. After each: the daemon is alive, a good
# client still reads and writes, and the log has a line naming the problem.
. "$top_srcdir/tests/lib.sh"
plan 32

PORT=$(free_port nbd_hostile)
solo_setup "$PORT" 64M

# A raw NBD client for what well-behaved libraries refuse to send.
cat >"$T_DIR/raw.py" <<'EOF'
import os, socket, struct, sys, time
IHAVEOPT = 0x49484156454F5054
port, mode = int(sys.argv[1]), sys.argv[2]

def recvn(s, n):
    b = b''
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError('closed after %d of %d bytes' % (len(b), n))
        b += d
    return b

def closed_by_server(s, timeout=5.0):
    """True when the server closes the connection within timeout."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False

def opt(s, o, data=b''):
    s.sendall(struct.pack('>QII', IHAVEOPT, o, len(data)) + data)
    replies = []
    while True:
        magic, ropt, typ, ln = struct.unpack('>QIII', recvn(s, 20))
        assert magic == 0x3e889045565a9 and ropt == o, 'bad option reply'
        replies.append((typ, recvn(s, ln)))
        if typ == 1 or typ & 0x80000000:
            return replies

def go(s, name=b'vol0'):
    r = opt(s, 7, struct.pack('>I', len(name)) + name + struct.pack('>H', 0))
    assert r[-1][0] == 1, 'GO refused: %r' % (r,)

def request(s, typ, cookie, off, ln, flags=0, payload=b''):
    s.sendall(struct.pack('>IHHQQI', 0x25609513, flags, typ, cookie, off, ln) + payload)

def reply(s):
    magic, err, cookie = struct.unpack('>IIQ', recvn(s, 16))
    assert magic == 0x67446698, 'bad reply magic'
    return err, cookie

s = socket.create_connection(('127.0.0.1', port))
hello = recvn(s, 18)
assert hello[:16] == b'NBDMAGICIHAVEOPT', 'bad greeting'
if mode == 'garbage':
    s.sendall(b'GET / HTTP/1.1\r\nHost: x\r\n\r\n' + os.urandom(4096))
    sys.exit(0 if closed_by_server(s) else 1)
if mode == 'silent':
    time.sleep(float(sys.argv[3]))
    sys.exit(0)
s.sendall(struct.pack('>I', 3))  # FIXED_NEWSTYLE | NO_ZEROES
if mode == 'truncated':
    s.sendall(struct.pack('>QI', IHAVEOPT, 7)[:10])
    s.close()
    sys.exit(0)
if mode == 'hugeopt':
    s.sendall(struct.pack('>QII', IHAVEOPT, 7, 0x7fffffff) + b'x' * 1000)
    sys.exit(0 if closed_by_server(s) else 1)
if mode == 'unknownopt':
    r = opt(s, 0x4242, b'whatever')
    assert r == [(0x80000001, r[0][1])], 'want NBD_REP_ERR_UNSUP, got %r' % (r,)
    go(s)  # the handshake goes on
    request(s, 0, 1, 0, 512)
    assert reply(s) == (0, 1)
    recvn(s, 512)
    sys.exit(0)
go(s)
if mode == 'badmagic':
    s.sendall(b'\xde\xad\xbe\xef' + bytes(24))
    sys.exit(0 if closed_by_server(s) else 1)
if mode == 'unknowncmd':
    request(s, 9, 0x1234, 0, 4096)
    assert reply(s) == (22, 0x1234), 'want EINVAL for the unknown command'
    request(s, 0, 0x99, 0, 4096)  # the connection stays usable
    assert reply(s) == (0, 0x99)
    recvn(s, 4096)
    sys.exit(0)
if mode == 'writepastend':
    # the refused write's payload is consumed: the next request still parses
    request(s, 1, 7, 64 << 20, 4096, payload=b'z' * 4096)
    err, cookie = reply(s)
    assert cookie == 7 and err != 0, 'write past the end accepted'
    request(s, 0, 8, 0, 16)
    assert reply(s) == (0, 8)
    recvn(s, 16)
    sys.exit(0)
if mode == 'bigwrite':
    request(s, 1, 5, 0, 64 << 20)  # more than 32 MiB: close
    sys.exit(0 if closed_by_server(s) else 1)
if mode == 'inflight':
    # within the server's per-client budget, so the server keeps reading
    for i in range(24):
        request(s, 0, i, i << 20, 1 << 20)  # 1 MiB reads, replies unread
    for i in range(8):
        request(s, 1, 100 + i, (32 + i) << 20, 256 << 10, payload=os.urandom(256 << 10))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.close()  # reset with everything in flight
    sys.exit(0)
sys.exit(2)
EOF
raw() { /usr/bin/python3 "$T_DIR/raw.py" "$PORT" "$@" >>"$T_DIR/raw.out" 2>&1; }

# good_client: the daemon is alive and a fresh client writes and reads back
good_client() {
	kill -0 "$d_pid" 2>/dev/null &&
		nbdsh -u "$URI" -c "
import os
d = os.urandom(65536)
h.pwrite(d, 4 << 20)
assert h.pread(65536, 4 << 20) == d
" >>"$T_DIR/good.out" 2>&1
}
# log_has PATTERN: a line naming the problem shows up (within 5 s)
log_has() { wait_for 5 grep -q -- "$1" "$T_DIR/d.log"; }

start_daemon d --config "$T_DIR/solo.xml" --node solo --socket "ipm-test-$$"
wait_for 10 tcp_open 127.0.0.1 "$PORT" || bail "daemon did not listen: $(cat "$T_DIR/d.log")"
check "a good client works before anything else" good_client

# a client that connects and never speaks is dropped after the handshake timeout
raw silent 20 & silent=$!

check "garbage instead of client flags: connection closed" raw garbage
check "garbage: logged" log_has "127.0.0.1:[0-9]*: handshake: unknown client flags"
check "garbage: daemon alive, good client works" good_client

check "truncated handshake: client gone" raw truncated
check "truncated handshake: logged" log_has "handshake truncated"
check "truncated handshake: daemon alive, good client works" good_client

check "huge option length: connection closed" raw hugeopt
check "huge option length: logged" log_has "length 2147483647 exceeds"
check "huge option length: daemon alive, good client works" good_client

check "unknown option: NBD_REP_ERR_UNSUP, then GO and READ work" raw unknownopt
check "unknown option: daemon alive, good client works" good_client

check "bad request magic: connection closed" raw badmagic
check "bad request magic: logged" log_has "bad request magic 0xdeadbeef"
check "bad request magic: daemon alive, good client works" good_client

check "unknown command: EINVAL reply, connection still usable" raw unknowncmd
check "unknown command: logged" log_has "unknown command (command unknown/9"
check "unknown command: daemon alive, good client works" good_client

# strict mode off, or libnbd refuses the request before sending it
nbdsh >"$T_DIR/oor.out" 2>&1 -c "
h.set_strict_mode(0)
h.connect_uri('$URI')
try:
    h.pread(4096, h.get_size() - 2048)
    print('out-of-range read succeeded')
except nbd.Error as e:
    print('refused:', e)
assert h.pread(4096, 0) is not None
print('still usable')
"
check "out-of-range read: nbdsh gets an error" grep -q '^refused:.*Invalid argument' "$T_DIR/oor.out"
check "out-of-range read: the same connection stays usable" grep -q '^still usable' "$T_DIR/oor.out"
check "out-of-range read: logged" log_has "request beyond the end of the export (command read"

check "write past the end: refused, payload consumed, next request parses" raw writepastend
check "write past the end: daemon alive, good client works" good_client

check "write longer than 32 MiB: connection closed" raw bigwrite
check "write longer than 32 MiB: logged" log_has "write longer than 32 MiB"
check "write longer than 32 MiB: daemon alive, good client works" good_client

check "disconnect with 32 requests in flight" raw inflight
sleep 1
check "disconnect in flight: daemon alive, good client works" good_client
check "disconnect in flight: logged" \
	log_has "nbd client 127.0.0.1:[0-9]*: \(disconnected without\|request: read error\|send failed\|request truncated\)"

check "silent client dropped after the handshake timeout" \
	wait_for 15 grep -q "handshake timed out" "$T_DIR/d.log"
wait "$silent"
check "after all that: a good client works" good_client
finish
