/* adjust.c - a reload's one entry into the running engine: the changes
 * between two loads of the config file (config_diff.c) are refused as a
 * whole when one needs a restart, else applied through the small setters of
 * the replicator and the heartbeat, and LUNs added or removed (lun_admin.c).
 * Nothing here touches another LUN's connection. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <qb/qblog.h>

#include "config_diff.h"
#include "engine.h"
#include "heartbeat.h"
#include "lun.h"
#include "replicator.h"
#include "storage_hb.h"

struct emitter {
	ipm_adjust_fn fn;
	void *opaque;
	const char *path;
};

static void emit(const struct emitter *em, const struct cfg_change *c, const char *tail)
{
	char line[640];

	if (c->line)
		snprintf(line, sizeof(line), "%s:%d: %s%s", em->path, c->line, c->text, tail);
	else
		snprintf(line, sizeof(line), "%s: %s%s", em->path, c->text, tail);
	if (em->fn)
		em->fn(em->opaque, line);
}

static bool in_service(ipm_engine *e, const char *name);

static bool mirrored_in(const ipm_config *cfg, const char *name)
{
	unsigned i;

	for (i = 0; i < cfg->n_luns; i++)
		if (strcmp(cfg->luns[i].name, name) == 0)
			return cfg->luns[i].mirrored;
	return false;
}

static const struct ipm_lun_cfg *lun_cfg_named(const ipm_config *cfg, const char *name)
{
	unsigned i;

	for (i = 0; i < cfg->n_luns; i++)
		if (strcmp(cfg->luns[i].name, name) == 0)
			return &cfg->luns[i];
	return NULL;
}

/* cur's size of the LUN is less than its size here (grown online perhaps). */
static bool shrinks(ipm_engine *e, const ipm_config *cur, const char *name)
{
	const struct ipm_lun_cfg *lc = lun_cfg_named(cur, name);
	struct ipm_lun *l = ipm_engine_lun_by_name(e, name);

	return lc && l && lc->size < ipm_lun_size(l);
}

/* What the engine cannot take live, with why (buf holds the longer
 * reasons). A LUN added is refused where ipm_engine_lun_add would refuse
 * it (doc/roles.md's limits), so nothing else of the reload is applied
 * first; a LUN removed must be down here. */
static const char *refusal(ipm_engine *e, const ipm_config *cur, const struct cfg_change *c,
			   char *buf, size_t len)
{
	switch (c->kind) {
	case CHG_RESTART:
		return ": cannot change while running (needs a restart)";
	case CHG_LUN_ADD:
		if (!mirrored_in(cur, c->lun))
			return NULL;
		if (!e->secret || !e->hb || !e->peer)
			return ": it is the first mirrored lun: the peer, the secret and the heartbeat need a restart";
		if (e->grouped)
			return ": the luns primary here share one session with a version 4 peer: a new one needs a restart";
		return NULL;
	case CHG_LUN_REMOVE:
		if (!e || !in_service(e, c->lun))
			return NULL;
		snprintf(buf, len, ": it is in service here: `ipmirrorctl down %s` first", c->lun);
		return buf;
	case CHG_LUN_SIZE:
		return shrinks(e, cur, c->lun) ? ": shrinking a LUN is not supported" : NULL;
	default:
		return NULL;
	}
}

static int lun_mode(ipm_engine *e, const struct cfg_change *c, const ipm_config *cur)
{
	struct ipm_lun *l = ipm_engine_lun_by_name(e, c->lun);
	int rc = cfg_change_apply(c, e->cfg, cur);

	/* l->cfg is e->cfg's entry: host requests see the new mode now */
	if (rc == 0 && l && l->rep)
		replicator_set_mode(l->rep, l, l->cfg->mode);
	return rc;
}

static int journal_max(ipm_engine *e, const struct cfg_change *c, const ipm_config *cur)
{
	struct ipm_lun *l = ipm_engine_lun_by_name(e, c->lun);
	int rc = cfg_change_apply(c, e->cfg, cur);

	if (rc == 0 && l && l->rep)
		replicator_set_journal_max(l->rep, l, l->cfg->journal_max);
	return rc;
}

static int hb_times(ipm_engine *e, const struct cfg_change *c, const ipm_config *cur,
		    ipm_error *err)
{
	int rc = 0;

	if (e->hb)
		rc = heartbeat_set_times(e->hb, cur->hb_interval, cur->hb_timeout,
					 cur->hb_probation, err);
	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&e->hb_lock);
	if (e->shb)
		storage_hb_set_interval(e->shb, cur->hb_interval);
	pthread_rwlock_unlock(&e->hb_lock);
	return cfg_change_apply(c, e->cfg, cur);
}

/* The window in force, with a note when the mirror's budget caps it:
 * each LUN primary here has a replicator of its own (lun_admin.c). */
