/* resize_send.c - the primary's side of an online grow (doc/resize.md):
 * a RESIZE frame asks the mirror to grow a LUN, numbered after every
 * request sent so far, so the mirror grows once all of them are applied;
 * its RESIZE_REPLY says whether it did, or why not (its backing's size).
 *
 * Locks: r->lock (replicator_int.h); the wait drops it between slices. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <qb/qblog.h>

#include "clock.h"
#include "crc32c.h"
#include "endian.h"
#include "lockdebug.h"
#include "lun.h"
#include "replicator_int.h"

#define RESIZE_WAIT_MS 5000   /* within ipmirrorctl's 10 s; the mirror grows files of a few KiB */
#define RESIZE_SLICE_MS 100

/* Why the mirror cannot be asked now, or NULL. */
static const char *cannot_locked(const struct replicator *r, const struct rep_lun *rl, int *rc)
{
	IPM_ASSERT_HELD(&r->lock);
	*rc = -ENOTCONN;
	if (!r->running || r->link != LINK_LIVE)
		return "the peer is not connected (a grow needs both nodes: the mirror grows first)";
	if (rl->state != IPM_STATE_UPTODATE)
		return "the peer's copy is not up to date (wait for the resync to end)";
	*rc = -EPROTO;
	if (r->wire_version < 5)
		return "the peer speaks protocol version 4, which cannot grow a LUN (upgrade it first)";
	return NULL;
}

int replicator_resize_ready(struct replicator *r, struct ipm_lun *l, ipm_error *err)
{
	struct rep_lun *rl = &r->luns[l->wire_index];
	const char *why;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	why = cannot_locked(r, rl, &rc);
	pthread_mutex_unlock(&r->lock);
	return why ? ipm_fail(err, rc, "lun \"%s\": %s", l->cfg->name, why) : 0;
}

static struct mreq *resize_new(struct rep_lun *rl, uint64_t size)
{
	struct mreq *m = calloc(1, sizeof(*m));

	if (!m || !(m->owned = malloc(WIRE_RESIZE_LEN))) {
		free(m);
		return NULL;
	}
	be_put64(m->owned, size);
	m->data = m->owned;
	m->f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_RESIZE,
				    .lun = rl->index, .len = WIRE_RESIZE_LEN,
				    .csum = crc32c(0, m->owned, WIRE_RESIZE_LEN) };
	m->rl = rl;
	m->resize = true;
	m->refs = 2;   /* ours, and in flight */
	return m;
}

/* Send m after everything sent so far and wait for its answer. */
static int ask_locked(struct replicator *r, struct mreq *m, const char **why)
{
	int64_t deadline = ipm_now_ms() + RESIZE_WAIT_MS;
	int rc;

	IPM_ASSERT_HELD(&r->lock);
	while (!(*why = cannot_locked(r, m->rl, &rc)) && window_full_locked(r, m->f.len))
		space_wait_slice_locked(r, RESIZE_SLICE_MS);
	if (*why)
		return rc;
	m->f.dep = r->next_seq;
	m->f.seq = ++r->next_seq;
	enqueue_locked(r, m);
	send_now_locked(r, 0);
	while (!m->done && r->running && r->link == LINK_LIVE && ipm_now_ms() < deadline)
		space_wait_slice_locked(r, RESIZE_SLICE_MS);
	if (m->answered)
		return -m->status;
	*why = m->done ? "the connection broke before the peer answered"
		       : "the peer did not answer in time";
	return -ETIMEDOUT;
}

int replicator_resize(struct replicator *r, struct ipm_lun *l, uint64_t size,
		      uint64_t *peer_backing, ipm_error *err)
{
	struct rep_lun *rl = &r->luns[l->wire_index];
	struct mreq *m = resize_new(rl, size);
	const char *why = NULL;
	int rc;

	if (!m)
		return ipm_fail(err, -ENOMEM, "out of memory");
	pthread_mutex_lock(&r->lock);
	rc = ask_locked(r, m, &why);
	*peer_backing = m->peer_backing;
	if (!m->f.seq)
		m->refs = 1;   /* never sent: no in-flight reference */
	mreq_put_locked(m);
	pthread_mutex_unlock(&r->lock);
	if (why)
		return ipm_fail(err, rc, "lun \"%s\": %s", l->cfg->name, why);
	if (rc < 0)
		return ipm_fail(err, rc, "lun \"%s\": %s refused the grow: %s", l->cfg->name,
				r->e->peer->name, strerror(-rc));
	return 0;
}

void resize_answer_locked(struct mreq *m, const struct wire_frame *f)
{
	if (!m->resize)
		return;
	if (f->type == WIRE_RESIZE_REPLY) {
		m->peer_backing = f->offset;
		m->answered = true;
	} else if (f->type == WIRE_ACK) {
		m->answered = true;   /* a duplicate's: the mirror grew at the first */
	}
}
