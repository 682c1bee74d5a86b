#!/bin/bash
# A failing local disk on the primary (doc/io-errors.md), two daemons on
# loopback, node1's backing failing reads and writes of [8M, 9M) through
# tests/tools/eio.c (io="buffered": no io_uring). Reads of that range
# return node2's bytes (READ/READ_REPLY) and are logged; a write there
# fails for the host (EIO), the disk is failed (status disk: failed, the
# copy inconsistent, the local-io-error handler runs), further writes
# fail with EIO while every read still returns node2's copy. Handed over
# to node2 and the disk replaced (the fault gone, `invalidate`), node1's
# copy comes back byte-identical to node2's, and node2 serves what hosts
# wrote. With a version 4 peer (no READ) a read of the range fails, and
# the log says why.
T_LOG_ALLOW='crit: lun vol0: LOCAL DISK FAILED|error: lun vol0: local write at [0-9]+ failed|error: lun vol0: mirror request [0-9]+ failed on the peer|error: lun vol0: cannot read offset [0-9]+ length 4096 from node2.s copy either \\(the peer speaks protocol version 4'
. "$top_srcdir/tests/lib.sh"
plan 22

pair_setup vol0:64M:sync:yes:node1
sed -i "s|path=\"$T_DIR/node\([12]\)-vol0.img\"|& io=\"buffered\"|" "$T_DIR/pair.xml"
cat >"$T_DIR/handler.sh" <<EOF
#!/bin/sh
echo "run \$IPMIRROR_EVENT \$IPMIRROR_LUN" >>"$T_DIR/h-\$IPMIRROR_NODE"
EOF
chmod +x "$T_DIR/handler.sh"
sed -i "s|<log level=\"info\"/>|&\n  <handlers timeout=\"5\" local-io-error=\"$T_DIR/handler.sh\"/>|" "$T_DIR/pair.xml"
BAD=$((8 << 20))
EIO_PATH=node1-vol0.img EIO_FLAG="$T_DIR/eio-on" EIO_OPS=rw EIO_RANGE="$BAD:$((1 << 20))" \
	LD_PRELOAD="$top_builddir/tests/tools/.libs/eio.so" node_start node1 ||
	bail "node1 did not start: $(cat "$T_DIR/n1.log")"
node_start node2 || bail "node2 did not start: $(cat "$T_DIR/n2.log")"
check "mirroring is up" wait_for 30 lun_state_is node2 vol0 uptodate
U1="nbd://127.0.0.1:$N1_NBD/vol0"
U2="nbd://127.0.0.1:$N2_NBD/vol0"
head -c 16M /dev/urandom >"$T_DIR/data"
timeout 60 nbdcopy "$T_DIR/data" "$U1" || bail "nbdcopy failed"

# read16 URI FILE: the LUN's first 16 MiB into FILE
read16() { timeout 60 nbdcopy "$1" - | head -c 16M >"$2"; }

touch "$T_DIR/eio-on"
read16 "$U1" "$T_DIR/got1"
check "reads through node1 return the right bytes, the failing range from node2's copy" \
	cmp "$T_DIR/got1" "$T_DIR/data"
check "the served read is logged" grep -q "lun vol0: local read at offset [0-9]* length [0-9]* failed: served from node2's copy" "$T_DIR/n1.log"
check "status: local_io_errors >= 1, remote_reads >= 1, disk ok" \
	eval '[ "$(lun_field node1 vol0 local_io_errors)" -ge 1 ] && [ "$(lun_field node1 vol0 remote_reads)" -ge 1 ] &&
		[ "$(lun_field node1 vol0 disk)" = ok ]'
check "the LUN is still up to date on node2" lun_state_is node2 vol0 uptodate

# ---- a version 4 peer: no READ, the read fails with the reason logged -----
# (the fault is off while node2 restarts: the resync reads node1's copy of
# the extents written lately, which a failing disk cannot give)
rm -f "$T_DIR/eio-on"
stop_pid "$n2_pid"
IPM_WIRE_VERSION_MAX=4 node_start node2 || bail "node2 (v4) did not start: $(cat "$T_DIR/n2.log")"
wait_for 30 lun_state_is node2 vol0 uptodate || diag "node2 (v4) not up to date"
touch "$T_DIR/eio-on"
timeout 20 nbdsh -u "$U1" -c "h.pread(4096, $BAD)" >"$T_DIR/r4.out" 2>&1; rc=$?
check "with a version 4 peer a read of the failing range fails for the host" \
	eval 'test $rc != 0 && grep -qi "input/output error" "$T_DIR/r4.out"'
