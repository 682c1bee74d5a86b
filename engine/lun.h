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
	ipm_config *own_cfg;          /* added at run time: the config cfg is in */
	uint16_t cfg_index;           /* cfg's place in its config: the LUN's wire id */
	bool removed;                 /* ipm_engine_lun_remove: gone from lookups (the
				       * object stays until the engine goes) */
	char path[4096];
	/* the journal's path (config, or BACKING.journal); the bitmap, activity
	 * log and generation file are this path plus a suffix */
	char journal_path[4200];
	int fd;                       /* buffered I/O, flush, trim */
	int dfd;                      /* O_DIRECT (io="direct"), or -1 */
	struct io_phase phase;        /* backing.c: direct writes and cached I/O
				       * take turns */
	uint32_t dio_mem_align;       /* buffer address alignment O_DIRECT needs */
	uint32_t dio_off_align;       /* offset and length alignment O_DIRECT needs */
	bool is_blockdev;
	uint64_t size;                /* grown at run time by resize.c (atomic) */
	/* host requests hold gate shared from their check to their answer; a
	 * role change, down and up (lun_admin.c) take it exclusive to change
	 * role, ops, rep, rcv and down. Writer-preferring: a busy LUN gets its
	 * role change. Lock order: before anything of the engine's. */
	pthread_rwlock_t gate;
	enum ipm_role role;
	bool down;                    /* ipm_engine_lun_down: out of service here */
	const struct lun_ops *ops;    /* where host requests go: backing_ops, or
				       * replicator_ops once mirrored from here */
	enum ipm_lun_state state;
	bool insync;                  /* mirror here: the last resync completed (atomic) */
	/* mirroring: set when the LUN is mirrored, by the side that uses it */
	uint32_t wire_index;          /* index in its replicator's LUN list */
	struct replicator *rep;       /* primary here: sends our writes (its own
				       * session; the direction's with a peer
				       * of version 4) */
	struct receiver *rcv;         /* mirror here: the receiver of its own
				       * session (a peer of version 5; the
				       * engine's listener routes it there) */
	/* data generations (mirrored LUNs; doc/generations.md): generation.c's */
	struct lun_gen g;
	/* host requests (host_io.c; atomic, relaxed: statistics only) */
	uint64_t host_written, host_read; /* bytes completed without error */
	uint32_t host_inflight;           /* requests between entry and return */
	uint64_t host_inflight_bytes;     /* their bytes */
	uint64_t local_io_errors;         /* backing.c: reads/writes/syncs failed (atomic) */
	/* a failing local disk (lun_disk.c, remote_read.c, doc/io-errors.md) */
	pthread_mutex_t disk_lock;        /* leaf: one failure is handled at a time */
	bool disk_failed;                 /* a write failed: out of service until
					   * replaced (invalidate, or a restart);
					   * set once this copy is marked invalid
					   * (atomic) */
	uint64_t remote_reads;            /* host reads served from the peer's copy */
	uint64_t write_lat[IPM_LAT_BUCKETS + 1]; /* ipm_lun_status.write_lat */
	uint64_t write_lat_sum_us;
	uint64_t mirror_lat[IPM_LAT_BUCKETS + 1]; /* ipm_lun_status.mirror_lat */
	uint64_t mirror_lat_sum_us;
	/* the last handshake refused for this LUN (lun_note_refusal) */
	pthread_mutex_t refusal_lock;     /* leaf */
	char refusal[192];
	int64_t refusal_ms;               /* when (monotonic); 0 none */
};

/* 0 when the LUN takes host requests now (gate held shared by the
 * caller): -EPERM when this node is not its primary or it is down. */
int lun_serving(const struct ipm_lun *l);

int lun_open(ipm_engine *e, const struct ipm_lun_cfg *cfg, struct ipm_lun **out,
	     ipm_error *err);
void lun_close(struct ipm_lun *l);
/* The backing store's descriptors (lun_open's; again at up), checked
 * against the config's size (or the one an online grow recorded), and
 * closed (at down). */
int lun_files_open(struct ipm_lun *l, ipm_error *err);
void lun_files_close(struct ipm_lun *l);
/* The backing store's size now (an admin may have grown it). 0 or -errno. */
int lun_backing_size(struct ipm_lun *l, uint64_t *size);
/* This node's side of a grow of l to size (checked with resize_check,
 * doc/resize.md): the size file, the dirty bitmap (its new extents dirty
 * when sync_new: the primary's, which the resync copies to the peer; the
 * mirror's stay clean) and the activity log grow, then l->size. Called
 * with no host request on l (its gate held), or on the mirror in the
 * order of its requests. */
int lun_grow(struct ipm_lun *l, uint64_t size, bool sync_new, ipm_error *err);

/* A handshake for l was refused (by either side): keep why for status and
 * wake the admin side. Any thread; takes only l->refusal_lock. */
void lun_note_refusal(struct ipm_lun *l, const char *why);
/* n events of us microseconds each into a latency histogram (IPM_LAT_BOUNDS_US
 * buckets and +Inf, relaxed atomics): write_lat, mirror_lat */
void lun_lat_observe(uint64_t *buckets, uint64_t *sum_us, uint64_t us, unsigned n);
/* Copy the last refusal and its age (-1: none) for status. */
void lun_refusal(struct ipm_lun *l, char *buf, size_t len, int64_t *age_ms);

/* A local write (or trim, zero, flush) failed with rc (lun_disk.c): when
 * it is the disk's fault, this copy is marked invalid in its generation
 * file (durably, before this returns: the failure may be answered then),
 * the disk is failed (l->disk_failed), logged crit once. Either role; it
 * may block (a file save): call it with no lock held. */
void lun_disk_write_error(struct ipm_lun *l, const char *what, uint64_t off, int rc);
/* rc is a failure of the backing store itself, not of the request */
bool disk_error(int rc);

/* Range check shared by host requests and mirrored requests. */
bool lun_range_ok(const struct ipm_lun *l, uint64_t len, uint64_t off);

#endif
