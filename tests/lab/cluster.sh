# tests/lab/cluster.sh - the ipmirror cluster of the Pacemaker lab tests
# (pacemaker_lab.sh, drill.sh). Source it after tests/lib.sh with LAB_TAG set
# (namespace prefix and admin socket name, unique per test); sourcing skips
# the test when root or the cluster tools are missing. After `plan`,
# cluster_start brings the two-node lab up, makes ocf:ipmirror:ipmirror
# visible inside the nodes only, creates the promotable resource vol0 and
# waits until it has settled: P is then the Promoted node, Q the Unpromoted
# one. It reports 4 checks of its own and defines the helpers the tests use
# (lab, mon, roles, stays, attr, dump_logs, ...; within is tests/lib.sh's).
# The daemons mirror and send heartbeats over the lab's replication network
# (10.203.1.x), hosts use NBD on the cluster network (10.203.0.x); the
# agent's daemon runs the fence handler of the source tree
# (agent/ipmirror-fence-peer).
#
# LUNS (default "vol0") lists the LUNs, each NAME or NAME:NODE: one <lun>
# and one promotable resource NAME-clone per entry; NODE is the LUN's
# primary= in the config and gets a location constraint preferring it for
# Promoted (score 50, as cib-examples/two-luns-bidirectional.xml). Without
# NODE the primary= is node1 and there is no constraint. Settling waits for
# one Promoted and one Unpromoted instance of every LUN; P and Q are the
# first LUN's Promoted and Unpromoted nodes. LUN_MODE (default sync) is
# the mode= of every LUN.
LAB="$top_srcdir/tests/lab/lab"
for c in corosync pacemakerd crm_mon crm_resource pcs nbdcopy nbdinfo unshare nsenter ip; do
	command -v "$c" >/dev/null 2>&1 || { echo "1..0 # SKIP $c not installed"; exit 0; }
done
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root"; exit 0; }
[ -d /usr/lib/ocf/resource.d ] || { echo "1..0 # SKIP no /usr/lib/ocf/resource.d"; exit 0; }
lab_lock


# cluster_start = cluster_env (names, trap, helpers) + cluster_config (the
# agents, the daemon wrapper, $CFG) + cluster_up (cluster_lab_up: lab up, the
# agents inside the nodes; cluster_create: the promotable resources;
# cluster_settle: one Promoted, one Unpromoted, P and Q). A test that wants a
# different lab calls the first two and does the rest (service_lab.sh loads
# a CIB example instead of cluster_create). LAB_NBD_UNIX=PATH gives each
# node's <nbd> a unix= socket too (inside the node: its /run is its own).
cluster_start() { cluster_env; cluster_config; cluster_up; }
cluster_up() { cluster_lab_up; cluster_create; cluster_settle; }

