#!/bin/bash
# ipmirrorctl resize (doc/resize.md) on two daemons on loopback: refused
# while a backing is too small (naming it and its size, first node1's, then
# node2's), for a shrink, on the mirror; with both backings grown (node1's
# by truncate: a hole; node2's with stale bytes in its new range, as an
# lvextend leaves) it grows vol0 while fio writes through an NBD connection
# opened before (which keeps the old size and sees no error); a new
# connection sees the new size, bytes written into the new range are on
# both nodes and node2's stale bytes are gone (the backing files are
# byte-identical); the grow marked the new range alone for the resync.
# Both daemons restarted with the config still at the old size: the grown
# size is kept, uptodate at once with nothing to resync; the roles swapped
# and back: the same on node2 as primary. An async LUN grows
# under load too. A reload with the new size in the file is no change; an
# unmirrored LUN grows alone; a peer that speaks protocol version 4 makes
# resize refused, saying so; a mirror that missed the grow (node2 started
# with the old size, node1 with a larger one) grows at the handshake.
T_LOG_ALLOW="the primary's grow refused|mirror request [0-9]+ failed on the peer: File too large|applying mirror request [0-9]+ \(RESIZE [^)]*\) failed: File too large"
. "$top_srcdir/tests/lib.sh"
plan 34

M=1048576
pair_local vol0:64M:sync:yes:node1 vol1:16M:sync:no:node1 vol2:16M:async:yes:node1
check "mirroring is up" eval 'wait_for 30 lun_state_is node2 vol0 uptodate && wait_for 30 lun_state_is node2 vol2 uptodate'
head -c 8M /dev/urandom >"$T_DIR/data"
nbdcopy "$T_DIR/data" "nbd://127.0.0.1:$N1_NBD/vol0" || bail "nbdcopy failed"
nbd_size() { timeout 10 nbdinfo --size "nbd://127.0.0.1:$N1_NBD/$1"; }

# refusals: nothing changes
out=$(ctl node1 resize vol0 96M 2>&1); rc=$?
diag "resize with no backing grown: $out"
check "refused while node1's backing is smaller, naming it and its size" \
	eval 'test $rc = 1 && grep -q "backing $T_DIR/node1-vol0.img is $((64 * M)) bytes" <<<"$out"'
truncate -s 96M "$T_DIR/node1-vol0.img"
out=$(ctl node1 resize vol0 96M 2>&1); rc=$?
diag "resize with node1's backing grown: $out"
check "refused while node2's backing is smaller, naming it and its size" \
	eval 'test $rc = 1 && grep -q "node2.s backing $T_DIR/node2-vol0.img is $((64 * M)) bytes" <<<"$out"'
check "the refusal changed nothing: 64M on both nodes, node2 uptodate" \
	eval '[ "$(lun_field node1 vol0 size)" = $((64 * M)) ] && [ "$(lun_field node2 vol0 size)" = $((64 * M)) ] &&
		lun_state_is node2 vol0 uptodate'
# node2's backing grown with stale bytes in its new range (lvextend's)
head -c 32M /dev/urandom >>"$T_DIR/node2-vol0.img"
out=$(ctl node1 resize vol0 32M 2>&1); rc=$?
diag "shrink: $out"
check "a shrink is refused with the reason" eval 'test $rc = 1 && grep -q "shrinking a LUN is not supported" <<<"$out"'
out=$(ctl node1 resize vol0 1T 2>&1); rc=$?
check "a size past both backings is refused" eval 'test $rc = 1 && grep -q "backing .* is" <<<"$out"'
out=$(ctl node2 resize vol0 96M 2>&1); rc=$?
diag "on the mirror: $out"
check "resize on the mirror is refused, naming the primary" \
	eval 'test $rc = 1 && grep -q "primary, node1" <<<"$out"'
out=$(ctl node1 resize vol0 96Q 2>&1); rc=$?
check "a bad SIZE is a usage error" eval 'test $rc = 2 && grep -q "bad SIZE" <<<"$out"'

