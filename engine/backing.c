/* backing.c - local I/O on a LUN's backing store, the bottom of every
 * request (host requests through backing_ops, the replicator's local half,
 * the mirror's applying); it never calls up.
 *
 * Aligned small requests use O_DIRECT when the backing has it, the rest the
 * page cache (lun_io_fd). Several independent writes at once:
 *
 * An O_DIRECT write blocks its thread until the device answers; done one
 * after another, a batch of k writes costs k waits and 2k context switches.
 * Here the direct ones of a batch go to the device together through the
 * calling thread's io_uring and the thread waits once for all of them. The
 * ring is per thread (created on first use, freed when the thread ends),
 * so callers need no lock. Without io_uring (old kernel, disabled by
 * sysctl) the writes are made one after another.
 *
 * Direct writes and page-cache I/O of a LUN never run at once (struct
 * io_phase, backing.h: the kernel keeps the two coherent only then). */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>
#include <liburing.h>
#include <qb/qblog.h>

#include "backing.h"
#include "lun.h"

/* ---- direct writes and page-cache I/O take turns ------------------------ */

void io_phase_init(struct io_phase *p)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
}

void io_phase_destroy(struct io_phase *p)
{
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
}

/* Wait until no request of the other kind runs; one that waits already
 * for the running ones of ours goes before our newcomers (turn). */
static void phase_enter(struct io_phase *p, int k)
{
	int o = !k;

	pthread_mutex_lock(&p->lock);
	p->waiting[k]++;
	if (p->active[o])
		p->turn = k;
	while (p->active[o] || (p->waiting[o] && p->turn == o))
		pthread_cond_wait(&p->cond, &p->lock);
	p->waiting[k]--;
	p->active[k]++;
	pthread_mutex_unlock(&p->lock);
}

