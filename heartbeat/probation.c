/* probation.c - the peer's heartbeat state machine (see probation.h). */
#include <stdio.h>
#include <syslog.h>
#include <qb/qblog.h>

#include "probation.h"

static int64_t secs_to_ms(double s)
{
	return s > 0 ? (int64_t)(s * 1000.0 + 0.5) : 0;
}

void prob_init(struct probation *p, const char *peer, double interval, double timeout,
	       double probation)
{
	*p = (struct probation){
		.interval_ms = secs_to_ms(interval),
		.timeout_ms = secs_to_ms(timeout),
		.probation_ms = secs_to_ms(probation),
		.state = IPM_LINK_DOWN,
	};
	/* one lost datagram plus scheduling jitter, not mere jitter */
	p->gap_ms = p->interval_ms + p->interval_ms / 2;
	snprintf(p->peer, sizeof(p->peer), "%s", peer ? peer : "?");
	snprintf(p->path, sizeof(p->path), "heartbeat");
}

void prob_set_times(struct probation *p, double interval, double timeout, double probation)
{
	p->interval_ms = secs_to_ms(interval);
	p->timeout_ms = secs_to_ms(timeout);
	p->probation_ms = secs_to_ms(probation);
	p->gap_ms = p->interval_ms + p->interval_ms / 2;
}

static void set_state(struct probation *p, enum ipm_link_state to, int prio, const char *why)
{
	qb_log(prio, "peer %s %s: %s -> %s (%s)", p->peer, p->path, ipm_link_name(p->state),
	       ipm_link_name(to), why);
	p->state = to;
	if (p->notify)
		p->notify(p->notify_opaque);
}

static void enter_probation(struct probation *p, int64_t now, const char *why)
{
	char msg[96];

	if (p->probation_ms == 0 && p->state == IPM_LINK_UP) {
		qb_log(LOG_NOTICE, "peer %s %s: %s, no probation configured", p->peer, p->path, why);
		return;
	}
	if (p->probation_ms == 0) {
		snprintf(msg, sizeof(msg), "%s; no probation configured", why);
		set_state(p, IPM_LINK_UP, LOG_NOTICE, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "%s; probation %.1f s", why, p->probation_ms / 1000.0);
	set_state(p, IPM_LINK_PROBATION, LOG_NOTICE, msg);
	p->since_ms = p->entered_ms = now;
}

static void restart_probation(struct probation *p, int64_t now, const char *why)
{
	qb_log(LOG_NOTICE, "peer %s %s: probation restarted (%s), %.1f s to go",
	       p->peer, p->path, why, p->probation_ms / 1000.0);
	p->since_ms = now;
}

enum ipm_link_state prob_tick(struct probation *p, int64_t now)
{
	char msg[96];

	if (p->state != IPM_LINK_DOWN && p->heard && now - p->last_ms > p->timeout_ms) {
		snprintf(msg, sizeof(msg), "no valid heartbeat for %.1f s",
			 (now - p->last_ms) / 1000.0);
		set_state(p, IPM_LINK_DOWN, LOG_WARNING, msg);
	} else if (p->state == IPM_LINK_PROBATION && now - p->since_ms >= p->probation_ms &&
		   now - p->last_ms <= p->gap_ms) {
		/* a silence longer than gap_ms is a missed heartbeat that the
		 * next datagram will count: not unbroken */
		snprintf(msg, sizeof(msg), "%.1f s of unbroken heartbeats",
			 (now - p->since_ms) / 1000.0);
		set_state(p, IPM_LINK_UP, LOG_NOTICE, msg);
	}
	return p->state;
}

enum ipm_link_state prob_datagram(struct probation *p, int64_t now, uint64_t boot_id)
{
	bool rebooted, gap;
	char msg[64];

	prob_tick(p, now);  /* a silence past the timeout ends UP first */
	rebooted = p->heard && boot_id != p->boot_id;
	gap = p->heard && now - p->last_ms > p->gap_ms;
	switch (p->state) {
	case IPM_LINK_DOWN:
		/* nothing was lost before the first contact: no probation */
		if (!p->heard)
			set_state(p, IPM_LINK_UP, LOG_NOTICE, "first contact");
		else
			enter_probation(p, now, rebooted ? "peer restarted" : "heartbeats back");
		break;
	case IPM_LINK_UP:
		/* the peer lost its connections and state: treat as a return */
		if (rebooted)
			enter_probation(p, now, "peer restarted");
		break;
	case IPM_LINK_PROBATION:
		if (rebooted) {
			restart_probation(p, now, "peer restarted");
		} else if (gap) {
			snprintf(msg, sizeof(msg), "missed heartbeat: %.1f s gap",
				 (now - p->last_ms) / 1000.0);
			restart_probation(p, now, msg);
		}
		break;
	default:
		break;
	}
	p->heard = true;
	p->last_ms = now;
	p->boot_id = boot_id;
	return prob_tick(p, now);
}

int64_t prob_age_ms(const struct probation *p, int64_t now)
{
	return p->heard ? now - p->last_ms : -1;
}

int64_t prob_left_ms(const struct probation *p, int64_t now)
{
	int64_t left;

	if (p->state != IPM_LINK_PROBATION)
		return 0;
	left = p->since_ms + p->probation_ms - now;
	return left > 0 ? left : 0;
}
