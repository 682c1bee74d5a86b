/* host_io.c - the one entry of a host request (ipm_lun_read/write/...):
 * range and role checks, then down the LUN's operations table (lun_ops.h).
 * It never sees the replicator's internals.
 *
 * A zero-length request inside the LUN is a no-op that succeeds
 * (doc/nbd.md): it is checked like any other, then answered here without
 * touching either copy, so it is never mirrored or journaled.
 *
 * It also counts what hosts did (bytes read and written, requests in
 * flight) for the status snapshot: relaxed atomics, nothing else shared. */
#include <errno.h>

#include "clock.h"
#include "lun.h"


/* A request holds the LUN's gate shared from its check to its answer: a
 * role change or a down (lun_admin.c) takes it exclusive, so it waits
 * for the requests under way and the next ones see the new role. */
static int host_begin(struct ipm_lun *l, uint64_t len, uint64_t off)
{
	int rc;

	if (!lun_range_ok(l, len, off))
		return -EINVAL;
	pthread_rwlock_rdlock(&l->gate);
	rc = lun_serving(l);
	if (rc < 0)
		pthread_rwlock_unlock(&l->gate);
	return rc;
}

static void host_end(struct ipm_lun *l)
{
	pthread_rwlock_unlock(&l->gate);
}

/* A request that changes the copy: refused with EIO once the local disk
 * failed (doc/io-errors.md: the copies must not drift further apart;
 * reads go on, from the peer's copy). */
static int host_begin_change(struct ipm_lun *l, uint64_t len, uint64_t off)
{
	int rc = host_begin(l, len, off);

	if (rc == 0 && __atomic_load_n(&l->disk_failed, __ATOMIC_RELAXED)) {
		host_end(l);
		rc = -EIO;
	}
	return rc;
}

static void host_enter(struct ipm_lun *l, uint64_t bytes)
{
	__atomic_add_fetch(&l->host_inflight, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&l->host_inflight_bytes, bytes, __ATOMIC_RELAXED);
}

static void host_leave(struct ipm_lun *l, uint64_t bytes)
{
	__atomic_sub_fetch(&l->host_inflight, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&l->host_inflight_bytes, bytes, __ATOMIC_RELAXED);
}

/* n writes that took since the time from ipm_now_us(): into the histogram */
static void write_latency(struct ipm_lun *l, uint64_t since, unsigned n)
{
	lun_lat_observe(l->write_lat, &l->write_lat_sum_us, ipm_now_us() - since, n);
}

static void host_count(uint64_t *ctr, uint64_t bytes)
{
	__atomic_add_fetch(ctr, bytes, __ATOMIC_RELAXED);
}

int ipm_lun_check_open(ipm_lun *l, ipm_error *err)
{
	int rc = 0;

	pthread_rwlock_rdlock(&l->gate);
	if (l->down)
		rc = ipm_fail(err, -EPERM,
			      "lun \"%s\" is down on this node (`ipmirrorctl up %s` brings it back)",
			      l->cfg->name, l->cfg->name);
	else if (l->role != IPM_ROLE_PRIMARY)
		rc = ipm_fail(err, -EPERM,
			      "lun \"%s\" is mirrored here; node \"%s\" is its primary",
			      l->cfg->name, l->engine->peer ? l->engine->peer->name : l->cfg->primary);
	pthread_rwlock_unlock(&l->gate);
	return rc;
}

int ipm_lun_read(ipm_lun *l, void *buf, size_t len, uint64_t off)
{
	int rc = host_begin(l, len, off);

	if (rc < 0)
		return rc;
	if (len) {
		host_enter(l, len);
		rc = l->ops->read(l, buf, len, off);
		if (rc >= 0)
			host_count(&l->host_read, len);
		host_leave(l, len);
	}
	host_end(l);
	return rc;
}

int ipm_lun_write(ipm_lun *l, const void *buf, size_t len, uint64_t off, unsigned flags)
{
	int rc = host_begin_change(l, len, off);
	uint64_t t0;

	if (rc < 0)
		return rc;
	if (len) {
		t0 = ipm_now_us();
		host_enter(l, len);
		rc = l->ops->write(l, buf, len, off, flags);
		if (rc >= 0)
			host_count(&l->host_written, len);
		write_latency(l, t0, 1);
		host_leave(l, len);
	}
	host_end(l);
	return rc;
}

/* An out-of-range request fails alone; an empty one is done. */
void ipm_lun_write_batch(ipm_lun *l, ipm_write *w, unsigned n)
{
	ipm_write ok[IPM_WRITE_BATCH_MAX];
	unsigned at[IPM_WRITE_BATCH_MAX], i, k = 0;
	uint64_t bytes = 0, t0;
	int rc;

	for (; n > IPM_WRITE_BATCH_MAX; w += IPM_WRITE_BATCH_MAX, n -= IPM_WRITE_BATCH_MAX)
		ipm_lun_write_batch(l, w, IPM_WRITE_BATCH_MAX);
	rc = host_begin_change(l, 0, 0);
	for (i = 0; i < n; i++) {
		w[i].rc = rc < 0 ? rc : lun_range_ok(l, w[i].len, w[i].off) ? 0 : -EINVAL;
		if (w[i].rc == 0 && w[i].len > 0) {
			ok[k] = w[i];
			at[k++] = i;
			bytes += w[i].len;
		}
	}
	if (k) {
		t0 = ipm_now_us();
		host_enter(l, bytes);
		l->ops->write_batch(l, ok, k);
		for (i = 0; i < k; i++) {
			w[at[i]].rc = ok[i].rc;
			if (ok[i].rc >= 0)
				host_count(&l->host_written, ok[i].len);
		}
		write_latency(l, t0, k);
		host_leave(l, bytes);
	}
	if (rc == 0)
		host_end(l);
}

int ipm_lun_flush(ipm_lun *l)
{
	int rc = host_begin_change(l, 0, 0);

	if (rc < 0)
		return rc;
	rc = l->ops->flush(l);
	host_end(l);
	return rc;
}

int ipm_lun_trim(ipm_lun *l, uint64_t len, uint64_t off, unsigned flags)
{
	int rc = host_begin_change(l, len, off);

	if (rc < 0)
		return rc;
	if (len)
		rc = l->ops->trim(l, len, off, flags);
	host_end(l);
	return rc;
}

int ipm_lun_zero(ipm_lun *l, uint64_t len, uint64_t off, unsigned flags)
{
	int rc = host_begin_change(l, len, off);

	if (rc < 0)
		return rc;
	if (len)
		rc = l->ops->zero(l, len, off, flags);
	host_end(l);
	return rc;
}
