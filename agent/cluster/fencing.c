/* fencing.c - resource-level fencing of the peer (see fencing.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "clock.h"
#include "fencing.h"
#include "ipm_spawn.h"

#define HANDLER_TIMEOUT_MS 60000
#define IDLE_WAIT_MS 1000
#define OUT_MAX 512

enum fence_done { DONE_UNKNOWN, DONE_FENCED, DONE_UNFENCED };

struct fence_lun {
	char name[IPM_NAME_MAX];
	bool armed;
	enum ipm_fence_want want; /* KEEP: nothing asked yet */
	enum fence_done done;     /* what the handler last did successfully */
	int64_t retry_at_ms;
	unsigned failures;
};

struct ipm_fencing {
	ipm_fence_run_fn fn;
	void *opaque;
	int retry_ms;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool running, stop;
	struct fence_lun *luns;
	size_t n_luns;
	unsigned runs;
};

/* ---- the decision --------------------------------------------------------- */

enum ipm_fence_want ipm_fencing_decide(const ipm_lun_status *l, bool *armed)
{
	if (!l->mirrored) {
		*armed = false;
		return IPM_FENCE_KEEP;
	}
	if (l->state == IPM_STATE_UPTODATE) {
		/* connected and in sync: whoever is primary, the peer has it all */
		*armed = l->role == IPM_ROLE_PRIMARY;
		return IPM_FENCE_UNFENCE;
	}
	if (l->role != IPM_ROLE_PRIMARY) {
		*armed = false;
		return IPM_FENCE_KEEP;
	}
	switch (l->state) {
	case IPM_STATE_JOURNALING:
	case IPM_STATE_PROBATION:
	case IPM_STATE_RESYNCING:
		/* the peer is gone or behind: it misses (or may miss) writes */
		return *armed ? IPM_FENCE_FENCE : IPM_FENCE_KEEP;
	default:
		/* outdated, inconsistent, split brain: not ours to judge here */
		return IPM_FENCE_KEEP;
	}
}

/* ---- per-LUN state (lock held) --------------------------------------------- */

static struct fence_lun *lun_find(struct ipm_fencing *f, const char *name)
{
	struct fence_lun *m;
	size_t i;

	for (i = 0; i < f->n_luns; i++)
		if (strcmp(f->luns[i].name, name) == 0)
			return &f->luns[i];
	m = realloc(f->luns, (f->n_luns + 1) * sizeof(*m));
	if (!m)
		return NULL;
	f->luns = m;
	m = &f->luns[f->n_luns++];
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	return m;
}

static bool lun_pending(const struct fence_lun *m)
{
	return (m->want == IPM_FENCE_FENCE && m->done != DONE_FENCED) ||
	       (m->want == IPM_FENCE_UNFENCE && m->done != DONE_UNFENCED);
}

/* Set what lun (in state st) wants; a change of mind retries at once. */
static void lun_want(struct ipm_fencing *f, struct fence_lun *m, enum ipm_fence_want w,
		     enum ipm_lun_state st)
{
	if (w == IPM_FENCE_KEEP || w == m->want)
		return;
	/* a resync (an invalidate, a new data generation) has the peer
	 * connected but behind: "lost" misled admins there */
	if (w == IPM_FENCE_FENCE)
		qb_log(LOG_WARNING, "lun %s: peer %s while primary: fencing it (no Promoted role elsewhere until it has resynced)",
		       m->name, st == IPM_STATE_RESYNCING ? "behind (resyncing)" : "lost");
	else if (m->done == DONE_FENCED)
		qb_log(LOG_NOTICE, "lun %s: peer has every write again: unfencing it", m->name);
	m->want = w;
	m->retry_at_ms = 0;
	m->failures = 0;
	pthread_cond_signal(&f->cond);
}

void ipm_fencing_update(struct ipm_fencing *f, const ipm_status *st)
{
	struct fence_lun *m;
	size_t i;

	pthread_mutex_lock(&f->lock);
	for (i = 0; i < st->n_luns; i++) {
		m = lun_find(f, st->luns[i].name);
		if (m)
			lun_want(f, m, ipm_fencing_decide(&st->luns[i], &m->armed),
				 st->luns[i].state);
	}
	pthread_mutex_unlock(&f->lock);
}

void ipm_fencing_promoted(struct ipm_fencing *f, const char *lun)
{
	struct fence_lun *m;

	pthread_mutex_lock(&f->lock);
	m = lun_find(f, lun);
	if (m)
		m->armed = true;
	pthread_mutex_unlock(&f->lock);
}

void ipm_fencing_demoted(struct ipm_fencing *f, const char *lun, bool clean)
{
	struct fence_lun *m;

	pthread_mutex_lock(&f->lock);
	m = lun_find(f, lun);
	if (m) {
		m->armed = false;
		if (clean)
			lun_want(f, m, IPM_FENCE_UNFENCE, IPM_STATE_UPTODATE);
	}
	pthread_mutex_unlock(&f->lock);
}

bool ipm_fencing_fenced(struct ipm_fencing *f, const char *lun)
{
	bool fenced = false;
	size_t i;

	pthread_mutex_lock(&f->lock);
	for (i = 0; i < f->n_luns; i++)
		if (strcmp(f->luns[i].name, lun) == 0)
			fenced = f->luns[i].done == DONE_FENCED;
	pthread_mutex_unlock(&f->lock);
	return fenced;
}

