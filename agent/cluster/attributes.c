/* attributes.c - the node-attribute publisher (see attributes.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "clock.h"
#include "attributes.h"
#include "ipm_spawn.h"

#define POLL_MS 500
/* a non-zero journal size waits this long before it is published (the
 * latest one then): every node-attribute change in the CIB aborts
 * Pacemaker's transition, and the size of a journal that fills changed at
 * each poll, from the promote of a failover on */
#define JOURNAL_MIN_MS 5000
#define NOCLUSTER_RETRY_MS 10000
#define ATTRD_NOT_CONNECTED 102 /* attrd_updater: no cluster running */

struct cached {
	struct ipm_attr attr;
	bool valid;         /* published with this value */
	int64_t pending_ms; /* a journal size: since when another one waits (0: none) */
	int64_t at_ms;      /* when it was published */
};

struct lun_memory {
	char name[IPM_NAME_MAX];
	bool consistent;
};

struct ipm_attributes {
	ipm_attr_publish_fn fn;
	void *opaque;
	/* engine_lock: held while a poll reads the engine */
	pthread_mutex_t engine_lock;
	ipm_engine *engine;
	/* lock: the thread's control and the LUN memory */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool running, stop, wake;
	struct lun_memory *mem;
	size_t n_mem;
	ipm_status_observer_fn observer; /* also sees every snapshot (fencing) */
	void *observer_opaque;
	/* poller only */
	struct cached *cache;
	size_t n_cache;
	int journal_min_ms;
	int64_t retry_at_ms; /* no cluster: quiet until then */
	bool failing;
	bool nocluster_logged;
};

/* ---- computing the attributes ------------------------------------------ */

static void set_attr(struct ipm_attr *a, const char *lun, const char *suffix,
		     const char *value)
{
	if (lun)
		snprintf(a->name, sizeof(a->name), "ipmirror-%s-%s", lun, suffix);
	else
		snprintf(a->name, sizeof(a->name), "ipmirror-%s", suffix);
	snprintf(a->value, sizeof(a->value), "%s", value);
}

/* "none", or "42% 480MiB/s eta 12s" while this node sends a resync. */
static void sync_progress(const ipm_lun_status *l, char *buf, size_t len)
{
	uint64_t pct;

	if (l->state != IPM_STATE_RESYNCING || !l->resync_total_bytes) {
		snprintf(buf, len, "none");
		return;
	}
	/* 100 only once done (a LUN's bytes times 100 fit in 64 bits) */
	pct = l->resync_done_bytes >= l->resync_total_bytes ? 100 :
	      l->resync_done_bytes * 100 / l->resync_total_bytes;
	/* fits IPM_ATTR_VALUE_MAX: an ETA past 10^9 s is no ETA */
	if (l->resync_eta_s >= 0 && l->resync_eta_s < 1000000000)
		snprintf(buf, len, "%" PRIu64 "%% %" PRIu64 "MiB/s eta %llds", pct,
			 (l->resync_rate >> 20) % 1000000000, (long long)l->resync_eta_s);
	else
		snprintf(buf, len, "%" PRIu64 "%% %" PRIu64 "MiB/s eta ?", pct,
			 (l->resync_rate >> 20) % 1000000000);
}

int ipm_attributes_compute(const ipm_status *st, struct ipm_attr **out, size_t *n)
{
	size_t count = 2 + 3 * st->n_luns, i;
	struct ipm_attr *v = calloc(count, sizeof(*v));
	char num[32], progress[IPM_ATTR_VALUE_MAX];

	if (!v)
		return -ENOMEM;
	set_attr(&v[0], NULL, "peer", ipm_link_name(st->peer[0] ? st->peer_heartbeat
							       : IPM_LINK_OFF));
	/* up|down|off; probation counts as down: not yet proof of life */
	set_attr(&v[1], NULL, "peer-storage",
		 ipm_link_name(ipm_status_storage(st) == IPM_LINK_PROBATION ? IPM_LINK_DOWN
									 : ipm_status_storage(st)));
	for (i = 0; i < st->n_luns; i++) {
		const ipm_lun_status *l = &st->luns[i];

		set_attr(&v[2 + 3 * i], l->name, "state", ipm_state_name(l->state));
		snprintf(num, sizeof(num), "%" PRIu64, l->journal_bytes);
		set_attr(&v[3 + 3 * i], l->name, "journal", num);
		sync_progress(l, progress, sizeof(progress));
		set_attr(&v[4 + 3 * i], l->name, "sync", progress);
		v[4 + 3 * i].progress = true;
	}
	*out = v;
	*n = count;
	return 0;
}

