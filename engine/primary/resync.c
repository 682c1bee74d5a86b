/* resync.c - while the peer is unreachable, mirror requests go into each LUN's
 * journal (past its size limit, into a dirty-extent bitmap); once the peer is
 * back, the journal is replayed in order over the n connections, then the
 * dirty extents are copied, then the LUN goes back to live mirroring. It
 * reaches the replicator only through struct resync_ops (resync.h). */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "clock.h"
#include "crc32c.h"
#include "lockdebug.h"
#include "resync.h"
#include "extent_scan.h"

#define DEFAULT_JOURNAL_MAX (4ull << 30)
#define BITMAP_EXTENT (1u << 20)
#define RESYNC_HOLD_PASS 3     /* from this pass on, new writes always wait */
#define RESYNC_HOLD_BACKLOG 64 /* records or 1 MiB extents: a short last pass */
#define RESYNC_CHECKPOINT_MS 2000 /* a fill's progress is made durable this often */

int resync_init(struct resync *rs, unsigned n_luns, ipm_error *err)
{
	rs->n_luns = n_luns;
	rs->luns = calloc(n_luns ? n_luns : 1, sizeof(*rs->luns));
	if (!rs->luns)
		return ipm_fail(err, -ENOMEM, "out of memory");
	return 0;
}

int resync_open_lun(struct resync *rs, uint32_t i, const char *name, uint64_t size,
		    const char *path, uint64_t max, ipm_error *err)
{
	struct resync_lun *rl = &rs->luns[i];
	uint64_t dropped = 0;
	char bitmap[4200 + 8];
	int rc;

	rl->name = name;
	rl->size = size;
	rc = journal_open(path, name, size, max ? max : DEFAULT_JOURNAL_MAX, &rl->journal,
			  &dropped, err);
	if (rc < 0)
		return rc;
	if (dropped)
		qb_log(LOG_WARNING, "lun %s: journal %s: dropped a torn record at the tail (%llu bytes), left by a crash",
		       name, path, (unsigned long long)dropped);
	snprintf(bitmap, sizeof(bitmap), "%s.bitmap", path);
	rc = dirty_bitmap_open(bitmap, size, BITMAP_EXTENT, &rl->bitmap, err);
	if (rc < 0)
		return rc;
	rl->overflowed = dirty_bitmap_dirty_bytes(rl->bitmap) > 0;
	return 0;
}

void resync_set_journal_max_locked(struct resync *rs, uint32_t i, uint64_t max)
{
	journal_set_max(rs->luns[i].journal, max ? max : DEFAULT_JOURNAL_MAX);
}

void resync_report_lun(struct resync *rs, uint32_t i)
{
	struct resync_lun *rl = &rs->luns[i];

	if (journal_records(rl->journal) || rl->overflowed)
		qb_log(LOG_NOTICE, "lun %s: %llu journaled request(s) and %llu dirty bytes from before; they will be resynced",
		       rl->name, (unsigned long long)journal_records(rl->journal),
		       (unsigned long long)dirty_bitmap_dirty_bytes(rl->bitmap));
}

void resync_close(struct resync *rs)
{
	unsigned i;

	for (i = 0; rs->luns && i < rs->n_luns; i++) {
		journal_iter_close(rs->luns[i].iter);
		if (rs->luns[i].journal)
			journal_close(rs->luns[i].journal);
		if (rs->luns[i].bitmap)
			dirty_bitmap_close(rs->luns[i].bitmap);
	}
	free(rs->luns);
	rs->luns = NULL;
}

/* A write marks its extents; the first time an extent turns dirty the
 * bitmap is made durable, so a crash never forgets a dirty extent. */
static int mark_dirty(struct resync_lun *rl, const struct wire_frame *f, ipm_error *err)
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

int resync_journal_locked(struct resync *rs, const struct wire_frame *f, const void *data)
{
	uint64_t mark = 0;
	int rc = resync_journal_defer_locked(rs, f, data, &mark);

	return rc == 0 && mark ? resync_journal_sync(rs, f->lun, mark) : rc;
}

int resync_journal_sync(struct resync *rs, uint32_t lun, uint64_t mark)
{
	struct resync_lun *rl = &rs->luns[lun];
	ipm_error err = { "" };
	int rc = journal_sync_to(rl->journal, mark, &err);

	if (rc < 0)
		qb_log(LOG_ERR, "lun %s: %s", rl->name, err.msg);
	return rc;
}

