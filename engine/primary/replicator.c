/* replicator.c - the primary's worker threads and the mirror requests they send. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "lockdebug.h"
#include "fullio.h"
#include "auth.h"
#include "crc32c.h"
#include "handshake.h"
#include "lun.h"
#include "replicator_int.h"
#include "storage_hb.h"

#define CONNECT_TIMEOUT_MS 3000
/* reconnect backoff of a worker (worker_main) */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define BACKOFF_RESET_MS 10000
#define STOP_DRAIN_MS 5000

/* ---- in-flight table ---------------------------------------------------- */

static void hash_insert(struct replicator *r, struct mreq *m)
{
	struct mreq **b = &r->hash[m->f.seq & r->hash_mask];

	m->hnext = *b;
	*b = m;
}

static struct mreq *hash_remove(struct replicator *r, uint64_t seq)
{
	struct mreq **p;

	for (p = &r->hash[seq & r->hash_mask]; *p; p = &(*p)->hnext) {
		if ((*p)->f.seq == seq) {
			struct mreq *m = *p;

			*p = m->hnext;
			return m;
		}
	}
	return NULL;
}

static uint64_t lowest_unacked(struct replicator *r)
{
	uint64_t low = r->next_seq + 1;
	unsigned i;
	struct mreq *m;

	for (i = 0; i <= r->hash_mask; i++)
		for (m = r->hash[i]; m; m = m->hnext)
			if (m->f.seq < low)
				low = m->f.seq;
	return low;
}

static void queue_append(struct replicator *r, struct mreq *m)
{
	m->qnext = NULL;
	if (r->qtail)
		r->qtail->qnext = m;
	else
		r->qhead = m;
	r->qtail = m;
}

/* Re-sent requests go back in sequence order, ahead of newer ones. */
static void queue_insert_sorted(struct replicator *r, struct mreq *m)
{
	struct mreq **p = &r->qhead;

	while (*p && (*p)->f.seq < m->f.seq)
		p = &(*p)->qnext;
	m->qnext = *p;
	*p = m;
	if (!m->qnext)
		r->qtail = m;
}

static bool overlaps(const struct rep_lun *rl, const struct wire_frame *f)
{
	const struct mreq *a;

	if (f->type == WIRE_FLUSH)
		return false;
	for (a = rl->active; a; a = a->anext)
		if (a->f.type != WIRE_FLUSH && f->offset < a->f.offset + a->f.length &&
		    a->f.offset < f->offset + f->length)
			return true;
	return false;
}

static void active_add(struct rep_lun *rl, struct mreq *m)
{
	m->aprev = NULL;
	m->anext = rl->active;
	if (rl->active)
		rl->active->aprev = m;
	rl->active = m;
	m->active = true;
}

static void active_remove(struct rep_lun *rl, struct mreq *m)
{
	if (!m->active)
		return;
	if (m->aprev)
		m->aprev->anext = m->anext;
	else
		rl->active = m->anext;
	if (m->anext)
		m->anext->aprev = m->aprev;
	m->active = false;
}

void mreq_put_locked(struct mreq *m)
{
	if (--m->refs == 0) {
		free(m->owned);
		free(m);
	}
}

/* The mirror answered, the request went to the journal, or we gave up: wake
 * the host or drop our reference. */
void finish_locked(struct replicator *r, struct mreq *m, int status)
{
	IPM_ASSERT_HELD(&r->lock);
	m->done = true;
	m->status = status;
	if (m->replay) {
		m->rl->replay_outstanding--;
		pthread_cond_broadcast(&r->link_cond);
	}
	if (status)
		qb_log(LOG_ERR, "lun %s: mirror request %llu failed on the peer: %s",
		       ipm_lun_name(m->rl->lun), (unsigned long long)m->f.seq, strerror(status));
	if (m->sync)
		pthread_cond_signal(&m->cond);
	else
		mreq_put_locked(m);
}

void complete_locked(struct replicator *r, struct mreq *m, int status)
{
	IPM_ASSERT_HELD(&r->lock);
	r->inflight--;
	r->inflight_bytes -= m->f.len;
	if (status == 0 && m->f.type == WIRE_WRITE)
		m->rl->mirrored_bytes += m->f.len;
	finish_locked(r, m, status);
	if (!r->running || r->space_waiters > r->window_waiters ||
	    (r->window_waiters && r->inflight + r->window / 4 <= r->window))
		pthread_cond_broadcast(&r->space_cond);
}

bool window_full_locked(const struct replicator *r, uint32_t len)
{
	IPM_ASSERT_HELD(&r->lock);
	return r->inflight >= r->window ||
	       (r->inflight && r->inflight_bytes + len > WIRE_MAX_INFLIGHT_BYTES);
}

void space_wait_locked(struct replicator *r, bool window_only)
{
	IPM_ASSERT_HELD(&r->lock);
	r->window_waiters += window_only;
	pthread_cond_wait(&r->space_cond, &r->lock);
	r->window_waiters -= window_only;
}

static void queue_locked(struct replicator *r, struct mreq *m)
{
	IPM_ASSERT_HELD(&r->lock);
	m->conn = -1;
	wire_frame_encode(m->hdr, &m->f);
	hash_insert(r, m);
	queue_append(r, m);
	r->inflight++;
	r->inflight_bytes += m->f.len;
}

void enqueue_locked(struct replicator *r, struct mreq *m)
{
	IPM_ASSERT_HELD(&r->lock);
	queue_locked(r, m);
	/* broadcast: a worker whose socket a host thread holds ignores it */
	pthread_cond_broadcast(&r->queue_cond);
}

/* The state every LUN of this direction shows (primary side). */
void set_states_locked(struct replicator *r, enum ipm_lun_state st)
{
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < r->n_luns; i++) {
		r->luns[i].state = st;
		__atomic_store_n(&r->luns[i].lun->state, st, __ATOMIC_RELAXED);
	}
}

/* ---- host side ------------------------------------------------------------ */

static struct rep_lun *rep_lun_of(struct replicator *r, struct ipm_lun *l)
{
	return &r->luns[l->wire_index];
}

static void send_now_locked(struct replicator *r, size_t len);

/* Admit one request: live, it is queued and, with kick, sent at once with
 * whatever else is queued; otherwise journaled. Without may_wait it
 * returns -EAGAIN instead of waiting for window space or for an
 * overlapping request: a caller holding requests of its own must not wait
 * for others (they may wait for it). */
