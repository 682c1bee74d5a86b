#!/bin/bash
# `ipmirrorctl events` on a real link cut and heal between two daemons in
# network namespaces (doc/events.md): each node's stream shows the expected
# sequence of lines (peer down, connections down, journaling / outdated;
# then probation, peer up, connections up, resyncing with progress lines at
# most once a second, up to date), each line arrives at the client within a
# second of the change (compared with when the test cut and healed the link,
# and with when a status poller beside it first saw each state), --now
# prints the current state first, --json lines parse, and `wait` returns
# within a second of the state it waits for.
. "$top_srcdir/tests/lib.sh"
plan 20

# 32M journaled during the cut, resynced at 8M/s: a resync of ~4 s
PAIR_RESYNC_RATE=8M pair_up vol0:64M:sync:yes:node1
check "mirroring is up" wait_for 20 lun_state_is node2 vol0 uptodate
sleep 1

# --now: the current state, then "exists -", then changes
now=$(ctl node1 events --now --timeout 0.5)
check "--now: the LUN, the peer, every connection, then 'exists -'" bash -c '
	grep -q "exists lun name:vol0 role:primary state:uptodate" <<<"$1" &&
	grep -q "exists peer name:node2 heartbeat:up" <<<"$1" &&
	[ "$(grep -c "exists connection .*status:up" <<<"$1")" = 4 ] &&
	[ "$(tail -n1 <<<"$1")" = "exists -" ]' _ "$now"

# each line with the time the client got it
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done; }
CTL_TIMEOUT=120 ctl node1 events > >(stamp >"$T_DIR/ev1") 2>&1 & ev1_pid=$!
CTL_TIMEOUT=120 ctl node2 events --json > >(stamp >"$T_DIR/ev2") 2>&1 & ev2_pid=$!
# a status poller beside it: when each state was first visible
poll() { while :; do printf '%s %s\n' "$(date +%s.%N)" "$(ctl node1 status vol0 --get state)"; sleep 0.1; done; }
poll >"$T_DIR/poll1" & poll_pid=$!
sleep 1

t_cut=$(date +%s.%N)
link_down
check "link down: node1 journaling" wait_for 10 lun_state_is node1 vol0 journaling
in_node node1 qemu-io -f raw "nbd://$N1_ADDR:$N1_NBD/vol0" -c 'write -P 0x5a 0 32M' >/dev/null
sleep 1
t_heal=$(date +%s.%N)
link_up
check "link healed: node1 up to date again" wait_for 60 lun_state_is node1 vol0 uptodate
wait_for 20 lun_state_is node2 vol0 uptodate
# `wait` is told by the events: it returns within a second of the state
in_node node1 qemu-io -f raw "nbd://$N1_ADDR:$N1_NBD/vol0" -c 'write -P 0x5b 0 1M' >/dev/null
sleep 1.5
kill "$poll_pid" "$ev1_pid" "$ev2_pid"; wait "$poll_pid" "$ev1_pid" "$ev2_pid" 2>/dev/null
sleep 0.2
diag "node1's stream:"; sed 's/^/#   /' "$T_DIR/ev1"

# at: when the client got the first line matching ERE after time FROM
at() { awk -v f="$3" -v p="$2" '$1 >= f && $0 ~ p { print $1; exit }' "$1"; }
# seen: when the poller first saw STATE after FROM
seen() { awk -v f="$2" -v s="$1" '$1 >= f && $2 == s { print $1; exit }' "$T_DIR/poll1"; }
le() { [ -n "$1" ] && [ -n "$2" ] && [ "$(echo "$1 <= $2" | bc)" = 1 ]; }
# order FILE FROM ERE...: the lines come in this order after FROM
order() {
	local f="$1" from="$2" prev=0 t; shift 2
	for p in "$@"; do
		t=$(at "$f" "$p" "$from")
		[ -n "$t" ] || { diag "no line /$p/"; return 1; }
		le "$prev" "$t" || { diag "/$p/ came before the line before it"; return 1; }
		prev=$t
	done
}
down=$(at "$T_DIR/ev1" 'change peer name:node2 heartbeat:down' "$t_cut")
# the heartbeat timeout is 2 s after the last datagram (sent every 0.5 s),
# checked every 0.5 s: down between 1.5 and 2.5 s after the cut, +1 s
check "peer down line $(echo "${down:-0} - $t_cut" | bc) s after the cut (1.4..3.5)" \
	bash -c "le() { [ \"\$(echo \"\$1 <= \$2\" | bc)\" = 1 ]; }; le $t_cut+1.4 ${down:-0} && le ${down:-0} $t_cut+3.5"