# the bodies are not indented: they hold here-documents
cluster_env() {

: "${LUNS:=vol0}"
LUN_NAMES=$(for l in $LUNS; do echo "${l%%:*}"; done | tr '\n' ' ')
LUN_NAMES=${LUN_NAMES% }
LUN1=${LUN_NAMES%% *}
export IPM_LAB_DIR="$T_DIR/lab" IPM_LAB_NS="$LAB_TAG$(($$ % 10000))" IPM_LAB_TIMEOUT=90
trap '"$LAB" down >/dev/null 2>&1; t_cleanup' EXIT
T_START=$SECONDS

lab() { "$LAB" "$@"; }
mon() { local n="$1"; shift; lab exec "$n" timeout 10 crm_mon -1 "$@" 2>/dev/null; }
# roles and attr read crm_mon on node1, or on VIEW (VIEW=node2 roles vol0): in a
# split cluster each partition has a view of its own
# NBD (hosts) is on the cluster network, mirror data and the UDP heartbeat on
# the replication network: `lab cut data` parts the daemons, corosync stays whole
addr_of() { echo "10.203.0.${1#node}"; }
data_addr_of() { echo "10.203.1.${1#node}"; }

# roles [LUN]: "PROMOTED/UNPROMOTED" for LUN-clone (default: the first
# LUN) as crm_mon on node1 lists them, e.g. "node1/node2" (one crm_mon, so
# both halves are from one moment)
roles() {
	local out try
	# crm_mon -1 can fail for a moment (a CIB update, a loaded host): ask again
	for try in 1 2 3 4 5; do
		out=$(mon "${VIEW:-node1}" | sed -n "/Clone Set: ${1:-$LUN1}-clone/,/^  \* [^ ]/p")
		[ -n "$out" ] && break
		sleep 0.5
	done
	echo "$(clone_nodes Promoted <<<"$out")/$(clone_nodes Unpromoted <<<"$out")"
}
# clone_nodes ROLE < a clone's lines of crm_mon: the nodes where it has ROLE,
# space-separated: the "ROLE: [ ... ]" list, and the instances on a line of
# their own with that role, as one whose monitor said "degraded" (191 while
# resyncing: "vol0 (ocf:ipmirror:ipmirror): Promoted node1 (Monitoring)");
# a FAILED instance has no role here
clone_nodes() {
	awk -v r="$1" '
	$0 ~ "^ *\\* " r ": \\[" { sub(".*" r ": \\[ *", ""); sub(" *\\].*", ""); if ($0 != "") n = n (n ? " " : "") $0; next }
	$0 ~ "\\):[ \t]+" r " [^ ]+" { sub(".*\\):[ \t]+" r " ", ""); sub(" .*", ""); n = n (n ? " " : "") $0 }
	END { print n }'
}
role_nodes() { local r; r=$(roles ${2:+"$2"}); [ "$1" = Promoted ] && echo "${r%/*}" || echo "${r#*/}"; }
# roles_are P U [LUN]: exactly P is Promoted and exactly U is Unpromoted
roles_are() { [ "$(roles ${3:+"$3"})" = "$1/$2" ]; }
# stays SECONDS ROLES: crm_mon shows ROLES (of the first LUN) all the time
stays() {
	local end=$((SECONDS + $1))
	while [ "$SECONDS" -lt "$end" ]; do
		[ "$(roles)" = "$2" ] || { diag "roles changed to $(roles)"; return 1; }
		sleep 1
	done
}
one_each() { case "$(roles ${1:+"$1"})" in node1/node2 | node2/node1) return 0 ;; esac; return 1; }
# promoted_at NODE [LUN]: time (epoch s) of NODE's last successful promote, from its pacemaker.log
promoted_at() {
	local ts
	ts=$(grep "Result of promote operation for ${2:-$LUN1} on $1: ok" "$IPM_LAB_DIR/$1/log/pacemaker.log" |
		tail -n1 | cut -c1-19)
	[ -n "$ts" ] && date -d "$ts" +%s.%N
}
# failover_breakdown NODE T_KILL [LUN]: where a failover's time went, from
# NODE's pacemaker.log: seconds from T_KILL (epoch s) to NODE's controller
# seeing the peer lost (and taking over as DC, when the dead node was it:
# Pacemaker's controller then waits a second for its own CIB updates before
# the first transition), the first transition, the LUN's promote, each
# start after it until the cluster is idle; how many transitions were
# calculated meanwhile and how many a node-attribute change aborted. One line.
failover_breakdown() {
	awk -v t="$2" -v n="$1" -v l="${3:-$LUN1}" -v y="$(date +%Y)" '
	BEGIN { split("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec", m, " "); for (i = 1; i <= 12; i++) M[m[i]] = i }
	{ split($3, c, ":"); s = mktime(y " " M[$1] " " $2 " " c[1] " " c[2] " 0") + c[3]; if (s < t) next
	  d = sprintf("%.2f", s - t) }
	/pacemaker-controld.*state is now lost/ && lost == "" { lost = d }
	lost == "" || end { next }
	/Taking over DC status/ && dc == "" { dc = d }
	/Calculated transition/ { if (first == "") first = d; ntr++ }
	/Transition [0-9]+ aborted by .*Transient attribute change/ { nattr++ }
	$0 ~ "Initiating promote operation " l "_promote_0" && p0 == "" { p0 = d }
	$0 ~ "Result of promote operation for " l " on " n ": ok" && p1 == "" { p1 = d }
	match($0, /Initiating start operation ([^ ]+)_start_0/, r) && !(r[1] in s0) { s0[r[1]] = d; o[++k] = r[1] }
	match($0, /Result of start operation for ([^ ]+) on [^:]+: ok/, r) && (r[1] in s0) && !(r[1] in s1) { s1[r[1]] = d }
	p1 != "" && /S_TRANSITION_ENGINE -> S_IDLE/ { end = 1 }
	END {
		printf "lost %s%s, first transition %s, promote %s-%s", lost, (dc != "" ? " (DC taken over " dc ")" : " (was DC)"), first, p0, p1
		for (i = 1; i <= k; i++) printf ", %s %s-%s", o[i], s0[o[i]], s1[o[i]]
		printf "; %d transitions, %d aborted by attribute changes\n", ntr, nattr
	}' "$IPM_LAB_DIR/$1/log/pacemaker.log"
}
# failover_timeline NODE T_KILL [T_SERVICE]: a failover as NODE (the survivor)
# logged it, one event a line, seconds after T_KILL (epoch s; T_SERVICE: the
# service's first answer, epoch s, printed as the last line): corosync's
# token loss, consensus wait and new membership (corosync.log, hires
# timestamps), the controller seeing the peer lost, taking over as DC, each
# scheduler run, the transitions' aborts and their cause, each action's
# start and result, Pacemaker's throttle mode (under load it runs one action
# at a time: a start's first monitor before the next start), "Re-asking for the CIB"
# (Pacemaker's 1 s sleep when its own CIB updates are pending as its query
# returns; logged only with IPM_LAB_PCMK_DEBUG=pacemaker-controld), until
# the cluster is idle after the promote or T_SERVICE. Lines "SECONDS WHO WHAT".
failover_timeline() {
	local d="$IPM_LAB_DIR/$1/log"
	{
		awk -v t="$2" -v y="$(date +%Y)" -v end="${3:-0}" '
		BEGIN { split("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec", m, " "); for (i = 1; i <= 12; i++) M[m[i]] = i }
		$3 !~ /^[0-9:]+\.[0-9]+$/ { next }
		{ split($3, c, ":"); s = mktime(y " " M[$1] " " $2 " " c[1] " " c[2] " 0") + c[3]
		  # Pacemaker throttles itself (one action at a time) by the load
		  # of the moment: the mode it last chose before the kill, and after
		  if (match($0, /New throttle mode: ([^(]*[^ (])/, r)) {
			tm = r[1]; if (s >= t) printf "%6.2f controld throttle mode: %s\n", s - t, tm }
		  if (s < t - 0.5) next
		  if (end > 0 && s > end + 1) nextfile
		  if (FILENAME ~ /pacemaker/ && !tm0++) printf "%6.2f controld throttle mode: %s\n", 0, (tm == "" ? "none yet" : tm)
		  d = sprintf("%6.2f", s - t) }
		FILENAME ~ /corosync/ {
			if (match($0, /Token has not been received in ([0-9]+) ms/, r)) print d, "corosync", "no token for " r[1] " ms"
			else if (match($0, /token timed out \(([0-9]+)ms\), waiting ([0-9]+)ms for consensus/, r)) print d, "corosync", "token lost (" r[1] " ms); waits " r[2] " ms for consensus"
			else if (match($0, /A new membership \(([^)]+)\) was formed. Members left: ([0-9 ]+)/, r)) print d, "corosync", "new membership " r[1] " without node " r[2]
			next
		}
		/pacemaker-controld.*state is now lost/ && !lost { lost = 1; tl = s; print d, "controld", "peer lost" }
		!lost || idle { next }
		/Taking over DC status/ { print d, "controld", "takes over as DC" }
		/Re-asking for the CIB/ { sub(/.*Re-asking/, "re-asking"); print d, "controld", $0 " (sleeps 1 s)" }
		match($0, /Calculated transition ([0-9]+)/, r) {
			if (!nt++ && s - tl >= 0.9)
				printf "%6.2f controld (no scheduler run for %.2f s: likely Pacemaker'"'"'s 1 s re-ask of the CIB, doc/pacemaker.md)\n", s - t - 0.001, s - tl
			print d, "schedulerd", "transition " r[1] }
		match($0, /Transition ([0-9]+) aborted(.*)/, r) {
			w = r[2]; sub(/ \| .*/, "", w); sub(/^ by /, "", w); sub(/^: /, "", w)
			print d, "controld", "transition " r[1] " aborted: " w }
		match($0, /Initiating ([a-z]+) operation ([^ ]+)/, r) { print d, "controld", "start " r[1] " " r[2] }
		match($0, /Result of ([a-z]+) operation for ([^ ]+) on [^:]+: ([^|]*[^ |])/, r) { print d, "controld", "done  " r[2] " " r[1] ": " r[3]
			if (r[1] == "promote") promoted = 1 }
		promoted && /S_TRANSITION_ENGINE -> S_IDLE/ { print d, "controld", "idle"; idle = 1 }
		' "$d/corosync.log" "$d/pacemaker.log"
		[ -z "${3:-}" ] || awk -v t="$2" -v s="$3" 'BEGIN { printf "%6.2f service first answer\n", s - t }'
	} | sort -s -n -k1,1
}
# attr NODE NAME: the value of node attribute NAME of NODE in crm_mon -1 -A
attr() {
	mon "${VIEW:-node1}" -A | sed -n "/^  \* Node: $1:/,/^  \* Node:/p" |
		sed -n "s/^ *\* $2[[:space:]]*: \([^[:space:]]*\).*/\1/p" | head -n1
}
attrs_ok() {
	[ -n "$(attr node1 "ipmirror-$LUN1-state")" ] && [ -n "$(attr node2 "ipmirror-$LUN1-state")" ] &&
		[ "$(attr node1 ipmirror-peer)" = up ] && [ "$(attr node2 ipmirror-peer)" = up ]
}
# both_uptodate [LUN]: ipmirror-LUN-state uptodate on both nodes (default: the first LUN)
both_uptodate() {
	[ "$(attr node1 "ipmirror-${1:-$LUN1}-state")" = uptodate ] &&
		[ "$(attr node2 "ipmirror-${1:-$LUN1}-state")" = uptodate ]
}
dump_logs() {
	local n
	for n in node1 node2; do # what the daemon itself says of promoting here
		diag "---- $n: ipmirrorctl promote $LUN1 --dry-run; status"
		lab exec "$n" timeout 20 "$IPMIRRORCTL" --socket "$LAB_TAG" promote "$LUN1" --dry-run 2>&1 | sed 's/^/# /'
		lab exec "$n" timeout 20 "$IPMIRRORCTL" --socket "$LAB_TAG" status "$LUN1" 2>&1 | sed 's/^/# /'
	done
	diag "---- crm_mon -1 -A (node1)"; mon node1 -A | sed 's/^/# /'
	diag "---- ipmirrord log"; tail -n 40 "$T_DIR/ipmirrord.log" 2>/dev/null | sed 's/^/# /'
	for n in node1 node2; do
		diag "---- $n pacemaker.log (ipmirror)"
		grep -E "ipmirror|${LUN_NAMES// /|}" "$IPM_LAB_DIR/$n/log/pacemaker.log" 2>/dev/null |
			grep -vi 'debug' | tail -n 25 | sed 's/^/# /'
	done
}

}

