/* verify.h - the primary's online verify of a LUN (verify.c,
 * doc/verify.md): both copies digested range by range while hosts write,
 * differing blocks reported, marked for the resync and, with repair,
 * copied from here at once. */
#ifndef IPM_VERIFY_H
#define IPM_VERIFY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "ipmirror.h"
#include "wire.h"

/* The peer must speak this protocol version for VERIFY frames. */
#define VERIFY_MIN_VERSION 5

/* One LUN's verify, in its struct rep_lun; under r->lock. The figures
 * stay after a run ends, for the status, until the next run. */
struct verify_state {
	pthread_t thread;
	bool joinable;             /* a thread to join (running or ended) */
	bool running;
	bool stop;                 /* asked to end (replicator_stop) */
	bool repair;               /* copy the differing blocks at once */
	uint64_t done, total;      /* bytes compared, of the LUN's */
	uint64_t out_of_sync;      /* bytes found different */
	uint64_t repaired;         /* of them, copied from here */
};

struct replicator;
struct rep_lun;
struct mreq;

/* replicator_verify (replicator.h) starts a run. */
/* End every running verify and wait for its thread (r->lock not held). */
void verify_stop_all(struct replicator *r);
/* The reader got the answer f to a VERIFY (payload: its digests, f->len
 * bytes): keep them for the waiting verify. r->lock held. */
void verify_answer_locked(struct mreq *m, const struct wire_frame *f, const uint8_t *payload);
/* The verify fields of l's status. r->lock held. */
void verify_status_locked(const struct rep_lun *rl, ipm_lun_status *s);

#endif