int resync_journal_defer_locked(struct resync *rs, const struct wire_frame *f,
				const void *data, uint64_t *sync_mark)
{
	struct resync_lun *rl = &rs->luns[f->lun];
	struct journal_rec rec = {
		.type = journal_type_of(f->type),
		.flags = f->flags & WIRE_F_FUA,
		.offset = f->offset,
		.length = f->length,
		.data = f->type == WIRE_WRITE ? data : NULL,
		/* the request's payload CRC (0: none yet), not computed again
		 * here under the lock */
		.data_crc = f->type == WIRE_WRITE ? f->csum : 0,
	};
	ipm_error err = { "" };
	int rc;

	IPM_ASSERT_HELD(rs->lock);
	*sync_mark = 0;
	if (!rl->overflowed) {
		rc = journal_append(rl->journal, &rec, &err);
		if (rc == 0) {
			/* the caller syncs it with the lock dropped, before the
			 * host's answer (group commit: one fdatasync for all
			 * who wait at once) */
			if (f->type == WIRE_FLUSH || (f->flags & WIRE_F_FUA))
				*sync_mark = journal_mark(rl->journal);
			goto out;
		}
		if (rc != -ENOSPC)
			goto out;
		rl->overflowed = true;
		qb_log(LOG_WARNING, "lun %s: journal full (%llu bytes); tracking dirty extents from now on",
		       rl->name, (unsigned long long)journal_bytes(rl->journal));
	}
	rc = mark_dirty(rl, f, &err);
out:
	if (rc < 0)
		qb_log(LOG_ERR, "lun %s: %s", rl->name, err.msg);
	return rc;
}

int resync_sync_locked(struct resync *rs)
{
	ipm_error err = { "" };
	unsigned i;
	int rc = 0;

	IPM_ASSERT_HELD(rs->lock);
	for (i = 0; i < rs->n_luns; i++) {
		struct resync_lun *rl = &rs->luns[i];

		/* a bitmap with nothing new marked costs no I/O */
		if (journal_sync(rl->journal, &err) < 0 || dirty_bitmap_sync(rl->bitmap, &err) < 0) {
			qb_log(LOG_ERR, "lun %s: %s", rl->name, err.msg);
			rc = -EIO;
		}
	}
	return rc;
}

bool resync_dropped_locked(struct resync *rs, const struct wire_frame *f)
{
	struct resync_lun *rl = &rs->luns[f->lun];

	IPM_ASSERT_HELD(rs->lock);
	/* not only past the journal's limit: extents folded from the activity
	 * log or marked by a verify are copied too, and cleared when taken */
	if ((!rl->overflowed && !rl->copied) || f->type == WIRE_FLUSH)
		return false;
	dirty_bitmap_mark(rl->bitmap, f->offset, f->length);
	return true;
}

int resync_mark_locked(struct resync *rs, uint32_t i, uint64_t off, uint64_t len)
{
	struct resync_lun *rl = &rs->luns[i];
	ipm_error err = { "" };
	int rc;

	IPM_ASSERT_HELD(rs->lock);
	rc = dirty_bitmap_mark(rl->bitmap, off, len);
	if (rc == 0)
		rc = dirty_bitmap_sync(rl->bitmap, &err);
	if (rc < 0)
		qb_log(LOG_ERR, "lun %s: %s", rl->name, err.msg[0] ? err.msg : strerror(-rc));
	return rc;
}

/* A new fill: the whole LUN durably dirty first, then the tag that says
 * the file is this fill's to-do list (a crash between leaves the old tag,
 * which no longer matches the peer's: the next start copies all again). */
static void fill_new_locked(struct resync *rs, struct resync_lun *rl, uint64_t fill)
{
	ipm_error err = { "" };

	dirty_bitmap_mark(rl->bitmap, 0, rl->size);
	if (dirty_bitmap_sync(rl->bitmap, &err) < 0 ||
	    dirty_bitmap_set_tag(rl->bitmap, fill, &err) < 0)
		qb_log(LOG_ERR, "lun %s: %s", rl->name, err.msg);
	qb_log(LOG_WARNING, "lun %s: %s needs the whole LUN (its data is no ancestor of ours): full resync%s",
	       rl->name, rs->peer, fill ? "" : " (the peer names no fill: a restart copies it all again)");
}

bool resync_want_full_locked(struct resync *rs, uint32_t i, uint64_t fill)
{
	struct resync_lun *rl = &rs->luns[i];
	bool same = fill && fill == dirty_bitmap_tag(rl->bitmap);

	IPM_ASSERT_HELD(rs->lock);
	if (rl->full_pending) {
		/* the peer's copy is another one now (invalidated, replaced):
		 * all of it again */
		if (fill && !same) {
			fill_new_locked(rs, rl, fill);
			return true;
		}
		return false;
	}
	if (same) {
		/* what the file holds: every extent not copied at the last
		 * checkpoint, and every one written since */
		qb_log(LOG_NOTICE, "lun %s: the full resync of fill %016llx resumes where it stopped: %llu of %llu bytes left to copy",
		       rl->name, (unsigned long long)fill,
		       (unsigned long long)dirty_bitmap_dirty_bytes(rl->bitmap),
		       (unsigned long long)rl->size);
	} else {
		fill_new_locked(rs, rl, fill);
	}
	rl->overflowed = true;
	rl->full_pending = true;
	return true;
}

