#!/bin/bash
# The Debian packages, end to end (`make check-deb`; minutes, so not part of
# make check): the source as `make dist` would ship it is built with
# dpkg-buildpackage -us -uc -b (unit tests skipped: nocheck), lintian finds
# no error, the three packages install on this machine (files under /usr,
# /lib and /etc only; refused when anything they would install is already
# there), the installed daemon accepts the shipped example configuration and
# serves a LUN with the installed library and schema, the unit verifies with
# its man pages, a program builds against libipmirror-dev, and a purge
# leaves nothing of the packages behind.
. "$top_srcdir/tests/lib.sh"
plan 12
T_LIMIT=1500

for c in dpkg-buildpackage lintian dpkg systemd-analyze; do
	command -v "$c" >/dev/null || bail "$c is not installed"
done
[ "$(id -u)" = 0 ] || bail "must run as root (dpkg -i)"
PKGS="ipmirror libipmirror0 libipmirror-dev"
for p in $PKGS; do
	dpkg -s "$p" >/dev/null 2>&1 && bail "package $p is installed already: dpkg --purge it first"
done
V=$(sed -n 's/^AC_INIT(\[ipmirror\], \[\([^]]*\)\].*/\1/p' "$top_srcdir/configure.ac")
SRC="$T_DIR/src/ipmirror-$V"

# ---- build -----------------------------------------------------------------
mkdir -p "$T_DIR/src"
make -s -C "$top_builddir" distdir distdir="$SRC" >"$T_DIR/distdir.log" 2>&1 ||
	bail "make distdir failed: $(tail -n 5 "$T_DIR/distdir.log")"
t0=$SECONDS
(cd "$SRC" && DEB_BUILD_OPTIONS="nocheck parallel=2" timeout 1200 dpkg-buildpackage -us -uc -b) \
	>"$T_DIR/build.log" 2>&1
BRC=$?
# the three packages (not the -dbgsym ones dh makes besides)
DEBS=$(for p in $PKGS; do ls "$T_DIR/src/${p}_${V}_"*.deb 2>/dev/null; done)
check "dpkg-buildpackage -us -uc -b builds ipmirror, libipmirror0, libipmirror-dev ($((SECONDS - t0)) s)" \
	eval '[ "$BRC" = 0 ] && for p in $PKGS; do ls "$T_DIR/src/${p}_${V}_"*.deb >/dev/null || exit 1; done'
