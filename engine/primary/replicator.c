/* replicator.c - the primary's mirror requests: the in-flight table, host
 * submission and completion (lun_ops), the life cycle. The connections are
 * worker.c's, the link state link.c's. */
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

#define STOP_DRAIN_MS 5000
#define PEER_FAILED_HOLD_MS 3000 /* see peer_lacks_locked */

/* A payload handed over: to its release, or free() without one. */
static void give_back(void *p, void (*release)(void *))
{
	if (release)
		release(p);
	else
		free(p);
}

void mreq_put_locked(struct mreq *m)
{
	if (--m->refs == 0) {
		give_back(m->owned, m->release);
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
		r->replays--;
		r->replay_bytes -= m->f.len;
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

/* The mirror failed to apply a change (its disk failed and its copy is
 * marked inconsistent: doc/io-errors.md). Its copy lacks the range, which
 * is marked out of sync here (the dirty bitmap, synced: blocking under
 * r->lock, as verify.c's marks, on this rare path), and the link goes
 * down (live: through the monitor; in a resync, which would copy the
 * range again and again, its connections close), so what follows is
 * journaled until a handshake, PEER_FAILED_HOLD_MS on, says the copy is
 * back. true when marked: then the host's answer is the local write's
 * alone, as this copy, the promotable one, holds it. */
static bool peer_lacks_locked(struct replicator *r, struct mreq *m, int status)
{
	const struct wire_frame *f = &m->f;

	IPM_ASSERT_HELD(&r->lock);
	if (f->type != WIRE_WRITE && f->type != WIRE_TRIM && f->type != WIRE_ZERO &&
	    f->type != WIRE_FLUSH)
		return false;
	if (f->type != WIRE_FLUSH && resync_mark_locked(&r->rs, m->rl->index, f->offset, f->length) < 0)
		return false;
	qb_log(LOG_ERR, "lun %s: mirror request %llu (%s at offset %llu, length %llu) failed on %s: %s; the range is marked out of sync and %s's copy is no longer counted up to date",
	       ipm_lun_name(m->rl->lun), (unsigned long long)f->seq, wire_type_name(f->type),
	       (unsigned long long)f->offset, (unsigned long long)f->length, r->e->peer->name,
	       strerror(status), r->e->peer->name);
	r->redial_after_ms = ipm_now_ms() + PEER_FAILED_HOLD_MS;
	if (r->link == LINK_LIVE && !r->force_resync) {
		r->force_resync = true;
		r->force_why = "a change failed to apply on its copy";
		pthread_cond_broadcast(&r->link_cond);
	} else if (r->link == LINK_RESYNC) {
		forget_record_locked(r);
	}
	return true;
}

void complete_locked(struct replicator *r, struct mreq *m, int status)
{
	IPM_ASSERT_HELD(&r->lock);
	r->inflight--;
	r->inflight_bytes -= m->f.len;
	if (status == 0 && m->f.type == WIRE_WRITE)
		m->rl->mirrored_bytes += m->f.len;
	if (m->live_us)
		lun_lat_observe(m->rl->lun->mirror_lat, &m->rl->lun->mirror_lat_sum_us,
				ipm_now_us() - m->live_us, 1);
	if (status && peer_lacks_locked(r, m, status))
		status = 0;
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

void space_wait_slice_locked(struct replicator *r, int ms)
{
	IPM_ASSERT_HELD(&r->lock);
	r->space_waiters++;
	if (r->qhead)
		pthread_cond_broadcast(&r->queue_cond);
	ipm_cond_wait_ms(&r->space_cond, &r->lock, ms);
	r->space_waiters--;
}

static void space_wait_locked(struct replicator *r, bool window_only)
{
	IPM_ASSERT_HELD(&r->lock);
	r->window_waiters += window_only;
	pthread_cond_wait(&r->space_cond, &r->lock);
	r->window_waiters -= window_only;
}

void crc_late_update_locked(struct replicator *r)
{
	int late = r->link == LINK_LIVE && r->wire_no_crc;

	IPM_ASSERT_HELD(&r->lock);
	if (__atomic_load_n(&r->crc_late, __ATOMIC_RELAXED) != late)
		__atomic_store_n(&r->crc_late, late, __ATOMIC_RELAXED);
}

/* The header as it goes out: from version 5 on the LUN is named by its
 * id (wire_lun.id), before by its position in AUTH (f.lun, our index). */
static void encode_locked(struct replicator *r, struct mreq *m)
{
	struct wire_frame f = m->f;

	IPM_ASSERT_HELD(&r->lock);
	if (r->wire_version >= 5)
		f.lun = r->wire_luns[m->f.lun].id;
	if (m->no_crc && !r->wire_no_crc) {
		/* rare: the hint was stale (write_mreq) */
		m->f.csum = f.csum = crc32c(0, m->data, m->f.len);
		m->no_crc = false;
	}
	wire_frame_encode(m->hdr, &f);
}

static void queue_locked(struct replicator *r, struct mreq *m)
{
	IPM_ASSERT_HELD(&r->lock);
	m->conn = -1;
	encode_locked(r, m);
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
	engine_notify(r->e);
}

/* ---- host side ------------------------------------------------------------ */

static struct rep_lun *rep_lun_of(struct replicator *r, struct ipm_lun *l)
{
	return &r->luns[l->wire_index];
}


/* Before a live request leaves: its extents are durably marked in the
 * activity log (the first write to an extent costs one fdatasync of the
 * small bitmap file). Called without r->lock. */
static void al_mark(struct rep_lun *rl, const struct wire_frame *f)
{
	ipm_error err = { "" };

	if (al_note(&rl->al, f->offset, f->length) &&
	    al_sync(&rl->al, f->offset, f->length, &err) < 0)
		qb_log(LOG_ERR, "lun %s: activity log: %s", ipm_lun_name(rl->lun), err.msg);
}

/* Back under r->lock from work done with it dropped (r->outside): the
 * resync may wait for the last one (rs_wait_answers_locked); nothing waits
 * for it while live (the monitor and a clean stop look at it under the lock). */
static void outside_leave_locked(struct replicator *r)
{
	IPM_ASSERT_HELD(&r->lock);
	if (--r->outside == 0 && r->link != LINK_LIVE)
		pthread_cond_broadcast(&r->link_cond);
}

/* Before the log is cleared both copies must hold its writes durably: a
 * node that loses its power loses what it had not flushed, and with the
 * marks gone nothing would resync it. So the local copies are synced
 * (r->lock dropped: an fdatasync may take long) and the mirror is sent a
 * FLUSH per LUN; r->al_flushed says so until the next live write. */
static void al_flush_locked(struct replicator *r)
{
	uint64_t seq = r->next_seq;
	unsigned i;
	int rc = 0;

	IPM_ASSERT_HELD(&r->lock);
	r->outside++; /* no other settle and no clean stop meanwhile */
	pthread_mutex_unlock(&r->lock);
	for (i = 0; i < r->n_luns && rc == 0; i++)
		if (r->luns[i].al.map)
			rc = lun_local_flush(r->luns[i].lun);
	pthread_mutex_lock(&r->lock);
	outside_leave_locked(r);
	/* a request since, or the link went: again when idle */
	if (rc < 0 || r->next_seq != seq || r->link != LINK_LIVE || !r->running)
		return;
	for (i = 0; i < r->n_luns; i++) {
		struct rep_lun *rl = &r->luns[i];
		struct mreq *m;

		if (!rl->al.map)
			continue;
		m = calloc(1, sizeof(*m));
		if (!m)
			return;
		m->f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_FLUSH,
					    .lun = rl->index };
		m->f.seq = ++r->next_seq;
		m->f.dep = r->host_done_max;
		m->rl = rl;
		m->refs = 1;
		enqueue_locked(r, m);
	}
	r->al_flushed = true;
}

/* Nothing in flight and no host request pending: the mirror has applied
 * everything the host wrote, so no extent can differ once both copies
 * made it durable. The first call syncs them (al_flush_locked) and returns
 * true; one after the mirror answered, with no live write since, clears. */
bool al_settle_locked(struct replicator *r)
{
	ipm_error err = { "" };
	bool marked = false;
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	if (r->inflight || r->outside)
		return false;
	for (i = 0; i < r->n_luns; i++)
		if (r->luns[i].active)
			return false;
	for (i = 0; i < r->n_luns; i++)
		marked |= al_marked(&r->luns[i].al);
	if (!marked)
		return false;
	if (!r->al_flushed) {
		al_flush_locked(r);
		return r->al_flushed;
	}
	/* no al_note runs now (outside is 0 under r->lock) */
	for (i = 0; i < r->n_luns; i++)
		if (al_clear(&r->luns[i].al, &err) < 0)
			qb_log(LOG_ERR, "lun %s: activity log: %s", ipm_lun_name(r->luns[i].lun), err.msg);
	return false;
}

/* What may block on a file before a write leaves, done with r->lock
 * dropped so that the mirror's answers and other requests go on: the
 * generation's first save of a run (lun_gen_first_write: write, fsync,
 * rename), before a write (live or journaled) the activity log's mark (an fdatasync of
 * its bitmap: a crash from then on must not forget the extent), before a
 * journaled one the outage's new generation (lun_gen_diverge: a save the
 * first time). The link may change meanwhile, so the loop decides again
 * until nothing is left to do. r->outside counts the requests in here:
 * the monitor does not clear the log nor record a clean stop, and the
 * resync does not go live (a diverge must not land after its
 * lun_gen_shared), until they are back. -ESHUTDOWN when stopping. */
static int outside_locked(struct replicator *r, struct mreq *m)
{
	struct ipm_lun *l = m->rl->lun;
	bool data = m->f.type != WIRE_FLUSH, marked = false, diverged = false;

	IPM_ASSERT_HELD(&r->lock);
	for (;;) {
		bool first = data && !lun_gen_wrote(l);
		/* journaled writes too: the journal may reach the disk ahead
		 * of the local copy or behind it, and after a crash the
		 * replay would leave the copies differing where it did */
		bool mark = data && !marked;
		bool diverge = data && r->link != LINK_LIVE && !diverged;

		/* an extent marked durably already: no need to drop the lock
		 * (most writes; each round trip of r->lock costs) */
		if (mark && al_durable(&m->rl->al, m->f.offset, m->f.length)) {
			marked = true;
			mark = false;
		}
		if (!first && !mark && !diverge)
			return 0;
		r->outside++;
		pthread_mutex_unlock(&r->lock);
		if (first)
			lun_gen_first_write(l);
		if (mark)
			al_mark(m->rl, &m->f);
		if (diverge)
			lun_gen_diverge(l);
		pthread_mutex_lock(&r->lock);
		outside_leave_locked(r);
		marked |= mark;
		diverged |= diverge;
		if (!r->running) {
			if (data)
				active_remove(m->rl, m);
			return -ESHUTDOWN;
		}
	}
}

/* Admit one request: live, it is queued and, with kick, sent at once with
 * whatever else is queued; otherwise journaled. Without may_wait it
 * returns -EAGAIN instead of waiting for window space or for an
 * overlapping request: a caller holding requests of its own must not wait
 * for others (they may wait for it). A journaled FLUSH or FUA request is
 * made durable before it returns, or with sync_mark, left to the caller:
 * *sync_mark is raised to its journal mark (resync_journal_sync). */
static int submit(struct replicator *r, struct mreq *m, bool kick, bool may_wait,
		  uint64_t *defer)
{
	uint32_t lun = m->f.lun;
	uint64_t sync_mark = 0;
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
	rc = outside_locked(r, m);
	if (rc < 0) {
		pthread_mutex_unlock(&r->lock);
		return rc;
	}
	/* journaled writes need their CRC: computed up front again (write_mreq)
	 * from the next one on when the link is not live */
	crc_late_update_locked(r);
	if (r->link == LINK_LIVE) {
		r->last_live_ms = ipm_now_ms();
		if (m->f.type != WIRE_FLUSH)
			r->al_flushed = false;
		m->f.seq = ++r->next_seq;
		m->f.dep = r->host_done_max;
		m->live_us = ipm_now_us();
		queue_locked(r, m);
		/* the caller may receive its answer itself only when nothing
		 * can block it before it waits for it: a FLUSH's local half
		 * (fdatasync) takes no I/O turn; a TRIM's or ZERO's waits for
		 * one (struct io_phase) while others hold theirs until their
		 * answers come (lun_write_begin) */
		if (kick)
			send_mine_locked(r, m->f.len,
					 m->sync && m->f.type == WIRE_FLUSH ? m : NULL);
	} else {
		/* peer unreachable or resync running: the journal keeps it. It
		 * takes no wire sequence number (seq 0): the mirror must see
		 * every number it is told to wait for, and this request reaches
		 * it later as a replay with a number of its own. */
		m->f.seq = 0;
		/* under r->lock: the journal's order is the order requests
		 * are admitted here (the host's), and the resync counts its
		 * records under it to know it caught up. A FLUSH or FUA
		 * record's fdatasync waits below, without the lock. */
		rc = resync_journal_defer_locked(&r->rs, &m->f, m->data, &sync_mark);
		finish_locked(r, m, 0);
	}
	pthread_mutex_unlock(&r->lock);
	/* before the host's answer; concurrent ones share one fdatasync */
	if (sync_mark && defer)
		*defer = sync_mark > *defer ? sync_mark : *defer;
	else if (sync_mark)
		rc = resync_journal_sync(&r->rs, lun, sync_mark);
	return rc;
}

/* The resync's replayed request (resync_ops.submit): a copy of the data
 * (f->csum is its CRC32C, carried from the journal), applied after what
 * f->dep names (the resync orders overlapping replays). */
int replay_submit(void *ctx, const struct wire_frame *f, const void *data, uint64_t *seq)
{
	void *copy = NULL;

	if (data) {
		copy = malloc(f->len ? f->len : 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, f->len);
	}
	return replay_submit_owned(ctx, f, copy, NULL, seq);
}

/* The same with the payload handed over (given back by release, or
 * freed when it is NULL; also on failure): a copied extent's read buffer
 * goes out as is. */
int replay_submit_owned(void *ctx, const struct wire_frame *f, void *data,
			void (*release)(void *), uint64_t *seq)
{
	struct replicator *r = ctx;
	struct mreq *m = calloc(1, sizeof(*m));

	if (!m) {
		give_back(data, release);
		return -ENOMEM;
	}
	m->f = *f;
	m->owned = data;
	m->release = release;
	m->data = data;
	m->rl = &r->luns[f->lun];
	m->replay = true;
	m->refs = 1;
	pthread_mutex_lock(&r->lock);
	r->space_waiters++;
	/* worker_disconnect wakes it when a connection goes; complete_locked
	 * when an answer frees room (it wakes space waiters that wait for
	 * more than the window) */
	while (resync_link_ok_locked(r) &&
	       (window_full_locked(r, m->f.len) ||
		(r->replay_bytes && r->replay_bytes + m->f.len > RESYNC_INFLIGHT_BYTES)))
		space_wait_locked(r, r->inflight >= r->window);
	r->space_waiters--;
	if (!resync_link_ok_locked(r)) {
		pthread_mutex_unlock(&r->lock);
		give_back(m->owned, m->release);
		free(m);
		return -ECONNRESET;
	}
	m->f.dep = f->dep == RESYNC_DEP_ALL ? r->next_seq : f->dep;
	m->f.seq = ++r->next_seq;
	*seq = m->f.seq;
	r->replays++;
	r->replay_bytes += m->f.len;
	enqueue_locked(r, m);
	pthread_mutex_unlock(&r->lock);
	return 0;
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
	rx_wait_locked(r, &m, 1);  /* the answer may be ours to receive */
	while (!m->done || m->in_send)
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
static struct mreq *write_mreq(struct replicator *r, struct rep_lun *rl, struct mreq *stack,
			       const void *buf, size_t len, uint64_t off, unsigned flags)
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
	/* under TLS the records' AEAD protects the payload: no CRC unless it is
	 * journaled (the journal keeps it; journal_append computes a missing
	 * one, under r->lock) */
	m->no_crc = __atomic_load_n(&r->crc_late, __ATOMIC_RELAXED);
	if (!m->no_crc)
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
				 const ipm_write *w, bool kick, bool may_wait, uint64_t *defer,
				 int *rc)
{
	struct mreq *m = write_mreq(r, rl, stack, w->buf, w->len, w->off, w->flags);

	if (!m) {
		*rc = -ENOMEM;
		return NULL;
	}
	*rc = submit(r, m, kick, may_wait, defer);
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
	if (local_rc) {
		qb_log(LOG_ERR, "lun %s: local write at %llu failed: %s; the mirror has it",
		       ipm_lun_name(m->rl->lun), (unsigned long long)w->off, strerror(-local_rc));
		lun_disk_write_error(m->rl->lun, "write", w->off, local_rc);
	}
	if (m->sync)
		return wait_sync(r, m, local_rc);
	release_async(r, m);
	return local_rc;
}

static void write_chunks(struct replicator *r, struct ipm_lun *l, ipm_write *w, unsigned n);

/* One write: a batch of one (write_chunk orders its waits). */
int replicator_write(struct replicator *r, struct ipm_lun *l, const void *buf, size_t len,
		     uint64_t off, unsigned flags)
{
	ipm_write w = { .buf = buf, .len = len, .off = off, .flags = flags };

	write_chunks(r, l, &w, 1);
	return w.rc;
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

/* Wait until the mirror answered the sync ones of m[at[0..k)] (their
 * host release is write_finish's, after the local writes). */
static void answers_wait(struct replicator *r, struct mreq **m, const unsigned *at, unsigned k)
{
	struct mreq *v[IPM_WRITE_BATCH_MAX];
	unsigned j, n = 0;

	for (j = 0; j < k; j++)
		if (m[at[j]]->sync)
			v[n++] = m[at[j]];
	pthread_mutex_lock(&r->lock);
	rx_wait_locked(r, v, n);  /* the answers may be ours to receive */
	for (j = 0; j < n; j++)
		while (!v[j]->done || v[j]->in_send)
			pthread_cond_wait(&v[j]->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
}

/* Mark the chunk's writes m[at[0..k)] as one (when all are sync, so that
 * their host waits for all of them): the first, or NULL. */
static struct mreq *chunk_mark(struct mreq **m, const unsigned *at, unsigned k)
{
	unsigned j;

	if (k == 0)
		return NULL;
	for (j = 0; j < k; j++)
		if (!m[at[j]]->sync)
			return NULL;
	for (j = 0; j < k; j++)
		m[at[j]]->chunk = m[at[0]];
	m[at[0]]->chunk_n = k;
	return m[at[0]];
}

/* Independent writes: submitted and sent in one go, written locally in one
 * batch, then answered. Only the first may wait to be admitted; the chunk
 * ends before one that would have to. Returns how many were taken. */
static unsigned write_chunk(struct replicator *r, struct rep_lun *rl, ipm_write *w, unsigned n)
{
	struct mreq stack[IPM_WRITE_BATCH_MAX], *m[IPM_WRITE_BATCH_MAX];
	struct lun_io io[IPM_WRITE_BATCH_MAX];
	unsigned i, j, k = 0, at[IPM_WRITE_BATCH_MAX];
	struct lun_batch lb;
	struct mreq *lead;
	uint64_t sync_mark = 0;
	size_t most = 0;
	bool started;

	for (i = 0; i < n; i++) {
		m[i] = write_submit(r, rl, &stack[i], &w[i], false, i == 0, &sync_mark, &w[i].rc);
		if (w[i].rc == -EAGAIN)
			break;
		if (!m[i])
			continue;
		/* a journaled write (seq 0) has no network time for the page
		 * cache's write-behind to overlap, and its journal record went
		 * through the page cache already: any aligned size goes direct */
		io[k] = (struct lun_io){ .lun = rl->lun, .buf = w[i].buf, .len = w[i].len,
					 .off = w[i].off,
					 .flags = w[i].flags | (m[i]->f.seq == 0 ? LUN_IO_BULK : 0) };
		at[k++] = i;
		if (w[i].len > most)
			most = w[i].len;
	}
	/* the chunk's journaled FUA writes: one fdatasync for all of them,
	 * before the local writes take their turns (a failure is logged; the
	 * writes still happen, as in write_submit) */
	if (sync_mark)
		resync_journal_sync(&r->rs, rl->index, sync_mark);
	/* the local writes' turns are taken (never waiting: see below), the
	 * mirror requests sent, the local writes started; then the mirror's
	 * answers are waited for, then the local writes, which complete
	 * meanwhile without waking us: one sleep covers both where two did
	 * (the answer mostly comes last) */
	started = lun_write_begin(io, k, &lb);
	/* the chunk's sync writes may receive their answers themselves
	 * (send_mine_locked) when they go out alone; not when the local
	 * writes must still wait for a turn (the fallback below): others hold
	 * turns while they wait for answers, which must not wait for a thread
	 * that waits for them */
	pthread_mutex_lock(&r->lock);
	lead = started ? chunk_mark(m, at, k) : NULL;  /* others read it under the lock */
	if (r->qhead)
		send_mine_locked(r, most, lead);
	pthread_mutex_unlock(&r->lock);
	if (started) {
		lun_write_start(io, k, &lb);  /* after the send: the network path is the longer */
		answers_wait(r, m, at, k);
		lun_write_end(io, k, &lb);
	} else {
		lun_write_batch(io, k);
	}
	for (j = 0; j < k; j++)
		w[at[j]].rc = write_finish(r, m[at[j]], &w[at[j]], io[j].rc);
	return i;
}

static void write_chunks(struct replicator *r, struct ipm_lun *l, ipm_write *w, unsigned n)
{
	unsigned k;

	for (; n > 0; w += k, n -= k)
		k = write_chunk(r, rep_lun_of(r, l), w, independent_prefix(w, n));
}

void replicator_write_batch(struct replicator *r, struct ipm_lun *l, ipm_write *w, unsigned n)
{
	write_chunks(r, l, w, n);
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
	rc = submit(r, m, true, true, NULL);
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
	if (rc)
		lun_disk_write_error(l, type == WIRE_FLUSH ? "flush" : type == WIRE_TRIM ? "trim" : "zero",
				     off, rc);
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
 * reads go to the local copy (the mirror's when the disk fails:
 * remote_read.c), everything else is mirrored. */
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
	.read = remote_read_op,      /* the mirror's copy when the disk fails */
	.write = op_write,
	.write_batch = op_write_batch,
	.flush = op_flush,
	.trim = op_trim,
	.zero = op_zero,
};

/* ---- life cycle ---------------------------------------------------------- */

/* Each LUN's journal, dirty bitmap and activity log (whose marks from a
 * crash become dirty extents). */
static int open_journals(struct replicator *r, ipm_error *err)
{
	unsigned i;
	int rc;

	rc = resync_init(&r->rs, r->n_luns, err);
	for (i = 0; rc == 0 && i < r->n_luns; i++) {
		struct ipm_lun *l = r->luns[i].lun;

		rc = resync_open_lun(&r->rs, i, l->cfg->name, l->size, l->journal_path,
				     l->cfg->journal_max, err);
		if (rc == 0)
			rc = al_open(&r->luns[i].al, l->cfg->name, l->size, l->journal_path,
				     r->rs.luns[i].bitmap, &r->rs.luns[i].overflowed, err);
		if (rc == 0)
			resync_report_lun(&r->rs, i);
	}
	return rc;
}

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
	r->window_told = r->window;
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
		/* stable: the LUN's place in the config, whatever else this
		 * direction carries (version 5) */
		r->wire_luns[i].id = luns[i]->cfg_index;
		r->wire_luns[i].size = luns[i]->size;
		r->wire_luns[i].mode = (uint8_t)luns[i]->cfg->mode;
		luns[i]->wire_index = i;
	}
	ca_init(&r->ca, r->n_conns);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->queue_cond, NULL);
	pthread_cond_init(&r->space_cond, NULL);
	pthread_cond_init(&r->link_cond, NULL);
	r->rs = (struct resync){ .ops = &replicator_resync_ops, .ctx = r, .lock = &r->lock,
				 .peer = e->peer->name, .rate = e->cfg->resync_rate };
	/* until the first connection: journal, like after an outage */
	r->link = LINK_DOWN;
	set_states_locked(r, IPM_STATE_JOURNALING);
	for (i = 0; i < r->n_conns; i++) {
		r->workers[i] = (struct worker){ .r = r, .index = i, .fd = -1 };
		pthread_mutex_init(&r->workers[i].send_lock, NULL);
		pthread_cond_init(&r->workers[i].rx_cond, NULL);
	}
	r->running = true;
	rc = open_journals(r, err);
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


int replicator_start(struct replicator *r, ipm_error *err)
{
	unsigned i;
	int rc;

	resync_stop_soon(&r->rs, false);
	rc = pthread_create(&r->monitor, NULL, rep_monitor_main, r);
	if (rc)
		return ipm_fail(err, -rc, "cannot start the link monitor thread");
	r->started = true;
	for (i = 0; i < r->n_conns; i++) {
		rc = pthread_create(&r->workers[i].thread, NULL, rep_worker_main, &r->workers[i]);
		if (rc) {
			r->n_conns = i;
			replicator_stop(r);
			return ipm_fail(err, -rc, "cannot start worker thread %u", i);
		}
	}
	return 0;
}

/* Until nothing is in flight and nobody works with r->lock dropped (a
 * monitor's settle in the middle of its local fdatasync: al_flush_locked),
 * while a connection is up, at most until deadline. true when drained. */
static bool stop_drain_locked(struct replicator *r, int64_t deadline)
{
	IPM_ASSERT_HELD(&r->lock);
	r->space_waiters++;
	/* the outside work wakes nobody when it ends: polled */
	while ((r->inflight || r->outside) && ca_count_up(&r->ca) && ipm_now_ms() < deadline)
		ipm_cond_wait_ms(&r->space_cond, &r->lock, r->inflight ? 100 : 10);
	r->space_waiters--;
	return !r->inflight && !r->outside;
}

/* Stopping with the peer away: the writes since the link went are in the
 * journal or the dirty bitmap, and the activity log's marks from before
 * were folded into the bitmap then (go_down_locked). Once the local copy
 * and those files are durable the marks add nothing: cleared, so the next
 * start does not take this clean stop for a crash. */
static void al_settle_down_locked(struct replicator *r)
{
	ipm_error err = { "" };
	bool marked = false;
	unsigned i;
	int rc = 0;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < r->n_luns; i++)
		marked |= al_marked(&r->luns[i].al);
	if (!marked || r->link != LINK_DOWN || r->inflight || r->outside)
		return;
	r->outside++;
	pthread_mutex_unlock(&r->lock);
	for (i = 0; i < r->n_luns && rc == 0; i++)
		if (r->luns[i].al.map)
			rc = lun_local_flush(r->luns[i].lun);
	pthread_mutex_lock(&r->lock);
	outside_leave_locked(r);
	if (rc < 0 || r->link != LINK_DOWN || r->inflight || resync_sync_locked(&r->rs) < 0)
		return;
	for (i = 0; i < r->n_luns; i++)
		if (al_clear(&r->luns[i].al, &err) < 0)
			qb_log(LOG_ERR, "lun %s: activity log: %s", ipm_lun_name(r->luns[i].lun), err.msg);
}

void replicator_stop(struct replicator *r)
{
	int64_t deadline = ipm_now_ms() + STOP_DRAIN_MS;
	unsigned i;

	/* a full resync saves its progress and ends (resync.c) */
	resync_stop_soon(&r->rs, true);
	verify_stop_all(r);
	pthread_mutex_lock(&r->lock);
	/* a data generation the mirror holds the data of but not the name
	 * (written before the handshake, rs_go_live_locked): let the handshake
	 * that names it happen first. Stopped before, the mirror kept the old
	 * name for the same data, and a promotion of it after this demotion
	 * met a split brain (lun_role_independent.sh) */
	while (r->started && rename_pending_locked(r) && ipm_now_ms() < deadline)
		ipm_cond_wait_ms(&r->link_cond, &r->lock, 100);
	/* a resync ends at once (resync_stop_soon), a full one after saving
	 * its progress: it must still have the link for that */
	while (r->started && r->link == LINK_RESYNC && ca_count_up(&r->ca) &&
	       ipm_now_ms() < deadline)
		ipm_cond_wait_ms(&r->link_cond, &r->lock, 100);
	/* a settle of the monitor's under way must end first, or the log
	 * stays marked and the next start resyncs its extents */
	stop_drain_locked(r, deadline);
	/* what the mirror has not answered by now is kept in the journal */
	if (r->inflight) {
		go_down_locked(r, "stopping");
	} else if (r->link == LINK_LIVE && al_settle_locked(r)) {
		/* both copies were flushed first: the mirror's answer, then clear */
		stop_drain_locked(r, deadline);
		if (r->inflight)
			go_down_locked(r, "stopping");
		else
			al_settle_locked(r);
	}
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
	al_settle_down_locked(r);
	pthread_mutex_unlock(&r->lock);
}

void replicator_destroy(struct replicator *r)
{
	if (!r)
		return;
	if (r->started)
		replicator_stop(r);
	for (unsigned i = 0; i < r->n_luns; i++)
		al_close(&r->luns[i].al);
	resync_close(&r->rs);
	ca_destroy(&r->ca);
	for (unsigned i = 0; i < r->n_conns; i++) {
		pthread_mutex_destroy(&r->workers[i].send_lock);
		pthread_cond_destroy(&r->workers[i].rx_cond);
	}
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
			rc = storage_hb_send_frame(w->fd, w->tls, slot, data);
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
	if (r->rs.luns)
		resync_lun_status_locked(&r->rs, rl->index, &s->journal_bytes,
					 &s->journal_records, &s->resync_done_bytes,
					 &s->resync_total_bytes);
	verify_status_locked(rl, s);
	if (r->rs.luns && rl->state == IPM_STATE_RESYNCING && r->rs.luns[rl->index].t0)
		s->resync_elapsed_ms = ipm_now_ms() - r->rs.luns[rl->index].t0;
	pthread_mutex_unlock(&r->lock);
}

/* ---- live settings (engine/adjust.c) ----------------------------------- */

void replicator_set_mode(struct replicator *r, struct ipm_lun *l, enum ipm_mode mode)
{
	pthread_mutex_lock(&r->lock);
	r->wire_luns[rep_lun_of(r, l)->index].mode = (uint8_t)mode;
	pthread_mutex_unlock(&r->lock);
}

uint32_t replicator_set_window(struct replicator *r, uint32_t window)
{
	uint32_t now;

	pthread_mutex_lock(&r->lock);
	r->window = window < r->window_told ? window : r->window_told;
	now = r->window;
	/* hosts waiting for room see the new size */
	pthread_cond_broadcast(&r->space_cond);
	pthread_mutex_unlock(&r->lock);
	return now;
}

void replicator_set_resync_rate(struct replicator *r, uint64_t rate)
{
	pthread_mutex_lock(&r->lock);
	__atomic_store_n(&r->rs.rate, rate, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&r->lock);
}

void replicator_set_journal_max(struct replicator *r, struct ipm_lun *l, uint64_t max)
{
	pthread_mutex_lock(&r->lock);
	if (r->rs.luns)
		resync_set_journal_max_locked(&r->rs, rep_lun_of(r, l)->index, max);
	pthread_mutex_unlock(&r->lock);
}

void replicator_set_hbslot_sink(struct replicator *r, wire_hbslot_fn fn, void *opaque)
{
	r->on_hbslot = fn;
	r->hbslot_opaque = opaque;
}

void replicator_set_version_sink(struct replicator *r, rep_version_fn fn, void *opaque)
{
	r->on_version = fn;
	r->version_opaque = opaque;
}
