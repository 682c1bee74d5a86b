/* test_resize.c - the pure checks of an online grow (engine/lun_size.c) and
 * the size file a grow records beside the journal. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "ipmirror.h"
#include "unit_util.h"
#include "lun_size.h"

#define MIB (1ull << 20)

static char dir[256], journal[320], sizefile[330];

static int setup(void **state)
{
	(void)state;
	if (scratch_dir_make(dir, sizeof(dir), "resize") < 0)
		return -1;
	snprintf(journal, sizeof(journal), "%s/vol0.journal", dir);
	snprintf(sizefile, sizeof(sizefile), "%s.size", journal);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return scratch_dir_remove(dir);
}

static void test_grow_allowed(void **state)
{
	ipm_error err = { "" };

	(void)state;
	assert_int_equal(resize_check("vol0", 64 * MIB, 96 * MIB, "/b", 96 * MIB, &err), 0);
	/* a backing larger than asked (lvextend rounds up) */
	assert_int_equal(resize_check("vol0", 64 * MIB, 96 * MIB, "/b", 100 * MIB, &err), 0);
}

static void test_same_size_is_a_note(void **state)
{
	ipm_error err = { "" };

	(void)state;
	assert_int_equal(resize_check("vol0", 64 * MIB, 64 * MIB, "/b", 64 * MIB, &err), 1);
	assert_non_null(strstr(err.msg, "has 67108864 bytes already"));
}

static void test_refusals(void **state)
{
	ipm_error err = { "" };

	(void)state;
	check_fail(resize_check("vol0", 64 * MIB, 32 * MIB, "/b", 96 * MIB, &err), -EINVAL, &err,
		   "shrinking a LUN is not supported");
	check_fail(resize_check("vol0", 64 * MIB, 64 * MIB + 100, "/b", 96 * MIB, &err), -EINVAL,
		   &err, "not a multiple of 512");
	check_fail(resize_check("vol0", 64 * MIB, 300ull << 40, "/b", 1ull << 50, &err), -EINVAL,
		   &err, "past the largest LUN");
	/* the backing named with its size */
	check_fail(resize_check("vol0", 64 * MIB, 96 * MIB, "/srv/vol0.img", 80 * MIB, &err),
		   -EFBIG, &err, "backing /srv/vol0.img is 83886080 bytes, smaller than 100663296");
}

static void test_size_file(void **state)
{
	ipm_error err = { "" };
	uint64_t size = 0;
	int fd;

	(void)state;
	assert_int_equal(resize_recorded(journal, &size, &err), -ENOENT);
	assert_int_equal(resize_record(journal, 96 * MIB, &err), 0);
	assert_int_equal(resize_recorded(journal, &size, &err), 0);
	assert_int_equal(size, 96 * MIB);
	assert_int_equal(resize_record(journal, 128 * MIB, &err), 0);
	assert_int_equal(resize_recorded(journal, &size, &err), 0);
	assert_int_equal(size, 128 * MIB);
	/* a damaged file is an error naming it, never a size */
	fd = open(sizefile, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, 9), 1);
	close(fd);
	check_fail(resize_recorded(journal, &size, &err), -EUCLEAN, &err, "is damaged");
	assert_non_null(strstr(err.msg, sizefile));
	assert_int_equal(truncate(sizefile, 5), 0);
	check_fail(resize_recorded(journal, &size, &err), -EUCLEAN, &err, "is damaged");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grow_allowed),
		cmocka_unit_test(test_same_size_is_a_note),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test_setup_teardown(test_size_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
