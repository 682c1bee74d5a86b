/* fake_ipc_server.c - an impostor for tests/integration/file_safety.sh: claims
 * ipmirrord's libqb IPC service name (as any local user can while the daemon
 * is down) and answers every request "ok" with the text "IMPOSTOR", so a
 * client that talks to it shows.
 *
 * usage: fake_ipc_server SERVICE SECONDS   (prints "ready" once published,
 * exits after SECONDS) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <qb/qbipcs.h>
#include <qb/qbloop.h>

#include "ipc_proto.h"

static qb_loop_t *loop;

static int32_t job_add(enum qb_loop_priority p, void *data, qb_loop_job_dispatch_fn fn)
{
	return qb_loop_job_add(loop, p, data, fn);
}

static int32_t dispatch_add(enum qb_loop_priority p, int32_t fd, int32_t events, void *data,
			    qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_add(loop, p, fd, events, data, fn);
}

static int32_t dispatch_mod(enum qb_loop_priority p, int32_t fd, int32_t events, void *data,
			    qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_mod(loop, p, fd, events, data, fn);
}

static int32_t dispatch_del(int32_t fd)
{
	return qb_loop_poll_del(loop, fd);
}

static struct qb_ipcs_poll_handlers poll_handlers = {
	.job_add = job_add,
	.dispatch_add = dispatch_add,
	.dispatch_mod = dispatch_mod,
	.dispatch_del = dispatch_del,
};

/* Any client; the connection's files are ours (a non-root server cannot give
 * them to root, and root reads them anyway). */
static int32_t accept_any(qb_ipcs_connection_t *c, uid_t uid, gid_t gid)
{
	qb_ipcs_connection_auth_set(c, geteuid(), getegid(), 0600);
	return 0;
}

static int32_t answer(qb_ipcs_connection_t *c, void *data, size_t size)
{
	const struct qb_ipc_request_header *req = data;
	static const char text[] = "IMPOSTOR\n";
	struct ipc_response r = { 0 };
	struct iovec iov[2] = {
		{ .iov_base = &r, .iov_len = sizeof(r) },
		{ .iov_base = (void *)text, .iov_len = sizeof(text) - 1 },
	};

	r.hdr.id = size >= sizeof(*req) ? req->id : 0;
	r.hdr.size = (int32_t)(sizeof(r) + sizeof(text) - 1);
	r.len = sizeof(text) - 1;
	qb_ipcs_response_sendv(c, iov, 2);
	return 0;
}

static struct qb_ipcs_service_handlers handlers = {
	.connection_accept = accept_any,
	.msg_process = answer,
};

static void time_up(void *data)
{
	qb_loop_stop(loop);
}

int main(int argc, char **argv)
{
	qb_loop_timer_handle timer;
	qb_ipcs_service_t *svc;
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: %s SERVICE SECONDS\n", argv[0]);
		return 2;
	}
	loop = qb_loop_create();
	svc = loop ? qb_ipcs_create(argv[1], 0, QB_IPC_SHM, &handlers) : NULL;
	if (!svc) {
		fprintf(stderr, "fake_ipc_server: cannot create service %s\n", argv[1]);
		return 1;
	}
	qb_ipcs_poll_handlers_set(svc, &poll_handlers);
	qb_ipcs_enforce_buffer_size(svc, IPC_MAX_MSG);
	rc = qb_ipcs_run(svc);
	if (rc < 0) {
		fprintf(stderr, "fake_ipc_server: cannot publish %s: %s\n", argv[1], strerror(-rc));
		return 1;
	}
	qb_loop_timer_add(loop, QB_LOOP_LOW, strtoull(argv[2], NULL, 10) * 1000000000ull, NULL,
			  time_up, &timer);
	printf("ready\n");
	fflush(stdout);
	qb_loop_run(loop);
	qb_ipcs_destroy(svc);
	qb_loop_destroy(loop);
	return 0;
}
