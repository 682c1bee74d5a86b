/* test_resync.c - the primary's resync (engine/primary/resync.c) driven
 * against a fake replicator (struct resync_ops): the journal is replayed in
 * order, dirty extents are copied from the local copy, the closing pass
 * holds host writes and only then tells the mirror it is in sync, and a
 * go_down in the middle marks the dropped copies dirty again. Every
 * submission is checked: its payload's CRC32C is the one it carries, and it
 * follows (dep) every earlier unanswered replay it overlaps; barriers follow
 * everything, and independent replays are not chained. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crc32c.h"
#include "ipmirror.h"
#include "resync.h"
#include "unit_util.h"

#define LUN_SIZE (8ull << 20)
#define MAX_SUBS 1024
#define MiB (1ull << 20)

struct sub {
	struct wire_frame f;
	uint8_t *data;
};

/* The replicator as the resync sees it: records what is submitted, answers
 * everything at once unless the link went down. */
struct fake {
	pthread_mutex_t lock;
	struct resync rs;
	char dir[256];
	uint8_t *local[2];            /* each LUN's local copy */
	struct sub subs[MAX_SUBS];
	unsigned n_subs;
	unsigned answered;            /* subs[0..answered) answered */
	bool link_ok;
	bool held;
	int hold_on_at;               /* n_subs when the hold went on, -1 never */
	unsigned lives;
	unsigned waits;               /* passes: a resync that never ends fails */
	int live_at;                  /* n_subs when it went live */
	/* host writes that arrive while not held: one per replay, into the
	 * other LUN's journal (while one LUN is replayed the other's grows) */
	unsigned inject_max, injected;
	uint64_t journaled[2][1024];  /* offsets of the writes journaled, in order */
	unsigned n_journaled[2];
	/* the link breaks at this submission (1-based; 0: never) and no
	 * answer comes before that */
	unsigned down_at;
	unsigned order_from;          /* subs before it are answered or dropped */
};

#define SEQ_BASE 1000                 /* the fake's first wire number - 1 */

static void host_write_locked(struct fake *fx, uint32_t lun, uint64_t off, uint64_t len,
			      uint8_t fill, uint16_t flags)
{
	uint8_t *buf = test_malloc(len ? len : 1);
	struct wire_frame f = { .type = WIRE_WRITE, .flags = flags, .lun = lun,
				.offset = off, .length = len };

	memset(buf, fill, len);
	f.csum = crc32c(0, buf, len);  /* as the replicator's requests carry it */
	memset(fx->local[lun] + off, fill, len);
	assert_int_equal(resync_journal_locked(&fx->rs, &f, buf), 0);
	test_free(buf);
	if (len && fx->n_journaled[lun] < 1024)
		fx->journaled[lun][fx->n_journaled[lun]++] = off;
}

static void host_op_locked(struct fake *fx, uint16_t type, uint64_t off, uint64_t len,
			   uint16_t flags)
{
	struct wire_frame f = { .type = type, .flags = flags, .offset = off, .length = len };

	assert_int_equal(resync_journal_locked(&fx->rs, &f, NULL), 0);
}

/* What go_down_locked does with replays the mirror did not answer. */
static void go_down(struct fake *fx)
{
	bool marked = false;
	unsigned i;

	pthread_mutex_lock(&fx->lock);
	fx->link_ok = false;
	fx->order_from = fx->n_subs;
	for (i = fx->answered; i < fx->n_subs; i++)
		marked |= resync_dropped_locked(&fx->rs, &fx->subs[i].f);
	if (marked)
		assert_int_equal(resync_sync_locked(&fx->rs), 0);
	pthread_mutex_unlock(&fx->lock);
}

/* What the mirror needs of a replay's number: after every earlier one still
 * unanswered that it overlaps; a barrier (FLUSH) after everything. */
static void check_order(struct fake *fx, const struct sub *s)
{
	uint64_t end = s->f.offset + s->f.length;
	unsigned i;

	if (s->f.type == WIRE_FLUSH) {
		assert_int_equal(s->f.dep, s->f.seq - 1);
		return;
	}
	for (i = fx->order_from; i + 1 < fx->n_subs; i++) {
		const struct wire_frame *e = &fx->subs[i].f;

		if (e->lun == s->f.lun && e->type != WIRE_FLUSH && e->offset < end &&
		    s->f.offset < e->offset + e->length && s->f.dep < e->seq)
			fail_msg("replay %llu (lun %u at %llu+%llu) does not follow %llu (at %llu+%llu): dep %llu",
				 (unsigned long long)s->f.seq, s->f.lun,
				 (unsigned long long)s->f.offset, (unsigned long long)s->f.length,
				 (unsigned long long)e->seq, (unsigned long long)e->offset,
				 (unsigned long long)e->length, (unsigned long long)s->f.dep);
	}
	assert_true(s->f.dep < s->f.seq);
}

