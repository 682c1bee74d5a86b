/* remote_read.c - the primary's side of a failing local disk
 * (doc/io-errors.md): a read its backing fails is asked of the mirror
 * (READ, answered by READ_REPLY), whose copy is the primary's when it is
 * up to date; a write its backing fails takes the disk out of service
 * (lun_disk.c).
 *
 * Ordering, as verify.c's: a READ is a fence in the LUN's list of active
 * requests, so it waits for the host writes admitted before it that
 * overlap its range, and it is numbered after every request sent so far,
 * so the mirror reads its copy only once all of them are applied: the
 * bytes are those a local read would have returned. A longer read goes in
 * pieces of WIRE_READ_MAX, all in flight at once.
 *
 * Locks: r->lock (replicator_int.h) for the requests; the disk's state
 * (l->disk_failed) is an atomic. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <qb/qblog.h>

#include "clock.h"
#include "crc32c.h"
#include "lockdebug.h"
#include "lun.h"
#include "remote_read.h"
#include "replicator_int.h"

#define READ_WAIT_MS 30000  /* a READ not answered within this fails the read */
#define READ_SLICE_MS 100   /* the wait looks at the link this often */

static struct rep_lun *rl_of(struct replicator *r, struct ipm_lun *l)
{
	unsigned i;

	for (i = 0; i < r->n_luns; i++)
		if (r->luns[i].lun == l)
			return &r->luns[i];
	return NULL;
}

/* Why the mirror's copy cannot serve a read now, or NULL. */
static const char *cannot_locked(const struct replicator *r, const struct rep_lun *rl)
{
	IPM_ASSERT_HELD(&r->lock);
	if (!r->running || r->link != LINK_LIVE)
		return "the peer is not connected";
	if (r->wire_version < 5)
		return "the peer speaks protocol version 4, which has no READ (upgrade it)";
	if (rl->state != IPM_STATE_UPTODATE)
		return "the peer's copy is not up to date";
	return NULL;
}

static bool overlap_before(const struct rep_lun *rl, const struct mreq *fence)
{
	const struct mreq *a;

	for (a = rl->active; a; a = a->anext)
		if (a != fence && a->f.type != WIRE_FLUSH &&
		    a->f.offset < fence->f.offset + fence->f.length &&
		    fence->f.offset < a->f.offset + a->f.length)
			return true;
	return false;
}

static struct mreq *read_new(struct rep_lun *rl, void *dst, uint64_t off, uint32_t len)
{
	struct mreq *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_READ,
				    .lun = rl->index, .offset = off, .length = len };
	m->rl = rl;
	m->read = true;
	m->read_dst = dst;
	m->refs = 2;   /* ours, and in flight */
	return m;
}

/* Fence and send one piece; NULL when it cannot go (*why says why). */
static struct mreq *read_send_locked(struct replicator *r, struct rep_lun *rl, void *dst,
				     uint64_t off, uint32_t len, const char **why)
{
	struct mreq *m = read_new(rl, dst, off, len);

	IPM_ASSERT_HELD(&r->lock);
	if (!m) {
		*why = "out of memory";
		return NULL;
	}
	active_add(rl, m);
	while (!(*why = cannot_locked(r, rl)) && (overlap_before(rl, m) || window_full_locked(r, 0)))
		space_wait_slice_locked(r, READ_SLICE_MS);
	if (*why) {
		active_remove(rl, m);
		pthread_cond_broadcast(&r->space_cond);
		free(m);
		return NULL;
	}
	m->f.dep = r->next_seq;
	m->f.seq = ++r->next_seq;
	enqueue_locked(r, m);
	return m;
}

/* Wait for a sent piece's answer; release it. 0 or -errno. */
static int read_wait_locked(struct replicator *r, struct mreq *m, int64_t deadline,
			    const char **why)
{
	int rc;

	IPM_ASSERT_HELD(&r->lock);
	while (!m->done && r->running && r->link == LINK_LIVE && ipm_now_ms() < deadline)
		space_wait_slice_locked(r, READ_SLICE_MS);
	if (m->answered && m->status)
		rc = -m->status, *why = "the peer's read failed";
	else if (m->answered)
		rc = 0;
	else
		rc = -EIO, *why = m->done ? "the peer answered without the bytes" :
			"no answer from the peer";
	active_remove(m->rl, m);
	pthread_cond_broadcast(&r->space_cond);
	mreq_put_locked(m);
	return rc;
}

int remote_read(struct replicator *r, struct ipm_lun *l, void *buf, size_t len, uint64_t off)
{
	size_t n = (len + WIRE_READ_MAX - 1) / WIRE_READ_MAX, i, sent = 0;
	struct mreq **m = calloc(n ? n : 1, sizeof(*m));
	int64_t deadline = ipm_now_ms() + READ_WAIT_MS;
	struct rep_lun *rl = rl_of(r, l);
	const char *why = NULL;
	int rc = 0, one;

	if (!m || !rl) {
		free(m);
		return -EIO;
	}
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < n && !why; i++) {
		size_t at = i * WIRE_READ_MAX, piece = len - at < WIRE_READ_MAX ? len - at : WIRE_READ_MAX;

		m[i] = read_send_locked(r, rl, (char *)buf + at, off + at, (uint32_t)piece, &why);
		if (m[i])
			sent++;
	}
	if (sent)
		send_now_locked(r, 0);
	for (i = 0; i < sent; i++) {
		one = read_wait_locked(r, m[i], deadline, &why);
		if (!rc)
			rc = one;
	}
	pthread_mutex_unlock(&r->lock);
	free(m);
	if (why && !rc)
		rc = -EIO;
	if (rc)
		qb_log(LOG_ERR, "lun %s: cannot read offset %llu length %zu from %s's copy either (%s): the host's read fails (%s)",
		       ipm_lun_name(l), (unsigned long long)off, len, r->e->peer->name,
		       why ? why : "?", strerror(-rc));
	return rc ? -EIO : 0;
}

void remote_read_answer_locked(struct mreq *m, const struct wire_frame *f, const uint8_t *payload)
{
	if (!m->read || f->type != WIRE_READ_REPLY)
		return;  /* an ACK (a duplicate's, or out of memory there): no bytes */
	if (f->offset != m->f.offset || f->length != m->f.length) {
		qb_log(LOG_ERR, "lun %s: READ_REPLY %llu names another range than its READ; ignored",
		       ipm_lun_name(m->rl->lun), (unsigned long long)f->seq);
		return;
	}
	if (f->status == 0 && crc32c(0, payload, f->len) != f->csum) {
		qb_log(LOG_ERR, "lun %s: READ_REPLY %llu: checksum mismatch; the bytes are not used",
		       ipm_lun_name(m->rl->lun), (unsigned long long)f->seq);
		return;
	}
	if (f->status == 0)
		memcpy(m->read_dst, payload, f->len);
	m->answered = true;
}

int remote_read_op(struct ipm_lun *l, void *buf, size_t len, uint64_t off)
{
	bool failed = __atomic_load_n(&l->disk_failed, __ATOMIC_RELAXED);
	int rc = failed ? -EIO : lun_local_read(l, buf, len, off);

	if (rc == 0 || !disk_error(rc))
		return rc;
	rc = remote_read(l->rep, l, buf, len, off);
	if (rc == 0) {
		__atomic_add_fetch(&l->remote_reads, 1, __ATOMIC_RELAXED);
		if (!failed)
			qb_log(LOG_WARNING, "lun %s: local read at offset %llu length %zu failed: served from %s's copy",
			       ipm_lun_name(l), (unsigned long long)off, len, l->engine->peer->name);
	}
	return rc;
}
