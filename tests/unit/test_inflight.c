/* test_inflight.c - the primary's room in flight: its window of requests and
 * WIRE_MAX_INFLIGHT_BYTES of their payload, the bound the mirror holds it
 * to (doc/wire.md, "The mirror's budget"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "replicator_int.h"

static void test_window_counts_requests(void **state)
{
	struct replicator r = { .window = 4 };

	r.inflight = 3;
	assert_false(window_full_locked(&r, 4096));
	r.inflight = 4;
	assert_true(window_full_locked(&r, 0));
}

/* bytes up to the budget fit, one more does not; with nothing in flight
 * any request fits, or the largest could never go */
static void test_window_counts_bytes(void **state)
{
	struct replicator r = { .window = 1024, .inflight = 31 };

	r.inflight_bytes = WIRE_MAX_INFLIGHT_BYTES - WIRE_MAX_PAYLOAD;
	assert_false(window_full_locked(&r, WIRE_MAX_PAYLOAD));
	assert_true(window_full_locked(&r, WIRE_MAX_PAYLOAD + 1));
	r.inflight_bytes = WIRE_MAX_INFLIGHT_BYTES;
	assert_false(window_full_locked(&r, 0));  /* a FLUSH or TRIM still goes */
	assert_true(window_full_locked(&r, 1));
	r.inflight = 0;
	r.inflight_bytes = 0;
	assert_false(window_full_locked(&r, WIRE_MAX_PAYLOAD));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_counts_requests),
		cmocka_unit_test(test_window_counts_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