/* The same without waiting: false when it would have to wait. */
static bool phase_try_enter(struct io_phase *p, int k)
{
	int o = !k;
	bool ok;

	pthread_mutex_lock(&p->lock);
	ok = !p->active[o] && !(p->waiting[o] && p->turn == o);
	if (ok)
		p->active[k]++;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

static void phase_leave(struct io_phase *p, int k)
{
	pthread_mutex_lock(&p->lock);
	if (--p->active[k] == 0 && p->waiting[!k]) {
		p->turn = !k;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
}

/* ---- one request -------------------------------------------------------- */

/* flags: LUN_IO_BULK lifts the size limit */
static int io_fd(const struct ipm_lun *l, const void *buf, size_t len, uint64_t off,
		 unsigned flags)
{
	if (l->dfd >= 0 && (len <= LUN_DIRECT_MAX || (flags & LUN_IO_BULK)) &&
	    !((uintptr_t)buf & (l->dio_mem_align - 1)) && !((len | off) & (l->dio_off_align - 1)))
		return l->dfd;
	return l->fd;
}

int lun_io_fd(const struct ipm_lun *l, const void *buf, size_t len, uint64_t off)
{
	return io_fd(l, buf, len, off, 0);
}

int lun_direct_probe(struct ipm_lun *l)
{
	/* a page covers every usual alignment; a larger one is taken as is */
	size_t len = l->dio_off_align > 4096 ? l->dio_off_align : 4096;
	size_t align = l->dio_mem_align > 4096 ? l->dio_mem_align : 4096;
	void *buf;
	ssize_t n;
	int rc;

	if ((len & (len - 1)) || (align & (align - 1)) || len > (1u << 20) || align > (1u << 20))
		return -EINVAL;  /* no alignment lun_io_fd could meet */
	rc = posix_memalign(&buf, align, len);
	if (rc)
		return -rc;
	do
		n = pread(l->dfd, buf, len, 0);  /* short at the end of a tiny file: fine */
	while (n < 0 && errno == EINTR);
	rc = n < 0 ? -errno : 0;
	free(buf);
	return rc;
}

/* A failure of the backing store itself (not a bad request): counted for
 * status and the local-io-error handler (doc/events.md). */
static int io_error(struct ipm_lun *l, int rc)
{
	if (rc == -EIO || rc == -ENOSPC || rc == -EROFS || rc == -EDQUOT || rc == -ENXIO ||
	    rc == -ENODEV) {
		__atomic_add_fetch(&l->local_io_errors, 1, __ATOMIC_RELAXED);
		engine_notify(l->engine);
	}
	return rc;
}

static int read_with(struct ipm_lun *l, void *buf, size_t len, uint64_t off, unsigned flags)
{
	size_t done = 0;

	while (done < len) {
		char *p = (char *)buf + done;
		int fd = io_fd(l, p, len - done, off + done, flags);
		ssize_t n;

		/* a cached read must not fill pages under a direct write */
		if (fd != l->dfd)
			phase_enter(&l->phase, IO_CACHED);
		n = pread(fd, p, len - done, (off_t)(off + done));
		if (fd != l->dfd)
			phase_leave(&l->phase, IO_CACHED);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return io_error(l, -errno);
		if (n == 0) /* a shrunken backing file: never return stale bytes */
			return io_error(l, -EIO);
		done += (size_t)n;
	}
	return 0;
}

int lun_local_read(struct ipm_lun *l, void *buf, size_t len, uint64_t off)
{
	return read_with(l, buf, len, off, 0);
}

int lun_bulk_read(struct ipm_lun *l, void *buf, size_t len, uint64_t off)
{
	return read_with(l, buf, len, off, LUN_IO_BULK);
}

int lun_local_write(struct ipm_lun *l, const void *buf, size_t len, uint64_t off,
		    unsigned flags)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	int rwf = (flags & IPM_IO_FUA) ? RWF_DSYNC : 0;

	while (iov.iov_len > 0) {
		int fd = io_fd(l, iov.iov_base, iov.iov_len, off, flags);
		int kind = fd == l->dfd ? IO_DIRECT : IO_CACHED;
		ssize_t n;

		phase_enter(&l->phase, kind);
		n = pwritev2(fd, &iov, 1, (off_t)off, rwf);
		phase_leave(&l->phase, kind);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return io_error(l, -errno);
		}
		iov.iov_base = (char *)iov.iov_base + n;
		iov.iov_len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int lun_local_flush(struct ipm_lun *l)
{
	return fdatasync(l->fd) < 0 ? io_error(l, -errno) : 0;
}

static int trim_range(struct ipm_lun *l, uint64_t len, uint64_t off)
{
	if (len == 0) /* fallocate and BLKDISCARD refuse an empty range */
		return 0;
	if (l->is_blockdev) {
		uint64_t range[2] = { off, len };

		return ioctl(l->fd, BLKDISCARD, range) < 0 ? -errno : 0;
	}
	if (fallocate(l->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) < 0)
		/* trim is advisory: a file system without hole punching is fine */
		return errno == EOPNOTSUPP ? 0 : -errno;
	return 0;
}

/* Discards and zeroing change the file outside O_DIRECT: cached I/O's turn. */
int lun_local_trim(struct ipm_lun *l, uint64_t len, uint64_t off)
{
	int rc;

	phase_enter(&l->phase, IO_CACHED);
	rc = trim_range(l, len, off);
	phase_leave(&l->phase, IO_CACHED);
	return rc;
}

static int write_zero_buffers(struct ipm_lun *l, uint64_t len, uint64_t off)
{
	static const char zeros[65536];
	int rc = 0;

	while (len > 0 && rc == 0) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);

		rc = lun_local_write(l, zeros, n, off, 0);
		len -= n;
		off += n;
	}
	return rc;
}

/* Zero the range without writing zeros: true when the device or the file
 * system did it. */
static bool zero_range(struct ipm_lun *l, uint64_t len, uint64_t off)
{
	if (l->is_blockdev) {
		uint64_t range[2] = { off, len };

		return ioctl(l->fd, BLKZEROOUT, range) == 0;
	}
	return fallocate(l->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			 (off_t)len) == 0 ||
	       fallocate(l->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			 (off_t)len) == 0;
}

int lun_local_zero(struct ipm_lun *l, uint64_t len, uint64_t off)
{
	bool done;

	if (len == 0)
		return 0;
	phase_enter(&l->phase, IO_CACHED);
	done = zero_range(l, len, off);
	phase_leave(&l->phase, IO_CACHED);
	/* written zeros take their own turns (lun_local_write) */
	return done ? 0 : write_zero_buffers(l, len, off);
}

/* A regular file's range made to read as zeros while the file keeps its
 * allocation (a resync's ZERO on the mirror): its data parts are zeroed in
 * place (ZERO_RANGE: unwritten extents, nothing written; punched where
 * that is refused), its holes stay holes. A sparse copy stays sparse (a
 * blank 1 TiB LUN costs nothing) and a preallocated one stays allocated:
 * its later writes cannot meet a full file system. 0, or -errno. */
static int zero_data_parts(int fd, off_t pos, off_t end)
{
	off_t data, hole;

	while (pos < end) {
		data = lseek(fd, pos, SEEK_DATA);
		if (data < 0)
			return errno == ENXIO ? 0 : -errno;  /* ENXIO: no data past pos */
		if (data >= end)
			return 0;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if (hole > end)
			hole = end;
		if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, data, hole - data) < 0 &&
		    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, data, hole - data) < 0)
			return -errno;
		pos = hole;
	}
	return 0;
}

