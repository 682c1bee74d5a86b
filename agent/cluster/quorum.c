/* quorum.c - the quorum check before a promotion (see quorum.h). */
#include <errno.h>
#include <corosync/quorum.h>

#include "quorum.h"

int ipm_quorum_decide(int init_rc, uint32_t quorum_type, int get_rc, int quorate,
		      ipm_error *err)
{
	/* the library cannot reach corosync: not part of a cluster */
	if (init_rc == CS_ERR_LIBRARY)
		return ipm_note(err, "no corosync running: no quorum check");
	if (init_rc != CS_OK)
		return ipm_fail(err, -EAGAIN,
				"cannot ask corosync for quorum (quorum_initialize: error %d): refusing to promote without knowing (--force overrides)",
				init_rc);
	if (quorum_type == QUORUM_FREE)
		return ipm_note(err, "corosync has no quorum provider: no quorum check");
	if (get_rc != CS_OK)
		return ipm_fail(err, -EAGAIN,
				"cannot ask corosync for quorum (quorum_getquorate: error %d): refusing to promote without knowing (--force overrides)",
				get_rc);
	if (!quorate)
		return ipm_fail(err, -EPERM,
				"this node's corosync partition has no quorum: the other side may promote too (--force overrides)");
	return ipm_note(err, "quorate");
}

int ipm_quorum_check(ipm_error *err)
{
	quorum_callbacks_t cb = { 0 };
	quorum_handle_t h;
	uint32_t type = 0;
	int init_rc, get_rc = CS_OK, quorate = 0;

	init_rc = quorum_initialize(&h, &cb, &type);
	if (init_rc != CS_OK)
		return ipm_quorum_decide(init_rc, type, CS_OK, 0, err);
	if (type != QUORUM_FREE)
		get_rc = quorum_getquorate(h, &quorate);
	quorum_finalize(h);
	return ipm_quorum_decide(init_rc, type, get_rc, quorate, err);
}
