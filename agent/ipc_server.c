/* ipc_server.c - the admin IPC service of ipmirrord (see ipc_proto.h).
 *
 * libqb's poll handlers carry no context pointer, so the loop they add
 * their descriptors to is a file-scope variable: one server per process. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <qb/qbipcs.h>
#include <qb/qbloop.h>
#include <qb/qblog.h>

#include "events.h"
#include "ipc_proto.h"
#include "ipc_server.h"
#include "status_render.h"

_Static_assert(IPC_LUN_MAX == IPM_NAME_MAX, "LUN name size differs from the engine's");

struct ipc_server {
	ipm_engine *engine;
	qb_ipcs_service_t *svc;
	qb_loop_t *loop;
	pthread_t thread;
	int stop_pipe[2];
	ipc_role_fn role_fn;
	ipc_service_fn service_fn;
	void *service_opaque;
	void *role_opaque;
	ipc_hb_fn hb_fn;
	void *hb_opaque;
	ipc_reload_fn reload_fn;
	void *reload_opaque;
	int reload_pipe[2];      /* SIGHUP: a byte asks the thread to reload */
	/* events (ipc_server_set_events): the events thread writes a byte to
	 * ev_pipe when subscribers have lines; this thread sends them */
	struct events *events;
	int ev_pipe[2];
};

static qb_loop_t *ipc_loop;

/* ---- poll handlers: libqb's descriptors go into our loop --------------- */

static int32_t ipc_job_add(enum qb_loop_priority p, void *data, qb_loop_job_dispatch_fn fn)
{
	return qb_loop_job_add(ipc_loop, p, data, fn);
}

static int32_t ipc_dispatch_add(enum qb_loop_priority p, int32_t fd, int32_t events,
				void *data, qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_add(ipc_loop, p, fd, events, data, fn);
}

static int32_t ipc_dispatch_mod(enum qb_loop_priority p, int32_t fd, int32_t events,
				void *data, qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_mod(ipc_loop, p, fd, events, data, fn);
}

static int32_t ipc_dispatch_del(int32_t fd)
{
	return qb_loop_poll_del(ipc_loop, fd);
}

static struct qb_ipcs_poll_handlers poll_handlers = {
	.job_add = ipc_job_add,
	.dispatch_add = ipc_dispatch_add,
	.dispatch_mod = ipc_dispatch_mod,
	.dispatch_del = ipc_dispatch_del,
};

/* ---- requests ----------------------------------------------------------- */

static int32_t conn_accept(qb_ipcs_connection_t *c, uid_t uid, gid_t gid)
{
	if (uid != 0) {
		qb_log(LOG_NOTICE, "admin IPC: refused a client with uid %u (root only)",
		       (unsigned)uid);
		return -EPERM;
	}
	/* the shared memory files of the connection: root only as well */
	qb_ipcs_connection_auth_set(c, 0, 0, 0600);
	return 0;
}

static void reply(qb_ipcs_connection_t *c, int32_t id, int32_t status, const char *text,
		  size_t len)
{
	struct ipc_response r = { 0 };
	struct iovec iov[2];
	ssize_t n;

	if (len > IPC_MAX_TEXT) {
		status = -EMSGSIZE;
		text = "reply too large for the admin channel";
		len = strlen(text);
	}
	r.hdr.id = id;
	r.hdr.size = (int32_t)(sizeof(r) + len);
	r.hdr.error = 0;
	r.status = status;
	r.len = (uint32_t)len;
	iov[0].iov_base = &r;
	iov[0].iov_len = sizeof(r);
	iov[1].iov_base = (void *)text;
	iov[1].iov_len = len;
	n = qb_ipcs_response_sendv(c, iov, len ? 2 : 1);
	if (n < 0)
		qb_log(LOG_DEBUG, "admin IPC: cannot send reply: %s", strerror((int)-n));
}

/* status and the error's text (a note, or why it failed) */
static void reply_err(qb_ipcs_connection_t *c, int32_t id, int32_t status, const ipm_error *err)
{
	reply(c, id, status, err->msg, strnlen(err->msg, sizeof(err->msg)));
}

static void reply_error(qb_ipcs_connection_t *c, int32_t id, int status, const char *fmt,
			...) __attribute__((format(printf, 4, 5)));

static void reply_error(qb_ipcs_connection_t *c, int32_t id, int status, const char *fmt,
			...)
{
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	reply(c, id, status, msg, strnlen(msg, sizeof(msg)));
}

