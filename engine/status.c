/* status.c - a consistent snapshot of the engine's state for admins. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heartbeat.h"
#include "lun.h"
#include "receiver.h"
#include "replicator.h"

/* The running resync's average rate since it started, and the time left
 * at that rate (the resync rate limit, when set, caps both). */
static void resync_progress(ipm_lun_status *s)
{
	uint64_t left;

	s->resync_rate = 0;
	s->resync_eta_s = -1;
	if (s->state != IPM_STATE_RESYNCING || s->resync_elapsed_ms <= 0 ||
	    !s->resync_total_bytes)
		return;
	s->resync_rate = s->resync_done_bytes * 1000 / (uint64_t)s->resync_elapsed_ms;
	left = s->resync_total_bytes > s->resync_done_bytes ?
	       s->resync_total_bytes - s->resync_done_bytes : 0;
	if (s->resync_rate)
		s->resync_eta_s = (int64_t)((left + s->resync_rate - 1) / s->resync_rate);
}

static void lun_snapshot(struct ipm_lun *l, ipm_lun_status *s)
{
	unsigned i;

	snprintf(s->name, sizeof(s->name), "%s", l->cfg->name);
	s->role = l->role;
	s->state = __atomic_load_n(&l->state, __ATOMIC_RELAXED);
	s->mode = l->cfg->mode;
	s->mirrored = l->cfg->mirrored;
	s->size = l->size;
	s->direct_io = l->dfd >= 0;
	s->written_bytes = __atomic_load_n(&l->host_written, __ATOMIC_RELAXED);
	s->read_bytes = __atomic_load_n(&l->host_read, __ATOMIC_RELAXED);
	s->inflight = __atomic_load_n(&l->host_inflight, __ATOMIC_RELAXED);
	s->inflight_bytes = __atomic_load_n(&l->host_inflight_bytes, __ATOMIC_RELAXED);
	s->local_io_errors = __atomic_load_n(&l->local_io_errors, __ATOMIC_RELAXED);
	s->disk_failed = __atomic_load_n(&l->disk_failed, __ATOMIC_RELAXED);
	s->remote_reads = __atomic_load_n(&l->remote_reads, __ATOMIC_RELAXED);
	for (i = 0; i <= IPM_LAT_BUCKETS; i++)
		s->write_lat[i] = __atomic_load_n(&l->write_lat[i], __ATOMIC_RELAXED);
	s->write_lat_sum_us = __atomic_load_n(&l->write_lat_sum_us, __ATOMIC_RELAXED);
	for (i = 0; i <= IPM_LAT_BUCKETS; i++)
		s->mirror_lat[i] = __atomic_load_n(&l->mirror_lat[i], __ATOMIC_RELAXED);
	s->mirror_lat_sum_us = __atomic_load_n(&l->mirror_lat_sum_us, __ATOMIC_RELAXED);
	lun_refusal(l, s->refusal, sizeof(s->refusal), &s->refusal_age_ms);
	if (l->rep)
		replicator_lun_status(l->rep, l, s);
	else if (l->cfg->mirrored)
		s->state = lun_mirror_state(l);
	if (!l->cfg->mirrored) {
		snprintf(s->generation, sizeof(s->generation), "%s", "none");
		if (l->down)
			s->state = IPM_STATE_DOWN;
		return;
	}
	lun_gen_string(l, s->generation, sizeof(s->generation));
	s->consistent = lun_gen_consistent(l);
	s->peer_inconsistent = l->role == IPM_ROLE_PRIMARY && lun_gen_peer_invalid(l);
	/* a copy being filled whole holds no image of anything until the
	 * copy ends: never up to date, never promotable; nor is one whose
	 * disk failed (its generation file says so too, unless its save
	 * failed: doc/io-errors.md) */
	if (l->role == IPM_ROLE_MIRROR && (lun_gen_invalid(l) || s->disk_failed))
		s->state = IPM_STATE_INCONSISTENT;
	/* a split brain holds until resolved, whatever the link does */
	if (lun_gen_splitbrain(l))
		s->state = IPM_STATE_SPLITBRAIN;
	if (l->down)
		s->state = IPM_STATE_DOWN;
	resync_progress(s);
}

