/* resize.h - growing a LUN online (doc/resize.md): the checks, the size a
 * grow recorded on this node, and the grow of this node's files. */
#ifndef IPM_RESIZE_H
#define IPM_RESIZE_H

#include <stdbool.h>
#include <stdint.h>
#include "ipmirror.h"

struct ipm_lun;

/* A grow of lun from cur to want bytes on a backing of backing bytes at
 * path. Pure. 0: go ahead; 1: it has that size already (a note in err);
 * -EINVAL (a shrink, not a multiple of 512, past the largest LUN) or
 * -EFBIG (past the backing) with the reason in err. */
int resize_check(const char *lun, uint64_t cur, uint64_t want, const char *path,
		 uint64_t backing, ipm_error *err);

/* The size file of a LUN (JOURNAL.size): written by a grow, read at every
 * open. 0 and *size, -ENOENT when the LUN never grew here, or another
 * -errno with err set (a damaged file). */
int resize_recorded(const char *journal_path, uint64_t *size, ipm_error *err);
int resize_record(const char *journal_path, uint64_t size, ipm_error *err);

/* This node's side of a grow of l to size (checked with resize_check):
 * the size file, the dirty bitmap (its new extents dirty when sync_new:
 * the primary's, which the resync copies to the peer; the mirror's stay
 * clean) and the activity log grow, then l->size. Called with no host
 * request on l (its gate held), or on the mirror in the order of its
 * requests. */
int resize_grow_here(struct ipm_lun *l, uint64_t size, bool sync_new, ipm_error *err);

#endif
