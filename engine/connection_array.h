/* connection_array.h - the shared truth about the n connections to the peer
 * in one direction: n elements {socket, timestamp, status}.
 *
 * Owners of a connection set their element up/down; whatever proves the peer
 * alive (heartbeats, traffic) refreshes timestamps; the heartbeat sender ages
 * them and marks stale ones down, which the owning thread sees and acts on. */
#ifndef IPM_CONNECTION_ARRAY_H
#define IPM_CONNECTION_ARRAY_H

#include <pthread.h>
#include <stdint.h>
#include "clock.h"
#include "config.h"

struct ca_elem {
	int fd;                  /* -1 when not connected */
	int64_t timestamp_ms;    /* monotonic; 0 = never */
	int64_t up_ms;           /* monotonic: when it last came up */
	enum ipm_link_state status;
};

struct connection_array {
	pthread_mutex_t lock;
	pthread_cond_t changed;  /* broadcast on every status change */
	unsigned n;
	struct ca_elem e[IPM_CONN_MAX];
	/* called (under lock) on every status change: must only wake a
	 * thread (ipm_engine_set_notify) */
	void (*notify)(void *opaque);
	void *notify_opaque;
};

int ca_init(struct connection_array *ca, unsigned n);
void ca_destroy(struct connection_array *ca);
/* Call fn(opaque) on every status change (before any thread uses ca). */
void ca_set_notify(struct connection_array *ca, void (*fn)(void *), void *opaque);

void ca_set_up(struct connection_array *ca, unsigned i, int fd);
void ca_set_down(struct connection_array *ca, unsigned i);
/* Mark element i down only if it still belongs to fd (a newer connection
 * may have taken the index meanwhile). */
void ca_release(struct connection_array *ca, unsigned i, int fd);
/* Refresh element i only (traffic seen on that connection). */
void ca_refresh(struct connection_array *ca, unsigned i);
/* Refresh every element: a valid heartbeat proves the peer alive. */
void ca_refresh_all(struct connection_array *ca);
/* Refresh the up elements that came up at since_ms or later: a valid
 * heartbeat during probation keeps the connections the peer opened in it
 * (doc/heartbeat.md), not those from before it. */
void ca_refresh_since(struct connection_array *ca, int64_t since_ms);
/* Mark down every up element whose timestamp is older than timeout_ms;
 * returns how many were marked. */
unsigned ca_mark_stale_down(struct connection_array *ca, int64_t timeout_ms);
enum ipm_link_state ca_status(struct connection_array *ca, unsigned i);
unsigned ca_count_up(struct connection_array *ca);
/* Wait until element i's status differs from `from`, or timeout_ms passes.
 * Returns the status then. */
enum ipm_link_state ca_wait_change(struct connection_array *ca, unsigned i,
				   enum ipm_link_state from, int timeout_ms);
/* Fill out[0..n-1]. */
void ca_snapshot(struct connection_array *ca, ipm_conn_status *out, bool outgoing);

#endif
