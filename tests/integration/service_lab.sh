#!/bin/bash
# A service stack that fails over, on the Pacemaker lab (tests/lab): the CIB
# of cib-examples/lun-with-filesystem.xml as shipped (only its paths made the
# lab's: config, admin socket, binaries, mount point, the service's files):
# the promotable LUN vol0, then ocf:ipmirror:attach (/dev/ipmirror/vol0,
# nbdfuse + a loop device here), ocf:heartbeat:Filesystem (ext4) and the
# SQLite service cib-examples/sqlite-writer.py under ocf:heartbeat:anything
# (WAL, synchronous=FULL, one row per transaction, each committed row id
# logged outside the LUN). The file system is made as an admin would:
# `ipmirrorctl attach vol0`, mkfs.ext4, `ipmirrorctl detach vol0` on the
# Promoted node, then the services are enabled.
#  (a) a clean move (`pcs resource move vol0-clone --promoted`): the stack
#      stops on P (nothing attached is left there: no device, no loop, no
#      FUSE mount, no nbdfuse) and comes up on Q, which resumes after the
#      last committed row;
#  (b) the Promoted node's init killed -9 under the database's load: the
#      stack comes up on the survivor, ext4 mounts after replaying its
#      journal, the database passes PRAGMA integrity_check and holds every
#      committed row; e2fsck -fn is clean once the services are stopped.
#      Prints the seconds from the kill to the service's first commit on
#      the survivor;
#  (c) (with (a), before (b)) nbdfuse killed -9 under the running stack:
#      the attach's monitor fails, Pacemaker's recovery stops the stack
#      (the attach's stop cleans up the dead attachment) and starts it again
#      on the same node, the database holds every committed row.
# SERVICE_MOVE=0 skips (a) (service_lab_fast.sh: (b) with a 1 s corosync
# token, IPM_LAB_TOKEN=1000). SERVICE_SYNC sets the service's synchronous
# pragma (OFF shows the test failing). T_KEEP=1 keeps $T_DIR.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

: "${LAB_TAG:=ipmsv}" "${SERVICE_MOVE:=1}" "${SERVICE_SYNC:=FULL}"
for c in nbdfuse losetup mkfs.ext4 e2fsck xmllint python3; do
	command -v "$c" >/dev/null 2>&1 || { echo "1..0 # SKIP $c not installed (tests/install-deps.sh)"; exit 0; }
done
[ -e /dev/fuse ] || { echo "1..0 # SKIP no /dev/fuse"; exit 0; }
LAB_NBD_UNIX=/run/ipmirror/nbd.sock LUN_SIZE=64M
. "$top_srcdir/tests/lab/cluster.sh"
EXAMPLE="$top_srcdir/cib-examples/lun-with-filesystem.xml"
HELPER="$top_srcdir/agent/ipmirror-attach"
WRITER="$top_srcdir/cib-examples/sqlite-writer.py"
MNT="$T_DIR/srv/vol0" ROWS="$T_DIR/rows.log"
FUSEFILE=/run/ipmirror/attach/vol0/fuse/nbd   # inside a node

if [ "$SERVICE_MOVE" = 1 ]; then plan 33; else plan 21; fi
cluster_env
cluster_config
# loop devices on an attachment's FUSE file (see nothing_attached), those
# of other tests before this one
fuse_loops() { losetup -n -O NAME,BACK-FILE | awk -v f="$FUSEFILE" '$2 == f || $2 == "/nbd" { print $1 }' | sort; }
LOOPS0=$(fuse_loops)
# the loop devices the nodes used: a killed node leaves its loop device
# attached to its dead FUSE file in the host's kernel; detach those at exit
LOOPS=""
loops_cleanup() {
	local l
	# a killed node's FUSE mount went with its mount namespace: the kernel
	# then names the file /nbd
	for l in $LOOPS; do
		case "$(losetup -n -O BACK-FILE "$l" 2>/dev/null | sed 's/ *$//')" in
		"$FUSEFILE" | /nbd) losetup -d "$l" ;;
		esac
	done
}
trap '"$LAB" down >/dev/null 2>&1; loops_cleanup; t_cleanup' EXIT
mkdir -p "$MNT"
cluster_lab_up
# ocf:heartbeat:anything starts the service through `su -`: a fresh node's
# login shell, not the host's dotfiles (a developer's pyenv init cost each
# start 0.3-0.5 s)
skel_dotfiles() {
	local n f
	for n in node1 node2; do
		for f in .bashrc .profile; do
			lab exec $n sh -c "[ ! -e /root/$f ] || cmp -s /root/$f /etc/skel/$f ||
				{ [ ! -e /etc/skel/$f ] && [ ! -s /root/$f ]; }" || return 1
		done
	done
}
check "inside both nodes root's .bashrc and .profile are /etc/skel's" skel_dotfiles

