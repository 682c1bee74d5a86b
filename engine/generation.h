/* generation.h - a LUN's data generations on this node (doc/generations.md).
 *
 * A generation is a random 64-bit id of a line of data. The primary starts
 * a new one at its first write that the peer cannot see (peer unreachable),
 * so two nodes that both wrote without each other end up with generations
 * neither knows: a split brain, detected at the next handshake and never
 * merged. A node that only fell behind finds its generation in the other
 * one's history and is resynced from it. The state lives in a small file
 * next to the LUN's journal, replaced atomically (write, fsync, rename).
 */
#ifndef IPM_GENERATION_H
#define IPM_GENERATION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "ipmirror.h"

#define GEN_HISTORY 8

struct generation {
	uint64_t current;               /* 0: no line (a new or invalidated copy) */
	uint64_t history[GEN_HISTORY];  /* earlier currents, newest first */
	unsigned n_history;
	bool shared;        /* the peer is known to hold `current` */
	bool splitbrain;    /* both sides moved on: stop until resolved */
	bool discard;       /* resolve --discard-local: take the peer's data whole */
	bool was_primary;   /* this node served the LUN and did not stop cleanly:
			     * its disk may hold writes the peer lacks */
	bool consistent;    /* the copy is a whole image of the primary's data at
			     * some moment: not in the middle of a resync */
	/* the initial sync and invalidate (doc/generations.md); files written
	 * before these flags existed have none of them, and keep their meaning */
	bool invalid;       /* this copy holds no whole image: it is copied whole
			     * from the peer (a new mirror, invalidate) */
	bool never_synced;  /* created by this version and no resync has ended
			     * yet: the copies never were equal (assume-clean) */
	bool fill_asked;    /* mirror: the primary was asked for the whole LUN
			     * (the copy has begun: too late for assume-clean) */
	bool peer_invalid;  /* primary: the peer's copy never held this line (the
			     * initial sync, or a forced source): nothing of
			     * the peer's needs keeping until a resync ends */
	uint64_t fill;      /* mirror: the id of the full copy this copy is being
			     * filled by (0: none begun). The primary resumes
			     * that copy where it stopped only when its bitmap
			     * names the same id; a new copy gets a new id */
};

/* How the peer's generation relates to ours. */
enum gen_relation {
	GEN_SAME,          /* same line, same point */
	GEN_PEER_AHEAD,    /* ours is in the peer's history (or ours is new) */
	GEN_PEER_BEHIND,   /* the peer's is in our history (or the peer's is new) */
	GEN_DIVERGED,      /* neither: both wrote without the other */
};

/* Load path; a missing file gives a new LUN's state (all zero). A damaged
 * file is an error naming the path and the problem. */
int gen_load(const char *path, struct generation *g, ipm_error *err);
/* Replace path atomically and durably. */
int gen_save(const char *path, const struct generation *g, ipm_error *err);

/* The shared generation versions before the initial sync gave a new LUN on
 * both nodes (from its name and size), never 0. Files that hold it keep it:
 * such a pair was taken as equal from the start. */
uint64_t gen_initial(const char *lun, uint64_t size);
/* A LUN without a generation file (first start, a replaced disk): the
 * source (the LUN's primary) starts a line of its own and knows its peer
 * has nothing; any other copy has no generation and is invalid, so the
 * source copies it whole before either is up to date. */
void gen_new(struct generation *g, bool source);
/* The mirror's per-LUN verdict (WIRE_LV_*) on the primary's line; *rel
 * says how the lines relate. Pure: lun_gen_judge applies it. */
unsigned gen_verdict(const struct generation *mine, uint64_t peer_current,
		     const uint64_t *peer_history, unsigned n, enum gen_relation *rel);
/* Start a new generation: current goes into the history. */
void gen_rotate(struct generation *g);
/* Take the peer's line after a complete resync from it. */
void gen_adopt(struct generation *g, uint64_t current, const uint64_t *history, unsigned n);
enum gen_relation gen_compare(const struct generation *mine, uint64_t peer_current,
			      const uint64_t *peer_history, unsigned n);
const char *gen_relation_name(enum gen_relation r);

struct ipm_lun;
struct wire_lun;

/* A LUN's generations on this node (struct ipm_lun's g). Lock order: after
 * the replicator's r->lock, or alone; the file is saved under it (rare:
 * state changes only). */