void resync_stop_soon(struct resync *rs, bool stop)
{
	__atomic_store_n(&rs->stop_soon, stop, __ATOMIC_RELAXED);
}

static bool stop_asked(struct resync *rs)
{
	return __atomic_load_n(&rs->stop_soon, __ATOMIC_RELAXED);
}

bool resync_empty_locked(struct resync *rs)
{
	unsigned i;

	IPM_ASSERT_HELD(rs->lock);
	for (i = 0; i < rs->n_luns; i++)
		if (journal_records(rs->luns[i].journal) || rs->luns[i].overflowed)
			return false;
	return true;
}

void resync_lun_status_locked(struct resync *rs, uint32_t i, uint64_t *journal_bytes_,
			      uint64_t *journal_records_, uint64_t *done, uint64_t *total)
{
	struct resync_lun *rl = &rs->luns[i];

	IPM_ASSERT_HELD(rs->lock);
	*journal_bytes_ = rl->journal ? journal_bytes(rl->journal) : 0;
	*journal_records_ = rl->journal ? journal_records(rl->journal) : 0;
	if (rl->bitmap)
		*journal_bytes_ += dirty_bitmap_dirty_bytes(rl->bitmap);
	/* extents written again are copied again: done may pass total */
	*done = rl->done < rl->total ? rl->done : rl->total;
	*total = rl->total;
}

/* ---- replay -------------------------------------------------------------- */

/* The link still carries the resync (resync_ops.link_ok_locked). */
static bool link_ok(struct resync *rs)
{
	bool ok;

	if (!rs->ops->link_ok_locked)
		return true;
	pthread_mutex_lock(rs->lock);
	ok = rs->ops->link_ok_locked(rs->ctx);
	pthread_mutex_unlock(rs->lock);
	return ok;
}

/* Keep the resync under the configured rate (bytes/s): 0, or -ECONNRESET
 * when the link went meanwhile. One big record at a low rate is a pause
 * of seconds, so it sleeps in slices and looks at the link between them. */
static int pace(struct resync *rs, uint64_t sent, int64_t t0)
{
	/* once: a reload may change it meanwhile (replicator_set_resync_rate) */
	uint64_t rate = __atomic_load_n(&rs->rate, __ATOMIC_RELAXED);
	int64_t due_ms, left;

	if (!rate)
		return 0;
	due_ms = (int64_t)(sent * 1000 / rate);
	while ((left = due_ms - (ipm_now_ms() - t0)) > 0 && !stop_asked(rs)) {
		if (!link_ok(rs))
			return -ECONNRESET;
		usleep((useconds_t)(left < 100 ? left : 100) * 1000);
	}
	return 0;
}

/* ---- the order of replays on the mirror ----
 *
 * The mirror applies a request once every request numbered up to its dep
 * is applied. A replay needs only the earlier replays it overlaps applied
 * first (the newest of them covers the older ones): the mirror's copy is
 * inconsistent from the first replay until the INSYNC marker anyway
 * (lun_gen_resyncing), so the order of independent writes is free, and
 * many replays are applied at once over the n connections. Barriers (a
 * journaled FLUSH, the INSYNC marker) follow everything before them. The
 * ring remembers the newest replays; one pushed out raises the horizon,
 * which every later replay follows. */

static void order_reset(struct resync_order *o)
{
	o->horizon = RESYNC_DEP_ALL;  /* the run's first replay: after everything */
	o->head = o->n = 0;
}

static uint64_t order_dep(const struct resync_order *o, uint32_t lun, uint64_t off,
			  uint64_t end)
{
	unsigned i, k;

	if (o->horizon == RESYNC_DEP_ALL || end <= off)
		return o->horizon;
	for (i = 0; i < o->n; i++) {
		k = (o->head + RESYNC_ORDER_RING - 1 - i) % RESYNC_ORDER_RING;
		if (o->ring[k].lun == lun && o->ring[k].off < end && off < o->ring[k].end)
			return o->ring[k].seq > o->horizon ? o->ring[k].seq : o->horizon;
	}
	return o->horizon;
}

static void order_add(struct resync_order *o, uint32_t lun, uint64_t off, uint64_t end,
		      uint64_t seq)
{
	if (o->horizon == RESYNC_DEP_ALL)
		o->horizon = seq - 1;
	if (end <= off)
		return;
	if (o->n == RESYNC_ORDER_RING) {
		if (o->ring[o->head].seq > o->horizon)
			o->horizon = o->ring[o->head].seq;
	} else {
		o->n++;
	}
	o->ring[o->head].lun = lun;
	o->ring[o->head].off = off;
	o->ring[o->head].end = end;
	o->ring[o->head].seq = seq;
	o->head = (o->head + 1) % RESYNC_ORDER_RING;
}

