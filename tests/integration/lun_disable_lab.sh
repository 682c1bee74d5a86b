#!/bin/bash
# One LUN's resource disabled and enabled on the real two-node lab
# (tests/lab), issue 15 items 2 and 5: vol0 Promoted on node1, vol1 on node2.
# With data written to vol1 and fio --verify writing vol0 on node1,
# `pcs resource disable vol1-clone` stops vol1 on both nodes (crm_mon:
# Stopped; ipmirrorctl: down on both; its NBD export refused) while both
# daemons run on and vol0 is uptodate with an empty journal in every sample
# (every 0.5 s); `pcs resource enable vol1-clone` brings vol1 back, Promoted
# on node2, uptodate on both, holding the data written before; fio's verify
# passes and each LUN's backing files are identical. Also: node1's agent
# scores vol1 again after node2's promote (notify), and crm_simulate on the
# live CIB shows the agent's degraded Promoted result (191) recovers nothing.
# T_KEEP=1 keeps $T_DIR.
T_LIMIT=${T_LIMIT:-1800}  # a whole cluster comes up and goes down
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

LAB_TAG=ipmdl
LUNS="vol0:node1 vol1:node2"
. "$top_srcdir/tests/lab/cluster.sh"
command -v fio >/dev/null 2>&1 || { echo "1..0 # SKIP fio not installed"; exit 0; }

plan 21
cluster_start

ctl_on() { local n="$1"; shift; lab exec "$n" timeout 20 "$IPMIRRORCTL" --socket "$LAB_TAG" "$@"; }
state_on() { ctl_on "$1" status "$2" --json | jq -r '.luns[0].state'; }
preferred() { roles_are node1 node2 vol0 && roles_are node2 node1 vol1; }
uptodate_on_both() { [ "$(state_on node1 "$1")" = uptodate ] && [ "$(state_on node2 "$1")" = uptodate ]; }
check "vol0 Promoted on node1, vol1 on node2, both uptodate on both nodes" \
	eval 'within 90 preferred && within 60 uptodate_on_both vol0 && within 60 uptodate_on_both vol1'

# The degraded Promoted result (191, the agent's monitor while journaling or
# resyncing) as Pacemaker 2.1.5 takes it: crm_simulate on this CIB injects it
# as the result of vol0's Promoted monitor, whose expected result is 8 (the
# controller records it so; crm_simulate's injection says 0, which would make
# any other result a failure): nothing is recovered; a failed one (9) is.
lab exec node1 cibadmin -Q >"$T_DIR/cib.xml" 2>/dev/null
sim() {
	crm_simulate -x "$T_DIR/cib.xml" -i "vol0_monitor_9000@node1=$1" -O "$T_DIR/inj$1.xml" >/dev/null 2>&1
	sed -i 's/\(transition-key="[0-9]*:-1:\)0:/\18:/; s/\(transition-magic="0:[0-9]*;[0-9]*:-1:\)0:/\18:/' "$T_DIR/inj$1.xml"
	crm_simulate -x "$T_DIR/inj$1.xml" -S 2>&1 | sed -n '/^Transition Summary:/,/^Executing/p' | grep -E 'vol0[^-]'
}
S191=$(sim 191); S9=$(sim 9)
check "crm_simulate: 191 from vol0's Promoted monitor changes nothing; 9 recovers it (${S9//$'\n'/; })" \
	eval '[ -z "$S191" ] && [ -n "$S9" ]'
[ -z "$S191" ] || echo "$S191" | sed 's/^/# 191: /'

# vol1's data, written through its Promoted node
head -c 4M /dev/urandom >"$T_DIR/v1data"
lab exec node2 timeout 60 nbdcopy "$T_DIR/v1data" "nbd://$(addr_of node2):10809/vol1" 2>"$T_DIR/nbdcopy.err"
check "4 MiB written to vol1 through node2" test $? = 0

lab exec node1 timeout 150 fio --name=vol0 --ioengine=nbd --uri="nbd://$(addr_of node1):10809/vol0" \
	--rw=randwrite --bs=4k --iodepth=8 --size=16M --verify=crc32c --verify_fatal=1 \
	--do_verify=1 --verify_backlog=256 --verify_state_save=0 --time_based --runtime=80 \
	--output-format=json --output="$T_DIR/fio.json" >"$T_DIR/fio.out" 2>&1 &