static int fake_submit(void *ctx, const struct wire_frame *f, const void *data, uint64_t *seq)
{
	struct fake *fx = ctx;
	struct sub *s;

	if (fx->down_at && fx->n_subs + 1 == fx->down_at)
		go_down(fx);
	if (!fx->link_ok)
		return -ECONNRESET;
	assert_true(fx->n_subs < MAX_SUBS);
	s = &fx->subs[fx->n_subs++];
	s->f = *f;
	s->f.seq = *seq = SEQ_BASE + fx->n_subs;
	if (f->dep == RESYNC_DEP_ALL)
		s->f.dep = s->f.seq - 1;
	s->data = NULL;
	if (data) {
		s->data = malloc(f->len);   /* freed by teardown: not test_malloc */
		assert_non_null(s->data);
		memcpy(s->data, data, f->len);
		if (crc32c(0, data, f->len) != f->csum)
			fail_msg("replay at %llu carries CRC %#x, its payload has %#x",
				 (unsigned long long)f->offset, f->csum, crc32c(0, data, f->len));
	}
	check_order(fx, s);
	if (!fx->held && fx->injected < fx->inject_max && !(f->flags & WIRE_F_INSYNC)) {
		pthread_mutex_lock(&fx->lock);
		host_write_locked(fx, 1 - f->lun, 4096 * (uint64_t)fx->injected, 4096,
				  (uint8_t)fx->injected, 0);
		fx->injected++;
		pthread_mutex_unlock(&fx->lock);
	}
	return 0;
}

static int fake_read_local(void *ctx, uint32_t lun, void *buf, size_t len, uint64_t off)
{
	struct fake *fx = ctx;

	assert_true(off + len <= LUN_SIZE);
	memcpy(buf, fx->local[lun] + off, len);
	return 0;
}

static int fake_wait_answers_locked(void *ctx)
{
	struct fake *fx = ctx;

	if (++fx->waits > 20) {
		print_error("the resync does not end: %u passes\n", fx->waits);
		fx->link_ok = false;
	}
	if (!fx->link_ok)
		return -ECONNRESET;
	if (!fx->down_at) {
		fx->answered = fx->n_subs;
		fx->order_from = fx->n_subs;
	}
	return 0;
}

static void fake_hold_locked(void *ctx, bool hold)
{
	struct fake *fx = ctx;

	if (hold && fx->hold_on_at < 0)
		fx->hold_on_at = (int)fx->n_subs;
	fx->held = hold;
}

static void fake_go_live_locked(void *ctx)
{
	struct fake *fx = ctx;

	fx->lives++;
	fx->live_at = (int)fx->n_subs;
}

static const struct resync_ops fake_ops = {
	.submit = fake_submit,
	.read_local = fake_read_local,
	.wait_answers_locked = fake_wait_answers_locked,
	.hold_locked = fake_hold_locked,
	.go_live_locked = fake_go_live_locked,
};

/* The local copy of LUN 0 has a hole below 2 MiB (what SEEK_DATA says);
 * elsewhere the fake cannot tell, so the data is read. */
static uint64_t fake_hole_end(void *ctx, uint32_t lun, uint64_t off, uint64_t end)
{
	(void)ctx;
	if (lun == 0 && off < 2 * MiB)
		return end < 2 * MiB ? end : 2 * MiB;
	return off;
}

static unsigned quiesced;

static void fake_quiesce_locked(void *ctx, uint32_t lun, uint64_t off, uint64_t len)
{
	(void)ctx;
	(void)lun;
	(void)off;
	(void)len;
	quiesced++;
}

static const struct resync_ops fake_ops_holes = {
	.submit = fake_submit,
	.read_local = fake_read_local,
	.hole_end = fake_hole_end,
	.quiesce_locked = fake_quiesce_locked,
	.wait_answers_locked = fake_wait_answers_locked,
	.hold_locked = fake_hold_locked,
	.go_live_locked = fake_go_live_locked,
};

/* Reads in flight: started reads are kept, and each wait ends the newest
 * one first (out of order), copying the local copy as it is then: a host
 * write between a run's take and its read's end is seen by that read. */
struct fake_read {
	uint32_t lun;
	void *buf, *tag;
	size_t len;
	uint64_t off;
};
static struct fake_read reads[RESYNC_READS + 1];
static unsigned n_reads, most_reads, n_waits;
static void (*on_wait)(void *ctx);

static int fake_read_start(void *ctx, uint32_t lun, void *buf, size_t len, uint64_t off,
			   void *tag)
{
	(void)ctx;
	assert_true(n_reads < RESYNC_READS);
	assert_true(off + len <= LUN_SIZE);
	reads[n_reads++] = (struct fake_read){ .lun = lun, .buf = buf, .tag = tag, .len = len,
					       .off = off };
	if (n_reads > most_reads)
		most_reads = n_reads;
	return 0;
}

