#!/bin/bash
# Pair property test: a seeded random mix of NBD requests (lengths 0..32 MiB
# including odd sizes, offsets up to the last byte, FUA, overlapping writes
# in flight, TRIM, WRITE_ZEROES with and without NO_HOLE, FLUSH, empty
# requests) from non-strict clients, for 20 s, on a sync and an async
# mirrored LUN at once; then both LUNs are up to date and both copies of each
# byte-identical. The seed is printed (and taken from PROPERTY_SEED to replay
# a failure).
. "$top_srcdir/tests/lib.sh"
plan 7

SEED=${PROPERTY_SEED:-$(( $(date +%s) % 100000 ))}
SECONDS_RUN=${PROPERTY_SECONDS:-20}
PROP="/usr/bin/python3 $top_srcdir/tests/integration/py/nbd_property.py"
diag "seed $SEED (replay: PROPERTY_SEED=$SEED make check TESTS=tests/integration/nbd_property.sh)"

both_uptodate() { lun_state_is node1 "$1" uptodate && lun_state_is node2 "$1" uptodate; }

pair_local vol0:256M:sync:yes:node1 vol1:256M:async:yes:node1
wait_for 20 both_uptodate vol0 && wait_for 20 both_uptodate vol1 || bail "not up to date"

$PROP "nbd://127.0.0.1:$N1_NBD/vol0" "$SEED" "$SECONDS_RUN" >"$T_DIR/p0.out" 2>&1 &
p0=$!
$PROP "nbd://127.0.0.1:$N1_NBD/vol1" $((SEED + 1)) "$SECONDS_RUN" >"$T_DIR/p1.out" 2>&1 &
p1=$!
wait $p0; r0=$?; wait $p1; r1=$?
sed 's/^/# vol0: /' "$T_DIR/p0.out"; sed 's/^/# vol1: /' "$T_DIR/p1.out"
check "sync lun: every request succeeded (seed $SEED)" test $r0 = 0
check "async lun: every request succeeded (seed $((SEED + 1)))" test $r1 = 0
check "sync lun up to date on both nodes" wait_for 30 both_uptodate vol0
check "async lun up to date on both nodes" wait_for 30 both_uptodate vol1
stop_pid "$n1_pid"; stop_pid "$n2_pid"
for l in vol0 vol1; do
	check "$l: both backing files identical (seed $SEED)" \
		cmp "$T_DIR/node1-$l.img" "$T_DIR/node2-$l.img"
done
finish
