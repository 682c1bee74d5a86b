/* worker.c - the primary's connections: one worker thread per connection
 * dials (with a backoff), runs the handshake and sends batches of requests;
 * its reader thread takes the mirror's answers. */
#include <errno.h>
#include <fcntl.h>
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

#include "auth.h"
#include "crc32c.h"
#include "fullio.h"
#include "handshake.h"
#include "lockdebug.h"
#include "lun.h"
#include "mirror_tls.h"
#include "netaddr.h"
#include "replicator_int.h"
#include "storage_hb.h"

#define CONNECT_TIMEOUT_MS 3000
/* reconnect backoff of a worker (rep_worker_main) */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define BACKOFF_RESET_MS 10000

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

/* The frames complete in w->rbuf: answers complete their requests, an
 * HBSLOT frame's payload goes to slot (*have_slot). The caller owns w's
 * receive side. 0, or -EBADMSG with err. */
static int rx_frames_locked(struct replicator *r, struct worker *w, uint8_t *slot,
			    unsigned *slot_index, bool *have_slot, ipm_error *err)
{
	struct wire_frame f;
	size_t pos;

	IPM_ASSERT_HELD(&r->lock);
	for (pos = 0; w->rhave - pos >= WIRE_FRAME_LEN; pos += WIRE_FRAME_LEN) {
		const uint8_t *payload = w->rbuf + pos + WIRE_FRAME_LEN;
		struct mreq *m;

		if (wire_frame_decode(w->rbuf + pos, r->n_luns, &f, err) < 0)
			return -EBADMSG;
		if (f.type == WIRE_HBSLOT) {
			if (w->rhave - pos < WIRE_FRAME_LEN + f.len)
				break;  /* the rest of its payload is still to come */
			if (take_hbslot(&f, payload, slot, slot_index, err) < 0)
				return -EBADMSG;
			*have_slot = true;
			pos += f.len;
			continue;
		}
		if ((f.type == WIRE_VERIFY_REPLY || f.type == WIRE_READ_REPLY) &&
		    w->rhave - pos < WIRE_FRAME_LEN + f.len)
			break;  /* the rest of its payload is still to come */
		if (f.type != WIRE_ACK && f.type != WIRE_VERIFY_REPLY &&
		    f.type != WIRE_READ_REPLY && f.type != WIRE_RESIZE_REPLY)
			return ipm_fail(err, -EBADMSG, "unexpected frame type %u", f.type);
		m = hash_remove(r, f.seq);
		if (m) { /* verify.c keeps a VERIFY's digests, remote_read.c a READ's bytes */
			verify_answer_locked(m, &f, payload);
			remote_read_answer_locked(m, &f, payload);
			resize_answer_locked(m, &f);
		}
		pos += f.len;

		/* unknown: answered already on a connection that broke */
		if (!m)
			continue;
		if (m->conn >= 0 && r->workers[m->conn].outstanding)
			r->workers[m->conn].outstanding--;
		/* the mirror applied everything m depended on before m */
		if (m->f.dep > r->landed_floor)
			r->landed_floor = m->f.dep;
		complete_locked(r, m, f.status);
	}
	memmove(w->rbuf, w->rbuf + pos, w->rhave - pos);
	w->rhave -= pos;
	return 0;
}

/* Receive once on w and handle what came: r->lock held, dropped while
 * receiving; the caller owns w's receive side. 0, or < 0 with err when the
 * connection is unusable (closed, broken, or a protocol error). */
