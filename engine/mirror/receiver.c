/* receiver.c - the mirror's listener and connection threads. */
/*
 * Locks: rc->lock (sessions, connections, the waiting requests and the
 * order) and each c->send_lock (one connection's socket and held answers)
 * are never held together; ca->lock and log_lock are leaves under either.
 * Requests are applied (backing I/O) and answered with no lock held.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "lockdebug.h"
#include "auth.h"
#include "crc32c.h"
#include "apply_order.h"
#include "handshake.h"
#include "mirror_tls.h"
#include "lun.h"
#include "netaddr.h"
#include "receiver.h"
#include "storage_hb.h"
#include "read_serve.h"
#include "resize_serve.h"
#include "verify_serve.h"

#define POLL_MS 1000
#define RBUF_SIZE (256u << 10)
#define ACK_BATCH 64
#define APPLY_BATCH 32   /* requests applied together */
#define LISTEN_BACKLOG 1024
#define POOL_OTHERS 0    /* handshake slots: connections from anywhere */
#define POOL_PEER 1      /* from the peer's data address */
#define ACCEPT_BURST 256 /* connections taken per wake-up of the listener */
#define REFUSAL_LOG_MS 1000 /* refusals: one line per interval... */
#define REFUSAL_LOG_BURST 5 /* ...after a burst of this many */

/* One incoming connection; referenced by its thread and by every request
 * that still has to be answered on it. */
struct rconn {
	struct receiver *rc;
	int fd;
	struct ipm_tls *tls;          /* <tls mode> != off: fd's TLS session */
	bool payload_crc;             /* WRITE payloads carry a CRC32C to check
				       * (not under TLS when agreed: mirror_tls.h) */
	char who[80];                 /* peer address, for log lines */
	unsigned index;               /* the primary's connection index */
	uint64_t session;
	pthread_mutex_t send_lock;    /* the socket's send side and the acks below */
	/* answers held back while the connection's thread still has requests
	 * buffered: one send and one wake-up of the primary for all of them */
	uint8_t acks[ACK_BATCH * WIRE_FRAME_LEN];
	unsigned n_acks;
	bool hold_acks;
	int refs;
	struct ipm_lun *luns[WIRE_MAX_LUNS]; /* wire id -> our LUN (NULL: none) */
	uint32_t n_luns;              /* ids are below it */
	unsigned pool;                /* its handshake slot's (POOL_*) */
	struct rconn *next;
};

/* A received request not yet applied. */
struct rreq {
	struct wire_frame f;
	void *data;
	struct ipm_lun *lun;
	struct rconn *reply;          /* where the answer goes (the latest copy's) */
	bool applying;                /* else it waits, in rc->waiting */
	struct wait_node wn;          /* its place in rc->waiting */
	struct rreq *hnext;           /* the pending hash chain (by seq) */
};

#define rreq_of(n) ((struct rreq *)((char *)(n) - offsetof(struct rreq, wn)))

/* Received requests not yet applied: a hash by sequence number to find a
 * re-sent copy, and those waiting for their dependencies in a heap by dep
 * (apply_order.h) within the mirror's budget: the session's window, and
 * WIRE_MAX_INFLIGHT_BYTES of payload, which a correct primary never
 * passes (it has no more in flight). */
#define PENDING_BUCKETS 4096

struct receiver {
	ipm_engine *e;
	struct ipm_lun *own;          /* a LUN's own receiver (no listener), or NULL */
	struct ipm_lun **luns;        /* the engine's LUN table, from receiver_create */
	unsigned n_luns;
	wire_hbslot_fn on_hbslot;     /* HBSLOT frames received, or NULL */
	void *hbslot_opaque;
	const struct auth_secret *secret;
	struct connection_array ca;
	int listen_fd;
	pthread_t listener;
	bool started;

	pthread_mutex_t lock;
	pthread_cond_t idle;          /* conns became empty */
	bool running;
	struct apply_order order;
	uint64_t record;              /* names `order`, new at every reset: a primary
				       * told another one than before knows we
				       * forgot what it sent (WELCOME) */
	struct rreq *pending_hash[PENDING_BUCKETS]; /* waiting, or being applied */
	struct wait_set waiting;      /* waiting for dependencies (under lock) */
	struct rconn *conns;
	unsigned n_conns;
	/* unauthenticated connections are capped: each costs a thread for
	 * up to the handshake timeout, and anyone can open them. Those from
	 * the peer's data address (the primary dials from it) have slots of
	 * their own, so a flood from elsewhere cannot keep it out. Counts
	 * under lock. */
	unsigned n_handshakes[2], max_handshakes[2]; /* [POOL_OTHERS], [POOL_PEER] */
	struct sockaddr_storage peer_addr;        /* the peer's data address, */
	bool have_peer_addr;                      /* when numeric */
	int64_t refusal_log_at;       /* refusals: when refusal_log_tokens was counted */
	unsigned refusal_log_tokens;  /* lines that may go out now */
	unsigned refusals_quiet;      /* those not logged since the last line */
};

/* ---- connections ---------------------------------------------------------- */

/* rc's list of connections and their count, which receiver_stop waits
 * to reach 0 */
static void conn_link_locked(struct receiver *rc, struct rconn *c)
{
	IPM_ASSERT_HELD(&rc->lock);
	c->rc = rc;
	c->next = rc->conns;
	rc->conns = c;
	rc->n_conns++;
}

static void conn_unlink_locked(struct receiver *rc, struct rconn *c)
{
	struct rconn **p;

	IPM_ASSERT_HELD(&rc->lock);
	for (p = &rc->conns; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	if (--rc->n_conns == 0)
		pthread_cond_broadcast(&rc->idle);
}

static void rconn_put_locked(struct receiver *rc, struct rconn *c)
{
	IPM_ASSERT_HELD(&rc->lock);
	if (--c->refs > 0)
		return;
	conn_unlink_locked(rc, c);
	ipm_tls_free(c->tls);
	close(c->fd);
	pthread_mutex_destroy(&c->send_lock);
	free(c);
}

/* send_lock held. A lost answer is harmless: the primary re-sends and we
 * answer again. */
static void acks_send_locked(struct rconn *c)
{
	size_t len = (size_t)c->n_acks * WIRE_FRAME_LEN;
	struct iovec iov = { c->acks, len };

	IPM_ASSERT_HELD(&c->send_lock);
	c->n_acks = 0;
	if (len && (c->tls ? ipm_tls_sendv(c->tls, &iov, 1) < 0
			   : send(c->fd, c->acks, len, MSG_NOSIGNAL) != (ssize_t)len))
		shutdown(c->fd, SHUT_RDWR);
}

static void send_ack(struct rconn *c, uint64_t seq, int status)
{
	struct wire_frame f = {
		.magic = WIRE_FRAME_MAGIC, .type = WIRE_ACK, .seq = seq,
		.status = status < 0 ? -status : status,
	};

	pthread_mutex_lock(&c->send_lock);
	wire_frame_encode(c->acks + (size_t)c->n_acks++ * WIRE_FRAME_LEN, &f);
	if (!c->hold_acks || c->n_acks == ACK_BATCH)
		acks_send_locked(c);
	pthread_mutex_unlock(&c->send_lock);
}

/* A whole answer with a payload (a VERIFY_REPLY): after the answers
 * held so far. */
static void send_answer(struct rconn *c, const void *msg, size_t len)
{
	struct iovec iov = { (void *)msg, len };

	pthread_mutex_lock(&c->send_lock);
	acks_send_locked(c);
	if (ipm_conn_sendv(c->fd, c->tls, &iov, 1) < 0)
		shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&c->send_lock);
}

