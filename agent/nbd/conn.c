/* conn.c - one NBD client: its lifetime, socket I/O, the handshake and the
 * transmission-phase reader (see nbd_int.h). */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "fullio.h"
#include "nbd_int.h"

#define MAX_OPTIONS        1024        /* per handshake; more is a denial of service */
#define BAD_LOG_MAX        16          /* logged bad requests per client */

/* Copy an untrusted name for a log line or error message. */
static void printable(char *dst, size_t dsz, const char *src, size_t len)
{
	size_t i;

	for (i = 0; i < len && i + 1 < dsz; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[i] = '\0';
}

/* ---- clients: lifetime ------------------------------------------------- */

/* c->peer for log lines, c->host for max-clients-per-address (all Unix
 * clients count as one address). */
static void peer_name(struct nbd_client *c, bool is_unix)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char port[8];

	if (is_unix || getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, c->host, sizeof(c->host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(c->host, sizeof(c->host), "%s", is_unix ? "unix" : "unknown");
		snprintf(c->peer, sizeof(c->peer), "%s", c->host);
		return;
	}
	snprintf(c->peer, sizeof(c->peer), ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
		 c->host, port);
}

struct nbd_client *client_new(struct nbd_server *s, int fd, bool is_unix)
{
	struct nbd_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->s = s;
	c->fd = fd;
	c->is_unix = is_unix;
	atomic_init(&c->refs, 1);
	atomic_init(&c->dead, false);
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->rlock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->room, NULL);
	c->accepted_ms = ipm_now_ms();
	peer_name(c, is_unix);
	return c;
}

/* ---- clients: I/O ------------------------------------------------------ */

