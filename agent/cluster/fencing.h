/* fencing.h - resource-level fencing of the peer (the crm-fence-peer model).
 *
 * When this node is primary for a mirrored LUN and loses its peer, the peer
 * starts missing writes: a handler adds a Pacemaker location constraint that
 * forbids the Promoted role anywhere but here ("fence"). Once the LUN is up
 * to date again (the resync has completed), the handler removes it
 * ("unfence"). The handler is a program run as
 *     HANDLER fence|unfence LUN
 * (by default ipmirror-fence-peer, see doc/pacemaker.md), exit 0 = done.
 *
 * The module is fed the same status snapshots as the node-attribute
 * publisher (ipm_attributes_set_observer) and runs the handler in a thread
 * of its own: a slow or hanging cluster never delays the poll, and I/O is
 * never blocked (DRBD's "fencing resource-only"). A failed run is retried
 * until it succeeds or is no longer wanted, and logged at LOG_CRIT/LOG_ERR.
 *
 * Per LUN it decides (ipm_fencing_decide):
 *   primary, mirrored, journaling/probation/resyncing, armed -> fence
 *   up to date (primary or mirror)                           -> unfence
 *   anything else                                            -> as before
 * "Armed" means this process made the LUN primary by a promotion, or has
 * seen it up to date as primary: a daemon that comes up as primary from the
 * config (and is about to be demoted by the agent's start) must not fence
 * the node that is Promoted in the cluster. A clean demotion (the peer has
 * every write) unfences. "Unfence" only ever removes a constraint this node
 * made (the handler checks), so a fresh daemon unfences once at its first
 * up-to-date moment to clear what a predecessor left behind. */
#ifndef IPM_FENCING_H
#define IPM_FENCING_H

#include "ipmirror.h"

enum ipm_fence_want { IPM_FENCE_KEEP, IPM_FENCE_FENCE, IPM_FENCE_UNFENCE };

/* Run the handler for action ("fence" or "unfence") on lun. 0 done; a
 * negative errno or a positive exit status is a failure (retried). out
 * receives up to outlen - 1 bytes of the handler's output, NUL-terminated. */
typedef int (*ipm_fence_run_fn)(void *opaque, const char *action, const char *lun,
				char *out, size_t outlen);

/* What one snapshot of a LUN asks for; updates *armed (see above). */
enum ipm_fence_want ipm_fencing_decide(const ipm_lun_status *l, bool *armed);

struct ipm_fencing;

/* Create and start the handler thread. retry_ms: pause after a failure. */
int ipm_fencing_start(ipm_fence_run_fn fn, void *opaque, int retry_ms,
		      struct ipm_fencing **out, ipm_error *err);
/* Stop the thread (waits for a running handler) and free f. NULL is fine. */
void ipm_fencing_stop(struct ipm_fencing *f);

/* Feed one status snapshot (called by the attribute poller). */
void ipm_fencing_update(struct ipm_fencing *f, const ipm_status *st);
/* This process promoted lun: arm it. */
void ipm_fencing_promoted(struct ipm_fencing *f, const char *lun);
/* This process demoted lun; clean: the peer has every write (unfence). */
void ipm_fencing_demoted(struct ipm_fencing *f, const char *lun, bool clean);

/* Whether lun is fenced as far as this node knows (tests, status). */
bool ipm_fencing_fenced(struct ipm_fencing *f, const char *lun);
/* Number of handler runs so far, failed ones included (tests). */
unsigned ipm_fencing_runs(struct ipm_fencing *f);

/* The default runner: exec the program opaque (a path) with a 60 s limit,
 * its stdout and stderr collected into out. */
int ipm_fence_run_handler(void *opaque, const char *action, const char *lun, char *out,
			  size_t outlen);

#endif