/* ---- LUN memory: was this node's copy consistent? ---------------------- */

static struct lun_memory *memory_find(struct ipm_attributes *a, const char *lun, bool add)
{
	struct lun_memory *m;
	size_t i;

	for (i = 0; i < a->n_mem; i++)
		if (strcmp(a->mem[i].name, lun) == 0)
			return &a->mem[i];
	if (!add)
		return NULL;
	m = realloc(a->mem, (a->n_mem + 1) * sizeof(*m));
	if (!m)
		return NULL;
	a->mem = m;
	m = &a->mem[a->n_mem++];
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", lun);
	return m;
}

/* The primary holds the newest data unless it is damaged itself. A mirror
 * is consistent while up to date, not while being resynced; "outdated"
 * only says the primary is gone, so the last verdict stands: the engine
 * keeps it in the LUN's generation file, so it survives a restart. */
static void track(struct ipm_attributes *a, const ipm_lun_status *l)
{
	struct lun_memory *m;

	pthread_mutex_lock(&a->lock);
	m = memory_find(a, l->name, true);
	if (!m)
		goto out;
	if (l->role == IPM_ROLE_PRIMARY) {
		m->consistent = l->state != IPM_STATE_INCONSISTENT &&
				l->state != IPM_STATE_SPLITBRAIN;
	} else if (!l->mirrored) {
		m->consistent = false;
	} else if (l->state == IPM_STATE_UPTODATE) {
		m->consistent = true;
	} else if (l->state != IPM_STATE_OUTDATED) {
		m->consistent = false;
	} else {
		m->consistent = l->consistent;
	}
out:
	pthread_mutex_unlock(&a->lock);
}

bool ipm_attributes_consistent(struct ipm_attributes *a, const char *lun)
{
	struct lun_memory *m;
	bool ok;

	pthread_mutex_lock(&a->lock);
	m = memory_find(a, lun, false);
	ok = m && m->consistent;
	pthread_mutex_unlock(&a->lock);
	return ok;
}

void ipm_attributes_mark_consistent(struct ipm_attributes *a, const char *lun)
{
	struct lun_memory *m;

	pthread_mutex_lock(&a->lock);
	m = memory_find(a, lun, true);
	if (m)
		m->consistent = true;
	pthread_mutex_unlock(&a->lock);
}

/* ---- publishing only what changed --------------------------------------- */

static struct cached *cache_find(struct ipm_attributes *a, const char *name)
{
	struct cached *c;
	size_t i;

	for (i = 0; i < a->n_cache; i++)
		if (strcmp(a->cache[i].attr.name, name) == 0)
			return &a->cache[i];
	c = realloc(a->cache, (a->n_cache + 1) * sizeof(*c));
	if (!c)
		return NULL;
	a->cache = c;
	c = &a->cache[a->n_cache++];
	memset(c, 0, sizeof(*c));
	snprintf(c->attr.name, sizeof(c->attr.name), "%s", name);
	return c;
}

