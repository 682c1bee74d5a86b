#!/bin/bash
# Hostile or misconfigured peers at the mirror's data port: garbage bytes, a
# peer with the wrong secret, a peer naming an unknown LUN (the last two run
# the real client handshake through tests/tools/fake_peer). Each is refused
# with a log line naming the reason, while the good pair keeps mirroring.
. "$top_srcdir/tests/lib.sh"
plan 10

pair_local vol0:64M:sync:yes:node1
check "good pair connected" wait_for 15 connections_up node1 4

# garbage instead of a handshake
head -c 4096 /dev/urandom | timeout 5 bash -c "cat >/dev/tcp/127.0.0.1/$N2_DATA" 2>/dev/null
check "garbage handshake refused with a log line" \
	wait_for 5 grep -qiE "handshake|magic|hello" "$T_DIR/n2.log"

# a peer that runs the real handshake with the wrong secret, and one that
# knows the secret but names a LUN the mirror does not have
FAKE="$top_builddir/tests/tools/fake_peer"
( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T_DIR/wrong-secret" )
out=$("$FAKE" 127.0.0.1 "$N2_DATA" node1 node2 "$T_DIR/wrong-secret" vol0:67108864:sync)
rc=$?
diag "wrong secret: $out"
check "wrong secret: handshake refused, authentication failed" \
	test $rc = 1 -a -n "$(grep -i 'secret\|authenticat' <<<"$out")"
check "wrong secret: the mirror logs the refusal naming the peer" \
	wait_for 5 grep -qiE "refused.*(secret|authenticat)" "$T_DIR/n2.log"
out=$("$FAKE" 127.0.0.1 "$N2_DATA" node1 node2 "$T_DIR/secret" volx:8388608:sync)
rc=$?
diag "unknown lun: $out"
check "unknown lun: refused with the reason naming lun volx" \
	test $rc = 1 -a -n "$(grep volx <<<"$out")"
check "unknown lun: the mirror logs it" wait_for 5 grep -q 'refused.*volx' "$T_DIR/n2.log"
check "the good pair still mirrors: fio verify" fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" good --size=16M
check "the good pair still has its connections" connections_up node1 4
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "backing files identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
