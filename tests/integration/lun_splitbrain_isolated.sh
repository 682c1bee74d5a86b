#!/bin/bash
# A split brain stays in its LUN (issue 15 item 3), on two daemons in
# network namespaces: node1 is primary of vol0 and vol1. With the link down
# vol1 is written on node1 and, force-promoted, on node2 (a split brain of
# vol1 alone); the link comes back. vol1 reports splitbrain on both nodes
# and nothing of it is merged, while vol0 of the same direction mirrors
# live: under fio --verify it is uptodate with journal_bytes 0 in every
# status sample (every 0.2 s, both nodes). Then vol1 is resolved on node2
# (--discard-local) and copied whole, vol0 still untouched; both LUNs end
# byte-identical.
T_LOG_ALLOW='crit: lun vol1: (SPLIT BRAIN|FORCED (promotion|demotion) against the safety check)'
. "$top_srcdir/tests/lib.sh"
plan 13

pair_up vol0:64M:sync:yes:node1 vol1:32M:sync:yes:node1
both_uptodate() {
	local n l
	for n in node1 node2; do
		for l in vol0 vol1; do lun_state_is "$n" "$l" uptodate || return 1; done
	done
}
check "mirroring is up, both LUNs up to date on both nodes" wait_for 30 both_uptodate
write_on() { # NODE LUN FILE: the whole LUN through NODE's NBD server
	local a p
	a=$(eval echo "\$N${1#node}_ADDR"); p=$(eval echo "\$N${1#node}_NBD")
	in_node "$1" timeout 60 nbdcopy "$3" "nbd://$a:$p/$2"
}
head -c 32M /dev/urandom >"$T_DIR/A"
head -c 32M /dev/urandom >"$T_DIR/B"

link_down
check "link down: node1 journals vol1" wait_for 15 lun_state_is node1 vol1 journaling
write_on node1 vol1 "$T_DIR/A"
wait_for 15 lun_state_is node2 vol1 outdated || diag "node2's vol1 is $(lun_field node2 vol1 state)"
ctl node2 promote vol1 --force >"$T_DIR/p.out" 2>&1 && write_on node2 vol1 "$T_DIR/B" &&
	ctl node2 demote vol1 --force >>"$T_DIR/p.out" 2>&1
check "vol1 written on both nodes without the other: $(tr '\n' ' ' <"$T_DIR/p.out")" test $? = 0
link_up
check "vol1 split brain on node1" wait_for 30 lun_state_is node1 vol1 splitbrain
check "vol1 split brain on node2" wait_for 30 lun_state_is node2 vol1 splitbrain
vol0_live() { lun_state_is node1 vol0 uptodate && lun_state_is node2 vol0 uptodate; }
check "vol0, of the same direction, is up to date on both nodes again" wait_for 30 vol0_live

# vol0 under load while vol1 stays split: never journaling, never resyncing
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" load --size=32M --time_based --runtime=8 &
f0=$!
lun_watch node1 vol0 7 "$T_DIR/watch1" &
w1=$!
lun_watch node2 vol0 7 "$T_DIR/watch2" &
w2=$!
wait $w1 $w2
n=$(cat "$T_DIR/watch1" "$T_DIR/watch2" | wc -l)
bad=$(cat "$T_DIR/watch1" "$T_DIR/watch2" | grep -vc '^uptodate 0$')
check "vol0 uptodate with journal_bytes 0 in all $n samples while vol1 is split ($(sort "$T_DIR/watch1" "$T_DIR/watch2" | uniq -c | tr '\n' ' '))" \
	test "$n" -ge 10 -a "$bad" = 0
wait $f0; r=$?
check "fio verify on vol0 while vol1 is split: no error" test $r = 0
check "nothing of vol1 merged: node1 keeps A, node2 keeps B" \
	bash -c "cmp -s '$T_DIR/A' '$T_DIR/node1-vol1.img' && cmp -s '$T_DIR/B' '$T_DIR/node2-vol1.img'"

out=$(ctl node2 resolve vol1 --discard-local 2>&1)
check "resolve vol1 --discard-local on node2: $out" test $? = 0
check "vol1 copied whole from node1: up to date on both nodes" wait_for 60 both_uptodate
stop_pid "$n1_pid"
stop_pid "$n2_pid"
check "both LUNs byte-identical, vol1 holds node1's A" \
	bash -c "cmp '$T_DIR/node1-vol0.img' '$T_DIR/node2-vol0.img' && cmp -s '$T_DIR/A' '$T_DIR/node2-vol1.img' && cmp -s '$T_DIR/A' '$T_DIR/node1-vol1.img'"
finish