/* Send one replayed request after the earlier ones it overlaps (or, a
 * barrier, after everything). A WRITE's rec->data_crc is its payload's
 * CRC32C, carried to the wire (the journal checked it when it read it).
 * With give, rec->data goes with the request, given back by release (free
 * when NULL). */
static int send_replay_as(struct resync *rs, struct resync_lun *rl, const struct journal_rec *rec,
			  uint16_t extra_flags, bool give, void (*release)(void *))
{
	uint32_t lun = (uint32_t)(rl - rs->luns);
	bool barrier = rec->type == JR_FLUSH;
	uint64_t end = barrier ? rec->offset : rec->offset + rec->length, seq = 0;
	struct wire_frame f = {
		.magic = WIRE_FRAME_MAGIC, .type = wire_type_of(rec->type),
		.flags = (uint16_t)((rec->flags & WIRE_F_FUA) | WIRE_F_REPLAY | extra_flags),
		.lun = lun, .offset = rec->offset, .length = rec->length,
		.dep = barrier ? RESYNC_DEP_ALL : order_dep(&rs->order, lun, rec->offset, end),
	};
	int rc;

	if (rec->type == JR_WRITE) {
		f.len = (uint32_t)rec->length;
		f.csum = rec->data_crc;
	}
	if (give)
		rc = rs->ops->submit_owned(rs->ctx, &f, (void *)rec->data, release, &seq);
	else
		rc = rs->ops->submit(rs->ctx, &f, rec->type == JR_WRITE ? rec->data : NULL, &seq);
	if (rc == 0)
		order_add(&rs->order, lun, rec->offset, end, seq);
	return rc;
}

static int send_replay(struct resync *rs, struct resync_lun *rl, const struct journal_rec *rec,
		       uint16_t extra_flags)
{
	return send_replay_as(rs, rl, rec, extra_flags, false, NULL);
}

/* Replay the journal records not replayed yet in this resync, from where
 * the last pass stopped (rl->iter). */
static int replay_journal(struct resync *rs, struct resync_lun *rl, uint64_t *sent, int64_t t0)
{
	struct journal_rec rec;
	ipm_error err = { "" };
	void *owned;
	int rc = 0;

	if (journal_records(rl->journal) <= rl->replayed_records)
		return 0;
	if (!rl->iter && (rc = journal_iter_open(rl->journal, &rl->iter, &err)) < 0)
		goto out;
	/* a large record's data comes in a buffer of its own, handed to the
	 * request as it is (no copy) */
	while (!stop_asked(rs) && (rc = journal_iter_next_owned(rl->iter, &rec, &owned, &err)) == 1) {
		/* an empty record (journaled by older versions) changes nothing */
		if (rec.type != JR_FLUSH && rec.length == 0) {
			rl->replayed_records++;
			continue;
		}
		rc = send_replay_as(rs, rl, &rec, 0, owned != NULL, NULL);
		if (rc < 0)
			break;
		rl->replayed_records++;
		pthread_mutex_lock(rs->lock);
		rl->done = journal_iter_offset(rl->iter);
		pthread_mutex_unlock(rs->lock);
		*sent += rec.length;
		if ((rc = pace(rs, *sent, t0)) < 0)
			break;
	}
	/* caught up: new records come in later passes, if at all */
	journal_iter_idle(rl->iter);
	if (rc >= 0 && stop_asked(rs))
		rc = -ESHUTDOWN;  /* the rest stays in the journal */
out:
	if (rc < 0 && rc != -ECONNRESET && rc != -ESHUTDOWN)
		qb_log(LOG_ERR, "lun %s: journal replay stopped: %s", rl->name, err.msg);
	return rc;
}

/* Take [off, off+len) for copying: once no host write in flight overlaps
 * it, clear its extents; a later write marks them again for the next pass.
 * Under the lock, where host writes mark the bitmap. */
static void take_range(struct resync *rs, struct resync_lun *rl, uint64_t off, uint64_t len)
{
	pthread_mutex_lock(rs->lock);
	if (rs->ops->quiesce_locked)
		rs->ops->quiesce_locked(rs->ctx, (uint32_t)(rl - rs->luns), off, len);
	dirty_bitmap_clear_range(rl->bitmap, off, len);
	rl->copied = true;
	pthread_mutex_unlock(rs->lock);
}

static void remark(struct resync *rs, struct resync_lun *rl, uint64_t off, uint64_t len)
{
	pthread_mutex_lock(rs->lock);
	dirty_bitmap_mark(rl->bitmap, off, len);
	pthread_mutex_unlock(rs->lock);
}

static uint64_t hole_end(struct resync *rs, struct resync_lun *rl, uint64_t off, uint64_t end)
{
	if (!rs->ops->hole_end)
		return off;
	return rs->ops->hole_end(rs->ctx, (uint32_t)(rl - rs->luns), off, end);
}