# the grow, while fio writes through a connection opened before
load_start 32M 8
field_grows node1 vol0 mirrored_bytes || diag "the load did not start"
from=$(wc -l <"$T_DIR/n1.log")
out=$(ctl node1 resize vol0 96M 2>&1); rc=$?
diag "resize under load: $out"
check "resize vol0 96M while fio writes" eval 'test $rc = 0 && grep -q "grown from" <<<"$out"'
check "a new NBD connection sees 96M" eval '[ "$(nbd_size vol0)" = $((96 * M)) ]'
check "both nodes show 96M" \
	eval '[ "$(lun_field node1 vol0 size)" = $((96 * M)) ] && [ "$(lun_field node2 vol0 size)" = $((96 * M)) ]'
qio() { timeout 30 qemu-io -f raw "nbd://127.0.0.1:$N1_NBD/vol0" "$@"; }
check "4M written into the new range through a new connection" \
	eval 'qio -c "write -P 0x5a $((90 * M)) 4M" -c "write -P 0x6b $((96 * M - 4096)) 4096" |
		grep -c "^wrote" | grep -qx 2'
wait "$fio_pid"; rc=$?
check "fio on the connection opened before: no error" test "$rc" = 0
check "node2 uptodate after the grow" wait_for 30 lun_state_is node2 vol0 uptodate
check "the backing files are byte-identical (new range synced, node2's stale bytes gone)" \
	wait_for 10 cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
check "the new range's bytes are there on node2" \
	eval 'cmp -s <(head -c $((94 * M)) "$T_DIR/node2-vol0.img" | tail -c 4M) <(head -c 4M /dev/zero | tr "\0" "\132")'
diag "node1 from the grow on: $(tail -n +"$((from + 1))" "$T_DIR/n1.log" | grep -E 'GROWN|grown|resync|journal|unreachable' | tr '\n' '|')"
check "the grow marked exactly the new range (32M) for the resync, not the LUN" \
	eval 'tail -n +"$((from + 1))" "$T_DIR/n1.log" | grep -q "and $((32 * M)) dirty bytes from before"'
out=$(ctl node1 resize vol0 96M 2>&1); rc=$?
check "resize to the size it has: a note, exit 0" eval 'test $rc = 0 && grep -q "already" <<<"$out"'

# an async LUN: writes the host saw completed may still be on their way
FIO_NODE=node1 fio_verify "nbd://127.0.0.1:$N1_NBD/vol2" load2 --size=16M --time_based --runtime=6 &
fio2=$!
field_grows node1 vol2 mirrored_bytes || diag "the load on vol2 did not start"
truncate -s 32M "$T_DIR/node1-vol2.img" "$T_DIR/node2-vol2.img"
out=$(ctl node1 resize vol2 32M 2>&1); rc=$?
diag "resize of the async vol2 under load: $out"
wait "$fio2"; rc2=$?
check "an async LUN grows under load (fio: no error)" \
	eval 'test $rc = 0 && test $rc2 = 0 && [ "$(lun_field node2 vol2 size)" = $((32 * M)) ]'
check "... and its backing files end byte-identical" \
	eval 'wait_for 30 lun_state_is node2 vol2 uptodate && wait_for 10 cmp -s "$T_DIR/node1-vol2.img" "$T_DIR/node2-vol2.img"'

# restart both, the config still at 64M
stop_pid "$n1_pid"; stop_pid "$n2_pid"
n1from=$(wc -l <"$T_DIR/n1.log")
pair_start || bail "daemons did not restart: $(tail -n 20 "$T_DIR"/n*.log)"
check "after a restart of both: uptodate" wait_for 30 lun_state_is node2 vol0 uptodate
check "after a restart: 96M on both nodes and for NBD" \
	eval '[ "$(lun_field node1 vol0 size)" = $((96 * M)) ] && [ "$(lun_field node2 vol0 size)" = $((96 * M)) ] &&
		[ "$(nbd_size vol0)" = $((96 * M)) ]'
