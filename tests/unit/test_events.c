/* test_events.c - the change stream's comparison and lines (agent/events.c):
 * which changes give which lines and handler events, the progress rate
 * limit, the promotion score, the text and JSON forms. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "events.h"

static ipm_conn_status conns[2];
static ipm_lun_status luns[1];

static ipm_status base(void)
{
	ipm_status st = {
		.node = "node1", .peer = "node2", .peer_heartbeat = IPM_LINK_UP,
		.udp_age_ms = 100, .storage_age_ms = -1, .method = IPM_HB_UDP,
		.udp_state = IPM_LINK_UP, .storage_state = IPM_LINK_OFF,
		.n_conns = 2, .conns = conns, .n_luns = 1, .luns = luns,
	};

	conns[0] = (ipm_conn_status){ .index = 0, .status = IPM_LINK_UP, .outgoing = true };
	conns[1] = (ipm_conn_status){ .index = 1, .status = IPM_LINK_UP, .outgoing = true };
	memset(luns, 0, sizeof(luns));
	snprintf(luns[0].name, sizeof(luns[0].name), "vol0");
	luns[0].role = IPM_ROLE_PRIMARY;
	luns[0].mirrored = true;
	luns[0].state = IPM_STATE_UPTODATE;
	luns[0].refusal_age_ms = -1;
	return st;
}

/* A deep copy, so that the test can change one and compare. */
struct snap {
	ipm_status st;
	ipm_conn_status c[2];
	ipm_lun_status l[1];
};

static void take(struct snap *s, const ipm_status *st)
{
	s->st = *st;
	memcpy(s->c, st->conns, sizeof(s->c));
	memcpy(s->l, st->luns, sizeof(s->l));
	s->st.conns = s->c;
	s->st.luns = s->l;
}

/* All lines of l, text form, time 0. */
static void lines(const struct ev_list *l, struct strbuf *sb)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		ev_render(&l->v[i], 0, false, sb);
}

#define assert_has(hay, needle) do { \
	if (!strstr((hay) ? (hay) : "", (needle))) \
		fail_msg("missing %s in %s", (needle), (hay) ? (hay) : "(nothing)"); \
} while (0)

static const struct ev_item *with_handler(const struct ev_list *l, const char *h)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].handler && strcmp(l->v[i].handler, h) == 0)
			return &l->v[i];
	return NULL;
}

static unsigned handlers(const struct ev_list *l)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < l->n; i++)
		n += l->v[i].handler != NULL;
	return n;
}

static void test_exists(void **state)
{
	ipm_status st = base();
	struct ev_state mem = { 0 };
	struct ev_list l = { 0 };
	struct strbuf sb = STRBUF_INIT;

	events_diff(NULL, &st, NULL, &mem, 0, &l);
	lines(&l, &sb);
	assert_has(sb.buf, "1970-01-01T00:00:00.000Z exists peer name:node2 heartbeat:up\n");
	assert_has(sb.buf, "exists path peer:node2 path:udp state:up\n");
	assert_has(sb.buf, "exists path peer:node2 path:storage state:off\n");
	assert_has(sb.buf, "exists connection peer:node2 index:1 direction:outgoing status:up\n");
	assert_has(sb.buf, "exists lun name:vol0 role:primary state:uptodate\n");
	assert_has(sb.buf, "exists promotion name:vol0 score:110\n");
	assert_int_equal(handlers(&l), 0);
	sb_free(&sb);
	ev_list_free(&l);
	ev_state_free(&mem);
}

static void test_no_change_no_line(void **state)
{
	ipm_status st = base();
	struct ev_state mem = { 0 };
	struct ev_list l = { 0 };
	struct snap old;

	events_diff(NULL, &st, NULL, &mem, 0, &l);
	ev_list_free(&l);
	take(&old, &st);
	st.udp_age_ms = 600; /* ages move all the time: no line */
	events_diff(&old.st, &st, NULL, &mem, 100, &l);
	assert_int_equal(l.n, 0);
	ev_state_free(&mem);
}

