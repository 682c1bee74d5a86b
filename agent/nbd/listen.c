/* listen.c - the NBD server's listeners and acceptor, and its outside
 * (server.h): create, start, stop, and the engine swap of a role change. */
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "nbd_int.h"
#include "netaddr.h"

#define DEFAULT_THREADS    64
#define READER_STACK       (256U << 10)

/* ---- acceptor ---------------------------------------------------------- */

/* Join readers that have finished and drop the list's reference. */
static void reap(struct nbd_server *s, bool all)
{
	struct nbd_client **pp, *c, *dead = NULL;

	pthread_mutex_lock(&s->clock);
	for (pp = &s->clients; (c = *pp);) {
		if (c->done || all) {
			*pp = c->next;
			c->next = dead;
			dead = c;
			s->n_clients--;
		} else {
			pp = &c->next;
		}
	}
	pthread_mutex_unlock(&s->clock);
	while ((c = dead)) {
		dead = c->next;
		pthread_join(c->reader, NULL);
		client_unref(c);
	}
}

/* May c join? NULL, or the limit it hits (*count: clients counted), so
 * one address cannot take every slot. s->clock held. */
static const char *admit_locked(struct nbd_server *s, const struct nbd_client *c,
				unsigned *count)
{
	unsigned same = 0;

	*count = s->n_clients;
	if (s->n_clients >= s->max_clients)
		return "max-clients";
	for (const struct nbd_client *o = s->clients; o; o = o->next)
		if (!o->done && !strcmp(o->host, c->host))
			same++;
	*count = same;
	return same >= s->max_per_addr ? "max-clients-per-address" : NULL;
}

static void log_refused(struct nbd_client *c, const char *limit, unsigned count)
{
	if (!strcmp(limit, "max-clients"))
		client_log_limited(c, RL_REFUSED, "refused: already %u clients (max-clients)",
				   count);
	else
		client_log_limited(c, RL_REFUSED, "refused: already %u clients from %s (%s)",
				   count, c->host, limit);
}

/* Serve the connected socket fd (the client owns it from here): 0, or
 * -ENOMEM, -EBUSY (a client limit) or -errno of the thread, fd closed then. */
static int client_add(struct nbd_server *s, int fd, bool is_unix)
{
	struct nbd_client *c;
	pthread_attr_t attr;
	const char *limit;
	unsigned count;
	int rc;

	c = client_new(s, fd, is_unix);
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_lock(&s->clock);
	limit = admit_locked(s, c, &count);
	if (limit) {
		pthread_mutex_unlock(&s->clock);
		log_refused(c, limit, count);
		client_unref(c);
		return -EBUSY;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, READER_STACK);
	rc = pthread_create(&c->reader, &attr, reader_main, c);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		pthread_mutex_unlock(&s->clock);
		client_log(c, LOG_ERR, "cannot start a thread: %s", strerror(rc));
		client_unref(c);
		return -rc;
	}
	c->next = s->clients;
	s->clients = c;
	s->n_clients++;
	pthread_mutex_unlock(&s->clock);
	client_log(c, LOG_DEBUG, "connected");
	return 0;
}

static void accept_one(struct nbd_server *s, int lfd, bool is_unix)
{
	int fd, one = 1;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
			qb_log(LOG_ERR, "nbd: accept: %s", strerror(errno));
			usleep(100000);  /* the backlog would make poll spin */
		}
		return;
	}
	if (!is_unix)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	client_add(s, fd, is_unix);
}

static void *acceptor_main(void *arg)
{
	struct nbd_server *s = arg;

	for (;;) {
		struct pollfd pfd[3];
		nfds_t n = 0;
		uint64_t v;

		pfd[n++] = (struct pollfd){ .fd = s->wake_fd, .events = POLLIN };
		if (s->tcp_fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = s->tcp_fd, .events = POLLIN };
		if (s->unix_fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = s->unix_fd, .events = POLLIN };
		atomic_store(&s->acceptor_tick_ms, ipm_now_ms());
		if (poll(pfd, n, 1000) < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&s->clock);
		bool stopping = s->stopping;

		pthread_mutex_unlock(&s->clock);
		if (stopping)
			break;
		if (pfd[0].revents & POLLIN && read(s->wake_fd, &v, sizeof(v)) < 0)
			qb_log(LOG_DEBUG, "nbd: wake read: %s", strerror(errno));
		reap(s, false);
		for (nfds_t i = 1; i < n; i++)
			if (pfd[i].revents & POLLIN)
				accept_one(s, pfd[i].fd, pfd[i].fd == s->unix_fd);
	}
	return NULL;
}

