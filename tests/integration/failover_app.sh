#!/bin/bash
# An application on the mirror. ext4 on a sync mirrored LUN, seen as a block
# device through nbdfuse + a loop device (no kernel nbd here), served by
# node1; SQLite in WAL mode with synchronous=FULL commits one row per
# transaction and logs each row id after its COMMIT returned (fsynced, outside
# the LUN; tests/integration/py/sqlite_rows.py). node1's daemon is killed -9
# mid-load; node2 is promoted (`ipmirrorctl promote vol0`, no --force); the
# LUN is attached on node2 the same way; mounting replays the ext4 journal,
# after which `e2fsck -fn` is clean; the database passes PRAGMA
# integrity_check and holds every row whose COMMIT returned, with its payload.
# Mounts, loop devices and FUSE mounts are removed on exit, even on failure.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
for c in nbdfuse losetup mkfs.ext4 e2fsck; do
	command -v "$c" >/dev/null 2>&1 || { echo "1..0 # SKIP $c not installed (tests/install-deps.sh)"; exit 0; }
done
[ -e /dev/fuse ] || { echo "1..0 # SKIP no /dev/fuse"; exit 0; }
PY=/usr/bin/python3
APP="$top_srcdir/tests/integration/py/sqlite_rows.py"
plan 12

MNT="$T_DIR/mnt"
mkdir -p "$MNT" "$T_DIR/fuse1" "$T_DIR/fuse2"
LOOPS=""
# detach: what attach made, innermost first; bounded, so a dead server
# cannot hang the test (umount -l as a last resort)
detach() {
	local l f
	if mountpoint -q "$MNT"; then
		timeout 20 umount "$MNT" 2>/dev/null || umount -l "$MNT"
	fi
	for l in $LOOPS; do losetup -d "$l" 2>/dev/null; done
	LOOPS=""
	for f in "$T_DIR/fuse1" "$T_DIR/fuse2"; do
		if mountpoint -q "$f"; then
			timeout 20 umount "$f" 2>/dev/null || umount -l "$f" # root: no fusermount3 needed
		fi
	done
}
trap 'detach; t_cleanup' EXIT

# attach URI DIR: nbdfuse DIR/nbd, a loop device on it; LOOP names it
attach() {
	rm -f "$2.pid"
	nbdfuse -P "$2.pid" "$2" "$1" >>"$T_DIR/nbdfuse.log" 2>&1 &
	T_PIDS="$T_PIDS $!"
	wait_for 10 test -s "$2.pid" || return 1
	LOOP=$(losetup -f --show "$2/nbd") || return 1
	LOOPS="$LOOPS $LOOP"
}

pair_local vol0:128M:sync:yes:node1
both_uptodate() { lun_state_is node1 vol0 uptodate && lun_state_is node2 vol0 uptodate; }
check "sync LUN mirrored, up to date on both nodes" wait_for 30 both_uptodate

attach "nbd://127.0.0.1:$N1_NBD/vol0" "$T_DIR/fuse1" || bail "cannot attach vol0 on node1: $(cat "$T_DIR/nbdfuse.log")"
mkfs.ext4 -q -F "$LOOP" >"$T_DIR/mkfs.out" 2>&1 && mount -t ext4 "$LOOP" "$MNT"
check "ext4 on vol0 through node1 ($LOOP on nbdfuse), mounted" test $? = 0

LOG="$T_DIR/committed.log"
timeout 60 $PY "$APP" write "$MNT/app.db" "$LOG" 40 >"$T_DIR/app.out" 2>&1 &
A=$!
rows() { [ "$(wc -l <"$LOG" 2>/dev/null)" -ge "$1" ]; }
check "SQLite committing through node1: 100 rows" wait_for 30 rows 100
kill -9 "$n1_pid"
T_KILLED="$T_KILLED $n1_pid"   # on purpose: daemons_clean does not count it
wait "$A" 2>/dev/null
RC=$?
wait "$n1_pid" 2>/dev/null
T_PIDS=$(echo "$T_PIDS" | sed "s/\b$n1_pid\b//")
diag "application (exit $RC): $(cat "$T_DIR/app.out")"
check "primary killed -9 mid-load: the application was stopped by it ($(wc -l <"$LOG") rows committed)" \
	grep -q "stopped:" "$T_DIR/app.out"
detach

promoted() { ctl node2 promote vol0 >"$T_DIR/promote.out" 2>&1; }
wait_for 20 promoted
check "node2 promoted without --force: $(tr '\n' ' ' <"$T_DIR/promote.out")" test $? = 0

attach "nbd://127.0.0.1:$N2_NBD/vol0" "$T_DIR/fuse2"
check "vol0 attached through node2 ($LOOP)" test $? = 0
# the crash left the journal in use: there is something to replay
check "node2's copy was left with the ext4 journal to replay (needs_recovery)" \
	eval 'timeout 30 dumpe2fs -h "$LOOP" 2>/dev/null | grep -q "^Filesystem features:.*needs_recovery"'
# the kernel replays the journal at mount, as it would on the new primary
timeout 30 mount -t ext4 "$LOOP" "$MNT" && timeout 30 umount "$MNT"
check "ext4 mounts on node2 (journal replayed) and unmounts" test $? = 0
timeout 60 e2fsck -fn "$LOOP" >"$T_DIR/fsck.out" 2>&1
RC=$?
sed 's/^/# /' "$T_DIR/fsck.out" | tail -n 8
check "e2fsck -fn after the journal replay: clean (exit $RC)" test $RC = 0
timeout 30 mount -t ext4 "$LOOP" "$MNT"
check "mounted again on node2" test $? = 0
timeout 60 $PY "$APP" check "$MNT/app.db" "$LOG" >"$T_DIR/check.out" 2>&1
RC=$?
sed 's/^/# /' "$T_DIR/check.out"
check "the database passes integrity_check and holds every row whose COMMIT returned" test $RC = 0
finish
