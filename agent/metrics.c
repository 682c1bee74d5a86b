/* metrics.c - ipmirrord's Prometheus exporter (metrics.h): the text of the
 * latest status snapshot, served by one small HTTP/1.x thread. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "clock.h"
#include "metrics.h"
#include "netaddr.h"

#define REQUEST_MAX   4096  /* request line and headers; more is refused */
#define READ_MS       2000  /* the whole request must arrive in this time */
#define SEND_MS       5000  /* the reply must leave in this time */
#define BACKLOG       8     /* one connection at a time; a few wait */

struct metrics {
	int fd;                 /* listening socket */
	int stop_pipe[2];       /* metrics_stop writes; the thread polls */
	pthread_t thread;
	bool started;           /* thread runs */
	char version[64];
	pthread_mutex_t lock;   /* guards snap and snap_ms */
	ipm_status *snap;       /* our own copy; NULL before the first */
	int64_t snap_ms;        /* ipm_now_ms() when it was taken */
};

/* ---- rendering ----------------------------------------------------------- */

/* A label value: backslash, double quote and newline escaped (0.0.4). */
static void sb_label(struct strbuf *sb, const char *key, const char *v, bool first)
{
	sb_printf(sb, "%s%s=\"", first ? "" : ",", key);
	for (; *v; v++) {
		if (*v == '\\')
			sb_printf(sb, "\\\\");
		else if (*v == '"')
			sb_printf(sb, "\\\"");
		else if (*v == '\n')
			sb_printf(sb, "\\n");
		else
			sb_printf(sb, "%c", *v);
	}
	sb_printf(sb, "\"");
}

