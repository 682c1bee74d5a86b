#!/bin/bash
# hb_replay.sh - real heartbeat datagrams recorded over ten boots of node2
# (more than the eight boots a list of retired boot ids remembered),
# replayed to node1 after node1 has restarted too: none is accepted (each
# would have counted as a peer restart and put the link on probation), the
# link stays up, the LUN stays up to date. Then node2 dies and node1
# restarts once more: the replays, the only datagrams it gets now, do not
# make the dead peer look alive.
. "$top_srcdir/tests/lib.sh"
plan 12

CAP="$top_srcdir/tests/tools/udp_capture.py"
REC="$T_DIR/recorded"
PAIR_HB='interval="0.2" timeout="2.0" probation="1"' pair_local vol0:16M:sync:yes:node1
peer_hb() { ctl node1 status --json | jq -r .peer.heartbeat; }
peer_up() { [ "$(peer_hb)" = up ]; }
check "node1 hears node2" wait_for 20 peer_up

# five datagrams of each boot recorded on their way to node1, then the
# next boot: node1 accepts each boot live, as it happens
: >"$REC"
for boot in 1 2 3 4 5 6 7 8 9 10; do
	python3 "$CAP" capture "$N1_HB" 5 "$REC" 5 || diag "boot $boot: fewer than 5 datagrams"
	stop_pid "$n2_pid"
	node_start node2 || bail "node2 did not restart: $(tail -5 "$T_DIR/n2.log")"
done
check "50 datagrams recorded over 10 boots of node2" [ "$(wc -l <"$REC")" -eq 50 ]
check "node1 hears node2's 11th boot" wait_for 20 peer_up

# node1 restarts: what it knows of node2's boots now comes from its state file
stop_pid "$n1_pid"
node_start node1 || bail "node1 did not restart: $(tail -5 "$T_DIR/n1.log")"
check "node1, restarted, hears node2" wait_for 20 peer_up
check "the mirror is up to date again" wait_for 40 lun_state_is node1 vol0 uptodate

mark=$(wc -l <"$T_DIR/n1.log")
seen="$T_DIR/seen"
: >"$seen"
python3 "$CAP" replay "$N1_HB" "$REC" 0.05 &
replay_pid=$!
T_PIDS="$T_PIDS $replay_pid"
while kill -0 "$replay_pid" 2>/dev/null; do peer_hb >>"$seen"; sleep 0.1; done
wait "$replay_pid"
# and for twice the probation after it
for _ in $(seq 20); do peer_hb >>"$seen"; sleep 0.1; done
diag "peer heartbeat seen during and after the replay: $(sort "$seen" | uniq -c | tr '\n' ' ')"
check "the link stayed up throughout" bash -c "! grep -vqx up '$seen'"
check "no replay taken for a peer restart (no probation since)" \
	bash -c "! tail -n +$((mark + 1)) '$T_DIR/n1.log' | grep -q probation"
# the drop report is rate-limited to one line per 5 s: one more after it
# makes the next line carry the count
sleep 5.5
head -1 "$REC" >"$T_DIR/one"
python3 "$CAP" replay "$N1_HB" "$T_DIR/one" 0
drops() {
	tail -n +$((mark + 1)) "$T_DIR/n1.log" |
		grep -q "dropped: replayed datagram of an earlier peer boot (boot [0-9]*; the peer is at boot [0-9]*) (51 dropped so far"
}
check "all 51 replays dropped as datagrams of earlier boots" wait_for 5 drops ||
	diag "$(grep dropped "$T_DIR/n1.log" | tail -3)"
check "the mirror stayed up to date" lun_state_is node1 vol0 uptodate

# node2 dies, node1 restarts and has not heard it since: only its state
# file tells the recordings from a live peer
stop_pid "$n2_pid"
stop_pid "$n1_pid"
mark=$(wc -l <"$T_DIR/n1.log")
node_start node1 || bail "node1 did not restart: $(tail -5 "$T_DIR/n1.log")"
: >"$seen"
python3 "$CAP" replay "$N1_HB" "$REC" 0.05 &
replay_pid=$!
T_PIDS="$T_PIDS $replay_pid"
while kill -0 "$replay_pid" 2>/dev/null; do peer_hb >>"$seen"; sleep 0.1; done
wait "$replay_pid"
diag "peer heartbeat seen with node2 dead: $(sort "$seen" | uniq -c | tr '\n' ' ')"
check "a dead peer stays down under the replay" bash -c "! grep -vqx down '$seen'"
check "no recording accepted (no transition logged since the restart)" \
	bash -c "! tail -n +$((mark + 1)) '$T_DIR/n1.log' | grep -q 'heartbeat: down ->'"
finish