/* ---- listeners --------------------------------------------------------- */

static int listen_tcp(struct nbd_server *s, ipm_error *err)
{
	int fd = net_listen_tcp(s->listen.address, s->listen.port, 128, 0, "NBD address", err);

	if (fd < 0)
		return fd;
	s->tcp_fd = fd;
	qb_log(LOG_NOTICE, "NBD listening on %s:%u", s->listen.address, s->listen.port);
	return 0;
}

/* A socket file left by a dead daemon is replaced; a live one is not. */
static int unix_path_free(const char *path, ipm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return ipm_fail(err, -EEXIST, "%s exists and is not a socket", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ipm_fail(err, -errno, "socket: %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rc == 0)
		return ipm_fail(err, -EADDRINUSE, "%s is in use by another server", path);
	unlink(path);
	return 0;
}

/* The group by name, or a number that names none. */
static int group_id(const char *name, gid_t *gid)
{
	struct group gr, *res = NULL;
	char buf[4096], *end;
	unsigned long n;
	int rc = getgrnam_r(name, &gr, buf, sizeof(buf), &res);

	if (rc == 0 && res) {
		*gid = res->gr_gid;
		return 0;
	}
	errno = 0;
	n = strtoul(name, &end, 10);
	if (*name >= '0' && *name <= '9' && !*end && !errno && n < (gid_t)-1) {
		*gid = (gid_t)n;
		return 0;
	}
	return rc ? -rc : -ENOENT;
}

/* bind() made it 0600 under the daemon's umask: hosts of the group may connect. */
static int unix_access(const char *path, const char *group, ipm_error *err)
{
	gid_t gid;
	int rc;

	if (*group && (rc = group_id(group, &gid)) < 0)
		return ipm_fail(err, rc, "NBD socket %s: unix-group \"%s\": %s", path, group,
				rc == -ENOENT ? "no such group" : strerror(-rc));
	if (*group && chown(path, (uid_t)-1, gid) < 0)
		return ipm_fail(err, -errno, "NBD socket %s: cannot give it to group %s: %s", path,
				group, strerror(errno));
	if (chmod(path, 0660) < 0)
		return ipm_fail(err, -errno, "NBD socket %s: cannot chmod 0660: %s", path,
				strerror(errno));
	return 0;
}

static int listen_unix(struct nbd_server *s, ipm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = s->listen.unix_path;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return ipm_fail(err, -ENAMETOOLONG, "NBD socket path too long: %s", path);
	rc = unix_path_free(path, err);
	if (rc < 0)
		return rc;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ipm_fail(err, -errno, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
		rc = -errno;
		close(fd);
		return ipm_fail(err, rc, "cannot listen for NBD on %s: %s", path, strerror(-rc));
	}
	s->unix_fd = fd;
	s->unix_bound = true;
	rc = unix_access(path, s->listen.unix_group, err);
	if (rc < 0)
		return rc;
	qb_log(LOG_NOTICE, "NBD listening on unix:%s", path);
	return 0;
}

/* ---- public ------------------------------------------------------------ */

int nbd_server_create(ipm_engine *e, const ipm_listen *listen, unsigned threads,
		      struct nbd_server **out, ipm_error *err)
{
	struct nbd_server *s;

	if (!listen->address[0] && !listen->unix_path[0])
		return ipm_fail(err, -EINVAL, "no NBD listener configured");
	s = calloc(1, sizeof(*s));
	if (!s)
		return ipm_fail(err, -ENOMEM, "out of memory");
	s->e = e;
	{
		pthread_rwlockattr_t ra;

		/* a role change must get the lock under a steady load */
		pthread_rwlockattr_init(&ra);
		pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&s->elock, &ra);
		pthread_rwlockattr_destroy(&ra);
	}
	s->listen = *listen;
	s->handshake_ms = 1000LL * (listen->handshake_timeout ? listen->handshake_timeout
							: IPM_NBD_HANDSHAKE_TIMEOUT);
	s->send_ms = 1000LL * (listen->send_timeout ? listen->send_timeout : IPM_NBD_SEND_TIMEOUT);
	s->idle_s = listen->idle_timeout;
	s->max_clients = listen->max_clients ? listen->max_clients : IPM_NBD_MAX_CLIENTS;
	s->max_per_addr = listen->max_clients_per_address ? listen->max_clients_per_address
							  : IPM_NBD_MAX_PER_ADDRESS;
	s->tls_mode = listen->tls;
	if (s->tls_mode != IPM_NBD_TLS_OFF) {
		struct ipm_tls_config tc = {
			.psk_file = listen->tls_psk_file[0] ? listen->tls_psk_file : NULL,
			.cert = listen->tls_cert[0] ? listen->tls_cert : NULL,
			.key = listen->tls_key[0] ? listen->tls_key : NULL,
			.ca = listen->tls_ca[0] ? listen->tls_ca : NULL,
		};
		int rc = ipm_tls_creds_new(IPM_TLS_SERVER, &tc, &s->tls, err);

		if (rc < 0) {
			pthread_rwlock_destroy(&s->elock);
			free(s);
			return rc;
		}
	}
	s->n_threads = threads ? threads : DEFAULT_THREADS;
	/* leave workers for other clients when one stops reading replies */
	s->max_inflight = s->n_threads / 2 > 32 ? s->n_threads / 2 : 32;
	s->tcp_fd = s->unix_fd = s->wake_fd = s->swake_fd = -1;
	pthread_mutex_init(&s->qlock, NULL);
	pthread_cond_init(&s->qcond, NULL);
	pthread_mutex_init(&s->clock, NULL);
	pthread_mutex_init(&s->plock, NULL);
	pthread_cond_init(&s->pool_room, NULL);
	pthread_mutex_init(&s->slock, NULL);
	pthread_mutex_init(&s->rl_lock, NULL);
	*out = s;
	return 0;
}

int nbd_server_start(struct nbd_server *s, ipm_error *err)
{
	int rc;

	s->started = true;  /* from here on nbd_server_stop undoes a partial start */
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->swake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0 || s->swake_fd < 0) {
		rc = ipm_fail(err, -errno, "eventfd: %s", strerror(errno));
		goto out;
	}
	if (s->listen.address[0] && (rc = listen_tcp(s, err)) < 0)
		goto out;
	if (s->listen.unix_path[0] && (rc = listen_unix(s, err)) < 0)
		goto out;
	s->workers = calloc(s->n_threads, sizeof(*s->workers));
	s->busy_since_ms = calloc(s->n_threads, sizeof(*s->busy_since_ms));
	atomic_store(&s->next_slot, 0);
	if (!s->workers || !s->busy_since_ms) {
		rc = ipm_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = -pthread_create(&s->sender, NULL, sender_main, s);
	if (rc < 0) {
		ipm_fail(err, rc, "cannot start the NBD sender: %s", strerror(-rc));
		goto out;
	}
	s->sender_started = true;
	for (; s->n_workers < s->n_threads; s->n_workers++) {
		rc = -pthread_create(&s->workers[s->n_workers], NULL, worker_main, s);
		if (rc < 0) {
			ipm_fail(err, rc, "cannot start NBD workers: %s", strerror(-rc));
			goto out;
		}
	}
	atomic_store(&s->acceptor_tick_ms, ipm_now_ms());
	rc = -pthread_create(&s->acceptor, NULL, acceptor_main, s);
	if (rc < 0) {
		ipm_fail(err, rc, "cannot start the NBD acceptor: %s", strerror(-rc));
		goto out;
	}
	s->acceptor_started = true;
out:
	if (rc < 0)
		nbd_server_stop(s);
	return rc;
}

int nbd_server_adopt(struct nbd_server *s, int fd, ipm_error *err)
{
	int rc;

	pthread_mutex_lock(&s->clock);
	bool stopping = s->stopping || !s->started;

	pthread_mutex_unlock(&s->clock);
	if (stopping) {
		close(fd);
		return ipm_fail(err, -ESHUTDOWN, "the NBD server is not running");
	}
	rc = client_add(s, fd, true);
	if (rc < 0)
		return ipm_fail(err, rc, "cannot serve the NBD connection: %s", strerror(-rc));
	return 0;
}

void nbd_server_stop(struct nbd_server *s)
{
	struct nbd_client *c;
	uint64_t one = 1;

	if (!s || !s->started)
		return;
	pthread_mutex_lock(&s->clock);
	s->stopping = true;
	pthread_mutex_unlock(&s->clock);
	if (s->acceptor_started) {
		if (write(s->wake_fd, &one, sizeof(one)) < 0)
			qb_log(LOG_DEBUG, "nbd: cannot wake the acceptor");
		pthread_join(s->acceptor, NULL);
		s->acceptor_started = false;
	}
	if (s->tcp_fd >= 0)
		close(s->tcp_fd);
	if (s->unix_fd >= 0)
		close(s->unix_fd);
	if (s->unix_bound)
		unlink(s->listen.unix_path);
	s->tcp_fd = s->unix_fd = -1;
	s->unix_bound = false;

	/* readers wake on the shut-down sockets; queued work still runs */
	pthread_mutex_lock(&s->clock);
	for (c = s->clients; c; c = c->next)
		client_kill(c);
	pthread_mutex_unlock(&s->clock);
	reap(s, true);

	pthread_mutex_lock(&s->qlock);
	s->q_stop = true;
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	for (unsigned i = 0; i < s->n_workers; i++)
		pthread_join(s->workers[i], NULL);
	s->n_workers = 0;
	free(s->workers);
	s->workers = NULL;
	free((void *)s->busy_since_ms);
	s->busy_since_ms = NULL;
	/* after the workers: they hand the sender full sockets until they end */
	if (s->sender_started) {
		pthread_mutex_lock(&s->slock);
		s->s_stop = true;
		pthread_mutex_unlock(&s->slock);
		if (write(s->swake_fd, &one, sizeof(one)) < 0)
			qb_log(LOG_DEBUG, "nbd: cannot wake the sender");
		pthread_join(s->sender, NULL);
		s->sender_started = false;
		s->s_stop = false;
	}
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	if (s->swake_fd >= 0)
		close(s->swake_fd);
	s->wake_fd = s->swake_fd = -1;
	s->started = false;
}

void nbd_server_destroy(struct nbd_server *s)
{
	if (!s)
		return;
	nbd_server_stop(s);
	pthread_mutex_destroy(&s->qlock);
	pthread_cond_destroy(&s->qcond);
	pthread_mutex_destroy(&s->clock);
	pthread_mutex_destroy(&s->plock);
	pthread_cond_destroy(&s->pool_room);
	pthread_mutex_destroy(&s->slock);
	pthread_mutex_destroy(&s->rl_lock);
	pthread_rwlock_destroy(&s->elock);
	ipm_tls_creds_free(s->tls);
	free(s);
}

/* ---- role changes: a new engine under the running clients --------------- */

void nbd_server_pause(struct nbd_server *s)
{
	/* waits for the requests being executed; new ones wait for resume */
	pthread_rwlock_wrlock(&s->elock);
}

void nbd_server_resume(struct nbd_server *s, ipm_engine *e)
{
	struct nbd_client *c;
	ipm_error err;
	ipm_lun *l;

	s->e = e;
	s->swap_gen++;
	pthread_mutex_lock(&s->clock);
	for (c = s->clients; c; c = c->next) {
		if (!c->lun)
			continue;
		l = e ? ipm_engine_lun_by_name(e, c->export_name) : NULL;
		c->lun = l && ipm_lun_check_open(l, &err) == 0 ? l : NULL;
		if (!c->lun) {
			client_log(c, LOG_NOTICE, "export \"%s\" is no longer served here (role change): disconnecting",
				   c->export_name);
			client_kill(c);
		}
	}
	pthread_mutex_unlock(&s->clock);
	pthread_rwlock_unlock(&s->elock);
}

void nbd_server_kick(struct nbd_server *s, const char *export, const char *why)
{
	struct nbd_client *c;

	pthread_mutex_lock(&s->clock);
	for (c = s->clients; c; c = c->next) {
		if (strcmp(c->export_name, export) != 0)
			continue;
		client_log(c, LOG_NOTICE, "export \"%s\" %s: disconnecting", export, why);
		client_kill(c);
	}
	pthread_mutex_unlock(&s->clock);
}

/* ---- liveness, for the service watchdog ---------------------------------- */

/* One thread executing a host request since `since` (0: idle). */
static void health_busy(struct nbd_health *h, int64_t now, int64_t since)
{
	if (!since)
		return;
	h->busy++;
	if (now - since > h->oldest_busy_ms)
		h->oldest_busy_ms = now - since;
}

void nbd_server_health(struct nbd_server *s, struct nbd_health *h)
{
	int64_t now = ipm_now_ms();

	memset(h, 0, sizeof(*h));
	if (!s->started)
		return;
	if (s->acceptor_started)
		h->acceptor_idle_ms = now - atomic_load(&s->acceptor_tick_ms);
	for (unsigned i = 0; i < s->n_workers; i++)
		health_busy(h, now, atomic_load(&s->busy_since_ms[i]));
	/* requests the readers execute themselves (work_run_here) */
	pthread_mutex_lock(&s->clock);
	for (struct nbd_client *c = s->clients; c; c = c->next)
		health_busy(h, now, atomic_load(&c->run_since_ms));
	pthread_mutex_unlock(&s->clock);
}

int nbd_server_status(struct nbd_server *s, ipm_status **st)
{
	int rc;

	pthread_rwlock_rdlock(&s->elock);
	rc = s->e ? ipm_engine_status(s->e, st) : -EIO;
	pthread_rwlock_unlock(&s->elock);
	return rc;
}
