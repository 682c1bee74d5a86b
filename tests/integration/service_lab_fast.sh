#!/bin/bash
# service_lab.sh's failover part (the Promoted node's init killed -9 under
# the database's load) with corosync's token at 1 s (IPM_LAB_TOKEN=1000),
# for the failover time with a short token; no clean move.
export IPM_LAB_TOKEN=1000
SERVICE_MOVE=0 LAB_TAG=ipmsf
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/service_lab.sh"
