#!/bin/bash
# The initial sync of a blank sparse 1 TiB LUN (doc/generations.md): holes
# cost no transfer, so the pair is in sync within seconds; node2's copy stays
# sparse, and the 1 MiB node1 holds at 512 GiB (and zeros around it) is
# there. The files are too large to cmp: their data maps and the data are
# compared instead.
. "$top_srcdir/tests/lib.sh"
plan 6

pair_setup vol0:1T:sync:yes:node1
head -c 1M /dev/urandom >"$T_DIR/data"
dd if="$T_DIR/data" of="$T_DIR/node1-vol0.img" bs=1M seek=$((512 << 10)) conv=notrunc status=none
t0=$(date +%s.%N)
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "node2 uptodate within 30 s" wait_for 30 lun_state_is node2 vol0 uptodate
t1=$(date +%s.%N)
secs=$(echo "$t1 - $t0" | bc)
diag "1 TiB pair in sync $secs s after the daemons started ($(grep -o 'resync complete.*' "$T_DIR/n1.log" | head -n1))"
# probation (3 s) and the connections take part of it
check "in sync within 10 s of the start ($secs s)" test "$(echo "$secs < 10" | bc)" = 1
check "node2 was inconsistent before (logged as such at its start)" \
	grep -q 'inconsistent until the initial sync' "$T_DIR/n2.log"
used=$(du -k "$T_DIR/node2-vol0.img" | cut -f1)
check "node2's copy stays sparse (${used} KiB allocated)" test "$used" -lt 65536
check "node2 holds node1's data at 512 GiB, and zeros around it" \
	eval 'dd if="$T_DIR/node2-vol0.img" bs=1M skip=$(((512 << 10) - 1)) count=3 status=none |
		cmp - <(head -c 1M /dev/zero; cat "$T_DIR/data"; head -c 1M /dev/zero)'
finish
