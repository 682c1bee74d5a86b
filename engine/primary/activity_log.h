/* activity_log.h - which extents of one LUN may hold live writes the mirror
 * has not applied (FreeBSD HAST's activemap, in DRBD's extent size). The
 * log knows nothing of the replicator: the caller notes a write's range
 * and, when told so, makes the mark durable before the write leaves.
 *
 *   if (al_note(al, off, len) && al_sync(al, off, len, &err) < 0) ...
 *
 * Locks: al->lock guards the bitmap; al_note and al_sync take it alone (the
 * replicator calls them with r->lock dropped), al_clear may be called with
 * the replicator's lock held (r->lock before al->lock). */
#ifndef IPM_ACTIVITY_LOG_H
#define IPM_ACTIVITY_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "dirty_bitmap.h"

/* The log is cleared only after this long without a live write. */
#define AL_IDLE_MS 3000

struct activity_log {
	const char *name;             /* the LUN's, for the log */
	uint64_t size;                /* the LUN's */
	struct dirty_bitmap *map;     /* NULL: not open */
	pthread_mutex_t lock;         /* map only */
	uint64_t *durable;            /* a bit per extent whose mark is on disk:
				       * read without the lock, so writes to marked
				       * extents never wait behind another's sync */
};

/* Open the log beside journal_path (".al"). Marks a crash left behind are
 * moved into dirty (made durable there) and *recovered is set; the log
 * then starts empty. */
int al_open(struct activity_log *al, const char *name, uint64_t size, const char *journal_path,
	    struct dirty_bitmap *dirty, bool *recovered, ipm_error *err);
void al_close(struct activity_log *al);
/* Every extent of [off, off+len) durably marked? Lock-free, no I/O (a
 * caller holding its own lock asks this before al_note). */
bool al_durable(const struct activity_log *al, uint64_t off, uint64_t len);
/* A live write to [off, off+len) is about to leave: marks it in memory.
 * true when the mark is not on disk yet: the caller must al_sync before the
 * write leaves. Lock-free when every extent is already durable. */
bool al_note(struct activity_log *al, uint64_t off, uint64_t len);
/* Make the marks of [off, off+len) durable (one fdatasync of the small
 * bitmap file, unless another caller made them durable meanwhile). */
int al_sync(struct activity_log *al, uint64_t off, uint64_t len, ipm_error *err);
/* Nothing is in flight and no write is pending (the caller knows): clear
 * the log, durably. No al_note may run meanwhile. */
int al_clear(struct activity_log *al, ipm_error *err);
/* The link broke. The mirror answered the live writes in the log's
 * extents, but an answer is not durability: if it lost its power, the
 * writes it had not flushed are gone, and nothing else says where they
 * were. So the log's extents are marked in dirty (in memory: the caller
 * syncs it), for the resync to copy them again. true when any was. */
bool al_fold(struct activity_log *al, struct dirty_bitmap *dirty);
/* Any extent marked? */
bool al_marked(struct activity_log *al);

#endif
