/* resize_serve.c - the mirror's side of an online grow: a RESIZE, applied
 * once every earlier request is, grows the LUN here when this node's
 * backing holds the new size; the RESIZE_REPLY says so, or names the
 * backing's size (doc/resize.md). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <qb/qblog.h>

#include "endian.h"
#include "lun.h"
#include "lun_size.h"
#include "resize_serve.h"

/* One grow at a time: the handshakes of a session's n connections may all
 * find the LUN smaller than the primary's (a leaf lock; the files it
 * writes are a few KiB). */
static pthread_mutex_t grow_lock = PTHREAD_MUTEX_INITIALIZER;

/* Grow l to size here: 0, or -errno with err set; *backing: its size. */
static int grow_locked(struct ipm_lun *l, uint64_t size, uint64_t *backing, ipm_error *err)
{
	int rc = lun_backing_size(l, backing);

	if (rc < 0)
		return ipm_fail(err, rc, "lun \"%s\": backing %s: %s", ipm_lun_name(l), l->path,
				strerror(-rc));
	rc = resize_check(ipm_lun_name(l), ipm_lun_size(l), size, l->path, *backing, err);
	if (rc == 1)
		return 0;  /* again: a RESIZE sent twice, or grown at a handshake */
	if (rc == 0)
		rc = lun_grow(l, size, false, err);
	if (rc == 0)
		qb_log(LOG_NOTICE, "lun %s: GROWN to %llu bytes by its primary; set size=\"%llu\" in the config on both nodes",
		       ipm_lun_name(l), (unsigned long long)size, (unsigned long long)size);
	return rc;
}

static int grow(struct ipm_lun *l, uint64_t size, uint64_t *backing, ipm_error *err)
{
	int rc;

	pthread_mutex_lock(&grow_lock);
	rc = grow_locked(l, size, backing, err);
	pthread_mutex_unlock(&grow_lock);
	return rc;
}

int resize_serve(struct ipm_lun *l, const struct wire_frame *f, void **msg)
{
	uint64_t size = be_get64(*msg), backing = 0;
	struct wire_frame r = {
		.magic = WIRE_FRAME_MAGIC, .type = WIRE_RESIZE_REPLY, .lun = f->lun,
		.seq = f->seq, .length = size,
	};
	ipm_error err = { "" };
	int rc = grow(l, size, &backing, &err);

	if (rc < 0)
		qb_log(LOG_ERR, "the primary's grow refused: %s", err.msg);
	free(*msg);
	*msg = malloc(WIRE_FRAME_LEN);
	if (!*msg)
		return rc;
	r.offset = backing;
	r.status = rc < 0 ? -rc : 0;
	wire_frame_encode(*msg, &r);
	return rc;
}

int resize_at_handshake(struct ipm_lun *l, uint64_t size, char *reason, size_t len)
{
	uint64_t backing = 0;
	ipm_error err = { "" };
	int rc = grow(l, size, &backing, &err);

	if (rc < 0)
		snprintf(reason, len, "%s", err.msg);
	return rc;
}