unsigned ipm_fencing_runs(struct ipm_fencing *f)
{
	unsigned n;

	pthread_mutex_lock(&f->lock);
	n = f->runs;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* ---- the thread ------------------------------------------------------------- */

/* The first LUN with work due now (lock held); else -1 and *wait_ms. */
static ssize_t next_due(struct ipm_fencing *f, int64_t *wait_ms)
{
	int64_t now = ipm_now_ms();
	size_t i;

	*wait_ms = IDLE_WAIT_MS;
	for (i = 0; i < f->n_luns; i++) {
		if (!lun_pending(&f->luns[i]))
			continue;
		if (f->luns[i].retry_at_ms <= now)
			return (ssize_t)i;
		if (f->luns[i].retry_at_ms - now < *wait_ms)
			*wait_ms = f->luns[i].retry_at_ms - now;
	}
	return -1;
}

static void run_done(struct ipm_fencing *f, size_t i, enum ipm_fence_want w, int rc,
		     const char *out)
{
	struct fence_lun *m = &f->luns[i];
	const char *action = w == IPM_FENCE_FENCE ? "fence" : "unfence";

	if (rc == 0) {
		m->done = w == IPM_FENCE_FENCE ? DONE_FENCED : DONE_UNFENCED;
		qb_log(m->failures ? LOG_NOTICE : LOG_INFO, "lun %s: %s done%s%s", m->name, action,
		       out[0] ? ": " : "", out);
		m->failures = 0;
		return;
	}
	m->failures++;
	m->retry_at_ms = ipm_now_ms() + f->retry_ms;
	/* loud at first, then every 10th attempt so the log stays readable */
	if (m->failures == 1 || m->failures % 10 == 0)
		qb_log(w == IPM_FENCE_FENCE ? LOG_CRIT : LOG_ERR,
		       "lun %s: %s FAILED (attempt %u, %s %d): %s; retrying every %d ms%s",
		       m->name, action, m->failures, rc < 0 ? "error" : "exit status",
		       rc < 0 ? -rc : rc, out[0] ? out : "no output", f->retry_ms,
		       w == IPM_FENCE_FENCE ? "; the peer may be promoted although it misses writes" : "");
}

static void *fencing_thread(void *arg)
{
	struct ipm_fencing *f = arg;
	char name[IPM_NAME_MAX], out[OUT_MAX];
	enum ipm_fence_want w;
	struct timespec ts;
	int64_t wait_ms;
	ssize_t i;
	int rc;

	pthread_mutex_lock(&f->lock);
	while (!f->stop) {
		i = next_due(f, &wait_ms);
		if (i < 0) {
			ts = ipm_mono_deadline(wait_ms);
			pthread_cond_timedwait(&f->cond, &f->lock, &ts);
			continue;
		}
		w = f->luns[i].want;
		snprintf(name, sizeof(name), "%s", f->luns[i].name);
		f->runs++;
		pthread_mutex_unlock(&f->lock);
		out[0] = 0;
		rc = f->fn(f->opaque, w == IPM_FENCE_FENCE ? "fence" : "unfence", name, out,
			   sizeof(out));
		pthread_mutex_lock(&f->lock);
		/* the array may have grown meanwhile, never shrunk: i stays valid */
		run_done(f, (size_t)i, w, rc, out);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

int ipm_fencing_start(ipm_fence_run_fn fn, void *opaque, int retry_ms,
		      struct ipm_fencing **out, ipm_error *err)
{
	struct ipm_fencing *f = calloc(1, sizeof(*f));
	int rc;

	if (!f)
		return ipm_fail(err, -ENOMEM, "out of memory");
	f->fn = fn;
	f->opaque = opaque;
	f->retry_ms = retry_ms;
	pthread_mutex_init(&f->lock, NULL);
	ipm_cond_init_mono(&f->cond);
	rc = -pthread_create(&f->thread, NULL, fencing_thread, f);
	if (rc < 0) {
		ipm_fencing_stop(f);
		return ipm_fail(err, rc, "fencing: cannot start thread: %s", strerror(-rc));
	}
	f->running = true;
	*out = f;
	return 0;
}

void ipm_fencing_stop(struct ipm_fencing *f)
{
	if (!f)
		return;
	if (f->running) {
		pthread_mutex_lock(&f->lock);
		f->stop = true;
		pthread_cond_signal(&f->cond);
		pthread_mutex_unlock(&f->lock);
		pthread_join(f->thread, NULL);
	}
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f->luns);
	free(f);
}

/* ---- the default runner: the handler program ------------------------------- */

/* One line for the log: newlines become "; ", no trailing separator. */
static void one_line(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = 0;
	for (; *s; s++)
		if (*s == '\n')
			*s = ';';
}

int ipm_fence_run_handler(void *opaque, const char *action, const char *lun, char *out,
			  size_t outlen)
{
	char *argv[] = { (char *)opaque, (char *)action, (char *)lun, NULL };
	int rc = ipm_spawn(argv, false, HANDLER_TIMEOUT_MS, out, outlen);

	if (rc == -ETIMEDOUT)
		snprintf(out, outlen, "%s %s %s: killed after %d s", argv[0], action, lun,
			 HANDLER_TIMEOUT_MS / 1000);
	one_line(out);
	return rc;
}
