#!/bin/bash
# Losing one of the n connections under load: one mirror TCP connection is
# destroyed mid-load (ss -K, a real socket kill); its unanswered requests are
# re-sent on the others (the sync LUN stays up to date with an empty journal
# all along: no journal and resync standing in for the re-send), fio's
# verify sees no error, the worker reconnects and both backing files end
# byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 13

pair_local vol0:128M:sync:yes:node1 vol1:128M:async:yes:node1
check "4 connections up" wait_for 15 connections_up node1 4
check "ss is there to kill a socket" bash -c 'command -v ss >/dev/null'

# one established connection from node1 to node2's data port
one_conn_port() {
	ss -Htn state established "( dport = :$N2_DATA )" | awk '{print $3}' | sed 's/.*://' | head -1
}
fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" sync --size=64M --time_based --runtime=12 &
f0=$!
fio_verify "nbd://127.0.0.1:$N1_NBD/vol1" async --size=64M --time_based --runtime=12 &
f1=$!
check "the load is mirrored" field_grows node1 vol0 mirrored_bytes
lun_watch node1 vol0 12 "$T_DIR/watch" &
w=$!
sport=$(one_conn_port)
check "an established mirror connection found (port ${sport:-none})" test -n "$sport"
diag "killing the connection from port $sport"
ss -K -tn "( sport = :${sport:-0} and dport = :$N2_DATA )" >/dev/null
check "the killed connection is gone" bash -c "[ -n '$sport' ] && ! ss -Htn state established '( sport = :$sport and dport = :$N2_DATA )' | grep -q ."
check "the primary saw it go down and re-sent its requests on the others" \
	wait_for 10 grep -qE "connection [0-9]+ to node2 down(; [0-9]+ unanswered request\(s\) re-sent on the others)?$" "$T_DIR/n1.log"
wait $f0; r0=$?
wait $f1; r1=$?
check "fio verify on the sync lun saw no error" test $r0 = 0
check "fio verify on the async lun saw no error" test $r1 = 0
check "the lost connection is re-established (4 up again)" wait_for 20 connections_up node1 4
wait "$w"
diag "vol0 samples (state journal_bytes): $(sort "$T_DIR/watch" | uniq -c | tr '\n' ' ')"
check "sync lun stayed up to date with an empty journal all along (a re-send, no resync)" \
	bash -c "[ -s '$T_DIR/watch' ] && ! grep -qv '^uptodate 0\$' '$T_DIR/watch'"
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "vol0 backing files identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
check "vol1 backing files identical" cmp "$T_DIR/node1-vol1.img" "$T_DIR/node2-vol1.img"
finish