/* The connection's thread holds answers back while it works through
 * buffered input, and sends them before it reads (and may wait) again. */
static void acks_hold(struct rconn *c, bool hold)
{
	pthread_mutex_lock(&c->send_lock);
	c->hold_acks = hold;
	if (!hold)
		acks_send_locked(c);
	pthread_mutex_unlock(&c->send_lock);
}

/* ---- applying ------------------------------------------------------------- */

static unsigned fua_of(const struct wire_frame *f)
{
	return (f->flags & WIRE_F_FUA) ? IPM_IO_FUA : 0;
}

/* A replayed request makes the copy behind until its pass completes. */
static void apply_begin(struct rreq *q)
{
	if ((q->f.flags & WIRE_F_REPLAY) && !(q->f.flags & WIRE_F_INSYNC)) {
		__atomic_store_n(&q->lun->insync, false, __ATOMIC_RELAXED);
		lun_gen_resyncing(q->lun);
	}
}

/* A resync's ZERO (a hole or zeros of the primary's copy, up to the whole
 * LUN): a regular file zeroes its data parts there and leaves its holes
 * (ZERO_RANGE over the whole range would allocate it all; punching it
 * whole would undo a preallocated copy's allocation). */
static int apply_zero(struct rreq *q)
{
	const struct wire_frame *f = &q->f;

	if ((f->flags & WIRE_F_REPLAY) && !q->lun->is_blockdev &&
	    lun_local_zero_keep(q->lun, f->length, f->offset) == 0)
		return 0;
	return lun_local_zero(q->lun, f->length, f->offset);
}

/* Everything but a WRITE (those go in batches: apply_batch). */
static int apply_other(struct rreq *q)
{
	const struct wire_frame *f = &q->f;
	unsigned fua = fua_of(f);
	int rc;

	switch (f->type) {
	case WIRE_TRIM:
		rc = lun_local_trim(q->lun, f->length, f->offset);
		break;
	case WIRE_ZERO:
		rc = apply_zero(q);
		break;
	case WIRE_FLUSH:
		rc = lun_local_flush(q->lun);
		/* replays are applied strictly in journal order, so the flag
		 * follows the copy exactly: a replay makes it behind, the
		 * marker ending a resync pass makes it equal again */
		if (rc == 0 && (f->flags & WIRE_F_INSYNC)) {
			lun_gen_insync(q->lun);
			__atomic_store_n(&q->lun->insync, true, __ATOMIC_RELAXED);
			engine_notify(q->lun->engine); /* up to date here now */
		}
		return rc;
	default:
		return -EINVAL;
	}
	return rc == 0 && fua ? lun_local_flush(q->lun) : rc;
}

static struct rreq **pending_bucket(struct receiver *rc, uint64_t seq)
{
	return &rc->pending_hash[seq % PENDING_BUCKETS];
}

/* A waiting request goes into rc->waiting first: -ENOBUFS or -EMSGSIZE
 * when it would pass the budget (nothing inserted then). */
static int pending_insert_locked(struct receiver *rc, struct rreq *q)
{
	struct rreq **b = pending_bucket(rc, q->f.seq);
	int err;

	IPM_ASSERT_HELD(&rc->lock);
	if (!q->applying) {
		q->wn.dep = q->f.dep;
		q->wn.bytes = q->f.len;
		err = wait_insert(&rc->waiting, &q->wn);
		if (err < 0)
			return err;
	}
	q->hnext = *b;
	*b = q;
	return 0;
}

static void hash_remove_locked(struct receiver *rc, struct rreq *q)
{
	struct rreq **p;

	IPM_ASSERT_HELD(&rc->lock);
	for (p = pending_bucket(rc, q->f.seq); *p; p = &(*p)->hnext) {
		if (*p == q) {
			*p = q->hnext;
			return;
		}
	}
}

static void pending_remove_locked(struct receiver *rc, struct rreq *q)
{
	IPM_ASSERT_HELD(&rc->lock);
	if (!q->applying)
		wait_remove(&rc->waiting, &q->wn);
	hash_remove_locked(rc, q);
}

static struct rreq *pending_find_locked(struct receiver *rc, uint64_t seq)
{
	struct rreq *q;

	IPM_ASSERT_HELD(&rc->lock);
	for (q = *pending_bucket(rc, seq); q; q = q->hnext)
		if (q->f.seq == seq)
			return q;
	return NULL;
}

/* Waiting requests whose dependencies are now applied, marked applying:
 * they do not depend on each other. */
static unsigned take_ready_locked(struct receiver *rc, struct rreq **out, unsigned max)
{
	struct wait_node *wn;
	unsigned n = 0;

	IPM_ASSERT_HELD(&rc->lock);
	while (n < max && (wn = wait_take_ready(&rc->waiting, rc->order.prefix))) {
		struct rreq *q = rreq_of(wn);

		q->applying = true;
		out[n++] = q;
	}
	return n;
}

/* A request that changes the copy. */
static bool changes(const struct rreq *q)
{
	return q->f.type == WIRE_WRITE || q->f.type == WIRE_TRIM || q->f.type == WIRE_ZERO ||
	       q->f.type == WIRE_FLUSH;
}

/* The LUN's disk failed here (lun_disk.c, doc/io-errors.md): its copy is
 * out of service, so a change is answered with EIO and not applied (the
 * primary marks the range out of sync). */
static bool disk_out(const struct rreq *q)
{
	return changes(q) && __atomic_load_n(&q->lun->disk_failed, __ATOMIC_ACQUIRE);
}

/* A received WRITE as a local write; a replay (resync) bypasses the page
 * cache at any size. */
static struct lun_io write_io(const struct rreq *q)
{
	return (struct lun_io){ .lun = q->lun, .buf = q->data, .len = q->f.len,
				.off = q->f.offset,
				.flags = fua_of(&q->f) |
					 ((q->f.flags & WIRE_F_REPLAY) ? LUN_IO_BULK : 0) };
}

/* Apply independent requests together: the writes in one batch
 * (lun_write_batch), the others one by one. Fills status[]. */
static void apply_set(struct rreq **set, unsigned n, int *status,
		      const struct auth_secret *secret)
{
	struct lun_io io[APPLY_BATCH];
	unsigned i, k = 0, at[APPLY_BATCH];

	for (i = 0; i < n; i++) {
		struct rreq *q = set[i];

		if (disk_out(q)) {
			status[i] = -EIO;
			continue;
		}
		apply_begin(q);
		if (q->f.type == WIRE_RESIZE) { /* resize_serve.c: names no range */
			status[i] = resize_serve(q->lun, &q->f, &q->data);
			continue;
		}
		/* an empty request (older primaries sent them) keeps its place
		 * in the order but touches nothing */
		if (q->f.type != WIRE_FLUSH && q->f.length == 0) {
			status[i] = 0;
			continue;
		}
		if (q->f.type == WIRE_VERIFY) { /* verify_serve.c */
			status[i] = verify_serve(q->lun, secret, &q->f, &q->data);
			continue;
		}
		if (q->f.type == WIRE_READ) { /* read_serve.c */
			status[i] = read_serve(q->lun, &q->f, &q->data);
			continue;
		}
		if (q->f.type != WIRE_WRITE) {
			status[i] = apply_other(q);
			continue;
		}
		io[k] = write_io(q);
		at[k++] = i;
	}
	lun_write_batch(io, k);
	for (i = 0; i < k; i++)
		status[at[i]] = io[i].rc;
}

