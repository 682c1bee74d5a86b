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

static void out_line(void *opaque, const char *line)
{
	sb_printf(opaque, "%s\n", line);
}

static void out_diag(void *opaque, const char *file, int line, const char *msg)
{
	if (line > 0)
		sb_printf(opaque, "%s:%d: %s\n", file, line, msg);
	else
		sb_printf(opaque, "%s: %s\n", file, msg);
}

/* A refused reload's lines (FILE:LINE: why) in the log too: after a
 * SIGHUP, the log is the admin's only answer. */
static void log_refusals(const struct strbuf *sb)
{
	const char *p = sb->buf, *nl;

	while (p && *p && (nl = strchr(p, '\n'))) {
		qb_log(LOG_WARNING, "reload: %.*s", (int)(nl - p), p);
		p = nl + 1;
	}
}

static int load(struct daemon *d, struct strbuf *sb, ipm_config **cur, ipm_error *err)
{
	int rc = ipm_config_load(d->o->config, NULL, out_diag, sb, cur);

	if (rc < 0)
		return ipm_fail(err, rc, "%s: cannot load: %s; nothing was applied", d->o->config,
				strerror(-rc));
	if (rc > 0)
		return ipm_fail(err, -EINVAL, "%s is not valid (%d problem%s); nothing was applied",
				d->o->config, rc, rc == 1 ? "" : "s");
	return 0;
}

/* The daemon follows what the engine took: its copy of the config (role
 * changes build from it) and its log. */
static int follow(struct daemon *d, ipm_config *cur, ipm_error *err)
{
	int rc = ipm_config_adjust(d->cfg, d->file_cfg, cur, d->o->node);

	if (rc < 0)
		return ipm_fail(err, rc, "out of memory (the engine has the new settings)");
	daemon_log_apply(d);
	ipm_config_free(d->file_cfg);
	d->file_cfg = cur;
	return 0;
}

int daemon_reload(void *opaque, unsigned flags, struct strbuf *out, ipm_error *err)
{
	struct daemon *d = opaque;
	struct strbuf own = STRBUF_INIT, *sb = out ? out : &own;
	const bool dry = flags & IPC_F_DRY_RUN;
	ipm_config *cur = NULL;
	int rc;

	if (!d->engine)
		return ipm_fail(err, -EIO, "the engine is down");
	qb_log(LOG_NOTICE, "reload%s: reading %s", dry ? " (dry run)" : "", d->o->config);
	rc = load(d, sb, &cur, err);
	if (rc == 0)
		rc = ipm_engine_adjust(d->engine, d->file_cfg, cur,
				       dry ? IPM_ADJUST_DRY_RUN : 0, out_line, sb, err);
	if (rc == 0 && !dry) {
		rc = follow(d, cur, err);
		if (rc == 0)
			cur = NULL;
	}
	if (rc < 0)
		log_refusals(sb);
	/* a refused reload is the file's problem, not the daemon's */
	qb_log(rc < 0 ? LOG_WARNING : LOG_NOTICE, "reload: %s", err->msg);
	ipm_config_free(cur);
	sb_free(&own);
	return rc;
}
