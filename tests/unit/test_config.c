/* test_config.c - the configuration loader: fixtures in tests/unit/configs,
 * every problem reported with its line, defaults, sizes, copies, lookups. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

#define MAX_DIAGS 64

struct diags {
	unsigned n;
	int line[MAX_DIAGS];
	char msg[MAX_DIAGS][512];
	char file[256];
};

static void collect(void *opaque, const char *file, int line, const char *msg)
{
	struct diags *d = opaque;

	assert_true(d->n < MAX_DIAGS);
	snprintf(d->file, sizeof(d->file), "%s", file);
	d->line[d->n] = line;
	snprintf(d->msg[d->n], sizeof(d->msg[0]), "%s", msg);
	d->n++;
}

static const char *fixture(const char *name)
{
	static char path[1024];
	const char *top = getenv("top_srcdir");

	snprintf(path, sizeof(path), "%s/tests/unit/configs/%s", top ? top : ".", name);
	return path;
}

static const char *schema(void)
{
	return getenv("IPMIRROR_SCHEMA");
}

static int load(const char *name, struct diags *d, ipm_config **cfg)
{
	memset(d, 0, sizeof(*d));
	return ipm_config_load(fixture(name), schema(), collect, d, cfg);
}

static void dump(const struct diags *d)
{
	for (unsigned i = 0; i < d->n; i++)
		print_message("# %d: %s\n", d->line[i], d->msg[i]);
}

/* Some diag on `line` contains substr. */
static void expect_diag(const struct diags *d, int line, const char *substr)
{
	for (unsigned i = 0; i < d->n; i++)
		if (d->line[i] == line && strstr(d->msg[i], substr))
			return;
	dump(d);
	fail_msg("no diagnostic on line %d containing \"%s\"", line, substr);
}

static ipm_config *load_good(const char *name)
{
	struct diags d;
	ipm_config *cfg = NULL;
	int rc = load(name, &d, &cfg);

	if (rc != 0)
		dump(&d);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0);
	assert_non_null(cfg);
	return cfg;
}

/* ---- good files ------------------------------------------------------------- */

static void test_good_pair(void **state)
{
	ipm_config *cfg = load_good("good-pair.xml");
	const struct ipm_lun_cfg *l;

	assert_string_equal(cfg->path, fixture("good-pair.xml"));
	assert_string_equal(cfg->secret_file, "/etc/ipmirror/secret");
	assert_true(cfg->hb_interval == 0.5);
	assert_true(cfg->hb_timeout == 2.5);
	assert_true(cfg->hb_probation == 3);
	assert_int_equal(cfg->hb_method, IPM_HB_BOTH);
	assert_int_equal(cfg->conn_count, 8);
	assert_int_equal(cfg->async_window, 256);
	assert_int_equal(cfg->resync_rate, 100ull << 20);
	assert_int_equal(ipm_config_log_level(cfg), LOG_DEBUG);
	assert_string_equal(ipm_config_log_file(cfg), "/var/log/ipmirror.log");

	assert_int_equal(cfg->n_nodes, 2);
	assert_string_equal(cfg->nodes[0].name, "node1");
	assert_int_equal(cfg->nodes[0].line, 10);
	assert_string_equal(cfg->nodes[0].data.address, "192.168.77.1");
	assert_int_equal(cfg->nodes[0].data.port, 7788);
	assert_int_equal(cfg->nodes[0].data.line, 11);
	assert_string_equal(cfg->nodes[0].heartbeat.address, "10.0.0.1");
	assert_int_equal(cfg->nodes[0].heartbeat.port, 7789);
	assert_string_equal(cfg->nodes[0].nbd.address, "0.0.0.0");
	assert_int_equal(cfg->nodes[0].nbd.port, 10809);
	assert_string_equal(cfg->nodes[0].nbd_unix, "/run/ipmirror/nbd.sock");
	/* children of <node> in another order */
	assert_string_equal(cfg->nodes[1].name, "node2");
	assert_string_equal(cfg->nodes[1].data.address, "192.168.77.2");
	assert_int_equal(cfg->nodes[1].heartbeat.port, 7789);
	assert_int_equal(cfg->nodes[1].nbd.line, 16);
	assert_null(cfg->nodes[1].nbd_unix);

	assert_int_equal(cfg->n_luns, 3);
	l = &cfg->luns[0];
	assert_string_equal(l->name, "vol0");
	assert_int_equal(l->line, 20);
	assert_int_equal(l->size, 1ull << 30);
	assert_int_equal(l->mode, IPM_MODE_SYNC);
	assert_true(l->mirrored);
	assert_string_equal(l->primary, "node1");
	assert_int_equal(l->n_backing, 2);
	assert_string_equal(ipm_lun_cfg_backing(l, "node1"), "/var/lib/ipmirror/vol0.img");
	assert_string_equal(ipm_lun_cfg_backing(l, "node2"), "/srv/vol0.img");
	/* io: auto unless the entry says otherwise */
	assert_int_equal(ipm_lun_cfg_backing_entry(l, "node1")->io, IPM_IO_AUTO);
	assert_int_equal(ipm_lun_cfg_backing_entry(l, "node2")->io, IPM_IO_BUFFERED);
	assert_string_equal(l->journal_path, "/var/lib/ipmirror/vol0.journal");
	assert_int_equal(l->journal_max, 4ull << 30);
	l = &cfg->luns[1];
	assert_string_equal(l->name, "vol1");
	assert_int_equal(l->size, 512 << 10);
	assert_int_equal(l->mode, IPM_MODE_ASYNC);
	assert_true(l->mirrored);   /* default with two nodes */
	assert_string_equal(l->primary, "node2");
	assert_null(l->journal_path);
	assert_int_equal(l->journal_max, 64 << 20);
	assert_string_equal(ipm_lun_cfg_backing(l, "node1"), "/srv/n1-vol1.img");
	assert_string_equal(ipm_lun_cfg_backing(l, "node2"), "/srv/n2-vol1.img");
	assert_int_equal(ipm_lun_cfg_backing_entry(l, "node2")->io, IPM_IO_DIRECT);
	assert_null(ipm_lun_cfg_backing(l, "node3"));
	l = &cfg->luns[2];
	assert_false(l->mirrored);
	assert_int_equal(l->size, 4096);
	assert_int_equal(l->journal_max, 0);
	ipm_config_free(cfg);
}

