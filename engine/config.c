/* config.c - load, validate and query the XML configuration.
 *
 * Three passes, each reporting every problem it finds through the caller's
 * diag callback with the line of the offending element; a pass with problems
 * ends the load. 1: XML syntax. 2: structure, by a table mirroring
 * ipmirror.rng (precise messages) and then the RelaxNG schema itself.
 * 3: values and cross-references, which the schema leaves as text so that
 * each message can name the value and say what is expected. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlversion.h>

#include "config.h"
#include "fullio.h"

#ifndef IPM_SCHEMA_PATH
#define IPM_SCHEMA_PATH "/usr/share/ipmirror/ipmirror.rng"
#endif

/* libxml2 2.12 made the error handed to structured handlers const. */
#if LIBXML_VERSION >= 21200
#define XML_ERROR_T const xmlError
#else
#define XML_ERROR_T xmlError
#endif

#define CONFIG_MAX_BYTES (16 << 20)
#define ASYNC_WINDOW_DEFAULT 1024
#define ASYNC_WINDOW_MAX 65536
#define SIZE_HINT "(use a number with optional K/M/G/T suffix)"

/* Bounds of the numeric attributes (doc/config.md): beyond them a value is
 * a typo or would overflow what the engine derives from it (milliseconds,
 * bitmap bits, offsets). */
#define HB_SECONDS_MIN 0.05
#define HB_SECONDS_MAX 3600.0
#define RESYNC_RATE_MIN (64ull << 10)
#define RESYNC_RATE_MAX (1ull << 40)
#define RESYNC_RATE_RANGE "0 or 64K..1T"
#define LUN_SIZE_MAX (256ull << 40)
#define LUN_SIZE_RANGE "512..256T"
#define JOURNAL_MAX_MIN (1ull << 20)
#define JOURNAL_MAX_MAX (16ull << 40)
#define JOURNAL_MAX_RANGE "1M..16T"

struct diag_item {
	int line;
	unsigned seq;
	char *msg;
};

struct loader {
	const char *path;
	ipm_diag_fn diag;
	void *opaque;
	int problems;
	bool oom;
	ipm_config *cfg;
	int hb_line;             /* line of <heartbeat>, 0 when absent */
	int secret_line;
	bool in_schema;          /* errors come from RelaxNG validation */
	int schema_errors;
	/* held back and sorted by line, so the admin reads the file top-down */
	struct diag_item *items;
	unsigned n_items, cap_items;
};

static void report(struct loader *ld, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct loader *ld, int line, const char *fmt, ...)
{
	struct diag_item *it;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ld->problems++;
	if (!ld->diag)
		return;
	if (ld->n_items == ld->cap_items) {
		unsigned cap = ld->cap_items ? 2 * ld->cap_items : 16;

		it = realloc(ld->items, cap * sizeof(*it));
		if (!it)
			goto now;
		ld->items = it;
		ld->cap_items = cap;
	}
	it = &ld->items[ld->n_items];
	it->msg = strdup(msg);
	if (!it->msg)
		goto now;
	it->line = line;
	it->seq = ld->n_items++;
	return;
now:
	ld->diag(ld->opaque, ld->path, line, msg);
}

static int item_cmp(const void *a, const void *b)
{
	const struct diag_item *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void flush_diags(struct loader *ld)
{
	if (ld->n_items)
		qsort(ld->items, ld->n_items, sizeof(*ld->items), item_cmp);
	for (unsigned i = 0; i < ld->n_items; i++) {
		ld->diag(ld->opaque, ld->path, ld->items[i].line, ld->items[i].msg);
		free(ld->items[i].msg);
	}
	free(ld->items);
	ld->items = NULL;
	ld->n_items = ld->cap_items = 0;
}

/* ---- value parsers -------------------------------------------------------- */

int ipm_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const char *p = s;

	if (!s || *p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case '\0': break;
	case 'K': case 'k': shift = 10; break;
	case 'M': case 'm': shift = 20; break;
	case 'G': case 'g': shift = 30; break;
	case 'T': case 't': shift = 40; break;
	default: return -EINVAL;
	}
	if (*p && p[1])
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

/* A decimal unsigned integer, nothing else (no sign, no spaces). */
static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	uint64_t v;

	if (!s || !*s || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	if (ipm_parse_size(s, &v) < 0 || v > max)
		return -ERANGE;
	*out = (unsigned long)v;
	return 0;
}

/* Decimal seconds (no hex, inf or nan, which strtod would take). -EINVAL
 * when not such a number, -ERANGE when outside lo..hi (overflow and
 * negative numbers included). */
static int parse_seconds(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	if (!s || !*s || !strchr("0123456789.-", *s) || strpbrk(s, "xXpPnNiI"))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE || !isfinite(v) || v < lo || v > hi)
		return -ERANGE;
	*out = v;
	return 0;
}

/* ---- XML helpers ---------------------------------------------------------- */

static bool is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0;
}

static int line_of(const xmlNode *n)
{
	long l = xmlGetLineNo(n);

	return l > 0 && l < 0x7fffffff ? (int)l : 0;
}

/* The attribute as a malloc'd string (NULL when absent or out of memory). */
static char *attr(struct loader *ld, const xmlNode *n, const char *name)
{
	xmlChar *v = xmlGetProp(n, BAD_CAST name);
	char *s;

	if (!v)
		return NULL;
	s = strdup((const char *)v);
	xmlFree(v);
	if (!s)
		ld->oom = true;
	return s;
}

/* An absolute path attribute; NULL (after a report) when absent or relative:
 * the daemon runs from "/", so a relative path would change meaning. */
static char *path_attr(struct loader *ld, const xmlNode *n, const char *name,
		       const char *what)
{
	char *p = attr(ld, n, name);

	if (p && p[0] != '/') {
		report(ld, line_of(n), "%s \"%s\" must be an absolute path", what, p);
		free(p);
		return NULL;
	}
	return p;
}

/* ---- global elements ------------------------------------------------------ */

static void parse_seconds_attr(struct loader *ld, const xmlNode *n, const char *name,
			       double lo, double *out)
{
	char *s = attr(ld, n, name);
	int rc = s ? parse_seconds(s, lo, HB_SECONDS_MAX, out) : 0;

	if (rc == -EINVAL)
		report(ld, line_of(n), "heartbeat %s \"%s\" is not a number of seconds", name, s);
	else if (rc < 0)
		report(ld, line_of(n), "heartbeat %s \"%s\" is out of range (%g..%g seconds)",
		       name, s, lo, HB_SECONDS_MAX);
	free(s);
}

static void parse_heartbeat(struct loader *ld, const xmlNode *n)
{
	static const char *const methods[] = { "udp", "storage", "both" };
	ipm_config *cfg = ld->cfg;
	char *m;
	unsigned i;

	ld->hb_line = line_of(n);
	parse_seconds_attr(ld, n, "interval", HB_SECONDS_MIN, &cfg->hb_interval);
	parse_seconds_attr(ld, n, "timeout", HB_SECONDS_MIN, &cfg->hb_timeout);
	/* 0: up at once when heartbeats return */
	parse_seconds_attr(ld, n, "probation", 0, &cfg->hb_probation);
	cfg->hb_state_dir = path_attr(ld, n, "state-dir", "heartbeat state-dir");
	m = attr(ld, n, "method");
	if (m) {
		for (i = 0; i < 3 && strcmp(m, methods[i]) != 0; i++)
			;
		if (i < 3)
			cfg->hb_method = (enum ipm_hb_method)i;
		else
			report(ld, ld->hb_line,
			       "heartbeat method \"%s\" is unknown (use udp, storage or both)", m);
	}
	free(m);
}

