#!/bin/bash
# A clean stop of the primary (SIGTERM) after a mixed load, with its mirror
# live and answering, leaves the activity log empty and the data generation
# marked clean: the next start warns of nothing and resyncs nothing (it did
# both when the stop met the monitor's settle of the log in the middle of
# its local fdatasync: tests/tools/slowsync.c holds it there). A kill -9
# under load still leaves the marks: the next start resyncs their extents.
# A clean stop while journaling leaves none either. Both copies are byte-identical at the end.
. "$top_srcdir/tests/lib.sh"
plan 24

SLOW="$T_DIR/slow"
GEN="$T_DIR/node1-vol0.img.journal.gen"
pair_setup vol0:64M:sync:yes:node1
SLOWSYNC_PATH=node1-vol0.img SLOWSYNC_FLAG="$SLOW" SLOWSYNC_MS=2500 \
	LD_PRELOAD="$top_builddir/tests/tools/.libs/slowsync.so" node_start node1 ||
	bail "node1 did not start: $(cat "$T_DIR/n1.log")"
node_start node2 || bail "node2 did not start: $(cat "$T_DIR/n2.log")"
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

# mix SECONDS: random reads and writes of 512 B to 1 MiB, 4 clients
mix() {
	(cd "$T_DIR" && timeout -k 5 $(($1 + 30)) fio --name=mix --ioengine=nbd \
		--uri="nbd://127.0.0.1:$N1_NBD/vol0" --rw=randrw --bsrange=512-1M \
		--iodepth=16 --numjobs=4 --size=64M --time_based --runtime="$1" \
		--group_reporting --output="$T_DIR/mix.out") >/dev/null 2>&1
}
# was_primary (flag 8 of the generation file's big-endian flags at 12):
# set from the first write of a run to its clean stop
was_primary() { [ $(( $(od -An -tu1 -j15 -N1 "$GEN") & 8 )) != 0 ]; }
not_primary() { ! was_primary; }
# restarted LINES: node1 again, up to date, its log from line LINES on
restarted() {
	node_start node1 || return 1
	wait_for 30 lun_state_is node1 vol0 uptodate || return 1
	tail -n +"$1" "$T_DIR/n1.log" >"$T_DIR/run.log"
}
no_warning() { ! grep -q "did not stop cleanly" "$T_DIR/run.log"; }
resync_bytes() { sed -n 's/.*resync complete, \([0-9]*\) bytes.*/\1/p' "$T_DIR/run.log" | tail -n1; }

# 1: the load ends; the stop comes while the monitor settles the log (its
# local fdatasync, made slow from now on)
mix 4
check "the mixed load ran without error" test $? = 0
touch "$SLOW"
check "the monitor settles the activity log (inside its fdatasync)" wait_for 10 test -e "$SLOW.busy"
stop_pid "$n1_pid"
check "node1 stopped cleanly during the settle" test $? = 0
rm -f "$SLOW" "$SLOW.busy"
check "the generation is marked clean" not_primary
lines=$(($(wc -l <"$T_DIR/n1.log") + 1))
check "node1 restarts up to date" restarted "$lines"
check "no 'did not stop cleanly' warning after the clean stop" no_warning
check "no byte resynced after the clean stop (resync: $(resync_bytes) bytes)" test "$(resync_bytes)" = 0

# 2: the stop comes in the middle of the load
mix 8 &
f=$!
sleep 4
stop_pid "$n1_pid"
check "node1 stopped cleanly under load" test $? = 0
wait "$f"
check "the generation is marked clean" not_primary
lines=$(($(wc -l <"$T_DIR/n1.log") + 1))
check "node1 restarts up to date" restarted "$lines"
check "no 'did not stop cleanly' warning after the stop under load" no_warning
check "no byte resynced after the stop under load (resync: $(resync_bytes) bytes)" test "$(resync_bytes)" = 0

# 3: a crash under load leaves the marks, and their extents are resynced
mix 8 &
f=$!
sleep 4
kill9 "$n1_pid"
wait "$f"
check "the crashed run left the generation marked" was_primary
lines=$(($(wc -l <"$T_DIR/n1.log") + 1))
check "node1 restarts after kill -9 and gets up to date" restarted "$lines"
check "the activity log's marks of the crash are found" grep -q "did not stop cleanly" "$T_DIR/run.log"
check "their extents are resynced ($(resync_bytes) bytes)" test "$(resync_bytes)" -gt 0

# 4: a clean stop while journaling (the mirror away) leaves no marks
# either: every write since the link went is in the journal, made durable
# with the local copy at the stop (journaled writes mark the log too)
stop_pid "$n2_pid"
check "node1 journals with node2 stopped" wait_for 20 lun_state_is node1 vol0 journaling
mix 4
check "the mixed load ran without error while journaling" test $? = 0
stop_pid "$n1_pid"
check "node1 stopped cleanly while journaling" test $? = 0
node_start node2 || bail "node2 did not start again: $(cat "$T_DIR/n2.log")"
lines=$(($(wc -l <"$T_DIR/n1.log") + 1))
check "node1 restarts, replays its journal and gets up to date" restarted "$lines"
check "no 'did not stop cleanly' warning after the clean stop while journaling" no_warning

stop_pid "$n1_pid"
stop_pid "$n2_pid"
check "both copies of vol0 identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
