/* events.c - the change stream of ipmirrord (see events.h, doc/events.md). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <qb/qblog.h>

#include "clock.h"
#include "events.h"

#define SUB_QUEUE_MAX (1u << 20) /* a subscriber this far behind is dropped */
#define SCORE_PRIMARY 110        /* as ocf/ipmirror */
#define SCORE_CONNECTED 100
#define SCORE_ALONE 10

/* ---- items ---------------------------------------------------------------- */

static struct ev_item *ev_add(struct ev_list *l, const char *action, const char *object)
{
	struct ev_item *v;

	if (l->err)
		return NULL;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;

		v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			l->err = -ENOMEM;
			return NULL;
		}
		l->v = v;
		l->cap = cap;
	}
	v = &l->v[l->n++];
	memset(v, 0, sizeof(*v));
	v->action = action;
	v->object = object;
	return v;
}

static void kv_str(struct ev_item *it, const char *key, const char *val)
{
	if (!it || it->n >= EV_KV_MAX)
		return;
	it->kv[it->n].key = key;
	snprintf(it->kv[it->n].val, sizeof(it->kv[it->n].val), "%s", val);
	it->kv[it->n++].num = false;
}

static void kv_num(struct ev_item *it, const char *key, int64_t val)
{
	if (!it || it->n >= EV_KV_MAX)
		return;
	it->kv[it->n].key = key;
	snprintf(it->kv[it->n].val, sizeof(it->kv[it->n].val), "%" PRId64, val);
	it->kv[it->n++].num = true;
}

static void set_handler(struct ev_item *it, const char *handler, const char *lun,
			const char *state)
{
	if (!it)
		return;
	it->handler = handler;
	snprintf(it->lun, sizeof(it->lun), "%s", lun);
	snprintf(it->state, sizeof(it->state), "%s", state);
}

void ev_list_free(struct ev_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void ev_state_free(struct ev_state *s)
{
	free(s->m);
	memset(s, 0, sizeof(*s));
}

static struct ev_memory *memory(struct ev_state *s, const char *lun)
{
	struct ev_memory *m;
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->m[i].lun, lun) == 0)
			return &s->m[i];
	m = realloc(s->m, (s->n + 1) * sizeof(*m));
	if (!m)
		return NULL;
	s->m = m;
	m = &s->m[s->n++];
	memset(m, 0, sizeof(*m));
	snprintf(m->lun, sizeof(m->lun), "%s", lun);
	m->fenced = m->score = -2;
	return m;
}

/* ---- the comparison ---------------------------------------------------------- */

int events_promotion_score(const ipm_status *st, const ipm_lun_status *l, bool consistent)
{
	bool alive = st->peer_heartbeat == IPM_LINK_UP || ipm_status_storage(st) == IPM_LINK_UP;
	int score = -1;

	if (l->state == IPM_STATE_INCONSISTENT)
		return -1;
	if (l->role == IPM_ROLE_PRIMARY)
		return SCORE_PRIMARY;
	if (l->state == IPM_STATE_SPLITBRAIN || l->state == IPM_STATE_RESYNCING)
		return -1;
	if (l->state == IPM_STATE_UPTODATE || (consistent && l->mirrored))
		score = SCORE_ALONE;
	if (score == SCORE_ALONE && alive)
		score = SCORE_CONNECTED;
	return score;
}

static void diff_peer(const ipm_status *old, const ipm_status *cur, struct ev_state *mem,
		      struct ev_list *out)
{
	const char *action = old ? "change" : "exists";
	enum ipm_link_state sto = ipm_status_storage(cur);
	struct ev_item *it;

	if (!cur->peer[0])
		return;
	if (!old || old->peer_heartbeat != cur->peer_heartbeat) {
		it = ev_add(out, action, "peer");
		kv_str(it, "name", cur->peer);
		kv_str(it, "heartbeat", ipm_link_name(cur->peer_heartbeat));
		if (old && cur->peer_heartbeat == IPM_LINK_DOWN && mem->peer_seen)
			set_handler(it, "peer-lost", "", ipm_link_name(cur->peer_heartbeat));
	}
	if (cur->peer_heartbeat == IPM_LINK_UP)
		mem->peer_seen = true;
	if (!old || old->udp_state != cur->udp_state) {
		it = ev_add(out, action, "path");
		kv_str(it, "peer", cur->peer);
		kv_str(it, "path", "udp");
		kv_str(it, "state", ipm_link_name(cur->udp_state));
	}
	if (!old || ipm_status_storage(old) != sto) {
		it = ev_add(out, action, "path");
		kv_str(it, "peer", cur->peer);
		kv_str(it, "path", "storage");
		kv_str(it, "state", ipm_link_name(sto));
	}
}