static void do_status(struct ipc_server *s, qb_ipcs_connection_t *c,
		      const struct ipc_request *req)
{
	struct strbuf sb = STRBUF_INIT;
	ipm_status *st = NULL;
	int rc;

	rc = ipm_engine_status(s->engine, &st);
	if (rc < 0) {
		reply_error(c, req->hdr.id, rc, "cannot read status: %s", strerror(-rc));
		return;
	}
	if (req->hdr.id == IPC_CMD_LUN_STATE) {
		const ipm_lun_status *l = req->lun[0] ? status_find_lun(st, req->lun) : NULL;

		if (l)
			sb_printf(&sb, "%s", ipm_state_name(l->state));
		rc = l ? sb.err : -ENOENT;
	} else if (req->flags & IPC_F_GET) {
		rc = status_render_get(st, req->lun, req->arg, &sb);
	} else if (req->flags & IPC_F_JSON) {
		rc = status_render_json(st, req->lun, &sb);
	} else {
		rc = status_render_text(st, req->lun, &sb);
	}
	if (rc == -ENOENT)
		reply_error(c, req->hdr.id, rc, "no lun \"%s\" on %s", req->lun, st->node);
	else if (rc == -EINVAL && (req->flags & IPC_F_GET))
		reply(c, req->hdr.id, rc, sb.buf, sb.len); /* names the bad key */
	else if (rc < 0)
		reply_error(c, req->hdr.id, rc, "cannot render status: %s", strerror(-rc));
	else
		reply(c, req->hdr.id, 0, sb.buf, sb.len);
	sb_free(&sb);
	ipm_status_free(st);
}

static void do_role(struct ipc_server *s, qb_ipcs_connection_t *c,
		    const struct ipc_request *req)
{
	ipm_error err = { "" };
	int rc;

	if (!s->role_fn) {
		reply_error(c, req->hdr.id, -EOPNOTSUPP, "role changes are not supported here");
		return;
	}
	rc = s->role_fn(s->role_opaque, req->lun, req->hdr.id == IPC_CMD_PROMOTE, req->flags,
			&s->engine, &err);
	reply_err(c, req->hdr.id, rc, &err);
}

static void do_hb(struct ipc_server *s, qb_ipcs_connection_t *c, const struct ipc_request *req)
{
	ipm_error err = { "" };
	int rc;

	if (!s->hb_fn) {
		reply_error(c, req->hdr.id, -EOPNOTSUPP, "heartbeat administration is not supported here");
		return;
	}
	rc = s->hb_fn(s->hb_opaque, (int)req->hdr.id, req->arg, s->engine, &err);
	reply_err(c, req->hdr.id, rc, &err);
}

/* The request's LUN, or NULL after replying why there is none. */
static ipm_lun *lun_or_reply(struct ipc_server *s, qb_ipcs_connection_t *c,
			     const struct ipc_request *req)
{
	ipm_lun *l;

	if (!s->engine) {
		reply_error(c, req->hdr.id, -EIO, "the engine is down");
		return NULL;
	}
	l = ipm_engine_lun_by_name(s->engine, req->lun);
	if (!l)
		reply_error(c, req->hdr.id, -ENOENT, "no lun \"%s\" on %s", req->lun,
			    ipm_engine_node(s->engine));
	return l;
}

/* down LUN / up LUN: the daemon's handler (its NBD clients, the engine) */
static void do_service(struct ipc_server *s, qb_ipcs_connection_t *c,
		       const struct ipc_request *req)
{
	ipm_error err = { "" };
	int rc;

	if (!s->service_fn) {
		reply_error(c, req->hdr.id, -EOPNOTSUPP, "down and up are not supported here");
		return;
	}
	if (!lun_or_reply(s, c, req))
		return;
	rc = s->service_fn(s->service_opaque, req->lun, req->hdr.id == IPC_CMD_UP, &err);
	reply_err(c, req->hdr.id, rc, &err);
}

static void do_resolve(struct ipc_server *s, qb_ipcs_connection_t *c,
		       const struct ipc_request *req)
{
	ipm_error err = { "" };
	ipm_lun *l;
	int rc;

	if (!(req->flags & IPC_F_DISCARD_LOCAL)) {
		reply_error(c, req->hdr.id, -EINVAL, "resolve: say --discard-local");
		return;
	}
	l = lun_or_reply(s, c, req);
	if (!l)
		return;
	rc = ipm_lun_resolve_discard(l, &err);
	reply_err(c, req->hdr.id, rc, &err);
}

/* After logrotate moved the log file away (also SIGUSR1). */
static void do_log_reopen(qb_ipcs_connection_t *c, const struct ipc_request *req)
{
	ipm_error err = { "" };
	int rc = ipm_log_reopen(&err);

	reply_err(c, req->hdr.id, rc, &err);
}