/* A hole of the local copy from off (a run's start, on an extent boundary)
 * over whole extents: taken and sent as one ZERO, however many dirty runs
 * it spans. Returns where it ends (off: no such hole). */
static uint64_t zero_hole(struct resync *rs, struct resync_lun *rl, uint64_t off, int *rc)
{
	uint64_t end = hole_end(rs, rl, off, rl->size);
	struct journal_rec rec = { .type = JR_ZERO, .offset = off };

	if (end < rl->size)
		end -= end % BITMAP_EXTENT;
	if (end <= off)
		return off;
	take_range(rs, rl, off, end - off);
	/* a write that landed before the take is data now: only the hole
	 * that is left goes as zeros, the rest is marked again */
	rec.length = hole_end(rs, rl, off, end);
	if (rec.length < end && rec.length > off)
		rec.length -= rec.length % BITMAP_EXTENT;
	if (rec.length < end)
		remark(rs, rl, rec.length, end - rec.length);
	if (rec.length <= off)
		return off;
	rec.length -= off;
	*rc = send_replay(rs, rl, &rec, 0);
	if (*rc < 0) {
		remark(rs, rl, off, rec.length);
		return off;
	}
	return off + rec.length;
}

static bool next_run(struct resync *rs, struct resync_lun *rl, uint64_t from, uint64_t *off,
		     uint64_t *len)
{
	bool more;

	pthread_mutex_lock(rs->lock);
	more = dirty_bitmap_next(rl->bitmap, from, off, len);
	pthread_mutex_unlock(rs->lock);
	return more;
}

static void add_done(struct resync *rs, struct resync_lun *rl, uint64_t n)
{
	pthread_mutex_lock(rs->lock);
	rl->done += n;
	pthread_mutex_unlock(rs->lock);
}

/* ---- copying dirty extents ----
 *
 * Runs are taken (take_range) and read in order, up to RESYNC_READS at
 * once, and sent in the same order as their reads end: the disk reads the
 * next runs while the oldest is checked and sent. A host write that lands
 * after a run was taken marks it again, so the run is copied once more in
 * a later pass, after this copy (order_dep): whatever the read saw, the
 * newest data is the last to reach the mirror. Runs of one pass are
 * disjoint, so their order among themselves is free. */

struct copy_slot {
	uint64_t off, len;
	void *buf;                    /* DIRTY_RUN_MAX bytes, kept across runs */
	bool done;                    /* its read ended (rc) */
	int rc;
};

struct copy_pipe {
	struct copy_slot slot[RESYNC_READS];
	unsigned head, n;             /* the oldest run at head, n taken */
	bool broken;                  /* a read ring failed: buffers stay the kernel's */
};

/* The runs' buffers (DIRTY_RUN_MAX, page-aligned for O_DIRECT) come back
 * from their requests (run_buf_put, a request's release, in whichever
 * thread answered it) and are used again: a fresh one costs a page fault
 * per page, and aligned 4 MiB chunks freed among small allocations
 * fragmented malloc's heap (a 1 GiB extent resync peaked at 868 MiB of
 * RSS with 32 MiB in flight). At most RUN_POOL_MAX are kept (what RESYNC_INFLIGHT_BYTES
 * and the reads ahead hold, and a few); a resync's end frees them. */
#define RUN_POOL_MAX 16

static struct {
	pthread_mutex_t lock;
	void *buf[RUN_POOL_MAX];
	unsigned n;
} run_pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void *run_buf_get(void)
{
	void *p = NULL;

	pthread_mutex_lock(&run_pool.lock);
	if (run_pool.n > 0)
		p = run_pool.buf[--run_pool.n];
	pthread_mutex_unlock(&run_pool.lock);
	if (!p && posix_memalign(&p, 4096, DIRTY_RUN_MAX) != 0)
		p = NULL;
	return p;
}

static void run_buf_put(void *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&run_pool.lock);
	if (run_pool.n < RUN_POOL_MAX) {
		run_pool.buf[run_pool.n++] = p;
		p = NULL;
	}
	pthread_mutex_unlock(&run_pool.lock);
	free(p);
}

static void run_pool_drain(void)
{
	void *v[RUN_POOL_MAX];
	unsigned i, n;

	pthread_mutex_lock(&run_pool.lock);
	n = run_pool.n;
	memcpy(v, run_pool.buf, n * sizeof(v[0]));
	run_pool.n = 0;
	pthread_mutex_unlock(&run_pool.lock);
	for (i = 0; i < n; i++)
		free(v[i]);
}

static bool async_reads(const struct resync *rs)
{
	return rs->ops->read_start && rs->ops->read_wait;
}

