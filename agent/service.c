/* service.c - ipmirrord under systemd: the notify protocol, spoken directly
 * (a datagram of "KEY=VALUE" lines to $NOTIFY_SOCKET, a stable interface of
 * systemd: see sd_notify(3)) rather than through libsystemd, so that the
 * daemon has no dependency for a dozen lines and runs the same without
 * systemd; and the watchdog thread.
 *
 * Healthy, for the watchdog, means the I/O path moves: the engine answers a
 * status query (taken through the NBD server's engine lock, so a role change
 * that never ends shows too), the NBD acceptor goes round its loop, and no
 * worker has been executing one host request for longer than the limit (half
 * the watchdog interval, at least 1 s): a backing store or a lock that hangs
 * holds a worker. A round that itself hangs sends nothing, which is the
 * point: systemd then kills and restarts the daemon (Restart=on-failure). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "clock.h"
#include "service.h"

#define ROUND_MS_NO_WATCHDOG 2000  /* STATUS updates only */
#define MIN_LIMIT_MS 1000          /* a request may always take this long */
#define MIN_ACCEPTOR_MS 3000       /* the acceptor wakes every second */

struct service {
	int fd;                     /* -1: no manager listens */
	struct sockaddr_un addr;
	socklen_t addr_len;
	int64_t watchdog_ms;        /* 0: no watchdog */
	struct nbd_server *nbd;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;       /* leaf; guards stop */
	pthread_cond_t cond;
	bool stop;
	char status[256];           /* the thread's: the last STATUS= sent */
	bool unhealthy;             /* the thread's: the last verdict */
};

/* $NOTIFY_SOCKET: a path, or "@name" for an abstract socket. */
static int notify_addr(struct service *sv, const char *s, ipm_error *err)
{
	size_t n = strlen(s);

	if ((s[0] != '/' && s[0] != '@') || n < 2 || n >= sizeof(sv->addr.sun_path))
		return ipm_fail(err, -EINVAL, "NOTIFY_SOCKET \"%s\" is not a socket path", s);
	sv->addr.sun_family = AF_UNIX;
	memcpy(sv->addr.sun_path, s, n);
	if (s[0] == '@')
		sv->addr.sun_path[0] = '\0';
	sv->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	return 0;
}

/* $WATCHDOG_USEC, for this process only ($WATCHDOG_PID, when set). */
static int64_t watchdog_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	char *end;
	long long v;

	if (!usec)
		return 0;
	if (pid && strtoll(pid, NULL, 10) != (long long)getpid())
		return 0;
	errno = 0;
	v = strtoll(usec, &end, 10);
	if (errno || *end || v <= 0)
		return 0;
	return v / 1000 > 0 ? v / 1000 : 1;
}

int service_init(struct service **out, ipm_error *err)
{
	const char *ns = getenv("NOTIFY_SOCKET");
	struct service *sv = calloc(1, sizeof(*sv));
	int rc;

	*out = NULL;
	if (!sv)
		return ipm_fail(err, -ENOMEM, "out of memory");
	sv->fd = -1;
	pthread_mutex_init(&sv->lock, NULL);
	pthread_cond_init(&sv->cond, NULL);
	if (ns && ns[0]) {
		rc = notify_addr(sv, ns, err);
		if (rc < 0) {
			service_free(sv);
			return rc;
		}
		sv->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (sv->fd < 0) {
			rc = ipm_fail(err, -errno, "notify socket: %s", strerror(errno));
			service_free(sv);
			return rc;
		}
		sv->watchdog_ms = watchdog_ms();
	}
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	*out = sv;
	return 0;
}

