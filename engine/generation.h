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

#include <stdbool.h>
#include <stdint.h>
#include "ipmirror.h"

#define GEN_HISTORY 8

struct generation {
	uint64_t current;               /* 0 only in a missing file: see gen_initial */
	uint64_t history[GEN_HISTORY];  /* earlier currents, newest first */
	unsigned n_history;
	bool shared;        /* the peer is known to hold `current` */
	bool splitbrain;    /* both sides moved on: stop until resolved */
	bool discard;       /* resolve --discard-local: take the peer's data whole */
	bool was_primary;   /* this node served the LUN and did not stop cleanly:
			     * its disk may hold writes the peer lacks */
	bool consistent;    /* the copy is a whole image of the primary's data at
			     * some moment: not in the middle of a resync */
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

/* The generation a new LUN starts with: the same on both nodes (from the
 * LUN's name and size), never 0. */
uint64_t gen_initial(const char *lun, uint64_t size);
/* Start a new generation: current goes into the history. */
void gen_rotate(struct generation *g);
/* Take the peer's line after a complete resync from it. */
void gen_adopt(struct generation *g, uint64_t current, const uint64_t *history, unsigned n);
enum gen_relation gen_compare(const struct generation *mine, uint64_t peer_current,
			      const uint64_t *peer_history, unsigned n);
const char *gen_relation_name(enum gen_relation r);

#endif
