#!/bin/bash
# An interrupted initial (full) sync resumes after a restart of the primary
# daemon (doc/generations.md, "Resuming the copy"): node1 holds 64 MiB of
# random data, node2 is blank, the resync rate is 8 MiB/s (8 s for the copy).
#  1. kill -9 node1 at ~60 %, restart it: the copy resumes (log and status
#     show what was left, the bytes sent after the restart are clearly less
#     than the LUN); host writes before the kill (to copied and not yet
#     copied extents) and after the restart reach node2; byte-identical.
#  2. node2's disk replaced (a new copy, a new fill); node2 (the mirror)
#     killed at ~30 % and restarted: the copy goes on (no whole-LUN mark; it
#     copies again only what it sent since its last checkpoint); SIGTERM of
#     node1 at ~65 %: the stop saves the progress, the restart resumes from
#     it; byte-identical. (An `invalidate` of a copy being filled changes
#     nothing: it is copied whole already.)
#  3. node2's disk replaced again, node1 killed at ~60 % and, while it is
#     down, node2's disk replaced once more: the copy node1's bitmap tracks
#     is not the one node2 holds, so it starts again from zero (all of it
#     is sent) and still ends byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 27

LUN=$((64 << 20))
PAIR_RESYNC_RATE=8M pair_setup vol0:64M:sync:yes:node1
head -c "$LUN" /dev/urandom >"$T_DIR/node1-vol0.img"
URI="nbd://127.0.0.1:$N1_NBD/vol0"

# done_pct NODE: the running copy's progress in whole percent ("" if none)
done_pct() {
	ctl node1 status vol0 --json |
		jq -r '.luns[0] | if .resync_total_bytes > 0 then
			(100 * .resync_done_bytes / .resync_total_bytes | floor) else "" end'
}
past() { local p; p=$(done_pct); [ -n "$p" ] && [ "$p" -ge "$1" ] && [ "$p" -lt 100 ]; }
# host_write OFFSET BYTE: 64 KiB of BYTE at OFFSET through node1's NBD, flushed
host_write() {
	timeout 20 nbdsh -u "$URI" -c "h.pwrite(bytes([$2]) * 65536, $1); h.flush()"
}
# has_bytes NODE OFFSET BYTE: NODE's backing holds 64 KiB of BYTE at OFFSET
has_bytes() {
	cmp -s <(dd if="$T_DIR/$1-vol0.img" bs=64K skip=$(($2 >> 16)) count=1 status=none) \
		<(head -c 65536 /dev/zero | tr '\0' "$(printf '\\%03o' "$3")")
}
# sent_since LINE: bytes of the resync that completed in n1.log after LINE
sent_since() {
	tail -n +"$1" "$T_DIR/n1.log" | grep -o 'resync complete, [0-9]* bytes' | tail -n1 |
		tr -dc 0-9
}
# left_since LINE: what the resumed copy had left to copy, logged after LINE
left_since() {
	tail -n +"$1" "$T_DIR/n1.log" | grep -o 'resumes where it stopped: [0-9]* of' | tail -n1 |
		tr -dc 0-9
}
mark() { wc -l <"$T_DIR/n1.log"; }
# replace_node2: node2's disk replaced by a blank one (its files gone too)
replace_node2() {
	stop_pid "$n2_pid"
	rm -f "$T_DIR"/node2-vol0.img*
	truncate -s 64M "$T_DIR/node2-vol0.img"
	node_start node2 || bail "node2 did not restart: $(tail "$T_DIR/n2.log")"
}

# ---- 1. kill -9 of the primary -----------------------------------------------
node_start node2 || bail "node2 did not start: $(cat "$T_DIR/n2.log")"
node_start node1 || bail "node1 did not start: $(cat "$T_DIR/n1.log")"
check "the initial sync runs" wait_for 20 lun_state_is node1 vol0 resyncing
# one write behind the copy (offset 1 MiB, copied by now), one ahead (60 MiB)
wait_for 20 past 30 || bail "no progress: $(tail "$T_DIR/n1.log")"
check "host writes during the copy (behind it and ahead of it)" \
	eval 'host_write $((1 << 20)) 0xa1 && host_write $((60 << 20)) 0xa2'
wait_for 20 past 60 || bail "the copy did not pass 60 %: $(tail "$T_DIR/n1.log")"
p=$(done_pct)
kill9 "$n1_pid"
diag "node1 killed at ${p} %"
m=$(mark)
node_start node1 || bail "node1 did not restart: $(tail "$T_DIR/n1.log")"
check "node2 still inconsistent" lun_state_is node2 vol0 inconsistent
check "node1 logs that the copy resumes" wait_for 20 eval 'test -n "$(left_since $m)"'
left=$(left_since "$m")
diag "resumed with $left of $LUN bytes left (killed at $p %)"
# killed past 60 %: under 40 % left, plus up to 2 s of copy since the last
# checkpoint (16 MiB = 25 %), plus the two host writes' 4 MiB extents of
# the activity log (12.5 %: copied again after a crash); from zero is 100 %
check "it resumed near where it was killed: $left bytes left < 80 % of the LUN" \
	test "$left" -lt $((LUN * 80 / 100))