/* invalidate LUN [--force], assume-clean LUN, verify LUN [--repair]: the
 * engine decides (a verify starts there, its progress is in the status) */
static void do_copy_admin(struct ipc_server *s, qb_ipcs_connection_t *c,
			  const struct ipc_request *req)
{
	ipm_lun *l = lun_or_reply(s, c, req);
	ipm_error err = { "" };
	int rc;

	if (!l)
		return;
	if (req->hdr.id == IPC_CMD_INVALIDATE)
		rc = ipm_lun_invalidate(l, req->flags & IPC_F_FORCE, &err);
	else if (req->hdr.id == IPC_CMD_VERIFY)
		rc = ipm_lun_verify(l, req->flags & IPC_F_REPAIR, &err);
	else
		rc = ipm_lun_assume_clean(l, &err);
	reply_err(c, req->hdr.id, rc, &err);
}

/* resize LUN SIZE: the engine grows it on both nodes, or says why not
 * (ipmirrorctl sent the size in bytes) */
static void do_resize(struct ipc_server *s, qb_ipcs_connection_t *c,
		      const struct ipc_request *req)
{
	ipm_lun *l = lun_or_reply(s, c, req);
	ipm_error err = { "" };
	unsigned long long size;
	char *end;
	int rc;

	if (!l)
		return;
	errno = 0;
	size = strtoull(req->arg, &end, 10);
	if (errno || end == req->arg || *end || req->arg[0] == '-') {
		reply_error(c, req->hdr.id, -EINVAL, "resize: bad size \"%.64s\"", req->arg);
		return;
	}
	rc = ipm_lun_resize(l, size, &err);
	reply_err(c, req->hdr.id, rc, &err);
}

/* reload [--dry-run]: the lines, then the summary (or why it was refused) */
static void do_reload(struct ipc_server *s, qb_ipcs_connection_t *c,
		      const struct ipc_request *req)
{
	struct strbuf sb = STRBUF_INIT;
	ipm_error err = { "" };
	int rc;

	if (!s->reload_fn) {
		reply_error(c, req->hdr.id, -EOPNOTSUPP, "reload is not supported here");
		return;
	}
	rc = s->reload_fn(s->reload_opaque, req->flags & IPC_F_DRY_RUN, &sb, &err);
	sb_printf(&sb, "%s", err.msg);
	if (sb.err)
		reply_error(c, req->hdr.id, rc < 0 ? rc : sb.err, "%s", err.msg);
	else
		reply(c, req->hdr.id, rc, sb.buf, sb.len);
	sb_free(&sb);
}

void ipc_server_set_reload_handler(struct ipc_server *s, ipc_reload_fn fn, void *opaque)
{
	s->reload_fn = fn;
	s->reload_opaque = opaque;
}

void ipc_server_kick_reload(struct ipc_server *s)
{
	char c = 0;

	if (s && write(s->reload_pipe[1], &c, 1) < 0)
		qb_log(LOG_WARNING, "admin IPC: cannot ask for a reload: %s", strerror(errno));
}

static int32_t reload_requested(int32_t fd, int32_t revents, void *data)
{
	struct ipc_server *s = data;
	ipm_error err = { "" };
	char buf[64];

	(void)revents;
	/* several signals at once: one reload */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (s->reload_fn)
		s->reload_fn(s->reload_opaque, 0, NULL, &err);
	return 0;
}

/* ---- events -------------------------------------------------------------- */

static int event_send(void *conn, const char *buf, size_t len)
{
	struct ipc_response r = { 0 };
	struct iovec iov[2];
	ssize_t n;

	r.hdr.id = IPC_CMD_EVENTS;
	r.hdr.size = (int32_t)(sizeof(r) + len);
	r.len = (uint32_t)len;
	iov[0].iov_base = &r;
	iov[0].iov_len = sizeof(r);
	iov[1].iov_base = (void *)buf;
	iov[1].iov_len = len;
	n = qb_ipcs_event_sendv(conn, iov, 2);
	return n < 0 ? (int)n : 0;
}

static void event_close(void *conn)
{
	qb_ipcs_disconnect(conn);
}

static int32_t events_ready(int32_t fd, int32_t revents, void *data)
{
	struct ipc_server *s = data;
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (s->events)
		events_drain(s->events, event_send, event_close);
	return 0;
}

/* the events thread: lines are queued */
static void events_wake(void *opaque)
{
	struct ipc_server *s = opaque;
	char c = 0;

	if (write(s->ev_pipe[1], &c, 1) < 0 && errno != EAGAIN)
		qb_log(LOG_DEBUG, "admin IPC: cannot wake for events: %s", strerror(errno));
}

