/* roles.c - promote / demote: the safety checks (quorum, the peer, the
 * journal, consistency), then the LUN's role switched in the running
 * engine (ipm_engine_lun_set_role), that LUN alone. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "ipmirror.h"
#include "cluster/attributes.h"
#include "cluster/fencing.h"
#include "cluster/quorum.h"
#include "daemon.h"
#include "ipc_proto.h"
#include "nbd/server.h"

#define DEMOTE_WAIT_MS 5000

static const ipm_lun_status *find_lun(const ipm_status *st, const char *lun)
{
	size_t i;

	for (i = 0; i < st->n_luns; i++)
		if (strcmp(st->luns[i].name, lun) == 0)
			return &st->luns[i];
	return NULL;
}

/* The peer has everything: no journaled request it has not confirmed. Or
 * the peer's copy never held the LUN's data (the initial sync): it holds
 * nothing to keep, stays inconsistent and is copied whole from whoever is
 * promoted next, which can only be this node. */
static bool demote_safe(const ipm_lun_status *l)
{
	if (!l->mirrored)
		return true;
	if (l->role == IPM_ROLE_PRIMARY && l->peer_inconsistent &&
	    l->state != IPM_STATE_SPLITBRAIN && l->state != IPM_STATE_INCONSISTENT)
		return true;
	if (l->journal_bytes || l->journal_records)
		return false;
	return l->state == IPM_STATE_UPTODATE || l->state == IPM_STATE_JOURNALING ||
	       l->state == IPM_STATE_PROBATION;
}

/* 0 with a fresh snapshot of lun in *st, *l. */
static int lun_snapshot(struct daemon *d, const char *lun, ipm_status **st,
			const ipm_lun_status **l, ipm_error *err)
{
	int rc = ipm_engine_status(d->engine, st);

	if (rc < 0)
		return ipm_fail(err, rc, "cannot read status: %s", strerror(-rc));
	*l = find_lun(*st, lun);
	if (!*l) {
		ipm_status_free(*st);
		*st = NULL;
		return ipm_fail(err, -ENOENT, "no lun \"%s\" on %s", lun, d->o->node);
	}
	return 0;
}

static int check_promote(struct daemon *d, const ipm_lun_status *l, const ipm_status *st,
			 ipm_error *err)
{
	ipm_error q = { "" };
	int rc;

	/* a partition without quorum must not take the role: the other side
	 * may be doing the same */
	rc = ipm_quorum_check(&q);
	if (rc < 0)
		return ipm_fail(err, rc, "lun \"%s\": %s", l->name, q.msg);
	qb_log(LOG_DEBUG, "lun %s: quorum check: %s", l->name, q.msg);
	/* item 4 of the storage heartbeat: a lost heartbeat network alone is
	 * never a reason to take over from a live peer */
	if (l->mirrored && strcmp(ipm_status_failure(st), "heartbeat-network") == 0)
		return ipm_fail(err, -EBUSY,
				    "lun \"%s\": node \"%s\" is alive (its storage heartbeat advanced %lld ms ago) although its UDP heartbeat is lost: a heartbeat-network failure is no reason to promote (--force overrides)",
				    l->name, st->peer, (long long)st->storage_age_ms);
	if (l->mirrored && l->disk_failed)
		return ipm_fail(err, -EPERM,
				    "lun \"%s\": this node's disk failed (status disk: failed): its copy is inconsistent and lacks writes; replace the disk, then `ipmirrorctl invalidate %s` here copies it whole from %s (doc/io-errors.md)",
				    l->name, l->name, st->peer[0] ? st->peer : "the peer");
	if (l->mirrored && l->state == IPM_STATE_INCONSISTENT)
		return ipm_fail(err, -EPERM,
				    "lun \"%s\": this copy is inconsistent (never synced, or being filled from %s): it does not hold the LUN's data, promoting would lose writes (--force makes it a source of its own)",
				    l->name, st->peer[0] ? st->peer : "the peer");
	if (l->state == IPM_STATE_UPTODATE && l->mirrored)
		return ipm_fail(err, -EBUSY,
				    "lun \"%s\": node \"%s\" is still its primary and connected; demote it there first",
				    l->name, st->peer);
	if (!ipm_attributes_consistent(d->attrs, l->name))
		return ipm_fail(err, -EPERM,
				    "lun \"%s\" is %s here and was not up to date when its primary went away: promoting would lose writes (--force overrides)",
				    l->name, ipm_state_name(l->state));
	return 0;
}

static int check_demote(struct daemon *d, const char *lun, ipm_status **st,
			const ipm_lun_status **l, ipm_error *err)
{
	int waited = 0, rc;

	/* async mode: give the journal a moment to drain */
	while (!demote_safe(*l) && waited < DEMOTE_WAIT_MS) {
		ipm_status_free(*st);
		usleep(200 * 1000);
		waited += 200;
		rc = lun_snapshot(d, lun, st, l, err);
		if (rc < 0)
			return rc;
	}
	if (demote_safe(*l))
		return 0;
	return ipm_fail(err, -EBUSY,
			    "lun \"%s\" is %s with %llu journal bytes its peer has not confirmed: demoting now would leave them only here (--force overrides)",
			    (*l)->name, ipm_state_name((*l)->state),
			    (unsigned long long)(*l)->journal_bytes);
}

