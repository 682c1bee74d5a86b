/* resync.c - while the peer is unreachable, mirror requests go into each LUN's
 * journal (past its size limit, into a dirty-extent bitmap); once the peer is
 * back, the journal is replayed in order over the n connections, then the
 * dirty extents are copied, then the LUN goes back to live mirroring. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "lockdebug.h"
#include "crc32c.h"
#include "lun.h"
#include "replicator_int.h"

#define DEFAULT_JOURNAL_MAX (4ull << 30)
#define BITMAP_EXTENT (1u << 20)
#define RESYNC_HOLD_PASS 3     /* from this pass on, new writes always wait */
#define RESYNC_HOLD_BACKLOG 64 /* records or 1 MiB extents: a short last pass */

static int open_one(struct rep_lun *rl, ipm_error *err)
{
	struct ipm_lun *l = rl->lun;
	uint64_t max = l->cfg->journal_max ? l->cfg->journal_max : DEFAULT_JOURNAL_MAX;
	uint64_t dropped = 0;
	const char *path = l->journal_path;
	char bitmap[sizeof(l->journal_path) + 8];
	int rc;

	rc = journal_open(path, l->cfg->name, l->size, max, &rl->journal, &dropped, err);
	if (rc < 0)
		return rc;
	if (dropped)
		qb_log(LOG_WARNING, "lun %s: journal %s: dropped a torn record at the tail (%llu bytes), left by a crash",
		       l->cfg->name, path, (unsigned long long)dropped);
	snprintf(bitmap, sizeof(bitmap), "%s.bitmap", path);
	rc = dirty_bitmap_open(bitmap, l->size, BITMAP_EXTENT, &rl->bitmap, err);
	if (rc < 0)
		return rc;
	rl->overflowed = dirty_bitmap_dirty_bytes(rl->bitmap) > 0;
	rc = al_open(rl, path, err);
	if (rc < 0)
		return rc;
	if (journal_records(rl->journal) || rl->overflowed)
		qb_log(LOG_NOTICE, "lun %s: %llu journaled request(s) and %llu dirty bytes from before; they will be resynced",
		       l->cfg->name, (unsigned long long)journal_records(rl->journal),
		       (unsigned long long)dirty_bitmap_dirty_bytes(rl->bitmap));
	return 0;
}

