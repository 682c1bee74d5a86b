#!/bin/bash
# io="auto" mixes O_DIRECT (small aligned writes) and the page cache (512 B
# unaligned to the file system's block, 128 KiB, reads) on one backing file.
# The kernel keeps the two coherent only when a direct write and cached I/O
# of the same pages never run at once: else it logs "Page cache invalidation
# failure on direct I/O", the file's next fdatasync fails with EIO (seen: the
# primary's disk declared failed on a host FLUSH, the mirror's FLUSH failed),
# and a stale page can be written back over the direct write's bytes. Four
# fio jobs hit one 8 MiB region of a sync LUN at once - 4 KiB aligned,
# 512 B, 128 KiB unaligned writes, each with flushes, and 128 KiB reads - and
# every request must succeed on both nodes (struct io_phase, backing.h).
. "$top_srcdir/tests/lib.sh"
plan 4

pair_local vol0:64M:sync:yes:node1
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate
timeout -k 5 60 fio --ioengine=nbd --uri="nbd://127.0.0.1:$N1_NBD/vol0" --size=8M \
	--time_based --runtime=10 \
	--name=dio --rw=randwrite --bs=4k --blockalign=4k --iodepth=16 --fsync=32 \
	--name=small --rw=randwrite --bs=512 --blockalign=512 --iodepth=16 --fsync=32 \
	--name=big --rw=randwrite --bs=128k --blockalign=512 --iodepth=4 --fsync=8 \
	--name=rd --rw=randread --bs=128k --blockalign=512 --iodepth=4 \
	--output-format=json --output="$T_DIR/fio.json" >"$T_DIR/fio.out" 2>&1
errs=$(sed -n '/^{/,$p' "$T_DIR/fio.json" | jq -c '[.jobs[].error]' 2>/dev/null)
check "every fio job ended without an error (${errs:-no report})" test "$errs" = "[0,0,0,0]"
diag "$(grep -h 'io_u error' "$T_DIR/fio.out" | head -2)"
check "no request failed on either node (local flush, mirror apply)" \
	bash -c "! grep -hE 'failed|LOCAL DISK' '$T_DIR/n1.log' '$T_DIR/n2.log'"
diag "$(grep -hE 'failed|LOCAL DISK' "$T_DIR/n1.log" "$T_DIR/n2.log" | head -3 | cut -c1-200)"
stop_pid "$n1_pid"; stop_pid "$n2_pid"
finish
