/* lun_disk.c - a LUN's local disk failing a write, on either role
 * (doc/io-errors.md): as DRBD's on-io-error detach, the disk goes out of
 * service and this copy is marked invalid in its generation file. Then a
 * primary serves reads from the mirror's copy and refuses changes
 * (remote_read.c, host_io.c); a mirror refuses its primary's changes and
 * sessions, and the primary tracks what this copy lacks (receiver.c). */
#include <errno.h>
#include <string.h>
#include <qb/qblog.h>

#include "lun.h"

bool disk_error(int rc)
{
	return rc == -EIO || rc == -ENOSPC || rc == -EROFS || rc == -EDQUOT || rc == -ENXIO ||
	       rc == -ENODEV;
}

static void log_failed(struct ipm_lun *l, const char *what, uint64_t off, int rc)
{
	const char *peer = l->engine->peer ? l->engine->peer->name : "the peer";
	const char *name = ipm_lun_name(l);

	if (l->role == IPM_ROLE_PRIMARY)
		qb_log(LOG_CRIT, "lun %s: LOCAL DISK FAILED: a %s at offset %llu failed (%s): this copy is marked inconsistent; host writes fail (EIO) and reads are served from %s's copy until the disk is replaced (doc/io-errors.md: hand the LUN over to %s, replace the disk, `ipmirrorctl invalidate %s`)",
		       name, what, (unsigned long long)off, strerror(-rc), peer, peer, name);
	else
		qb_log(LOG_CRIT, "lun %s: LOCAL DISK FAILED: a mirrored %s at offset %llu failed (%s): this copy is marked inconsistent and is not promotable; %s's requests for it are refused and %s tracks what it lacks until the disk is replaced (doc/io-errors.md: replace the disk, then `ipmirrorctl invalidate %s` here)",
		       name, what, (unsigned long long)off, strerror(-rc), peer, peer, name);
}

/* disk_lock orders the failures of one LUN: the first marks the copy and
 * sets disk_failed; the others wait for that, so none of them is answered
 * before the mark is durable. */
void lun_disk_write_error(struct ipm_lun *l, const char *what, uint64_t off, int rc)
{
	ipm_error err = { "" };

	if (!disk_error(rc) || __atomic_load_n(&l->disk_failed, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&l->disk_lock);
	if (__atomic_load_n(&l->disk_failed, __ATOMIC_RELAXED))
		goto out;
	log_failed(l, what, off, rc);
	if (lun_gen_invalidate(l, &err) < 0)
		qb_log(LOG_CRIT, "lun %s: cannot mark this copy inconsistent in its generation file: %s (it is out of service and not promotable while this daemon runs; a restart would forget it)",
		       ipm_lun_name(l), err.msg);
	__atomic_store_n(&l->insync, false, __ATOMIC_RELAXED);
	__atomic_store_n(&l->disk_failed, true, __ATOMIC_RELEASE);
	engine_notify(l->engine);
out:
	pthread_mutex_unlock(&l->disk_lock);
}
