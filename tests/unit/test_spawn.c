/* test_spawn.c - common/spawn.c: a helper's exit status and output come
 * back, a helper past its time limit is killed, one that cannot run or
 * that a signal ended says so. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "ipm_spawn.h"

static void test_status_and_output(void **state)
{
	char *argv[] = { "/bin/sh", "-c", "echo out; echo err >&2; exit 3", NULL };
	char out[64];

	(void)state;
	assert_int_equal(ipm_spawn(argv, false, 5000, out, sizeof(out)), 3);
	assert_string_equal(out, "out\nerr\n");
}

/* Output past the buffer is dropped, not a failure; found through PATH. */
static void test_output_truncated_and_path(void **state)
{
	char *argv[] = { "sh", "-c", "seq 1 10000", NULL };
	char out[8];

	(void)state;
	assert_int_equal(ipm_spawn(argv, true, 5000, out, sizeof(out)), 0);
	assert_string_equal(out, "1\n2\n3\n4");
	assert_int_equal(ipm_spawn(argv, true, 0, NULL, 0), 0);
}

static void test_killed_at_deadline(void **state)
{
	char *argv[] = { "/bin/sleep", "10", NULL };
	char out[64];
	int64_t t0 = ipm_now_ms();

	(void)state;
	assert_int_equal(ipm_spawn(argv, false, 300, out, sizeof(out)), -ETIMEDOUT);
	assert_true(ipm_now_ms() - t0 < 3000);
	t0 = ipm_now_ms();
	assert_int_equal(ipm_spawn(argv, false, 300, NULL, 0), -ETIMEDOUT);
	assert_true(ipm_now_ms() - t0 < 3000);
}

static void test_cannot_run_and_signal(void **state)
{
	char *missing[] = { "/nonexistent/helper", NULL };
	char *killed[] = { "/bin/sh", "-c", "kill -TERM $$", NULL };
	char out[128];

	(void)state;
	assert_int_equal(ipm_spawn(missing, false, 1000, out, sizeof(out)), -ENOENT);
	assert_non_null(strstr(out, "cannot run /nonexistent/helper"));
	assert_int_equal(ipm_spawn(killed, false, 5000, out, sizeof(out)), -EINTR);
	assert_int_equal(ipm_spawn(killed, false, 0, NULL, 0), -EINTR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_and_output),
		cmocka_unit_test(test_output_truncated_and_path),
		cmocka_unit_test(test_killed_at_deadline),
		cmocka_unit_test(test_cannot_run_and_signal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