static int fake_read_wait(void *ctx, void **tag)
{
	struct fake *fx = ctx;
	struct fake_read *r;

	if (!n_reads)
		return -ENOENT;
	if (on_wait && n_waits++ == 0)
		on_wait(ctx);
	r = &reads[--n_reads];
	memcpy(r->buf, fx->local[r->lun] + r->off, r->len);
	*tag = r->tag;
	return 0;
}

static int fake_submit_owned(void *ctx, const struct wire_frame *f, void *data,
			     void (*release)(void *), uint64_t *seq)
{
	int rc = fake_submit(ctx, f, data, seq);

	if (release)  /* the resync's run buffers go back to its pool */
		release(data);
	else
		free(data);
	return rc;
}

static const struct resync_ops fake_ops_async = {
	.submit = fake_submit,
	.submit_owned = fake_submit_owned,
	.read_local = fake_read_local,
	.read_start = fake_read_start,
	.read_wait = fake_read_wait,
	.wait_answers_locked = fake_wait_answers_locked,
	.hold_locked = fake_hold_locked,
	.go_live_locked = fake_go_live_locked,
};

static void open_luns(struct fake *fx, unsigned n, uint64_t journal_max)
{
	ipm_error err = { "" };
	char path[320];
	unsigned i;

	assert_int_equal(resync_init(&fx->rs, n, &err), 0);
	fx->rs.ops = &fake_ops;
	fx->rs.ctx = fx;
	fx->rs.lock = &fx->lock;
	fx->rs.peer = "node2";
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/vol%u.journal", fx->dir, i);
		assert_int_equal(resync_open_lun(&fx->rs, i, i ? "vol1" : "vol0", LUN_SIZE, path,
						 journal_max, &err), 0);
	}
}

static void reset_subs(struct fake *fx)
{
	unsigned i;

	for (i = 0; i < fx->n_subs; i++)
		if (fx->subs[i].data)
			free(fx->subs[i].data);
	fx->n_subs = fx->answered = 0;
	fx->hold_on_at = fx->live_at = -1;
	fx->n_journaled[0] = fx->n_journaled[1] = 0;
	fx->lives = fx->waits = 0;
	fx->link_ok = true;
	fx->held = false;
	fx->down_at = 0;
	fx->order_from = 0;
}

static int setup(void **state)
{
	struct fake *fx = test_calloc(1, sizeof(*fx));
	unsigned i;

	assert_int_equal(scratch_dir_make(fx->dir, sizeof(fx->dir), "resync"), 0);
	pthread_mutex_init(&fx->lock, NULL);
	for (i = 0; i < 2; i++) {
		fx->local[i] = test_malloc(LUN_SIZE);
		memset(fx->local[i], 0x11 * (i + 1), LUN_SIZE);
	}
	reset_subs(fx);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fake *fx = *state;

	reset_subs(fx);
	resync_close(&fx->rs);
	test_free(fx->local[0]);
	test_free(fx->local[1]);
	pthread_mutex_destroy(&fx->lock);
	scratch_dir_remove(fx->dir);
	test_free(fx);
	return 0;
}

static void check_sub(const struct sub *s, uint16_t type, uint16_t flags, uint32_t lun,
		      uint64_t off, uint64_t len)
{
	if (s->f.type != type || s->f.flags != flags || s->f.lun != lun ||
	    s->f.offset != off || s->f.length != len)
		print_error("got type %u flags %#x lun %u off %llu len %llu\n", s->f.type,
			    s->f.flags, s->f.lun, (unsigned long long)s->f.offset,
			    (unsigned long long)s->f.length);
	assert_int_equal(s->f.type, type);
	assert_int_equal(s->f.flags, flags);
	assert_int_equal(s->f.lun, lun);
	assert_int_equal(s->f.offset, off);
	assert_int_equal(s->f.length, len);
	assert_int_equal(s->f.len, type == WIRE_WRITE ? len : 0);
}

static void check_filled(const struct sub *s, uint8_t fill)
{
	uint64_t i;

	assert_non_null(s->data);
	for (i = 0; i < s->f.len; i++)
		if (s->data[i] != fill)
			fail_msg("byte %llu of the replay at %llu is %#x, not %#x",
				 (unsigned long long)i, (unsigned long long)s->f.offset,
				 s->data[i], fill);
}

static void check_copy(struct fake *fx, const struct sub *s)
{
	assert_non_null(s->data);
	assert_memory_equal(s->data, fx->local[s->f.lun] + s->f.offset, s->f.len);
}

static bool empty(struct fake *fx)
{
	bool e;

	pthread_mutex_lock(&fx->lock);
	e = resync_empty_locked(&fx->rs);
	pthread_mutex_unlock(&fx->lock);
	return e;
}

