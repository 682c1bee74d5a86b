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

/* The requests waiting for their dependencies: a binary min-heap by dep
 * (ties in arrival order), so insertion and taking the ready ones cost
 * O(log n) however they arrive, with the mirror's budget for them: at
 * most max_count requests (the session's window) and max_bytes payload.
 * A leaf: no lock, no I/O; the node is embedded in the caller's request. */
struct wait_node {
	uint64_t dep;
	uint64_t stamp;            /* arrival order among equal deps */
	uint32_t bytes;            /* payload held */
	uint32_t at;               /* index in the heap */
};

struct wait_set {
	struct wait_node **heap;
	uint32_t n, cap;
	uint64_t bytes;            /* payload of the n waiting requests */
	uint64_t stamp;
	uint32_t max_count;
	uint64_t max_bytes;
	uint64_t steps;            /* heap moves and comparisons, for tests */
};

void wait_init(struct wait_set *w, uint32_t max_count, uint64_t max_bytes);
void wait_free(struct wait_set *w);
/* Add n: 0, -ENOBUFS when max_count requests wait already, -EMSGSIZE when
 * its bytes would pass max_bytes, -ENOMEM; the set is unchanged then. */
int wait_insert(struct wait_set *w, struct wait_node *n);
/* The waiting request with the lowest dep (the first of them to arrive)
 * if that dep is <= prefix (every seq up to it applied): taken out. */
struct wait_node *wait_take_ready(struct wait_set *w, uint64_t prefix);
void wait_remove(struct wait_set *w, struct wait_node *n);
/* Take out every node drop() says so (it may free them): O(n). */
void wait_drop_if(struct wait_set *w, bool (*drop)(struct wait_node *n, void *arg), void *arg);

#endif
