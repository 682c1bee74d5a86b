#!/bin/bash
# NBD over TLS (NBD_OPT_STARTTLS, <nbd tls=...>) against libnbd's and qemu's
# TLS clients: a PSK file in psktool's format and an X.509 certificate; data
# written over TLS reads back (and is on the backing file); a capture of the
# TCP traffic holds none of it (while a plaintext client's does); tls=require
# answers a plaintext client's options with NBD_REP_ERR_TLS_REQD and hangs
# up on NBD_OPT_EXPORT_NAME, a wrong key fails the handshake, the Unix
# socket stays plaintext; tls=on serves both; tls=off refuses STARTTLS with
# NBD_REP_ERR_POLICY; a world-readable PSK file stops the daemon's start.
. "$top_srcdir/tests/lib.sh"
# the captures need it (tests/install-deps.sh installs it): a fail, not a skip
command -v tcpdump >/dev/null || bail "tcpdump is not installed (tests/install-deps.sh)"
plan 22

PORT=$(free_port nbd_tls)
SOCK="$T_DIR/nbd.sock"
MiB=$((1024 * 1024))
PSK="$T_DIR/keys.psk"
PKI="$T_DIR/pki"
T_LOG_ALLOW='TLS handshake failed'

# ---- credentials: psktool's key file, a CA and a server certificate ------
( umask 077; psktool -u alice -p "$PSK" >/dev/null ) || bail "psktool failed"
mkdir -p "$T_DIR/qpsk" "$PKI"
cp "$PSK" "$T_DIR/qpsk/keys.psk"      # qemu's tls-creds-psk reads dir/keys.psk
certtool --generate-privkey --key-type=ecdsa --outfile "$PKI/ca-key.pem" 2>/dev/null
printf 'cn = ipmirror test CA\nca\ncert_signing_key\nexpiration_days = 2\n' >"$PKI/ca.info"
certtool --generate-self-signed --load-privkey "$PKI/ca-key.pem" --template "$PKI/ca.info" \
	--outfile "$PKI/ca-cert.pem" 2>/dev/null
( umask 077; certtool --generate-privkey --key-type=ecdsa --outfile "$PKI/server-key.pem" 2>/dev/null )
printf 'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 2\n' \
	>"$PKI/server.info"
certtool --generate-certificate --load-privkey "$PKI/server-key.pem" --load-ca-certificate "$PKI/ca-cert.pem" \
	--load-ca-privkey "$PKI/ca-key.pem" --template "$PKI/server.info" \
	--outfile "$PKI/server-cert.pem" 2>/dev/null
test -s "$PKI/server-cert.pem" || bail "certtool failed"

TLS_ATTRS="tls-psk-file=\"$PSK\" tls-cert=\"$PKI/server-cert.pem\" tls-key=\"$PKI/server-key.pem\""
SURI="nbds://alice@127.0.0.1:$PORT/vol0?tls-psk-file=$PSK"

# nbd_opt MODE: a raw fixed-newstyle client. MODE go: NBD_OPT_GO for vol0 in
# the clear, prints the reply type in hex; starttls: NBD_OPT_STARTTLS, the
# same; export_name: NBD_OPT_EXPORT_NAME in the clear, prints "closed" when
# the server hangs up without an answer.
nbd_opt() {
	python3 - "$PORT" "$1" <<'EOF'
import socket, struct, sys
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
def rd(n):
    b = b""
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            raise EOFError
        b += k
    return b
rd(18)
s.sendall(struct.pack(">I", 1))
name = b"vol0"
if mode == "export_name":
    s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, len(name)) + name)
    try:
        rd(8)
        print("answered")
    except (EOFError, ConnectionResetError):
        print("closed")
    sys.exit(0)
if mode == "go":
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    opt = 7
else:
    data, opt = b"", 5
