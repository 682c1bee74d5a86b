/* nbd_server.c - NBD server: listeners, handshake, per-client reader and a
 * shared worker pool.
 *
 * One acceptor thread polls the listeners. Each client gets a reader thread
 * that does the handshake, then decodes requests (and reads WRITE payloads)
 * and queues them for the worker pool, so one connection can have many
 * requests in flight. Workers call the blocking engine I/O and send the reply
 * with one sendmsg under the client's send mutex. Clients are reference
 * counted (the server's list, each queued request) so a client vanishing with
 * requests in flight is harmless: its fd closes when the last reply is done. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "nbd_proto.h"
#include "nbd_server.h"

#define DEFAULT_THREADS    64
#define MAX_CLIENTS        256
#define HANDSHAKE_TIMEOUT  10          /* s: a silent half-done handshake is dropped */
#define SEND_TIMEOUT       30          /* s without progress: the client is dead */
#define MAX_OPTIONS        1024        /* per handshake; more is a denial of service */
#define CLIENT_MAX_BYTES   (64U << 20) /* payload bytes in flight per client */
#define RBUF_SIZE          (64U << 10)
#define CACHE_MAX_BYTES    (32U << 20) /* recycled item buffers per client */
#define QUEUE_BATCH        16          /* requests handed to workers at once */
#define BAD_LOG_MAX        16          /* logged bad requests per client */
#define READER_STACK       (256U << 10)

struct nbd_work {
	struct nbd_work *next;  /* work queue, then reply queue, then cache */
	struct nbd_client *c;
	struct nbd_request req;
	size_t need;   /* payload bytes accounted to the client */
	void *buf;
	size_t cap;
	size_t data_len;        /* reply payload bytes (a successful READ) */
	uint8_t hdr[NBD_SIMPLE_REPLY_LEN];
};

struct nbd_client {
	struct nbd_server *s;
	struct nbd_client *next;
	pthread_t reader;
	int fd;
	char peer[64];
	atomic_int refs;
	atomic_bool dead;       /* connection unusable: stop sending */
	bool done;              /* reader finished (under s->clock) */
	ipm_lun *lun;           /* under s->elock */
	char export_name[IPM_NAME_MAX]; /* to find the LUN again after a role change */
	uint64_t size;
	unsigned bad_logged;
	pthread_mutex_t send_lock;  /* one writer on the socket at a time */
	pthread_mutex_t lock;   /* in-flight accounting and the item cache */
	pthread_cond_t room;
	unsigned inflight;
	size_t inflight_bytes;
	struct nbd_work *cache; /* finished items, buffers kept for reuse */
	size_t cache_bytes;
	/* replies waiting to be sent; one worker at a time sends them all
	 * (flat combining: no convoy on the send mutex, fewer syscalls) */
	pthread_mutex_t rlock;
	struct nbd_work *rhead, *rtail;
	bool sending;
	/* reader only: requests decoded but not yet handed to the workers */
	struct nbd_work *bhead, *btail;
	unsigned bcount;
	size_t rstart, rend;    /* buffered reader */
	uint8_t rbuf[RBUF_SIZE];
};

struct nbd_server {
	/* the engine and the clients' LUNs: read-locked while used, write-locked
	 * by a role change, which replaces the engine under the clients */
	pthread_rwlock_t elock;
	ipm_engine *e;
	unsigned swap_gen;      /* engine replacements so far (under elock) */
	ipm_listen listen;
	unsigned n_threads;
	unsigned max_inflight;  /* per client */
	int tcp_fd, unix_fd, wake_fd;
	bool unix_bound, started;
	pthread_t acceptor;
	bool acceptor_started;
	pthread_t *workers;
	unsigned n_workers;
	/* work queue and recycled work items */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct nbd_work *qhead, *qtail;
	unsigned n_idle;        /* workers waiting on qcond */
	bool q_stop;
	/* clients */
	pthread_mutex_t clock;
	struct nbd_client *clients;
	unsigned n_clients;
	bool stopping;
};

