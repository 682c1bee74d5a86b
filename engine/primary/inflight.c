/* inflight.c - the primary's requests in flight, as data: the table by
 * sequence number, the send queue, and per LUN the writes whose ranges are
 * active (overlapping writes are serialised so both copies apply them in
 * the same order). No locks and no I/O: the caller holds r->lock. Unit
 * tested by tests/unit/test_inflight.c. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replicator_int.h"

void hash_insert(struct replicator *r, struct mreq *m)
{
	struct mreq **b = &r->hash[m->f.seq & r->hash_mask];

	m->hnext = *b;
	*b = m;
}

struct mreq *hash_remove(struct replicator *r, uint64_t seq)
{
	struct mreq **p;

	for (p = &r->hash[seq & r->hash_mask]; *p; p = &(*p)->hnext) {
		if ((*p)->f.seq == seq) {
			struct mreq *m = *p;

			*p = m->hnext;
			return m;
		}
	}
	return NULL;
}

uint64_t lowest_unacked(struct replicator *r)
{
	uint64_t low = r->next_seq + 1;
	unsigned i;
	struct mreq *m;

	for (i = 0; i <= r->hash_mask; i++)
		for (m = r->hash[i]; m; m = m->hnext)
			if (m->f.seq < low)
				low = m->f.seq;
	return low;
}

void queue_append(struct replicator *r, struct mreq *m)
{
	m->qnext = NULL;
	if (r->qtail)
		r->qtail->qnext = m;
	else
		r->qhead = m;
	r->qtail = m;
}

/* Re-sent requests go back in sequence order, ahead of newer ones. */
void queue_insert_sorted(struct replicator *r, struct mreq *m)
{
	struct mreq **p = &r->qhead;

	while (*p && (*p)->f.seq < m->f.seq)
		p = &(*p)->qnext;
	m->qnext = *p;
	*p = m;
	if (!m->qnext)
		r->qtail = m;
}

bool overlaps(const struct rep_lun *rl, const struct wire_frame *f)
{
	const struct mreq *a;

	if (f->type == WIRE_FLUSH)
		return false;
	for (a = rl->active; a; a = a->anext)
		if (a->f.type != WIRE_FLUSH && f->offset < a->f.offset + a->f.length &&
		    a->f.offset < f->offset + f->length)
			return true;
	return false;
}

void active_add(struct rep_lun *rl, struct mreq *m)
{
	m->aprev = NULL;
	m->anext = rl->active;
	if (rl->active)
		rl->active->aprev = m;
	rl->active = m;
	m->active = true;
}

void active_remove(struct rep_lun *rl, struct mreq *m)
{
	if (!m->active)
		return;
	if (m->aprev)
		m->aprev->anext = m->anext;
	else
		rl->active = m->anext;
	if (m->anext)
		m->anext->aprev = m->aprev;
	m->active = false;
}
