/* apply_order.c - which mirror requests are applied (see apply_order.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "apply_order.h"

#define BIT(seq) ((seq) % WIRE_MAX_WINDOW)

void order_reset(struct apply_order *o, uint64_t session, uint64_t base_seq)
{
	o->session = session;
	o->prefix = base_seq;
	memset(o->bits, 0, sizeof(o->bits));
}

bool order_is_applied(const struct apply_order *o, uint64_t seq)
{
	if (seq <= o->prefix)
		return true;
	if (seq - o->prefix > WIRE_MAX_WINDOW)
		return false;
	return o->bits[BIT(seq) / 8] & (1u << (BIT(seq) % 8));
}

bool order_ready(const struct apply_order *o, uint64_t dep)
{
	return dep <= o->prefix;
}

enum order_verdict order_admit(const struct apply_order *o, uint64_t seq, uint64_t dep)
{
	if (dep >= seq || seq == 0)
		return ORDER_INVALID;
	if (order_is_applied(o, seq))
		return ORDER_DUPLICATE;
	if (seq - o->prefix > WIRE_MAX_WINDOW)
		return ORDER_INVALID;
	return order_ready(o, dep) ? ORDER_APPLY : ORDER_WAIT;
}

/* advance the prefix over every applied request that now joins it */
static void join_prefix(struct apply_order *o)
{
	uint64_t next;

	for (next = o->prefix + 1; o->bits[BIT(next) / 8] & (1u << (BIT(next) % 8)); next++) {
		o->bits[BIT(next) / 8] &= (uint8_t)~(1u << (BIT(next) % 8));
		o->prefix = next;
	}
}

void order_mark_applied(struct apply_order *o, uint64_t seq)
{
	if (order_is_applied(o, seq))
		return;
	o->bits[BIT(seq) / 8] |= (uint8_t)(1u << (BIT(seq) % 8));
	join_prefix(o);
}

void order_settle(struct apply_order *o, uint64_t seq)
{
	uint64_t s;

	if (seq <= o->prefix)
		return;
	if (seq - o->prefix >= WIRE_MAX_WINDOW)
		memset(o->bits, 0, sizeof(o->bits));
	else
		for (s = o->prefix + 1; s <= seq; s++)
			o->bits[BIT(s) / 8] &= (uint8_t)~(1u << (BIT(s) % 8));
	o->prefix = seq;
	join_prefix(o);
}

/* ---- requests waiting for their dependencies ------------------------------- */

void wait_init(struct wait_set *w, uint32_t max_count, uint64_t max_bytes)
{
	memset(w, 0, sizeof(*w));
	w->max_count = max_count;
	w->max_bytes = max_bytes;
}

void wait_free(struct wait_set *w)
{
	free(w->heap);
	w->heap = NULL;
	w->n = w->cap = 0;
	w->bytes = 0;
}

static bool node_before(struct wait_set *w, const struct wait_node *a,
			const struct wait_node *b)
{
	w->steps++;
	return a->dep < b->dep || (a->dep == b->dep && a->stamp < b->stamp);
}

static void heap_place(struct wait_set *w, struct wait_node *n, uint32_t i)
{
	w->heap[i] = n;
	n->at = i;
}

static void sift_up(struct wait_set *w, uint32_t i)
{
	struct wait_node *n = w->heap[i];

	while (i > 0 && node_before(w, n, w->heap[(i - 1) / 2])) {
		heap_place(w, w->heap[(i - 1) / 2], i);
		i = (i - 1) / 2;
	}
	heap_place(w, n, i);
}

static void sift_down(struct wait_set *w, uint32_t i)
{
	struct wait_node *n = w->heap[i];
	uint32_t c;

	while ((c = 2 * i + 1) < w->n) {
		if (c + 1 < w->n && node_before(w, w->heap[c + 1], w->heap[c]))
			c++;
		if (!node_before(w, w->heap[c], n))
			break;
		heap_place(w, w->heap[c], i);
		i = c;
	}
	heap_place(w, n, i);
}

static int heap_grow(struct wait_set *w)
{
	uint32_t cap = w->cap ? w->cap * 2 : 64;
	struct wait_node **h;

	if (cap > w->max_count)
		cap = w->max_count;
	h = realloc(w->heap, (size_t)cap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	w->heap = h;
	w->cap = cap;
	return 0;
}

int wait_insert(struct wait_set *w, struct wait_node *n)
{
	int rc;

	if (w->n >= w->max_count)
		return -ENOBUFS;
	if (n->bytes > w->max_bytes - w->bytes)
		return -EMSGSIZE;
	if (w->n == w->cap) {
		rc = heap_grow(w);
		if (rc < 0)
			return rc;
	}
	n->stamp = w->stamp++;
	w->bytes += n->bytes;
	heap_place(w, n, w->n++);
	sift_up(w, n->at);
	return 0;
}

void wait_remove(struct wait_set *w, struct wait_node *n)
{
	uint32_t i = n->at;
	struct wait_node *last = w->heap[--w->n];

	w->bytes -= n->bytes;
	if (i == w->n)
		return;
	heap_place(w, last, i);
	if (i > 0 && node_before(w, last, w->heap[(i - 1) / 2]))
		sift_up(w, i);
	else
		sift_down(w, i);
}

struct wait_node *wait_take_ready(struct wait_set *w, uint64_t prefix)
{
	struct wait_node *n;

	if (w->n == 0 || w->heap[0]->dep > prefix)
		return NULL;
	n = w->heap[0];
	wait_remove(w, n);
	return n;
}

void wait_drop_if(struct wait_set *w, bool (*drop)(struct wait_node *n, void *arg), void *arg)
{
	uint32_t i, kept = 0;

	for (i = 0; i < w->n; i++) {
		struct wait_node *n = w->heap[i];
		uint32_t bytes = n->bytes;

		if (drop(n, arg))
			w->bytes -= bytes;
		else
			heap_place(w, n, kept++);
	}
	w->n = kept;
	for (i = kept / 2; i-- > 0;)
		sift_down(w, i);
}
