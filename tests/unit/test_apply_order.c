/* test_apply_order.c - the mirror's ordering record: dependencies, re-sent
 * requests, prefix advance and window limits; the set of requests waiting
 * for their dependencies: order, budget, cost. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "apply_order.h"

static void test_dependencies_gate_apply(void **state)
{
	struct apply_order o;

	order_reset(&o, 1, 0);
	assert_int_equal(order_admit(&o, 1, 0), ORDER_APPLY);
	/* 3 depends on 2 which has not arrived: hold it */
	assert_int_equal(order_admit(&o, 3, 2), ORDER_WAIT);
	/* 2 depends only on 0: independent of 1, may run concurrently */
	assert_int_equal(order_admit(&o, 2, 0), ORDER_APPLY);
	order_mark_applied(&o, 2);
	assert_false(order_ready(&o, 2)); /* 1 still missing */
	order_mark_applied(&o, 1);
	assert_true(order_ready(&o, 2));
	assert_int_equal(o.prefix, 2);
}

static void test_resent_request_is_duplicate(void **state)
{
	struct apply_order o;

	order_reset(&o, 7, 100);
	assert_int_equal(order_admit(&o, 100, 99), ORDER_DUPLICATE);
	assert_int_equal(order_admit(&o, 105, 100), ORDER_APPLY);
	order_mark_applied(&o, 105);
	/* applied above the prefix: a re-sent copy must not be applied again */
	assert_int_equal(order_admit(&o, 105, 100), ORDER_DUPLICATE);
	assert_true(order_is_applied(&o, 105));
	assert_false(order_is_applied(&o, 104));
	assert_int_equal(o.prefix, 100);
}

static void test_prefix_advances_over_runs(void **state)
{
	struct apply_order o;
	uint64_t s;

	order_reset(&o, 1, 0);
	for (s = 10; s >= 2; s--)
		order_mark_applied(&o, s);
	assert_int_equal(o.prefix, 0);
	order_mark_applied(&o, 1);
	assert_int_equal(o.prefix, 10);
	/* the bits behind the prefix were cleared for reuse */
	order_mark_applied(&o, 10 + WIRE_MAX_WINDOW);
	assert_int_equal(o.prefix, 10);
	assert_false(order_is_applied(&o, 11));
}

static void test_invalid_requests(void **state)
{
	struct apply_order o;

	order_reset(&o, 1, 0);
	assert_int_equal(order_admit(&o, 5, 5), ORDER_INVALID);    /* dep not before */
	assert_int_equal(order_admit(&o, 5, 9), ORDER_INVALID);
	assert_int_equal(order_admit(&o, 0, 0), ORDER_INVALID);
	assert_int_equal(order_admit(&o, WIRE_MAX_WINDOW + 1, 0), ORDER_INVALID);
	assert_int_equal(order_admit(&o, WIRE_MAX_WINDOW, 0), ORDER_APPLY);
}

static void test_wraparound_across_window(void **state)
{
	struct apply_order o;
	uint64_t s;

	order_reset(&o, 1, 0);
	for (s = 1; s <= 3 * WIRE_MAX_WINDOW; s++) {
		assert_int_equal(order_admit(&o, s, s - 1), ORDER_APPLY);
		order_mark_applied(&o, s);
	}
	assert_int_equal(o.prefix, 3 * WIRE_MAX_WINDOW);
	assert_int_equal(order_admit(&o, 3 * WIRE_MAX_WINDOW + 2, 3 * WIRE_MAX_WINDOW + 1),
			 ORDER_WAIT);
}

/* a late connection of the same session says "settled up to 20": what is
 * recorded as applied above 20 stays, the prefix joins it, waiting
 * requests beyond 20 keep their place */
static void test_settle_keeps_what_lies_beyond(void **state)
{
	struct apply_order o;

	order_reset(&o, 1, 10);
	order_mark_applied(&o, 21);
	order_mark_applied(&o, 23);
	order_settle(&o, 20);
	assert_int_equal(o.prefix, 21);
	assert_true(order_is_applied(&o, 23));
	assert_false(order_is_applied(&o, 22));
	assert_int_equal(order_admit(&o, 24, 22), ORDER_WAIT);
	assert_int_equal(order_admit(&o, 22, 21), ORDER_APPLY);
	/* a stale, lower base changes nothing */
	order_settle(&o, 5);
	assert_int_equal(o.prefix, 21);
	/* a jump over a whole window: nothing above it can be recorded yet */
	order_settle(&o, 21 + 2 * WIRE_MAX_WINDOW);
	assert_int_equal(o.prefix, 21 + 2 * WIRE_MAX_WINDOW);
	assert_false(order_is_applied(&o, 22 + 2 * WIRE_MAX_WINDOW));
	assert_int_equal(order_admit(&o, 23 + 2 * WIRE_MAX_WINDOW, 22 + 2 * WIRE_MAX_WINDOW),
			 ORDER_WAIT);
}

/* ---- the waiting set ---------------------------------------------------- */

/* lowest dep first, equal deps in the order they arrived; nothing is taken
 * before its dep is applied */