struct lun_gen {
	pthread_mutex_t lock;
	struct generation gen;        /* this copy's, persisted in path */
	struct generation peer;       /* mirror here: the primary's line of the
				       * last handshake, taken over when a
				       * resync pass completes */
	char path[4300];
	uint64_t announced;           /* primary here: the line the last
				       * handshake announced to the peer */
	bool wrote;                   /* primary here: lun_gen_first_write done
				       * (atomic, read without the lock) */
};

void lun_gen_init(struct lun_gen *g);
void lun_gen_fini(struct lun_gen *g);

/* ---- a LUN's generations (struct ipm_lun's g, under g.lock) ---- */
/* Load the LUN's generation file; a missing one is a new LUN (gen_new:
 * the source when this node is its primary), written at once so that a
 * role change (which re-opens the LUN) does not make it new again. */
int lun_gen_open(struct ipm_lun *l, ipm_error *err);
/* Primary: before the first write of this run reaches anything (the
 * caller checks lun_gen_wrote first): from now on this node may hold
 * writes the peer lacks, until a clean stop. */
void lun_gen_first_write(struct ipm_lun *l);
/* lun_gen_first_write was done in this run (no lock: an atomic load). */
bool lun_gen_wrote(struct ipm_lun *l);
/* Primary: our line as the handshake announces it (wire_lun's generation
 * and history). */
void lun_gen_announce(struct ipm_lun *l, struct wire_lun *wl);
/* Primary: a write the peer cannot see yet. Starts a new generation the
 * first time after the peer held the current one. */
void lun_gen_diverge(struct ipm_lun *l);
/* Primary: the peer has everything (resync complete). false when our line
 * moved on after the handshake announced it (a write without the peer in
 * the meantime): the peer holds the data but not the line's name, so the
 * caller makes it shake hands again (nothing is marked shared until then). */
bool lun_gen_shared(struct ipm_lun *l);
/* Primary: stopped with nothing the peer lacks. */
void lun_gen_clean_stop(struct ipm_lun *l);
/* Primary: the peer's verdict on this LUN at a handshake. */
void lun_gen_verdict(struct ipm_lun *l, unsigned verdict, bool accepted);
/* Mirror: judge the primary's line at a handshake. Returns 0 and sets
 * *verdict (WIRE_LV_*) or a positive errno with reason filled. With a full
 * copy asked for, *fill is the copy's id (drawn and saved the first time,
 * before the primary hears it), else 0. */
int lun_gen_judge(struct ipm_lun *l, const struct wire_lun *peer, unsigned *verdict,
		  uint64_t *fill, char *reason, size_t reason_len);
/* Mirror: a resync pass completed, the copy equals the primary's. */
void lun_gen_insync(struct ipm_lun *l);
/* Mirror: a resync pass applies its first request: no longer a whole image
 * until the pass completes. */
void lun_gen_resyncing(struct ipm_lun *l);
/* The copy is consistent (persisted: survives a restart of the daemon). */
bool lun_gen_consistent(struct ipm_lun *l);
/* This copy is invalid: it holds no whole image until copied from the peer. */
bool lun_gen_invalid(struct ipm_lun *l);
/* Primary: the peer's copy never held our line (the initial sync). */
bool lun_gen_peer_invalid(struct ipm_lun *l);
/* Mirror: invalidate this copy (ipm_lun_invalidate checked it may be). */
int lun_gen_invalidate(struct ipm_lun *l, ipm_error *err);
/* Mirror: assume-clean on a never-synced copy; -EALREADY and a reason when
 * it is not one, or its copy has begun. */
int lun_gen_assume_clean(struct ipm_lun *l, ipm_error *err);
/* A forced promotion of an invalid copy: it becomes a source of its own,
 * with a new line no peer knows (so a peer holding data is a split brain,
 * never silently overwritten or taken as equal). */
int lun_gen_take_source(struct ipm_lun *l, ipm_error *err);
/* Mirror: the primary's generation of its last handshake (0: none yet). */
uint64_t lun_gen_peer_current(struct ipm_lun *l);
/* Mirror: resolve --discard-local. */
int lun_gen_discard(struct ipm_lun *l, ipm_error *err);
bool lun_gen_splitbrain(struct ipm_lun *l);
/* The current generation as 16 hex digits (or "none"). */
void lun_gen_string(struct ipm_lun *l, char *out, size_t len);

#endif