static const ipm_conn_status *find_conn(const ipm_status *st, int index, bool outgoing)
{
	size_t i;

	for (i = 0; st && i < st->n_conns; i++)
		if (st->conns[i].index == index && st->conns[i].outgoing == outgoing)
			return &st->conns[i];
	return NULL;
}

static void conn_item(const ipm_status *st, const char *action, const ipm_conn_status *c,
		      enum ipm_link_state status, struct ev_list *out)
{
	struct ev_item *it = ev_add(out, action, "connection");

	kv_str(it, "peer", st->peer);
	kv_num(it, "index", c->index);
	kv_str(it, "direction", c->outgoing ? "outgoing" : "incoming");
	kv_str(it, "status", ipm_link_name(status));
}

/* Connections come and go with the engine (a role change): one that
 * appears counts as down before, one that goes as down after. */
static void diff_conns(const ipm_status *old, const ipm_status *cur, struct ev_list *out)
{
	const ipm_conn_status *o, *c;
	size_t i;

	for (i = 0; i < cur->n_conns; i++) {
		c = &cur->conns[i];
		o = find_conn(old, c->index, c->outgoing);
		if (!old)
			conn_item(cur, "exists", c, c->status, out);
		else if (o ? o->status != c->status : c->status == IPM_LINK_UP)
			conn_item(cur, "change", c, c->status, out);
	}
	for (i = 0; old && i < old->n_conns; i++) {
		o = &old->conns[i];
		if (!find_conn(cur, o->index, o->outgoing) && o->status == IPM_LINK_UP)
			conn_item(cur, "change", o, IPM_LINK_DOWN, out);
	}
}

/* The handler event of a LUN's change, NULL none. */
static const char *lun_handler(const ipm_lun_status *o, const ipm_lun_status *l)
{
	if (o->role != l->role)
		return "role-change";
	if (o->state == l->state)
		return NULL;
	if (l->state == IPM_STATE_SPLITBRAIN)
		return "split-brain";
	if (l->state == IPM_STATE_RESYNCING)
		return "resync-start";
	if (l->state == IPM_STATE_UPTODATE &&
	    (o->state == IPM_STATE_RESYNCING || o->state == IPM_STATE_INCONSISTENT))
		return "resync-done";
	return NULL;
}

static void diff_lun_state(const ipm_lun_status *o, const ipm_lun_status *l, bool exists,
			   struct ev_list *out)
{
	struct ev_item *it;

	if (!exists && o && o->role == l->role && o->state == l->state)
		return;
	it = ev_add(out, exists ? "exists" : "change", "lun");
	kv_str(it, "name", l->name);
	kv_str(it, "role", ipm_role_name(l->role));
	kv_str(it, "state", ipm_state_name(l->state));
	if (!exists && o && o->role != l->role)
		kv_str(it, "old-role", ipm_role_name(o->role));
	if (!exists && o && o->state != l->state)
		kv_str(it, "old-state", ipm_state_name(o->state));
	if (!exists && o)
		set_handler(it, lun_handler(o, l), l->name, ipm_state_name(l->state));
}

static bool progressing(const ipm_lun_status *l)
{
	return l->resync_total_bytes && l->resync_done_bytes < l->resync_total_bytes &&
	       (l->state == IPM_STATE_RESYNCING || l->state == IPM_STATE_INCONSISTENT);
}

/* A progress line of KIND (at most one per EVENTS_PROGRESS_MS, and only when
 * done moved; always for --now), or NULL; *at_ms and *last_done remember. */
