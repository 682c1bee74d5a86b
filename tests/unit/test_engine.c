/* test_engine.c - the engine API on real backing files. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "ipmirror.h"

struct fixture {
	char dir[64];
	char cfg_path[128];
	ipm_config *cfg;
	ipm_engine *e;
};

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void make_backing(const char *path, off_t size)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), size), 0);
	fclose(f);
}

/* Two nodes, vol0 primary here (n1), vol1 primary on n2, vol2 unmirrored. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char xml[4096], path[256];

	strcpy(f->dir, "/tmp/ipm-test-engine.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof(path), "%s/secret", f->dir);
	write_file(path, "0123456789abcdef0123456789abcdef\n");
	assert_int_equal(chmod(path, 0600), 0); /* a readable secret is refused */
	snprintf(xml, sizeof(xml),
		 "<ipmirror version=\"1\">\n"
		 " <secret file=\"%s/secret\"/>\n"
		 " <node name=\"n1\"><data address=\"127.0.0.1\" port=\"17001\"/>"
		 "<heartbeat address=\"127.0.0.1\" port=\"17002\"/>"
		 "<nbd address=\"127.0.0.1\" port=\"17003\"/></node>\n"
		 " <node name=\"n2\"><data address=\"127.0.0.1\" port=\"17011\"/>"
		 "<heartbeat address=\"127.0.0.1\" port=\"17012\"/>"
		 "<nbd address=\"127.0.0.1\" port=\"17013\"/></node>\n"
		 " <lun name=\"vol0\" size=\"1M\" mode=\"sync\" mirrored=\"yes\" primary=\"n1\">"
		 "<backing path=\"%s/vol0.img\"/></lun>\n"
		 " <lun name=\"vol1\" size=\"1M\" mode=\"async\" mirrored=\"yes\" primary=\"n2\">"
		 "<backing path=\"%s/vol1.img\"/></lun>\n"
		 " <lun name=\"vol2\" size=\"2M\" mode=\"sync\" mirrored=\"no\" primary=\"n1\">"
		 "<backing path=\"%s/vol2.img\"/></lun>\n"
		 "</ipmirror>\n",
		 f->dir, f->dir, f->dir, f->dir);
	snprintf(f->cfg_path, sizeof(f->cfg_path), "%s/ipmirror.xml", f->dir);
	write_file(f->cfg_path, xml);
	snprintf(path, sizeof(path), "%s/vol0.img", f->dir);
	make_backing(path, 1 << 20);
	snprintf(path, sizeof(path), "%s/vol1.img", f->dir);
	make_backing(path, 1 << 20);
	snprintf(path, sizeof(path), "%s/vol2.img", f->dir);
	make_backing(path, 2 << 20);
	assert_int_equal(ipm_config_load(f->cfg_path, getenv("IPMIRROR_SCHEMA"), NULL, NULL,
					 &f->cfg), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	ipm_engine_destroy(f->e);
	ipm_config_free(f->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static ipm_engine *engine(struct fixture *f)
{
	ipm_error err = { "" };

	int rc = ipm_engine_create(f->cfg, "n1", &f->e, &err);

	if (rc)
		print_error("ipm_engine_create: %s\n", err.msg);
	assert_int_equal(rc, 0);
	return f->e;
}

static void test_luns_listed(void **state)
{
	ipm_engine *e = engine(*state);

	assert_int_equal(ipm_engine_lun_count(e), 3);
	assert_string_equal(ipm_lun_name(ipm_engine_lun_at(e, 0)), "vol0");
	assert_null(ipm_engine_lun_at(e, 3));
	assert_int_equal(ipm_lun_size(ipm_engine_lun_by_name(e, "vol2")), 2 << 20);
	assert_null(ipm_engine_lun_by_name(e, "nope"));
	assert_string_equal(ipm_engine_node(e), "n1");
}

static void test_write_read_roundtrip(void **state)
{
	ipm_lun *l = ipm_engine_lun_by_name(engine(*state), "vol2");
	char out[8192], in[8192];

	memset(out, 0x5a, sizeof(out));
	assert_int_equal(ipm_lun_write(l, out, sizeof(out), 4096, IPM_IO_FUA), 0);
	assert_int_equal(ipm_lun_read(l, in, sizeof(in), 4096), 0);
	assert_memory_equal(in, out, sizeof(in));
	assert_int_equal(ipm_lun_flush(l), 0);
}

/* Whether the file system holding dir punches holes (what trim relies on). */
static bool punches_holes(const char *dir)
{
	char path[256];
	int fd, rc;

	snprintf(path, sizeof(path), "%s/punch-probe", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 65536), 0);
	rc = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096);
	close(fd);
	unlink(path);
	return rc == 0;
}

