/* work.c - requests in flight: items and the shared pool of bytes, the work
 * queue and the worker pool, replies, and the sender thread that takes over
 * the replies of clients whose socket is full (see nbd_int.h). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "nbd_int.h"

#define CLIENT_MAX_BYTES   (64U << 20) /* payload bytes in flight per client */
#define CLIENT_FREE_BYTES  (2U << 20)  /* of which this much needs no pool share */
#define POOL_MAX_BYTES     (256U << 20) /* the rest, shared by all clients */
#define CACHE_MAX_BYTES    (8U << 20)  /* recycled item buffers per client */
#define QUEUE_BATCH        16          /* requests handed to workers at once */

/* ---- work items and the queue ------------------------------------------ */

/* Reader: wait for n bytes of room in the shared pool (any amount when it
 * is empty, so one large request always runs). 0, or -EPIPE when the
 * client died meanwhile. */
static int pool_take(struct nbd_client *c, size_t n)
{
	struct nbd_server *s = c->s;
	int rc = 0;

	batch_flush(c);  /* our own queued requests may be what holds the pool */
	pthread_mutex_lock(&s->plock);
	while (!atomic_load(&c->dead) && s->pool_used > 0 && s->pool_used + n > POOL_MAX_BYTES)
		pthread_cond_wait(&s->pool_room, &s->plock);
	if (atomic_load(&c->dead))
		rc = -EPIPE;
	else
		s->pool_used += n;
	pthread_mutex_unlock(&s->plock);
	return rc;
}

static void pool_give(struct nbd_server *s, size_t n)
{
	if (!n)
		return;
	pthread_mutex_lock(&s->plock);
	s->pool_used -= n;
	pthread_cond_broadcast(&s->pool_room);
	pthread_mutex_unlock(&s->plock);
}

/* Wait for room in the client's in-flight budget (and, beyond its free
 * share, in the pool), then take an item with a buffer of at least `need`
 * bytes (a recycled one when possible). NULL when the client died or
 * memory ran out (*rc says which). */
struct nbd_work *work_get(struct nbd_client *c, size_t need, int *rc)
{
	struct nbd_server *s = c->s;
	struct nbd_work *w;
	size_t pooled;

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
	pooled = c->inflight_bytes + need > CLIENT_FREE_BYTES ? need : 0;
	c->inflight_bytes += need;
	pthread_mutex_unlock(&c->lock);
	if (pooled && pool_take(c, pooled) < 0) {
		pthread_mutex_lock(&c->lock);
		c->inflight--;
		c->inflight_bytes -= need;
		pthread_cond_signal(&c->room);
		pthread_mutex_unlock(&c->lock);
		*rc = -EPIPE;
		return NULL;
	}
	pthread_mutex_lock(&c->lock);
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
		buf_free(w->buf, w->cap);
		w->cap = 0;
		w->buf = buf_alloc(cap);
		if (w->buf)
			w->cap = cap;
	}
	if (!w || w->cap < need) {
		pthread_mutex_lock(&c->lock);
		c->inflight--;
		c->inflight_bytes -= need;
		pthread_mutex_unlock(&c->lock);
		pool_give(s, pooled);
		if (w)
			item_free(w);
		*rc = -ENOMEM;
		return NULL;
	}
	w->need = need;
	w->pooled = pooled;
	w->data_len = 0;
	w->c = c;
	atomic_fetch_add(&c->refs, 1);
	return w;
}

/* Finish a list of items of one client: give back their in-flight budget,
 * keep their buffers for reuse (up to CACHE_MAX_BYTES), drop their client
 * references. The caller must hold a reference of its own. */
