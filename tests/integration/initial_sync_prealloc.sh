#!/bin/bash
# A preallocated mirror copy stays preallocated (doc/generations.md). Both
# backing files are allocated whole (fallocate, as an admin does to keep a
# full file system from failing later writes); node2's holds old data. The
# initial sync zeroes node2's copy where node1's is blank: its data parts in
# place, keeping their blocks, where it used to punch holes (a thin copy
# from a thick one). Then an outage's journal is replayed into the kept
# blocks. The copies must end byte-identical and node2's file allocated.
. "$top_srcdir/tests/lib.sh"
plan 7
SIZE_MIB=256

# kib_used FILE: blocks allocated to FILE, in KiB
kib_used() { du -k "$1" | cut -f1; }

PAIR_HB='interval="0.5" timeout="2.0" probation="2"' pair_setup "vol0:${SIZE_MIB}M:sync:yes:node1"
fallocate -l "${SIZE_MIB}M" "$T_DIR/node1-vol0.img"
fallocate -l "${SIZE_MIB}M" "$T_DIR/node2-vol0.img"
# node2: a used disk (old data over its first 64 MiB); node1: 16 MiB of data at 100 MiB
dd if=/dev/urandom of="$T_DIR/node2-vol0.img" bs=1M count=64 conv=notrunc status=none
dd if=/dev/urandom of="$T_DIR/node1-vol0.img" bs=1M seek=100 count=16 conv=notrunc status=none
sync
before=$(kib_used "$T_DIR/node2-vol0.img")
diag "node2's file before the initial sync: $before KiB allocated"
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "node2 uptodate after the initial sync" wait_for 60 lun_state_is node2 vol0 uptodate
after=$(kib_used "$T_DIR/node2-vol0.img")
check "node2's copy stays allocated ($after KiB of $((SIZE_MIB << 10)))" \
	test "$after" -ge $(((SIZE_MIB << 10) * 98 / 100))
check "node2 reads node1's copy: old data zeroed, the 16 MiB there" \
	cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"

stop_pid "$n2_pid"
check "node2 stopped: node1 journals" wait_for 15 lun_state_is node1 vol0 journaling
timeout 60 fio --name=j --ioengine=nbd --uri="nbd://127.0.0.1:$N1_NBD/vol0" --rw=randwrite \
	--bs=64k --iodepth=8 --size=128M --io_size=64M --randrepeat=0 >"$T_DIR/fio.out" 2>&1 ||
	diag "fio failed: $(tail -3 "$T_DIR/fio.out")"
node_start node2 || bail "node2 did not start again: $(tail -5 "$T_DIR/n2.log")"
check "the journal is replayed: node1 up to date" wait_for 60 lun_state_is node1 vol0 uptodate
stop_pid "$n1_pid"
stop_pid "$n2_pid"
check "both copies identical after the replay, node2's still allocated ($(kib_used "$T_DIR/node2-vol0.img") KiB)" \
	eval 'cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img" &&
		test "$(kib_used "$T_DIR/node2-vol0.img")" -ge $(((SIZE_MIB << 10) * 98 / 100))'
finish