/* Take [off, off+len) and start reading it into the next slot. */
static int pipe_start(struct resync *rs, struct resync_lun *rl, struct copy_pipe *p,
		      uint64_t off, uint64_t len)
{
	struct copy_slot *s = &p->slot[(p->head + p->n) % RESYNC_READS];
	uint32_t lun = (uint32_t)(rl - rs->luns);

	if (!s->buf && !(s->buf = run_buf_get()))
		return -ENOMEM;
	take_range(rs, rl, off, len);
	s->off = off;
	s->len = len;
	s->done = false;
	p->n++;
	if (async_reads(rs) && rs->ops->read_start(rs->ctx, lun, s->buf, len, off, s) == 0)
		return 0;
	s->rc = rs->ops->read_local(rs->ctx, lun, s->buf, len, off);
	s->done = true;
	return 0;
}

/* Wait until the oldest run's read ended: false when the reads cannot be
 * waited for any more. */
static bool pipe_wait_head(struct resync *rs, struct copy_pipe *p)
{
	struct copy_slot *head = &p->slot[p->head], *s;
	void *tag;
	int rc;

	while (!head->done && !p->broken) {
		tag = NULL;
		rc = rs->ops->read_wait(rs->ctx, &tag);
		if (!tag) {
			qb_log(LOG_CRIT, "resync: cannot wait for a local read (%s); its buffers are left to it",
			       strerror(-rc));
			p->broken = true;
			break;
		}
		s = tag;
		s->rc = rc;
		s->done = true;
	}
	return head->done;
}

/* Send the oldest run (as a ZERO when it reads as zeros). */
static int pipe_send_head(struct resync *rs, struct resync_lun *rl, struct copy_pipe *p,
			  uint64_t *sent, int64_t t0)
{
	struct copy_slot *s = &p->slot[p->head];
	struct journal_rec rec = { .type = JR_WRITE, .offset = s->off, .length = s->len,
				   .data = s->buf };
	bool give;
	int rc;

	if (!pipe_wait_head(rs, p))
		return -EIO;
	p->head = (p->head + 1) % RESYNC_READS;
	p->n--;
	if (s->rc < 0) {
		remark(rs, rl, s->off, s->len);
		return -EIO;
	}
	if (extent_all_zero(s->buf, s->len))
		rec.type = JR_ZERO;
	else
		rec.data_crc = crc32c(0, s->buf, s->len);
	/* a WRITE's buffer goes with it (the slot gets a new one) */
	give = rec.type == JR_WRITE && rs->ops->submit_owned;
	rc = send_replay_as(rs, rl, &rec, 0, give, run_buf_put);
	if (give)
		s->buf = NULL;   /* the owner's now, even when it failed */
	if (rc < 0) {
		remark(rs, rl, s->off, s->len);
		return rc;
	}
	add_done(rs, rl, s->len);
	if (rec.type == JR_WRITE) {
		*sent += s->len;
		return pace(rs, *sent, t0);
	}
	return 0;
}

/* The runs taken and not sent are marked again (their reads waited for
 * first); the buffers go. */
static void pipe_end(struct resync *rs, struct resync_lun *rl, struct copy_pipe *p)
{
	unsigned i;

	for (; p->n > 0; p->n--) {
		pipe_wait_head(rs, p);
		remark(rs, rl, p->slot[p->head].off, p->slot[p->head].len);
		p->head = (p->head + 1) % RESYNC_READS;
	}
	for (i = 0; i < RESYNC_READS && !p->broken; i++)
		run_buf_put(p->slot[i].buf);
}

/* A fill's checkpoint (doc/generations.md): what was sent is made durable
 * on the mirror (a FLUSH after everything before it) and, once that is
 * answered, the extents cleared since the last one leave the bitmap file:
 * a restart resumes from here. The file lags the copy, never leads it.
 * Only with every taken run sent (the pipe empty). */
static int checkpoint(struct resync *rs, struct resync_lun *rl)
{
	static const struct journal_rec flush = { .type = JR_FLUSH };
	ipm_error err = { "" };
	int rc;

	rc = send_replay(rs, rl, &flush, 0);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(rs->lock);
	rc = rs->ops->wait_replays_locked ? rs->ops->wait_replays_locked(rs->ctx)
					  : rs->ops->wait_answers_locked(rs->ctx);
	/* the bitmap is marked by host writes under the lock: committed as
	 * marked now, whatever they marked is kept */
	if (rc == 0 && dirty_bitmap_commit(rl->bitmap, &err) < 0)
		qb_log(LOG_ERR, "lun %s: %s", rl->name, err.msg);
	rl->ckpt_ms = ipm_now_ms();
	pthread_mutex_unlock(rs->lock);
	if (rc == 0)
		order_reset(&rs->order);  /* everything replayed is applied */
	return rc;
}

/* Send every run taken, then checkpoint; -ESHUTDOWN after it when the
 * owner stops. */
