#!/bin/bash
# ipmirrorctl reload adds and removes LUNs (issue 15 item 4) on a real pair
# in network namespaces, under fio --verify on vol0: vol2 added to the file
# and reloaded on node1, then node2 a moment later, comes up with its
# initial sync (node2's copy inconsistent, node1's resyncing, then both
# uptodate) and node1's data copied; vol3 (primary node2, so its mirror
# reloads first) likewise from node2; an NBD client writes to it on node1;
# every connection of before is still there and vol0's load passes verify.
# Removing vol2 while in service is refused naming it; down on both, then
# removed from the file and reloaded: gone from status.
. "$top_srcdir/tests/lib.sh"
plan 16

F="$T_DIR/pair.xml"
edit() { sed -i "$@" "$F"; }
reload() { # NODE [ARGS]: output in $T_DIR/reload.out, status in RC
	ctl "$1" reload "${@:2}" >"$T_DIR/reload.out" 2>&1
	RC=$?
	sed 's/^/#   /' "$T_DIR/reload.out"
}
said() { grep -qF -- "$1" "$T_DIR/reload.out"; }
conns() { for n in node1 node2; do in_node "$n" ss -Htn state established | awk '{print $3, $4}'; done | sort; }
has_lun() { ctl "$1" status --json | jq -e "[.luns[].name] | index(\"$2\") != null" >/dev/null; }
has_vol2() { has_lun "$1" vol2; }
# the states vol2 went through on NODE, one line each, into FILE
watch_states() {
	local end=$(( $(date +%s) + 40 )) s
	while [ "$(date +%s)" -lt "$end" ]; do
		s=$(lun_field "$1" vol2 state 2>/dev/null)
		[ "$s" = "$(tail -n1 "$2" 2>/dev/null)" ] || echo "$s" >>"$2"
		[ "$s" = uptodate ] && return 0
		sleep 0.1
	done
}

netns_pair || bail "cannot create network namespaces"
PAIR_RESYNC_RATE=4M pair_setup vol0:64M:sync:yes:node1 vol1:16M:sync:yes:node2
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
wait_for 20 lun_state_is node1 vol0 uptodate && wait_for 20 lun_state_is node2 vol1 uptodate ||
	bail "the pair never came up to date"

load_start 48M 60
check "vol0's load is mirrored" field_grows node1 vol0 mirrored_bytes
C0=$(conns)
diag "connections: $(echo "$C0" | wc -l)"

# vol2: 16M, node1's copy holds data before the reload, node2's is empty;
# vol3 (4M, primary node2) the other way round
head -c 16M /dev/urandom >"$T_DIR/node1-vol2.img"
truncate -s 16M "$T_DIR/node2-vol2.img"
head -c 4M /dev/urandom >"$T_DIR/node2-vol3.img"
truncate -s 4M "$T_DIR/node1-vol3.img"
edit "s|^</ipmirror>|  <lun name=\"vol2\" size=\"16M\" mode=\"sync\" mirrored=\"yes\" primary=\"node1\"><backing node=\"node1\" path=\"$T_DIR/node1-vol2.img\"/><backing node=\"node2\" path=\"$T_DIR/node2-vol2.img\"/></lun>\n&|"
edit "s|^</ipmirror>|  <lun name=\"vol3\" size=\"4M\" mode=\"async\" mirrored=\"yes\" primary=\"node2\"><backing node=\"node1\" path=\"$T_DIR/node1-vol3.img\"/><backing node=\"node2\" path=\"$T_DIR/node2-vol3.img\"/></lun>\n&|"
L_V2=$(grep -n -m1 '<lun name="vol2"' "$F" | cut -d: -f1)
L_V3=$(grep -n -m1 '<lun name="vol3"' "$F" | cut -d: -f1)
reload node1 --dry-run
check "--dry-run lists vol2 ($F:$L_V2) and vol3 ($F:$L_V3) to be added, adds nothing" \
	eval '[ $RC = 0 ] && said "$F:$L_V2: lun \"vol2\" added" && said "$F:$L_V3: lun \"vol3\" added" &&
		said "dry run: 2 changes" && ! has_vol2 node1'
