/* test_journal.c - the persistent journal: round trip, persistence, limits,
 * torn tails, mid-file corruption, header checks, appends during iteration,
 * group commit. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "journal.h"
#include "unit_util.h"
#include "wire.h"

#define LUN "vol0"
#define LUN_SIZE (64ull << 20)
#define BIG (1ull << 30)
#define HDR 128
#define REC 40

static char dir[256];
static char path[300];

static int setup(void **state)
{
	(void)state;
	if (scratch_dir_make(dir, sizeof(dir), "journal") < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/vol0.journal", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return scratch_dir_remove(dir);
}

static uint64_t file_size(void)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static uint8_t *file_read(size_t *len)
{
	uint8_t *buf;
	FILE *f = fopen(path, "rb");

	assert_non_null(f);
	*len = (size_t)file_size();
	buf = malloc(*len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, *len, f), *len);
	fclose(f);
	return buf;
}

static void file_pwrite(const void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0600);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void flip_byte(uint64_t off)
{
	uint8_t c;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

static struct journal *jopen(uint64_t max, uint64_t *dropped)
{
	struct journal *j = NULL;
	ipm_error err = { "" };
	uint64_t d = 0;
	int rc = journal_open(path, LUN, LUN_SIZE, max, &j, &d, &err);

	if (rc)
		print_error("journal_open: %d %s\n", rc, err.msg);
	assert_int_equal(rc, 0);
	assert_non_null(j);
	if (dropped)
		*dropped = d;
	return j;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

/* Append a WRITE of len bytes filled from seed; returns its seq. */
static uint64_t put_write(struct journal *j, uint64_t off, size_t len, unsigned seed)
{
	uint8_t *buf = malloc(len ? len : 1);
	struct journal_rec r = { .type = JR_WRITE, .offset = off, .length = len, .data = buf };
	ipm_error err = { "" };

	assert_non_null(buf);
	fill(buf, len, seed);
	assert_int_equal(journal_append(j, &r, &err), 0);
	free(buf);
	return r.seq;
}

static void expect_write(struct journal_iter *it, uint64_t seq, uint64_t off, size_t len,
			 unsigned seed)
{
	struct journal_rec r;
	ipm_error err = { "" };
	uint8_t *want = malloc(len ? len : 1);

	assert_non_null(want);
	fill(want, len, seed);
	assert_int_equal(journal_iter_next(it, &r, &err), 1);
	assert_int_equal(r.seq, seq);
	assert_int_equal(r.type, JR_WRITE);
	assert_int_equal(r.offset, off);
	assert_int_equal(r.length, len);
	assert_non_null(r.data);
	assert_memory_equal(r.data, want, len);
	free(want);
}

static void expect_end(struct journal_iter *it)
{
	struct journal_rec r;
	ipm_error err = { "" };

	assert_int_equal(journal_iter_next(it, &r, &err), 0);
}

static struct journal_iter *iter(struct journal *j)
{
	struct journal_iter *it = NULL;
	ipm_error err = { "" };

	assert_int_equal(journal_iter_open(j, &it, &err), 0);
	assert_non_null(it);
	return it;
}

/* ---- round trip ------------------------------------------------------------ */

static void append_mixed(struct journal *j)
{
	struct journal_rec r;
	ipm_error err = { "" };

	assert_int_equal(put_write(j, 4096, 4096, 1), 1);
	r = (struct journal_rec){ .type = JR_TRIM, .offset = 1 << 20, .length = 8 << 20 };
	assert_int_equal(journal_append(j, &r, &err), 0);
	assert_int_equal(r.seq, 2);
	r = (struct journal_rec){ .type = JR_ZERO, .flags = WIRE_F_FUA, .offset = 0,
				  .length = LUN_SIZE };
	assert_int_equal(journal_append(j, &r, &err), 0);
	assert_int_equal(r.seq, 3);
	assert_int_equal(put_write(j, LUN_SIZE - 13, 13, 2), 4);   /* unaligned length */
	r = (struct journal_rec){ .type = JR_FLUSH };
	assert_int_equal(journal_append(j, &r, &err), 0);
	assert_int_equal(r.seq, 5);
}

