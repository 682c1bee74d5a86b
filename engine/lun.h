/* lun.h - one volume on this node: its backing store and its role. */
#ifndef IPM_LUN_H
#define IPM_LUN_H

#include <pthread.h>
#include "engine.h"
#include "backing.h"
#include "generation.h"
#include "lun_ops.h"

struct ipm_lun {
	ipm_engine *engine;
	const struct ipm_lun_cfg *cfg;
	char path[4096];
	/* the journal's path (config, or BACKING.journal); the bitmap, activity
	 * log and generation file are this path plus a suffix */
	char journal_path[4200];
	int fd;                       /* buffered I/O, flush, trim */
	int dfd;                      /* O_DIRECT (io="direct"), or -1 */
	uint32_t dio_mem_align;       /* buffer address alignment O_DIRECT needs */
	uint32_t dio_off_align;       /* offset and length alignment O_DIRECT needs */
	bool is_blockdev;
	uint64_t size;
	enum ipm_role role;           /* fixed for the object's life (host_io.c) */
	const struct lun_ops *ops;    /* where host requests go: backing_ops, or
				       * replicator_ops once mirrored from here */
	enum ipm_lun_state state;
	bool insync;                  /* mirror here: the last resync completed (atomic) */
	/* mirroring: set when the LUN is mirrored, by the side that uses it */
	uint32_t wire_index;          /* index in its direction's LUN list */
	struct replicator *rep;       /* primary here: sends our writes */
	/* data generations (mirrored LUNs; doc/generations.md), under gen_lock */
	pthread_mutex_t gen_lock;
	struct generation gen;
	struct generation peer_gen;   /* mirror here: the primary's line, taken
				       * over when a resync pass completes */
	char gen_path[4300];
	bool wrote;                   /* primary here: lun_gen_first_write done (atomic) */
};

int lun_open(ipm_engine *e, const struct ipm_lun_cfg *cfg, struct ipm_lun **out,
	     ipm_error *err);
void lun_close(struct ipm_lun *l);

/* ---- data generations (generation.c) ---- */
/* Load the LUN's generation file; a missing one is a new LUN, which starts
 * at gen_initial(), held in common with the peer. */
int lun_gen_open(struct ipm_lun *l, ipm_error *err);
/* Primary: before the first write of this run reaches anything (the
 * caller checks l->wrote first): from now on this node may hold writes the
 * peer lacks, until a clean stop. */
void lun_gen_first_write(struct ipm_lun *l);
/* Primary: a write the peer cannot see yet. Starts a new generation the
 * first time after the peer held the current one. */
void lun_gen_diverge(struct ipm_lun *l);
/* Primary: the peer has everything (resync complete). */
void lun_gen_shared(struct ipm_lun *l);
/* Primary: stopped with nothing the peer lacks. */
void lun_gen_clean_stop(struct ipm_lun *l);
/* Primary: the peer's verdict on this LUN at a handshake. */
void lun_gen_verdict(struct ipm_lun *l, unsigned verdict, bool accepted);
/* Mirror: judge the primary's line at a handshake. Returns 0 and sets
 * *verdict (WIRE_LV_*) or a positive errno with reason filled. */
int lun_gen_judge(struct ipm_lun *l, const struct wire_lun *peer, unsigned *verdict,
		  char *reason, size_t reason_len);
/* Mirror: a resync pass completed, the copy equals the primary's. */
void lun_gen_insync(struct ipm_lun *l);
/* Mirror: a resync pass applies its first request: no longer a whole image
 * until the pass completes. */
void lun_gen_resyncing(struct ipm_lun *l);
/* The copy is consistent (persisted: survives a restart of the daemon). */
bool lun_gen_consistent(struct ipm_lun *l);
/* Mirror: resolve --discard-local. */
int lun_gen_discard(struct ipm_lun *l, ipm_error *err);
bool lun_gen_splitbrain(struct ipm_lun *l);
/* The current generation as 16 hex digits (or "none"). */
void lun_gen_string(struct ipm_lun *l, char *out, size_t len);

/* Range check shared by host requests and mirrored requests. */
bool lun_range_ok(const struct ipm_lun *l, uint64_t len, uint64_t off);

#endif
