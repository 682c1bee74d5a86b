/* resize.c - growing a LUN online (doc/resize.md): `ipmirrorctl resize` on
 * its primary checks both backings, has the mirror grow first (a RESIZE
 * frame, ordered after every request before it), then grows here and
 * re-makes the LUN's session, whose resync copies the new range (holes
 * and zeros cost no transfer). The size a grow reached is recorded in a
 * small file beside the journal, so a restart keeps it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "clock.h"
#include "crc32c.h"
#include "dirty_bitmap.h"
#include "endian.h"
#include "fileio.h"
#include "lun.h"
#include "replicator.h"
#include "resize.h"

#define SIZE_MAGIC "IPMSIZE1"
#define SIZE_FILE_LEN 20            /* magic, le64 size, le32 crc32c of both */
#define SIZE_MAX_LUN (256ull << 40) /* config.c's largest LUN */

int resize_check(const char *lun, uint64_t cur, uint64_t want, const char *path,
		 uint64_t backing, ipm_error *err)
{
	if (want == cur) {
		ipm_note(err, "lun \"%s\" has %llu bytes already", lun, (unsigned long long)cur);
		return 1;
	}
	if (want < cur)
		return ipm_fail(err, -EINVAL, "lun \"%s\": %llu bytes is smaller than its size, %llu: shrinking a LUN is not supported (the data past the new end would be lost; copy it to a smaller LUN instead)",
				lun, (unsigned long long)want, (unsigned long long)cur);
	if (want % 512)
		return ipm_fail(err, -EINVAL, "lun \"%s\": %llu bytes is not a multiple of 512",
				lun, (unsigned long long)want);
	if (want > SIZE_MAX_LUN)
		return ipm_fail(err, -EINVAL, "lun \"%s\": %llu bytes is past the largest LUN (256T)",
				lun, (unsigned long long)want);
	if (want > backing)
		return ipm_fail(err, -EFBIG, "lun \"%s\": backing %s is %llu bytes, smaller than %llu: grow it first (truncate -s, lvextend)",
				lun, path, (unsigned long long)backing, (unsigned long long)want);
	return 0;
}

static void size_path(const char *journal_path, char *out, size_t len)
{
	snprintf(out, len, "%s.size", journal_path);
}

int resize_recorded(const char *journal_path, uint64_t *size, ipm_error *err)
{
	uint8_t b[SIZE_FILE_LEN];
	char path[4300];
	ssize_t n;
	int fd;

	size_path(journal_path, path, sizeof(path));
	fd = open_own_file(path, O_RDONLY, "size file", NULL, err);
	if (fd < 0)
		return fd;
	n = pread_full(fd, b, sizeof(b), 0);
	close(fd);
	if (n < 0)
		return ipm_fail(err, (int)n, "size file %s: cannot read: %s", path, strerror((int)-n));
	if (n != SIZE_FILE_LEN || memcmp(b, SIZE_MAGIC, 8) != 0 ||
	    le_get32(b + 16) != crc32c(0, b, 16) || !le_get64(b + 8))
		return ipm_fail(err, -EUCLEAN, "size file %s is damaged: it holds the size an online grow gave the LUN; set size= in the config to the LUN's size and remove the file",
				path);
	*size = le_get64(b + 8);
	return 0;
}

