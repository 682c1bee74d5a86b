/* config_diff.c - the changes between two loads of the configuration file
 * as one node sees them, each live or needing a restart (config_diff.h). */
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "config_diff.h"

struct differ {
	struct cfg_diff *d;
	const ipm_config *old, *cur;
	const char *node;
	unsigned cap;
	bool oom;
};

static void add(struct differ *x, enum cfg_change_kind kind, const char *lun, int line,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add(struct differ *x, enum cfg_change_kind kind, const char *lun, int line,
		const char *fmt, ...)
{
	struct cfg_diff *d = x->d;
	struct cfg_change *c;
	va_list ap;

	if (x->oom)
		return;
	if (d->n == x->cap) {
		unsigned cap = x->cap ? 2 * x->cap : 8;

		c = realloc(d->v, cap * sizeof(*c));
		if (!c) {
			x->oom = true;
			return;
		}
		d->v = c;
		x->cap = cap;
	}
	c = &d->v[d->n++];
	c->kind = kind;
	snprintf(c->lun, sizeof(c->lun), "%s", lun ? lun : "");
	c->line = line;
	va_start(ap, fmt);
	vsnprintf(c->text, sizeof(c->text), fmt, ap);
	va_end(ap);
	d->n_restart += kind == CHG_RESTART;
}

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static const char *shown(const char *s)
{
	return s ? s : "(none)";
}

/* 1073741824 -> "1G"; 0 -> zero. */
static const char *size_text(uint64_t v, const char *zero, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	int u = -1;

	if (!v)
		return zero;
	while (u < 3 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu", (unsigned long long)v);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)v, units[u]);
	return buf;
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_DEBUG: return "debug";
	case LOG_INFO: return "info";
	case LOG_NOTICE: return "notice";
	case LOG_WARNING: return "warning";
	case LOG_ERR: return "err";
	default: return "(default)";
	}
}

static int line_or(int line, int fallback)
{
	return line ? line : fallback;
}

/* ---- global elements ------------------------------------------------------- */

static void diff_restart_globals(struct differ *x)
{
	const ipm_config *o = x->old, *c = x->cur;

	if (!same(o->secret_file, c->secret_file))
		add(x, CHG_RESTART, NULL, c->secret_line, "secret file %s -> %s",
		    shown(o->secret_file), shown(c->secret_file));
	if (o->conn_count != c->conn_count)
		add(x, CHG_RESTART, NULL, c->conn_line, "connections count %u -> %u",
		    o->conn_count, c->conn_count);
	if (o->tls_mode != c->tls_mode)
		add(x, CHG_RESTART, NULL, c->tls_line, "tls mode %s -> %s",
		    ipm_tls_mode_name(o->tls_mode), ipm_tls_mode_name(c->tls_mode));
	if (!same(o->tls_cert, c->tls_cert) || !same(o->tls_key, c->tls_key) ||
	    !same(o->tls_ca, c->tls_ca))
		add(x, CHG_RESTART, NULL, c->tls_line, "tls cert, key or ca changed");
	for (unsigned i = 0; i < IPM_HANDLER_EVENTS; i++)
		if (!same(o->handlers[i], c->handlers[i]))
			add(x, CHG_RESTART, NULL, c->handlers_line, "handlers %s %s -> %s",
			    ipm_handler_events[i], shown(o->handlers[i]), shown(c->handlers[i]));
	if (o->handler_timeout != c->handler_timeout)
		add(x, CHG_RESTART, NULL, c->handlers_line, "handlers timeout %u -> %u",
		    o->handler_timeout, c->handler_timeout);
	if (!same(o->hb_state_dir, c->hb_state_dir))
		add(x, CHG_RESTART, NULL, c->hb_line, "heartbeat state-dir %s -> %s",
		    shown(o->hb_state_dir), shown(c->hb_state_dir));
}

/* " interval 1.5 -> 1" appended to buf, after a comma when not the first */
static void times_part(char *buf, size_t len, const char *name, double a, double b)
{
	size_t n = strlen(buf);

	if (a != b)
		snprintf(buf + n, len - n, "%s %s %g -> %g", n ? "," : "", name, a, b);
}

static void diff_heartbeat(struct differ *x)
{
	const ipm_config *o = x->old, *c = x->cur;
	char t[160] = "";

	times_part(t, sizeof(t), "interval", o->hb_interval, c->hb_interval);
	times_part(t, sizeof(t), "timeout", o->hb_timeout, c->hb_timeout);
	times_part(t, sizeof(t), "probation", o->hb_probation, c->hb_probation);
	if (t[0])
		add(x, CHG_HB_TIMES, NULL, c->hb_line, "heartbeat%s (seconds)", t);
	if (o->hb_method != c->hb_method)
		add(x, CHG_HB_METHOD, NULL, c->hb_line, "heartbeat method %s -> %s",
		    ipm_method_name(o->hb_method), ipm_method_name(c->hb_method));
}

static void diff_live_globals(struct differ *x)
{
	const ipm_config *o = x->old, *c = x->cur;
	char a[32], b[32];

	diff_heartbeat(x);
	if (o->async_window != c->async_window)
		add(x, CHG_ASYNC_WINDOW, NULL, c->mirror_line, "mirror async-window %u -> %u",
		    o->async_window, c->async_window);
	if (o->resync_rate != c->resync_rate)
		add(x, CHG_RESYNC_RATE, NULL, c->resync_line, "resync rate %s -> %s",
		    size_text(o->resync_rate, "0 (unlimited)", a, sizeof(a)),
		    size_text(c->resync_rate, "0 (unlimited)", b, sizeof(b)));
	if (o->log_level != c->log_level)
		add(x, CHG_LOG, NULL, c->log_line, "log level %s -> %s", level_name(o->log_level),
		    level_name(c->log_level));
	if (!same(o->log_file, c->log_file))
		add(x, CHG_LOG, NULL, c->log_line, "log file %s -> %s", shown(o->log_file),
		    shown(c->log_file));
}

/* ---- nodes ------------------------------------------------------------------ */

static void diff_endpoint(struct differ *x, const struct ipm_node_cfg *n, const char *what,
			  const struct ipm_endpoint *a, const struct ipm_endpoint *b)
{
	int line = line_or(b->line, n->line);

	if (!same(a->address, b->address))
		add(x, CHG_RESTART, NULL, line, "node \"%s\": %s address %s -> %s", n->name, what,
		    shown(a->address), shown(b->address));
	if (a->port != b->port)
		add(x, CHG_RESTART, NULL, line, "node \"%s\": %s port %u -> %u", n->name, what,
		    a->port, b->port);
}

static void diff_nbd(struct differ *x, const struct ipm_node_cfg *a, const struct ipm_node_cfg *b)
{
	static const struct { const char *attr; size_t off; } limits[] = {
		{ "handshake-timeout", offsetof(struct ipm_node_cfg, nbd_handshake_timeout) },
		{ "idle-timeout", offsetof(struct ipm_node_cfg, nbd_idle_timeout) },
		{ "send-timeout", offsetof(struct ipm_node_cfg, nbd_send_timeout) },
		{ "max-clients", offsetof(struct ipm_node_cfg, nbd_max_clients) },
		{ "max-clients-per-address", offsetof(struct ipm_node_cfg, nbd_max_per_address) },
	};
	int line = line_or(b->nbd.line, b->line);

	diff_endpoint(x, b, "nbd", &a->nbd, &b->nbd);
	if (!same(a->nbd_unix, b->nbd_unix))
		add(x, CHG_RESTART, NULL, line, "node \"%s\": nbd unix %s -> %s", b->name,
		    shown(a->nbd_unix), shown(b->nbd_unix));
	if (!same(a->nbd_unix_group, b->nbd_unix_group))
		add(x, CHG_RESTART, NULL, line, "node \"%s\": nbd unix-group %s -> %s", b->name,
		    shown(a->nbd_unix_group), shown(b->nbd_unix_group));
	if (a->nbd_tls != b->nbd_tls)
		add(x, CHG_RESTART, NULL, line, "node \"%s\": nbd tls changed", b->name);
	if (!same(a->nbd_tls_psk_file, b->nbd_tls_psk_file) || !same(a->nbd_tls_cert, b->nbd_tls_cert) ||
	    !same(a->nbd_tls_key, b->nbd_tls_key) || !same(a->nbd_tls_ca, b->nbd_tls_ca))
		add(x, CHG_RESTART, NULL, line, "node \"%s\": nbd tls-psk-file, tls-cert, tls-key or tls-ca changed",
		    b->name);
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		unsigned va = *(const unsigned *)((const char *)a + limits[i].off);
		unsigned vb = *(const unsigned *)((const char *)b + limits[i].off);

		if (va != vb)
			add(x, CHG_RESTART, NULL, line, "node \"%s\": nbd %s %u -> %u", b->name,
			    limits[i].attr, va, vb);
	}
}

