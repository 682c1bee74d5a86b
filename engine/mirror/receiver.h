/* receiver.h - the mirror's side: a listener and n connection threads that
 * receive mirror requests for the LUNs the peer is primary of, apply them in
 * an order that keeps the mirror crash-consistent, and answer each. */
#ifndef IPM_RECEIVER_H
#define IPM_RECEIVER_H

#include "connection_array.h"
#include "wire.h"

struct receiver;

/* luns: the engine's LUN table (it outlives the receiver); the receiver
 * serves the mirrored ones this node is mirror of. */
int receiver_create(ipm_engine *e, const struct auth_secret *secret, struct ipm_lun **luns,
		    unsigned n_luns, struct receiver **out, ipm_error *err);
/* The receiver of one LUN's own session (a peer of version 5): no
 * listener; the engine's listener (the receiver above) hands it the
 * connections of l's sessions once authenticated (e->route, l->rcv). */
int receiver_create_lun(ipm_engine *e, const struct auth_secret *secret, struct ipm_lun *l,
			struct receiver **out, ipm_error *err);
int receiver_start(struct receiver *rc, ipm_error *err);
void receiver_stop(struct receiver *rc);
void receiver_destroy(struct receiver *rc);

struct connection_array *receiver_connections(struct receiver *rc);
/* Send our heartbeat-volume slot back on an up incoming connection: 0,
 * -ENOTCONN when none is up, or the send's error. */
int receiver_send_hbslot(struct receiver *rc, unsigned slot, const uint8_t *data);
/* A mirror LUN is up to date only while its primary is connected and not
 * replaying a journal to it; otherwise outdated or resyncing. */
enum ipm_lun_state receiver_lun_state(struct receiver *rc, struct ipm_lun *l);

/* Close the primary's connections (why: for the log) so that it shakes
 * hands again and hears the LUNs' new verdicts (an invalidated copy asks
 * for the whole LUN). Its unanswered requests are journaled and resynced,
 * as after a short outage. */
void receiver_reconnect(struct receiver *rc, const char *why);

/* The sink of the HBSLOT frames this side receives (before start). */
void receiver_set_hbslot_sink(struct receiver *rc, wire_hbslot_fn fn, void *opaque);

#endif