static void set_timeout_ms(int fd, int opt, int64_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

/* In the handshake the socket's timeouts are what is left of its deadline,
 * so a byte now and then does not keep a client there for ever. -EAGAIN
 * once the deadline has passed. */
static int hs_arm(struct nbd_client *c)
{
	int64_t left;

	if (!c->deadline_ms)
		return 0;
	left = c->deadline_ms - ipm_now_ms();
	if (left <= 0)
		return -EAGAIN;
	set_timeout_ms(c->fd, SO_RCVTIMEO, left);
	set_timeout_ms(c->fd, SO_SNDTIMEO, left);
	return 0;
}

/* A handshake message, blocking until the handshake deadline. */
static int client_send(struct nbd_client *c, struct iovec *iov, int iovcnt)
{
	int rc = -EPIPE;

	pthread_mutex_lock(&c->send_lock);
	if (!atomic_load(&c->dead)) {
		rc = hs_arm(c);
		if (rc == 0)
			rc = c->tls ? ipm_tls_sendv(c->tls, iov, iovcnt)
				    : sendmsg_full(c->fd, iov, iovcnt);
		if (rc == -EAGAIN)
			client_log_limited(c, RL_HANDSHAKE,
					   "handshake timed out after %lld s (not reading replies), closing",
					   (long long)c->s->handshake_ms / 1000);
		else if (rc < 0)
			client_log(c, LOG_INFO, "send failed: %s", strerror(-rc));
		if (rc < 0)
			client_kill(c);
	}
	pthread_mutex_unlock(&c->send_lock);
	return rc;
}

/* Transmission: has the client requests in flight (so it is not idle)? */
static bool client_busy(struct nbd_client *c)
{
	bool busy;

	pthread_mutex_lock(&c->lock);
	busy = c->inflight > 0;
	pthread_mutex_unlock(&c->lock);
	return busy;
}

/* recv(2) on the client's socket, or on its TLS session once started:
 * -1 with errno on failure (EBADMSG: a TLS record failed authentication). */
static ssize_t conn_recv(struct nbd_client *c, void *buf, size_t len, int flags)
{
	ssize_t n;

	if (!c->tls)
		return recv(c->fd, buf, len, flags);
	n = ipm_tls_recv(c->tls, buf, len, flags & MSG_DONTWAIT);
	if (n >= 0)
		return n;
	errno = (int)-n;
	return -1;
}

/* recv into the read buffer: > 0 bytes, 0 at EOF, or -errno: -EAGAIN at
 * the handshake deadline, -ETIMEDOUT idle past idle-timeout */
static ssize_t rd_fill(struct nbd_client *c)
{
	for (;;) {
		ssize_t n;
		int rc = c->bhead ? 0 : hs_arm(c);

		if (rc < 0)
			return rc;
		n = conn_recv(c, c->rbuf, RBUF_SIZE, c->bhead ? MSG_DONTWAIT : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && c->bhead) {
			batch_flush(c);  /* about to block: let the workers start */
			continue;
		}
		if (n < 0 && errno == EAGAIN && !c->deadline_ms) {
			if (client_busy(c))
				continue;  /* waiting for replies is not idling */
			return -ETIMEDOUT;
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
		if (n >= RBUF_SIZE / 2 && !c->deadline_ms) {
			batch_flush(c);
			r = conn_recv(c, d, n, MSG_WAITALL);
			if (r > 0) {
				d += r;
				n -= (size_t)r;
				started = true;
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			/* stalled mid-payload past idle-timeout */
			r = r < 0 ? (errno == EAGAIN ? -ETIMEDOUT : -errno) : 0;
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
		client_log_limited(c, RL_HANDSHAKE, "%s timed out after %lld s (handshake-timeout), closing",
				   phase, (long long)c->s->handshake_ms / 1000);
	else if (rc == -ETIMEDOUT)
		client_log_limited(c, RL_IDLE, "idle for %u s (idle-timeout), disconnecting",
				   c->s->idle_s);
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
	/* a LUN's own role change or down needs no engine swap: check again */
	if (rc == 0 && l && ipm_lun_check_open(l, &err) < 0)
		l = NULL;
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

/* NBD_OPT_STARTTLS: acknowledge in the clear, then the TLS handshake
 * within what is left of the handshake deadline; every byte after it goes
 * through c->tls. 0 to go on haggling (refused or started), < 0 to close. */
static int opt_starttls(struct nbd_client *c, uint32_t len)
{
	ipm_error err = { "" };
	struct ipm_tls *t = NULL;
	char how[96];
	int rc;

	if (len != 0)
		return opt_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
				 "NBD_OPT_STARTTLS takes no data");
	if (!c->s->tls)
		return opt_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY,
				 "TLS is not enabled on this server");
	if (c->tls)
		return opt_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, "TLS is already on");
	if (c->rend != c->rstart) {
		/* they would be plaintext read as TLS, or lost */
		client_log(c, LOG_WARNING, "handshake: data sent after NBD_OPT_STARTTLS before its "
			   "reply, closing");
		return -EPROTO;
	}
	rc = opt_reply(c, NBD_OPT_STARTTLS, NBD_REP_ACK, NULL, 0);
	if (rc < 0)
		return rc;
	rc = ipm_tls_new(c->s->tls, c->fd, &t, &err);
	if (rc == 0)
		rc = hs_arm(c);
	if (rc == -EAGAIN)
		rc = ipm_fail(&err, -ETIMEDOUT, "handshake-timeout reached");
	if (rc == 0)
		rc = ipm_tls_handshake(t, (unsigned)(c->deadline_ms - ipm_now_ms()), &err);
	if (rc < 0) {
		client_log_limited(c, RL_HANDSHAKE, "TLS handshake failed: %s, closing", err.msg);
		ipm_tls_free(t);
		return rc;
	}
	pthread_mutex_lock(&c->send_lock);
	c->tls = t;
	pthread_mutex_unlock(&c->send_lock);
	client_log(c, LOG_INFO, "TLS started (%s)", ipm_tls_describe(t, how, sizeof(how)));
	return 0;
}

/* tls="require": before STARTTLS a TCP client may only start TLS or abort
 * (the protocol's FORCEDTLS mode). Unix socket clients are local, admitted
 * by the socket's permissions, and may go on in the clear. */
static bool tls_required(const struct nbd_client *c, uint32_t opt)
{
	return c->s->tls_mode == IPM_NBD_TLS_REQUIRE && !c->tls && !c->is_unix &&
	       opt != NBD_OPT_STARTTLS && opt != NBD_OPT_ABORT;
}

static int refuse_plaintext(struct nbd_client *c, uint32_t opt)
{
	if (opt == NBD_OPT_EXPORT_NAME) {
		/* it cannot be answered with an error */
		client_log_limited(c, RL_REFUSED, "NBD_OPT_EXPORT_NAME without TLS (tls=require), "
				   "closing");
		return -EACCES;
	}
	client_log_limited(c, RL_REFUSED, "NBD_OPT_%s refused: TLS is required (tls=require)",
			   nbd_opt_name(opt));
	return opt_error(c, opt, NBD_REP_ERR_TLS_REQD,
			 "TLS is required: send NBD_OPT_STARTTLS first");
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
		if (tls_required(c, o.opt)) {
			rc = refuse_plaintext(c, o.opt);
			if (rc < 0)
				return rc;
			continue;
		}
		switch (o.opt) {
		case NBD_OPT_STARTTLS:
			rc = opt_starttls(c, o.len);
			break;
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

/* Requests up to this size may be executed by the reader itself. */
#define RUN_HERE_MAX (64u << 10)

/* Execute r on the reader thread? Only when it is the client's one request
 * (a host at queue depth 1): nothing else in flight or queued, and no next
 * request already received, buffered or waiting in the socket; the reader
 * would not read the next one before this one is answered. A worker costs
 * a thread wake-up (two context switches on the host path) and saves
 * nothing then. */
static bool run_here(struct nbd_client *c, const struct nbd_request *r)
{
	uint8_t b;
	bool alone;

	if (r->len > RUN_HERE_MAX || (r->type != NBD_CMD_WRITE && r->type != NBD_CMD_READ) ||
	    c->bhead || c->rend != c->rstart || (c->tls && ipm_tls_pending(c->tls)))
		return false;
	pthread_mutex_lock(&c->lock);
	alone = c->inflight == 1;
	pthread_mutex_unlock(&c->lock);
	return alone && recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

/* Read one request and queue it (or run it here). 0 to go on, 1 on a clean
 * end, < 0 when the connection must close. */
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
	if (run_here(c, &r))
		work_run_here(w);
	else
		batch_add(c, w);
	return 0;
}

void *reader_main(void *arg)
{
	struct nbd_client *c = arg;
	struct nbd_server *s = c->s;
	uint8_t *data = malloc(NBD_MAX_OPT_LEN);
	int rc = -ENOMEM;

	c->deadline_ms = c->accepted_ms + s->handshake_ms;
	if (data)
		rc = handshake(c, data);
	free(data);
	if (rc == 0) {
		c->deadline_ms = 0;
		/* replies go out without blocking; reads time out when idle */
		set_timeout_ms(c->fd, SO_RCVTIMEO, (int64_t)s->idle_s * 1000);
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