static int async_window(ipm_engine *e, const struct cfg_change *c, const ipm_config *cur,
			char *note, size_t len)
{
	uint32_t now, least = cur->async_window;
	size_t i;

	for (i = 0; i < e->n_luns; i++) {
		if (!e->luns[i]->rep)
			continue;
		now = replicator_set_window(e->luns[i]->rep, cur->async_window);
		if (now < least)
			least = now;
	}
	if (least < cur->async_window)
		snprintf(note, len,
			 " (%u in force: the window the mirror was told when replication started; all of it from the next start)",
			 least);
	return cfg_change_apply(c, e->cfg, cur);
}

static void resync_rate(ipm_engine *e, const ipm_config *cur)
{
	size_t i;

	for (i = 0; i < e->n_luns; i++)
		if (e->luns[i]->rep)
			replicator_set_resync_rate(e->luns[i]->rep, cur->resync_rate);
}

static int apply_one(ipm_engine *e, const struct cfg_change *c, const ipm_config *cur,
		     char *note, size_t len, ipm_error *err)
{
	switch (c->kind) {
	case CHG_LUN_MODE:
		return lun_mode(e, c, cur);
	case CHG_JOURNAL_MAX:
		return journal_max(e, c, cur);
	case CHG_ASYNC_WINDOW:
		return async_window(e, c, cur, note, len);
	case CHG_RESYNC_RATE:
		resync_rate(e, cur);
		return cfg_change_apply(c, e->cfg, cur);
	case CHG_HB_TIMES:
		return hb_times(e, c, cur, err);
	case CHG_HB_METHOD:
		/* refused (no heartbeat volume...) before anything else is
		 * applied: it runs first */
		if (e->hb)
			return ipm_engine_hb_set_method(e, cur->hb_method, err);
		return cfg_change_apply(c, e->cfg, cur);
	case CHG_LOG:
		return cfg_change_apply(c, e->cfg, cur);
	default:
		return ipm_fail(err, -EINVAL, "%s: not a live change", c->text);
	}
}

static unsigned refused(ipm_engine *e, const ipm_config *cur, const struct cfg_diff *d)
{
	char buf[200];
	unsigned i, n = 0;

	for (i = 0; i < d->n; i++)
		n += refusal(e, cur, &d->v[i], buf, sizeof(buf)) != NULL;
	return n;
}

/* A LUN removed from the file while still in service here: say so first
 * (it must be down before it can go). */
static bool in_service(ipm_engine *e, const char *name)
{
	struct ipm_lun *l = ipm_engine_lun_by_name(e, name);
	bool up;

	if (!l)
		return false;
	pthread_rwlock_rdlock(&l->gate);
	up = !l->down;
	pthread_rwlock_unlock(&l->gate);
	return up;
}

static int refuse_all(ipm_engine *e, const ipm_config *cur, const struct cfg_diff *d,
		      const struct emitter *em, ipm_error *err)
{
	char buf[200];
	unsigned i, n = 0;
	const char *why;

	for (i = 0; i < d->n; i++) {
		why = refusal(e, cur, &d->v[i], buf, sizeof(buf));
		if (why) {
			emit(em, &d->v[i], why);
			n++;
		}
	}
	return ipm_fail(err, -EINVAL, "reload refused: %u change%s cannot be made live; nothing was applied",
			n, n == 1 ? "" : "s");
}

/* The method first (the one change that can be refused by the engine),
 * then the others in file order. */
static int apply_all(ipm_engine *e, const struct cfg_diff *d, const ipm_config *cur,
		     const struct emitter *em, ipm_error *err)
{
	char note[200];
	unsigned pass, i;
	int rc;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < d->n; i++) {
			const struct cfg_change *c = &d->v[i];

			if ((c->kind == CHG_HB_METHOD) != (pass == 0) || c->kind == CHG_LUN_SIZE ||
			    c->kind == CHG_LUN_ADD || c->kind == CHG_LUN_REMOVE)
				continue;
			note[0] = '\0';
			rc = apply_one(e, c, cur, note, sizeof(note), err);
			if (rc < 0)
				return rc;
			qb_log(LOG_NOTICE, "reload: %s:%d: %s%s", em->path, c->line, c->text, note);
			emit(em, c, note);
		}
	}
	return 0;
}

/* A LUN's size= grown in the file (doc/resize.md): on its primary, as
 * `ipmirrorctl resize` (the mirror grows first); where it has that size
 * already (grown by resize), only the config follows; on the mirror it
 * grows when its primary grows it. Not under admin: a resize takes the
 * LUN's gate, then admin. */
static int lun_size(ipm_engine *e, const struct cfg_change *c, const ipm_config *cur,
		    const char **note, ipm_error *err)
{
	const struct ipm_lun_cfg *lc = lun_cfg_named(cur, c->lun);
	struct ipm_lun *l = ipm_engine_lun_by_name(e, c->lun);
	int rc = 0;

	if (!l || !lc) {
		*note = " (not served here)";
		return 0;
	}
	if (ipm_lun_size(l) < lc->size && l->role == IPM_ROLE_MIRROR) {
		*note = " (this node is its mirror: it grows when its primary grows it)";
		return 0;
	}
	if (ipm_lun_size(l) < lc->size)
		rc = ipm_lun_resize(l, lc->size, err);
	else
		*note = " (its size already)";
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&e->admin);
	rc = cfg_change_apply(c, e->cfg, cur);
	pthread_mutex_unlock(&e->admin);
	return rc;
}

