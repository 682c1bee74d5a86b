#!/bin/bash
# TLS on the mirror connections (<tls mode="psk">), two nodes in network
# namespaces: a capture on the veth during a write of a known pattern holds
# it in plaintext with tls off and holds none of it with tls psk; writes of
# mixed sizes (4 KiB to 1 MiB) leave equal copies; under TLS both sides
# agree to send WRITE payloads without CRC32C (the AEAD covers them), and
# keep it with a peer of a build before that; a man in the middle that
# flips one byte of a WRITE payload without TLS is caught by that CRC32C,
# one that flips a byte of a TLS connection's stream breaks the connection
# (the mirror logs the failed record); either way nothing corrupted is
# applied: once the relay is gone, the copies are equal and fio verifies;
# a peer with another tls mode, and a previous-release peer (protocol
# version 4, no TLS), are refused with a log line naming the modes; x509
# with the cluster's CA mirrors, a certificate of another CA is refused.
. "$top_srcdir/tests/lib.sh"
# the captures need it (tests/install-deps.sh installs it): a fail, not a skip
command -v tcpdump >/dev/null || bail "tcpdump is not installed (tests/install-deps.sh)"
plan 38

MiB=$((1024 * 1024))
RELAY="$top_srcdir/tests/tools/tamper_relay.py"
MARK=0x4e
T_LOG_ALLOW='TLS'

netns_pair || bail "cannot create network namespaces"
PAIR_CONNS=2 PAIR_HB='interval="0.5" timeout="3.0" probation="2"' pair_setup vol0:64M:sync:yes:node1

# set_tls MODE [ATTRS]: the <tls> element of the shared config (none: off)
set_tls() {
	sed -i '/<tls /d' "$T_DIR/pair.xml"
	[ "$1" = off ] || sed -i "s|^  <log |  <tls mode=\"$1\"${2:+ $2}/>\n  <log |" "$T_DIR/pair.xml"
}

# captured PATTERN: write PATTERN (1 MiB) at the start of vol0 through node1
# while tcpdump records node1's veth (the replication traffic); prints how
# many of the pattern's 64-byte pieces at every 4 KiB the capture holds
captured() {
	local pcap="$T_DIR/cap.pcap" pid
	rm -f "$pcap"
	ip netns exec "$NS_node1" timeout -k 5 60 tcpdump -i "$VETH1" -U -s 0 -w "$pcap" \
		"tcp port $N2_DATA" 2>/dev/null & pid=$!
	wait_for 5 test -s "$pcap"
	sleep 0.3
	in_node node1 timeout 60 nbdcopy "$1" \
		"nbd://$N1_ADDR:$N1_NBD/vol0" >/dev/null 2>&1
	sleep 0.5; kill "$pid"; wait "$pid" 2>/dev/null
	python3 - "$pcap" "$1" <<'EOF'
import sys
cap, pat = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
print(sum(pat[o:o + 64] in cap for o in range(0, len(pat) - 64, 4096)))
EOF
}

# logged_since NODE-LOG LINE ERE: a line after line LINE matches ERE
logged_since() { tail -n +"$(($2 + 1))" "$1" | grep -qE "$3"; }

# crc_logged on|off L1 L2: both daemons logged, after line L1 of node1's log
# and L2 of node2's, a TLS connection with its WRITE payloads' CRC32C on or off
crc_logged() {
	logged_since "$T_DIR/n1.log" "$2" "connection [0-9] to node2 is up \(protocol version 6, TLS1\.3 .*, payload CRC $1\)" &&
		logged_since "$T_DIR/n2.log" "$3" "connection [0-9] from node1 .* is up, 1 lun\(s\), protocol version 6, TLS1\.3 .*, payload CRC $1\$"
}

