#!/bin/bash
# kill -9 of the primary with a non-empty journal: with the link down, 32 MiB
# are written and flushed (so they are acknowledged and journaled), the
# primary is killed, the link comes back, the restarted primary reopens its
# journal and replays it: the mirror ends with exactly the acknowledged data.
. "$top_srcdir/tests/lib.sh"
plan 8

pair_up vol0:128M:sync:yes:node1
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

link_down
check "link down: primary journaling" wait_for 10 lun_state_is node1 vol0 journaling
head -c 32M /dev/urandom >"$T_DIR/data"
# --flush: nbdcopy ends with a FLUSH, so every byte is acknowledged as durable
in_node node1 timeout 60 nbdcopy --flush "$T_DIR/data" "nbd://$N1_ADDR:$N1_NBD/vol0"
check "nbdcopy of 32 MiB through the primary completed" test $? = 0
jb=$(lun_field node1 vol0 journal_bytes)
check "journal holds the writes ($jb bytes)" test "$jb" -ge $((32 * 1024 * 1024))
kill9 "$n1_pid"
link_up
node_start node1 || bail "primary did not restart: $(tail "$T_DIR"/n1.log)"
check "restarted primary found its journal" wait_for 5 grep -q "from before" "$T_DIR/n1.log"
check "journal replayed: up to date" wait_for 60 lun_state_is node1 vol0 uptodate
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "the mirror holds the acknowledged data and equals the primary" \
	bash -c "cmp -n 33554432 '$T_DIR/data' '$T_DIR/node2-vol0.img' && cmp '$T_DIR/node1-vol0.img' '$T_DIR/node2-vol0.img'"
finish
