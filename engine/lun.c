/* lun.c - the LUN object: its config, role, size (grown by lun_grow), backing store (opened here, used
 * through backing.c) and the operations table its host I/O goes down. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "lun.h"
#include "backing.h"
#include "clock.h"
#include "dirty_bitmap.h"
#include "lun_size.h"

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

/* io="auto" or "direct": a second descriptor with O_DIRECT, so the page
 * cache neither doubles the data nor costs a copy (and, on file systems with
 * large folios, a walk of the folio's buffers) per write. A backing that
 * refuses O_DIRECT at open or at the first aligned read (lun_direct_probe)
 * gets the page cache: "auto" says so at info level, "direct" warns. */
static void open_direct(struct ipm_lun *l, const struct ipm_backing_cfg *b)
{
	int prio = b->io == IPM_IO_DIRECT ? LOG_WARNING : LOG_INFO;
	int rc;

	if (b->io == IPM_IO_BUFFERED)
		return;
	l->dfd = open(l->path, O_RDWR | O_CLOEXEC | O_DIRECT);
	if (l->dfd < 0) {
		qb_log(prio, "lun \"%s\": backing %s refuses O_DIRECT (%s); using the page cache",
		       l->cfg->name, l->path, strerror(errno));
		return;
	}
	dio_alignment(l);
	rc = lun_direct_probe(l);
	if (rc < 0) {
		qb_log(prio, "lun \"%s\": backing %s: an aligned O_DIRECT read fails (%s); "
		       "using the page cache", l->cfg->name, l->path, strerror(-rc));
		close(l->dfd);
		l->dfd = -1;
		return;
	}
	/* no readahead through the page cache: it reads on after a cached
	 * read has returned, into pages a direct write may then cover, which
	 * its end cannot drop (struct io_phase, backing.h) */
	posix_fadvise(l->fd, 0, 0, POSIX_FADV_RANDOM);
}

static void gate_init(struct ipm_lun *l)
{
	pthread_rwlockattr_t a;

	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&l->gate, &a);
	pthread_rwlockattr_destroy(&a);
}

int lun_serving(const struct ipm_lun *l)
{
	return l->role == IPM_ROLE_PRIMARY && !l->down ? 0 : -EPERM;
}

int lun_backing_size(struct ipm_lun *l, uint64_t *size)
{
	bool blk;

	return backing_size(l->fd, &blk, size);
}

/* The LUN's size: the config's, or what an online grow recorded when it
 * is more (doc/resize.md); then the backing may be larger (lvextend rounds
 * up), else it must match. */
static int size_check(struct ipm_lun *l, uint64_t backing, ipm_error *err)
{
	const struct ipm_lun_cfg *cfg = l->cfg;
	ipm_error why = { "" };
	uint64_t grown = 0;
	int rc = resize_recorded(l->journal_path, &grown, &why);

	if (rc < 0 && rc != -ENOENT)
		return ipm_fail(err, rc, "lun \"%s\": %s", cfg->name, why.msg);
	if (rc == 0 && grown >= cfg->size) {
		if (backing < grown)
			return ipm_fail(err, -EINVAL,
					"lun \"%s\": backing %s is %llu bytes but the LUN was grown to %llu",
					cfg->name, l->path, (unsigned long long)backing,
					(unsigned long long)grown);
		if (grown > cfg->size)
			qb_log(LOG_NOTICE, "lun \"%s\": %llu bytes, as grown online (the config says %llu: set size=\"%llu\" there)",
			       cfg->name, (unsigned long long)grown, (unsigned long long)cfg->size,
			       (unsigned long long)grown);
		l->size = grown;
		return 0;
	}
	if (backing != cfg->size)
		return ipm_fail(err, -EINVAL,
				"lun \"%s\": backing %s is %llu bytes but the config says %llu",
				cfg->name, l->path, (unsigned long long)backing,
				(unsigned long long)cfg->size);
	l->size = backing;
	return 0;
}

int lun_grow(struct ipm_lun *l, uint64_t size, bool sync_new, ipm_error *err)
{
	char path[4300];
	int rc;

	rc = resize_record(l->journal_path, size, err);
	snprintf(path, sizeof(path), "%s.bitmap", l->journal_path);
	if (rc == 0)
		rc = dirty_bitmap_grow_file(path, size, sync_new, err);
	snprintf(path, sizeof(path), "%s.al", l->journal_path);
	if (rc == 0)
		rc = dirty_bitmap_grow_file(path, size, false, err);
	if (rc < 0)
		return rc;
	__atomic_store_n(&l->size, size, __ATOMIC_RELEASE);
	engine_notify(l->engine);
	return 0;
}