static void forget_session_locked(struct receiver *rc);

/* The session carries no LUN but l (a LUN's own, or a version 4 peer's of
 * one LUN). */
static bool session_of(const struct rconn *c, const struct ipm_lun *l)
{
	uint32_t i;

	for (i = 0; i < c->n_luns; i++)
		if (c->luns[i] && c->luns[i] != l)
			return false;
	return true;
}

/* After the error answer that a failed disk gave (reply's held answers go
 * out first): the LUN's session closes, and check_luns refuses it until
 * the disk is replaced, so the primary journals from now on and nothing
 * more travels for a copy out of service. A version 4 peer's session of
 * several LUNs stays for the others: this LUN's changes are answered EIO. */
static void detach_session(struct receiver *rc, struct rconn *reply, struct ipm_lun *l)
{
	bool closed = false;

	pthread_mutex_lock(&reply->send_lock);
	acks_send_locked(reply);
	pthread_mutex_unlock(&reply->send_lock);
	pthread_mutex_lock(&rc->lock);
	if (session_of(reply, l) && reply->session && reply->session == rc->order.session) {
		forget_session_locked(rc);
		closed = true;
	}
	pthread_mutex_unlock(&rc->lock);
	if (closed)
		qb_log(LOG_WARNING, "lun %s: session with %s closed: this copy is out of service (its disk failed); its connections are refused until the disk is replaced",
		       ipm_lun_name(l), rc->e->peer->name);
}

/* Answer a set of applied requests (status[]), then take into set what
 * they unblocked: returns how many. A change the disk failed marks the
 * copy invalid durably before its error answer goes out (lun_disk.c). */
static unsigned answer_set(struct receiver *rc, struct rreq **set, unsigned n,
			   const int *status)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		struct rreq *q = set[i];
		struct rconn *reply;
		bool detach = false;

		if (status[i] && !disk_out(q))
			qb_log(LOG_ERR, "lun %s: applying mirror request %llu (%s at offset %llu, length %llu) failed: %s",
			       ipm_lun_name(q->lun), (unsigned long long)q->f.seq,
			       wire_type_name(q->f.type), (unsigned long long)q->f.offset,
			       (unsigned long long)q->f.length, strerror(-status[i]));
		if (status[i] && changes(q)) {
			lun_disk_write_error(q->lun, wire_type_name(q->f.type), q->f.offset,
					     status[i]);
			detach = disk_out(q);
		}
		pthread_mutex_lock(&rc->lock);
		if (q->reply->session == rc->order.session)
			order_mark_applied(&rc->order, q->f.seq);
		pending_remove_locked(rc, q);
		reply = q->reply;
		pthread_mutex_unlock(&rc->lock);

		if ((q->f.type == WIRE_VERIFY || q->f.type == WIRE_READ ||
		     q->f.type == WIRE_RESIZE) && q->data)
			send_answer(reply, q->data, verify_reply_len(q->data));
		else
			send_ack(reply, q->f.seq, status[i]);
		if (detach)
			detach_session(rc, reply, q->lun);
		pthread_mutex_lock(&rc->lock);
		rconn_put_locked(rc, reply);
		pthread_mutex_unlock(&rc->lock);
		free(q->data);
		free(q);
	}
	pthread_mutex_lock(&rc->lock);
	n = take_ready_locked(rc, set, APPLY_BATCH);
	pthread_mutex_unlock(&rc->lock);
	return n;
}

/* Apply a set of ready requests, answer them, then whatever they
 * unblocked, in this thread. */
static void apply_chain(struct receiver *rc, struct rreq **set, unsigned n)
{
	int status[APPLY_BATCH];

	while (n > 0) {
		apply_set(set, n, status, rc->secret);
		n = answer_set(rc, set, n, status);
	}
}

/* ---- replays in flight while the next frame is received ------------------- *
 * A resync sends big replayed WRITEs back to back. Applied as above, a
 * connection's thread received one, wrote it, answered, and only then
 * received the next: the wire idled while the disk wrote and the other way
 * round. A set of replayed WRITEs is started in the thread's ring instead
 * (lun_write_begin/start) and lands (lun_write_end, the answers) before
 * anything else is applied, and before the thread would wait for input:
 * it only goes on reading while bytes are there, so the rest of a frame
 * the primary is sending. Nothing waits for the landing that the landing
 * waits for (the primary's answers come from it, not the reverse). Not
 * under TLS (its buffered records are not visible to a peek). */
struct flight {
	struct rreq *set[APPLY_BATCH];
	struct lun_io io[APPLY_BATCH];
	struct lun_batch lb;
	unsigned n;                   /* 0: nothing in flight */
};

/* Replayed WRITEs only, each to a copy in service. */
static bool replay_writes(struct rreq **set, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (set[i]->f.type != WIRE_WRITE || !(set[i]->f.flags & WIRE_F_REPLAY) ||
		    set[i]->f.length == 0 || disk_out(set[i]))
			return false;
	return n > 0 && n <= LUN_BEGIN_MAX;
}

/* Start set[0..n) (replay_writes) in the ring: false when the direct-write
 * turns are not free (nothing started: apply them as usual). */
static bool flight_start(struct flight *fl, struct rreq **set, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		fl->io[i] = write_io(set[i]);
	if (!lun_write_begin(fl->io, n, &fl->lb))
		return false;
	for (i = 0; i < n; i++) {
		apply_begin(set[i]);
		fl->set[i] = set[i];
	}
	fl->n = n;
	lun_write_start(fl->io, n, &fl->lb);
	return true;
}

/* The writes in flight end; they are answered, and what they unblocked
 * is applied. */
static void flight_land(struct receiver *rc, struct flight *fl)
{
	int status[APPLY_BATCH];
	unsigned i, n = fl->n;

	if (!n)
		return;
	fl->n = 0;
	lun_write_end(fl->io, n, &fl->lb);
	for (i = 0; i < n; i++)
		status[i] = fl->io[i].rc;
	apply_chain(rc, fl->set, answer_set(rc, fl->set, n, status));
}

