/* backing_io.c - several independent writes to backing stores at once.
 *
 * An O_DIRECT write blocks its thread until the device answers; done one
 * after another, a batch of k writes costs k waits and 2k context switches.
 * Here the direct ones of a batch go to the device together through the
 * calling thread's io_uring and the thread waits once for all of them. The
 * ring is per thread (created on first use, freed when the thread ends),
 * so callers need no lock. Without io_uring (old kernel, disabled by
 * sysctl) the writes are made one after another. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <liburing.h>
#include <qb/qblog.h>

#include "lun.h"

#define RING_ENTRIES 64

static pthread_key_t ring_key;
static pthread_once_t ring_once = PTHREAD_ONCE_INIT;
static bool ring_missing;          /* io_uring unavailable: logged once */

static void ring_free(void *p)
{
	io_uring_queue_exit(p);
	free(p);
}

static void ring_key_create(void)
{
	if (pthread_key_create(&ring_key, ring_free) != 0)
		__atomic_store_n(&ring_missing, true, __ATOMIC_RELAXED);
}

/* This thread's ring, or NULL: then write synchronously. */
static struct io_uring *thread_ring(void)
{
	struct io_uring *ring;
	int rc;

	pthread_once(&ring_once, ring_key_create);
	if (__atomic_load_n(&ring_missing, __ATOMIC_RELAXED))
		return NULL;
	ring = pthread_getspecific(ring_key);
	if (ring)
		return ring;
	ring = calloc(1, sizeof(*ring));
	if (!ring)
		return NULL;
	rc = io_uring_queue_init(RING_ENTRIES, ring, 0);
	if (rc < 0) {
		free(ring);
		if (!__atomic_exchange_n(&ring_missing, true, __ATOMIC_RELAXED))
			qb_log(LOG_NOTICE, "io_uring unavailable (%s): direct writes go one at a time",
			       strerror(-rc));
		return NULL;
	}
	if (pthread_setspecific(ring_key, ring) != 0) {
		ring_free(ring);
		return NULL;
	}
	return ring;
}

/* Direct (O_DIRECT-aligned) writes of ios[0..n) through the ring; the
 * others keep rc 1 and are written synchronously by the caller. False when
 * the ring broke (it is freed). */
static bool submit_direct(struct io_uring *ring, struct lun_io *ios, unsigned n)
{
	struct io_uring_cqe *cqe;
	unsigned i, queued = 0, submitted = 0;
	bool broken = false;

	for (i = 0; i < n; i++) {
		struct lun_io *io = &ios[i];
		struct io_uring_sqe *sqe;
		int fd = lun_io_fd(io->lun, io->buf, io->len, io->off);

		io->rc = 1;  /* not done */
		if (fd != io->lun->dfd || !(sqe = io_uring_get_sqe(ring)))
			continue;
		io_uring_prep_write(sqe, fd, io->buf, (unsigned)io->len, io->off);
		sqe->rw_flags = (io->flags & IPM_IO_FUA) ? RWF_DSYNC : 0;
		io_uring_sqe_set_data(sqe, io);
		queued++;
	}
	while (submitted < queued) {
		int rc = io_uring_submit_and_wait(ring, 1);

		if (rc == -EINTR || rc == -EAGAIN)
			continue;
		if (rc <= 0) {
			/* unsubmitted entries must not go out later: a new ring
			 * next time, these synchronously (rc stays 1) */
			broken = true;
			break;
		}
		submitted += (unsigned)rc;
	}
	while (submitted > 0 && io_uring_wait_cqe(ring, &cqe) == 0) {
		struct lun_io *io = io_uring_cqe_get_data(cqe);

		/* short or interrupted writes are finished synchronously */
		io->rc = cqe->res == (int)io->len ? 0 : 1;
		if (cqe->res < 0 && cqe->res != -EAGAIN && cqe->res != -EINTR)
			io->rc = cqe->res;
		io_uring_cqe_seen(ring, cqe);
		submitted--;
	}
	if (broken) {
		qb_log(LOG_WARNING, "io_uring submission failed: this thread makes a new ring");
		pthread_setspecific(ring_key, NULL);
		ring_free(ring);
	}
	return !broken;
}

void lun_write_batch(struct lun_io *ios, unsigned n)
{
	struct io_uring *ring = n > 1 ? thread_ring() : NULL;
	unsigned i, k;

	for (i = 0; ring && i < n; i += k) {
		k = n - i < RING_ENTRIES ? n - i : RING_ENTRIES;
		if (!submit_direct(ring, ios + i, k))
			ring = NULL;  /* freed; the rest go synchronously */
	}
	for (i = 0; i < n; i++)
		if (!ring || ios[i].rc == 1)
			ios[i].rc = lun_local_write(ios[i].lun, ios[i].buf, ios[i].len, ios[i].off,
						    ios[i].flags);
}