static int apply_sizes(ipm_engine *e, const struct cfg_diff *d, const ipm_config *cur,
		       const struct emitter *em, ipm_error *err)
{
	const char *note;
	unsigned i;
	int rc;

	for (i = 0; i < d->n; i++) {
		if (d->v[i].kind != CHG_LUN_SIZE)
			continue;
		note = "";
		rc = lun_size(e, &d->v[i], cur, &note, err);
		if (rc < 0) {
			emit(em, &d->v[i], ": failed");
			return rc;
		}
		qb_log(LOG_NOTICE, "reload: %s:%d: %s%s", em->path, d->v[i].line, d->v[i].text, note);
		emit(em, &d->v[i], note);
	}
	return 0;
}

/* One LUN added or removed. One that is so already (a reload that failed
 * part way, the file not taken: the next one diffs from the same old
 * file) is done. */
static int apply_lun(ipm_engine *e, const struct cfg_change *c, const ipm_config *cur,
		     const char **note, ipm_error *err)
{
	bool served = ipm_engine_lun_by_name(e, c->lun) != NULL;

	if (c->kind == CHG_LUN_REMOVE) {
		if (!served) {
			*note = " (not served here)";
			return 0;
		}
		return ipm_engine_lun_remove(e, c->lun, err);
	}
	if (served) {
		*note = " (served already)";
		return 0;
	}
	return ipm_engine_lun_add(e, cur, c->lun, err);
}

/* LUNs removed (down here: checked), then added, each under the engine's
 * own locks (not admin: lun_admin.c takes it). A LUN added opens its
 * backing and its own session; the others keep theirs. */
static int apply_luns(ipm_engine *e, const struct cfg_diff *d, const ipm_config *cur,
		      const struct emitter *em, ipm_error *err)
{
	const char *note;
	unsigned pass, i;
	int rc;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < d->n; i++) {
			const struct cfg_change *c = &d->v[i];

			if (c->kind != (pass == 0 ? CHG_LUN_REMOVE : CHG_LUN_ADD))
				continue;
			note = "";
			rc = apply_lun(e, c, cur, &note, err);
			if (rc < 0) {
				emit(em, c, ": failed");
				return rc;
			}
			qb_log(LOG_NOTICE, "reload: %s:%d: %s%s", em->path, c->line, c->text, note);
			emit(em, c, note);
		}
	}
	return 0;
}

int ipm_engine_adjust(ipm_engine *e, const ipm_config *old, const ipm_config *cur,
		      unsigned flags, ipm_adjust_fn fn, void *opaque, ipm_error *err)
{
	struct emitter em = { .fn = fn, .opaque = opaque, .path = cur->path };
	struct cfg_diff d;
	unsigned i;
	int rc;

	if (!ipm_config_has_node(cur, e->node))
		return ipm_fail(err, -ENOENT, "%s: node \"%s\" is not defined there any more",
				cur->path, e->node);
	rc = cfg_diff(old, cur, e->node, &d);
	if (rc < 0)
		return ipm_fail(err, rc, "out of memory");
	if (refused(e, cur, &d)) {
		rc = refuse_all(e, cur, &d, &em, err);
		goto out;
	}
	if (!d.n) {
		rc = ipm_note(err, "%s: no changes", cur->path);
		goto out;
	}
	if (flags & IPM_ADJUST_DRY_RUN) {
		for (i = 0; i < d.n; i++)
			emit(&em, &d.v[i], "");
		rc = ipm_note(err, "dry run: %u change%s would be applied live", d.n,
			      d.n == 1 ? "" : "s");
		goto out;
	}
	/* the LUNs' replicators stay while the changes reach them */
	pthread_mutex_lock(&e->admin);
	rc = apply_all(e, &d, cur, &em, err);
	pthread_mutex_unlock(&e->admin);
	if (rc == 0)
		rc = apply_sizes(e, &d, cur, &em, err);
	if (rc == 0)
		rc = apply_luns(e, &d, cur, &em, err);
	if (rc == 0)
		rc = ipm_note(err, "%u change%s applied", d.n, d.n == 1 ? "" : "s");
out:
	cfg_diff_free(&d);
	return rc;
}

int ipm_config_adjust(ipm_config *dst, const ipm_config *old, const ipm_config *cur,
		      const char *node)
{
	struct cfg_diff d;
	unsigned i;
	int rc = cfg_diff(old, cur, node, &d);

	/* a LUN dst lacks (-ENOENT) has nothing to follow */
	for (i = 0; rc == 0 && i < d.n; i++)
		if (d.v[i].kind != CHG_RESTART && cfg_change_apply(&d.v[i], dst, cur) == -ENOMEM)
			rc = -ENOMEM;
	cfg_diff_free(&d);
	return rc;
}