/* A full resync (the initial sync) of a LUN whose local copy is a hole up to
 * 2 MiB, data up to 3 MiB and zeros after: the hole goes as one ZERO, the
 * 4 MiB run with data as a WRITE, the run of zeros as a ZERO; each range is
 * quiesced (host writes in flight waited for) before it is taken. */
static void test_holes_and_zeros(void **state)
{
	struct fake *fx = *state;
	const uint16_t R = WIRE_F_REPLAY;

	memset(fx->local[0], 0, LUN_SIZE);
	memset(fx->local[0] + 2 * MiB, 0x5a, MiB);
	open_luns(fx, 1, 0);
	fx->rs.ops = &fake_ops_holes;
	quiesced = 0;
	pthread_mutex_lock(&fx->lock);
	assert_true(resync_want_full_locked(&fx->rs, 0, 0));
	pthread_mutex_unlock(&fx->lock);
	assert_int_equal(resync_run(&fx->rs), 0);
	assert_int_equal(fx->n_subs, 4);
	check_sub(&fx->subs[0], WIRE_ZERO, R, 0, 0, 2 * MiB);
	check_sub(&fx->subs[1], WIRE_WRITE, R, 0, 2 * MiB, 4 * MiB);
	check_copy(fx, &fx->subs[1]);
	check_sub(&fx->subs[2], WIRE_ZERO, R, 0, 6 * MiB, 2 * MiB);
	check_sub(&fx->subs[3], WIRE_FLUSH, R | WIRE_F_INSYNC, 0, 0, 0);
	assert_int_equal(quiesced, 3);
	assert_int_equal(fx->lives, 1);
	assert_true(empty(fx));
}

/* Every journaled request is replayed once, in the order it was journaled,
 * LUN after LUN, flagged as a replay (FUA kept, empty records skipped);
 * then each LUN's in-sync barrier; then live, with the journals empty. */
static void test_journal_replayed_in_order(void **state)
{
	struct fake *fx = *state;
	const uint16_t R = WIRE_F_REPLAY;

	open_luns(fx, 2, 0);
	pthread_mutex_lock(&fx->lock);
	host_write_locked(fx, 0, 0, 4096, 'a', WIRE_F_FUA);
	host_op_locked(fx, WIRE_TRIM, 8192, 4096, 0);
	host_op_locked(fx, WIRE_ZERO, 16384, 8192, 0);
	host_op_locked(fx, WIRE_FLUSH, 0, 0, 0);
	host_write_locked(fx, 0, 4096, 0, 'x', 0);       /* empty: changes nothing */
	host_write_locked(fx, 0, 4096, 4096, 'b', 0);
	host_write_locked(fx, 1, MiB, 512, 'c', 0);
	pthread_mutex_unlock(&fx->lock);
	assert_false(empty(fx));

	assert_int_equal(resync_run(&fx->rs), 0);
	assert_int_equal(fx->n_subs, 8);
	check_sub(&fx->subs[0], WIRE_WRITE, R | WIRE_F_FUA, 0, 0, 4096);
	check_filled(&fx->subs[0], 'a');
	check_sub(&fx->subs[1], WIRE_TRIM, R, 0, 8192, 4096);
	check_sub(&fx->subs[2], WIRE_ZERO, R, 0, 16384, 8192);
	check_sub(&fx->subs[3], WIRE_FLUSH, R, 0, 0, 0);
	check_sub(&fx->subs[4], WIRE_WRITE, R, 0, 4096, 4096);
	check_filled(&fx->subs[4], 'b');
	check_sub(&fx->subs[5], WIRE_WRITE, R, 1, MiB, 512);
	check_filled(&fx->subs[5], 'c');
	check_sub(&fx->subs[6], WIRE_FLUSH, R | WIRE_F_INSYNC, 0, 0, 0);
	check_sub(&fx->subs[7], WIRE_FLUSH, R | WIRE_F_INSYNC, 1, 0, 0);
	/* a short backlog: held at once; live after the barriers; released */
	assert_int_equal(fx->hold_on_at, 6);
	assert_int_equal(fx->lives, 1);
	assert_int_equal(fx->live_at, 8);
	assert_false(fx->held);
	assert_true(empty(fx));
}

/* Many replays in flight: a replay follows only the earlier ones it
 * overlaps, a journaled FLUSH and the INSYNC markers follow everything, and
 * independent replays do not wait for each other. */
