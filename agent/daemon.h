/* daemon.h - what ipmirrord's parts share: its options and the running
 * daemon (main and start-up in ipmirrord.c, promote/demote in roles.c, the
 * storage heartbeat's admin in hb_admin.c). */
#ifndef IPM_DAEMON_H
#define IPM_DAEMON_H

#include <stdbool.h>

#include "ipmirror.h"

struct options {
	const char *config;
	const char *node;
	const char *socket;
	bool foreground;
	bool syslog;      /* log to syslog also in the foreground (the systemd unit) */
	const char *pidfile; /* NULL: the default for socket; "": none */
	bool check_config;
	bool attributes; /* publish node attributes (also IPMIRROR_ATTRIBUTES=1) */
	bool no_fencing; /* cluster mode without resource-level fencing */
	int verbose;
};

struct daemon {
	ipm_config *cfg;            /* role changes edit it, then re-create the engine */
	ipm_config *file_cfg;       /* the file as last read (a reload's "before") */
	const struct options *o;
	ipm_engine *engine;
	struct nbd_server *nbd;
	struct ipc_server *ipc;
	struct ipm_attributes *attrs;
	struct ipm_fencing *fencing; /* cluster mode only; NULL otherwise */
	const char *fence_handler;
	struct metrics *metrics;     /* <metrics> configured; NULL otherwise */
	struct events *events;       /* the change stream (events.c) */
	struct handlers *handlers;   /* <handlers> programs (handlers.c) */
};

/* The IPC server's role handler (ipc_role_fn): promote or demote lun here. */
int role_change(void *opaque, const char *lun, bool promote, unsigned flags,
		ipm_engine **engine, ipm_error *err);
/* The IPC server's service handler (ipc_service_fn): down or up lun here. */
int lun_service(void *opaque, const char *lun, bool up, ipm_error *err);
/* The IPC server's heartbeat handler (ipc_hb_fn): install, uninstall, method. */
int hb_admin(void *opaque, int cmd, const char *arg, ipm_engine *engine, ipm_error *err);

struct strbuf;
/* The IPC server's reload handler (ipc_reload_fn), also run for SIGHUP:
 * read the config file again and apply what changed (reload.c). */
int daemon_reload(void *opaque, unsigned flags, struct strbuf *out, ipm_error *err);
/* Log level and file from d->cfg (and -v), as at start (ipmirrord.c). */
void daemon_log_apply(struct daemon *d);

#endif /* IPM_DAEMON_H */