static void expect_mixed(struct journal *j)
{
	struct journal_iter *it = iter(j);
	struct journal_rec r;
	ipm_error err = { "" };

	assert_int_equal(journal_iter_offset(it), 0);
	expect_write(it, 1, 4096, 4096, 1);
	assert_int_equal(journal_iter_offset(it), REC + 4096);
	assert_int_equal(journal_iter_next(it, &r, &err), 1);
	assert_int_equal(r.seq, 2);
	assert_int_equal(r.type, JR_TRIM);
	assert_int_equal(r.offset, 1 << 20);
	assert_int_equal(r.length, 8 << 20);
	assert_null(r.data);
	assert_int_equal(journal_iter_next(it, &r, &err), 1);
	assert_int_equal(r.seq, 3);
	assert_int_equal(r.type, JR_ZERO);
	assert_int_equal(r.flags, WIRE_F_FUA);
	assert_int_equal(r.length, LUN_SIZE);
	expect_write(it, 4, LUN_SIZE - 13, 13, 2);
	assert_int_equal(journal_iter_next(it, &r, &err), 1);
	assert_int_equal(r.seq, 5);
	assert_int_equal(r.type, JR_FLUSH);
	assert_int_equal(r.flags, 0);
	expect_end(it);
	assert_int_equal(journal_iter_offset(it), journal_bytes(j));
	journal_iter_close(it);
}

static void test_round_trip(void **state)
{
	struct journal *j;

	(void)state;
	j = jopen(BIG, NULL);
	assert_int_equal(journal_records(j), 0);
	assert_int_equal(journal_bytes(j), 0);
	assert_int_equal(file_size(), HDR);
	append_mixed(j);
	assert_int_equal(journal_records(j), 5);
	assert_int_equal(journal_bytes(j), 5 * REC + 4096 + 16);
	assert_int_equal(file_size(), HDR + journal_bytes(j));
	expect_mixed(j);
	journal_close(j);
}

static void test_reopen_keeps_records(void **state)
{
	struct journal *j;
	ipm_error err = { "" };
	uint64_t dropped = 99, id;

	(void)state;
	j = jopen(BIG, NULL);
	append_mixed(j);
	assert_int_equal(journal_sync(j, &err), 0);
	id = journal_id(j);
	journal_close(j);

	j = jopen(BIG, &dropped);
	assert_int_equal(dropped, 0);
	assert_int_equal(journal_records(j), 5);
	assert_int_equal(journal_bytes(j), 5 * REC + 4096 + 16);
	assert_int_equal(journal_id(j), id);
	expect_mixed(j);
	/* seq continues after the reopen */
	assert_int_equal(put_write(j, 0, 512, 3), 6);
	journal_close(j);

	j = jopen(BIG, NULL);
	assert_int_equal(journal_records(j), 6);
	journal_close(j);
}

static void test_in_use(void **state)
{
	struct journal *j, *j2 = NULL;
	ipm_error err = { "" };

	(void)state;
	j = jopen(BIG, NULL);
	check_fail(journal_open(path, LUN, LUN_SIZE, BIG, &j2, NULL, &err), -EBUSY, &err,
		   "in use");
	assert_null(j2);
	journal_close(j);
}

static void test_invalid_request(void **state)
{
	struct journal *j;
	struct journal_rec r = { .type = JR_TRIM, .offset = LUN_SIZE - 512, .length = 1024 };
	ipm_error err = { "" };

	(void)state;
	j = jopen(BIG, NULL);
	check_fail(journal_append(j, &r, &err), -EINVAL, &err, "invalid request");
	r = (struct journal_rec){ .type = WIRE_ACK };
	check_fail(journal_append(j, &r, &err), -EINVAL, &err, "invalid request");
	assert_int_equal(journal_records(j), 0);
	assert_int_equal(file_size(), HDR);
	journal_close(j);
}

/* ---- limits and reset ---------------------------------------------------- */

