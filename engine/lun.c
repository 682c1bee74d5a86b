/* lun.c - a LUN's backing file or block device and the host I/O entry points. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "lun.h"
#include "replicator.h"

static int backing_size(int fd, bool *is_blockdev, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*is_blockdev = S_ISBLK(st.st_mode);
	if (*is_blockdev)
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* O_DIRECT's alignment: what statx says, else the device's logical sector
 * size, else a page (safe everywhere). */
static void dio_alignment(struct ipm_lun *l)
{
	unsigned ssz = 0;

	l->dio_mem_align = l->dio_off_align = 4096;
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(l->dfd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		l->dio_mem_align = stx.stx_dio_mem_align;
		l->dio_off_align = stx.stx_dio_offset_align;
		return;
	}
#endif
	if (l->is_blockdev && ioctl(l->dfd, BLKSSZGET, &ssz) == 0 && ssz)
		l->dio_mem_align = l->dio_off_align = ssz;
}

/* io="direct": a second descriptor with O_DIRECT, so the page cache neither
 * doubles the data nor costs a copy (and, on file systems with large
 * folios, a walk of the folio's buffers) per write. A file system that
 * refuses O_DIRECT (tmpfs on old kernels) gets buffered I/O. */
static void open_direct(struct ipm_lun *l, const struct ipm_backing_cfg *b)
{
	if (b->io != IPM_IO_DIRECT)
		return;
	l->dfd = open(l->path, O_RDWR | O_CLOEXEC | O_DIRECT);
	if (l->dfd < 0) {
		qb_log(LOG_NOTICE, "lun \"%s\": backing %s refuses O_DIRECT (%s); using buffered I/O",
		       l->cfg->name, l->path, strerror(errno));
		return;
	}
	dio_alignment(l);
}

int lun_open(ipm_engine *e, const struct ipm_lun_cfg *cfg, struct ipm_lun **out,
	     ipm_error *err)
{
	const struct ipm_backing_cfg *b = ipm_lun_cfg_backing_entry(cfg, e->node);
	const char *path = b ? b->path : NULL;
	struct ipm_lun *l;
	int rc;

	if (!path)
		return ipm_fail(err, -EINVAL, "lun \"%s\": no backing path for node \"%s\"",
				cfg->name, e->node);
	l = calloc(1, sizeof(*l));
	if (!l)
		return ipm_fail(err, -ENOMEM, "out of memory");
	l->engine = e;
	l->cfg = cfg;
	l->fd = -1;
	l->dfd = -1;
	snprintf(l->path, sizeof(l->path), "%s", path);
	pthread_rwlock_init(&l->role_lock, NULL);
	pthread_mutex_init(&l->gen_lock, NULL);
	l->role = strcmp(cfg->primary, e->node) == 0 ? IPM_ROLE_PRIMARY : IPM_ROLE_MIRROR;
	l->state = IPM_STATE_UPTODATE;

	l->fd = open(path, O_RDWR | O_CLOEXEC);
	if (l->fd < 0) {
		rc = ipm_fail(err, -errno, "lun \"%s\": cannot open backing %s: %s",
			      cfg->name, path, strerror(errno));
		goto fail;
	}
	rc = backing_size(l->fd, &l->is_blockdev, &l->size);
	if (rc < 0) {
		ipm_fail(err, rc, "lun \"%s\": backing %s: %s", cfg->name, path,
			 rc == -EINVAL ? "not a regular file or block device" : strerror(-rc));
		goto fail;
	}
	if (l->size != cfg->size) {
		rc = ipm_fail(err, -EINVAL,
			      "lun \"%s\": backing %s is %llu bytes but the config says %llu",
			      cfg->name, path, (unsigned long long)l->size,
			      (unsigned long long)cfg->size);
		goto fail;
	}
	open_direct(l, b);
	if (cfg->mirrored) {
		rc = lun_gen_open(l, err);
		if (rc < 0)
			goto fail;
	}
	*out = l;
	return 0;
fail:
	lun_close(l);
	return rc;
}

void lun_close(struct ipm_lun *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	if (l->dfd >= 0)
		close(l->dfd);
	pthread_rwlock_destroy(&l->role_lock);
	pthread_mutex_destroy(&l->gen_lock);
	free(l);
}

void lun_journal_path(const struct ipm_lun *l, char *out, size_t len)
{
	if (l->cfg->journal_path)
		snprintf(out, len, "%s", l->cfg->journal_path);
	else
		snprintf(out, len, "%s.journal", l->path);
}

bool lun_range_ok(const struct ipm_lun *l, uint64_t len, uint64_t off)
{
	return off <= l->size && len <= l->size - off;
}

int lun_io_fd(const struct ipm_lun *l, const void *buf, size_t len, uint64_t off)
{
	if (l->dfd >= 0 && len <= LUN_DIRECT_MAX && !((uintptr_t)buf & (l->dio_mem_align - 1)) &&
	    !((len | off) & (l->dio_off_align - 1)))
		return l->dfd;
	return l->fd;
}

