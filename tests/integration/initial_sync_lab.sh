#!/bin/bash
# An inconsistent copy is never promoted, in the Pacemaker lab (tests/lab):
# the copies of vol0 have no common history (node1's backing holds 160 MiB
# of random data, node2's is blank, neither has a generation file), so the
# cluster starts the initial sync from node1, the config's primary, under a
# resync rate of 2 MiB/s; node1's node attribute ipmirror-vol0-sync shows the
# copy's progress (node2's: none). Mid-sync (checked in node1's status) node1's whole
# lab node is killed (SIGKILL to its init: corosync, pacemaker and ipmirrord
# at once). For 30 s after Pacemaker on node2 sees node1 OFFLINE, node2's
# copy stays `inconsistent` (its status and ipmirror-vol0-state in the CIB),
# it has no promotion score (master-vol0), crm_mon shows no Promoted
# instance, Pacemaker never runs a promote on node2 and nothing serves vol0
# over NBD there. Then node1's lab node is started again (resync rate
# raised): Pacemaker promotes node1, the copy ends, both nodes are uptodate
# and the backing files are byte-identical.
# ISYNC_LAB_BREAK=1 runs the same test against an agent patched to score and
# force-promote an inconsistent copy; ISYNC_LAB_BREAK=2 also starts the
# daemons with --no-fencing (the source's fence constraint, Promoted only
# on node1 while node2 lacks writes, is a second guard): how the test was
# seen to fail.
# T_KEEP=1 keeps $T_DIR.
T_LIMIT=${T_LIMIT:-1800}  # a whole cluster comes up, loses a node, gets it back
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

LAB_TAG=ipmis
LUN_SIZE=256M
. "$top_srcdir/tests/lab/cluster.sh"
command -v xmllint >/dev/null 2>&1 || { echo "1..0 # SKIP xmllint not installed"; exit 0; }

DATA_MB=160 # at 2 MiB/s: 80 s of copy, longer than the cluster takes to settle
WATCH_S=30

plan 22
cluster_env
cluster_config
# a slow copy, so that the kill surely lands in its middle
sed -i 's|^  <connections |  <resync rate="2M"/>\n&|' "$CFG"
grep -q '<resync rate="2M"/>' "$CFG" || bail "cannot set the resync rate in $CFG"
head -c "${DATA_MB}M" /dev/urandom |
	dd of="$T_DIR/node1-vol0.img" bs=1M seek=48 conv=notrunc iflag=fullblock status=none ||
	bail "cannot write node1's data"
cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img" && bail "the backing files start equal"
SUM=$(sha256sum <"$T_DIR/node1-vol0.img")
if [ "${ISYNC_LAB_BREAK:-0}" != 0 ]; then
	# the broken agent: an inconsistent mirror scores like a consistent
	# one and promote forces past the daemon's refusal
	# shellcheck disable=SC2016 # the agent's own text
	sed -i -e 's/^\(\t*\)\(.*\)\*:inconsistent|/\1mirror:inconsistent) score=$SCORE_ALONE ;;\n\1\2/' \
		-e 's/out=$(ctl promote "$OCF_RESKEY_lun" 2>&1)/out=$(ctl promote "$OCF_RESKEY_lun" --force 2>\&1)/' \
		"$RA/ipmirror/ipmirror"
	grep -q 'mirror:inconsistent) score=' "$RA/ipmirror/ipmirror" &&
		grep -q 'promote "$OCF_RESKEY_lun" --force' "$RA/ipmirror/ipmirror" ||
		bail "ISYNC_LAB_BREAK=1: the agent's text changed, the patch did not apply"
	diag "ISYNC_LAB_BREAK=$ISYNC_LAB_BREAK: the agent scores and force-promotes an inconsistent copy"
fi
if [ "${ISYNC_LAB_BREAK:-0}" = 2 ]; then
	# ... and the daemons run without resource-level fencing, the second
	# guard (the source's constraint: Promoted only on node1 until node2 has
	# every write)
	sed -i 's|"\$@"$|"$@" --no-fencing|' "$WRAP"
	grep -q -- '--no-fencing$' "$WRAP" || bail "ISYNC_LAB_BREAK=2: cannot add --no-fencing to $WRAP"
	diag "ISYNC_LAB_BREAK=2: the daemons run with --no-fencing"
fi
cluster_lab_up
cluster_create