static void test_link_cut(void **state)
{
	ipm_status st = base();
	struct ev_state mem = { 0 };
	struct ev_list l = { 0 };
	struct strbuf sb = STRBUF_INIT;
	const struct ev_item *it;
	struct snap old;

	events_diff(NULL, &st, NULL, &mem, 0, &l);
	ev_list_free(&l);
	take(&old, &st);
	st.peer_heartbeat = st.udp_state = IPM_LINK_DOWN;
	conns[0].status = conns[1].status = IPM_LINK_DOWN;
	luns[0].state = IPM_STATE_JOURNALING;
	events_diff(&old.st, &st, NULL, &mem, 1000, &l);
	lines(&l, &sb);
	assert_has(sb.buf, "change peer name:node2 heartbeat:down\n");
	assert_has(sb.buf, "change path peer:node2 path:udp state:down\n");
	assert_has(sb.buf, "change connection peer:node2 index:0 direction:outgoing status:down\n");
	assert_has(sb.buf, "change lun name:vol0 role:primary state:journaling old-state:uptodate\n");
	it = with_handler(&l, "peer-lost");
	assert_non_null(it);
	assert_string_equal(it->lun, "");
	assert_string_equal(it->state, "down");
	assert_int_equal(handlers(&l), 1);
	sb_free(&sb);
	ev_list_free(&l);
	ev_state_free(&mem);
}

/* A fresh engine's heartbeat starts down: no peer-lost until seen up. */
static void test_no_peer_lost_before_seen(void **state)
{
	ipm_status st = base();
	struct ev_state mem = { 0 };
	struct ev_list l = { 0 };
	struct snap old;

	st.peer_heartbeat = IPM_LINK_PROBATION;
	events_diff(NULL, &st, NULL, &mem, 0, &l);
	ev_list_free(&l);
	take(&old, &st);
	st.peer_heartbeat = IPM_LINK_DOWN;
	events_diff(&old.st, &st, NULL, &mem, 100, &l);
	assert_int_equal(l.n, 1);
	assert_null(with_handler(&l, "peer-lost"));
	ev_list_free(&l);
	ev_state_free(&mem);
}

static void test_lun_handlers(void **state)
{
	static const struct { enum ipm_role r0, r1; enum ipm_lun_state s0, s1; const char *h; } t[] = {
		{ IPM_ROLE_PRIMARY, IPM_ROLE_PRIMARY, IPM_STATE_PROBATION, IPM_STATE_RESYNCING, "resync-start" },
		{ IPM_ROLE_PRIMARY, IPM_ROLE_PRIMARY, IPM_STATE_RESYNCING, IPM_STATE_UPTODATE, "resync-done" },
		{ IPM_ROLE_MIRROR, IPM_ROLE_MIRROR, IPM_STATE_INCONSISTENT, IPM_STATE_UPTODATE, "resync-done" },
		{ IPM_ROLE_MIRROR, IPM_ROLE_MIRROR, IPM_STATE_OUTDATED, IPM_STATE_SPLITBRAIN, "split-brain" },
		{ IPM_ROLE_PRIMARY, IPM_ROLE_MIRROR, IPM_STATE_UPTODATE, IPM_STATE_OUTDATED, "role-change" },
		{ IPM_ROLE_PRIMARY, IPM_ROLE_PRIMARY, IPM_STATE_UPTODATE, IPM_STATE_JOURNALING, NULL },
	};
	struct ev_state mem = { 0 };
	struct ev_list l = { 0 };
	ipm_status st;
	struct snap old;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		st = base();
		luns[0].role = t[i].r0;
		luns[0].state = t[i].s0;
		take(&old, &st);
		luns[0].role = t[i].r1;
		luns[0].state = t[i].s1;
		events_diff(&old.st, &st, NULL, &mem, 0, &l);
		if (t[i].h) {
			const struct ev_item *it = with_handler(&l, t[i].h);

			assert_non_null(it);
			assert_string_equal(it->lun, "vol0");
			assert_string_equal(it->state, ipm_state_name(t[i].s1));
		} else {
			assert_int_equal(handlers(&l), 0);
		}
		ev_list_free(&l);
	}
	ev_state_free(&mem);
}