copies_equal() { cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"; }

head -c $MiB /dev/urandom >"$T_DIR/pat"

# ---- tls off: the capture sees the data (the check below can fail) ------
set_tls off
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
wait_for 20 lun_state_is node1 vol0 uptodate || bail "no mirror: $(tail "$T_DIR"/n*.log)"
n=$(captured "$T_DIR/pat")
check "tls off: the written pattern is on the wire in the clear ($n of 256 pieces)" \
	test "$n" -ge 128
stop_pid "$n1_pid"; stop_pid "$n2_pid"

# ---- tls psk ------------------------------------------------------------
set_tls psk
head -c $MiB /dev/urandom >"$T_DIR/pat"
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "tls psk: mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate
check "tls psk: the connections are TLS 1.3 with a PSK" \
	grep -q 'connection 0 to node2 is up (protocol version 6, TLS1.3 PSK' "$T_DIR/n1.log"
check "  ... on the mirror too" \
	grep -q 'connection 0 from node1 .* is up, 1 lun(s), protocol version 6, TLS1.3 PSK' "$T_DIR/n2.log"
# the records' AEAD authenticates every byte: both agreed to drop the CRC32C
check "tls psk: WRITE payloads go without CRC32C (both sides say so)" crc_logged off 0 0
n=$(captured "$T_DIR/pat")
check "tls psk: none of the written pattern is on the wire ($n of 256 pieces)" test "$n" = 0
check "  ... and the mirror has it" wait_for 10 cmp -s -n $MiB "$T_DIR/pat" "$T_DIR/node2-vol0.img"
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" tls --size=48M
check "tls psk: fio randwrite QD32 crc32c verify without error" test $? = 0
check "tls psk: the copies are equal" wait_for 10 copies_equal
# writes of 4 KiB to 1 MiB at once: frames of every size packed into records
# (small ones together, a large payload's whole records straight from it)
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" mixed --size=48M --iodepth=16 \
	--bssplit=4k/40:60k/30:1m/30
check "tls psk: fio writes of 4 KiB to 1 MiB at QD16 verify without error" test $? = 0
check "  ... and the copies are equal" wait_for 10 copies_equal
# online verify: its replies (VERIFY_REPLY) go through TLS too
verify_idle() { [ "$(lun_field node1 vol0 verify.running)" = false ]; }
ctl node1 verify vol0 >"$T_DIR/verify.out" 2>&1 && wait_for 60 verify_idle
check "tls psk: ipmirrorctl verify over TLS ends with 0 bytes out of sync" \
	test "$(lun_field node1 vol0 verify.done_bytes)" = $((64 * MiB)) -a \
	"$(lun_field node1 vol0 verify.out_of_sync_bytes)" = 0

# ---- a man in the middle flips one byte per connection -------------------
# both restart with one connection (a broken one is then the whole link:
# the primary journals) and node1's steered through the relay

# mitm_start MODE AFTER: the pair in tls MODE, node1's connection through
# the relay, which flips the byte at offset AFTER of each connection's
# stream while $T_DIR/tamper.on exists; l1/l2 the logs' lengths then
mitm_start() {
	set_tls "$1"
	node_start node2 || bail "node2 did not start: $(cat "$T_DIR/n2.log")"
	in_node node1 nft add table ip ipmtls &&
		in_node node1 nft add chain ip ipmtls out '{ type nat hook output priority -100; }' ||
		bail "nftables nat is missing"
	: >"$T_DIR/relay.out"
	ip netns exec "$NS_node1" timeout -k 5 120 /usr/bin/python3 "$RELAY" "$N1_ADDR" 17101 \
		"$N2_ADDR" "$N2_DATA" "$2" "$T_DIR/tamper.on" "$MARK" 120 >"$T_DIR/relay.out" 2>&1 &
	relay_pid=$!
	T_PIDS="$T_PIDS $relay_pid"
	wait_for 10 grep -q ready "$T_DIR/relay.out" || bail "the relay did not start"
	in_node node1 nft add rule ip ipmtls out meta mark != "$MARK" ip daddr "$N2_ADDR" tcp dport "$N2_DATA" \
		dnat to "$N1_ADDR:17101"
	node_start node1 || bail "node1 did not start: $(cat "$T_DIR/n1.log")"
	wait_for 30 lun_state_is node1 vol0 uptodate || bail "no mirror through the relay: $(tail "$T_DIR"/n*.log)"
	l1=$(wc -l <"$T_DIR/n1.log"); l2=$(wc -l <"$T_DIR/n2.log")
}

# mitm_end: the relay goes away: new connections go straight to node2
mitm_end() {
	in_node node1 nft delete table ip ipmtls
	kill "$relay_pid" 2>/dev/null; wait "$relay_pid" 2>/dev/null
}

stop_pid "$n1_pid"; stop_pid "$n2_pid"
sed -i 's|<connections count="2"/>|<connections count="1"/>|' "$T_DIR/pair.xml"

# plaintext: the payload's CRC32C is what catches a flipped byte. A fresh
# connection carries HELLO and AUTH (404 bytes) and then, here, only 1 MiB
# WRITE frames (56 + 1048576 bytes): offset 2.5 MiB lies in the third
# one's payload, 0.5 MiB from its edges
mitm_start off $((5 * MiB / 2))
touch "$T_DIR/tamper.on"
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" plain --rw=write --bs=1M \
	--iodepth=2 --size=32M &
fio_pid=$!
check "plaintext: the relay flips a byte of a WRITE payload" wait_for 30 grep -q 'flipped' "$T_DIR/relay.out"
rm -f "$T_DIR/tamper.on"
check "plaintext: the mirror's payload CRC32C catches it and drops the connection" \
	wait_for 10 logged_since "$T_DIR/n2.log" "$l2" \
	'connection 0 from node1 .*: request [0-9]+: payload checksum mismatch; closing'
wait "$fio_pid"
check "plaintext: every acknowledged write verifies" test $? = 0
check "  ... the primary journaled and replayed what was unanswered" \
	wait_for 60 logged_since "$T_DIR/n1.log" "$l1" 'peer node2: resync complete'
mitm_end
check "  ... and the copies are equal: the flipped payload was never applied" \
	wait_for 30 copies_equal
stop_pid "$n1_pid"; stop_pid "$n2_pid"

# TLS: the relay tampers once the link is live (a break then is an outage:
# the primary journals), for some 5 s from the first flip
mitm_start psk 65536
touch "$T_DIR/tamper.on"
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" mitm --size=48M --time_based \
	--runtime=12 &
fio_pid=$!
check "the relay tampers with the connections' streams" wait_for 30 grep -q 'flipped' "$T_DIR/relay.out"
sleep 5; rm -f "$T_DIR/tamper.on"
check "the mirror detects the tampered record and drops the connection" \
	wait_for 10 logged_since "$T_DIR/n2.log" "$l2" \
	'connection [0-9] from node1 .*: (payload: )?a TLS record failed authentication \(altered on the way\); closing'
check "the primary sees its connection break" \
	wait_for 10 logged_since "$T_DIR/n1.log" "$l1" 'connection [0-9] to node2 (broke|down)'
wait "$fio_pid"
check "fio under the tampering: every acknowledged write verifies" test $? = 0
check "with every connection broken the primary journaled the writes" \
	logged_since "$T_DIR/n1.log" "$l1" 'peer node2 unreachable \(all connections lost\): journaling writes'
check "  ... and replayed them (resync)" \
	wait_for 60 logged_since "$T_DIR/n1.log" "$l1" 'peer node2: resync complete'
diag "relay: $(grep -c flipped "$T_DIR/relay.out") connection(s) tampered with"
mitm_end
check "relay removed: the mirror is up to date again" wait_for 60 lun_state_is node1 vol0 uptodate
check "the copies are equal: nothing corrupted was applied" wait_for 15 copies_equal
check "fio --verify_only on node2's copy (after a failover) finds every block of the load" \
	failover_verify mitm
stop_pid "$n2_pid"

# ---- another mode, an older peer ----------------------------------------
set_tls off
cp "$T_DIR/pair.xml" "$T_DIR/pair-off.xml"
set_tls psk
# node2 with tls off: the same file but for <tls>
l1=$(wc -l <"$T_DIR/n1.log"); l2=$(wc -l <"$T_DIR/n2.log")
ip netns exec "$NS_node2" "$IPMIRRORD" --foreground --config "$T_DIR/pair-off.xml" --node node2 \
	--socket "ipm-$$-node2" >>"$T_DIR/n2.log" 2>&1 &
n2_pid=$!; T_PIDS="$T_PIDS $n2_pid"; T_DAEMONS="$T_DAEMONS $n2_pid:$T_DIR/n2.log"
node_start node1 || bail "node1 did not start: $(cat "$T_DIR/n1.log")"
check "mode mismatch: the mirror refuses, naming both modes" \
	wait_for 15 logged_since "$T_DIR/n2.log" "$l2" 'TLS mode mismatch: node1 has tls mode psk, this node off'
check "mode mismatch: the primary logs the refusal" \
	wait_for 5 logged_since "$T_DIR/n1.log" "$l1" 'refused by node2: TLS mode mismatch'
l1=$(wc -l <"$T_DIR/n1.log")
# (node1 anew: it logs a connection's repeated failures once)
stop_pid "$n2_pid"; stop_pid "$n1_pid"
IPM_WIRE_VERSION_MAX=4 node_start node2 || bail "node2 did not start: $(cat "$T_DIR/n2.log")"
node_start node1 || bail "node1 did not start: $(cat "$T_DIR/n1.log")"
check "a protocol version 4 peer: refused, TLS needs version 5" \
	wait_for 15 logged_since "$T_DIR/n1.log" "$l1" \
	'TLS mode mismatch: node2 speaks protocol version 4 only, which has no TLS \(our tls mode is psk\)'
stop_pid "$n2_pid"; stop_pid "$n1_pid"

# ---- a peer of a build before the CRC skip: the CRC stays ---------------
# (IPM_TLS_PAYLOAD_CRC=1: node2 offers no "ipmirror-nocrc/1" in TLS's ALPN)
l1=$(wc -l <"$T_DIR/n1.log"); l2=$(wc -l <"$T_DIR/n2.log")
IPM_TLS_PAYLOAD_CRC=1 node_start node2 || bail "node2 did not start: $(cat "$T_DIR/n2.log")"
node_start node1 || bail "node1 did not start: $(cat "$T_DIR/n1.log")"
check "a peer without the CRC skip: both keep the payload CRC32C" \
	wait_for 20 crc_logged on "$l1" "$l2"
wait_for 30 lun_state_is node1 vol0 uptodate || bail "no mirror: $(tail "$T_DIR"/n*.log)"
head -c $((4 * MiB)) /dev/urandom >"$T_DIR/pat"
in_node node1 timeout 60 nbdcopy "$T_DIR/pat" "nbd://$N1_ADDR:$N1_NBD/vol0"
check "  ... and writes reach its mirror" \
	wait_for 10 cmp -s -n $((4 * MiB)) "$T_DIR/pat" "$T_DIR/node2-vol0.img"
check "  ... every payload with its CRC32C, the connection stays up" \
	eval '! logged_since "$T_DIR/n2.log" "$l2" "payload checksum mismatch|closing"'
stop_pid "$n2_pid"; stop_pid "$n1_pid"

# ---- x509: certificates of the cluster's CA; another CA is refused -------
PKI="$T_DIR/pki"
mkdir -p "$PKI"
# mkca NAME / mkcert NAME CA: an ECDSA CA, and a node certificate it signs
# (client and server use: each node is both)
mkca() {
	certtool --generate-privkey --key-type=ecdsa --outfile "$PKI/$1-key.pem" 2>/dev/null
	printf 'cn = %s\nca\ncert_signing_key\nexpiration_days = 2\n' "$1" >"$PKI/$1.info"
	certtool --generate-self-signed --load-privkey "$PKI/$1-key.pem" --template "$PKI/$1.info" \
		--outfile "$PKI/$1.pem" 2>/dev/null
}
mkcert() {
	( umask 077; certtool --generate-privkey --key-type=ecdsa --outfile "$PKI/$1-key.pem" 2>/dev/null )
	printf 'cn = %s\ntls_www_server\ntls_www_client\nsigning_key\nexpiration_days = 2\n' "$1" \
		>"$PKI/$1.info"
	certtool --generate-certificate --load-privkey "$PKI/$1-key.pem" --load-ca-certificate "$PKI/$2.pem" \
		--load-ca-privkey "$PKI/$2-key.pem" --template "$PKI/$1.info" --outfile "$PKI/$1.pem" 2>/dev/null
}
mkca ca && mkcert node ca && mkca other && mkcert stranger other || bail "certtool failed"
test -s "$PKI/node.pem" -a -s "$PKI/stranger.pem" || bail "certtool made no certificate"
set_tls x509 "cert=\"$PKI/node.pem\" key=\"$PKI/node-key.pem\" ca=\"$PKI/ca.pem\""
l1=$(wc -l <"$T_DIR/n1.log"); l2=$(wc -l <"$T_DIR/n2.log")
pair_start || bail "daemons did not start: $(tail "$T_DIR"/n*.log)"
check "x509: the connections are TLS 1.3 with certificates" \
	wait_for 20 logged_since "$T_DIR/n1.log" "$l1" 'connection 0 to node2 is up \(protocol version 6, TLS1.3 X.509'
check "  ... their WRITE payloads without CRC32C" wait_for 10 crc_logged off "$l1" "$l2"
head -c $MiB /dev/urandom >"$T_DIR/pat"
in_node node1 timeout 60 nbdcopy "$T_DIR/pat" "nbd://$N1_ADDR:$N1_NBD/vol0"
check "x509: a write reaches the mirror" wait_for 10 cmp -s -n $MiB "$T_DIR/pat" "$T_DIR/node2-vol0.img"
stop_pid "$n1_pid"
# node1 presents a certificate of another CA: node2 refuses it
sed "s|$PKI/node|$PKI/stranger|g" "$T_DIR/pair.xml" >"$T_DIR/pair-stranger.xml"
l1=$(wc -l <"$T_DIR/n1.log"); l2=$(wc -l <"$T_DIR/n2.log")
ip netns exec "$NS_node1" "$IPMIRRORD" --foreground --config "$T_DIR/pair-stranger.xml" --node node1 \
	--socket "ipm-$$-node1" >>"$T_DIR/n1.log" 2>&1 &
n1_pid=$!; T_PIDS="$T_PIDS $n1_pid"; T_DAEMONS="$T_DAEMONS $n1_pid:$T_DIR/n1.log"
# (TLS 1.3: the client offers no certificate the server's CA did not sign,
# and learns of the refusal only when it sends AUTH)
check "x509: a certificate of another CA is refused in the TLS handshake" \
	wait_for 15 logged_since "$T_DIR/n2.log" "$l2" 'refused: TLS handshake refused: .*[Cc]ertificate'
check "  ... and no connection comes up" \
	bash -c "sleep 2; ! tail -n +$((l1 + 1)) '$T_DIR/n1.log' | grep -q 'connection 0 to node2 is up'"
finish
