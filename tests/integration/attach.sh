#!/bin/bash
# A LUN as a local block device, outside a cluster: `ipmirrorctl attach|
# detach LUN` and the agent ocf:ipmirror:attach (both run agent/ipmirror-
# attach; nbdfuse + a loop device here, no kernel nbd), on one daemon
# serving NBD on a Unix socket named by its config. The device
# (DEVICE_DIR/vol0, a link to the loop device) reads and writes the LUN's
# bytes; ext4 on it mounts; detach is refused while it is mounted and leaves
# nothing behind after (no link, loop device, FUSE mount, nbdfuse or state);
# attach is refused for an unknown LUN. ocf-tester runs the agent through
# its actions (the one complaint expected: OCF 1.1 meta-data against the
# 1.0 DTD). Then the crashes: nbdfuse killed -9, the loop device detached
# under it, the daemon killed -9: each time monitor returns 1 (a broken
# attachment, not 0 or 7), stop succeeds and leaves nothing, and monitor
# then returns 7.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
for c in nbdfuse losetup mkfs.ext4 xmllint ocf-tester; do
	command -v "$c" >/dev/null 2>&1 || { echo "1..0 # SKIP $c not installed (tests/install-deps.sh)"; exit 0; }
done
[ -e /dev/fuse ] || { echo "1..0 # SKIP no /dev/fuse"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (loop devices, mounts)"; exit 0; }
plan 27

HELPER="$top_srcdir/agent/ipmirror-attach"
AGENT="$top_srcdir/ocf/attach"
SOCK="ipm-$$-solo"
DEV="$T_DIR/dev"           # the stable names: DEV/vol0 (the test's, not /dev/ipmirror)
RUN="$T_DIR/run"           # the attachments' state
FUSEFILE="$RUN/vol0/fuse/nbd"
MNT="$T_DIR/mnt"
mkdir -p "$MNT"
export DEV MNT T_DIR SOCK IPMIRRORCTL
export IPMIRROR_ATTACH_HELPER="$HELPER" IPMIRROR_CONFIG="$T_DIR/solo.xml"
export IPMIRROR_DEVICE_DIR="$DEV" IPMIRROR_STATE_DIR="$RUN"

# whatever a failed run left: the mount, then the helper's own cleanup, then
# by hand (loop devices on our FUSE file, the FUSE mount)
cleanup() {
	local l
	mountpoint -q "$MNT" && { timeout 20 umount "$MNT" || umount -l "$MNT"; }
	timeout 60 "$HELPER" detach vol0 >/dev/null 2>&1
	# loop devices left on our FUSE file, or on a lazily unmounted one that
	# this test saw attached (a failed detach): not others' leftovers
	for l in $(comm -13 <(echo "$LOOPS0") <(fuse_loops)); do
		case " $OURS " in *" $l "*) losetup -d "$l" ;; *) [ "$(losetup -n -O BACK-FILE "$l" | sed 's/ *$//')" = "$FUSEFILE" ] && losetup -d "$l" ;; esac
	done
	grep -q " $RUN/vol0/fuse " /proc/mounts && umount -l "$RUN/vol0/fuse"
	t_cleanup
}
trap cleanup EXIT

PORT=$(free_port solo)
solo_setup "$PORT" 64M "unix=\"$T_DIR/nbd.sock\""
start_daemon solo --config "$T_DIR/solo.xml" --node solo --socket "$SOCK"
wait_for 10 test -S "$T_DIR/nbd.sock" || bail "the daemon did not start: $(cat "$T_DIR/solo.log")"
c() { timeout -k 5 60 "$IPMIRRORCTL" --socket "$SOCK" "$@"; }
# agent ACTION: the OCF agent as Pacemaker runs it
agent() {
	timeout -k 5 60 env OCF_ROOT=/usr/lib/ocf OCF_RESKEY_lun=vol0 OCF_RESKEY_config="$T_DIR/solo.xml" \
		OCF_RESKEY_socket="$SOCK" OCF_RESKEY_ipmirrorctl="$IPMIRRORCTL" OCF_RESKEY_helper="$HELPER" \
		OCF_RESKEY_device_dir="$DEV" OCF_RESKEY_state_dir="$RUN" "$AGENT" "$1" >>"$T_DIR/agent.out" 2>&1
}
mon_is() { agent monitor; [ $? = "$1" ]; }
OURS=""   # the loop devices this test saw attached
loop() { readlink "$DEV/vol0"; }
# loop devices on a FUSE file: ours while the FUSE mount is there, and once
# it was unmounted lazily under a loop device the kernel names the file /nbd
# (those of other tests, before this one started, are not ours)
fuse_loops() { losetup -n -O NAME,BACK-FILE | awk -v f="$FUSEFILE" '$2 == f || $2 == "/nbd" { print $1 }' | sort; }
LOOPS0=$(fuse_loops)
# nothing left: no link, no state, no new loop device on a FUSE file, no
# FUSE mount, no nbdfuse of ours
nothing_left() {
	local new
	new=$(comm -13 <(echo "$LOOPS0") <(fuse_loops) | tr '\n' ' ')
	test ! -e "$DEV/vol0" && test ! -L "$DEV/vol0" && test ! -e "$RUN/vol0" && [ -z "${new// }" ] &&
		! grep -q " $RUN/vol0/fuse " /proc/mounts && ! pgrep -f "nbdfuse.*$RUN/vol0/fuse" >/dev/null && return 0
	diag "loop devices left on a FUSE file: ${new:-none}"
	{ ls -lR "$DEV" "$RUN"; losetup -l; grep fuse /proc/mounts; pgrep -af nbdfuse; } 2>&1 | sed 's/^/# /'
	return 1
}