static void check_heartbeat_times(struct loader *ld)
{
	const ipm_config *cfg = ld->cfg;

	/* each is within its range already (parse_seconds_attr) */
	if (cfg->hb_timeout <= cfg->hb_interval)
		report(ld, ld->hb_line,
		       "heartbeat timeout (%g s) must be greater than the interval (%g s)",
		       cfg->hb_timeout, cfg->hb_interval);
}

static void parse_connections(struct loader *ld, const xmlNode *n)
{
	char *s = attr(ld, n, "count");
	unsigned long v;

	if (s && (parse_uint(s, IPM_CONN_MAX, &v) < 0 || v < 1))
		report(ld, line_of(n), "connections count \"%s\" is out of range (1..%d)", s,
		       IPM_CONN_MAX);
	else if (s)
		ld->cfg->conn_count = (unsigned)v;
	free(s);
}

/* A credential file of a tls attribute: absolute, and short enough for
 * ipm_listen's buffers. NULL when absent or refused (reported). */
static char *tls_path_attr(struct loader *ld, const xmlNode *n, const char *name,
			   const char *what)
{
	size_t max = sizeof(((ipm_listen *)0)->tls_cert) - 1;
	char *p = path_attr(ld, n, name, what);

	if (p && strlen(p) > max) {
		report(ld, line_of(n), "%s \"%s\" is too long (at most %zu bytes)", what, p, max);
		free(p);
		return NULL;
	}
	return p;
}

const char *ipm_tls_mode_name(enum ipm_tls_mode m)
{
	return m == IPM_TLS_PSK ? "psk" : m == IPM_TLS_X509 ? "x509" : "off";
}

/* <tls mode="off|psk|x509" cert key ca/>: psk needs nothing more (the key
 * comes from the shared secret); x509 needs all three files. */
static void parse_tls(struct loader *ld, const xmlNode *n)
{
	ipm_config *cfg = ld->cfg;
	char *mode = attr(ld, n, "mode");

	cfg->tls_line = line_of(n);
	cfg->tls_cert = tls_path_attr(ld, n, "cert", "tls cert");
	cfg->tls_key = tls_path_attr(ld, n, "key", "tls key");
	cfg->tls_ca = tls_path_attr(ld, n, "ca", "tls ca");
	if (!mode || !strcmp(mode, "off"))
		cfg->tls_mode = IPM_TLS_OFF;
	else if (!strcmp(mode, "psk"))
		cfg->tls_mode = IPM_TLS_PSK;
	else if (!strcmp(mode, "x509"))
		cfg->tls_mode = IPM_TLS_X509;
	else
		report(ld, cfg->tls_line, "tls mode \"%s\" is not one of off, psk, x509", mode);
	if (cfg->tls_mode == IPM_TLS_X509 && !(cfg->tls_cert && cfg->tls_key && cfg->tls_ca))
		report(ld, cfg->tls_line, "tls mode \"x509\" needs cert, key and ca");
	if (cfg->tls_mode != IPM_TLS_X509 && (cfg->tls_cert || cfg->tls_key || cfg->tls_ca))
		report(ld, cfg->tls_line, "tls cert, key and ca are for mode \"x509\" only");
	free(mode);
}