static void test_enospc(void **state)
{
	uint64_t max = HDR + 2 * (REC + 4096) + REC;
	struct journal_rec r = { .type = JR_TRIM, .offset = 0, .length = 4096 };
	struct journal *j;
	ipm_error err = { "" };
	uint8_t buf[4096] = { 0 };
	struct journal_rec w = { .type = JR_WRITE, .length = sizeof(buf), .data = buf };

	(void)state;
	j = jopen(max, NULL);
	assert_int_equal(put_write(j, 0, 4096, 1), 1);
	assert_int_equal(put_write(j, 4096, 4096, 2), 2);
	check_fail(journal_append(j, &w, &err), -ENOSPC, &err, "full");
	assert_int_equal(journal_records(j), 2);
	assert_int_equal(file_size(), HDR + 2 * (REC + 4096));
	/* a smaller record still fits exactly, and takes the next seq */
	assert_int_equal(journal_append(j, &r, &err), 0);
	assert_int_equal(r.seq, 3);
	assert_int_equal(file_size(), max);
	check_fail(journal_append(j, &r, &err), -ENOSPC, &err, "full");
	assert_int_equal(journal_records(j), 3);
	journal_close(j);

	j = jopen(max, NULL);
	assert_int_equal(journal_records(j), 3);
	check_fail(journal_append(j, &r, &err), -ENOSPC, &err, "full");
	journal_close(j);
}

static void test_reset(void **state)
{
	struct journal *j;
	struct journal_iter *it;
	ipm_error err = { "" };

	(void)state;
	j = jopen(BIG, NULL);
	put_write(j, 0, 4096, 1);
	put_write(j, 8192, 4096, 2);
	assert_int_equal(journal_reset(j, &err), 0);
	assert_int_equal(journal_records(j), 0);
	assert_int_equal(journal_bytes(j), 0);
	assert_int_equal(file_size(), HDR);
	it = iter(j);
	expect_end(it);
	journal_iter_close(it);
	/* numbering starts over */
	assert_int_equal(put_write(j, 4096, 100, 7), 1);
	journal_close(j);

	j = jopen(BIG, NULL);
	assert_int_equal(journal_records(j), 1);
	it = iter(j);
	expect_write(it, 1, 4096, 100, 7);
	expect_end(it);
	journal_iter_close(it);
	journal_close(j);
}

/* ---- crashes and damage -------------------------------------------------- */

/* Three 4 KiB writes, closed. */
static void three_writes(void)
{
	struct journal *j = jopen(BIG, NULL);

	put_write(j, 0, 4096, 1);
	put_write(j, 4096, 4096, 2);
	put_write(j, 8192, 4096, 3);
	journal_close(j);
	assert_int_equal(file_size(), HDR + 3 * (REC + 4096));
}

static void expect_first_two(uint64_t cut_at, uint64_t dropped_want)
{
	struct journal_iter *it;
	struct journal *j;
	uint64_t dropped = 0;

	j = jopen(BIG, &dropped);
	assert_int_equal(dropped, dropped_want);
	assert_int_equal(journal_records(j), 2);
	assert_int_equal(file_size(), cut_at);
	it = iter(j);
	expect_write(it, 1, 0, 4096, 1);
	expect_write(it, 2, 4096, 4096, 2);
	expect_end(it);
	journal_iter_close(it);
	/* appends go on from the cut */
	assert_int_equal(put_write(j, 8192, 4096, 9), 3);
	journal_close(j);
	j = jopen(BIG, &dropped);
	assert_int_equal(dropped, 0);
	assert_int_equal(journal_records(j), 3);
	journal_close(j);
}

static void test_torn_tail_in_data(void **state)
{
	uint64_t good = HDR + 2 * (REC + 4096);

	(void)state;
	three_writes();
	assert_int_equal(truncate(path, (off_t)(good + REC + 1000)), 0);
	expect_first_two(good, REC + 1000);
}

static void test_torn_tail_in_header(void **state)
{
	uint64_t good = HDR + 2 * (REC + 4096);

	(void)state;
	three_writes();
	assert_int_equal(truncate(path, (off_t)(good + 20)), 0);
	expect_first_two(good, 20);
}

static void test_torn_tail_garbage(void **state)
{
	uint64_t good = HDR + 2 * (REC + 4096);
	uint8_t junk[1000];

	(void)state;
	three_writes();
	assert_int_equal(truncate(path, (off_t)good), 0);
	fill(junk, sizeof(junk), 42);
	file_pwrite(junk, sizeof(junk), good);
	expect_first_two(good, sizeof(junk));
}

static void test_torn_tail_zeros(void **state)
{
	uint64_t good = HDR + 2 * (REC + 4096);

	(void)state;
	three_writes();
	/* size extended, data never written: the last record reads as zeros */
	assert_int_equal(truncate(path, (off_t)good), 0);
	assert_int_equal(truncate(path, (off_t)(good + REC + 4096)), 0);
	expect_first_two(good, REC + 4096);
}