static void test_replay_order(void **state)
{
	struct fake *fx = *state;
	const struct wire_frame *f;

	open_luns(fx, 2, 0);
	pthread_mutex_lock(&fx->lock);
	/* submitted LUN by LUN: vol0's records, then vol1's */
	host_write_locked(fx, 0, 0, 4096, 'a', 0);          /* 0: the run's first */
	host_write_locked(fx, 0, MiB, 4096, 'b', 0);        /* 1: independent */
	host_write_locked(fx, 1, 0, 4096, 'c', 0);          /* 6: other LUN, same range */
	host_write_locked(fx, 0, 2048, 4096, 'd', 0);       /* 2: overlaps 0 */
	host_op_locked(fx, WIRE_FLUSH, 0, 0, 0);            /* 3: barrier */
	host_write_locked(fx, 0, 2 * MiB, 4096, 'e', 0);    /* 4: independent again */
	host_op_locked(fx, WIRE_TRIM, MiB + 4000, 100, 0);  /* 5: overlaps 1 */
	pthread_mutex_unlock(&fx->lock);

	assert_int_equal(resync_run(&fx->rs), 0);
	assert_int_equal(fx->n_subs, 9);
	f = &fx->subs[0].f;
	assert_int_equal(f->dep, f->seq - 1);               /* after what came before */
	assert_int_equal(fx->subs[1].f.dep, f->seq - 1);    /* not after 0 */
	assert_int_equal(fx->subs[2].f.dep, fx->subs[0].f.seq);
	assert_int_equal(fx->subs[3].f.type, WIRE_FLUSH);
	assert_int_equal(fx->subs[3].f.dep, fx->subs[3].f.seq - 1);
	assert_int_equal(fx->subs[4].f.dep, f->seq - 1);    /* not after the barrier */
	assert_int_equal(fx->subs[5].f.type, WIRE_TRIM);
	assert_int_equal(fx->subs[5].f.dep, fx->subs[1].f.seq);
	assert_int_equal(fx->subs[6].f.lun, 1);
	assert_int_equal(fx->subs[6].f.dep, f->seq - 1);    /* LUNs do not overlap */
	assert_true(fx->subs[7].f.flags & WIRE_F_INSYNC);
	assert_int_equal(fx->subs[7].f.dep, fx->subs[7].f.seq - 1);
	assert_int_equal(fx->subs[8].f.dep, fx->subs[8].f.seq - 1);
	assert_true(empty(fx));
}

/* Past the journal's limit writes mark 1 MiB extents; the resync replays
 * what the journal holds, then copies each dirty extent from the local
 * copy as it is now, and clears the marks once live. */
static void test_dirty_extents_copied(void **state)
{
	struct fake *fx = *state;
	uint64_t jb, jr, done, total;

	open_luns(fx, 1, 6 << 10);
	pthread_mutex_lock(&fx->lock);
	host_write_locked(fx, 0, 0, 4096, 'a', 0);                  /* journaled */
	host_write_locked(fx, 0, 3 * MiB + 100, 4096, 'b', 0);      /* full: marks 3 */
	host_write_locked(fx, 0, 5 * MiB - 10, 20, 'c', 0);         /* marks 4 and 5 */
	host_write_locked(fx, 0, 0, 4096, 'd', 0);                  /* marks 0 */
	resync_lun_status_locked(&fx->rs, 0, &jb, &jr, &done, &total);
	pthread_mutex_unlock(&fx->lock);
	assert_int_equal(jr, 1);
	assert_true(jb >= 4 * MiB);                 /* journal + 4 dirty extents */
	memset(fx->local[0] + 3 * MiB, 'e', 4096);  /* the local copy moved on */

	assert_int_equal(resync_run(&fx->rs), 0);
	assert_int_equal(fx->n_subs, 4);
	check_sub(&fx->subs[0], WIRE_WRITE, WIRE_F_REPLAY, 0, 0, 4096);
	check_filled(&fx->subs[0], 'a');
	check_sub(&fx->subs[1], WIRE_WRITE, WIRE_F_REPLAY, 0, 0, MiB);
	check_copy(fx, &fx->subs[1]);
	check_sub(&fx->subs[2], WIRE_WRITE, WIRE_F_REPLAY, 0, 3 * MiB, 3 * MiB);
	check_copy(fx, &fx->subs[2]);
	assert_int_equal(fx->subs[2].data[0], 'e');
	check_sub(&fx->subs[3], WIRE_FLUSH, WIRE_F_REPLAY | WIRE_F_INSYNC, 0, 0, 0);
	assert_int_equal(fx->lives, 1);
	assert_true(empty(fx));
	pthread_mutex_lock(&fx->lock);
	resync_lun_status_locked(&fx->rs, 0, &jb, &jr, &done, &total);
	pthread_mutex_unlock(&fx->lock);
	assert_int_equal(jb, 0);
	assert_int_equal(done, total);
}

/* At an outage the activity log's extents are folded into the bitmap
 * (al_fold) while the journal still takes the writes: the resync replays
 * the journal and copies those extents too. */
