#!/bin/bash
# The initial sync (doc/generations.md) on two daemons on loopback:
#  1. node1's backing holds 64 MiB of data at 100 MiB, node2's is blank,
#     neither has a generation file. node2 alone is inconsistent and promote
#     is refused there; once node1 is up node2 stays inconsistent (never
#     uptodate) while node1 is resyncing, with progress, rate and ETA in the
#     status, under the resync rate limit; at node2's first uptodate the two
#     backing files are byte-identical, and only the data was sent.
#  2. node2's disk is replaced (a blank file, its generation file gone): it
#     is copied whole again while fio writes node1 with --verify; the files
#     end equal and every block fio completed reads back on node2 after a
#     failover.
. "$top_srcdir/tests/lib.sh"
plan 18

PAIR_RESYNC_RATE=32M pair_setup vol0:512M:sync:yes:node1
head -c 64M /dev/urandom >"$T_DIR/data"
dd if="$T_DIR/data" of="$T_DIR/node1-vol0.img" bs=1M seek=100 conv=notrunc status=none
cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img" && bail "the backing files start equal"

# ---- 1. first start ---------------------------------------------------------
node_start node2 || bail "node2 did not start: $(cat "$T_DIR/n2.log")"
check "node2 alone (blank, no generation file): inconsistent" \
	wait_for 10 lun_state_is node2 vol0 inconsistent
out=$(ctl node2 promote vol0 2>&1); rc=$?
diag "promote on node2: $out"
check "promote on node2 refused while inconsistent (exit 1, names the reason)" \
	eval 'test $rc = 1 && grep -q "inconsistent" <<<"$out"'
check "promote --dry-run on node2 refused too" eval '! ctl node2 promote vol0 --dry-run'

lun_watch node2 vol0 60 "$T_DIR/n2.states" &
w2=$!
: >"$T_DIR/n1.progress"
node_start node1 || bail "node1 did not start: $(cat "$T_DIR/n1.log")"
# the source shows progress, rate and time left while it copies
progress_shown() {
	local j; j=$(ctl node1 status vol0 --json) || return 1
	echo "$j" | jq -c '.luns[0] | [.state, .resync_done_bytes, .resync_total_bytes, .resync_rate, .resync_eta_s]' \
		>>"$T_DIR/n1.progress"
	echo "$j" | jq -e '.luns[0] | .state == "resyncing" and .resync_total_bytes > 0 and
		.resync_rate > 0 and .resync_eta_s >= 0 and .peer_inconsistent' >/dev/null &&
		ctl node1 status vol0 | grep -Eq 'resyncing .* [0-9.]+% [0-9.]+ [KMG]iB/s eta [0-9]+s'
}
check "node1 resyncing with progress, rate and ETA (JSON and table)" wait_for 30 progress_shown
diag "node1 progress samples: $(tail -n 3 "$T_DIR/n1.progress" | tr '\n' ' ')"
check "node2 uptodate once the copy ends" wait_for 60 lun_state_is node2 vol0 uptodate
# no host writes: the files must be equal the moment node2 says so
check "at node2's first uptodate the backing files are byte-identical" \
	cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
kill "$w2" 2>/dev/null; wait "$w2" 2>/dev/null
states=$(awk '{print $1}' "$T_DIR/n2.states" | uniq | tr '\n' ' ')
diag "node2 states: $states"
check "node2 was inconsistent until the copy ended, never uptodate before" \
	eval '[[ "$states" =~ ^(inconsistent )+uptodate\ $ ]]'
check "node1 uptodate, consistent, its peer no longer inconsistent" \
	eval '[ "$(ctl node1 status vol0 --json | jq -c ".luns[0] | [.state, .consistent, .peer_inconsistent]")" = "[\"uptodate\",true,false]" ]'
g1=$(lun_field node1 vol0 generation); g2=$(lun_field node2 vol0 generation)
check "both at the source's data generation ($g1)" test "$g1" = "$g2" -a "$g1" != none
# "peer node2: resync complete, 67108864 bytes in 2051 ms; mirroring live"
line=$(grep -o 'resync complete, [0-9]* bytes in [0-9]* ms' "$T_DIR/n1.log" | head -n1)
diag "node1: $line"
read -r sent ms < <(sed 's/[^0-9 ]//g' <<<"$line" | awk '{print $1, $2}')
check "only the 64 MiB of data went over the wire (holes and zeros as ZERO): ${sent:-?} bytes" \
	test "${sent:-0}" -ge $((64 << 20)) -a "${sent:-0}" -le $((68 << 20))
check "the resync rate limit applied (64 MiB at 32 MiB/s: >= 1.5 s, took ${ms:-?} ms)" \
	test "${ms:-0}" -ge 1500

# ---- 2. a replaced disk, hosts writing during the copy ----------------------
stop_pid "$n2_pid"
rm -f "$T_DIR"/node2-vol0.img*
truncate -s 512M "$T_DIR/node2-vol0.img"
node_start node2 || bail "node2 did not restart: $(cat "$T_DIR/n2.log")"
check "node2's replaced disk (no generation file): inconsistent" \
	wait_for 10 lun_state_is node2 vol0 inconsistent
# random writes over part of the data and the hole after it while the copy
# runs (the rest of the data reaches node2 only by the copy)
load_start 64M 10 --offset=150M
check "the copy runs while fio writes node1" wait_for 20 lun_state_is node1 vol0 resyncing
wait "$fio_pid"; rc=$?
check "fio randwrite --verify on node1 during the copy: no error" test "$rc" = 0
check "node2 uptodate after the copy and the writes" wait_for 60 lun_state_is node2 vol0 uptodate
check "the backing files end byte-identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
check "failover: every block fio completed reads back on node2" failover_verify load
finish