/* The connection arrays of the LUNs' sessions, in config order (a
 * version 4 peer's LUNs share one replicator: listed once), then the
 * listener's when it serves a session (a version 4 peer's). */
static size_t conn_arrays(ipm_engine *e, struct connection_array **v, bool *outgoing)
{
	size_t i, j, n = 0;
	bool dup;

	for (i = 0; i < e->n_luns; i++) {
		struct ipm_lun *l = e->luns[i];

		for (j = 0, dup = false; l->rep && j < i; j++)
			dup |= e->luns[j]->rep == l->rep;
		if (l->rep && !dup) {
			outgoing[n] = true;
			v[n++] = replicator_connections(l->rep);
		} else if (l->rcv) {
			outgoing[n] = false;
			v[n++] = receiver_connections(l->rcv);
		}
	}
	if (e->rcv && ca_count_up(receiver_connections(e->rcv))) {
		outgoing[n] = false;
		v[n++] = receiver_connections(e->rcv);
	}
	return n;
}

/* e->admin held. */
static int conns_snapshot(ipm_engine *e, ipm_status *st)
{
	struct connection_array *v[e->n_luns + 1];
	bool outgoing[e->n_luns + 1];
	size_t k, m = conn_arrays(e, v, outgoing), n = 0, i;

	for (k = 0; k < m; k++)
		n += v[k]->n;
	if (!n)
		return 0;
	st->conns = calloc(n, sizeof(*st->conns));
	if (!st->conns)
		return -ENOMEM;
	for (k = 0; k < m; k++) {
		ca_snapshot(v[k], st->conns + st->n_conns, outgoing[k]);
		st->n_conns += v[k]->n;
	}
	if (e->hb) {
		st->peer_heartbeat = heartbeat_state(e->hb);
		st->udp_age_ms = heartbeat_age_ms(e->hb);
		return 0;
	}
	for (i = 0; i < n; i++)
		if (st->conns[i].status == IPM_LINK_UP)
			st->peer_heartbeat = IPM_LINK_UP;
	return 0;
}

int ipm_engine_status(ipm_engine *e, ipm_status **out)
{
	ipm_status *st = calloc(1, sizeof(*st));
	size_t i;
	int rc;

	if (!st)
		return -ENOMEM;
	snprintf(st->node, sizeof(st->node), "%s", e->node);
	if (e->peer)
		snprintf(st->peer, sizeof(st->peer), "%s", e->peer->name);
	st->peer_heartbeat = e->peer ? IPM_LINK_DOWN : IPM_LINK_OFF;
	st->udp_age_ms = -1;
	st->storage_age_ms = -1;
	st->method = e->cfg->hb_method;
	st->udp_state = st->peer_heartbeat;
	st->storage_state = IPM_LINK_OFF;
	/* the LUNs' session objects stay while we read them */
	pthread_mutex_lock(&e->admin);
	rc = conns_snapshot(e, st);
	hbvol_status(e, st);
	st->luns = rc < 0 ? NULL : calloc(e->n_luns ? e->n_luns : 1, sizeof(*st->luns));
	for (i = 0; st->luns && i < e->n_luns; i++)
		if (!e->luns[i]->removed)
			lun_snapshot(e->luns[i], &st->luns[st->n_luns++]);
	pthread_mutex_unlock(&e->admin);
	if (!st->luns) {
		ipm_status_free(st);
		return rc < 0 ? rc : -ENOMEM;
	}
	*out = st;
	return 0;
}

void ipm_status_free(ipm_status *st)
{
	if (!st)
		return;
	free(st->conns);
	free(st->luns);
	free(st);
}
