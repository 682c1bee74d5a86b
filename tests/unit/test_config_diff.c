/* test_config_diff.c - a reload's view of the config file (config_diff.c):
 * identical files differ in nothing; each live attribute is one change of
 * its kind on its line; each attribute that needs a restart is refused with
 * its line; only this node's backing counts; LUNs added and removed; the
 * daemon's copy follows the file's changes and keeps its run-time roles. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config_diff.h"

/* The settings of one version of the file. */
struct spec {
	unsigned conns;
	const char *interval, *method, *level;
	unsigned window;
	const char *rate;
	unsigned data_port;
	const char *mode, *back1, *back2, *jmax, *size;
	const char *extra;    /* a line after vol0 (line 15) */
};

static const struct spec base = {
	.conns = 4, .interval = "1.5", .method = "udp", .level = "info", .window = 1024,
	.rate = "100M", .data_port = 7788, .mode = "sync", .back1 = "/srv/n1.img",
	.back2 = "/srv/n2.img", .jmax = "1G", .size = "1G",
	.extra = "<lun name=\"vol1\" size=\"1M\" primary=\"node2\"><backing path=\"/srv/v1.img\"/></lun>",
};

static ipm_config *load(const struct spec *s)
{
	char path[] = "/tmp/test_config_diff.XXXXXX";
	ipm_config *cfg = NULL;
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f,
		"<ipmirror version=\"1\">\n"
		"  <secret file=\"/etc/ipmirror/secret\"/>\n"
		"  <connections count=\"%u\"/>\n"
		"  <heartbeat interval=\"%s\" timeout=\"4.0\" probation=\"10\" method=\"%s\"/>\n"
		"  <log level=\"%s\"/>\n"
		"  <mirror async-window=\"%u\"/>\n"
		"  <resync rate=\"%s\"/>\n"
		"  <node name=\"node1\"><data address=\"10.0.0.1\" port=\"%u\"/><heartbeat address=\"10.0.0.1\" port=\"7789\"/><nbd address=\"0.0.0.0\" port=\"10809\"/></node>\n"
		"  <node name=\"node2\"><data address=\"10.0.0.2\" port=\"7788\"/><heartbeat address=\"10.0.0.2\" port=\"7789\"/><nbd address=\"0.0.0.0\" port=\"10809\"/></node>\n"
		"  <lun name=\"vol0\" size=\"%s\" mode=\"%s\" primary=\"node1\">\n"
		"    <backing node=\"node1\" path=\"%s\"/>\n"
		"    <backing node=\"node2\" path=\"%s\"/>\n"
		"    <journal max-size=\"%s\"/>\n"
		"  </lun>\n"
		"  %s\n"
		"</ipmirror>\n",
		s->conns, s->interval, s->method, s->level, s->window, s->rate, s->data_port,
		s->size, s->mode, s->back1, s->back2, s->jmax, s->extra);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ipm_config_load(path, getenv("IPMIRROR_SCHEMA"), NULL, NULL, &cfg), 0);
	unlink(path);
	return cfg;
}

/* base against s, on node1 */
static void diff_of(const struct spec *s, struct cfg_diff *d)
{
	ipm_config *a = load(&base), *b = load(s);

	assert_int_equal(cfg_diff(a, b, "node1", d), 0);
	ipm_config_free(a);
	ipm_config_free(b);
}

static void expect(const struct cfg_diff *d, unsigned i, enum cfg_change_kind kind, int line,
		   const char *text)
{
	assert_true(i < d->n);
	if (d->v[i].kind != kind || d->v[i].line != line || !strstr(d->v[i].text, text))
		fail_msg("change %u: kind %d line %d \"%s\"; expected kind %d line %d \"%s\"", i,
			 d->v[i].kind, d->v[i].line, d->v[i].text, kind, line, text);
}

static void test_identical(void **state)
{
	struct cfg_diff d;

	(void)state;
	diff_of(&base, &d);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.n_restart, 0);
	cfg_diff_free(&d);
}

