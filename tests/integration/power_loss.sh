#!/bin/bash
# Power loss under load. Each node's backing, journal, bitmap, activity-log,
# generation and heartbeat-state files live on its own powerfs
# (tests/tools/powerfs.c), which keeps what was written in memory until
# fsync/fdatasync/RWF_DSYNC (or a directory fsync, for creates and renames)
# makes it durable. A host writes stamped blocks through the primary with
# flushes and FUA writes, logging which writes became durable
# (tests/tools/power_io.py). At a random point one node loses its power:
# its daemon is killed -9, its powerfs drops everything not durable, and the
# daemon restarts on what survived. Rounds alternate: the primary's power,
# then the mirror's, under load; then the same once a load that ended
# without a flush has been idle long enough for the primary to clear its
# activity log (which it may only do once both copies flushed those
# writes). After each: the restarted daemon opened its files and
# runs, both nodes are up to date again (no split brain), every write the
# host saw acknowledged and flushed (or FUA) is there, read through the
# primary's NBD, and both copies are identical.
#
# POWER_SEED reproduces the random points (printed first); POWER_ROUNDS,
# POWER_SECONDS (per round), POWER_WHO (primary, mirror, both), POWER_WHEN
# (load; idle: the cut comes once a load that ended without a flush has
# been idle long enough for the primary to clear its activity log; both:
# two rounds of each in turn), POWER_KEEP (percent of dirty pages written
# back before the cut; "random": per round), POWER_IO (backing io, e.g.
# direct) and POWER_PRELOAD (an LD_PRELOAD for the daemons, e.g.
# tests/tools/.libs/nofsync.so to see the test fail) vary it;
# power_loss_long.sh runs more rounds for `make check-long`.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/tools/powerfs_lib.sh"
powerfs_usable || { echo "1..0 # SKIP powerfs not built (libfuse3), no /dev/fuse or not root"; exit 77; }
ROUNDS=${POWER_ROUNDS:-4}
SECS=${POWER_SECONDS:-8}
KEEP=${POWER_KEEP:-0}
SEED=${POWER_SEED:-$(( $(od -An -N3 -tu4 /dev/urandom) ))}
RANDOM=$SEED
BLOCKS=2048 # 8 MiB of the LUN: overwrites of a block happen often
PY="/usr/bin/python3 $top_srcdir/tests/tools/power_io.py"
plan $((1 + 5 * ROUNDS + 2 + 1))
echo "# seed $SEED (POWER_SEED=$SEED repeats these cut points)"

# the pair, each node's files in its own powerfs (the "disk" made durable)
PAIR_IO=${POWER_IO:-} pair_setup vol0:64M:sync:yes:node1
for n in 1 2; do
	rm -f "$T_DIR/node$n-vol0.img"
	mkdir -p "$T_DIR/fs$n.disk"
	truncate -s 64M "$T_DIR/fs$n.disk/vol0.img"
	powerfs_mount "fs$n" || bail "powerfs did not mount: $(cat "$T_DIR/fs$n.fs.log")"
	sed -i "s|$T_DIR/node$n-vol0.img|$T_DIR/fs$n/vol0.img|" "$T_DIR/pair.xml"
done
start() { LD_PRELOAD=${POWER_PRELOAD:-} node_start "$1"; }
start node1 && start node2 || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
both_uptodate() { lun_state_is node1 vol0 uptodate && lun_state_is node2 vol0 uptodate; }
check "sync LUN on powerfs, up to date on both nodes" wait_for 30 both_uptodate
URI1="nbd://127.0.0.1:$N1_NBD/vol0"

dropped_any=0
# new_lines FILE FROM: FILE's lines after byte FROM
new_lines() { tail -c +$(( $2 + 1 )) "$1"; }

