#!/bin/bash
# ocf:ipmirror:ipmirror starts the daemon through ipmirrord.service where
# systemd runs, and by itself elsewhere. No systemd runs here, so the test
# makes a node that looks like one in private mount and UTS namespaces:
# /run/systemd/system on a tmpfs, hostname node1, and a stand-in systemctl
# first in PATH that logs its calls and, for `start`, runs the ExecStart line
# of the generated unit with IPMIRRORD_OCF_OPTS from the agent's drop-in, as
# systemd would (then waits until the daemon answers, as Type=notify does).
# Checked: the drop-in's options, daemon-reload only when they change, the
# daemon's command line, monitor; without /run/systemd/system the agent
# starts the daemon itself and never calls systemctl.
. "$top_srcdir/tests/lib.sh"
plan 8

command -v unshare >/dev/null || bail "no unshare"
[ -d /usr/lib/ocf/lib/heartbeat ] || bail "no resource-agents (ocf-shellfuncs)"
pair_setup vol0:16M:sync:yes:node1
SOCK="ipm-ocfsd-$$"
UNIT=$top_builddir/data/ipmirrord.service
STUB=$T_DIR/stub
mkdir -p "$STUB"
# the installed binary's stand-in: the agent's default parameter "ipmirrord"
printf '#!/bin/sh\nexec %s "$@"\n' "$IPMIRRORD" >"$STUB/ipmirrord"
cat >"$STUB/systemctl" <<EOF
#!/bin/bash
echo "\$*" >>"$T_DIR/systemctl.log"
case "\$1" in
cat) [ "\$2" = ipmirrord.service ] && cat "$UNIT" ;;
daemon-reload) ;;
start)
	[ "\$2" = ipmirrord.service ] || exit 5
	eval "\$(sed -n "s/^Environment=\\"IPMIRRORD_OCF_OPTS=\\(.*\\)\\"\$/IPMIRRORD_OCF_OPTS='\\1'/p" \\
		/run/systemd/system/ipmirrord.service.d/50-ocf-ipmirror.conf)"
	IPMIRRORD_OPTS=--pidfile=$T_DIR/unit.pid
	cmd=\$(sed -n 's/^ExecStart=//p' "$UNIT")
	cmd=\${cmd/#*\/ipmirrord /$STUB/ipmirrord }
	eval "setsid \$cmd" </dev/null >>"$T_DIR/unit.log" 2>&1 &
	for i in \$(seq 150); do
		timeout 5 "$IPMIRRORCTL" --socket "$SOCK" status >/dev/null 2>&1 && exit 0
		sleep 0.1
	done
	exit 1 ;;
*) exit 1 ;;
esac
EOF
chmod 755 "$STUB/ipmirrord" "$STUB/systemctl"