int resync_open_journals(struct replicator *r, ipm_error *err)
{
	unsigned i;
	int rc;

	for (i = 0; i < r->n_luns; i++) {
		rc = open_one(&r->luns[i], err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void resync_close_journals(struct replicator *r)
{
	unsigned i;

	for (i = 0; i < r->n_luns; i++) {
		if (r->luns[i].journal)
			journal_close(r->luns[i].journal);
		if (r->luns[i].bitmap)
			dirty_bitmap_close(r->luns[i].bitmap);
		al_close(&r->luns[i]);
	}
}

/* A write marks its extents; the first time an extent turns dirty the
 * bitmap is made durable, so a crash never forgets a dirty extent. */
static int mark_dirty(struct rep_lun *rl, const struct wire_frame *f, ipm_error *err)
{
	uint64_t before = dirty_bitmap_dirty_bytes(rl->bitmap);
	int rc;

	if (f->type == WIRE_FLUSH)
		return dirty_bitmap_sync(rl->bitmap, err);
	rc = dirty_bitmap_mark(rl->bitmap, f->offset, f->length);
	if (rc < 0)
		return rc;
	if (dirty_bitmap_dirty_bytes(rl->bitmap) != before || (f->flags & WIRE_F_FUA))
		return dirty_bitmap_sync(rl->bitmap, err);
	return 0;
}

/* The journal's record types are its own (its file format); a request
 * and its record name the same operation. */
static uint16_t journal_type_of(uint16_t wire_type)
{
	switch (wire_type) {
	case WIRE_WRITE: return JR_WRITE;
	case WIRE_TRIM: return JR_TRIM;
	case WIRE_ZERO: return JR_ZERO;
	default: return JR_FLUSH;
	}
}

static uint16_t wire_type_of(uint16_t journal_type)
{
	switch (journal_type) {
	case JR_WRITE: return WIRE_WRITE;
	case JR_TRIM: return WIRE_TRIM;
	case JR_ZERO: return WIRE_ZERO;
	default: return WIRE_FLUSH;
	}
}

int journal_request_locked(struct replicator *r, struct mreq *m)
{
	struct rep_lun *rl = m->rl;
	struct journal_rec rec = {
		.type = journal_type_of(m->f.type),
		.flags = m->f.flags & WIRE_F_FUA,
		.offset = m->f.offset,
		.length = m->f.length,
		.data = m->f.type == WIRE_WRITE ? m->data : NULL,
	};
	ipm_error err = { "" };
	int rc;

	IPM_ASSERT_HELD(&r->lock);
	if (!rl->overflowed) {
		rc = journal_append(rl->journal, &rec, &err);
		if (rc == 0) {
			if (m->f.type == WIRE_FLUSH || (m->f.flags & WIRE_F_FUA))
				rc = journal_sync(rl->journal, &err);
			goto out;
		}
		if (rc != -ENOSPC)
			goto out;
		rl->overflowed = true;
		qb_log(LOG_WARNING, "lun %s: journal full (%llu bytes); tracking dirty extents from now on",
		       ipm_lun_name(rl->lun), (unsigned long long)journal_bytes(rl->journal));
	}
	rc = mark_dirty(rl, &m->f, &err);
out:
	if (rc < 0)
		qb_log(LOG_ERR, "lun %s: %s", ipm_lun_name(rl->lun), err.msg);
	return rc;
}

int journal_sync_all_locked(struct replicator *r)
{
	ipm_error err = { "" };
	unsigned i;
	int rc = 0;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < r->n_luns; i++) {
		if (journal_sync(r->luns[i].journal, &err) < 0 ||
		    (r->luns[i].overflowed && dirty_bitmap_sync(r->luns[i].bitmap, &err) < 0)) {
			qb_log(LOG_ERR, "lun %s: %s", ipm_lun_name(r->luns[i].lun), err.msg);
			rc = -EIO;
		}
	}
	return rc;
}

/* ---- replay -------------------------------------------------------------- */

/* Keep the resync under the configured rate (bytes/s). */
static void pace(struct replicator *r, uint64_t sent, int64_t t0)
{
	int64_t due_ms;

	if (!r->resync_rate)
		return;
	due_ms = (int64_t)(sent * 1000 / r->resync_rate);
	if (due_ms > ipm_now_ms() - t0)
		usleep((useconds_t)(due_ms - (ipm_now_ms() - t0)) * 1000);
}

/* Send one replayed request, strictly after the previous one: the journal's
 * order is the host's completion order, so the mirror stays consistent. */
static int send_replay(struct replicator *r, struct rep_lun *rl, const struct journal_rec *rec,
		       uint16_t extra_flags)
{
	struct mreq *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->f = (struct wire_frame){
		.magic = WIRE_FRAME_MAGIC, .type = wire_type_of(rec->type),
		.flags = (uint16_t)((rec->flags & WIRE_F_FUA) | WIRE_F_REPLAY | extra_flags),
		.lun = rl->index, .offset = rec->offset, .length = rec->length,
	};
	if (rec->type == JR_WRITE) {
		m->owned = malloc(rec->length ? rec->length : 1);
		if (!m->owned) {
			free(m);
			return -ENOMEM;
		}
		memcpy(m->owned, rec->data, rec->length);
		m->data = m->owned;
		m->f.len = (uint32_t)rec->length;
		m->f.csum = crc32c(0, m->data, m->f.len);
	}
	m->rl = rl;
	m->replay = true;
	m->refs = 1;
	pthread_mutex_lock(&r->lock);
	r->space_waiters++;
	while (r->running && r->link == LINK_RESYNC && window_full_locked(r, m->f.len))
		space_wait_locked(r, r->inflight >= r->window);
	r->space_waiters--;
	if (!r->running || r->link != LINK_RESYNC) {
		pthread_mutex_unlock(&r->lock);
		free(m->owned);
		free(m);
		return -ECONNRESET;
	}
	m->f.dep = r->next_seq;
	m->f.seq = ++r->next_seq;
	rl->replay_outstanding++;
	enqueue_locked(r, m);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* Replay the journal records not replayed yet in this resync. */
static int replay_journal(struct replicator *r, struct rep_lun *rl, uint64_t *sent, int64_t t0)
{
	struct journal_iter *it;
	struct journal_rec rec;
	ipm_error err = { "" };
	uint64_t n = 0;
	int rc;

	if (journal_records(rl->journal) <= rl->replayed_records)
		return 0;
	rc = journal_iter_open(rl->journal, &it, &err);
	if (rc < 0)
		goto out;
	while ((rc = journal_iter_next(it, &rec, &err)) == 1) {
		if (n++ < rl->replayed_records)
			continue;
		/* an empty record (journaled by older versions) changes nothing */
		if (rec.type != JR_FLUSH && rec.length == 0) {
			rl->replayed_records++;
			continue;
		}
		rc = send_replay(r, rl, &rec, 0);
		if (rc < 0)
			break;
		rl->replayed_records++;
		pthread_mutex_lock(&r->lock);
		rl->resync_done = journal_iter_offset(it);
		pthread_mutex_unlock(&r->lock);
		*sent += rec.length;
		pace(r, *sent, t0);
	}
	journal_iter_close(it);
out:
	if (rc < 0 && rc != -ECONNRESET)
		qb_log(LOG_ERR, "lun %s: journal replay stopped: %s", ipm_lun_name(rl->lun), err.msg);
	return rc;
}

/* Copy the dirty extents from the local copy. An extent is cleared before it
 * is read, so a write that lands meanwhile marks it again for the next pass. */
static int copy_dirty(struct replicator *r, struct rep_lun *rl, uint64_t *sent, int64_t t0)
{
	struct journal_rec rec = { .type = JR_WRITE };
	uint64_t off, len, from = 0;
	void *buf = NULL;
	int rc = 0;

	while (dirty_bitmap_next(rl->bitmap, from, &off, &len)) {
		free(buf);
		if (posix_memalign(&buf, 4096, len) != 0)
			return -ENOMEM;
		dirty_bitmap_clear_range(rl->bitmap, off, len);
		if (lun_local_read(rl->lun, buf, len, off) < 0) {
			rc = -EIO;
			dirty_bitmap_mark(rl->bitmap, off, len);
			break;
		}
		rec.offset = off;
		rec.length = len;
		rec.data = buf;
		rc = send_replay(r, rl, &rec, 0);
		if (rc < 0) {
			dirty_bitmap_mark(rl->bitmap, off, len);
			break;
		}
		pthread_mutex_lock(&r->lock);
		rl->resync_done += len;
		pthread_mutex_unlock(&r->lock);
		*sent += len;
		pace(r, *sent, t0);
		from = off + len;
	}
	free(buf);
	return rc;
}

static bool caught_up_locked(struct replicator *r)
{
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < r->n_luns; i++) {
		if (r->luns[i].replayed_records < journal_records(r->luns[i].journal))
			return false;
		if (dirty_bitmap_dirty_bytes(r->luns[i].bitmap))
			return false;
	}
	return true;
}

static bool replays_outstanding_locked(struct replicator *r)
{
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < r->n_luns; i++)
		if (r->luns[i].replay_outstanding)
			return true;
	return false;
}

static void begin_locked(struct replicator *r)
{
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < r->n_luns; i++) {
		struct rep_lun *rl = &r->luns[i];

		rl->replayed_records = 0;
		rl->resync_done = 0;
		rl->resync_total = (journal_records(rl->journal) ? journal_bytes(rl->journal) : 0) +
				   dirty_bitmap_dirty_bytes(rl->bitmap);
	}
}