check "... logged with the reason" \
	grep -q "cannot read offset $BAD length 4096 from node2's copy either (the peer speaks protocol version 4" "$T_DIR/n1.log"
rm -f "$T_DIR/eio-on"
stop_pid "$n2_pid"
node_start node2 || bail "node2 did not restart: $(cat "$T_DIR/n2.log")"
check "node2 (version 5 again) up to date" wait_for 30 lun_state_is node2 vol0 uptodate
touch "$T_DIR/eio-on"

# ---- a write error -------------------------------------------------------
head -c 65536 /dev/urandom >"$T_DIR/w"
timeout 20 nbdsh -u "$U1" -c "h.pwrite(open('$T_DIR/w', 'rb').read(), $((BAD + 4096)))" \
	>"$T_DIR/w.out" 2>&1; rc=$?
diag "write into the failing range: rc $rc: $(tail -n1 "$T_DIR/w.out")"
check "a write into the failing range fails for the host" test "$rc" != 0
check "status: disk failed, this copy inconsistent" \
	eval '[ "$(lun_field node1 vol0 disk)" = failed ] && [ "$(lun_field node1 vol0 consistent)" = false ]'
check "the text status says disk: failed" eval 'ctl node1 status | grep -q "disk: failed"'
check "logged: LOCAL DISK FAILED" grep -q "crit: lun vol0: LOCAL DISK FAILED" "$T_DIR/n1.log"
check "the local-io-error handler ran on node1" \
	wait_for 10 grep -q "^run local-io-error vol0" "$T_DIR/h-node1"
timeout 20 nbdsh -u "$U1" -c "h.pwrite(b'\\x5a' * 4096, 0)" >"$T_DIR/w2.out" 2>&1; rc=$?
check "a write elsewhere fails too (EIO: the copies do not drift apart)" \
	eval 'test $rc != 0 && grep -qi "input/output error" "$T_DIR/w2.out"'
# the failed write may have reached node2 (it was mirrored while the local
# one failed): what hosts read is node2's copy, and it is the data
# everywhere outside the failed write's range
read16 "$U1" "$T_DIR/got2"
check "reads through node1 (disk failed) return node2's copy" \
	cmp "$T_DIR/got2" <(head -c 16M "$T_DIR/node2-vol0.img")
cp "$T_DIR/data" "$T_DIR/expect"
dd if="$T_DIR/got2" of="$T_DIR/expect" bs=4096 skip=$((BAD / 4096 + 1)) seek=$((BAD / 4096 + 1)) \
	count=16 conv=notrunc status=none
check "... and the bytes hosts wrote (the failed write's range aside)" cmp "$T_DIR/got2" "$T_DIR/expect"

# ---- hand over, replace the disk, invalidate -----------------------------
ctl node1 demote vol0 >/dev/null || diag "demote on node1 failed"
rm -f "$T_DIR/eio-on"    # the disk is replaced
wait_for 20 ctl node2 promote vol0 >/dev/null
check "handed over: node2 primary" eval '[ "$(lun_field node2 vol0 role)" = primary ]'
check "node1's copy is not promotable" eval '! ctl node1 promote vol0 --dry-run >/dev/null 2>&1'
wait_for 20 ctl node1 invalidate vol0 >"$T_DIR/inv.out" 2>&1
diag "invalidate on node1: $(cat "$T_DIR/inv.out")"
check "invalidate on node1 puts the disk back in service" \
	eval '[ "$(lun_field node1 vol0 disk)" = ok ] && grep -q "the local disk is in service again" "$T_DIR/n1.log"'
check "node1 uptodate again, its copy byte-identical to node2's" \
	eval 'wait_for 60 lun_state_is node1 vol0 uptodate && cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"'
read16 "$U2" "$T_DIR/got3"
check "node2 (now primary) serves what hosts wrote" cmp "$T_DIR/got3" "$T_DIR/expect"
finish