# ---- the example's CIB, paths made the lab's ----------------------------------
t0=$SECONDS
/usr/bin/python3 - "$EXAMPLE" "$T_DIR/example.xml" <<EOF
import sys, xml.etree.ElementTree as ET
tree = ET.parse(sys.argv[1])
root = tree.getroot()
lab = {
    "vol0": {"config": "$CFG", "socket": "$LAB_TAG", "ipmirrord": "$WRAP", "ipmirrorctl": "$IPMIRRORCTL"},
    "vol0-attach": {"config": "$CFG", "socket": "$LAB_TAG", "ipmirrorctl": "$IPMIRRORCTL", "helper": "$HELPER"},
    "vol0-fs": {"directory": "$MNT"},
    "vol0-db": {"binfile": "$WRITER",
                "cmdline_options": "run $MNT/app.db $ROWS --interval 0.02 --synchronous $SERVICE_SYNC",
                "logfile": "$T_DIR/writer.log"},
}
for p in root.iter("primitive"):
    ia = p.find("instance_attributes")
    for name, value in lab.pop(p.get("id"), {}).items():
        nv = [n for n in ia.findall("nvpair") if n.get("name") == name]
        if nv:
            nv[0].set("value", value)
        else:
            ET.SubElement(ia, "nvpair", id=f"{ia.get('id')}-{name}", name=name, value=value)
assert not lab, f"not in the example: {list(lab)}"
tree.write(sys.argv[2])
EOF
[ $? = 0 ] || bail "cannot adapt $EXAMPLE"
# shellcheck disable=SC2016 # expanded by the inner shell
push='set -e
	cibadmin --replace --scope resources --xml-text "$(xmllint --xpath "//configuration/resources" "$F")"
	cibadmin --replace --scope constraints --xml-text "$(xmllint --xpath "//configuration/constraints" "$F")"'
# the services wait for the file system, made below
lab exec node1 timeout 60 pcs -f "$T_DIR/example.xml" resource disable vol0-services >"$T_DIR/pcs.out" 2>&1 &&
	lab exec node1 timeout 60 env F="$T_DIR/example.xml" sh -c "$push" >>"$T_DIR/pcs.out" 2>&1
check "cib-examples/lun-with-filesystem.xml loaded into the lab ($((SECONDS - t0)) s; vol0-services disabled)" test $? = 0
sed 's/^/# /' "$T_DIR/pcs.out"
t0=$SECONDS
cluster_settle
check "crm_mon -1 -A: ipmirror-vol0-state uptodate on both nodes" within 90 both_uptodate

# ---- the file system, as an admin makes it -------------------------------------
actl() { # NODE ARGS: ipmirrorctl on NODE, the source tree's helper and the lab's config
	local n=$1; shift
	lab exec "$n" timeout 60 env IPMIRROR_ATTACH_HELPER="$HELPER" IPMIRROR_CONFIG="$CFG" \
		"$IPMIRRORCTL" --socket "$LAB_TAG" "$@"
}
actl "$Q" attach vol0 >"$T_DIR/attach-q.out" 2>&1
RC=$?
check "ipmirrorctl attach vol0 on the Unpromoted $Q is refused (exit $RC): $(tail -n1 "$T_DIR/attach-q.out")" \
	eval 'test $RC = 1 && grep -q "is mirror on this node" "$T_DIR/attach-q.out"'
{
	actl "$P" attach vol0 && lab exec "$P" timeout 60 mkfs.ext4 -q -F /dev/ipmirror/vol0 &&
		actl "$P" detach vol0
} >"$T_DIR/mkfs.out" 2>&1
check "on $P: ipmirrorctl attach vol0, mkfs.ext4 /dev/ipmirror/vol0, ipmirrorctl detach vol0" test $? = 0
sed 's/^/# /' "$T_DIR/mkfs.out"