static void client_log(struct nbd_client *c, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void client_log(struct nbd_client *c, int prio, const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	qb_log(prio, "nbd client %s: %s", c->peer, msg);
}

/* Copy an untrusted name for a log line or error message. */
static void printable(char *dst, size_t dsz, const char *src, size_t len)
{
	size_t i;

	for (i = 0; i < len && i + 1 < dsz; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[i] = '\0';
}

/* ---- clients: lifetime ------------------------------------------------- */

static void client_unref(struct nbd_client *c)
{
	struct nbd_work *w;

	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	close(c->fd);
	while ((w = c->cache)) {
		c->cache = w->next;
		free(w->buf);
		free(w);
	}
	pthread_mutex_destroy(&c->rlock);
	pthread_mutex_destroy(&c->send_lock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->room);
	free(c);
}

/* Make the connection unusable: wakes the reader and any blocked sender. */
static void client_kill(struct nbd_client *c)
{
	atomic_store(&c->dead, true);
	shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_lock(&c->lock);
	pthread_cond_broadcast(&c->room);
	pthread_mutex_unlock(&c->lock);
}

/* ---- clients: I/O ------------------------------------------------------ */

static int send_all(int fd, struct iovec *iov, int iovcnt)
{
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };

	while (m.msg_iovlen > 0) {
		ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		while (n > 0) {
			if ((size_t)n >= m.msg_iov->iov_len) {
				n -= (ssize_t)m.msg_iov->iov_len;
				m.msg_iov++;
				m.msg_iovlen--;
			} else {
				m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + n;
				m.msg_iov->iov_len -= (size_t)n;
				n = 0;
			}
		}
		while (m.msg_iovlen > 0 && m.msg_iov->iov_len == 0) {
			m.msg_iov++;
			m.msg_iovlen--;
		}
	}
	return 0;
}

/* One message, atomically with respect to other senders of this client. */
static int client_send(struct nbd_client *c, struct iovec *iov, int iovcnt)
{
	int rc = -EPIPE;

	pthread_mutex_lock(&c->send_lock);
	if (!atomic_load(&c->dead)) {
		rc = send_all(c->fd, iov, iovcnt);
		if (rc < 0) {
			if (rc == -EAGAIN)
				client_log(c, LOG_WARNING, "not reading replies for %d s, closing",
					   SEND_TIMEOUT);
			else
				client_log(c, LOG_INFO, "send failed: %s", strerror(-rc));
			client_kill(c);
		}
	}
	pthread_mutex_unlock(&c->send_lock);
	return rc;
}

static void batch_flush(struct nbd_client *c);

/* recv into the read buffer: > 0 bytes, 0 at EOF, or -errno */
static ssize_t rd_fill(struct nbd_client *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->rbuf, RBUF_SIZE, c->bhead ? MSG_DONTWAIT : 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && c->bhead) {
			batch_flush(c);  /* about to block: let the workers start */
			continue;
		}
		if (n < 0)
			return -errno;
		c->rstart = 0;
		c->rend = (size_t)n;
		return n;
	}
}

/* Read exactly n bytes. 0, -ENODATA at EOF before the first byte, -EPIPE at
 * EOF in the middle, -EAGAIN on timeout, or another -errno. Large reads go
 * straight into dst, small ones through the buffer (few syscalls at QD32). */