static void test_torn_tail_bad_last_data(void **state)
{
	uint64_t good = HDR + 2 * (REC + 4096);

	(void)state;
	three_writes();
	/* the last record complete in length, its data not what was written */
	flip_byte(good + REC + 100);
	expect_first_two(good, REC + 4096);
}

static void test_stale_record_at_tail(void **state)
{
	uint64_t good = HDR + 2 * (REC + 4096);
	uint8_t *img;
	size_t n;

	(void)state;
	three_writes();
	assert_int_equal(truncate(path, (off_t)good), 0);
	/* an intact record, but with seq 1 where seq 3 belongs */
	img = file_read(&n);
	file_pwrite(img + HDR, REC + 4096, good);
	free(img);
	expect_first_two(good, REC + 4096);
}

static void expect_mid_corruption(const char *what)
{
	struct journal *j = NULL;
	ipm_error err = { "" };
	uint8_t *before, *after;
	size_t n1, n2;
	char want[128];

	before = file_read(&n1);
	check_fail(journal_open(path, LUN, LUN_SIZE, BIG, &j, NULL, &err), -EUCLEAN, &err,
		   path);
	assert_null(j);
	snprintf(want, sizeof(want), "record 2 at byte offset %d", HDR + REC + 4096);
	check_fail(-EUCLEAN, -EUCLEAN, &err, want);
	check_fail(-EUCLEAN, -EUCLEAN, &err, what);
	/* nothing was cut: the later records are still there */
	after = file_read(&n2);
	assert_int_equal(n1, n2);
	assert_int_equal(n2, HDR + 3 * (REC + 4096));
	assert_memory_equal(before, after, n1);
	free(before);
	free(after);
}

static void test_mid_corruption_data(void **state)
{
	(void)state;
	three_writes();
	flip_byte(HDR + (REC + 4096) + REC + 7);
	expect_mid_corruption("data checksum");
}

static void test_mid_corruption_header(void **state)
{
	(void)state;
	three_writes();
	flip_byte(HDR + (REC + 4096) + 17);	/* its offset field */
	expect_mid_corruption("checksum mismatch");
}

static void test_mid_corruption_magic(void **state)
{
	(void)state;
	three_writes();
	flip_byte(HDR + (REC + 4096));
	expect_mid_corruption("magic");
}

static void test_corruption_seen_by_iterator(void **state)
{
	struct journal *j;
	struct journal_iter *it;
	struct journal_rec r;
	ipm_error err = { "" };
	char want[128];

	(void)state;
	j = jopen(BIG, NULL);
	put_write(j, 0, 4096, 1);
	put_write(j, 4096, 4096, 2);
	put_write(j, 8192, 4096, 3);
	/* the disk rots under an open journal */
	flip_byte(HDR + (REC + 4096) + REC + 4000);
	it = iter(j);
	expect_write(it, 1, 0, 4096, 1);
	check_fail(journal_iter_next(it, &r, &err), -EUCLEAN, &err, path);
	snprintf(want, sizeof(want), "record 2 at byte offset %d", HDR + REC + 4096);
	check_fail(-EUCLEAN, -EUCLEAN, &err, want);
	journal_iter_close(it);
	journal_close(j);
}

/* journal_iter_next_owned: large data in a buffer of its own (owned set),
 * small records from the read-ahead (owned NULL), padding and order kept,
 * and a large record rotten on disk is still caught. */
static void expect_owned(struct journal_iter *it, uint64_t seq, uint64_t off, size_t len,
			 unsigned seed, bool own)
{
	struct journal_rec r;
	ipm_error err = { "" };
	uint8_t *want = malloc(len ? len : 1);
	void *owned = (void *)1;

	assert_non_null(want);
	fill(want, len, seed);
	assert_int_equal(journal_iter_next_owned(it, &r, &owned, &err), 1);
	assert_int_equal(r.seq, seq);
	assert_int_equal(r.offset, off);
	assert_int_equal(r.length, len);
	assert_memory_equal(r.data, want, len);
	assert_int_equal(owned != NULL, own);
	if (owned)
		assert_ptr_equal(owned, r.data);
	free(owned);
	free(want);
}