/* Is input there now (buffered, or in the socket)? Never waits. */
static bool input_ready(const struct rconn *c, size_t buffered)
{
	char byte;

	return buffered > 0 || recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void drop_waiting_locked(struct receiver *rc, uint64_t upto);

/* A session that passed the budget (or whose LUN's disk failed) is forgotten as if our engine had
 * restarted: its connections close and its waiting requests go. The
 * primary meets a new record when it reconnects, so it journals what we
 * did not answer and resyncs (doc/wire.md): nothing is lost, and a buggy
 * primary cannot make us hold more. */
static void forget_session_locked(struct receiver *rc)
{
	struct rconn *o;

	IPM_ASSERT_HELD(&rc->lock);
	for (o = rc->conns; o; o = o->next)
		if (o->session && o->session == rc->order.session)
			shutdown(o->fd, SHUT_RDWR);
	rc->order.session = 0;
	drop_waiting_locked(rc, UINT64_MAX);
}

/* Route one received request; *ready says it can be applied now (the
 * caller does, with others). Returns -EPROTO on an ordering violation,
 * -ENOBUFS / -EMSGSIZE when it would pass the waiting budget. */
static int dispatch(struct rconn *c, struct rreq *q, bool *ready)
{
	struct receiver *rc = c->rc;
	struct rreq *old;
	enum order_verdict v;
	int rc_ins;

	*ready = false;
	pthread_mutex_lock(&rc->lock);
	if (c->session != rc->order.session) {
		pthread_mutex_unlock(&rc->lock);
		return -ESTALE;
	}
	v = order_admit(&rc->order, q->f.seq, q->f.dep);
	if (v == ORDER_INVALID) {
		pthread_mutex_unlock(&rc->lock);
		return -EPROTO;
	}
	if (v == ORDER_DUPLICATE) {
		pthread_mutex_unlock(&rc->lock);
		send_ack(c, q->f.seq, disk_out(q) ? -EIO : 0);
		free(q->data);
		free(q);
		return 0;
	}
	old = pending_find_locked(rc, q->f.seq);
	if (old) {
		/* a re-sent copy: answer on the newer connection, keep one copy */
		c->refs++;
		rconn_put_locked(rc, old->reply);
		old->reply = c;
		pthread_mutex_unlock(&rc->lock);
		free(q->data);
		free(q);
		return 0;
	}
	q->applying = v == ORDER_APPLY;
	rc_ins = pending_insert_locked(rc, q);
	if (rc_ins < 0) {
		forget_session_locked(rc);
		pthread_mutex_unlock(&rc->lock);
		return rc_ins;
	}
	c->refs++;
	q->reply = c;
	pthread_mutex_unlock(&rc->lock);
	*ready = v == ORDER_APPLY;
	return 0;
}

/* ---- reading frames --------------------------------------------------------- */

struct rbuf {
	struct rconn *c;
	uint8_t *buf;
	size_t pos, end;
};

/* Wait for data; on each quiet interval check whether the heartbeat has
 * declared this connection down. */
static int rbuf_wait(struct rbuf *b)
{
	struct receiver *rc = b->c->rc;
	struct pollfd pfd = { .fd = b->c->fd, .events = POLLIN };

	for (;;) {
		int n = poll(&pfd, 1, POLL_MS);

		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (ca_status(&rc->ca, b->c->index) != IPM_LINK_UP)
			return -ETIMEDOUT;
	}
}

/* Plaintext: one blocking recv, which returns what is there at once and
 * else waits at most POLL_MS (SO_RCVTIMEO, set in serve): one system call
 * per wait where a try without waiting, poll and recv cost three. */
static int rbuf_recv_plain(struct rbuf *b, void *dst, size_t len)
{
	struct rconn *c = b->c;

	for (;;) {
		ssize_t n = recv(c->fd, dst, len, 0);

		if (n > 0)
			return (int)n;  /* len is at most a frame's payload */
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		/* a quiet interval: has the heartbeat declared us down? */
		if (ca_status(&c->rc->ca, c->index) != IPM_LINK_UP)
			return -ETIMEDOUT;
	}
}

/* One recv into the buffer. The answers held so far go out first; the
 * first try does not wait (no poll while the primary keeps us busy). */
static int rbuf_recv(struct rbuf *b, void *dst, size_t len)
{
	ssize_t n;
	int rc;

	acks_hold(b->c, false);
	if (!b->c->tls) {
		rc = rbuf_recv_plain(b, dst, len);
		acks_hold(b->c, true);
		return rc;
	}
	for (;;) {
		/* TLS: records already decrypted are returned first; poll()
		 * below sees only the socket, so it is reached with none left */
		n = ipm_conn_recv(b->c->fd, b->c->tls, dst, len, MSG_DONTWAIT);
		if (n > 0) {
			rc = (int)n;  /* len is at most a frame's payload */
			break;
		}
		if (n == 0) {
			rc = -ECONNRESET;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			rc = -errno;
			break;
		}
		rc = rbuf_wait(b);
		if (rc < 0)
			break;
	}
	acks_hold(b->c, true);
	return rc;
}

static int rbuf_fill(struct rbuf *b)
{
	int n;

	if (b->pos == b->end)
		b->pos = b->end = 0;
	n = rbuf_recv(b, b->buf + b->end, RBUF_SIZE - b->end);
	if (n < 0)
		return n;
	b->end += (size_t)n;
	return 0;
}

static int rbuf_read(struct rbuf *b, void *dst, size_t len)
{
	size_t have, take;
	int rc;

	while (len > 0) {
		have = b->end - b->pos;
		if (have) {
			take = have < len ? have : len;
			memcpy(dst, b->buf + b->pos, take);
			b->pos += take;
			dst = (char *)dst + take;
			len -= take;
			continue;
		}
		if (len < RBUF_SIZE / 2) {
			rc = rbuf_fill(b);
			if (rc < 0)
				return rc;
			continue;
		}
		/* big payloads go straight to their buffer */
		rc = rbuf_recv(b, dst, len);
		if (rc < 0)
			return rc;
		dst = (char *)dst + rc;
		len -= (size_t)rc;
	}
	return 0;
}

/* The peer's heartbeat-volume slot: into our copy (hb_volume.c). */
static int read_hbslot(struct rbuf *b, const uint8_t *hdr, ipm_error *err)
{
	uint8_t slot[WIRE_HBSLOT_LEN];
	struct wire_frame f;
	int rc;

	wire_frame_decode(hdr, 0, &f, NULL);  /* checked by the caller */
	rc = rbuf_read(b, slot, sizeof(slot));
	if (rc < 0)
		return ipm_fail(err, rc, "HBSLOT payload: %s", strerror(-rc));
	if (crc32c(0, slot, sizeof(slot)) != f.csum)
		return ipm_fail(err, -EBADMSG, "HBSLOT frame: payload checksum mismatch");
	if (b->c->rc->on_hbslot)
		b->c->rc->on_hbslot(b->c->rc->hbslot_opaque, f.lun, slot);
	return 0;
}

/* Why a read failed, for the line that closes the connection. EBADMSG
 * comes from TLS alone: a record that fails its authentication. */
static const char *read_error(int rc)
{
	switch (rc) {
	case -ECONNRESET: return "closed by peer";
	case -ETIMEDOUT: return "marked down (heartbeat timeout)";
	case -EBADMSG: return "a TLS record failed authentication (altered on the way)";
	default: return strerror(-rc);
	}
}

static int read_request(struct rbuf *b, struct rreq **out, ipm_error *err)
{
	struct rconn *c = b->c;
	uint8_t hdr[WIRE_FRAME_LEN];
	struct rreq *q;
	int rc;

	rc = rbuf_read(b, hdr, sizeof(hdr));
	if (rc < 0)
		return ipm_fail(err, rc, "%s", read_error(rc));
	q = calloc(1, sizeof(*q));
	if (!q)
		return ipm_fail(err, -ENOMEM, "out of memory");
	rc = wire_frame_decode(hdr, c->n_luns, &q->f, err);
	if (rc < 0)
		goto fail;
	if (q->f.type == WIRE_ACK || q->f.type == WIRE_PING) {
		free(q);
		*out = NULL;
		return 0;
	}
	if (q->f.type == WIRE_HBSLOT) {
		free(q);
		*out = NULL;
		return read_hbslot(b, hdr, err);
	}
	q->lun = c->luns[q->f.lun];
	if (!q->lun) {
		rc = ipm_fail(err, -EINVAL, "%s frame for lun id %u, not negotiated",
			      q->f.type == WIRE_WRITE ? "WRITE" : "request", q->f.lun);
		goto fail;
	}
	if (!lun_range_ok(q->lun, q->f.length, q->f.offset)) {
		rc = ipm_fail(err, -EPROTO, "request %llu for lun %s is out of range",
			      (unsigned long long)q->f.seq, ipm_lun_name(q->lun));
		goto fail;
	}
	if (q->f.len) {
		/* page-aligned, so the write can go out with O_DIRECT */
		if (posix_memalign(&q->data, 4096, q->f.len) != 0)
			q->data = NULL;
		if (!q->data) {
			rc = ipm_fail(err, -ENOMEM, "out of memory");
			goto fail;
		}
		rc = rbuf_read(b, q->data, q->f.len);
		if (rc < 0) {
			ipm_fail(err, rc, "payload: %s", read_error(rc));
			goto fail;
		}
		if (c->payload_crc && crc32c(0, q->data, q->f.len) != q->f.csum) {
			rc = ipm_fail(err, -EBADMSG, "request %llu: payload checksum mismatch",
				      (unsigned long long)q->f.seq);
			goto fail;
		}
	}
	*out = q;
	return 0;
fail:
	free(q->data);
	free(q);
	return rc;
}

/* Is a whole frame already buffered? Then reading it costs no system call
 * and it can join the batch being collected. */
static bool rbuf_has_frame(const struct rbuf *b)
{
	size_t have = b->end - b->pos;
	struct wire_frame f;

	if (have < WIRE_FRAME_LEN)
		return false;
	if (wire_frame_decode(b->buf + b->pos, b->c->n_luns, &f, NULL) < 0)
		return true;  /* read_request reports it */
	return have - WIRE_FRAME_LEN >= f.len;
}

/* Read one request and admit it. 1 when it is ready to apply, 0 when it
 * waits or was not a request, < 0 when the connection must close. */
static int receive_one(struct rconn *c, struct rbuf *b, struct rreq **q, ipm_error *err)
{
	bool ready;
	int rc = read_request(b, q, err);

	if (rc < 0)
		return rc;
	ca_refresh(&c->rc->ca, c->index);
	if (!*q)
		return 0;
	rc = dispatch(c, *q, &ready);
	if (rc == -EPROTO)
		ipm_fail(err, rc, "request %llu violates the ordering window (dep %llu)",
			 (unsigned long long)(*q)->f.seq, (unsigned long long)(*q)->f.dep);
	else if (rc == -ESTALE)
		ipm_fail(err, rc, "superseded by a newer session of the primary");
	else if (rc == -ENOBUFS || rc == -EMSGSIZE)
		ipm_fail(err, rc, "request %llu (dep %llu, %u bytes) would pass the mirror's budget "
			 "for waiting requests (%u requests, %llu bytes): session forgotten, "
			 "the primary resyncs", (unsigned long long)(*q)->f.seq,
			 (unsigned long long)(*q)->f.dep, (*q)->f.len, c->rc->waiting.max_count,
			 (unsigned long long)c->rc->waiting.max_bytes);
	if (rc < 0) {
		free((*q)->data);
		free(*q);
		/* what the forgotten session made us hold goes back to the
		 * system, not only to malloc */
		if (rc == -ENOBUFS || rc == -EMSGSIZE)
			malloc_trim(0);
		return rc;
	}
	return ready;
}

/* Requests already buffered are collected and the ready ones applied
 * together: one write batch and one send of answers for all of them;
 * replayed WRITEs stay in flight while the next frames are read (struct
 * flight). */
static void serve(struct rconn *c)
{
	struct rreq *set[APPLY_BATCH], *q = NULL;
	struct rbuf b = { .c = c };
	struct flight fl = { .n = 0 };
	ipm_error err = { "" };
	unsigned n = 0;
	int rc = 0;

	b.buf = malloc(RBUF_SIZE);
	if (!b.buf)
		return;
	if (!c->tls) {
		struct timeval tv = { .tv_sec = POLL_MS / 1000, .tv_usec = POLL_MS % 1000 * 1000 };

		/* rbuf_recv_plain's quiet interval; sends stay blocking */
		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	while (rc >= 0) {
		/* what is in flight lands before the thread may wait for input */
		if (fl.n && !input_ready(c, b.end - b.pos))
			flight_land(c->rc, &fl);
		do {
			rc = receive_one(c, &b, &q, &err);
			if (rc == 1)
				set[n++] = q;
		} while (rc >= 0 && n < APPLY_BATCH && rbuf_has_frame(&b));
		/* one set in flight at a time, landed before anything else is
		 * applied; admitted requests are applied even when the
		 * connection ends */
		flight_land(c->rc, &fl);
		if (n && !(rc >= 0 && !c->tls && replay_writes(set, n) && flight_start(&fl, set, n)))
			apply_chain(c->rc, set, n);
		n = 0;
	}
	flight_land(c->rc, &fl);
	free(b.buf);
	acks_hold(c, false);  /* answers of other threads go out directly now */
	qb_log(rc == -ECONNRESET || rc == -ESTALE ? LOG_NOTICE : LOG_WARNING,
	       "connection %u from %s (%s): %s; closing", c->index, c->rc->e->peer->name,
	       c->who, err.msg);
}

/* ---- handshake -------------------------------------------------------------- */

static void join_session_locked(struct receiver *rc, struct rconn *c, const struct wire_auth *a);

/* The engine's LUNs, added ones included. */
static struct ipm_lun *lun_by_name(const struct receiver *rc, const char *name)
{
	return ipm_engine_lun_by_name(rc->e, name);
}

/* c moves from the listener to rc (the connection is authenticated and
 * holds no request yet); false, c left with the listener, when rc is
 * stopped: its receiver_stop waited for the connections it had, and one
 * joining after would outlive it (an engine stop met that: a session
 * routed to a LUN's stopped receiver, which was then freed under it). */
static bool rehome(struct rconn *c, struct receiver *rc)
{
	struct receiver *hub = c->rc;
	bool ok;

	pthread_mutex_lock(&hub->lock);
	conn_unlink_locked(hub, c);
	pthread_mutex_unlock(&hub->lock);
	pthread_mutex_lock(&rc->lock);
	ok = rc->running;
	if (ok)
		conn_link_locked(rc, c);
	pthread_mutex_unlock(&rc->lock);
	if (!ok) {
		pthread_mutex_lock(&hub->lock);
		conn_link_locked(hub, c);
		pthread_mutex_unlock(&hub->lock);
	}
	return ok;
}

/* Version 5: a session of one LUN is that LUN's own, served by its
 * receiver (l->rcv, which a role change or a down stops and takes away
 * under e->route); anything else - a version 4 peer's session of all its
 * LUNs - the listener serves itself. Then c joins the session. */
static int route(struct rconn *c, const struct wire_hello *hello, const struct wire_auth *auth,
		 struct ipm_lun *l, uint64_t *record, char *reason, size_t reason_len)
{
	ipm_engine *e = c->rc->e;
	struct receiver *to = c->rc;

	pthread_mutex_lock(&e->route);
	if (hello->version >= 5 && auth->n_luns == 1 && c->rc->own != l) {
		if (!l->rcv || !rehome(c, l->rcv)) {
			pthread_mutex_unlock(&e->route);
			snprintf(reason, reason_len, "lun \"%s\" is changing its role here, or stopping",
				 l->cfg->name);
			return EAGAIN;
		}
		to = l->rcv;
	}
	pthread_mutex_lock(&to->lock);
	join_session_locked(to, c, auth);
	*record = to->record;
	pthread_mutex_unlock(&to->lock);
	pthread_mutex_unlock(&e->route);
	return 0;
}

static int check_luns(void *opaque, const struct wire_hello *hello, const struct wire_auth *auth,
		      uint8_t *verdicts, uint64_t *fills, uint64_t *record, char *reason,
		      size_t reason_len)
{
	struct rconn *c = opaque;
	ipm_engine *e = c->rc->e;
	char why[WIRE_MSG_LEN] = "";
	unsigned verdict;
	struct ipm_lun *by_pos[WIRE_MAX_LUNS];
	uint32_t i;
	int refuse = 0, rc;

	if (hello->conn_count != e->cfg->conn_count || hello->conn_index >= hello->conn_count) {
		snprintf(reason, reason_len, "connection %u of %u, but we expect %u connections",
			 hello->conn_index, hello->conn_count, e->cfg->conn_count);
		return EINVAL;
	}
	for (i = 0; i < auth->n_luns; i++) {
		const struct wire_lun *wl = &auth->luns[i];
		struct ipm_lun *l = lun_by_name(c->rc, wl->name);

		if (!l || !l->cfg->mirrored) {
			snprintf(reason, reason_len, "unknown lun \"%s\"", wl->name);
			return ENOENT;
		}
		if (l->role != IPM_ROLE_MIRROR) {
			snprintf(reason, reason_len, "lun \"%s\" is primary here too", wl->name);
			lun_note_refusal(l, reason);
			return EBUSY;
		}
		if (l->down) {
			snprintf(reason, reason_len, "lun \"%s\" is down here", wl->name);
			return ENODEV;
		}
		/* a session of this LUN alone: the others of a version 4
		 * peer's go on (this one's changes are answered EIO) */
		if (__atomic_load_n(&l->disk_failed, __ATOMIC_ACQUIRE) && auth->n_luns == 1) {
			snprintf(reason, reason_len,
				 "lun \"%s\": its disk failed on %s: out of service until replaced and invalidated there",
				 wl->name, e->node);
			lun_note_refusal(l, reason);
			return EIO;
		}
		/* the primary grew it and we missed its RESIZE (doc/resize.md) */
		if (wl->size > ipm_lun_size(l) &&
		    resize_at_handshake(l, wl->size, reason, reason_len) < 0) {
			lun_note_refusal(l, reason);
			return EFBIG;
		}
		if (wl->size != ipm_lun_size(l)) {
			snprintf(reason, reason_len,
				 "lun \"%s\": size %llu here, peer has size %llu",
				 wl->name, (unsigned long long)l->size,
				 (unsigned long long)wl->size);
			lun_note_refusal(l, reason);
			return EINVAL;
		}
		/* the mode is the primary's business (the mirror applies
		 * alike); they differ between the reloads of the two nodes */
		if (wl->mode != l->cfg->mode)
			qb_log(LOG_WARNING, "lun %s: mode %s here, %s on the primary: reload the configuration on both nodes",
			       wl->name, ipm_mode_name(l->cfg->mode), ipm_mode_name(wl->mode));
		by_pos[i] = l;
	}
	/* every LUN gets a verdict, so the primary learns all of them at once */
	for (i = 0; i < auth->n_luns; i++) {
		rc = lun_gen_judge(by_pos[i], &auth->luns[i], &verdict, &fills[i], why,
				   sizeof(why));
		verdicts[i] = (uint8_t)verdict;
		if (rc)
			lun_note_refusal(by_pos[i], why);
		if (rc && !refuse) {
			refuse = rc;
			snprintf(reason, reason_len, "%s", why);
		}
	}
	if (refuse)
		return refuse;
	/* frames name them by id (the position in version 4) */
	for (i = 0; i < auth->n_luns; i++) {
		c->luns[auth->luns[i].id] = by_pos[i];
		if (auth->luns[i].id >= c->n_luns)
			c->n_luns = auth->luns[i].id + 1u;
	}
	/* joined before WELCOME, so that it names the record this connection
	 * is served from */
	return route(c, hello, auth, auth->n_luns ? by_pos[0] : NULL, record, reason, reason_len);
}

struct drop_arg {
	struct receiver *rc;
	uint64_t upto;
};

static bool drop_one_locked(struct wait_node *wn, void *arg)
{
	struct drop_arg *d = arg;
	struct rreq *q = rreq_of(wn);

	if (q->f.seq > d->upto)
		return false;
	hash_remove_locked(d->rc, q);
	rconn_put_locked(d->rc, q->reply);
	free(q->data);
	free(q);
	return true;
}

/* Forget the waiting requests numbered up to upto (all: UINT64_MAX). */
static void drop_waiting_locked(struct receiver *rc, uint64_t upto)
{
	struct drop_arg d = { rc, upto };

	IPM_ASSERT_HELD(&rc->lock);
	wait_drop_if(&rc->waiting, drop_one_locked, &d);
}

/* Another connection of c's session is serving. */
static bool session_up_locked(struct receiver *rc, struct rconn *c)
{
	struct rconn *o;

	IPM_ASSERT_HELD(&rc->lock);
	for (o = rc->conns; o; o = o->next)
		if (o != c && o->session == c->session)
			return true;
	return false;
}

/* c's LUNs are behind the primary until a resync's closing marker: when
 * the last connection ends, and when a session (re)joins, as some
 * connection of the last session may never have gone down (the count of
 * up connections then never reached 0). */
static void mark_behind(struct rconn *c)
{
	unsigned i;

	for (i = 0; i < c->n_luns; i++)
		if (c->luns[i])
			__atomic_store_n(&c->luns[i]->insync, false, __ATOMIC_RELAXED);
}

/* c joins its session. The same session with a higher base_seq settles
 * the record up to it; a new one (the primary restarted) gets a new record
 * under a new number, and the old session's connections are closed. */
static void join_session_locked(struct receiver *rc, struct rconn *c, const struct wire_auth *a)
{
	struct rconn *o;

	IPM_ASSERT_HELD(&rc->lock);
	c->session = a->session;
	if (rc->order.session == a->session) {
		/* after an outage the primary journaled what we did not answer
		 * and will replay it: stop waiting for those sequence numbers.
		 * Only those: what other live connections of the session
		 * brought beyond them is never sent again. */
		if (a->base_seq > rc->order.prefix) {
			qb_log(LOG_NOTICE, "peer %s: requests up to %llu settled by the primary's journal",
			       rc->e->peer->name, (unsigned long long)a->base_seq);
			order_settle(&rc->order, a->base_seq);
			drop_waiting_locked(rc, a->base_seq);
			if (!session_up_locked(rc, c))
				mark_behind(c);
		}
		return;
	}
	mark_behind(c);
	qb_log(LOG_NOTICE, "peer %s: new session %016llx from sequence %llu",
	       rc->e->peer->name, (unsigned long long)a->session,
	       (unsigned long long)a->base_seq);
	order_reset(&rc->order, a->session, a->base_seq);
	/* the window it announced bounds what we hold for it */
	rc->waiting.max_count = a->window;
	do
		auth_random((uint8_t *)&rc->record, sizeof(rc->record));
	while (!rc->record);
	drop_waiting_locked(rc, UINT64_MAX);
	/* connections still in their handshake (session 0) join on their own */
	for (o = rc->conns; o; o = o->next)
		if (o != c && o->session && o->session != a->session)
			shutdown(o->fd, SHUT_RDWR);
}

/* Refusals are logged in a burst of REFUSAL_LOG_BURST lines, then one per
 * REFUSAL_LOG_MS (a token bucket): a flood must not flood the log, a few
 * refusals all give their reason. True when this one may be logged; *quiet
 * is the count of those that were not since the last line. */
static bool refusal_log_locked(struct receiver *rc, unsigned *quiet)
{
	int64_t now = ipm_now_ms(), earned = (now - rc->refusal_log_at) / REFUSAL_LOG_MS;

	IPM_ASSERT_HELD(&rc->lock);
	if (!rc->refusal_log_at || rc->refusal_log_tokens + earned >= REFUSAL_LOG_BURST) {
		rc->refusal_log_tokens = REFUSAL_LOG_BURST;
		rc->refusal_log_at = now;
	} else if (earned > 0) {
		rc->refusal_log_tokens += (unsigned)earned;
		rc->refusal_log_at += earned * REFUSAL_LOG_MS;
	}
	if (!rc->refusal_log_tokens) {
		rc->refusals_quiet++;
		return false;
	}
	rc->refusal_log_tokens--;
	*quiet = rc->refusals_quiet;
	rc->refusals_quiet = 0;
	return true;
}

static void log_refusal(struct receiver *rc, const char *who, const char *why)
{
	unsigned quiet = 0;
	bool log;

	pthread_mutex_lock(&rc->lock);
	log = refusal_log_locked(rc, &quiet);
	pthread_mutex_unlock(&rc->lock);
	if (!log)
		return;
	if (quiet)
		qb_log(LOG_WARNING, "connection from %s refused: %s (and %u more refusals not logged)",
		       who, why, quiet);
	else
		qb_log(LOG_WARNING, "connection from %s refused: %s", who, why);
}

static void slot_release(struct receiver *rc, unsigned pool);

/* Run the handshake in the slot accept_burst took for it. */
static int conn_handshake(struct rconn *c, struct wire_hello *hello, struct wire_auth *auth,
			  ipm_error *err)
{
	struct receiver *rc = c->rc;
	struct hs_tls tls = { .mode = rc->e->cfg->tls_mode, .creds = rc->e->tls_server };
	int r;

	if (auth) {
		r = handshake_server_tls(c->fd, 0, rc->e->node, rc->e->peer->name, rc->secret,
					 &tls, check_luns, c, hello, auth, err);
		c->tls = tls.session;
		c->payload_crc = mirror_tls_payload_crc(c->tls);
	} else
		r = ipm_fail(err, -ENOMEM, "out of memory");
	slot_release(rc, c->pool);
	return r;
}

static void *conn_main(void *arg)
{
	struct rconn *c = arg;
	struct receiver *rc = c->rc;
	struct wire_hello hello;
	struct wire_auth *auth = malloc(sizeof(*auth));
	ipm_error err = { "" };
	struct rreq *ready[APPLY_BATCH];
	unsigned n_ready;
	char how[128];
	int rc_hs;

	rc_hs = conn_handshake(c, &hello, auth, &err);
	rc = c->rc;  /* the LUN's own receiver when its session is (route) */
	if (rc_hs < 0) {
		log_refusal(rc, c->who, err.msg);
		goto out;
	}
	c->index = hello.conn_index;
	pthread_mutex_lock(&rc->lock);
	/* a settled prefix may free waiting requests */
	n_ready = take_ready_locked(rc, ready, APPLY_BATCH);
	pthread_mutex_unlock(&rc->lock);
	apply_chain(rc, ready, n_ready);
	ca_set_up(&rc->ca, c->index, c->fd);
	qb_log(LOG_NOTICE, "connection %u from %s (%s) is up, %u lun(s), protocol version %u%s%s",
	       c->index, rc->e->peer->name, c->who, auth->n_luns, hello.version,
	       c->tls ? ", " : "", c->tls ? mirror_tls_describe(c->tls, how, sizeof(how)) : "");
	serve(c);
	ca_release(&rc->ca, c->index, c->fd);
	/* the primary goes on without us: we are behind until its next resync */
	if (ca_count_up(&rc->ca) == 0)
		mark_behind(c);
out:
	free(auth);
	shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_lock(&rc->lock);
	rconn_put_locked(rc, c);
	pthread_mutex_unlock(&rc->lock);
	return NULL;
}

static void describe_peer(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char host[64] = "?", port[8] = "?";

	getnameinfo((const struct sockaddr *)ss, sizeof(*ss), host, sizeof(host), port,
		    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(out, len, "%s:%s", host, port);
}

/* Does the connection come from the peer's data address? */
static bool from_peer(const struct receiver *rc, const struct sockaddr_storage *ss)
{
	const struct sockaddr_storage *p = &rc->peer_addr;

	if (!rc->have_peer_addr || ss->ss_family != p->ss_family)
		return false;
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)p)->sin_addr.s_addr;
	return ss->ss_family == AF_INET6 &&
	       !memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr,
		       &((const struct sockaddr_in6 *)p)->sin6_addr, sizeof(struct in6_addr));
}

