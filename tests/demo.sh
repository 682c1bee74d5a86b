#!/bin/bash
# The ipmirror demo: two nodes on this machine (loopback addresses 127.0.0.1
# and 127.0.0.2) mirror a 256 MiB volume in sync mode. A real NBD client
# writes 64 MiB through node1; both nodes show their status; the checksums of
# the two backing files come out equal. Everything is cleaned up on exit.
set -eu
top_builddir=${top_builddir:-$(cd "$(dirname "$0")/.." && pwd)}
IPMIRRORD="$top_builddir/agent/ipmirrord"
IPMIRRORCTL="$top_builddir/agent/ipmirrorctl"
export IPMIRROR_SCHEMA=${IPMIRROR_SCHEMA:-$(cd "$(dirname "$0")/.." && pwd)/engine/ipmirror.rng}
export PATH="/usr/bin:/usr/sbin:$PATH"
dir=$(mktemp -d /tmp/ipmirror-demo.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "configuration: $dir/ipmirror.xml"
( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/secret" )
cat >"$dir/ipmirror.xml" <<XML
<ipmirror version="1">
  <secret file="$dir/secret"/>
  <heartbeat interval="1.5" timeout="4.0" probation="10" method="udp"/>
  <connections count="4"/>
  <node name="node1">
    <data address="127.0.0.1" port="17788"/>
    <heartbeat address="127.0.0.1" port="17789"/>
    <nbd address="127.0.0.1" port="20809"/>
  </node>
  <node name="node2">
    <data address="127.0.0.2" port="17788"/>
    <heartbeat address="127.0.0.2" port="17789"/>
    <nbd address="127.0.0.2" port="20809"/>
  </node>
  <lun name="vol0" size="256M" mode="sync" mirrored="yes" primary="node1">
    <backing node="node1" path="$dir/node1-vol0.img"/>
    <backing node="node2" path="$dir/node2-vol0.img"/>
  </lun>
</ipmirror>
XML
cat "$dir/ipmirror.xml"
truncate -s 256M "$dir/node1-vol0.img" "$dir/node2-vol0.img"
"$IPMIRRORD" --check-config --config "$dir/ipmirror.xml"

say "starting ipmirrord for node1 and node2"
for n in node1 node2; do
	"$IPMIRRORD" --foreground --config "$dir/ipmirror.xml" --node $n \
		--socket "ipmirror-demo-$n" 2>"$dir/$n.log" &
	pids="$pids $!"
done
ctl() { local n=$1; shift; "$IPMIRRORCTL" --socket "ipmirror-demo-$n" "$@"; }
for _ in $(seq 100); do
	up=$(ctl node1 status --json 2>/dev/null |
		jq '[.connections[] | select(.status == "up")] | length' 2>/dev/null || echo 0)
	[ "${up:-0}" -ge 4 ] && break
	sleep 0.2
done
[ "${up:-0}" -ge 4 ] || { cat "$dir"/node*.log; echo "demo: connections did not come up"; exit 1; }

say "writing 64 MiB of random data to vol0 through NBD on node1 (nbdcopy)"
head -c 64M /dev/urandom >"$dir/data"
nbdcopy "$dir/data" "nbd://127.0.0.1:20809/vol0"
nbdcopy "nbd://127.0.0.1:20809/vol0" "$dir/readback"
cmp -n $((64 << 20)) "$dir/data" "$dir/readback" && echo "read back through NBD: identical"

say "node2 refuses to serve vol0 (it is the mirror)"
nbdinfo "nbd://127.0.0.2:20809/vol0" 2>&1 | head -1 || true
sleep 0.2
grep -o 'export "vol0" refused.*' "$dir/node2.log" | tail -1

say "ipmirrorctl status on node1"
ctl node1 status
say "ipmirrorctl status on node2"
ctl node2 status

say "stopping both daemons"
for p in $pids; do kill "$p"; wait "$p" || true; done
pids=""

say "checksums of the two backing files"
s1=$(sha256sum "$dir/node1-vol0.img" | cut -d' ' -f1)
s2=$(sha256sum "$dir/node2-vol0.img" | cut -d' ' -f1)
echo "node1 $s1"
echo "node2 $s2"
if [ "$s1" = "$s2" ]; then
	echo "MIRROR OK: both nodes hold the same bytes"
else
	echo "MIRROR MISMATCH"; exit 1
fi
