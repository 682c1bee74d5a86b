#!/bin/bash
# The resync's memory is bounded and given back. vol0 (a 2 GiB journal) and
# vol1 (a 1 MiB journal: its backlog becomes dirty extents) are written
# whole with 1 MiB writes while the link is down; after probation both are
# resynced at once (journal replay and extent copy). Before the bound the
# resync read ahead as far as the request window let it (1 GiB of payload):
# a 1 GiB backlog raised the primary's peak RSS to 0.6-1.0 GiB, and an
# extent copy left 820 MiB behind. Now: at most 32 MiB of replays in
# flight (RESYNC_INFLIGHT_BYTES), run buffers reused, all of it freed at the
# end. The copies must end byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 8
MIB=384

# kib PID FIELD: a /proc/PID/status figure (VmHWM, VmRSS) in KiB
kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
both_uptodate() { lun_state_is node1 vol0 uptodate && lun_state_is node1 vol1 uptodate; }
both_journaling() { lun_state_is node1 vol0 journaling && lun_state_is node1 vol1 journaling; }

netns_pair || bail "cannot create network namespaces"
PAIR_JOURNAL_MAX=2G PAIR_HB='interval="0.5" timeout="2.0" probation="2"' \
	pair_setup "vol0:${MIB}M:sync:yes:node1" "vol1:${MIB}M:sync:yes:node1"
sed -i '/<lun name="vol1"/,/<\/lun>/ s/max-size="2G"/max-size="1M"/' "$T_DIR/pair.xml"
grep -A4 '<lun name="vol1"' "$T_DIR/pair.xml" | grep -q 'max-size="1M"' || bail "vol1's journal size not set"
pair_start || bail "daemons did not start: $(cat "$T_DIR"/n*.log)"
check "mirroring is up" wait_for 30 both_uptodate

link_down
check "link down: both LUNs journal" wait_for 15 both_journaling
for l in vol0 vol1; do
	in_node node1 timeout 120 fio --name="w-$l" --ioengine=nbd \
		--uri="nbd://$N1_ADDR:$N1_NBD/$l" --rw=write --bs=1M --iodepth=8 \
		--size="${MIB}M" >"$T_DIR/fio-$l.out" 2>&1 || diag "fio on $l failed: $(tail -3 "$T_DIR/fio-$l.out")"
done
j0=$(lun_field node1 vol0 journal_bytes)
j1=$(lun_field node1 vol1 journal_bytes)
check "the backlog: $j0 bytes journaled on vol0, $j1 on vol1 (journal + dirty extents)" \
	test "$j0" -ge $((MIB << 20)) -a "$j1" -ge $((MIB << 20))
sync
hwm0=$(kib "$n1_pid" VmHWM)
rss0=$(kib "$n1_pid" VmRSS)
diag "node1 before the resync: VmHWM $hwm0 KiB, VmRSS $rss0 KiB"
link_up
check "the resync ends: both LUNs up to date" wait_for 120 both_uptodate
hwm1=$(kib "$n1_pid" VmHWM)
rss1=$(kib "$n1_pid" VmRSS)
diag "node1 after the resync: VmHWM $hwm1 KiB, VmRSS $rss1 KiB"
grep -o 'resync complete, [0-9]* bytes in [0-9]* ms' "$T_DIR/n1.log" | tail -1 | sed 's/^/# /'
check "the resync of $((2 * MIB)) MiB raised node1's peak RSS by less than 160 MiB ($(((hwm1 - hwm0) / 1024)) MiB)" \
	test $((hwm1 - hwm0)) -lt $((160 << 10))
check "node1 gave the resync's memory back: RSS $((rss1 / 1024)) MiB after, $((rss0 / 1024)) MiB before (at most 64 MiB more)" \
	test $((rss1 - rss0)) -lt $((64 << 10))
stop_pid "$n1_pid"
stop_pid "$n2_pid"
check "both copies identical" eval 'cmp -s "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img" &&
	cmp -s "$T_DIR/node1-vol1.img" "$T_DIR/node2-vol1.img"'
finish
