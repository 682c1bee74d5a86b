#!/bin/bash
# ipmirrorctl reload and SIGHUP on a real pair in network namespaces, under
# a verifying write load on each node's LUN (vol0 primary on node1, vol1 on
# node2): each class of live change is applied (LUN mode, async window, log
# level by SIGHUP, heartbeat interval, journal max-size, resync rate), each
# change that needs a restart is refused with its FILE:LINE and nothing of
# that reload is applied (a port, a backing path, a bad file, a method the
# engine refuses, a LUN removed while in service), --dry-run applies nothing; the
# TCP connections (mirror and NBD) are the same ones before and after the
# reloads, both loads pass fio's verify, and the copies end identical.
. "$top_srcdir/tests/lib.sh"
plan 28

F="$T_DIR/pair.xml"
edit() { sed -i "$@" "$F"; }
# line_of REGEX: the file's first line matching REGEX
line_of() { grep -n -m1 -E "$1" "$F" | cut -d: -f1; }
reload() { # NODE [ARGS]: ipmirrorctl reload; output in $T_DIR/reload.out, status in RC
	ctl "$1" reload "${@:2}" >"$T_DIR/reload.out" 2>&1
	RC=$?
	sed 's/^/#   /' "$T_DIR/reload.out"
}
said() { grep -qF -- "$1" "$T_DIR/reload.out"; }
# the established TCP connections of both namespaces (mirror and NBD): the
# same set later means none was dropped or made again
conns() { for n in node1 node2; do in_node "$n" ss -Htn state established | awk '{print $3, $4}'; done | sort; }
udp_age_mean() { # NODE SAMPLES: the mean udp_age_ms of that many samples 0.1 s apart
	local i sum=0
	for i in $(seq "$2"); do
		sum=$((sum + $(ctl "$1" status --json | jq .peer.udp_age_ms)))
		sleep 0.1
	done
	echo $((sum / $2))
}

netns_pair || bail "cannot create network namespaces"
PAIR_HB='interval="0.5" timeout="2.0" probation="2"' PAIR_RESYNC_RATE=0 PAIR_JOURNAL_MAX=1G \
	pair_setup vol0:64M:sync:yes:node1 vol1:16M:sync:yes:node2
edit 's|^  <log level="info"/>|&\n  <mirror async-window="1024"/>|'
cp "$F" "$T_DIR/orig.xml"
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
wait_for 20 lun_state_is node1 vol0 uptodate && wait_for 20 lun_state_is node2 vol1 uptodate ||
	bail "the pair never came up to date"

load_start 48M 35
FIO_NODE=node2 fio_verify "nbd://$N2_ADDR:$N2_NBD/vol1" load1 --size=12M --time_based --runtime=30 &
fio1_pid=$!
check "both loads are mirrored" eval 'field_grows node1 vol0 mirrored_bytes && field_grows node2 vol1 mirrored_bytes'
C0=$(conns)
diag "connections: $(echo "$C0" | wc -l)"

reload node1
check "reload of an unchanged file: exit 0, no changes" eval '[ $RC = 0 ] && said "no changes"'

# ---- live changes -------------------------------------------------------------
edit '/<lun name="vol0"/s/mode="sync"/mode="async"/; s/async-window="1024"/async-window="256"/'
L_VOL0=$(line_of '<lun name="vol0"'); L_MIRROR=$(line_of '<mirror ')
reload node1 --dry-run
check "--dry-run lists the mode ($F:$L_VOL0) and the window ($F:$L_MIRROR), applies nothing" \
	eval '[ $RC = 0 ] && said "$F:$L_VOL0: lun \"vol0\": mode sync -> async" &&
		said "$F:$L_MIRROR: mirror async-window 1024 -> 256" && said "dry run: 2 changes" &&
		[ "$(lun_field node1 vol0 mode)" = sync ]'
reload node1
check "reload on node1: mode and window applied, vol0 async there" \
	eval '[ $RC = 0 ] && said "2 changes applied" && [ "$(lun_field node1 vol0 mode)" = async ]'
reload node2
check "reload on node2: vol0 async there too" eval '[ $RC = 0 ] && [ "$(lun_field node2 vol0 mode)" = async ]'
check "vol0 mirrors on in async mode" field_grows node1 vol0 mirrored_bytes
edit 's/async-window="256"/async-window="4096"/'
reload node1
check "a window above the one the mirror was told: applied up to it, and said so" \
	eval '[ $RC = 0 ] && said "async-window 256 -> 4096 (1024 in force"'

# SIGHUP: the log level, on node2
debug_lines() { grep -c '\] debug: ' "$T_DIR/n2.log"; }
d0=$(debug_lines)
debug_more() { [ "$(debug_lines)" -gt "$d0" ]; }
edit 's/<log level="info"/<log level="debug"/'
kill -HUP "$n2_pid"
sleep 1
ctl node2 status >/dev/null  # the admin channel logs at debug level
check "SIGHUP on node2: the reload is logged, debug lines follow" \
	eval 'wait_for 5 grep -qE "reload: [0-9]+ changes applied" "$T_DIR/n2.log" && wait_for 5 debug_more'

# heartbeat interval 0.5 -> 0.1: node2's datagrams come faster to node1
# (the mean age since the last one: about half the interval)
a0=$(udp_age_mean node1 20)
edit 's/interval="0.5"/interval="0.1"/'
reload node1; R1=$RC
reload node2
a1=$(udp_age_mean node1 20)
check "heartbeat interval 0.5 -> 0.1 s live: node1 hears node2 more often (mean age $a0 ms before, $a1 ms after)" \
	eval '[ $R1 = 0 ] && [ $RC = 0 ] && [ $((a1 * 10)) -lt $((a0 * 6)) ]'

