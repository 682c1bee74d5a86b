/* lun_size.h - a LUN's size beyond its config (doc/resize.md): the checks
 * of a grow and the size a grow recorded on this node. A leaf: no calls
 * into the engine (lun.c reads the file at every open; resize.c and the
 * mirror's resize_serve.c check and write). */
#ifndef IPM_LUN_SIZE_H
#define IPM_LUN_SIZE_H

#include <stdbool.h>
#include <stdint.h>
#include "ipmirror.h"

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
/* Replace it atomically and durably. 0 or -errno with err set. */
int resize_record(const char *journal_path, uint64_t size, ipm_error *err);
/* Back to what it held before a grow the mirror refused: prev when had,
 * else no file. */
int resize_unrecord(const char *journal_path, bool had, uint64_t prev, ipm_error *err);

#endif