static void parse_log(struct loader *ld, const xmlNode *n)
{
	static const struct { const char *name; int prio; } levels[] = {
		{ "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "notice", LOG_NOTICE },
		{ "warning", LOG_WARNING }, { "err", LOG_ERR },
	};
	char *level = attr(ld, n, "level");
	unsigned i;

	if (level) {
		for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
			if (strcmp(level, levels[i].name) == 0)
				break;
		if (i < sizeof(levels) / sizeof(levels[0]))
			ld->cfg->log_level = levels[i].prio;
		else
			report(ld, line_of(n),
			       "log level \"%s\" is unknown (use debug, info, notice, warning or err)",
			       level);
	}
	free(level);
	ld->cfg->log_file = path_attr(ld, n, "file", "log file");
}

static void parse_mirror(struct loader *ld, const xmlNode *n)
{
	char *s = attr(ld, n, "async-window");
	unsigned long v;

	if (s && (parse_uint(s, ASYNC_WINDOW_MAX, &v) < 0 || v < 1))
		report(ld, line_of(n), "mirror async-window \"%s\" is out of range (1..%d)", s,
		       ASYNC_WINDOW_MAX);
	else if (s)
		ld->cfg->async_window = (unsigned)v;
	free(s);
}

static void parse_resync(struct loader *ld, const xmlNode *n)
{
	char *s = attr(ld, n, "rate");
	uint64_t v;

	if (s && ipm_parse_size(s, &v) < 0)
		report(ld, line_of(n),
		       "resync rate \"%s\" is not a rate (bytes/s: a number with optional K/M/G/T suffix; 0 = unlimited)",
		       s);
	else if (s && v && (v < RESYNC_RATE_MIN || v > RESYNC_RATE_MAX))
		report(ld, line_of(n), "resync rate \"%s\" is out of range (" RESYNC_RATE_RANGE
		       " bytes/s)", s);
	else if (s)
		ld->cfg->resync_rate = v;
	free(s);
}

const char *const ipm_handler_events[IPM_HANDLER_EVENTS] = {
	"split-brain", "resync-start", "resync-done", "local-io-error", "peer-lost", "fenced",
	"role-change",
};

#define HANDLER_TIMEOUT_MAX 3600

static void parse_handlers(struct loader *ld, const xmlNode *n)
{
	char *s = attr(ld, n, "timeout"), what[48];
	unsigned long v;
	unsigned i;

	if (s && (parse_uint(s, HANDLER_TIMEOUT_MAX, &v) < 0 || v < 1))
		report(ld, line_of(n), "handlers timeout \"%s\" is out of range (1..%d s)", s,
		       HANDLER_TIMEOUT_MAX);
	else if (s)
		ld->cfg->handler_timeout = (unsigned)v;
	free(s);
	for (i = 0; i < IPM_HANDLER_EVENTS; i++) {
		snprintf(what, sizeof(what), "%s handler", ipm_handler_events[i]);
		ld->cfg->handlers[i] = path_attr(ld, n, ipm_handler_events[i], what);
	}
}

const char *ipm_config_handler(const ipm_config *cfg, const char *event)
{
	unsigned i;

	for (i = 0; i < IPM_HANDLER_EVENTS; i++)
		if (strcmp(event, ipm_handler_events[i]) == 0)
			return cfg->handlers[i];
	return NULL;
}

unsigned ipm_config_handler_timeout(const ipm_config *cfg)
{
	return cfg->handler_timeout ? cfg->handler_timeout : IPM_HANDLER_TIMEOUT;
}

/* ---- nodes ---------------------------------------------------------------- */

static bool name_ok(struct loader *ld, int line, const char *what, const char *name)
{
	if (!name)
		return false;
	if (!*name) {
		report(ld, line, "%s name is empty", what);
		return false;
	}
	if (strlen(name) >= IPM_NAME_MAX) {
		report(ld, line, "%s name \"%s\" is too long (at most %d characters)", what, name,
		       IPM_NAME_MAX - 1);
		return false;
	}
	return true;
}

static void parse_port(struct loader *ld, const xmlNode *n, const char *node,
		       struct ipm_endpoint *ep)
{
	char *s = attr(ld, n, "port");
	unsigned long v;

	if (!s)
		return;
	if (parse_uint(s, 65535, &v) < 0 || v < 1)
		report(ld, ep->line, "node \"%s\": %s port \"%s\" is not a port number (1..65535)",
		       node, (const char *)n->name, s);
	else
		ep->port = (uint16_t)v;
	free(s);
}

static void parse_endpoint(struct loader *ld, const xmlNode *n, const char *node,
			   struct ipm_endpoint *ep)
{
	ep->line = line_of(n);
	ep->address = attr(ld, n, "address");
	if (ep->address && !*ep->address)
		report(ld, ep->line, "node \"%s\": %s address is empty", node,
		       (const char *)n->name);
	parse_port(ld, n, node, ep);
}

/* The group is looked up when the socket is made: the file is shared by
 * nodes whose group databases may differ. */
static void parse_nbd_group(struct loader *ld, const xmlNode *n, struct ipm_node_cfg *nc)
{
	size_t max = sizeof(((ipm_listen *)0)->unix_group) - 1;
	char *g = attr(ld, n, "unix-group");

	if (!g)
		return;
	if (!*g || strlen(g) > max)
		report(ld, nc->nbd.line, "node \"%s\": nbd unix-group \"%s\" must be a group name "
		       "of 1 to %zu bytes", nc->name, g, max);
	else if (!xmlHasProp(n, BAD_CAST "unix"))
		report(ld, nc->nbd.line, "node \"%s\": nbd unix-group needs a unix socket path",
		       nc->name);
	else {
		nc->nbd_unix_group = g;
		return;
	}
	free(g);
}

/* The client limits of <nbd>: attribute, bounds, default (doc/nbd.md). */
static const struct nbd_limit {
	const char *attr;
	unsigned min, max, def;
	size_t field;   /* an unsigned in struct ipm_node_cfg */
} nbd_limits[] = {
	{ "handshake-timeout", 1, 300, IPM_NBD_HANDSHAKE_TIMEOUT,
	  offsetof(struct ipm_node_cfg, nbd_handshake_timeout) },
	{ "idle-timeout", 0, 604800, 0, offsetof(struct ipm_node_cfg, nbd_idle_timeout) },
	{ "send-timeout", 1, 3600, IPM_NBD_SEND_TIMEOUT,
	  offsetof(struct ipm_node_cfg, nbd_send_timeout) },
	{ "max-clients", 1, IPM_NBD_CLIENTS_LIMIT, IPM_NBD_MAX_CLIENTS,
	  offsetof(struct ipm_node_cfg, nbd_max_clients) },
	{ "max-clients-per-address", 1, IPM_NBD_CLIENTS_LIMIT, IPM_NBD_MAX_PER_ADDRESS,
	  offsetof(struct ipm_node_cfg, nbd_max_per_address) },
};

static void parse_nbd_limits(struct loader *ld, const xmlNode *n, struct ipm_node_cfg *nc)
{
	for (size_t i = 0; i < sizeof(nbd_limits) / sizeof(nbd_limits[0]); i++) {
		const struct nbd_limit *lim = &nbd_limits[i];
		unsigned *field = (unsigned *)((char *)nc + lim->field);
		char *s = attr(ld, n, lim->attr);
		unsigned long v;

		*field = lim->def;
		if (s && (parse_uint(s, lim->max, &v) < 0 || v < lim->min))
			report(ld, nc->nbd.line, "node \"%s\": nbd %s \"%s\" is out of range (%u..%u)",
			       nc->name, lim->attr, s, lim->min, lim->max);
		else if (s)
			*field = (unsigned)v;
		free(s);
	}
}

/* <nbd tls=... tls-psk-file tls-cert tls-key tls-ca>: TLS for hosts. */
static void parse_nbd_tls(struct loader *ld, const xmlNode *n, struct ipm_node_cfg *nc)
{
	char *mode = attr(ld, n, "tls");
	bool creds;

	nc->nbd_tls_psk_file = tls_path_attr(ld, n, "tls-psk-file", "nbd tls-psk-file");
	nc->nbd_tls_cert = tls_path_attr(ld, n, "tls-cert", "nbd tls-cert");
	nc->nbd_tls_key = tls_path_attr(ld, n, "tls-key", "nbd tls-key");
	nc->nbd_tls_ca = tls_path_attr(ld, n, "tls-ca", "nbd tls-ca");
	creds = nc->nbd_tls_psk_file || nc->nbd_tls_cert;
	if (!mode || !strcmp(mode, "off"))
		nc->nbd_tls = IPM_NBD_TLS_OFF;
	else if (!strcmp(mode, "on"))
		nc->nbd_tls = IPM_NBD_TLS_ON;
	else if (!strcmp(mode, "require"))
		nc->nbd_tls = IPM_NBD_TLS_REQUIRE;
	else
		report(ld, nc->nbd.line, "node \"%s\": nbd tls \"%s\" is not one of off, on, require",
		       nc->name, mode);
	if (nc->nbd_tls != IPM_NBD_TLS_OFF && !creds)
		report(ld, nc->nbd.line, "node \"%s\": nbd tls \"%s\" needs tls-psk-file, or "
		       "tls-cert and tls-key", nc->name, mode);
	if (!nc->nbd_tls_cert != !nc->nbd_tls_key)
		report(ld, nc->nbd.line, "node \"%s\": nbd tls-cert and tls-key go together",
		       nc->name);
	if (nc->nbd_tls_ca && !nc->nbd_tls_cert)
		report(ld, nc->nbd.line, "node \"%s\": nbd tls-ca (client certificates) needs "
		       "tls-cert and tls-key", nc->name);
	free(mode);
}

static void parse_nbd(struct loader *ld, const xmlNode *n, struct ipm_node_cfg *nc)
{
	bool has_port = xmlHasProp(n, BAD_CAST "port") != NULL;
	size_t max_unix = sizeof(((ipm_listen *)0)->unix_path) - 1;
	size_t max_addr = sizeof(((ipm_listen *)0)->address) - 1;
	char *path;

	parse_endpoint(ld, n, nc->name, &nc->nbd);
	if (!nc->nbd.address != !has_port)
		report(ld, nc->nbd.line, "node \"%s\": nbd needs both address and port", nc->name);
	else if (!nc->nbd.address && !xmlHasProp(n, BAD_CAST "unix"))
		report(ld, nc->nbd.line, "node \"%s\": nbd needs address and port, or unix",
		       nc->name);
	if (nc->nbd.address && strlen(nc->nbd.address) > max_addr)
		report(ld, nc->nbd.line, "node \"%s\": nbd address \"%s\" is too long (at most %zu bytes)",
		       nc->name, nc->nbd.address, max_addr);
	path = path_attr(ld, n, "unix", "nbd unix");
	if (path && strlen(path) > max_unix) {
		report(ld, nc->nbd.line, "node \"%s\": nbd unix \"%s\" is too long (at most %zu bytes)",
		       nc->name, path, max_unix);
		free(path);
		path = NULL;
	}
	nc->nbd_unix = path;
	parse_nbd_group(ld, n, nc);
	parse_nbd_limits(ld, n, nc);
	parse_nbd_tls(ld, n, nc);
}

static void parse_node(struct loader *ld, const xmlNode *n)
{
	ipm_config *cfg = ld->cfg;
	int line = line_of(n);
	char *name = attr(ld, n, "name");
	struct ipm_node_cfg *nc;
	const xmlNode *c;
	unsigned i;

	if (!name_ok(ld, line, "node", name))
		goto out;
	for (i = 0; i < cfg->n_nodes; i++) {
		if (strcmp(cfg->nodes[i].name, name) == 0) {
			report(ld, line, "node \"%s\" is defined twice (first on line %d)", name,
			       cfg->nodes[i].line);
			goto out;
		}
	}
	if (cfg->n_nodes == IPM_MAX_NODES) {
		report(ld, line, "node \"%s\": at most %d nodes are allowed (a mirror is a pair)",
		       name, IPM_MAX_NODES);
		goto out;
	}
	nc = &cfg->nodes[cfg->n_nodes++];
	nc->name = name;
	nc->line = line;
	name = NULL;
	for (c = n->children; c; c = c->next) {
		if (is(c, "data"))
			parse_endpoint(ld, c, nc->name, &nc->data);
		else if (is(c, "heartbeat"))
			parse_endpoint(ld, c, nc->name, &nc->heartbeat);
		else if (is(c, "nbd"))
			parse_nbd(ld, c, nc);
		else if (is(c, "heartbeat-volume")) {
			nc->hb_volume_line = line_of(c);
			nc->hb_volume = path_attr(ld, c, "path", "heartbeat volume path");
		}
		else if (is(c, "metrics"))
			parse_endpoint(ld, c, nc->name, &nc->metrics);
	}
	if (!nc->nbd.line)
		report(ld, line, "node \"%s\" has no <nbd> element: hosts could not reach its luns",
		       nc->name);
out:
	free(name);
}

static bool wildcard(const char *a)
{
	return !strcmp(a, "0.0.0.0") || !strcmp(a, "::") || !strcmp(a, "*") || !*a;
}

/* Two TCP listeners of one node on the same port collide when their addresses
 * are equal or one of them is a wildcard. */
static bool same_listener(const struct ipm_endpoint *a, const struct ipm_endpoint *b)
{
	if (!a->address || !b->address || a->port != b->port || !a->port)
		return false;
	return !strcmp(a->address, b->address) || wildcard(a->address) ||
	       wildcard(b->address);
}

static bool same_endpoint(const struct ipm_endpoint *a, const struct ipm_endpoint *b)
{
	return a->address && b->address && a->port && a->port == b->port &&
	       !strcmp(a->address, b->address);
}

static void check_ports(struct loader *ld)
{
	const ipm_config *cfg = ld->cfg;
	const struct ipm_node_cfg *a, *b;

	for (unsigned i = 0; i < cfg->n_nodes; i++) {
		a = &cfg->nodes[i];
		if (same_listener(&a->data, &a->nbd))
			report(ld, a->nbd.line,
			       "node \"%s\": nbd port %u clashes with the data port (line %d)",
			       a->name, a->nbd.port, a->data.line);
		if (same_listener(&a->metrics, &a->data) || same_listener(&a->metrics, &a->nbd))
			report(ld, a->metrics.line,
			       "node \"%s\": metrics port %u clashes with the %s port", a->name,
			       a->metrics.port,
			       same_listener(&a->metrics, &a->data) ? "data" : "nbd");
	}
	if (cfg->n_nodes < 2)
		return;
	/* Each node reaches the other at these: they must differ. */
	a = &cfg->nodes[0];
	b = &cfg->nodes[1];
	if (same_endpoint(&a->data, &b->data))
		report(ld, b->data.line,
		       "node \"%s\": data address %s port %u is also node \"%s\"'s (line %d)",
		       b->name, b->data.address, b->data.port, a->name, a->data.line);
	if (same_endpoint(&a->heartbeat, &b->heartbeat))
		report(ld, b->heartbeat.line,
		       "node \"%s\": heartbeat address %s port %u is also node \"%s\"'s (line %d)",
		       b->name, b->heartbeat.address, b->heartbeat.port, a->name,
		       a->heartbeat.line);
}

/* ---- LUNs ----------------------------------------------------------------- */

static void parse_lun_size(struct loader *ld, struct ipm_lun_cfg *l, const char *s)
{
	if (ipm_parse_size(s, &l->size) < 0)
		report(ld, l->line, "lun \"%s\": size \"%s\" is not a size " SIZE_HINT, l->name, s);
	else if (l->size == 0)
		report(ld, l->line, "lun \"%s\": size must not be 0", l->name);
	else if (l->size > LUN_SIZE_MAX)
		report(ld, l->line, "lun \"%s\": size \"%s\" is out of range (" LUN_SIZE_RANGE ")",
		       l->name, s);
	else if (l->size % 512)
		report(ld, l->line, "lun \"%s\": size \"%s\" (%llu bytes) is not a multiple of 512",
		       l->name, s, (unsigned long long)l->size);
}

static void parse_backing(struct loader *ld, struct ipm_lun_cfg *l, const xmlNode *n)
{
	struct ipm_backing_cfg b = { .line = line_of(n) };
	char *io;
	unsigned i;

	b.node = attr(ld, n, "node");
	b.path = path_attr(ld, n, "path", "backing path");
	if (!b.path)
		goto drop;
	io = attr(ld, n, "io");
	b.io = !io || !strcmp(io, "auto") ? IPM_IO_AUTO
	       : !strcmp(io, "direct")    ? IPM_IO_DIRECT
	       : IPM_IO_BUFFERED;
	if (io && strcmp(io, "auto") && strcmp(io, "direct") && strcmp(io, "buffered"))
		report(ld, b.line,
		       "lun \"%s\": backing io \"%s\" is unknown (use auto, direct or buffered)",
		       l->name, io);
	free(io);
	for (i = 0; i < l->n_backing; i++) {
		const char *o = l->backing[i].node;

		if ((!o && !b.node) || (o && b.node && !strcmp(o, b.node))) {
			report(ld, b.line, "lun \"%s\": a second backing for %s%s%s (first on line %d)",
			       l->name, b.node ? "node \"" : "all nodes", b.node ? b.node : "",
			       b.node ? "\"" : "", l->backing[i].line);
			goto drop;
		}
	}
	if (l->n_backing == IPM_MAX_BACKINGS) {
		report(ld, b.line, "lun \"%s\": too many <backing> elements (at most %d)", l->name,
		       IPM_MAX_BACKINGS);
		goto drop;
	}
	l->backing[l->n_backing++] = b;
	return;
drop:
	free(b.node);
	free(b.path);
}

static void parse_journal(struct loader *ld, struct ipm_lun_cfg *l, const xmlNode *n)
{
	char *max = attr(ld, n, "max-size");

	l->journal_line = line_of(n);
	l->journal_path = path_attr(ld, n, "path", "journal path");
	if (max && (ipm_parse_size(max, &l->journal_max) < 0 || l->journal_max == 0))
		report(ld, line_of(n), "lun \"%s\": journal max-size \"%s\" is not a size " SIZE_HINT,
		       l->name, max);
	else if (max && (l->journal_max < JOURNAL_MAX_MIN || l->journal_max > JOURNAL_MAX_MAX))
		report(ld, line_of(n), "lun \"%s\": journal max-size \"%s\" is out of range ("
		       JOURNAL_MAX_RANGE ")", l->name, max);
	free(max);
}

static void parse_lun_flags(struct loader *ld, struct ipm_lun_cfg *l, const xmlNode *n,
			    bool *mirrored_set)
{
	char *mode = attr(ld, n, "mode"), *mirrored = attr(ld, n, "mirrored");

	if (!mode || !strcmp(mode, "sync"))
		l->mode = IPM_MODE_SYNC;
	else if (!strcmp(mode, "async"))
		l->mode = IPM_MODE_ASYNC;
	else
		report(ld, l->line, "lun \"%s\": mode \"%s\" is unknown (use sync or async)",
		       l->name, mode);
	*mirrored_set = mirrored != NULL;
	if (mirrored && (!strcmp(mirrored, "yes") || !strcmp(mirrored, "true")))
		l->mirrored = true;
	else if (mirrored && strcmp(mirrored, "no") && strcmp(mirrored, "false"))
		report(ld, l->line, "lun \"%s\": mirrored \"%s\" is not yes or no", l->name,
		       mirrored);
	free(mode);
	free(mirrored);
}

/* Parse one <lun> into l; false when it is dropped (bad or duplicate name).
 * mirrored_set records whether the default must be applied later. */
static bool parse_lun(struct loader *ld, const xmlNode *n, struct ipm_lun_cfg *l,
		      bool *mirrored_set)
{
	const ipm_config *cfg = ld->cfg;
	const xmlNode *c;
	char *size;

	l->line = line_of(n);
	l->name = attr(ld, n, "name");
	if (!name_ok(ld, l->line, "lun", l->name))
		return false;
	for (unsigned i = 0; i < cfg->n_luns; i++) {
		if (strcmp(cfg->luns[i].name, l->name) == 0) {
			report(ld, l->line, "lun \"%s\" is defined twice (first on line %d)",
			       l->name, cfg->luns[i].line);
			return false;
		}
	}
	size = attr(ld, n, "size");
	if (size)
		parse_lun_size(ld, l, size);
	free(size);
	parse_lun_flags(ld, l, n, mirrored_set);
	l->primary = attr(ld, n, "primary");
	for (c = n->children; c; c = c->next) {
		if (is(c, "backing"))
			parse_backing(ld, l, c);
		else if (is(c, "journal"))
			parse_journal(ld, l, c);
	}
	return true;
}

/* ---- string fields --------------------------------------------------------- */

/* Every malloc'd string of the configuration, by struct: the one list that
 * both ipm_config_dup and ipm_config_free walk, so a new field cannot be
 * copied and leaked, or shared and freed twice. */
static const size_t config_strs[] = {
	offsetof(ipm_config, path), offsetof(ipm_config, secret_file),
	offsetof(ipm_config, log_file), offsetof(ipm_config, hb_state_dir),
	offsetof(ipm_config, tls_cert), offsetof(ipm_config, tls_key), offsetof(ipm_config, tls_ca),
	offsetof(ipm_config, handlers[0]), offsetof(ipm_config, handlers[1]),
	offsetof(ipm_config, handlers[2]), offsetof(ipm_config, handlers[3]),
	offsetof(ipm_config, handlers[4]), offsetof(ipm_config, handlers[5]),
	offsetof(ipm_config, handlers[6]),
};
_Static_assert(IPM_HANDLER_EVENTS == 7, "config_strs lists every handler");
static const size_t node_strs[] = {
	offsetof(struct ipm_node_cfg, name), offsetof(struct ipm_node_cfg, data.address),
	offsetof(struct ipm_node_cfg, heartbeat.address),
	offsetof(struct ipm_node_cfg, nbd.address), offsetof(struct ipm_node_cfg, nbd_unix),
	offsetof(struct ipm_node_cfg, nbd_unix_group), offsetof(struct ipm_node_cfg, hb_volume),
	offsetof(struct ipm_node_cfg, metrics.address),
	offsetof(struct ipm_node_cfg, nbd_tls_psk_file), offsetof(struct ipm_node_cfg, nbd_tls_cert),
	offsetof(struct ipm_node_cfg, nbd_tls_key), offsetof(struct ipm_node_cfg, nbd_tls_ca),
};
static const size_t lun_strs[] = {
	offsetof(struct ipm_lun_cfg, name), offsetof(struct ipm_lun_cfg, primary),
	offsetof(struct ipm_lun_cfg, journal_path),
};
static const size_t backing_strs[] = {
	offsetof(struct ipm_backing_cfg, node), offsetof(struct ipm_backing_cfg, path),
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Replace *s by a copy of itself; on failure leave NULL and flag it, so the
 * copy never shares a pointer with the original and can always be freed. */
static void dup_str(char **s, bool *ok)
{
	if (!*s)
		return;
	*s = strdup(*s);
	if (!*s)
		*ok = false;
}

/* ok NULL: free each string field of obj; else replace each by a copy. */
static void each_str(void *obj, const size_t *offs, size_t n, bool *ok)
{
	for (size_t i = 0; i < n; i++) {
		char **s = (char **)((char *)obj + offs[i]);

		if (ok)
			dup_str(s, ok);
		else
			free(*s);
	}
}

static void lun_strs_each(struct ipm_lun_cfg *l, bool *ok)
{
	each_str(l, lun_strs, N_OF(lun_strs), ok);
	for (unsigned i = 0; i < l->n_backing; i++)
		each_str(&l->backing[i], backing_strs, N_OF(backing_strs), ok);
}

/* The whole configuration's strings except the LUNs' (see lun_strs_each). */
static void config_strs_each(ipm_config *cfg, bool *ok)
{
	each_str(cfg, config_strs, N_OF(config_strs), ok);
	for (unsigned i = 0; i < cfg->n_nodes; i++)
		each_str(&cfg->nodes[i], node_strs, N_OF(node_strs), ok);
}

static void free_lun(struct ipm_lun_cfg *l)
{
	lun_strs_each(l, NULL);
	memset(l, 0, sizeof(*l));
}

/* Cross-references of one LUN, once every node is known. */
static void check_lun(struct loader *ld, struct ipm_lun_cfg *l, bool mirrored_set)
{
	ipm_config *cfg = ld->cfg;
	unsigned i;

	if (!mirrored_set)
		l->mirrored = cfg->n_nodes == IPM_MAX_NODES;
	if (!l->primary && cfg->n_nodes == 1) {
		l->primary = strdup(cfg->nodes[0].name);
		if (!l->primary)
			ld->oom = true;
	} else if (!l->primary) {
		report(ld, l->line, "lun \"%s\" has no primary (required with two nodes)", l->name);
	} else if (!ipm_config_node(cfg, l->primary)) {
		report(ld, l->line, "lun \"%s\": primary \"%s\" is not a defined node", l->name,
		       l->primary);
	}
	if (l->mirrored && cfg->n_nodes < 2)
		report(ld, l->line, "lun \"%s\" is mirrored but the config defines only one node",
		       l->name);
	for (i = 0; i < l->n_backing; i++)
		if (l->backing[i].node && !ipm_config_node(cfg, l->backing[i].node))
			report(ld, l->backing[i].line,
			       "lun \"%s\": backing node \"%s\" is not a defined node", l->name,
			       l->backing[i].node);
	for (i = 0; i < cfg->n_nodes; i++)
		if (!ipm_lun_cfg_backing(l, cfg->nodes[i].name))
			report(ld, l->line,
			       "lun \"%s\": node \"%s\" has no backing (add <backing node=\"%s\" path=\"...\"/> or one without node)",
			       l->name, cfg->nodes[i].name, cfg->nodes[i].name);
}

/* What mirroring needs from the rest of the file (the engine refuses to
 * start without it, so say so now with a line). */
static void check_mirroring(struct loader *ld)
{
	const ipm_config *cfg = ld->cfg;
	const struct ipm_lun_cfg *first = NULL;
	unsigned i;

	for (i = 0; i < cfg->n_luns && !first; i++)
		if (cfg->luns[i].mirrored)
			first = &cfg->luns[i];
	if (!first || cfg->n_nodes < 2)
		return;
	if (!cfg->secret_file && !ld->secret_line)
		report(ld, first->line,
		       "lun \"%s\" is mirrored but there is no <secret file=\"...\"/>", first->name);
	for (i = 0; i < cfg->n_nodes; i++) {
		const struct ipm_node_cfg *nc = &cfg->nodes[i];

		if (!nc->data.address)
			report(ld, nc->line,
			       "node \"%s\" has no <data> element (needed to mirror lun \"%s\")",
			       nc->name, first->name);
		if (!nc->heartbeat.address)
			report(ld, nc->line,
			       "node \"%s\" has no <heartbeat> element (needed to mirror lun \"%s\")",
			       nc->name, first->name);
	}
}

/* ---- the document ----------------------------------------------------------- */

static unsigned count_children(const xmlNode *root, const char *name)
{
	unsigned n = 0;

	for (const xmlNode *c = root->children; c; c = c->next)
		n += is(c, name);
	return n;
}

static void parse_luns(struct loader *ld, const xmlNode *root)
{
	ipm_config *cfg = ld->cfg;
	unsigned n = count_children(root, "lun");
	bool *mset;
	const xmlNode *c;

	if (!n)
		return;
	cfg->luns = calloc(n, sizeof(*cfg->luns));
	mset = calloc(n, sizeof(*mset));
	if (!cfg->luns || !mset) {
		ld->oom = true;
		goto out;
	}
	for (c = root->children; c; c = c->next) {
		if (!is(c, "lun"))
			continue;
		if (parse_lun(ld, c, &cfg->luns[cfg->n_luns], &mset[cfg->n_luns]))
			cfg->n_luns++;
		else
			free_lun(&cfg->luns[cfg->n_luns]);
	}
	for (unsigned i = 0; i < cfg->n_luns; i++)
		check_lun(ld, &cfg->luns[i], mset[i]);
out:
	free(mset);
}

static void parse_doc(struct loader *ld, const xmlNode *root)
{
	ipm_config *cfg = ld->cfg;
	const xmlNode *c;

	for (c = root->children; c; c = c->next) {
		if (is(c, "secret")) {
			ld->secret_line = cfg->secret_line = line_of(c);
			cfg->secret_file = path_attr(ld, c, "file", "secret file");
		} else if (is(c, "heartbeat")) {
			cfg->hb_line = line_of(c);
			parse_heartbeat(ld, c);
		} else if (is(c, "connections")) {
			cfg->conn_line = line_of(c);
			parse_connections(ld, c);
		} else if (is(c, "tls")) {
			parse_tls(ld, c);
		} else if (is(c, "log")) {
			cfg->log_line = line_of(c);
			parse_log(ld, c);
		} else if (is(c, "mirror")) {
			cfg->mirror_line = line_of(c);
			parse_mirror(ld, c);
		} else if (is(c, "resync")) {
			cfg->resync_line = line_of(c);
			parse_resync(ld, c);
		} else if (is(c, "handlers")) {
			cfg->handlers_line = line_of(c);
			parse_handlers(ld, c);
		} else if (is(c, "node")) {
			parse_node(ld, c);
		}
	}
	check_heartbeat_times(ld);
	check_ports(ld);
	parse_luns(ld, root);
	check_mirroring(ld);
}

/* ---- structure ------------------------------------------------------------ */

/* The structure of engine/ipmirror.rng, checked by hand first because
 * libxml2's RelaxNG messages do not name the missing attribute or the
 * unknown element. The schema still runs afterwards as the authority;
 * tests/unit/test_schema.c keeps the two in agreement. */
static const struct ipm_config_rule rules[] = {
	{ NULL, "ipmirror", 1, 1, { "version" }, { NULL } },
	{ "ipmirror", "secret", 0, 1, { "file" }, { NULL } },
	{ "ipmirror", "heartbeat", 0, 1, { NULL },
	  { "interval", "timeout", "probation", "method", "state-dir" } },
	{ "ipmirror", "connections", 0, 1, { "count" }, { NULL } },
	{ "ipmirror", "tls", 0, 1, { "mode" }, { "cert", "key", "ca" } },
	{ "ipmirror", "log", 0, 1, { NULL }, { "level", "file" } },
	{ "ipmirror", "mirror", 0, 1, { NULL }, { "async-window" } },
	{ "ipmirror", "resync", 0, 1, { NULL }, { "rate" } },
	{ "ipmirror", "handlers", 0, 1, { NULL },
	  { "split-brain", "resync-start", "resync-done", "local-io-error", "peer-lost",
	    "fenced", "role-change", "timeout" } },
	{ "ipmirror", "node", 1, 0, { "name" }, { NULL } },
	{ "ipmirror", "lun", 0, 0, { "name", "size" }, { "mode", "mirrored", "primary" } },
	{ "node", "data", 0, 1, { "address", "port" }, { NULL } },
	{ "node", "heartbeat", 0, 1, { "address", "port" }, { NULL } },
	{ "node", "nbd", 0, 1, { NULL },
	  { "address", "port", "unix", "unix-group", "handshake-timeout", "idle-timeout",
	    "send-timeout", "max-clients", "max-clients-per-address", "tls", "tls-psk-file",
	    "tls-cert", "tls-key", "tls-ca" } },
	{ "node", "heartbeat-volume", 0, 1, { "path" }, { NULL } },
	{ "node", "metrics", 0, 1, { "address", "port" }, { NULL } },
	{ "lun", "backing", 1, 0, { "path" }, { "node", "io" } },
	{ "lun", "journal", 0, 1, { NULL }, { "path", "max-size" } },
};

#define N_RULES (sizeof(rules) / sizeof(rules[0]))

const struct ipm_config_rule *ipm_config_rules(unsigned *n)
{
	*n = N_RULES;
	return rules;
}

static const struct ipm_config_rule *find_rule(const char *parent, const xmlNode *n)
{
	for (unsigned i = 0; i < N_RULES; i++)
		if ((parent ? rules[i].parent && !strcmp(parent, rules[i].parent)
			    : !rules[i].parent) && is(n, rules[i].name))
			return &rules[i];
	return NULL;
}

static bool listed(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n && names[i]; i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

/* "<lun name="vol0">" style label of an element, for messages. */
static void label(const xmlNode *n, char *buf, size_t len)
{
	xmlChar *name = xmlGetProp(n, BAD_CAST "name");

	if (name)
		snprintf(buf, len, "<%s name=\"%s\">", (const char *)n->name, (const char *)name);
	else
		snprintf(buf, len, "<%s>", (const char *)n->name);
	xmlFree(name);
}

static void check_attrs(struct loader *ld, const xmlNode *n,
			const struct ipm_config_rule *r)
{
	char what[128];
	const xmlAttr *a;
	unsigned i;

	label(n, what, sizeof(what));
	for (a = n->properties; a; a = a->next) {
		const char *an = (const char *)a->name;

		if (a->ns || (!listed(r->required, IPM_RULE_REQUIRED, an) &&
			      !listed(r->optional, IPM_RULE_OPTIONAL, an)))
			report(ld, line_of(n), "%s: unknown attribute \"%s\"", what, an);
	}
	for (i = 0; i < IPM_RULE_REQUIRED && r->required[i]; i++)
		if (!xmlHasProp(n, BAD_CAST r->required[i]))
			report(ld, line_of(n), "%s: the attribute \"%s\" is required", what,
			       r->required[i]);
}

static void check_element(struct loader *ld, const xmlNode *n,
			  const struct ipm_config_rule *r)
{
	unsigned count[N_RULES] = { 0 };
	const struct ipm_config_rule *cr;
	const xmlNode *c;
	char what[128];
	unsigned i;

	check_attrs(ld, n, r);
	label(n, what, sizeof(what));
	for (c = n->children; c; c = c->next) {
		if (c->type == XML_TEXT_NODE && !xmlIsBlankNode(c)) {
			report(ld, line_of(c), "%s: unexpected text (settings go in attributes)", what);
			continue;
		}
		if (c->type != XML_ELEMENT_NODE)
			continue;
		cr = c->ns ? NULL : find_rule((const char *)n->name, c);
		if (!cr) {
			report(ld, line_of(c), "%s: unknown element <%s>", what, (const char *)c->name);
			continue;
		}
		if (++count[cr - rules] == cr->max + 1 && cr->max)
			report(ld, line_of(c), "%s: <%s> may appear only once", what, cr->name);
		check_element(ld, c, cr);
	}
	for (i = 0; i < N_RULES; i++)
		if (rules[i].parent && !strcmp(rules[i].parent, r->name) &&
		    count[i] < rules[i].min && is(n, rules[i].parent))
			report(ld, line_of(n), "%s: at least one <%s> is required", what,
			       rules[i].name);
}

static void check_structure(struct loader *ld, const xmlNode *root)
{
	xmlChar *v;

	if (!root || root->ns || !is(root, "ipmirror")) {
		report(ld, root ? line_of(root) : 0, "the root element must be <ipmirror>, not <%s>",
		       root ? (const char *)root->name : "");
		return;
	}
	v = xmlGetProp(root, BAD_CAST "version");
	if (v && xmlStrcmp(v, BAD_CAST "1"))
		report(ld, line_of(root), "<ipmirror>: version \"%s\" is not supported (use 1)",
		       (const char *)v);
	xmlFree(v);
	check_element(ld, root, &rules[0]);
}

/* ---- libxml2: syntax and schema -------------------------------------------- */

static void trim(char *msg)
{
	size_t n = strlen(msg);

	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
}

/* Syntax and schema errors. libxml2 messages end in a newline; the diag
 * format adds its own. */
static void xml_error(void *data, XML_ERROR_T *e)
{
	struct loader *ld = data;
	char msg[512];

	if (!e || e->level < XML_ERR_ERROR)
		return;
	snprintf(msg, sizeof(msg), "%s", e->message ? e->message : "XML error");
	trim(msg);
	/* RelaxNG adds a summary on each enclosing element; it says nothing more. */
	if (ld->in_schema && ld->schema_errors++ &&
	    (strstr(msg, "failed to validate content") || strstr(msg, "failed to validate attributes")))
		return;
	/* Some RelaxNG errors carry the node but not its line. */
	report(ld, e->line > 0 ? e->line : e->node ? line_of(e->node) : 0, "%s", msg);
}

/* Problems of the schema itself: keep the first for one line-0 message. */
static void schema_error(void *data, XML_ERROR_T *e)
{
	char *first = data;

	if (e && e->level >= XML_ERR_ERROR && !first[0] && e->message) {
		snprintf(first, 256, ": %s", e->message);
		trim(first);
	}
}

static int read_file(const char *path, char **buf, size_t *len)
{
	struct stat st;
	ssize_t r;
	size_t got = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	if (st.st_size > CONFIG_MAX_BYTES) {
		rc = -EFBIG;
		goto out;
	}
	*buf = malloc((size_t)st.st_size + 1);
	if (!*buf) {
		rc = -ENOMEM;
		goto out;
	}
	r = read_full(fd, *buf, (size_t)st.st_size);
	if (r < (ssize_t)st.st_size) {
		rc = r < 0 ? (int)r : -EIO;  /* a file that shrank while read */
		free(*buf);
		*buf = NULL;
		goto out;
	}
	got = (size_t)r;
	*len = got;
out:
	close(fd);
	return rc;
}

static const char *schema_file(const char *schema_path)
{
	const char *env;

	if (schema_path)
		return schema_path;
	/* Lets tests and uninstalled builds use the source tree's schema. */
	env = secure_getenv("IPMIRROR_SCHEMA");
	return env && *env ? env : IPM_SCHEMA_PATH;
}

/* Validate doc; schema errors are counted in ld->problems. A schema that
 * cannot be loaded is reported with line 0 and a negative errno returned. */
static int validate(struct loader *ld, xmlDocPtr doc, const char *schema_path)
{
	const char *path = schema_file(schema_path);
	xmlRelaxNGParserCtxtPtr pctx = NULL;
	xmlRelaxNGValidCtxtPtr vctx = NULL;
	xmlRelaxNGPtr schema = NULL;
	char msg[512], why[256] = "";
	int rc = 0;

	if (access(path, R_OK) < 0) {
		rc = -errno;
		snprintf(msg, sizeof(msg), "cannot read the schema %s: %s", path, strerror(errno));
		goto fail;
	}
	pctx = xmlRelaxNGNewParserCtxt(path);
	if (!pctx) {
		rc = -ENOMEM;
		goto out;
	}
	/* Errors inside the schema are not the config's problems. */
	xmlRelaxNGSetParserStructuredErrors(pctx, schema_error, why);
	schema = xmlRelaxNGParse(pctx);
	if (!schema) {
		rc = -EINVAL;
		snprintf(msg, sizeof(msg), "the schema %s is not valid RelaxNG%s", path, why);
		goto fail;
	}
	vctx = xmlRelaxNGNewValidCtxt(schema);
	if (!vctx) {
		rc = -ENOMEM;
		goto out;
	}
	xmlRelaxNGSetValidStructuredErrors(vctx, xml_error, ld);
	ld->in_schema = true;
	if (xmlRelaxNGValidateDoc(vctx, doc) != 0 && ld->problems == 0)
		report(ld, 0, "does not match the schema %s", path);
	ld->in_schema = false;
	goto out;
fail:
	if (ld->diag)
		ld->diag(ld->opaque, ld->path, 0, msg);
out:
	xmlRelaxNGFreeValidCtxt(vctx);
	xmlRelaxNGFree(schema);
	xmlRelaxNGFreeParserCtxt(pctx);
	return rc;
}

static ipm_config *config_new(const char *path)
{
	ipm_config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return NULL;
	cfg->path = strdup(path);
	if (!cfg->path) {
		free(cfg);
		return NULL;
	}
	cfg->hb_interval = 1.5;
	cfg->hb_timeout = 4.0;
	cfg->hb_probation = 10;
	cfg->hb_method = IPM_HB_UDP;
	cfg->conn_count = 4;
	cfg->async_window = ASYNC_WINDOW_DEFAULT;
	cfg->resync_rate = 0;
	cfg->log_level = -1;
	return cfg;
}

int ipm_config_load(const char *path, const char *schema_path, ipm_diag_fn diag,
		    void *opaque, ipm_config **out)
{
	struct loader ld = { .path = path, .diag = diag, .opaque = opaque };
	xmlDocPtr doc = NULL;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (!path)
		return -EINVAL;
	rc = read_file(path, &buf, &len);
	if (rc < 0)
		return rc;
	xmlSetStructuredErrorFunc(&ld, xml_error);
	doc = xmlReadMemory(buf, (int)len, path, NULL, XML_PARSE_NONET | XML_PARSE_BIG_LINES);
	xmlSetStructuredErrorFunc(NULL, NULL);
	if (!doc) {
		if (!ld.problems)
			report(&ld, 0, len ? "not an XML document" : "the file is empty");
		rc = ld.problems;
		goto out;
	}
	check_structure(&ld, xmlDocGetRootElement(doc));
	if (ld.problems) {
		rc = ld.problems;
		goto out;
	}
	rc = validate(&ld, doc, schema_path);
	if (rc < 0 || ld.problems) {
		rc = rc < 0 ? rc : ld.problems;
		goto out;
	}
	ld.cfg = config_new(path);
	if (!ld.cfg) {
		rc = -ENOMEM;
		goto out;
	}
	parse_doc(&ld, xmlDocGetRootElement(doc));
	if (ld.oom)
		rc = -ENOMEM;
	else
		rc = ld.problems;
	if (rc == 0) {
		*out = ld.cfg;
		ld.cfg = NULL;
	}
out:
	flush_diags(&ld);
	ipm_config_free(ld.cfg);
	xmlFreeDoc(doc);
	free(buf);
	return rc;
}

void ipm_config_free(ipm_config *cfg)
{
	unsigned i;

	if (!cfg)
		return;
	config_strs_each(cfg, NULL);
	for (i = 0; i < cfg->n_luns; i++)
		free_lun(&cfg->luns[i]);
	free(cfg->luns);
	free(cfg);
}

/* ---- queries -------------------------------------------------------------- */

const struct ipm_backing_cfg *ipm_lun_cfg_backing_entry(const struct ipm_lun_cfg *lun,
							 const char *node)
{
	const struct ipm_backing_cfg *shared = NULL;

	for (unsigned i = 0; i < lun->n_backing; i++) {
		const struct ipm_backing_cfg *b = &lun->backing[i];

		if (!b->node)
			shared = b;
		else if (node && strcmp(b->node, node) == 0)
			return b;
	}
	return shared;
}

const char *ipm_lun_cfg_backing(const struct ipm_lun_cfg *lun, const char *node)
{
	const struct ipm_backing_cfg *b = ipm_lun_cfg_backing_entry(lun, node);

	return b ? b->path : NULL;
}

const struct ipm_node_cfg *ipm_config_node(const ipm_config *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (unsigned i = 0; i < cfg->n_nodes; i++)
		if (strcmp(cfg->nodes[i].name, name) == 0)
			return &cfg->nodes[i];
	return NULL;
}

const struct ipm_node_cfg *ipm_config_peer(const ipm_config *cfg, const char *name)
{
	const struct ipm_node_cfg *self = ipm_config_node(cfg, name);

	if (!self || cfg->n_nodes < 2)
		return NULL;
	return self == &cfg->nodes[0] ? &cfg->nodes[1] : &cfg->nodes[0];
}

bool ipm_config_has_node(const ipm_config *cfg, const char *node)
{
	return ipm_config_node(cfg, node) != NULL;
}

int ipm_config_node_index(const ipm_config *cfg, const char *node)
{
	const struct ipm_node_cfg *nc = ipm_config_node(cfg, node);

	return nc ? (int)(nc - cfg->nodes) : -ENOENT;
}

int ipm_config_set_primary(ipm_config *cfg, const char *lun, const char *node)
{
	unsigned i;
	char *p;

	if (!ipm_config_node(cfg, node))
		return -ENOENT;
	for (i = 0; i < cfg->n_luns; i++) {
		if (strcmp(cfg->luns[i].name, lun) != 0)
			continue;
		p = strdup(node);
		if (!p)
			return -ENOMEM;
		free(cfg->luns[i].primary);
		cfg->luns[i].primary = p;
		return 0;
	}
	return -ENOENT;
}

int ipm_config_set_hb_volume(ipm_config *cfg, const char *node, const char *path)
{
	struct ipm_node_cfg *nc = (struct ipm_node_cfg *)ipm_config_node(cfg, node);
	char *p = NULL;

	if (!nc)
		return -ENOENT;
	if (path && !(p = strdup(path)))
		return -ENOMEM;
	free(nc->hb_volume);
	nc->hb_volume = p;
	return 0;
}

void ipm_config_set_hb_method(ipm_config *cfg, enum ipm_hb_method m)
{
	cfg->hb_method = m;
}

int ipm_config_nbd_listen(const ipm_config *cfg, const char *node, ipm_listen *out)
{
	const struct ipm_node_cfg *nc = ipm_config_node(cfg, node);

	if (!nc)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	if (nc->nbd.address) {
		snprintf(out->address, sizeof(out->address), "%s", nc->nbd.address);
		out->port = nc->nbd.port;
	}
	if (nc->nbd_unix)
		snprintf(out->unix_path, sizeof(out->unix_path), "%s", nc->nbd_unix);
	if (nc->nbd_unix_group)
		snprintf(out->unix_group, sizeof(out->unix_group), "%s", nc->nbd_unix_group);
	out->handshake_timeout = nc->nbd_handshake_timeout;
	out->idle_timeout = nc->nbd_idle_timeout;
	out->send_timeout = nc->nbd_send_timeout;
	out->max_clients = nc->nbd_max_clients;
	out->max_clients_per_address = nc->nbd_max_per_address;
	out->tls = nc->nbd_tls;
	if (nc->nbd_tls_psk_file)
		snprintf(out->tls_psk_file, sizeof(out->tls_psk_file), "%s", nc->nbd_tls_psk_file);
	if (nc->nbd_tls_cert)
		snprintf(out->tls_cert, sizeof(out->tls_cert), "%s", nc->nbd_tls_cert);
	if (nc->nbd_tls_key)
		snprintf(out->tls_key, sizeof(out->tls_key), "%s", nc->nbd_tls_key);
	if (nc->nbd_tls_ca)
		snprintf(out->tls_ca, sizeof(out->tls_ca), "%s", nc->nbd_tls_ca);
	return 0;
}

int ipm_config_metrics_listen(const ipm_config *cfg, const char *node, char *address,
			      size_t len, uint16_t *port)
{
	const struct ipm_node_cfg *nc = ipm_config_node(cfg, node);

	if (!nc || !nc->metrics.address || !nc->metrics.port)
		return -ENOENT;
	snprintf(address, len, "%s", nc->metrics.address);
	*port = nc->metrics.port;
	return 0;
}

int ipm_config_log_level(const ipm_config *cfg)
{
	return cfg ? cfg->log_level : -1;
}

const char *ipm_config_log_file(const ipm_config *cfg)
{
	return cfg ? cfg->log_file : NULL;
}

/* ---- deep copy ------------------------------------------------------------ */

ipm_config *ipm_config_dup(const ipm_config *cfg)
{
	ipm_config *c;
	bool ok = true;
	unsigned i;

	if (!cfg)
		return NULL;
	c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	*c = *cfg;
	config_strs_each(c, &ok);
	c->luns = NULL;
	c->n_luns = 0;
	if (cfg->n_luns) {
		c->luns = malloc(cfg->n_luns * sizeof(*c->luns));
		if (!c->luns)
			goto fail;
		memcpy(c->luns, cfg->luns, cfg->n_luns * sizeof(*c->luns));
		c->n_luns = cfg->n_luns;
	}
	for (i = 0; i < c->n_luns; i++)
		lun_strs_each(&c->luns[i], &ok);
	if (ok)
		return c;
fail:
	ipm_config_free(c);
	return NULL;
}
