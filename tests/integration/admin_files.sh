#!/bin/bash
# The admin's files, checked against what they describe: the example
# configuration is valid and uses every element and attribute of the schema;
# ipmirror.xml(5) documents every one of them; the systemd unit passes
# systemd-analyze verify (offline: systemd need not run) without a warning;
# tmpfiles.d makes /run/ipmirror and /var/lib/ipmirror (under a --root);
# logrotate's snippet rotates a daemon's log file and the daemon writes on in
# the new file (postrotate: ipmirrorctl log-reopen; SIGUSR1 too); the bash
# completion offers the commands and the running daemon's LUN names;
# --version; the OCF agent's generated man page lists every parameter and
# action of its meta-data.
: "${PYTHON3:=/usr/bin/python3}"
. "$top_srcdir/tests/lib.sh"
plan 18

S=$top_srcdir
RNG=$S/engine/ipmirror.rng
MAN5=$S/doc/ipmirror.xml.5
EXAMPLE=$S/data/ipmirror.xml.example
rng_names() { grep -o "<$1 name=\"[^\"]*\"" "$RNG" | cut -d'"' -f2 | sort -u; }

# ---- the example configuration ----------------------------------------------
check "the example is a valid configuration ($("$IPMIRRORD" --check-config --config "$EXAMPLE" 2>&1))" \
	"$IPMIRRORD" --check-config --config "$EXAMPLE"
check "the example is valid for each of its nodes" \
	eval '"$IPMIRRORD" --check-config --config "$EXAMPLE" --node node1 >/dev/null &&
		"$IPMIRRORD" --check-config --config "$EXAMPLE" --node node2 >/dev/null'
# comments out: what the file really sets
sed -e ':a' -e 's/<!--.*-->//g; /<!--/{N; ba}' "$EXAMPLE" >"$T_DIR/example.xml"
missing=''
for e in $(rng_names element); do
	grep -q "<$e[ />]" "$T_DIR/example.xml" || missing="$missing <$e>"
done
for a in $(rng_names attribute); do
	grep -q " $a=\"" "$T_DIR/example.xml" || missing="$missing $a="
done
check "the example uses every element and attribute of ipmirror.rng${missing:+ (missing:$missing)}" \
	test -z "$missing"

# ---- ipmirror.xml(5) covers the schema ----------------------------------------
missing=''
for e in $(rng_names element); do
	grep -q "^\.SS <$e[ />\"]" "$MAN5" || missing="$missing <$e>"
