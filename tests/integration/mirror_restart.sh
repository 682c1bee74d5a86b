#!/bin/bash
# The mirror's receiver of the LUN restarts while the primary's link stays up,
# in the middle of a resync (`ipmirrorctl down` and `up` of the LUN on the
# mirror node, in a few milliseconds; a role change of another LUN did it
# while role changes re-created the engine): the new ordering record does not
# know which requests the old one answered, so the primary must notice the
# restart, go down, and resync again from its journal and dirty extents
# (doc/wire.md, "The record"). The extents whose copies were in flight are
# marked again: afterwards both copies are byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 12

# a small journal, so the resync copies dirty extents (slowly: 2 MB/s)
PAIR_RESYNC_RATE=2M PAIR_JOURNAL_MAX=4M \
	pair_local vol0:96M:sync:yes:node1 vol1:8M:sync:yes:node2
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

stop_pid "$n2_pid"
fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" offline --size=64M --rw=write --bs=1M \
	--iodepth=4 --runtime=20
check "64 MiB written while the mirror is stopped" test $? = 0
node_start node2 || bail "mirror did not restart: $(tail "$T_DIR"/n2.log)"
check "the resync runs" wait_for 20 lun_state_is node1 vol0 resyncing
diag "node1 vol0 is $(lun_field node1 vol0 state) before the restart"
# time-based: the load lasts across the restart and the resync after it
fio_verify "nbd://127.0.0.1:$N1_NBD/vol0" during --size=16M --time_based --runtime=30 &
f1=$!
check "fio is writing before the restart (mirrored bytes grow)" \
	field_grows node1 vol0 mirrored_bytes
# node2's receiver of vol0 restarts (a role change of vol1 no longer does:
# each LUN has a session of its own, doc/roles.md)
ctl node2 down vol0 >"$T_DIR/demote.out" 2>&1 && ctl node2 up vol0 >>"$T_DIR/demote.out" 2>&1
rc=$?
check "node2's receiver of vol0 restarted (down, up): $(tr '\n' ' ' <"$T_DIR/demote.out")" test "$rc" = 0
# all of the session's connections close: the resync sees its link lost
# (or, should one connection have stayed up, the handshake of the others
# meets the new record)
check "the primary notices the restart and goes down" \
	wait_for 20 grep -qE "its mirror restarted under a live link|link lost during resync" "$T_DIR/n1.log"
check "the load was still running when the primary noticed the restart" kill -0 "$f1" 2>/dev/null
check "the resync ends: primary up to date" wait_for 120 lun_state_is node1 vol0 uptodate
wait "$f1"
check "fio verify during the restart: no error" test $? = 0
stop_pid "$n1_pid"
check "failover: vol0 promoted on node2, fio --verify_only finds every block of the load during the restart there" \
	failover_verify during
stop_pid "$n2_pid"
check "both copies of vol0 identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