static int submit(struct replicator *r, struct mreq *m, bool kick, bool may_wait)
{
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	r->space_waiters++;
	while (r->running && (window_full_locked(r, m->f.len) || overlaps(m->rl, &m->f) ||
			      (r->link == LINK_RESYNC && r->resync_hold))) {
		if (!may_wait) {
			r->space_waiters--;
			pthread_mutex_unlock(&r->lock);
			return -EAGAIN;
		}
		/* what a batch queued without a kick must go out, or the
		 * space we wait for may never come */
		if (r->qhead)
			pthread_cond_broadcast(&r->queue_cond);
		space_wait_locked(r, r->inflight >= r->window);
	}
	r->space_waiters--;
	if (!r->running) {
		pthread_mutex_unlock(&r->lock);
		return -ESHUTDOWN;
	}
	if (m->f.type != WIRE_FLUSH)
		active_add(m->rl, m);
	if (m->f.type != WIRE_FLUSH && !__atomic_load_n(&m->rl->lun->wrote, __ATOMIC_ACQUIRE))
		lun_gen_first_write(m->rl->lun);
	if (r->link == LINK_LIVE && m->f.type != WIRE_FLUSH) {
		/* a crash from here on must not forget this extent. The mark may
		 * cost an fdatasync: not under r->lock, so requests to extents
		 * already marked and the answers of the mirror go on meanwhile;
		 * al_users keeps the monitor from clearing the log under us. */
		r->al_users++;
		pthread_mutex_unlock(&r->lock);
		al_note(m->rl, &m->f);
		pthread_mutex_lock(&r->lock);
		r->al_users--;
		if (!r->running) {
			active_remove(m->rl, m);
			pthread_mutex_unlock(&r->lock);
			return -ESHUTDOWN;
		}
	}
	if (r->link == LINK_LIVE) {
		r->last_live_ms = ipm_now_ms();
		m->f.seq = ++r->next_seq;
		m->f.dep = r->host_done_max;
		queue_locked(r, m);
		if (kick)
			send_now_locked(r, m->f.len);
	} else {
		/* peer unreachable or resync running: the journal keeps it. It
		 * takes no wire sequence number (seq 0): the mirror must see
		 * every number it is told to wait for, and this request reaches
		 * it later as a replay with a number of its own. */
		m->f.seq = 0;
		if (m->f.type != WIRE_FLUSH)
			lun_gen_diverge(m->rl->lun);
		rc = journal_request_locked(r, m);
		finish_locked(r, m, 0);
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* The host sees this request completed: later requests depend on it. */
static void host_release_locked(struct replicator *r, struct mreq *m)
{
	IPM_ASSERT_HELD(&r->lock);
	active_remove(m->rl, m);
	if (m->f.seq > r->host_done_max)
		r->host_done_max = m->f.seq;
	if (r->space_waiters > r->window_waiters) /* overlaps wait for this */
		pthread_cond_broadcast(&r->space_cond);
}

static int wait_sync(struct replicator *r, struct mreq *m, int local_rc)
{
	pthread_mutex_lock(&r->lock);
	while (!m->done)
		pthread_cond_wait(&m->cond, &r->lock);
	host_release_locked(r, m);
	pthread_mutex_unlock(&r->lock);
	pthread_cond_destroy(&m->cond);
	if (local_rc)
		return local_rc;
	return m->status ? -m->status : 0;
}

static void release_async(struct replicator *r, struct mreq *m)
{
	pthread_mutex_lock(&r->lock);
	host_release_locked(r, m);
	mreq_put_locked(m);
	pthread_mutex_unlock(&r->lock);
}

static void frame_init(struct wire_frame *f, struct rep_lun *rl, uint16_t type,
		       uint64_t len, uint64_t off, unsigned flags)
{
	*f = (struct wire_frame){
		.magic = WIRE_FRAME_MAGIC,
		.type = type,
		.flags = (flags & IPM_IO_FUA) ? WIRE_F_FUA : 0,
		.lun = rl->index,
		.offset = type == WIRE_FLUSH ? 0 : off,
		.length = type == WIRE_FLUSH ? 0 : len,
	};
}

static int local_op(struct ipm_lun *l, uint16_t type, uint64_t len, uint64_t off,
		    unsigned flags)
{
	int rc;

	switch (type) {
	case WIRE_TRIM: rc = lun_local_trim(l, len, off); break;
	case WIRE_ZERO: rc = lun_local_zero(l, len, off); break;
	case WIRE_FLUSH: return lun_local_flush(l);
	default: return -EINVAL;
	}
	if (rc == 0 && (flags & IPM_IO_FUA))
		rc = lun_local_flush(l);
	return rc;
}

/* A write's mirror request: in the caller's *stack (sync: the host waits
 * for it) or on the heap with a copy of the payload (async: it outlives
 * the host's request). NULL when out of memory. */
static struct mreq *write_mreq(struct rep_lun *rl, struct mreq *stack, const void *buf,
			       size_t len, uint64_t off, unsigned flags)
{
	bool sync = rl->lun->cfg->mode == IPM_MODE_SYNC;
	struct mreq *m = stack;

	if (!sync) {
		m = calloc(1, sizeof(*m));
		if (!m || !(m->owned = malloc(len ? len : 1))) {
			free(m);
			return NULL;
		}
		memcpy(m->owned, buf, len);
		m->refs = 2;
	} else {
		memset(m, 0, sizeof(*m));
		pthread_cond_init(&m->cond, NULL);
	}
	m->sync = sync;
	m->rl = rl;
	m->data = sync ? buf : m->owned;
	frame_init(&m->f, rl, WIRE_WRITE, len, off, flags);
	m->f.len = (uint32_t)len;
	m->f.csum = crc32c(0, m->data, len);
	return m;
}

/* A request submit() refused (stopping). */
static void mreq_discard(struct mreq *m)
{
	if (m->sync) {
		pthread_cond_destroy(&m->cond);
	} else {
		free(m->owned);
		free(m);
	}
}

/* Submit a write; NULL when it will not be mirrored (*rc says why). */
static struct mreq *write_submit(struct replicator *r, struct rep_lun *rl, struct mreq *stack,
				 const ipm_write *w, bool kick, bool may_wait, int *rc)
{
	struct mreq *m = write_mreq(rl, stack, w->buf, w->len, w->off, w->flags);

	if (!m) {
		*rc = -ENOMEM;
		return NULL;
	}
	*rc = submit(r, m, kick, may_wait);
	if (*rc == -ESHUTDOWN || *rc == -EAGAIN) {
		mreq_discard(m);
		return NULL;
	}
	if (*rc < 0) /* journaling failed: the write itself still happens */
		qb_log(LOG_ERR, "lun %s: cannot journal a write: %s", ipm_lun_name(rl->lun),
		       strerror(-*rc));
	*rc = 0;
	return m;
}

/* After the local write: the host's answer (sync: once the mirror answered). */
static int write_finish(struct replicator *r, struct mreq *m, const ipm_write *w, int local_rc)
{
	if (local_rc)
		qb_log(LOG_ERR, "lun %s: local write at %llu failed: %s; the mirror has it",
		       ipm_lun_name(m->rl->lun), (unsigned long long)w->off, strerror(-local_rc));
	if (m->sync)
		return wait_sync(r, m, local_rc);
	release_async(r, m);
	return local_rc;
}

int replicator_write(struct replicator *r, struct ipm_lun *l, const void *buf, size_t len,
		     uint64_t off, unsigned flags)
{
	ipm_write w = { .buf = buf, .len = len, .off = off, .flags = flags };
	struct mreq sm, *m;
	int rc;

	m = write_submit(r, rep_lun_of(r, l), &sm, &w, true, true, &rc);
	if (!m)
		return rc;
	/* the mirror works on it while we write locally */
	return write_finish(r, m, &w, lun_local_write(l, buf, len, off, flags));
}

/* How many of w[] from the first on overlap none of the others: those go
 * together; an overlapping one waits for them (submit's overlap check). */
static unsigned independent_prefix(const ipm_write *w, unsigned n)
{
	unsigned k, j;

	for (k = 1; k < n; k++)
		for (j = 0; j < k; j++)
			if (w[k].off < w[j].off + w[j].len && w[j].off < w[k].off + w[k].len)
				return k;
	return n;
}

/* Independent writes: submitted and sent in one go, written locally in one
 * batch, then answered. Only the first may wait to be admitted; the chunk
 * ends before one that would have to. Returns how many were taken. */
static unsigned write_chunk(struct replicator *r, struct rep_lun *rl, ipm_write *w, unsigned n)
{
	struct mreq stack[IPM_WRITE_BATCH_MAX], *m[IPM_WRITE_BATCH_MAX];
	struct lun_io io[IPM_WRITE_BATCH_MAX];
	unsigned i, j, k = 0, at[IPM_WRITE_BATCH_MAX];
	size_t most = 0;

	for (i = 0; i < n; i++) {
		m[i] = write_submit(r, rl, &stack[i], &w[i], false, i == 0, &w[i].rc);
		if (w[i].rc == -EAGAIN)
			break;
		if (!m[i])
			continue;
		io[k] = (struct lun_io){ .lun = rl->lun, .buf = w[i].buf, .len = w[i].len,
					 .off = w[i].off, .flags = w[i].flags };
		at[k++] = i;
		if (w[i].len > most)
			most = w[i].len;
	}
	pthread_mutex_lock(&r->lock);
	if (r->qhead)
		send_now_locked(r, most);
	pthread_mutex_unlock(&r->lock);
	lun_write_batch(io, k);
	for (j = 0; j < k; j++)
		w[at[j]].rc = write_finish(r, m[at[j]], &w[at[j]], io[j].rc);
	return i;
}

void replicator_write_batch(struct replicator *r, struct ipm_lun *l, ipm_write *w, unsigned n)
{
	unsigned k;

	for (; n > 0; w += k, n -= k)
		k = write_chunk(r, rep_lun_of(r, l), w, independent_prefix(w, n));
}

int replicator_op(struct replicator *r, struct ipm_lun *l, uint16_t type, uint64_t len,
		  uint64_t off, unsigned flags)
{
	struct rep_lun *rl = rep_lun_of(r, l);
	bool sync = l->cfg->mode == IPM_MODE_SYNC;
	struct mreq *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return -ENOMEM;
	m->sync = sync;
	m->refs = 2;
	m->rl = rl;
	if (sync)
		pthread_cond_init(&m->cond, NULL);
	frame_init(&m->f, rl, type, len, off, flags);
	rc = submit(r, m, true, true);
	if (rc == -ESHUTDOWN) {
		if (sync)
			pthread_cond_destroy(&m->cond);
		free(m);
		return rc;
	}
	if (rc < 0)
		qb_log(LOG_ERR, "lun %s: cannot journal a request: %s", ipm_lun_name(l),
		       strerror(-rc));
	rc = local_op(l, type, len, off, flags);
	if (sync) {
		rc = wait_sync(r, m, rc);
		free(m);
		return rc;
	}
	/* async: a FLUSH is durable locally and a barrier on the mirror */
	release_async(r, m);
	return rc;
}

/* The replicator as the host path's layer below host_io.c (lun_ops.h):
 * reads go straight to the local copy, everything else is mirrored. */
static int op_write(struct ipm_lun *l, const void *buf, size_t len, uint64_t off,
		    unsigned flags)
{
	return replicator_write(l->rep, l, buf, len, off, flags);
}

static void op_write_batch(struct ipm_lun *l, ipm_write *w, unsigned n)
{
	replicator_write_batch(l->rep, l, w, n);
}

static int op_flush(struct ipm_lun *l)
{
	return replicator_op(l->rep, l, WIRE_FLUSH, 0, 0, 0);
}

static int op_trim(struct ipm_lun *l, uint64_t len, uint64_t off, unsigned flags)
{
	return replicator_op(l->rep, l, WIRE_TRIM, len, off, flags);
}

static int op_zero(struct ipm_lun *l, uint64_t len, uint64_t off, unsigned flags)
{
	return replicator_op(l->rep, l, WIRE_ZERO, len, off, flags);
}

const struct lun_ops replicator_ops = {
	.read = lun_local_read,
	.write = op_write,
	.write_batch = op_write_batch,
	.flush = op_flush,
	.trim = op_trim,
	.zero = op_zero,
};

/* ---- worker threads --------------------------------------------------------- */

/* An HBSLOT frame whose payload is complete in buf: keep the payload for
 * the hbslot sink (called without r->lock). 0, or -EBADMSG. */
static int take_hbslot(const struct wire_frame *f, const uint8_t *payload, uint8_t *slot,
		       unsigned *slot_index, ipm_error *err)
{
	if (crc32c(0, payload, f->len) != f->csum)
		return ipm_fail(err, -EBADMSG, "HBSLOT frame: payload checksum mismatch");
	memcpy(slot, payload, WIRE_HBSLOT_LEN);
	*slot_index = f->lun;
	return 0;
}

static void *reader_main(void *arg)
{
	struct worker *w = arg;
	struct replicator *r = w->r;
	/* a batch of ACKs, or an HBSLOT frame with its payload */
	uint8_t buf[WIRE_FRAME_LEN * 128];
	uint8_t slot[WIRE_HBSLOT_LEN];
	unsigned slot_index = 0;
	bool have_slot;
	size_t have = 0, pos;
	struct wire_frame f;
	ipm_error err;

	for (;;) {
		ssize_t n = recv(w->fd, buf + have, sizeof(buf) - have, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0)
				snprintf(err.msg, sizeof(err.msg), "%s", strerror(errno));
			else
				snprintf(err.msg, sizeof(err.msg), "closed by peer");
			break;
		}
		have += (size_t)n;
		have_slot = false;
		pthread_mutex_lock(&r->lock);
		for (pos = 0; have - pos >= WIRE_FRAME_LEN; pos += WIRE_FRAME_LEN) {
			struct mreq *m;

			if (wire_frame_decode(buf + pos, r->n_luns, &f, &err) < 0) {
				pthread_mutex_unlock(&r->lock);
				goto protocol_error;
			}
			if (f.type == WIRE_HBSLOT) {
				if (have - pos < WIRE_FRAME_LEN + f.len)
					break;  /* the rest of its payload is still to come */
				if (take_hbslot(&f, buf + pos + WIRE_FRAME_LEN, slot, &slot_index,
						&err) < 0) {
					pthread_mutex_unlock(&r->lock);
					goto protocol_error;
				}
				have_slot = true;
				pos += f.len;
				continue;
			}
			if (f.type != WIRE_ACK) {
				snprintf(err.msg, sizeof(err.msg), "unexpected frame type %u", f.type);
				pthread_mutex_unlock(&r->lock);
				goto protocol_error;
			}
			m = hash_remove(r, f.seq);

			/* unknown: answered already on a connection that broke */
			if (!m)
				continue;
			/* the mirror applied everything m depended on before m */
			if (m->f.dep > r->landed_floor)
				r->landed_floor = m->f.dep;
			complete_locked(r, m, f.status);
		}
		pthread_mutex_unlock(&r->lock);
		memmove(buf, buf + pos, have - pos);
		have -= pos;
		ca_refresh(&r->ca, w->index);
		if (have_slot)
			if (r->on_hbslot)
				r->on_hbslot(r->hbslot_opaque, slot_index, slot);
	}
	goto out;
protocol_error:
	qb_log(LOG_ERR, "connection %u to %s: %s; closing", w->index, r->e->peer->name,
	       err.msg);
out:
	pthread_mutex_lock(&r->lock);
	if (!w->failed && r->running)
		qb_log(LOG_WARNING, "connection %u to %s broke: %s", w->index, r->e->peer->name,
		       err.msg);
	w->failed = true;
	pthread_cond_broadcast(&r->queue_cond);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static int resolve(const char *address, uint16_t port, struct sockaddr_storage *ss,
		   socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai;
	char ps[8];
	int rc;

	snprintf(ps, sizeof(ps), "%u", port);
	rc = getaddrinfo(address, ps, &hints, &ai);
	if (rc)
		return -EHOSTUNREACH;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* Non-blocking connect bounded by CONNECT_TIMEOUT_MS, from our data address
 * so replication uses the network the config names. */
static int dial(struct replicator *r, ipm_error *err)
{
	const struct ipm_endpoint *to = &r->e->peer->data, *from = &r->e->self->data;
	struct sockaddr_storage ss, src;
	socklen_t len, slen;
	struct pollfd pfd;
	int fd, rc, one = 1, so_err = 0;
	socklen_t el = sizeof(so_err);

	rc = resolve(to->address, to->port, &ss, &len);
	if (rc < 0)
		return ipm_fail(err, rc, "cannot resolve %s", to->address);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return ipm_fail(err, -errno, "socket: %s", strerror(errno));
	if (from->address && resolve(from->address, 0, &src, &slen) == 0 &&
	    src.ss_family == ss.ss_family &&
	    bind(fd, (struct sockaddr *)&src, slen) < 0) {
		rc = ipm_fail(err, -errno, "bind to %s: %s", from->address, strerror(errno));
		goto fail;
	}
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
		rc = ipm_fail(err, -errno, "connect to %s:%u: %s", to->address, to->port,
			      strerror(errno));
		goto fail;
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&pfd, 1, CONNECT_TIMEOUT_MS) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_err, &el) < 0 || so_err) {
		rc = ipm_fail(err, -ETIMEDOUT, "connect to %s:%u: %s", to->address, to->port,
			      so_err ? strerror(so_err) : "timed out");
		goto fail;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
fail:
	close(fd);
	return rc;
}

/* Our data generations as the handshake announces them. */
static void wire_luns_generations(struct replicator *r)
{
	unsigned i;

	for (i = 0; i < r->n_luns; i++) {
		struct ipm_lun *l = r->luns[i].lun;
		struct wire_lun *wl = &r->wire_luns[i];

		pthread_mutex_lock(&l->gen_lock);
		wl->generation = l->gen.current;
		wl->n_history = (uint8_t)l->gen.n_history;
		memcpy(wl->history, l->gen.history, sizeof(wl->history));
		pthread_mutex_unlock(&l->gen_lock);
	}
}

/* The mirror's per-LUN verdicts: split brain, or a full copy needed. */
static void take_verdicts(struct replicator *r, const uint8_t *verdicts, bool accepted)
{
	ipm_error err = { "" };
	unsigned i;

	for (i = 0; i < r->n_luns; i++) {
		struct rep_lun *rl = &r->luns[i];

		lun_gen_verdict(rl->lun, verdicts[i], accepted);
		if (!accepted || !(verdicts[i] & WIRE_LV_FULL))
			continue;
		pthread_mutex_lock(&r->lock);
		if (!rl->full_pending) {
			qb_log(LOG_WARNING, "lun %s: %s needs the whole LUN (its data is no ancestor of ours): full resync",
			       ipm_lun_name(rl->lun), r->e->peer->name);
			dirty_bitmap_mark(rl->bitmap, 0, rl->lun->size);
			if (dirty_bitmap_sync(rl->bitmap, &err) < 0)
				qb_log(LOG_ERR, "lun %s: %s", ipm_lun_name(rl->lun), err.msg);
			rl->overflowed = true;
			rl->full_pending = true;
			if (r->link == LINK_LIVE) {
				r->force_resync = true;
				pthread_cond_broadcast(&r->link_cond);
			}
		}
		pthread_mutex_unlock(&r->lock);
	}
}

static void go_down_locked(struct replicator *r, const char *why);

/* Start over with the mirror's next record: drop every connection. */
static void forget_record_locked(struct replicator *r)
{
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	r->peer_record = 0;
	r->downs++;
	for (i = 0; i < r->n_conns; i++)
		if (r->workers[i].fd >= 0)
			shutdown(r->workers[i].fd, SHUT_RDWR);
}

/* The mirror knows what it applied of ours only in its ordering record
 * (one per session). Another record than before means its engine restarted
 * while our link stayed up (during a resync, connections just come back):
 * numbers we count as answered - out of order, or by an answer still on
 * its way from the old one - are unknown to the new record, which would
 * wait for them for ever. Only a fresh start is safe: journal what is
 * unanswered and resync. */
static int adopt_record_locked(struct replicator *r, uint64_t record, uint64_t downs,
			       ipm_error *err)
{
	IPM_ASSERT_HELD(&r->lock);
	if (r->downs != downs)
		return ipm_fail(err, -ECONNRESET, "the link went down during the handshake");
	if (!r->peer_record)
		r->peer_record = record;
	if (r->peer_record == record)
		return 0;
	if (r->link != LINK_DOWN) {
		go_down_locked(r, "its mirror restarted under a live link");
	} else {
		/* nothing numbered went out since the last go_down, but the
		 * connections to the old record must not carry what comes */
		forget_record_locked(r);
	}
	return ipm_fail(err, -ECONNRESET,
			"%s has forgotten our unanswered requests (new ordering record): resync",
			r->e->peer->name);
}

static int worker_connect(struct worker *w)
{
	struct replicator *r = w->r;
	struct hs_client_params p = {
		.self = r->e->node, .peer = r->e->peer->name,
		.conn_index = (uint16_t)w->index, .conn_count = (uint16_t)r->n_conns,
		.secret = r->secret, .session = r->session, .window = r->window,
		.n_luns = r->n_luns, .luns = r->wire_luns,
	};
	uint8_t verdicts[WIRE_MAX_LUNS] = { 0 };
	uint64_t record = 0, downs;
	ipm_error err = { "" };
	int fd = dial(r, &err), rc;

	p.verdicts = verdicts;
	p.record = &record;
	wire_luns_generations(r);

	if (fd < 0) {
		rc = fd;
		goto fail;
	}
	pthread_mutex_lock(&r->lock);
	p.base_seq = lowest_unacked(r) - 1;
	downs = r->downs;
	w->fd = fd;
	w->failed = false;
	pthread_mutex_unlock(&r->lock);
	rc = handshake_client(fd, &p, &err);
	take_verdicts(r, verdicts, rc == 0);
	if (rc < 0)
		goto fail;
	pthread_mutex_lock(&r->lock);
	rc = adopt_record_locked(r, record, downs, &err);
	pthread_mutex_unlock(&r->lock);
	if (rc < 0)
		goto fail;
	rc = pthread_create(&w->reader, NULL, reader_main, w);
	if (rc) {
		rc = ipm_fail(&err, -rc, "cannot start reader thread");
		goto fail;
	}
	ca_set_up(&r->ca, w->index, fd);
	qb_log(LOG_NOTICE, "connection %u to %s is up", w->index, r->e->peer->name);
	w->quiet = false;
	return 0;
fail:
	pthread_mutex_lock(&r->lock);
	w->fd = -1;
	pthread_mutex_unlock(&r->lock);
	if (fd >= 0)
		close(fd);
	qb_log(w->quiet ? LOG_DEBUG : LOG_WARNING, "connection %u to %s: %s", w->index,
	       r->e->peer->name, err.msg);
	w->quiet = true;
	return rc;
}

/* Take up to a batch of queued requests for this connection. */
static int take_batch(struct replicator *r, struct worker *w, struct mreq **batch)
{
	size_t bytes = 0;
	int n = 0;

	while (r->qhead && n < BATCH_FRAMES && (n == 0 || bytes < BATCH_BYTES)) {
		struct mreq *m = r->qhead;

		r->qhead = m->qnext;
		if (!r->qhead)
			r->qtail = NULL;
		m->conn = (int)w->index;
		bytes += m->f.len;
		batch[n++] = m;
	}
	return n;
}

static bool worker_should_wait(struct replicator *r, struct worker *w)
{
	return (!r->qhead || w->sending) && r->running && !w->failed && r->connect_allowed;
}

/* Send one batch from the queue on w: r->lock held, dropped while sending.
 * Whoever sends (w's worker thread or a host thread) owns w->fd until
 * w->sending is false again. */
static int send_batch_locked(struct replicator *r, struct worker *w)
{
	struct mreq *batch[BATCH_FRAMES];
	struct iovec iov[BATCH_FRAMES * 2];
	int n, i, cnt, rc;

	IPM_ASSERT_HELD(&r->lock);
	n = take_batch(r, w, batch);
	w->sending = true;
	r->sending++;
	pthread_mutex_unlock(&r->lock);
	for (i = 0, cnt = 0; i < n; i++) {
		iov[cnt++] = (struct iovec){ batch[i]->hdr, WIRE_FRAME_LEN };
		if (batch[i]->f.len)
			iov[cnt++] = (struct iovec){ (void *)batch[i]->data, batch[i]->f.len };
	}
	pthread_mutex_lock(&w->send_lock);
	rc = sendmsg_full(w->fd, iov, cnt);
	pthread_mutex_unlock(&w->send_lock);
	pthread_mutex_lock(&r->lock);
	w->sending = false;
	if (--r->sending == 0 || !w->serving)
		pthread_cond_broadcast(&r->link_cond);
	if (rc < 0) {
		w->failed = true;
		pthread_cond_broadcast(&r->queue_cond);
	}
	return rc;
}

static struct worker *idle_worker_locked(struct replicator *r)
{
	unsigned i, k;

	IPM_ASSERT_HELD(&r->lock);
	for (k = 0; k < r->n_conns; k++) {
		i = (r->next_direct + k) % r->n_conns;
		struct worker *w = &r->workers[i];

		if (w->serving && !w->sending && !w->failed &&
		    ca_status(&r->ca, i) == IPM_LINK_UP) {
			r->next_direct = i + 1;
			return w;
		}
	}
	return NULL;
}

/* A small live request goes out from the host's own thread when a
 * connection is idle: waking a worker thread costs a context switch per
 * request, which is most of the latency of a small synchronous write. */
static void send_now_locked(struct replicator *r, size_t len)
{
	struct worker *w = len <= DIRECT_SEND_MAX ? idle_worker_locked(r) : NULL;
	int batches = 0;

	IPM_ASSERT_HELD(&r->lock);
	if (!w) {
		pthread_cond_signal(&r->queue_cond);
		return;
	}
	/* what others queued meanwhile goes along, a few batches at most */
	while (batches++ < 4 && r->qhead && w->serving && !w->failed && !w->sending)
		if (send_batch_locked(r, w) < 0)
			break;
	/* a worker may have slept through its turn while we held its socket */
	if (r->qhead)
		pthread_cond_broadcast(&r->queue_cond);
}

static void worker_serve(struct worker *w)
{
	struct replicator *r = w->r;

	pthread_mutex_lock(&r->lock);
	w->serving = true;
	for (;;) {
		while (worker_should_wait(r, w)) {
			ipm_cond_wait_ms(&r->queue_cond, &r->lock, 500);
			/* the heartbeat may have declared this connection dead */
			if (ca_status(&r->ca, w->index) != IPM_LINK_UP)
				w->failed = true;
		}
		if (!r->running || w->failed || !r->connect_allowed)
			break;
		if (send_batch_locked(r, w) < 0)
			break;
	}
	/* a host thread may still be sending on the socket */
	w->serving = false;
	while (w->sending)
		pthread_cond_wait(&r->link_cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
}

/* Whatever this connection sent and was not answered goes to the others. */
static void worker_disconnect(struct worker *w)
{
	struct replicator *r = w->r;
	unsigned i, requeued = 0;
	struct mreq *m;

	shutdown(w->fd, SHUT_RDWR);
	pthread_join(w->reader, NULL);
	pthread_mutex_lock(&r->lock);
	for (i = 0; i <= r->hash_mask; i++) {
		for (m = r->hash[i]; m; m = m->hnext) {
			if (m->conn == (int)w->index) {
				m->conn = -1;
				queue_insert_sorted(r, m);
				requeued++;
			}
		}
	}
	pthread_mutex_lock(&w->send_lock);
	close(w->fd);
	w->fd = -1;
	pthread_mutex_unlock(&w->send_lock);
	pthread_cond_broadcast(&r->queue_cond);
	pthread_mutex_unlock(&r->lock);
	ca_set_down(&r->ca, w->index);
	pthread_mutex_lock(&r->lock);
	pthread_cond_broadcast(&r->link_cond);
	pthread_mutex_unlock(&r->lock);
	if (r->running && requeued)
		qb_log(LOG_WARNING, "connection %u to %s down; %u unanswered request(s) re-sent on the others",
		       w->index, r->e->peer->name, requeued);
	else if (r->running)
		qb_log(LOG_WARNING, "connection %u to %s down", w->index, r->e->peer->name);
}

/* Sleep ms, or until stopping. Waits to a deadline: queue_cond is
 * broadcast for other reasons all the time, and a pause cut short by them
 * turned a peer that drops every connection into ~800 dials a second. */
static void pause_ms(struct replicator *r, int ms)
{
	int64_t end = ipm_now_ms() + ms, left;

	pthread_mutex_lock(&r->lock);
	while (r->running && (left = end - ipm_now_ms()) > 0)
		ipm_cond_wait_ms(&r->queue_cond, &r->lock, (int)left);
	pthread_mutex_unlock(&r->lock);
}

/* Workers dial only while the link monitor allows it (not during an outage
 * or probation). Returns false when stopping; *waited tells whether it had
 * to wait, i.e. whether this is a new attempt after an outage. */
static bool wait_connect_allowed(struct replicator *r, bool *waited)
{
	bool running;

	pthread_mutex_lock(&r->lock);
	*waited = !r->connect_allowed;
	while (r->running && !r->connect_allowed)
		pthread_cond_wait(&r->queue_cond, &r->lock);
	running = r->running;
	pthread_mutex_unlock(&r->lock);
	return running;
}

static int backoff_next(int ms)
{
	return ms * 2 < BACKOFF_MAX_MS ? ms * 2 : BACKOFF_MAX_MS;
}

/* Dial, serve, and after each failed dial or lost connection pause for a
 * backoff that doubles from BACKOFF_MIN_MS to BACKOFF_MAX_MS; it starts over
 * once a connection stayed up BACKOFF_RESET_MS, or after an outage. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct replicator *r = w->r;
	int backoff = BACKOFF_MIN_MS;
	int64_t up_since;
	bool waited;

	while (wait_connect_allowed(r, &waited)) {
		if (waited)
			backoff = BACKOFF_MIN_MS;
		if (worker_connect(w) == 0) {
			up_since = ipm_now_ms();
			worker_serve(w);
			worker_disconnect(w);
			if (ipm_now_ms() - up_since >= BACKOFF_RESET_MS)
				backoff = BACKOFF_MIN_MS;
		}
		pause_ms(r, backoff);
		backoff = backoff_next(backoff);
	}
	return NULL;
}

/* ---- life cycle ---------------------------------------------------------- */

int replicator_create(ipm_engine *e, const struct auth_secret *secret,
		      struct ipm_lun **luns, unsigned n_luns, struct replicator **out,
		      ipm_error *err)
{
	struct replicator *r = calloc(1, sizeof(*r));
	unsigned i, buckets = 1;
	int rc;

	if (!r)
		return ipm_fail(err, -ENOMEM, "out of memory");
	r->e = e;
	r->secret = secret;
	r->n_luns = n_luns;
	r->n_conns = e->cfg->conn_count;
	r->window = e->cfg->async_window ? e->cfg->async_window : 1024;
	if (r->window > WIRE_MAX_WINDOW)
		r->window = WIRE_MAX_WINDOW;
	while (buckets < r->window * 2)
		buckets <<= 1;
	r->hash_mask = buckets - 1;
	r->hash = calloc(buckets, sizeof(*r->hash));
	r->luns = calloc(n_luns, sizeof(*r->luns));
	r->wire_luns = calloc(n_luns, sizeof(*r->wire_luns));
	if (!r->hash || !r->luns || !r->wire_luns)
		goto nomem;
	auth_random((uint8_t *)&r->session, sizeof(r->session));
	for (i = 0; i < n_luns; i++) {
		r->luns[i] = (struct rep_lun){ .lun = luns[i], .index = i };
		snprintf(r->wire_luns[i].name, WIRE_NAME_LEN, "%s", luns[i]->cfg->name);
		r->wire_luns[i].size = luns[i]->size;
		r->wire_luns[i].mode = (uint8_t)luns[i]->cfg->mode;
		luns[i]->wire_index = i;
	}
	ca_init(&r->ca, r->n_conns);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->queue_cond, NULL);
	pthread_cond_init(&r->space_cond, NULL);
	pthread_cond_init(&r->link_cond, NULL);
	r->resync_rate = e->cfg->resync_rate;
	/* until the first connection: journal, like after an outage */
	r->link = LINK_DOWN;
	set_states_locked(r, IPM_STATE_JOURNALING);
	for (i = 0; i < r->n_conns; i++) {
		r->workers[i] = (struct worker){ .r = r, .index = i, .fd = -1 };
		pthread_mutex_init(&r->workers[i].send_lock, NULL);
	}
	r->running = true;
	rc = resync_open_journals(r, err);
	if (rc < 0) {
		replicator_destroy(r);
		return rc;
	}
	*out = r;
	return 0;
nomem:
	free(r->hash);
	free(r->luns);
	free(r->wire_luns);
	free(r);
	return ipm_fail(err, -ENOMEM, "out of memory");
}

static void *monitor_main(void *arg);

int replicator_start(struct replicator *r, ipm_error *err)
{
	unsigned i;
	int rc;

	rc = pthread_create(&r->monitor, NULL, monitor_main, r);
	if (rc)
		return ipm_fail(err, -rc, "cannot start the link monitor thread");
	r->started = true;
	for (i = 0; i < r->n_conns; i++) {
		rc = pthread_create(&r->workers[i].thread, NULL, worker_main, &r->workers[i]);
		if (rc) {
			r->n_conns = i;
			replicator_stop(r);
			return ipm_fail(err, -rc, "cannot start worker thread %u", i);
		}
	}
	return 0;
}

/* ---- link monitor --------------------------------------------------------- */

static int by_seq(const void *a, const void *b)
{
	uint64_t x = (*(struct mreq *const *)a)->f.seq, y = (*(struct mreq *const *)b)->f.seq;

	return x < y ? -1 : x > y;
}

/* Take every unanswered request out of the in-flight table, in seq order. */
static unsigned drain_inflight_locked(struct replicator *r, struct mreq ***out)
{
	struct mreq **v = calloc(r->inflight ? r->inflight : 1, sizeof(*v)), *m;
	unsigned i, n = 0;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i <= r->hash_mask; i++) {
		while ((m = r->hash[i])) {
			r->hash[i] = m->hnext;
			if (v)
				v[n++] = m;
		}
	}
	r->qhead = r->qtail = NULL;
	r->inflight = 0;
	r->inflight_bytes = 0;
	if (v)
		qsort(v, n, sizeof(*v), by_seq);
	*out = v;
	return n;
}