static void test_defaults(void **state)
{
	ipm_config *cfg = load_good("good-minimal.xml");
	ipm_listen li;

	assert_null(cfg->secret_file);
	assert_true(cfg->hb_interval == 1.5);
	assert_true(cfg->hb_timeout == 4.0);
	assert_true(cfg->hb_probation == 10);
	assert_int_equal(cfg->hb_method, IPM_HB_UDP);
	assert_int_equal(cfg->conn_count, 4);
	assert_int_equal(cfg->async_window, 1024);
	assert_int_equal(cfg->resync_rate, 0);
	assert_int_equal(ipm_config_log_level(cfg), -1);
	assert_null(ipm_config_log_file(cfg));
	assert_int_equal(cfg->n_nodes, 1);
	assert_int_equal(cfg->n_luns, 1);
	/* one node: primary defaults to it, not mirrored, sync */
	assert_string_equal(cfg->luns[0].primary, "solo");
	assert_false(cfg->luns[0].mirrored);
	assert_int_equal(cfg->luns[0].mode, IPM_MODE_SYNC);
	assert_int_equal(cfg->luns[0].size, 64 << 20);
	assert_null(cfg->nodes[0].data.address);
	assert_null(cfg->nodes[0].heartbeat.address);
	/* Unix-only NBD listener */
	assert_int_equal(ipm_config_nbd_listen(cfg, "solo", &li), 0);
	assert_string_equal(li.address, "");
	assert_int_equal(li.port, 0);
	assert_string_equal(li.unix_path, "/run/ipmirror/solo.sock");
	assert_null(ipm_config_peer(cfg, "solo"));
	ipm_config_free(cfg);
}

static void test_queries(void **state)
{
	ipm_config *cfg = load_good("good-pair.xml");
	ipm_listen li;

	assert_true(ipm_config_has_node(cfg, "node1"));
	assert_true(ipm_config_has_node(cfg, "node2"));
	assert_false(ipm_config_has_node(cfg, "node3"));
	assert_false(ipm_config_has_node(cfg, NULL));
	assert_ptr_equal(ipm_config_node(cfg, "node2"), &cfg->nodes[1]);
	assert_null(ipm_config_node(cfg, "Node2"));
	assert_ptr_equal(ipm_config_peer(cfg, "node1"), &cfg->nodes[1]);
	assert_ptr_equal(ipm_config_peer(cfg, "node2"), &cfg->nodes[0]);
	assert_null(ipm_config_peer(cfg, "node3"));

	assert_int_equal(ipm_config_nbd_listen(cfg, "node1", &li), 0);
	assert_string_equal(li.address, "0.0.0.0");
	assert_int_equal(li.port, 10809);
	assert_string_equal(li.unix_path, "/run/ipmirror/nbd.sock");
	assert_int_equal(ipm_config_nbd_listen(cfg, "node2", &li), 0);
	assert_string_equal(li.unix_path, "");
	assert_int_equal(ipm_config_nbd_listen(cfg, "nobody", &li), -ENOENT);
	ipm_config_free(cfg);
}

/* <nbd unix-group>: carried to the listener and through a copy; only with a
 * unix socket, never empty. */
/* Set *s to v when the fixture left it empty. */
static void fill(char **s, const char *v)
{
	if (!*s)
		*s = strdup(v);
	assert_non_null(*s);
}

/* The copy has a string of its own, equal to the original's. */
static void own_copy(const char *copy, const char *orig)
{
	assert_string_equal(copy, orig);
	assert_ptr_not_equal(copy, orig);
}

/* Every string field, each one set: the copy owns all of them (a field left
 * out of config.c's field table would be shared, and leaked by free). */
static void test_dup_every_string(void **state)
{
	ipm_config *cfg = load_good("good-pair.xml"), *c;
	unsigned i, j;

	fill(&cfg->log_file, "/var/log/x");
	fill(&cfg->hb_state_dir, "/var/lib/x");
	fill(&cfg->tls_cert, "/c");
	fill(&cfg->tls_key, "/k");
	fill(&cfg->tls_ca, "/ca");
	for (i = 0; i < cfg->n_nodes; i++) {
		struct ipm_node_cfg *n = &cfg->nodes[i];

		fill(&n->data.address, "a");
		fill(&n->heartbeat.address, "a");
		fill(&n->nbd.address, "a");
		fill(&n->nbd_unix, "/run/x");
		fill(&n->nbd_unix_group, "g");
		fill(&n->hb_volume, "/dev/x");
		fill(&n->nbd_tls_psk_file, "/p");
		fill(&n->nbd_tls_cert, "/c");
		fill(&n->nbd_tls_key, "/k");
		fill(&n->nbd_tls_ca, "/ca");
	}
	for (i = 0; i < cfg->n_luns; i++) {
		fill(&cfg->luns[i].journal_path, "/var/lib/j");
		for (j = 0; j < cfg->luns[i].n_backing; j++)
			fill(&cfg->luns[i].backing[j].node, "node1");
	}
	c = ipm_config_dup(cfg);
	assert_non_null(c);
	own_copy(c->path, cfg->path);
	own_copy(c->secret_file, cfg->secret_file);
	own_copy(c->log_file, cfg->log_file);
	own_copy(c->hb_state_dir, cfg->hb_state_dir);
	own_copy(c->tls_cert, cfg->tls_cert);
	own_copy(c->tls_key, cfg->tls_key);
	own_copy(c->tls_ca, cfg->tls_ca);
	for (i = 0; i < c->n_nodes; i++) {
		const struct ipm_node_cfg *a = &c->nodes[i], *b = &cfg->nodes[i];

		own_copy(a->name, b->name);
		own_copy(a->data.address, b->data.address);
		own_copy(a->heartbeat.address, b->heartbeat.address);
		own_copy(a->nbd.address, b->nbd.address);
		own_copy(a->nbd_unix, b->nbd_unix);
		own_copy(a->nbd_unix_group, b->nbd_unix_group);
		own_copy(a->hb_volume, b->hb_volume);
		own_copy(a->nbd_tls_psk_file, b->nbd_tls_psk_file);
		own_copy(a->nbd_tls_cert, b->nbd_tls_cert);
		own_copy(a->nbd_tls_key, b->nbd_tls_key);
		own_copy(a->nbd_tls_ca, b->nbd_tls_ca);
	}
	for (i = 0; i < c->n_luns; i++) {
		own_copy(c->luns[i].name, cfg->luns[i].name);
		own_copy(c->luns[i].primary, cfg->luns[i].primary);
		own_copy(c->luns[i].journal_path, cfg->luns[i].journal_path);
		for (j = 0; j < c->luns[i].n_backing; j++) {
			own_copy(c->luns[i].backing[j].node, cfg->luns[i].backing[j].node);
			own_copy(c->luns[i].backing[j].path, cfg->luns[i].backing[j].path);
		}
	}
	ipm_config_free(cfg);
	ipm_config_free(c);
}

