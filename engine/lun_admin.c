/* lun_admin.c - each mirrored LUN is a resource of its own (doc/roles.md):
 * its own session with the peer (a replicator where this node is its
 * primary, a receiver where it is the mirror), made and unmade at run time
 * by a role change, down and up, without touching the other LUNs'
 * connections, journals or host requests. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
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

static void peer_version(void *engine, uint16_t v);

/* A replicator for the n LUNs of v, heard by the heartbeat, started when
 * the engine runs, and carrying their host writes. */
static int primary_session(ipm_engine *e, struct ipm_lun **v, size_t n, ipm_error *err)
{
	struct replicator *r;
	size_t i;
	int rc;

	rc = replicator_create(e, e->secret, v, (unsigned)n, &r, err);
	if (rc < 0)
		return rc;
	replicator_set_heartbeat(r, e->hb);
	replicator_set_hbslot_sink(r, hbvol_received, e);
	replicator_set_version_sink(r, peer_version, e);
	rc = heartbeat_attach(e->hb, replicator_connections(r));
	if (rc == 0 && e->started)
		rc = replicator_start(r, err);
	if (rc < 0) {
		heartbeat_detach(e->hb, replicator_connections(r));
		replicator_destroy(r);
		return rc;
	}
	for (i = 0; i < n; i++) {
		v[i]->rep = r;
		v[i]->ops = &replicator_ops;
	}
	return 0;
}

static int attach_primary(ipm_engine *e, struct ipm_lun *l, ipm_error *err)
{
	return primary_session(e, &l, 1, err);
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
	if (l->role == IPM_ROLE_PRIMARY)
		/* grouped: primaries_attach makes the one session of all */
		return e->grouped ? 0 : attach_primary(e, l, err);
	return attach_mirror(e, l, err);
}

/* ---- a version 4 peer: one session for every LUN primary here ------------- */

/* The mirrored LUNs primary here and in service, in config order. */
static size_t primaries(ipm_engine *e, struct ipm_lun **v)
{
	size_t i, n = 0;

	for (i = 0; i < e->n_luns; i++) {
		struct ipm_lun *l = e->luns[i];

		if (l->cfg->mirrored && !l->down && l->role == IPM_ROLE_PRIMARY)
			v[n++] = l;
	}
	return n;
}

/* Every replicator closed, each once (a group's is shared). Admin held,
 * and every mirrored LUN's gate. */
void primaries_detach(ipm_engine *e)
{
	struct replicator *r;
	size_t i, j;

	for (i = 0; i < e->n_luns; i++) {
		r = e->luns[i]->rep;
		if (!r)
			continue;
		replicator_stop(r);
		heartbeat_detach(e->hb, replicator_connections(r));
		replicator_destroy(r);
		for (j = i; j < e->n_luns; j++) {
			if (e->luns[j]->rep == r) {
				e->luns[j]->rep = NULL;
				e->luns[j]->ops = &backing_ops;
			}
		}
	}
}

/* One replicator for them all (grouped), else one each. */
static int primaries_attach(ipm_engine *e, ipm_error *err)
{
	struct ipm_lun *v[e->n_luns + 1];
	size_t i, n = primaries(e, v);
	int rc = 0;

	if (!e->grouped) {
		for (i = 0; rc == 0 && i < n; i++)
			rc = attach_primary(e, v[i], err);
		return rc;
	}
	return n ? primary_session(e, v, n, err) : 0;
}

/* Every mirrored LUN's gate (and l's), in config order: a group's
 * replicator carries the host requests of all its LUNs. */
static void gates_lock(ipm_engine *e, struct ipm_lun *l, bool all)
{
	size_t i;

	if (!all) {
		pthread_rwlock_wrlock(&l->gate);
		return;
	}
	for (i = 0; i < e->n_luns; i++)
		if (e->luns[i]->cfg->mirrored || e->luns[i] == l)
			pthread_rwlock_wrlock(&e->luns[i]->gate);
}

static void gates_unlock(ipm_engine *e, struct ipm_lun *l, bool all)
{
	size_t i;

	if (!all) {
		pthread_rwlock_unlock(&l->gate);
		return;
	}
	for (i = 0; i < e->n_luns; i++)
		if (e->luns[i]->cfg->mirrored || e->luns[i] == l)
			pthread_rwlock_unlock(&e->luns[i]->gate);
}

/* A change of l begins: its gate (every mirrored LUN's when grouped),
 * then admin. *all says which; the grouping cannot change meanwhile (it
 * needs every gate). */
void lun_change_begin(ipm_engine *e, struct ipm_lun *l, bool *all)
{
	for (;;) {
		*all = __atomic_load_n(&e->grouped, __ATOMIC_ACQUIRE);
		gates_lock(e, l, *all);
		pthread_mutex_lock(&e->admin);
		if (*all == e->grouped)
			return;
		pthread_mutex_unlock(&e->admin);
		gates_unlock(e, l, *all);
	}
}