static struct ev_item *progress_item(struct ev_list *out, bool exists, const char *name,
				     const char *kind, uint64_t done, uint64_t total,
				     int64_t now_ms, int64_t *at_ms, uint64_t *last_done)
{
	struct ev_item *it;
	char pct[16];

	if (!exists && (done == *last_done || now_ms - *at_ms < EVENTS_PROGRESS_MS))
		return NULL;
	*at_ms = now_ms;
	*last_done = done;
	it = ev_add(out, exists ? "exists" : "change", "progress");
	kv_str(it, "name", name);
	kv_str(it, "kind", kind);
	kv_num(it, "done", (int64_t)done);
	kv_num(it, "total", (int64_t)total);
	snprintf(pct, sizeof(pct), "%.1f", 100.0 * (double)done / (double)total);
	kv_str(it, "percent", pct);
	return it;
}

static void diff_progress(const ipm_lun_status *l, bool exists, struct ev_memory *m,
			  int64_t now_ms, struct ev_list *out)
{
	struct ev_item *it;

	if (!progressing(l) || !m)
		return;
	it = progress_item(out, exists, l->name,
			   l->peer_inconsistent || l->state == IPM_STATE_INCONSISTENT ?
				   "initial-sync" : "resync",
			   l->resync_done_bytes, l->resync_total_bytes, now_ms,
			   &m->progress_at_ms, &m->progress_done);
	if (!it)
		return;
	kv_num(it, "rate", (int64_t)l->resync_rate);
	kv_num(it, "eta", l->resync_eta_s);
}

/* The online verify (primary), as resync progress: while it runs. */
static void diff_verify(const ipm_lun_status *l, bool exists, struct ev_memory *m,
			int64_t now_ms, struct ev_list *out)
{
	struct ev_item *it;

	if (!l->verify_running || !l->verify_total_bytes || !m)
		return;
	it = progress_item(out, exists, l->name, "verify", l->verify_done_bytes,
			   l->verify_total_bytes, now_ms, &m->verify_at_ms, &m->verify_done);
	if (it)
		kv_num(it, "out_of_sync", (int64_t)l->verify_out_of_sync_bytes);
}

/* The backing store failed since the last snapshot: one line (and one
 * local-io-error handler run) per snapshot, with the count so far. */
static void diff_io_errors(const ipm_lun_status *o, const ipm_lun_status *l, bool exists,
			   struct ev_list *out)
{
	struct ev_item *it;

	if (!l->local_io_errors || (!exists && (!o || l->local_io_errors <= o->local_io_errors)))
		return;
	it = ev_add(out, exists ? "exists" : "change", "io-error");
	kv_str(it, "name", l->name);
	kv_num(it, "errors", (int64_t)l->local_io_errors);
	if (!exists)
		set_handler(it, "local-io-error", l->name, ipm_state_name(l->state));
}

/* A refusal newer than the last one shown (its age tells). */
static void diff_refusal(const ipm_lun_status *o, const ipm_lun_status *l, bool exists,
			 struct ev_list *out)
{
	struct ev_item *it;

	if (!l->refusal[0])
		return;
	if (!exists && o && o->refusal_age_ms >= 0 && strcmp(o->refusal, l->refusal) == 0 &&
	    l->refusal_age_ms >= o->refusal_age_ms)
		return;
	it = ev_add(out, exists ? "exists" : "change", "refusal");
	kv_str(it, "name", l->name);
	kv_str(it, "reason", l->refusal);
	kv_num(it, "age_ms", l->refusal_age_ms);
}

static void diff_cluster(const ipm_status *cur, const ipm_lun_status *l, bool exists,
			 const struct events_hooks *h, struct ev_memory *m, struct ev_list *out)
{
	bool consistent = h && h->consistent ? h->consistent(h->opaque, l->name) : false;
	int fenced = h && h->fenced ? h->fenced(h->opaque, l->name) : -1;
	int score = events_promotion_score(cur, l, consistent);
	struct ev_item *it;

	if (!m)
		return;
	if (fenced >= 0 && (exists || fenced != m->fenced)) {
		it = ev_add(out, exists ? "exists" : "change", "fencing");
		kv_str(it, "name", l->name);
		kv_str(it, "fenced", fenced ? "yes" : "no");
		if (!exists && fenced && m->fenced != -2)
			set_handler(it, "fenced", l->name, ipm_state_name(l->state));
		m->fenced = fenced;
	}
	if (exists || score != m->score) {
		it = ev_add(out, exists ? "exists" : "change", "promotion");
		kv_str(it, "name", l->name);
		kv_num(it, "score", score);
		m->score = score;
	}
}

