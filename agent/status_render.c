/* status_render.c - ipm_status as JSON or as a human table. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include "status_render.h"

/* ---- strbuf ------------------------------------------------------------ */

void sb_free(struct strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
	sb->err = 0;
}

static int sb_reserve(struct strbuf *sb, size_t extra)
{
	size_t cap = sb->cap ? sb->cap : 256;
	char *p;

	if (sb->err)
		return sb->err;
	if (sb->len + extra + 1 <= sb->cap)
		return 0;
	while (cap < sb->len + extra + 1)
		cap *= 2;
	p = realloc(sb->buf, cap);
	if (!p) {
		sb->err = -ENOMEM;
		return sb->err;
	}
	sb->buf = p;
	sb->cap = cap;
	return 0;
}

static void sb_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || sb_reserve(sb, (size_t)n) < 0)
		return;
	vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
	sb->len += (size_t)n;
}

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sb_vprintf(sb, fmt, ap);
	va_end(ap);
}

static void sb_putc(struct strbuf *sb, char c)
{
	if (sb_reserve(sb, 1) < 0)
		return;
	sb->buf[sb->len++] = c;
	sb->buf[sb->len] = '\0';
}

void sb_json_string(struct strbuf *sb, const char *s)
{
	const unsigned char *p;

	sb_putc(sb, '"');
	for (p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': sb_printf(sb, "\\\""); break;
		case '\\': sb_printf(sb, "\\\\"); break;
		case '\n': sb_printf(sb, "\\n"); break;
		case '\r': sb_printf(sb, "\\r"); break;
		case '\t': sb_printf(sb, "\\t"); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				sb_printf(sb, "\\u%04x", *p);
			else
				sb_putc(sb, (char)*p);
		}
	}
	sb_putc(sb, '"');
}

/* ---- helpers ----------------------------------------------------------- */

const ipm_lun_status *status_find_lun(const ipm_status *st, const char *name)
{
	size_t i;

	for (i = 0; i < st->n_luns; i++)
		if (strcmp(st->luns[i].name, name) == 0)
			return &st->luns[i];
	return NULL;
}

static bool lun_selected(const ipm_lun_status *l, const char *lun)
{
	return !lun || !*lun || strcmp(l->name, lun) == 0;
}

static int check_filter(const ipm_status *st, const char *lun)
{
	if (lun && *lun && !status_find_lun(st, lun))
		return -ENOENT;
	return 0;
}

/* ---- JSON -------------------------------------------------------------- */

static void json_peer(const ipm_status *st, struct strbuf *sb)
{
	if (!st->peer[0]) {
		sb_printf(sb, "null");
		return;
	}
	sb_printf(sb, "{\"name\":");
	sb_json_string(sb, st->peer);
	sb_printf(sb, ",\"heartbeat\":\"%s\",\"udp_age_ms\":%" PRId64
		  ",\"storage_age_ms\":%" PRId64 ",\"method\":\"%s\"",
		  ipm_link_name(st->peer_heartbeat), st->udp_age_ms, st->storage_age_ms,
		  ipm_method_name(st->method));
	/* each path on its own, and which one failed (doc/heartbeat.md) */
	sb_printf(sb, ",\"udp\":\"%s\",\"storage\":\"%s\",\"failure\":\"%s\""
		  ",\"storage_serial\":%" PRIu64 ",\"volume\":",
		  ipm_link_name(st->udp_state), ipm_link_name(ipm_status_storage(st)),
		  ipm_status_failure(st), st->storage_serial);
	sb_json_string(sb, st->hb_volume);
	sb_printf(sb, "}");
}

static void json_conns(const ipm_status *st, struct strbuf *sb)
{
	size_t i;

	sb_putc(sb, '[');
	for (i = 0; i < st->n_conns; i++) {
		const ipm_conn_status *c = &st->conns[i];

		sb_printf(sb, "%s{\"index\":%d,\"direction\":\"%s\",\"status\":\"%s\","
			  "\"age_ms\":%" PRId64 "}",
			  i ? "," : "", c->index, c->outgoing ? "outgoing" : "incoming",
			  ipm_link_name(c->status), c->age_ms);
	}
	sb_putc(sb, ']');
}

