/* lun_ops.h - what a host request goes down to below host_io.c: the
 * replicator for a LUN mirrored from here, else the backing store. Like
 * nbdkit's backend chain, a layer only calls the one below it; the
 * replicator itself ends in backing.c. Range and role are checked above. */
#ifndef IPM_LUN_OPS_H
#define IPM_LUN_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "ipmirror.h"

struct ipm_lun;

struct lun_ops {
	int (*read)(struct ipm_lun *l, void *buf, size_t len, uint64_t off);
	int (*write)(struct ipm_lun *l, const void *buf, size_t len, uint64_t off,
		     unsigned flags);
	/* independent writes; fills w[i].rc */
	void (*write_batch)(struct ipm_lun *l, ipm_write *w, unsigned n);
	int (*flush)(struct ipm_lun *l);
	int (*trim)(struct ipm_lun *l, uint64_t len, uint64_t off, unsigned flags);
	int (*zero)(struct ipm_lun *l, uint64_t len, uint64_t off, unsigned flags);
};

#endif