# one <lun> per entry of LUNS, its backing files created
cluster_luns_xml() {
	local l name prim
	for l in $LUNS; do
		name=${l%%:*} prim=node1
		case "$l" in *:*) prim=${l#*:} ;; esac
		truncate -s "$LUN_SIZE" "$T_DIR/node1-$name.img" "$T_DIR/node2-$name.img"
		echo "  <lun name=\"$name\" size=\"$LUN_SIZE\" mode=\"${LUN_MODE:-sync}\" mirrored=\"yes\" primary=\"$prim\">"
		echo "    <backing node=\"node1\" path=\"$T_DIR/node1-$name.img\"/>"
		echo "    <backing node=\"node2\" path=\"$T_DIR/node2-$name.img\"/>"
		echo "  </lun>"
	done
}

cluster_config() {
# ---- the agent, the daemon and the configuration ----------------------------
RA="$T_DIR/resource.d"
mkdir -p "$RA/ipmirror"
cp "$top_srcdir/ocf/ipmirror" "$RA/ipmirror/ipmirror"
cp "$top_srcdir/ocf/attach" "$RA/ipmirror/attach"
chmod 755 "$RA/ipmirror/ipmirror" "$RA/ipmirror/attach"
PROVIDERS=""
for d in /usr/lib/ocf/resource.d/*/; do
	p=$(basename "$d")
	[ "$p" = ipmirror ] && continue
	mkdir -p "$RA/$p"
	PROVIDERS="$PROVIDERS $p"
done

# Pacemaker runs agents with an environment of its own: the uninstalled
# daemon gets the source tree's schema through this wrapper.
WRAP="$T_DIR/ipmirrord"
cat >"$WRAP" <<EOF
#!/bin/sh
IPMIRROR_SCHEMA='$IPMIRROR_SCHEMA' IPMIRROR_FENCE_HANDLER='$top_srcdir/agent/ipmirror-fence-peer' \
	exec '$IPMIRRORD' "\$@"
EOF
chmod 755 "$WRAP"

CFG="$T_DIR/ipmirror.xml"
: "${LUN_SIZE:=32M}"
( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T_DIR/secret" )
cat >"$CFG" <<EOF
<ipmirror version="1">
  <secret file="$T_DIR/secret"/>
  <connections count="2"/>
  <heartbeat interval="0.5" timeout="2" probation="2"/>
  <log level="info" file="$T_DIR/ipmirrord.log"/>
  <node name="node1"><data address="10.203.1.1" port="7788"/><heartbeat address="10.203.1.1" port="7789"/><nbd address="10.203.0.1" port="10809"${LAB_NBD_UNIX:+ unix=\"$LAB_NBD_UNIX\"}/></node>
  <node name="node2"><data address="10.203.1.2" port="7788"/><heartbeat address="10.203.1.2" port="7789"/><nbd address="10.203.0.2" port="10809"${LAB_NBD_UNIX:+ unix=\"$LAB_NBD_UNIX\"}/></node>
$(cluster_luns_xml)
</ipmirror>
EOF
"$IPMIRRORD" --check-config --config "$CFG" >"$T_DIR/check.out" 2>&1 ||
	bail "config rejected: $(cat "$T_DIR/check.out")"

}

cluster_lab_up() {
# ---- 1. the lab, with the agent installed inside each node ------------------
t0=$SECONDS
if lab up >"$T_DIR/up.log" 2>&1; then
	ok "lab up ($((SECONDS - t0)) s)"
else
	not_ok "lab up"; sed 's/^/# /' "$T_DIR/up.log"
	bail "the lab did not come up; logs in $IPM_LAB_DIR/node*/log (T_KEEP=1 keeps them)"
fi

# shellcheck disable=SC2016 # expanded by the inner shell
install_agent='set -e
	for p in $PROVIDERS; do mount --bind "/usr/lib/ocf/resource.d/$p" "$RA/$p"; done
	mount --rbind "$RA" /usr/lib/ocf/resource.d'
for n in node1 node2; do
	lab exec "$n" env RA="$RA" PROVIDERS="$PROVIDERS" sh -c "$install_agent" ||
		bail "cannot mount the agent inside $n"
done
check "agent visible as ocf:ipmirror:ipmirror inside both nodes (not on the host), heartbeat agents still there" \
	eval 'for n in node1 node2; do
		lab exec $n test -x /usr/lib/ocf/resource.d/ipmirror/ipmirror || exit 1
		lab exec $n test -x /usr/lib/ocf/resource.d/heartbeat/IPaddr2 || exit 1
	done; test ! -e /usr/lib/ocf/resource.d/ipmirror'
}