int lun_local_zero_keep(struct ipm_lun *l, uint64_t len, uint64_t off)
{
	int rc;

	phase_enter(&l->phase, IO_CACHED);
	rc = zero_data_parts(l->fd, (off_t)off, (off_t)(off + len));
	phase_leave(&l->phase, IO_CACHED);
	return rc;
}


/* ---- several writes at once (io_uring) ------------------------------------ */

#define RING_ENTRIES 64

/* A kind of per-thread ring: created on a thread's first use, freed when
 * the thread ends; once io_uring fails, that kind is not tried again. */
struct ring_kind {
	pthread_key_t key;
	pthread_once_t once;
	bool missing;
	unsigned entries;
	unsigned flags;            /* tried first; without them when refused */
	const char *unavailable;   /* logged once when io_uring fails, or NULL */
};

static void ring_free(void *p)
{
	io_uring_queue_exit(p);
	free(p);
}

static void ring_key_make(struct ring_kind *k)
{
	if (pthread_key_create(&k->key, ring_free) != 0)
		__atomic_store_n(&k->missing, true, __ATOMIC_RELAXED);
}

/* This thread's ring of kind k, or NULL: then the caller does its I/O
 * itself. key_create is k's pthread_once routine (ring_key_make on k). */
static struct io_uring *ring_get(struct ring_kind *k, void (*key_create)(void))
{
	struct io_uring *ring;
	int rc;

	pthread_once(&k->once, key_create);
	if (__atomic_load_n(&k->missing, __ATOMIC_RELAXED))
		return NULL;
	ring = pthread_getspecific(k->key);
	if (ring)
		return ring;
	ring = calloc(1, sizeof(*ring));
	if (!ring)
		return NULL;
	rc = io_uring_queue_init(k->entries, ring, k->flags);
	if (rc == -EINVAL && k->flags)  /* a kernel before 6.1 */
		rc = io_uring_queue_init(k->entries, ring, 0);
	if (rc < 0) {
		free(ring);
		if (!__atomic_exchange_n(&k->missing, true, __ATOMIC_RELAXED) && k->unavailable)
			qb_log(LOG_NOTICE, "io_uring unavailable (%s): %s", strerror(-rc),
			       k->unavailable);
		return NULL;
	}
	if (pthread_setspecific(k->key, ring) != 0) {
		ring_free(ring);
		return NULL;
	}
	return ring;
}

/* Completions are deferred to the thread's next wait on the ring
 * (DEFER_TASKRUN, which needs a single issuer: the ring is the thread's):
 * a thread waiting for several writes is woken once, not per write, and
 * one that waits for something else meanwhile (lun_write_begin) not at
 * all. */
static struct ring_kind write_rings = {
	.once = PTHREAD_ONCE_INIT, .entries = RING_ENTRIES,
	.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	.unavailable = "direct writes go one at a time",
};

static void write_rings_key(void)
{
	ring_key_make(&write_rings);
}

/* This thread's ring for writes, or NULL: then write synchronously. */
static struct io_uring *thread_ring(void)
{
	return ring_get(&write_rings, write_rings_key);
}

static int by_address(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(struct ipm_lun *const *)a;
	uintptr_t y = (uintptr_t)*(struct ipm_lun *const *)b;

	return x < y ? -1 : x > y;
}

/* The direct-write turn of every LUN the direct writes of ios[0..n) go to
 * (a version 4 session's batch holds several), each once, in address
 * order: a thread holding all it needs never waits, so two batches that
 * share LUNs cannot wait for each other. Returns how many went in lv; with
 * try, -1 when one of them would have to wait (none is held then). */
static int phases_enter(struct lun_io *ios, unsigned n, struct ipm_lun **lv, bool try)
{
	unsigned i, k, m = 0;

	for (i = 0; i < n; i++) {
		struct ipm_lun *l = ios[i].lun;

		if (io_fd(l, ios[i].buf, ios[i].len, ios[i].off, ios[i].flags) != l->dfd)
			continue;
		for (k = 0; k < m && lv[k] != l; k++)
			;
		if (k == m)
			lv[m++] = l;
	}
	qsort(lv, m, sizeof(*lv), by_address);
	for (k = 0; k < m; k++) {
		if (!try) {
			phase_enter(&lv[k]->phase, IO_DIRECT);
		} else if (!phase_try_enter(&lv[k]->phase, IO_DIRECT)) {
			while (k > 0)
				phase_leave(&lv[--k]->phase, IO_DIRECT);
			return -1;
		}
	}
	return (int)m;
}

