#!/bin/bash
# Hostile or misconfigured peers at the mirror's data port: garbage bytes, a
# node with the wrong secret, a node naming an unknown LUN. Each is refused
# with a log line naming the reason, while the good pair keeps mirroring.
. "$top_srcdir/tests/lib.sh"
plan 7

pair_setup vol0:64M:sync:yes:node1
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "good pair connected" wait_for 15 connections_up node1 4

# garbage instead of a handshake
head -c 4096 /dev/urandom | timeout 5 bash -c "cat >/dev/tcp/127.0.0.1/$N2_DATA" 2>/dev/null
check "garbage handshake refused with a log line" \
	wait_for 5 grep -qiE "handshake|magic|hello" "$T_DIR/n2.log"

# an impostor "node1" on other ports: same file but another secret
bad_cfg() {
	local secret="$1" extra="$2" p
	p=$(free_port impostor)
	sed -e "s|<secret file=\"[^\"]*\"|<secret file=\"$secret\"|" \
	    -e "s|port=\"$N1_DATA\"|port=\"$p\"|; s|port=\"$N1_HB\"|port=\"$((p + 1))\"|; s|port=\"$N1_NBD\"|port=\"$((p + 2))\"|" \
	    -e "s|$T_DIR/node1-|$T_DIR/bad-|g" \
	    -e "s|</ipmirror>|$extra</ipmirror>|" "$T_DIR/pair.xml"
}
( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T_DIR/wrong-secret" )
truncate -s 64M "$T_DIR/bad-vol0.img"
bad_cfg "$T_DIR/wrong-secret" "" >"$T_DIR/bad1.xml"
start_daemon bad1 --config "$T_DIR/bad1.xml" --node node1 --socket "ipm-$$-bad1"
check "wrong secret: node2 refuses the impostor and says why" \
	wait_for 15 grep -qiE "auth|secret|hmac" "$T_DIR/n2.log"
stop_pid "$bad1_pid"

truncate -s 8M "$T_DIR/bad-volx.img"
# (its heartbeats go nowhere: with the right secret they would count as
# node1 rebooting and put the good pair on probation)
bad_cfg "$T_DIR/secret" "<lun name=\"volx\" size=\"8M\" mode=\"sync\" mirrored=\"yes\" primary=\"node1\"><backing path=\"$T_DIR/bad-volx.img\"/></lun>" | sed "s|port=\"$N2_HB\"|port=\"$(free_port nowhere)\"|" >"$T_DIR/bad2.xml"
start_daemon bad2 --config "$T_DIR/bad2.xml" --node node1 --socket "ipm-$$-bad2"
check "unknown lun: node2 refuses a peer naming lun volx" \
	wait_for 15 grep -q "volx" "$T_DIR/n2.log"
stop_pid "$bad2_pid"

check "the good pair still mirrors: fio verify" fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" good --size=16M
check "the good pair still has its connections" connections_up node1 4
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "backing files identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
