/* test_generation.c - data generations: comparison, rotation, adoption, and
 * the file (round trip, missing, damaged). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include "ipmirror.h"
#include "generation.h"
#include "wire.h"
#include "unit_util.h"

static void test_compare(void **state)
{
	struct generation a = { 0 }, b = { 0 };

	(void)state;
	/* a new LUN is behind anything */
	gen_rotate(&b);
	assert_int_equal(gen_compare(&a, b.current, b.history, b.n_history), GEN_PEER_AHEAD);
	assert_int_equal(gen_compare(&b, a.current, a.history, a.n_history), GEN_PEER_BEHIND);
	/* same line */
	gen_adopt(&a, b.current, b.history, b.n_history);
	assert_true(a.shared);
	assert_int_equal(gen_compare(&a, b.current, b.history, b.n_history), GEN_SAME);
	/* b writes alone: a is behind, finds its generation in b's history */
	gen_rotate(&b);
	assert_int_equal(b.n_history, 1);
	assert_false(b.shared);
	assert_int_equal(gen_compare(&a, b.current, b.history, b.n_history), GEN_PEER_AHEAD);
	assert_int_equal(gen_compare(&b, a.current, a.history, a.n_history), GEN_PEER_BEHIND);
	/* a writes alone too: neither knows the other's */
	gen_rotate(&a);
	assert_int_equal(gen_compare(&a, b.current, b.history, b.n_history), GEN_DIVERGED);
	assert_int_equal(gen_compare(&b, a.current, a.history, a.n_history), GEN_DIVERGED);
	assert_string_equal(gen_relation_name(GEN_DIVERGED), "diverged");
	/* a new LUN starts at the same generation on both nodes */
	assert_true(gen_initial("vol0", 1ull << 30) == gen_initial("vol0", 1ull << 30));
	assert_true(gen_initial("vol0", 1ull << 30) != gen_initial("vol1", 1ull << 30));
	assert_true(gen_initial("vol0", 1ull << 30) != gen_initial("vol0", 2ull << 30));
	assert_true(gen_initial("", 0) != 0);
}

/* The initial sync's rule: a new LUN's source has a line of its own, any
 * other new copy none, and is replaced whole; never "the same". */
static void test_new_lun(void **state)
{
	struct generation src, dst, old = { 0 }, g;
	enum gen_relation rel;
	ipm_error err = { "" };
	char dir[256], path[300];

	(void)state;
	gen_new(&src, true);
	gen_new(&dst, false);
	assert_int_not_equal(src.current, 0);
	assert_true(src.consistent && src.peer_invalid && src.never_synced && !src.invalid);
	assert_false(src.shared);
	assert_int_equal(dst.current, 0);
	assert_true(dst.invalid && dst.never_synced && !dst.consistent);
	/* the mirror asks for the whole LUN */
	assert_int_equal(gen_verdict(&dst, src.current, src.history, src.n_history, &rel),
			 WIRE_LV_FULL);
	assert_int_equal(rel, GEN_PEER_AHEAD);
	/* two sources (both nodes thought they were primary) never match */
	gen_new(&g, true);
	assert_int_equal(gen_verdict(&g, src.current, src.history, src.n_history, &rel),
			 WIRE_LV_SPLITBRAIN);
	/* a replaced primary disk (new source) meets a mirror that holds the
	 * old shared line: a split brain, the mirror's data is not overwritten */
	old.current = gen_initial("vol0", 1ull << 30);
	old.shared = old.consistent = true;
	assert_int_equal(gen_verdict(&old, src.current, src.history, src.n_history, &rel),
			 WIRE_LV_SPLITBRAIN);
	/* an old pair (both at the shared initial line) stays as it was */
	assert_int_equal(gen_verdict(&old, old.current, old.history, old.n_history, &rel), 0);
	assert_int_equal(rel, GEN_SAME);
	/* an invalidated copy on the same line is replaced whole */
	g = old;
	g.invalid = true;
	assert_int_equal(gen_verdict(&g, old.current, old.history, old.n_history, &rel),
			 WIRE_LV_FULL);
	/* after the copy the mirror takes the source's line: flags cleared */
	gen_adopt(&dst, src.current, src.history, src.n_history);
	assert_true(dst.consistent && dst.shared && !dst.invalid && !dst.never_synced);
	assert_int_equal(gen_verdict(&dst, src.current, src.history, src.n_history, &rel), 0);
	/* the new flags survive the file; an old file has none of them */
	assert_int_equal(scratch_dir_make(dir, sizeof(dir), "gennew"), 0);
	snprintf(path, sizeof(path), "%s/vol0.journal.gen", dir);
	gen_new(&dst, false);
	dst.fill_asked = true;
	assert_int_equal(gen_save(path, &dst, &err), 0);
	assert_int_equal(gen_load(path, &g, &err), 0);
	assert_true(g.invalid && g.never_synced && g.fill_asked && !g.peer_invalid);
	assert_int_equal(gen_save(path, &src, &err), 0);
	assert_int_equal(gen_load(path, &g, &err), 0);
	assert_true(g.peer_invalid && g.consistent && !g.invalid && g.current == src.current);
	assert_int_equal(gen_save(path, &old, &err), 0);
	assert_int_equal(gen_load(path, &g, &err), 0);
	assert_false(g.invalid || g.never_synced || g.fill_asked || g.peer_invalid);
	assert_int_equal(scratch_dir_remove(dir), 0);
}