void work_release(struct nbd_client *c, struct nbd_work *list)
{
	struct nbd_work *w, *drop = NULL;
	size_t pooled = 0;
	int n = 0;

	pthread_mutex_lock(&c->lock);
	while ((w = list)) {
		list = w->next;
		c->inflight--;
		c->inflight_bytes -= w->need;
		pooled += w->pooled;
		w->pooled = 0;
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
	pool_give(c->s, pooled);
	while ((w = drop)) {
		drop = w->next;
		item_free(w);
	}
	atomic_fetch_sub(&c->refs, n);
}

/* Wake an idle worker unless one is on its way already (n_waking): it
 * takes what is queued by the time it runs, so a batch flushed right after
 * another joins it instead of costing a second worker's wake-up. s->qlock
 * held. */
static void wake_one_locked(struct nbd_server *s)
{
	if (s->n_idle > s->n_waking) {
		s->n_waking++;
		pthread_cond_signal(&s->qcond);
	}
}

/* Reader: hold a request back until the batch is full or the reader would
 * block, then hand the batch over with one lock round trip. */
void batch_flush(struct nbd_client *c)
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
	wake_one_locked(s);
	pthread_mutex_unlock(&s->qlock);
	c->bhead = c->btail = NULL;
	c->bcount = 0;
}

void batch_add(struct nbd_client *c, struct nbd_work *w)
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

static void reply_queue(struct nbd_client *c, struct nbd_work *first, struct nbd_work *last);

/* An error reply sent by the reader itself (a refused request): through
 * the reply queue like every reply, so it does not cut into another. */
int simple_reply(struct nbd_client *c, uint32_t err, uint64_t cookie)
{
	struct nbd_work *w;
	int rc;

	w = work_get(c, 0, &rc);
	if (!w)
		return rc;
	w->req.cookie = cookie;
	nbd_build_simple_reply(w->hdr, err, cookie);
	w->data_len = 0;
	reply_queue(c, w, w);
	return atomic_load(&c->dead) ? -EPIPE : 0;
}

#define REPLY_IOV 64

static size_t reply_len(const struct nbd_work *w)
{
	return NBD_SIMPLE_REPLY_LEN + w->data_len;
}

/* The unsent bytes of c->out, as many replies as fit. */
static int out_iov(const struct nbd_client *c, struct iovec *iov)
{
	size_t off = c->out_off;
	int n = 0;

	for (struct nbd_work *w = c->out; w && n + 2 <= REPLY_IOV; w = w->next, off = 0) {
		if (off < NBD_SIMPLE_REPLY_LEN) {
			iov[n++] = (struct iovec){ w->hdr + off, NBD_SIMPLE_REPLY_LEN - off };
			off = 0;
		} else {
			off -= NBD_SIMPLE_REPLY_LEN;
		}
		if (w->data_len > off)
			iov[n++] = (struct iovec){ (char *)w->buf + off, w->data_len - off };
	}
	return n;
}

/* k more bytes of c->out went out: release the replies now complete. */
static void out_advance(struct nbd_client *c, size_t k)
{
	struct nbd_work *done = NULL, **tail = &done;

	while (k > 0) {
		struct nbd_work *w = c->out;
		size_t left = reply_len(w) - c->out_off;

		if (k < left) {
			c->out_off += k;
			break;
		}
		k -= left;
		c->out = w->next;
		c->out_off = 0;
		*tail = w;
		tail = &w->next;
	}
	*tail = NULL;
	if (done)
		work_release(c, done);
}

#define TLS_PUSH_MAX (1U << 20)  /* bytes copied into the TLS cork per round */

/* The same through TLS: the session takes (copies) bytes of c->out, which
 * count as sent; those it could not write yet go out on the next call. */
static int out_push_tls(struct nbd_client *c)
{
	while (c->out || ipm_tls_send_pending(c->tls)) {
		struct iovec iov[REPLY_IOV];
		int n = c->out ? out_iov(c, iov) : 0;
		ssize_t k = ipm_tls_sendv_nb(c->tls, iov, n, TLS_PUSH_MAX);

		if (k < 0)
			return (int)k;
		c->out_progress_ms = ipm_now_ms();
		if (k > 0)
			out_advance(c, (size_t)k);
		else if (!n && ipm_tls_send_pending(c->tls))
			return -EAGAIN;
	}
	return 0;
}

