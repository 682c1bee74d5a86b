/* activity_log.c - which extents may hold writes the mirror has not applied
 * while mirroring live (DRBD's activity log, unbounded for now: a bit per
 * 4 MiB extent of the LUN, as DRBD's default extent).
 *
 * A live write reaches the local disk and the wire at the same time. If the
 * primary dies in between, neither the journal (only used while the peer is
 * unreachable) nor the mirror knows about it, and the copies differ. So the
 * extent of every live write is marked in a persistent bitmap, durably,
 * before the write goes anywhere; the marks are dropped (durably) when
 * nothing has been written live for AL_IDLE_MS. At start, marks left by a crash are moved into the
 * LUN's dirty-extent bitmap, and the resync copies those extents. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <qb/qblog.h>

#include "lockdebug.h"
#include "lun.h"
#include "replicator_int.h"

#define AL_EXTENT (4u << 20)

static uint64_t extent_of(uint64_t off)
{
	return off / AL_EXTENT;
}

/* Words of rl->al_durable. */
static size_t durable_words(const struct rep_lun *rl)
{
	return extent_of(rl->lun->size + AL_EXTENT - 1) / 64 + 1;
}

static bool durable(const struct rep_lun *rl, uint64_t x)
{
	return __atomic_load_n(&rl->al_durable[x / 64], __ATOMIC_ACQUIRE) & (1ull << (x % 64));
}

/* Every extent [off, off+len) touches is durably marked. */
static bool all_durable(const struct rep_lun *rl, uint64_t off, uint64_t len)
{
	uint64_t x, last = extent_of(off + len - 1);

	for (x = extent_of(off); x <= last; x++)
		if (!durable(rl, x))
			return false;
	return true;
}

static void set_durable(struct rep_lun *rl, uint64_t off, uint64_t len)
{
	uint64_t x, last = extent_of(off + len - 1);

	for (x = extent_of(off); x <= last; x++)
		__atomic_or_fetch(&rl->al_durable[x / 64], 1ull << (x % 64), __ATOMIC_RELEASE);
}

/* Marks left over from a crash become dirty extents for the resync. */
static int al_recover(struct rep_lun *rl, const char *path, ipm_error *err)
{
	uint64_t off, len, from = 0, bytes = dirty_bitmap_dirty_bytes(rl->al);
	int rc;

	if (!bytes)
		return 0;
	while (dirty_bitmap_next(rl->al, from, &off, &len)) {
		dirty_bitmap_mark(rl->bitmap, off, len);
		from = off + len;
	}
	rc = dirty_bitmap_sync(rl->bitmap, err);
	if (rc < 0)
		return rc;
	rl->overflowed = true;
	qb_log(LOG_WARNING, "lun %s: %s: the last run did not stop cleanly; %llu bytes written while mirroring live will be resynced",
	       ipm_lun_name(rl->lun), path, (unsigned long long)bytes);
	return dirty_bitmap_clear_all(rl->al, err);
}

int al_open(struct rep_lun *rl, const char *journal_path, ipm_error *err)
{
	char path[4200];
	int rc;

	snprintf(path, sizeof(path), "%s.al", journal_path);
	rl->al_durable = calloc(durable_words(rl), sizeof(*rl->al_durable));
	if (!rl->al_durable)
		return ipm_fail(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&rl->al_lock, NULL);
	rc = dirty_bitmap_open(path, rl->lun->size, AL_EXTENT, &rl->al, err);
	if (rc < 0) {
		pthread_mutex_destroy(&rl->al_lock);
		free(rl->al_durable);
		rl->al_durable = NULL;
		return rc;
	}
	return al_recover(rl, path, err);
}

void al_close(struct rep_lun *rl)
{
	if (rl->al) {
		dirty_bitmap_close(rl->al);
		pthread_mutex_destroy(&rl->al_lock);
	}
	free(rl->al_durable);
	rl->al_durable = NULL;
	rl->al = NULL;
}

/* Before a live request leaves: its extents are durably marked. The first
 * write to an extent costs one fdatasync of the small bitmap file, made
 * under al_lock; requests to extents already on disk do not take the lock
 * (on a fresh log every host thread would queue behind each new extent's
 * sync: hundreds of them in the first second of a random load). Called
 * without r->lock. */
int al_note(struct rep_lun *rl, const struct wire_frame *f)
{
	ipm_error err = { "" };
	uint64_t before;
	int rc = 0;

	if (f->type == WIRE_FLUSH || !f->length)
		return 0;
	if (all_durable(rl, f->offset, f->length))
		return 0;
	pthread_mutex_lock(&rl->al_lock);
	before = dirty_bitmap_dirty_bytes(rl->al);
	dirty_bitmap_mark(rl->al, f->offset, f->length);
	if (dirty_bitmap_dirty_bytes(rl->al) != before)
		rc = dirty_bitmap_sync(rl->al, &err);
	if (rc == 0)
		set_durable(rl, f->offset, f->length);
	pthread_mutex_unlock(&rl->al_lock);
	if (rc < 0)
		qb_log(LOG_ERR, "lun %s: activity log: %s", ipm_lun_name(rl->lun), err.msg);
	return rc;
}

/* The link broke. The mirror answered the live writes in the log's
 * extents, but an answer is not durability: if it lost its power, the
 * writes it had not flushed are gone, and nothing else says where they
 * were. So those extents go into the dirty-extent bitmap and the resync
 * copies them again (besides replaying the journal). */
void al_fold_locked(struct replicator *r)
{
	ipm_error err = { "" };
	uint64_t off, len, from;
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < r->n_luns; i++) {
		struct rep_lun *rl = &r->luns[i];
		bool marked = false;

		if (!rl->al || !rl->bitmap)
			continue;
		pthread_mutex_lock(&rl->al_lock);
		for (from = 0; dirty_bitmap_next(rl->al, from, &off, &len); from = off + len) {
			dirty_bitmap_mark(rl->bitmap, off, len);
			marked = true;
		}
		pthread_mutex_unlock(&rl->al_lock);
		if (marked && dirty_bitmap_sync(rl->bitmap, &err) < 0)
			qb_log(LOG_ERR, "lun %s: %s", ipm_lun_name(rl->lun), err.msg);
	}
}

/* Nothing in flight and no host request pending: the mirror has applied
 * everything the host wrote, so no extent can differ. */
void al_settle_locked(struct replicator *r)
{
	ipm_error err = { "" };
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	if (r->inflight || r->al_users)
		return;
	for (i = 0; i < r->n_luns; i++)
		if (r->luns[i].active)
			return;
	for (i = 0; i < r->n_luns; i++) {
		struct rep_lun *rl = &r->luns[i];

		if (!rl->al)
			continue;
		pthread_mutex_lock(&rl->al_lock);
		/* no al_note runs now (al_users is 0 under r->lock) */
		memset(rl->al_durable, 0, durable_words(rl) * sizeof(*rl->al_durable));
		if (dirty_bitmap_dirty_bytes(rl->al) && dirty_bitmap_clear_all(rl->al, &err) < 0)
			qb_log(LOG_ERR, "lun %s: activity log: %s", ipm_lun_name(rl->lun), err.msg);
		pthread_mutex_unlock(&rl->al_lock);
	}
}