/* A handshake slot for a new connection in its pool, or -EAGAIN when all
 * are taken: it is closed at once then, told nothing (it is not
 * authenticated). */
static int handshake_slot(struct receiver *rc, const struct sockaddr_storage *ss)
{
	unsigned pool = from_peer(rc, ss) ? POOL_PEER : POOL_OTHERS;
	char who[80], why[128];
	bool ok;

	pthread_mutex_lock(&rc->lock);
	ok = rc->n_handshakes[pool] < rc->max_handshakes[pool];
	if (ok)
		rc->n_handshakes[pool]++;
	pthread_mutex_unlock(&rc->lock);
	if (ok)
		return (int)pool;
	describe_peer(ss, who, sizeof(who));
	snprintf(why, sizeof(why), "%u unauthenticated connections %sin their handshake "
		 "already (the limit)", rc->max_handshakes[pool],
		 pool == POOL_PEER ? "from the peer's address " : "");
	log_refusal(rc, who, why);
	return -EAGAIN;
}

static void slot_release(struct receiver *rc, unsigned pool)
{
	pthread_mutex_lock(&rc->lock);
	rc->n_handshakes[pool]--;
	pthread_mutex_unlock(&rc->lock);
}

/* Serve a new connection in a thread of its own: -errno when it could
 * not be (the caller closes fd). */