/* Send c->out without blocking: 0 when all went out, -EAGAIN when the
 * socket is full, another -errno when the connection is lost. */
static int out_push(struct nbd_client *c)
{
	if (c->tls)
		return out_push_tls(c);
	while (c->out) {
		struct iovec iov[REPLY_IOV];
		struct msghdr m = { .msg_iov = iov };
		ssize_t k;

		m.msg_iovlen = (size_t)out_iov(c, iov);
		k = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		c->out_progress_ms = ipm_now_ms();
		out_advance(c, (size_t)k);
	}
	return 0;
}

/* The owner of c's replies: send all of them, the ones queued meanwhile
 * too, then give ownership up (0). -EAGAIN when the socket is full: the
 * caller still owns them. A dead client's replies are dropped. */
static int replies_flush(struct nbd_client *c)
{
	for (;;) {
		struct nbd_work *list;
		int rc;

		if (!c->out) {
			bool flush = c->tls && !atomic_load(&c->dead) &&
				     ipm_tls_send_pending(c->tls);

			pthread_mutex_lock(&c->rlock);
			list = c->rhead;
			c->rhead = c->rtail = NULL;
			if (!list && !flush)
				c->sending = false;  /* c->out is the next owner's now */
			pthread_mutex_unlock(&c->rlock);
			if (!list && !flush)
				return 0;
			c->out = list;
			c->out_off = 0;
		}
		rc = atomic_load(&c->dead) ? -EPIPE : out_push(c);
		if (rc == -EAGAIN)
			return rc;
		if (rc < 0) {
			if (!atomic_load(&c->dead))
				client_log(c, LOG_INFO, "send failed: %s", strerror(-rc));
			client_kill(c);
			work_release(c, c->out);
			c->out = NULL;
			c->out_off = 0;
		}
	}
}

/* The socket is full: the sender thread owns c's replies (and the
 * reference that goes with them) from now on. */
static void stall_add(struct nbd_client *c)
{
	struct nbd_server *s = c->s;
	uint64_t one = 1;

	pthread_mutex_lock(&s->slock);
	c->snext = s->stalled;
	s->stalled = c;
	pthread_mutex_unlock(&s->slock);
	if (write(s->swake_fd, &one, sizeof(one)) < 0)
		qb_log(LOG_DEBUG, "nbd: cannot wake the sender");
}

/* Queue finished items' replies (a list from first to last). If nobody
 * owns the client's replies, become the owner and send them without
 * blocking; a full socket hands them to the sender thread. */
