/* heartbeat.c - UDP heartbeat sender and receiver threads (see heartbeat.h).
 *
 * Lock order: hb->lock is taken under the replicator's lock (heartbeat_state)
 * and never held while calling into a connection array or writing the state
 * file; boot_lock is a leaf.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "lockdebug.h"
#include "clock.h"
#include "auth.h"
#include "engine.h"
#include "config.h"
#include "connection_array.h"
#include "hb_packet.h"
#include "hb_state.h"
#include "probation.h"
#include "heartbeat.h"
#include "netaddr.h"

#define RECV_POLL_MS 100        /* bounds how late timeouts are noticed */
#define DROP_LOG_EVERY_MS 5000  /* a flood of bad datagrams must not flood the log */
/* How far the peer's timestamp may run ahead of the one kept in the state
 * file: after a crash of this node, datagrams of the peer's current boot
 * from at most this long before it could be replayed once. */
#define STATE_SAVE_EVERY_MS 10000

struct heartbeat {
	char self[IPM_NAME_MAX];
	char peer[IPM_NAME_MAX];
	char remote_name[96];             /* "address:port" for log lines */
	int fd;                           /* UDP socket, bound locally */
	int wake_fd;                      /* eventfd: stop wakes the receiver */
	struct sockaddr_storage remote;
	socklen_t remote_len;
	struct auth_secret secret;
	int64_t interval_ms;              /* written under lock (a reload); */
	int64_t timeout_ms;               /* age_arrays reads it atomically */
	uint64_t boot_id;
	uint64_t boot;                    /* this process's boot counter */
	int send_errno;                   /* sender thread only: last reported */
	char *state_path;                 /* NULL: nothing kept */
	struct hb_replay saved;           /* last written to the file, and */
	int save_rc;                      /* how it went; receiver thread (and
					   * create and stop, before and after it) */

	pthread_mutex_t lock;             /* everything below */
	pthread_cond_t wake;              /* monotonic clock */
	bool running;
	bool started;
	pthread_t sender, receiver;
	struct probation prob;            /* the UDP path */
	struct probation sprob;           /* the storage path (fed by storage_hb) */
	bool storage_on;                  /* a heartbeat volume is installed */
	enum ipm_hb_method method;
	int failure;                      /* enum path_failure last logged */
	struct hb_replay replay;
	uint64_t dropped;
	int64_t drop_log_ms;              /* when the last drop was logged */
	uint64_t drop_unlogged;
	struct connection_array *ca[HB_MAX_ARRAYS];
	unsigned n_ca;
	/* held shared from a copy of ca[] to the end of its use (taken under
	 * hb->lock or alone); heartbeat_detach waits for it exclusive */
	pthread_rwlock_t ca_lock;
};

/* ---- setup --------------------------------------------------------------- */

static int check_params(const struct hb_params *p, ipm_error *err)
{
	if (!p->self || !p->peer || strlen(p->self) >= IPM_NAME_MAX ||
	    strlen(p->peer) >= IPM_NAME_MAX)
		return ipm_fail(err, -EINVAL, "heartbeat: node names missing or too long");
	if (!p->local || !p->local->address || !p->remote || !p->remote->address)
		return ipm_fail(err, -EINVAL, "heartbeat: addresses of both nodes are needed");
	if (!p->secret || p->secret->len == 0)
		return ipm_fail(err, -EINVAL, "heartbeat: no shared secret");
	if (!(p->interval > 0) || !(p->timeout > p->interval) || !(p->probation >= 0))
		return ipm_fail(err, -EINVAL,
				"heartbeat: need interval > 0, timeout > interval, probation >= 0 (got %g, %g, %g)",
				p->interval, p->timeout, p->probation);
	return 0;
}

static int open_socket(struct heartbeat *hb, const struct hb_params *p, ipm_error *err)
{
	struct sockaddr_storage local;
	int rc;

	hb->fd = net_bind_udp(p->local->address, p->local->port, &local, "heartbeat address", err);
	if (hb->fd < 0)
		return hb->fd;
	rc = net_resolve(p->remote->address, p->remote->port, SOCK_DGRAM, local.ss_family, false,
			 &hb->remote, &hb->remote_len);
	if (rc)
		return ipm_fail(err, -EINVAL, "heartbeat address %s:%u: %s", p->remote->address,
				p->remote->port, gai_strerror(rc));
	hb->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (hb->wake_fd < 0)
		return ipm_fail(err, -errno, "heartbeat eventfd: %s", strerror(errno));
	return 0;
}

