/* test_status_render.c - status as JSON (valid, ipmirrorctl(8) keys, escaping,
 * LUN filter) and as the human table. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "status_render.h"

/* ---- a strict JSON syntax checker (RFC 8259 grammar) ------------------- */

static const char *json_value(const char *p, int depth);

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *json_str(const char *p)
{
	int i;

	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL; /* raw control bytes, NUL included */
		if (*p++ != '\\')
			continue;
		if (*p == 'u') {
			for (i = 1; i <= 4; i++)
				if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
					return NULL;
			p += 5;
		} else if (*p && strchr("\"\\/bfnrt", *p)) {
			p++;
		} else {
			return NULL;
		}
	}
	return p + 1;
}

static const char *json_num(const char *p)
{
	const char *start;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (*p == '.') {
		start = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == start)
			return NULL;
	}
	return p;
}

static const char *json_seq(const char *p, char close, bool members, int depth)
{
	p = ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (members) {
			p = json_str(p);
			if (!p)
				return NULL;
			p = ws(p);
			if (*p++ != ':')
				return NULL;
		}
		p = json_value(p, depth + 1);
		if (!p)
			return NULL;
		p = ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *json_value(const char *p, int depth)
{
	if (depth > 32)
		return NULL;
	p = ws(p);
	switch (*p) {
	case '{': return json_seq(p, '}', true, depth);
	case '[': return json_seq(p, ']', false, depth);
	case '"': return json_str(p);
	case 't': return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f': return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n': return strncmp(p, "null", 4) ? NULL : p + 4;
	default: return json_num(p);
	}
}

static bool json_valid(const char *doc)
{
	const char *end = json_value(doc, 0);

	return end && *ws(end) == '\0';
}

/* the checker itself must reject what is not JSON */
static void test_checker_rejects_bad_json(void **state)
{
	assert_true(json_valid("{\"a\":[1,-2.5,true,null,\"x\\u00e9\"]}\n"));
	assert_false(json_valid("{\"a\":1,}"));
	assert_false(json_valid("{\"a\":\"x\ny\"}"));
	assert_false(json_valid("{\"a\":\"\\q\"}"));
	assert_false(json_valid("{\"a\":1"));
	assert_false(json_valid("[01]"));
	assert_false(json_valid("{\"a\":1}}"));
}

/* ---- fixtures ----------------------------------------------------------- */

static ipm_conn_status conns[3] = {
	{ .index = 0, .status = IPM_LINK_UP, .age_ms = 420, .outgoing = true },
	{ .index = 1, .status = IPM_LINK_DOWN, .age_ms = -1, .outgoing = true },
	{ .index = 0, .status = IPM_LINK_UP, .age_ms = 7, .outgoing = false },
};

static ipm_lun_status luns[2] = {
	{ .name = "vol0", .role = IPM_ROLE_PRIMARY, .mode = IPM_MODE_SYNC, .mirrored = true,
	  .state = IPM_STATE_RESYNCING, .size = 1ull << 30, .journal_bytes = 12288,
	  .journal_records = 3, .resync_done_bytes = 512ull << 20,
	  .resync_total_bytes = 1ull << 30, .mirrored_bytes = 99, .generation = "abcdef0123456789",
	  .direct_io = true, .verify_running = true, .verify_done_bytes = 256ull << 20,
	  .verify_total_bytes = 1ull << 30, .verify_out_of_sync_bytes = 3ull << 20 },
	{ .name = "vol1", .role = IPM_ROLE_MIRROR, .mode = IPM_MODE_ASYNC, .mirrored = false,
	  .state = IPM_STATE_UPTODATE, .size = 4096, .generation = "0" },
};

static ipm_status paired(void)
{
	ipm_status st = {
		.node = "node1", .peer = "node2", .peer_heartbeat = IPM_LINK_PROBATION,
		.udp_age_ms = 1500, .storage_age_ms = -1, .method = IPM_HB_BOTH,
		.udp_state = IPM_LINK_PROBATION, .storage_state = IPM_LINK_OFF,
		.n_conns = 3, .conns = conns, .n_luns = 2, .luns = luns,
	};
	return st;
}

static ipm_status solo(void)
{
	ipm_status st = {
		.node = "solo", .peer = "", .peer_heartbeat = IPM_LINK_OFF, .udp_age_ms = -1,
		.storage_age_ms = -1, .n_luns = 1, .luns = &luns[1],
	};
	return st;
}

#define assert_has(hay, needle) do { \
	if (!strstr((hay), (needle))) \
		fail_msg("missing %s in %s", (needle), (hay)); \
} while (0)
#define assert_lacks(hay, needle) do { \
	if (strstr((hay), (needle))) \
		fail_msg("unexpected %s in %s", (needle), (hay)); \
} while (0)

/* ---- JSON --------------------------------------------------------------- */