/* Start the direct (O_DIRECT-aligned) writes of ios[0..n) through the
 * ring; the others keep rc 1 and are written synchronously by
 * direct_end's caller. A failed submission marks the ring broken. */
static void direct_begin(struct io_uring *ring, struct lun_io *ios, unsigned n,
			 struct lun_batch *b)
{
	unsigned i, queued = 0;

	b->ring = ring;
	b->submitted = 0;
	b->broken = false;
	for (i = 0; i < n; i++) {
		struct lun_io *io = &ios[i];
		struct io_uring_sqe *sqe;
		int fd = io_fd(io->lun, io->buf, io->len, io->off, io->flags);

		io->rc = 1;  /* not done */
		if (fd != io->lun->dfd || !(sqe = io_uring_get_sqe(ring)))
			continue;
		io_uring_prep_write(sqe, fd, io->buf, (unsigned)io->len, io->off);
		sqe->rw_flags = (io->flags & IPM_IO_FUA) ? RWF_DSYNC : 0;
		io_uring_sqe_set_data(sqe, io);
		queued++;
	}
	while (b->submitted < queued) {
		int rc = io_uring_submit(ring);

		if (rc == -EINTR || rc == -EAGAIN)
			continue;
		if (rc <= 0) {
			/* unsubmitted entries must not go out later: a new ring
			 * next time, these synchronously (rc stays 1) */
			b->broken = true;
			break;
		}
		b->submitted += (unsigned)rc;
	}
}

/* Wait for what direct_begin submitted: one wait for all of them (the
 * ring wakes its thread once, when the last one completed). */
static void direct_end(struct lun_batch *b)
{
	struct io_uring *ring = b->ring;
	struct io_uring_cqe *cqe;

	while (b->submitted > 0) {
		int rc = io_uring_wait_cqe_nr(ring, &cqe, b->submitted);

		if (rc == -EINTR || rc == -EAGAIN || rc == -ETIME)
			continue;
		if (rc < 0)
			break;
		while (b->submitted > 0 && io_uring_peek_cqe(ring, &cqe) == 0) {
			struct lun_io *io = io_uring_cqe_get_data(cqe);

			/* short or interrupted writes are finished synchronously */
			io->rc = cqe->res == (int)io->len ? 0 : 1;
			if (cqe->res < 0 && cqe->res != -EAGAIN && cqe->res != -EINTR)
				io->rc = io_error(io->lun, cqe->res);
			io_uring_cqe_seen(ring, cqe);
			b->submitted--;
		}
	}
	while (b->n_lv > 0)
		phase_leave(&b->lv[--b->n_lv]->phase, IO_DIRECT);
	if (b->broken) {
		qb_log(LOG_WARNING, "io_uring submission failed: this thread makes a new ring");
		pthread_setspecific(write_rings.key, NULL);
		ring_free(ring);
	}
}

/* The writes direct_end left (rc 1: not direct, not submitted, short) or
 * all of them without a ring, synchronously. */
static void sync_rest(struct lun_io *ios, unsigned n, bool all)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (all || ios[i].rc == 1)
			ios[i].rc = lun_local_write(ios[i].lun, ios[i].buf, ios[i].len, ios[i].off,
						    ios[i].flags);
}

void lun_write_batch(struct lun_io *ios, unsigned n)
{
	struct io_uring *ring = n > 1 ? thread_ring() : NULL;
	struct lun_batch b;
	unsigned i, k;

	for (i = 0; ring && i < n; i += k) {
		k = n - i < RING_ENTRIES ? n - i : RING_ENTRIES;
		b.n_lv = (unsigned)phases_enter(ios + i, k, b.lv, false);
		direct_begin(ring, ios + i, k, &b);
		direct_end(&b);
		if (b.broken)
			ring = NULL;  /* freed; the rest go synchronously */
	}
	/* without a ring (or once it broke) all of them, as before */
	sync_rest(ios, n, !ring);
}

bool lun_write_begin(struct lun_io *ios, unsigned n, struct lun_batch *b)
{
	struct io_uring *ring = n > 0 && n <= LUN_BEGIN_MAX ? thread_ring() : NULL;
	int held;

	b->ring = NULL;
	b->n_lv = 0;
	if (!ring || (held = phases_enter(ios, n, b->lv, true)) < 0)
		return false;
	b->n_lv = (unsigned)held;
	b->ring = ring;
	b->submitted = 0;
	b->broken = false;
	return true;
}

void lun_write_start(struct lun_io *ios, unsigned n, struct lun_batch *b)
{
	direct_begin(b->ring, ios, n, b);
}

