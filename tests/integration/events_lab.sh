#!/bin/bash
# `ipmirrorctl events --json` and Prometheus /metrics (doc/events.md,
# doc/metrics.md) in the Pacemaker lab (tests/lab): vol0 is a promotable
# clone, each node's daemon serves /metrics on the cluster network (the
# test adds <metrics> to its own copy of the lab config). A stream runs on
# each node from before the Promoted node P takes 16 MiB through NBD until
# after a Pacemaker-driven move of the Promoted role to Q (pcs resource
# move --promoted, then cleared) and a cut and heal of the replication
# link. Asserted: P's stream shows vol0 primary -> mirror and Q's mirror ->
# primary, demote before promote, each within 2 s of Pacemaker's own record
# of that operation (pacemaker.log); on Q then up to date as primary, the
# peer down and journaling after the cut, peer up and up to date after the
# heal, in that order. Every scrape parses with promtext.py; P's written
# bytes grow by at least the 16 MiB; the role series follow the move;
# during the cut Q's heartbeat age of P passes 2 s and after the heal it is
# back under 2 s. EVENTS_LAB_BREAK=order expects the promote before the
# demote (to see the order check fail). T_KEEP=1 keeps $T_DIR.
T_LIMIT=${T_LIMIT:-1800}  # a whole cluster comes up and goes down
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"

LAB_TAG=ipmev
. "$top_srcdir/tests/lab/cluster.sh"
PROM="$top_srcdir/tests/integration/py/promtext.py"
MPORT=9943   # inside each node's own namespace
command -v curl >/dev/null 2>&1 || { echo "1..0 # SKIP curl not installed"; exit 0; }

plan 28
cluster_env
cluster_config
# metrics on each node's cluster-network address, in this test's config only
for n in 1 2; do
	sed -i "s|<nbd address=\"10.203.0.$n\" port=\"10809\"/>|&<metrics address=\"10.203.0.$n\" port=\"$MPORT\"/>|" "$CFG"
done
grep -q "<metrics address=\"10.203.0.2\"" "$CFG" || bail "no <metrics> in $CFG"
"$IPMIRRORD" --check-config --config "$CFG" >"$T_DIR/check.out" 2>&1 ||
	bail "config with <metrics> rejected: $(cat "$T_DIR/check.out")"
cluster_up
check "crm_mon -1 -A: ipmirror-vol0-state uptodate on both nodes" within 90 both_uptodate

# scrape NODE NAME: GET /metrics inside NODE into $T_DIR/NAME.raw, checked by
# promtext.py; the series "name{sorted labels} value" into $T_DIR/NAME
scrape() {
	lab exec "$1" curl -sS --max-time 5 -o "$T_DIR/$2.raw" -w '%{http_code}' \
		"http://$(addr_of "$1"):$MPORT/metrics" >"$T_DIR/$2.http" 2>&1 &&
		[ "$(cat "$T_DIR/$2.http")" = 200 ] || { diag "$1: $(cat "$T_DIR/$2.http")"; return 1; }
	python3 "$PROM" check "$T_DIR/$2.raw" >"$T_DIR/$2" 2>"$T_DIR/$2.err" ||
		{ diag "$1: the text does not parse: $(cat "$T_DIR/$2.err")"; return 1; }
}
val() { awk -v k="$2" '$1 == k { print $2 }' "$T_DIR/$1"; }
is() { scrape "$1" now && [ "$(val now "$2")" = "$3" ]; }
# cmpv NODE SERIES OP N: a fresh scrape of NODE has SERIES OP N (awk)
cmpv() { scrape "$1" now && awk -v v="$(val now "$2")" -v n="$4" "BEGIN { exit !(v != \"\" && v $3 n) }"; }
role_series() { echo "ipmirror_lun_role{lun=\"vol0\",node=\"$1\",role=\"$2\"}"; }
age_series() { echo "ipmirror_peer_heartbeat_age_seconds{node=\"$1\",path=\"udp\",peer=\"$2\"}"; }

# ---- the streams: one per node, bounded, stopped by PID at the end ----------
ev_start() {
	lab exec "$1" sh -c 'echo $$ >"$1"; exec timeout 300 "$2" --socket "$3" events --json --timeout 240' \
		_ "$T_DIR/ev-$1.pid" "$IPMIRRORCTL" "$LAB_TAG" >"$T_DIR/ev-$1" 2>"$T_DIR/ev-$1.err" &
}
ev_start "$P"; EVP=$!
ev_start "$Q"; EVQ=$!
sleep 1
check "metrics: both nodes serve /metrics and the text parses (promtext.py)" eval 'scrape "$P" p0 && scrape "$Q" q0'
check "metrics before: vol0 primary on $P, mirror on $Q" \
	test "$(val p0 "$(role_series "$P" primary)")$(val q0 "$(role_series "$Q" mirror)")" = 11

