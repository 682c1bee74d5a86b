#!/bin/bash
# Journal overflow: with a 2 MiB journal limit and the link down, 24 MiB of
# writes fill the journal and spill into the persistent dirty-extent bitmap;
# after the link returns the resync replays the journal and copies the dirty
# extents, and both backing files are byte-identical.
. "$top_srcdir/tests/lib.sh"
plan 7

PAIR_JOURNAL_MAX=2M pair_up vol0:128M:async:yes:node1
check "mirroring is up" wait_for 20 lun_state_is node1 vol0 uptodate

link_down
check "link down: primary journaling" wait_for 10 lun_state_is node1 vol0 journaling
FIO_NODE=node1 fio_verify "nbd://$N1_ADDR:$N1_NBD/vol0" fill --size=24M --rw=write --bs=64k
check "24 MiB written and verified while the link is down" test $? = 0
check "the journal overflowed into the dirty bitmap" grep -q "journal full" "$T_DIR/n1.log"
link_up
check "after probation the journal and dirty extents are resynced" \
	wait_for 60 lun_state_is node1 vol0 uptodate
stop_pid "$n1_pid"; stop_pid "$n2_pid"
check "both backing files identical" cmp "$T_DIR/node1-vol0.img" "$T_DIR/node2-vol0.img"
finish
