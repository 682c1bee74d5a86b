#!/bin/bash
# Pacemaker integration, without a running cluster: the agent's OCF 1.1
# metadata, crm_resource --validate, the cib-examples, and promote/demote
# through ipmirrorctl and the agent on two daemons on loopback (refusals,
# role switch, data kept, monitor return codes). The agent is made visible to
# crm_resource/pcs in a private mount namespace only.
# The two-node cluster (pcs resource move, the drill) is pacemaker_lab.sh's and
# drill.sh's.
. "$top_srcdir/tests/lib.sh"
plan 24

AGENT="$top_srcdir/ocf/ipmirror"
RNG=/usr/share/pcs/data/ocf-1.1.rng
export OCF_ROOT=/usr/lib/ocf

# ---- offline checks --------------------------------------------------------
"$AGENT" meta-data >"$T_DIR/md.xml" 2>"$T_DIR/md.err"
check "meta-data validates against ocf-1.1.rng" \
	xmllint --noout --relaxng "$RNG" "$T_DIR/md.xml" 2>"$T_DIR/xmllint.out"
check "meta-data has Promoted and Unpromoted monitors with different intervals" \
	bash -c "grep -q 'interval=\"9s\" role=\"Promoted\"' '$T_DIR/md.xml' &&
		 grep -q 'interval=\"11s\" role=\"Unpromoted\"' '$T_DIR/md.xml'"
for f in one-lun two-luns-bidirectional lun-with-filesystem; do
	check "crm_verify -x cib-examples/$f.xml" crm_verify -x "$top_srcdir/cib-examples/$f.xml"
done

# crm_resource finds agents only under /usr/lib/ocf/resource.d: show ours
# there in a private mount namespace (the host's tree is not touched)
RA="$T_DIR/ra"
mkdir -p "$RA/ipmirror" "$RA/heartbeat" "$RA/pacemaker"
cp "$AGENT" "$RA/ipmirror/ipmirror"
in_ra() {
	unshare -m bash -c 'mount --make-rprivate / &&
		mount --bind /usr/lib/ocf/resource.d/heartbeat "$0/heartbeat" &&
		mount --bind /usr/lib/ocf/resource.d/pacemaker "$0/pacemaker" &&
		mount --rbind "$0" /usr/lib/ocf/resource.d && exec "$@"' "$RA" "$@"
}
PATH="$top_builddir/agent:$PATH" in_ra crm_resource --validate --class ocf \
	--provider ipmirror --agent ipmirror --option lun=vol0 >"$T_DIR/v.out" 2>&1
check "crm_resource --validate lun=vol0 passes" test $? = 0
in_ra crm_resource --validate --class ocf --provider ipmirror --agent ipmirror \
	>"$T_DIR/v.out" 2>&1
RC=$?
check "crm_resource --validate without lun fails (not configured)" \
	bash -c "[ $RC != 0 ] && grep -q 'lun is required' '$T_DIR/v.out'"
in_ra bash -c "cd '$T_DIR' && cibadmin --empty >pcs.xml &&
	pcs -f pcs.xml property set stonith-enabled=false &&
	pcs -f pcs.xml resource create vol0 ocf:ipmirror:ipmirror lun=vol0 promotable notify=true &&
	crm_verify -x pcs.xml" >"$T_DIR/pcs.out" 2>&1
RC=$?
check "pcs creates the promotable resource from the agent's metadata; crm_verify passes" \
	bash -c "[ $RC = 0 ] && grep -q 'type=\"ipmirror\" provider=\"ipmirror\"' '$T_DIR/pcs.xml' &&
		 grep -q 'name=\"promotable\" value=\"true\"' '$T_DIR/pcs.xml'"

# ---- the fence handler on that CIB (offline: CIB_file) -------------------------
FENCE="$top_srcdir/agent/ipmirror-fence-peer"
fcib() { CIB_file="$T_DIR/pcs.xml" "$@"; }
fcib "$FENCE" --node node1 fence vol0 >"$T_DIR/fence.out" 2>&1
RC=$?
check "ipmirror-fence-peer fence vol0: constraint ipmirror-fence-vol0-clone (Promoted -INFINITY unless #uname node1); crm_verify passes" \
	eval 'test $RC = 0 && fcib cibadmin -Q --xpath "//rsc_location[@id=\"ipmirror-fence-vol0-clone\"][@rsc=\"vol0-clone\"]/rule[@role=\"Promoted\"][@score=\"-INFINITY\"]/expression[@attribute=\"#uname\"][@operation=\"ne\"][@value=\"node1\"]" >/dev/null &&
		crm_verify -x "$T_DIR/pcs.xml"'
fcib "$FENCE" --node node2 unfence vol0 >>"$T_DIR/fence.out" 2>&1
RC=$?
check "unfence by node2 leaves node1's constraint in place (exit 0)" \
	eval 'test $RC = 0 && fcib cibadmin -Q --xpath "//rsc_location[@id=\"ipmirror-fence-vol0-clone\"]" >/dev/null'