/* Nodes by position: a node's place in the file is its heartbeat slot. */
static void diff_nodes(struct differ *x)
{
	const ipm_config *o = x->old, *c = x->cur;
	unsigned i;

	if (o->n_nodes != c->n_nodes) {
		add(x, CHG_RESTART, NULL, c->n_nodes ? c->nodes[c->n_nodes - 1].line : 0,
		    "nodes %u -> %u", o->n_nodes, c->n_nodes);
		return;
	}
	for (i = 0; i < c->n_nodes; i++) {
		const struct ipm_node_cfg *a = &o->nodes[i], *b = &c->nodes[i];

		if (!same(a->name, b->name)) {
			add(x, CHG_RESTART, NULL, b->line, "node name \"%s\" -> \"%s\"", a->name,
			    b->name);
			continue;
		}
		diff_endpoint(x, b, "data", &a->data, &b->data);
		diff_endpoint(x, b, "heartbeat", &a->heartbeat, &b->heartbeat);
		diff_nbd(x, a, b);
		diff_endpoint(x, b, "metrics", &a->metrics, &b->metrics);
		if (!same(a->hb_volume, b->hb_volume))
			add(x, CHG_RESTART, NULL, line_or(b->hb_volume_line, b->line),
			    "node \"%s\": heartbeat-volume path %s -> %s (ipmirrorctl heartbeat install|uninstall changes it at run time)",
			    b->name, shown(a->hb_volume), shown(b->hb_volume));
	}
}