void lun_change_end(ipm_engine *e, struct ipm_lun *l, bool all)
{
	pthread_mutex_unlock(&e->admin);
	gates_unlock(e, l, all);
}

static void *regroup_main(void *arg)
{
	ipm_engine *e = arg;
	struct ipm_lun *v[e->n_luns + 1];
	ipm_error err = { "" };
	bool want;
	size_t n;

	gates_lock(e, NULL, true);
	pthread_mutex_lock(&e->admin);
	want = __atomic_load_n(&e->peer_version, __ATOMIC_RELAXED) < 5;
	n = primaries(e, v);
	if (e->started && want != e->grouped && (!want || n >= 2)) {
		primaries_detach(e);
		__atomic_store_n(&e->grouped, want, __ATOMIC_RELEASE);
		if (primaries_attach(e, &err) < 0)
			qb_log(LOG_ERR, "cannot open the sessions to %s again: %s", e->peer->name, err.msg);
		else if (want)
			qb_log(LOG_WARNING, "peer %s speaks protocol version 4: the %zu luns primary here share one session, as with the previous release (a role change, down or up of one of them re-makes it; per-LUN sessions need version 5)",
			       e->peer->name, n);
		else
			qb_log(LOG_NOTICE, "peer %s speaks protocol version 5 again: a session per lun",
			       e->peer->name);
	}
	pthread_mutex_unlock(&e->admin);
	gates_unlock(e, NULL, true);
	__atomic_store_n(&e->regrouping, false, __ATOMIC_RELEASE);
	return NULL;
}

/* Worth a regroup: the grouping differs from what version v wants, and
 * (for a group) two LUNs at least are primary here. A racy count, checked
 * again by the thread. */
static bool regroup_due(ipm_engine *e, uint16_t v)
{
	bool want = v < 5;
	size_t i, n = 0;

	if (want == __atomic_load_n(&e->grouped, __ATOMIC_ACQUIRE))
		return false;
	for (i = 0; i < e->n_luns; i++)
		n += e->luns[i]->cfg->mirrored && e->luns[i]->role == IPM_ROLE_PRIMARY;
	return !want || n >= 2;
}

/* A replicator's session spoke version v with the peer (its version sink,
 * from a worker): the LUNs primary here are grouped into one session for a
 * version 4 peer, and ungrouped again for a version 5 one, by a thread of
 * their own. */
static void peer_version(void *engine, uint16_t v)
{
	ipm_engine *e = engine;
	pthread_t t;

	__atomic_store_n(&e->peer_version, v, __ATOMIC_RELAXED);
	if (!regroup_due(e, v) || __atomic_exchange_n(&e->regrouping, true, __ATOMIC_ACQ_REL))
		return;
	/* not here: this is a worker of a replicator the regroup destroys */
	if (pthread_create(&t, NULL, regroup_main, e) != 0) {
		__atomic_store_n(&e->regrouping, false, __ATOMIC_RELEASE);
		return;
	}
	pthread_detach(t);
}

