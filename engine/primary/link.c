/* link.c - the link state machine: the one place that switches a
 * replicator between live, journaling (down) and resync, from what the
 * heartbeat and the connections say (rep_monitor_main). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "auth.h"
#include "crc32c.h"
#include "fullio.h"
#include "handshake.h"
#include "lockdebug.h"
#include "extent_scan.h"
#include "lun.h"
#include "replicator_int.h"
#include "storage_hb.h"

static int by_seq(const void *a, const void *b)
{
	uint64_t x = (*(struct mreq *const *)a)->f.seq, y = (*(struct mreq *const *)b)->f.seq;

	return x < y ? -1 : x > y;
}

/* Take every unanswered request out of the in-flight table, in seq order. */
static unsigned drain_inflight_locked(struct replicator *r, struct mreq ***out)
{
	struct mreq **v = calloc(r->inflight ? r->inflight : 1, sizeof(*v)), *m;
	unsigned i, n = 0;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i <= r->hash_mask; i++) {
		while ((m = r->hash[i])) {
			r->hash[i] = m->hnext;
			if (v)
				v[n++] = m;
		}
	}
	r->qhead = r->qtail = NULL;
	r->inflight = 0;
	r->inflight_bytes = 0;
	if (v)
		qsort(v, n, sizeof(*v), by_seq);
	*out = v;
	return n;
}

/* Replays dropped by a go_down are sent again by the next resync: journal
 * records from the journal, which is kept until a resync ends; but copied
 * extents were cleared from the bitmap when read, so they are marked again
 * (resync_dropped_locked; made durable by the caller's resync_sync_locked). */
static void remark_replays_locked(struct replicator *r, struct mreq **v, unsigned n)
{
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < n; i++)
		if (v[i]->replay)
			resync_dropped_locked(&r->rs, &v[i]->f);
}

/* "lun vol1" (each LUN has a session of its own), or the LUNs a version 4
 * peer's session carries. */
const char *rep_names(struct replicator *r)
{
	size_t n, at;
	unsigned i;

	if (r->names[0])
		return r->names;
	at = (size_t)snprintf(r->names, sizeof(r->names), "lun%s ", r->n_luns > 1 ? "s" : "");
	for (i = 0; i < r->n_luns && at < sizeof(r->names); i++) {
		n = (size_t)snprintf(r->names + at, sizeof(r->names) - at, "%s%s", i ? "," : "",
				     ipm_lun_name(r->luns[i].lun));
		at += n;
	}
	return r->names;
}

/* The peer is unreachable: from now on writes go to the journals. Requests
 * the mirror did not answer go there first, in order (those the mirror is
 * known to have applied - up to landed_floor - are done), so that nothing
 * the host saw completed is lost and the journal order is the host's. */
void go_down_locked(struct replicator *r, const char *why)
{
	struct mreq **v;
	unsigned i, n, journaled = 0;

	IPM_ASSERT_HELD(&r->lock);
	if (r->link == LINK_DOWN)
		return;
	r->link = LINK_DOWN;
	r->resync_hold = false; /* the held writes go to the journal (space_cond below) */
	r->connect_allowed = false;
	forget_record_locked(r);
	pthread_cond_broadcast(&r->queue_cond);
	/* request data must stay alive while a worker is still sending it */
	while (r->sending)
		pthread_cond_wait(&r->link_cond, &r->lock);
	n = drain_inflight_locked(r, &v);
	for (i = 0; i < n; i++) {
		/* a VERIFY or READ changes nothing, a RESIZE is no write: its
		 * caller sees it unanswered */
		if (!v[i]->replay && !v[i]->verify && !v[i]->read && !v[i]->resize &&
		    v[i]->f.seq > r->landed_floor) {
			resync_journal_locked(&r->rs, &v[i]->f, v[i]->data);
			journaled++;
		}
	}
	remark_replays_locked(r, v, n);
	for (i = 0; i < r->n_luns; i++)   /* the live writes' extents: resynced too */
		al_fold(&r->luns[i].al, r->rs.luns[i].bitmap);
	resync_sync_locked(&r->rs);
	for (i = 0; i < n; i++)
		finish_locked(r, v[i], 0);
	free(v);
	pthread_cond_broadcast(&r->space_cond);
	set_states_locked(r, IPM_STATE_JOURNALING);
	qb_log(LOG_WARNING, "%s: peer %s unreachable (%s): journaling writes; %u unanswered request(s) journaled",
	       rep_names(r), r->e->peer->name, why, journaled);
}

static enum ipm_link_state peer_state(struct replicator *r)
{
	return r->hb ? heartbeat_state(r->hb) : IPM_LINK_UP;
}