static void test_history_bounded(void **state)
{
	struct generation g = { 0 };
	uint64_t first;
	int i;

	(void)state;
	gen_rotate(&g);
	first = g.current;
	for (i = 0; i < GEN_HISTORY + 3; i++)
		gen_rotate(&g);
	assert_int_equal(g.n_history, GEN_HISTORY);
	for (i = 0; i < GEN_HISTORY; i++)
		assert_int_not_equal(g.history[i], first); /* the oldest fell out */
	assert_int_not_equal(g.current, 0);
}

static void test_file(void **state)
{
	struct generation g = { 0 }, r;
	ipm_error err = { "" };
	char dir[256], path[300];
	unsigned char byte;
	int fd;

	(void)state;
	assert_int_equal(scratch_dir_make(dir, sizeof(dir), "gen"), 0);
	snprintf(path, sizeof(path), "%s/vol0.journal.gen", dir);
	/* missing: a new LUN */
	assert_int_equal(gen_load(path, &r, &err), 0);
	assert_int_equal(r.current, 0);
	gen_rotate(&g);
	gen_rotate(&g);
	g.splitbrain = true;
	g.was_primary = true;
	g.fill = 0xf111deadbeef0001ull;
	assert_int_equal(gen_save(path, &g, &err), 0);
	assert_int_equal(gen_load(path, &r, &err), 0);
	assert_memory_equal(&r.current, &g.current, sizeof(g.current));
	assert_int_equal(r.n_history, 1);
	assert_true(r.history[0] == g.history[0]);
	assert_true(r.splitbrain && r.was_primary && !r.shared && !r.discard);
	/* the full copy's id, at offset 96 (reserved before: older files read 0) */
	assert_true(r.fill == 0xf111deadbeef0001ull);
	gen_adopt(&r, g.current, g.history, g.n_history);
	assert_true(r.fill == 0);   /* the copy completed: no fill any more */
	/* one flipped bit: refused, naming the file and the problem */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, 20), 1);
	byte ^= 1;
	assert_int_equal(pwrite(fd, &byte, 1, 20), 1);
	check_fail(gen_load(path, &r, &err), -EINVAL, &err, "checksum mismatch");
	assert_non_null(strstr(err.msg, path));
	/* truncated */
	assert_int_equal(ftruncate(fd, 100), 0);
	close(fd);
	check_fail(gen_load(path, &r, &err), -EINVAL, &err, "100 bytes");
	/* not ours */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "hello, world", 12), 12);
	close(fd);
	check_fail(gen_load(path, &r, &err), -EINVAL, &err, "bytes, a generation file has");
	assert_int_equal(scratch_dir_remove(dir), 0);
}

/* Links planted at the file or its temporary: the first is refused, the
 * second removed and replaced, neither written through. */
static void test_file_links(void **state)
{
	struct generation g = { 0 }, r;
	ipm_error err = { "" };
	char dir[256], path[300], tmp[310], target[310];
	struct stat st;

	(void)state;
	assert_int_equal(scratch_dir_make(dir, sizeof(dir), "genlink"), 0);
	snprintf(path, sizeof(path), "%s/vol0.journal.gen", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(target, sizeof(target), "%s/victim", dir);
	close(open(target, O_WRONLY | O_CREAT, 0600));
	assert_int_equal(symlink(target, path), 0);
	check_fail(gen_load(path, &r, &err), -ELOOP, &err,
		   "generation file");
	assert_non_null(strstr(err.msg, "is a symbolic link; refusing to follow it"));
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(unlink(path), 0);

	assert_int_equal(symlink(target, tmp), 0);
	gen_rotate(&g);
	assert_int_equal(gen_save(path, &g, &err), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(lstat(tmp, &st), -1);
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(gen_load(path, &r, &err), 0);
	assert_true(r.current == g.current);
	assert_int_equal(scratch_dir_remove(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compare),
		cmocka_unit_test(test_new_lun),
		cmocka_unit_test(test_history_bounded),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_file_links),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
