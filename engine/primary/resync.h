/* resync.h - the primary's journaling and resync, apart from the
 * replicator: while the peer is unreachable requests go into each LUN's
 * journal (past its limit, into a dirty-extent bitmap); once it is back the
 * resync replays the journal and copies the dirty extents, in passes,
 * through the small interface below (struct resync_ops), then switches the
 * replicator to live. The replicator implements the ops; the unit test
 * tests/unit/test_resync.c implements them with a fake.
 *
 * Locks: everything in struct resync is guarded by the owner's lock
 * (rs->lock, the replicator's r->lock). The ops marked _locked are called
 * with it held; submit and read_local without it. */
#ifndef IPM_RESYNC_H
#define IPM_RESYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "dirty_bitmap.h"
#include "journal.h"
#include "wire.h"

/* submit's f->dep: after everything queued before (the replicator knows
 * the number). */
#define RESYNC_DEP_ALL UINT64_MAX
/* Dirty runs (DIRTY_RUN_MAX each) read at once while the oldest is sent. */
#define RESYNC_READS 4

/* One LUN's journal side. */
struct resync_lun {
	const char *name;             /* the LUN's, for the log */
	uint64_t size;
	struct journal *journal;
	struct dirty_bitmap *bitmap;  /* used once the journal is full */
	bool overflowed;              /* past the journal's limit: writes mark the bitmap */
	bool full_pending;            /* the peer asked for the whole LUN (a fill:
					 * the bitmap's tag names it) */
	int64_t ckpt_ms;              /* the fill's last checkpoint (ms) */
	bool copied;                  /* this resync took dirty extents: a dropped
					 * replay may be one, marked again */
	uint64_t replayed_records;    /* of the journal, in this resync */
	struct journal_iter *iter;    /* at the first record not replayed yet */
	uint64_t done, total;         /* bytes, for the status */
	int64_t t0;                   /* when the running resync started (ms) */
};

/* What the resync asks of the replicator. */
struct resync_ops {
	/* Queue one replayed request (f->lun says which LUN; data is copied,
	 * f->csum is its CRC32C already) once the window has room, numbered
	 * after everything queued before it (*seq: its number). The mirror
	 * applies it once every request numbered up to f->dep is applied, or
	 * with f->dep == RESYNC_DEP_ALL everything queued before it.
	 * -ECONNRESET when the link left the resync or the replicator is
	 * stopping. Called without the lock. */
	int (*submit)(void *ctx, const struct wire_frame *f, const void *data, uint64_t *seq);
	/* Optional: submit with data handed over, given back by release
	 * (free when NULL) by the owner, also when it fails: a copied
	 * extent's read buffer goes out without a copy. */
	int (*submit_owned)(void *ctx, const struct wire_frame *f, void *data,
			    void (*release)(void *), uint64_t *seq);
	/* Read the local copy of a LUN. Called without the lock. */
	int (*read_local)(void *ctx, uint32_t lun, void *buf, size_t len, uint64_t off);
	/* Optional, both or neither: reads in flight, so that the disk reads
	 * the next extents while one is sent. read_start starts reading (0,
	 * or -errno: nothing started, read_local it); read_wait waits for one
	 * started read to end, in any order (its tag in *tag, 0 or -errno).
	 * At most RESYNC_READS at once; buf is untouchable until then. Called
	 * without the lock, from the resync's thread only. */
	int (*read_start)(void *ctx, uint32_t lun, void *buf, size_t len, uint64_t off,
			  void *tag);
	int (*read_wait)(void *ctx, void **tag);
	/* Where the hole of the local copy at off ends (extent_hole_end):
	 * off when off holds data or it cannot tell. NULL: no holes. Called
	 * without the lock. */
	uint64_t (*hole_end)(void *ctx, uint32_t lun, uint64_t off, uint64_t end);
	/* Wait until no host write in flight overlaps [off, off+len): such a
	 * write marked its extents before its local write, which must land
	 * before the copy reads them. NULL: nothing to wait for. */
	void (*quiesce_locked)(void *ctx, uint32_t lun, uint64_t off, uint64_t len);
	/* Wait until every replayed request was answered and no host write
	 * is still on its way to the journal: 0, or -ECONNRESET when the link
	 * left the resync (or stopping) meanwhile. */
	int (*wait_answers_locked)(void *ctx);
	/* Optional: the same for the replayed requests alone (host writes go
	 * on meanwhile): a fill's checkpoint. NULL: wait_answers_locked. */
	int (*wait_replays_locked)(void *ctx);
	/* New host writes wait (true) or go on to the journal (false). */
	void (*hold_locked)(void *ctx, bool hold);
	/* Everything replayed was applied and nothing new came: host writes
	 * go to the mirror live from now on, every LUN is up to date. */
	void (*go_live_locked)(void *ctx);
	/* Optional: make the local copy of a LUN durable (the journal, the
	 * only record of what was written meanwhile, is emptied next). */
	int (*flush_local_locked)(void *ctx, uint32_t lun);
	/* Optional: the link still carries the resync (the rate limit's
	 * pauses end early when it does not). NULL: always. */
	bool (*link_ok_locked)(void *ctx);
};