# round R WHO WHEN: the host writes; WHO's power goes at a random point of
# the load (WHEN=load) or once the load ended without a last flush and the
# nodes were idle long enough for the primary to clear its activity log
# (WHEN=idle); restart
round() {
	local r=$1 who=$2 when=$3 node n pid log="$T_DIR/host$r.log" delay keep wseed w rc \
		wrc from d0 d1 cutcmd secs=$SECS
	case $who in primary) node=node1; n=1 ;; mirror) node=node2; n=2 ;; esac
	delay=$(( 500 + RANDOM % 3000 ))       # ms after the first durable write
	wseed=$RANDOM
	case $KEEP in random) keep=$(( RANDOM % 5 * 25 )) ;; *) keep=$KEEP ;; esac
	if [ "$keep" = 0 ]; then cutcmd=powercut; else cutcmd="powercut keep=$keep seed=$RANDOM"; fi
	if [ "$when" = idle ]; then
		secs=2
		diag "round $r: the $who's power goes 6 s after a ${secs} s load ended unflushed ($cutcmd; writer seed $wseed)"
	else
		diag "round $r: the $who's power goes $delay ms into the load ($cutcmd; writer seed $wseed)"
	fi
	timeout -k 5 $((secs + 60)) $PY write "$URI1" "$log" --blocks $BLOCKS --seconds "$secs" \
		--seed "$wseed" --run "r$r-$SEED" >"$T_DIR/writer$r.out" 2>&1 &
	w=$!
	wait_for 20 grep -q '^D ' "$log"
	if [ "$when" = idle ]; then
		# the primary clears its activity log after 3 s without a write
		wait "$w"
		wrc=$?
		sleep 6
	else
		sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	fi
	kill -0 "$w" 2>/dev/null
	rc=$?
	eval "pid=\$n${n}_pid"
	kill9 "$pid"
	d0=$(powerfs_stat "$T_DIR/fs$n" dropped_bytes)
	powerfs_cmd "$T_DIR/fs$n" "$cutcmd"
	d1=$(powerfs_stat "$T_DIR/fs$n" dropped_bytes)
	diag "round $r: the cut dropped $((d1 - d0)) bytes not synced on $node" \
		"($(powerfs_stat "$T_DIR/fs$n" undone_changes) namespace changes undone in all)"
	[ $((d1 - d0)) -gt 0 ] && dropped_any=$((dropped_any + 1))
	# the mirror stays away a moment: the primary journals meanwhile
	[ "$who" = mirror ] && sleep "0.$(( RANDOM % 10 ))"
	from=$(stat -c %s "$T_DIR/n$n.log")
	if start "$node"; then
		ok "round $r: the $who ($node) restarted on what survived the cut (writer was running: $([ $rc = 0 ] && echo yes || echo no))"
	else
		not_ok "round $r: the $who ($node) restarted on what survived the cut"
		new_lines "$T_DIR/n$n.log" "$from" | tail -n 20 | sed 's/^/# /'
	fi
	if [ "$when" = load ]; then wait "$w"; wrc=$?; fi
	diag "round $r: writer (exit $wrc): $(cat "$T_DIR/writer$r.out")"
	check "round $r: the host saw durable writes before the cut" \
		eval "grep -q '^D ' '$log' && ! grep -q Traceback '$T_DIR/writer$r.out'"
	if wait_for 60 both_uptodate; then
		ok "round $r: both nodes up to date again"
	else
		not_ok "round $r: both nodes up to date again (node1 $(lun_field node1 vol0 state), node2 $(lun_field node2 vol0 state))"
	fi
	timeout 60 $PY check "$URI1" "$log" --blocks $BLOCKS >"$T_DIR/check$r.out" 2>&1
	rc=$?
	sed 's/^/# /' "$T_DIR/check$r.out"
	check "round $r: every write acknowledged and flushed (or FUA) is there, whole" test $rc = 0
	check "round $r: both copies identical" cmp "$T_DIR/fs1/vol0.img" "$T_DIR/fs2/vol0.img"
	new_lines "$T_DIR/n$n.log" "$from" | grep -E '\] (warning|error|crit): ' | head -n 5 | sed 's/^/#   restart: /'
}

# odd rounds cut the primary's power, even ones the mirror's; rounds 1, 2
# under load, 3, 4 idle, and so on (POWER_WHO, POWER_WHEN pick one)
for r in $(seq 1 "$ROUNDS"); do
	who=${POWER_WHO:-both} when=${POWER_WHEN:-both}
	[ "$who" = both ] && { [ $((r % 2)) = 1 ] && who=primary || who=mirror; }
	[ "$when" = both ] && { [ $(((r - 1) / 2 % 2)) = 0 ] && when=load || when=idle; }
	round "$r" "$who" "$when"
done
check "the cuts dropped data not yet synced in $dropped_any of $ROUNDS rounds" test "$dropped_any" -gt 0
check "no split brain was declared" eval "! grep -h 'SPLIT BRAIN' '$T_DIR'/n?.log"
stop_pid "$n1_pid"; stop_pid "$n2_pid"
finish