static void test_live(void **state)
{
	struct spec s = base;
	struct cfg_diff d;

	(void)state;
	s.interval = "1";
	s.method = "both";
	s.level = "debug";
	s.window = 64;
	s.rate = "0";
	s.mode = "async";
	s.jmax = "64M";
	diff_of(&s, &d);
	assert_int_equal(d.n_restart, 0);
	assert_int_equal(d.n, 7);
	expect(&d, 0, CHG_HB_TIMES, 4, "heartbeat interval 1.5 -> 1 (seconds)");
	expect(&d, 1, CHG_HB_METHOD, 4, "heartbeat method udp -> both");
	expect(&d, 2, CHG_LOG, 5, "log level info -> debug");
	expect(&d, 3, CHG_ASYNC_WINDOW, 6, "async-window 1024 -> 64");
	expect(&d, 4, CHG_RESYNC_RATE, 7, "resync rate 100M -> 0 (unlimited)");
	expect(&d, 5, CHG_LUN_MODE, 10, "lun \"vol0\": mode sync -> async");
	expect(&d, 6, CHG_JOURNAL_MAX, 13, "lun \"vol0\": journal max-size 1G -> 64M");
	cfg_diff_free(&d);
}

static void test_restart(void **state)
{
	struct spec s = base;
	struct cfg_diff d;

	(void)state;
	s.conns = 2;
	s.data_port = 7790;
	s.size = "2G";
	s.back1 = "/srv/other.img";
	diff_of(&s, &d);
	assert_int_equal(d.n_restart, 3);
	assert_int_equal(d.n, 4);
	expect(&d, 0, CHG_RESTART, 3, "connections count 4 -> 2");
	expect(&d, 1, CHG_RESTART, 8, "node \"node1\": data port 7788 -> 7790");
	/* a grow, live (doc/resize.md); a shrink adjust.c refuses */
	expect(&d, 2, CHG_LUN_SIZE, 10, "lun \"vol0\": size 1G -> 2G");
	expect(&d, 3, CHG_RESTART, 11, "lun \"vol0\": backing path /srv/n1.img -> /srv/other.img");
	cfg_diff_free(&d);
}

/* Another node's backing is that node's business. */
static void test_other_node_backing(void **state)
{
	struct spec s = base;
	struct cfg_diff d;
	ipm_config *a = load(&base), *b;

	(void)state;
	s.back2 = "/srv/elsewhere.img";
	b = load(&s);
	assert_int_equal(cfg_diff(a, b, "node1", &d), 0);
	assert_int_equal(d.n, 0);
	cfg_diff_free(&d);
	assert_int_equal(cfg_diff(a, b, "node2", &d), 0);
	assert_int_equal(d.n_restart, 1);
	expect(&d, 0, CHG_RESTART, 12, "backing path /srv/n2.img -> /srv/elsewhere.img");
	cfg_diff_free(&d);
	ipm_config_free(a);
	ipm_config_free(b);
}

static void test_luns_added_removed(void **state)
{
	struct spec s = base;
	struct cfg_diff d;

	(void)state;
	s.extra = "<lun name=\"vol2\" size=\"1M\" primary=\"node1\"><backing path=\"/srv/v2.img\"/></lun>";
	diff_of(&s, &d);
	assert_int_equal(d.n, 2);
	expect(&d, 0, CHG_LUN_ADD, 15, "lun \"vol2\" added");
	assert_string_equal(d.v[0].lun, "vol2");
	/* a removal has no line in the new file; it is listed last */
	expect(&d, 1, CHG_LUN_REMOVE, 0, "lun \"vol1\" removed (it was on line 15)");
	assert_string_equal(d.v[1].lun, "vol1");
	cfg_diff_free(&d);
}

/* The daemon's copy: the file's changes, its own roles kept. */
static void test_config_adjust(void **state)
{
	struct spec s = base;
	ipm_config *a = load(&base), *b, *dst = load(&base);

	(void)state;
	s.mode = "async";
	s.window = 16;
	s.level = "debug";
	b = load(&s);
	assert_int_equal(ipm_config_set_primary(dst, "vol0", "node2"), 0);
	dst->hb_method = IPM_HB_BOTH;   /* a run-time `heartbeat method` */
	assert_int_equal(ipm_config_adjust(dst, a, b, "node1"), 0);
	assert_int_equal(dst->luns[0].mode, IPM_MODE_ASYNC);
	assert_int_equal(dst->async_window, 16);
	assert_int_equal(dst->log_level, b->log_level);
	assert_string_equal(dst->luns[0].primary, "node2");
	assert_int_equal(dst->hb_method, IPM_HB_BOTH);
	ipm_config_free(a);
	ipm_config_free(b);
	ipm_config_free(dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identical),
		cmocka_unit_test(test_live),
		cmocka_unit_test(test_restart),
		cmocka_unit_test(test_other_node_backing),
		cmocka_unit_test(test_luns_added_removed),
		cmocka_unit_test(test_config_adjust),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