static void family(struct strbuf *sb, const char *name, const char *type, const char *help)
{
	sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{node="..",lun=".."[,extra="xv"]} */
static void lun_series(struct strbuf *sb, const char *name, const ipm_status *st,
		       const ipm_lun_status *l, const char *extra, const char *xv)
{
	sb_printf(sb, "%s{", name);
	sb_label(sb, "node", st->node, true);
	sb_label(sb, "lun", l->name, false);
	if (extra)
		sb_label(sb, extra, xv, false);
	sb_printf(sb, "} ");
}

static uint64_t get_size(const ipm_lun_status *l) { return l->size; }
static uint64_t get_mirrored(const ipm_lun_status *l) { return l->mirrored; }
static uint64_t get_consistent(const ipm_lun_status *l) { return l->consistent; }
static uint64_t get_jbytes(const ipm_lun_status *l) { return l->journal_bytes; }
static uint64_t get_jrecords(const ipm_lun_status *l) { return l->journal_records; }
static uint64_t get_rdone(const ipm_lun_status *l) { return l->resync_done_bytes; }
static uint64_t get_rtotal(const ipm_lun_status *l) { return l->resync_total_bytes; }
static uint64_t get_inflight(const ipm_lun_status *l) { return l->inflight; }
static uint64_t get_inflight_bytes(const ipm_lun_status *l) { return l->inflight_bytes; }
static uint64_t get_ioerr(const ipm_lun_status *l) { return l->local_io_errors; }
static uint64_t get_written(const ipm_lun_status *l) { return l->written_bytes; }
static uint64_t get_read(const ipm_lun_status *l) { return l->read_bytes; }
static uint64_t get_sent(const ipm_lun_status *l) { return l->mirrored_bytes; }

static uint64_t get_vrunning(const ipm_lun_status *l) { return l->verify_running; }
static uint64_t get_vdone(const ipm_lun_status *l) { return l->verify_done_bytes; }
static uint64_t get_vtotal(const ipm_lun_status *l) { return l->verify_total_bytes; }
static uint64_t get_voos(const ipm_lun_status *l) { return l->verify_out_of_sync_bytes; }

static uint64_t get_vleft(const ipm_lun_status *l)
{
	return l->verify_total_bytes > l->verify_done_bytes ?
	       l->verify_total_bytes - l->verify_done_bytes : 0;
}

static uint64_t get_rleft(const ipm_lun_status *l)
{
	return l->resync_total_bytes > l->resync_done_bytes ?
	       l->resync_total_bytes - l->resync_done_bytes : 0;
}

/* The per-LUN numbers, one family each (doc/metrics.md lists them). */
static const struct lun_metric {
	const char *name, *type, *help;
	uint64_t (*get)(const ipm_lun_status *l);
} lun_metrics[] = {
	{ "ipmirror_lun_size_bytes", "gauge", "Size of the LUN.", get_size },
	{ "ipmirror_lun_mirrored", "gauge", "1 when the LUN is mirrored to the peer.",
	  get_mirrored },
	{ "ipmirror_lun_consistent", "gauge",
	  "1 when this node's copy is a whole image (not mid-resync).", get_consistent },
	{ "ipmirror_lun_journal_bytes", "gauge",
	  "Bytes of writes journaled for the peer (not yet mirrored).", get_jbytes },
	{ "ipmirror_lun_journal_records", "gauge", "Records in the journal.", get_jrecords },
	{ "ipmirror_lun_resync_done_bytes", "gauge", "Bytes copied by the current resync.",
	  get_rdone },
	{ "ipmirror_lun_resync_total_bytes", "gauge", "Bytes the current resync copies.",
	  get_rtotal },
	{ "ipmirror_lun_resync_remaining_bytes", "gauge",
	  "Bytes the current resync has still to copy.", get_rleft },
	{ "ipmirror_lun_verify_running", "gauge",
	  "1 while an online verify of the LUN runs (on its primary).", get_vrunning },
	{ "ipmirror_lun_verify_done_bytes", "gauge",
	  "Bytes the last online verify has compared.", get_vdone },
	{ "ipmirror_lun_verify_total_bytes", "gauge",
	  "Bytes the last online verify compares (0: none ran).", get_vtotal },
	{ "ipmirror_lun_verify_remaining_bytes", "gauge",
	  "Bytes the last online verify has still to compare.", get_vleft },
	{ "ipmirror_lun_verify_out_of_sync_bytes", "gauge",
	  "Bytes the last online verify found different on the peer.", get_voos },
	{ "ipmirror_lun_inflight_requests", "gauge", "Host reads and writes in progress.",
	  get_inflight },
	{ "ipmirror_lun_inflight_bytes", "gauge", "Bytes of the host reads and writes in progress.",
	  get_inflight_bytes },
	{ "ipmirror_lun_local_io_errors_total", "counter",
	  "Reads, writes and syncs of this node's backing that failed (EIO, ENOSPC...).",
	  get_ioerr },
	{ "ipmirror_lun_written_bytes_total", "counter",
	  "Bytes hosts wrote to the LUN on this node since the engine started.", get_written },
	{ "ipmirror_lun_read_bytes_total", "counter",
	  "Bytes hosts read from the LUN on this node since the engine started.", get_read },
	{ "ipmirror_lun_mirrored_bytes_total", "counter",
	  "Bytes sent to the peer since the engine started.", get_sent },
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* A latency histogram per LUN in Prometheus' form (cumulative buckets,
 * _sum, _count) from the status' per-bucket counts; get picks which. */
static void render_histogram(struct strbuf *sb, const ipm_status *st, const char *name,
			     const char *help,
			     const uint64_t *(*get)(const ipm_lun_status *, uint64_t *sum_us))
{
	static const uint64_t bounds[IPM_LAT_BUCKETS] = IPM_LAT_BOUNDS_US;
	char le[32], series[96];
	const uint64_t *counts;
	uint64_t cum, sum_us;
	size_t i, b;

	family(sb, name, "histogram", help);
	for (i = 0; i < st->n_luns; i++) {
		const ipm_lun_status *l = &st->luns[i];

		counts = get(l, &sum_us);
		snprintf(series, sizeof(series), "%s_bucket", name);
		for (b = 0, cum = 0; b <= IPM_LAT_BUCKETS; b++) {
			cum += counts[b];
			if (b < IPM_LAT_BUCKETS)
				snprintf(le, sizeof(le), "%g", (double)bounds[b] / 1e6);
			else
				snprintf(le, sizeof(le), "+Inf");
			lun_series(sb, series, st, l, "le", le);
			sb_printf(sb, "%" PRIu64 "\n", cum);
		}
		snprintf(series, sizeof(series), "%s_sum", name);
		lun_series(sb, series, st, l, NULL, NULL);
		sb_printf(sb, "%.6f\n", (double)sum_us / 1e6);
		snprintf(series, sizeof(series), "%s_count", name);
		lun_series(sb, series, st, l, NULL, NULL);
		sb_printf(sb, "%" PRIu64 "\n", cum);
	}
}

static const uint64_t *write_lat(const ipm_lun_status *l, uint64_t *sum_us)
{
	*sum_us = l->write_lat_sum_us;
	return l->write_lat;
}

static const uint64_t *mirror_lat(const ipm_lun_status *l, uint64_t *sum_us)
{
	*sum_us = l->mirror_lat_sum_us;
	return l->mirror_lat;
}

/* Host write latency (entry to answer; with sync mirroring, the peer's
 * answer included) and the mirror requests' round trip. */
static void render_latency(struct strbuf *sb, const ipm_status *st)
{
	render_histogram(sb, st, "ipmirror_lun_write_latency_seconds",
			 "Host write latency on this node, until both copies answered (sync mode).",
			 write_lat);
	render_histogram(sb, st, "ipmirror_lun_mirror_latency_seconds",
			 "Primary: live mirror requests' round trip, from entering the in-flight window to the mirror's answer.",
			 mirror_lat);
}

static void render_luns(struct strbuf *sb, const ipm_status *st)
{
	static const enum ipm_lun_state states[] = {
		IPM_STATE_UPTODATE, IPM_STATE_JOURNALING, IPM_STATE_PROBATION,
		IPM_STATE_RESYNCING, IPM_STATE_OUTDATED, IPM_STATE_INCONSISTENT,
		IPM_STATE_SPLITBRAIN, IPM_STATE_DOWN,
	};
	static const enum ipm_role roles[] = { IPM_ROLE_PRIMARY, IPM_ROLE_MIRROR };
	size_t i, k;

	if (!st->n_luns)
		return;
	family(sb, "ipmirror_lun_state", "gauge", "1 for the LUN's current state, else 0.");
	for (i = 0; i < st->n_luns; i++)
		for (k = 0; k < N_OF(states); k++) {
			lun_series(sb, "ipmirror_lun_state", st, &st->luns[i], "state",
				   ipm_state_name(states[k]));
			sb_printf(sb, "%d\n", st->luns[i].state == states[k]);
		}
	family(sb, "ipmirror_lun_role", "gauge", "1 for the LUN's role on this node, else 0.");
	for (i = 0; i < st->n_luns; i++)
		for (k = 0; k < N_OF(roles); k++) {
			lun_series(sb, "ipmirror_lun_role", st, &st->luns[i], "role",
				   ipm_role_name(roles[k]));
			sb_printf(sb, "%d\n", st->luns[i].role == roles[k]);
		}
	for (k = 0; k < N_OF(lun_metrics); k++) {
		family(sb, lun_metrics[k].name, lun_metrics[k].type, lun_metrics[k].help);
		for (i = 0; i < st->n_luns; i++) {
			lun_series(sb, lun_metrics[k].name, st, &st->luns[i], NULL, NULL);
			sb_printf(sb, "%" PRIu64 "\n", lun_metrics[k].get(&st->luns[i]));
		}
	}
	render_latency(sb, st);
}

/* name{node="..",peer=".."[,key="v"]} */
static void peer_series(struct strbuf *sb, const char *name, const ipm_status *st,
			const char *key, const char *v)
{
	sb_printf(sb, "%s{", name);
	sb_label(sb, "node", st->node, true);
	sb_label(sb, "peer", st->peer, false);
	if (key)
		sb_label(sb, key, v, false);
	sb_printf(sb, "} ");
}

/* Heartbeat ages are those of the snapshot plus its own age. */
static void render_peer(struct strbuf *sb, const ipm_status *st, int64_t at_ms)
{
	const struct { const char *path; enum ipm_link_state s; int64_t age; } hb[] = {
		{ "udp", st->udp_state, st->udp_age_ms },
		{ "storage", ipm_status_storage(st), st->storage_age_ms },
	};
	char idx[16];
	size_t i;

	if (!st->peer[0])
		return;
	family(sb, "ipmirror_peer_up", "gauge",
	       "1 when the configured heartbeat method says the peer is up.");
	peer_series(sb, "ipmirror_peer_up", st, NULL, NULL);
	sb_printf(sb, "%d\n", st->peer_heartbeat == IPM_LINK_UP);
	family(sb, "ipmirror_peer_heartbeat_up", "gauge",
	       "1 when the peer's heartbeat arrives on the path (udp, storage).");
	for (i = 0; i < N_OF(hb); i++) {
		peer_series(sb, "ipmirror_peer_heartbeat_up", st, "path", hb[i].path);
		sb_printf(sb, "%d\n", hb[i].s == IPM_LINK_UP);
	}
	family(sb, "ipmirror_peer_heartbeat_age_seconds", "gauge",
	       "Seconds since the peer's last heartbeat on the path (absent: never heard).");
	for (i = 0; i < N_OF(hb); i++) {
		if (hb[i].age < 0)
			continue;
		peer_series(sb, "ipmirror_peer_heartbeat_age_seconds", st, "path", hb[i].path);
		sb_printf(sb, "%.3f\n", (double)(hb[i].age + at_ms) / 1000.0);
	}
	if (!st->n_conns)
		return;
	family(sb, "ipmirror_connection_up", "gauge",
	       "1 when mirror connection index (direction out: we send, in: we receive) is up.");
	for (i = 0; i < st->n_conns; i++) {
		snprintf(idx, sizeof(idx), "%d", st->conns[i].index);
		sb_printf(sb, "ipmirror_connection_up{");
		sb_label(sb, "node", st->node, true);
		sb_label(sb, "peer", st->peer, false);
		sb_label(sb, "direction", st->conns[i].outgoing ? "out" : "in", false);
		sb_label(sb, "index", idx, false);
		sb_printf(sb, "} %d\n", st->conns[i].status == IPM_LINK_UP);
	}
}

void metrics_render(struct strbuf *sb, const ipm_status *st, int64_t at_ms,
		    const char *version)
{
	family(sb, "ipmirror_build_info", "gauge", "Always 1; the version of ipmirrord.");
	sb_printf(sb, "ipmirror_build_info{");
	sb_label(sb, "version", version, true);
	sb_printf(sb, "} 1\n");
	family(sb, "ipmirror_status_schema", "gauge",
	       "Version of the status JSON's keys (its \"schema\"), which these metrics follow.");
	sb_printf(sb, "ipmirror_status_schema %d\n", STATUS_SCHEMA);
	if (!st)
		return;
	family(sb, "ipmirror_status_age_seconds", "gauge",
	       "Age of the status snapshot these values come from.");
	sb_printf(sb, "ipmirror_status_age_seconds{");
	sb_label(sb, "node", st->node, true);
	sb_printf(sb, "} %.3f\n", (double)at_ms / 1000.0);
	render_luns(sb, st);
	render_peer(sb, st, at_ms);
}

/* ---- the snapshot ---------------------------------------------------------- */

static ipm_status *status_copy(const ipm_status *st)
{
	ipm_status *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	*c = *st;
	c->conns = NULL;
	c->luns = NULL;
	if (st->n_conns && !(c->conns = malloc(st->n_conns * sizeof(*c->conns))))
		goto fail;
	if (st->n_luns && !(c->luns = malloc(st->n_luns * sizeof(*c->luns))))
		goto fail;
	if (c->conns)
		memcpy(c->conns, st->conns, st->n_conns * sizeof(*c->conns));
	if (c->luns)
		memcpy(c->luns, st->luns, st->n_luns * sizeof(*c->luns));
	return c;
fail:
	ipm_status_free(c);
	return NULL;
}

void metrics_update(struct metrics *m, const ipm_status *st)
{
	ipm_status *c, *old;

	if (!m || !(c = status_copy(st)))
		return;
	pthread_mutex_lock(&m->lock);
	old = m->snap;
	m->snap = c;
	m->snap_ms = ipm_now_ms();
	pthread_mutex_unlock(&m->lock);
	ipm_status_free(old);
}

/* Render under the lock: a few kB of text, no I/O. */
static void render_current(struct metrics *m, struct strbuf *sb)
{
	pthread_mutex_lock(&m->lock);
	metrics_render(sb, m->snap, m->snap ? ipm_now_ms() - m->snap_ms : 0, m->version);
	pthread_mutex_unlock(&m->lock);
}

/* ---- HTTP ------------------------------------------------------------------ */

/* Wait for fd (events) until deadline (ipm_now_ms); false on timeout, error
 * or a stop request. */
static bool wait_fd(struct metrics *m, int fd, short events, int64_t deadline)
{
	struct pollfd p[2] = { { fd, events, 0 }, { m->stop_pipe[0], POLLIN, 0 } };
	int64_t left;
	int n;

	for (;;) {
		left = deadline - ipm_now_ms();
		if (left <= 0)
			return false;
		n = poll(p, 2, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		return n > 0 && !p[1].revents && p[0].revents;
	}
}

static void send_all(struct metrics *m, int fd, const char *buf, size_t len)
{
	int64_t deadline = ipm_now_ms() + SEND_MS;
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!wait_fd(m, fd, POLLOUT, deadline))
				return;
			continue;
		}
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void reply(struct metrics *m, int fd, const char *status, const char *extra,
		  const char *ctype, const char *body)
{
	struct strbuf sb = STRBUF_INIT;
	size_t blen = strlen(body);

	sb_printf(&sb, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		  "Connection: close\r\n%s\r\n", status, ctype, blen, extra);
	if (!sb.err) {
		send_all(m, fd, sb.buf, sb.len);
		send_all(m, fd, body, blen);
	}
	sb_free(&sb);
}

/* After an error: half-close and read what the client still sends (a
 * little, briefly), so that closing with unread input does not reset the
 * connection before the client has read our answer. */
static void drain(struct metrics *m, int fd)
{
	int64_t deadline = ipm_now_ms() + 500;
	size_t total = 0;
	char buf[4096];
	ssize_t n;

	shutdown(fd, SHUT_WR);
	while (total < (64u << 10)) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return;
		if (n > 0)
			total += (size_t)n;
		else if (!wait_fd(m, fd, POLLIN, deadline))
			return;
	}
}

