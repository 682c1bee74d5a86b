/* hb_admin.c - the storage heartbeat's admin commands: the engine acts and
 * d->cfg remembers (a role change re-creates the engine from it; a restart
 * reads the config file). */
#include <errno.h>

#include "ipmirror.h"
#include "daemon.h"
#include "ipc_proto.h"

int hb_admin(void *opaque, int cmd, const char *arg, ipm_engine *engine, ipm_error *err)
{
	struct daemon *d = opaque;
	enum ipm_hb_method m;
	int rc;

	if (!engine)
		return ipm_fail(err, -EIO, "the engine is down");
	switch (cmd) {
	case IPC_CMD_HB_INSTALL:
		if (arg[0] != '/')
			return ipm_fail(err, -EINVAL, "heartbeat volume \"%s\" must be an absolute path",
					arg);
		rc = ipm_engine_hb_install(engine, arg, err);
		if (rc == 0)
			rc = ipm_config_set_hb_volume(d->cfg, d->o->node, arg);
		if (rc == 0)
			ipm_note(err, "heartbeat volume %s installed on %s (add <heartbeat-volume path=\"%s\"/> to node %s in %s to keep it across restarts)",
				 arg, d->o->node, arg, d->o->node, d->o->config);
		return rc;
	case IPC_CMD_HB_UNINSTALL:
		rc = ipm_engine_hb_uninstall(engine, err);
		if (rc == 0)
			rc = ipm_config_set_hb_volume(d->cfg, d->o->node, NULL);
		if (rc == 0)
			ipm_note(err, "heartbeat volume uninstalled on %s", d->o->node);
		return rc;
	case IPC_CMD_HB_METHOD:
		if (ipm_method_parse(arg, &m) < 0)
			return ipm_fail(err, -EINVAL, "unknown heartbeat method \"%s\" (use udp, storage or both)",
					arg);
		rc = ipm_engine_hb_set_method(engine, m, err);
		if (rc == 0) {
			ipm_config_set_hb_method(d->cfg, m);
			ipm_note(err, "heartbeat method %s on %s", arg, d->o->node);
		}
		return rc;
	default:
		return ipm_fail(err, -EOPNOTSUPP, "unknown heartbeat command %d", cmd);
	}
}
