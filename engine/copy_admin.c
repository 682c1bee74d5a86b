/* copy_admin.c - the admin's decisions about a LUN's copy on this node:
 * invalidate it (copy it whole from the peer), assume a never-synced copy
 * clean, make an inconsistent copy a source by force (doc/generations.md),
 * or verify it against the peer's (doc/verify.md). */
#include <errno.h>
#include <stdio.h>
#include <qb/qblog.h>

#include "lun.h"
#include "receiver.h"
#include "replicator.h"

/* Mirror here: is a primary of this LUN connected, with a line to copy
 * from? Only then is the peer's copy known to be a good one. */
static bool primary_vouched(struct ipm_lun *l)
{
	enum ipm_lun_state st;

	pthread_mutex_lock(&l->engine->admin);
	st = lun_mirror_state(l);
	pthread_mutex_unlock(&l->engine->admin);
	return st != IPM_STATE_OUTDATED && lun_gen_peer_current(l) != 0;
}

/* Primary here, --force: the peer must hold every write already. */
static int invalidate_primary(ipm_lun *l, ipm_error *err)
{
	const char *peer = l->engine->peer->name;
	enum ipm_lun_state st = __atomic_load_n(&l->state, __ATOMIC_RELAXED);
	int rc;

	if (st != IPM_STATE_UPTODATE || lun_gen_peer_invalid(l))
		return ipm_fail(err, -EPERM,
				"lun \"%s\": %s's copy is not up to date (this side is %s): this node holds the only good copy; refused even with --force",
				l->cfg->name, peer, ipm_state_name(st));
	rc = lun_gen_invalidate(l, err);
	if (rc < 0)
		return rc;
	qb_log(LOG_CRIT, "lun %s: INVALIDATED by force on its primary: this copy is copied whole from %s the next time this node is its mirror, and is not promotable meanwhile",
	       l->cfg->name, peer);
	return ipm_note(err,
			"lun \"%s\": this copy is marked invalid; it goes on serving until demoted, then is copied whole from %s and is not promotable until then",
			l->cfg->name, peer);
}

int ipm_lun_invalidate(ipm_lun *l, bool force, ipm_error *err)
{
	const char *peer = l->engine->peer ? l->engine->peer->name : "the peer";
	bool replaced;
	int rc;

	if (!l->cfg->mirrored)
		return ipm_fail(err, -EINVAL, "lun \"%s\" is not mirrored: there is no other copy to take",
				l->cfg->name);
	if (l->role == IPM_ROLE_PRIMARY && !force)
		return ipm_fail(err, -EBUSY,
				"lun \"%s\": this node is its primary: hosts read this copy and %s's is copied from it; make %s the primary first (demote here, promote there), then invalidate here (--force marks this copy now, for a whole copy once this node is the mirror)",
				l->cfg->name, peer, peer);
	if (l->role == IPM_ROLE_PRIMARY)
		return invalidate_primary(l, err);
	/* a failed disk replaced (doc/io-errors.md): copied whole again even
	 * when already invalid, as what was copied went to the old disk */
	replaced = __atomic_load_n(&l->disk_failed, __ATOMIC_RELAXED);
	if (lun_gen_invalid(l) && !replaced)
		return ipm_note(err, "lun \"%s\": this copy is inconsistent already; it is copied whole from %s",
				l->cfg->name, peer);
	if (lun_gen_splitbrain(l))
		return ipm_fail(err, -EINVAL,
				"lun \"%s\" is in split brain: `ipmirrorctl resolve %s --discard-local` drops this node's changes",
				l->cfg->name, l->cfg->name);
	/* a failed disk's copy is no good copy: nothing to vouch for */
	if (!replaced && !primary_vouched(l))
		return ipm_fail(err, -EPERM,
				"lun \"%s\": no primary of it is connected: %s's copy cannot be vouched for and this node may hold the only good copy; invalidate while %s is its primary and connected",
				l->cfg->name, peer, peer);
	rc = lun_gen_invalidate(l, err);
	if (rc < 0)
		return rc;
	if (replaced && __atomic_exchange_n(&l->disk_failed, false, __ATOMIC_RELAXED))
		qb_log(LOG_NOTICE, "lun %s: the local disk is in service again (replaced)",
		       l->cfg->name);
	qb_log(LOG_WARNING, "lun %s: INVALIDATED by the admin: this copy is inconsistent until copied whole from %s",
	       l->cfg->name, peer);
	/* the primary learns it at its next handshake */
	pthread_mutex_lock(&l->engine->admin);
	lun_mirror_reconnect(l, "a LUN was invalidated here");
	pthread_mutex_unlock(&l->engine->admin);
	return ipm_note(err, "lun \"%s\": this copy is invalid (inconsistent, not promotable) and is copied whole from %s",
			l->cfg->name, peer);
}

int ipm_lun_assume_clean(ipm_lun *l, ipm_error *err)
{
	const char *peer = l->engine->peer ? l->engine->peer->name : "the peer";
	int rc;

	if (!l->cfg->mirrored)
		return ipm_fail(err, -EINVAL, "lun \"%s\" is not mirrored: there is nothing to sync",
				l->cfg->name);
	if (l->role == IPM_ROLE_PRIMARY)
		return ipm_fail(err, -EINVAL,
				"lun \"%s\": this node is its primary, the source of the initial sync: run assume-clean on %s, whose copy the sync would overwrite",
				l->cfg->name, peer);
	rc = lun_gen_assume_clean(l, err);
	if (rc < 0)
		return rc;
	qb_log(LOG_CRIT, "lun %s: ASSUME-CLEAN by the admin: this never-synced copy is declared equal to %s's and the initial sync is skipped; a difference between them stays undetected",
	       l->cfg->name, peer);
	return ipm_note(err,
			"lun \"%s\": copies declared equal; the initial sync is skipped (logged)",
			l->cfg->name);
}

int ipm_lun_take_source(ipm_lun *l, ipm_error *err)
{
	if (!l->cfg->mirrored || !lun_gen_invalid(l))
		return 0;
	return lun_gen_take_source(l, err);
}

int ipm_lun_verify(ipm_lun *l, bool repair, ipm_error *err)
{
	const char *peer = l->engine->peer ? l->engine->peer->name : "the peer";
	int rc;

	if (!l->cfg->mirrored)
		return ipm_fail(err, -EINVAL, "lun \"%s\" is not mirrored: there is no other copy to compare with",
				l->cfg->name);
	/* its replicator stays while the run starts (a role change, a down) */
	pthread_mutex_lock(&l->engine->admin);
	if (l->role != IPM_ROLE_PRIMARY || !l->rep)
		rc = ipm_fail(err, -EINVAL,
			      "lun \"%s\": this node is its mirror (or it is down): run verify on its primary, %s",
			      l->cfg->name, peer);
	else
		rc = replicator_verify(l->rep, l, repair, err);
	pthread_mutex_unlock(&l->engine->admin);
	return rc;
}