static void test_zero_and_trim_read_zeros(void **state)
{
	ipm_lun *l = ipm_engine_lun_by_name(engine(*state), "vol2");
	char buf[65536], zero[65536] = { 0 };

	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(ipm_lun_write(l, buf, sizeof(buf), 0, 0), 0);
	assert_int_equal(ipm_lun_zero(l, 4096, 4096, 0), 0);
	assert_int_equal(ipm_lun_read(l, buf, sizeof(buf), 0), 0);
	assert_memory_equal(buf + 4096, zero, 4096);
	assert_int_equal((unsigned char)buf[0], 0xff);
	assert_int_equal((unsigned char)buf[8192], 0xff);
	assert_int_equal(ipm_lun_trim(l, 65536, 0, IPM_IO_FUA), 0);
	/* trim is advisory (doc/nbd.md): where the file system punches holes the
	 * range reads back zeros, elsewhere it keeps the data; never anything else */
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(ipm_lun_read(l, buf, sizeof(buf), 0), 0);
	if (punches_holes(((struct fixture *)*state)->dir)) {
		assert_memory_equal(buf, zero, sizeof(buf));
	} else {
		print_message("# no hole punching here: the trimmed range keeps its data\n");
		assert_int_equal((unsigned char)buf[0], 0xff);
		assert_memory_equal(buf + 4096, zero, 4096);
	}
}

static void test_out_of_range_refused(void **state)
{
	ipm_lun *l = ipm_engine_lun_by_name(engine(*state), "vol2");
	char buf[4096];

	assert_int_equal(ipm_lun_read(l, buf, sizeof(buf), (2 << 20) - 512), -EINVAL);
	assert_int_equal(ipm_lun_write(l, buf, sizeof(buf), UINT64_MAX - 10, 0), -EINVAL);
	assert_int_equal(ipm_lun_zero(l, UINT64_MAX, 4096, 0), -EINVAL);
	assert_int_equal(ipm_lun_read(l, buf, 0, 2 << 20), 0);
}

static void test_role_guard_names_primary(void **state)
{
	ipm_engine *e = engine(*state);
	ipm_error err = { "" };
	ipm_lun *l = ipm_engine_lun_by_name(e, "vol1");
	char buf[512];

	assert_int_equal(ipm_lun_check_open(ipm_engine_lun_by_name(e, "vol0"), &err), 0);
	assert_int_equal(ipm_lun_check_open(l, &err), -EPERM);
	assert_non_null(strstr(err.msg, "\"n2\""));
	assert_int_equal(ipm_lun_read(l, buf, sizeof(buf), 0), -EPERM);
	assert_int_equal(ipm_lun_write(l, buf, sizeof(buf), 0, 0), -EPERM);
}

static void test_status_snapshot(void **state)
{
	ipm_engine *e = engine(*state);
	ipm_status *st;

	assert_int_equal(ipm_engine_status(e, &st), 0);
	assert_string_equal(st->node, "n1");
	assert_string_equal(st->peer, "n2");
	assert_int_equal(st->n_luns, 3);
	assert_string_equal(st->luns[1].name, "vol1");
	assert_int_equal(st->luns[1].role, IPM_ROLE_MIRROR);
	assert_int_equal(st->luns[1].mode, IPM_MODE_ASYNC);
	assert_true(st->luns[0].mirrored);
	assert_false(st->luns[2].mirrored);
	assert_int_equal(st->luns[2].size, 2 << 20);
	/* no peer reached yet: writes to the mirrored lun go to its journal */
	assert_string_equal(ipm_state_name(st->luns[0].state), "journaling");
	assert_string_equal(ipm_state_name(st->luns[2].state), "uptodate");
	ipm_status_free(st);
}