# ---- a bounded write load through NBD on P ----------------------------------------
head -c $((16 << 20)) /dev/urandom >"$T_DIR/data.bin"
check "nbdcopy writes 16 MiB through NBD on the Promoted node $P" \
	lab exec "$P" timeout 60 nbdcopy --flush "$T_DIR/data.bin" "nbd://$(addr_of "$P"):10809/vol0"
sleep 1   # the status poller's next snapshot
check "metrics after the load parse" scrape "$P" p1
W="ipmirror_lun_written_bytes_total{lun=\"vol0\",node=\"$P\"}"
w0=$(val p0 "$W") w1=$(val p1 "$W")
check "written bytes on $P grew by at least the 16 MiB written (${w0:-?} -> ${w1:-?})" \
	test "$(( ${w1:-0} - ${w0:-0} ))" -ge $((16 << 20))
M="ipmirror_lun_mirrored_bytes_total{lun=\"vol0\",node=\"$P\"}"
check "mirrored bytes on $P grew by at least the 16 MiB ($(val p0 "$M") -> $(val p1 "$M"))" \
	test "$(( $(val p1 "$M") - $(val p0 "$M") ))" -ge $((16 << 20))

# ---- the Pacemaker-driven move ---------------------------------------------------
# as service_lab.sh: to a peer that can take the role (up to date, scored)
within 60 eval 'both_uptodate && scored vol0' || diag "before the move: not both up to date and scored"
t_move=$(date +%s.%N)
lab exec node1 timeout 150 pcs resource move vol0-clone --promoted --wait=120 >"$T_DIR/move.out" 2>&1
RC=$?
sed 's/^/# /' "$T_DIR/move.out"
check "pcs resource move vol0-clone --promoted --wait=120 (exit $RC)" test "$RC" = 0
check "crm_mon: $Q Promoted, $P Unpromoted" within 90 roles_are "$Q" "$P"
lab exec node1 timeout 30 pcs resource clear vol0-clone >"$T_DIR/clear.out" 2>&1
check "move constraint cleared, $Q stays Promoted for 10 s" \
	eval '! lab exec node1 timeout 10 cibadmin -Q -o constraints | grep -q "cli-" && stays 10 "$Q/$P"'
within 90 both_uptodate || diag "not both uptodate 90 s after the move"