static void json_lun(const ipm_lun_status *l, struct strbuf *sb)
{
	char gen[sizeof(l->generation) + 1];

	sb_printf(sb, "{\"name\":");
	sb_json_string(sb, l->name);
	sb_printf(sb, ",\"role\":\"%s\",\"mode\":\"%s\",\"mirrored\":%s,\"state\":\"%s\","
		  "\"size\":%" PRIu64 ",\"journal_bytes\":%" PRIu64
		  ",\"journal_records\":%" PRIu64 ",\"resync_done_bytes\":%" PRIu64
		  ",\"resync_total_bytes\":%" PRIu64 ",\"resync_rate\":%" PRIu64
		  ",\"resync_eta_s\":%" PRId64 ",\"consistent\":%s,\"peer_inconsistent\":%s"
		  ",\"mirrored_bytes\":%" PRIu64 ",\"io\":\"%s\",\"inflight\":%u"
		  ",\"inflight_bytes\":%" PRIu64 ",\"local_io_errors\":%" PRIu64
		  ",\"disk\":\"%s\",\"remote_reads\":%" PRIu64
		  ",\"refusal_age_ms\":%" PRId64 ",\"refusal\":",
		  ipm_role_name(l->role), ipm_mode_name(l->mode),
		  l->mirrored ? "true" : "false", ipm_state_name(l->state), l->size,
		  l->journal_bytes, l->journal_records, l->resync_done_bytes,
		  l->resync_total_bytes, l->resync_rate, l->resync_eta_s,
		  l->consistent ? "true" : "false", l->peer_inconsistent ? "true" : "false",
		  l->mirrored_bytes, l->direct_io ? "direct" : "buffered", l->inflight,
		  l->inflight_bytes, l->local_io_errors, l->disk_failed ? "failed" : "ok",
		  l->remote_reads, l->refusal_age_ms);
	sb_json_string(sb, l->refusal);
	sb_printf(sb, ",\"generation\":");
	/* generation is a fixed array: never read past it */
	memcpy(gen, l->generation, sizeof(l->generation));
	gen[sizeof(l->generation)] = '\0';
	sb_json_string(sb, gen);
	sb_printf(sb, ",\"verify\":{\"running\":%s,\"done_bytes\":%" PRIu64
		  ",\"total_bytes\":%" PRIu64 ",\"out_of_sync_bytes\":%" PRIu64 "}",
		  l->verify_running ? "true" : "false", l->verify_done_bytes,
		  l->verify_total_bytes, l->verify_out_of_sync_bytes);
	sb_putc(sb, '}');
}

int status_render_json(const ipm_status *st, const char *lun, struct strbuf *out)
{
	bool first = true;
	size_t i;
	int rc = check_filter(st, lun);

	if (rc < 0)
		return rc;
	sb_printf(out, "{\"schema\":%d,\"node\":", STATUS_SCHEMA);
	sb_json_string(out, st->node);
	sb_printf(out, ",\"peer\":");
	json_peer(st, out);
	sb_printf(out, ",\"connections\":");
	json_conns(st, out);
	sb_printf(out, ",\"luns\":[");
	for (i = 0; i < st->n_luns; i++) {
		if (!lun_selected(&st->luns[i], lun))
			continue;
		if (!first)
			sb_putc(out, ',');
		first = false;
		json_lun(&st->luns[i], out);
	}
	sb_printf(out, "]}\n");
	return out->err;
}

/* ---- plain values (status --get) ----------------------------------------- */

/* The node's keys, then the LUN's: as in the JSON (doc/ipmirrorctl.8). */
static bool get_node_key(const ipm_status *st, const char *k, struct strbuf *sb)
{
	if (strcmp(k, "node") == 0)
		sb_printf(sb, "%s\n", st->node);
	else if (strcmp(k, "peer") == 0)
		sb_printf(sb, "%s\n", st->peer);
	else if (strcmp(k, "heartbeat") == 0)
		sb_printf(sb, "%s\n", ipm_link_name(st->peer[0] ? st->peer_heartbeat : IPM_LINK_OFF));
	else if (strcmp(k, "udp") == 0)
		sb_printf(sb, "%s\n", ipm_link_name(st->udp_state));
	else if (strcmp(k, "storage") == 0)
		sb_printf(sb, "%s\n", ipm_link_name(ipm_status_storage(st)));
	else if (strcmp(k, "schema") == 0)
		sb_printf(sb, "%d\n", STATUS_SCHEMA);
	else
		return false;
	return true;
}