static void test_wait_order(void **state)
{
	static const uint64_t deps[] = { 5, 3, 3, 7, 1, 3 };
	static const unsigned want[] = { 4, 1, 2, 5, 0, 3 };
	struct wait_node n[6];
	struct wait_set w;
	unsigned i;

	wait_init(&w, 16, 1 << 20);
	for (i = 0; i < 6; i++) {
		n[i] = (struct wait_node){ .dep = deps[i], .bytes = 512 };
		assert_int_equal(wait_insert(&w, &n[i]), 0);
	}
	assert_true(wait_take_ready(&w, 0) == NULL);
	assert_true(wait_take_ready(&w, 1) == &n[4]);
	assert_true(wait_take_ready(&w, 2) == NULL);
	for (i = 1; i < 6; i++)
		assert_true(wait_take_ready(&w, 100) == &n[want[i]]);
	assert_true(wait_take_ready(&w, 100) == NULL);
	assert_int_equal(w.n, 0);
	assert_true(w.bytes == 0);
	wait_free(&w);
}

/* the count (the session's window) and the bytes are both a hard limit; a
 * refused insert changes nothing, and taking makes room again */
static void test_wait_budget(void **state)
{
	struct wait_node n[5];
	struct wait_set w;
	unsigned i;

	wait_init(&w, 3, 100);
	for (i = 0; i < 3; i++) {
		n[i] = (struct wait_node){ .dep = 10 + i, .bytes = 20 };
		assert_int_equal(wait_insert(&w, &n[i]), 0);
	}
	n[3] = (struct wait_node){ .dep = 1, .bytes = 0 };
	assert_int_equal(wait_insert(&w, &n[3]), -ENOBUFS);
	assert_int_equal(w.n, 3);
	assert_true(w.bytes == 60);
	assert_true(wait_take_ready(&w, 10) == &n[0]);
	n[3].bytes = 61;	/* 40 + 61 > 100 */
	assert_int_equal(wait_insert(&w, &n[3]), -EMSGSIZE);
	assert_int_equal(w.n, 2);
	assert_true(w.bytes == 40);
	n[3].bytes = 60;	/* exactly the budget */
	assert_int_equal(wait_insert(&w, &n[3]), 0);
	assert_true(w.bytes == 100);
	n[4] = (struct wait_node){ .dep = 1, .bytes = 1 };
	assert_int_equal(wait_insert(&w, &n[4]), -ENOBUFS);
	/* the one just admitted comes first: lowest dep */
	assert_true(wait_take_ready(&w, 100) == &n[3]);
	wait_free(&w);
}

static unsigned log2_ceil(unsigned n)
{
	unsigned l = 0;

	while ((1u << l) < n)
		l++;
	return l;
}

/* A full window arriving in the worst order for a sorted list (each dep
 * lower than all before) costs O(n log n) steps, not n * n / 2; so does
 * taking them all, and removing from the middle keeps the order. */
static void test_wait_not_quadratic(void **state)
{
	const unsigned n = WIRE_MAX_WINDOW, lg = log2_ceil(n);
	struct wait_node *v = calloc(n, sizeof(*v));
	struct wait_set w;
	uint64_t last = 0;
	unsigned i;

	assert_non_null(v);
	wait_init(&w, n, WIRE_MAX_INFLIGHT_BYTES);
	for (i = 0; i < n; i++) {
		v[i] = (struct wait_node){ .dep = n - i, .bytes = 4096 };
		assert_int_equal(wait_insert(&w, &v[i]), 0);
	}
	print_message("%u inserts: %llu steps (a sorted list: %llu)\n", n,
		      (unsigned long long)w.steps, (unsigned long long)n * (n - 1) / 2);
	assert_true(w.steps <= (uint64_t)n * lg);
	for (i = 0; i < n; i += 2)
		wait_remove(&w, &v[i]);
	assert_int_equal(w.n, n / 2);
	assert_true(w.bytes == (uint64_t)n / 2 * 4096);
	w.steps = 0;
	for (i = 0; i < n / 2; i++) {
		struct wait_node *t = wait_take_ready(&w, UINT64_MAX);

		assert_non_null(t);
		assert_true(t->dep > last);
		last = t->dep;
	}
	assert_true(w.steps <= (uint64_t)n / 2 * 2 * lg);
	assert_true(wait_take_ready(&w, UINT64_MAX) == NULL);
	wait_free(&w);
	free(v);
}

static bool drop_odd(struct wait_node *n, void *arg)
{
	(*(unsigned *)arg)++;
	return n->dep % 2;
}

/* dropping (a settled prefix, a forgotten session) keeps the rest in order */
static void test_wait_drop_if(void **state)
{
	struct wait_node v[100];
	struct wait_set w;
	unsigned i, calls = 0;
	uint64_t last = 0;

	wait_init(&w, 100, 1 << 20);
	for (i = 0; i < 100; i++) {
		v[i] = (struct wait_node){ .dep = (i * 37) % 100 + 1, .bytes = 1 };
		assert_int_equal(wait_insert(&w, &v[i]), 0);
	}
	wait_drop_if(&w, drop_odd, &calls);
	assert_int_equal(calls, 100);
	assert_int_equal(w.n, 50);
	assert_true(w.bytes == 50);
	for (i = 0; i < 50; i++) {
		struct wait_node *t = wait_take_ready(&w, UINT64_MAX);

		assert_non_null(t);
		assert_int_equal(t->dep % 2, 0);
		assert_true(t->dep > last);
		last = t->dep;
	}
	wait_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dependencies_gate_apply),
		cmocka_unit_test(test_resent_request_is_duplicate),
		cmocka_unit_test(test_prefix_advances_over_runs),
		cmocka_unit_test(test_invalid_requests),
		cmocka_unit_test(test_wraparound_across_window),
		cmocka_unit_test(test_settle_keeps_what_lies_beyond),
		cmocka_unit_test(test_wait_order),
		cmocka_unit_test(test_wait_budget),
		cmocka_unit_test(test_wait_not_quadratic),
		cmocka_unit_test(test_wait_drop_if),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