t0=$SECONDS
lab exec node1 timeout 30 pcs resource enable vol0-services >>"$T_DIR/pcs.out" 2>&1
# rows_from NODE [N] [AFTER]: at least N (default 1) rows committed on NODE
# (at a time after AFTER, epoch seconds)
rows_from() {
	[ "$(awk -v n="$1" -v t="${3:-0}" '$2 == n && $3 > t' "$ROWS" 2>/dev/null | wc -l)" -ge "${2:-1}" ]
}
check "the service commits on $P: 100 rows ($((SECONDS - t0)) s after enable)" within 90 rows_from "$P" 100
lab exec "$P" findmnt -n -o SOURCE,FSTYPE "$MNT" >"$T_DIR/findmnt.out" 2>&1
L=$(lab exec "$P" readlink /dev/ipmirror/vol0)
LOOPS="$LOOPS $L"
check "on $P, /dev/ipmirror/vol0 -> $L (a loop device) is mounted ext4 on the mount point: $(cat "$T_DIR/findmnt.out")" \
	eval 'case "$L" in /dev/loop*) grep -q "^$L ext4" "$T_DIR/findmnt.out" ;; *) false ;; esac'

# nothing_attached NODE [LOOP...]: no device, no FUSE mount, no nbdfuse in
# NODE, no loop device on an attachment's FUSE file but the LOOPs (the other
# node's, a killed node's): loop devices are the host's, both nodes' FUSE
# files have one path, and one unmounted lazily under a loop device shows
# as /nbd (loop devices of other tests, there before this one, aside)
nothing_attached() {
	local n=$1 extra l
	shift
	extra=$(comm -13 <(echo "$LOOPS0") <(fuse_loops) | tr '\n' ' ')
	for l in "$@"; do extra=${extra//$l /}; done
	lab exec "$n" sh -c "test ! -e /dev/ipmirror/vol0 && ! grep -q ' /run/ipmirror/attach/vol0/fuse ' /proc/mounts &&
		! pgrep -x nbdfuse >/dev/null && test ! -e /run/ipmirror/attach/vol0" && [ -z "${extra// }" ] && return 0
	diag "loop devices left on a FUSE file: ${extra:-none}"
	{ lab exec "$n" sh -c 'ls -l /dev/ipmirror; grep fuse /proc/mounts; pgrep -a nbdfuse'; losetup -l; } | sed 's/^/# /'
	return 1
}
rows_of() { awk -v n="$1" '$2 == n' "$ROWS" | wc -l; }
last_row() { awk -v n="$1" '$2 == n { r = $1 } END { print r + 0 }' "$ROWS"; }

if [ "$SERVICE_MOVE" = 1 ]; then
# ---- (a) a clean move ------------------------------------------------------------
	check "the service commits on $P: 200 rows" within 60 rows_from "$P" 200
	# an admin moves to a peer that can take the role: up to date and scored
	within 60 eval 'both_uptodate && scored vol0' || diag "before the move: not both up to date and scored"
	t_move=$(date +%s.%N)
	lab exec node1 timeout 150 pcs resource move vol0-clone --promoted --wait=120 >"$T_DIR/move.out" 2>&1
	check "pcs resource move vol0-clone --promoted (exit 0)" test $? = 0
	sed 's/^/# /' "$T_DIR/move.out"
	check "the service commits on $Q after the move" within 90 rows_from "$Q" 1 "$t_move"
	MV=$(awk -v n="$Q" -v t="$t_move" '$2 == n && $3 > t { printf "%.1f", $3 - t; exit }' "$ROWS")
	diag "clean move: pcs resource move to the first row committed on $Q: $MV s"
	check "crm_mon: $Q Promoted, $P Unpromoted" within 30 roles_are "$Q" "$P"
	LASTP=$(last_row "$P")
	check "the service on $P stopped cleanly after row $LASTP; on $Q it resumed after row $LASTP (the data moved along)" \
		eval 'grep -q "$P: stopped after row $LASTP\$" "$T_DIR/writer.log" &&
			grep -q "$Q: resuming after row $LASTP " "$T_DIR/writer.log"'
	L=$(lab exec "$Q" readlink /dev/ipmirror/vol0)
	check "nothing of the attachment left on $P: no /dev/ipmirror/vol0, loop device, FUSE mount or nbdfuse" \
		nothing_attached "$P" "$L"
	LOOPS="$LOOPS $L"
	lab exec "$Q" findmnt -n -o SOURCE,FSTYPE "$MNT" >"$T_DIR/findmnt.out" 2>&1
	check "on $Q, /dev/ipmirror/vol0 -> $L mounted ext4: $(cat "$T_DIR/findmnt.out")" \
		eval 'grep -q "^$L ext4" "$T_DIR/findmnt.out"'
	lab exec "$Q" timeout 60 /usr/bin/python3 "$WRITER" check "$MNT/app.db" "$ROWS" >"$T_DIR/check.out" 2>&1
	RC=$?
	sed 's/^/# /' "$T_DIR/check.out"
	check "on $Q the database passes integrity_check and holds every committed row" test $RC = 0
	# the next parts act on the node that is Promoted now
	X=$P P=$Q Q=$X

# ---- (c) nbdfuse killed -9 under the stack: the attach's monitor notices ---------------
	NF=$(lab exec "$P" cat /run/ipmirror/attach/vol0/nbdfuse.pid)
	L=$(lab exec "$P" readlink /dev/ipmirror/vol0)
	case "$NF" in '' | *[!0-9]*) bail "no nbdfuse pid on $P" ;; esac
	lab exec "$P" kill -9 "$NF"
	t_nf=$(date +%s.%N)
	diag "nbdfuse (pid $NF in $P) killed at $(date -u +%T.%N | cut -c1-12), after row $(last_row "$P")"
	attach_failed() { grep -q "Result of monitor operation for vol0-attach on $P: error" "$IPM_LAB_DIR/$P/log/pacemaker.log"; }
	check "$P's pacemaker: the monitor of vol0-attach failed (a dead attachment)" within 60 attach_failed
	check "the stack recovered on $P: the service commits again" within 90 rows_from "$P" 1 "$(awk "BEGIN { printf \"%.3f\", $t_nf + 1 }")"
	diag "nbdfuse kill to the service's first commit again: $(awk -v n="$P" -v t="$t_nf" '$2 == n && $3 > t + 1 { printf "%.1f", $3 - t; exit }' "$ROWS") s"
	grep -m1 "vol0-attach_monitor_10000.*error output" "$IPM_LAB_DIR/$P/log/pacemaker.log" | cut -c1-220 | sed 's/^/# /'
	L2=$(lab exec "$P" readlink /dev/ipmirror/vol0)
	LOOPS="$LOOPS $L2"
	check "the dead attachment's loop device $L was detached (now $L2), nothing else left" \
		nothing_attached "$Q" "$L2"
	lab exec "$P" timeout 60 /usr/bin/python3 "$WRITER" check "$MNT/app.db" "$ROWS" >"$T_DIR/check.out" 2>&1
	RC=$?
	sed 's/^/# /' "$T_DIR/check.out"
	check "on $P the database passes integrity_check and holds every committed row" test $RC = 0
	lab exec "$P" timeout 30 crm_resource --cleanup --resource vol0-services >/dev/null 2>&1
fi

# ---- (b) the Promoted node killed -9 under load -------------------------------------
# (after a move the new mirror resyncs first: only an up-to-date copy may be promoted)
check "ipmirror-vol0-state uptodate on both nodes before the kill" within 90 both_uptodate
check "the service commits on $P under load (100 rows more)" within 60 rows_from "$P" $(($(rows_of "$P") + 100))
L=$(lab exec "$P" readlink /dev/ipmirror/vol0)
LOOPS="$LOOPS $L"
INIT=$("$LAB" pids | awk -v n="$P" '$1 == n { print $2 }')
case "$INIT" in '' | - | *[!0-9]*) bail "no init PID for $P: $("$LAB" pids)" ;; esac
K0=$(dmesg | tail -n 1)   # the kernel's log from here on
LDEAD=$L
kill -KILL "$INIT"
t_kill=$(date +%s.%N)
LOAD_KILL=$(cut -d' ' -f1-3 /proc/loadavg)
diag "$P killed (its init, host pid $INIT) at $(date -u +%T.%N | cut -c1-12), after row $(last_row "$P")"
gone() { ! "$LAB" pids | grep -q "^$P [0-9]"; }
check "$P is gone: no init, so no corosync, pacemaker, ipmirrord, nbdfuse or service of it" within 10 gone
VIEW=$Q
export VIEW
if within 120 rows_from "$Q" 1 "$t_kill"; then
	FO=$(awk -v n="$Q" -v t="$t_kill" '$2 == n && $3 > t { printf "%.1f", $3 - t; exit }' "$ROWS")
	ok "the service commits on $Q, $FO s after the kill"
	diag "failover time (corosync token ${IPM_LAB_TOKEN:-default}), SIGKILL of $P's init to the service's first commit on $Q: $FO s"
	t2=$(promoted_at "$Q") &&
		diag "  of which: kill to the promote on $Q done: $(awk "BEGIN { printf \"%.1f\", $t2 - $t_kill }") s"
	diag "  $Q's pacemaker.log, s after the kill: $(failover_breakdown "$Q" "$t_kill")"
	diag "  load at the kill: $LOAD_KILL; timeline on $Q (s after the kill):"
	failover_timeline "$Q" "$t_kill" "$(awk -v n="$Q" -v t="$t_kill" '$2 == n && $3 > t { print $3; exit }' "$ROWS")" |
		sed 's/^/#   /'
