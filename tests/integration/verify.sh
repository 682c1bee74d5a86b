#!/bin/bash
# ipmirrorctl verify (doc/verify.md) on two daemons on loopback: bytes
# flipped behind the daemons' back in node2's backing file, then in
# node1's, are reported as exactly the 1 MiB blocks that hold them (the log
# lines and out_of_sync_bytes), --repair makes the files byte-identical,
# equal copies report 0, also while fio writes (a write in flight is never
# a difference); the resync rate paces it; refused on the mirror, on an
# unmirrored LUN, while one runs, with the peer gone and with a peer that
# speaks protocol version 4, saying why. An async LUN under load reports 0
# too.
. "$top_srcdir/tests/lib.sh"
plan 27

M=1048576
# 100M at 25M/s: a verify takes 4 s, long enough to overlap the load below
PAIR_RESYNC_RATE=25M pair_local vol0:100M:sync:yes:node1 vol1:16M:sync:no:node1 \
	vol2:64M:async:yes:node1
check "mirroring is up" wait_for 30 lun_state_is node2 vol0 uptodate
head -c 48M /dev/urandom >"$T_DIR/data"
nbdcopy "$T_DIR/data" "nbd://127.0.0.1:$N1_NBD/vol0" || bail "nbdcopy failed"

# flip FILE OFFSET COUNT: invert COUNT bytes (every bit) behind the daemons
flip() {
	python3 - "$@" <<'EOF'
import sys
path, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:
    f.seek(off); b = f.read(n); f.seek(off)
    f.write(bytes(x ^ 0xFF for x in b))
EOF
}

verify_idle() { [ "$(lun_field node1 "${1:-vol0}" verify.running)" = false ]; }
# run_verify [--repair]: start a verify on node1, wait until it ends; the
# ranges it logged ("OFFSET:LENGTH ...") in $ranges, its out_of_sync_bytes in $oos
run_verify() {
	local from out
	from=$(wc -l <"$T_DIR/n1.log")
	out=$(ctl node1 verify vol0 "$@" 2>&1) || { diag "verify $*: $out"; return 1; }
	wait_for 60 verify_idle || return 1
	ranges=$(tail -n +"$((from + 1))" "$T_DIR/n1.log" |
		sed -n 's/.*lun vol0: verify: out of sync with node2: offset \([0-9]*\) length \([0-9]*\).*/\1:\2/p' |
		tr '\n' ' ')
	ranges=${ranges% }
	oos=$(lun_field node1 vol0 verify.out_of_sync_bytes)
	diag "verify $*: ranges [$ranges] out_of_sync_bytes $oos"
	[ "$(lun_field node1 vol0 verify.done_bytes)" = "$(lun_field node1 vol0 verify.total_bytes)" ]
}

check "verify of two equal copies reports 0" \
	eval 'run_verify && [ "$oos" = 0 ] && [ -z "$ranges" ] && cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"'

out=$(ctl node2 verify vol0 2>&1); rc=$?
diag "verify on node2: $out"
check "verify on the mirror refused, naming the primary" \
	eval 'test $rc = 1 && grep -q "primary, node1" <<<"$out"'
out=$(ctl node1 verify vol1 2>&1); rc=$?
diag "verify of vol1: $out"
check "verify of an unmirrored LUN refused" eval 'test $rc = 1 && grep -q "not mirrored" <<<"$out"'
out=$(ctl node1 status vol0 --repair 2>&1); rc=$?
check "--repair belongs to verify (usage error)" eval 'test $rc = 2 && grep -q "belongs to verify" <<<"$out"'

# node2's copy: one byte in block 5, 1000 bytes across blocks 20 and 21,
# a page in block 60 (never written: zeros there), the LUN's last byte
flip "$T_DIR/node2-vol0.img" $((5 * M + 123)) 1
flip "$T_DIR/node2-vol0.img" $((20 * M + M - 500)) 1000
flip "$T_DIR/node2-vol0.img" $((60 * M)) 4096
flip "$T_DIR/node2-vol0.img" $((100 * M - 1)) 1
want="$((5 * M)):$M $((20 * M)):$((2 * M)) $((60 * M)):$M $((99 * M)):$M"
check "verify reports exactly the blocks flipped on node2" \
	eval 'run_verify && [ "$ranges" = "$want" ] && [ "$oos" = $((5 * M)) ]'
check "verify alone changes neither copy; the blocks wait for a resync" \
	eval '! cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img" &&
		[ "$(lun_field node1 vol0 journal_bytes)" -ge $((5 * M)) ]'
check "verify --repair reports them again and copies them from node1" \
	eval 'run_verify --repair && [ "$ranges" = "$want" ] && [ "$oos" = $((5 * M)) ]'
check "the backing files are byte-identical after the repair" \
	cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
check "a verify after the repair reports 0" eval 'run_verify && [ "$oos" = 0 ]'

# node1's copy: 16 bytes in block 40; 10 bytes across blocks 47 and 48 (two
# ranges of one verify request each: one line, merged)
flip "$T_DIR/node1-vol0.img" $((40 * M + 7)) 16
flip "$T_DIR/node1-vol0.img" $((48 * M - 5)) 10
want="$((40 * M)):$M $((47 * M)):$((2 * M))"
check "verify --repair reports exactly the blocks flipped on node1" \
	eval 'run_verify --repair && [ "$ranges" = "$want" ] && [ "$oos" = $((3 * M)) ]'
