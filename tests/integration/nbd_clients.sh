#!/bin/bash
# The NBD server against real clients (libnbd's nbdinfo/nbdsh/nbdcopy, qemu-io,
# fio): export listing, data integrity, QD32 under fio --verify, the Unix
# socket, two clients at once, FLUSH/TRIM/WRITE_ZEROES/FUA, unknown exports,
# and a clean stop with a client connected. One node, one unmirrored LUN.
. "$top_srcdir/tests/lib.sh"
plan 21

PORT=$(free_port nbd_clients)
SOCK="$T_DIR/nbd.sock"
MiB=$((1024 * 1024))
solo_setup "$PORT" 256M "unix=\"$SOCK\""
UNIX_URI="nbd+unix:///vol0?socket=$SOCK"

start_daemon d --config "$T_DIR/solo.xml" --node solo --socket "ipm-test-$$"
wait_for 10 tcp_open 127.0.0.1 "$PORT" || bail "daemon did not listen: $(cat "$T_DIR/d.log")"
ok "daemon listens on 127.0.0.1:$PORT"
check "unix socket exists" test -S "$SOCK"

# ---- listing -----------------------------------------------------------
nbdinfo --list --json "nbd://127.0.0.1:$PORT" >"$T_DIR/list.json" 2>"$T_DIR/list.err"
check "nbdinfo --list shows vol0 with 256 MiB" \
	test "$(jq '.exports[] | select(."export-name" == "vol0") | ."export-size"' \
		"$T_DIR/list.json")" = $((256 * MiB))
check "export flags: flush, fua, trim, zero, multi-conn" \
	test "$(jq -c '.exports[0] | [.can_flush, .can_fua, .can_trim, .can_zero, .can_multi_conn]' \
		"$T_DIR/list.json")" = '[true,true,true,true,true]'

# ---- qemu-io patterns (qemu-io exits 0 on mismatch: grep) --------------
qemu-io -f raw "$URI" -c 'write -P 0xab 0 1M' -c 'write -P 0x5c 3M 512k' \
	-c 'read -P 0xab 0 1M' -c 'read -P 0x5c 3M 512k' -c 'read -P 0 1M 2M' \
	>"$T_DIR/qemu-io.out" 2>&1
check "qemu-io: patterns read back" \
	test "$(grep -c '^read ' "$T_DIR/qemu-io.out")" = 3 -a \
	"$(grep -c 'Pattern verification failed' "$T_DIR/qemu-io.out")" = 0
# a deliberate mismatch proves the grep above can fail
qemu-io -f raw "$URI" -c 'read -P 0x11 0 4k' >"$T_DIR/qemu-io-bad.out" 2>&1
check "qemu-io: a wrong pattern is reported" grep -q 'Pattern verification failed' "$T_DIR/qemu-io-bad.out"

# ---- nbdcopy 64 MiB in and out -----------------------------------------
head -c $((64 * MiB)) /dev/urandom >"$T_DIR/src"
nbdcopy "$T_DIR/src" "$URI" 2>"$T_DIR/copy-in.err"
check "nbdcopy: 64 MiB in" test $? = 0
nbdcopy "$URI" "$T_DIR/out" 2>"$T_DIR/copy-out.err"
check "nbdcopy: read back byte-identical" cmp -n $((64 * MiB)) "$T_DIR/src" "$T_DIR/out"
check "nbdcopy: backing file holds the same bytes" cmp -n $((64 * MiB)) "$T_DIR/src" "$IMG"
rm -f "$T_DIR/out"

# ---- fio QD32 randwrite with crc32c verify ------------------------------
fio --name=qd32 --ioengine=nbd --uri="$URI" --rw=randwrite --bs=4k --iodepth=32 \
	--size=64M --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 --runtime=60 \
	--output-format=json --output="$T_DIR/qd32.json" >"$T_DIR/qd32.out" 2>&1
check "fio QD32 randwrite + verify: exit 0, zero errors" \
	test $? = 0 -a "$(jq '[.jobs[].error] | add' "$T_DIR/qd32.json")" = 0
