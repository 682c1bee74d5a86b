#!/bin/bash
# Data generations and split brain (doc/generations.md), on two daemons in
# network namespaces:
#  1. split brain: with the link down, node1 (primary) writes A, node2 is
#     force-promoted and writes B, then demoted again; when the link returns
#     both report splitbrain, nothing is merged (each keeps its own data),
#     `resolve --discard-local` is refused where it must be, and on node2 it
#     makes node2 take node1's data whole.
#  2. behind: node1 is killed while mirroring, node2's daemon restarts (its
#     copy stays known consistent), it is promoted without --force and writes
#     C; node1 comes back as mirror: it is behind, resyncs from node2 (its
#     own unreplicated leftovers are overwritten), and both end equal.
# the split brain and the forced demotion that make it are logged as crit
T_LOG_ALLOW='crit: lun vol0: (SPLIT BRAIN|FORCED demotion against the safety check)'
. "$top_srcdir/tests/lib.sh"
plan 25

pair_up vol0:64M:sync:yes:node1
check "mirroring is up" wait_for 20 lun_state_is node2 vol0 uptodate
g1=$(lun_field node1 vol0 generation); g2=$(lun_field node2 vol0 generation)
check "both nodes at the same data generation ($g1)" test "$g1" = "$g2" -a "$g1" != none

write_on() { # NODE FILE: the whole LUN through NODE's NBD server
	local a; a=$(eval echo "\$N${1#node}_ADDR"); local p; p=$(eval echo "\$N${1#node}_NBD")
	in_node "$1" nbdcopy "$2" "nbd://$a:$p/vol0"
}
head -c 64M /dev/urandom >"$T_DIR/A"
head -c 64M /dev/urandom >"$T_DIR/B"
head -c 64M /dev/urandom >"$T_DIR/C"

# ---- 1. split brain ---------------------------------------------------------
link_down
check "link down: node1 journaling" wait_for 15 lun_state_is node1 vol0 journaling
write_on node1 "$T_DIR/A"
check "node1 wrote without its peer: new data generation" \
	test "$(lun_field node1 vol0 generation)" != "$g1"
# node2 must have seen its primary go (outdated), or the forced promotion
# overrides "still its primary and connected" instead (a crit line)
wait_for 15 lun_state_is node2 vol0 outdated || diag "node2 is $(lun_field node2 vol0 state), not outdated"
ctl node2 promote vol0 --force >"$T_DIR/promote.out" 2>&1
check "node2 force-promoted while the link is down" test $? = 0
write_on node2 "$T_DIR/B"
check "node2 wrote without its peer: a generation of its own" \
	bash -c "[ '$(lun_field node2 vol0 generation)' != '$g1' ]"
ctl node2 demote vol0 --force >"$T_DIR/demote.out" 2>&1
check "node2 demoted again (journal kept, --force)" test $? = 0
link_up
check "node1 (primary) reports splitbrain" wait_for 30 lun_state_is node1 vol0 splitbrain
check "node2 (mirror) reports splitbrain" wait_for 30 lun_state_is node2 vol0 splitbrain
check "both logs name the split brain" \
	bash -c "grep -q 'SPLIT BRAIN' '$T_DIR/n1.log' && grep -q 'SPLIT BRAIN' '$T_DIR/n2.log'"
sleep 3 # connection attempts go on: still nothing may be merged
check "nothing merged: node1 keeps A" cmp -s "$T_DIR/A" "$T_DIR/node1-vol0.img"
check "nothing merged: node2 keeps B" cmp -s "$T_DIR/B" "$T_DIR/node2-vol0.img"
st=$(ctl node1 status 2>&1)
check "the status table says splitbrain" grep -q splitbrain <<<"$st"
out=$(ctl node1 resolve vol0 --discard-local 2>&1); rc=$?
check "resolve on the primary is refused with the reason (exit $rc)" \
	bash -c "[ $rc = 1 ] && grep -q 'demote it here first' <<<'$out'"
ctl node2 resolve vol0 >/dev/null 2>&1; rc=$?
check "resolve without --discard-local is a usage error (exit $rc)" test "$rc" = 2
out=$(ctl node2 resolve vol0 --discard-local 2>&1); rc=$?
check "resolve --discard-local on node2 accepted: $out" test "$rc" = 0
check "node2 resyncs the whole LUN from node1 and is up to date" \
	wait_for 60 lun_state_is node2 vol0 uptodate
check "node1 leaves splitbrain" wait_for 20 lun_state_is node1 vol0 uptodate
check "node2 now holds node1's data A" cmp -s "$T_DIR/A" "$T_DIR/node2-vol0.img"
check "same generation again" \
	bash -c "[ '$(lun_field node1 vol0 generation)' = '$(lun_field node2 vol0 generation)' ]"

# ---- 2. the node behind resyncs from the one ahead --------------------------
kill9 "$n1_pid"
# the mirror's daemon restarts too: its copy is still known to be consistent
# (kept in the generation file), so it may be promoted without --force
kill9 "$n2_pid"
node_start node2 || bail "node2 did not restart: $(tail "$T_DIR"/n2.log)"
out=$(ctl node2 promote vol0 --dry-run 2>&1)
check "restarted mirror still known consistent: $out" grep -q "can be promoted" <<<"$out"
ctl node2 promote vol0 >/dev/null 2>&1
check "node2 promoted after node1 died, without --force" test $? = 0
write_on node2 "$T_DIR/C"
# node1 comes back; its config names it primary, so it is demoted at once
# (as the OCF agent's start does under Pacemaker)
node_start node1 || bail "node1 did not restart: $(tail "$T_DIR"/n1.log)"
ctl node1 demote vol0 --force >/dev/null 2>&1
check "node1, behind, resyncs from node2 and is up to date" \
	wait_for 60 lun_state_is node1 vol0 uptodate
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "both copies hold node2's data C" \
	bash -c "cmp -s '$T_DIR/C' '$T_DIR/node1-vol0.img' && cmp -s '$T_DIR/C' '$T_DIR/node2-vol0.img'"
finish