/* One boot id and one serial sequence per process, not per engine: the
 * daemon re-creates its engine for a role change, and the peer must not take
 * that for a restart (it would put us on probation) nor see the serial go
 * back (it would drop our datagrams as replays). */
static uint64_t boot_id_value;
static pthread_once_t boot_id_once = PTHREAD_ONCE_INIT;
static uint64_t process_serial;
/* Likewise the boot counter, chosen at the first heartbeat_create (it needs
 * the state file), and the timestamps, strictly increasing through the
 * process however the clock is set, so that the peer's replay check can
 * rely on them within one boot. */
static pthread_mutex_t boot_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t process_boot;              /* under boot_lock */
static int64_t process_last_ts;            /* atomic */

static void boot_id_init(void)
{
	auth_random((uint8_t *)&boot_id_value, sizeof(boot_id_value));
}

uint64_t heartbeat_boot_id(void)
{
	pthread_once(&boot_id_once, boot_id_init);
	return boot_id_value;
}

uint64_t heartbeat_boot(void)
{
	uint64_t b;

	pthread_mutex_lock(&boot_lock);
	b = process_boot;
	pthread_mutex_unlock(&boot_lock);
	return b;
}

static int64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t next_timestamp(void)
{
	int64_t now = realtime_ms(), last = __atomic_load_n(&process_last_ts, __ATOMIC_RELAXED);
	int64_t next;

	do
		next = now > last ? now : last + 1;
	while (!__atomic_compare_exchange_n(&process_last_ts, &last, next, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return (uint64_t)next;
}

/* Write our boot counter and r (what was accepted from the peer). Blocks
 * (fsync): never under hb->lock. A failure is logged once and tried again
 * only at the next save point, not for every datagram: a full or read-only
 * disk must not cost the link (the counter still moves forward by the
 * clock, hb_state_next_boot). */
static void save_state(struct heartbeat *hb, const struct hb_replay *r)
{
	struct hb_state st = {
		.boot = hb->boot,
		.peer_boot = r->have ? r->boot : 0,
		.peer_timestamp_ms = r->have ? r->timestamp_ms : 0,
	};
	ipm_error err = { "" };
	int rc;

	snprintf(st.peer, sizeof(st.peer), "%s", hb->peer);
	rc = hb_state_save(hb->state_path, &st, &err);
	if (rc < 0 && rc != hb->save_rc)
		qb_log(LOG_WARNING, "peer %s: heartbeat state: %s (replays of earlier peer boots are refused only while this daemon runs)",
		       hb->peer, err.msg);
	else if (rc == 0 && hb->save_rc < 0)
		qb_log(LOG_NOTICE, "peer %s: heartbeat state written again to %s", hb->peer,
		       hb->state_path);
	hb->save_rc = rc;
	hb->saved = (struct hb_replay){ .have = r->have, .boot = st.peer_boot,
					.timestamp_ms = st.peer_timestamp_ms };
}

/* Our boot counter (once per process) and, from the file, the peer's
 * highest boot: replays of its earlier boots stay refused after we restart. */
static void load_state(struct heartbeat *hb)
{
	struct hb_state st = { 0 };
	ipm_error err = { "" };

	if (hb->state_path && hb_state_load(hb->state_path, &st, &err) < 0) {
		qb_log(LOG_WARNING, "peer %s: heartbeat state: %s; starting afresh (until the peer is heard, one replayed datagram could be taken for it)",
		       hb->peer, err.msg);
		st = (struct hb_state){ 0 };
	}
	pthread_mutex_lock(&boot_lock);
	if (!process_boot)
		process_boot = hb_state_next_boot(st.boot, realtime_ms() / 1000);
	hb->boot = process_boot;
	pthread_mutex_unlock(&boot_lock);
	if (st.peer_boot && strcmp(st.peer, hb->peer) == 0)
		hb->replay = (struct hb_replay){ .have = true, .boot = st.peer_boot,
						 .timestamp_ms = st.peer_timestamp_ms };
	hb->saved = hb->replay;
	/* on disk before the first datagram carries it */
	if (hb->state_path && st.boot != hb->boot)
		save_state(hb, &hb->replay);
}

int heartbeat_create(const struct hb_params *p, struct heartbeat **out, ipm_error *err)
{
	struct heartbeat *hb;
	int rc;

	rc = check_params(p, err);
	if (rc < 0)
		return rc;
	hb = calloc(1, sizeof(*hb));
	if (!hb)
		return ipm_fail(err, -ENOMEM, "out of memory");
	hb->fd = hb->wake_fd = -1;
	pthread_mutex_init(&hb->lock, NULL);
	pthread_rwlock_init(&hb->ca_lock, NULL);
	ipm_cond_init_mono(&hb->wake);
	snprintf(hb->self, sizeof(hb->self), "%s", p->self);
	snprintf(hb->peer, sizeof(hb->peer), "%s", p->peer);
	snprintf(hb->remote_name, sizeof(hb->remote_name), "%s:%u", p->remote->address,
		 p->remote->port);
	memcpy(&hb->secret, p->secret, sizeof(hb->secret));
	hb->interval_ms = (int64_t)(p->interval * 1000.0 + 0.5);
	hb->timeout_ms = (int64_t)(p->timeout * 1000.0 + 0.5);
	hb->boot_id = heartbeat_boot_id();
	if (p->state_path && !(hb->state_path = strdup(p->state_path))) {
		heartbeat_destroy(hb);
		return ipm_fail(err, -ENOMEM, "out of memory");
	}
	load_state(hb);
	prob_init(&hb->prob, p->peer, p->interval, p->timeout, p->probation);
	prob_init(&hb->sprob, p->peer, p->interval, p->timeout, p->probation);
	snprintf(hb->sprob.path, sizeof(hb->sprob.path), "storage heartbeat");
	hb->method = p->method;
	rc = open_socket(hb, p, err);
	if (rc < 0) {
		heartbeat_destroy(hb);
		return rc;
	}
	*out = hb;
	return 0;
}

int heartbeat_attach(struct heartbeat *hb, struct connection_array *ca)
{
	int rc = 0;

	void (*notify)(void *);
	void *opaque;

	pthread_mutex_lock(&hb->lock);
	if (hb->n_ca == HB_MAX_ARRAYS)
		rc = -ENOSPC;
	else
		hb->ca[hb->n_ca++] = ca;
	notify = hb->prob.notify;
	opaque = hb->prob.notify_opaque;
	pthread_mutex_unlock(&hb->lock);
	/* its up/down changes go where the paths' do (outside hb->lock) */
	if (rc == 0 && notify)
		ca_set_notify(ca, notify, opaque);
	return rc;
}

void heartbeat_detach(struct heartbeat *hb, struct connection_array *ca)
{
	unsigned i;

	pthread_mutex_lock(&hb->lock);
	for (i = 0; i < hb->n_ca; i++) {
		if (hb->ca[i] == ca) {
			hb->ca[i] = hb->ca[--hb->n_ca];
			break;
		}
	}
	pthread_mutex_unlock(&hb->lock);
	/* a copy taken before is in use until this gets through */
	pthread_rwlock_wrlock(&hb->ca_lock);
	pthread_rwlock_unlock(&hb->ca_lock);
}

/* ---- verdicts by method ----------------------------------------------------- */

enum path_failure { FAIL_NONE, FAIL_HB_NETWORK, FAIL_REPLICATION, FAIL_BOTH };

static enum ipm_link_state storage_locked(struct heartbeat *hb, int64_t now)
{
	IPM_ASSERT_HELD(&hb->lock);
	return hb->storage_on ? prob_tick(&hb->sprob, now) : IPM_LINK_OFF;
}

/* Either path up: up; else either in probation: probation; else down. */
static enum ipm_link_state either(enum ipm_link_state a, enum ipm_link_state b)
{
	if (a == IPM_LINK_UP || b == IPM_LINK_UP)
		return IPM_LINK_UP;
	if (a == IPM_LINK_PROBATION || b == IPM_LINK_PROBATION)
		return IPM_LINK_PROBATION;
	return IPM_LINK_DOWN;
}

/* The peer's state as the method judges it. */
static enum ipm_link_state verdict_locked(struct heartbeat *hb, int64_t now)
{
	enum ipm_link_state u = prob_tick(&hb->prob, now), st = storage_locked(hb, now);

	IPM_ASSERT_HELD(&hb->lock);
	switch (hb->method) {
	case IPM_HB_STORAGE:
		return st == IPM_LINK_OFF ? IPM_LINK_DOWN : st;
	case IPM_HB_BOTH:
		return either(u, st);
	default:
		return u;
	}
}

/* May connections be (re-)established and kept alive? The verdict must be
 * up, except that under `storage` the storage heartbeat can only travel on
 * a connection: after an outage an up UDP heartbeat lets the workers dial,
 * and the storage heartbeat then decides (doc/heartbeat.md). */
static bool gate_locked(struct heartbeat *hb, int64_t now)
{
	IPM_ASSERT_HELD(&hb->lock);
	if (verdict_locked(hb, now) == IPM_LINK_UP)
		return true;
	return hb->method == IPM_HB_STORAGE && prob_tick(&hb->prob, now) == IPM_LINK_UP;
}

/* The storage records, once heard, stopped: they travel the mirror
 * connections, so those are broken whatever UDP says. A datagram must then
 * not keep them alive: they age out and the primary journals. */
static bool replication_broken_locked(struct heartbeat *hb, int64_t now)
{
	IPM_ASSERT_HELD(&hb->lock);
	return hb->storage_on && hb->sprob.heard && storage_locked(hb, now) == IPM_LINK_DOWN;
}

/* What a proof of the peer's life (a datagram, a storage record) keeps
 * alive: every element while the gate is open; during the path's
 * probation only those opened in it (a restarted peer has no probation
 * for us and dials at once: marked down as the probation ends, the link
 * would flap once); otherwise none, so that the connection threads see
 * the elements age out, close and exit. */
#define REFRESH_NONE (-1)
#define REFRESH_ALL (-2)

static int64_t refresh_from(bool gate, const struct probation *p)
{
	if (gate)
		return REFRESH_ALL;
	return p->state == IPM_LINK_PROBATION ? p->entered_ms : REFRESH_NONE;
}

/* Outside hb->lock, under ca_lock (read): the arrays copied under it. */
static void refresh_arrays(struct connection_array **ca, unsigned n, int64_t from)
{
	unsigned i;

	for (i = 0; from != REFRESH_NONE && i < n; i++)
		if (from == REFRESH_ALL)
			ca_refresh_all(ca[i]);
		else
			ca_refresh_since(ca[i], from);
}

static const char *const failure_text[] = {
	[FAIL_NONE] = "both heartbeat paths are up again",
	[FAIL_HB_NETWORK] = "heartbeat network failure: UDP heartbeats lost, the storage heartbeat still advances (peer alive)",
	[FAIL_REPLICATION] = "replication path failure: the storage heartbeat stopped, UDP heartbeats still arrive (peer alive)",
	[FAIL_BOTH] = "both heartbeat paths are down: the peer is dead or isolated",
};

/* Say which path failed, once per change (only with a heartbeat volume). */
static void log_failure_locked(struct heartbeat *hb, int64_t now)
{
	enum ipm_link_state u = prob_tick(&hb->prob, now), st = storage_locked(hb, now);
	int f;

	IPM_ASSERT_HELD(&hb->lock);
	if (st == IPM_LINK_OFF || !hb->prob.heard || !hb->sprob.heard)
		return;
	f = (u != IPM_LINK_UP) * FAIL_HB_NETWORK + (st != IPM_LINK_UP) * FAIL_REPLICATION;
	if (f == hb->failure)
		return;
	hb->failure = f;
	qb_log(f == FAIL_NONE ? LOG_NOTICE : LOG_WARNING, "peer %s: %s (method %s: peer %s)",
	       hb->peer, failure_text[f], ipm_method_name(hb->method),
	       ipm_link_name(verdict_locked(hb, now)));
}

/* ---- sender ---------------------------------------------------------------- */

static unsigned copy_arrays(struct heartbeat *hb, struct connection_array **v)
{
	unsigned n;

	pthread_mutex_lock(&hb->lock);
	pthread_rwlock_rdlock(&hb->ca_lock);
	n = hb->n_ca;
	memcpy(v, hb->ca, n * sizeof(*v));
	pthread_mutex_unlock(&hb->lock);
	return n;
}

/* Elements not refreshed within the timeout go down: their owners see it,
 * close and exit. */
static void age_arrays(struct heartbeat *hb)
{
	struct connection_array *ca[HB_MAX_ARRAYS];
	unsigned i, n = copy_arrays(hb, ca), marked = 0;
	/* a reload may set it meanwhile (heartbeat_set_times) */
	int64_t timeout_ms = __atomic_load_n(&hb->timeout_ms, __ATOMIC_RELAXED);

	for (i = 0; i < n; i++)
		marked += ca_mark_stale_down(ca[i], timeout_ms);
	pthread_rwlock_unlock(&hb->ca_lock);
	if (marked)
		qb_log(LOG_WARNING, "peer %s: %u connection(s) marked down, no heartbeat for > %.1f s",
		       hb->peer, marked, timeout_ms / 1000.0);
}

static void send_one(struct heartbeat *hb)
{
	struct hb_packet p = { .boot_id = hb->boot_id, .boot = hb->boot };
	uint8_t buf[HB_PACKET_LEN];
	ssize_t n;

	snprintf(p.from, sizeof(p.from), "%s", hb->self);
	snprintf(p.to, sizeof(p.to), "%s", hb->peer);
	p.serial = __atomic_add_fetch(&process_serial, 1, __ATOMIC_RELAXED);
	p.timestamp_ms = next_timestamp();
	hb_packet_encode(buf, &p, &hb->secret);
	n = sendto(hb->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&hb->remote,
		   hb->remote_len);
	/* report a failure once, not every interval */
	if (n < 0 && errno != hb->send_errno) {
		hb->send_errno = errno;
		qb_log(LOG_WARNING, "peer %s: sending heartbeat to %s: %s", hb->peer,
		       hb->remote_name, strerror(errno));
	} else if (n >= 0 && hb->send_errno) {
		hb->send_errno = 0;
		qb_log(LOG_NOTICE, "peer %s: sending heartbeats to %s again", hb->peer,
		       hb->remote_name);
	}
	explicit_bzero(buf, sizeof(buf));
}

static void ms_to_timespec(int64_t ms, struct timespec *ts)
{
	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (long)(ms % 1000) * 1000000;
}

static void *sender_main(void *arg)
{
	struct heartbeat *hb = arg;
	int64_t next = ipm_now_ms(), now;
	struct timespec dl;

	pthread_mutex_lock(&hb->lock);
	while (hb->running) {
		pthread_mutex_unlock(&hb->lock);
		age_arrays(hb);
		send_one(hb);
		pthread_mutex_lock(&hb->lock);
		prob_tick(&hb->prob, ipm_now_ms());
		/* a fixed schedule, so sends do not drift into "missed" gaps */
		next += hb->interval_ms;
		now = ipm_now_ms();
		if (next < now)
			next = now;
		ms_to_timespec(next, &dl);
		while (hb->running && ipm_now_ms() < next)
			pthread_cond_timedwait(&hb->wake, &hb->lock, &dl);
	}
	pthread_mutex_unlock(&hb->lock);
	return NULL;
}

/* ---- receiver ---------------------------------------------------------------- */

static void addr_name(const struct sockaddr_storage *sa, socklen_t len, char *buf, size_t size)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo((const struct sockaddr *)sa, len, host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(buf, size, "?");
	else
		snprintf(buf, size, "%s:%s", host, serv);
}

/* Called with hb->lock held. */
static void count_drop_locked(struct heartbeat *hb, const struct sockaddr_storage *src,
			      socklen_t src_len, const char *why, int64_t now)
{
	char from[NI_MAXHOST + NI_MAXSERV + 2];

	IPM_ASSERT_HELD(&hb->lock);
	hb->dropped++;
	if (hb->drop_log_ms && now - hb->drop_log_ms < DROP_LOG_EVERY_MS) {
		hb->drop_unlogged++;
		return;
	}
	addr_name(src, src_len, from, sizeof(from));
	qb_log(LOG_WARNING, "peer %s: heartbeat datagram from %s dropped: %s (%llu dropped so far, %llu since the last report)",
	       hb->peer, from, why, (unsigned long long)hb->dropped,
	       (unsigned long long)hb->drop_unlogged + 1);
	hb->drop_log_ms = now;
	hb->drop_unlogged = 0;
}

/* A new peer boot is written before it counts, so that after a crash of
 * this node its earlier boots stay refused; within a boot, the timestamp
 * every STATE_SAVE_EVERY_MS. */
static bool needs_save(const struct heartbeat *hb, const struct hb_packet *p)
{
	return hb->state_path &&
	       (!hb->saved.have || p->boot != hb->saved.boot ||
		p->timestamp_ms >= hb->saved.timestamp_ms + STATE_SAVE_EVERY_MS);
}

static void handle_datagram(struct heartbeat *hb, const uint8_t *buf, size_t len,
			    const struct sockaddr_storage *src, socklen_t src_len)
{
	struct connection_array *ca[HB_MAX_ARRAYS];
	int64_t now = ipm_now_ms();
	struct hb_packet p;
	ipm_error err = { "" };
	int64_t from;
	unsigned n;
	int rc;

	pthread_mutex_lock(&hb->lock);
	rc = hb_packet_decode(buf, len, &hb->secret, hb->peer, hb->self, &hb->replay, &p, &err);
	if (rc < 0) {
		count_drop_locked(hb, src, src_len, err.msg, now);
		pthread_mutex_unlock(&hb->lock);
		return;
	}
	if (needs_save(hb, &p)) {
		struct hb_replay r = { .have = true, .boot = p.boot, .timestamp_ms = p.timestamp_ms };

		/* the receiver alone changes hb->replay: the check still holds */
		pthread_mutex_unlock(&hb->lock);
		save_state(hb, &r);
		pthread_mutex_lock(&hb->lock);
		now = ipm_now_ms();
	}
	hb_replay_accept(&hb->replay, &p);
	prob_datagram(&hb->prob, now, p.boot_id);
	from = replication_broken_locked(hb, now) ? REFRESH_NONE :
		refresh_from(gate_locked(hb, now), &hb->prob);
	pthread_rwlock_rdlock(&hb->ca_lock);
	n = hb->n_ca;
	memcpy(ca, hb->ca, n * sizeof(*ca));
	pthread_mutex_unlock(&hb->lock);
	refresh_arrays(ca, n, from);
	pthread_rwlock_unlock(&hb->ca_lock);
}

static void drain_socket(struct heartbeat *hb)
{
	/* one byte more than a datagram: MSG_TRUNC reports the real length */
	uint8_t buf[HB_PACKET_LEN + 1];
	struct sockaddr_storage src;
	socklen_t src_len;
	ssize_t n;

	for (;;) {
		src_len = sizeof(src);
		n = recvfrom(hb->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC,
			     (struct sockaddr *)&src, &src_len);
		if (n < 0)
			return;  /* EAGAIN, or a socket error (now cleared) */
		handle_datagram(hb, buf, (size_t)n, &src, src_len);
	}
}

static void *receiver_main(void *arg)
{
	struct heartbeat *hb = arg;
	struct pollfd pfd[2] = {
		{ .fd = hb->fd, .events = POLLIN },
		{ .fd = hb->wake_fd, .events = POLLIN },
	};
	bool running = true;

	while (running) {
		if (poll(pfd, 2, RECV_POLL_MS) > 0 && pfd[0].revents)
			drain_socket(hb);
		pthread_mutex_lock(&hb->lock);
		prob_tick(&hb->prob, ipm_now_ms());  /* log timeouts when they happen */
		log_failure_locked(hb, ipm_now_ms());
		running = hb->running;
		pthread_mutex_unlock(&hb->lock);
	}
	return NULL;
}

/* ---- start / stop ------------------------------------------------------------ */

int heartbeat_start(struct heartbeat *hb, ipm_error *err)
{
	uint64_t v;
	int rc;

	pthread_mutex_lock(&hb->lock);
	if (hb->started) {
		pthread_mutex_unlock(&hb->lock);
		return ipm_fail(err, -EALREADY, "heartbeat already started");
	}
	/* consume the wake-up of an earlier stop (EAGAIN when there was none) */
	if (read(hb->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		qb_log(LOG_DEBUG, "heartbeat eventfd: %s", strerror(errno));
	hb->running = true;
	rc = pthread_create(&hb->receiver, NULL, receiver_main, hb);
	if (rc != 0)
		goto fail;
	rc = pthread_create(&hb->sender, NULL, sender_main, hb);
	if (rc != 0) {
		hb->running = false;
		pthread_mutex_unlock(&hb->lock);
		pthread_join(hb->receiver, NULL);
		return ipm_fail(err, -rc, "heartbeat thread: %s", strerror(rc));
	}
	hb->started = true;
	pthread_mutex_unlock(&hb->lock);
	qb_log(LOG_INFO, "peer %s: heartbeats to %s every %.1f s", hb->peer, hb->remote_name,
	       hb->interval_ms / 1000.0);
	return 0;
fail:
	hb->running = false;
	pthread_mutex_unlock(&hb->lock);
	return ipm_fail(err, -rc, "heartbeat thread: %s", strerror(rc));
}

void heartbeat_stop(struct heartbeat *hb)
{
	uint64_t one = 1;

	pthread_mutex_lock(&hb->lock);
	if (!hb->started) {
		pthread_mutex_unlock(&hb->lock);
		return;
	}
	hb->running = false;
	hb->started = false;
	pthread_cond_broadcast(&hb->wake);
	pthread_mutex_unlock(&hb->lock);
	/* should the write fail, the receiver still sees running == false
	 * within RECV_POLL_MS */
	if (write(hb->wake_fd, &one, sizeof(one)) < 0)
		qb_log(LOG_DEBUG, "heartbeat eventfd: %s", strerror(errno));
	pthread_join(hb->sender, NULL);
	pthread_join(hb->receiver, NULL);
	/* the newest timestamp, so that a restart does not reopen the window */
	if (hb->state_path && hb->replay.have &&
	    (hb->replay.boot != hb->saved.boot ||
	     hb->replay.timestamp_ms != hb->saved.timestamp_ms))
		save_state(hb, &hb->replay);
}

void heartbeat_destroy(struct heartbeat *hb)
{
	if (!hb)
		return;
	heartbeat_stop(hb);
	if (hb->fd >= 0)
		close(hb->fd);
	if (hb->wake_fd >= 0)
		close(hb->wake_fd);
	pthread_cond_destroy(&hb->wake);
	pthread_mutex_destroy(&hb->lock);
	pthread_rwlock_destroy(&hb->ca_lock);
	explicit_bzero(&hb->secret, sizeof(hb->secret));
	free(hb->state_path);
	free(hb);
}

/* ---- queries ----------------------------------------------------------------- */

enum ipm_link_state heartbeat_state(struct heartbeat *hb)
{
	enum ipm_link_state st;

	pthread_mutex_lock(&hb->lock);
	st = verdict_locked(hb, ipm_now_ms());
	pthread_mutex_unlock(&hb->lock);
	return st;
}

bool heartbeat_may_connect(struct heartbeat *hb)
{
	bool ok;

	pthread_mutex_lock(&hb->lock);
	ok = gate_locked(hb, ipm_now_ms());
	pthread_mutex_unlock(&hb->lock);
	return ok;
}

enum ipm_link_state heartbeat_udp_state(struct heartbeat *hb)
{
	enum ipm_link_state st;

	pthread_mutex_lock(&hb->lock);
	st = prob_tick(&hb->prob, ipm_now_ms());
	pthread_mutex_unlock(&hb->lock);
	return st;
}

enum ipm_link_state heartbeat_storage_state(struct heartbeat *hb)
{
	enum ipm_link_state st;

	pthread_mutex_lock(&hb->lock);
	st = storage_locked(hb, ipm_now_ms());
	pthread_mutex_unlock(&hb->lock);
	return st;
}

int64_t heartbeat_storage_age_ms(struct heartbeat *hb)
{
	int64_t age;

	pthread_mutex_lock(&hb->lock);
	age = hb->storage_on ? prob_age_ms(&hb->sprob, ipm_now_ms()) : -1;
	pthread_mutex_unlock(&hb->lock);
	return age;
}

enum ipm_hb_method heartbeat_method(struct heartbeat *hb)
{
	enum ipm_hb_method m;

	pthread_mutex_lock(&hb->lock);
	m = hb->method;
	pthread_mutex_unlock(&hb->lock);
	return m;
}

void heartbeat_set_method(struct heartbeat *hb, enum ipm_hb_method m)
{
	pthread_mutex_lock(&hb->lock);
	if (m != hb->method)
		qb_log(LOG_NOTICE, "peer %s: heartbeat method %s -> %s", hb->peer,
		       ipm_method_name(hb->method), ipm_method_name(m));
	hb->method = m;
	pthread_mutex_unlock(&hb->lock);
}

int heartbeat_set_times(struct heartbeat *hb, double interval, double timeout,
			double probation, ipm_error *err)
{
	if (!(interval > 0) || !(timeout > interval) || !(probation >= 0))
		return ipm_fail(err, -EINVAL,
				"heartbeat: need interval > 0, timeout > interval, probation >= 0 (got %g, %g, %g)",
				interval, timeout, probation);
	pthread_mutex_lock(&hb->lock);
	__atomic_store_n(&hb->interval_ms, (int64_t)(interval * 1000.0 + 0.5), __ATOMIC_RELAXED);
	__atomic_store_n(&hb->timeout_ms, (int64_t)(timeout * 1000.0 + 0.5), __ATOMIC_RELAXED);
	prob_set_times(&hb->prob, interval, timeout, probation);
	prob_set_times(&hb->sprob, interval, timeout, probation);
	pthread_mutex_unlock(&hb->lock);
	qb_log(LOG_NOTICE, "peer %s: heartbeat interval %g s, timeout %g s, probation %g s",
	       hb->peer, interval, timeout, probation);
	return 0;
}

void heartbeat_set_notify(struct heartbeat *hb, void (*fn)(void *), void *opaque)
{
	pthread_mutex_lock(&hb->lock);
	hb->prob.notify = hb->sprob.notify = fn;
	hb->prob.notify_opaque = hb->sprob.notify_opaque = opaque;
	pthread_mutex_unlock(&hb->lock);
}

void heartbeat_storage_enable(struct heartbeat *hb, bool on)
{
	pthread_mutex_lock(&hb->lock);
	if (on != hb->storage_on) {
		/* a fresh table: an old install's records prove nothing now */
		prob_init(&hb->sprob, hb->peer, hb->interval_ms / 1000.0, hb->timeout_ms / 1000.0,
			  hb->prob.probation_ms / 1000.0);
		snprintf(hb->sprob.path, sizeof(hb->sprob.path), "storage heartbeat");
		hb->sprob.notify = hb->prob.notify;
		hb->sprob.notify_opaque = hb->prob.notify_opaque;
		hb->failure = FAIL_NONE;
	}
	hb->storage_on = on;
	pthread_mutex_unlock(&hb->lock);
}

void heartbeat_storage_peer_retired(struct heartbeat *hb)
{
	pthread_mutex_lock(&hb->lock);
	qb_log(LOG_NOTICE, "peer %s: uninstalled its heartbeat volume", hb->peer);
	prob_init(&hb->sprob, hb->peer, hb->interval_ms / 1000.0, hb->timeout_ms / 1000.0,
		  hb->prob.probation_ms / 1000.0);
	snprintf(hb->sprob.path, sizeof(hb->sprob.path), "storage heartbeat");
	hb->sprob.notify = hb->prob.notify;
	hb->sprob.notify_opaque = hb->prob.notify_opaque;
	hb->failure = FAIL_NONE;
	pthread_mutex_unlock(&hb->lock);
}

void heartbeat_storage_record(struct heartbeat *hb, uint64_t boot_id)
{
	struct connection_array *ca[HB_MAX_ARRAYS];
	int64_t now = ipm_now_ms(), from = REFRESH_NONE;
	unsigned n;

	pthread_mutex_lock(&hb->lock);
	pthread_rwlock_rdlock(&hb->ca_lock);
	if (hb->storage_on)
		prob_datagram(&hb->sprob, now, boot_id);
	/* under storage/both a peer proven alive this way keeps the
	 * connections alive, as a UDP datagram would */
	if (hb->storage_on && hb->method != IPM_HB_UDP)
		from = refresh_from(gate_locked(hb, now), &hb->sprob);
	n = hb->n_ca;
	memcpy(ca, hb->ca, n * sizeof(*ca));
	pthread_mutex_unlock(&hb->lock);
	refresh_arrays(ca, n, from);
	pthread_rwlock_unlock(&hb->ca_lock);
}

int64_t heartbeat_age_ms(struct heartbeat *hb)
{
	int64_t age;

	pthread_mutex_lock(&hb->lock);
	age = prob_age_ms(&hb->prob, ipm_now_ms());
	pthread_mutex_unlock(&hb->lock);
	return age;
}

int64_t heartbeat_probation_left_ms(struct heartbeat *hb)
{
	int64_t left, now = ipm_now_ms();

	pthread_mutex_lock(&hb->lock);
	prob_tick(&hb->prob, now);
	left = prob_left_ms(&hb->prob, now);
	pthread_mutex_unlock(&hb->lock);
	return left;
}

uint64_t heartbeat_dropped(struct heartbeat *hb)
{
	uint64_t d;

	pthread_mutex_lock(&hb->lock);
	d = hb->dropped;
	pthread_mutex_unlock(&hb->lock);
	return d;
}
