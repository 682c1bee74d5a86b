/* heartbeat.h - the UDP heartbeat with the peer (see doc/heartbeat.md).
 *
 * One UDP socket per peer, bound at our <heartbeat> address, with a sender
 * thread (every interval: age the attached connection arrays, then send a
 * datagram) and a receiver thread (check each datagram, feed the probation
 * state machine, refresh the arrays while the peer is UP).
 */
#ifndef IPM_HEARTBEAT_H
#define IPM_HEARTBEAT_H

#include <stdbool.h>
#include <stdint.h>
#include "ipmirror.h"

struct heartbeat;
struct ipm_endpoint;
struct auth_secret;
struct connection_array;

/* connection arrays: a LUN's own session in each direction, and the
 * listener's (doc/roles.md) */
#define HB_MAX_ARRAYS (2 + 2 * 256)

struct hb_params {
	const char *self, *peer;                   /* node names, < IPM_NAME_MAX */
	const struct ipm_endpoint *local, *remote; /* UDP address:port of each */
	const struct auth_secret *secret;          /* copied */
	double interval, timeout, probation;       /* seconds; timeout > interval */
	enum ipm_hb_method method;                 /* which heartbeats decide */
	const char *state_path;                    /* hb_state.h file; NULL: none kept */
};

/* Random, chosen once per process: both heartbeat paths carry it. */
uint64_t heartbeat_boot_id(void);
/* This process's boot counter (0 before the first heartbeat_create): one
 * above the last one kept in the state file, carried by every datagram. */
uint64_t heartbeat_boot(void);

/* Validate p and bind the UDP socket at local address:port. */
int heartbeat_create(const struct hb_params *p, struct heartbeat **out, ipm_error *err);
/* Let the heartbeat age and refresh ca (at most HB_MAX_ARRAYS; -ENOSPC
 * beyond). Returns 0. May be called while the heartbeat runs. */
int heartbeat_attach(struct heartbeat *hb, struct connection_array *ca);
/* Forget ca; on return the heartbeat's threads no longer touch it (it may
 * be destroyed). */
void heartbeat_detach(struct heartbeat *hb, struct connection_array *ca);
/* Call fn(opaque) whenever a path's state changes (under the heartbeat's
 * lock: fn only wakes a thread), and whenever a connection array attached
 * after this call goes up or down. Call before heartbeat_start. */
void heartbeat_set_notify(struct heartbeat *hb, void (*fn)(void *), void *opaque);
/* Start the sender and receiver threads. */
int heartbeat_start(struct heartbeat *hb, ipm_error *err);
/* Stop and join both threads (promptly; safe when not started). */
void heartbeat_stop(struct heartbeat *hb);
/* Stop, close the socket, free. NULL allowed. */
void heartbeat_destroy(struct heartbeat *hb);

/* The peer as the method judges it (udp: the UDP path; storage: the
 * storage path; both: down only when both are): IPM_LINK_UP, _DOWN or
 * _PROBATION, evaluated now. */
enum ipm_link_state heartbeat_state(struct heartbeat *hb);
/* True when connections to the peer may be (re-)established and are kept
 * alive: the verdict is UP (under `storage`, also the UDP path alone, so
 * that the storage heartbeat can resume after an outage). */
bool heartbeat_may_connect(struct heartbeat *hb);
/* Each path on its own; the storage path is IPM_LINK_OFF when disabled. */
enum ipm_link_state heartbeat_udp_state(struct heartbeat *hb);
enum ipm_link_state heartbeat_storage_state(struct heartbeat *hb);
/* ms since the peer's storage serial last advanced; -1 never / off. */
int64_t heartbeat_storage_age_ms(struct heartbeat *hb);
enum ipm_hb_method heartbeat_method(struct heartbeat *hb);
void heartbeat_set_method(struct heartbeat *hb, enum ipm_hb_method m);
/* New interval, timeout and probation (a reload; seconds, timeout >
 * interval): from the next send and the next check of the arrays. */
int heartbeat_set_times(struct heartbeat *hb, double interval, double timeout,
			double probation, ipm_error *err);
/* A heartbeat volume was installed (true) or removed (false). */
void heartbeat_storage_enable(struct heartbeat *hb, bool on);
/* The peer's storage record advanced (its boot id): feeds the storage
 * path's probation, and refreshes the connections as a datagram would. */
void heartbeat_storage_record(struct heartbeat *hb, uint64_t boot_id);
/* The peer uninstalled its volume: its silence says nothing about the
 * replication path any more (as before it was first heard). */
void heartbeat_storage_peer_retired(struct heartbeat *hb);
/* ms since the last valid datagram; -1 when never heard. */
int64_t heartbeat_age_ms(struct heartbeat *hb);
/* ms of probation still to go; 0 unless in PROBATION. */
int64_t heartbeat_probation_left_ms(struct heartbeat *hb);
/* Datagrams dropped: bad size/format/HMAC, wrong node, replay. */
uint64_t heartbeat_dropped(struct heartbeat *hb);

#endif