done
for a in $(rng_names attribute); do
	esc=${a//-/\\\\-}
	grep -Eq "^\.BR? $esc( |$)" "$MAN5" || missing="$missing $a"
done
check "ipmirror.xml(5) has a section per element and an entry per attribute of ipmirror.rng${missing:+ (missing:$missing)}" \
	test -z "$missing"
check "the man pages format without a warning" eval '
	for m in "$MAN5" "$S/doc/ipmirror-drill.8" "$top_builddir/doc/ocf_ipmirror_ipmirror.7" \
		"$S/doc/ipmirrord.8" "$S/doc/ipmirrorctl.8"; do
		[ -z "$(LC_ALL=C.UTF-8 MANROFFSEQ= man --warnings -l "$m" 2>&1 >/dev/null)" ] || exit 1
	done'

# ---- the OCF agent's man page, generated from its meta-data -------------------
OCF7=$top_builddir/doc/ocf_ipmirror_ipmirror.7
"$PYTHON3" - "$S/ocf/ipmirror" "$OCF7" >"$T_DIR/ocf-missing" <<'PY'
import os, subprocess, sys, tempfile, xml.etree.ElementTree as ET
agent, page = sys.argv[1], open(sys.argv[2]).read()
with tempfile.TemporaryDirectory() as d:
    open(os.path.join(d, "ocf-shellfuncs"), "w").write('__OCF_ACTION="$1"\n')
    md = subprocess.run(["bash", agent, "meta-data"], stdout=subprocess.PIPE, check=True,
                        env=dict(os.environ, OCF_FUNCTIONS_DIR=d)).stdout
root = ET.fromstring(md)
for p in root.iter("parameter"):
    n = p.get("name").replace("-", "\\-")
    d = (p.find("content").get("default") or "").replace("-", "\\-")
    if (".BR %s" % n) not in page or (d and ("Default: \\fB%s\\fR" % d) not in page):
        print("parameter", p.get("name"))
for a in root.iter("action"):
    if (".B %s\n" % a.get("name").replace("-", "\\-")) not in page or a.get("timeout") not in page:
        print("action", a.get("name"))
PY
check "ocf_ipmirror_ipmirror(7) lists every parameter (with its default) and action of the meta-data$(tr '\n' ' ' <"$T_DIR/ocf-missing")" \
	test ! -s "$T_DIR/ocf-missing"

# ---- systemd -----------------------------------------------------------------
UNIT=$top_builddir/data/ipmirrord.service
mkdir "$T_DIR/unit"
# the unit as make install writes it, run from the build tree
sed "s|^ExecStart=[^ ]*|ExecStart=$IPMIRRORD|" "$UNIT" >"$T_DIR/unit/ipmirrord.service"
out=$(systemd-analyze verify --man=no "$T_DIR/unit/ipmirrord.service" 2>&1); rc=$?
check "systemd-analyze verify: the unit passes without a warning (rc $rc${out:+: $out})" \
	test "$rc" = 0 -a -z "$out"
check "the unit is Type=notify with a watchdog and Restart=on-failure" eval '
	grep -qx Type=notify "$UNIT" && grep -qx "WatchdogSec=[0-9]*" "$UNIT" &&
	grep -qx Restart=on-failure "$UNIT" && grep -q "^ExecStart=.*ipmirrord --foreground --syslog " "$UNIT"'
mkdir "$T_DIR/root"
systemd-tmpfiles --create --root="$T_DIR/root" "$S/data/ipmirror.tmpfiles" >"$T_DIR/tmpfiles.out" 2>&1
check "tmpfiles.d: /run/ipmirror 0755 and /var/lib/ipmirror 0700 (under --root)" \
	test "$(stat -c %a "$T_DIR/root/run/ipmirror" 2>/dev/null):$(stat -c %a "$T_DIR/root/var/lib/ipmirror" 2>/dev/null)" = 755:700

# ---- a daemon with a log file: logrotate and log-reopen --------------------------
PORT=$(free_port admin)
SOCK="ipm-admin-$$"
mkdir "$T_DIR/log"
truncate -s 16M "$T_DIR/vol0.img" "$T_DIR/vol1.img"
cat >"$T_DIR/solo.xml" <<XML
<ipmirror version="1">
  <log level="info" file="$T_DIR/log/ipmirrord.log"/>
  <node name="solo"><nbd address="127.0.0.1" port="$PORT"/></node>
  <lun name="vol0" size="16M" mirrored="no" primary="solo"><backing path="$T_DIR/vol0.img"/></lun>
  <lun name="vol1" size="16M" mirrored="no" primary="solo"><backing path="$T_DIR/vol1.img"/></lun>
</ipmirror>
XML
ctl() { timeout -k 5 "$CTL_TIMEOUT" "$IPMIRRORCTL" --socket "$SOCK" "$@"; }
start_daemon d --config "$T_DIR/solo.xml" --node solo --socket "$SOCK" --pidfile "$T_DIR/d.pid"
wait_for 10 ctl status || bail "the daemon does not answer: $(cat "$T_DIR/d.log")"
# the shipped snippet, pointed at this log directory and daemon
sed -e "s|/var/log/ipmirror/|$T_DIR/log/|" -e "s|ipmirrorctl log-reopen|$IPMIRRORCTL --socket $SOCK log-reopen|" \
	"$S/data/ipmirror.logrotate" >"$T_DIR/logrotate.conf"
logrotate -f -s "$T_DIR/logrotate.state" "$T_DIR/logrotate.conf" >"$T_DIR/logrotate.out" 2>&1
LR=$?
check "logrotate rotated the log (exit $LR: $(head -c 200 "$T_DIR/logrotate.out"))" \
	eval '[ "$LR" = 0 ] && grep -q "node solo serving" "$T_DIR/log/ipmirrord.log.1"'
check "after rotation the daemon writes to the new file (postrotate: ipmirrorctl log-reopen)" \
	grep -q "log file $T_DIR/log/ipmirrord.log reopened" "$T_DIR/log/ipmirrord.log"
mv "$T_DIR/log/ipmirrord.log" "$T_DIR/log/moved.log"
kill -USR1 "$d_pid"
wait_for 5 test -s "$T_DIR/log/ipmirrord.log"
check "SIGUSR1 reopens the log file too" grep -q "reopened" "$T_DIR/log/ipmirrord.log"

# ---- bash completion ----------------------------------------------------------
complete_line() { # WORDS...: COMPREPLY for the last (possibly empty) word
	bash -c '. /usr/share/bash-completion/bash_completion; . "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_ipmirrorctl; printf "%s\n" "${COMPREPLY[@]}"' _ "$S/data/ipmirrorctl" "$@" | sort | tr '\n' ' '
}
got=$(complete_line "$IPMIRRORCTL" '')
check "completion: the commands ($got)" \
	eval 'for c in status wait promote demote heartbeat resolve log-reopen verify; do
		case " $got " in *" $c "*) ;; *) exit 1 ;; esac; done'
got=$(complete_line "$IPMIRRORCTL" --socket "$SOCK" status '')
check "completion: LUN names from the running daemon ($got)" test "$got" = "vol0 vol1 "
got=$(complete_line "$IPMIRRORCTL" --socket "$SOCK" wait vol0 --state up)
check "completion: states after --state ($got)" test "$got" = "uptodate "
got=$(complete_line "$IPMIRRORCTL" --socket "$SOCK" verify vol0 --r)
check "completion: --repair after verify ($got)" test "$got" = "--repair "

# ---- --version ---------------------------------------------------------------------
V=$(sed -n 's/^AC_INIT(\[ipmirror\], \[\([^]]*\)\].*/\1/p' "$S/configure.ac")
check "ipmirrord --version and ipmirrorctl --version print $V" eval '
	[ "$("$IPMIRRORD" --version)" = "ipmirrord (ipmirror) $V" ] &&
	[ "$("$IPMIRRORCTL" --version)" = "ipmirrorctl (ipmirror) $V" ]'
finish