/* Replays dropped by a go_down are sent again by the next resync: journal
 * records from the journal, which is kept until a resync ends; but copied
 * extents were cleared from the bitmap when read, so they are marked again
 * (a journal record marked too only costs one more copy). */
static void remark_replays_locked(struct replicator *r, struct mreq **v, unsigned n)
{
	ipm_error err = { "" };
	bool marked = false;
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < n; i++) {
		struct rep_lun *rl = v[i]->rl;

		if (!v[i]->replay || !rl->overflowed || v[i]->f.type == WIRE_FLUSH)
			continue;
		dirty_bitmap_mark(rl->bitmap, v[i]->f.offset, v[i]->f.length);
		marked = true;
	}
	for (i = 0; marked && i < r->n_luns; i++)
		if (r->luns[i].overflowed && dirty_bitmap_sync(r->luns[i].bitmap, &err) < 0)
			qb_log(LOG_ERR, "lun %s: %s", ipm_lun_name(r->luns[i].lun), err.msg);
}

/* The peer is unreachable: from now on writes go to the journals. Requests
 * the mirror did not answer go there first, in order (those the mirror is
 * known to have applied - up to landed_floor - are done), so that nothing
 * the host saw completed is lost and the journal order is the host's. */
static void go_down_locked(struct replicator *r, const char *why)
{
	struct mreq **v;
	unsigned i, n, journaled = 0;

	IPM_ASSERT_HELD(&r->lock);
	if (r->link == LINK_DOWN)
		return;
	r->link = LINK_DOWN;
	r->resync_hold = false; /* the held writes go to the journal (space_cond below) */
	r->connect_allowed = false;
	forget_record_locked(r);
	pthread_cond_broadcast(&r->queue_cond);
	/* request data must stay alive while a worker is still sending it */
	while (r->sending)
		pthread_cond_wait(&r->link_cond, &r->lock);
	n = drain_inflight_locked(r, &v);
	for (i = 0; i < n; i++) {
		if (!v[i]->replay && v[i]->f.seq > r->landed_floor) {
			journal_request_locked(r, v[i]);
			journaled++;
		}
	}
	journal_sync_all_locked(r);
	remark_replays_locked(r, v, n);
	for (i = 0; i < n; i++)
		finish_locked(r, v[i], 0);
	free(v);
	pthread_cond_broadcast(&r->space_cond);
	set_states_locked(r, IPM_STATE_JOURNALING);
	qb_log(LOG_WARNING, "peer %s unreachable (%s): journaling writes; %u unanswered request(s) journaled",
	       r->e->peer->name, why, journaled);
}

