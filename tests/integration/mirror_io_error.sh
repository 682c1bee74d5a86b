#!/bin/bash
# A failing disk on the MIRROR (doc/io-errors.md), two daemons on loopback,
# node1 primary of three LUNs: bads (sync), bada (async) and good (sync).
# node2's backings of bads and bada fail writes of [8M, 9M) through
# tests/tools/eio.c (io="buffered": no io_uring). A host write there
# succeeds (node1's copy holds it); node2 takes its disk out of service:
# disk failed, its copy inconsistent (durably: its generation file), not
# promotable (promote refused, naming the disk), logged crit once; node1
# marks the range out of sync, no longer counts node2 up to date
# (journaling: node2 refuses the LUN's connections) and further writes
# succeed; the mirror's local-io-error handler runs. good is untouched.
# Killed (-9) and restarted with the fault still there, node2's copies are
# still inconsistent (the mark was durable) and fail again. Once the fault
# is gone, `invalidate` (bads) or a restart (bada) puts the disk back in
# service and the copy is made whole: both uptodate, the backing files
# byte-identical, the failed writes' bytes on node2 too.
T_LOG_ALLOW='crit: lun bad[sa]: LOCAL DISK FAILED: a mirrored|error: lun bad[sa]: applying mirror request [0-9]+ \([A-Z]+ at offset [0-9]+, length [0-9]+\) failed: Input/output error|error: lun bad[sa]: mirror request [0-9]+ \([A-Z]+ at offset [0-9]+, length [0-9]+\) failed on node2: Input/output error; the range is marked out of sync'
. "$top_srcdir/tests/lib.sh"
plan 29

PAIR_IO=buffered pair_setup bads:64M:sync:yes:node1 bada:64M:async:yes:node1 good:64M:sync:yes:node1
printf '#!/bin/sh\necho "run $IPMIRROR_EVENT $IPMIRROR_LUN" >>"%s/h-$IPMIRROR_NODE"\n' "$T_DIR" >"$T_DIR/handler.sh"
chmod +x "$T_DIR/handler.sh"
sed -i "s|<log level=\"info\"/>|&\n  <handlers timeout=\"5\" local-io-error=\"$T_DIR/handler.sh\"/>|" "$T_DIR/pair.xml"
BAD=$((8 << 20))
node_start node1 || bail "node1 did not start: $(cat "$T_DIR/n1.log")"
EIO_PATH=node2-bad EIO_FLAG="$T_DIR/eio-on" EIO_OPS=w EIO_RANGE="$BAD:$((1 << 20))" \
	LD_PRELOAD="$top_builddir/tests/tools/.libs/eio.so" node_start node2 ||
	bail "node2 did not start: $(cat "$T_DIR/n2.log")"
uptodate_all() {
	local l
	for l in bads bada good; do lun_state_is node2 "$l" uptodate || return 1; done
}
check "the three LUNs are up to date on node2" wait_for 60 uptodate_all
head -c 16M /dev/urandom >"$T_DIR/data"
for l in bads bada good; do
	timeout 60 nbdcopy "$T_DIR/data" "nbd://127.0.0.1:$N1_NBD/$l" || bail "nbdcopy to $l failed"
done
wait_for 30 uptodate_all || diag "not all up to date after the first data"

# put LUN OFF BYTE: a host write of 64 KiB of BYTE at OFF, then a flush;
# the exit status is the host's
put() {
	timeout 20 nbdsh -u "nbd://127.0.0.1:$N1_NBD/$1" \
		-c "h.pwrite(bytes([$3]) * 65536, $2)" -c 'h.flush()' >"$T_DIR/put.out" 2>&1
}
# holds FILE OFF BYTE: FILE has 64 KiB of BYTE at OFF
holds() {
	cmp -s <(dd if="$1" bs=4096 skip=$(($2 / 4096)) count=16 status=none) \
		<(head -c 65536 /dev/zero | tr '\0' "\\$(printf %o "$3")")
}
# logged_since N LOG TEXT: LOG has TEXT after its first N lines
logged_since() { tail -n +$(($1 + 1)) "$T_DIR/$2" | grep -q "$3"; }
disk_failed_on2() {
	[ "$(lun_field node2 "$1" disk)" = failed ] && [ "$(lun_field node2 "$1" consistent)" = false ] &&
		[ "$(lun_field node2 "$1" state)" = inconsistent ]
}