static int conn_start(struct receiver *rc, int fd, const struct sockaddr_storage *ss,
		      unsigned pool)
{
	struct rconn *c = calloc(1, sizeof(*c));
	pthread_t t;
	int one = 1;

	if (!c)
		return -ENOMEM;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->rc = rc;
	c->fd = fd;
	c->refs = 1;
	c->pool = pool;
	pthread_mutex_init(&c->send_lock, NULL);
	describe_peer(ss, c->who, sizeof(c->who));
	pthread_mutex_lock(&rc->lock);
	conn_link_locked(rc, c);
	pthread_mutex_unlock(&rc->lock);
	if (pthread_create(&t, NULL, conn_main, c) != 0) {
		c->fd = -1;  /* the caller's to close */
		pthread_mutex_lock(&rc->lock);
		rconn_put_locked(rc, c);
		pthread_mutex_unlock(&rc->lock);
		return -EAGAIN;
	}
	pthread_detach(t);
	return 0;
}

/* Take the connections waiting in the listen queue (up to a burst), so
 * that a flood of them does not fill it and keep the primary out. */
static void accept_burst(struct receiver *rc)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	unsigned i;
	int fd, pool;

	for (i = 0; i < ACCEPT_BURST; i++) {
		sl = sizeof(ss);
		fd = accept4(rc->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0)
			return;  /* EAGAIN: the queue is empty */
		pool = handshake_slot(rc, &ss);
		if (pool < 0) {
			close(fd);
			continue;
		}
		if (conn_start(rc, fd, &ss, (unsigned)pool) < 0) {
			slot_release(rc, (unsigned)pool);
			close(fd);
		}
	}
}