reload node1
check "reload on node1: vol2 and vol3 added" \
	eval '[ $RC = 0 ] && said "lun \"vol2\" added" && has_vol2 node1 && has_lun node1 vol3'
sleep 2 # node2 reloads a moment later: the sessions made on node1 wait for it
reload node2
check "reload on node2: vol2 and vol3 added" eval '[ $RC = 0 ] && has_vol2 node2 && has_lun node2 vol3'
watch_states node2 "$T_DIR/states2" &
w2=$!
watch_states node1 "$T_DIR/states1"
wait "$w2"
diag "vol2 on node1: $(tr '\n' ' ' <"$T_DIR/states1"); on node2: $(tr '\n' ' ' <"$T_DIR/states2")"
check "initial sync: node2's copy inconsistent, node1's resyncing, then uptodate on both" \
	eval 'grep -qx inconsistent "$T_DIR/states2" && grep -qx resyncing "$T_DIR/states1" &&
		wait_for 20 lun_state_is node1 vol2 uptodate && wait_for 20 lun_state_is node2 vol2 uptodate'
check "node1's data was copied to node2" cmp "$T_DIR/node1-vol2.img" "$T_DIR/node2-vol2.img"
check "vol3 (its mirror node1 reloaded first): uptodate on both, node2's data copied to node1" \
	eval 'wait_for 20 lun_state_is node2 vol3 uptodate && wait_for 20 lun_state_is node1 vol3 uptodate &&
		cmp "$T_DIR/node1-vol3.img" "$T_DIR/node2-vol3.img"'

head -c 1M /dev/urandom >"$T_DIR/P"
PATH=/usr/bin:$PATH in_node node1 timeout 30 nbdsh -u "nbd://$N1_ADDR:$N1_NBD/vol2" \
	-c "h.pwrite(open('$T_DIR/P','rb').read(), 4194304)" >"$T_DIR/nbd.out" 2>&1
check "an NBD client writes to vol2 on node1; node2's copy has it (sync)" \
	eval 'cmp -n 1048576 "$T_DIR/P" <(tail -c +4194305 "$T_DIR/node2-vol2.img")'
C1=$(conns)
check "every connection of before the reloads is still there" eval '[ -z "$(comm -23 <(echo "$C0") <(echo "$C1"))" ]'
comm -23 <(echo "$C0") <(echo "$C1") | sed 's/^/# dropped: /'

# removal: refused while in service, named (vol3 stays)
sed -i '/<lun name="vol2"/d' "$F"
reload node1
check "removing vol2 in service: refused, named, told to put it down first" \
	eval '[ $RC = 1 ] && said "lun \"vol2\" removed (it was on line $L_V2" && said "ipmirrorctl down vol2\` first" && has_vol2 node1'
out=$(ctl node1 down vol2 2>&1); out2=$(ctl node2 down vol2 2>&1)
check "down vol2 on both nodes: $out; $out2" eval 'lun_state_is node1 vol2 down && lun_state_is node2 vol2 down'
reload node1; R1=$RC
reload node2
check "reload on both: vol2 removed, gone from status" \
	eval '[ $R1 = 0 ] && [ $RC = 0 ] && said "lun \"vol2\" removed" && ! has_vol2 node1 && ! has_vol2 node2'
check "vol0, vol1 and vol3 still serve (up to date on their mirror)" \
	eval 'lun_state_is node2 vol0 uptodate && lun_state_is node1 vol1 uptodate && lun_state_is node1 vol3 uptodate'

C2=$(conns)
check "fio still runs; vol0's and vol1's connections (and fio's) are the ones from the start" \
	eval 'kill -0 $fio_pid && [ -z "$(comm -23 <(echo "$C0") <(echo "$C2"))" ]'
wait "$fio_pid"
check "fio verify on vol0 passed" test $? = 0
stop_pid "$n1_pid"; stop_pid "$n2_pid"
finish