cluster_create() {
# ---- 2./3. the promotable resources --------------------------------------------
t0=$SECONDS
# one CIB push: the location constraints are there before the first promotion
# shellcheck disable=SC2016 # expanded by the inner shell
create='set -e
	pcs cluster cib "$F"
	for l in $LUNS; do
		pcs -f "$F" resource create "${l%%:*}" ocf:ipmirror:ipmirror lun="${l%%:*}" \
			config="$CFG" socket="$LAB_TAG" ipmirrord="$WRAP" ipmirrorctl="$IPMIRRORCTL" \
			promotable notify=true
		case "$l" in
		*:*) pcs -f "$F" constraint location "${l%%:*}-clone" rule role=Promoted \
			score=50 "#uname" eq "${l#*:}"
			pcs -f "$F" resource meta "${l%%:*}-clone" target-role=Unpromoted ;;
		esac
	done
	pcs cluster cib-push "$F" --config'
lab exec node1 timeout 120 env F="$T_DIR/create.xml" LUNS="$LUNS" CFG="$CFG" LAB_TAG="$LAB_TAG" \
	WRAP="$WRAP" IPMIRRORCTL="$IPMIRRORCTL" sh -c "$create" >"$T_DIR/pcs.out" 2>&1
check "pcs resource create ${LUN_NAMES// /, } ... promotable (live cluster, $((SECONDS - t0)) s)" test $? = 0
sed 's/^/# /' "$T_DIR/pcs.out"
t0=$SECONDS

