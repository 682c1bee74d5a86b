#!/bin/bash
# power_loss.sh for `make check-long` with io="direct" backings (O_DIRECT
# writes, batched through io_uring, made durable by the flush): 6 rounds of
# 10 s, a random share of the dirty pages written back before each cut.
export POWER_IO=direct POWER_ROUNDS=${POWER_ROUNDS:-6} POWER_SECONDS=${POWER_SECONDS:-10} \
	POWER_KEEP=${POWER_KEEP:-random}
# sourced, not run: $0 names this test, so its ports differ from the
# other variant's when make -j2 check-long runs them side by side
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/power_loss.sh"
