/* ipc_server.h - the admin channel of ipmirrord: a libqb IPC service
 * (default name "ipmirror") answering ipmirrorctl, root only. It runs its
 * own thread and qb_loop; requests are served one at a time. */
#ifndef IPM_IPC_SERVER_H
#define IPM_IPC_SERVER_H

#include "ipmirror.h"

struct ipc_server;

/* Publish service `name` (NULL = "ipmirror") and start serving. At most
 * one server per process. -EADDRINUSE when another process holds name. */
int ipc_server_start(ipm_engine *e, const char *name, struct ipc_server **out,
		     ipm_error *err);
/* Role changes (promote/demote), run in the IPC thread between requests.
 * The handler may replace the engine; it stores the one to use in *engine
 * and writes what it did (or why not) into err. */
typedef int (*ipc_role_fn)(void *opaque, const char *lun, bool promote, unsigned flags,
			   ipm_engine **engine, ipm_error *err);
void ipc_server_set_role_handler(struct ipc_server *s, ipc_role_fn fn, void *opaque);

/* A LUN out of (up false) or back into service here (IPC_CMD_DOWN/UP),
 * run in the IPC thread between requests; writes what it did (or why
 * not) into err. */
typedef int (*ipc_service_fn)(void *opaque, const char *lun, bool up, ipm_error *err);
void ipc_server_set_service_handler(struct ipc_server *s, ipc_service_fn fn, void *opaque);

/* Storage heartbeat administration (IPC_CMD_HB_*), run in the IPC thread
 * between requests: cmd, its argument, the current engine; writes what it
 * did (or why not) into err. */
typedef int (*ipc_hb_fn)(void *opaque, int cmd, const char *arg, ipm_engine *engine,
			 ipm_error *err);
void ipc_server_set_hb_handler(struct ipc_server *s, ipc_hb_fn fn, void *opaque);

/* Reload (IPC_CMD_RELOAD), run in the IPC thread between requests: flags
 * (IPC_F_DRY_RUN), one line per change into out, the summary into err. */
struct strbuf;
typedef int (*ipc_reload_fn)(void *opaque, unsigned flags, struct strbuf *out,
			     ipm_error *err);
void ipc_server_set_reload_handler(struct ipc_server *s, ipc_reload_fn fn, void *opaque);
/* Run the reload handler in the IPC thread soon (SIGHUP, from any thread);
 * what it does goes to the log only. */
void ipc_server_kick_reload(struct ipc_server *s);
/* Serve IPC_CMD_EVENTS from ev (events.h); call before clients come. */
struct events;
void ipc_server_set_events(struct ipc_server *s, struct events *ev);

/* Disconnect clients, stop the thread, free s. */
void ipc_server_stop(struct ipc_server *s);

#endif /* IPM_IPC_SERVER_H */