fcib "$FENCE" --node node1 unfence vol0 >>"$T_DIR/fence.out" 2>&1
RC=$?
check "unfence by node1 removes it; again is a no-op; an unknown LUN has nothing to fence" \
	eval 'test $RC = 0 && ! fcib cibadmin -Q --xpath "//rsc_location[@id=\"ipmirror-fence-vol0-clone\"]" >/dev/null 2>&1 &&
		fcib "$FENCE" --node node1 unfence vol0 >/dev/null && fcib "$FENCE" --node node1 fence vol9 | grep -q "nothing to fence"'
sed 's/^/# /' "$T_DIR/fence.out"

# ---- promote / demote on two daemons ------------------------------------------
pair_setup vol0:16M:sync:yes:node1
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n?.log)"
wait_for 15 lun_state_is node1 vol0 uptodate || bail "vol0 never up to date"
wait_for 15 lun_state_is node2 vol0 uptodate || bail "mirror never up to date"
ra() { # NODE ACTION: the agent against NODE's daemon; exit status in RC
	OCF_RESKEY_lun=vol0 OCF_RESKEY_socket="ipm-$$-$1" OCF_RESKEY_ipmirrorctl="$IPMIRRORCTL" \
		"$AGENT" "$2" >>"$T_DIR/ra.log" 2>&1
	RC=$?
}
ra node1 monitor; check "monitor on the primary: 8 (running promoted)" test "$RC" = 8
ra node2 monitor; check "monitor on the mirror: 0 (running)" test "$RC" = 0
OCF_RESKEY_lun=vol0 OCF_RESKEY_socket="ipm-$$-none" OCF_RESKEY_ipmirrorctl="$IPMIRRORCTL" \
	"$AGENT" monitor >>"$T_DIR/ra.log" 2>&1
check "monitor without a daemon: 7 (not running)" test $? = 7

ctl node2 promote vol0 >"$T_DIR/out" 2>&1
RC=$?
check "promote refused while the peer is primary and connected (exit 1, reason)" \
	bash -c "[ $RC = 1 ] && grep -q 'demote it there first' '$T_DIR/out'"

PATH=/usr/bin:$PATH nbdsh -u "nbd://127.0.0.1:$N1_NBD/vol0" \
	-c 'h.pwrite(b"ipmirror-pacemaker" * 1000, 4096)' 2>>"$T_DIR/nbd.err"
ra node1 demote; check "agent demote on node1" test "$RC" = 0
ra node2 promote; check "agent promote on node2 after the clean demotion" test "$RC" = 0
check "node2 is primary, node1 mirror" \
	test "$(lun_field node2 vol0 role)/$(lun_field node1 vol0 role)" = primary/mirror
wait_for 15 lun_state_is node1 vol0 uptodate
check "the old primary mirrors the new one (uptodate)" lun_state_is node1 vol0 uptodate
check "data written on node1 reads back on node2" \
	env PATH=/usr/bin:$PATH nbdsh -u "nbd://127.0.0.1:$N2_NBD/vol0" \
	-c 'assert h.pread(18000, 4096) == b"ipmirror-pacemaker" * 1000'

# a mirror that never saw its primary cannot be promoted: restart node1's
# daemon (no memory) after stopping node2 (no primary anywhere)
stop_pid "$n2_pid"
stop_pid "$n1_pid"
node_start node1 || bail "node1 did not restart"
ctl node1 demote vol0 >/dev/null 2>&1 || true # config makes node1 primary: step down
ctl node1 status vol0 --json >/dev/null 2>&1
ctl node1 promote vol0 --dry-run >"$T_DIR/out" 2>&1
check "after a clean demotion the daemon allows promotion (dry run)" test $? = 0
# node2 as a brand-new node: no generation file, so nothing says its copy
# was ever consistent (with the file, it would be: the verdict is persisted)
rm -f "$T_DIR/node2-vol0.img.journal.gen"
node_start node2 || bail "node2 did not restart"
ctl node2 promote vol0 >"$T_DIR/out" 2>&1
RC=$?
check "a fresh mirror with no history is refused promotion (exit 1, reason)" \
	bash -c "[ $RC = 1 ] && grep -q 'promoting would lose writes' '$T_DIR/out'"

# a brand-new primary (from the config) that never wrote and steps down
# cleanly is the reference copy: it stays promotable once its restarted
# engine calls it "outdated" (the agent starts every instance this way, so
# a new cluster would otherwise never promote anyone)
stop_pid "$n2_pid"
stop_pid "$n1_pid"
rm -f "$T_DIR"/node?-vol0.img.journal*
node_start node1 || bail "node1 did not restart"
ctl node1 demote vol0 >"$T_DIR/demote.out" 2>&1 || diag "demote: $(cat "$T_DIR/demote.out")"
wait_for 10 lun_state_is node1 vol0 outdated
sleep 1.5 # the status poll (every 0.5 s) has judged the demoted copy
ctl node1 promote vol0 --dry-run >"$T_DIR/out" 2>&1
check "a fresh primary demoted cleanly stays promotable (dry run: $(cat "$T_DIR/out"))" \
	grep -q 'can be promoted' "$T_DIR/out"
finish