void engine_regroup_wait(ipm_engine *e)
{
	while (__atomic_load_n(&e->regrouping, __ATOMIC_ACQUIRE))
		usleep(10 * 1000);
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

/* A group's replicator is its first LUN's to start and stop. */
static bool rep_owner(ipm_engine *e, struct ipm_lun *l)
{
	size_t i;

	for (i = 0; i < e->n_luns && e->luns[i] != l; i++)
		if (e->luns[i]->rep == l->rep)
			return false;
	return true;
}

int lun_mirror_start(ipm_engine *e, struct ipm_lun *l, ipm_error *err)
{
	if (l->rep)
		return rep_owner(e, l) ? replicator_start(l->rep, err) : 0;
	if (l->rcv)
		return receiver_start(l->rcv, err);
	return 0;
}

void lun_mirror_stop(ipm_engine *e, struct ipm_lun *l)
{
	if (l->rep && rep_owner(e, l))
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
	ipm_error err2 = { "" };
	bool all;
	int rc;

	if (!l)
		return ipm_fail(err, -ENOENT, "no lun \"%s\" on %s", name, e->node);
	if (!l->cfg->mirrored && role != IPM_ROLE_PRIMARY)
		return ipm_fail(err, -EINVAL, "lun \"%s\" is not mirrored: it has no other node", name);
	/* no host request runs on it from here on: those under way end first */
	lun_change_begin(e, l, &all);
	if (l->role == role) {
		rc = ipm_note(err, "lun \"%s\" is already %s here", name, ipm_role_name(role));
		goto out;
	}
	if (all)
		primaries_detach(e);
	rc = switch_role(e, l, role, err);
	if (all && primaries_attach(e, &err2) < 0)
		qb_log(LOG_ERR, "cannot open the session to %s again: %s", e->peer->name, err2.msg);
	if (rc == 0)
		qb_log(LOG_NOTICE, "lun %s: now %s here (%lld ms); %s", name, ipm_role_name(role),
		       (long long)(ipm_now_ms() - t0),
		       all ? "the luns primary here share one session with a version 4 peer: it was re-made"
			   : "the other luns untouched");
out:
	lun_change_end(e, l, all);
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
	ipm_error err2 = { "" };
	bool all;
	int rc = 0;

	if (!l)
		return ipm_fail(err, -ENOENT, "no lun \"%s\" on %s", name, e->node);
	lun_change_begin(e, l, &all);
	if (l->down == !up) {
		rc = ipm_note(err, "lun \"%s\" is %s here already", name, up ? "up" : "down");
		goto out;
	}
	if (all)
		primaries_detach(e);
	if (up)
		rc = bring_up(e, l, err);
	else
		take_down(e, l);
	if (all && primaries_attach(e, &err2) < 0)
		qb_log(LOG_ERR, "cannot open the session to %s again: %s", e->peer->name, err2.msg);
	if (rc < 0)
		goto out;
	qb_log(LOG_NOTICE, "lun %s: %s on this node (%s, %lld ms); the other luns untouched", name,
	       up ? "up" : "down", ipm_role_name(l->role), (long long)(ipm_now_ms() - t0));
	rc = ipm_note(err, "lun \"%s\" is %s on %s", name,
		      up ? "up again" : "down (out of service, state kept)", e->node);
out:
	lun_change_end(e, l, all);
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

/* ---- LUNs added and removed at run time ----------------------------------------- */

static int config_index(const ipm_config *cfg, const char *name)
{
	unsigned i;

	for (i = 0; i < cfg->n_luns; i++)
		if (strcmp(cfg->luns[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* admin held: l opened from its own copy of the config, then its session. */
static int add_locked(ipm_engine *e, ipm_config *own, int k, ipm_error *err)
{
	struct ipm_lun *l = NULL;
	int rc;

	if (e->n_luns == e->max_luns)
		return ipm_fail(err, -ENOSPC, "%zu luns served already, the limit", e->max_luns);
	if (own->luns[k].mirrored && e->grouped)
		return ipm_fail(err, -EBUSY,
				"lun \"%s\": the luns primary here share one session with a version 4 peer: a new one needs a restart",
				own->luns[k].name);
	rc = lun_open(e, &own->luns[k], &l, err);
	if (rc < 0)
		return rc;
	l->own_cfg = own;
	l->cfg_index = (uint16_t)k;
	rc = lun_mirror_attach(e, l, err);
	if (rc < 0) {
		l->own_cfg = NULL; /* the caller's to free */
		lun_close(l);
		return rc;
	}
	e->luns[e->n_luns] = l;
	__atomic_store_n(&e->n_luns, e->n_luns + 1, __ATOMIC_RELEASE);
	return 0;
}

int ipm_engine_lun_add(ipm_engine *e, const ipm_config *cfg, const char *lun, ipm_error *err)
{
	int k = config_index(cfg, lun), rc;
	ipm_config *own;

	if (k < 0)
		return ipm_fail(err, -ENOENT, "%s has no lun \"%s\"", cfg->path, lun);
	if (ipm_engine_lun_by_name(e, lun))
		return ipm_fail(err, -EEXIST, "lun \"%s\" is served here already", lun);
	if (cfg->luns[k].mirrored && (!e->secret || !e->hb || !e->peer))
		return ipm_fail(err, -EINVAL,
				"lun \"%s\" is the first mirrored lun: the peer, the secret and the heartbeat need a restart",
				lun);
	own = ipm_config_dup(cfg);
	if (!own)
		return ipm_fail(err, -ENOMEM, "out of memory");
	pthread_mutex_lock(&e->admin);
	rc = ipm_engine_lun_by_name(e, lun) ? ipm_fail(err, -EEXIST, "lun \"%s\" is served here already", lun)
					    : add_locked(e, own, k, err);
	pthread_mutex_unlock(&e->admin);
	if (rc < 0) {
		ipm_config_free(own);
		return rc;
	}
	qb_log(LOG_NOTICE, "lun %s: added (%s here)", lun,
	       ipm_role_name(ipm_engine_lun_by_name(e, lun)->role));
	return ipm_note(err, "lun \"%s\" added", lun);
}

int ipm_engine_lun_remove(ipm_engine *e, const char *lun, ipm_error *err)
{
	struct ipm_lun *l = ipm_engine_lun_by_name(e, lun);
	int rc = 0;

	if (!l)
		return ipm_fail(err, -ENOENT, "no lun \"%s\" on %s", lun, e->node);
	pthread_rwlock_wrlock(&l->gate);
	pthread_mutex_lock(&e->admin);
	if (!l->down)
		rc = ipm_fail(err, -EBUSY, "lun \"%s\" is in service here: `ipmirrorctl down %s` first",
			      lun, lun);
	else
		l->removed = true;
	pthread_mutex_unlock(&e->admin);
	pthread_rwlock_unlock(&l->gate);
	if (rc < 0)
		return rc;
	qb_log(LOG_NOTICE, "lun %s: removed (its files stay on disk)", lun);
	return ipm_note(err, "lun \"%s\" removed", lun);
}