static bool get_lun_key(const ipm_lun_status *l, const char *k, struct strbuf *sb)
{
#define NUM(key, fmt, v) else if (strcmp(k, key) == 0) sb_printf(sb, fmt "\n", v)
	if (strcmp(k, "name") == 0)
		sb_printf(sb, "%s\n", l->name);
	NUM("role", "%s", ipm_role_name(l->role));
	NUM("state", "%s", ipm_state_name(l->state));
	NUM("mode", "%s", ipm_mode_name(l->mode));
	NUM("mirrored", "%s", l->mirrored ? "true" : "false");
	NUM("consistent", "%s", l->consistent ? "true" : "false");
	NUM("size", "%" PRIu64, l->size);
	NUM("journal_bytes", "%" PRIu64, l->journal_bytes);
	NUM("journal_records", "%" PRIu64, l->journal_records);
	NUM("resync_done_bytes", "%" PRIu64, l->resync_done_bytes);
	NUM("resync_total_bytes", "%" PRIu64, l->resync_total_bytes);
	NUM("resync_rate", "%" PRIu64, l->resync_rate);
	NUM("resync_eta_s", "%" PRId64, l->resync_eta_s);
	NUM("mirrored_bytes", "%" PRIu64, l->mirrored_bytes);
	NUM("inflight", "%u", l->inflight);
	NUM("inflight_bytes", "%" PRIu64, l->inflight_bytes);
	NUM("local_io_errors", "%" PRIu64, l->local_io_errors);
	NUM("disk", "%s", l->disk_failed ? "failed" : "ok");
	NUM("remote_reads", "%" PRIu64, l->remote_reads);
	NUM("refusal", "%s", l->refusal);
	else if (strcmp(k, "generation") == 0)
		sb_printf(sb, "%.*s\n", (int)sizeof(l->generation), l->generation);
	else
		return false;
#undef NUM
	return true;
}

static bool is_lun_key(const char *k)
{
	static const ipm_lun_status none;
	struct strbuf sb = STRBUF_INIT;
	bool yes = get_lun_key(&none, k, &sb);

	sb_free(&sb);
	return yes;
}

int status_render_get(const ipm_status *st, const char *lun, const char *keys,
		      struct strbuf *out)
{
	const ipm_lun_status *l = lun && *lun ? status_find_lun(st, lun) : NULL;
	char k[64];
	const char *p = keys, *e;
	size_t n;

	if (lun && *lun && !l)
		return -ENOENT;
	for (; *p; p = *e ? e + 1 : e) {
		e = strchr(p, ',');
		if (!e)
			e = p + strlen(p);
		n = (size_t)(e - p) < sizeof(k) ? (size_t)(e - p) : sizeof(k) - 1;
		memcpy(k, p, n);
		k[n] = '\0';
		if (get_node_key(st, k, out) || (l && get_lun_key(l, k, out)))
			continue;
		sb_free(out);
		sb_printf(out, !l && is_lun_key(k) ? "key \"%s\" is a LUN's: name the LUN" :
			  "unknown key \"%s\" (see ipmirrorctl(8))", k);
		return -EINVAL;
	}
	return out->err;
}

/* ---- human table -------------------------------------------------------- */

static void human_bytes(char *buf, size_t size, uint64_t n)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, size, "%" PRIu64 " B", n);
		return;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f %s", v, units[u]);
}

static void human_age(char *buf, size_t size, int64_t ms)
{
	if (ms < 0)
		snprintf(buf, size, "never");
	else
		snprintf(buf, size, "%" PRId64 " ms ago", ms);
}

static void text_peer(const ipm_status *st, struct strbuf *sb)
{
	char udp[32], sto[32];

	if (!st->peer[0]) {
		sb_printf(sb, "node %s (no peer)\n", st->node);
		return;
	}
	human_age(udp, sizeof(udp), st->udp_age_ms);
	/* off: no heartbeat volume installed here */
	if (ipm_status_storage(st) == IPM_LINK_OFF)
		snprintf(sto, sizeof(sto), "off");
	else
		human_age(sto, sizeof(sto), st->storage_age_ms);
	sb_printf(sb, "node %s  peer %s  heartbeat %s (method %s; udp %s, storage %s)\n",
		  st->node, st->peer, ipm_link_name(st->peer_heartbeat),
		  ipm_method_name(st->method), udp, sto);
	if (strcmp(ipm_status_failure(st), "none") != 0)
		sb_printf(sb, "heartbeat path failure: %s (udp %s, storage %s)\n",
			  ipm_status_failure(st), ipm_link_name(st->udp_state),
			  ipm_link_name(ipm_status_storage(st)));
}