static int drain_checkpoint(struct resync *rs, struct resync_lun *rl, struct copy_pipe *p,
			    uint64_t *sent, int64_t t0)
{
	int rc = 0;

	while (rc == 0 && p->n)
		rc = pipe_send_head(rs, rl, p, sent, t0);
	if (rc == 0)
		rc = checkpoint(rs, rl);
	if (rc == 0 && stop_asked(rs)) {
		qb_log(LOG_NOTICE, "lun %s: stopping: the full resync's progress is saved (%llu bytes left to copy)",
		       rl->name, (unsigned long long)dirty_bitmap_dirty_bytes(rl->bitmap));
		rc = -ESHUTDOWN;
	}
	return rc;
}

/* Copy the dirty extents from the local copy. Holes go as one ZERO each and
 * extents of zeros as a ZERO of their own: neither carries a payload, nor
 * counts against the resync rate. A fill checkpoints now and then. */
static int copy_dirty(struct resync *rs, struct resync_lun *rl, uint64_t *sent, int64_t t0)
{
	struct copy_pipe p = { .head = 0 };
	uint64_t off, len, from = 0, to;
	bool more = true;
	int rc = 0;

	for (;;) {
		if (rc == 0 && rl->full_pending &&
		    (stop_asked(rs) || ipm_now_ms() - rl->ckpt_ms >= RESYNC_CHECKPOINT_MS))
			rc = drain_checkpoint(rs, rl, &p, sent, t0);
		else if (rc == 0 && stop_asked(rs))
			rc = -ESHUTDOWN;  /* the runs taken are marked again */
		/* the next runs are read while the oldest goes out */
		while (rc == 0 && more && p.n < RESYNC_READS &&
		       (more = next_run(rs, rl, from, &off, &len))) {
			to = zero_hole(rs, rl, off, &rc);
			if (to > off) {
				add_done(rs, rl, to - off);
				from = to;
			} else if (rc == 0) {
				rc = pipe_start(rs, rl, &p, off, len);
				from = off + len;
			}
		}
		if (rc < 0 || p.n == 0)
			break;
		rc = pipe_send_head(rs, rl, &p, sent, t0);
	}
	pipe_end(rs, rl, &p);
	return rc;
}

static bool caught_up_locked(struct resync *rs)
{
	unsigned i;

	IPM_ASSERT_HELD(rs->lock);
	for (i = 0; i < rs->n_luns; i++) {
		if (rs->luns[i].replayed_records < journal_records(rs->luns[i].journal))
			return false;
		if (dirty_bitmap_dirty_bytes(rs->luns[i].bitmap))
			return false;
	}
	return true;
}

static void begin_locked(struct resync *rs)
{
	unsigned i;

	IPM_ASSERT_HELD(rs->lock);
	for (i = 0; i < rs->n_luns; i++) {
		struct resync_lun *rl = &rs->luns[i];

		rl->replayed_records = 0;
		journal_iter_close(rl->iter);  /* the journal is replayed from its start */
		rl->iter = NULL;
		rl->done = 0;
		rl->copied = false;
		rl->t0 = ipm_now_ms();
		rl->ckpt_ms = rl->t0;
		/* a fill: what the peer answered since the last checkpoint is
		 * copied again, it may have lost it with its power (the link
		 * went down since, or this run would not begin) */
		if (rl->full_pending)
			dirty_bitmap_restore(rl->bitmap);
		rl->total = (journal_records(rl->journal) ? journal_bytes(rl->journal) : 0) +
			    dirty_bitmap_dirty_bytes(rl->bitmap);
		/* a fill counts the whole LUN, what an earlier run copied done */
		if (rl->full_pending) {
			rl->done = rl->size - dirty_bitmap_dirty_bytes(rl->bitmap);
			rl->total += rl->done;
		}
	}
}

/* Everything replayed was answered: empty the journals, go live. */
static void finish_resync_locked(struct resync *rs, uint64_t sent, int64_t t0)
{
	ipm_error err = { "" };
	unsigned i;
	int rc;

	IPM_ASSERT_HELD(rs->lock);
	for (i = 0; i < rs->n_luns; i++) {
		struct resync_lun *rl = &rs->luns[i];

		/* the mirror holds the replays durably (the INSYNC marker is a
		 * FLUSH); the local copy must too before the journal, their
		 * only record, goes: the host may never have flushed them */
		if ((journal_records(rl->journal) || dirty_bitmap_dirty_bytes(rl->bitmap)) &&
		    rs->ops->flush_local_locked && (rc = rs->ops->flush_local_locked(rs->ctx, i)) < 0)
			qb_log(LOG_ERR, "lun %s: cannot sync the local copy: %s", rl->name,
			       strerror(-rc));
		journal_iter_close(rl->iter);
		rl->iter = NULL;
		if (journal_records(rl->journal) && journal_reset(rl->journal, &err) < 0)
			qb_log(LOG_ERR, "lun %s: %s", rl->name, err.msg);
		/* always: the copy cleared the extents in memory only, and the
		 * file keeps them (a full resync's, the activity log's) until
		 * now, else every restart would copy them again */
		if (dirty_bitmap_clear_all(rl->bitmap, &err) < 0)
			qb_log(LOG_ERR, "lun %s: %s", rl->name, err.msg);
		rl->overflowed = false;
		rl->full_pending = false;
		rl->done = rl->total;
	}
	rs->ops->go_live_locked(rs->ctx);
	qb_log(LOG_NOTICE, "peer %s: resync complete, %llu bytes in %lld ms; mirroring live",
	       rs->peer, (unsigned long long)sent, (long long)(ipm_now_ms() - t0));
}

