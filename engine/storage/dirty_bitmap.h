/* dirty_bitmap.h - the persistent dirty-extent bitmap of a LUN (see
 * doc/journal.md): once the journal is full, writes only mark the extents
 * they touch, and the resync copies those extents from the local copy.
 *
 * Safety rule: bits reach the file as an OR of everything marked since the
 * last dirty_bitmap_clear_all() or dirty_bitmap_commit(); clear_range()
 * only clears in memory. A
 * crash in the middle of a resync therefore copies some extents twice and
 * never forgets one. Bits the file cannot vouch for (a block with a bad
 * checksum, a short file) are taken as dirty, with a warning in the log.
 *
 * Thread-compatible: the caller serialises all calls on one bitmap. */
#ifndef IPM_DIRTY_BITMAP_H
#define IPM_DIRTY_BITMAP_H

#include <stdbool.h>
#include <stdint.h>
#include "ipmirror.h"   /* ipm_error */

struct dirty_bitmap;

/* Longest run dirty_bitmap_next() returns (at least one extent). */
#define DIRTY_RUN_MAX (4u << 20)

/* Open the bitmap at path, creating it (all clean) when missing. An
 * existing file must be a bitmap for the same extent size and the same or
 * a smaller LUN size: one written for a smaller LUN (grown since,
 * doc/resize.md) is grown to lun_size, its new extents dirty (nothing
 * vouches for them). */
int dirty_bitmap_open(const char *path, uint64_t lun_size, uint32_t extent,
		      struct dirty_bitmap **out, ipm_error *err);
void dirty_bitmap_close(struct dirty_bitmap *b);
/* Grow the bitmap file at path, if there is one, to lun_size (an online
 * grow): its new extents dirty (the resync copies them) or clean. */
int dirty_bitmap_grow_file(const char *path, uint64_t lun_size, bool dirty_new, ipm_error *err);
/* Mark the extents covering [off, off+len), clipped to the LUN; in memory. */
int dirty_bitmap_mark(struct dirty_bitmap *b, uint64_t off, uint64_t len);
/* Write the blocks with newly marked bits, then fdatasync. */
int dirty_bitmap_sync(struct dirty_bitmap *b, ipm_error *err);
/* The first run of dirty extents starting at an extent boundary >= from:
 * adjacent extents merged up to DIRTY_RUN_MAX, the end clipped to the LUN
 * size. false when there is none. */
bool dirty_bitmap_next(struct dirty_bitmap *b, uint64_t from, uint64_t *off, uint64_t *len);
/* Bytes in dirty extents, clipped to the LUN size. */
uint64_t dirty_bitmap_dirty_bytes(const struct dirty_bitmap *b);
/* Clear (in memory) every extent that [off, off+len) touches. */
void dirty_bitmap_clear_range(struct dirty_bitmap *b, uint64_t off, uint64_t len);
/* Everything resynced and acknowledged: clear all, durably (the tag too). */
int dirty_bitmap_clear_all(struct dirty_bitmap *b, ipm_error *err);

/* A full copy that can resume after a restart (doc/generations.md): the
 * file's tag names the fill (the mirror's id of its partial copy) whose
 * to-do list the file is; 0 none. Set it, durably, only once the extents
 * it vouches for are durably marked (dirty_bitmap_sync). */
uint64_t dirty_bitmap_tag(const struct dirty_bitmap *b);
int dirty_bitmap_set_tag(struct dirty_bitmap *b, uint64_t tag, ipm_error *err);
/* The one exception to the OR rule: the file becomes what is marked now,
 * clears included. Only when every extent cleared since the last commit was
 * copied and the peer's copy of it is durable (the caller's promise). */
int dirty_bitmap_commit(struct dirty_bitmap *b, ipm_error *err);
/* Mark again, in memory, everything the file still holds: clears not
 * committed are undone (a copy the peer may have lost is made again). */
void dirty_bitmap_restore(struct dirty_bitmap *b);

#endif