void events_diff(const ipm_status *old, const ipm_status *cur, const struct events_hooks *h,
		 struct ev_state *mem, int64_t now_ms, struct ev_list *out)
{
	const ipm_lun_status *o, *l;
	size_t i;

	diff_peer(old, cur, mem, out);
	diff_conns(old, cur, out);
	for (i = 0; i < cur->n_luns; i++) {
		l = &cur->luns[i];
		o = old ? status_find_lun(old, l->name) : NULL;
		diff_lun_state(o, l, !old, out);
		diff_progress(l, !old, memory(mem, l->name), now_ms, out);
		diff_verify(l, !old, memory(mem, l->name), now_ms, out);
		diff_refusal(o, l, !old, out);
		diff_io_errors(o, l, !old, out);
		diff_cluster(cur, l, !old, h, memory(mem, l->name), out);
	}
}

/* ---- lines ------------------------------------------------------------------ */

static void iso_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	gmtime_r(&t, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

/* a value with a blank, a quote or a backslash goes in double quotes */
static void text_value(const char *v, struct strbuf *sb)
{
	const char *p;

	if (*v && !strpbrk(v, " \t\"\\")) {
		sb_printf(sb, "%s", v);
		return;
	}
	sb_printf(sb, "\"");
	for (p = v; *p; p++)
		sb_printf(sb, (*p == '"' || *p == '\\') ? "\\%c" : "%c", *p);
	sb_printf(sb, "\"");
}

void ev_render(const struct ev_item *it, int64_t time_ms, bool json, struct strbuf *sb)
{
	char ts[64];
	unsigned i;

	iso_time(time_ms, ts, sizeof(ts));
	if (!json) {
		sb_printf(sb, "%s %s %s", ts, it->action, it->object);
		for (i = 0; i < it->n; i++) {
			sb_printf(sb, " %s:", it->kv[i].key);
			text_value(it->kv[i].val, sb);
		}
		sb_printf(sb, "\n");
		return;
	}
	sb_printf(sb, "{\"time\":\"%s\",\"action\":\"%s\",\"object\":\"%s\"", ts, it->action,
		  it->object);
	for (i = 0; i < it->n; i++) {
		sb_printf(sb, ",");
		sb_json_string(sb, it->kv[i].key);
		sb_printf(sb, ":");
		if (it->kv[i].num)
			sb_printf(sb, "%s", it->kv[i].val);
		else
			sb_json_string(sb, it->kv[i].val);
	}
	sb_printf(sb, "}\n");
}

/* ---- the thread -------------------------------------------------------------- */

struct ev_sub {
	void *conn;
	bool json;
	struct strbuf q;          /* lines not yet sent */
	bool overflow;            /* q hit SUB_QUEUE_MAX: drop the subscriber */
	struct ev_sub *next;
};

/* Locks: engine_lock (held while a snapshot reads the engine) is taken
 * before, never while holding, lock; lock is a leaf otherwise (the engine's
 * notify hook takes it under engine locks, so nothing under it calls the
 * engine). */
struct events {
	pthread_mutex_t engine_lock;
	ipm_engine *engine;
	pthread_mutex_t lock;     /* everything below but the thread's own */
	pthread_cond_t cond;
	bool stop, wake, running;
	bool swapped;             /* a new engine since the last snapshot */
	pthread_t thread;
	ipm_status *last;         /* the last snapshot compared */
	struct ev_sub *subs;
	events_handler_fn hfn;
	void *hopaque;
	void (*waker)(void *);
	void *wopaque;
	/* events thread only */
	struct events_hooks hooks;
	struct ev_state mem;
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void queue_items_locked(struct events *ev, const struct ev_list *l, int64_t t)
{
	struct ev_sub *s;
	size_t i;

	for (s = ev->subs; s; s = s->next) {
		for (i = 0; i < l->n && !s->overflow; i++)
			ev_render(&l->v[i], t, s->json, &s->q);
		if (s->q.len > SUB_QUEUE_MAX || s->q.err)
			s->overflow = true;
	}
}

static void fire_handlers(struct events *ev, const struct ev_list *l, const ipm_status *st)
{
	events_handler_fn fn;
	void *opaque;
	size_t i;

	pthread_mutex_lock(&ev->lock);
	fn = ev->hfn;
	opaque = ev->hopaque;
	pthread_mutex_unlock(&ev->lock);
	for (i = 0; fn && i < l->n; i++)
		if (l->v[i].handler)
			fn(opaque, &l->v[i], st);
}

/* One snapshot, compared with the last. */
static void events_round(struct events *ev)
{
	struct ev_list l = { 0 };
	ipm_status *st = NULL, *old;
	void (*waker)(void *);
	void *wopaque;
	int rc = 0;

	pthread_mutex_lock(&ev->engine_lock);
	if (ev->engine)
		rc = ipm_engine_status(ev->engine, &st);
	pthread_mutex_unlock(&ev->engine_lock);
	if (rc < 0 || !st)
		return;
	pthread_mutex_lock(&ev->lock);
	old = ev->last;
	if (ev->swapped)
		ev->mem.peer_seen = false;
	ev->swapped = false;
	pthread_mutex_unlock(&ev->lock);
	/* only this thread replaces last: old stays valid meanwhile */
	events_diff(old, st, &ev->hooks, &ev->mem, ipm_now_ms(), &l);
	if (l.err)
		qb_log(LOG_WARNING, "events: out of memory; changes lost");
	pthread_mutex_lock(&ev->lock);
	if (old)
		queue_items_locked(ev, &l, wall_ms());
	ev->last = st;
	waker = ev->waker;
	wopaque = ev->wopaque;
	pthread_mutex_unlock(&ev->lock);
	if (old && l.n && waker)
		waker(wopaque);
	if (old)
		fire_handlers(ev, &l, st);
	if (old && l.n && ev->hooks.changed)
		ev->hooks.changed(ev->hooks.opaque);
	ipm_status_free(old);
	ev_list_free(&l);
}

static void *events_thread(void *arg)
{
	struct events *ev = arg;
	struct timespec ts;

	pthread_mutex_lock(&ev->lock);
	while (!ev->stop) {
		ev->wake = false;
		pthread_mutex_unlock(&ev->lock);
		events_round(ev);
		pthread_mutex_lock(&ev->lock);
		ts = ipm_mono_deadline(EVENTS_TICK_MS);
		while (!ev->stop && !ev->wake)
			if (pthread_cond_timedwait(&ev->cond, &ev->lock, &ts) == ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&ev->lock);
	return NULL;
}

void events_notify(void *opaque)
{
	struct events *ev = opaque;

	pthread_mutex_lock(&ev->lock);
	ev->wake = true;
	pthread_cond_signal(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
}

void events_set_engine(struct events *ev, ipm_engine *e)
{
	pthread_mutex_lock(&ev->engine_lock);
	if (ev->engine && ev->engine != e)
		ipm_engine_set_notify(ev->engine, NULL, NULL);
	ev->engine = e;
	if (e)
		ipm_engine_set_notify(e, events_notify, ev);
	pthread_mutex_lock(&ev->lock);
	ev->swapped = true;
	pthread_mutex_unlock(&ev->lock);
	pthread_mutex_unlock(&ev->engine_lock);
	if (e)
		events_notify(ev);
}

int events_start(ipm_engine *e, const struct events_hooks *h, struct events **out,
		 ipm_error *err)
{
	struct events *ev = calloc(1, sizeof(*ev));
	int rc;

	if (!ev)
		return ipm_fail(err, -ENOMEM, "events: out of memory");
	pthread_mutex_init(&ev->engine_lock, NULL);
	pthread_mutex_init(&ev->lock, NULL);
	ipm_cond_init_mono(&ev->cond);
	if (h)
		ev->hooks = *h;
	rc = -pthread_create(&ev->thread, NULL, events_thread, ev);
	if (rc < 0) {
		events_stop(ev);
		return ipm_fail(err, rc, "events: cannot start thread: %s", strerror(-rc));
	}
	ev->running = true;
	events_set_engine(ev, e);
	*out = ev;
	return 0;
}

void events_stop(struct events *ev)
{
	struct ev_sub *s;

	if (!ev)
		return;
	events_set_engine(ev, NULL);
	if (ev->running) {
		pthread_mutex_lock(&ev->lock);
		ev->stop = true;
		pthread_cond_signal(&ev->cond);
		pthread_mutex_unlock(&ev->lock);
		pthread_join(ev->thread, NULL);
	}
	while ((s = ev->subs)) {
		ev->subs = s->next;
		sb_free(&s->q);
		free(s);
	}
	ipm_status_free(ev->last);
	ev_state_free(&ev->mem);
	pthread_cond_destroy(&ev->cond);
	pthread_mutex_destroy(&ev->lock);
	pthread_mutex_destroy(&ev->engine_lock);
	free(ev);
}

void events_set_handler_sink(struct events *ev, events_handler_fn fn, void *opaque)
{
	pthread_mutex_lock(&ev->lock);
	ev->hfn = fn;
	ev->hopaque = opaque;
	pthread_mutex_unlock(&ev->lock);
}

void events_set_waker(struct events *ev, void (*fn)(void *), void *opaque)
{
	pthread_mutex_lock(&ev->lock);
	ev->waker = fn;
	ev->wopaque = opaque;
	pthread_mutex_unlock(&ev->lock);
}

/* The current state as "exists" lines, then "exists -". */
static void render_now_locked(struct events *ev, struct ev_sub *s)
{
	struct ev_state mem = { 0 };
	struct ev_list l = { 0 };
	int64_t t = wall_ms();
	size_t i;

	events_diff(NULL, ev->last, &ev->hooks, &mem, ipm_now_ms(), &l);
	for (i = 0; i < l.n; i++)
		ev_render(&l.v[i], t, s->json, &s->q);
	if (s->json)
		sb_printf(&s->q, "{\"action\":\"exists\",\"object\":\"-\"}\n");
	else
		sb_printf(&s->q, "exists -\n");
	ev_list_free(&l);
	ev_state_free(&mem);
}

struct ev_sub *events_subscribe(struct events *ev, void *conn, bool json, bool now, int *rc)
{
	struct ev_sub *s = calloc(1, sizeof(*s));

	*rc = -ENOMEM;
	if (!s)
		return NULL;
	s->conn = conn;
	s->json = json;
	pthread_mutex_lock(&ev->lock);
	if (!ev->last) {
		pthread_mutex_unlock(&ev->lock);
		free(s);
		*rc = -EAGAIN;
		return NULL;
	}
	/* the hooks are read by the events thread too: they never change */
	if (now)
		render_now_locked(ev, s);
	s->next = ev->subs;
	ev->subs = s;
	pthread_mutex_unlock(&ev->lock);
	*rc = 0;
	return s;
}

void events_unsubscribe(struct events *ev, struct ev_sub *sub)
{
	struct ev_sub **p;

	pthread_mutex_lock(&ev->lock);
	for (p = &ev->subs; *p; p = &(*p)->next) {
		if (*p == sub) {
			*p = sub->next;
			break;
		}
	}
	pthread_mutex_unlock(&ev->lock);
	sb_free(&sub->q);
	free(sub);
}

/* Take sub's queue (and whether it overflowed) under the lock. */
static struct strbuf take_queue(struct events *ev, struct ev_sub *s, bool *overflow)
{
	struct strbuf q = STRBUF_INIT;

	pthread_mutex_lock(&ev->lock);
	q = s->q;
	s->q = (struct strbuf)STRBUF_INIT;
	*overflow = s->overflow;
	pthread_mutex_unlock(&ev->lock);
	return q;
}

/* Subscribers are added and removed by the IPC thread only, which is the
 * caller: the list may be walked without the lock between takes. */
void events_drain(struct events *ev, int (*send)(void *conn, const char *buf, size_t len),
		  void (*close_fn)(void *conn))
{
	struct ev_sub *s, *next;
	struct strbuf q;
	bool overflow;
	char *line, *nl;

	for (s = ev->subs; s; s = next) {
		next = s->next;
		q = take_queue(ev, s, &overflow);
		for (line = q.buf; !overflow && line && *line; line = nl + 1) {
			nl = strchr(line, '\n');
			if (!nl)
				break;
			if (send(s->conn, line, (size_t)(nl - line + 1)) < 0)
				overflow = true;
		}
		sb_free(&q);
		if (overflow) {
			qb_log(LOG_WARNING, "events: a subscriber does not keep up; disconnecting it");
			close_fn(s->conn);
		}
	}
}
