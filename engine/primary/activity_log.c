/* activity_log.c - which extents may hold writes the mirror has not applied
 * while mirroring live (DRBD's activity log, unbounded for now: a bit per
 * 4 MiB extent of the LUN, as DRBD's default extent).
 *
 * A live write reaches the local disk and the wire at the same time. If the
 * primary dies in between, neither the journal (only used while the peer is
 * unreachable) nor the mirror knows about it, and the copies differ; a
 * journaled one may reach the journal's disk and not the local one, or the
 * reverse. So the extent of every write is marked in a persistent bitmap, durably,
 * before the write goes anywhere; the marks are dropped (durably) when
 * nothing has been written live for AL_IDLE_MS. At start, marks left by a
 * crash are moved into the LUN's dirty-extent bitmap, and the resync copies
 * those extents. Unit tested by tests/unit/test_activity_log.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <qb/qblog.h>

#include "activity_log.h"
#include "ipmirror.h"

#define AL_EXTENT (4u << 20)

static uint64_t extent_of(uint64_t off)
{
	return off / AL_EXTENT;
}

/* Words of al->durable. */
static size_t durable_words(const struct activity_log *al)
{
	return extent_of(al->size + AL_EXTENT - 1) / 64 + 1;
}

static bool durable(const struct activity_log *al, uint64_t x)
{
	return __atomic_load_n(&al->durable[x / 64], __ATOMIC_ACQUIRE) & (1ull << (x % 64));
}

/* Every extent [off, off+len) touches is durably marked. */
static bool all_durable(const struct activity_log *al, uint64_t off, uint64_t len)
{
	uint64_t x, last = extent_of(off + len - 1);

	for (x = extent_of(off); x <= last; x++)
		if (!durable(al, x))
			return false;
	return true;
}

static void set_durable(struct activity_log *al, uint64_t off, uint64_t len)
{
	uint64_t x, last = extent_of(off + len - 1);

	for (x = extent_of(off); x <= last; x++)
		__atomic_or_fetch(&al->durable[x / 64], 1ull << (x % 64), __ATOMIC_RELEASE);
}

/* Marks left over from a crash become dirty extents for the resync. */
static int al_recover(struct activity_log *al, const char *path, struct dirty_bitmap *dirty,
		      bool *recovered, ipm_error *err)
{
	uint64_t off, len, from = 0, bytes = dirty_bitmap_dirty_bytes(al->map);
	int rc;

	if (!bytes)
		return 0;
	while (dirty_bitmap_next(al->map, from, &off, &len)) {
		dirty_bitmap_mark(dirty, off, len);
		from = off + len;
	}
	rc = dirty_bitmap_sync(dirty, err);
	if (rc < 0)
		return rc;
	*recovered = true;
	qb_log(LOG_WARNING, "lun %s: %s: the last run did not stop cleanly; %llu bytes written while mirroring live will be resynced",
	       al->name, path, (unsigned long long)bytes);
	return dirty_bitmap_clear_all(al->map, err);
}

int al_open(struct activity_log *al, const char *name, uint64_t size, const char *journal_path,
	    struct dirty_bitmap *dirty, bool *recovered, ipm_error *err)
{
	char path[4200];
	int rc;

	*al = (struct activity_log){ .name = name, .size = size };
	snprintf(path, sizeof(path), "%s.al", journal_path);
	al->durable = calloc(durable_words(al), sizeof(*al->durable));
	if (!al->durable)
		return ipm_fail(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&al->lock, NULL);
	rc = dirty_bitmap_open(path, size, AL_EXTENT, &al->map, err);
	if (rc < 0) {
		pthread_mutex_destroy(&al->lock);
		free(al->durable);
		al->durable = NULL;
		return rc;
	}
	return al_recover(al, path, dirty, recovered, err);
}

void al_close(struct activity_log *al)
{
	if (al->map) {
		dirty_bitmap_close(al->map);
		pthread_mutex_destroy(&al->lock);
	}
	free(al->durable);
	al->durable = NULL;
	al->map = NULL;
}

/* Requests to extents already on disk do not take the lock (on a fresh
 * log every host thread would queue behind each new extent's sync:
 * hundreds of them in the first second of a random load). */
bool al_durable(const struct activity_log *al, uint64_t off, uint64_t len)
{
	return !len || all_durable(al, off, len);
}

bool al_note(struct activity_log *al, uint64_t off, uint64_t len)
{
	if (!len || all_durable(al, off, len))
		return false;
	pthread_mutex_lock(&al->lock);
	dirty_bitmap_mark(al->map, off, len);
	pthread_mutex_unlock(&al->lock);
	return true;
}

/* The first write to an extent costs one fdatasync, made under the lock:
 * a second writer of the same extent waits for it and then finds it
 * durable instead of syncing again. */
int al_sync(struct activity_log *al, uint64_t off, uint64_t len, ipm_error *err)
{
	int rc = 0;

	pthread_mutex_lock(&al->lock);
	if (!all_durable(al, off, len)) {
		rc = dirty_bitmap_sync(al->map, err);
		if (rc == 0)
			set_durable(al, off, len);
	}
	pthread_mutex_unlock(&al->lock);
	return rc;
}

bool al_fold(struct activity_log *al, struct dirty_bitmap *dirty)
{
	uint64_t off, len, from;
	bool marked = false;

	if (!al->map)
		return false;
	pthread_mutex_lock(&al->lock);
	for (from = 0; dirty_bitmap_next(al->map, from, &off, &len); from = off + len) {
		dirty_bitmap_mark(dirty, off, len);
		marked = true;
	}
	pthread_mutex_unlock(&al->lock);
	return marked;
}

int al_clear(struct activity_log *al, ipm_error *err)
{
	int rc = 0;

	if (!al->map)
		return 0;
	pthread_mutex_lock(&al->lock);
	memset(al->durable, 0, durable_words(al) * sizeof(*al->durable));
	if (dirty_bitmap_dirty_bytes(al->map))
		rc = dirty_bitmap_clear_all(al->map, err);
	pthread_mutex_unlock(&al->lock);
	return rc;
}

bool al_marked(struct activity_log *al)
{
	bool marked;

	if (!al->map)
		return false;
	pthread_mutex_lock(&al->lock);
	marked = dirty_bitmap_dirty_bytes(al->map) > 0;
	pthread_mutex_unlock(&al->lock);
	return marked;
}