s.sendall(struct.pack(">QII", 0x49484156454F5054, opt, len(data)) + data)
magic, o, typ, ln = struct.unpack(">QIII", rd(20))
print("%08x" % typ)
EOF
}

# captured PATTERN-FILE CMD...: run CMD while tcpdump records the NBD port
# on loopback; prints how many of the pattern's 64-byte pieces at every
# 4 KiB (segments split it, so not the whole) the capture holds
captured() {
	local pat="$1" pcap="$T_DIR/cap.pcap" pid; shift
	rm -f "$pcap"
	tcpdump -i lo -U -s 0 -w "$pcap" "tcp port $PORT" 2>/dev/null & pid=$!
	wait_for 5 test -s "$pcap"   # the file header is written once it listens
	sleep 0.3
	"$@" >/dev/null 2>&1
	sleep 0.5; kill "$pid"; wait "$pid" 2>/dev/null
	python3 - "$pcap" "$pat" <<'EOF'
import sys
cap, pat = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
print(sum(pat[o:o + 64] in cap for o in range(0, len(pat) - 64, 4096)))
EOF
}

# ---- tls=require, PSK and X.509 ------------------------------------------
solo_setup "$PORT" 64M "unix=\"$SOCK\" tls=\"require\" $TLS_ATTRS"
start_daemon d --config "$T_DIR/solo.xml" --node solo --socket "ipm-test-$$"
wait_for 10 tcp_open 127.0.0.1 "$PORT" || bail "daemon did not listen: $(cat "$T_DIR/d.log")"

nbdinfo "$SURI" >"$T_DIR/info.out" 2>&1
check "require: nbdinfo with the PSK file negotiates TLS" grep -q 'with TLS' "$T_DIR/info.out"
check "the daemon logs the TLS session" grep -q 'TLS started (TLS1.3 PSK' "$T_DIR/d.log"

head -c $((32 * MiB)) /dev/urandom >"$T_DIR/src"
nbdcopy "$T_DIR/src" "$SURI" 2>"$T_DIR/copy-in.err"
check "nbdcopy over TLS: 32 MiB in" test $? = 0
nbdcopy "$SURI" "$T_DIR/out" 2>"$T_DIR/copy-out.err"
check "nbdcopy over TLS: read back byte-identical" cmp -n $((32 * MiB)) "$T_DIR/src" "$T_DIR/out"
check "the backing file holds the same bytes" cmp -n $((32 * MiB)) "$T_DIR/src" "$IMG"
rm -f "$T_DIR/out"

QPSK=(--object "tls-creds-psk,id=tls0,endpoint=client,dir=$T_DIR/qpsk,username=alice")
qemu-io "${QPSK[@]}" --image-opts "driver=nbd,host=127.0.0.1,port=$PORT,export=vol0,tls-creds=tls0" \
	-c 'write -P 0xab 40M 1M' -c 'read -P 0xab 40M 1M' >"$T_DIR/qemu-psk.out" 2>&1
check "qemu-io with tls-creds-psk: pattern written and read back" \
	test "$(grep -c '^read 1048576/1048576' "$T_DIR/qemu-psk.out")" = 1 -a \
	"$(grep -c 'Pattern verification failed' "$T_DIR/qemu-psk.out")" = 0

QX509=(--object "tls-creds-x509,id=tls1,endpoint=client,dir=$PKI,verify-peer=on")
qemu-io "${QX509[@]}" --image-opts "driver=nbd,host=127.0.0.1,port=$PORT,export=vol0,tls-creds=tls1" \
	-c 'write -P 0x3c 41M 512k' -c 'read -P 0x3c 41M 512k' >"$T_DIR/qemu-x509.out" 2>&1
check "qemu-io with tls-creds-x509 (server certificate checked): pattern read back" \
	test "$(grep -c '^read 524288/524288' "$T_DIR/qemu-x509.out")" = 1 -a \
	"$(grep -c 'Pattern verification failed' "$T_DIR/qemu-x509.out")" = 0
