/* test_dirty_bitmap.c - the persistent dirty-extent bitmap: runs, clipping,
 * clearing, persistence, the "never forget a dirty extent" rule, damage. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "dirty_bitmap.h"
#include "unit_util.h"

#define MIB (1ull << 20)
#define EXT ((uint32_t)MIB)
#define LUN_SIZE (10 * MIB + MIB / 2)   /* 11 extents, the last one half inside */
#define BLOCK 4096

static char dir[256];
static char path[300];

static int setup(void **state)
{
	(void)state;
	if (scratch_dir_make(dir, sizeof(dir), "bitmap") < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/vol0.journal.bitmap", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return scratch_dir_remove(dir);
}

static struct dirty_bitmap *bopen(uint64_t size, uint32_t extent)
{
	struct dirty_bitmap *b = NULL;
	ipm_error err = { "" };
	int rc = dirty_bitmap_open(path, size, extent, &b, &err);

	if (rc)
		print_error("dirty_bitmap_open: %d %s\n", rc, err.msg);
	assert_int_equal(rc, 0);
	assert_non_null(b);
	return b;
}

static void sync_ok(struct dirty_bitmap *b)
{
	ipm_error err = { "" };

	assert_int_equal(dirty_bitmap_sync(b, &err), 0);
}

static void expect_run(struct dirty_bitmap *b, uint64_t from, uint64_t off, uint64_t len)
{
	uint64_t o = 0, l = 0;

	assert_true(dirty_bitmap_next(b, from, &o, &l));
	assert_int_equal(o, off);
	assert_int_equal(l, len);
}

static void expect_none(struct dirty_bitmap *b, uint64_t from)
{
	uint64_t o, l;

	assert_false(dirty_bitmap_next(b, from, &o, &l));
}

static void flip_byte(uint64_t off)
{
	uint8_t c;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
	c ^= 0x01;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

static void test_fresh_is_clean(void **state)
{
	struct dirty_bitmap *b;
	struct stat st;

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), 0);
	expect_none(b, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 2 * BLOCK);	/* header + one block of bits */
	dirty_bitmap_close(b);
}

static void test_mark_and_runs(void **state)
{
	struct dirty_bitmap *b;

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	assert_int_equal(dirty_bitmap_mark(b, 0, 1), 0);               /* extent 0 */
	assert_int_equal(dirty_bitmap_dirty_bytes(b), MIB);
	assert_int_equal(dirty_bitmap_mark(b, MIB + MIB / 2, 2 * MIB), 0); /* 1, 2, 3 */
	assert_int_equal(dirty_bitmap_dirty_bytes(b), 4 * MIB);
	expect_run(b, 0, 0, 4 * MIB);
	/* a run is capped at 4 MiB; the next one starts where it stopped */
	dirty_bitmap_mark(b, 4 * MIB, 1);
	expect_run(b, 0, 0, DIRTY_RUN_MAX);
	expect_run(b, 4 * MIB, 4 * MIB, MIB);
	/* runs start at extent boundaries at or after from */
	expect_run(b, MIB / 2, MIB, 4 * MIB);
	expect_run(b, 2 * MIB, 2 * MIB, 3 * MIB);
	expect_none(b, 5 * MIB);
	/* a zero-length mark or one past the end does nothing */
	dirty_bitmap_mark(b, 7 * MIB, 0);
	dirty_bitmap_mark(b, LUN_SIZE, MIB);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), 5 * MIB);
	dirty_bitmap_close(b);
}

static void test_clip_at_lun_end(void **state)
{
	struct dirty_bitmap *b;

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	/* reaches past the LUN: clipped to it */
	dirty_bitmap_mark(b, 9 * MIB + 5, 100 * MIB);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), MIB + MIB / 2);
	expect_run(b, 0, 9 * MIB, MIB + MIB / 2);
	expect_none(b, LUN_SIZE);
	/* overflowing ranges are clipped too */
	dirty_bitmap_mark(b, 0, UINT64_MAX);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), LUN_SIZE);
	dirty_bitmap_close(b);
}

