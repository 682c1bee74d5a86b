/* test_connection_array.c - status, refresh, aging and waiting. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "connection_array.h"

static void test_up_down_and_release(void **state)
{
	struct connection_array ca;
	ipm_conn_status s[4];

	assert_int_equal(ca_init(&ca, 4), 0);
	assert_int_equal(ca_count_up(&ca), 0);
	ca_set_up(&ca, 1, 10);
	ca_set_up(&ca, 2, 11);
	assert_int_equal(ca_count_up(&ca), 2);
	/* a stale owner must not mark down a newer connection on its index */
	ca_release(&ca, 1, 99);
	assert_int_equal(ca_status(&ca, 1), IPM_LINK_UP);
	ca_release(&ca, 1, 10);
	assert_int_equal(ca_status(&ca, 1), IPM_LINK_DOWN);
	ca_snapshot(&ca, s, true);
	assert_int_equal(s[2].status, IPM_LINK_UP);
	assert_int_equal(s[0].age_ms, -1);
	assert_true(s[3].outgoing);
	ca_destroy(&ca);
	assert_int_equal(ca_init(&ca, 0), -22);
	assert_int_equal(ca_init(&ca, IPM_CONN_MAX + 1), -22);
}

static void test_stale_elements_marked_down(void **state)
{
	struct connection_array ca;

	ca_init(&ca, 3);
	ca_set_up(&ca, 0, 5);
	ca_set_up(&ca, 1, 6);
	ca.e[0].timestamp_ms -= 5000; /* last refreshed 5 s ago */
	assert_int_equal(ca_mark_stale_down(&ca, 4000), 1);
	assert_int_equal(ca_status(&ca, 0), IPM_LINK_DOWN);
	assert_int_equal(ca_status(&ca, 1), IPM_LINK_UP);
	/* a refresh of every element keeps them alive */
	ca.e[1].timestamp_ms -= 5000;
	ca_refresh_all(&ca);
	assert_int_equal(ca_mark_stale_down(&ca, 4000), 0);
	ca_destroy(&ca);
}

/* During probation a heartbeat refreshes the connections that came up in
 * it, not those from before it nor a down one. */
static void test_refresh_since(void **state)
{
	struct connection_array ca;
	int64_t since;

	ca_init(&ca, 3);
	ca_set_up(&ca, 0, 5);                 /* before the probation */
	ca.e[0].up_ms -= 5000;
	ca.e[0].timestamp_ms -= 5000;
	since = ipm_now_ms() - 1000;          /* the probation began 1 s ago */
	ca_set_up(&ca, 1, 6);                 /* opened in it: starts fresh */
	ca.e[1].timestamp_ms -= 5000;         /* no refresh for 5 s */
	ca_set_up(&ca, 2, 7);
	ca_set_down(&ca, 2);
	ca.e[2].timestamp_ms -= 5000;
	ca_refresh_since(&ca, since);
	assert_int_equal(ca_mark_stale_down(&ca, 4000), 1);
	assert_int_equal(ca_status(&ca, 0), IPM_LINK_DOWN);
	assert_int_equal(ca_status(&ca, 1), IPM_LINK_UP);
	assert_int_equal(ca_status(&ca, 2), IPM_LINK_DOWN);
	assert_true(ipm_now_ms() - ca.e[2].timestamp_ms >= 5000); /* untouched */
	/* up again: the new connection counts from now */
	ca_set_up(&ca, 0, 8);
	assert_true(ca.e[0].up_ms >= since);
	ca.e[0].timestamp_ms -= 5000;
	ca_refresh_since(&ca, since);
	assert_int_equal(ca_mark_stale_down(&ca, 4000), 0);
	ca_destroy(&ca);
}

static void *mark_down_later(void *arg)
{
	usleep(100000);
	ca_set_down(arg, 0);
	return NULL;
}

static void test_wait_change(void **state)
{
	struct connection_array ca;
	pthread_t t;
	int64_t t0;

	ca_init(&ca, 1);
	ca_set_up(&ca, 0, 3);
	t0 = ipm_now_ms();
	assert_int_equal(ca_wait_change(&ca, 0, IPM_LINK_UP, 50), IPM_LINK_UP);
	assert_true(ipm_now_ms() - t0 >= 50);
	pthread_create(&t, NULL, mark_down_later, &ca);
	assert_int_equal(ca_wait_change(&ca, 0, IPM_LINK_UP, 5000), IPM_LINK_DOWN);
	pthread_join(t, NULL);
	ca_destroy(&ca);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_up_down_and_release),
		cmocka_unit_test(test_stale_elements_marked_down),
		cmocka_unit_test(test_refresh_since),
		cmocka_unit_test(test_wait_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