/* ---- LUNs ------------------------------------------------------------------- */

static const struct ipm_lun_cfg *lun_named(const ipm_config *cfg, const char *name)
{
	for (unsigned i = 0; i < cfg->n_luns; i++)
		if (strcmp(cfg->luns[i].name, name) == 0)
			return &cfg->luns[i];
	return NULL;
}

static void diff_backing(struct differ *x, const struct ipm_lun_cfg *a,
			 const struct ipm_lun_cfg *b)
{
	const struct ipm_backing_cfg *ba = ipm_lun_cfg_backing_entry(a, x->node);
	const struct ipm_backing_cfg *bb = ipm_lun_cfg_backing_entry(b, x->node);
	int line = bb ? bb->line : b->line;

	if (!ba || !bb) {
		if (ba || bb)
			add(x, CHG_RESTART, b->name, line, "lun \"%s\": backing of node \"%s\" %s -> %s",
			    b->name, x->node, ba ? ba->path : "(none)", bb ? bb->path : "(none)");
		return;
	}
	if (!same(ba->path, bb->path))
		add(x, CHG_RESTART, b->name, line, "lun \"%s\": backing path %s -> %s", b->name,
		    ba->path, bb->path);
	if (ba->io != bb->io)
		add(x, CHG_RESTART, b->name, line, "lun \"%s\": backing io %s -> %s", b->name,
		    ba->io == IPM_IO_DIRECT ? "direct" : "buffered",
		    bb->io == IPM_IO_DIRECT ? "direct" : "buffered");
}

static void diff_lun(struct differ *x, const struct ipm_lun_cfg *a, const struct ipm_lun_cfg *b)
{
	int jline = line_or(b->journal_line, b->line);
	char s1[32], s2[32];

	if (a->size != b->size)
		add(x, CHG_LUN_SIZE, b->name, b->line, "lun \"%s\": size %s -> %s", b->name,
		    size_text(a->size, "0", s1, sizeof(s1)), size_text(b->size, "0", s2, sizeof(s2)));
	if (a->mirrored != b->mirrored)
		add(x, CHG_RESTART, b->name, b->line, "lun \"%s\": mirrored %s -> %s", b->name,
		    a->mirrored ? "yes" : "no", b->mirrored ? "yes" : "no");
	diff_backing(x, a, b);
	if (!same(a->journal_path, b->journal_path))
		add(x, CHG_RESTART, b->name, jline, "lun \"%s\": journal path %s -> %s", b->name,
		    shown(a->journal_path), shown(b->journal_path));
	/* primary= is the role at start-up; a running node's roles are
	 * promote/demote's (Pacemaker's): a reload leaves them */
	if (a->mode != b->mode)
		add(x, CHG_LUN_MODE, b->name, b->line, "lun \"%s\": mode %s -> %s", b->name,
		    ipm_mode_name(a->mode), ipm_mode_name(b->mode));
	if (a->journal_max != b->journal_max)
		add(x, CHG_JOURNAL_MAX, b->name, jline, "lun \"%s\": journal max-size %s -> %s",
		    b->name, size_text(a->journal_max, "(default)", s1, sizeof(s1)),
		    size_text(b->journal_max, "(default)", s2, sizeof(s2)));
}

