/* attributes.h - publish the mirror status as Pacemaker node attributes.
 *
 * One thread per engine polls ipm_engine_status() about every 500 ms and
 * hands each attribute whose value changed since it was last published to a
 * publish function (a journal size other than 0 once it has waited 5 s:
 * each change in the CIB aborts Pacemaker's transition) (by default ipm_attr_publish_attrd, which spawns
 * attrd_updater). Attributes, as doc/pacemaker.md lists them:
 *   ipmirror-<LUN>-state    the LUN's state name
 *   ipmirror-<LUN>-journal  journal bytes
 *   ipmirror-<LUN>-sync     "none", or the progress of the resync (initial
 *                           sync, invalidate, dirty extents) this node sends:
 *                           "42% 480MiB/s eta 12s" (eta ? when unknown);
 *                           republished at most every IPM_ATTR_PROGRESS_MS
 *   ipmirror-peer           up|down|probation (off without a peer)
 *   ipmirror-peer-storage   up|down|off (off: no heartbeat volume installed)
 *
 * The same thread remembers, per LUN, whether this node's copy was
 * consistent the last time the state could tell: a mirror that was up to
 * date when its primary went away still holds every acknowledged write,
 * although the engine then reports it "outdated". Promotion checks use it.
 *
 * Part of ipmirrord (cluster policy stays out of libipmirror): it uses only
 * the public ipmirror.h; this header is not installed. */
#ifndef IPM_ATTRIBUTES_H
#define IPM_ATTRIBUTES_H

#include "ipmirror.h"

#define IPM_ATTR_NAME_MAX (IPM_NAME_MAX + 32)
#define IPM_ATTR_VALUE_MAX 48

/* 0 on success; -ENOTCONN when no cluster is running (retried later,
 * quietly); any other negative errno is a failure (logged, retried). */
typedef int (*ipm_attr_publish_fn)(void *opaque, const char *name, const char *value);

struct ipm_attr {
	char name[IPM_ATTR_NAME_MAX];
	char value[IPM_ATTR_VALUE_MAX];
	bool progress;   /* a figure that moves on its own: rate-limited */
};

/* Every change of a node attribute makes Pacemaker's controller abort
 * and recompute its transition: a progress figure is republished at most
 * this often (its start and end at once). The daemon holds it itself:
 * attrd_updater -U ignores -d on Pacemaker 2.1.5. */
#define IPM_ATTR_PROGRESS_MS 5000

/* The attributes of a status snapshot: 2 + 3 per LUN. *out is malloc'ed. */
int ipm_attributes_compute(const ipm_status *st, struct ipm_attr **out, size_t *n);

struct ipm_attributes;

/* Create the publisher without a thread. fn NULL = track consistency only
 * (nothing is published). e may be NULL (see ipm_attributes_set_engine). */
int ipm_attributes_create(ipm_engine *e, ipm_attr_publish_fn fn, void *opaque,
			  struct ipm_attributes **out, ipm_error *err);
/* Create and start the polling thread. */
int ipm_attributes_start(ipm_engine *e, ipm_attr_publish_fn fn, void *opaque,
			 struct ipm_attributes **out, ipm_error *err);
/* Stop the thread (if any) and free a. NULL is fine. */
void ipm_attributes_stop(struct ipm_attributes *a);
/* A changed journal size other than 0 waits ms (default 5000) before it is
 * published; tests shorten it. Before any poll. */
void ipm_attributes_set_journal_interval(struct ipm_attributes *a, int ms);
/* Poll now instead of at the next tick. */
void ipm_attributes_wake(struct ipm_attributes *a);
/* Swap the engine (NULL: pause polling), e.g. while the daemon re-creates
 * it for a role change. Returns once no poll uses the old engine. */
void ipm_attributes_set_engine(struct ipm_attributes *a, ipm_engine *e);

/* One round on a given snapshot: track consistency, publish what changed.
 * Returns the number of attributes published, or the first publish error. */
int ipm_attributes_update(struct ipm_attributes *a, const ipm_status *st);
/* One round on the engine's current status. */
int ipm_attributes_poll(struct ipm_attributes *a);

/* Called with every polled snapshot, from the poller thread, before the
 * attributes are published (the fencing module watches the same states).
 * fn NULL: none. */
typedef void (*ipm_status_observer_fn)(void *opaque, const ipm_status *st);
void ipm_attributes_set_observer(struct ipm_attributes *a, ipm_status_observer_fn fn,
				 void *opaque);

/* Whether lun's data on this node was consistent when last known (see
 * above); false for an unknown LUN. */
bool ipm_attributes_consistent(struct ipm_attributes *a, const char *lun);
/* Record that lun is consistent here (a clean demotion: journal empty). */
void ipm_attributes_mark_consistent(struct ipm_attributes *a, const char *lun);

/* The default publisher: attrd_updater -n NAME -U VALUE -d 5s. opaque unused.
 * attrd_updater's exit status 102 (no cluster) becomes -ENOTCONN. */
int ipm_attr_publish_attrd(void *opaque, const char *name, const char *value);

#endif