static void test_nbd_unix_group(void **state)
{
	ipm_config *cfg = load_good("good-unix-group.xml"), *copy;
	struct diags d;
	ipm_listen li;

	assert_int_equal(ipm_config_nbd_listen(cfg, "solo", &li), 0);
	assert_string_equal(li.unix_group, "disk");
	copy = ipm_config_dup(cfg);
	ipm_config_free(cfg);
	assert_non_null(copy);
	assert_int_equal(ipm_config_nbd_listen(copy, "solo", &li), 0);
	assert_string_equal(li.unix_group, "disk");
	ipm_config_free(copy);

	cfg = load_good("good-minimal.xml");
	assert_int_equal(ipm_config_nbd_listen(cfg, "solo", &li), 0);
	assert_string_equal(li.unix_group, "");
	ipm_config_free(cfg);

	assert_int_equal(load("bad-unix-group.xml", &d, &cfg), 2);
	expect_diag(&d, 3, "node \"node1\": nbd unix-group needs a unix socket path");
	expect_diag(&d, 6, "node \"node2\": nbd unix-group \"\" must be a group name");
	assert_null(cfg);
}

/* <nbd>'s client limits: defaults when absent, values when given. */
static void test_nbd_limits(void **state)
{
	ipm_config *cfg = load_good("good-minimal.xml");
	ipm_listen li;

	assert_int_equal(ipm_config_nbd_listen(cfg, "solo", &li), 0);
	assert_int_equal(li.handshake_timeout, IPM_NBD_HANDSHAKE_TIMEOUT);
	assert_int_equal(li.idle_timeout, 0);
	assert_int_equal(li.send_timeout, IPM_NBD_SEND_TIMEOUT);
	assert_int_equal(li.max_clients, IPM_NBD_MAX_CLIENTS);
	assert_int_equal(li.max_clients_per_address, IPM_NBD_MAX_PER_ADDRESS);
	ipm_config_free(cfg);

	cfg = load_good("good-nbd-limits.xml");
	assert_int_equal(ipm_config_nbd_listen(cfg, "solo", &li), 0);
	assert_int_equal(li.handshake_timeout, 3);
	assert_int_equal(li.idle_timeout, 600);
	assert_int_equal(li.send_timeout, 5);
	assert_int_equal(li.max_clients, 64);
	assert_int_equal(li.max_clients_per_address, 8);
	ipm_config_free(cfg);
}

static void test_bad_nbd_limits(void **state)
{
	struct diags d;
	ipm_config *cfg = NULL;
	int rc = load("bad-nbd-limits.xml", &d, &cfg);

	if (rc != 5)
		dump(&d);
	assert_int_equal(rc, 5);
	assert_null(cfg);
	expect_diag(&d, 3, "node \"solo\": nbd handshake-timeout \"0\" is out of range (1..300)");
	expect_diag(&d, 3, "node \"solo\": nbd idle-timeout \"-1\" is out of range (0..604800)");
	expect_diag(&d, 3, "node \"solo\": nbd send-timeout \"3601\" is out of range (1..3600)");
	expect_diag(&d, 3, "node \"solo\": nbd max-clients \"1025\" is out of range (1..1024)");
	expect_diag(&d, 3,
		    "node \"solo\": nbd max-clients-per-address \"many\" is out of range (1..1024)");
}

/* <metrics>: given, copied, absent; its port checked like the others. */
static void test_metrics(void **state)
{
	ipm_config *cfg = load_good("good-metrics.xml"), *copy;
	char addr[64];
	uint16_t port = 0;
	struct diags d;

	assert_int_equal(ipm_config_metrics_listen(cfg, "solo", addr, sizeof(addr), &port), 0);
	assert_string_equal(addr, "127.0.0.1");
	assert_int_equal(port, 9943);
	assert_int_equal(ipm_config_metrics_listen(cfg, "nobody", addr, sizeof(addr), &port),
			 -ENOENT);
	copy = ipm_config_dup(cfg);
	ipm_config_free(cfg);
	assert_non_null(copy);
	assert_int_equal(ipm_config_metrics_listen(copy, "solo", addr, sizeof(addr), &port), 0);
	assert_string_equal(addr, "127.0.0.1");
	ipm_config_free(copy);

	cfg = load_good("good-minimal.xml");
	assert_int_equal(ipm_config_metrics_listen(cfg, "solo", addr, sizeof(addr), &port),
			 -ENOENT);
	ipm_config_free(cfg);

	cfg = NULL;
	assert_int_equal(load("bad-metrics.xml", &d, &cfg), 3);
	expect_diag(&d, 4, "node \"node1\": metrics port 10809 clashes with the nbd port");
	expect_diag(&d, 8, "node \"node2\": metrics address is empty");
	expect_diag(&d, 8, "node \"node2\": metrics port \"0\" is not a port number (1..65535)");
	assert_null(cfg);
	(void)state;
}

