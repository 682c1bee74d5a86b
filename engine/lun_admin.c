/* lun_admin.c - each mirrored LUN is a resource of its own (doc/roles.md):
 * its own session with the peer (a replicator where this node is its
 * primary, a receiver where it is the mirror), made and unmade at run time
 * by a role change, down and up, without touching the other LUNs'
 * connections, journals or host requests. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <qb/qblog.h>

#include "clock.h"
#include "heartbeat.h"
#include "lun.h"
#include "receiver.h"
#include "replicator.h"

/* ---- the session objects of one LUN ---------------------------------------- */

/* The listener the peer's sessions arrive at: with the first LUN mirrored
 * here (at create, or at a demotion of a node that was primary of all). */
static int hub_attach(ipm_engine *e, ipm_error *err)
{
	int rc;

	if (e->rcv)
		return 0;
	rc = receiver_create(e, e->secret, e->luns, (unsigned)e->n_luns, &e->rcv, err);
	if (rc < 0)
		return rc;
	receiver_set_hbslot_sink(e->rcv, hbvol_received, e);
	rc = heartbeat_attach(e->hb, receiver_connections(e->rcv));
	if (rc == 0 && e->started)
		rc = receiver_start(e->rcv, err);
	if (rc < 0) {
		heartbeat_detach(e->hb, receiver_connections(e->rcv));
		receiver_destroy(e->rcv);
		e->rcv = NULL;
	}
	return rc;
}

static int attach_primary(ipm_engine *e, struct ipm_lun *l, ipm_error *err)
{
	struct replicator *r;
	int rc;

	rc = replicator_create(e, e->secret, &l, 1, &r, err);
	if (rc < 0)
		return rc;
	replicator_set_heartbeat(r, e->hb);
	replicator_set_hbslot_sink(r, hbvol_received, e);
	rc = heartbeat_attach(e->hb, replicator_connections(r));
	if (rc == 0 && e->started)
		rc = replicator_start(r, err);
	if (rc < 0) {
		heartbeat_detach(e->hb, replicator_connections(r));
		replicator_destroy(r);
		return rc;
	}
	l->rep = r;
	l->ops = &replicator_ops;
	return 0;
}

static int attach_mirror(ipm_engine *e, struct ipm_lun *l, ipm_error *err)
{
	struct receiver *rc;
	int r;

	r = hub_attach(e, err);
	if (r < 0)
		return r;
	r = receiver_create_lun(e, e->secret, l, &rc, err);
	if (r < 0)
		return r;
	receiver_set_hbslot_sink(rc, hbvol_received, e);
	r = heartbeat_attach(e->hb, receiver_connections(rc));
	if (r == 0 && e->started)
		r = receiver_start(rc, err);
	if (r < 0) {
		heartbeat_detach(e->hb, receiver_connections(rc));
		receiver_destroy(rc);
		return r;
	}
	/* the listener routes the LUN's sessions here from now on */
	pthread_mutex_lock(&e->route);
	l->rcv = rc;
	pthread_mutex_unlock(&e->route);
	return 0;
}

int lun_mirror_attach(ipm_engine *e, struct ipm_lun *l, ipm_error *err)
{
	if (!l->cfg->mirrored || l->down)
		return 0;
	return l->role == IPM_ROLE_PRIMARY ? attach_primary(e, l, err) : attach_mirror(e, l, err);
}

void lun_mirror_detach(ipm_engine *e, struct ipm_lun *l)
{
	struct receiver *rc;

	if (l->rep) {
		/* drains what is in flight; a clean stop marks the copy */
		replicator_stop(l->rep);
		heartbeat_detach(e->hb, replicator_connections(l->rep));
		replicator_destroy(l->rep);
		l->rep = NULL;
		l->ops = &backing_ops;
	}
	pthread_mutex_lock(&e->route);
	rc = l->rcv;
	l->rcv = NULL;
	pthread_mutex_unlock(&e->route);
	if (rc) {
		/* closes the primary's connections of it; what they brought
		 * and is not applied the primary journals and resyncs */
		receiver_stop(rc);
		heartbeat_detach(e->hb, receiver_connections(rc));
		receiver_destroy(rc);
	}
}