static const struct journal_rec insync_marker = { .type = JR_FLUSH };

/* Journal records not replayed yet, plus dirty 1 MiB extents not copied yet. */
static uint64_t backlog_locked(struct resync *rs)
{
	uint64_t n = 0;
	unsigned i;

	IPM_ASSERT_HELD(rs->lock);
	for (i = 0; i < rs->n_luns; i++) {
		uint64_t recs = journal_records(rs->luns[i].journal);

		if (recs > rs->luns[i].replayed_records)
			n += recs - rs->luns[i].replayed_records;
		n += dirty_bitmap_dirty_bytes(rs->luns[i].bitmap) / BITMAP_EXTENT;
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

static int resync_passes(struct resync *rs, bool *held, int64_t t0);

int resync_run(struct resync *rs)
{
	bool held = false;
	int rc = resync_passes(rs, &held, ipm_now_ms());

	if (held) {
		pthread_mutex_lock(rs->lock);
		rs->ops->hold_locked(rs->ctx, false);
		pthread_mutex_unlock(rs->lock);
	}
	/* the replays' buffers (up to RESYNC_INFLIGHT_BYTES, malloc's or the
	 * pool's to reuse meanwhile) go back to the system, not only to
	 * malloc; a request still in flight gives its own back later */
	run_pool_drain();
	malloc_trim(0);
	return rc;
}

static int resync_passes(struct resync *rs, bool *held, int64_t t0)
{
	uint64_t sent = 0, backlog;
	unsigned i, pass;
	bool final;
	int rc;

	pthread_mutex_lock(rs->lock);
	begin_locked(rs);
	pthread_mutex_unlock(rs->lock);
	order_reset(&rs->order);
	qb_log(LOG_NOTICE, "peer %s: connected again, resync starts", rs->peer);
	for (pass = 1;; pass++) {
		for (i = 0; i < rs->n_luns; i++) {
			rc = replay_journal(rs, &rs->luns[i], &sent, t0);
			if (rc < 0)
				return rc;
			/* past the journal's limit, or extents the activity log
			 * handed over at an outage (al_fold) */
			if (dirty_bitmap_dirty_bytes(rs->luns[i].bitmap)) {
				rc = copy_dirty(rs, &rs->luns[i], &sent, t0);
				if (rc < 0)
					return rc;
			}
		}
		pthread_mutex_lock(rs->lock);
		backlog = backlog_locked(rs);
		if (!*held && hold_now(pass, backlog)) {
			*held = true;
			rs->ops->hold_locked(rs->ctx, true);
			if (backlog)
				qb_log(LOG_INFO, "peer %s: resync pass %u: %llu new record(s) or extent(s) to replay; new writes wait until then",
				       rs->peer, pass, (unsigned long long)backlog);
		}
		/* held and nothing left: this pass makes the copies equal */
		final = *held && caught_up_locked(rs);
		pthread_mutex_unlock(rs->lock);
		/* only then tell the mirror (a durable barrier after everything
		 * replayed): a marker after an earlier pass would have it say
		 * "up to date" while the journal still holds newer writes */
		for (i = 0; final && i < rs->n_luns; i++) {
			rc = send_replay(rs, &rs->luns[i], &insync_marker, WIRE_F_INSYNC);
			if (rc < 0)
				return rc;
		}
		pthread_mutex_lock(rs->lock);
		/* wait for the mirror's answers while new writes go to the
		 * journal (or wait, once held): only when everything replayed
		 * was applied and nothing new arrived may the journal be
		 * emptied and writes go live, in one step under the lock.
		 * Going live earlier would let a later outage replay old
		 * records over newer live data. */
		rc = rs->ops->wait_answers_locked(rs->ctx);
		if (rc < 0) {
			pthread_mutex_unlock(rs->lock);
			return rc;
		}
		order_reset(&rs->order);  /* everything replayed is applied */
		if (final && caught_up_locked(rs)) {
			finish_resync_locked(rs, sent, t0);
			break;
		}
		pthread_mutex_unlock(rs->lock);
	}
	pthread_mutex_unlock(rs->lock);
	return 0;
}