lctl() { local n="$1"; shift; lab exec "$n" timeout 20 "$IPMIRRORCTL" --socket "$LAB_TAG" "$@"; }
ljson() { lctl "$1" status vol0 --json 2>/dev/null | jq -c ".luns[0] | $2"; }
# xroles: "PROMOTED/UNPROMOTED" nodes of vol0-clone (cluster.sh's roles, from
# crm_mon's XML on VIEW, default node1)
xroles() { roles vol0; }
# settled: node1 (the source, with the data) Promoted, node2 Unpromoted,
# still so 2 s later
settled() { [ "$(xroles)" = node1/node2 ] && sleep 2 && [ "$(xroles)" = node1/node2 ]; }
t0=$SECONDS
if within 90 settled; then
	ok "node1 (the source, with the data) Promoted, node2 Unpromoted ($((SECONDS - t0)) s after create)"
else
	not_ok "node1 (the source, with the data) Promoted, node2 Unpromoted: $(xroles)"; dump_logs
	bail "the resource did not settle"
fi

# ---- 1. mid-sync: node1 resyncing, node2 inconsistent -----------------------
mid_sync() {
	local j
	j=$(ljson node1 '[.state, .resync_done_bytes, .resync_total_bytes]') || return 1
	PROGRESS=$j
	jq -e '.[0] == "resyncing" and .[1] > 0 and .[1] + 16777216 < .[2]' <<<"$j" >/dev/null
}
within 60 mid_sync
check "node1 copies to node2 and has more than 16 MiB left: $PROGRESS" mid_sync
check "node2: inconsistent in its status and in the CIB (ipmirror-vol0-state)" \
	eval '[ "$(ljson node2 .state)" = "\"inconsistent\"" ] && [ "$(attr node2 ipmirror-vol0-state)" = inconsistent ]'
check "node2 has no promotion score while node1 copies to it" test -z "$(attr node2 master-vol0)"
# the node attribute with the copy's progress ("42% 2MiB/s eta 60s"; attr
# gives its first word), published at the start and then every 5 s
sync_attr() { attr node1 ipmirror-vol0-sync | grep -qE '^[0-9]+%$'; }
within 15 sync_attr
check "the CIB shows the copy's progress on node1 (ipmirror-vol0-sync '$(attr node1 ipmirror-vol0-sync) ...'), none on node2" \
	eval 'sync_attr && [ "$(attr node2 ipmirror-vol0-sync)" = none ]'

# ---- 2. node1's whole lab node killed during the copy -----------------------
INIT=$("$LAB" pids | awk '$1 == "node1" { print $2 }')
case "$INIT" in '' | - | *[!0-9]*) bail "no init PID for node1: $("$LAB" pids)" ;; esac
PROGRESS=$(ljson node1 '[.state, .resync_done_bytes, .resync_total_bytes]')
promotes_before=$(grep -c "Result of promote operation for vol0 on node2" "$IPM_LAB_DIR/node2/log/pacemaker.log")
kill -KILL "$INIT"
diag "node1 killed (its init, host pid $INIT) during the copy at $PROGRESS"
gone() { ! "$LAB" pids | grep -q "^node1 [0-9]"; }
check "node1 is gone: no init, so no corosync, pacemaker or ipmirrord of it" within 10 gone

VIEW=node2
export VIEW
offline() { mon node2 | grep -q "OFFLINE: \[ node1 \]"; }
check "Pacemaker on node2 sees node1 OFFLINE" within 60 offline
URI2="nbd://$(addr_of node2):10809/vol0"
# one round of the watch: any breach is logged to $T_DIR/watch.bad
watch_once() {
	local r s a m
	r=$(xroles) s=$(ljson node2 .state) a=$(attr node2 ipmirror-vol0-state) m=$(attr node2 master-vol0)
	echo "$((SECONDS - w0)) s: roles '$r' status $s attribute '$a' score '$m'" >>"$T_DIR/watch.log"
	case "$r" in /node2) ;; *) echo "roles '$r'" >>"$T_DIR/watch.bad" ;; esac
	[ "$s" = '"inconsistent"' ] || echo "node2 status $s" >>"$T_DIR/watch.bad"
	[ "$a" = inconsistent ] || echo "ipmirror-vol0-state '$a'" >>"$T_DIR/watch.bad"
	[ -z "$m" ] || echo "master-vol0 '$m'" >>"$T_DIR/watch.bad"
	if lab exec node2 timeout 5 nbdinfo --size "$URI2" >/dev/null 2>&1; then
		echo "vol0 served over NBD on node2" >>"$T_DIR/watch.bad"
	fi
}
: >"$T_DIR/watch.bad"
w0=$SECONDS
while [ $((SECONDS - w0)) -lt "$WATCH_S" ]; do
	watch_once
	sleep 2