/* Everything replayed was answered: empty the journals. */
static void finish_resync_locked(struct replicator *r, uint64_t sent, int64_t t0)
{
	ipm_error err = { "" };
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < r->n_luns; i++) {
		struct rep_lun *rl = &r->luns[i];

		if (journal_records(rl->journal) && journal_reset(rl->journal, &err) < 0)
			qb_log(LOG_ERR, "lun %s: %s", ipm_lun_name(rl->lun), err.msg);
		if (dirty_bitmap_dirty_bytes(rl->bitmap) && dirty_bitmap_clear_all(rl->bitmap, &err) < 0)
			qb_log(LOG_ERR, "lun %s: %s", ipm_lun_name(rl->lun), err.msg);
		rl->overflowed = false;
		rl->full_pending = false;
		rl->resync_done = rl->resync_total;
		lun_gen_shared(rl->lun);
	}
	set_states_locked(r, IPM_STATE_UPTODATE);
	qb_log(LOG_NOTICE, "peer %s: resync complete, %llu bytes in %lld ms; mirroring live",
	       r->e->peer->name, (unsigned long long)sent, (long long)(ipm_now_ms() - t0));
}

static const struct journal_rec insync_marker = { .type = JR_FLUSH };

/* Journal records not replayed yet, plus dirty 1 MiB extents not copied yet. */
static uint64_t backlog_locked(struct replicator *r)
{
	uint64_t n = 0;
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < r->n_luns; i++) {
		uint64_t recs = journal_records(r->luns[i].journal);

		if (recs > r->luns[i].replayed_records)
			n += recs - r->luns[i].replayed_records;
		n += dirty_bitmap_dirty_bytes(r->luns[i].bitmap) / BITMAP_EXTENT;
	}
	return n;
}

