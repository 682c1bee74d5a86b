#!/bin/bash
# Resource-level fencing on the real two-node lab (tests/lab): with the
# Promoted node P under fio --verify, only the replication link is cut
# (corosync stays whole). P stays Promoted and keeps serving writes
# (journaling), its daemon adds the constraint ipmirror-fence-vol0-clone
# (Promoted -INFINITY unless #uname P) to the CIB, and crm_simulate on the live
# CIB with P banned shows that Q would not be promoted (and would be, without
# the constraint). After the heal: resync, the constraint is removed, both
# nodes uptodate in crm_mon -1 -A, no fio verify error, backing files equal.
# Then ipmirror-drill --event link-cut (cut by `ip link set ... down` on the
# Promoted node) must PASS with fenced true. T_KEEP=1 keeps $T_DIR.
T_LIMIT=${T_LIMIT:-1800}  # a whole cluster comes up and goes down
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

LAB_TAG=ipmfl
. "$top_srcdir/tests/lab/cluster.sh"
command -v fio >/dev/null 2>&1 || { echo "1..0 # SKIP fio not installed"; exit 0; }

plan 21
cluster_start

RSC=vol0-clone
FID=ipmirror-fence-$RSC
# fence_of: the node the fence constraint allows Promoted on; "" when none
fence_of() {
	lab exec node1 timeout 10 cibadmin -Q --xpath "//rsc_location[@id='$FID']" 2>/dev/null |
		sed -n 's/.*attribute="#uname" operation="ne" value="\([^"]*\)".*/\1/p'
}
fenced_for() { [ "$(fence_of)" = "$1" ]; }
# no constraint: cibadmin answers "no such object" (105), not just any failure
unfenced() {
	lab exec node1 timeout 10 cibadmin -Q --xpath "//rsc_location[@id='$FID']" >/dev/null 2>&1
	[ $? = 105 ]
}
dump_fence() {
	diag "---- constraints"; lab exec node1 timeout 10 cibadmin -Q -o constraints | sed 's/^/# /'
	diag "---- fencing in ipmirrord.log"; grep -iE 'fenc' "$T_DIR/ipmirrord.log" | tail -n 20 | sed 's/^/# /'
}

# ---- 5. settled: both uptodate, no fence left from the first promotion ------------
t0=$SECONDS
if within 90 both_uptodate && within 60 unfenced; then
	ok "both uptodate and no fence constraint ($((SECONDS - t0)) s)"
else
	not_ok "both uptodate and no fence constraint"; dump_logs; dump_fence
fi
check "the daemon ran the fence handler (fence and unfence after the first promotion) and logged it" \
	grep -q "lun vol0: unfence done" "$T_DIR/ipmirrord.log"

# ---- 6. fio verify on P, cut the replication link only -------------------------------
lab exec "$P" timeout 150 fio --name=fence --ioengine=nbd --uri="nbd://$(addr_of "$P"):10809/vol0" \
	--rw=randwrite --bs=4k --iodepth=8 --size=24M --verify=crc32c --verify_fatal=1 \
	--do_verify=1 --verify_backlog=512 --verify_state_save=0 --time_based --runtime=45 \
	--output-format=json --output="$T_DIR/fio.json" >"$T_DIR/fio.out" 2>&1 &
FIO=$!
sleep 5
t_cut=$SECONDS
lab cut data
diag "replication link cut, fio running on $P"
if within 30 fenced_for "$P"; then
	ok "fence constraint $FID appears in the CIB, Promoted only on $P ($((SECONDS - t_cut)) s after the cut)"
else
	not_ok "fence constraint $FID appears in the CIB"; dump_fence
fi
check "cibadmin -Q shows it as rule role=Promoted score=-INFINITY #uname ne $P" \
	eval 'lab exec node1 timeout 10 cibadmin -Q -o constraints |
		tr -d "\n" | grep -q "<rsc_location id=\"$FID\" rsc=\"$RSC\"> *<rule id=\"$FID-rule\" role=\"Promoted\" score=\"-INFINITY\"> *<expression id=\"$FID-expr\" attribute=\"#uname\" operation=\"ne\" value=\"$P\"/>"'
journaling() { [ "$(attr "$P" ipmirror-vol0-state)" = journaling ] && [ "$(attr "$P" ipmirror-peer)" = down ]; }
check "crm_mon -1 -A: $P journaling, its peer down" within 20 journaling
check "corosync stays whole: both nodes Online on both sides" \
	eval 'mon node1 | grep -q "Online: \[ node1 node2 \]" && mon node2 | grep -q "Online: \[ node1 node2 \]"'
check "$P stays Promoted for 8 s of the cut" stays 8 "$P/$Q"

