/* remote_read.h - a failing local disk on the primary (doc/io-errors.md):
 * reads the backing fails are served from the mirror's copy (a failed
 * write takes the local disk out of service: lun_disk.c). */
#ifndef IPM_REMOTE_READ_H
#define IPM_REMOTE_READ_H

#include <stddef.h>
#include <stdint.h>
#include "wire.h"

struct replicator;
struct ipm_lun;
struct mreq;

/* The replicator's read (replicator_ops): the local copy, or the mirror's
 * when the local read fails with an error of the disk or the disk failed. */
int remote_read_op(struct ipm_lun *l, void *buf, size_t len, uint64_t off);
/* [off, off+len) from the mirror's copy: 0, or -EIO when it cannot be
 * had (the link not live, the mirror not up to date, a version 4 peer,
 * its read failed); the reason is logged. */
int remote_read(struct replicator *r, struct ipm_lun *l, void *buf, size_t len, uint64_t off);
/* worker.c, r->lock held: the answer to a READ (a READ_REPLY's bytes; an
 * ACK, a duplicate's, carries none). */
void remote_read_answer_locked(struct mreq *m, const struct wire_frame *f,
			       const uint8_t *payload);
#endif