/* <handlers>: programs by event, copied; absolute paths, a bounded timeout. */
static void test_handlers(void **state)
{
	ipm_config *cfg = load_good("good-handlers.xml"), *copy;
	struct diags d;

	assert_string_equal(ipm_config_handler(cfg, "split-brain"), "/usr/local/sbin/on-split-brain");
	assert_string_equal(ipm_config_handler(cfg, "role-change"), "/bin/true");
	assert_null(ipm_config_handler(cfg, "peer-lost"));
	assert_null(ipm_config_handler(cfg, "no-such-event"));
	assert_int_equal(ipm_config_handler_timeout(cfg), 12);
	copy = ipm_config_dup(cfg);
	ipm_config_free(cfg);
	assert_non_null(copy);
	assert_string_equal(ipm_config_handler(copy, "role-change"), "/bin/true");
	ipm_config_free(copy);

	cfg = load_good("good-minimal.xml");
	assert_null(ipm_config_handler(cfg, "split-brain"));
	assert_int_equal(ipm_config_handler_timeout(cfg), IPM_HANDLER_TIMEOUT);
	ipm_config_free(cfg);

	cfg = NULL;
	assert_int_equal(load("bad-handlers.xml", &d, &cfg), 2);
	expect_diag(&d, 2, "handlers timeout \"0\" is out of range (1..3600 s)");
	expect_diag(&d, 2, "peer-lost handler \"relative/path\" must be an absolute path");
	assert_null(cfg);
	(void)state;
}

/* <tls> and <nbd tls=...>: modes, credentials, what each mode needs. */
static void test_tls(void **state)
{
	ipm_config *cfg = load_good("good-tls.xml"), *copy;
	ipm_listen l;
	struct diags d;

	assert_int_equal(cfg->tls_mode, IPM_TLS_X509);
	assert_string_equal(cfg->tls_ca, "/etc/ipmirror/ca.crt");
	assert_string_equal(ipm_tls_mode_name(cfg->tls_mode), "x509");
	copy = ipm_config_dup(cfg);
	ipm_config_free(cfg);
	assert_non_null(copy);
	assert_int_equal(ipm_config_nbd_listen(copy, "solo", &l), 0);
	assert_int_equal(l.tls, IPM_NBD_TLS_REQUIRE);
	assert_string_equal(l.tls_psk_file, "/etc/ipmirror/nbd.psk");
	assert_string_equal(l.tls_cert, "/etc/ipmirror/nbd.crt");
	assert_string_equal(l.tls_key, "/etc/ipmirror/nbd.key");
	assert_string_equal(l.tls_ca, "/etc/ipmirror/hosts-ca.crt");
	assert_string_equal(copy->tls_key, "/etc/ipmirror/node.key");
	ipm_config_free(copy);

	cfg = load_good("good-minimal.xml");
	assert_int_equal(cfg->tls_mode, IPM_TLS_OFF);
	assert_int_equal(ipm_config_nbd_listen(cfg, "solo", &l), 0);
	assert_int_equal(l.tls, IPM_NBD_TLS_OFF);
	assert_string_equal(l.tls_psk_file, "");
	ipm_config_free(cfg);

	cfg = NULL;
	assert_int_equal(load("bad-tls.xml", &d, &cfg), 6);
	expect_diag(&d, 2, "tls cert \"etc/node.crt\" must be an absolute path");
	expect_diag(&d, 2, "tls mode \"kerberos\" is not one of off, psk, x509");
	expect_diag(&d, 4, "node \"node1\": nbd tls \"yes\" is not one of off, on, require");
	expect_diag(&d, 7, "node \"node2\": nbd tls \"on\" needs tls-psk-file, or tls-cert and tls-key");
	expect_diag(&d, 7, "node \"node2\": nbd tls-cert and tls-key go together");
	expect_diag(&d, 7, "node \"node2\": nbd tls-ca (client certificates) needs tls-cert and tls-key");
	assert_null(cfg);
	(void)state;
}

/* A per-node backing wins over the shared one wherever it appears. */
static void test_backing_lookup(void **state)
{
	struct ipm_lun_cfg l = { .n_backing = 3 };

	l.backing[0] = (struct ipm_backing_cfg){ .node = "b", .path = "/b" };
	l.backing[1] = (struct ipm_backing_cfg){ .node = NULL, .path = "/shared" };
	l.backing[2] = (struct ipm_backing_cfg){ .node = "a", .path = "/a" };
	assert_string_equal(ipm_lun_cfg_backing(&l, "a"), "/a");
	assert_string_equal(ipm_lun_cfg_backing(&l, "b"), "/b");
	assert_string_equal(ipm_lun_cfg_backing(&l, "c"), "/shared");
	l.n_backing = 1;
	assert_null(ipm_lun_cfg_backing(&l, "a"));
}

/* ---- bad files ---------------------------------------------------------------- */

static void test_bad_syntax(void **state)
{
	struct diags d;
	ipm_config *cfg = (ipm_config *)&d;   /* must be reset to NULL */
	int rc = load("bad-syntax.xml", &d, &cfg);

	assert_null(cfg);
	assert_true(rc > 0);
	assert_int_equal(rc, (int)d.n);
	assert_string_equal(d.file, fixture("bad-syntax.xml"));
	expect_diag(&d, 7, "mismatch: backing line 6 and lun");
}

static void test_bad_structure(void **state)
{
	struct diags d;
	ipm_config *cfg = NULL;
	int rc = load("bad-schema.xml", &d, &cfg);

	assert_int_equal(rc, 3);
	assert_int_equal(d.n, 3);
	assert_null(cfg);
	expect_diag(&d, 4, "unknown element <color>");
	expect_diag(&d, 6, "<lun name=\"vol0\">: unknown attribute \"colour\"");
	expect_diag(&d, 9, "<lun name=\"vol1\">: the attribute \"size\" is required");
}

