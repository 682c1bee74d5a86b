#!/bin/bash
# The mirror dies in the middle of a resync (doc/journal.md): the primary
# must see it as it does when live - journaling within the heartbeat's
# timeout, host writes answered - and resync again once the mirror is back.
# The resync runs on the link monitor's thread, so its waits (for window
# space, for the mirror's answers) have to notice the lost link themselves:
# before they did, the LUN stayed "resyncing" with replays nobody would
# answer, and host writes held by the resync's closing pass waited until
# the mirror came back, forever if it did not. (A frozen mirror is seen by
# the heartbeat alone.)
. "$top_srcdir/tests/lib.sh"
plan 12

NBDSH="timeout -k 5 20 nbdsh"
PAIR_RESYNC_RATE=4M pair_local vol0:64M:sync:yes:node1
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

stop_pid "$n2_pid"
wait_for 15 lun_state_is node1 vol0 journaling
# 24 MiB journaled: the resync at 4 MiB/s takes about 6 s
PATH=/usr/bin:$PATH $NBDSH -u "nbd://127.0.0.1:$N1_NBD/vol0" \
	-c 'h.pwrite(b"\x5a" * (24 << 20), 0)' >/dev/null 2>&1
check "24 MiB journaled" field_above node1 vol0 journal_bytes $((20 << 20))

node_start node2 || bail "mirror did not restart: $(tail "$T_DIR"/n2.log)"
check "the resync runs" wait_for 20 lun_state_is node1 vol0 resyncing
sleep 1
kill9 "$n2_pid"
check "the mirror killed mid-resync: the primary journals within 15 s" \
	wait_for 15 lun_state_is node1 vol0 journaling
diag "$(grep -E 'resync|unreachable' "$T_DIR/n1.log" | tail -3)"
PATH=/usr/bin:$PATH $NBDSH -u "nbd://127.0.0.1:$N1_NBD/vol0" \
	-c 'h.pwrite(b"\xa5" * 4096, 40 << 20)'
check "a host write is answered while the mirror is away" test $? = 0

# again, the mirror frozen (SIGSTOP: no FIN, only the heartbeat tells)
# under a writer of 1 MiB every 0.5 s, whose writes the resync's closing
# pass may hold
node_start node2 || bail "mirror did not restart: $(tail "$T_DIR"/n2.log)"
check "the resync runs again" wait_for 20 lun_state_is node1 vol0 resyncing
timeout -k 5 90 /usr/bin/nbdsh -u "nbd://127.0.0.1:$N1_NBD/vol0" -c '
import time
for i in range(40):
    h.pwrite(bytes([i]) * (1 << 20), (i % 16) << 20)
    time.sleep(0.5)
' >"$T_DIR/writer.out" 2>&1 &
writer=$!
T_PIDS="$T_PIDS $writer"
sleep 3
kill -STOP "$n2_pid"
check "the mirror frozen mid-resync: the primary journals within 15 s" \
	wait_for 15 lun_state_is node1 vol0 journaling
wait "$writer"
wrc=$?
check "every write was answered: the writer ended by itself (exit $wrc)" test "$wrc" = 0
kill9 "$n2_pid"

node_start node2 || bail "mirror did not restart: $(tail "$T_DIR"/n2.log)"
check "back: both up to date" wait_for 40 lun_state_is node1 vol0 uptodate
check "the mirror too" wait_for 10 lun_state_is node2 vol0 uptodate
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "both copies identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