void ipc_server_set_events(struct ipc_server *s, struct events *ev)
{
	s->events = ev;
	events_set_waker(ev, events_wake, s);
}

/* The connection stays subscribed until it goes (connection_destroyed). */
static void do_events(struct ipc_server *s, qb_ipcs_connection_t *c,
		      const struct ipc_request *req)
{
	struct ev_sub *sub;
	int rc;

	if (!s->events) {
		reply_error(c, req->hdr.id, -EOPNOTSUPP, "events are not supported here");
		return;
	}
	if (qb_ipcs_context_get(c)) {
		reply_error(c, req->hdr.id, -EALREADY, "already subscribed");
		return;
	}
	sub = events_subscribe(s->events, c, req->flags & IPC_F_JSON, req->flags & IPC_F_NOW, &rc);
	if (!sub) {
		reply_error(c, req->hdr.id, rc, "cannot subscribe: %s",
			    rc == -EAGAIN ? "no status yet, try again" : strerror(-rc));
		return;
	}
	qb_ipcs_context_set(c, sub);
	reply(c, req->hdr.id, 0, "", 0);
	events_drain(s->events, event_send, event_close);
}

static void conn_destroyed(qb_ipcs_connection_t *c)
{
	struct ipc_server *s = qb_ipcs_connection_service_context_get(c);
	struct ev_sub *sub = qb_ipcs_context_get(c);

	if (sub && s && s->events)
		events_unsubscribe(s->events, sub);
	qb_ipcs_context_set(c, NULL);
}

void ipc_server_set_hb_handler(struct ipc_server *s, ipc_hb_fn fn, void *opaque)
{
	s->hb_fn = fn;
	s->hb_opaque = opaque;
}

void ipc_server_set_service_handler(struct ipc_server *s, ipc_service_fn fn, void *opaque)
{
	s->service_fn = fn;
	s->service_opaque = opaque;
}

void ipc_server_set_role_handler(struct ipc_server *s, ipc_role_fn fn, void *opaque)
{
	s->role_fn = fn;
	s->role_opaque = opaque;
}

static int32_t msg_process(qb_ipcs_connection_t *c, void *data, size_t size)
{
	struct ipc_server *s = qb_ipcs_connection_service_context_get(c);
	struct ipc_request req;

	if (size < sizeof(req.hdr))
		return 0; /* no id to answer to; the client times out */
	memset(&req, 0, sizeof(req));
	memcpy(&req, data, size < sizeof(req) ? size : sizeof(req));
	if (size != sizeof(req)) {
		reply_error(c, req.hdr.id, -EPROTO, "malformed request (%zu bytes)", size);
		return 0;
	}
	req.lun[sizeof(req.lun) - 1] = '\0';
	req.arg[sizeof(req.arg) - 1] = '\0';
	switch (req.hdr.id) {
	case IPC_CMD_STATUS:
	case IPC_CMD_LUN_STATE:
		do_status(s, c, &req);
		break;
	case IPC_CMD_PROMOTE:
	case IPC_CMD_DEMOTE:
		do_role(s, c, &req);
		break;
	case IPC_CMD_HB_INSTALL:
	case IPC_CMD_HB_UNINSTALL:
	case IPC_CMD_HB_METHOD:
		do_hb(s, c, &req);
		break;
	case IPC_CMD_RESOLVE:
		do_resolve(s, c, &req);
		break;
	case IPC_CMD_LOG_REOPEN:
		do_log_reopen(c, &req);
		break;
	case IPC_CMD_INVALIDATE:
	case IPC_CMD_ASSUME_CLEAN:
	case IPC_CMD_VERIFY:
		do_copy_admin(s, c, &req);
		break;
	case IPC_CMD_RESIZE:
		do_resize(s, c, &req);
		break;
	case IPC_CMD_RELOAD:
		do_reload(s, c, &req);
		break;
	case IPC_CMD_EVENTS:
		do_events(s, c, &req);
		break;
	case IPC_CMD_DOWN:
	case IPC_CMD_UP:
		do_service(s, c, &req);
		break;
	default:
		reply_error(c, req.hdr.id, -EOPNOTSUPP,
			    "unknown command %d (is ipmirrorctl newer than ipmirrord?)",
			    req.hdr.id);
	}
	return 0;
}

static struct qb_ipcs_service_handlers service_handlers = {
	.connection_accept = conn_accept,
	.msg_process = msg_process,
	.connection_destroyed = conn_destroyed,
};

/* ---- thread ------------------------------------------------------------- */