static void reply_error(struct metrics *m, int fd, const char *status, const char *extra)
{
	char body[128];

	snprintf(body, sizeof(body), "%s\n", status);
	reply(m, fd, status, extra, "text/plain; charset=utf-8", body);
	drain(m, fd);
}

/* Read up to the blank line ending the headers. Returns its length, 0 when
 * the request is too big, -1 on timeout or a closed connection. */
static int read_request(struct metrics *m, int fd, char *buf, size_t cap)
{
	int64_t deadline = ipm_now_ms() + READ_MS;
	size_t len = 0;
	ssize_t n;

	for (;;) {
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
			return (int)len;
		if (len == cap - 1)
			return 0;
		n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
		if (n > 0) {
			if (memchr(buf + len, '\0', (size_t)n))
				return -2;
			len += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			return -1;
		if (!wait_fd(m, fd, POLLIN, deadline))
			return -1;
	}
}

/* "GET /metrics HTTP/1.1": 200 with the text, else the fitting error. */
static void serve(struct metrics *m, int fd)
{
	char buf[REQUEST_MAX + 1], method[16], target[256], version[16];
	struct strbuf sb = STRBUF_INIT;
	size_t plen;
	int n = read_request(m, fd, buf, sizeof(buf));

	if (n == -1)
		return;  /* too slow or gone: nothing to answer */
	if (n == 0) {
		reply_error(m, fd, "431 Request Header Fields Too Large", "");
		return;
	}
	if (n < 0 || sscanf(buf, "%15[A-Z] %255[^ \r\n] %15[^\r\n]", method, target, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7) != 0 || !strchr("01", version[7]) || version[8]) {
		reply_error(m, fd, "400 Bad Request", "");
		return;
	}
	if (strcmp(method, "GET") != 0) {
		reply_error(m, fd, "405 Method Not Allowed", "Allow: GET\r\n");
		return;
	}
	plen = strcspn(target, "?");
	if (plen != strlen("/metrics") || strncmp(target, "/metrics", plen) != 0) {
		reply_error(m, fd, "404 Not Found", "");
		return;
	}
	render_current(m, &sb);
	if (sb.err)
		reply_error(m, fd, "500 Internal Server Error", "");
	else
		reply(m, fd, "200 OK", "", "text/plain; version=0.0.4; charset=utf-8", sb.buf);
	sb_free(&sb);
}

static void *metrics_thread(void *arg)
{
	struct metrics *m = arg;
	struct pollfd p[2] = { { m->fd, POLLIN, 0 }, { m->stop_pipe[0], POLLIN, 0 } };
	int c;

	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!p[0].revents)
			continue;
		c = accept4(m->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0)
			continue;
		serve(m, c);
		close(c);
	}
	return NULL;
}