touch "$T_DIR/eio-on"
# ---- the sync LUN ----------------------------------------------------------
put bads $((BAD + 4096)) 0xa1; rc=$?
diag "sync write into node2's failing range: rc $rc $(tail -n1 "$T_DIR/put.out")"
check "sync LUN: the host's write into the range node2 fails succeeds" test "$rc" = 0
check "sync LUN: node2 shows disk failed, its copy inconsistent" wait_for 10 disk_failed_on2 bads
check "sync LUN: node2's text status says disk: failed, local_io_errors counted" \
	eval 'ctl node2 status bads | grep -q "disk: failed (.*out of service" &&
		field_above node2 bads local_io_errors 0'
check "sync LUN: the local-io-error handler ran on node2" \
	wait_for 10 grep -q "^run local-io-error bads" "$T_DIR/h-node2"
ctl node2 promote bads >"$T_DIR/prom.out" 2>&1; rc=$?
diag "promote bads on node2: rc $rc: $(cat "$T_DIR/prom.out")"
check "sync LUN: promoting node2 is refused, naming the failed disk" \
	eval 'test $rc != 0 && grep -q "disk failed" "$T_DIR/prom.out"'
check "sync LUN: node1 no longer counts node2 up to date (journaling)" \
	wait_for 10 lun_state_is node1 bads journaling
check "sync LUN: node1 tracks the range (journal/dirty bytes > 0)" field_above node1 bads journal_bytes 0
check "sync LUN: node1 logged the failed request and the range marked out of sync" \
	grep -qE "lun bads: mirror request [0-9]+ \(WRITE at offset $((BAD + 4096)), length 65536\) failed on node2: .*marked out of sync" "$T_DIR/n1.log"
put bads $((BAD + 262144)) 0xa2; rc1=$?
put bads 0 0xa3; rc2=$?
check "sync LUN: further writes succeed, into the range and elsewhere" test "$rc1$rc2" = 00
check "sync LUN: node1 serves what the host wrote" \
	eval 'nbdcopy "nbd://127.0.0.1:$N1_NBD/bads" - | head -c 16M >"$T_DIR/got-bads" &&
		holds "$T_DIR/got-bads" $((BAD + 262144)) 0xa2 && holds "$T_DIR/got-bads" 0 0xa3'

# ---- the async LUN ---------------------------------------------------------
put bada $((BAD + 4096)) 0xb1; rc=$?
check "async LUN: the host's write into the range node2 fails succeeds" test "$rc" = 0
check "async LUN: node2 shows disk failed, its copy inconsistent" wait_for 10 disk_failed_on2 bada
check "async LUN: node1 no longer counts node2 up to date (journaling)" \
	wait_for 10 lun_state_is node1 bada journaling
check "async LUN: node1 tracks the range (journal/dirty bytes > 0)" field_above node1 bada journal_bytes 0
put bada $((BAD + 262144)) 0xb2; rc1=$?
put bada 0 0xb3; rc2=$?
check "async LUN: further writes succeed" test "$rc1$rc2" = 00
check "node2 logged LOCAL DISK FAILED once per LUN (crit)" \
	eval '[ "$(grep -c "crit: lun bads: LOCAL DISK FAILED" "$T_DIR/n2.log")" = 1 ] &&
		[ "$(grep -c "crit: lun bada: LOCAL DISK FAILED" "$T_DIR/n2.log")" = 1 ]'
