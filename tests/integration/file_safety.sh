#!/bin/bash
# The daemon's files and admin channel against a local user: a symbolic link
# planted where the journal, dirty bitmap, activity log, generation file or
# heartbeat volume belongs is refused by name and its target left untouched;
# a link planted at the generation's temporary is removed, not written
# through; a secret owned by another user is refused; what the daemon creates
# is 0600 and its NBD unix socket 0660 in the configured group; ipmirrorctl
# refuses a non-root process that holds the admin service name.
. "$top_srcdir/tests/lib.sh"
plan 29

BASE=$(free_port file_safety 6)
SOCK="ipm-fs-$$"
ctl() { timeout -k 5 "$CTL_TIMEOUT" "$IPMIRRORCTL" --socket "$SOCK" "$@"; }
# run CMD...: stdout in $T_DIR/out, stderr in $T_DIR/err, exit status in $RC
run() { "$@" >"$T_DIR/out" 2>"$T_DIR/err"; RC=$?; }

# nobody must reach the socket and the copied helpers: T_DIR is 0700
chmod 711 "$T_DIR"
PUB="$T_DIR/pub"
mkdir -m 755 "$PUB"
D="$T_DIR/var"
mkdir -m 700 "$D"
truncate -s 64M "$D/vol0.img"
( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T_DIR/secret" )

# write_config [GROUP]: node1 of a mirrored pair (node2 never runs)
write_config() {
	cat >"$T_DIR/cfg.xml" <<XML
<ipmirror version="1">
  <secret file="$T_DIR/secret"/>
  <heartbeat interval="0.5" timeout="2.0" probation="3"/>
  <log level="info" file="$D/ipmirrord.log"/>
  <node name="node1">
    <data address="127.0.0.1" port="$BASE"/>
    <heartbeat address="127.0.0.1" port="$((BASE + 1))"/>
    <nbd address="127.0.0.1" port="$((BASE + 2))" unix="$PUB/nbd.sock" unix-group="${1:-disk}"/>
    <heartbeat-volume path="$D/hb.vol"/>
  </node>
  <node name="node2">
    <data address="127.0.0.1" port="$((BASE + 3))"/>
    <heartbeat address="127.0.0.1" port="$((BASE + 4))"/>
    <nbd address="127.0.0.1" port="$((BASE + 5))"/>
  </node>
  <lun name="vol0" size="64M" mode="sync" mirrored="yes" primary="node1">
    <backing path="$D/vol0.img"/>
    <journal path="$D/vol0.journal"/>
  </lun>
</ipmirror>
XML
}
write_config

# start: the daemon under a permissive umask (its own umask must win)
start() { ( umask 022; exec "$IPMIRRORD" --foreground --config "$T_DIR/cfg.xml" --node node1 \
	--socket "$SOCK" ) >"$T_DIR/d.log" 2>&1 & d_pid=$!; T_PIDS="$T_PIDS $d_pid"; }
# refused: the daemon exits 1 within 10 s (log in $T_DIR/d.log)
refused() {
	start
	wait_while 10 kill -0 "$d_pid" || { stop_pid "$d_pid"; return 1; }
	wait "$d_pid"; local rc=$?
	T_PIDS=$(echo "$T_PIDS" | sed "s/\b$d_pid\b//")
	[ "$rc" = 1 ]
}
fresh() { rm -f "$D"/vol0.journal* "$D/hb.vol" "$D/ipmirrord.log"; }
fingerprint() { sha256sum <"$1"; stat -c '%s %Y %h %a' "$1"; }

# ---- a planted link is refused by name, its target untouched ---------------
for spec in "vol0.journal:journal" "vol0.journal.bitmap:dirty bitmap" \
	"vol0.journal.al:dirty bitmap" "vol0.journal.gen:generation file" \
	"hb.vol:heartbeat volume"; do
	f=${spec%%:*}; what=${spec#*:}
	fresh
	# empty: what the engine takes for a file it may (re)initialise
	victim="$T_DIR/victim-$f"
	: >"$victim"
	[ "$f" != hb.vol ] || head -c 1M /dev/zero | tr '\0' 'V' >"$victim"
	touch -d '2020-01-01 00:00' "$victim"
	before=$(fingerprint "$victim")
	ln -s "$victim" "$D/$f"
	refused
	RC=$?
	check "link at the $what $f: the daemon exits 1 saying so" eval '[ "$RC" = 0 ] &&
		grep -qF "$what $D/$f is a symbolic link; refusing to follow it" "$T_DIR/d.log"'
	check "link at $f: its target is untouched" test "$(fingerprint "$victim")" = "$before"
	rm -f "$D/$f"
done

# ---- a link at the generation's temporary is replaced, not written through --
fresh
: >"$T_DIR/victim-tmp"
touch -d '2020-01-01 00:00' "$T_DIR/victim-tmp"
before=$(fingerprint "$T_DIR/victim-tmp")
ln -s "$T_DIR/victim-tmp" "$D/vol0.journal.gen.tmp"
start
wait_for 10 ctl status || diag "daemon did not answer: $(tail -5 "$T_DIR/d.log")"
# the first write marks this copy the reference: a generation save
nbdsh -u "nbd://127.0.0.1:$((BASE + 2))/vol0" -c 'h.pwrite(b"\x5a" * 4096, 0)' 2>"$T_DIR/nbd.err"
check "link at the generation's temporary: the first write succeeds" test $? = 0
check "link at the temporary: the generation file is a regular file, the target untouched" \
	eval '[ -f "$D/vol0.journal.gen" ] && [ ! -L "$D/vol0.journal.gen" ] &&
	[ "$(fingerprint "$T_DIR/victim-tmp")" = "$before" ]'

# ---- what the daemon creates is 0600, its NBD socket 0660 in group disk -----
mode_is() { [ "$(stat -c %a "$1")" = "$2" ]; }
for f in vol0.journal vol0.journal.bitmap vol0.journal.al vol0.journal.gen hb.vol ipmirrord.log; do
	check "created $f is 0600 (daemon started under umask 022)" mode_is "$D/$f" 600
done
check "NBD unix socket is 0660, group disk" \
	eval '[ -S "$PUB/nbd.sock" ] && mode_is "$PUB/nbd.sock" 660 &&
	[ "$(stat -c %G "$PUB/nbd.sock")" = disk ]'
uri="nbd+unix:///vol0?socket=$PUB/nbd.sock"
as_nobody() { setpriv --reuid=65534 --regid=65534 "$@"; }
check "a member of group disk reads the LUN over the unix socket" \
	as_nobody --groups="$(getent group disk | cut -d: -f3)" \
	nbdsh -u "$uri" -c 'assert h.pread(4096, 0) == b"\x5a" * 4096'
run as_nobody --clear-groups nbdsh -u "$uri" -c 'h.pread(4096, 0)'
check "a user outside the group is refused by the socket's mode" \
	eval '[ "$RC" != 0 ] && grep -q "Permission denied" "$T_DIR/err"'
check "ipmirrorctl talks to the real (root) daemon" eval 'ctl status >/dev/null'
stop_pid "$d_pid"

check "an unknown unix-group stops the start, naming the group" eval '
	write_config nosuchgroup-ipm; fresh; refused &&
	grep -qF "unix-group \"nosuchgroup-ipm\": no such group" "$T_DIR/d.log"'
write_config

# ---- a secret owned by another user ------------------------------------------
fresh
chown 65534:65534 "$T_DIR/secret"
check "a secret owned by uid 65534 is refused, naming owner and path" eval 'refused &&
	grep -qF "secret file $T_DIR/secret is owned by uid 65534, not by the daemon" "$T_DIR/d.log"'
chown 0:0 "$T_DIR/secret"
check "the same secret owned by root is accepted" eval 'start; wait_for 10 ctl status'
stop_pid "$d_pid"

# ---- an impostor holding the admin service name ------------------------------
cp "$top_builddir/tests/tools/fake_ipc_server" "$IPMIRRORCTL" "$PUB/"
chmod 755 "$PUB/fake_ipc_server" "$PUB/ipmirrorctl"
IMP="ipm-imp-$$"
setpriv --reuid=65534 --regid=65534 --clear-groups "$PUB/fake_ipc_server" "$IMP" 30 \
	>"$T_DIR/imp.out" 2>&1 &
imp_pid=$!
T_PIDS="$T_PIDS $imp_pid"
wait_for 10 grep -q ready "$T_DIR/imp.out" || bail "the impostor did not start: $(cat "$T_DIR/imp.out")"
ok "a non-root process (uid 65534) holds the service name $IMP"
run timeout -k 5 "$CTL_TIMEOUT" "$IPMIRRORCTL" --socket "$IMP" status
check "ipmirrorctl status: exit 1, says the server has uid 65534, not root" eval '[ "$RC" = 1 ] &&
	grep -qF "is served by pid $imp_pid with uid 65534, not root" "$T_DIR/err"'
check "ipmirrorctl printed nothing the impostor sent" eval '! grep -q IMPOSTOR "$T_DIR/out" "$T_DIR/err"'
run timeout -k 5 "$CTL_TIMEOUT" "$IPMIRRORCTL" --socket "$IMP" promote vol0
check "ipmirrorctl promote: refused the same way (exit 1, nothing sent)" eval '[ "$RC" = 1 ] &&
	grep -q "not root" "$T_DIR/err" && ! grep -q IMPOSTOR "$T_DIR/out" "$T_DIR/err"'
stop_pid "$imp_pid"
finish