int metrics_start(const char *address, uint16_t port, const char *version,
		  struct metrics **out, ipm_error *err)
{
	struct metrics *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return ipm_fail(err, -ENOMEM, "out of memory");
	m->stop_pipe[0] = m->stop_pipe[1] = -1;
	snprintf(m->version, sizeof(m->version), "%s", version);
	pthread_mutex_init(&m->lock, NULL);
	m->fd = net_listen_tcp(address, port, BACKLOG, SOCK_NONBLOCK, "metrics", err);
	if (m->fd < 0) {
		rc = m->fd;
		goto fail;
	}
	if (pipe2(m->stop_pipe, O_CLOEXEC) < 0) {
		rc = ipm_fail(err, -errno, "metrics: pipe: %s", strerror(errno));
		goto fail;
	}
	rc = -pthread_create(&m->thread, NULL, metrics_thread, m);
	m->started = rc == 0;
	if (rc < 0) {
		ipm_fail(err, rc, "metrics: cannot start its thread: %s", strerror(-rc));
		goto fail;
	}
	qb_log(LOG_NOTICE, "metrics at http://%s:%u/metrics", address, port);
	*out = m;
	return 0;
fail:
	metrics_stop(m);
	return rc;
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	if (m->started) {
		if (write(m->stop_pipe[1], "x", 1) < 0)
			qb_log(LOG_WARNING, "metrics: cannot stop the thread: %s", strerror(errno));
		pthread_join(m->thread, NULL);
	}
	if (m->fd >= 0)
		close(m->fd);
	if (m->stop_pipe[0] >= 0)
		close(m->stop_pipe[0]);
	if (m->stop_pipe[1] >= 0)
		close(m->stop_pipe[1]);
	ipm_status_free(m->snap);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