static void publish_failed(struct ipm_attributes *a, const struct ipm_attr *v, int rc)
{
	if (rc == -ENOTCONN) {
		/* no cluster: normal outside Pacemaker; say it once */
		a->retry_at_ms = ipm_now_ms() + NOCLUSTER_RETRY_MS;
		if (!a->nocluster_logged)
			qb_log(LOG_INFO, "node attributes: no cluster running; retrying every %d s",
			       NOCLUSTER_RETRY_MS / 1000);
		a->nocluster_logged = true;
		return;
	}
	if (!a->failing)
		qb_log(LOG_WARNING, "node attributes: cannot publish %s=%s: %s", v->name,
		       v->value, strerror(-rc));
	a->failing = true;
}

static void publish_ok(struct ipm_attributes *a)
{
	if (a->failing || a->nocluster_logged)
		qb_log(LOG_NOTICE, "node attributes: publishing");
	a->failing = false;
	a->nocluster_logged = false;
}

/* A journal size other than 0 is published once a change has waited
 * JOURNAL_MIN_MS (so at most that often); an empty journal at once. */
static bool journal_held(const struct ipm_attributes *a, struct cached *c,
			 const char *value, int64_t now)
{
	size_t len = strlen(c->attr.name);

	if (len <= 8 || strcmp(c->attr.name + len - 8, "-journal") != 0 ||
	    strcmp(value, "0") == 0)
		return false;
	if (!c->pending_ms)
		c->pending_ms = now;
	return now - c->pending_ms < a->journal_min_ms;
}

/* A progress figure published less than IPM_ATTR_PROGRESS_MS ago. */
static bool too_old(const struct cached *c, int64_t now)
{
	return now - c->at_ms >= IPM_ATTR_PROGRESS_MS;
}

static int publish_changes(struct ipm_attributes *a, const struct ipm_attr *v, size_t n)
{
	int64_t now = ipm_now_ms();
	struct cached *c;
	int published = 0, rc;
	size_t i;

	if (!a->fn || (a->retry_at_ms && now < a->retry_at_ms))
		return 0;
	a->retry_at_ms = 0;
	for (i = 0; i < n; i++) {
		c = cache_find(a, v[i].name);
		if (!c)
			return -ENOMEM;
		if (c->valid && strcmp(c->attr.value, v[i].value) == 0) {
			c->pending_ms = 0;
			continue;
		}
		if (c->valid && journal_held(a, c, v[i].value, now))
			continue;
		if (c->valid && v[i].progress && !too_old(c, now) &&
		    strcmp(c->attr.value, "none") != 0 && strcmp(v[i].value, "none") != 0)
			continue;   /* moving on: the next figure in a while */
		rc = a->fn(a->opaque, v[i].name, v[i].value);
		if (rc < 0) {
			/* stays invalid, so the next round tries again */
			c->valid = false;
			publish_failed(a, &v[i], rc);
			return rc;
		}
		snprintf(c->attr.value, sizeof(c->attr.value), "%s", v[i].value);
		c->valid = true;
		c->pending_ms = 0;
		c->at_ms = now;
		published++;
	}
	if (published)
		publish_ok(a);
	return published;
}

int ipm_attributes_update(struct ipm_attributes *a, const ipm_status *st)
{
	struct ipm_attr *v;
	size_t n, i;
	int rc;

	for (i = 0; i < st->n_luns; i++)
		track(a, &st->luns[i]);
	rc = ipm_attributes_compute(st, &v, &n);
	if (rc < 0)
		return rc;
	rc = publish_changes(a, v, n);
	free(v);
	return rc;
}

void ipm_attributes_set_observer(struct ipm_attributes *a, ipm_status_observer_fn fn,
				 void *opaque)
{
	pthread_mutex_lock(&a->lock);
	a->observer = fn;
	a->observer_opaque = opaque;
	pthread_mutex_unlock(&a->lock);
}

static void observe(struct ipm_attributes *a, const ipm_status *st)
{
	ipm_status_observer_fn fn;
	void *opaque;

	pthread_mutex_lock(&a->lock);
	fn = a->observer;
	opaque = a->observer_opaque;
	pthread_mutex_unlock(&a->lock);
	if (fn)
		fn(opaque, st);
}

