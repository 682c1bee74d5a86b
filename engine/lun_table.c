/* lun_table.c - the engine's table of LUNs, by index and by name: a leaf
 * that the session code (lun_admin.c, the listener in receiver.c) and the
 * admin side look LUNs up in, below engine.c's life cycle. */
#include <string.h>

#include "lun.h"

/* e->n_luns grows at run time (ipm_engine_lun_add: the slot is filled
 * before the count says so). */
size_t ipm_engine_lun_count(const ipm_engine *e)
{
	return __atomic_load_n(&e->n_luns, __ATOMIC_ACQUIRE);
}

ipm_lun *ipm_engine_lun_at(ipm_engine *e, size_t i)
{
	return i < ipm_engine_lun_count(e) ? e->luns[i] : NULL;
}

ipm_lun *ipm_engine_lun_by_name(ipm_engine *e, const char *name)
{
	size_t i, n = ipm_engine_lun_count(e);

	for (i = 0; i < n; i++)
		if (!e->luns[i]->removed && strcmp(e->luns[i]->cfg->name, name) == 0)
			return e->luns[i];
	return NULL;
}