done
sed 's/^/# watch: /' "$T_DIR/watch.log" | tail -n 3
if [ -s "$T_DIR/watch.bad" ]; then
	not_ok "for ${WATCH_S} s node2 stays inconsistent, unscored, unpromoted, not serving"
	sort "$T_DIR/watch.bad" | uniq -c | sed 's/^/# breach: /'
	dump_logs
else
	ok "for ${WATCH_S} s node2 stays inconsistent, unscored, unpromoted, not serving ($(wc -l <"$T_DIR/watch.log") rounds)"
fi
check "crm_mon on node2: no Promoted instance of vol0, node2 Unpromoted" eval '[ "$(xroles)" = /node2 ]'
# node2's transient attributes in the CIB's status section
cib2() { lab exec node2 timeout 10 cibadmin -Q --xpath "//node_state[@uname='node2']//nvpair[@name='$1']" 2>/dev/null; }
check "the CIB on node2: node2's ipmirror-vol0-state is inconsistent, it has no master-vol0" \
	eval 'cib2 ipmirror-vol0-state | grep -q "value=\"inconsistent\"" && { cib2 master-vol0; [ $? = 105 ]; }'
promotes_after=$(grep -c "Result of promote operation for vol0 on node2" "$IPM_LAB_DIR/node2/log/pacemaker.log")
check "Pacemaker ran no promote on node2 after the kill ($promotes_before before, $promotes_after after)" \
	test "$promotes_after" = "$promotes_before"
out=$(lctl node2 promote vol0 --dry-run 2>&1); rc=$?
diag "promote --dry-run on node2: $out"
check "node2 refuses promote --dry-run (the daemon's own check, names the reason)" \
	eval 'test $rc != 0 && grep -q inconsistent <<<"$out"'
out=$(lab exec node2 timeout 5 nbdinfo --size "$URI2" 2>&1); rc=$?
diag "nbdinfo on node2: $out"
check "nothing serves vol0 over NBD on node2" test $rc != 0

# ---- 3. node1 back: the copy ends --------------------------------------------
# the source's daemon starts afresh: let it copy at full speed
sed -i 's|<resync rate="2M"/>|<resync rate="0"/>|' "$CFG"
# `lab up` starts both nodes; one node is started here as `lab up` does it,
# in its network namespace, which outlived the kill
setsid ip netns exec "$IPM_LAB_NS-n1" unshare --mount --uts --ipc --pid --fork --kill-child \
	"$LAB" __init node1 "$IPM_LAB_DIR/node1" </dev/null >>"$IPM_LAB_DIR/node1/log/unshare.log" 2>&1 &
back() { "$LAB" pids | grep -q "^node1 [0-9]" && lab exec node1 test -d /run/ipmirror; }
within 20 back || bail "node1 did not start again: $(tail -n 5 "$IPM_LAB_DIR/node1/log/init.log")"
lab exec node1 env RA="$RA" PROVIDERS="$PROVIDERS" sh -c "$install_agent" ||
	bail "cannot mount the agent inside node1 again"
both_online() { mon node2 | grep -q "Online: \[ node1 node2 \]"; }
check "node1 started again and Online on node2's view" within 90 both_online
VIEW=node1
promoted1() { [ "$(xroles)" = node1/node2 ]; }
check "Pacemaker promotes node1 (the source) again, node2 stays Unpromoted" within 120 promoted1
check "the copy ends: both uptodate in the CIB" within 120 both_uptodate
grep -o 'peer node2: resync complete.*' "$T_DIR/ipmirrord.log" | sed 's/^/# node1: /'
check "the backing files are byte-identical, both hold node1's data as it was before the start" \
	eval 'cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img" && [ "$(sha256sum <"$T_DIR/node2-vol0.img")" = "$SUM" ]'
check "node1 serves vol0 over NBD" eval 'lab exec node2 timeout 10 nbdinfo --size "nbd://$(addr_of node1):10809/vol0" >/dev/null'
cluster_finish