# ---- by hand: ipmirrorctl attach|detach -----------------------------------------
c attach vol0 >"$T_DIR/attach.out" 2>&1
RC=$?
OURS="$OURS $(loop)"
diag "$(cat "$T_DIR/attach.out")"
check "ipmirrorctl attach vol0: $DEV/vol0 -> $(loop), a block device (exit $RC)" \
	eval 'test $RC = 0 && case "$(loop)" in /dev/loop*) test -b "$DEV/vol0" ;; *) false ;; esac'
check "the loop device reads $FUSEFILE, made by nbdfuse on the daemon's NBD socket" \
	eval 'losetup -n -O BACK-FILE "$(loop)" | grep -qF "$FUSEFILE" && grep -q "$T_DIR/nbd.sock" "$RUN/vol0.nbdfuse.log" 2>/dev/null ||
		pgrep -af nbdfuse | grep -q "socket=$T_DIR/nbd.sock"'
head -c 1M /dev/urandom >"$T_DIR/pattern"
dd if="$T_DIR/pattern" of="$DEV/vol0" bs=1M seek=3 oflag=direct conv=fsync,notrunc status=none
check "1 MiB written through $DEV/vol0 at 3 MiB is in the LUN's backing file there" \
	cmp -n 1048576 "$T_DIR/pattern" <(dd if="$T_DIR/vol0.img" bs=1M skip=3 count=1 status=none)
dd if="$T_DIR/pattern" of="$T_DIR/vol0.img" bs=1M seek=5 conv=fsync,notrunc status=none
check "bytes of the backing file read back through $DEV/vol0 (O_DIRECT)" \
	cmp -n 1048576 "$T_DIR/pattern" <(dd if="$DEV/vol0" bs=1M skip=5 count=1 iflag=direct status=none)
c attach vol0 >"$T_DIR/again.out" 2>&1
check "attach again: nothing to do, the same device ($(cat "$T_DIR/again.out"))" \
	eval 'grep -q "already attached" "$T_DIR/again.out" && test "$(losetup -n -O BACK-FILE | grep -cF "$FUSEFILE")" = 1'
# The mount lives in a mount namespace of its own, with the detach that
# must see it: a namespace another process makes on this shared host (ip
# netns exec, unshare) while it is mounted would keep a copy of the mount,
# and with it the loop device, open after our umount.
# shellcheck disable=SC2016 # expanded by the inner shell
timeout -k 5 120 unshare --mount --propagation private bash -c '
	timeout 60 mkfs.ext4 -q -F "$DEV/vol0" && timeout 30 mount -t ext4 "$DEV/vol0" "$MNT" &&
		echo hello >"$MNT/f" && sync -f "$MNT/f" || exit 1
	timeout -k 5 60 "$IPMIRRORCTL" --socket "$SOCK" detach vol0 >"$T_DIR/busy.out" 2>&1
	echo $? >"$T_DIR/busy.rc"
	echo 3 >/proc/sys/vm/drop_caches
	test "$(cat "$MNT/f")" = hello && test -b "$DEV/vol0" && echo yes >"$T_DIR/still.out"
	timeout 30 umount "$MNT"' >"$T_DIR/ns.out" 2>&1