static int rx_once_locked(struct replicator *r, struct worker *w, ipm_error *err)
{
	uint8_t slot[WIRE_HBSLOT_LEN];
	unsigned slot_index = 0;
	bool have_slot = false;
	ssize_t n;
	int rc;

	IPM_ASSERT_HELD(&r->lock);
	pthread_mutex_unlock(&r->lock);
	do
		n = ipm_conn_recv(w->fd, w->tls, w->rbuf + w->rhave, sizeof(w->rbuf) - w->rhave, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		ca_refresh(&r->ca, w->index);
	else if (n < 0 && w->tls && (errno == EBADMSG || errno == EPROTO))
		snprintf(err->msg, sizeof(err->msg), "TLS: %s", ipm_tls_error(w->tls));
	else if (n < 0)
		snprintf(err->msg, sizeof(err->msg), "%s", strerror(errno));
	else
		snprintf(err->msg, sizeof(err->msg), "closed by peer");
	pthread_mutex_lock(&r->lock);
	if (n <= 0)
		return -ECONNRESET;
	w->rhave += (size_t)n;
	rc = rx_frames_locked(r, w, slot, &slot_index, &have_slot, err);
	if (rc < 0) {
		qb_log(LOG_ERR, "connection %u to %s: %s; closing", w->index, r->e->peer->name,
		       err->msg);
		return rc;
	}
	if (have_slot && r->on_hbslot) {
		pthread_mutex_unlock(&r->lock);
		r->on_hbslot(r->hbslot_opaque, slot_index, slot);
		pthread_mutex_lock(&r->lock);
	}
	return 0;
}

/* The connection broke under its receiver (r->lock held). */
static void rx_failed_locked(struct replicator *r, struct worker *w, const ipm_error *err)
{
	IPM_ASSERT_HELD(&r->lock);
	if (!w->failed && r->running)
		qb_log(LOG_WARNING, "connection %u to %s broke: %s", w->index, r->e->peer->name,
		       err->msg);
	w->failed = true;
	pthread_cond_broadcast(&r->queue_cond);
}

/* Parked reader: is anything to receive? Answers expected, bytes of a
 * frame begun, or (checked at each PARK_MS) something unasked in the
 * socket: an HBSLOT frame, or the peer closing. */
#define PARK_MS 100
static bool rx_wanted_locked(struct replicator *r, struct worker *w, bool look)
{
	struct pollfd pfd = { .fd = w->fd, .events = POLLIN };

	IPM_ASSERT_HELD(&r->lock);
	if (w->rx_owner != RX_NONE)
		return false;
	if (w->outstanding || w->rhave)
		return true;
	return look && ((w->tls && ipm_tls_pending(w->tls)) || poll(&pfd, 1, 0) == 1);
}

/* One per connection: receives the mirror's answers whenever no host
 * thread does (see struct worker, rx_owner). */
static void *reader_main(void *arg)
{
	struct worker *w = arg;
	struct replicator *r = w->r;
	ipm_error err = { "" };

	pthread_mutex_lock(&r->lock);
	for (;;) {
		bool look = false;

		while (!w->rx_stop && !w->failed && r->running && !rx_wanted_locked(r, w, look)) {
			ipm_cond_wait_ms(&w->rx_cond, &r->lock, PARK_MS);
			look = true;
		}
		if (w->rx_stop || w->failed || !r->running) {
			snprintf(err.msg, sizeof(err.msg), "closed");
			break;
		}
		w->rx_owner = RX_READER;
		if (rx_once_locked(r, w, &err) < 0) {
			w->rx_owner = RX_NONE;
			break;
		}
		w->rx_owner = RX_NONE;
	}
	rx_failed_locked(r, w, &err);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static bool all_done(struct mreq **v, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (!v[i]->done)
			return false;
	return true;
}

void rx_wait_locked(struct replicator *r, struct mreq **v, unsigned n)
{
	struct mreq *mine = NULL;
	ipm_error err = { "" };
	struct worker *w;
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < n && !mine; i++)
		if (v[i]->rx)
			mine = v[i];
	if (!mine)
		return;
	w = mine->rx;
	/* rx_assign_locked gave it to us with all of v sent on w */
	while (!all_done(v, n) && !w->failed) {
		if (rx_once_locked(r, w, &err) < 0) {
			rx_failed_locked(r, w, &err);
			break;
		}
	}
	mine->rx = NULL;
	w->rx_owner = RX_NONE;
	if (w->failed || w->rx_stop) {
		pthread_cond_broadcast(&w->rx_cond);
		pthread_cond_broadcast(&r->link_cond);  /* worker_disconnect waits */
	} else if (w->outstanding || w->rhave) {
		pthread_cond_signal(&w->rx_cond);  /* others' answers: the reader's */
	}
}

/* Non-blocking connect bounded by CONNECT_TIMEOUT_MS, from our data address
 * so replication uses the network the config names. */
/* The peer refused our handshake: every LUN of this direction shows why. */
static void note_refusal(struct replicator *r, const char *why)
{
	unsigned i;

	for (i = 0; i < r->n_luns; i++)
		lun_note_refusal(r->luns[i].lun, why);
}

static int dial(struct replicator *r, ipm_error *err)
{
	const struct ipm_endpoint *to = &r->e->peer->data, *from = &r->e->self->data;
	struct sockaddr_storage ss, src;
	socklen_t len, slen;
	struct pollfd pfd;
	int fd, rc, one = 1, so_err = 0;
	socklen_t el = sizeof(so_err);

	if (net_resolve(to->address, to->port, SOCK_STREAM, AF_UNSPEC, false, &ss, &len))
		return ipm_fail(err, -EHOSTUNREACH, "cannot resolve %s", to->address);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return ipm_fail(err, -errno, "socket: %s", strerror(errno));
	if (from->address &&
	    net_resolve(from->address, 0, SOCK_STREAM, AF_UNSPEC, false, &src, &slen) == 0 &&
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

/* The LUNs as this handshake announces them: a copy of r->wire_luns (names,
 * ids, sizes, modes; r->lock guards it) with our data generations. Each
 * connection's handshake has its own: they run at once. NULL when out of
 * memory. */
static struct wire_lun *wire_luns_announce(struct replicator *r)
{
	struct wire_lun *wl = malloc(r->n_luns * sizeof(*wl));
	unsigned i;

	if (!wl)
		return NULL;
	pthread_mutex_lock(&r->lock);
	memcpy(wl, r->wire_luns, r->n_luns * sizeof(*wl));
	pthread_mutex_unlock(&r->lock);
	for (i = 0; i < r->n_luns; i++)
		lun_gen_announce(r->luns[i].lun, &wl[i]);
	return wl;
}

/* The mirror's per-LUN verdicts: split brain, or a full copy needed (of
 * the fill fills[i], resumed when it is the one our bitmap tracks). */
static void take_verdicts(struct replicator *r, const uint8_t *verdicts, const uint64_t *fills,
			  bool accepted)
{
	unsigned i;

	for (i = 0; i < r->n_luns; i++) {
		struct rep_lun *rl = &r->luns[i];

		lun_gen_verdict(rl->lun, verdicts[i], accepted);
		if (!accepted || !(verdicts[i] & WIRE_LV_FULL))
			continue;
		pthread_mutex_lock(&r->lock);
		/* logged there: a new copy, or one that resumes */
		if (resync_want_full_locked(&r->rs, i, fills[i])) {
			if (r->link == LINK_LIVE) {
				r->force_resync = true;
				pthread_cond_broadcast(&r->link_cond);
			}
		}
		pthread_mutex_unlock(&r->lock);
	}
}


/* Start over with the mirror's next record: drop every connection. */
void forget_record_locked(struct replicator *r)
{
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	r->peer_record = 0;
	r->downs++;
	/* down in the array at once, not when each worker has cleaned up:
	 * the monitor would count them as a new link and start a resync on
	 * connections that are going (monitor_down_locked) */
	for (i = 0; i < r->n_conns; i++) {
		if (r->workers[i].fd >= 0) {
			shutdown(r->workers[i].fd, SHUT_RDWR);
			ca_set_down(&r->ca, i);
		}
	}
}

/* The mirror knows what it applied of ours only in its ordering record
 * (one per session). Another record than before means its engine restarted
 * while our link stayed up (during a resync, connections just come back):
 * numbers we count as answered - out of order, or by an answer still on
 * its way from the old one - are unknown to the new record, which would
 * wait for them for ever. Only a fresh start is safe: journal what is
 * unanswered and resync. */
static int adopt_record_locked(struct replicator *r, uint64_t record, uint64_t downs,
			       uint16_t version, bool no_crc, ipm_error *err)
{
	IPM_ASSERT_HELD(&r->lock);
	if (r->downs != downs)
		return ipm_fail(err, -ECONNRESET, "the link went down during the handshake");
	if (!r->peer_record) {
		/* frames are encoded for it from now on (replicator.c) */
		r->peer_record = record;
		r->wire_version = version;
		r->wire_no_crc = no_crc;
		crc_late_update_locked(r);
	}
	if (r->peer_record == record && r->wire_version != version)
		return ipm_fail(err, -EPROTO, "%s spoke protocol version %u, before %u on this record",
				r->e->peer->name, version, r->wire_version);
	if (r->peer_record == record && r->wire_no_crc != no_crc)
		return ipm_fail(err, -EPROTO, "%s agreed to WRITE payloads %s CRC32C, before %s on "
				"this record", r->e->peer->name, no_crc ? "without" : "with",
				r->wire_no_crc ? "without" : "with");
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

/* One dial and handshake offering version offer (0: ours): 0 with the
 * connection in w->fd, or a negative errno (-EPROTONOSUPPORT with *spoken
 * the version an older peer speaks). */
static int connect_once(struct worker *w, uint16_t offer, uint16_t *spoken, ipm_error *err)
{
	struct replicator *r = w->r;
	struct hs_client_params p = {
		.self = r->e->node, .peer = r->e->peer->name,
		.conn_index = (uint16_t)w->index, .conn_count = (uint16_t)r->n_conns,
		.secret = r->secret, .session = r->session, .window = r->window_told,
		.n_luns = r->n_luns, .version_max = offer,
		.version = spoken,
	};
	struct hs_tls tls = { .mode = r->e->cfg->tls_mode, .creds = r->e->tls_client };
	uint8_t verdicts[WIRE_MAX_LUNS] = { 0 };
	uint64_t fills[WIRE_MAX_LUNS] = { 0 };
	uint64_t record = 0, downs;
	struct wire_lun *luns;
	int fd = dial(r, err), rc;

	p.verdicts = verdicts;
	p.fills = fills;
	p.record = &record;
	p.tls = &tls;
	if (fd < 0)
		return fd;
	p.luns = luns = wire_luns_announce(r);
	if (!luns) {
		close(fd);
		return ipm_fail(err, -ENOMEM, "out of memory");
	}
	pthread_mutex_lock(&r->lock);
	p.base_seq = lowest_unacked(r) - 1;
	downs = r->downs;
	w->fd = fd;
	w->failed = false;
	pthread_mutex_unlock(&r->lock);
	rc = handshake_client(fd, &p, err);
	free(luns);
	if (rc != -EPROTONOSUPPORT)
		take_verdicts(r, verdicts, fills, rc == 0);
	if (rc < 0 && rc != -EPROTONOSUPPORT && strncmp(err->msg, "refused by ", 11) == 0)
		note_refusal(r, err->msg); /* the peer's verdict, not a broken link */
	if (rc < 0)
		goto fail;
	pthread_mutex_lock(&r->lock);
	rc = adopt_record_locked(r, record, downs, *spoken,
				 !mirror_tls_payload_crc(tls.session), err);
	pthread_mutex_unlock(&r->lock);
	if (rc < 0)
		goto fail;
	w->tls = tls.session;
	return 0;
fail:
	pthread_mutex_lock(&r->lock);
	w->fd = -1;
	pthread_mutex_unlock(&r->lock);
	ipm_tls_free(tls.session);
	close(fd);
	return rc;
}

static int worker_connect(struct worker *w)
{
	struct replicator *r = w->r;
	ipm_error err = { "" };
	uint16_t spoken = 0;
	char how[128];
	int rc;

	rc = connect_once(w, 0, &spoken, &err);
	if (rc == -EPROTONOSUPPORT) {
		/* a peer of the previous release: at once in its version */
		qb_log(w->quiet ? LOG_DEBUG : LOG_NOTICE, "connection %u to %s: %s", w->index,
		       r->e->peer->name, err.msg);
		rc = connect_once(w, spoken, &spoken, &err);
	}
	if (rc < 0)
		goto fail;
	pthread_mutex_lock(&r->lock);
	w->rx_stop = false;
	w->rx_owner = RX_NONE;
	w->outstanding = 0;
	w->rhave = 0;
	pthread_mutex_unlock(&r->lock);
	rc = pthread_create(&w->reader, NULL, reader_main, w);
	if (rc) {
		rc = ipm_fail(&err, -rc, "cannot start reader thread");
		pthread_mutex_lock(&r->lock);
		close(w->fd);
		w->fd = -1;
		ipm_tls_free(w->tls);
		w->tls = NULL;
		pthread_mutex_unlock(&r->lock);
		goto fail;
	}
	ca_set_up(&r->ca, w->index, w->fd);
	qb_log(LOG_NOTICE, "connection %u to %s is up (protocol version %u%s%s)", w->index,
	       r->e->peer->name, spoken, w->tls ? ", " : "",
	       w->tls ? mirror_tls_describe(w->tls, how, sizeof(how)) : "");
	if (r->on_version)
		r->on_version(r->version_opaque, spoken);
	w->quiet = false;
	return 0;
fail:
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
	w->outstanding += (unsigned)n;
	return n;
}

static bool worker_should_wait(struct replicator *r, struct worker *w)
{
	return (!r->qhead || w->sending) && r->running && !w->failed && r->connect_allowed;
}

/* Is the batch mine and the rest of its chunk, all of them? */
static bool batch_is_mine(struct mreq **batch, int n, const struct mreq *mine)
{
	int i;

	if ((unsigned)n != (mine->chunk ? mine->chunk_n : 1))
		return false;
	for (i = 0; i < n; i++)
		if (batch[i] != mine && (!mine->chunk || batch[i]->chunk != mine->chunk))
			return false;
	return true;
}

/* Who receives the answers of a batch just taken for w: the host thread
 * that sends mine, when mine (with the rest of its chunk) goes alone on a
 * connection that expects nothing else (its reader is parked); else w's
 * reader, woken if parked. */
static void rx_assign_locked(struct worker *w, struct mreq **batch, int n, struct mreq *mine)
{
	IPM_ASSERT_HELD(&w->r->lock);
	if (w->rx_owner != RX_NONE)
		return;  /* the owner receives these answers too */
	if (mine && w->outstanding == (unsigned)n && !w->rhave && batch_is_mine(batch, n, mine)) {
		w->rx_owner = RX_HOST;
		mine->rx = w;
	} else {
		pthread_cond_signal(&w->rx_cond);
	}
}

/* Send one batch from the queue on w: r->lock held, dropped while sending.
 * Whoever sends (w's worker thread or a host thread) owns w->fd until
 * w->sending is false again. */
static int send_batch_locked(struct replicator *r, struct worker *w, struct mreq *mine)
{
	struct mreq *batch[BATCH_FRAMES];
	struct iovec iov[BATCH_FRAMES * 2];
	int n, i, cnt, rc;

	IPM_ASSERT_HELD(&r->lock);
	n = take_batch(r, w, batch);
	rx_assign_locked(w, batch, n, mine);
	/* the answer may be taken (and the request freed, or its host gone)
	 * before sendmsg returns: the batch stays alive until then */
	for (i = 0; i < n; i++)
		if (batch[i]->sync)
			batch[i]->in_send++;
		else
			batch[i]->refs++;
	w->sending = true;
	r->sending++;
	pthread_mutex_unlock(&r->lock);
	for (i = 0, cnt = 0; i < n; i++) {
		iov[cnt++] = (struct iovec){ batch[i]->hdr, WIRE_FRAME_LEN };
		if (batch[i]->f.len)
			iov[cnt++] = (struct iovec){ (void *)batch[i]->data, batch[i]->f.len };
	}
	pthread_mutex_lock(&w->send_lock);
	rc = ipm_conn_sendv(w->fd, w->tls, iov, cnt);
	pthread_mutex_unlock(&w->send_lock);
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < n; i++)
		if (!batch[i]->sync)
			mreq_put_locked(batch[i]);
		else if (--batch[i]->in_send == 0 && batch[i]->done)
			pthread_cond_signal(&batch[i]->cond);
	w->sending = false;
	/* only go_down_locked (the link no longer live) and worker_serve (w no
	 * longer serving) wait for sends to end: a broadcast after every send
	 * woke the monitor once per request */
	if ((--r->sending == 0 && r->link != LINK_LIVE) || !w->serving)
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
void send_mine_locked(struct replicator *r, size_t len, struct mreq *mine)
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
		if (send_batch_locked(r, w, mine) < 0)
			break;
	/* a worker may have slept through its turn while we held its socket */
	if (r->qhead)
		pthread_cond_broadcast(&r->queue_cond);
}

void send_now_locked(struct replicator *r, size_t len)
{
	send_mine_locked(r, len, NULL);
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
		if (send_batch_locked(r, w, NULL) < 0)
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
	pthread_mutex_lock(&r->lock);
	w->rx_stop = true;
	pthread_cond_broadcast(&w->rx_cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(w->reader, NULL);
	pthread_mutex_lock(&r->lock);
	/* a host thread receiving on the socket (rx_wait_locked) sees it shut */
	while (w->rx_owner == RX_HOST)
		pthread_cond_wait(&r->link_cond, &r->lock);
	w->outstanding = 0;
	w->rhave = 0;
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
	ipm_tls_free(w->tls);
	w->tls = NULL;
	pthread_mutex_unlock(&w->send_lock);
	pthread_cond_broadcast(&r->queue_cond);
	pthread_mutex_unlock(&r->lock);
	ca_set_down(&r->ca, w->index);
	pthread_mutex_lock(&r->lock);
	/* the resync may wait for answers or window space (resync_link_ok_locked) */
	pthread_cond_broadcast(&r->link_cond);
	pthread_cond_broadcast(&r->space_cond);
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
void *rep_worker_main(void *arg)
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

