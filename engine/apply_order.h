/* apply_order.h - the mirror's record of which mirror requests are applied,
 * used to restore the order that matters and to recognise re-sent requests.
 *
 * Every request carries seq and dep: it may be applied once every seq <= dep
 * is applied. The record is a prefix (every seq <= prefix applied) plus a
 * bitmap of the applied requests above it; the primary never has more than
 * WIRE_MAX_WINDOW requests in flight, so that window bounds the bitmap.
 * Not thread-safe: the receiver holds its lock around every call. */
#ifndef IPM_APPLY_ORDER_H
#define IPM_APPLY_ORDER_H

#include <stdbool.h>
#include <stdint.h>
#include "wire.h"

struct apply_order {
	uint64_t session;
	uint64_t prefix;
	uint8_t bits[WIRE_MAX_WINDOW / 8];
};

enum order_verdict {
	ORDER_APPLY,       /* its dependencies are applied: apply it now */
	ORDER_WAIT,        /* hold it until order_ready() says so */
	ORDER_DUPLICATE,   /* applied already: answer again, do not re-apply */
	ORDER_INVALID,     /* dep >= seq or seq beyond the window: protocol error */
};

void order_reset(struct apply_order *o, uint64_t session, uint64_t base_seq);
enum order_verdict order_admit(const struct apply_order *o, uint64_t seq, uint64_t dep);
bool order_ready(const struct apply_order *o, uint64_t dep);
bool order_is_applied(const struct apply_order *o, uint64_t seq);
void order_mark_applied(struct apply_order *o, uint64_t seq);
/* Every seq <= seq is settled (applied, or the primary journaled it and will
 * replay it under a new number): the prefix moves there, what is recorded
 * as applied above it stays. */
void order_settle(struct apply_order *o, uint64_t seq);

#endif