static void test_clear_range(void **state)
{
	struct dirty_bitmap *b;

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	dirty_bitmap_mark(b, 0, 6 * MIB);
	/* one byte clears the whole extent it touches */
	dirty_bitmap_clear_range(b, MIB + 7, 1);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), 5 * MIB);
	expect_run(b, 0, 0, MIB);
	expect_run(b, MIB, 2 * MIB, 4 * MIB);
	/* a range spanning two extents clears both */
	dirty_bitmap_clear_range(b, 3 * MIB - 1, 2);
	expect_run(b, MIB, 4 * MIB, 2 * MIB);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), 3 * MIB);
	dirty_bitmap_close(b);
}

/* The way resync.c's copy_dirty walks it. */
static void test_copy_loop(void **state)
{
	struct dirty_bitmap *b;
	uint64_t off, len, from = 0, copied = 0, want;
	unsigned runs = 0;

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	dirty_bitmap_mark(b, 0, 5 * MIB);
	dirty_bitmap_mark(b, 7 * MIB, 1);
	dirty_bitmap_mark(b, 10 * MIB, 1);
	want = dirty_bitmap_dirty_bytes(b);
	assert_int_equal(want, 6 * MIB + MIB / 2);
	while (dirty_bitmap_next(b, from, &off, &len)) {
		assert_true(off >= from);
		assert_true(len <= DIRTY_RUN_MAX);
		assert_true(off + len <= LUN_SIZE);
		dirty_bitmap_clear_range(b, off, len);
		copied += len;
		from = off + len;
		runs++;
	}
	assert_int_equal(copied, want);
	assert_int_equal(runs, 4);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), 0);
	dirty_bitmap_close(b);
}

static void test_sync_reopen(void **state)
{
	struct dirty_bitmap *b;

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	dirty_bitmap_mark(b, 2 * MIB, 1);
	dirty_bitmap_mark(b, 10 * MIB, 1);
	sync_ok(b);
	dirty_bitmap_close(b);

	b = bopen(LUN_SIZE, EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), MIB + MIB / 2);
	expect_run(b, 0, 2 * MIB, MIB);
	expect_run(b, 3 * MIB, 10 * MIB, MIB / 2);
	dirty_bitmap_close(b);
}

/* Clearing is durable only through clear_all: a crash in the middle of a
 * resync must not forget an extent whose copy was never acknowledged. */
static void test_clear_needs_clear_all(void **state)
{
	struct dirty_bitmap *b;
	ipm_error err = { "" };
	struct stat st;

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	dirty_bitmap_mark(b, 0, 3 * MIB);
	sync_ok(b);
	dirty_bitmap_clear_range(b, 0, 3 * MIB);
	dirty_bitmap_mark(b, 5 * MIB, 1);
	sync_ok(b);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), MIB);
	dirty_bitmap_close(b);

	b = bopen(LUN_SIZE, EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), 4 * MIB);
	expect_run(b, 0, 0, 3 * MIB);
	assert_int_equal(dirty_bitmap_clear_all(b, &err), 0);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), 0);
	expect_none(b, 0);
	dirty_bitmap_close(b);

	b = bopen(LUN_SIZE, EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), 0);
	expect_none(b, 0);
	dirty_bitmap_close(b);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 2 * BLOCK);
}

/* A full copy's checkpoint: the tag survives a reopen, a commit makes the
 * clears durable (host marks made meanwhile stay), a restore undoes the
 * clears not committed, clear_all drops the tag. */