check "node2 refuses the failed LUNs' connections with the reason, seen on node1" \
	wait_for 15 eval 'ctl node1 status bads --json | grep -q "its disk failed on node2"'

# ---- the other LUN of the pair is untouched ----------------------------------
put good $((BAD + 4096)) 0xc1; rc=$?
check "good: writes succeed and it stays up to date on both nodes" \
	eval 'test $rc = 0 && lun_state_is node1 good uptodate && lun_state_is node2 good uptodate &&
		[ "$(lun_field node2 good disk)" = ok ] && holds "$T_DIR/node2-good.img" $((BAD + 4096)) 0xc1'

# ---- durably marked: node2 killed and restarted, the fault still there -------
kill9 "$n2_pid"
EIO_PATH=node2-bad EIO_FLAG="$T_DIR/eio-on" EIO_OPS=w EIO_RANGE="$BAD:$((1 << 20))" \
	LD_PRELOAD="$top_builddir/tests/tools/.libs/eio.so" node_start node2 ||
	bail "node2 did not restart: $(cat "$T_DIR/n2.log")"
check "after kill -9, node2's copies are still inconsistent (the generation files said so)" \
	eval '[ "$(lun_field node2 bads consistent)" = false ] && [ "$(lun_field node2 bada consistent)" = false ] &&
		lun_state_is node2 bads inconsistent && lun_state_is node2 bada inconsistent &&
		! ctl node2 promote bads --dry-run >/dev/null 2>&1'
check "the disk still failing, the whole copy meets the fault: disk failed again" \
	eval 'wait_for 30 disk_failed_on2 bads && wait_for 30 disk_failed_on2 bada'

# ---- the disk replaced: bads by invalidate, bada by a restart of node2 -------
rm -f "$T_DIR/eio-on"
ctl node2 invalidate bads >"$T_DIR/inv.out" 2>&1 || diag "invalidate bads: $(cat "$T_DIR/inv.out")"
check "sync LUN: invalidate puts node2's disk back in service" \
	eval '[ "$(lun_field node2 bads disk)" = ok ] &&
		[ "$(grep -c "lun bads: the local disk is in service again" "$T_DIR/n2.log")" = 1 ]'
check "sync LUN: up to date on both nodes again" \
	eval 'wait_for 60 lun_state_is node2 bads uptodate && wait_for 20 lun_state_is node1 bads uptodate'
stop_pid "$n2_pid" || diag "node2 did not stop cleanly"
n2_lines=$(wc -l <"$T_DIR/n2.log")
node_start node2 || bail "node2 did not restart: $(cat "$T_DIR/n2.log")"
check "async LUN: a restart of node2 puts its disk back in service; its copy, invalid, is copied whole" \
	eval '[ "$(lun_field node2 bada disk)" = ok ] &&
		wait_for 15 logged_since "$n2_lines" n2.log "lun bada: this copy is inconsistent: node1 copies it whole"'
check "async LUN: up to date on both nodes again (whole copy)" \
	eval 'wait_for 60 lun_state_is node2 bada uptodate && wait_for 20 lun_state_is node1 bada uptodate'
wait_for 30 lun_state_is node2 bads uptodate || diag "bads not up to date after node2's restart"
check "sync LUN: the backing files are byte-identical" cmp "$T_DIR/node1-bads.img" "$T_DIR/node2-bads.img"
check "async LUN: the backing files are byte-identical" cmp "$T_DIR/node1-bada.img" "$T_DIR/node2-bada.img"
check "node2's copies hold the writes its disk failed and those after" \
	eval 'holds "$T_DIR/node2-bads.img" $((BAD + 4096)) 0xa1 && holds "$T_DIR/node2-bads.img" $((BAD + 262144)) 0xa2 &&
		holds "$T_DIR/node2-bada.img" $((BAD + 4096)) 0xb1 && holds "$T_DIR/node2-bada.img" 0 0xb3'
finish