/* The resync runs on the monitor's own thread (rep_monitor_main), so while
 * it waits - for window space, for the mirror's answers - nobody else would
 * see the link go: its waits ask this, and the monitor goes down when
 * resync_run returns. What monitor_live_locked judges by, in resync. */
bool resync_link_ok_locked(struct replicator *r)
{
	IPM_ASSERT_HELD(&r->lock);
	return r->running && r->link == LINK_RESYNC && peer_state(r) != IPM_LINK_DOWN &&
	       ca_count_up(&r->ca) > 0;
}

static void monitor_live_locked(struct replicator *r)
{
	IPM_ASSERT_HELD(&r->lock);
	if (r->force_resync) {
		r->force_resync = false;
		go_down_locked(r, r->force_why ? r->force_why :
			       "the peer needs a new handshake (a full resync, or the name of a new data generation)");
		r->force_why = NULL;
	} else if (peer_state(r) == IPM_LINK_DOWN)
		go_down_locked(r, "heartbeat timeout");
	else if (ca_count_up(&r->ca) == 0)
		go_down_locked(r, "all connections lost");
}

/* While down: probation is the heartbeat's; once it says the peer is back
 * (or there is no heartbeat), let the workers dial and start the resync
 * when a connection is up. */
static void monitor_down_locked(struct replicator *r)
{
	enum ipm_link_state ps = peer_state(r);

	IPM_ASSERT_HELD(&r->lock);
	if (ps == IPM_LINK_PROBATION)
		set_states_locked(r, IPM_STATE_PROBATION);
	else if (ps == IPM_LINK_DOWN)
		set_states_locked(r, IPM_STATE_JOURNALING);
	/* a peer that just failed a change (replicator.c) is not dialled at
	 * once: one that keeps failing must not make a resync loop */
	if (ps != IPM_LINK_UP || ipm_now_ms() < r->redial_after_ms) {
		r->connect_allowed = false;
		return;
	}
	if (!r->connect_allowed) {
		r->connect_allowed = true;
		pthread_cond_broadcast(&r->queue_cond);
	}
	if (ca_count_up(&r->ca) > 0) {
		r->link = LINK_RESYNC;
		set_states_locked(r, IPM_STATE_RESYNCING);
	}
}

