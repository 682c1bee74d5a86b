#!/bin/bash
# failover_lab.sh with an async LUN (FAILOVER_MODE=async): the whole Promoted
# node killed while its replication link is held to 4 Mbit/s; the promoted
# survivor must hold a crash-consistent prefix of the host's writes (the
# checker prints the first violating pair).
FAILOVER_MODE=async LAB_TAG=ipmfa
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/failover_lab.sh"