static enum ipm_link_state peer_state(struct replicator *r)
{
	return r->hb ? heartbeat_state(r->hb) : IPM_LINK_UP;
}

static void monitor_live_locked(struct replicator *r)
{
	IPM_ASSERT_HELD(&r->lock);
	if (r->force_resync) {
		r->force_resync = false;
		go_down_locked(r, "the peer needs a full resync");
	} else if (peer_state(r) == IPM_LINK_DOWN)
		go_down_locked(r, "heartbeat timeout");
	else if (ca_count_up(&r->ca) == 0)
		go_down_locked(r, "all connections lost");
}

/* While down: probation is the heartbeat's; once it says the peer is back
 * (or there is no heartbeat), let the workers dial and start the resync
 * when a connection is up. */
static void monitor_down_locked(struct replicator *r)
{
	enum ipm_link_state ps = peer_state(r);

	IPM_ASSERT_HELD(&r->lock);
	if (ps == IPM_LINK_PROBATION)
		set_states_locked(r, IPM_STATE_PROBATION);
	else if (ps == IPM_LINK_DOWN)
		set_states_locked(r, IPM_STATE_JOURNALING);
	if (ps != IPM_LINK_UP) {
		r->connect_allowed = false;
		return;
	}
	if (!r->connect_allowed) {
		r->connect_allowed = true;
		pthread_cond_broadcast(&r->queue_cond);
	}
	if (ca_count_up(&r->ca) > 0) {
		r->link = LINK_RESYNC;
		set_states_locked(r, IPM_STATE_RESYNCING);
	}
}