static void test_folded_extents_copied(void **state)
{
	struct fake *fx = *state;

	open_luns(fx, 1, 0);
	pthread_mutex_lock(&fx->lock);
	dirty_bitmap_mark(fx->rs.luns[0].bitmap, 2 * MiB, MiB);   /* what al_fold does */
	assert_int_equal(resync_sync_locked(&fx->rs), 0);
	host_write_locked(fx, 0, 0, 4096, 'a', 0);
	pthread_mutex_unlock(&fx->lock);
	assert_false(fx->rs.luns[0].overflowed);

	assert_int_equal(resync_run(&fx->rs), 0);
	assert_int_equal(fx->n_subs, 3);
	check_sub(&fx->subs[0], WIRE_WRITE, WIRE_F_REPLAY, 0, 0, 4096);
	check_sub(&fx->subs[1], WIRE_WRITE, WIRE_F_REPLAY, 0, 2 * MiB, MiB);
	check_copy(fx, &fx->subs[1]);
	check_sub(&fx->subs[2], WIRE_FLUSH, WIRE_F_REPLAY | WIRE_F_INSYNC, 0, 0, 0);
	assert_int_equal(fx->lives, 1);
	assert_true(empty(fx));
}

/* Host writes keep coming while the journal is replayed: each pass replays
 * what the last one left. From the third pass on the closing pass holds
 * them; the in-sync barriers go out only after the last of them, and the
 * replicator goes live once. */
static void test_closing_pass_holds(void **state)
{
	struct fake *fx = *state;
	unsigned i, at[2] = { 0, 0 };

	open_luns(fx, 2, 0);
	pthread_mutex_lock(&fx->lock);
	for (i = 0; i < 100; i++)
		host_write_locked(fx, 1, 4 * MiB + 4096 * (uint64_t)i, 4096, 0xF0, 0);
	pthread_mutex_unlock(&fx->lock);
	fx->inject_max = 1000;

	assert_int_equal(resync_run(&fx->rs), 0);
	/* pass 1: vol1's 100 (100 new for vol0); passes 2 and 3: vol0's 100
	 * (100 new for vol1), vol1's 100 (100 new for vol0): more than 64
	 * left each time, but after the third pass the hold goes on anyway */
	assert_int_equal(fx->hold_on_at, 500);
	assert_int_equal(fx->injected, 500);
	/* pass 4: vol0's last 100, then both barriers */
	assert_int_equal(fx->n_subs, 602);
	for (i = 0; i < 600; i++) {
		const struct sub *s = &fx->subs[i];
		uint32_t l = s->f.lun;

		assert_true(l < 2 && at[l] < fx->n_journaled[l]);
		check_sub(s, WIRE_WRITE, WIRE_F_REPLAY, l, fx->journaled[l][at[l]++], 4096);
		check_filled(s, l == 1 && s->f.offset >= 4 * MiB ? 0xF0 : (uint8_t)(s->f.offset / 4096));
	}
	assert_int_equal(at[0], fx->n_journaled[0]);
	assert_int_equal(at[1], fx->n_journaled[1]);
	check_sub(&fx->subs[600], WIRE_FLUSH, WIRE_F_REPLAY | WIRE_F_INSYNC, 0, 0, 0);
	check_sub(&fx->subs[601], WIRE_FLUSH, WIRE_F_REPLAY | WIRE_F_INSYNC, 1, 0, 0);
	assert_int_equal(fx->lives, 1);
	assert_int_equal(fx->live_at, 602);
	assert_false(fx->held);
	assert_true(empty(fx));
}

/* The link breaks while dirty extents are being copied: the copies the
 * mirror had not answered were cleared from the bitmap when read, and are
 * marked again; the run fails without going live or leaving the hold on.
 * The next resync copies the whole LUN again. */
static void test_go_down_remarks_copies(void **state)
{
	struct fake *fx = *state;
	uint64_t jb, jr, done, total;

	open_luns(fx, 1, 0);
	pthread_mutex_lock(&fx->lock);
	assert_true(resync_want_full_locked(&fx->rs, 0, 0));
	assert_false(resync_want_full_locked(&fx->rs, 0, 0));  /* already pending */
	pthread_mutex_unlock(&fx->lock);
	fx->down_at = 2;   /* the first 4 MiB copy is out, unanswered */

	assert_true(resync_run(&fx->rs) < 0);
	assert_int_equal(fx->n_subs, 1);
	check_sub(&fx->subs[0], WIRE_WRITE, WIRE_F_REPLAY, 0, 0, 4 * MiB);
	assert_int_equal(fx->lives, 0);
	assert_false(fx->held);
	pthread_mutex_lock(&fx->lock);
	resync_lun_status_locked(&fx->rs, 0, &jb, &jr, &done, &total);
	pthread_mutex_unlock(&fx->lock);
	assert_int_equal(jb, LUN_SIZE);   /* both halves dirty again */

	reset_subs(fx);
	assert_int_equal(resync_run(&fx->rs), 0);
	assert_int_equal(fx->n_subs, 3);
	check_sub(&fx->subs[0], WIRE_WRITE, WIRE_F_REPLAY, 0, 0, 4 * MiB);
	check_copy(fx, &fx->subs[0]);
	check_sub(&fx->subs[1], WIRE_WRITE, WIRE_F_REPLAY, 0, 4 * MiB, 4 * MiB);
	check_copy(fx, &fx->subs[1]);
	assert_int_equal(fx->lives, 1);
	assert_true(empty(fx));
	pthread_mutex_lock(&fx->lock);
	assert_true(resync_want_full_locked(&fx->rs, 0, 0));   /* no longer pending */
	pthread_mutex_unlock(&fx->lock);
}