void lun_write_end(struct lun_io *ios, unsigned n, struct lun_batch *b)
{
	direct_end(b);
	sync_rest(ios, n, false);
}

/* ---- reads in flight (a bulk copy reading ahead) ---------------------------- */

/* A second ring per thread, apart from the writes' (whose users wait for
 * all they submitted at once): reads stay in it across calls. */
static __thread unsigned reads_started;   /* by this thread, not waited for */

struct read_op {
	struct ipm_lun *lun;
	void *buf, *tag;
	size_t len;
	uint64_t off;
};

static struct ring_kind read_rings = { .once = PTHREAD_ONCE_INIT, .entries = LUN_READS_MAX };

static void read_rings_key(void)
{
	ring_key_make(&read_rings);
}

static struct io_uring *read_ring(void)
{
	return ring_get(&read_rings, read_rings_key);
}

int lun_read_start(struct ipm_lun *l, void *buf, size_t len, uint64_t off, void *tag)
{
	struct io_uring *ring = read_ring();
	struct io_uring_sqe *sqe;
	struct read_op *op;
	int rc;

	if (!ring)
		return -EOPNOTSUPP;
	op = malloc(sizeof(*op));
	if (!op)
		return -ENOMEM;
	*op = (struct read_op){ .lun = l, .buf = buf, .tag = tag, .len = len, .off = off };
	sqe = io_uring_get_sqe(ring);
	if (!sqe) {
		free(op);
		return -EBUSY;
	}
	io_uring_prep_read(sqe, io_fd(l, buf, len, off, LUN_IO_BULK), buf, (unsigned)len, off);
	io_uring_sqe_set_data(sqe, op);
	do
		rc = io_uring_submit(ring);
	while (rc == -EINTR || rc == -EAGAIN);
	if (rc == 1) {
		reads_started++;
		return 0;
	}
	/* not submitted: taken back, the caller reads it itself. A ring that
	 * fails here is left to lun_read_wait for the reads it already holds. */
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data(sqe, NULL);
	free(op);
	return rc < 0 ? rc : -EIO;
}

int lun_read_wait(void **tag)
{
	struct io_uring *ring;
	struct io_uring_cqe *cqe;
	struct read_op *op = NULL;
	int rc, res = 0;

	if (!reads_started)
		return -ENOENT;
	ring = pthread_getspecific(read_rings.key);
	while (!op) {
		rc = io_uring_wait_cqe(ring, &cqe);
		if (rc == -EINTR || rc == -EAGAIN)
			continue;
		if (rc < 0)
			return rc;  /* the ring itself broke: the reads stay started */
		op = io_uring_cqe_get_data(cqe);  /* NULL: a taken-back entry's */
		res = cqe->res;
		io_uring_cqe_seen(ring, cqe);
	}
	reads_started--;
	*tag = op->tag;
	if (res < 0 && res != -EAGAIN && res != -EINTR) {
		rc = io_error(op->lun, res);
	} else {
		/* short, interrupted: the rest synchronously */
		res = res < 0 ? 0 : res;
		rc = (size_t)res == op->len ? 0 :
		     read_with(op->lun, (char *)op->buf + res, op->len - (size_t)res,
			       op->off + (uint64_t)res, LUN_IO_BULK);
	}
	free(op);
	return rc;
}

/* ---- the bottom of the host path (lun_ops.h) ------------------------------ */

static void batch_write(struct ipm_lun *l, ipm_write *w, unsigned n)
{
	struct lun_io io[IPM_WRITE_BATCH_MAX];
	unsigned i;

	for (i = 0; i < n; i++)
		io[i] = (struct lun_io){ .lun = l, .buf = w[i].buf, .len = w[i].len,
					 .off = w[i].off, .flags = w[i].flags };
	lun_write_batch(io, n);
	for (i = 0; i < n; i++)
		w[i].rc = io[i].rc;
}

static int fua(struct ipm_lun *l, int rc, unsigned flags)
{
	return rc == 0 && (flags & IPM_IO_FUA) ? lun_local_flush(l) : rc;
}

static int op_trim(struct ipm_lun *l, uint64_t len, uint64_t off, unsigned flags)
{
	return fua(l, lun_local_trim(l, len, off), flags);
}

static int op_zero(struct ipm_lun *l, uint64_t len, uint64_t off, unsigned flags)
{
	return fua(l, lun_local_zero(l, len, off), flags);
}

const struct lun_ops backing_ops = {
	.read = lun_local_read,
	.write = lun_local_write,
	.write_batch = batch_write,
	.flush = lun_local_flush,
	.trim = op_trim,
	.zero = op_zero,
};
