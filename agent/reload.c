/* reload.c - `ipmirrorctl reload [--dry-run]` and SIGHUP: the config file
 * read again and what changed in it applied to the running daemon
 * (ipm_engine_adjust), the daemon's own copy and its log following. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <qb/qblog.h>

#include "daemon.h"
#include "ipc_proto.h"
#include "status_render.h"

struct reload_out {
	struct strbuf *sb;
	bool refused;           /* lines are refusals: logged as errors */
};

/* Every line goes to the log and, for ipmirrorctl, into the reply. */
static void out_line(void *opaque, const char *line)
{
	struct reload_out *o = opaque;

	if (o->sb)
		sb_printf(o->sb, "%s\n", line);
	qb_log(o->refused ? LOG_WARNING : LOG_NOTICE, "reload: %s", line);
}

static void out_diag(void *opaque, const char *file, int line, const char *msg)
{
	char buf[1024];

	if (line > 0)
		snprintf(buf, sizeof(buf), "%s:%d: %s", file, line, msg);
	else
		snprintf(buf, sizeof(buf), "%s: %s", file, msg);
	out_line(opaque, buf);
}

static int load(struct daemon *d, struct reload_out *o, ipm_config **cur, ipm_error *err)
{
	int rc;

	o->refused = true;
	rc = ipm_config_load(d->o->config, NULL, out_diag, o, cur);
	if (rc < 0)
		return ipm_fail(err, rc, "%s: cannot load: %s; nothing was applied", d->o->config,
				strerror(-rc));
	if (rc > 0)
		return ipm_fail(err, -EINVAL, "%s is not valid (%d problem%s); nothing was applied",
				d->o->config, rc, rc == 1 ? "" : "s");
	o->refused = false;
	return 0;
}

int daemon_reload(void *opaque, unsigned flags, struct strbuf *sb, ipm_error *err)
{
	struct daemon *d = opaque;
	struct reload_out o = { .sb = sb };
	const bool dry = flags & IPC_F_DRY_RUN;
	ipm_config *cur = NULL;
	int rc;

	if (!d->engine)
		return ipm_fail(err, -EIO, "the engine is down");
	qb_log(LOG_NOTICE, "reload%s: reading %s", dry ? " (dry run)" : "", d->o->config);
	rc = load(d, &o, &cur, err);
	if (rc < 0)
		goto out;
	/* refusals come back as lines before the summary */
	o.refused = true;
	rc = ipm_engine_adjust(d->engine, d->file_cfg, cur, dry ? IPM_ADJUST_DRY_RUN : 0,
			       out_line, &o, err);
	if (rc < 0 || dry)
		goto out;
	rc = ipm_config_adjust(d->cfg, d->file_cfg, cur, d->o->node);
	if (rc < 0) {
		rc = ipm_fail(err, rc, "out of memory (the engine has the new settings)");
		goto out;
	}
	daemon_log_apply(d);
	ipm_config_free(d->file_cfg);
	d->file_cfg = cur;
	cur = NULL;
out:
	qb_log(rc < 0 ? LOG_ERR : LOG_NOTICE, "reload: %s", err->msg);
	ipm_config_free(cur);
	return rc;
}