static void *listener_main(void *arg)
{
	struct receiver *rc = arg;
	struct pollfd pfd = { .fd = rc->listen_fd, .events = POLLIN };

	for (;;) {
		pthread_mutex_lock(&rc->lock);
		bool running = rc->running;

		pthread_mutex_unlock(&rc->lock);
		if (!running)
			break;
		if (poll(&pfd, 1, 200) == 1)
			accept_burst(rc);
	}
	return NULL;
}

/* Non-blocking: the listener takes connections until the queue is empty.
 * A deep queue: a burst of connections waits there for accept_burst instead
 * of being dropped, so the primary's is not lost among them. */
static int listen_on(const struct ipm_endpoint *ep, ipm_error *err)
{
	return net_listen_tcp(ep->address, ep->port, LISTEN_BACKLOG, SOCK_NONBLOCK, "data address",
			      err);
}

/* ---- life cycle ---------------------------------------------------------- */

/* The peer's data address into *ss: false for a name (no lookup here),
 * none, or the wildcard (then its connections come from anywhere). */
static bool numeric_address(const char *address, struct sockaddr_storage *ss)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
	struct addrinfo *ai;
	bool any;

	if (!address || getaddrinfo(address, NULL, &hints, &ai))
		return false;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (ss->ss_family == AF_INET)
		any = ((struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	else
		any = !memcmp(&((struct sockaddr_in6 *)ss)->sin6_addr, &in6addr_any,
			      sizeof(in6addr_any));
	return !any;
}

int receiver_create(ipm_engine *e, const struct auth_secret *secret, struct ipm_lun **luns,
		    unsigned n_luns, struct receiver **out, ipm_error *err)
{
	struct receiver *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return ipm_fail(err, -ENOMEM, "out of memory");
	rc->e = e;
	rc->luns = luns;
	rc->n_luns = n_luns;
	rc->secret = secret;
	rc->listen_fd = -1;
	ca_init(&rc->ca, e->cfg->conn_count);
	/* each LUN's session dials its n connections at once (a start, the
	 * end of an outage): with a pool of 2n for all of them, 64 LUNs met
	 * refusals and their backoffs, 1-2 s to all uptodate */
	rc->max_handshakes[POOL_OTHERS] = 2 * e->cfg->conn_count;
	rc->max_handshakes[POOL_PEER] = e->cfg->conn_count * (n_luns > 2 ? n_luns : 2);
	rc->have_peer_addr = numeric_address(e->peer->data.address, &rc->peer_addr);
	pthread_mutex_init(&rc->lock, NULL);
	pthread_cond_init(&rc->idle, NULL);
	wait_init(&rc->waiting, WIRE_MAX_WINDOW, WIRE_MAX_INFLIGHT_BYTES);
	*out = rc;
	return 0;
}

int receiver_create_lun(ipm_engine *e, const struct auth_secret *secret, struct ipm_lun *l,
			struct receiver **out, ipm_error *err)
{
	int rc = receiver_create(e, secret, NULL, 0, out, err);

	if (rc == 0)
		(*out)->own = l;
	return rc;
}

int receiver_start(struct receiver *rc, ipm_error *err)
{
	int fd, r;

	if (rc->own) {
		pthread_mutex_lock(&rc->lock);
		rc->running = true;
		pthread_mutex_unlock(&rc->lock);
		rc->started = true;
		return 0;
	}
	fd = listen_on(&rc->e->self->data, err);
	if (fd < 0)
		return fd;
	rc->listen_fd = fd;
	rc->running = true;
	r = pthread_create(&rc->listener, NULL, listener_main, rc);
	if (r) {
		rc->running = false;
		return ipm_fail(err, -r, "cannot start the listener thread");
	}
	rc->started = true;
	return 0;
}

void receiver_stop(struct receiver *rc)
{
	struct rconn *c;

	if (!rc->started)
		return;
	pthread_mutex_lock(&rc->lock);
	rc->running = false;
	pthread_mutex_unlock(&rc->lock);
	if (!rc->own) {
		pthread_join(rc->listener, NULL);
		close(rc->listen_fd);
		rc->listen_fd = -1;
	}
	pthread_mutex_lock(&rc->lock);
	for (c = rc->conns; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	/* a connection thread may still queue frames it had buffered: drop
	 * what waits again and again, or their references keep n_conns up */
	drop_waiting_locked(rc, UINT64_MAX);
	while (rc->n_conns) {
		ipm_cond_wait_ms(&rc->idle, &rc->lock, 100);
		drop_waiting_locked(rc, UINT64_MAX);
	}
	pthread_mutex_unlock(&rc->lock);
	rc->started = false;
}

void receiver_destroy(struct receiver *rc)
{
	if (!rc)
		return;
	receiver_stop(rc);
	/* receiver_stop dropped what waited: each held a connection */
	wait_free(&rc->waiting);
	ca_destroy(&rc->ca);
	pthread_cond_destroy(&rc->idle);
	pthread_mutex_destroy(&rc->lock);
	free(rc);
}

int receiver_send_hbslot(struct receiver *rc, unsigned slot, const uint8_t *data)
{
	struct rconn *c;
	int rc_send = -ENOTCONN;

	pthread_mutex_lock(&rc->lock);
	for (c = rc->conns; c; c = c->next)
		if (c->session && ca_status(&rc->ca, c->index) == IPM_LINK_UP)
			break;
	if (c)
		c->refs++;
	pthread_mutex_unlock(&rc->lock);
	if (!c)
		return -ENOTCONN;
	pthread_mutex_lock(&c->send_lock);
	rc_send = storage_hb_send_frame(c->fd, c->tls, slot, data);
	pthread_mutex_unlock(&c->send_lock);
	pthread_mutex_lock(&rc->lock);
	rconn_put_locked(rc, c);
	pthread_mutex_unlock(&rc->lock);
	return rc_send;
}

struct connection_array *receiver_connections(struct receiver *rc)
{
	return &rc->ca;
}

/* Does a connection of the primary's current session carry this LUN? The
 * connection set is shared by every LUN of the direction: connections up
 * for another LUN say nothing about this one (it may have no primary). */
static bool lun_served(struct receiver *rc, struct ipm_lun *l)
{
	struct rconn *c;
	bool served = false;
	uint32_t i;

	pthread_mutex_lock(&rc->lock);
	for (c = rc->conns; c && !served; c = c->next) {
		if (!c->session || c->session != rc->order.session)
			continue;
		for (i = 0; i < c->n_luns && !served; i++)
			served = c->luns[i] == l;
	}
	pthread_mutex_unlock(&rc->lock);
	return served;
}

void receiver_reconnect(struct receiver *rc, const char *why)
{
	struct rconn *c;
	unsigned n = 0;

	pthread_mutex_lock(&rc->lock);
	for (c = rc->conns; c; c = c->next) {
		if (c->session) {
			shutdown(c->fd, SHUT_RDWR);
			n++;
		}
	}
	pthread_mutex_unlock(&rc->lock);
	if (n)
		qb_log(LOG_NOTICE, "peer %s: %u connection(s) closed: %s", rc->e->peer->name, n, why);
}

enum ipm_lun_state receiver_lun_state(struct receiver *rc, struct ipm_lun *l)
{
	if (ca_count_up(&rc->ca) == 0 || !lun_served(rc, l))
		return IPM_STATE_OUTDATED;
	/* connected: up to date only once a resync pass has ended here */
	if (!__atomic_load_n(&l->insync, __ATOMIC_RELAXED))
		return IPM_STATE_RESYNCING;
	return IPM_STATE_UPTODATE;
}

void receiver_set_hbslot_sink(struct receiver *rc, wire_hbslot_fn fn, void *opaque)
{
	rc->on_hbslot = fn;
	rc->hbslot_opaque = opaque;
}
