#!/bin/bash
# assume-clean (doc/generations.md): node2's daemon starts first; on its
# never-synced copy of vol0 the admin declares the copies equal (logged at
# crit); node1 then starts and no copy is made: a 1 MiB marker that only
# node1's file holds stays only there, while both report uptodate at one
# generation. Refusals: a second assume-clean, on the primary, and on vol1
# whose initial sync has begun (or ended); vol1 is copied as usual.
T_LOG_ALLOW='crit: lun vol0: ASSUME-CLEAN'
. "$top_srcdir/tests/lib.sh"
plan 10

pair_setup vol0:128M:sync:yes:node1 vol1:128M:sync:yes:node1
head -c 16M /dev/urandom >"$T_DIR/common"
for n in node1 node2; do
	dd if="$T_DIR/common" of="$T_DIR/$n-vol0.img" bs=1M seek=8 conv=notrunc status=none
done
head -c 1M /dev/urandom >"$T_DIR/marker"
dd if="$T_DIR/marker" of="$T_DIR/node1-vol0.img" bs=1M seek=100 conv=notrunc status=none
dd if="$T_DIR/marker" of="$T_DIR/node1-vol1.img" bs=1M seek=100 conv=notrunc status=none

node_start node2 || bail "node2 did not start: $(cat "$T_DIR/n2.log")"
check "node2 alone: vol0 inconsistent" wait_for 10 lun_state_is node2 vol0 inconsistent
out=$(ctl node2 assume-clean vol0 2>&1); rc=$?
diag "assume-clean on node2: $out"
check "assume-clean vol0 on node2 (never synced, before any connection)" test "$rc" = 0
check "logged at crit" grep -q 'crit: lun vol0: ASSUME-CLEAN' "$T_DIR/n2.log"
check "a second assume-clean is refused (exit 1)" eval '! ctl node2 assume-clean vol0'
node_start node1 || bail "node1 did not start: $(cat "$T_DIR/n1.log")"
check "vol0 and vol1 uptodate on node2" \
	eval 'wait_for 60 lun_state_is node2 vol0 uptodate && wait_for 60 lun_state_is node2 vol1 uptodate'
check "vol0 was not copied: node1's marker is not on node2, the common data is" \
	eval '! cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img" &&
		cmp -s -n $((24 << 20)) "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"'
check "vol1 was copied as usual: its files are equal" \
	cmp "$T_DIR/node1-vol1.img" "$T_DIR/node2-vol1.img"
out=$(ctl node1 assume-clean vol1 2>&1); rc=$?
diag "assume-clean on node1: $out"
check "assume-clean on the primary refused, naming the mirror" \
	eval 'test $rc = 1 && grep -q node2 <<<"$out"'
out=$(ctl node2 assume-clean vol1 2>&1); rc=$?
diag "assume-clean on a synced vol1: $out"
check "assume-clean on vol1, whose initial sync ran, refused" \
	eval 'test $rc = 1 && grep -q "initial sync" <<<"$out"'
finish