static void test_tag_commit_restore(void **state)
{
	struct dirty_bitmap *b;
	ipm_error err = { "" };

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	assert_true(dirty_bitmap_tag(b) == 0);
	dirty_bitmap_mark(b, 0, LUN_SIZE);
	sync_ok(b);
	assert_int_equal(dirty_bitmap_set_tag(b, 0x1234567890abcdefull, &err), 0);
	dirty_bitmap_clear_range(b, 0, 4 * MIB);      /* copied and answered */
	assert_int_equal(dirty_bitmap_commit(b, &err), 0);
	dirty_bitmap_mark(b, 1 * MIB, 1);             /* a host write, durable */
	sync_ok(b);
	dirty_bitmap_clear_range(b, 4 * MIB, 2 * MIB); /* copied, not committed */
	assert_int_equal(dirty_bitmap_dirty_bytes(b), LUN_SIZE - 5 * MIB);
	dirty_bitmap_close(b);

	/* after a crash: the tag, the committed clears, the host mark; the
	 * uncommitted clears are dirty again */
	b = bopen(LUN_SIZE, EXT);
	assert_true(dirty_bitmap_tag(b) == 0x1234567890abcdefull);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), LUN_SIZE - 3 * MIB);
	expect_run(b, 0, 1 * MIB, MIB);
	expect_run(b, 2 * MIB, 4 * MIB, 4 * MIB);
	dirty_bitmap_clear_range(b, 4 * MIB, 4 * MIB);
	dirty_bitmap_restore(b);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), LUN_SIZE - 3 * MIB);
	assert_int_equal(dirty_bitmap_clear_all(b, &err), 0);
	dirty_bitmap_close(b);

	b = bopen(LUN_SIZE, EXT);
	assert_true(dirty_bitmap_tag(b) == 0);
	expect_none(b, 0);
	dirty_bitmap_close(b);
}

static void test_wrong_geometry(void **state)
{
	struct dirty_bitmap *b = NULL;
	ipm_error err = { "" };

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	dirty_bitmap_mark(b, 0, 1);
	sync_ok(b);
	dirty_bitmap_close(b);
	b = NULL;
	/* a smaller LUN (a shrink) is refused; a larger one grows it (below) */
	check_fail(dirty_bitmap_open(path, LUN_SIZE / 2, EXT, &b, &err), -EINVAL, &err,
		   "was written for a LUN of 11010048 bytes");
	assert_non_null(strstr(err.msg, path));
	check_fail(dirty_bitmap_open(path, LUN_SIZE, EXT / 2, &b, &err), -EINVAL, &err,
		   "1048576-byte extents");
	assert_null(b);
	/* still intact */
	b = bopen(LUN_SIZE, EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), MIB);
	dirty_bitmap_close(b);
}

/* A LUN grown online (doc/resize.md): its bitmap keeps its bits and takes
 * the new extents as dirty at an open (nothing vouches for them), or clean
 * when the grow says so; the file is rewritten in the new size. */
static void test_grow(void **state)
{
	struct dirty_bitmap *b = NULL;
	uint64_t off, len;
	ipm_error err = { "" };

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	dirty_bitmap_mark(b, 3 * MIB, 1);
	sync_ok(b);
	dirty_bitmap_close(b);
	assert_int_equal(dirty_bitmap_open(path, LUN_SIZE + 64 * MIB + 5, EXT, &b, &err), 0);
	/* the old bit, then the extent holding the old end (partial) on */
	assert_true(dirty_bitmap_next(b, 0, &off, &len));
	assert_true(off == 3 * MIB && len == MIB);
	assert_true(dirty_bitmap_next(b, 4 * MIB, &off, &len));
	assert_int_equal(off, LUN_SIZE / EXT * EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), MIB + (LUN_SIZE + 64 * MIB + 5 - off));
	dirty_bitmap_close(b);
	/* the file is in the new size now: opened again as it is */
	b = bopen(LUN_SIZE + 64 * MIB + 5, EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), MIB + (LUN_SIZE + 64 * MIB + 5 - off));
	dirty_bitmap_close(b);
	/* grown clean: only the old bits, extents 3 and 10..74 (the last one
	 * whole inside the LUN now) */
	assert_int_equal(dirty_bitmap_grow_file(path, 2 * LUN_SIZE + 128 * MIB, false, &err), 0);
	b = bopen(2 * LUN_SIZE + 128 * MIB, EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), 66 * MIB);
	assert_true(dirty_bitmap_next(b, 75 * MIB, &off, &len) == false);
	dirty_bitmap_close(b);
	/* no file: nothing to grow */
	unlink(path);
	assert_int_equal(dirty_bitmap_grow_file(path, LUN_SIZE, true, &err), 0);
	assert_int_equal(access(path, F_OK), -1);
}

