#!/bin/bash
# ipmirrorctl invalidate (doc/generations.md) on two daemons on loopback:
# node2's copy is damaged behind the daemons' back; invalidate is refused on
# the primary without --force and on node2 while no primary is connected
# (it may hold the only good copy); on node2 with node1 connected and fio
# writing it makes node2 inconsistent (promote refused) until copied whole:
# the files end equal, the damage gone. Then --force on node1 (peer up to
# date) marks node1's copy: after a clean hand-over to node2 it is copied
# whole from there; every block fio completed reads back on node2.
T_LOG_ALLOW='crit: lun vol0: INVALIDATED by force'
. "$top_srcdir/tests/lib.sh"
plan 18

PAIR_RESYNC_RATE=32M pair_local vol0:256M:sync:yes:node1
check "mirroring is up" wait_for 30 lun_state_is node2 vol0 uptodate
head -c 8M /dev/urandom >"$T_DIR/data"
nbdcopy "$T_DIR/data" "nbd://127.0.0.1:$N1_NBD/vol0" || bail "nbdcopy failed"
head -c 1M /dev/urandom >"$T_DIR/junk"
# outside the region fio rewrites later ([0, 64M))
dd if="$T_DIR/junk" of="$T_DIR/node2-vol0.img" bs=1M seek=100 conv=notrunc status=none
check "node2's copy is damaged behind the daemons' back" \
	eval '! cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"'

out=$(ctl node1 invalidate vol0 2>&1); rc=$?
diag "invalidate on node1: $out"
check "invalidate on the primary refused without --force, saying why" \
	eval 'test $rc = 1 && grep -q "primary" <<<"$out"'
stop_pid "$n1_pid"
check "node1 stopped: node2 outdated" wait_for 10 lun_state_is node2 vol0 outdated
out=$(ctl node2 invalidate vol0 2>&1); rc=$?
diag "invalidate on node2 without a primary: $out"
check "invalidate refused while no primary is connected (the only good copy may be here)" \
	eval 'test $rc = 1 && grep -q "only good copy" <<<"$out"'
check "node2 still outdated and promotable after the refusal" \
	eval 'lun_state_is node2 vol0 outdated && ctl node2 promote vol0 --dry-run'
node_start node1 || bail "node1 did not restart: $(cat "$T_DIR/n1.log")"
check "node1 back: node2 uptodate (the damage is still there)" \
	eval 'wait_for 30 lun_state_is node2 vol0 uptodate && ! cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"'

load_start 64M 10
field_grows node1 vol0 mirrored_bytes || diag "the load did not start"
lun_watch node2 vol0 40 "$T_DIR/n2.states" &
w2=$!
out=$(ctl node2 invalidate vol0 2>&1); rc=$?
diag "invalidate on node2: $out"
check "invalidate on node2 with node1 connected and writing" test "$rc" = 0
check "node2 inconsistent, promote refused" \
	eval 'wait_for 5 lun_state_is node2 vol0 inconsistent && ! ctl node2 promote vol0'
wait "$fio_pid"; rc=$?
check "fio randwrite --verify on node1 during the copy: no error" test "$rc" = 0
check "node2 uptodate after the copy" wait_for 60 lun_state_is node2 vol0 uptodate
kill "$w2" 2>/dev/null; wait "$w2" 2>/dev/null
diag "node2 states: $(awk '{print $1}' "$T_DIR/n2.states" | uniq | tr '\n' ' ')"
check "the copies are equal again: the damage is gone" \
	cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"

# --force on the primary: marked now, copied once node1 is the mirror
out=$(ctl node1 invalidate vol0 --force 2>&1); rc=$?
diag "invalidate --force on node1: $out"
check "invalidate --force on node1 (node2 up to date): marked, not consistent" \
	eval 'test $rc = 0 && [ "$(lun_field node1 vol0 consistent)" = false ]'
dd if="$T_DIR/junk" of="$T_DIR/node1-vol0.img" bs=1M seek=200 conv=notrunc status=none
ctl node1 demote vol0 >/dev/null && wait_for 20 ctl node2 promote vol0
check "clean hand-over: node1 demoted, node2 promoted" \
	eval '[ "$(lun_field node2 vol0 role)" = primary ]'
check "node1 inconsistent after the hand-over (not promotable)" \
	eval 'wait_for 10 lun_state_is node1 vol0 inconsistent && ! ctl node1 promote vol0 --dry-run'
check "node1 then uptodate: copied whole from node2" \
	eval 'wait_for 60 lun_state_is node1 vol0 uptodate &&
		cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"'
check "every block fio completed reads back on node2 (now primary)" \
	fio_verify_only "nbd://127.0.0.1:$N2_NBD/vol0" load
finish