/* The replays in flight, for their order on the mirror (resync.c): a
 * replay must follow only the earlier ones it overlaps. */
#define RESYNC_ORDER_RING 512
struct resync_order {
	uint64_t horizon;             /* replays up to this number come first */
	unsigned head, n;             /* the newest n replays, newest at head - 1 */
	struct { uint64_t off, end, seq; uint32_t lun; } ring[RESYNC_ORDER_RING];
};

struct resync {
	const struct resync_ops *ops;
	void *ctx;
	pthread_mutex_t *lock;        /* the owner's; guards all of this */
	const char *peer;             /* the peer's name, for the log */
	uint64_t rate;                /* bytes/s, 0 = unlimited */
	bool stop_soon;               /* the owner stops: a fill checkpoints and
				       * ends (atomic: resync_stop_soon) */
	unsigned n_luns;
	struct resync_lun *luns;      /* indexed by wire LUN index */
	struct resync_order order;    /* the resync thread's own */
};

/* Allocate rs->luns (n of them, closed); the caller fills ops, ctx, lock,
 * peer and rate. */
int resync_init(struct resync *rs, unsigned n_luns, ipm_error *err);
/* Open LUN i's journal and bitmap beside journal_path (max: its size limit,
 * 0 for the default). */
int resync_open_lun(struct resync *rs, uint32_t i, const char *name, uint64_t size,
		    const char *journal_path, uint64_t max, ipm_error *err);
/* LUN i's journal size limit (0: the default), from its next record. */
void resync_set_journal_max_locked(struct resync *rs, uint32_t i, uint64_t max);
/* Log what LUN i has from before (call after al_open's recovery). */
void resync_report_lun(struct resync *rs, uint32_t i);
void resync_close(struct resync *rs);

/* Journal one request (f->lun; data for a WRITE, f->csum its CRC32C or 0)
 * while the link is down or resyncing. */
int resync_journal_locked(struct resync *rs, const struct wire_frame *f, const void *data);
/* The same without the sync a FLUSH or FUA request needs: *sync_mark is
 * then nonzero, and the caller passes it to resync_journal_sync, with the
 * lock dropped, before the host sees the request complete. */
int resync_journal_defer_locked(struct resync *rs, const struct wire_frame *f,
				const void *data, uint64_t *sync_mark);
int resync_journal_sync(struct resync *rs, uint32_t lun, uint64_t mark);
/* Make the journals and bitmaps durable. */
int resync_sync_locked(struct resync *rs);
/* A replayed request that a go_down dropped unanswered: a copied extent
 * was cleared from the bitmap when read, so it is marked again (a journal
 * record stays in the journal; marking it too costs one more copy). true
 * when something was marked: call resync_sync_locked after the batch. */
bool resync_dropped_locked(struct resync *rs, const struct wire_frame *f);
/* An online verify found [off, off+len) of LUN i different on the peer
 * (verify.c): marked dirty, durably, so the next resync copies it (-errno
 * when the mark could not be made durable). A repair leaves the mark: the
 * next resync copies the extent once more, never once too few. */
int resync_mark_locked(struct resync *rs, uint32_t i, uint64_t off, uint64_t len);
/* The peer asked for the whole LUN; fill is its id of the copy it holds
 * (0: a peer that names none, version 5 and older). When the bitmap's tag
 * names the same fill, the copy resumes where the bitmap says it stopped
 * (after a restart of this daemon, too); otherwise the whole LUN is marked
 * dirty and the tag becomes fill. true when a copy begins or resumes here
 * (the caller starts a resync), false when it was pending already. */
bool resync_want_full_locked(struct resync *rs, uint32_t i, uint64_t fill);
/* The owner is stopping (true) or starts again (false): a fill running
 * makes a last checkpoint and ends, so that it resumes from there. */
void resync_stop_soon(struct resync *rs, bool stop);
/* Nothing journaled or marked on any LUN. */
bool resync_empty_locked(struct resync *rs);
/* LUN i's journal and resync figures. */
void resync_lun_status_locked(struct resync *rs, uint32_t i, uint64_t *journal_bytes,
			      uint64_t *journal_records, uint64_t *done, uint64_t *total);

/* Replay every LUN's journal and copy its dirty extents, in passes, until
 * caught up; then go live (ops->go_live_locked). 0 when live, negative
 * when the link broke (the caller goes back down). Without the lock. */
int resync_run(struct resync *rs);

#endif