RC=$?
check "ext4 made on $DEV/vol0 and mounted (in a mount namespace of the test's own; exit $RC)" test $RC = 0
RC=$(cat "$T_DIR/busy.rc" 2>/dev/null)
check "ipmirrorctl detach refused while mounted (exit $RC): $(cat "$T_DIR/busy.out")" \
	eval 'test "$RC" = 1 && grep -q "in use (mounted on $MNT)" "$T_DIR/busy.out"'
check "... and the file system is still there and readable" test -s "$T_DIR/still.out"
c detach vol0 >"$T_DIR/detach.out" 2>&1
RC=$?
check "ipmirrorctl detach vol0 after the unmount (exit $RC): $(cat "$T_DIR/detach.out")" test $RC = 0
check "nothing left: no link, loop device, FUSE mount, nbdfuse or state" nothing_left
c detach vol0 >"$T_DIR/detach2.out" 2>&1
RC=$?
check "detach again: nothing to do (exit $RC)" test $RC = 0
c attach nosuch >"$T_DIR/nosuch.out" 2>&1
RC=$?
check "attach of an unknown LUN refused (exit $RC): $(cat "$T_DIR/nosuch.out")" \
	eval 'test $RC = 1 && grep -q nosuch "$T_DIR/nosuch.out" && nothing_left'
c attach >/dev/null 2>&1
RC=$?
check "ipmirrorctl attach without a LUN: usage error (exit $RC)" test $RC = 2

# ---- the agent -----------------------------------------------------------------------
timeout 120 ocf-tester -n att -o lun=vol0 -o config="$T_DIR/solo.xml" -o socket="$SOCK" \
	-o ipmirrorctl="$IPMIRRORCTL" -o helper="$HELPER" -o device_dir="$DEV" -o state_dir="$RUN" \
	"$AGENT" >"$T_DIR/tester.out" 2>&1
grep -E '^\* ' "$T_DIR/tester.out" | sed 's/^/# /'
check "ocf-tester: the only error is the OCF 1.0 DTD one (1.1 meta-data)" \
	eval 'test "$(grep -c "^\* rc=" "$T_DIR/tester.out")" = 1 && grep -q "^\* rc=.*ra-api-1.dtd" "$T_DIR/tester.out" &&
		grep -q "failed 1 tests" "$T_DIR/tester.out"'
check "after ocf-tester, nothing left" nothing_left
check "probe: monitor returns 7 (not attached)" mon_is 7
agent validate-all
RC=$?
check "validate-all returns 0 (exit $RC)" test $RC = 0
OCF_RESKEY_method=bogus agent validate-all
RC=$?
check "validate-all with method=bogus returns 6, not configured (exit $RC)" test $RC = 6

if [ ! -d /sys/module/nbd ]; then
	OCF_RESKEY_method=kernel agent start
	RC=$?
	check "method=kernel without the nbd module: start fails (exit $RC), saying so, and leaves nothing" \
		eval 'test $RC = 1 && grep -q "no kernel nbd here" "$T_DIR/agent.out" && nothing_left'
else
	ok "# SKIP the kernel has nbd: the refusal without it is not shown"
fi

# ---- crashes under the agent ------------------------------------------------------------
crash() { # WHAT: start, break it with WHAT, monitor 1, stop 0, nothing left, monitor 7
	local m s
	agent start || { not_ok "start before $1"; return; }
	OURS="$OURS $(readlink "$DEV/vol0")"
	mon_is 0 || { not_ok "monitor 0 before $1"; return; }
	eval "$2"
	agent monitor; m=$?
	agent stop; s=$?
	tail -n 2 "$T_DIR/agent.out" | sed 's/^/# /'
	check "$1: monitor returns 1 (it was $m), stop returns 0 (it was $s)" test "$m/$s" = 1/0
	check "$1: stop left nothing behind, monitor then returns 7" eval 'nothing_left && mon_is 7'
}
crash "nbdfuse killed -9" 'kill -9 "$(cat "$RUN/vol0/nbdfuse.pid")"; sleep 0.5'
crash "loop device detached under the agent" 'losetup -d "$(loop)"'
crash "ipmirrord killed -9" 'kill9 "$solo_pid"; sleep 0.5'
agent start
RC=$?
check "with no daemon, start fails with a reason naming it (exit $RC)" \
	eval 'test $RC = 1 && grep -q "cannot reach ipmirrord" "$T_DIR/agent.out" && nothing_left'
finish