else
	not_ok "the service commits on $Q"; dump_logs
fi
LASTP=$(last_row "$P")
check "$Q Promoted in crm_mon, the stack started there" within 30 eval '[ "$(role_nodes Promoted)" = "$Q" ]'
L=$(lab exec "$Q" readlink /dev/ipmirror/vol0)
LOOPS="$LOOPS $L"
# the kernel's word that ext4 replayed its journal when the stack mounted it on Q
check "ext4 on $Q ($L) was mounted with a journal to replay (kernel: recovery complete)" \
	eval 'dmesg | awk -v m="$K0" "f; \$0 == m { f = 1 }" | grep -E "EXT4-fs \\(${L#/dev/}\\): recovery complete"'
lab exec "$Q" timeout 60 /usr/bin/python3 "$WRITER" check "$MNT/app.db" "$ROWS" >"$T_DIR/check.out" 2>&1
RC=$?
sed 's/^/# /' "$T_DIR/check.out"
check "on $Q the database passes integrity_check and holds every committed row (the last on $P: $LASTP)" test $RC = 0
# the service and the file system stopped, the attachment kept: e2fsck
lab exec "$Q" timeout 60 pcs resource disable vol0-fs --wait=60 >"$T_DIR/disable.out" 2>&1
check "pcs resource disable vol0-fs: unmounted on $Q" eval '! lab exec "$Q" findmnt "$MNT" >/dev/null'
lab exec "$Q" timeout 60 e2fsck -fn /dev/ipmirror/vol0 >"$T_DIR/fsck.out" 2>&1
RC=$?
tail -n 6 "$T_DIR/fsck.out" | sed 's/^/# /'
check "e2fsck -fn /dev/ipmirror/vol0 on $Q after the failover: clean (exit $RC)" test $RC = 0
lab exec "$Q" timeout 60 pcs resource disable vol0-services --wait=60 >>"$T_DIR/disable.out" 2>&1
check "pcs resource disable vol0-services: nothing of the attachment left on $Q" within 30 nothing_attached "$Q" "$LDEAD"

cluster_finish