# the node: the agent's actions, first as on a systemd machine, then not
cat >"$T_DIR/node.sh" <<EOF
#!/bin/bash
mount -t tmpfs -o size=1m,mode=0755 node-run-systemd /run/systemd || exit 1
mkdir /run/systemd/system
hostname node1
export PATH="$STUB:\$PATH" OCF_ROOT=/usr/lib/ocf OCF_RESKEY_lun=vol0
export OCF_RESKEY_config="$T_DIR/pair.xml" OCF_RESKEY_socket="$SOCK"
export OCF_RESKEY_ipmirrorctl="$IPMIRRORCTL" OCF_RESKEY_fencing=false
ra() { "$top_srcdir/ocf/ipmirror" "\$1" >>"$T_DIR/ra.log" 2>&1; echo "\$1 \$?" >>"$T_DIR/ra.rc"; }
# until the process is gone: it stops answering before it has let go of its
# ports, and a start meanwhile met them taken (check 5 failed so once)
stop_daemon() {
	local pid=\$(cat "\$1")
	kill "\$pid"
	for i in \$(seq 200); do kill -0 "\$pid" 2>/dev/null || return 0; sleep 0.1; done
}
ra start; ra monitor; ra start
cp /run/systemd/system/ipmirrord.service.d/50-ocf-ipmirror.conf "$T_DIR/dropin"
cp "$T_DIR/unit.pid" "$T_DIR/unit.pid.1"
tr '\\0' ' ' <"/proc/\$(cat "$T_DIR/unit.pid")/cmdline" >"$T_DIR/execstart"
echo "-- daemon stopped" >>"$T_DIR/systemctl.log"
stop_daemon "$T_DIR/unit.pid"
ra start
cp "$T_DIR/unit.pid" "$T_DIR/unit.pid.2"
stop_daemon "$T_DIR/unit.pid"
rm -rf /run/systemd/system
echo "-- no systemd" >>"$T_DIR/systemctl.log"
ra start; ra monitor
pgrep -f -- "--socket $SOCK( |\\\$)" >"$T_DIR/self.pid"
kill \$(cat "$T_DIR/self.pid")
EOF
chmod 755 "$T_DIR/node.sh"
timeout -k 5 180 unshare --mount --uts "$T_DIR/node.sh" >"$T_DIR/node.out" 2>&1
NRC=$?
[ "$NRC" = 0 ] || diag "node.sh exit $NRC: $(cat "$T_DIR/node.out")"
# a daemon this test started that a failure left behind (by its pid)
for p in $(pgrep -f -- "--socket $SOCK( |\$)"); do diag "left running: $p"; kill "$p"; done
sed 's/^/# agent: /' "$T_DIR/ra.rc"
sed 's/^/# systemctl /' "$T_DIR/systemctl.log"

rc_of() { sed -n "$1p" "$T_DIR/ra.rc"; }
check "start under systemd: 0, then monitor 0 (Unpromoted), start again 0" \
	test "$(rc_of 1)/$(rc_of 2)/$(rc_of 3)" = "start 0/monitor 0/start 0"
check "the drop-in carries the agent's options ($(tr '\n' ' ' <"$T_DIR/dropin"))" \
	test "$(cat "$T_DIR/dropin")" = "[Service]
Environment=\"IPMIRRORD_OCF_OPTS=--config $T_DIR/pair.xml --socket $SOCK --attributes --no-fencing\""
check "systemctl: cat, daemon-reload, start; only cat while the daemon answers" \
	test "$(sed -n '1,/^-- daemon stopped/p' "$T_DIR/systemctl.log" | tr '\n' '|')" = \
	"cat ipmirrord.service|daemon-reload|start ipmirrord.service|-- daemon stopped|"
check "the unit's ExecStart ran with the drop-in's options ($(cat "$T_DIR/execstart"))" \
	grep -q -- "ipmirrord --foreground --syslog --pidfile=$T_DIR/unit.pid --config $T_DIR/pair.xml --socket $SOCK --attributes --no-fencing \$" "$T_DIR/execstart"
check "after the daemon died: start again through systemctl, no daemon-reload (drop-in unchanged)" eval '
	[ "$(rc_of 4)" = "start 0" ] &&
	[ "$(sed -n "/^-- daemon stopped/,/^-- no systemd/p" "$T_DIR/systemctl.log" | tr "\n" "|")" = \
		"-- daemon stopped|cat ipmirrord.service|start ipmirrord.service|-- no systemd|" ] &&
	[ -s "$T_DIR/unit.pid.2" ] && [ "$(cat "$T_DIR/unit.pid.1")" != "$(cat "$T_DIR/unit.pid.2")" ]'
check "without /run/systemd/system: start 0, monitor 0" \
	test "$(rc_of 5)/$(rc_of 6)" = "start 0/monitor 0"
check "without /run/systemd/system the agent never calls systemctl" \
	test -z "$(sed -n '/^-- no systemd/,$p' "$T_DIR/systemctl.log" | sed 1d)"
check "... and started the daemon itself ($(tr '\n' ' ' <"$T_DIR/self.pid"))" \
	test "$(wc -w <"$T_DIR/self.pid")" = 1
finish