int lun_mirror_start(ipm_engine *e, struct ipm_lun *l, ipm_error *err)
{
	(void)e;
	if (l->rep)
		return replicator_start(l->rep, err);
	if (l->rcv)
		return receiver_start(l->rcv, err);
	return 0;
}

void lun_mirror_stop(ipm_engine *e, struct ipm_lun *l)
{
	(void)e;
	if (l->rep)
		replicator_stop(l->rep);
	if (l->rcv)
		receiver_stop(l->rcv);
}

enum ipm_lun_state lun_mirror_state(struct ipm_lun *l)
{
	enum ipm_lun_state st = IPM_STATE_OUTDATED;

	if (l->rcv)
		st = receiver_lun_state(l->rcv, l);
	/* a version 4 peer's session is the listener's */
	if (st == IPM_STATE_OUTDATED && l->engine->rcv)
		st = receiver_lun_state(l->engine->rcv, l);
	return st;
}

void lun_mirror_reconnect(struct ipm_lun *l, const char *why)
{
	if (l->rcv)
		receiver_reconnect(l->rcv, why);
	if (l->engine->rcv)
		receiver_reconnect(l->engine->rcv, why);
}

/* Not under a role change (it may hold admin for a few seconds): the next
 * slot goes out a moment later. */
int engine_send_hbslot(ipm_engine *e, unsigned slot, const uint8_t *data)
{
	int rc = -ENOTCONN;
	size_t i;

	if (pthread_mutex_trylock(&e->admin) != 0)
		return -EAGAIN;
	for (i = 0; rc < 0 && i < e->n_luns; i++) {
		if (e->luns[i]->rep)
			rc = replicator_send_hbslot(e->luns[i]->rep, slot, data);
		if (rc < 0 && e->luns[i]->rcv)
			rc = receiver_send_hbslot(e->luns[i]->rcv, slot, data);
	}
	if (rc < 0 && e->rcv)
		rc = receiver_send_hbslot(e->rcv, slot, data);
	pthread_mutex_unlock(&e->admin);
	return rc;
}

/* ---- role changes ------------------------------------------------------------ */

/* The generation state as a fresh open of the LUN in its new role has it:
 * what was saved, none of the old role's run-time marks. */
static int gen_reload(struct ipm_lun *l, ipm_error *err)
{
	lun_gen_fini(&l->g);
	lun_gen_init(&l->g);
	return lun_gen_open(l, err);
}

/* Gate held exclusive: no host request runs on l. */
static int switch_role(ipm_engine *e, struct ipm_lun *l, enum ipm_role role, ipm_error *err)
{
	enum ipm_role old = l->role;
	ipm_error err2 = { "" };
	int rc;

	lun_mirror_detach(e, l);
	l->role = role;
	__atomic_store_n(&l->insync, false, __ATOMIC_RELAXED);
	__atomic_store_n(&l->state, role == IPM_ROLE_PRIMARY ? IPM_STATE_JOURNALING
							    : IPM_STATE_OUTDATED, __ATOMIC_RELAXED);
	rc = gen_reload(l, err);
	if (rc == 0)
		rc = lun_mirror_attach(e, l, err);
	if (rc == 0)
		return 0;
	qb_log(LOG_ERR, "lun %s: cannot become %s: %s; staying %s", l->cfg->name,
	       ipm_role_name(role), err->msg, ipm_role_name(old));
	lun_mirror_detach(e, l);
	l->role = old;
	if (gen_reload(l, &err2) < 0 || lun_mirror_attach(e, l, &err2) < 0)
		qb_log(LOG_CRIT, "lun %s: cannot go back to %s either: %s", l->cfg->name,
		       ipm_role_name(old), err2.msg);
	return rc;
}