static void test_bad_values(void **state)
{
	static const struct { int line; const char *msg; } want[] = {
		{ 2, "secret file \"secret.key\" must be an absolute path" },
		{ 3, "heartbeat method \"carrier-pigeon\" is unknown" },
		{ 3, "heartbeat timeout (1.5 s) must be greater than the interval (2 s)" },
		{ 3, "heartbeat probation \"-1\" is out of range (0..3600 seconds)" },
		{ 4, "connections count \"65\" is out of range (1..64)" },
		{ 5, "log level \"loud\" is unknown" },
		{ 6, "mirror async-window \"0\" is out of range" },
		{ 7, "resync rate \"fast\" is not a rate" },
		{ 10, "node \"node1\": heartbeat port \"70000\" is not a port number" },
		{ 11, "node \"node1\": nbd port 7788 clashes with the data port (line 9)" },
		{ 14, "node \"node2\": data address 192.168.77.1 port 7788 is also node \"node1\"'s" },
		{ 18, "node \"node1\" is defined twice (first on line 8)" },
		{ 21, "node \"node3\": at most 2 nodes" },
		{ 24, "lun \"vol0\": size \"1Q\" is not a size (use a number with optional K/M/G/T suffix)" },
		{ 24, "lun \"vol0\": mode \"fast\" is unknown (use sync or async)" },
		{ 24, "lun \"vol0\": mirrored \"maybe\" is not yes or no" },
		{ 24, "lun \"vol0\": primary \"node9\" is not a defined node" },
		{ 24, "lun \"vol0\": node \"node2\" has no backing" },
		{ 26, "lun \"vol0\": backing node \"node7\" is not a defined node" },
		{ 28, "lun \"vol0\" is defined twice (first on line 24)" },
		{ 31, "lun \"vol1\": size must not be 0" },
		{ 33, "lun \"vol1\": journal max-size \"lots\" is not a size" },
		{ 35, "lun \"vol2\": size \"1000\" (1000 bytes) is not a multiple of 512" },
		{ 36, "lun \"vol2\": backing io \"fast\" is unknown (use auto, direct or buffered)" },
	};
	const size_t n = sizeof(want) / sizeof(want[0]);
	struct diags d;
	ipm_config *cfg = NULL;
	int rc = load("bad-values.xml", &d, &cfg);

	for (size_t i = 0; i < n; i++)
		expect_diag(&d, want[i].line, want[i].msg);
	if (d.n != n)
		dump(&d);
	assert_int_equal(d.n, n);
	assert_int_equal(rc, (int)n);
	assert_null(cfg);
	/* reported in file order */
	for (unsigned i = 1; i < d.n; i++)
		assert_true(d.line[i - 1] <= d.line[i]);
}

/* Every numeric attribute is bounded: each value out of its range is
 * refused with its line, its text and the range (issue 13 item 7). */
static void test_bad_bounds(void **state)
{
	static const struct { const char *file; int line; const char *msg; } want[] = {
		{ "bad-bounds.xml", 3, "heartbeat interval \"1e300\" is out of range (0.05..3600 seconds)" },
		{ "bad-bounds.xml", 3, "heartbeat timeout \"inf\" is not a number of seconds" },
		{ "bad-bounds.xml", 3, "heartbeat probation \"3601\" is out of range (0..3600 seconds)" },
		{ "bad-bounds.xml", 4, "connections count \"99999999999999999999999\" is out of range (1..64)" },
		{ "bad-bounds.xml", 5, "mirror async-window \"65537\" is out of range (1..65536)" },
		{ "bad-bounds.xml", 6, "resync rate \"1K\" is out of range (0 or 64K..1T bytes/s)" },
		{ "bad-bounds.xml", 8, "node \"node1\": data port \"0\" is not a port number (1..65535)" },
		{ "bad-bounds.xml", 17, "lun \"vol0\": size \"512T\" is out of range (512..256T)" },
		{ "bad-bounds.xml", 19, "lun \"vol0\": journal max-size \"512K\" is out of range (1M..16T)" },
		{ "bad-bounds.xml", 23, "lun \"vol1\": journal max-size \"32T\" is out of range (1M..16T)" },
		{ "bad-bounds-2.xml", 2, "heartbeat interval \"0.049\" is out of range (0.05..3600 seconds)" },
		{ "bad-bounds-2.xml", 2, "heartbeat timeout \"nan\" is not a number of seconds" },
		{ "bad-bounds-2.xml", 2, "heartbeat probation \"0x10\" is not a number of seconds" },
		{ "bad-bounds-2.xml", 2, "heartbeat state-dir \"state\" must be an absolute path" },
		{ "bad-bounds-2.xml", 3, "resync rate \"2T\" is out of range (0 or 64K..1T bytes/s)" },
	};
	const char *files[] = { "bad-bounds.xml", "bad-bounds-2.xml" };
	struct diags d;
	ipm_config *cfg;
	unsigned f, n;

	(void)state;
	for (f = 0; f < 2; f++) {
		cfg = NULL;
		load(files[f], &d, &cfg);
		for (size_t i = n = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			if (strcmp(want[i].file, files[f]) != 0)
				continue;
			expect_diag(&d, want[i].line, want[i].msg);
			n++;
		}
		if (d.n != n)
			dump(&d);
		assert_int_equal(d.n, n);
		assert_null(cfg);
	}
}

/* The bounds themselves are accepted. */
static void test_good_bounds(void **state)
{
	ipm_config *cfg = load_good("good-bounds.xml"), *c;

	(void)state;
	assert_true(cfg->hb_interval == 0.05);
	assert_true(cfg->hb_timeout == 3600);
	assert_true(cfg->hb_probation == 0);
	assert_string_equal(cfg->hb_state_dir, "/var/lib/ipmirror");
	assert_int_equal(cfg->conn_count, 64);
	assert_int_equal(cfg->async_window, 65536);
	assert_true(cfg->resync_rate == 1ull << 40);
	assert_true(cfg->luns[0].size == 256ull << 40);
	assert_true(cfg->luns[0].journal_max == 16ull << 40);
	assert_true(cfg->luns[1].size == 512);
	assert_true(cfg->luns[1].journal_max == 1u << 20);
	c = ipm_config_dup(cfg);
	assert_non_null(c);
	assert_string_equal(c->hb_state_dir, cfg->hb_state_dir);
	assert_ptr_not_equal(c->hb_state_dir, cfg->hb_state_dir);
	ipm_config_free(c);
	ipm_config_free(cfg);
}

/* ---- one diagnostic each, from a document written here ------------------- */

#define SOLO_NODE "<node name=\"solo\"><nbd unix=\"/run/s.sock\"/></node>\n"
#define SOLO_LUN "<lun name=\"vol0\" size=\"64M\"><backing path=\"/srv/v.img\"/></lun>\n"
/* 64 characters (one too many for a name), an address past 63 bytes and a
 * unix path past 107 */
