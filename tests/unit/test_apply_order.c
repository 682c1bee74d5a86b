/* test_apply_order.c - the mirror's ordering record: dependencies, re-sent
 * requests, prefix advance and window limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dependencies_gate_apply),
		cmocka_unit_test(test_resent_request_is_duplicate),
		cmocka_unit_test(test_prefix_advances_over_runs),
		cmocka_unit_test(test_invalid_requests),
		cmocka_unit_test(test_wraparound_across_window),
		cmocka_unit_test(test_settle_keeps_what_lies_beyond),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
