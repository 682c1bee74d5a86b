#!/bin/bash
# Losing one of the n connections under load: one mirror TCP connection is
# destroyed mid-load (ss -K, a real socket kill); its unanswered requests are
# re-sent on the others, fio's verify sees no error, the worker reconnects and
# both backing files end byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 8

pair_setup vol0:128M:sync:yes:node1 vol1:128M:async:yes:node1
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "4 connections up" wait_for 15 connections_up node1 4

# one established connection from node1 to node2's data port
one_conn_port() {
	ss -Htn state established "( dport = :$N2_DATA )" | awk '{print $3}' | sed 's/.*://' | head -1
}
fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" sync --size=64M --time_based --runtime=12 &
f0=$!
fio_verify "nbd://127.0.0.1:$N1_NBD/vol1" async --size=64M --time_based --runtime=12 &
f1=$!
sleep 3
sport=$(one_conn_port)
diag "killing the connection from port $sport"
ss -K -tn "( sport = :$sport and dport = :$N2_DATA )" >/dev/null
check "the killed connection is gone" bash -c "! ss -Htn state established '( sport = :$sport and dport = :$N2_DATA )' | grep -q ."
wait $f0; r0=$?
wait $f1; r1=$?
check "fio verify on the sync lun saw no error" test $r0 = 0
check "fio verify on the async lun saw no error" test $r1 = 0
check "the lost connection is re-established (4 up again)" wait_for 20 connections_up node1 4
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "vol0 backing files identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
check "vol1 backing files identical" cmp "$T_DIR/node1-vol1.img" "$T_DIR/node2-vol1.img"
finish