/* That LUN alone changes role in the running engine: the NBD clients and
 * the mirror sessions of the other LUNs are untouched (doc/roles.md). A
 * demoted LUN's clients are disconnected first; the engine lets their
 * requests under way end. d->cfg follows, for the daemon's next start. */
static int switch_primary(struct daemon *d, const char *lun, bool promote, const char *node,
			  ipm_error *err)
{
	int rc;

	if (!promote)
		nbd_server_kick(d->nbd, lun, "is demoted here (role change)");
	rc = ipm_engine_lun_set_role(d->engine, lun, promote ? IPM_ROLE_PRIMARY : IPM_ROLE_MIRROR,
				     err);
	if (rc < 0) {
		qb_log(LOG_ERR, "lun %s: cannot make %s its primary: %s", lun, node, err->msg);
		return rc;
	}
	ipm_config_set_primary(d->cfg, lun, node);
	return 0;
}

int role_change(void *opaque, const char *lun, bool promote, unsigned flags,
		ipm_engine **engine, ipm_error *err)
{
	struct daemon *d = opaque;
	const bool force = flags & IPC_F_FORCE;
	const ipm_lun_status *l;
	ipm_status *st = NULL;
	char peer[IPM_NAME_MAX];
	bool safe;
	int rc;

	if (!d->engine)
		return ipm_fail(err, -EIO, "the engine is down");
	/* the promotion check reads what the poller remembers of the LUN:
	 * bring it up to now (a per-LUN role change of the peer a moment ago
	 * may have come and gone between two of its rounds) */
	if (promote)
		ipm_attributes_poll(d->attrs);
	rc = lun_snapshot(d, lun, &st, &l, err);
	if (rc < 0)
		return rc;
	snprintf(peer, sizeof(peer), "%s", st->peer);
	if (l->role == (promote ? IPM_ROLE_PRIMARY : IPM_ROLE_MIRROR)) {
		rc = ipm_note(err, "lun \"%s\" is already %s here", lun,
				  ipm_role_name(l->role));
		goto out;
	}
	if (!peer[0] && !promote) {
		rc = ipm_fail(err, -EINVAL, "lun \"%s\": no peer to hand it to", lun);
		goto out;
	}
	rc = promote ? check_promote(d, l, st, err) : check_demote(d, lun, &st, &l, err);
	if (rc < 0 && (!force || rc == -ENOENT || !st))
		goto out;
	safe = rc == 0;
	if (flags & IPC_F_DRY_RUN) {
		if (safe)
			ipm_note(err, "lun \"%s\" can be %s", lun,
				     promote ? "promoted" : "demoted");
		goto out;
	}
	if (!safe)
		qb_log(LOG_CRIT, "lun %s: FORCED %s against the safety check: %s", lun,
		       promote ? "promotion" : "demotion", err->msg);
	/* a forced promotion of an inconsistent copy makes it a source: a
	 * line of its own, which no peer can take for its own */
	if (promote && l->mirrored && l->state == IPM_STATE_INCONSISTENT) {
		ipm_lun *lp = ipm_engine_lun_by_name(d->engine, lun);

		rc = lp ? ipm_lun_take_source(lp, err) : ipm_fail(err, -ENOENT, "no lun \"%s\"", lun);
		if (rc < 0)
			goto out;
	}
	/* a fresh primary that never wrote has no record of being whole: a
	 * clean hand-over must leave it promotable as the mirror (its view of
	 * the LUN is then "outdated", judged by that record) */
	if (!promote && safe && l->mirrored) {
		ipm_lun *lp = ipm_engine_lun_by_name(d->engine, lun);

		rc = lp ? ipm_lun_mark_consistent(lp, err) : ipm_fail(err, -ENOENT, "no lun \"%s\"", lun);
		if (rc < 0)
			goto out;
	}
	rc = switch_primary(d, lun, promote, promote ? d->o->node : peer, err);
	if (rc == 0) {
		if (!promote && safe)
			ipm_attributes_mark_consistent(d->attrs, lun);
		if (d->fencing && promote)
			ipm_fencing_promoted(d->fencing, lun);
		else if (d->fencing)
			ipm_fencing_demoted(d->fencing, lun, safe);
		qb_log(LOG_NOTICE, "lun %s: %s%s", lun, promote ? "promoted (primary)" : "demoted (mirror)",
		       safe ? "" : " by force");
		ipm_note(err, "lun \"%s\" %s on %s%s", lun,
			     promote ? "promoted" : "demoted", d->o->node, safe ? "" : " (forced)");
	}
out:
	ipm_status_free(st);
	*engine = d->engine;
	return rc;
}

/* down: the LUN's NBD clients are disconnected (the engine lets their
 * requests under way end), then the engine takes it out of service; up
 * brings it back. The other LUNs are untouched. */
int lun_service(void *opaque, const char *lun, bool up, ipm_error *err)
{
	struct daemon *d = opaque;

	if (!d->engine)
		return ipm_fail(err, -EIO, "the engine is down");
	if (!up)
		nbd_server_kick(d->nbd, lun, "is taken down here");
	return up ? ipm_engine_lun_up(d->engine, lun, err) : ipm_engine_lun_down(d->engine, lun, err);
}
