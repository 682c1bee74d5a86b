/* apply_order.c - which mirror requests are applied (see apply_order.h). */
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