static void test_progress_once_a_second(void **state)
{
	ipm_status st = base();
	struct ev_state mem = { 0 };
	struct ev_list l = { 0 };
	struct strbuf sb = STRBUF_INIT;
	struct snap old;

	luns[0].state = IPM_STATE_RESYNCING;
	luns[0].resync_total_bytes = 1000;
	luns[0].resync_done_bytes = 100;
	take(&old, &st);
	events_diff(&old.st, &st, NULL, &mem, 10000, &l);
	lines(&l, &sb);
	assert_has(sb.buf, "change progress name:vol0 kind:resync done:100 total:1000 percent:10.0 rate:0 eta:0\n");
	ev_list_free(&l);
	luns[0].resync_done_bytes = 200;          /* 0.5 s later: none */
	events_diff(&old.st, &st, NULL, &mem, 10500, &l);
	assert_int_equal(l.n, 0);
	luns[0].resync_done_bytes = 300;          /* 1 s after the first: one */
	events_diff(&old.st, &st, NULL, &mem, 11000, &l);
	assert_int_equal(l.n, 1);
	ev_list_free(&l);
	events_diff(&old.st, &st, NULL, &mem, 13000, &l); /* no progress: none */
	assert_int_equal(l.n, 0);
	luns[0].peer_inconsistent = true;
	luns[0].resync_done_bytes = 400;
	events_diff(&old.st, &st, NULL, &mem, 13000, &l);
	sb_free(&sb);
	lines(&l, &sb);
	assert_has(sb.buf, "kind:initial-sync done:400");
	sb_free(&sb);
	ev_list_free(&l);
	ev_state_free(&mem);
}

static void test_verify_progress(void **state)
{
	ipm_status st = base();
	struct ev_state mem = { 0 };
	struct ev_list l = { 0 };
	struct strbuf sb = STRBUF_INIT;
	struct snap old;

	luns[0].verify_running = true;
	luns[0].verify_total_bytes = 4096;
	luns[0].verify_done_bytes = 1024;
	luns[0].verify_out_of_sync_bytes = 512;
	take(&old, &st);
	events_diff(&old.st, &st, NULL, &mem, 5000, &l);
	lines(&l, &sb);
	assert_has(sb.buf, "change progress name:vol0 kind:verify done:1024 total:4096 percent:25.0 out_of_sync:512\n");
	ev_list_free(&l);
	luns[0].verify_done_bytes = 2048;          /* within the second: none */
	events_diff(&old.st, &st, NULL, &mem, 5400, &l);
	assert_int_equal(l.n, 0);
	luns[0].verify_running = false;            /* ended: no more lines */
	events_diff(&old.st, &st, NULL, &mem, 9000, &l);
	assert_int_equal(l.n, 0);
	sb_free(&sb);
	ev_state_free(&mem);
}

static void test_io_errors(void **state)
{
	ipm_status st = base();
	struct ev_state mem = { 0 };
	struct ev_list l = { 0 };
	struct strbuf sb = STRBUF_INIT;
	const struct ev_item *it;
	struct snap old;

	take(&old, &st);
	luns[0].local_io_errors = 3;
	events_diff(&old.st, &st, NULL, &mem, 0, &l);
	lines(&l, &sb);
	assert_has(sb.buf, "change io-error name:vol0 errors:3\n");
	it = with_handler(&l, "local-io-error");
	assert_non_null(it);
	assert_string_equal(it->lun, "vol0");
	assert_string_equal(it->state, "uptodate");
	ev_list_free(&l);
	take(&old, &st);                     /* no new error: no line */
	events_diff(&old.st, &st, NULL, &mem, 0, &l);
	assert_int_equal(l.n, 0);
	sb_free(&sb);
	ev_state_free(&mem);
}

