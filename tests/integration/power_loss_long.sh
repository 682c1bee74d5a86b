#!/bin/bash
# power_loss.sh for `make check-long`: 8 rounds of 10 s (4 cuts of the
# primary's power, 4 of the mirror's; half under load, half idle), and
# before each cut a random share of the dirty pages (0, 25, 50, 75 or
# 100 %) reaches the disk, as write-back would have done.
export POWER_ROUNDS=${POWER_ROUNDS:-8} POWER_SECONDS=${POWER_SECONDS:-10} POWER_KEEP=${POWER_KEEP:-random}
# sourced, not run: $0 names this test, so its ports differ from the
# other variant's when make -j2 check-long runs them side by side
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/power_loss.sh"
