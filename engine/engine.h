/* engine.h - the engine object (internal). */
#ifndef IPM_ENGINE_H
#define IPM_ENGINE_H

#include <pthread.h>
#include "ipmirror.h"
#include "config.h"
#include "wire.h"

struct ipm_engine {
	ipm_config *cfg;                    /* private copy */
	char node[IPM_NAME_MAX];
	const struct ipm_node_cfg *self;
	const struct ipm_node_cfg *peer;    /* NULL with a one-node config */
	struct ipm_lun **luns;
	size_t n_luns;
	bool started;
	/* mirroring, present when the config mirrors LUNs between two nodes */
	struct auth_secret *secret;
	struct replicator *rep;             /* we are primary for some LUNs */
	struct receiver *rcv;               /* the peer is primary for some */
	struct heartbeat *hb;               /* UDP heartbeat with the peer */
	/* storage-path heartbeat (hb_volume.c): installed and removed while
	 * connection threads hand it the peer's slots, hence the lock */
	pthread_rwlock_t hb_lock;
	struct storage_hb *shb;             /* NULL: no heartbeat volume */
	bool shb_unexpected_logged;
};

/* hb_volume.c */
/* Open the configured heartbeat volume (create time); started with the engine. */
int hbvol_setup(ipm_engine *e, ipm_error *err);
int hbvol_start(ipm_engine *e, ipm_error *err);
void hbvol_stop(ipm_engine *e);
void hbvol_destroy(ipm_engine *e);
/* An HBSLOT frame arrived on a mirror connection (any thread): the
 * replicator's and the receiver's hbslot sink (engine is the ipm_engine). */
void hbvol_received(void *engine, unsigned slot, const uint8_t *data);
/* Status fields of the storage heartbeat. */
void hbvol_status(ipm_engine *e, ipm_status *st);

#endif