void *rep_monitor_main(void *arg)
{
	struct replicator *r = arg;
	int64_t settled = 0;

	pthread_mutex_lock(&r->lock);
	while (r->running) {
		switch (r->link) {
		case LINK_LIVE:
			monitor_live_locked(r);
			/* at most once a second, and only after AL_IDLE_MS without a
			 * live write: each settle is an fdatasync, and clearing a
			 * busy log only makes the next writes mark it again */
			if (r->link == LINK_LIVE && ipm_now_ms() - settled >= 1000 &&
			    ipm_now_ms() - r->last_live_ms >= AL_IDLE_MS) {
				al_settle_locked(r);
				settled = ipm_now_ms();
			}
			break;
		case LINK_DOWN:
			monitor_down_locked(r);
			break;
		case LINK_RESYNC:
			pthread_mutex_unlock(&r->lock);
			int rc = resync_run(&r->rs);

			pthread_mutex_lock(&r->lock);
			if (rc < 0 && r->running)
				go_down_locked(r, rc == -ESHUTDOWN ? "stopping"
								   : "link lost during resync");
			continue;
		}
		if (r->running)
			ipm_cond_wait_ms(&r->link_cond, &r->lock, 100);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* A data generation the mirror holds the data of but not the name (written
 * before the handshake, rs_go_live_locked) and the peer still there: the
 * handshake that names it is to come. */
bool rename_pending_locked(struct replicator *r)
{
	IPM_ASSERT_HELD(&r->lock);
	return r->renaming && peer_state(r) != IPM_LINK_DOWN;
}

/* Stopping live with nothing unanswered, journaled or marked: the peer has
 * every write, so this node's copy is no longer ahead of it. */
void mark_clean_stop_locked(struct replicator *r)
{
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	if (r->link != LINK_LIVE || r->inflight || r->outside || !resync_empty_locked(&r->rs))
		return;
	for (i = 0; i < r->n_luns; i++)
		if (al_marked(&r->luns[i].al))
			return;
	for (i = 0; i < r->n_luns; i++)
		lun_gen_clean_stop(r->luns[i].lun);
}


/* ---- the replicator as the resync sees it (resync.h) -------------------- */

static int rs_read_local(void *ctx, uint32_t lun, void *buf, size_t len, uint64_t off)
{
	struct replicator *r = ctx;

	return lun_bulk_read(r->luns[lun].lun, buf, len, off);
}

static int rs_read_start(void *ctx, uint32_t lun, void *buf, size_t len, uint64_t off,
			 void *tag)
{
	struct replicator *r = ctx;

	return lun_read_start(r->luns[lun].lun, buf, len, off, tag);
}

static int rs_read_wait(void *ctx, void **tag)
{
	(void)ctx;
	return lun_read_wait(tag);
}

static uint64_t rs_hole_end(void *ctx, uint32_t lun, uint64_t off, uint64_t end)
{
	struct replicator *r = ctx;

	return extent_hole_end(r->luns[lun].lun->fd, off, end);
}

/* Host writes mark their extents (journaled, under r->lock) before their
 * local write and leave the LUN's active list after it. */
static void rs_quiesce_locked(void *ctx, uint32_t lun, uint64_t off, uint64_t len)
{
	struct replicator *r = ctx;
	struct wire_frame f = { .type = WIRE_WRITE, .offset = off, .length = len };

	IPM_ASSERT_HELD(&r->lock);
	r->space_waiters++;
	/* host_release broadcasts space_cond while someone waits */
	while (r->running && overlaps(&r->luns[lun], &f))
		pthread_cond_wait(&r->space_cond, &r->lock);
	r->space_waiters--;
}

static int rs_wait_answers_locked(void *ctx)
{
	struct replicator *r = ctx;

	IPM_ASSERT_HELD(&r->lock);
	/* a submitter outside may still journal a write (outside_locked);
	 * timed: a heartbeat timeout broadcasts nothing here */
	while (resync_link_ok_locked(r) && (r->replays || r->outside))
		ipm_cond_wait_ms(&r->link_cond, &r->lock, 100);
	return resync_link_ok_locked(r) ? 0 : -ECONNRESET;
}

/* A fill's checkpoint: the replays answered; host writes go on. */
static int rs_wait_replays_locked(void *ctx)
{
	struct replicator *r = ctx;

	IPM_ASSERT_HELD(&r->lock);
	while (resync_link_ok_locked(r) && r->replays)
		ipm_cond_wait_ms(&r->link_cond, &r->lock, 100);
	return resync_link_ok_locked(r) ? 0 : -ECONNRESET;
}

static void rs_hold_locked(void *ctx, bool hold)
{
	struct replicator *r = ctx;

	IPM_ASSERT_HELD(&r->lock);
	if (hold) {
		r->resync_hold = true;
	} else if (r->resync_hold) {
		r->resync_hold = false;
		pthread_cond_broadcast(&r->space_cond);
	}
}

/* The journals are empty now: live, and both copies hold the same data. */
static void rs_go_live_locked(void *ctx)
{
	struct replicator *r = ctx;
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	r->link = LINK_LIVE;
	r->renaming = false;
	if (r->next_seq > r->host_done_max)
		r->host_done_max = r->next_seq;
	/* saved under r->lock on purpose: a go_down may come as soon as it is
	 * released, and its first journaled write's lun_gen_diverge must see
	 * the generation shared, or the outage's writes would keep the
	 * generation the peer holds */
	for (i = 0; i < r->n_luns; i++) {
		/* a line the peer has not heard of: one more handshake names it */
		if (!lun_gen_shared(r->luns[i].lun)) {
			r->force_resync = r->renaming = true;
			pthread_cond_broadcast(&r->link_cond);
		}
	}
	set_states_locked(r, IPM_STATE_UPTODATE);
}

/* Under r->lock: host writes are held at the resync's end anyway. */
static int rs_flush_local_locked(void *ctx, uint32_t lun)
{
	struct replicator *r = ctx;

	IPM_ASSERT_HELD(&r->lock);
	return lun_local_flush(r->luns[lun].lun);
}

static bool rs_link_ok_locked(void *ctx)
{
	return resync_link_ok_locked(ctx);
}

const struct resync_ops replicator_resync_ops = {
	.submit = replay_submit,
	.submit_owned = replay_submit_owned,
	.read_local = rs_read_local,
	.read_start = rs_read_start,
	.read_wait = rs_read_wait,
	.hole_end = rs_hole_end,
	.quiesce_locked = rs_quiesce_locked,
	.wait_answers_locked = rs_wait_answers_locked,
	.wait_replays_locked = rs_wait_replays_locked,
	.hold_locked = rs_hold_locked,
	.go_live_locked = rs_go_live_locked,
	.flush_local_locked = rs_flush_local_locked,
	.link_ok_locked = rs_link_ok_locked,
};