after=$(tail -n +"$((n1from + 1))" "$T_DIR/n1.log")
diag "node1 after the restart: $(grep -E 'resync|grown|dirty' <<<"$after" | tr '\n' '|')"
check "after a restart: nothing to resync" \
	eval '! grep -qE "dirty bytes from before|resync complete, [1-9]" <<<"$after" && cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"'

# the roles swapped and back: each node, primary in turn, serves 96M and
# finds nothing to resync (the mirror's files grew with the LUN)
n2from=$(wc -l <"$T_DIR/n2.log")
out=$( (ctl node1 demote vol0 && ctl node2 promote vol0) 2>&1); rc=$?
diag "vol0 to node2: $out"
check "vol0 moved to node2: 96M there for NBD, node1 uptodate" \
	eval 'test $rc = 0 && wait_for 30 lun_state_is node1 vol0 uptodate &&
		[ "$(timeout 10 nbdinfo --size "nbd://127.0.0.1:$N2_NBD/vol0")" = $((96 * M)) ]'
diag "node2 as primary: $(tail -n +"$((n2from + 1))" "$T_DIR/n2.log" | grep -E 'resync|grown|dirty' | tr '\n' '|')"
check "node2 as primary: nothing to resync" \
	eval '! tail -n +"$((n2from + 1))" "$T_DIR/n2.log" | grep -qE "dirty bytes from before|resync complete, [1-9]"'
out=$( (ctl node2 demote vol0 && ctl node1 promote vol0) 2>&1); rc=$?
check "vol0 back on node1" eval 'test $rc = 0 && wait_for 30 lun_state_is node2 vol0 uptodate'

# a reload with the grown size in the file
sed -i 's/name="vol0" size="64M"/name="vol0" size="96M"/' "$T_DIR/pair.xml"
out=$(ctl node1 reload 2>&1); rc=$?
diag "reload on node1 with size=96M: $out"
check "a reload with the grown size is accepted on node1" test "$rc" = 0
out=$(ctl node2 reload 2>&1); rc=$?
diag "reload on node2 with size=96M: $out"
check "... and on node2" test "$rc" = 0

# an unmirrored LUN grows alone
truncate -s 32M "$T_DIR/node1-vol1.img"
out=$(ctl node1 resize vol1 32M 2>&1); rc=$?
diag "resize vol1: $out"
check "an unmirrored LUN grows here alone" eval 'test $rc = 0 && [ "$(nbd_size vol1)" = $((32 * M)) ]'

# a peer of the previous release
stop_pid "$n2_pid"
IPM_WIRE_VERSION_MAX=4 node_start node2 || bail "node2 (v4) did not start: $(tail "$T_DIR/n2.log")"
check "node2 speaking version 4: uptodate" wait_for 30 lun_state_is node2 vol0 uptodate
truncate -s 128M "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
out=$(ctl node1 resize vol0 128M 2>&1); rc=$?
diag "resize with a version 4 peer: $out"
check "resize refused with a version 4 peer, saying so" \
	eval 'test $rc = 1 && grep -q "version 4" <<<"$out" && [ "$(lun_field node1 vol0 size)" = $((96 * M)) ]'

# a mirror that missed the grow (a crash, a cut link) grows at the
# handshake: node2 started with the file at 96M, node1 then with 128M
stop_pid "$n1_pid"; stop_pid "$n2_pid"
node_start node2 || bail "node2 did not restart: $(tail "$T_DIR/n2.log")"
sed -i 's/name="vol0" size="96M"/name="vol0" size="128M"/' "$T_DIR/pair.xml"
n2from=$(wc -l <"$T_DIR/n2.log")
node_start node1 || bail "node1 did not restart: $(tail "$T_DIR/n1.log")"
check "a mirror smaller than its primary grows at the handshake, uptodate" \
	eval 'wait_for 30 lun_state_is node2 vol0 uptodate && [ "$(lun_field node2 vol0 size)" = $((128 * M)) ] &&
		tail -n +"$((n2from + 1))" "$T_DIR/n2.log" | grep -q "lun vol0: GROWN to $((128 * M)) bytes by its primary"'
check "... its backing file byte-identical to the primary's" \
	wait_for 10 cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