int lun_local_read(struct ipm_lun *l, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		char *p = (char *)buf + done;
		ssize_t n = pread(lun_io_fd(l, p, len - done, off + done), p, len - done,
				  (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) /* a shrunken backing file: never return stale bytes */
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

int lun_local_write(struct ipm_lun *l, const void *buf, size_t len, uint64_t off,
		    unsigned flags)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	int rwf = (flags & IPM_IO_FUA) ? RWF_DSYNC : 0;

	while (iov.iov_len > 0) {
		ssize_t n = pwritev2(lun_io_fd(l, iov.iov_base, iov.iov_len, off), &iov, 1,
				     (off_t)off, rwf);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		iov.iov_base = (char *)iov.iov_base + n;
		iov.iov_len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int lun_local_flush(struct ipm_lun *l)
{
	return fdatasync(l->fd) < 0 ? -errno : 0;
}

int lun_local_trim(struct ipm_lun *l, uint64_t len, uint64_t off)
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

int lun_local_zero(struct ipm_lun *l, uint64_t len, uint64_t off)
{
	if (len == 0)
		return 0;
	if (l->is_blockdev) {
		uint64_t range[2] = { off, len };

		if (ioctl(l->fd, BLKZEROOUT, range) == 0)
			return 0;
		return write_zero_buffers(l, len, off);
	}
	if (fallocate(l->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) == 0)
		return 0;
	if (fallocate(l->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) == 0)
		return 0;
	return write_zero_buffers(l, len, off);
}

/* ---- public host I/O ---------------------------------------------------- */

const char *ipm_lun_name(const ipm_lun *l)
{
	return l->cfg->name;
}

uint64_t ipm_lun_size(const ipm_lun *l)
{
	return l->size;
}

int ipm_lun_check_open(ipm_lun *l, ipm_error *err)
{
	int rc = 0;

	pthread_rwlock_rdlock(&l->role_lock);
	if (l->role != IPM_ROLE_PRIMARY)
		rc = ipm_fail(err, -EPERM,
			      "lun \"%s\" is mirrored here; node \"%s\" is its primary",
			      l->cfg->name, l->cfg->primary);
	pthread_rwlock_unlock(&l->role_lock);
	return rc;
}

/* Host requests run under the role lock so a demotion waits for them.
 * A zero-length request inside the LUN is a no-op that succeeds
 * (doc/nbd.md): it is checked like any other, then answered without
 * touching either copy, so it is never mirrored or journaled. */
static int host_begin(struct ipm_lun *l, uint64_t len, uint64_t off)
{
	if (!lun_range_ok(l, len, off))
		return -EINVAL;
	pthread_rwlock_rdlock(&l->role_lock);
	if (l->role != IPM_ROLE_PRIMARY) {
		pthread_rwlock_unlock(&l->role_lock);
		return -EPERM;
	}
	return 0;
}

static int host_end(struct ipm_lun *l, int rc)
{
	pthread_rwlock_unlock(&l->role_lock);
	return rc;
}

int ipm_lun_read(ipm_lun *l, void *buf, size_t len, uint64_t off)
{
	int rc = host_begin(l, len, off);

	if (rc < 0 || len == 0)
		return rc < 0 ? rc : host_end(l, 0);
	return host_end(l, lun_local_read(l, buf, len, off));
}

int ipm_lun_write(ipm_lun *l, const void *buf, size_t len, uint64_t off, unsigned flags)
{
	int rc = host_begin(l, len, off);

	if (rc < 0 || len == 0)
		return rc < 0 ? rc : host_end(l, 0);
	if (l->rep)
		return host_end(l, replicator_write(l->rep, l, buf, len, off, flags));
	return host_end(l, lun_local_write(l, buf, len, off, flags));
}

static void local_write_batch(struct ipm_lun *l, ipm_write *w, unsigned n)
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

void ipm_lun_write_batch(ipm_lun *l, ipm_write *w, unsigned n)
{
	ipm_write ok[IPM_WRITE_BATCH_MAX];
	unsigned at[IPM_WRITE_BATCH_MAX], i, k = 0;
	int rc;

	for (; n > IPM_WRITE_BATCH_MAX; w += IPM_WRITE_BATCH_MAX, n -= IPM_WRITE_BATCH_MAX)
		ipm_lun_write_batch(l, w, IPM_WRITE_BATCH_MAX);
	rc = host_begin(l, 0, 0);
	/* an out-of-range request fails alone; an empty one is done */
	for (i = 0; i < n; i++) {
		w[i].rc = rc < 0 ? rc : lun_range_ok(l, w[i].len, w[i].off) ? 0 : -EINVAL;
		if (w[i].rc == 0 && w[i].len > 0) {
			ok[k] = w[i];
			at[k++] = i;
		}
	}
	if (rc < 0)
		return;
	if (k > 0 && l->rep)
		replicator_write_batch(l->rep, l, ok, k);
	else if (k > 0)
		local_write_batch(l, ok, k);
	for (i = 0; i < k; i++)
		w[at[i]].rc = ok[i].rc;
	host_end(l, 0);
}

int ipm_lun_flush(ipm_lun *l)
{
	int rc = host_begin(l, 0, 0);

	if (rc < 0)
		return rc;
	if (l->rep)
		return host_end(l, replicator_op(l->rep, l, WIRE_FLUSH, 0, 0, 0));
	return host_end(l, lun_local_flush(l));
}

static int fua(struct ipm_lun *l, int rc, unsigned flags)
{
	return rc == 0 && (flags & IPM_IO_FUA) ? lun_local_flush(l) : rc;
}

int ipm_lun_trim(ipm_lun *l, uint64_t len, uint64_t off, unsigned flags)
{
	int rc = host_begin(l, len, off);

	if (rc < 0 || len == 0)
		return rc < 0 ? rc : host_end(l, 0);
	if (l->rep)
		return host_end(l, replicator_op(l->rep, l, WIRE_TRIM, len, off, flags));
	return host_end(l, fua(l, lun_local_trim(l, len, off), flags));
}

int ipm_lun_zero(ipm_lun *l, uint64_t len, uint64_t off, unsigned flags)
{
	int rc = host_begin(l, len, off);

	if (rc < 0 || len == 0)
		return rc < 0 ? rc : host_end(l, 0);
	if (l->rep)
		return host_end(l, replicator_op(l->rep, l, WIRE_ZERO, len, off, flags));
	return host_end(l, fua(l, lun_local_zero(l, len, off), flags));
}