#define N16 "nnnnnnnnnnnnnnnn"
#define N64 N16 N16 N16 N16
#define A70 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define U142 "/run/" N64 N16 N16 "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
#define PAIR_HEAD "<ipmirror version=\"1\">\n<secret file=\"/etc/ipmirror/secret\"/>\n"
#define PAIR_LUN "<lun name=\"vol0\" size=\"64M\" primary=\"n1\"><backing path=\"/srv/v.img\"/></lun>\n"

static const struct one_diag {
	const char *xml;
	int line;
	const char *msg;
	int also; /* follow-on diagnostics this problem brings */
} one_diags[] = {
	{ "<ipmirror version=\"1\">\n<node name=\"\"><nbd unix=\"/run/s.sock\"/></node>\n" SOLO_LUN
	  "</ipmirror>\n", 2, "node name is empty", 1 /* lun "vol0" has no primary */ },
	{ "<ipmirror version=\"1\">\n<node name=\"" N64 "\"><nbd unix=\"/run/s.sock\"/></node>\n"
	  SOLO_LUN "</ipmirror>\n", 2, "node name \"" N64 "\" is too long (at most 63 characters)", 1 },
	{ "<ipmirror version=\"1\">\n" SOLO_NODE
	  "<lun name=\"\" size=\"64M\"><backing path=\"/srv/v.img\"/></lun>\n</ipmirror>\n",
	  3, "lun name is empty", 0 },
	{ "<ipmirror version=\"1\">\n" SOLO_NODE
	  "<lun name=\"" N64 "\" size=\"64M\"><backing path=\"/srv/v.img\"/></lun>\n</ipmirror>\n",
	  3, "lun name \"" N64 "\" is too long (at most 63 characters)", 0 },
	{ "<ipmirror version=\"1\">\n<node name=\"solo\">\n<nbd address=\"\" port=\"10809\"/></node>\n"
	  SOLO_LUN "</ipmirror>\n", 3, "node \"solo\": nbd address is empty", 0 },
	{ "<ipmirror version=\"1\">\n<node name=\"solo\">\n<nbd address=\"" A70 "\" port=\"10809\"/></node>\n"
	  SOLO_LUN "</ipmirror>\n", 3, "node \"solo\": nbd address \"" A70 "\" is too long (at most 63 bytes)", 0 },
	{ "<ipmirror version=\"1\">\n<node name=\"solo\">\n<nbd unix=\"" U142 "\"/></node>\n"
	  SOLO_LUN "</ipmirror>\n", 3, "node \"solo\": nbd unix \"" U142 "\" is too long (at most 107 bytes)", 0 },
	{ "<ipmirror version=\"1\">\n<node name=\"solo\">\n<nbd address=\"127.0.0.1\"/></node>\n"
	  SOLO_LUN "</ipmirror>\n", 3, "node \"solo\": nbd needs both address and port", 0 },
	{ "<ipmirror version=\"1\">\n<node name=\"solo\">\n<nbd/></node>\n"
	  SOLO_LUN "</ipmirror>\n", 3, "node \"solo\": nbd needs address and port, or unix", 0 },
	{ "<ipmirror version=\"1\">\n<node name=\"solo\"/>\n" SOLO_LUN "</ipmirror>\n",
	  2, "node \"solo\" has no <nbd> element: hosts could not reach its luns", 0 },
	{ PAIR_HEAD
	  "<node name=\"n1\"><data address=\"10.0.0.1\" port=\"7788\"/><heartbeat address=\"10.0.9.9\" port=\"7789\"/><nbd unix=\"/run/1.sock\"/></node>\n"
	  "<node name=\"n2\"><data address=\"10.0.0.2\" port=\"7788\"/>\n<heartbeat address=\"10.0.9.9\" port=\"7789\"/><nbd unix=\"/run/2.sock\"/></node>\n"
	  PAIR_LUN "</ipmirror>\n",
	  5, "node \"n2\": heartbeat address 10.0.9.9 port 7789 is also node \"n1\"'s (line 3)", 0 },
	{ "<ipmirror version=\"1\">\n" SOLO_NODE "<lun name=\"vol0\" size=\"64M\">\n"
	  "<backing node=\"a\" path=\"/srv/a\"/><backing node=\"b\" path=\"/srv/b\"/>\n"
	  "<backing node=\"c\" path=\"/srv/c\"/><backing node=\"d\" path=\"/srv/d\"/>\n"
	  "<backing path=\"/srv/e\"/></lun>\n</ipmirror>\n",
	  6, "lun \"vol0\": too many <backing> elements (at most 4)",
	  5 /* 4 x not a defined node, solo has no backing */ },
	{ "<ipmirror version=\"1\">\n<log file=\"ipmirror.log\"/>\n" SOLO_NODE SOLO_LUN "</ipmirror>\n",
	  2, "log file \"ipmirror.log\" must be an absolute path", 0 },
	{ "<ipmirror version=\"1\">\n<node name=\"solo\">\n<nbd unix=\"run/s.sock\"/></node>\n"
	  SOLO_LUN "</ipmirror>\n", 3, "nbd unix \"run/s.sock\" must be an absolute path", 0 },
	{ "<ipmirror version=\"1\">\n<node name=\"solo\"><nbd unix=\"/run/s.sock\"/>\n"
	  "<heartbeat-volume path=\"hb.img\"/></node>\n" SOLO_LUN "</ipmirror>\n",
	  3, "heartbeat volume path \"hb.img\" must be an absolute path", 0 },
	{ "<ipmirror version=\"1\">\n" SOLO_NODE
	  "<lun name=\"vol0\" size=\"64M\">\n<backing path=\"./v.img\"/></lun>\n</ipmirror>\n",
	  4, "backing path \"./v.img\" must be an absolute path", 1 /* solo has no backing */ },
	{ "<ipmirror version=\"1\">\n" SOLO_NODE "<lun name=\"vol0\" size=\"64M\">"
	  "<backing path=\"/srv/v.img\"/>\n<journal path=\"v.journal\"/></lun>\n</ipmirror>\n",
	  4, "journal path \"v.journal\" must be an absolute path", 0 },
	{ "<ipmirror version=\"1\">\n<secret file=\"secret\"/>\n" SOLO_NODE SOLO_LUN "</ipmirror>\n",
	  2, "secret file \"secret\" must be an absolute path", 0 },
	{ "<ipmirror version=\"1\">\n<node name=\"solo\">port 10809<nbd unix=\"/run/s.sock\"/></node>\n"
	  SOLO_LUN "</ipmirror>\n", 2, "unexpected text (settings go in attributes)", 0 },
	{ "<ipmirror version=\"1\">\n<connections count=\"2\"/>\n<connections count=\"4\"/>\n"
	  SOLO_NODE SOLO_LUN "</ipmirror>\n", 3, "<connections> may appear only once", 0 },
	{ "<ipmirror version=\"1\">\n" SOLO_NODE "<lun name=\"vol0\" size=\"64M\">\n</lun>\n</ipmirror>\n",
	  3, "at least one <backing> is required", 0 },
	{ "<ipmirror version=\"1\">\n" SOLO_LUN "</ipmirror>\n", 1, "at least one <node> is required", 0 },
	{ "<?xml version=\"1.0\"?>\n<config version=\"1\">\n" SOLO_NODE SOLO_LUN "</config>\n",
	  2, "the root element must be <ipmirror>, not <config>", 0 },
	{ "<ipmirror version=\"2\">\n" SOLO_NODE SOLO_LUN "</ipmirror>\n",
	  1, "<ipmirror>: version \"2\" is not supported (use 1)", 0 },
	{ "", 0, "the file is empty", 0 },
};