/* Host writes keep going to the journal during a resync, at local speed,
 * faster than replays that cross the network: without a stop the journal
 * could grow as fast as it is replayed and the resync would never end.
 * So the closing pass holds new writes (submit waits): once what is left
 * is short, or from the third pass on whatever is left. */
static bool hold_now(unsigned pass, uint64_t backlog)
{
	return pass >= RESYNC_HOLD_PASS || backlog <= RESYNC_HOLD_BACKLOG;
}

static int resync_passes(struct replicator *r, int64_t t0);

int resync_run(struct replicator *r)
{
	int rc = resync_passes(r, ipm_now_ms());

	pthread_mutex_lock(&r->lock);
	if (r->resync_hold) {
		r->resync_hold = false;
		pthread_cond_broadcast(&r->space_cond);
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static int resync_passes(struct replicator *r, int64_t t0)
{
	uint64_t sent = 0, backlog;
	unsigned i, pass;
	bool final;
	int rc;

	pthread_mutex_lock(&r->lock);
	begin_locked(r);
	pthread_mutex_unlock(&r->lock);
	qb_log(LOG_NOTICE, "peer %s: connected again, resync starts", r->e->peer->name);
	for (pass = 1;; pass++) {
		for (i = 0; i < r->n_luns; i++) {
			rc = replay_journal(r, &r->luns[i], &sent, t0);
			if (rc < 0)
				return rc;
			/* past the journal's limit, or extents the activity log
			 * handed over at an outage (al_fold_locked) */
			if (dirty_bitmap_dirty_bytes(r->luns[i].bitmap)) {
				rc = copy_dirty(r, &r->luns[i], &sent, t0);
				if (rc < 0)
					return rc;
			}
		}
		pthread_mutex_lock(&r->lock);
		backlog = backlog_locked(r);
		if (!r->resync_hold && hold_now(pass, backlog)) {
			r->resync_hold = true;
			if (backlog)
				qb_log(LOG_INFO, "peer %s: resync pass %u: %llu new record(s) or extent(s) to replay; new writes wait until then",
				       r->e->peer->name, pass, (unsigned long long)backlog);
		}
		/* held and nothing left: this pass makes the copies equal */
		final = r->resync_hold && caught_up_locked(r);
		pthread_mutex_unlock(&r->lock);
		/* only then tell the mirror (a durable barrier after everything
		 * replayed): a marker after an earlier pass would have it say
		 * "up to date" while the journal still holds newer writes */
		for (i = 0; final && i < r->n_luns; i++) {
			rc = send_replay(r, &r->luns[i], &insync_marker, WIRE_F_INSYNC);
			if (rc < 0)
				return rc;
		}
		pthread_mutex_lock(&r->lock);
		/* wait for the mirror's answers while new writes go to the
		 * journal (or wait, once held): only when everything replayed
		 * was applied and nothing new arrived may the journal be
		 * emptied and writes go live, in one step under the lock.
		 * Going live earlier would let a later outage replay old
		 * records over newer live data. */
		while (r->running && r->link == LINK_RESYNC && replays_outstanding_locked(r))
			pthread_cond_wait(&r->link_cond, &r->lock);
		if (r->link != LINK_RESYNC || !r->running) {
			pthread_mutex_unlock(&r->lock);
			return -ECONNRESET;
		}
		if (final && caught_up_locked(r)) {
			r->link = LINK_LIVE;
			if (r->next_seq > r->host_done_max)
				r->host_done_max = r->next_seq;
			finish_resync_locked(r, sent, t0);
			break;
		}
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return 0;
}