status_resumed() { p2=$(done_pct); [ -n "$p2" ] && [ "$p2" -ge 35 ]; }
check "the status starts from the progress it had" wait_for 10 status_resumed
diag "node1's status after the restart: ${p2:-?} % done"
check "a host write after the restart" host_write $((2 << 20)) 0xa3
check "node2 uptodate at the end" wait_for 40 lun_state_is node2 vol0 uptodate
sent=$(sent_since "$m")
diag "bytes sent after the restart: $sent of $LUN"
check "after the restart clearly less than the LUN was sent ($sent < 85 %)" \
	test "${sent:-$LUN}" -lt $((LUN * 85 / 100))
check "the backing files are byte-identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
check "the three host writes are on node2" \
	eval 'has_bytes node2 $((1 << 20)) 0xa1 && has_bytes node2 $((60 << 20)) 0xa2 &&
	      has_bytes node2 $((2 << 20)) 0xa3'

# ---- 2. kill -9 of the mirror, then SIGTERM of the primary ---------------------
replace_node2
check "node2's new disk is copied whole" wait_for 20 lun_state_is node1 vol0 resyncing
wait_for 20 past 30 || bail "the copy did not pass 30 %: $(tail "$T_DIR/n1.log")"
p=$(done_pct)
kill9 "$n2_pid"
m=$(mark)
node_start node2 || bail "node2 did not restart: $(tail "$T_DIR/n2.log")"
diag "node2 killed at ${p} %"
check "node2 still inconsistent after its restart" lun_state_is node2 vol0 inconsistent
wait_for 20 eval 'tail -n +$m "$T_DIR/n1.log" | grep -q "connected again, resync starts"' ||
	bail "no resync after node2's restart: $(tail "$T_DIR/n1.log")"
status_went_on() { p2=$(done_pct); [ -n "$p2" ] && [ "$p2" -ge 15 ]; }
check "the copy goes on after node2's restart (the status counts what was done)" wait_for 10 status_went_on
wait_for 20 past 65 || bail "the copy did not pass 65 %: $(tail "$T_DIR/n1.log")"
check "no whole-LUN mark after node2's restart" \
	eval '! tail -n +$m "$T_DIR/n1.log" | grep -q "needs the whole LUN"'
p=$(done_pct)
m=$(mark)
stop_pid "$n1_pid"; rc=$?
diag "node1 stopped at ${p} % (exit $rc)"
check "the stop saved the copy's progress" \
	eval 'tail -n +$m "$T_DIR/n1.log" | grep -q "the full resync.s progress is saved"'
node_start node1 || bail "node1 did not restart: $(tail "$T_DIR/n1.log")"
check "node1 logs that the copy resumes" wait_for 20 eval 'test -n "$(left_since $m)"'
left=$(left_since "$m")
diag "resumed with $left of $LUN bytes left (stopped at $p %)"
check "it resumed where it stopped: $left bytes left < 40 % of the LUN" \
	test "$left" -lt $((LUN * 40 / 100))
check "node2 uptodate at the end" wait_for 40 lun_state_is node2 vol0 uptodate
sent=$(sent_since "$m")
diag "bytes sent after the restart: $sent of $LUN"
check "after the restart clearly less than the LUN was sent ($sent < 45 %)" \
	test "${sent:-$LUN}" -lt $((LUN * 45 / 100))
check "the backing files are byte-identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"

# ---- 3. not the same copy: from zero -------------------------------------------
replace_node2
check "node2's new disk is copied whole" wait_for 20 lun_state_is node1 vol0 resyncing
wait_for 20 past 60 || bail "the copy did not pass 60 %: $(tail "$T_DIR/n1.log")"
kill9 "$n1_pid"
replace_node2
m=$(mark)
node_start node1 || bail "node1 did not restart: $(tail "$T_DIR/n1.log")"
check "node2 uptodate at the end" wait_for 40 lun_state_is node2 vol0 uptodate
check "node1 did not resume: node2 holds another copy" \
	eval '! tail -n +$m "$T_DIR/n1.log" | grep -q "resumes where it stopped"'
sent=$(sent_since "$m")
diag "bytes sent after the restart: $sent of $LUN"
check "the whole LUN was sent again ($sent bytes)" test "${sent:-0}" -ge "$LUN"
check "the backing files are byte-identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