static void test_json_keys(void **state)
{
	ipm_status st = paired();
	struct strbuf sb = STRBUF_INIT;

	st.luns[0].inflight = 2;
	st.luns[0].inflight_bytes = 8192;
	st.luns[0].refusal_age_ms = 1500;
	snprintf(st.luns[0].refusal, sizeof(st.luns[0].refusal), "refused by node2: \"x\"");
	assert_int_equal(status_render_json(&st, NULL, &sb), 0);
	assert_true(json_valid(sb.buf));
	assert_int_equal(sb.len, strlen(sb.buf));
	assert_has(sb.buf, "{\"schema\":1,\"node\":\"node1\",");
	assert_has(sb.buf, "\"peer\":{\"name\":\"node2\",\"heartbeat\":\"probation\","
		   "\"udp_age_ms\":1500,\"storage_age_ms\":-1,\"method\":\"both\",");
	assert_has(sb.buf, "\"storage\":\"off\",\"failure\":\"unknown\","
		   "\"storage_serial\":0,\"volume\":\"\"}");
	assert_has(sb.buf, "\"connections\":[{\"index\":0,\"direction\":\"outgoing\","
		   "\"status\":\"up\",\"age_ms\":420},");
	assert_has(sb.buf, "{\"index\":1,\"direction\":\"outgoing\",\"status\":\"down\","
		   "\"age_ms\":-1}");
	assert_has(sb.buf, "{\"index\":0,\"direction\":\"incoming\",\"status\":\"up\","
		   "\"age_ms\":7}]");
	assert_has(sb.buf, "{\"name\":\"vol0\",\"role\":\"primary\",\"mode\":\"sync\","
		   "\"mirrored\":true,\"state\":\"resyncing\",\"size\":1073741824,"
		   "\"journal_bytes\":12288,\"journal_records\":3,"
		   "\"resync_done_bytes\":536870912,\"resync_total_bytes\":1073741824,"
		   "\"resync_rate\":0,\"resync_eta_s\":0,\"consistent\":false,"
		   "\"peer_inconsistent\":false,\"mirrored_bytes\":99,\"io\":\"direct\","
		   "\"inflight\":2,\"inflight_bytes\":8192,\"local_io_errors\":0,\"disk\":\"ok\",\"remote_reads\":0,\"refusal_age_ms\":1500,"
		   "\"refusal\":\"refused by node2: \\\"x\\\"\",\"generation\":\"abcdef0123456789\","
		   "\"verify\":{\"running\":true,\"done_bytes\":268435456,\"total_bytes\":1073741824,"
		   "\"out_of_sync_bytes\":3145728}}");
	assert_has(sb.buf, "{\"name\":\"vol1\",\"role\":\"mirror\",\"mode\":\"async\","
		   "\"mirrored\":false,\"state\":\"uptodate\",\"size\":4096,");
	/* the object of DESIGN.md even where no verify ran */
	assert_has(sb.buf, "\"generation\":\"0\",\"verify\":{\"running\":false,\"done_bytes\":0,"
		   "\"total_bytes\":0,\"out_of_sync_bytes\":0}}]}\n");
	sb_free(&sb);
}

static void test_json_no_peer(void **state)
{
	ipm_status st = solo();
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(status_render_json(&st, NULL, &sb), 0);
	assert_true(json_valid(sb.buf));
	assert_has(sb.buf, "\"peer\":null,\"connections\":[],\"luns\":[{\"name\":\"vol1\"");
	sb_free(&sb);
}

static void test_json_escaping(void **state)
{
	ipm_status st = solo();
	ipm_lun_status l = luns[1];
	struct strbuf sb = STRBUF_INIT;

	snprintf(st.node, sizeof(st.node), "a\"b\\c\nd\te\x01" "f\x7f" "\xc3\xa9");
	snprintf(l.name, sizeof(l.name), "</x>\"");
	snprintf(l.generation, sizeof(l.generation), "g\"");
	st.luns = &l;
	assert_int_equal(status_render_json(&st, NULL, &sb), 0);
	assert_true(json_valid(sb.buf));
	assert_has(sb.buf, "\"node\":\"a\\\"b\\\\c\\nd\\te\\u0001f\\u007f\xc3\xa9\"");
	assert_has(sb.buf, "\"name\":\"</x>\\\"\"");
	assert_has(sb.buf, "\"generation\":\"g\\\"\"");
	sb_free(&sb);
}

static void test_json_filter(void **state)
{
	ipm_status st = paired();
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(status_render_json(&st, "vol1", &sb), 0);
	assert_true(json_valid(sb.buf));
	assert_has(sb.buf, "\"luns\":[{\"name\":\"vol1\"");
	assert_lacks(sb.buf, "vol0");
	/* node, peer and connections stay */
	assert_has(sb.buf, "\"connections\":[{\"index\":0");
	sb_free(&sb);

	assert_int_equal(status_render_json(&st, "", &sb), 0);
	assert_has(sb.buf, "vol0");
	assert_has(sb.buf, "vol1");
	sb_free(&sb);

	assert_int_equal(status_render_json(&st, "vol", &sb), -ENOENT);
	assert_int_equal(sb.len, 0);
	assert_null(status_find_lun(&st, "vol"));
	assert_ptr_equal(status_find_lun(&st, "vol1"), &luns[1]);
}

