#!/bin/bash
# Power loss of the primary while it journals (the mirror is down): no
# write the host saw durable is lost. Each node's files live on its own
# powerfs (tests/tools/powerfs.c: what was not fsync'ed/fdatasync'ed is gone
# at a cut). The mirror's daemon stops, so the primary keeps every write in
# its journal; a host writes stamped blocks with many FUA writes and some
# flushes from 8 requests in flight (tests/tools/power_io.py), so that
# journaled FUA writes share fdatasyncs (group commit, doc/journal.md). The
# primary's power goes (kill -9, then the cut): in round 1 in the middle of
# the load, in round 2 right after the host's last answers. Both daemons
# start again; the journal is replayed. Every durable write (FUA, or
# answered before a flush that completed) must then be on the primary AND
# on the mirror's own file (read directly, through nbdkit): a journaled
# record lost by the cut is missing on the mirror only.
# JPL_SEED repeats the cut points.
: "${T_LIMIT:=240}"
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/tools/powerfs_lib.sh"
powerfs_usable || { echo "1..0 # SKIP powerfs not built (libfuse3), no /dev/fuse or not root"; exit 77; }
command -v nbdkit >/dev/null || { echo "1..0 # SKIP nbdkit not installed"; exit 77; }
ROUNDS=2
SEED=${JPL_SEED:-$(( $(od -An -N3 -tu4 /dev/urandom) ))}
RANDOM=$SEED
BLOCKS=2048
PY="/usr/bin/python3 $top_srcdir/tests/tools/power_io.py"
plan $((1 + 7 * ROUNDS + 1))
echo "# seed $SEED (JPL_SEED=$SEED repeats these cut points)"

PAIR_HB='interval="0.5" timeout="2.0" probation="1"' pair_setup vol0:64M:sync:yes:node1
for n in 1 2; do
	rm -f "$T_DIR/node$n-vol0.img"
	mkdir -p "$T_DIR/fs$n.disk"
	truncate -s 64M "$T_DIR/fs$n.disk/vol0.img"
	powerfs_mount "fs$n" || bail "powerfs did not mount: $(cat "$T_DIR/fs$n.fs.log")"
	sed -i "s|$T_DIR/node$n-vol0.img|$T_DIR/fs$n/vol0.img|" "$T_DIR/pair.xml"
done
node_start node1 && node_start node2 || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
both_uptodate() { lun_state_is node1 vol0 uptodate && lun_state_is node2 vol0 uptodate; }
check "sync LUN on powerfs, up to date on both nodes" wait_for 30 both_uptodate
URI1="nbd://127.0.0.1:$N1_NBD/vol0"

# mirror_check R: the durable writes of round R on node2's own file
mirror_check() {
	local sock="$T_DIR/nbdkit$1.sock" pid rc
	nbdkit -f -r -U "$sock" file file="$T_DIR/fs2/vol0.img" >"$T_DIR/nbdkit$1.log" 2>&1 &
	pid=$!
	T_PIDS="$T_PIDS $pid"
	wait_for 10 test -S "$sock"
	timeout 60 $PY check "nbd+unix:///?socket=$sock" "$T_DIR/host$1.log" --blocks $BLOCKS \
		>"$T_DIR/mcheck$1.out" 2>&1
	rc=$?
	kill "$pid"; wait "$pid" 2>/dev/null
	sed 's/^/# mirror: /' "$T_DIR/mcheck$1.out"
	return $rc
}

round() {
	local r=$1 delay w wrc rc d0 d1 log="$T_DIR/host$1.log"
	stop_pid "$n2_pid"
	check "round $r: the mirror is down, the primary journals" \
		wait_for 15 lun_state_is node1 vol0 journaling
	delay=$(( 300 + RANDOM % 1500 ))
	timeout -k 5 60 $PY write "$URI1" "$log" --blocks $BLOCKS --seconds 3 --fua 40 \
		--flush-every 8:64 --seed "$RANDOM" --run "j$r-$SEED" >"$T_DIR/writer$r.out" 2>&1 &
	w=$!
	if [ "$r" = 1 ]; then
		wait_for 20 grep -q '^D ' "$log"
		sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
		diag "round $r: the primary's power goes $delay ms into the load"
	else
		wait "$w"
		diag "round $r: the primary's power goes right after the host's last answers"
	fi
	kill9 "$n1_pid"
	d0=$(powerfs_stat "$T_DIR/fs1" dropped_bytes)
	powerfs_cmd "$T_DIR/fs1" powercut
	d1=$(powerfs_stat "$T_DIR/fs1" dropped_bytes)
	wait "$w" 2>/dev/null; wrc=$?
	diag "round $r: writer (exit $wrc): $(cat "$T_DIR/writer$r.out"); the cut dropped $((d1 - d0)) bytes"
	check "round $r: the host saw durable writes before the cut" \
		eval "grep -q '^D ' '$log' && ! grep -q Traceback '$T_DIR/writer$r.out'"
	node_start node1 && node_start node2
	check "round $r: both daemons restarted on what survived the cut" test $? = 0
	if wait_for 60 both_uptodate; then
		ok "round $r: the journal was replayed, both nodes up to date"
	else
		not_ok "round $r: both up to date (node1 $(lun_field node1 vol0 state), node2 $(lun_field node2 vol0 state))"
	fi
	timeout 60 $PY check "$URI1" "$log" --blocks $BLOCKS >"$T_DIR/check$r.out" 2>&1
	rc=$?
	sed 's/^/# primary: /' "$T_DIR/check$r.out"
	check "round $r: every durable write is on the primary" test $rc = 0
	check "round $r: every durable write is on the mirror's own copy" mirror_check "$r"
	# the writes no host saw durable may be lost, but alike on both: the
	# journal can reach the disk ahead of the primary's own copy (a FUA's
	# fdatasync, or write-back, takes earlier records along) or behind
	# it; journaled writes mark the activity log as live ones do, so the
	# extents the crash left are copied after the replay
	check "round $r: the two copies are byte-identical after the replay" \
		cmp "$T_DIR/fs1/vol0.img" "$T_DIR/fs2/vol0.img"
}

for r in $(seq 1 $ROUNDS); do round "$r"; done
stop_pid "$n1_pid"; stop_pid "$n2_pid"
finish
