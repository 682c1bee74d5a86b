/* test_extent_scan.c - holes and zero buffers: a sparse file with data at
 * known places, and buffers with one non-zero byte at every position. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "ipmirror.h"
#include "extent_scan.h"
#include "unit_util.h"

#define MiB (1ull << 20)

/* 1 TiB sparse file, 64 KiB of data at 100 MiB and 4 KiB at 1 TiB - 4 KiB */
static void test_holes(void **state)
{
	const uint64_t size = 1ull << 40;
	char dir[256], path[300], buf[65536];
	int fd;

	(void)state;
	assert_int_equal(scratch_dir_make(dir, sizeof(dir), "scan"), 0);
	snprintf(path, sizeof(path), "%s/lun.img", dir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	/* all hole */
	assert_true(extent_hole_end(fd, 0, size) == size);
	assert_true(extent_hole_end(fd, 5 * MiB, 8 * MiB) == 8 * MiB);
	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 100 * MiB), (ssize_t)sizeof(buf));
	assert_int_equal(pwrite(fd, buf, 4096, size - 4096), 4096);
	assert_int_equal(fsync(fd), 0);
	/* the hole before the data ends where the data starts (a file system
	 * may round down to its block, never past the data) */
	assert_true(extent_hole_end(fd, 0, size) <= 100 * MiB);
	assert_true(extent_hole_end(fd, 0, size) >= 99 * MiB);
	/* clipped to end */
	assert_true(extent_hole_end(fd, 0, 50 * MiB) == 50 * MiB);
	/* at the data itself: no hole */
	assert_true(extent_hole_end(fd, 100 * MiB, size) == 100 * MiB);
	assert_true(extent_hole_end(fd, 100 * MiB + 4096, size) == 100 * MiB + 4096);
	/* after the first data: the hole runs to the last block */
	assert_true(extent_hole_end(fd, 101 * MiB, size) <= size - 4096);
	assert_true(extent_hole_end(fd, 101 * MiB, size) >= size - MiB);
	/* the data's end: the next hole */
	assert_true(extent_data_end(fd, 100 * MiB, size) >= 100 * MiB + sizeof(buf));
	assert_true(extent_data_end(fd, 100 * MiB, size) <= 101 * MiB);
	assert_true(extent_data_end(fd, 100 * MiB, 100 * MiB + 100) == 100 * MiB + 100);
	assert_true(extent_data_end(fd, size - 4096, size) == size);
	/* at a hole, the data ends at once */
	assert_true(extent_data_end(fd, 0, size) == 0);
	/* past the end: nothing */
	assert_true(extent_hole_end(fd, size, size) == size);
	close(fd);
	/* a descriptor that cannot seek says "data" */
	assert_true(extent_hole_end(-1, 0, size) == 0);
	assert_true(extent_data_end(-1, 0, size) == size);
	assert_int_equal(scratch_dir_remove(dir), 0);
}

static void test_zero(void **state)
{
	static unsigned char buf[3 * 4096 + 11];
	size_t i;

	(void)state;
	assert_true(extent_all_zero(buf, 0));
	assert_true(extent_all_zero(buf, sizeof(buf)));
	assert_true(extent_all_zero(buf + 3, sizeof(buf) - 3));
	for (i = 0; i < sizeof(buf); i += (i < 64 || i > sizeof(buf) - 64) ? 1 : 97) {
		buf[i] = 1;
		assert_false(extent_all_zero(buf, sizeof(buf)));
		/* unaligned starts too */
		if (i >= 1)
			assert_false(extent_all_zero(buf + 1, sizeof(buf) - 1));
		/* a range that ends before the byte is still all zero */
		assert_true(extent_all_zero(buf, i));
		buf[i] = 0;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holes),
		cmocka_unit_test(test_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