FIO=$!
# vol0 as node1 reports it, every 0.5 s, until told to stop
watch_vol0() {
	while [ ! -e "$T_DIR/watch.stop" ]; do
		ctl_on node1 status vol0 --json | jq -r '.luns[0] | "\(.state) \(.journal_bytes)"' >>"$T_DIR/vol0.watch"
		sleep 0.5
	done
}
watch_vol0 &
WATCH=$!
sleep 3
n1pid=$(lab exec node1 pgrep -x ipmirrord); n2pid=$(lab exec node2 pgrep -x ipmirrord)

lab exec node1 pcs resource disable vol1-clone >"$T_DIR/disable.out" 2>&1
check "pcs resource disable vol1-clone" test $? = 0
# crm_mon lists a disabled clone among the inactive resources only
stopped() { lab exec node1 timeout 20 crm_resource --locate --resource vol1-clone 2>&1 | grep -q 'is NOT running'; }
down_both() { [ "$(state_on node1 vol1)" = down ] && [ "$(state_on node2 vol1)" = down ]; }
if within 60 stopped && within 30 down_both; then
	ok "vol1 stopped on both nodes: crm_mon says so, ipmirrorctl status says down on both"
else
	not_ok "vol1 stopped on both nodes: crm_mon says so, ipmirrorctl status says down on both"
	lab exec node1 timeout 20 crm_resource --locate --resource vol1-clone 2>&1 | sed 's/^/# /'
	diag "vol1: node1 $(state_on node1 vol1), node2 $(state_on node2 vol1)"
	dump_logs
fi
check "both daemons run on (the same processes: $n1pid, $n2pid)" \
	eval '[ "$(lab exec node1 pgrep -x ipmirrord)" = "$n1pid" ] && [ "$(lab exec node2 pgrep -x ipmirrord)" = "$n2pid" ]'
lab exec node2 timeout 20 nbdinfo "nbd://$(addr_of node2):10809/vol1" >"$T_DIR/nbdinfo.out" 2>&1
check "vol1's NBD export is refused on node2" test $? != 0
sed 's/^/# nbdinfo: /' "$T_DIR/nbdinfo.out" | head -n 3
sleep 5
check "vol0 still Promoted on node1 and served (fio runs)" eval 'roles_are node1 node2 vol0 && kill -0 $FIO'

lab exec node1 pcs resource enable vol1-clone >"$T_DIR/enable.out" 2>&1
check "pcs resource enable vol1-clone" test $? = 0
check "vol1 back: Promoted on node2, Unpromoted on node1" within 90 roles_are node2 node1 vol1
check "vol1 uptodate on both nodes" within 90 uptodate_on_both vol1
# notify: node1's Unpromoted vol1 scored again when node2 was promoted
check "node1's agent scored vol1 again after node2's promote (notify)" \
	grep -q 'ipmirror(vol1).*vol1: post-promote: mirror, .* scored again' "$IPM_LAB_DIR/node1/log/pacemaker.log"
lab exec node2 timeout 60 nbdcopy "nbd://$(addr_of node2):10809/vol1" "$T_DIR/v1back" 2>>"$T_DIR/nbdcopy.err"
check "vol1 holds the data written before the disable" cmp -n 4194304 "$T_DIR/v1data" "$T_DIR/v1back"

touch "$T_DIR/watch.stop"; wait "$WATCH"
N=$(wc -l <"$T_DIR/vol0.watch")
BAD=$(grep -cv '^uptodate 0$' "$T_DIR/vol0.watch")
check "vol0 uptodate with an empty journal in all $N samples from the disable to vol1 back ($BAD not)" \
	eval '[ "$N" -gt 20 ] && [ "$BAD" = 0 ]'
[ "$BAD" = 0 ] || grep -v '^uptodate 0$' "$T_DIR/vol0.watch" | sort | uniq -c | sed 's/^/# /'
wait "$FIO"
RC=$?
check "fio verify on vol0 passed (exit $RC)" \
	eval '[ $RC = 0 ] && [ "$(sed -n "/^{/,\$p" "$T_DIR/fio.json" | jq "[.jobs[].error] | add")" = 0 ]'
within 60 uptodate_on_both vol0
check "vol0's and vol1's backing files identical on the two nodes" \
	eval 'cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img" && cmp "$T_DIR/node1-vol1.img" "$T_DIR/node2-vol1.img"'
cluster_finish