int lun_files_open(struct ipm_lun *l, ipm_error *err)
{
	const struct ipm_lun_cfg *cfg = l->cfg;
	uint64_t backing;
	int rc;

	l->fd = open(l->path, O_RDWR | O_CLOEXEC);
	if (l->fd < 0)
		return ipm_fail(err, -errno, "lun \"%s\": cannot open backing %s: %s",
				cfg->name, l->path, strerror(errno));
	rc = backing_size(l->fd, &l->is_blockdev, &backing);
	if (rc < 0) {
		ipm_fail(err, rc, "lun \"%s\": backing %s: %s", cfg->name, l->path,
			 rc == -EINVAL ? "not a regular file or block device" : strerror(-rc));
		goto fail;
	}
	rc = size_check(l, backing, err);
	if (rc < 0)
		goto fail;
	open_direct(l, ipm_lun_cfg_backing_entry(cfg, l->engine->node));
	return 0;
fail:
	lun_files_close(l);
	return rc;
}

void lun_files_close(struct ipm_lun *l)
{
	if (l->fd >= 0)
		close(l->fd);
	if (l->dfd >= 0)
		close(l->dfd);
	l->fd = l->dfd = -1;
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
	if (cfg->journal_path)
		snprintf(l->journal_path, sizeof(l->journal_path), "%s", cfg->journal_path);
	else
		snprintf(l->journal_path, sizeof(l->journal_path), "%s.journal", path);
	l->ops = &backing_ops;
	gate_init(l);
	io_phase_init(&l->phase);
	lun_gen_init(&l->g);
	pthread_mutex_init(&l->refusal_lock, NULL);
	pthread_mutex_init(&l->disk_lock, NULL);
	l->role = strcmp(cfg->primary, e->node) == 0 ? IPM_ROLE_PRIMARY : IPM_ROLE_MIRROR;
	l->state = IPM_STATE_UPTODATE;

	rc = lun_files_open(l, err);
	if (rc < 0)
		goto fail;
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
	lun_files_close(l);
	lun_gen_fini(&l->g);
	ipm_config_free(l->own_cfg);
	pthread_rwlock_destroy(&l->gate);
	io_phase_destroy(&l->phase);
	pthread_mutex_destroy(&l->refusal_lock);
	pthread_mutex_destroy(&l->disk_lock);
	free(l);
}

void lun_lat_observe(uint64_t *buckets, uint64_t *sum_us, uint64_t us, unsigned n)
{
	static const uint64_t bounds[IPM_LAT_BUCKETS] = IPM_LAT_BOUNDS_US;
	unsigned b = 0;

	while (b < IPM_LAT_BUCKETS && us > bounds[b])
		b++;
	__atomic_add_fetch(&buckets[b], n, __ATOMIC_RELAXED);
	__atomic_add_fetch(sum_us, us * n, __ATOMIC_RELAXED);
}

void lun_note_refusal(struct ipm_lun *l, const char *why)
{
	pthread_mutex_lock(&l->refusal_lock);
	snprintf(l->refusal, sizeof(l->refusal), "%s", why);
	l->refusal_ms = ipm_now_ms();
	pthread_mutex_unlock(&l->refusal_lock);
	engine_notify(l->engine);
}

void lun_refusal(struct ipm_lun *l, char *buf, size_t len, int64_t *age_ms)
{
	pthread_mutex_lock(&l->refusal_lock);
	snprintf(buf, len, "%s", l->refusal);
	*age_ms = l->refusal_ms ? ipm_now_ms() - l->refusal_ms : -1;
	pthread_mutex_unlock(&l->refusal_lock);
}

bool lun_range_ok(const struct ipm_lun *l, uint64_t len, uint64_t off)
{
	uint64_t size = __atomic_load_n(&l->size, __ATOMIC_ACQUIRE);  /* resize.c grows it */

	return off <= size && len <= size - off;
}

const char *ipm_lun_name(const ipm_lun *l)
{
	return l->cfg->name;
}

uint64_t ipm_lun_size(const ipm_lun *l)
{
	return __atomic_load_n(&l->size, __ATOMIC_ACQUIRE);  /* resize.c grows it */
}