static bool yes(void *o, const char *lun) { (void)o; (void)lun; return true; }
static int fenced_now;
static int fenced(void *o, const char *lun) { (void)o; (void)lun; return fenced_now; }

static void test_fencing_and_score(void **state)
{
	struct events_hooks h = { yes, fenced, NULL };
	ipm_status st = base();
	struct ev_state mem = { 0 };
	struct ev_list l = { 0 };
	struct strbuf sb = STRBUF_INIT;
	const struct ev_item *it;
	struct snap old;

	fenced_now = 0;
	events_diff(NULL, &st, &h, &mem, 0, &l);
	lines(&l, &sb);
	assert_has(sb.buf, "exists fencing name:vol0 fenced:no\n");
	ev_list_free(&l);
	sb_free(&sb);
	take(&old, &st);
	fenced_now = 1;
	luns[0].role = IPM_ROLE_MIRROR;
	luns[0].state = IPM_STATE_OUTDATED;
	st.peer_heartbeat = IPM_LINK_DOWN;
	events_diff(&old.st, &st, &h, &mem, 0, &l);
	lines(&l, &sb);
	assert_has(sb.buf, "change fencing name:vol0 fenced:yes\n");
	/* a consistent mirror whose peer is gone: promotable alone */
	assert_has(sb.buf, "change promotion name:vol0 score:10\n");
	it = with_handler(&l, "fenced");
	assert_non_null(it);
	sb_free(&sb);
	ev_list_free(&l);
	ev_state_free(&mem);
	luns[0].state = IPM_STATE_INCONSISTENT;
	assert_int_equal(events_promotion_score(&st, &luns[0], true), -1);
	luns[0].state = IPM_STATE_UPTODATE;
	st.peer_heartbeat = IPM_LINK_UP;
	assert_int_equal(events_promotion_score(&st, &luns[0], false), 100);
}

static void test_refusal_and_quoting(void **state)
{
	ipm_status st = base();
	struct ev_state mem = { 0 };
	struct ev_list l = { 0 };
	struct strbuf sb = STRBUF_INIT;
	struct snap old;

	take(&old, &st);
	snprintf(luns[0].refusal, sizeof(luns[0].refusal), "refused by node2: lun \"vol0\" x\\y");
	luns[0].refusal_age_ms = 5;
	events_diff(&old.st, &st, NULL, &mem, 0, &l);
	lines(&l, &sb);
	assert_has(sb.buf, "change refusal name:vol0 reason:\"refused by node2: lun \\\"vol0\\\" x\\\\y\" age_ms:5\n");
	sb_free(&sb);
	ev_render(&l.v[0], 1500, true, &sb);
	assert_string_equal(sb.buf, "{\"time\":\"1970-01-01T00:00:01.500Z\",\"action\":\"change\","
			    "\"object\":\"refusal\",\"name\":\"vol0\",\"reason\":\"refused by node2: "
			    "lun \\\"vol0\\\" x\\\\y\",\"age_ms\":5}\n");
	sb_free(&sb);
	ev_list_free(&l);
	/* the same refusal, older: no new line; a newer one: a line */
	take(&old, &st);
	luns[0].refusal_age_ms = 400;
	events_diff(&old.st, &st, NULL, &mem, 0, &l);
	assert_int_equal(l.n, 0);
	take(&old, &st);
	luns[0].refusal_age_ms = 3;
	events_diff(&old.st, &st, NULL, &mem, 0, &l);
	assert_int_equal(l.n, 1);
	ev_list_free(&l);
	ev_state_free(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exists),
		cmocka_unit_test(test_no_change_no_line),
		cmocka_unit_test(test_link_cut),
		cmocka_unit_test(test_no_peer_lost_before_seen),
		cmocka_unit_test(test_lun_handlers),
		cmocka_unit_test(test_progress_once_a_second),
		cmocka_unit_test(test_verify_progress),
		cmocka_unit_test(test_io_errors),
		cmocka_unit_test(test_fencing_and_score),
		cmocka_unit_test(test_refusal_and_quoting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
