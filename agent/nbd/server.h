/* server.h - the NBD server of ipmirrord: hosts reach LUNs over NBD
 * (fixed newstyle, export name = LUN name) on TCP and/or a Unix socket.
 * See doc/nbd.md for what is supported. */
#ifndef IPM_NBD_SERVER_H
#define IPM_NBD_SERVER_H

#include "ipmirror.h"

struct nbd_server;

/* threads: size of the request worker pool (0 = default 64) */
int nbd_server_create(ipm_engine *e, const ipm_listen *listen, unsigned threads,
		      struct nbd_server **out, ipm_error *err);
/* bind+listen TCP and/or Unix, spawn threads */
int nbd_server_start(struct nbd_server *s, ipm_error *err);
/* close listeners, shut down clients, join all threads */
void nbd_server_stop(struct nbd_server *s);
/* Serve an already connected stream socket (a socketpair in the fuzz harness)
 * as if it had been accepted on the Unix listener; the server owns fd from
 * here, also on failure (-ESHUTDOWN when not started, -EBUSY, -ENOMEM). */
int nbd_server_adopt(struct nbd_server *s, int fd, ipm_error *err);
/* Serve an already connected stream socket (a socketpair in the fuzz harness)
 * as if it had been accepted on the Unix listener; the server owns fd from
 * here, also on failure (-ESHUTDOWN when not started, -EBUSY, -ENOMEM). */
int nbd_server_adopt(struct nbd_server *s, int fd, ipm_error *err);
/* A role change without dropping the clients of the other LUNs: pause waits
 * for the requests being executed and holds new ones back; resume puts e
 * (NULL: none) under the clients and disconnects those whose LUN e does
 * not serve here any more. The old engine may be destroyed in between. */
void nbd_server_pause(struct nbd_server *s);
void nbd_server_resume(struct nbd_server *s, ipm_engine *e);
/* One LUN leaves this node's service (demoted, down): its clients are
 * disconnected (why: for the log); those of the other LUNs are untouched.
 * The engine lets their requests under way end (its LUN gate). */
void nbd_server_kick(struct nbd_server *s, const char *export, const char *why);
void nbd_server_destroy(struct nbd_server *s);

/* The I/O path's liveness, for the service watchdog (agent/service.c). */
struct nbd_health {
	int64_t acceptor_idle_ms; /* since the acceptor last went round (it polls every second) */
	int64_t oldest_busy_ms;   /* the longest one worker has been executing its request; 0: none */
	unsigned busy;            /* workers executing a request */
};
void nbd_server_health(struct nbd_server *s, struct nbd_health *h);
/* The status of the engine under the clients (-EIO when there is none),
 * read-locked against a role change swapping it. */
int nbd_server_status(struct nbd_server *s, ipm_status **st);

#endif /* IPM_NBD_SERVER_H */