static int rd_exact(struct nbd_client *c, void *dst, size_t n)
{
	uint8_t *d = dst;
	bool started = false;

	while (n > 0) {
		size_t avail = c->rend - c->rstart;
		ssize_t r;

		if (avail > 0) {
			size_t k = avail < n ? avail : n;

			memcpy(d, c->rbuf + c->rstart, k);
			c->rstart += k;
			d += k;
			n -= k;
			started = true;
			continue;
		}
		if (n >= RBUF_SIZE / 2) {
			batch_flush(c);
			r = recv(c->fd, d, n, MSG_WAITALL);
			if (r > 0) {
				d += r;
				n -= (size_t)r;
				started = true;
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			r = r < 0 ? -errno : 0;
		} else {
			r = rd_fill(c);
			if (r > 0)
				continue;
		}
		if (r == 0)
			return started ? -EPIPE : -ENODATA;
		return (int)r;
	}
	return 0;
}

/* Consume and drop n bytes (a refused WRITE's payload). */
static int rd_skip(struct nbd_client *c, size_t n)
{
	while (n > 0) {
		size_t avail = c->rend - c->rstart;
		ssize_t r;

		if (avail > 0) {
			size_t k = avail < n ? avail : n;

			c->rstart += k;
			n -= k;
			continue;
		}
		r = rd_fill(c);
		if (r <= 0)
			return r == 0 ? -EPIPE : (int)r;
	}
	return 0;
}

static void set_timeout(int fd, int opt, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

/* A log line for a failed read, naming the phase. */
static void log_read_error(struct nbd_client *c, int rc, const char *phase)
{
	if (atomic_load(&c->dead))
		return;
	if (rc == -ENODATA)
		client_log(c, LOG_WARNING, "%s truncated: connection closed", phase);
	else if (rc == -EPIPE)
		client_log(c, LOG_WARNING, "%s truncated: connection closed mid-message", phase);
	else if (rc == -EAGAIN)
		client_log(c, LOG_WARNING, "%s timed out after %d s", phase, HANDSHAKE_TIMEOUT);
	else
		client_log(c, LOG_WARNING, "%s: read error: %s", phase, strerror(-rc));
}

/* ---- handshake --------------------------------------------------------- */

static int opt_reply(struct nbd_client *c, uint32_t opt, uint32_t type, const void *data,
		     uint32_t len)
{
	uint8_t hdr[NBD_OPT_REPLY_HDR_LEN];
	struct iovec iov[2] = {
		{ hdr, nbd_build_opt_reply(hdr, opt, type, len) },
		{ (void *)data, len },
	};

	return client_send(c, iov, len ? 2 : 1);
}

static int opt_error(struct nbd_client *c, uint32_t opt, uint32_t type, const char *msg)
{
	return opt_reply(c, opt, type, msg, (uint32_t)strlen(msg));
}

/* Find the export and check this node may serve it. 0, or -ENOENT / -EPERM
 * with a message for the client in err. The empty name is the default export:
 * the only LUN, when there is exactly one. Called with s->elock held. */
static int lookup_export(struct nbd_client *c, const char *name, uint32_t len, ipm_lun **out,
			 ipm_error *err)
{
	char buf[IPM_NAME_MAX], shown[IPM_NAME_MAX];
	ipm_lun *l = NULL;

	printable(shown, sizeof(shown), name, len);
	if (len == 0 && ipm_engine_lun_count(c->s->e) == 1) {
		l = ipm_engine_lun_at(c->s->e, 0);
	} else if (len < sizeof(buf) && !memchr(name, '\0', len)) {
		memcpy(buf, name, len);
		buf[len] = '\0';
		l = ipm_engine_lun_by_name(c->s->e, buf);
	}
	if (!l)
		return ipm_fail(err, -ENOENT, "unknown export \"%s\"", shown);
	if (ipm_lun_check_open(l, err) < 0)
		return -EPERM;
	*out = l;
	return 0;
}

/* The names this node serves now, each as an NBD_REP_SERVER body; *n of
 * them. Taken under elock, sent without it: a client that stops reading
 * must not hold up a role change. */
static uint8_t (*servable_names(struct nbd_server *s, size_t *n))[4 + IPM_NAME_MAX]
{
	uint8_t (*v)[4 + IPM_NAME_MAX];
	size_t i, count, k = 0;

	pthread_rwlock_rdlock(&s->elock);
	count = s->e ? ipm_engine_lun_count(s->e) : 0;
	v = calloc(count ? count : 1, sizeof(*v));
	for (i = 0; v && i < count; i++) {
		ipm_lun *l = ipm_engine_lun_at(s->e, i);
		const char *name = ipm_lun_name(l);
		uint32_t nlen = (uint32_t)strlen(name);
		ipm_error err;

		if (ipm_lun_check_open(l, &err) < 0 || nlen > IPM_NAME_MAX)
			continue;
		v[k][0] = (uint8_t)(nlen >> 24);
		v[k][1] = (uint8_t)(nlen >> 16);
		v[k][2] = (uint8_t)(nlen >> 8);
		v[k][3] = (uint8_t)nlen;
		memcpy(v[k] + 4, name, nlen);
		k++;
	}
	pthread_rwlock_unlock(&s->elock);
	*n = k;
	return v;
}

static int opt_list(struct nbd_client *c, uint32_t opt, uint32_t len)
{
	uint8_t (*names)[4 + IPM_NAME_MAX];
	size_t n, i;
	int rc = 0;

	if (len != 0)
		return opt_error(c, opt, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
	names = servable_names(c->s, &n);
	if (!names)
		return -ENOMEM;	/* nothing sensible to tell the client */
	for (i = 0; i < n && rc == 0; i++) {
		uint32_t nlen = (uint32_t)names[i][0] << 24 | (uint32_t)names[i][1] << 16 |
				(uint32_t)names[i][2] << 8 | names[i][3];

		rc = opt_reply(c, opt, NBD_REP_SERVER, names[i], 4 + nlen);
	}
	free(names);
	return rc < 0 ? rc : opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
}

/* Look the export up under elock: its size and the engine generation it
 * was found in (see attach_export). */
static int find_export(struct nbd_client *c, const char *name, uint32_t len, uint64_t *size,
		       unsigned *gen, ipm_error *err)
{
	ipm_lun *l = NULL;
	int rc;

	pthread_rwlock_rdlock(&c->s->elock);
	rc = c->s->e ? lookup_export(c, name, len, &l, err)
		     : ipm_fail(err, -EPERM, "the engine is restarting");
	if (rc == 0) {
		*size = ipm_lun_size(l);
		*gen = c->s->swap_gen;
		snprintf(c->export_name, sizeof(c->export_name), "%s", ipm_lun_name(l));
	}
	pthread_rwlock_unlock(&c->s->elock);
	return rc;
}

/* Transmission begins: bind the client to the LUN, unless a role change
 * came between the lookup and now and took the LUN away. */
static int attach_export(struct nbd_client *c, unsigned gen)
{
	ipm_error err = { "" };
	ipm_lun *l = NULL;
	int rc = 0;

	pthread_rwlock_rdlock(&c->s->elock);
	if (!c->s->e)
		rc = -EPERM;
	else if (gen != c->s->swap_gen)
		rc = lookup_export(c, c->export_name, (uint32_t)strlen(c->export_name), &l, &err);
	else
		l = ipm_engine_lun_by_name(c->s->e, c->export_name);
	if (rc == 0 && l)
		c->lun = l;
	pthread_rwlock_unlock(&c->s->elock);
	return rc == 0 && l ? 0 : -EPERM;
}

/* NBD_OPT_INFO / NBD_OPT_GO: 1 when GO succeeded (transmission begins),
 * 0 to go on haggling, < 0 on a send error. */
static int opt_info_go(struct nbd_client *c, uint32_t opt, const uint8_t *data, uint32_t len)
{
	uint8_t info[NBD_INFO_BLOCK_SIZE_LEN];
	char shown[IPM_NAME_MAX];
	ipm_error err = { "" };
	struct nbd_go go;
	uint64_t size;
	unsigned gen;
	int rc;

	if (nbd_go_parse(data, len, &go) < 0) {
		client_log(c, LOG_WARNING, "malformed NBD_OPT_%s", nbd_opt_name(opt));
		return opt_error(c, opt, NBD_REP_ERR_INVALID, "malformed option data");
	}
	printable(shown, sizeof(shown), go.name, go.name_len);
	rc = find_export(c, go.name, go.name_len, &size, &gen, &err);
	if (rc < 0) {
		client_log(c, LOG_WARNING, "export \"%s\" refused: %s", shown, err.msg);
		return opt_error(c, opt, rc == -ENOENT ? NBD_REP_ERR_UNKNOWN : NBD_REP_ERR_POLICY,
				 err.msg);
	}
	rc = opt_reply(c, opt, NBD_REP_INFO, info,
		       (uint32_t)nbd_build_info_export(info, size, NBD_EXPORT_FLAGS));
	if (rc == 0)
		rc = opt_reply(c, opt, NBD_REP_INFO, info,
			       (uint32_t)nbd_build_info_block_size(info, NBD_MIN_BLOCK,
								   NBD_PREF_BLOCK, NBD_MAX_PAYLOAD));
	if (rc == 0)
		rc = opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
	if (rc < 0 || opt != NBD_OPT_GO)
		return rc;
	if (attach_export(c, gen) < 0) {
		client_log(c, LOG_WARNING, "export \"%s\": taken away by a role change", shown);
		return -EPERM;
	}
	c->size = size;
	client_log(c, LOG_INFO, "serving export \"%s\" (%llu bytes)", shown,
		   (unsigned long long)size);
	return 1;
}

/* NBD_OPT_EXPORT_NAME: no way to report an error but to hang up. */
static int opt_export_name(struct nbd_client *c, const uint8_t *data, uint32_t len,
			   bool no_zeroes)
{
	uint8_t reply[NBD_EXPORT_NAME_REPLY_MAX];
	char shown[IPM_NAME_MAX];
	ipm_error err = { "" };
	struct iovec iov;
	unsigned gen;

	printable(shown, sizeof(shown), (const char *)data, len);
	if (find_export(c, (const char *)data, len, &c->size, &gen, &err) < 0 ||
	    attach_export(c, gen) < 0) {
		client_log(c, LOG_WARNING, "export \"%s\" refused: %s", shown,
			   err.msg[0] ? err.msg : "taken away by a role change");
		return -ENOENT;
	}
	iov.iov_base = reply;
	iov.iov_len = nbd_build_export_name_reply(reply, c->size, NBD_EXPORT_FLAGS, no_zeroes);
	if (client_send(c, &iov, 1) < 0)
		return -EPIPE;
	client_log(c, LOG_INFO, "serving export \"%s\" (%llu bytes)", shown,
		   (unsigned long long)c->size);
	return 1;
}

/* 0 when the transmission phase begins, < 0 to close the connection. */
static int handshake(struct nbd_client *c, uint8_t *data)
{
	uint8_t buf[NBD_HANDSHAKE_LEN];
	struct nbd_option o;
	struct iovec iov = { buf, nbd_build_handshake(buf) };
	bool no_zeroes;
	uint32_t flags;
	int rc;

	if (client_send(c, &iov, 1) < 0)
		return -EPIPE;
	rc = rd_exact(c, buf, 4);
	if (rc < 0) {
		log_read_error(c, rc, "handshake");
		return rc;
	}
	flags = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	if (nbd_client_flags_check(flags) < 0) {
		client_log(c, LOG_WARNING, "handshake: unknown client flags 0x%08x, closing", flags);
		return -EINVAL;
	}
	no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
	for (unsigned n = 0; n < MAX_OPTIONS; n++) {
		rc = rd_exact(c, buf, NBD_OPT_HDR_LEN);
		if (rc < 0) {
			log_read_error(c, rc, "handshake");
			return rc;
		}
		rc = nbd_option_decode(buf, NBD_OPT_HDR_LEN, &o);
		if (rc == -EBADMSG) {
			client_log(c, LOG_WARNING, "handshake: bad option magic, closing");
			return rc;
		}
		if (rc == -EMSGSIZE) {
			client_log(c, LOG_WARNING,
				   "handshake: option %u length %u exceeds %u bytes, closing",
				   o.opt, o.len, NBD_MAX_OPT_LEN);
			return rc;
		}
		rc = rd_exact(c, data, o.len);
		if (rc < 0) {
			log_read_error(c, rc, "handshake");
			return rc;
		}
		switch (o.opt) {
		case NBD_OPT_EXPORT_NAME:
			return opt_export_name(c, data, o.len, no_zeroes) > 0 ? 0 : -1;
		case NBD_OPT_ABORT:
			opt_reply(c, o.opt, NBD_REP_ACK, NULL, 0);
			return -ECONNABORTED;
		case NBD_OPT_LIST:
			rc = opt_list(c, o.opt, o.len);
			break;
		case NBD_OPT_INFO:
		case NBD_OPT_GO:
			rc = opt_info_go(c, o.opt, data, o.len);
			if (rc > 0)
				return 0;
			break;
		default:
			rc = opt_error(c, o.opt, NBD_REP_ERR_UNSUP, "option not supported");
			break;
		}
		if (rc < 0)
			return rc;
	}
	client_log(c, LOG_WARNING, "handshake: more than %d options, closing", MAX_OPTIONS);
	return -E2BIG;
}

/* ---- work items and the queue ------------------------------------------ */

/* Wait for room in the client's in-flight budget, then take an item with a
 * buffer of at least `need` bytes (a recycled one when possible). NULL when
 * the client died or memory ran out (*rc says which). */
static struct nbd_work *work_get(struct nbd_client *c, size_t need, int *rc)
{
	struct nbd_server *s = c->s;
	struct nbd_work *w;

	pthread_mutex_lock(&c->lock);
	while (!atomic_load(&c->dead) &&
	       (c->inflight >= s->max_inflight ||
		(c->inflight > 0 && c->inflight_bytes + need > CLIENT_MAX_BYTES))) {
		if (c->bhead) {  /* the room we wait for may be in our own batch */
			pthread_mutex_unlock(&c->lock);
			batch_flush(c);
			pthread_mutex_lock(&c->lock);
			continue;
		}
		pthread_cond_wait(&c->room, &c->lock);
	}
	if (atomic_load(&c->dead)) {
		pthread_mutex_unlock(&c->lock);
		*rc = -EPIPE;
		return NULL;
	}
	c->inflight++;
	c->inflight_bytes += need;
	w = c->cache;
	if (w) {
		c->cache = w->next;
		c->cache_bytes -= w->cap;
	}
	pthread_mutex_unlock(&c->lock);

	if (!w)
		w = calloc(1, sizeof(*w));
	if (w && w->cap < need) {
		size_t cap = 4096;

		while (cap < need)
			cap <<= 1;
		free(w->buf);
		w->cap = 0;
		if (posix_memalign(&w->buf, 4096, cap) != 0)
			w->buf = NULL;
		else
			w->cap = cap;
	}
	if (!w || w->cap < need) {
		pthread_mutex_lock(&c->lock);
		c->inflight--;
		c->inflight_bytes -= need;
		pthread_mutex_unlock(&c->lock);
		if (w) {
			free(w->buf);
			free(w);
		}
		*rc = -ENOMEM;
		return NULL;
	}
	w->need = need;
	w->data_len = 0;
	w->c = c;
	atomic_fetch_add(&c->refs, 1);
	return w;
}

/* Finish a list of items of one client: give back their in-flight budget,
 * keep their buffers for reuse (up to CACHE_MAX_BYTES), drop their client
 * references. The caller must hold a reference of its own. */
static void work_release(struct nbd_client *c, struct nbd_work *list)
{
	struct nbd_work *w, *drop = NULL;
	int n = 0;

	pthread_mutex_lock(&c->lock);
	while ((w = list)) {
		list = w->next;
		c->inflight--;
		c->inflight_bytes -= w->need;
		w->c = NULL;
		n++;
		if (c->cache_bytes + w->cap <= CACHE_MAX_BYTES) {
			w->next = c->cache;
			c->cache = w;
			c->cache_bytes += w->cap;
		} else {
			w->next = drop;
			drop = w;
		}
	}
	pthread_cond_signal(&c->room);
	pthread_mutex_unlock(&c->lock);
	while ((w = drop)) {
		drop = w->next;
		free(w->buf);
		free(w);
	}
	atomic_fetch_sub(&c->refs, n);
}

/* Reader: hold a request back until the batch is full or the reader would
 * block, then hand the batch over with one lock round trip. */
static void batch_flush(struct nbd_client *c)
{
	struct nbd_server *s = c->s;

	if (!c->bhead)
		return;
	pthread_mutex_lock(&s->qlock);
	if (s->qtail)
		s->qtail->next = c->bhead;
	else
		s->qhead = c->bhead;
	s->qtail = c->btail;
	/* wake one idle worker; it wakes the next if work is left (see
	 * worker_main), so only as many workers run as the load needs */
	if (s->n_idle > 0)
		pthread_cond_signal(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	c->bhead = c->btail = NULL;
	c->bcount = 0;
}

static void batch_add(struct nbd_client *c, struct nbd_work *w)
{
	w->next = NULL;
	if (c->btail)
		c->btail->next = w;
	else
		c->bhead = w;
	c->btail = w;
	if (++c->bcount >= QUEUE_BATCH)
		batch_flush(c);
}

/* Bad-request log lines are capped per client so a broken client cannot
 * flood the log. */
static void log_bad_request(struct nbd_client *c, const struct nbd_request *r, const char *why,
			    uint32_t err)
{
	if (c->bad_logged > BAD_LOG_MAX)
		return;
	if (c->bad_logged++ == BAD_LOG_MAX) {
		client_log(c, LOG_WARNING, "further bad requests not logged");
		return;
	}
	client_log(c, LOG_WARNING, "%s (command %s/%u, flags 0x%x, offset %llu, length %u): error %u",
		   why, nbd_cmd_name(r->type), r->type, r->flags,
		   (unsigned long long)r->offset, r->len, err);
}

/* An error reply sent by the reader itself (a refused request). */
static int simple_reply(struct nbd_client *c, uint32_t err, uint64_t cookie)
{
	uint8_t hdr[NBD_SIMPLE_REPLY_LEN];
	struct iovec iov = { hdr, nbd_build_simple_reply(hdr, err, cookie) };

	return client_send(c, &iov, 1);
}

#define REPLY_IOV 64

/* Send the replies of a list of finished items, as many per sendmsg as fit,
 * then release the items. */
static void reply_send_list(struct nbd_client *c, struct nbd_work *list)
{
	while (list) {
		struct iovec iov[REPLY_IOV];
		struct nbd_work *first = list, *last = NULL;
		int n = 0;

		while (list && n + 2 <= REPLY_IOV) {
			iov[n++] = (struct iovec){ list->hdr, NBD_SIMPLE_REPLY_LEN };
			if (list->data_len)
				iov[n++] = (struct iovec){ list->buf, list->data_len };
			last = list;
			list = list->next;
		}
		last->next = NULL;
		client_send(c, iov, n);
		work_release(c, first);
	}
}

/* Queue finished items' replies (a list from first to last). If no other
 * worker is sending for this client, become the sender and drain the
 * queue, including replies that other workers add meanwhile. */
static void reply_queue(struct nbd_client *c, struct nbd_work *first, struct nbd_work *last)
{
	struct nbd_work *list;

	last->next = NULL;
	pthread_mutex_lock(&c->rlock);
	if (c->rtail)
		c->rtail->next = first;
	else
		c->rhead = first;
	c->rtail = last;
	if (c->sending) {
		pthread_mutex_unlock(&c->rlock);
		return;
	}
	c->sending = true;
	atomic_fetch_add(&c->refs, 1);  /* the items may hold the last references */
	while ((list = c->rhead)) {
		c->rhead = c->rtail = NULL;
		pthread_mutex_unlock(&c->rlock);
		reply_send_list(c, list);
		pthread_mutex_lock(&c->rlock);
	}
	c->sending = false;
	pthread_mutex_unlock(&c->rlock);
	client_unref(c);
}

static int execute(struct nbd_work *w)
{
	const struct nbd_request *r = &w->req;
	ipm_lun *l = w->c->lun;
	unsigned flags = r->flags & NBD_CMD_FLAG_FUA ? IPM_IO_FUA : 0;

	switch (r->type) {
	case NBD_CMD_READ:
		return ipm_lun_read(l, w->buf, r->len, r->offset);
	case NBD_CMD_WRITE:
		return ipm_lun_write(l, w->buf, r->len, r->offset, flags);
	case NBD_CMD_FLUSH:
		return ipm_lun_flush(l);
	case NBD_CMD_TRIM:
		return ipm_lun_trim(l, r->len, r->offset, flags);
	case NBD_CMD_WRITE_ZEROES:
		return ipm_lun_zero(l, r->len, r->offset, flags);
	default:
		return -EINVAL; /* nbd_request_check lets no other command through */
	}
}

static void work_done(struct nbd_work *w, int rc)
{
	struct nbd_client *c = w->c;
	const struct nbd_request *r = &w->req;

	if (rc < 0 && !atomic_load(&c->dead))
		client_log(c, LOG_WARNING, "%s of %u bytes at offset %llu failed: %s",
			   nbd_cmd_name(r->type), r->len, (unsigned long long)r->offset,
			   strerror(-rc));
	nbd_build_simple_reply(w->hdr, nbd_errno(rc), r->cookie);
	w->data_len = r->type == NBD_CMD_READ && rc == 0 ? r->len : 0;
}

static void work_run(struct nbd_work *w)
{
	struct nbd_client *c = w->c;
	int rc;

	pthread_rwlock_rdlock(&c->s->elock);
	rc = atomic_load(&c->dead) || !c->lun ? -EPIPE : execute(w);
	pthread_rwlock_unlock(&c->s->elock);
	work_done(w, rc);
	reply_queue(c, w, w);
}

/* Writes of one client the host has in flight together: one engine call
 * for all (they go to the disk and the mirror together), one reply send. */
static void work_run_writes(struct nbd_work *list, unsigned n)
{
	struct nbd_client *c = list->c;
	ipm_write iw[IPM_WRITE_BATCH_MAX];
	struct nbd_work *w, *last = NULL;
	unsigned i;

	for (w = list, i = 0; i < n; w = w->next, i++)
		iw[i] = (ipm_write){ .buf = w->buf, .len = w->req.len, .off = w->req.offset,
				     .flags = w->req.flags & NBD_CMD_FLAG_FUA ? IPM_IO_FUA : 0,
				     .rc = -EPIPE };
	pthread_rwlock_rdlock(&c->s->elock);
	if (!atomic_load(&c->dead) && c->lun)
		ipm_lun_write_batch(c->lun, iw, n);
	pthread_rwlock_unlock(&c->s->elock);
	for (w = list, i = 0; i < n; last = w, w = w->next, i++)
		work_done(w, iw[i].rc);
	reply_queue(c, list, last);
}

/* Small writes travel in batches; a large one is worth a worker of its
 * own (each completes on its own, the next need not wait for it). */
#define BATCH_WRITE_MAX (64u << 10)

static bool is_write(const struct nbd_work *w)
{
	return w->req.type == NBD_CMD_WRITE;
}

static bool is_small_write(const struct nbd_work *w)
{
	return is_write(w) && w->req.len <= BATCH_WRITE_MAX;
}

/* Take the queue's head, and with a small write the small writes of the
 * same client right behind it: *n items linked by next. s->qlock held. */
static struct nbd_work *take_work_locked(struct nbd_server *s, unsigned *n)
{
	struct nbd_work *w = s->qhead, *last = w;

	*n = 1;
	while (is_small_write(w) && last->next && *n < IPM_WRITE_BATCH_MAX &&
	       is_small_write(last->next) && last->next->c == w->c) {
		last = last->next;
		(*n)++;
	}
	s->qhead = last->next;
	if (!s->qhead)
		s->qtail = NULL;
	last->next = NULL;
	return w;
}

static void *worker_main(void *arg)
{
	struct nbd_server *s = arg;
	struct nbd_work *w;
	unsigned n;

	for (;;) {
		pthread_mutex_lock(&s->qlock);
		while (!s->qhead && !s->q_stop) {
			s->n_idle++;
			pthread_cond_wait(&s->qcond, &s->qlock);
			s->n_idle--;
		}
		w = s->qhead ? take_work_locked(s, &n) : NULL;
		if (w && s->qhead && s->n_idle > 0)
			pthread_cond_signal(&s->qcond);  /* chain wake-up */
		pthread_mutex_unlock(&s->qlock);
		if (!w)
			return NULL;
		if (is_write(w))
			work_run_writes(w, n);
		else
			work_run(w);
	}
}

/* ---- transmission phase: the reader ------------------------------------ */

/* A request the checks refused: consume its payload, send the error.
 * < 0 when the connection is lost. */
static int refuse(struct nbd_client *c, const struct nbd_request *r, uint32_t err,
		  const char *why)
{
	log_bad_request(c, r, why, err);
	if (r->type == NBD_CMD_WRITE) {
		int rc = rd_skip(c, r->len);

		if (rc < 0) {
			log_read_error(c, rc, "request payload");
			return rc;
		}
	}
	return simple_reply(c, err, r->cookie);
}

/* Read one request and queue it. 0 to go on, 1 on a clean end, < 0 when the
 * connection must close. */
static int serve_one(struct nbd_client *c)
{
	uint8_t hdr[NBD_REQUEST_LEN];
	struct nbd_request r;
	struct nbd_work *w;
	const char *why;
	uint32_t err;
	size_t need;
	int rc;

	rc = rd_exact(c, hdr, sizeof(hdr));
	if (rc == -ENODATA) {
		client_log(c, LOG_INFO, "disconnected without NBD_CMD_DISC");
		return 1;
	}
	if (rc < 0) {
		log_read_error(c, rc, "request");
		return rc;
	}
	if (nbd_request_decode(hdr, sizeof(hdr), &r) < 0) {
		client_log(c, LOG_WARNING, "bad request magic 0x%02x%02x%02x%02x, closing",
			   hdr[0], hdr[1], hdr[2], hdr[3]);
		return -EBADMSG;
	}
	switch (nbd_request_check(&r, c->size, &err, &why)) {
	case NBD_V_DISC:
		client_log(c, LOG_INFO, "disconnected");
		return 1;
	case NBD_V_FATAL:
		client_log(c, LOG_WARNING, "%s (%u bytes at offset %llu), closing", why, r.len,
			   (unsigned long long)r.offset);
		return -EMSGSIZE;
	case NBD_V_ERROR:
		return refuse(c, &r, err, why);
	case NBD_V_OK:
		break;
	}
	need = r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE ? r.len : 0;
	w = work_get(c, need, &rc);
	if (!w)
		return rc == -ENOMEM ? refuse(c, &r, NBD_ENOMEM, "out of memory") : rc;
	w->req = r;
	if (r.type == NBD_CMD_WRITE) {
		rc = rd_exact(c, w->buf, r.len);
		if (rc < 0) {
			log_read_error(c, rc, "write payload");
			w->next = NULL;
			work_release(c, w);
			return rc;
		}
	}
	batch_add(c, w);
	return 0;
}

static void *reader_main(void *arg)
{
	struct nbd_client *c = arg;
	struct nbd_server *s = c->s;
	uint8_t *data = malloc(NBD_MAX_OPT_LEN);
	int rc = -ENOMEM;

	set_timeout(c->fd, SO_RCVTIMEO, HANDSHAKE_TIMEOUT);
	if (data)
		rc = handshake(c, data);
	free(data);
	if (rc == 0) {
		set_timeout(c->fd, SO_RCVTIMEO, 0);  /* hosts may idle for ever */
		while ((rc = serve_one(c)) == 0)
			;
		batch_flush(c);
	}
	/* a clean end lets queued replies go out; anything else drops them */
	if (rc < 0)
		client_kill(c);
	pthread_mutex_lock(&s->clock);
	c->done = true;
	pthread_mutex_unlock(&s->clock);
	uint64_t one = 1;

	if (write(s->wake_fd, &one, sizeof(one)) < 0)
		qb_log(LOG_DEBUG, "nbd: cannot wake the acceptor");
	return NULL;
}

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

static void peer_name(int fd, bool is_unix, char *out, size_t sz)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN], port[8];

	if (is_unix || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(out, sz, "%s", is_unix ? "unix" : "unknown");
		return;
	}
	snprintf(out, sz, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

static struct nbd_client *client_new(struct nbd_server *s, int fd, bool is_unix)
{
	struct nbd_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->s = s;
	c->fd = fd;
	atomic_init(&c->refs, 1);
	atomic_init(&c->dead, false);
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->rlock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->room, NULL);
	peer_name(fd, is_unix, c->peer, sizeof(c->peer));
	return c;
}

/* Serve the connected socket fd (the client owns it from here): -ENOMEM,
 * -EBUSY (too many clients) or -errno of the thread, fd closed then. */
static int client_add(struct nbd_server *s, int fd, bool is_unix)
{
	struct nbd_client *c;
	pthread_attr_t attr;
	int rc;

	set_timeout(fd, SO_SNDTIMEO, SEND_TIMEOUT);
	c = client_new(s, fd, is_unix);
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_lock(&s->clock);
	if (s->n_clients >= MAX_CLIENTS) {
		pthread_mutex_unlock(&s->clock);
		client_log(c, LOG_WARNING, "refused: already %d clients", MAX_CLIENTS);
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
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *res, *ai;
	char port[8];
	int rc, fd = -1, one = 1, saved = 0;

	snprintf(port, sizeof(port), "%u", s->listen.port);
	rc = getaddrinfo(s->listen.address, port, &hints, &res);
	if (rc != 0)
		return ipm_fail(err, -EINVAL, "NBD address %s: %s", s->listen.address,
			    gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return ipm_fail(err, -saved, "cannot listen for NBD on %s:%u: %s", s->listen.address,
			    s->listen.port, strerror(saved));
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
	s->n_threads = threads ? threads : DEFAULT_THREADS;
	/* leave workers for other clients when one stops reading replies */
	s->max_inflight = s->n_threads / 2 > 32 ? s->n_threads / 2 : 32;
	s->tcp_fd = s->unix_fd = s->wake_fd = -1;
	pthread_mutex_init(&s->qlock, NULL);
	pthread_cond_init(&s->qcond, NULL);
	pthread_mutex_init(&s->clock, NULL);
	*out = s;
	return 0;
}

int nbd_server_start(struct nbd_server *s, ipm_error *err)
{
	int rc;

	s->started = true;  /* from here on nbd_server_stop undoes a partial start */
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		rc = ipm_fail(err, -errno, "eventfd: %s", strerror(errno));
		goto out;
	}
	if (s->listen.address[0] && (rc = listen_tcp(s, err)) < 0)
		goto out;
	if (s->listen.unix_path[0] && (rc = listen_unix(s, err)) < 0)
		goto out;
	s->workers = calloc(s->n_threads, sizeof(*s->workers));
	if (!s->workers) {
		rc = ipm_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (; s->n_workers < s->n_threads; s->n_workers++) {
		rc = -pthread_create(&s->workers[s->n_workers], NULL, worker_main, s);
		if (rc < 0) {
			ipm_fail(err, rc, "cannot start NBD workers: %s", strerror(-rc));
			goto out;
		}
	}
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
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	s->wake_fd = -1;
	s->started = false;
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

void nbd_server_destroy(struct nbd_server *s)
{
	if (!s)
		return;
	nbd_server_stop(s);
	pthread_mutex_destroy(&s->qlock);
	pthread_cond_destroy(&s->qcond);
	pthread_mutex_destroy(&s->clock);
	pthread_rwlock_destroy(&s->elock);
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