/* ---- table -------------------------------------------------------------- */

static void test_text_table(void **state)
{
	ipm_status st = paired();
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(status_render_text(&st, NULL, &sb), 0);
	assert_has(sb.buf, "node node1  peer node2  heartbeat probation (method both; "
		   "udp 1500 ms ago, storage off)\n");
	assert_has(sb.buf, "heartbeat path failure: unknown (udp probation, storage off)\n");
	assert_has(sb.buf, "LUN   ROLE     MODE   MIRRORED  STATE");
	assert_has(sb.buf, "vol0  primary  sync   yes       resyncing        1.0 GiB  "
		   "12.0 KiB/3          50.0%\n"
		   "      verify running 25.0%, 3.0 MiB out of sync\n");
	assert_has(sb.buf, "vol1  mirror   async  no        uptodate         4.0 KiB  "
		   "0 B/0               -\n");
	assert_lacks(sb.buf, "vol1  mirror   async  no        uptodate         4.0 KiB  "
		     "0 B/0               -\n      verify");
	assert_has(sb.buf, "connection 0   outgoing  up    420 ms ago\n");
	assert_has(sb.buf, "connection 1   outgoing  down  never\n");
	assert_has(sb.buf, "connection 0   incoming  up    7 ms ago\n");
	sb_free(&sb);

	assert_int_equal(status_render_text(&st, "vol0", &sb), 0);
	assert_has(sb.buf, "vol0  primary");
	assert_lacks(sb.buf, "vol1");
	sb_free(&sb);
	assert_int_equal(status_render_text(&st, "x", &sb), -ENOENT);
	assert_int_equal(sb.len, 0);

	st = solo();
	assert_int_equal(status_render_text(&st, NULL, &sb), 0);
	assert_has(sb.buf, "node solo (no peer)\n");
	assert_lacks(sb.buf, "connection");
	sb_free(&sb);
}

/* a long LUN name widens the column instead of breaking it */
static void test_text_wide_name(void **state)
{
	ipm_status st = solo();
	ipm_lun_status l = luns[1];
	struct strbuf sb = STRBUF_INIT;

	snprintf(l.name, sizeof(l.name), "a-rather-long-volume-name");
	st.luns = &l;
	assert_int_equal(status_render_text(&st, NULL, &sb), 0);
	assert_has(sb.buf, "LUN                        ROLE");
	assert_has(sb.buf, "a-rather-long-volume-name  mirror");
	sb_free(&sb);
}

static void test_strbuf_grows(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	int i;

	for (i = 0; i < 10000; i++)
		sb_printf(&sb, "%04d,", i);
	assert_int_equal(sb.err, 0);
	assert_int_equal(sb.len, 50000);
	assert_int_equal(strlen(sb.buf), 50000);
	assert_memory_equal(sb.buf + 49995, "9999,", 5);
	sb_free(&sb);
	assert_null(sb.buf);
}

/* ---- status --get --------------------------------------------------------- */

static void test_get(void **state)
{
	ipm_status st = paired();
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(status_render_get(&st, "vol0", "role,state,journal_bytes,heartbeat", &sb), 0);
	assert_string_equal(sb.buf, "primary\nresyncing\n12288\nprobation\n");
	sb_free(&sb);
	assert_int_equal(status_render_get(&st, "vol1", "role", &sb), 0);
	assert_string_equal(sb.buf, "mirror\n");
	sb_free(&sb);
	assert_int_equal(status_render_get(&st, NULL, "node,peer,schema", &sb), 0);
	assert_string_equal(sb.buf, "node1\nnode2\n1\n");
	sb_free(&sb);
	assert_int_equal(status_render_get(&st, NULL, "state", &sb), -EINVAL);
	assert_string_equal(sb.buf, "key \"state\" is a LUN's: name the LUN");
	sb_free(&sb);
	assert_int_equal(status_render_get(&st, "vol0", "role,bogus", &sb), -EINVAL);
	assert_string_equal(sb.buf, "unknown key \"bogus\" (see ipmirrorctl(8))");
	sb_free(&sb);
	assert_int_equal(status_render_get(&st, "nope", "role", &sb), -ENOENT);
	sb_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checker_rejects_bad_json),
		cmocka_unit_test(test_json_keys),
		cmocka_unit_test(test_json_no_peer),
		cmocka_unit_test(test_json_escaping),
		cmocka_unit_test(test_json_filter),
		cmocka_unit_test(test_text_table),
		cmocka_unit_test(test_text_wide_name),
		cmocka_unit_test(test_strbuf_grows),
		cmocka_unit_test(test_get),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