/* "42.0%", then the rate and the time left once known */
static void text_resync(const ipm_lun_status *l, char *buf, size_t size)
{
	char rate[24];
	int n;

	if (!l->resync_total_bytes) {
		snprintf(buf, size, "-");
		return;
	}
	n = snprintf(buf, size, "%.1f%%",
		     100.0 * (double)l->resync_done_bytes / (double)l->resync_total_bytes);
	if (n < 0 || (size_t)n >= size || !l->resync_rate)
		return;
	human_bytes(rate, sizeof(rate), l->resync_rate);
	if (l->resync_eta_s >= 0)
		snprintf(buf + n, size - (size_t)n, " %s/s eta %" PRId64 "s", rate, l->resync_eta_s);
	else
		snprintf(buf + n, size - (size_t)n, " %s/s", rate);
}

/* Under the LUN's row once a verify ran: its progress and what it found. */
static void text_verify(const ipm_lun_status *l, int w, struct strbuf *sb)
{
	char oos[24];

	if (!l->verify_total_bytes)
		return;
	human_bytes(oos, sizeof(oos), l->verify_out_of_sync_bytes);
	sb_printf(sb, "%-*s  verify %s %.1f%%, %s out of sync\n", w, "",
		  l->verify_running ? "running" : "done",
		  100.0 * (double)l->verify_done_bytes / (double)l->verify_total_bytes, oos);
}

static void text_lun(const ipm_lun_status *l, int w, struct strbuf *sb)
{
	char size[24], jb[24], journal[64], resync[80];

	human_bytes(size, sizeof(size), l->size);
	human_bytes(jb, sizeof(jb), l->journal_bytes);
	snprintf(journal, sizeof(journal), "%s/%" PRIu64, jb, l->journal_records);
	text_resync(l, resync, sizeof(resync));
	sb_printf(sb, "%-*s  %-7s  %-5s  %-8s  %-12s  %10s  %-18s  %s\n", w, l->name,
		  ipm_role_name(l->role), ipm_mode_name(l->mode), l->mirrored ? "yes" : "no",
		  ipm_state_name(l->state), size, journal, resync);
	text_verify(l, w, sb);
	if (l->disk_failed && l->role == IPM_ROLE_MIRROR)
		sb_printf(sb, "%-*s  disk: failed (%" PRIu64 " I/O errors; out of service, this copy inconsistent until the disk is replaced and invalidated: doc/io-errors.md)\n",
			  w, "", l->local_io_errors);
	else if (l->disk_failed)
		sb_printf(sb, "%-*s  disk: failed (%" PRIu64 " I/O errors; reads from the peer, writes fail: doc/io-errors.md)\n",
			  w, "", l->local_io_errors);
	else if (l->local_io_errors)
		sb_printf(sb, "%-*s  disk: %" PRIu64 " I/O errors, %" PRIu64 " reads served from the peer\n",
			  w, "", l->local_io_errors, l->remote_reads);
}

static void text_conns(const ipm_status *st, struct strbuf *sb)
{
	char age[32];
	size_t i;

	for (i = 0; i < st->n_conns; i++) {
		const ipm_conn_status *c = &st->conns[i];

		human_age(age, sizeof(age), c->age_ms);
		sb_printf(sb, "connection %-3d %-8s  %-4s  %s\n", c->index,
			  c->outgoing ? "outgoing" : "incoming", ipm_link_name(c->status), age);
	}
}

int status_render_text(const ipm_status *st, const char *lun, struct strbuf *out)
{
	int w = 4; /* strlen("LUN") + 1 */
	size_t i;
	int rc = check_filter(st, lun);

	if (rc < 0)
		return rc;
	for (i = 0; i < st->n_luns; i++)
		if (lun_selected(&st->luns[i], lun) && (int)strlen(st->luns[i].name) > w)
			w = (int)strlen(st->luns[i].name);
	text_peer(st, out);
	sb_printf(out, "%-*s  %-7s  %-5s  %-8s  %-12s  %10s  %-18s  %s\n", w, "LUN", "ROLE",
		  "MODE", "MIRRORED", "STATE", "SIZE", "JOURNAL/RECORDS", "RESYNC");
	for (i = 0; i < st->n_luns; i++)
		if (lun_selected(&st->luns[i], lun))
			text_lun(&st->luns[i], w, out);
	text_conns(st, out);
	return out->err;
}