int resize_record(const char *journal_path, uint64_t size, ipm_error *err)
{
	uint8_t b[SIZE_FILE_LEN];
	char path[4300], tmp[4310];

	memcpy(b, SIZE_MAGIC, 8);
	le_put64(b + 8, size);
	le_put32(b + 16, crc32c(0, b, 16));
	size_path(journal_path, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	return replace_file(path, tmp, b, sizeof(b), "size file", err);
}

/* Back to what was recorded before a grow the mirror refused. */
static void unrecord(const char *journal_path, bool had, uint64_t prev)
{
	char path[4300];
	ipm_error err = { "" };

	size_path(journal_path, path, sizeof(path));
	if (had ? resize_record(journal_path, prev, &err) < 0 : unlink(path) < 0)
		qb_log(LOG_ERR, "size file %s: cannot restore it: %s", path,
		       had ? err.msg : strerror(errno));
}

int resize_grow_here(struct ipm_lun *l, uint64_t size, bool sync_new, ipm_error *err)
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

/* Why this node cannot start a grow of l, or 0. */
static int refuse(struct ipm_lun *l, bool grouped, ipm_error *err)
{
	const char *peer = l->engine->peer ? l->engine->peer->name : "the peer";

	if (l->down)
		return ipm_fail(err, -ENODEV, "lun \"%s\" is down here: `ipmirrorctl up %s` first",
				l->cfg->name, l->cfg->name);
	if (l->role != IPM_ROLE_PRIMARY)
		return ipm_fail(err, -EINVAL, "lun \"%s\": this node is its mirror: run resize on its primary, %s (the mirror grows with it)",
				l->cfg->name, peer);
	if (l->cfg->mirrored && grouped)
		return ipm_fail(err, -EPROTO, "lun \"%s\": %s speaks protocol version 4, which cannot grow a LUN: upgrade it first",
				l->cfg->name, peer);
	if (l->cfg->mirrored && !l->rep)
		return ipm_fail(err, -ENOTCONN, "lun \"%s\" has no session with %s here (its log says why)",
				l->cfg->name, peer);
	return 0;
}

/* The mirror refused: say why, naming its backing. */
static int peer_refused(struct ipm_lun *l, uint64_t size, uint64_t backing, int rc,
			ipm_error *err)
{
	const char *peer = l->engine->peer->name;
	const struct ipm_backing_cfg *b = ipm_lun_cfg_backing_entry(l->cfg, peer);

	if (rc == -EFBIG)
		return ipm_fail(err, rc, "lun \"%s\": %s's backing %s is %llu bytes, smaller than %llu: grow it first (truncate -s, lvextend); nothing changed",
				l->cfg->name, peer, b ? b->path : "?", (unsigned long long)backing,
				(unsigned long long)size);
	return ipm_fail(err, rc, "lun \"%s\": %s refused the grow to %llu bytes (%s; its log says why); nothing changed",
			l->cfg->name, peer, (unsigned long long)size, strerror(-rc));
}

/* Primary of a mirrored LUN, gate and admin held: the mirror grows first;
 * then this node, and the session is re-made so that its resync copies the
 * new range. The size is recorded here before the mirror is asked: after
 * a crash from then on, the next handshake grows the mirror (receiver.c). */
static int grow_mirrored(ipm_engine *e, struct ipm_lun *l, uint64_t size, ipm_error *err)
{
	uint64_t prev = 0, peer_backing = 0;
	bool had = resize_recorded(l->journal_path, &prev, NULL) == 0;
	ipm_error why = { "" };
	int rc;

	rc = replicator_resize_ready(l->rep, l, err);
	if (rc == 0)
		rc = resize_record(l->journal_path, size, err);
	if (rc < 0)
		return rc;
	rc = replicator_resize(l->rep, l, size, &peer_backing, &why);
	if (rc == -ETIMEDOUT) {
		/* it may have grown: ours goes on, the handshake grows it */
		qb_log(LOG_WARNING, "lun %s: %s; growing here, %s grows at the next connection",
		       l->cfg->name, why.msg, e->peer->name);
	} else if (rc < 0) {
		unrecord(l->journal_path, had, prev);
		return peer_refused(l, size, peer_backing, rc, err);
	}
	lun_mirror_detach(e, l);
	rc = resize_grow_here(l, size, true, err);
	if (lun_mirror_attach(e, l, rc < 0 ? &why : err) < 0 && rc == 0)
		rc = -EIO;
	return rc;
}

int ipm_lun_resize(ipm_lun *l, uint64_t size, ipm_error *err)
{
	ipm_engine *e = l->engine;
	uint64_t old, backing = 0;
	int64_t t0 = ipm_now_ms();
	bool grouped;
	int rc;

	/* no host request runs on it meanwhile: those under way end first */
	lun_change_begin(e, l, &grouped);
	old = l->size;
	rc = refuse(l, grouped, err);
	if (rc == 0 && (rc = lun_backing_size(l, &backing)) < 0)
		ipm_fail(err, rc, "lun \"%s\": backing %s: %s", l->cfg->name, l->path, strerror(-rc));
	if (rc == 0)
		rc = resize_check(l->cfg->name, l->size, size, l->path, backing, err);
	if (rc != 0)
		goto out;
	rc = l->cfg->mirrored ? grow_mirrored(e, l, size, err)
			      : resize_grow_here(l, size, false, err);
	if (rc < 0)
		goto out;
	qb_log(LOG_NOTICE, "lun %s: GROWN from %llu to %llu bytes (%lld ms)%s; new NBD connections see the new size; set size=\"%llu\" in the config on both nodes",
	       l->cfg->name, (unsigned long long)old, (unsigned long long)size,
	       (long long)(ipm_now_ms() - t0),
	       l->cfg->mirrored ? "; the new range is resynced to the peer" : "",
	       (unsigned long long)size);
	rc = ipm_note(err, "lun \"%s\" grown from %llu to %llu bytes%s", l->cfg->name,
		      (unsigned long long)old, (unsigned long long)size,
		      l->cfg->mirrored ? " on both nodes; the new range is being synced" : "");
out:
	lun_change_end(e, l, grouped);
	return rc < 0 ? rc : 0;
}