/* A link planted at the bitmap's path is never followed. */
static void test_symlink_refused(void **state)
{
	struct dirty_bitmap *b = NULL;
	ipm_error err = { "" };
	char target[320];
	struct stat st;

	(void)state;
	snprintf(target, sizeof(target), "%s/victim", dir);
	close(open(target, O_WRONLY | O_CREAT, 0600));
	assert_int_equal(symlink(target, path), 0);
	check_fail(dirty_bitmap_open(path, LUN_SIZE, EXT, &b, &err), -ELOOP, &err,
		   "is a symbolic link; refusing to follow it");
	assert_non_null(strstr(err.msg, path));
	assert_null(b);
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 0); /* an empty file would have been initialised */
}

static void test_corrupt_header(void **state)
{
	struct dirty_bitmap *b = NULL;
	ipm_error err = { "" };
	struct stat st;

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	dirty_bitmap_close(b);
	b = NULL;
	flip_byte(26);	/* inside the LUN size */
	check_fail(dirty_bitmap_open(path, LUN_SIZE, EXT, &b, &err), -EUCLEAN, &err,
		   "header is corrupt");
	assert_non_null(strstr(err.msg, path));
	flip_byte(26);
	flip_byte(0);	/* magic */
	check_fail(dirty_bitmap_open(path, LUN_SIZE, EXT, &b, &err), -EINVAL, &err,
		   "not an ipmirror dirty bitmap");
	assert_null(b);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 2 * BLOCK);	/* not overwritten */
}

/* Bits the file cannot vouch for are taken as dirty. */
static void test_corrupt_bits_all_dirty(void **state)
{
	struct dirty_bitmap *b;

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	dirty_bitmap_mark(b, 3 * MIB, 1);
	sync_ok(b);
	dirty_bitmap_close(b);
	flip_byte(BLOCK + 100);	/* a bit area byte no mark touched */
	b = bopen(LUN_SIZE, EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), LUN_SIZE);
	/* the next sync writes the block back intact, still all dirty */
	sync_ok(b);
	dirty_bitmap_close(b);
	b = bopen(LUN_SIZE, EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), LUN_SIZE);
	dirty_bitmap_close(b);
}

static void test_truncated_file_all_dirty(void **state)
{
	struct dirty_bitmap *b;

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	dirty_bitmap_close(b);
	assert_int_equal(truncate(path, BLOCK + 100), 0);
	b = bopen(LUN_SIZE, EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), LUN_SIZE);
	dirty_bitmap_close(b);
}

/* With several blocks, damage costs only the extents of the bad block. */
static void test_corrupt_block_is_local(void **state)
{
	/* 4 KiB extents: one block holds 511 * 64 = 32704 of them */
	uint64_t per_block = 511 * 64, size = 3 * per_block * 4096;
	struct dirty_bitmap *b;

	(void)state;
	b = bopen(size, 4096);
	dirty_bitmap_mark(b, 4096 * 5, 4096);                 /* block 0 */
	dirty_bitmap_mark(b, 4096 * (2 * per_block + 9), 1);   /* block 2 */
	sync_ok(b);
	dirty_bitmap_close(b);
	flip_byte(BLOCK + BLOCK + 2000);	/* block 1 */
	b = bopen(size, 4096);
	assert_int_equal(dirty_bitmap_dirty_bytes(b), (per_block + 2) * 4096);
	expect_run(b, 0, 4096 * 5, 4096);
	expect_run(b, 4096 * 6, per_block * 4096, DIRTY_RUN_MAX);
	expect_run(b, 2 * per_block * 4096, 4096 * (2 * per_block + 9), 4096);
	dirty_bitmap_close(b);
}

static void test_in_use(void **state)
{
	struct dirty_bitmap *b, *b2 = NULL;
	ipm_error err = { "" };

	(void)state;
	b = bopen(LUN_SIZE, EXT);
	check_fail(dirty_bitmap_open(path, LUN_SIZE, EXT, &b2, &err), -EBUSY, &err, "in use");
	assert_null(b2);
	dirty_bitmap_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fresh_is_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mark_and_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clip_at_lun_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clear_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clear_needs_clear_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tag_commit_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_geometry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_bits_all_dirty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_file_all_dirty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_block_is_local, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