static int32_t stop_requested(int32_t fd, int32_t revents, void *data)
{
	struct ipc_server *s = data;

	qb_loop_stop(s->loop);
	return 0;
}

static void *ipc_thread(void *arg)
{
	struct ipc_server *s = arg;

	qb_loop_run(s->loop);
	return NULL;
}

static void server_free(struct ipc_server *s)
{
	if (s->svc)
		qb_ipcs_destroy(s->svc);
	if (s->loop)
		qb_loop_destroy(s->loop);
	if (s->stop_pipe[0] >= 0)
		close(s->stop_pipe[0]);
	if (s->stop_pipe[1] >= 0)
		close(s->stop_pipe[1]);
	if (s->reload_pipe[0] >= 0)
		close(s->reload_pipe[0]);
	if (s->reload_pipe[1] >= 0)
		close(s->reload_pipe[1]);
	if (s->ev_pipe[0] >= 0)
		close(s->ev_pipe[0]);
	if (s->ev_pipe[1] >= 0)
		close(s->ev_pipe[1]);
	ipc_loop = NULL;
	free(s);
}

int ipc_server_start(ipm_engine *e, const char *name, struct ipc_server **out,
		     ipm_error *err)
{
	struct ipc_server *s;
	int rc;

	if (!name)
		name = IPC_DEFAULT_SERVICE;
	if (ipc_loop)
		return ipm_fail(err, -EBUSY, "admin IPC: a server is already running");
	s = calloc(1, sizeof(*s));
	if (!s)
		return ipm_fail(err, -ENOMEM, "admin IPC: out of memory");
	s->engine = e;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	s->reload_pipe[0] = s->reload_pipe[1] = -1;
	s->ev_pipe[0] = s->ev_pipe[1] = -1;
	s->loop = qb_loop_create();
	if (!s->loop) {
		rc = ipm_fail(err, -ENOMEM, "admin IPC: cannot create the event loop");
		goto fail;
	}
	ipc_loop = s->loop;
	if (pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
		rc = ipm_fail(err, -errno, "admin IPC: pipe: %s", strerror(errno));
		goto fail;
	}
	rc = qb_loop_poll_add(s->loop, QB_LOOP_HIGH, s->stop_pipe[0], POLLIN, s,
			      stop_requested);
	if (rc == 0 && pipe2(s->ev_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		rc = -errno;
	if (rc == 0)
		rc = qb_loop_poll_add(s->loop, QB_LOOP_HIGH, s->ev_pipe[0], POLLIN, s,
				      events_ready);
	if (rc < 0) {
		rc = ipm_fail(err, rc, "admin IPC: cannot poll: %s", strerror(-rc));
		goto fail;
	}
	if (pipe2(s->reload_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = ipm_fail(err, -errno, "admin IPC: pipe: %s", strerror(errno));
		goto fail;
	}
	rc = qb_loop_poll_add(s->loop, QB_LOOP_MED, s->reload_pipe[0], POLLIN, s,
			      reload_requested);
	if (rc < 0) {
		rc = ipm_fail(err, rc, "admin IPC: cannot poll: %s", strerror(-rc));
		goto fail;
	}
	s->svc = qb_ipcs_create(name, 0, QB_IPC_SHM, &service_handlers);
	if (!s->svc) {
		rc = ipm_fail(err, -errno ? -errno : -ENOMEM,
			      "admin IPC: cannot create service \"%s\"", name);
		goto fail;
	}
	qb_ipcs_service_context_set(s->svc, s);
	qb_ipcs_poll_handlers_set(s->svc, &poll_handlers);
	qb_ipcs_enforce_buffer_size(s->svc, IPC_MAX_MSG);
	rc = qb_ipcs_run(s->svc);
	if (rc < 0) {
		s->svc = NULL; /* a failed qb_ipcs_run drops the service itself */
		rc = ipm_fail(err, rc, "admin IPC: cannot publish service \"%s\": %s%s", name,
			      strerror(-rc),
			      rc == -EADDRINUSE ? " (another ipmirrord? use --socket)" : "");
		goto fail;
	}
	rc = -pthread_create(&s->thread, NULL, ipc_thread, s);
	if (rc < 0) {
		rc = ipm_fail(err, rc, "admin IPC: cannot start thread: %s", strerror(-rc));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	server_free(s);
	return rc;
}

void ipc_server_stop(struct ipc_server *s)
{
	char c = 0;

	if (!s)
		return;
	if (write(s->stop_pipe[1], &c, 1) < 0)
		qb_log(LOG_WARNING, "admin IPC: cannot stop the thread: %s", strerror(errno));
	pthread_join(s->thread, NULL);
	server_free(s);
}
