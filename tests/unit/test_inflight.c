/* test_inflight.c - the primary's requests in flight (inflight.c): the table
 * by sequence number and the lowest unanswered, the send queue and re-sends
 * after a lost connection, overlapping writes; and its room in flight: the
 * window of requests and WIRE_MAX_INFLIGHT_BYTES of their payload, the bound
 * the mirror holds it to (doc/wire.md, "The mirror's budget"). */
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

static struct mreq *req(uint64_t seq, uint16_t type, uint64_t off, uint64_t len)
{
	struct mreq *m = test_calloc(1, sizeof(*m));

	m->f = (struct wire_frame){ .type = type, .seq = seq, .offset = off, .length = len };
	m->conn = -1;
	return m;
}

/* A table of 8 buckets, so that chains hold several requests. */
static void table_init(struct replicator *r, struct mreq **buckets)
{
	*r = (struct replicator){ .hash = buckets, .hash_mask = 7 };
}

/* Answers come back in any order over n connections: each one is found by
 * its number, once, and the lowest unanswered follows the holes. */
static void test_table_lowest_unanswered(void **state)
{
	struct mreq *buckets[8] = { NULL }, *m[21];
	struct replicator r;
	uint64_t i;

	table_init(&r, buckets);
	assert_int_equal(lowest_unacked(&r), 1);  /* nothing in flight */
	for (i = 1; i <= 20; i++) {
		m[i] = req(i, WIRE_WRITE, i * 4096, 4096);
		hash_insert(&r, m[i]);
	}
	r.next_seq = 20;
	assert_int_equal(lowest_unacked(&r), 1);
	assert_ptr_equal(hash_remove(&r, 9), m[9]);   /* same chain as 1 and 17 */
	assert_null(hash_remove(&r, 9));              /* a duplicate answer */
	assert_ptr_equal(hash_remove(&r, 1), m[1]);
	assert_int_equal(lowest_unacked(&r), 2);
	for (i = 2; i <= 16; i++)
		if (i != 9)
			assert_ptr_equal(hash_remove(&r, i), m[i]);
	assert_int_equal(lowest_unacked(&r), 17);
	assert_null(hash_remove(&r, 21));             /* never sent */
	for (i = 17; i <= 20; i++)
		assert_ptr_equal(hash_remove(&r, i), m[i]);
	assert_int_equal(lowest_unacked(&r), 21);
	for (i = 1; i <= 20; i++)
		test_free(m[i]);
}

static void expect_queue(const struct replicator *r, const uint64_t *seqs, unsigned n)
{
	const struct mreq *m = r->qhead;
	unsigned i;

	for (i = 0; i < n; i++, m = m->qnext) {
		assert_non_null(m);
		assert_int_equal(m->f.seq, seqs[i]);
	}
	assert_null(m);
	assert_int_equal(r->qtail->f.seq, seqs[n - 1]);
}

/* A lost connection's unanswered requests go back ahead of newer ones, in
 * sequence order, wherever they were in the queue. */
static void test_queue_resend_in_order(void **state)
{
	static const uint64_t after_resend[] = { 2, 3, 5, 7, 8, 9 };
	static const uint64_t after_tail[] = { 2, 3, 5, 7, 8, 9, 12 };
	struct replicator r = { 0 };
	struct mreq *m[13];
	uint64_t i;

	for (i = 1; i <= 12; i++)
		m[i] = req(i, WIRE_WRITE, 0, 512);
	queue_append(&r, m[7]);
	queue_append(&r, m[8]);
	queue_append(&r, m[9]);
	queue_insert_sorted(&r, m[5]);   /* re-sent: ahead of the newer ones */
	queue_insert_sorted(&r, m[2]);
	queue_insert_sorted(&r, m[3]);
	expect_queue(&r, after_resend, 6);
	queue_insert_sorted(&r, m[12]);  /* newest: the tail moves */
	expect_queue(&r, after_tail, 7);
	for (i = 1; i <= 12; i++)
		test_free(m[i]);
}

/* Writes whose ranges touch are serialised, flushes never overlap, and a
 * removed write no longer counts. */
static void test_overlapping_writes(void **state)
{
	struct rep_lun rl = { 0 };
	struct mreq *a = req(1, WIRE_WRITE, 8192, 4096), *b = req(2, WIRE_ZERO, 65536, 65536);
	struct wire_frame f = { .type = WIRE_WRITE, .offset = 12288, .length = 4096 };
	struct wire_frame flush = { .type = WIRE_FLUSH };

	assert_false(overlaps(&rl, &f));
	active_add(&rl, a);
	active_add(&rl, b);
	assert_false(overlaps(&rl, &f));             /* adjacent, not overlapping */
	f.offset = 12287;
	assert_true(overlaps(&rl, &f));              /* one byte into a */
	f = (struct wire_frame){ .type = WIRE_TRIM, .offset = 131071, .length = 10 };
	assert_true(overlaps(&rl, &f));              /* the last byte of b */
	assert_false(overlaps(&rl, &flush));
	active_remove(&rl, b);
	assert_false(overlaps(&rl, &f));
	active_remove(&rl, b);                       /* twice is harmless */
	f = (struct wire_frame){ .type = WIRE_WRITE, .offset = 0, .length = 1 << 20 };
	assert_true(overlaps(&rl, &f));
	active_remove(&rl, a);
	assert_null(rl.active);
	assert_false(overlaps(&rl, &f));
	test_free(a);
	test_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_counts_requests),
		cmocka_unit_test(test_window_counts_bytes),
		cmocka_unit_test(test_table_lowest_unanswered),
		cmocka_unit_test(test_queue_resend_in_order),
		cmocka_unit_test(test_overlapping_writes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