/* A full copy's fill id (doc/generations.md): a new one marks the whole
 * LUN and tags the bitmap; after a restart the same id resumes from what
 * the bitmap file holds (a checkpoint cleared the first half), another id
 * starts over. A stop asked for ends the copy after a checkpoint. */
static void test_fill_resumes(void **state)
{
	struct fake *fx = *state;
	ipm_error err = { "" };

	open_luns(fx, 1, 0);
	pthread_mutex_lock(&fx->lock);
	assert_true(resync_want_full_locked(&fx->rs, 0, 0xf1));
	assert_true(dirty_bitmap_tag(fx->rs.luns[0].bitmap) == 0xf1);
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rs.luns[0].bitmap), LUN_SIZE);
	/* a checkpoint once the first half was answered */
	dirty_bitmap_clear_range(fx->rs.luns[0].bitmap, 0, 4 * MiB);
	assert_int_equal(dirty_bitmap_commit(fx->rs.luns[0].bitmap, &err), 0);
	pthread_mutex_unlock(&fx->lock);

	/* a stop: a checkpoint (its FLUSH), nothing more */
	resync_stop_soon(&fx->rs, true);
	assert_int_equal(resync_run(&fx->rs), -ESHUTDOWN);
	assert_int_equal(fx->n_subs, 1);
	check_sub(&fx->subs[0], WIRE_FLUSH, WIRE_F_REPLAY, 0, 0, 0);
	assert_int_equal(fx->lives, 0);
	resync_close(&fx->rs);
	resync_stop_soon(&fx->rs, false);

	/* restarted, the mirror names the same fill: the second half only */
	reset_subs(fx);
	open_luns(fx, 1, 0);
	pthread_mutex_lock(&fx->lock);
	assert_true(resync_want_full_locked(&fx->rs, 0, 0xf1));
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rs.luns[0].bitmap), 4 * MiB);
	pthread_mutex_unlock(&fx->lock);
	assert_int_equal(resync_run(&fx->rs), 0);
	assert_int_equal(fx->n_subs, 2);
	check_sub(&fx->subs[0], WIRE_WRITE, WIRE_F_REPLAY, 0, 4 * MiB, 4 * MiB);
	check_copy(fx, &fx->subs[0]);
	check_sub(&fx->subs[1], WIRE_FLUSH, WIRE_F_REPLAY | WIRE_F_INSYNC, 0, 0, 0);
	assert_true(dirty_bitmap_tag(fx->rs.luns[0].bitmap) == 0);   /* complete */
	resync_close(&fx->rs);

	/* a copy tagged 0xf1 half done, the mirror's is another: all again */
	reset_subs(fx);
	open_luns(fx, 1, 0);
	pthread_mutex_lock(&fx->lock);
	assert_true(resync_want_full_locked(&fx->rs, 0, 0xf1));
	dirty_bitmap_clear_range(fx->rs.luns[0].bitmap, 0, 4 * MiB);
	assert_int_equal(dirty_bitmap_commit(fx->rs.luns[0].bitmap, &err), 0);
	pthread_mutex_unlock(&fx->lock);
	resync_close(&fx->rs);
	open_luns(fx, 1, 0);
	pthread_mutex_lock(&fx->lock);
	assert_true(resync_want_full_locked(&fx->rs, 0, 0xf2));
	assert_int_equal(dirty_bitmap_dirty_bytes(fx->rs.luns[0].bitmap), LUN_SIZE);
	assert_true(dirty_bitmap_tag(fx->rs.luns[0].bitmap) == 0xf2);
	/* the same fill named again (another connection's WELCOME): pending */
	assert_false(resync_want_full_locked(&fx->rs, 0, 0xf2));
	/* invalidated meanwhile: a new id, all again */
	assert_true(resync_want_full_locked(&fx->rs, 0, 0xf3));
	pthread_mutex_unlock(&fx->lock);
	assert_int_equal(resync_run(&fx->rs), 0);
	assert_int_equal(fx->n_subs, 3);
}