int ipm_engine_lun_set_role(ipm_engine *e, const char *name, enum ipm_role role,
			    ipm_error *err)
{
	struct ipm_lun *l = ipm_engine_lun_by_name(e, name);
	int64_t t0 = ipm_now_ms();
	int rc;

	if (!l)
		return ipm_fail(err, -ENOENT, "no lun \"%s\" on %s", name, e->node);
	if (!l->cfg->mirrored && role != IPM_ROLE_PRIMARY)
		return ipm_fail(err, -EINVAL, "lun \"%s\" is not mirrored: it has no other node", name);
	/* no host request runs on it from here on: those under way end first */
	pthread_rwlock_wrlock(&l->gate);
	pthread_mutex_lock(&e->admin);
	if (l->role == role) {
		rc = ipm_note(err, "lun \"%s\" is already %s here", name, ipm_role_name(role));
		goto out;
	}
	rc = switch_role(e, l, role, err);
	if (rc == 0)
		qb_log(LOG_NOTICE, "lun %s: now %s here (%lld ms); the other luns untouched", name,
		       ipm_role_name(role), (long long)(ipm_now_ms() - t0));
out:
	pthread_mutex_unlock(&e->admin);
	pthread_rwlock_unlock(&l->gate);
	return rc;
}

/* ---- down and up --------------------------------------------------------------- */

/* Gate held exclusive: no host request runs on l. */
static void take_down(ipm_engine *e, struct ipm_lun *l)
{
	lun_mirror_detach(e, l);
	lun_files_close(l);
	l->down = true;
	__atomic_store_n(&l->insync, false, __ATOMIC_RELAXED);
	__atomic_store_n(&l->state, IPM_STATE_DOWN, __ATOMIC_RELAXED);
}

static int bring_up(ipm_engine *e, struct ipm_lun *l, ipm_error *err)
{
	int rc = lun_files_open(l, err);

	if (rc < 0)
		return rc;
	l->down = false;
	__atomic_store_n(&l->state, l->role == IPM_ROLE_PRIMARY ? IPM_STATE_JOURNALING
							       : IPM_STATE_OUTDATED, __ATOMIC_RELAXED);
	if (l->cfg->mirrored)
		rc = gen_reload(l, err);
	if (rc == 0)
		rc = lun_mirror_attach(e, l, err);
	if (rc < 0) {
		lun_files_close(l);
		l->down = true;
		__atomic_store_n(&l->state, IPM_STATE_DOWN, __ATOMIC_RELAXED);
	}
	return rc;
}

/* down (up false) or up one LUN: the gate, then admin (lock order). */
static int lun_service(ipm_engine *e, const char *name, bool up, ipm_error *err)
{
	struct ipm_lun *l = ipm_engine_lun_by_name(e, name);
	int64_t t0 = ipm_now_ms();
	int rc = 0;

	if (!l)
		return ipm_fail(err, -ENOENT, "no lun \"%s\" on %s", name, e->node);
	pthread_rwlock_wrlock(&l->gate);
	pthread_mutex_lock(&e->admin);
	if (l->down == !up) {
		rc = ipm_note(err, "lun \"%s\" is %s here already", name, up ? "up" : "down");
		goto out;
	}
	if (up) {
		rc = bring_up(e, l, err);
		if (rc < 0)
			goto out;
	} else {
		take_down(e, l);
	}
	qb_log(LOG_NOTICE, "lun %s: %s on this node (%s, %lld ms); the other luns untouched", name,
	       up ? "up" : "down", ipm_role_name(l->role), (long long)(ipm_now_ms() - t0));
	rc = ipm_note(err, "lun \"%s\" is %s on %s", name,
		      up ? "up again" : "down (out of service, state kept)", e->node);
out:
	pthread_mutex_unlock(&e->admin);
	pthread_rwlock_unlock(&l->gate);
	return rc;
}

int ipm_engine_lun_down(ipm_engine *e, const char *lun, ipm_error *err)
{
	return lun_service(e, lun, false, err);
}

int ipm_engine_lun_up(ipm_engine *e, const char *lun, ipm_error *err)
{
	return lun_service(e, lun, true, err);
}