/* Writes the document to a file of its own and loads it. */
static int load_text(const char *xml, struct diags *d, ipm_config **cfg)
{
	char path[] = "/tmp/test_config.XXXXXX";
	int fd = mkstemp(path), rc;
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(fputs(xml, f) < 0 && *xml, 0);
	assert_int_equal(fclose(f), 0);
	memset(d, 0, sizeof(*d));
	rc = ipm_config_load(path, schema(), collect, d, cfg);
	unlink(path);
	return rc;
}

/* Some diag on `line` contains substr (no failure: the caller counts). */
static bool has_diag(const struct diags *d, int line, const char *substr)
{
	for (unsigned i = 0; i < d->n; i++)
		if (d->line[i] == line && strstr(d->msg[i], substr))
			return true;
	return false;
}

/* Each document has one problem: its diagnostic on its line, and only
 * the follow-ons counted in the table (every case is tried; the failures are listed together). */
static void test_one_diagnostic_each(void **state)
{
	struct diags d;
	ipm_config *cfg;
	unsigned bad = 0;
	int rc, want;

	(void)state;
	for (size_t i = 0; i < sizeof(one_diags) / sizeof(one_diags[0]); i++) {
		cfg = NULL;
		rc = load_text(one_diags[i].xml, &d, &cfg);
		want = 1 + one_diags[i].also;
		if (has_diag(&d, one_diags[i].line, one_diags[i].msg) && rc == want &&
		    d.n == (unsigned)want && !cfg)
			continue;
		print_message("# case %zu: want line %d \"%s\" (%d in all), got %d:\n", i,
			      one_diags[i].line, one_diags[i].msg, want, rc);
		dump(&d);
		ipm_config_free(cfg);
		bad++;
	}
	assert_int_equal(bad, 0);
}

static void test_bad_single(void **state)
{
	struct diags d;
	ipm_config *cfg = NULL;
	int rc = load("bad-single.xml", &d, &cfg);

	assert_int_equal(rc, 4);
	expect_diag(&d, 2, "heartbeat interval \"0\" is out of range (0.05..3600 seconds)");
	expect_diag(&d, 5, "node \"solo\": nbd port 7788 clashes with the data port (line 4)");
	expect_diag(&d, 7, "lun \"vol0\" is mirrored but the config defines only one node");
	expect_diag(&d, 12, "lun \"vol1\": a second backing for node \"solo\" (first on line 11)");
}

static void test_bad_mirror_needs(void **state)
{
	struct diags d;
	ipm_config *cfg = NULL;
	int rc = load("bad-mirror-needs.xml", &d, &cfg);

	assert_int_equal(rc, 5);
	expect_diag(&d, 2, "node \"node1\" has no <data> element");
	expect_diag(&d, 2, "node \"node1\" has no <heartbeat> element");
	expect_diag(&d, 10, "lun \"vol0\" has no primary (required with two nodes)");
	expect_diag(&d, 10, "lun \"vol0\": node \"node2\" has no backing");
	expect_diag(&d, 10, "lun \"vol0\" is mirrored but there is no <secret");
}

/* Without a callback the count is still returned. */
static void test_no_diag_callback(void **state)
{
	ipm_config *cfg = NULL;

	assert_int_equal(ipm_config_load(fixture("bad-single.xml"), schema(), NULL, NULL, &cfg), 4);
	assert_null(cfg);
}

static void test_unreadable(void **state)
{
	struct diags d = { 0 };
	ipm_config *cfg = NULL;

	assert_int_equal(ipm_config_load(fixture("no-such-file.xml"), schema(), collect, &d, &cfg),
			 -ENOENT);
	assert_int_equal(ipm_config_load(fixture(""), schema(), collect, &d, &cfg), -EISDIR);
	assert_int_equal(d.n, 0);
	assert_null(cfg);
}

/* The RelaxNG validation runs: a stricter schema rejects a file the
 * built-in checks accept, with the line of the offending element. */
static void test_schema_enforced(void **state)
{
	char rng[1024];
	struct diags d = { 0 };
	ipm_config *cfg = NULL;
	int rc;

	snprintf(rng, sizeof(rng), "%s", fixture("require-secret.rng"));
	rc = ipm_config_load(fixture("good-minimal.xml"), rng, collect, &d, &cfg);
	if (rc <= 0)
		dump(&d);
	/* one problem: libxml2's per-element summaries are not repeated */
	assert_int_equal(rc, 1);
	assert_int_equal(d.n, 1);
	assert_null(cfg);
	expect_diag(&d, 1, "Expecting element secret, got node");

	memset(&d, 0, sizeof(d));
	rc = ipm_config_load(fixture("good-pair.xml"), rng, collect, &d, &cfg);
	assert_int_equal(rc, 0);
	ipm_config_free(cfg);
}

