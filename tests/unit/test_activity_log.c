/* test_activity_log.c - the primary's activity log (activity_log.c): a live
 * write's 4 MiB extents are durably marked before it leaves, once per
 * extent; a crash leaves them marked and the next start moves them into the
 * dirty-extent bitmap for the resync; a settled replicator clears them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ipmirror.h"
#include "config.h"
#include "dirty_bitmap.h"
#include "lun.h"
#include "replicator_int.h"
#include "unit_util.h"

#define LUN_SIZE (64ull << 20)
#define EXT (4ull << 20)

struct fixture {
	char dir[256], journal[300], bitmap_path[320], al[320];
	struct ipm_lun_cfg cfg;
	struct ipm_lun lun;
	struct rep_lun rl;               /* its activity log: rl.al */
	struct dirty_bitmap *bitmap;     /* the resync's dirty extents */
	bool overflowed;                 /* set when a crash's marks moved there */
};

static void open_rl(struct fixture *fx)
{
	ipm_error err = { "" };

	memset(&fx->rl, 0, sizeof(fx->rl));
	fx->rl.lun = &fx->lun;
	fx->overflowed = false;
	assert_int_equal(dirty_bitmap_open(fx->bitmap_path, LUN_SIZE, 1u << 20, &fx->bitmap, &err), 0);
	assert_int_equal(al_open(&fx->rl.al, "vol0", LUN_SIZE, fx->journal, fx->bitmap,
				 &fx->overflowed, &err), 0);
}

static void close_rl(struct fixture *fx)
{
	al_close(&fx->rl.al);
	dirty_bitmap_close(fx->bitmap);
}

static int setup(void **state)
{
	struct fixture *fx = test_calloc(1, sizeof(*fx));

	assert_int_equal(scratch_dir_make(fx->dir, sizeof(fx->dir), "al"), 0);
	snprintf(fx->journal, sizeof(fx->journal), "%s/vol0.journal", fx->dir);
	snprintf(fx->bitmap_path, sizeof(fx->bitmap_path), "%s.bitmap", fx->journal);
	snprintf(fx->al, sizeof(fx->al), "%s.al", fx->journal);
	fx->cfg.name = "vol0";
	fx->lun.cfg = &fx->cfg;
	fx->lun.size = LUN_SIZE;
	open_rl(fx);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	close_rl(fx);
	scratch_dir_remove(fx->dir);
	test_free(fx);
	return 0;
}

/* What the replicator does before a live request leaves (al_mark):
 * flushes mark nothing; a new mark is made durable. */
static int note(struct fixture *fx, uint16_t type, uint64_t off, uint64_t len)
{
	ipm_error err = { "" };

	if (type == WIRE_FLUSH)
		return 0;
	if (al_note(&fx->rl.al, off, len))
		return al_sync(&fx->rl.al, off, len, &err);
	return 0;
}

/* The bytes the file on disk holds marked (the file must be closed: it is
 * locked while open). */
static uint64_t on_disk(const char *path)
{
	struct dirty_bitmap *b;
	ipm_error err = { "" };
	uint64_t n;

	assert_int_equal(dirty_bitmap_open(path, LUN_SIZE, EXT, &b, &err), 0);
	n = dirty_bitmap_dirty_bytes(b);
	dirty_bitmap_close(b);
	return n;
}

/* Every extent a write touches is marked, on disk, once al_note said so and
 * al_sync returned; flushes and empty requests mark nothing. */
static void test_note_marks_extents(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(note(fx, WIRE_FLUSH, 0, 0), 0);
	assert_int_equal(note(fx, WIRE_WRITE, 0, 0), 0);
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rl.al.map), 0);
	assert_int_equal(note(fx, WIRE_WRITE, 4096, 4096), 0);
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rl.al.map), EXT);
	assert_int_equal(note(fx, WIRE_WRITE, 8192, 512), 0);      /* the same extent */
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rl.al.map), EXT);
	assert_int_equal(note(fx, WIRE_ZERO, 2 * EXT - 1, 2), 0);  /* extents 1 and 2 */
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rl.al.map), 3 * EXT);
	assert_int_equal(note(fx, WIRE_TRIM, LUN_SIZE - 1, 1), 0); /* the last extent */
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rl.al.map), 4 * EXT);
	close_rl(fx);
	assert_int_equal(on_disk(fx->al), 4 * EXT);
	open_rl(fx);
}

