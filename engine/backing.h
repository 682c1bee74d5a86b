/* backing.h - local I/O on a LUN's backing store (backing.c): the bottom
 * of every request; no mirroring. */
#ifndef IPM_BACKING_H
#define IPM_BACKING_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "lun_ops.h"

struct ipm_lun;

/* O_DIRECT writes and page-cache I/O of one backing take turns (each kind
 * runs with any number of its own). A direct write drops the page cache
 * over its range when done; a page a buffered request holds or dirties at
 * that moment stays, stale: the kernel logs "Page cache invalidation
 * failure on direct I/O. Possible data corruption due to collision with
 * buffered I/O!", the file's next fdatasync fails with EIO (a mirror's
 * FLUSH failed so under mixed 512 B..1 MiB writes), and the page's later
 * writeback can put old bytes over the direct write's - bytes of another
 * request than the buffered one, as pages are shared by requests that do
 * not overlap. Direct reads invalidate nothing: they take no turn. */
struct io_phase {
	pthread_mutex_t lock;      /* a leaf */
	pthread_cond_t cond;
	unsigned active[2];        /* IO_DIRECT, IO_CACHED */
	unsigned waiting[2];
	int turn;                  /* who goes first when both wait */
};
enum { IO_DIRECT, IO_CACHED };
void io_phase_init(struct io_phase *p);
void io_phase_destroy(struct io_phase *p);

/* Operations on the local backing store only (no mirroring). Aligned
 * requests use O_DIRECT when the backing has it, the rest the page cache. */
int lun_local_read(struct ipm_lun *l, void *buf, size_t len, uint64_t off);
int lun_local_write(struct ipm_lun *l, const void *buf, size_t len, uint64_t off,
		    unsigned flags);
int lun_local_flush(struct ipm_lun *l);
/* [off, off+len) of a regular file reads as zeros, its allocation kept
 * (data parts zeroed in place, holes left): 0, or -errno. */
int lun_local_zero_keep(struct ipm_lun *l, uint64_t len, uint64_t off);
/* A bulk copy's read (resync, verify): like lun_local_read, but aligned
 * requests of any size bypass the page cache (LUN_IO_BULK). */
int lun_bulk_read(struct ipm_lun *l, void *buf, size_t len, uint64_t off);
/* Whether l->dfd (just opened with O_DIRECT, alignment known) really does
 * direct I/O: one aligned read at offset 0. 0, or -errno (EINVAL where the
 * file system accepts the flag at open but not the I/O). */
int lun_direct_probe(struct ipm_lun *l);
/* io="auto" and "direct": requests up to this size bypass the page cache. Small
 * writes gain (no copy, no folio walk, no double caching); larger ones go
 * through it, where the kernel's write-behind overlaps their disk time
 * with the next request's network time (bench: 1 MiB sync writes ~4x
 * faster than with O_DIRECT, whose write blocks the mirror's connection
 * thread for the whole transfer). */
#define LUN_DIRECT_MAX (64u << 10)
/* A flag of lun_local_write and struct lun_io, beside IPM_IO_FUA: a bulk
 * copy (resync replays, whole extents read once and written once), which
 * bypasses the page cache at any size when aligned: copying megabytes
 * through it cost ~80 % of each daemon's CPU in a 1 GiB initial sync
 * (perf, doc/performance.md), and many such writes are in flight at once
 * over the n connections, so O_DIRECT's wait costs nothing. */
#define LUN_IO_BULK (1u << 16)

/* The descriptor a request goes through: l->dfd when it is small and
 * aligned for O_DIRECT, else l->fd. */
int lun_io_fd(const struct ipm_lun *l, const void *buf, size_t len, uint64_t off);

/* ---- several writes at once ---- */
struct lun_io {
	struct ipm_lun *lun;
	const void *buf;
	size_t len;
	uint64_t off;
	unsigned flags;    /* IPM_IO_FUA */
	int rc;            /* out: 0 or -errno */
};
/* Write ios[0..n), which do not depend on each other, and wait for all. */
void lun_write_batch(struct lun_io *ios, unsigned n);
/* The same in steps, so that the caller waits for something else while
 * the device works (the primary: for the mirror's answers) and sleeps once
 * for both: lun_write_begin takes the LUNs' direct-write turns (struct
 * io_phase) for ios[0..n) (n <= LUN_BEGIN_MAX, even one) and returns true;
 * lun_write_start starts the direct writes in this thread's ring and
 * returns (the caller may send its mirror requests first: a submission
 * costs the device's doorbell); lun_write_end waits for them and writes
 * the others. Their completions do not wake the thread meanwhile (the ring
 * defers them to its next wait). From begin to end the turns are held and
 * the thread starts no other write. lun_write_begin never waits: it
 * returns false, with nothing held, when a turn is not free (page-cache
 * I/O runs or waits) or there is no ring; then use lun_write_batch.
 * Whoever holds turns across a wait for something else must never be
 * waited for by a thread that waits for a turn: so nothing that blocks for
 * a turn may stand between a thread and that wait. */
#define LUN_BEGIN_MAX 64
struct io_uring;
struct lun_batch {
	struct io_uring *ring;     /* NULL: nothing started */
	unsigned submitted;        /* in the ring, not reaped */
	bool broken;               /* the ring failed: freed at the end */
	unsigned n_lv;
	struct ipm_lun *lv[LUN_BEGIN_MAX]; /* direct-write turns held */
};
bool lun_write_begin(struct lun_io *ios, unsigned n, struct lun_batch *b);
void lun_write_start(struct lun_io *ios, unsigned n, struct lun_batch *b);
void lun_write_end(struct lun_io *ios, unsigned n, struct lun_batch *b);
/* ---- reads in flight (a bulk copy reading ahead) ----
 * Start reading [off, off+len) into buf (LUN_IO_BULK) in this thread's
 * read ring, at most LUN_READS_MAX at once: 0, or -errno (nothing started:
 * read it with lun_bulk_read). lun_read_wait waits for one started read
 * of this thread to end, in any order: its tag in *tag and 0 or -errno;
 * -ENOENT when none was started. A buffer is the kernel's until then. */
#define LUN_READS_MAX 16
int lun_read_start(struct ipm_lun *l, void *buf, size_t len, uint64_t off, void *tag);
int lun_read_wait(void **tag);
int lun_local_trim(struct ipm_lun *l, uint64_t len, uint64_t off);
int lun_local_zero(struct ipm_lun *l, uint64_t len, uint64_t off);

/* The host path's bottom: a LUN that is not mirrored from here. */
extern const struct lun_ops backing_ops;

#endif