int ipm_attributes_poll(struct ipm_attributes *a)
{
	ipm_status *st = NULL;
	int rc = 0;

	pthread_mutex_lock(&a->engine_lock);
	if (a->engine)
		rc = ipm_engine_status(a->engine, &st);
	pthread_mutex_unlock(&a->engine_lock);
	if (rc < 0 || !st)
		return rc;
	observe(a, st);
	rc = ipm_attributes_update(a, st);
	ipm_status_free(st);
	return rc;
}

/* ---- the thread ----------------------------------------------------------- */

static void *attributes_thread(void *arg)
{
	struct ipm_attributes *a = arg;
	struct timespec ts;

	pthread_mutex_lock(&a->lock);
	while (!a->stop) {
		a->wake = false;
		pthread_mutex_unlock(&a->lock);
		ipm_attributes_poll(a);
		pthread_mutex_lock(&a->lock);
		ts = ipm_mono_deadline(POLL_MS);
		while (!a->stop && !a->wake)
			if (pthread_cond_timedwait(&a->cond, &a->lock, &ts) == ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int ipm_attributes_create(ipm_engine *e, ipm_attr_publish_fn fn, void *opaque,
			  struct ipm_attributes **out, ipm_error *err)
{
	struct ipm_attributes *a = calloc(1, sizeof(*a));

	if (!a)
		return ipm_fail(err, -ENOMEM, "out of memory");
	a->engine = e;
	a->fn = fn;
	a->opaque = opaque;
	a->journal_min_ms = JOURNAL_MIN_MS;
	pthread_mutex_init(&a->engine_lock, NULL);
	pthread_mutex_init(&a->lock, NULL);
	ipm_cond_init_mono(&a->cond);
	*out = a;
	return 0;
}

int ipm_attributes_start(ipm_engine *e, ipm_attr_publish_fn fn, void *opaque,
			 struct ipm_attributes **out, ipm_error *err)
{
	struct ipm_attributes *a;
	int rc;

	rc = ipm_attributes_create(e, fn, opaque, &a, err);
	if (rc < 0)
		return rc;
	rc = -pthread_create(&a->thread, NULL, attributes_thread, a);
	if (rc < 0) {
		ipm_attributes_stop(a);
		return ipm_fail(err, rc, "node attributes: cannot start thread: %s",
				strerror(-rc));
	}
	a->running = true;
	*out = a;
	return 0;
}

void ipm_attributes_set_journal_interval(struct ipm_attributes *a, int ms)
{
	a->journal_min_ms = ms;
}

void ipm_attributes_wake(struct ipm_attributes *a)
{
	pthread_mutex_lock(&a->lock);
	a->wake = true;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

void ipm_attributes_set_engine(struct ipm_attributes *a, ipm_engine *e)
{
	pthread_mutex_lock(&a->engine_lock);
	a->engine = e;
	pthread_mutex_unlock(&a->engine_lock);
	if (e)
		ipm_attributes_wake(a);
}

void ipm_attributes_stop(struct ipm_attributes *a)
{
	if (!a)
		return;
	if (a->running) {
		pthread_mutex_lock(&a->lock);
		a->stop = true;
		pthread_cond_signal(&a->cond);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
	}
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->engine_lock);
	free(a->cache);
	free(a->mem);
	free(a);
}

/* ---- the default publisher: attrd_updater --------------------------------- */

int ipm_attr_publish_attrd(void *opaque, const char *name, const char *value)
{
	char *argv[] = { "attrd_updater", "-n", (char *)name, "-U", (char *)value,
			 "-d", "5s", NULL };
	int rc;

	(void)opaque;
	rc = ipm_spawn(argv, true, 0, NULL, 0);
	if (rc == 0)
		return 0;
	if (rc == ATTRD_NOT_CONNECTED)
		return -ENOTCONN;
	if (rc < 0 && rc != -EINTR)   /* could not run it */
		return rc;
	return -EIO;
}