static void test_schema_missing(void **state)
{
	char rng[1024];
	struct diags d = { 0 };
	ipm_config *cfg = NULL;

	snprintf(rng, sizeof(rng), "%s", fixture("no-such-schema.rng"));
	assert_int_equal(ipm_config_load(fixture("good-minimal.xml"), rng, collect, &d, &cfg),
			 -ENOENT);
	assert_int_equal(d.n, 1);
	expect_diag(&d, 0, "cannot read the schema");
	expect_diag(&d, 0, "no-such-schema.rng");

	memset(&d, 0, sizeof(d));
	snprintf(rng, sizeof(rng), "%s", fixture("broken.rng"));
	assert_int_equal(ipm_config_load(fixture("good-minimal.xml"), rng, collect, &d, &cfg),
			 -EINVAL);
	expect_diag(&d, 0, "broken.rng is not valid RelaxNG: ");
	assert_null(cfg);
}

/* With no schema argument, IPMIRROR_SCHEMA (tests, uninstalled builds) wins
 * over the installed path. */
static void test_schema_env(void **state)
{
	char rng[1024], *saved = getenv("IPMIRROR_SCHEMA");
	ipm_config *cfg = NULL;

	saved = saved ? strdup(saved) : NULL;
	snprintf(rng, sizeof(rng), "%s", fixture("require-secret.rng"));
	assert_int_equal(setenv("IPMIRROR_SCHEMA", rng, 1), 0);
	assert_int_equal(ipm_config_load(fixture("good-minimal.xml"), NULL, NULL, NULL, &cfg), 1);
	assert_null(cfg);
	if (saved)
		setenv("IPMIRROR_SCHEMA", saved, 1);
	else
		unsetenv("IPMIRROR_SCHEMA");
	free(saved);
}

/* ---- sizes -------------------------------------------------------------------- */

static void test_parse_size(void **state)
{
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "0", 0 }, { "512", 512 }, { "1K", 1024 }, { "1k", 1024 },
		{ "3M", 3ull << 20 }, { "1G", 1ull << 30 }, { "2T", 2ull << 40 },
		{ "16777215T", 16777215ull << 40 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "K", "1Q", "1KB", "1 G", " 1G", "-1", "+1", "1.5G", "0x10", "1G ",
		"18446744073709551616", "16777216T", "99999999999999999999999",
	};
	uint64_t v;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 12345;
		assert_int_equal(ipm_parse_size(good[i].s, &v), 0);
		assert_int_equal(v, good[i].v);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 12345;
		if (ipm_parse_size(bad[i], &v) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_int_equal(v, 12345);
	}
	assert_int_equal(ipm_parse_size(NULL, &v), -EINVAL);
}

/* ---- deep copy ------------------------------------------------------------------ */

static void test_dup(void **state)
{
	ipm_config *cfg = load_good("good-pair.xml");
	ipm_config *c = ipm_config_dup(cfg);
	unsigned i, j;

	assert_non_null(c);
	assert_int_equal(c->n_nodes, cfg->n_nodes);
	assert_int_equal(c->n_luns, cfg->n_luns);
	assert_ptr_not_equal(c->luns, cfg->luns);
	assert_ptr_not_equal(c->path, cfg->path);
	assert_string_equal(c->secret_file, cfg->secret_file);
	assert_ptr_not_equal(c->secret_file, cfg->secret_file);
	assert_string_equal(c->log_file, cfg->log_file);
	assert_int_equal(c->conn_count, cfg->conn_count);
	assert_true(c->hb_timeout == cfg->hb_timeout);
	for (i = 0; i < c->n_nodes; i++) {
		assert_string_equal(c->nodes[i].name, cfg->nodes[i].name);
		assert_ptr_not_equal(c->nodes[i].name, cfg->nodes[i].name);
		assert_string_equal(c->nodes[i].data.address, cfg->nodes[i].data.address);
		assert_int_equal(c->nodes[i].nbd.port, cfg->nodes[i].nbd.port);
	}
	for (i = 0; i < c->n_luns; i++) {
		assert_string_equal(c->luns[i].name, cfg->luns[i].name);
		assert_ptr_not_equal(c->luns[i].name, cfg->luns[i].name);
		assert_string_equal(c->luns[i].primary, cfg->luns[i].primary);
		assert_int_equal(c->luns[i].size, cfg->luns[i].size);
		assert_int_equal(c->luns[i].n_backing, cfg->luns[i].n_backing);
		for (j = 0; j < c->luns[i].n_backing; j++) {
			assert_ptr_not_equal(c->luns[i].backing[j].path, cfg->luns[i].backing[j].path);
			assert_string_equal(c->luns[i].backing[j].path, cfg->luns[i].backing[j].path);
		}
	}
	/* the copy outlives the original */
	ipm_config_free(cfg);
	assert_string_equal(c->luns[0].journal_path, "/var/lib/ipmirror/vol0.journal");
	assert_string_equal(ipm_lun_cfg_backing(&c->luns[0], "node2"), "/srv/vol0.img");
	assert_string_equal(ipm_config_peer(c, "node1")->name, "node2");
	assert_null(ipm_config_dup(NULL));
	ipm_config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_pair),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_queries),
		cmocka_unit_test(test_backing_lookup),
		cmocka_unit_test(test_bad_syntax),
		cmocka_unit_test(test_bad_structure),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_bad_bounds),
		cmocka_unit_test(test_good_bounds),
		cmocka_unit_test(test_bad_single),
		cmocka_unit_test(test_one_diagnostic_each),
		cmocka_unit_test(test_bad_mirror_needs),
		cmocka_unit_test(test_no_diag_callback),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_schema_enforced),
		cmocka_unit_test(test_schema_missing),
		cmocka_unit_test(test_schema_env),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_dup),
		cmocka_unit_test(test_dup_every_string),
		cmocka_unit_test(test_nbd_unix_group),
		cmocka_unit_test(test_nbd_limits),
		cmocka_unit_test(test_bad_nbd_limits),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_handlers),
		cmocka_unit_test(test_tls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