check "node1 after the cut: peer down, udp path down, 4 connections down, journaling" bash -c "
	$(declare -f at le order diag); order '$T_DIR/ev1' $t_cut 'change peer name:node2 heartbeat:down' \
		'change lun name:vol0 role:primary state:journaling old-state:uptodate' &&
	[ \$(awk -v f=$t_cut -v h=$t_heal '\$1 >= f && \$1 < h' '$T_DIR/ev1' | grep -c 'change connection .*direction:outgoing status:down') = 4 ] &&
	[ -n \"\$(at '$T_DIR/ev1' 'change path peer:node2 path:udp state:down' $t_cut)\" ]"
prob=$(at "$T_DIR/ev1" 'change peer name:node2 heartbeat:probation' "$t_heal")
check "probation line $(echo "${prob:-0} - $t_heal" | bc) s after the heal (within 1 s)" \
	le "${prob:-0}" "$(echo "$t_heal + 1.0" | bc)"
check "node1 after the heal: probation, peer up, connections up, resyncing, up to date" \
	order "$T_DIR/ev1" "$t_heal" 'change peer name:node2 heartbeat:probation' \
	'change peer name:node2 heartbeat:up' 'change connection .*status:up' \
	'change lun name:vol0 role:primary state:resyncing' \
	'change lun name:vol0 role:primary state:uptodate old-state:resyncing'
up=$(at "$T_DIR/ev1" 'change peer name:node2 heartbeat:up' "$t_heal")
check "peer up $(echo "${up:-0} - ${prob:-0}" | bc) s after probation began (3 s probation, +1 s)" \
	bash -c "[ \"\$(echo '${up:-0} - ${prob:-0} >= 2.9 && ${up:-0} - ${prob:-0} <= 4.0' | bc)\" = 1 ]"
# every LUN state the poller saw came as a line no later than 1 s after it
late=""
for s in journaling probation resyncing uptodate; do
	from=$t_cut; [ "$s" = journaling ] || from=$t_heal
	p=$(seen "$s" "$from"); e=$(at "$T_DIR/ev1" "change lun name:vol0 .*state:$s " "$from")
	[ -z "$e" ] && e=$(at "$T_DIR/ev1" "change lun name:vol0 .*state:$s\$" "$from")
	diag "state $s: poller saw it at +$(echo "${p:-0} - $from" | bc) s, event at +$(echo "${e:-0} - $from" | bc) s"
	[ -n "$p" ] || continue
	le "${e:-99999999999}" "$(echo "$p + 1.0" | bc)" || late="$late $s"
done
check "each state's line no later than 1 s after a poller saw it (late:${late:- none})" test -z "$late"
check "a resync progress line while resyncing" grep -q 'change progress name:vol0 kind:resync ' "$T_DIR/ev1"
# node2's stream, in JSON
check "node2's --json lines all parse" bash -c "cut -d' ' -f2- '$T_DIR/ev2' | jq -e . >/dev/null"
j2() { cut -d' ' -f2- "$T_DIR/ev2" | jq -r 'select(.object == "lun") | .state' | tr '\n' ' '; }
check "node2: its LUN went outdated, then up to date ($(j2))" bash -c "[[ '$(j2)' == *outdated*uptodate* ]]"
check "node2: incoming connections down, then up" bash -c "
	cut -d' ' -f2- '$T_DIR/ev2' | jq -r 'select(.object == \"connection\") | .direction + \":\" + .status' |
		tr '\n' ' ' | grep -qE 'incoming:down.*incoming:up'"

# progress: node2's copy invalidated, copied whole at 8M/s (8 s)
CTL_TIMEOUT=60 ctl node1 events > >(stamp >"$T_DIR/ev3") 2>&1 & ev3_pid=$!
sleep 0.5
check "node2's copy invalidated" ctl node2 invalidate vol0
wait_for 5 lun_state_is node1 vol0 resyncing
wait_for 30 lun_state_is node1 vol0 uptodate; wait_for 20 lun_state_is node2 vol0 uptodate
sleep 0.5
kill "$ev3_pid"; wait "$ev3_pid" 2>/dev/null
mapfile -t prog < <(grep ' change progress name:vol0 ' "$T_DIR/ev3" | awk '{print $2}')
diag "$(grep ' change progress' "$T_DIR/ev3" | head -n 3)"
check "progress lines while the whole copy runs (${#prog[@]})" test "${#prog[@]}" -ge 4
gaps_ok=1
for ((i = 1; i < ${#prog[@]}; i++)); do
	g=$(( $(date -d "${prog[i]}" +%s%3N) - $(date -d "${prog[i-1]}" +%s%3N) ))
	[ "$g" -ge 950 ] || { gaps_ok=; diag "progress lines ${g} ms apart"; }
done
check "progress lines at most once a second" test -n "$gaps_ok"
last=$(grep 'change progress' "$T_DIR/ev3" | tail -n1)
check "progress lines carry kind, done, total, percent, rate and eta" \
	grep -qE 'kind:[a-z-]+ done:[0-9]+ total:[0-9]+ percent:[0-9.]+ rate:[0-9]+ eta:-?[0-9]+' <<<"$last"

# wait: returns within a second of the state (told, not polling every 0.2 s)
link_down
wait_for 10 lun_state_is node1 vol0 journaling
# (2.5 s before the heal: its safety-net look every 5 s then falls in the
# probation, and the next one long after the resync)
CTL_TIMEOUT=60 ctl node1 wait vol0 --state uptodate --timeout 40 & w_pid=$!
sleep 2.5
link_up
wait_for 30 lun_state_is node1 vol0 uptodate; t_up=$(date +%s.%N)
wait "$w_pid"; rc=$?; t_w=$(date +%s.%N)
check "wait returned (exit $rc) $(echo "$t_w - $t_up" | bc) s after a poller saw uptodate" \
	bash -c "[ $rc = 0 ] && [ \"\$(echo '$t_w - $t_up <= 1.0' | bc)\" = 1 ]"
finish
