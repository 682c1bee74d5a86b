#!/bin/bash
# Role changes during the initial sync (doc/generations.md), as the OCF agent
# and a crash do them: node1 (the source) is demoted cleanly while it copies
# to node2 (the agent starts every instance Unpromoted); node2 stays
# inconsistent and refuses promotion, node1 stays promotable and, promoted
# again, finishes the copy. Then node1 is killed (-9) during the copy: node2
# stays inconsistent and unpromotable, also across a restart of its daemon;
# node1 back, the copy ends and the files are equal.

. "$top_srcdir/tests/lib.sh"
plan 12

PAIR_RESYNC_RATE=8M pair_setup vol0:256M:sync:yes:node1
head -c 64M /dev/urandom >"$T_DIR/data"
dd if="$T_DIR/data" of="$T_DIR/node1-vol0.img" bs=1M seek=100 conv=notrunc status=none
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "node1 copies to node2" wait_for 20 lun_state_is node1 vol0 resyncing
out=$(ctl node1 demote vol0 2>&1); rc=$?
diag "demote node1 during the copy: $out"
check "node1 demoted cleanly during the copy (node2 holds nothing to keep)" test "$rc" = 0
check "node2 inconsistent, promote refused" \
	eval 'lun_state_is node2 vol0 inconsistent && ! ctl node2 promote vol0'
check "node1 (the source) stays promotable" ctl node1 promote vol0 --dry-run
check "node1 promoted again" ctl node1 promote vol0
check "the copy ends: node2 uptodate, files equal" \
	eval 'wait_for 60 lun_state_is node2 vol0 uptodate && cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"'

# a crash of the source during the copy
stop_pid "$n2_pid"
rm -f "$T_DIR"/node2-vol0.img*
truncate -s 256M "$T_DIR/node2-vol0.img"
node_start node2 || bail "node2 did not restart"
check "a new copy runs" wait_for 20 lun_state_is node1 vol0 resyncing
kill9 "$n1_pid"
check "node1 killed: node2 inconsistent and refuses promotion" \
	eval 'wait_for 10 lun_state_is node2 vol0 inconsistent && ! ctl node2 promote vol0'
stop_pid "$n2_pid"
node_start node2 || bail "node2 did not restart"
check "node2's daemon restarted: still inconsistent, promotion refused" \
	eval 'lun_state_is node2 vol0 inconsistent && ! ctl node2 promote vol0 --dry-run'
node_start node1 || bail "node1 did not restart"
check "node1 back: the copy ends, node2 uptodate" wait_for 60 lun_state_is node2 vol0 uptodate
check "the files are equal" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
