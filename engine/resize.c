/* resize.c - growing a LUN online (doc/resize.md): `ipmirrorctl resize` on
 * its primary checks both backings, has the mirror grow first (a RESIZE
 * frame, ordered after every request before it), then grows here and
 * re-makes the LUN's session, whose resync copies the new range (holes
 * and zeros cost no transfer). The size a grow reached is recorded in a
 * small file beside the journal, so a restart keeps it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <qb/qblog.h>

#include "clock.h"
#include "lun.h"
#include "lun_size.h"
#include "replicator.h"

/* Why this node cannot start a grow of l, or 0. */
static int refuse(struct ipm_lun *l, bool grouped, ipm_error *err)
{
	const char *peer = l->engine->peer ? l->engine->peer->name : "the peer";

	if (l->down)
		return ipm_fail(err, -ENODEV, "lun \"%s\" is down here: `ipmirrorctl up %s` first",
				l->cfg->name, l->cfg->name);
	if (l->role != IPM_ROLE_PRIMARY)
		return ipm_fail(err, -EINVAL, "lun \"%s\": this node is its mirror: run resize on its primary, %s (the mirror grows with it)",
				l->cfg->name, peer);
	if (l->cfg->mirrored && grouped)
		return ipm_fail(err, -EPROTO, "lun \"%s\": %s speaks protocol version 4, which cannot grow a LUN: upgrade it first",
				l->cfg->name, peer);
	if (l->cfg->mirrored && !l->rep)
		return ipm_fail(err, -ENOTCONN, "lun \"%s\" has no session with %s here (its log says why)",
				l->cfg->name, peer);
	return 0;
}

/* The mirror refused: say why, naming its backing. */
static int peer_refused(struct ipm_lun *l, uint64_t size, uint64_t backing, int rc,
			ipm_error *err)
{
	const char *peer = l->engine->peer->name;
	const struct ipm_backing_cfg *b = ipm_lun_cfg_backing_entry(l->cfg, peer);

	if (rc == -EFBIG)
		return ipm_fail(err, rc, "lun \"%s\": %s's backing %s is %llu bytes, smaller than %llu: grow it first (truncate -s, lvextend); nothing changed",
				l->cfg->name, peer, b ? b->path : "?", (unsigned long long)backing,
				(unsigned long long)size);
	return ipm_fail(err, rc, "lun \"%s\": %s refused the grow to %llu bytes (%s; its log says why); nothing changed",
			l->cfg->name, peer, (unsigned long long)size, strerror(-rc));
}

/* Primary of a mirrored LUN, gate and admin held: the mirror grows first;
 * then this node, and the session is re-made so that its resync copies the
 * new range. The size is recorded here before the mirror is asked: after
 * a crash from then on, the next handshake grows the mirror (receiver.c). */
static int grow_mirrored(ipm_engine *e, struct ipm_lun *l, uint64_t size, ipm_error *err)
{
	uint64_t prev = 0, peer_backing = 0;
	bool had = resize_recorded(l->journal_path, &prev, NULL) == 0;
	ipm_error why = { "" };
	int rc;

	rc = replicator_resize_ready(l->rep, l, err);
	if (rc == 0)
		rc = resize_record(l->journal_path, size, err);
	if (rc < 0)
		return rc;
	rc = replicator_resize(l->rep, l, size, &peer_backing, &why);
	if (rc == -ETIMEDOUT) {
		/* it may have grown: ours goes on, the handshake grows it */
		qb_log(LOG_WARNING, "lun %s: %s; growing here, %s grows at the next connection",
		       l->cfg->name, why.msg, e->peer->name);
	} else if (rc < 0) {
		if (resize_unrecord(l->journal_path, had, prev, &why) < 0)
			qb_log(LOG_ERR, "lun %s: %s", l->cfg->name, why.msg);
		return peer_refused(l, size, peer_backing, rc, err);
	}
	lun_mirror_detach(e, l);
	rc = lun_grow(l, size, true, err);
	if (lun_mirror_attach(e, l, rc < 0 ? &why : err) < 0 && rc == 0)
		rc = -EIO;
	return rc;
}

int ipm_lun_resize(ipm_lun *l, uint64_t size, ipm_error *err)
{
	ipm_engine *e = l->engine;
	uint64_t old, backing = 0;
	int64_t t0 = ipm_now_ms();
	bool grouped;
	int rc;

	/* no host request runs on it meanwhile: those under way end first */
	lun_change_begin(e, l, &grouped);
	old = l->size;
	rc = refuse(l, grouped, err);
	if (rc == 0 && (rc = lun_backing_size(l, &backing)) < 0)
		ipm_fail(err, rc, "lun \"%s\": backing %s: %s", l->cfg->name, l->path, strerror(-rc));
	if (rc == 0)
		rc = resize_check(l->cfg->name, l->size, size, l->path, backing, err);
	if (rc != 0)
		goto out;
	rc = l->cfg->mirrored ? grow_mirrored(e, l, size, err)
			      : lun_grow(l, size, false, err);
	if (rc < 0)
		goto out;
	qb_log(LOG_NOTICE, "lun %s: GROWN from %llu to %llu bytes (%lld ms)%s; new NBD connections see the new size; set size=\"%llu\" in the config on both nodes",
	       l->cfg->name, (unsigned long long)old, (unsigned long long)size,
	       (long long)(ipm_now_ms() - t0),
	       l->cfg->mirrored ? "; the new range is resynced to the peer" : "",
	       (unsigned long long)size);
	rc = ipm_note(err, "lun \"%s\" grown from %llu to %llu bytes%s", l->cfg->name,
		      (unsigned long long)old, (unsigned long long)size,
		      l->cfg->mirrored ? " on both nodes; the new range is being synced" : "");
out:
	lun_change_end(e, l, grouped);
	return rc < 0 ? rc : 0;
}