/* al_note tells the caller to sync while a mark is not on disk: a second
 * writer of the same extent too, until someone's al_sync made it durable;
 * al_clear starts over. */
static void test_note_says_must_sync(void **state)
{
	struct fixture *fx = *state;
	struct activity_log *al = &fx->rl.al;
	ipm_error err = { "" };

	assert_false(al_marked(al));
	assert_false(al_note(al, 4096, 0));               /* empty: nothing */
	assert_true(al_note(al, 4096, 4096));
	assert_true(al_note(al, 8192, 4096));             /* marked, not durable */
	assert_true(al_marked(al));
	assert_int_equal(al_sync(al, 4096, 4096, &err), 0);
	assert_false(al_note(al, 8192, 4096));            /* durable now */
	assert_true(al_note(al, EXT - 1, 2));             /* reaches extent 1 */
	assert_int_equal(al_sync(al, EXT - 1, 2, &err), 0);
	assert_false(al_note(al, EXT, 4096));
	assert_int_equal(al_clear(al, &err), 0);
	assert_false(al_marked(al));
	assert_true(al_note(al, 8192, 4096));             /* must sync again */
}

/* At an outage the log's extents go into the dirty-extent bitmap (the
 * mirror's answers were not durability); the log keeps them. */
static void test_fold(void **state)
{
	struct fixture *fx = *state;

	assert_false(al_fold(&fx->rl.al, fx->bitmap));          /* nothing logged */
	assert_int_equal(note(fx, WIRE_WRITE, 4096, 4096), 0);
	assert_int_equal(note(fx, WIRE_WRITE, 9 * EXT, 1), 0);
	assert_true(al_fold(&fx->rl.al, fx->bitmap));
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->bitmap), 2 * EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rl.al.map), 2 * EXT);
}

/* A crash leaves the marks; the next start turns them into dirty extents
 * for the resync and starts with an empty log. */
static void test_crash_marks_become_dirty(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(note(fx, WIRE_WRITE, 5 * EXT + 100, 4096), 0);
	assert_int_equal(note(fx, WIRE_WRITE, 9 * EXT, EXT + 1), 0);
	close_rl(fx);                        /* no settle: the process died */
	open_rl(fx);
	assert_true(fx->overflowed);
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->bitmap), 3 * EXT);
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rl.al.map), 0);
	close_rl(fx);
	assert_int_equal(on_disk(fx->al), 0);
	open_rl(fx);
}

/* Settling clears the log only when nothing is in flight or pending and
 * both copies were flushed since the last write, and a later write to a
 * cleared extent is marked again. */
static void test_settle(void **state)
{
	struct fixture *fx = *state;
	struct replicator r = { .n_luns = 1, .luns = &fx->rl };
	struct mreq busy = { 0 };

	pthread_mutex_init(&r.lock, NULL);
	pthread_mutex_lock(&r.lock);
	assert_int_equal(note(fx, WIRE_WRITE, 0, 4096), 0);
	r.inflight = 1;
	al_settle_locked(&r);
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rl.al.map), EXT);
	r.inflight = 0;
	fx->rl.active = &busy;               /* a host request still pending */
	al_settle_locked(&r);
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rl.al.map), EXT);
	fx->rl.active = NULL;
	/* idle, but the copies were not flushed since the write (here the
	 * local flush fails: no descriptor): the log stays */
	fx->lun.fd = -1;
	assert_false(al_settle_locked(&r));
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rl.al.map), EXT);
	r.al_flushed = true;                 /* both copies flushed since */
	al_settle_locked(&r);
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rl.al.map), 0);
	close_rl(fx);                        /* the clearing is on disk */
	assert_int_equal(on_disk(fx->al), 0);
	open_rl(fx);
	assert_false(fx->overflowed);     /* nothing left to resync */
	assert_int_equal(note(fx, WIRE_WRITE, 0, 4096), 0);
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rl.al.map), EXT);
	pthread_mutex_unlock(&r.lock);
	pthread_mutex_destroy(&r.lock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_note_marks_extents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_note_says_must_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_marks_become_dirty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
