/* handlers.c - running the <handlers> programs (see handlers.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <qb/qblog.h>

#include "handlers.h"
#include "ipm_spawn.h"

#define ENV_MAX 12

struct job {
	unsigned event;                 /* index in ipm_handler_events */
	char env[ENV_MAX][256];         /* NAME=value */
	unsigned n_env;
	char lun[IPM_NAME_MAX];
	struct job *next;
};

struct handlers {
	char *prog[IPM_HANDLER_EVENTS]; /* NULL: none */
	int timeout_ms;
	pthread_mutex_t lock;           /* the queue and stop; a leaf */
	pthread_cond_t cond;
	pthread_t thread;
	bool stop, running;
	struct job *head, *tail;
	unsigned queued, runs;
	bool dropped_logged;
};

static int event_index(const char *name)
{
	unsigned i;

	for (i = 0; name && i < IPM_HANDLER_EVENTS; i++)
		if (strcmp(name, ipm_handler_events[i]) == 0)
			return (int)i;
	return -1;
}

static void job_env(struct job *j, const char *name, const char *value)
{
	if (j->n_env < ENV_MAX - 1)
		snprintf(j->env[j->n_env++], sizeof(j->env[0]), "%s=%s", name, value);
}

/* The item's key (old-state...), "" when it has none. */
static const char *item_value(const struct ev_item *it, const char *key)
{
	unsigned i;

	for (i = 0; i < it->n; i++)
		if (strcmp(it->kv[i].key, key) == 0)
			return it->kv[i].val;
	return "";
}

