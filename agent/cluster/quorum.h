/* quorum.h - may this node take the primary role, as far as quorum goes?
 *
 * Asks corosync (libquorum) whether this node's partition is quorate.
 * votequorum's two_node keeps a lone node of a two-node cluster quorate
 * (once wait_for_all has been met), so that is honoured as corosync reports
 * it. No corosync running (a standalone daemon) means no check; neither
 * does a corosync without a quorum provider. --force overrides a refusal
 * (the caller logs that). */
#ifndef IPM_QUORUM_H
#define IPM_QUORUM_H

#include <stdint.h>
#include "ipmirror.h"

/* The decision on the answers of quorum_initialize (init_rc, quorum_type)
 * and quorum_getquorate (get_rc, quorate), as corosync cs_error_t values.
 * 0: allowed (err says why: "quorate", "no corosync", ...); -EPERM (no
 * quorum) or -EAGAIN (corosync did not answer properly) with the reason. */
int ipm_quorum_decide(int init_rc, uint32_t quorum_type, int get_rc, int quorate,
		      ipm_error *err);

/* Ask corosync now and decide (as above). */
int ipm_quorum_check(ipm_error *err);

#endif