/* The mirror's copy after applying every submission in its order. */
static void apply_subs(struct fake *fx, uint32_t lun, uint8_t *mirror)
{
	unsigned i;

	for (i = 0; i < fx->n_subs; i++) {
		const struct sub *s = &fx->subs[i];

		if (s->f.lun != lun)
			continue;
		if (s->f.type == WIRE_WRITE)
			memcpy(mirror + s->f.offset, s->data, s->f.length);
		else if (s->f.type == WIRE_ZERO || s->f.type == WIRE_TRIM)
			memset(mirror + s->f.offset, 0, s->f.length);
	}
}

/* A host write to a run already taken, while its read is in flight. */
static void write_taken_run(void *ctx)
{
	struct fake *fx = ctx;

	pthread_mutex_lock(&fx->lock);
	host_write_locked(fx, 0, 2 * MiB + 4096, 4096, 'z', 0);
	pthread_mutex_unlock(&fx->lock);
}

/* Dirty runs are read RESYNC_READS at once and their reads end out of
 * order; they are still sent in the order they were taken, each with its
 * own data, and a host write that lands on a taken run while it is read
 * is replayed after that run's copy: the mirror ends equal to the local
 * copy whatever the read saw. */
static void test_copy_pipelined(void **state)
{
	struct fake *fx = *state;
	uint8_t *mirror = test_calloc(1, LUN_SIZE);
	unsigned i;

	open_luns(fx, 1, 0);
	fx->rs.ops = &fake_ops_async;
	for (i = 0; i < 4; i++)
		memset(fx->local[0] + 2 * i * MiB, 'A' + i, MiB);
	n_reads = most_reads = n_waits = 0;
	on_wait = write_taken_run;
	pthread_mutex_lock(&fx->lock);
	for (i = 0; i < 4; i++)    /* four runs apart: 0, 2, 4, 6 MiB */
		dirty_bitmap_mark(fx->rs.luns[0].bitmap, 2 * i * MiB, MiB);
	assert_int_equal(resync_sync_locked(&fx->rs), 0);
	pthread_mutex_unlock(&fx->lock);

	assert_int_equal(resync_run(&fx->rs), 0);
	on_wait = NULL;
	assert_int_equal(most_reads, RESYNC_READS);
	assert_int_equal(n_reads, 0);
	for (i = 0; i < 4; i++) {
		check_sub(&fx->subs[i], WIRE_WRITE, WIRE_F_REPLAY, 0, 2 * i * MiB, MiB);
		check_copy(fx, &fx->subs[i]);
	}
	/* the write of the next pass follows the copy of its run */
	check_sub(&fx->subs[4], WIRE_WRITE, WIRE_F_REPLAY, 0, 2 * MiB + 4096, 4096);
	check_filled(&fx->subs[4], 'z');
	assert_true(fx->subs[4].f.dep >= fx->subs[1].f.seq);
	check_sub(&fx->subs[5], WIRE_FLUSH, WIRE_F_REPLAY | WIRE_F_INSYNC, 0, 0, 0);
	assert_int_equal(fx->n_subs, 6);
	memcpy(mirror, fx->local[0], LUN_SIZE);   /* what is not dirty is equal */
	for (i = 0; i < 4; i++)
		memset(mirror + 2 * i * MiB, 0xEE, MiB);
	apply_subs(fx, 0, mirror);
	assert_memory_equal(mirror, fx->local[0], LUN_SIZE);
	assert_int_equal(fx->lives, 1);
	assert_true(empty(fx));
	test_free(mirror);
}

/* The link breaks with reads in flight: every started read is waited for
 * before its buffer goes, and the runs taken but not sent are dirty again. */
static void test_pipeline_link_breaks(void **state)
{
	struct fake *fx = *state;
	uint64_t jb, jr, done, total;
	unsigned i;

	open_luns(fx, 1, 0);
	fx->rs.ops = &fake_ops_async;
	n_reads = most_reads = n_waits = 0;
	pthread_mutex_lock(&fx->lock);
	for (i = 0; i < 4; i++)
		dirty_bitmap_mark(fx->rs.luns[0].bitmap, 2 * i * MiB, MiB);
	pthread_mutex_unlock(&fx->lock);
	fx->down_at = 2;   /* the first copy is out, unanswered */

	assert_true(resync_run(&fx->rs) < 0);
	assert_int_equal(n_reads, 0);
	assert_int_equal(fx->n_subs, 1);
	pthread_mutex_lock(&fx->lock);
	resync_lun_status_locked(&fx->rs, 0, &jb, &jr, &done, &total);
	pthread_mutex_unlock(&fx->lock);
	assert_int_equal(jb, 4 * MiB);   /* the sent one (dropped) and the three read */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_journal_replayed_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holes_and_zeros, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_extents_copied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folded_extents_copied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closing_pass_holds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_go_down_remarks_copies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fill_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_pipelined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipeline_link_breaks, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
