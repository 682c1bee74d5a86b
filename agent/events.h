/* events.h - the daemon's change stream (doc/events.md): one thread takes a
 * status snapshot whenever the engine says something changed (its notify
 * hook) and at least every EVENTS_TICK_MS, compares it with the last one
 * and queues one line per change for each subscriber (ipmirrorctl events,
 * wait) and one job per handler event (handlers.c).
 *
 * The comparison and the line format are pure functions (events_diff,
 * ev_render) tested without a daemon. Uses only the public ipmirror.h. */
#ifndef IPM_EVENTS_H
#define IPM_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "ipmirror.h"
#include "status_render.h"

#define EVENTS_TICK_MS 250        /* safety net for changes without a hook */
#define EVENTS_PROGRESS_MS 1000   /* at most one progress line a second per LUN */
#define EV_KV_MAX 12

/* One key:value of a line; num: a JSON number, else a string. */
struct ev_kv {
	const char *key;
	char val[200];
	bool num;
};

/* One change (or, with --now, one existing object). */
struct ev_item {
	const char *action;       /* "exists" or "change" */
	const char *object;       /* peer, path, connection, lun, progress, refusal,
				   * fencing, promotion */
	unsigned n;
	struct ev_kv kv[EV_KV_MAX];
	/* the handler event it fires (handlers.c), NULL none; lun "" for the
	 * peer's, state the LUN's (or the peer's heartbeat) */
	const char *handler;
	char lun[IPM_NAME_MAX];
	char state[24];
};

struct ev_list {
	struct ev_item *v;
	size_t n, cap;
	int err;
};

/* What the daemon knows beside the engine, per LUN (NULL fns: unknown). */
struct events_hooks {
	/* this node's copy was consistent when last known (attributes.c) */
	bool (*consistent)(void *opaque, const char *lun);
	/* 1 fenced, 0 not, -1 no fencing here */
	int (*fenced)(void *opaque, const char *lun);
	/* a round found changes (events thread, no lock held) */
	void (*changed)(void *opaque);
	void *opaque;
};

/* Per-LUN memory of the diff between calls (progress rate limit). */
struct ev_memory {
	char lun[IPM_NAME_MAX];
	int64_t progress_at_ms;
	uint64_t progress_done;
	int64_t verify_at_ms;     /* the same for the online verify */
	uint64_t verify_done;
	int fenced;     /* last value shown; -2 never */
	int score;      /* last promotion score shown; -2 never */
};

struct ev_state {
	struct ev_memory *m;
	size_t n;
	/* the peer was up since this engine started: a fresh engine's
	 * heartbeat begins "down" (never heard), which is no peer-lost */
	bool peer_seen;
};

/* The promotion score the OCF agent sets for lun in st (ocf/ipmirror's
 * set_score, without its quorum and dry-run calls): 110 primary, 100
 * promotable with the peer alive, 10 promotable alone, -1 none. */
int events_promotion_score(const ipm_status *st, const ipm_lun_status *l, bool consistent);

/* Append to out the changes from old to cur (old NULL: every object as
 * "exists"). now_ms: monotonic, for the progress rate limit. */
void events_diff(const ipm_status *old, const ipm_status *cur, const struct events_hooks *h,
		 struct ev_state *mem, int64_t now_ms, struct ev_list *out);
void ev_list_free(struct ev_list *l);
void ev_state_free(struct ev_state *s);

/* One line (with its newline): text (doc/events.md) or JSON. time_ms:
 * wall clock. */
void ev_render(const struct ev_item *it, int64_t time_ms, bool json, struct strbuf *sb);

/* ---- the thread -------------------------------------------------------- */

struct events;
struct ev_sub;

/* A handler event (events_set_handler_sink): from the events thread. */
typedef void (*events_handler_fn)(void *opaque, const struct ev_item *it, const ipm_status *st);

int events_start(ipm_engine *e, const struct events_hooks *h, struct events **out,
		 ipm_error *err);
void events_stop(struct events *ev);
/* Swap the engine (NULL pauses) around a role change's re-creation;
 * returns once no snapshot uses the old one. Installs the notify hook. */
void events_set_engine(struct events *ev, ipm_engine *e);
/* The engine's notify hook (ipm_notify_fn): wake the thread. */
void events_notify(void *ev);
void events_set_handler_sink(struct events *ev, events_handler_fn fn, void *opaque);
/* Called (events thread) after lines were queued for subscribers: the
 * IPC thread should call events_drain. */
void events_set_waker(struct events *ev, void (*fn)(void *), void *opaque);

/* A subscriber (IPC thread): json or text lines; now: the current state
 * first ("exists" lines, then "exists -"). conn is the caller's. NULL on
 * failure (no memory, or no snapshot yet: -EAGAIN in *rc). */
struct ev_sub *events_subscribe(struct events *ev, void *conn, bool json, bool now, int *rc);
void events_unsubscribe(struct events *ev, struct ev_sub *sub);
/* Hand each subscriber's queued lines to send (IPC thread); send returns
 * < 0 when the subscriber cannot take them (it is then dropped: close_fn
 * is called on its conn). */
void events_drain(struct events *ev, int (*send)(void *conn, const char *buf, size_t len),
		  void (*close_fn)(void *conn));

#endif