[ "$BRC" = 0 ] || { tail -n 30 "$T_DIR/build.log" | sed 's/^/# /'; bail "the package build failed"; }
lintian --no-tag-display-limit "$T_DIR"/src/*.changes >"$T_DIR/lintian.log" 2>&1
grep -E '^[EW]: ' "$T_DIR/lintian.log" | sed 's/^/# lintian: /'
check "lintian reports no error" eval '! grep -q "^E: " "$T_DIR/lintian.log"'

# ---- install ------------------------------------------------------------------
# nothing the packages ship may exist yet (another install would be overwritten)
for d in $DEBS; do dpkg-deb -c "$d"; done | awk '{ print $6 }' | sed 's|^\./|/|; s|/$||' |
	sort -u >"$T_DIR/files"
clash=''
while read -r f; do
	[ -d "$f" ] && continue   # directories are shared (/lib may be a link to usr/lib)
	if [ -e "$f" ] || [ -L "$f" ]; then clash="$clash $f"; fi
done <"$T_DIR/files"
[ -z "$clash" ] || bail "files of the packages exist already:$clash"
check "the packages install files under /usr, /lib and /etc only" \
	eval '! grep -vE "^/(usr|lib|etc)(/|$)|^/?$" "$T_DIR/files"'
before_dirs=''
for d in /var/lib/ipmirror /var/log/ipmirror /etc/ipmirror; do [ -e "$d" ] && before_dirs="$before_dirs $d"; done
dpkg -i $DEBS >"$T_DIR/install.log" 2>&1
IRC=$?
INSTALLED=1
purge() {
	[ -n "${INSTALLED:-}" ] || return 0
	dpkg --purge $PKGS >"$T_DIR/purge.log" 2>&1
	local rc=$?
	INSTALLED=''
	[ "$rc" = 0 ] || sed 's/^/# purge: /' "$T_DIR/purge.log"
	return $rc
}
cleanup_deb() { purge; t_cleanup; }
trap cleanup_deb EXIT
check "dpkg -i installs the three packages" \
	eval '[ "$IRC" = 0 ] && for p in $PKGS; do dpkg -s "$p" | grep -qx "Status: install ok installed" || exit 1; done'
[ "$IRC" = 0 ] || { sed 's/^/# /' "$T_DIR/install.log"; bail "dpkg -i failed"; }

# ---- the installed programs ------------------------------------------------------
unset IPMIRROR_SCHEMA  # the installed schema
check "the installed ipmirrord accepts the shipped /etc/ipmirror/ipmirror.xml.example ($(/usr/sbin/ipmirrord --check-config --config /etc/ipmirror/ipmirror.xml.example 2>&1))" \
	eval '/usr/sbin/ipmirrord --check-config --config /etc/ipmirror/ipmirror.xml.example &&
		[ "$(/usr/sbin/ipmirrord --version)" = "ipmirrord (ipmirror) $V" ]'
PORT=$(free_port deb)
SOCK="ipm-deb-$$"
truncate -s 16M "$T_DIR/vol0.img"
cat >"$T_DIR/solo.xml" <<XML
<ipmirror version="1">
  <node name="solo"><nbd address="127.0.0.1" port="$PORT"/></node>
  <lun name="vol0" size="16M" mirrored="no" primary="solo"><backing path="$T_DIR/vol0.img"/></lun>
</ipmirror>
XML
/usr/sbin/ipmirrord --foreground --config "$T_DIR/solo.xml" --node solo --socket "$SOCK" \
	>"$T_DIR/d.log" 2>&1 &
DPID=$!
T_PIDS="$T_PIDS $DPID"
wait_for 10 timeout 10 /usr/sbin/ipmirrorctl --socket "$SOCK" status vol0
check "the installed daemon serves a LUN (ipmirrorctl status, NBD), pidfile in /run/ipmirror" eval '
	timeout 10 /usr/sbin/ipmirrorctl --socket "$SOCK" status vol0 | grep -q "^vol0 .*uptodate" &&
	timeout 10 nbdinfo "nbd://127.0.0.1:$PORT/vol0" >/dev/null &&
	[ "$(cat "/run/ipmirror/ipmirrord-$SOCK.pid")" = "$DPID" ] &&
	ldd /usr/sbin/ipmirrord | grep -Eq "libipmirror.so.0 => /(usr/)?lib/"' ||
	{ sed 's/^/# daemon: /' "$T_DIR/d.log"; ldd /usr/sbin/ipmirrord | sed 's/^/# ldd: /'; }
stop_pid "$DPID"
out=$(systemd-analyze verify /lib/systemd/system/ipmirrord.service 2>&1); rc=$?
check "systemd-analyze verify passes on the installed unit, man pages included (rc $rc${out:+: $out})" \
	test "$rc" = 0 -a -z "$out"
check "postinst made /var/lib/ipmirror (tmpfiles.d); man pages, completion, OCF agent in place" eval '
	[ "$(stat -c %a /var/lib/ipmirror)" = 700 ] &&
	man -w 5 ipmirror.xml >/dev/null && man -w 7 ocf_ipmirror_ipmirror >/dev/null &&
	man -w 8 ipmirrord ipmirrorctl ipmirror-drill >/dev/null &&
	test -f /usr/share/bash-completion/completions/ipmirrorctl &&
	OCF_ROOT=/usr/lib/ocf /usr/lib/ocf/resource.d/ipmirror/ipmirror meta-data | grep -q "<resource-agent name=\"ipmirror\""'
printf '#include <ipmirror.h>\n#include <stdio.h>\nint main(void) { puts(ipm_state_name(IPM_STATE_UPTODATE)); return 0; }\n' >"$T_DIR/use.c"
check "a program builds against libipmirror-dev (pkg-config ipmirror) and runs" eval '
	cc -o "$T_DIR/use" "$T_DIR/use.c" $(pkg-config --cflags --libs ipmirror) 2>"$T_DIR/cc.log" &&
	[ "$("$T_DIR/use")" = uptodate ]'

# ---- purge --------------------------------------------------------------------
purge; PRC=$?
left=''
while read -r f; do
	[ -e "$f" ] || [ -L "$f" ] || continue
	[ -d "$f" ] && [ -n "$(ls -A "$f" 2>/dev/null)" ] && continue  # shared dirs
	[ -d "$f" ] && case "$f" in /etc/ipmirror|/usr/share/ipmirror|/usr/share/doc/ipmirror*|/usr/lib/ocf/resource.d/ipmirror) ;; *) continue ;; esac
	left="$left $f"
done <"$T_DIR/files"
check "dpkg --purge removes the packages (rc $PRC)" eval '
	[ "$PRC" = 0 ] && for p in $PKGS; do ! dpkg -s "$p" >/dev/null 2>&1 || exit 1; done'
check "nothing of the packages is left${left:+ (left:$left)}" test -z "$left"
after=''
for d in /var/lib/ipmirror /var/log/ipmirror /etc/ipmirror; do
	case " $before_dirs " in *" $d "*) continue ;; esac
	[ -e "$d" ] && after="$after $d"
done
check "purge removed the directories the package made${after:+ (left:$after)}" test -z "$after"
finish