static void reply_queue(struct nbd_client *c, struct nbd_work *first, struct nbd_work *last)
{
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
	pthread_mutex_unlock(&c->rlock);
	atomic_fetch_add(&c->refs, 1);  /* the items may hold the last references */
	c->out_progress_ms = ipm_now_ms();
	if (replies_flush(c) == -EAGAIN)
		stall_add(c);
	else
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

void work_run_here(struct nbd_work *w)
{
	struct nbd_client *c = w->c;

	w->next = NULL;
	atomic_store(&c->run_since_ms, ipm_now_ms());
	if (w->req.type == NBD_CMD_WRITE)
		work_run_writes(w, 1);
	else
		work_run(w);
	atomic_store(&c->run_since_ms, 0);
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

void *worker_main(void *arg)
{
	struct nbd_server *s = arg;
	unsigned slot = atomic_fetch_add(&s->next_slot, 1);
	struct nbd_work *w;
	unsigned n;

	for (;;) {
		pthread_mutex_lock(&s->qlock);
		while (!s->qhead && !s->q_stop) {
			s->n_idle++;
			pthread_cond_wait(&s->qcond, &s->qlock);
			s->n_idle--;
			/* woken (or spuriously: then another worker may be
			 * woken in vain, never too few) */
			if (s->n_waking)
				s->n_waking--;
		}
		w = s->qhead ? take_work_locked(s, &n) : NULL;
		if (w && s->qhead)
			wake_one_locked(s);  /* chain wake-up */
		pthread_mutex_unlock(&s->qlock);
		if (!w)
			return NULL;
		atomic_store(&s->busy_since_ms[slot], ipm_now_ms());
		if (is_write(w))
			work_run_writes(w, n);
		else
			work_run(w);
		atomic_store(&s->busy_since_ms[slot], 0);
	}
}

/* ---- sender: replies to clients whose socket was full ------------------- */

/* One round for a client the sender owns: true when its replies are done
 * (all sent, or dropped with the connection) and it leaves the list. */
static bool sender_serve(struct nbd_client *c, bool ready, int64_t now, bool stop)
{
	struct nbd_server *s = c->s;

	if (!atomic_load(&c->dead) && (stop || now - c->out_progress_ms >= s->send_ms)) {
		if (!stop)
			client_log_limited(c, RL_STALLED,
					   "not reading replies for %lld s (send-timeout), closing",
					   (long long)s->send_ms / 1000);
		client_kill(c);
		ready = true;
	}
	if (!ready && !atomic_load(&c->dead))
		return false;
	if (replies_flush(c) == -EAGAIN)
		return false;
	client_unref(c);
	return true;
}

/* Take the clients handed over since the last round; *stop when asked to. */
static struct nbd_client *sender_take(struct nbd_server *s, struct nbd_client *mine,
				      bool *stop)
{
	struct nbd_client *c;

	pthread_mutex_lock(&s->slock);
	while ((c = s->stalled)) {
		s->stalled = c->snext;
		c->snext = mine;
		mine = c;
	}
	*stop = s->s_stop;
	pthread_mutex_unlock(&s->slock);
	return mine;
}

/* Polls the sockets of the clients it owns for room, sends, and
 * disconnects those that made no progress for send-timeout. */
void *sender_main(void *arg)
{
	struct nbd_server *s = arg;
	struct nbd_client *mine = NULL, *c, **pp;
	struct pollfd *pfd = NULL;
	size_t cap = 0;
	bool stop;

	for (;;) {
		int64_t now = ipm_now_ms(), wait = 1000;
		size_t n = 1, i;
		uint64_t v;

		mine = sender_take(s, mine, &stop);
		if (stop && !mine)
			break;
		for (c = mine; c; c = c->snext)
			n++;
		if (n > cap) {
			struct pollfd *p = realloc(pfd, n * sizeof(*pfd));

			if (!p) {
				usleep(10000);  /* the clients stay owned; try again */
				continue;
			}
			pfd = p;
			cap = n;
		}
		pfd[0] = (struct pollfd){ .fd = s->swake_fd, .events = POLLIN };
		for (c = mine, i = 1; c; c = c->snext, i++) {
			int64_t left = c->out_progress_ms + s->send_ms - now;

			pfd[i] = (struct pollfd){ .fd = c->fd, .events = POLLOUT };
			if (left < wait)
				wait = left > 0 ? left : 0;
		}
		if (poll(pfd, n, stop ? 0 : (int)wait) < 0 && errno != EINTR)
			qb_log(LOG_ERR, "nbd sender: poll: %s", strerror(errno));
		if (pfd[0].revents & POLLIN && read(s->swake_fd, &v, sizeof(v)) < 0)
			qb_log(LOG_DEBUG, "nbd sender: wake read: %s", strerror(errno));
		now = ipm_now_ms();
		for (pp = &mine, i = 1; (c = *pp); i++) {
			if (sender_serve(c, pfd[i].revents != 0, now, stop))
				*pp = c->snext;
			else
				pp = &c->snext;
		}
	}
	free(pfd);
	return NULL;
}