static void test_size_mismatch_is_clear_error(void **state)
{
	struct fixture *f = *state;
	ipm_error err = { "" };
	char path[256];

	snprintf(path, sizeof(path), "%s/vol2.img", f->dir);
	make_backing(path, 1 << 20);
	assert_int_equal(ipm_engine_create(f->cfg, "n1", &f->e, &err), -EINVAL);
	assert_null(f->e);
	assert_non_null(strstr(err.msg, "vol2"));
	assert_non_null(strstr(err.msg, "1048576"));
	assert_non_null(strstr(err.msg, "2097152"));
}

static void test_unknown_node_refused(void **state)
{
	struct fixture *f = *state;
	ipm_error err = { "" };

	assert_int_equal(ipm_engine_create(f->cfg, "n9", &f->e, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "n9"));
}

/* LUNs added at run time (a reload) serve at once; one taken down can be
 * removed; the others are untouched. */
static void test_lun_add_remove(void **state)
{
	struct fixture *f = *state;
	ipm_engine *e = engine(f);
	char text[4096], xml[8192], path[256], out[4096], in[4096];
	ipm_error err = { "" };
	ipm_status *st = NULL;
	ipm_config *c2 = NULL;
	FILE *fp = fopen(f->cfg_path, "r");
	size_t n;
	char *end;
	ipm_lun *l;

	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = '\0';
	end = strstr(text, "</ipmirror>");
	assert_non_null(end);
	*end = '\0';
	snprintf(xml, sizeof(xml),
		 "%s <lun name=\"vol3\" size=\"1M\" mode=\"sync\" mirrored=\"no\" primary=\"n1\">"
		 "<backing path=\"%s/vol3.img\"/></lun>\n"
		 " <lun name=\"vol4\" size=\"1M\" mode=\"sync\" mirrored=\"yes\" primary=\"n1\">"
		 "<backing path=\"%s/vol4.img\"/></lun>\n</ipmirror>\n", text, f->dir, f->dir);
	snprintf(path, sizeof(path), "%s/ipmirror2.xml", f->dir);
	write_file(path, xml);
	assert_int_equal(ipm_config_load(path, getenv("IPMIRROR_SCHEMA"), NULL, NULL, &c2), 0);
	snprintf(path, sizeof(path), "%s/vol3.img", f->dir);
	make_backing(path, 1 << 20);
	snprintf(path, sizeof(path), "%s/vol4.img", f->dir);
	make_backing(path, 1 << 20);

	assert_int_equal(ipm_engine_lun_add(e, c2, "vol3", &err), 0);
	assert_int_equal(ipm_engine_lun_add(e, c2, "vol4", &err), 0);
	assert_int_equal(ipm_engine_lun_count(e), 5);
	l = ipm_engine_lun_by_name(e, "vol3");
	assert_non_null(l);
	memset(out, 0x3c, sizeof(out));
	assert_int_equal(ipm_lun_write(l, out, sizeof(out), 8192, 0), 0);
	assert_int_equal(ipm_lun_read(l, in, sizeof(in), 8192), 0);
	assert_memory_equal(in, out, sizeof(in));
	assert_int_equal(ipm_engine_lun_add(e, c2, "vol3", &err), -EEXIST);
	assert_int_equal(ipm_engine_lun_add(e, c2, "nope", &err), -ENOENT);
	/* in service: refused, naming the way */
	assert_int_equal(ipm_engine_lun_remove(e, "vol3", &err), -EBUSY);
	assert_non_null(strstr(err.msg, "ipmirrorctl down vol3"));
	assert_int_equal(ipm_engine_lun_down(e, "vol3", &err), 0);
	assert_int_equal(ipm_lun_read(l, in, sizeof(in), 8192), -EPERM);
	assert_int_equal(ipm_lun_check_open(l, &err), -EPERM);
	assert_non_null(strstr(err.msg, "is down on this node"));
	assert_int_equal(ipm_engine_lun_remove(e, "vol3", &err), 0);
	assert_null(ipm_engine_lun_by_name(e, "vol3"));
	assert_int_equal(ipm_engine_status(e, &st), 0);
	assert_int_equal(st->n_luns, 4);
	assert_string_equal(st->luns[3].name, "vol4");
	ipm_status_free(st);
	/* the other LUNs serve on */
	assert_int_equal(ipm_lun_read(ipm_engine_lun_by_name(e, "vol2"), in, sizeof(in), 0), 0);
	ipm_config_free(c2);
}


