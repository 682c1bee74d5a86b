#!/bin/bash
# Failover onto the mirror of an async LUN: failover.sh with FAILOVER_MODE=async.
# The promoted mirror must hold a crash-consistent prefix of the host's writes:
# no write present while a write acknowledged before it was issued is missing
# (the checker prints the first violating pair).
FAILOVER_MODE=async
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/failover.sh"