check "node2 holds node1's bytes now: the files are byte-identical" \
	cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"

# racing writes: fio writes [0, 32M) all through the verify
load_start 32M 10
field_grows node1 vol0 mirrored_bytes || diag "the load did not start"
t0=$(date +%s.%N)
from=$(wc -l <"$T_DIR/n1.log")
out=$(ctl node1 verify vol0 2>&1); rc=$?
diag "verify under load: $out"
check "verify started while fio writes" test "$rc" = 0
out=$(ctl node1 verify vol0 2>&1); rc=$?
diag "a second verify: $out"
check "a second verify refused while one runs" eval 'test $rc = 1 && grep -q "runs already" <<<"$out"'
check "verify under load ends" wait_for 60 verify_idle
t1=$(date +%s.%N)
diag "verify under load took $(echo "$t1 - $t0" | bc) s; log: $(tail -n +"$((from + 1))" "$T_DIR/n1.log" | grep 'verify' | tr '\n' '|')"
check "verify under load reports 0 (racing writes are no difference)" \
	eval '[ "$(lun_field node1 vol0 verify.out_of_sync_bytes)" = 0 ] &&
		[ "$(lun_field node1 vol0 verify.done_bytes)" = $((100 * M)) ]'
check "the resync rate paces it (100M at 25M/s: 3.5 s or more)" \
	eval '[ "$(echo "$t1 - $t0 >= 3.5" | bc)" = 1 ]'
wait "$fio_pid"; rc=$?
check "fio randwrite --verify during the verify: no error" test "$rc" = 0
check "the files are byte-identical after the load" \
	wait_for 10 cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"

# the same on an async LUN: a host write completes before the mirror has it
FIO_NODE=node1 fio_verify "nbd://127.0.0.1:$N1_NBD/vol2" load2 --size=32M --time_based \
	--runtime=8 &
fio2=$!
field_grows node1 vol2 mirrored_bytes || diag "the load on vol2 did not start"
out=$(ctl node1 verify vol2 2>&1) || diag "verify vol2: $out"
check "verify of async vol2 under load reports 0" \
	eval 'wait_for 30 verify_idle vol2 && [ "$(lun_field node1 vol2 verify.out_of_sync_bytes)" = 0 ] &&
		[ "$(lun_field node1 vol2 verify.done_bytes)" = $((64 * M)) ]'
wait "$fio2"; rc=$?
check "fio on vol2 during its verify: no error, and the files end byte-identical" \
	eval 'test $rc = 0 && wait_for 10 cmp -s "$T_DIR/node1-vol2.img" "$T_DIR/node2-vol2.img"'

# node2 freezes in the middle of a verify (SIGSTOP: a VERIFY it never
# answers is in flight when node1 declares it gone): the verify ends there,
# reports nothing, and nothing is journaled for it (no request to replay)
ctl node1 verify vol0 >/dev/null || diag "verify did not start"
sleep 1.5
kill -STOP "$n2_pid"
check "a verify stops when node2 goes, having reported nothing" \
	eval 'wait_for 15 verify_idle && grep -q "lun vol0: verify stopped after" "$T_DIR/n1.log" &&
		[ "$(lun_field node1 vol0 verify.done_bytes)" -lt $((100 * M)) ] &&
		[ "$(lun_field node1 vol0 verify.out_of_sync_bytes)" = 0 ]'
check "nothing journaled for it on node1" \
	eval '! lun_state_is node1 vol0 uptodate && [ "$(lun_field node1 vol0 journal_records)" = 0 ]'
kill -CONT "$n2_pid"
wait_for 30 lun_state_is node2 vol0 uptodate || diag "node2 not back: $(lun_field node2 vol0 state)"
stop_pid "$n2_pid"
# once node1 knows (its reader sees the close, its link monitor goes down)
wait_for 15 lun_state_is node1 vol0 journaling || diag "node1 still $(lun_field node1 vol0 state)"
out=$(ctl node1 verify vol0 2>&1); rc=$?
diag "verify with node2 stopped: $out"
check "verify refused while the peer is gone" eval 'test $rc = 1 && grep -q "not connected" <<<"$out"'
check "node1 still serves vol0" \
	eval 'nbdsh -u "nbd://127.0.0.1:$N1_NBD/vol0" -c "h.pread(4096, 0)"'
# node2 as the previous release (version 4 alone): the pair speaks 4
IPM_WIRE_VERSION_MAX=4 node_start node2 || bail "node2 did not restart: $(tail "$T_DIR/n2.log")"
wait_for 30 lun_state_is node2 vol0 uptodate || diag "node2 not up to date: $(lun_field node2 vol0 state)"
out=$(ctl node1 verify vol0 2>&1); rc=$?
diag "verify with a version 4 peer: $out"
check "verify refused while the pair speaks version 4, saying so" \
	eval 'test $rc = 1 && grep -q "speaks protocol version 4; a verify needs version 5" <<<"$out"'
finish