struct lines {
	char buf[4096];
	size_t len;
};

static void collect(void *opaque, const char *line)
{
	struct lines *o = opaque;

	o->len += (size_t)snprintf(o->buf + o->len, sizeof(o->buf) - o->len, "%s\n", line);
}

static void diag_print(void *opaque, const char *file, int line, const char *msg)
{
	(void)opaque;
	print_error("%s:%d: %s\n", file, line, msg);
}

/* The fixture's file with vol2 (unmirrored, primary here) taken out and
 * vol5 (unmirrored) added, loaded. */
static ipm_config *without_vol2_with_vol5(struct fixture *f)
{
	char text[4096], xml[8192], path[256], *a, *b, *end;
	ipm_config *c = NULL;
	FILE *fp = fopen(f->cfg_path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = '\0';
	a = strstr(text, " <lun name=\"vol2\"");
	assert_non_null(a);
	b = strchr(a, '\n');
	assert_non_null(b);
	memmove(a, b + 1, strlen(b + 1) + 1);
	end = strstr(text, "</ipmirror>");
	assert_non_null(end);
	*end = '\0';
	snprintf(xml, sizeof(xml),
		 "%s <lun name=\"vol5\" size=\"1M\" mode=\"sync\" mirrored=\"no\" primary=\"n1\">"
		 "<backing path=\"%s/vol5.img\"/></lun>\n</ipmirror>\n", text, f->dir);
	snprintf(path, sizeof(path), "%s/vol5.img", f->dir);
	make_backing(path, 1 << 20);
	snprintf(path, sizeof(path), "%s/ipmirror5.xml", f->dir);
	write_file(path, xml);
	assert_int_equal(ipm_config_load(path, getenv("IPMIRROR_SCHEMA"), diag_print, NULL, &c), 0);
	return c;
}

/* ipm_engine_adjust adds and removes LUNs: a removal in service refuses the
 * whole reload naming `ipmirrorctl down`; --dry-run lists both and applies
 * nothing; after down both are applied; the same reload again (one that
 * failed part way is retried from the same old file) is done, not an error. */
static void test_adjust_luns(void **state)
{
	struct fixture *f = *state;
	ipm_engine *e = engine(f);
	ipm_config *cur = without_vol2_with_vol5(f);
	ipm_error err = { "" };
	struct lines o = { "", 0 };

	assert_int_equal(ipm_engine_adjust(e, f->cfg, cur, 0, collect, &o, &err), -EINVAL);
	assert_non_null(strstr(o.buf, "lun \"vol2\" removed (it was on line "));
	assert_non_null(strstr(o.buf, "in service here: `ipmirrorctl down vol2` first"));
	assert_null(strstr(o.buf, "vol5"));
	assert_null(ipm_engine_lun_by_name(e, "vol5"));
	assert_non_null(ipm_engine_lun_by_name(e, "vol2"));

	assert_int_equal(ipm_engine_lun_down(e, "vol2", &err), 0);
	o.len = 0;
	assert_int_equal(ipm_engine_adjust(e, f->cfg, cur, IPM_ADJUST_DRY_RUN, collect, &o, &err), 0);
	assert_non_null(strstr(o.buf, "lun \"vol5\" added"));
	assert_non_null(strstr(o.buf, "lun \"vol2\" removed"));
	assert_non_null(strstr(err.msg, "dry run: 2 changes"));
	assert_null(ipm_engine_lun_by_name(e, "vol5"));
	assert_non_null(ipm_engine_lun_by_name(e, "vol2"));

	o.len = 0;
	assert_int_equal(ipm_engine_adjust(e, f->cfg, cur, 0, collect, &o, &err), 0);
	assert_non_null(strstr(err.msg, "2 changes applied"));
	assert_null(ipm_engine_lun_by_name(e, "vol2"));
	assert_non_null(ipm_engine_lun_by_name(e, "vol5"));
	o.len = 0;
	assert_int_equal(ipm_engine_adjust(e, f->cfg, cur, 0, collect, &o, &err), 0);
	assert_non_null(strstr(o.buf, "lun \"vol5\" added (served already)"));
	assert_non_null(strstr(o.buf, "(not served here)"));
	ipm_config_free(cur);
}

/* path gets the fixture's file with the lines naming each of drop (NULL
 * ended) taken out and extra put before the end. */
static void variant(struct fixture *f, const char *path, const char *const *drop, const char *extra)
{
	char text[4096], xml[8192], pat[64], *a, *b, *end;
	FILE *fp = fopen(f->cfg_path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = '\0';
	for (; *drop; drop++) {
		snprintf(pat, sizeof(pat), " <lun name=\"%s\"", *drop);
		a = strstr(text, pat);
		assert_non_null(a);
		b = strchr(a, '\n');
		assert_non_null(b);
		memmove(a, b + 1, strlen(b + 1) + 1);
	}
	end = strstr(text, "</ipmirror>");
	assert_non_null(end);
	*end = '\0';
	snprintf(xml, sizeof(xml), "%s%s</ipmirror>\n", text, extra);
	write_file(path, xml);
}

/* A daemon that mirrors nothing has no peer, secret or heartbeat: the
 * first mirrored LUN added is refused before anything is applied. */
static void test_adjust_first_mirrored(void **state)
{
	static const char *const none[] = { NULL }, *const mirrored[] = { "vol0", "vol1", NULL };
	struct fixture *f = *state;
	char path[256], extra[512];
	ipm_config *cur = NULL;
	ipm_error err = { "" };
	struct lines o = { "", 0 };

	variant(f, f->cfg_path, mirrored, "");
	ipm_config_free(f->cfg);
	f->cfg = NULL;
	assert_int_equal(ipm_config_load(f->cfg_path, getenv("IPMIRROR_SCHEMA"), diag_print, NULL,
					 &f->cfg), 0);
	engine(f);
	snprintf(path, sizeof(path), "%s/vol6.img", f->dir);
	make_backing(path, 1 << 20);
	snprintf(extra, sizeof(extra),
		 " <lun name=\"vol6\" size=\"1M\" mode=\"sync\" mirrored=\"yes\" primary=\"n1\">"
		 "<backing path=\"%s\"/></lun>\n", path);
	snprintf(path, sizeof(path), "%s/ipmirror6.xml", f->dir);
	variant(f, path, none, extra);
	assert_int_equal(ipm_config_load(path, getenv("IPMIRROR_SCHEMA"), diag_print, NULL, &cur), 0);
	assert_int_equal(ipm_engine_adjust(f->e, f->cfg, cur, 0, collect, &o, &err), -EINVAL);
	assert_non_null(strstr(o.buf, "lun \"vol6\" added: it is the first mirrored lun"));
	assert_null(ipm_engine_lun_by_name(f->e, "vol6"));
	ipm_config_free(cur);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_luns_listed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lun_add_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adjust_luns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adjust_first_mirrored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_and_trim_read_zeros, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_role_guard_names_primary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_mismatch_is_clear_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_node_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
