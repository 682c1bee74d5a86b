/* lun.h - one volume on this node: its backing store and its role. */
#ifndef IPM_LUN_H
#define IPM_LUN_H

#include <pthread.h>
#include "engine.h"

struct ipm_lun {
	ipm_engine *engine;
	const struct ipm_lun_cfg *cfg;
	char path[4096];
	int fd;
	bool is_blockdev;
	uint64_t size;
	pthread_rwlock_t role_lock;   /* held for reading by every host request */
	enum ipm_role role;
	enum ipm_lun_state state;
	bool insync;                  /* mirror here: the last resync completed (atomic) */
	/* mirroring: set when the LUN is mirrored, by the side that uses it */
	uint32_t wire_index;          /* index in its direction's LUN list */
	struct replicator *rep;       /* primary here: sends our writes */
};

int lun_open(ipm_engine *e, const struct ipm_lun_cfg *cfg, struct ipm_lun **out,
	     ipm_error *err);
void lun_close(struct ipm_lun *l);

/* Range check shared by host requests and mirrored requests. */
bool lun_range_ok(const struct ipm_lun *l, uint64_t len, uint64_t off);

/* Operations on the local backing store only (no mirroring). */
int lun_local_write(struct ipm_lun *l, const void *buf, size_t len, uint64_t off,
		    unsigned flags);
int lun_local_flush(struct ipm_lun *l);
int lun_local_trim(struct ipm_lun *l, uint64_t len, uint64_t off);
int lun_local_zero(struct ipm_lun *l, uint64_t len, uint64_t off);

#endif
