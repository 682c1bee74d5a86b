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
	struct ipm_lun **luns;              /* max_luns slots; never moves */
	size_t n_luns;                      /* grows at run time (atomic) */
	size_t max_luns;
	bool started;
	/* mirroring, present when the config mirrors LUNs between two nodes */
	struct auth_secret *secret;
	struct ipm_tls_creds *tls_client;   /* <tls mode> != off (mirror_tls.c) */
	struct ipm_tls_creds *tls_server;
	/* each mirrored LUN has a session of its own (lun_admin.c): its
	 * replicator (l->rep) where this node is its primary, its receiver
	 * (l->rcv) where it is the mirror, which the listener below routes the
	 * peer's session of it to. Created and destroyed at run time by role
	 * changes, down and up, under admin. */
	struct receiver *rcv;               /* the listener (the "hub"), from the
					     * first LUN mirrored here on; it also
					     * serves a version 4 peer's sessions */
	struct heartbeat *hb;               /* UDP heartbeat with the peer */
	/* Lock order: a LUN's gate, admin, route, then the replicators' and
	 * receivers' own. admin: one role change, down or up at a time, and
	 * l->rep / l->rcv stay while status reads them. route: l->rcv as the
	 * listener hands a session over to it. */
	pthread_mutex_t admin;
	pthread_mutex_t route;
	/* A peer of version 4 keeps one session at a time from us: the LUNs
	 * primary here then share one replicator (doc/roles.md). Changed
	 * under admin with every mirrored LUN's gate held; read atomically. */
	bool grouped;
	uint16_t peer_version;              /* the last one a session spoke (atomic) */
	bool regrouping;                    /* a regroup thread runs (atomic) */
	/* storage-path heartbeat (hb_volume.c): installed and removed while
	 * connection threads hand it the peer's slots, hence the lock */
	pthread_rwlock_t hb_lock;
	struct storage_hb *shb;             /* NULL: no heartbeat volume */
	bool shb_unexpected_logged;
	/* ipm_engine_set_notify: atomic (set while threads run); opaque is
	 * stored before fn, read after it */
	ipm_notify_fn notify;
	void *notify_opaque;
};

/* lun_admin.c: a mirrored LUN's session objects (admin held, or creating
 * the engine) */
/* Create l's replicator (primary here) or receiver (mirror here, and the
 * listener if there is none yet), started when the engine runs. */
int lun_mirror_attach(ipm_engine *e, struct ipm_lun *l, ipm_error *err);
/* A change of l (role, down, up, resize) begins: no host request runs on
 * it from here until lun_change_end (its gate, every mirrored LUN's when
 * they are grouped for a version 4 peer: *all says so), then admin. */
void lun_change_begin(ipm_engine *e, struct ipm_lun *l, bool *all);
void lun_change_end(ipm_engine *e, struct ipm_lun *l, bool all);
/* Stop and destroy them (the replicator drains what is in flight). */
void lun_mirror_detach(ipm_engine *e, struct ipm_lun *l);
/* Every LUN's replicator closed, a group's once (engine destroy). */
void primaries_detach(ipm_engine *e);
int lun_mirror_start(ipm_engine *e, struct ipm_lun *l, ipm_error *err);
void lun_mirror_stop(ipm_engine *e, struct ipm_lun *l);
/* Mirror here: the state its receivers see (admin held). */
enum ipm_lun_state lun_mirror_state(struct ipm_lun *l);
/* Mirror here: close the primary's connections of it (admin held). */
void lun_mirror_reconnect(struct ipm_lun *l, const char *why);
/* Wait for that thread (engine stop). */
void engine_regroup_wait(ipm_engine *e);
/* Tell the admin side that something it shows may have changed (any
 * thread, any lock held: the callback only wakes a thread). */
void engine_notify(ipm_engine *e);
/* The same with the engine as a void pointer (connection arrays, heartbeat). */
void engine_notify_cb(void *engine);

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