check "the daemon logs an X.509 session" grep -q 'TLS started (TLS1.3 X.509' "$T_DIR/d.log"

# a 1 MiB pattern on the wire: over TLS the capture must not hold it
head -c $MiB /dev/urandom >"$T_DIR/pat"
n=$(captured "$T_DIR/pat" nbdcopy "$T_DIR/pat" "$SURI")
check "capture: none of the data written over TLS is on the wire (found $n of 256 pieces)" \
	test "$n" = 0
check "  ... and it did arrive" cmp -n $MiB "$T_DIR/pat" "$IMG"

check "require: plaintext NBD_OPT_GO answered NBD_REP_ERR_TLS_REQD" \
	test "$(nbd_opt go)" = 80000005
check "require: plaintext NBD_OPT_EXPORT_NAME: the server hangs up" \
	test "$(nbd_opt export_name)" = closed
nbdinfo "nbd://127.0.0.1:$PORT/vol0" >"$T_DIR/plain.out" 2>&1
check "require: plaintext nbdinfo fails" test $? != 0
check "the refusals are logged" grep -q 'NBD_OPT_GO refused: TLS is required' "$T_DIR/d.log"

( umask 077; psktool -u alice -p "$T_DIR/wrong.psk" >/dev/null )
nbdinfo "nbds://alice@127.0.0.1:$PORT/vol0?tls-psk-file=$T_DIR/wrong.psk" >"$T_DIR/wrong.out" 2>&1
check "a wrong PSK: the client fails" test $? != 0
check "a wrong PSK: the daemon logs the failed handshake" \
	wait_for 5 grep -q 'TLS handshake failed' "$T_DIR/d.log"

nbdinfo "nbd+unix:///vol0?socket=$SOCK" >"$T_DIR/unix.out" 2>&1
check "require: the Unix socket serves plaintext clients" grep -q 'without TLS' "$T_DIR/unix.out"
stop_pid "$d_pid"

# ---- tls=on: both ----------------------------------------------------------
solo_setup "$PORT" 64M "tls=\"on\" tls-psk-file=\"$PSK\""
start_daemon d2 --config "$T_DIR/solo.xml" --node solo --socket "ipm-test-$$"
wait_for 10 tcp_open 127.0.0.1 "$PORT" || bail "daemon did not listen: $(cat "$T_DIR/d2.log")"
n=$(captured "$T_DIR/pat" nbdcopy "$T_DIR/pat" "nbd://127.0.0.1:$PORT/vol0")
check "on: a plaintext client's data is on the wire (the capture works: $n of 256 pieces)" \
	test "$n" -ge 128
nbdinfo "$SURI" >"$T_DIR/on-tls.out" 2>&1
check "on: a TLS client is served with TLS" grep -q 'with TLS' "$T_DIR/on-tls.out"
stop_pid "$d2_pid"

# ---- tls=off; a bad key file ----------------------------------------------
solo_setup "$PORT" 64M
start_daemon d3 --config "$T_DIR/solo.xml" --node solo --socket "ipm-test-$$"
wait_for 10 tcp_open 127.0.0.1 "$PORT" || bail "daemon did not listen: $(cat "$T_DIR/d3.log")"
check "off: NBD_OPT_STARTTLS answered NBD_REP_ERR_POLICY" test "$(nbd_opt starttls)" = 80000002
stop_pid "$d3_pid"

chmod 644 "$PSK"
solo_setup "$PORT" 64M "tls=\"require\" tls-psk-file=\"$PSK\""
timeout 20 "$IPMIRRORD" --foreground --config "$T_DIR/solo.xml" --node solo \
	--socket "ipm-test-$$" >"$T_DIR/bad.log" 2>&1
check "a world-readable PSK file: the daemon refuses to start, naming it" \
	test $? != 0 -a "$(grep -c "tls-psk-file $PSK is readable by others" "$T_DIR/bad.log")" -ge 1
finish