static void test_iter_owned(void **state)
{
	struct journal *j;
	struct journal_iter *it;
	struct journal_rec r;
	ipm_error err = { "" };
	void *owned;
	uint64_t last;
	unsigned i;

	(void)state;
	j = jopen(BIG, NULL);
	put_write(j, 0, 4096, 1);
	for (i = 0; i < 4; i++)
		put_write(j, (1 + i) << 20, 1 << 20, 2 + i);
	put_write(j, 8 << 20, (256 << 10) + 3, 6);   /* padded */
	put_write(j, 9 << 20, 512, 7);
	put_write(j, 10 << 20, 1 << 20, 8);
	last = journal_bytes(j) + HDR;
	put_write(j, 12 << 20, 1 << 20, 9);
	/* the disk rots under an open journal: the last record's data */
	flip_byte(last + REC + 1000);
	it = iter(j);
	/* the first header reads 4 MiB ahead: the data inside comes from
	 * there (not owned); the data past it, and any large data after a
	 * large record (whose next header is read alone), in a buffer of
	 * its own; a small record's header reads ahead again */
	expect_owned(it, 1, 0, 4096, 1, false);
	for (i = 0; i < 3; i++)
		expect_owned(it, 2 + i, (1 + i) << 20, 1 << 20, 2 + i, false);
	expect_owned(it, 5, 4 << 20, 1 << 20, 5, true);
	expect_owned(it, 6, 8 << 20, (256 << 10) + 3, 6, true);
	expect_owned(it, 7, 9 << 20, 512, 7, false);
	expect_owned(it, 8, 10 << 20, 1 << 20, 8, false);
	check_fail(journal_iter_next_owned(it, &r, &owned, &err), -EUCLEAN, &err, "record 9");
	assert_null(owned);
	journal_iter_close(it);
	journal_close(j);
}

/* ---- header checks --------------------------------------------------------- */

static void test_wrong_lun(void **state)
{
	struct journal *j = NULL;
	ipm_error err = { "" };

	(void)state;
	three_writes();
	check_fail(journal_open(path, "vol1", LUN_SIZE, BIG, &j, NULL, &err), -EINVAL, &err,
		   "belongs to LUN \"vol0\", not \"vol1\"");
	assert_non_null(strstr(err.msg, path));
	/* a LUN shrunk since: refused; grown online (doc/resize.md): its
	 * records are all in range */
	check_fail(journal_open(path, LUN, LUN_SIZE / 2, BIG, &j, NULL, &err), -EINVAL, &err,
		   "67108864 bytes");
	assert_non_null(strstr(err.msg, path));
	assert_null(j);
	assert_int_equal(file_size(), HDR + 3 * (REC + 4096));
	j = jopen(BIG, NULL);
	assert_int_equal(journal_records(j), 3);
	journal_close(j);
	assert_int_equal(journal_open(path, LUN, LUN_SIZE * 2, BIG, &j, NULL, &err), 0);
	assert_int_equal(journal_records(j), 3);
	journal_close(j);
}

static void test_not_a_journal(void **state)
{
	struct journal *j = NULL;
	ipm_error err = { "" };
	static const char text[] = "hello, this is an ordinary file, much longer than a header "
				   "so that only the magic can tell it apart from a journal ......"
				   "..........................................................";

	(void)state;
	file_pwrite(text, sizeof(text), 0);
	check_fail(journal_open(path, LUN, LUN_SIZE, BIG, &j, NULL, &err), -EINVAL, &err,
		   "not an ipmirror journal");
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(file_size(), sizeof(text));
}

/* A link planted at the journal's path, dangling or not, is never followed. */
static void test_symlink_refused(void **state)
{
	struct journal *j = NULL;
	ipm_error err = { "" };
	char target[320];
	struct stat st;

	(void)state;
	snprintf(target, sizeof(target), "%s/victim", dir);
	assert_int_equal(symlink(target, path), 0);
	check_fail(journal_open(path, LUN, LUN_SIZE, BIG, &j, NULL, &err), -ELOOP, &err,
		   "is a symbolic link; refusing to follow it");
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(lstat(target, &st), -1); /* not created through it */
	close(open(target, O_WRONLY | O_CREAT, 0600));
	check_fail(journal_open(path, LUN, LUN_SIZE, BIG, &j, NULL, &err), -ELOOP, &err,
		   "refusing to follow it");
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 0); /* an empty file would have got a header */
	assert_null(j);
}

