/* notify.c - the engine's notify hook (ipm_engine_set_notify): a leaf that
 * every module calls where something an admin sees changes, and which
 * calls nothing of the engine back. */
#include "engine.h"

void ipm_engine_set_notify(ipm_engine *e, ipm_notify_fn fn, void *opaque)
{
	__atomic_store_n(&e->notify, NULL, __ATOMIC_RELEASE);
	__atomic_store_n(&e->notify_opaque, opaque, __ATOMIC_RELEASE);
	__atomic_store_n(&e->notify, fn, __ATOMIC_RELEASE);
}

void engine_notify(ipm_engine *e)
{
	ipm_notify_fn fn = __atomic_load_n(&e->notify, __ATOMIC_ACQUIRE);

	if (fn)
		fn(__atomic_load_n(&e->notify_opaque, __ATOMIC_ACQUIRE));
}

void engine_notify_cb(void *engine)
{
	engine_notify(engine);
}