# ---- 7. the Unpromoted node cannot be promoted ------------------------------------
# The live CIB with P banned from Promoted, simulated: Q must not be promoted.
# The same CIB without the fence constraint shows that it would be.
lab exec node1 timeout 20 cibadmin -Q >"$T_DIR/live.xml"
cp "$T_DIR/live.xml" "$T_DIR/nofence.xml"
CIB_file="$T_DIR/live.xml" crm_resource --ban --promoted --resource "$RSC" --node "$P" >/dev/null 2>&1
CIB_file="$T_DIR/nofence.xml" crm_resource --ban --promoted --resource "$RSC" --node "$P" >/dev/null 2>&1
CIB_file="$T_DIR/nofence.xml" cibadmin -D -o constraints -X "<rsc_location id=\"$FID\"/>" >/dev/null 2>&1
crm_simulate -x "$T_DIR/live.xml" -S >"$T_DIR/sim.out" 2>&1
crm_simulate -x "$T_DIR/nofence.xml" -S >"$T_DIR/sim-nofence.out" 2>&1
sed -n '/Transition Summary/,/Executing/p' "$T_DIR/sim.out" | sed 's/^/# fenced: /'
sed -n '/Transition Summary/,/Executing/p' "$T_DIR/sim-nofence.out" | sed 's/^/# without the constraint: /'
check "crm_simulate, $P banned: $Q is not promoted while fenced (and would be without the constraint)" \
	eval 'grep -q "Transition Summary" "$T_DIR/sim.out" && ! grep -Eq "Promote .*Promoted $Q" "$T_DIR/sim.out" &&
		grep -Eq "Promote .*Unpromoted -> Promoted $Q" "$T_DIR/sim-nofence.out"'
JBYTES=$(attr "$P" ipmirror-vol0-journal)
check "writes go on during the cut: $P's journal holds ${JBYTES:-?} bytes" test "${JBYTES:-0}" -gt 0

# ---- 8. heal: resync, unfence -------------------------------------------------------
sleep $((t_cut + 15 - SECONDS > 0 ? t_cut + 15 - SECONDS : 0))
t_heal=$SECONDS
lab heal data
diag "replication link healed after $((t_heal - t_cut)) s"
if within 90 unfenced; then
	ok "fence constraint removed after the resync ($((SECONDS - t_heal)) s after the heal)"
else
	not_ok "fence constraint removed after the resync"; dump_fence
fi
check "crm_mon -1 -A: ipmirror-vol0-state uptodate on both nodes" within 60 both_uptodate
check "$P still Promoted, $Q Unpromoted" roles_are "$P" "$Q"

wait "$FIO"
RC=$?
ERRS=$(sed -n '/^{/,$p' "$T_DIR/fio.json" 2>/dev/null | jq '[.jobs[].error] | add' 2>/dev/null)
WRITES=$(sed -n '/^{/,$p' "$T_DIR/fio.json" 2>/dev/null | jq '[.jobs[].write.total_ios] | add' 2>/dev/null)
if [ "$RC" = 0 ] && [ "$ERRS" = 0 ]; then
	ok "fio --verify=crc32c on $P across cut and heal: no error ($WRITES writes)"
else
	not_ok "fio --verify=crc32c on $P across cut and heal (exit $RC, errors ${ERRS:-?})"
	tail -n 20 "$T_DIR/fio.out" | sed 's/^/# /'
fi
# the last writes are mirrored synchronously; wait for the states to say so
within 30 both_uptodate
check "backing files of node1 and node2 are identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"

# ---- 9. the drill: link-cut on the Promoted node -----------------------------------
DRILL="$top_srcdir/agent/ipmirror-drill"
DEV="$IPM_LAB_NS-d${P#node}"
t0=$SECONDS
lab exec "$P" timeout 300 "$DRILL" --lun vol0 --event link-cut --json --size 8M --timeout 90 \
	--cut-seconds 8 --cut-cmd "ip link set $DEV down" --heal-cmd "ip link set $DEV up" \
	--nbd-host node1=10.203.0.1 --nbd-host node2=10.203.0.2 \
	--ipmirrorctl "$IPMIRRORCTL" --socket "$LAB_TAG" >"$T_DIR/drill.json" 2>"$T_DIR/drill.err"
RC=$?
diag "link-cut drill ($((SECONDS - t0)) s, exit $RC): $(cat "$T_DIR/drill.json")"
sed 's/^/# /' "$T_DIR/drill.err"
J=$(tr -d ' \n' <"$T_DIR/drill.json")
jval() { echo "$J" | sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" | tr -d '"'; }
check "ipmirror-drill --event link-cut: PASS, one JSON object, from = to = $P, fenced true, data_ok true" \
	eval 'test $RC = 0 && python3 -c "import json, sys; json.load(sys.stdin)" <"$T_DIR/drill.json" &&
		test "$(jval result)/$(jval event)/$(jval from)/$(jval to)/$(jval fenced)/$(jval data_ok)/$(jval failover_s)" = "PASS/link-cut/$P/$P/true/true/null"'
check "after the drill: link up, no fence constraint, $P Promoted" \
	eval 'lab exec "$P" ip link show "$DEV" | grep -q "state UP" && within 30 unfenced && roles_are "$P" "$Q"'

cluster_finish