static void test_bad_header(void **state)
{
	struct journal *j = NULL;
	ipm_error err = { "" };
	uint8_t v2[4] = { 2, 0, 0, 0 };

	(void)state;
	three_writes();
	flip_byte(40);	/* inside the LUN name: header CRC no longer matches */
	check_fail(journal_open(path, LUN, LUN_SIZE, BIG, &j, NULL, &err), -EUCLEAN, &err,
		   "header is corrupt");
	assert_non_null(strstr(err.msg, path));
	flip_byte(40);
	file_pwrite(v2, sizeof(v2), 8);
	check_fail(journal_open(path, LUN, LUN_SIZE, BIG, &j, NULL, &err), -EINVAL, &err,
		   "version 2");
	assert_null(j);
	assert_int_equal(file_size(), HDR + 3 * (REC + 4096));
}

/* ---- appends during iteration -------------------------------------------- */

static void test_iter_sees_appends(void **state)
{
	struct journal *j;
	struct journal_iter *it;

	(void)state;
	j = jopen(BIG, NULL);
	it = iter(j);
	expect_end(it);
	put_write(j, 0, 4096, 1);
	expect_write(it, 1, 0, 4096, 1);
	expect_end(it);
	put_write(j, 4096, 300, 2);
	put_write(j, 8192, 4096, 3);
	expect_write(it, 2, 4096, 300, 2);
	assert_true(journal_iter_offset(it) < journal_bytes(j));
	expect_write(it, 3, 8192, 4096, 3);
	expect_end(it);
	assert_int_equal(journal_iter_offset(it), journal_bytes(j));
	journal_iter_close(it);
	journal_close(j);
}

#define THREAD_RECS 2000

static int appender_failures;

/* No cmocka asserts here: they must not longjmp out of another thread. */
static void *appender(void *arg)
{
	struct journal *j = arg;
	uint8_t buf[512];
	struct journal_rec r = { .type = JR_WRITE, .length = sizeof(buf), .data = buf };
	ipm_error err = { "" };
	uint64_t i;

	for (i = 0; i < THREAD_RECS; i++) {
		fill(buf, sizeof(buf), (unsigned)i);
		r.offset = (i % 1000) * 512;
		if (journal_append(j, &r, &err) < 0 || r.seq != i + 1) {
			appender_failures++;
			break;
		}
	}
	return NULL;
}

/* The resync iterates without the caller's lock while host writes append. */
static void test_iter_concurrent_appends(void **state)
{
	struct journal *j;
	struct journal_iter *it;
	struct journal_rec r;
	ipm_error err = { "" };
	uint8_t want[512];
	pthread_t t;
	uint64_t seen = 0;
	time_t deadline;
	int rc;

	(void)state;
	j = jopen(BIG, NULL);
	it = iter(j);
	assert_int_equal(pthread_create(&t, NULL, appender, j), 0);
	deadline = time(NULL) + 30;
	while (seen < THREAD_RECS && !__atomic_load_n(&appender_failures, __ATOMIC_RELAXED) &&
	       time(NULL) < deadline) {
		rc = journal_iter_next(it, &r, &err);
		if (rc < 0)
			print_error("%s\n", err.msg);
		assert_true(rc >= 0);
		if (rc == 0)
			continue;
		assert_int_equal(r.seq, seen + 1);
		fill(want, sizeof(want), (unsigned)seen);
		assert_memory_equal(r.data, want, sizeof(want));
		seen++;
	}
	pthread_join(t, NULL);
	assert_int_equal(appender_failures, 0);
	assert_int_equal(seen, THREAD_RECS);
	expect_end(it);
	journal_iter_close(it);
	journal_close(j);
}

/* ---- group commit ------------------------------------------------------ */

/* This program's fdatasync (the journal's calls come here): it counts,
 * notes what the journal had appended when it began (all an fdatasync can
 * cover), lets others pile up meanwhile, and fails on request. */
static struct journal *sync_j;
static unsigned syncs, sync_fail_next;
static uint64_t sync_covered;  /* appended bytes covered by a successful one */
static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER;