# pacemaker.log's record of the operation OP on NODE: epoch s
op_at() {
	local ts
	ts=$(grep "Result of $1 operation for vol0 on $2: ok" "$IPM_LAB_DIR/$2/log/pacemaker.log" | tail -n1 | cut -c1-19)
	[ -n "$ts" ] && date -d "$ts" +%s.%N
}
# ev_at FILE FROM JQ-CONDITION: epoch s of the first event at or after FROM matching it
ev_at() {
	jq -r --argjson from "$2" '(.time // "") as $t | select($t != "") |
		(($t[0:19] + "Z" | fromdate) + ($t[20:23] | tonumber) / 1000) as $e |
		select($e >= $from) | select('"$3"') | $e' "$1" 2>/dev/null | head -n1
}
near() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN { x = a - b; if (x < 0) x = -x; exit !(x <= d) }'; }
before() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
rel() { [ -n "$1" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f", a - b }' || echo none; }

demote_pm=$(op_at demote "$P") promote_pm=$(op_at promote "$Q")
demote_ev=$(ev_at "$T_DIR/ev-$P" "$t_move" '.object == "lun" and .name == "vol0" and .role == "mirror" and ."old-role" == "primary"')
promote_ev=$(ev_at "$T_DIR/ev-$Q" "$t_move" '.object == "lun" and .name == "vol0" and .role == "primary" and ."old-role" == "mirror"')
diag "after the move at $(date -d @"$t_move" +%T.%3N): demote on $P: pacemaker.log $(rel "$demote_pm" "$t_move") s, event $(rel "$demote_ev" "$t_move") s; promote on $Q: pacemaker.log $(rel "$promote_pm" "$t_move") s, event $(rel "$promote_ev" "$t_move") s"
check "$P's stream: vol0 primary -> mirror, within 2 s of Pacemaker's demote record" near "$demote_ev" "$demote_pm" 2
check "$Q's stream: vol0 mirror -> primary, within 2 s of Pacemaker's promote record" near "$promote_ev" "$promote_pm" 2
if [ "${EVENTS_LAB_BREAK:-}" = order ]; then
	check "the order: $Q promoted, then $P demoted (broken on purpose)" before "$promote_ev" "$demote_ev"
else
	check "the order: $P demoted, then $Q promoted (the new Promoted node)" before "$demote_ev" "$promote_ev"
fi
up_ev=$(ev_at "$T_DIR/ev-$Q" "${promote_ev:-0}" '.object == "lun" and .name == "vol0" and .role == "primary" and .state == "uptodate"')
check "$Q's stream: then vol0 up to date as primary ($(rel "$up_ev" "$t_move") s)" test -n "$up_ev"
check "metrics after the move: vol0 primary on $Q, mirror on $P" \
	eval 'within 10 is "$Q" "$(role_series "$Q" primary)" 1 && within 10 is "$P" "$(role_series "$P" mirror)" 1'

# ---- the replication link cut and healed -----------------------------------------
t_cut=$(date +%s.%N)
lab cut data
check "cut: $Q's heartbeat age of $P passes 2 s" within 15 cmpv "$Q" "$(age_series "$Q" "$P")" '>' 2
sleep 1
t_heal=$(date +%s.%N)
lab heal data
check "heal: $Q's heartbeat age of $P back under 2 s" within 15 cmpv "$Q" "$(age_series "$Q" "$P")" '<' 2
check "heal: vol0 up to date on both nodes again (crm_mon -A)" within 90 both_uptodate
check "metrics after the heal: $Q's vol0 state series is uptodate" \
	within 20 is "$Q" "ipmirror_lun_state{lun=\"vol0\",node=\"$Q\",state=\"uptodate\"}" 1
sleep 1

PF=".name == \"$P\""
down_ev=$(ev_at "$T_DIR/ev-$Q" "$t_cut" ".object == \"peer\" and $PF and .heartbeat == \"down\"")
journ_ev=$(ev_at "$T_DIR/ev-$Q" "$t_cut" '.object == "lun" and .name == "vol0" and .state == "journaling"')
hup_ev=$(ev_at "$T_DIR/ev-$Q" "$t_heal" ".object == \"peer\" and $PF and .heartbeat == \"up\"")
utd_ev=$(ev_at "$T_DIR/ev-$Q" "${hup_ev:-$t_heal}" '.object == "lun" and .name == "vol0" and .role == "primary" and .state == "uptodate"')
diag "cut at $(date -d @"$t_cut" +%T.%3N): peer down $(rel "$down_ev" "$t_cut") s, journaling $(rel "$journ_ev" "$t_cut") s; heal: peer up $(rel "$hup_ev" "$t_heal") s, uptodate $(rel "$utd_ev" "$t_heal") s"
# heartbeat timeout 2 s, datagrams every 0.5 s: down 1.5..2.5 s after the cut, +1 s
check "$Q's stream: peer $P down 1.4..3.5 s after the cut" \
	eval 'before "$(echo "$t_cut + 1.4" | bc)" "$down_ev" && before "$down_ev" "$(echo "$t_cut + 3.5" | bc)"'
check "$Q's stream: vol0 journaling after the peer went down, before the heal" \
	eval 'before "$down_ev" "$journ_ev" && before "$journ_ev" "$t_heal"'
check "$Q's stream: after the heal peer up, then vol0 up to date as primary" \
	eval 'before "$t_heal" "$hup_ev" && before "$hup_ev" "$utd_ev"'

# ---- the streams end ---------------------------------------------------------------
for n in "$P" "$Q"; do
	lab exec "$n" kill "$(cat "$T_DIR/ev-$n.pid")" 2>/dev/null
done
wait "$EVP" "$EVQ" 2>/dev/null
for n in "$P" "$Q"; do
	diag "$n's stream:"; jq -c 'del(.action)' "$T_DIR/ev-$n" 2>/dev/null | cut -c1-160 | sed 's/^/#   /'
done
check "every line of both streams is JSON, none empty" \
	eval 'test -s "$T_DIR/ev-$P" && test -s "$T_DIR/ev-$Q" && jq -e . "$T_DIR/ev-$P" "$T_DIR/ev-$Q" >/dev/null'

cluster_finish