# A LUN with a preferred node starts Unpromoted (target-role) until every
# such LUN has a promotion score on its preferred node; then they are let go
# at once, so that Pacemaker promotes them in one transition rather than
# promoting a LUN on whichever node scored first and moving it back.
# The preferred node's score is enough: a new pair's other copy is filled
# by the initial sync, which starts with the promotion, and has no score
# until it ends (waiting for both cost 90 s every time).
scored() { [ -n "$(attr "$2" "master-$1")" ]; }
for l in $LUNS; do
	case "$l" in *:*) ;; *) continue ;; esac
	within 90 scored "${l%%:*}" "${l#*:}" || diag "${l%%:*}: not scored on ${l#*:} after 90 s"
done
for l in $LUNS; do
	case "$l" in *:*) ;; *) continue ;; esac
	lab exec node1 timeout 30 crm_resource --resource "${l%%:*}-clone" --meta \
		--delete-parameter target-role >>"$T_DIR/pcs.out" 2>&1 &
done
wait
}

cluster_settle() {
# settled: one of each for every LUN, still so 2 s later (right after create
# the cluster may still be moving the roles, shown per instance rather than
# collapsed)
all_one_each() { local n; for n in $LUN_NAMES; do one_each "$n" || return 1; done; }
settled() { all_one_each && sleep 2 && all_one_each; }
if within 90 settled; then
	ok "one Promoted and one Unpromoted instance$([ "$LUN1" = "$LUN_NAMES" ] || echo " of each LUN") ($((SECONDS - t0)) s after create)"
else
	not_ok "one Promoted and one Unpromoted instance"; dump_logs
	bail "the resource did not settle"
fi
# crm_mon -1 can fail for a moment (a CIB update, a loaded host): ask again
for _ in $(seq 20); do
	R=$(roles)
	case "$R" in node1/node2 | node2/node1) break ;; esac
	sleep 1
done
P=${R%/*} Q=${R#*/}
case "$P/$Q" in node1/node2 | node2/node1) ;; *) bail "roles changed at once: '$R'" ;; esac
diag "Promoted: $P, Unpromoted: $Q"
}

# cluster_finish: take the lab down, check that no daemon of this test is
# left, report the runtime and exit with the test's verdict
cluster_finish() {
	local t0=$SECONDS rc
	lab down >"$T_DIR/down.log" 2>&1
	rc=$?
	check "lab down ($((SECONDS - t0)) s), no ipmirrord of this test left" \
		eval "test $rc = 0 && ! pgrep -f -- \"--config $CFG\" >/dev/null"
	diag "total runtime: $((SECONDS - T_START)) s"
	finish
}