/* What a handler learns of its event: doc/events.md lists the names. */
static void fill_env(struct job *j, const struct ev_item *it, const ipm_status *st)
{
	const ipm_lun_status *l = NULL;
	const char *path = getenv("PATH");
	size_t i;

	for (i = 0; it->lun[0] && i < st->n_luns; i++)
		if (strcmp(st->luns[i].name, it->lun) == 0)
			l = &st->luns[i];
	job_env(j, "PATH", path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
	job_env(j, "IPMIRROR_EVENT", ipm_handler_events[j->event]);
	job_env(j, "IPMIRROR_LUN", it->lun);
	job_env(j, "IPMIRROR_NODE", st->node);
	job_env(j, "IPMIRROR_PEER", st->peer);
	job_env(j, "IPMIRROR_STATE", it->state);
	job_env(j, "IPMIRROR_ROLE", l ? ipm_role_name(l->role) : "");
	job_env(j, "IPMIRROR_OLD_STATE", item_value(it, "old-state"));
	job_env(j, "IPMIRROR_OLD_ROLE", item_value(it, "old-role"));
	job_env(j, "IPMIRROR_PEER_HEARTBEAT",
		ipm_link_name(st->peer[0] ? st->peer_heartbeat : IPM_LINK_OFF));
	snprintf(j->lun, sizeof(j->lun), "%s", it->lun);
}

void handlers_fire(void *opaque, const struct ev_item *it, const ipm_status *st)
{
	struct handlers *h = opaque;
	int ev = event_index(it->handler);
	struct job *j;

	if (ev < 0 || !h->prog[ev])
		return;
	j = calloc(1, sizeof(*j));
	if (!j) {
		qb_log(LOG_WARNING, "handler %s: out of memory; not run", it->handler);
		return;
	}
	j->event = (unsigned)ev;
	fill_env(j, it, st);
	pthread_mutex_lock(&h->lock);
	if (h->queued >= HANDLERS_QUEUE_MAX) {
		if (!h->dropped_logged)
			qb_log(LOG_WARNING, "handlers: %u events wait already; %s of lun %s dropped",
			       h->queued, it->handler, it->lun[0] ? it->lun : "-");
		h->dropped_logged = true;
		pthread_mutex_unlock(&h->lock);
		free(j);
		return;
	}
	if (h->tail)
		h->tail->next = j;
	else
		h->head = j;
	h->tail = j;
	h->queued++;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* One run; its output (the first line or so) goes into the log. */
static void run_job(struct handlers *h, struct job *j)
{
	const char *event = ipm_handler_events[j->event];
	char *argv[] = { h->prog[j->event], (char *)event, j->lun[0] ? j->lun : NULL, NULL };
	char *envp[ENV_MAX + 1];
	char out[512];
	unsigned i;
	int rc;

	for (i = 0; i < j->n_env; i++)
		envp[i] = j->env[i];
	envp[i] = NULL;
	rc = ipm_spawn_env(argv, false, envp, h->timeout_ms, out, sizeof(out));
	out[strcspn(out, "\n")] = '\0';
	if (rc == 0)
		qb_log(LOG_NOTICE, "handler %s (lun %s): %s ran%s%s", event,
		       j->lun[0] ? j->lun : "-", argv[0], out[0] ? ": " : "", out);
	else if (rc == -ETIMEDOUT)
		qb_log(LOG_WARNING, "handler %s (lun %s): %s killed after %d s%s%s", event,
		       j->lun[0] ? j->lun : "-", argv[0], h->timeout_ms / 1000,
		       out[0] ? ": " : "", out);
	else if (rc < 0)
		qb_log(LOG_WARNING, "handler %s (lun %s): %s failed: %s", event,
		       j->lun[0] ? j->lun : "-", argv[0], out[0] ? out : strerror(-rc));
	else
		qb_log(LOG_WARNING, "handler %s (lun %s): %s exited with status %d%s%s", event,
		       j->lun[0] ? j->lun : "-", argv[0], rc, out[0] ? ": " : "", out);
}

static void *handlers_thread(void *arg)
{
	struct handlers *h = arg;
	struct job *j;

	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		j = h->head;
		if (!j) {
			pthread_cond_wait(&h->cond, &h->lock);
			continue;
		}
		h->head = j->next;
		if (!h->head)
			h->tail = NULL;
		h->queued--;
		h->dropped_logged = false;
		pthread_mutex_unlock(&h->lock);
		run_job(h, j);
		free(j);
		pthread_mutex_lock(&h->lock);
		h->runs++;
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static void handlers_free(struct handlers *h)
{
	struct job *j;
	unsigned i;

	while ((j = h->head)) {
		h->head = j->next;
		free(j);
	}
	for (i = 0; i < IPM_HANDLER_EVENTS; i++)
		free(h->prog[i]);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int handlers_start(const ipm_config *cfg, const char *node, struct handlers **out,
		   ipm_error *err)
{
	struct handlers *h;
	unsigned i, n = 0;
	int rc;

	*out = NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return ipm_fail(err, -ENOMEM, "handlers: out of memory");
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->timeout_ms = (int)ipm_config_handler_timeout(cfg) * 1000;
	for (i = 0; i < IPM_HANDLER_EVENTS; i++) {
		const char *p = ipm_config_handler(cfg, ipm_handler_events[i]);

		if (!p)
			continue;
		h->prog[i] = strdup(p);
		if (!h->prog[i]) {
			handlers_free(h);
			return ipm_fail(err, -ENOMEM, "handlers: out of memory");
		}
		n++;
	}
	if (!n) {
		handlers_free(h);
		return 0;
	}
	rc = -pthread_create(&h->thread, NULL, handlers_thread, h);
	if (rc < 0) {
		handlers_free(h);
		return ipm_fail(err, rc, "handlers: cannot start thread: %s", strerror(-rc));
	}
	h->running = true;
	qb_log(LOG_INFO, "node %s: %u handler(s) configured", node, n);
	*out = h;
	return 0;
}

void handlers_stop(struct handlers *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	if (h->running)
		pthread_join(h->thread, NULL);
	handlers_free(h);
}

unsigned handlers_runs(struct handlers *h)
{
	unsigned n;

	pthread_mutex_lock(&h->lock);
	n = h->runs;
	pthread_mutex_unlock(&h->lock);
	return n;
}