# ---- refused changes: named with FILE:LINE, nothing applied -------------------
cp "$F" "$T_DIR/good.xml"
edit "s/port=\"$N2_DATA\"/port=\"$((N2_DATA + 50))\"/; \\|node1-vol1.img|s|node1-vol1.img|node1-other.img|"
edit '/<lun name="vol0"/s/mode="async"/mode="sync"/'
L_N2=$(line_of '<node name="node2"'); L_B=$(line_of 'node1-other.img')
reload node1
check "a port and a backing path: refused (exit 1), each with FILE:LINE ($L_N2, $L_B)" \
	eval '[ $RC = 1 ] && said "$F:$L_N2: node \"node2\": data port $N2_DATA -> $((N2_DATA + 50)): cannot change while running" &&
		said "$F:$L_B: lun \"vol1\": backing path $T_DIR/node1-vol1.img -> $T_DIR/node1-other.img" &&
		said "nothing was applied"'
check "the live change of that reload was not applied (vol0 still async)" \
	test "$(lun_field node1 vol0 mode)" = async
cp "$T_DIR/good.xml" "$F"
edit 's/interval="0.1"/interval="0.1" method="both"/; /<lun name="vol0"/s/mode="async"/mode="sync"/'
reload node1
check "method both without a heartbeat volume: refused by the engine, vol0 still async" \
	eval '[ $RC = 1 ] && said "needs the storage heartbeat" && [ "$(lun_field node1 vol0 mode)" = async ]'
cp "$T_DIR/good.xml" "$F"
edit 's|<connections count="4"/>|<connections count="4">|'
reload node1
check "a file that does not parse: refused with FILE:LINE, nothing applied" \
	eval '[ $RC = 1 ] && grep -qE "^(ipmirrorctl: )?$F:[0-9]+: " "$T_DIR/reload.out" && said "is not valid"'
cp "$T_DIR/good.xml" "$F"
truncate -s 1M "$T_DIR/node1-vol2.img" "$T_DIR/node2-vol2.img"
edit "s|^</ipmirror>|  <lun name=\"vol2\" size=\"1M\" mode=\"sync\" mirrored=\"yes\" primary=\"node1\"><backing node=\"node1\" path=\"$T_DIR/node1-vol2.img\"/><backing node=\"node2\" path=\"$T_DIR/node2-vol2.img\"/></lun>\n&|"
L_V2=$(line_of '<lun name="vol2"')
reload node1 --dry-run
check "a LUN added: listed by --dry-run ($F:$L_V2), not added (reload_luns.sh adds it)" \
	eval '[ $RC = 0 ] && said "$F:$L_V2: lun \"vol2\" added" && [ "$(ctl node1 status --json | jq ".luns | length")" = 2 ]'
cp "$T_DIR/good.xml" "$F"
edit '/<lun name="vol1"/,/<\/lun>/d'
reload node1
check "a LUN removed while in service: named, refused, told to put it down first" \
	eval '[ $RC = 1 ] && said "lun \"vol1\" removed (it was on line " && said "ipmirrorctl down vol1\` first"'
cp "$T_DIR/good.xml" "$F"

check "the loads still run" kill -0 "$fio_pid" "$fio1_pid"
C1=$(conns)
check "every mirror and NBD connection is the one from before the reloads" test "$C0" = "$C1"
[ "$C0" = "$C1" ] || diff <(echo "$C0") <(echo "$C1") | sed 's/^/# /'

# ---- journal max-size and resync rate, through an outage ---------------------
edit '/<lun name="vol0"/,/<\/lun>/s/max-size="1G"/max-size="1M"/'
reload node1
check "vol0's journal max-size 1G -> 1M applied" eval '[ $RC = 0 ] && said "journal max-size 1G -> 1M"'
link_down
check "link down: node1 journals vol0" wait_for 10 lun_state_is node1 vol0 journaling
sleep 3
# journal_bytes counts the dirty extents past the journal too: its records
# (4 KiB writes) say how much the journal itself holds
J=$(lun_field node1 vol0 journal_records); B=$(lun_field node1 vol0 journal_bytes)
check "the journal stops at the new 1M limit under the load ($J records; $B bytes with the dirty extents)" \
	eval '[ "$J" -gt 0 ] && [ $((J * 4096)) -le 1048576 ] && [ "$B" -gt 1048576 ]'

edit 's/<resync rate="0"/<resync rate="64K"/'
reload node1
check "resync rate 0 -> 64K applied" eval '[ $RC = 0 ] && said "resync rate 0 (unlimited) -> 64K"'
link_up
check "link up: vol0 resyncs" wait_for 20 lun_state_is node1 vol0 resyncing
sleep 3
R=$(lun_field node1 vol0 resync_rate)
check "the resync keeps to about 64K/s ($R bytes/s)" eval '[ "$R" -gt 0 ] && [ "$R" -le 200000 ]'
edit 's/<resync rate="64K"/<resync rate="0"/'
reload node1
check "resync rate back to unlimited: vol0 up to date soon" eval '[ $RC = 0 ] && wait_for 30 lun_state_is node1 vol0 uptodate'

wait "$fio_pid"
check "fio verify on vol0 (changed, through the outage) passed" test $? = 0
wait "$fio1_pid"
check "fio verify on vol1 (untouched) passed" test $? = 0
wait_for 20 lun_state_is node2 vol0 uptodate
wait_for 20 lun_state_is node1 vol1 uptodate
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "vol0 and vol1: both copies identical" \
	eval 'cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img" && cmp "$T_DIR/node1-vol1.img" "$T_DIR/node2-vol1.img"'
finish