int fdatasync(int fd)
{
	uint64_t at = sync_j ? journal_mark(sync_j) : 0;
	bool fail;

	pthread_mutex_lock(&sync_mu);
	syncs++;
	fail = sync_fail_next && sync_j;
	sync_fail_next = 0;
	pthread_mutex_unlock(&sync_mu);
	if (sync_j)
		usleep(2000);
	if (fail) {
		errno = EIO;
		return -1;
	}
	if (syscall(SYS_fdatasync, fd) < 0)
		return -1;
	pthread_mutex_lock(&sync_mu);
	if (at > sync_covered)
		sync_covered = at;
	pthread_mutex_unlock(&sync_mu);
	return 0;
}

#define GC_THREADS 8
#define GC_RECS 25
static pthread_mutex_t gc_append = PTHREAD_MUTEX_INITIALIZER; /* the caller's serialisation */
static int gc_failures;

/* A host thread: append a FUA write (serialised), then sync it with the
 * lock dropped; back, a successful fdatasync must have covered it. */
static void *gc_writer(void *arg)
{
	uint8_t data[4096];
	ipm_error err = { "" };
	uint64_t mark, covered;
	unsigned i, t = (unsigned)(uintptr_t)arg;

	for (i = 0; i < GC_RECS; i++) {
		struct journal_rec r = { .type = JR_WRITE, .flags = WIRE_F_FUA,
					 .offset = (uint64_t)(t * GC_RECS + i) * 4096,
					 .length = sizeof(data), .data = data };

		fill(data, sizeof(data), t * GC_RECS + i);
		pthread_mutex_lock(&gc_append);
		if (journal_append(sync_j, &r, &err) < 0)
			__atomic_add_fetch(&gc_failures, 1, __ATOMIC_RELAXED);
		mark = journal_mark(sync_j);
		pthread_mutex_unlock(&gc_append);
		if (journal_sync_to(sync_j, mark, &err) < 0)
			__atomic_add_fetch(&gc_failures, 1, __ATOMIC_RELAXED);
		pthread_mutex_lock(&sync_mu);
		covered = sync_covered;
		pthread_mutex_unlock(&sync_mu);
		if (covered < mark)
			__atomic_add_fetch(&gc_failures, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* Concurrent FUA writers share fdatasyncs, and none returns before one
 * that began after its append succeeded. */
static void test_group_commit(void **state)
{
	pthread_t t[GC_THREADS];
	unsigned i;

	(void)state;
	sync_j = jopen(BIG, NULL);
	syncs = 0;
	sync_covered = journal_mark(sync_j);
	for (i = 0; i < GC_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, gc_writer, (void *)(uintptr_t)i), 0);
	for (i = 0; i < GC_THREADS; i++)
		pthread_join(t[i], NULL);
	print_message("group commit: %u fdatasyncs for %u FUA records\n", syncs,
		      GC_THREADS * GC_RECS);
	assert_int_equal(gc_failures, 0);
	assert_int_equal(journal_records(sync_j), GC_THREADS * GC_RECS);
	assert_true(syncs < GC_THREADS * GC_RECS / 2);
	journal_close(sync_j);
	sync_j = NULL;
}

/* A failed fdatasync fails every caller whose records it covered, also
 * one that asks again (a second fdatasync would succeed without them); a
 * record appended after it gets a sync of its own. */
static void test_sync_failure(void **state)
{
	struct journal *j;
	struct journal_rec r = { .type = JR_TRIM, .offset = 0, .length = 4096 };
	ipm_error err = { "" };
	uint64_t m1, m2;

	(void)state;
	j = sync_j = jopen(BIG, NULL);
	assert_int_equal(journal_append(j, &r, &err), 0);
	m1 = journal_mark(j);
	sync_fail_next = 1;
	assert_int_equal(journal_sync_to(j, m1, &err), -EIO);
	assert_non_null(strstr(err.msg, "fdatasync"));
	assert_int_equal(journal_sync_to(j, m1, &err), -EIO);
	assert_int_equal(journal_append(j, &r, &err), 0);
	m2 = journal_mark(j);
	syncs = 0;
	assert_int_equal(journal_sync_to(j, m2, &err), 0);
	assert_int_equal(syncs, 1);
	assert_int_equal(journal_sync_to(j, m2, &err), 0);
	assert_int_equal(syncs, 1);   /* durable already: no second one */
	journal_close(j);
	sync_j = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_in_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_in_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_zeros, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_bad_last_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_record_at_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mid_corruption_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mid_corruption_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mid_corruption_magic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corruption_seen_by_iterator, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iter_owned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_lun, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iter_sees_appends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iter_concurrent_appends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_failure, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