static void *monitor_main(void *arg)
{
	struct replicator *r = arg;
	int64_t settled = 0;

	pthread_mutex_lock(&r->lock);
	while (r->running) {
		switch (r->link) {
		case LINK_LIVE:
			monitor_live_locked(r);
			/* at most once a second, and only after AL_IDLE_MS without a
			 * live write: each settle is an fdatasync, and clearing a
			 * busy log only makes the next writes mark it again */
			if (r->link == LINK_LIVE && ipm_now_ms() - settled >= 1000 &&
			    ipm_now_ms() - r->last_live_ms >= AL_IDLE_MS) {
				al_settle_locked(r);
				settled = ipm_now_ms();
			}
			break;
		case LINK_DOWN:
			monitor_down_locked(r);
			break;
		case LINK_RESYNC:
			pthread_mutex_unlock(&r->lock);
			int rc = resync_run(r);

			pthread_mutex_lock(&r->lock);
			if (rc < 0 && r->running)
				go_down_locked(r, "link lost during resync");
			continue;
		}
		if (r->running)
			ipm_cond_wait_ms(&r->link_cond, &r->lock, 100);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* Stopping live with nothing unanswered, journaled or marked: the peer has
 * every write, so this node's copy is no longer ahead of it. */
static void mark_clean_stop_locked(struct replicator *r)
{
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	if (r->link != LINK_LIVE || r->inflight || r->al_users)
		return;
	for (i = 0; i < r->n_luns; i++) {
		struct rep_lun *rl = &r->luns[i];

		if (journal_records(rl->journal) || rl->overflowed ||
		    (rl->al && dirty_bitmap_dirty_bytes(rl->al)))
			return;
	}
	for (i = 0; i < r->n_luns; i++)
		lun_gen_clean_stop(r->luns[i].lun);
}

void replicator_stop(struct replicator *r)
{
	int64_t deadline = ipm_now_ms() + STOP_DRAIN_MS;
	unsigned i;

	pthread_mutex_lock(&r->lock);
	r->space_waiters++;
	while (r->inflight && ca_count_up(&r->ca) && ipm_now_ms() < deadline)
		ipm_cond_wait_ms(&r->space_cond, &r->lock, 100);
	r->space_waiters--;
	/* what the mirror has not answered by now is kept in the journal */
	if (r->inflight)
		go_down_locked(r, "stopping");
	else if (r->link == LINK_LIVE)
		al_settle_locked(r);
	mark_clean_stop_locked(r);
	r->running = false;
	pthread_cond_broadcast(&r->queue_cond);
	pthread_cond_broadcast(&r->space_cond);
	pthread_cond_broadcast(&r->link_cond);
	for (i = 0; i < r->n_conns; i++)
		if (r->workers[i].fd >= 0)
			shutdown(r->workers[i].fd, SHUT_RDWR);
	pthread_mutex_unlock(&r->lock);
	if (r->started) {
		pthread_join(r->monitor, NULL);
		for (i = 0; i < r->n_conns; i++)
			pthread_join(r->workers[i].thread, NULL);
	}
	r->started = false;
	pthread_mutex_lock(&r->lock);
	if (r->inflight)
		go_down_locked(r, "stopping");
	pthread_mutex_unlock(&r->lock);
}

void replicator_destroy(struct replicator *r)
{
	if (!r)
		return;
	if (r->started)
		replicator_stop(r);
	resync_close_journals(r);
	ca_destroy(&r->ca);
	for (unsigned i = 0; i < r->n_conns; i++)
		pthread_mutex_destroy(&r->workers[i].send_lock);
	pthread_cond_destroy(&r->link_cond);
	pthread_cond_destroy(&r->queue_cond);
	pthread_cond_destroy(&r->space_cond);
	pthread_mutex_destroy(&r->lock);
	free(r->hash);
	free(r->luns);
	free(r->wire_luns);
	free(r);
}

struct connection_array *replicator_connections(struct replicator *r)
{
	return &r->ca;
}

int replicator_send_hbslot(struct replicator *r, unsigned slot, const uint8_t *data)
{
	struct worker *w;
	unsigned i;
	int rc = -ENOTCONN;

	for (i = 0; i < r->n_conns && rc == -ENOTCONN; i++) {
		w = &r->workers[i];
		if (ca_status(&r->ca, i) != IPM_LINK_UP)
			continue;
		pthread_mutex_lock(&w->send_lock);
		if (w->fd >= 0)
			rc = storage_hb_send_frame(w->fd, slot, data);
		pthread_mutex_unlock(&w->send_lock);
	}
	return rc;
}

void replicator_set_heartbeat(struct replicator *r, struct heartbeat *hb)
{
	r->hb = hb;
}

void replicator_lun_status(struct replicator *r, struct ipm_lun *l, ipm_lun_status *s)
{
	struct rep_lun *rl;

	pthread_mutex_lock(&r->lock);
	rl = rep_lun_of(r, l);
	s->state = rl->state;
	s->mirrored_bytes = rl->mirrored_bytes;
	s->journal_bytes = rl->journal ? journal_bytes(rl->journal) : 0;
	s->journal_records = rl->journal ? journal_records(rl->journal) : 0;
	if (rl->bitmap)
		s->journal_bytes += dirty_bitmap_dirty_bytes(rl->bitmap);
	s->resync_done_bytes = rl->resync_done;
	s->resync_total_bytes = rl->resync_total;
	pthread_mutex_unlock(&r->lock);
}

void replicator_set_hbslot_sink(struct replicator *r, wire_hbslot_fn fn, void *opaque)
{
	r->on_hbslot = fn;
	r->hbslot_opaque = opaque;
}