int service_notify(struct service *sv, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	if (!sv || sv->fd < 0)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	if (sendto(sv->fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sv->addr,
		   sv->addr_len) < 0) {
		qb_log(LOG_DEBUG, "notify: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* ---- the watchdog --------------------------------------------------------- */

bool service_io_healthy(const struct nbd_health *h, int status_rc, int64_t limit_ms,
			char *why, size_t why_len)
{
	int64_t acceptor_ms = limit_ms > MIN_ACCEPTOR_MS ? limit_ms : MIN_ACCEPTOR_MS;

	if (status_rc < 0) {
		snprintf(why, why_len, "the engine does not answer a status query (%s)",
			 strerror(-status_rc));
		return false;
	}
	if (h->oldest_busy_ms > limit_ms) {
		snprintf(why, why_len, "a host request has been executing for %lld ms (limit %lld ms; %u workers busy)",
			 (long long)h->oldest_busy_ms, (long long)limit_ms, h->busy);
		return false;
	}
	if (h->acceptor_idle_ms > acceptor_ms) {
		snprintf(why, why_len, "the NBD acceptor has not run for %lld ms",
			 (long long)h->acceptor_idle_ms);
		return false;
	}
	return true;
}

/* "vol0 primary uptodate, vol1 mirror journaling; peer node2 up" */
static void status_line(const ipm_status *st, char *buf, size_t len)
{
	size_t off = 0;

	off += (size_t)snprintf(buf + off, len - off, "serving");
	for (size_t i = 0; i < st->n_luns && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s %s %s %s", i ? "," : "",
					st->luns[i].name, ipm_role_name(st->luns[i].role),
					ipm_state_name(st->luns[i].state));
	if (!st->n_luns && off < len)
		off += (size_t)snprintf(buf + off, len - off, " no LUN");
	if (off < len)
		snprintf(buf + off, len - off, "; peer %s%s%s", st->peer[0] ? st->peer : "none",
			 st->peer[0] ? " " : "", st->peer[0] ? ipm_link_name(st->peer_heartbeat) : "");
}

static int64_t limit_ms(const struct service *sv)
{
	int64_t l = sv->watchdog_ms / 2;

	return l > MIN_LIMIT_MS ? l : MIN_LIMIT_MS;
}

static void watch_round(struct service *sv)
{
	struct nbd_health h;
	ipm_status *st = NULL;
	char why[200], status[sizeof(sv->status)];
	int rc;

	rc = nbd_server_status(sv->nbd, &st);
	nbd_server_health(sv->nbd, &h);
	if (!service_io_healthy(&h, rc, limit_ms(sv), why, sizeof(why))) {
		if (!sv->unhealthy)
			qb_log(LOG_ERR, "watchdog: the I/O path is stuck: %s%s", why,
			       sv->watchdog_ms ? "; no keep-alive for systemd until it moves" : "");
		sv->unhealthy = true;
		snprintf(status, sizeof(status), "I/O path stuck: %s", why);
	} else {
		if (sv->unhealthy)
			qb_log(LOG_NOTICE, "watchdog: the I/O path moves again");
		sv->unhealthy = false;
		status_line(st, status, sizeof(status));
		if (sv->watchdog_ms)
			service_notify(sv, "WATCHDOG=1");
	}
	if (strcmp(status, sv->status) != 0) {
		service_notify(sv, "STATUS=%s", status);
		memcpy(sv->status, status, sizeof(status));
	}
	ipm_status_free(st);
}

static void *watch_main(void *arg)
{
	struct service *sv = arg;
	int64_t round = sv->watchdog_ms ? sv->watchdog_ms / 2 : ROUND_MS_NO_WATCHDOG;
	bool stop;

	if (round < 50)
		round = 50;
	for (;;) {
		watch_round(sv);
		pthread_mutex_lock(&sv->lock);
		if (!sv->stop)
			ipm_cond_wait_ms(&sv->cond, &sv->lock, (int)round);
		stop = sv->stop;
		pthread_mutex_unlock(&sv->lock);
		if (stop)
			return NULL;
	}
}

int service_watch(struct service *sv, struct nbd_server *nbd, ipm_error *err)
{
	int rc;

	if (!sv || sv->fd < 0)
		return 0;
	sv->nbd = nbd;
	rc = -pthread_create(&sv->thread, NULL, watch_main, sv);
	if (rc < 0)
		return ipm_fail(err, rc, "cannot start the watchdog thread: %s", strerror(-rc));
	sv->running = true;
	if (sv->watchdog_ms)
		qb_log(LOG_INFO, "systemd watchdog: %lld ms, keep-alive every %lld ms while no host request takes over %lld ms",
		       (long long)sv->watchdog_ms, (long long)sv->watchdog_ms / 2,
		       (long long)limit_ms(sv));
	return 0;
}

void service_unwatch(struct service *sv)
{
	if (!sv || !sv->running)
		return;
	pthread_mutex_lock(&sv->lock);
	sv->stop = true;
	pthread_cond_signal(&sv->cond);
	pthread_mutex_unlock(&sv->lock);
	pthread_join(sv->thread, NULL);
	sv->running = false;
}

void service_free(struct service *sv)
{
	if (!sv)
		return;
	service_unwatch(sv);
	if (sv->fd >= 0)
		close(sv->fd);
	pthread_mutex_destroy(&sv->lock);
	pthread_cond_destroy(&sv->cond);
	free(sv);
}
