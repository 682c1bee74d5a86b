#!/bin/bash
# Overlapping writes in flight at once leave equal copies. The primary
# waits for the mirror's answers while its local writes are in the device
# (lun_write_begin/lun_write_end, engine/primary/replicator.c write_chunk)
# and the NBD workers take what a reader queued in batches: a write that
# overlaps one still in flight must wait until both of that one's copies
# are written, else the two local writes race and the copies end
# different; a write that goes through the page cache (unaligned) waits
# for the direct ones' turn (struct io_phase) and must never deadlock with
# a thread that holds its turn while waiting for answers. Four fio jobs
# write fresh random bytes (refill_buffers) of 512 B to 16 KiB (direct
# I/O), one 128 KiB (page cache), with flushes, and one reads 128 KiB
# (page cache), over the same 1 MiB at queue depth 16 (128 KiB: 4);
# afterwards the region is byte-equal on both nodes.
. "$top_srcdir/tests/lib.sh"
plan 5

pair_local vol0:16M:sync:yes:node1
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate
args=()
for j in 1 2 3 4; do
	args+=(--name="w$j" --rw=randwrite --bsrange=512-16k --blockalign=512 --iodepth=16 --fsync=64)
done
args+=(--name=big --rw=randwrite --bs=128k --blockalign=512 --iodepth=4 --fsync=16)
args+=(--name=rd --rw=randread --bs=128k --blockalign=512 --iodepth=4)
timeout -k 5 60 fio --ioengine=nbd --uri="nbd://127.0.0.1:$N1_NBD/vol0" --size=1M \
	--time_based --runtime=6 --refill_buffers --randrepeat=0 "${args[@]}" \
	--output-format=json --output="$T_DIR/fio.json" >"$T_DIR/fio.out" 2>&1
errs=$(sed -n '/^{/,$p' "$T_DIR/fio.json" | jq -c '[.jobs[].error]' 2>/dev/null)
check "every fio job ended without an error (${errs:-no report})" test "$errs" = "[0,0,0,0,0,0]"
writes=$(sed -n '/^{/,$p' "$T_DIR/fio.json" | jq '[.jobs[].write.total_ios] | add' 2>/dev/null)
diag "$writes overlapping writes"
check "still uptodate after the load" lun_state_is node1 vol0 uptodate
# a clean stop drains what is in flight
stop_pid "$n1_pid"
stop_pid "$n2_pid"
check "the written 1 MiB is equal on both nodes" \
	cmp -n 1048576 "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