check "fio QD32: requests really ran 32 deep (>= 50% of the time)" \
	test "$(jq '.jobs[0].iodepth_level["32"] >= 50' "$T_DIR/qd32.json")" = true
diag "QD32 randwrite: $(jq '.jobs[0].write.iops | floor' "$T_DIR/qd32.json") IOPS"

# ---- Unix socket -------------------------------------------------------
nbdsh -u "$UNIX_URI" -c "h.pwrite(b'\x42' * 65536, 100 * $MiB)" 2>"$T_DIR/unix.err"
check "unix socket: write, then read back over TCP" \
	nbdsh -u "$URI" -c "assert h.pread(65536, 100 * $MiB) == b'\x42' * 65536"

# ---- two clients at once ------------------------------------------------
fio_job() { # name offset
	fio --name="$1" --ioengine=nbd --uri="$URI" --rw=randwrite --bs=4k --iodepth=16 \
		--offset="$2" --size=32M --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
		--runtime=60 --output-format=json --output="$T_DIR/$1.json" >"$T_DIR/$1.out" 2>&1 &&
		[ "$(jq '[.jobs[].error] | add' "$T_DIR/$1.json")" = 0 ]
}
fio_job two_a 128M & pa=$!
fio_job two_b 192M & pb=$!
wait $pa; ra=$?; wait $pb; rb=$?
check "two clients at once: both fio verify runs clean" test $ra = 0 -a $rb = 0

# ---- FLUSH / TRIM / WRITE_ZEROES / FUA ----------------------------------
OFF=$((200 * MiB))
nbdsh -u "$URI" >"$T_DIR/cmds.out" 2>&1 -c "
import nbd
off = $OFF
h.pwrite(b'\x55' * 262144, off, nbd.CMD_FLAG_FUA)
h.flush()
h.zero(65536, off)
h.zero(65536, off + 131072, nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FUA)
d = h.pread(262144, off)
assert d[:65536] == bytes(65536), 'zeroed range not zero'
assert d[65536:131072] == b'\x55' * 65536, 'data next to the zeroed range changed'
assert d[131072:196608] == bytes(65536), 'NO_HOLE zeroed range not zero'
assert d[196608:] == b'\x55' * 65536, 'tail changed'
h.trim(65536, off + 65536)
h.flush()
print('cmds ok')
"
check "nbdsh: FUA write, FLUSH, WRITE_ZEROES (+NO_HOLE), TRIM" grep -q 'cmds ok' "$T_DIR/cmds.out"
check "write-zeroes reached the backing file" \
	cmp -s <(dd if="$IMG" bs=64k skip=$((OFF / 65536)) count=1 2>/dev/null) <(head -c 65536 /dev/zero)
check "data beside the zeroed range is in the backing file" \
	cmp -s <(dd if="$IMG" bs=64k skip=$((OFF / 65536 + 3)) count=1 2>/dev/null) \
	<(head -c 65536 /dev/zero | tr '\0' '\125')

# ---- unknown export ------------------------------------------------------
# libnbd prints the server's message text only in its debug output
LIBNBD_DEBUG=1 nbdinfo "nbd://127.0.0.1:$PORT/nosuch" >"$T_DIR/unknown.out" 2>&1
rc=$?
check "unknown export refused with a message naming it" \
	test $rc != 0 -a "$(grep -c 'unknown export "nosuch"' "$T_DIR/unknown.out")" -ge 1
check "the refusal is logged" grep -q 'export "nosuch" refused' "$T_DIR/d.log"

# ---- clean stop with an idle client connected -------------------------------
nbdsh -u "$URI" -c 'import time; time.sleep(30)' >/dev/null 2>&1 &
idle=$!
sleep 1
kill "$d_pid"
wait_while 10 kill -0 "$d_pid"
stopped=$?
wait "$d_pid"
rc=$?
check "SIGTERM with a client connected: the daemon exits within 10 s with status 0" \
	test $stopped = 0 -a $rc = 0
T_PIDS=$(echo "$T_PIDS" | sed "s/\b$d_pid\b//")
kill "$idle" 2>/dev/null
wait "$idle" 2>/dev/null
check "unix socket removed on exit" test ! -e "$SOCK"
finish