static void diff_luns(struct differ *x)
{
	const ipm_config *o = x->old, *c = x->cur;
	const struct ipm_lun_cfg *a;
	unsigned i;

	for (i = 0; i < c->n_luns; i++) {
		a = lun_named(o, c->luns[i].name);
		if (a)
			diff_lun(x, a, &c->luns[i]);
		else
			add(x, CHG_LUN_ADD, c->luns[i].name, c->luns[i].line, "lun \"%s\" added",
			    c->luns[i].name);
	}
	for (i = 0; i < o->n_luns; i++)
		if (!lun_named(c, o->luns[i].name))
			add(x, CHG_LUN_REMOVE, o->luns[i].name, 0,
			    "lun \"%s\" removed (it was on line %d)", o->luns[i].name,
			    o->luns[i].line);
}

static int change_cmp(const void *pa, const void *pb)
{
	const struct cfg_change *a = pa, *b = pb;

	/* removals (line 0) last; else file order, stable by text */
	if (a->line != b->line)
		return !a->line ? 1 : !b->line ? -1 : a->line < b->line ? -1 : 1;
	return strcmp(a->text, b->text);
}

int cfg_diff(const ipm_config *old, const ipm_config *cur, const char *node,
	     struct cfg_diff *d)
{
	struct differ x = { .d = d, .old = old, .cur = cur, .node = node };

	memset(d, 0, sizeof(*d));
	diff_restart_globals(&x);
	diff_live_globals(&x);
	diff_nodes(&x);
	diff_luns(&x);
	if (x.oom) {
		cfg_diff_free(d);
		return -ENOMEM;
	}
	if (d->n)
		qsort(d->v, d->n, sizeof(*d->v), change_cmp);
	return 0;
}

void cfg_diff_free(struct cfg_diff *d)
{
	free(d->v);
	memset(d, 0, sizeof(*d));
}

static struct ipm_lun_cfg *lun_named_rw(ipm_config *cfg, const char *name)
{
	return (struct ipm_lun_cfg *)lun_named(cfg, name);
}

int cfg_change_apply(const struct cfg_change *c, ipm_config *dst, const ipm_config *cur)
{
	struct ipm_lun_cfg *ld = c->lun[0] ? lun_named_rw(dst, c->lun) : NULL;
	const struct ipm_lun_cfg *lc = c->lun[0] ? lun_named(cur, c->lun) : NULL;
	char *file;

	switch (c->kind) {
	case CHG_LUN_MODE:
	case CHG_JOURNAL_MAX:
	case CHG_LUN_SIZE:
		if (!ld || !lc)
			return -ENOENT;
		if (c->kind == CHG_LUN_MODE)
			__atomic_store_n(&ld->mode, lc->mode, __ATOMIC_RELAXED);
		else if (c->kind == CHG_LUN_SIZE)
			ld->size = lc->size;
		else
			ld->journal_max = lc->journal_max;
		return 0;
	case CHG_ASYNC_WINDOW:
		dst->async_window = cur->async_window;
		return 0;
	case CHG_RESYNC_RATE:
		dst->resync_rate = cur->resync_rate;
		return 0;
	case CHG_HB_TIMES:
		dst->hb_interval = cur->hb_interval;
		dst->hb_timeout = cur->hb_timeout;
		dst->hb_probation = cur->hb_probation;
		return 0;
	case CHG_HB_METHOD:
		dst->hb_method = cur->hb_method;
		return 0;
	case CHG_LOG:
		file = cur->log_file ? strdup(cur->log_file) : NULL;
		if (cur->log_file && !file)
			return -ENOMEM;
		free(dst->log_file);
		dst->log_file = file;
		dst->log_level = cur->log_level;
		return 0;
	default:
		return -EINVAL;
	}
}
