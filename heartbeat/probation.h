/* probation.h - the peer's liveness as judged from heartbeats (doc/heartbeat.md).
 *
 * A pure state machine: every call takes the current monotonic time in ms,
 * so tests drive it with synthetic times. Not thread-safe; the heartbeat
 * serialises calls under its lock.
 *
 *   DOWN  (never heard) --first valid datagram-->           UP
 *   UP    --no datagram for > timeout-->                     DOWN
 *   UP    --datagram from a new peer boot-->                 PROBATION
 *   DOWN  (heard before) --valid datagram-->                 PROBATION
 *   PROBATION --gap > 1.5 x interval / new peer boot-->      PROBATION (restarted)
 *   PROBATION --no datagram for > timeout-->                 DOWN
 *   PROBATION --probation unbroken-->                        UP
 */
#ifndef IPM_PROBATION_H
#define IPM_PROBATION_H

#include <stdbool.h>
#include <stdint.h>
#include "ipmirror.h"

struct probation {
	char peer[IPM_NAME_MAX];       /* for log lines */
	char path[24];                 /* for log lines: "heartbeat" by default */
	int64_t interval_ms;
	int64_t timeout_ms;
	int64_t probation_ms;
	int64_t gap_ms;                /* a longer silence is a missed heartbeat */
	enum ipm_link_state state;
	bool heard;                    /* any valid datagram since start */
	int64_t last_ms;               /* time of the last valid datagram */
	int64_t since_ms;              /* start of the current probation */
	int64_t entered_ms;            /* when it entered probation (a restart
					* of it does not move this) */
	uint64_t boot_id;              /* the peer's, from the last datagram */
	/* called on every state change: only wakes a thread */
	void (*notify)(void *opaque);
	void *notify_opaque;
};

/* Seconds as configured; probation 0 = reconnect at once. No notify. */
void prob_init(struct probation *p, const char *peer, double interval, double timeout,
	       double probation);
/* New times (a reload), keeping the state and what was heard: a running
 * probation now needs the new length, counted from its start. */
void prob_set_times(struct probation *p, double interval, double timeout, double probation);
/* A valid datagram from peer boot boot_id arrived at now. Returns the state. */
enum ipm_link_state prob_datagram(struct probation *p, int64_t now, uint64_t boot_id);
/* Time passes: apply timeouts and completed probation. Returns the state. */
enum ipm_link_state prob_tick(struct probation *p, int64_t now);
/* ms since the last valid datagram, -1 when never heard. */
int64_t prob_age_ms(const struct probation *p, int64_t now);
/* ms of probation still to go; 0 unless in PROBATION. */
int64_t prob_left_ms(const struct probation *p, int64_t now);

#endif
