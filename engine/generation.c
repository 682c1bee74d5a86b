/* generation.c - data generations of a LUN: the file, rotation, comparison,
 * and what the primary and the mirror do with them (doc/generations.md).
 *
 * File format (all big-endian, 128 bytes):
 *   0  magic "IPMGEN01"     8  version u32 (1)     12 flags u32
 *   16 current u64          24 n_history u32       28 reserved u32 (0)
 *   32 history[8] u64       96 fill u64 (mirror: the full copy's id; 0 none)
 *   104 reserved (20 bytes of 0)   124 crc32c of bytes 0..123
 * flags: 1 shared, 2 splitbrain, 4 discard, 8 was_primary, 16 consistent,
 * 32 invalid, 64 never_synced, 128 fill_asked, 256 peer_invalid (the last
 * four since the initial sync: older files have none of them, an older
 * ipmirror refuses a file with them as "unknown flags"). `fill` was reserved
 * before: an older ipmirror ignores it, and its copy restarts from zero.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <qb/qblog.h>

#include "lockdebug.h"
#include "auth.h"
#include "crc32c.h"
#include "endian.h"
#include "fileio.h"
#include "generation.h"
#include "lun.h"
#include "wire.h"

#define GEN_MAGIC "IPMGEN01"
#define GEN_VERSION 1
#define GEN_FILE_LEN 128
#define GEN_CRC_OFF 124

enum {
	F_SHARED = 1, F_SPLITBRAIN = 2, F_DISCARD = 4, F_WAS_PRIMARY = 8, F_CONSISTENT = 16,
	F_INVALID = 32, F_NEVER_SYNCED = 64, F_FILL_ASKED = 128, F_PEER_INVALID = 256,
};
#define F_ALL (F_SHARED | F_SPLITBRAIN | F_DISCARD | F_WAS_PRIMARY | F_CONSISTENT | \
	       F_INVALID | F_NEVER_SYNCED | F_FILL_ASKED | F_PEER_INVALID)

static uint32_t flags_of(const struct generation *g)
{
	return (g->shared ? F_SHARED : 0) | (g->splitbrain ? F_SPLITBRAIN : 0) |
	       (g->discard ? F_DISCARD : 0) | (g->was_primary ? F_WAS_PRIMARY : 0) |
	       (g->consistent ? F_CONSISTENT : 0) | (g->invalid ? F_INVALID : 0) |
	       (g->never_synced ? F_NEVER_SYNCED : 0) | (g->fill_asked ? F_FILL_ASKED : 0) |
	       (g->peer_invalid ? F_PEER_INVALID : 0);
}

static void encode(const struct generation *g, uint8_t *b)
{
	uint8_t *p = b;
	unsigned i;

	memset(b, 0, GEN_FILE_LEN);
	memcpy(p, GEN_MAGIC, 8);
	p = be_put32(p + 8, GEN_VERSION);
	p = be_put32(p, flags_of(g));
	p = be_put64(p, g->current);
	p = be_put32(p, g->n_history);
	p += 4;
	for (i = 0; i < GEN_HISTORY; i++)
		p = be_put64(p, i < g->n_history ? g->history[i] : 0);
	be_put64(p, g->fill);
	be_put32(b + GEN_CRC_OFF, crc32c(0, b, GEN_CRC_OFF));
}

static int decode(const uint8_t *b, const char *path, struct generation *g, ipm_error *err)
{
	uint32_t flags;
	unsigned i;

	if (memcmp(b, GEN_MAGIC, 8) != 0)
		return ipm_fail(err, -EINVAL, "%s: not a generation file (bad magic)", path);
	if (be_get32(b + GEN_CRC_OFF) != crc32c(0, b, GEN_CRC_OFF))
		return ipm_fail(err, -EINVAL, "%s: checksum mismatch: the file is damaged", path);
	if (be_get32(b + 8) != GEN_VERSION)
		return ipm_fail(err, -EINVAL, "%s: version %u, this ipmirror reads %d", path,
				be_get32(b + 8), GEN_VERSION);
	flags = be_get32(b + 12);
	if (flags & ~F_ALL)
		return ipm_fail(err, -EINVAL, "%s: unknown flags 0x%x", path, flags & ~F_ALL);
	*g = (struct generation){
		.current = be_get64(b + 16),
		.n_history = be_get32(b + 24),
		.shared = flags & F_SHARED,
		.splitbrain = flags & F_SPLITBRAIN,
		.discard = flags & F_DISCARD,
		.was_primary = flags & F_WAS_PRIMARY,
		.consistent = flags & F_CONSISTENT,
		.invalid = flags & F_INVALID,
		.never_synced = flags & F_NEVER_SYNCED,
		.fill_asked = flags & F_FILL_ASKED,
		.peer_invalid = flags & F_PEER_INVALID,
	};
	if (g->n_history > GEN_HISTORY)
		return ipm_fail(err, -EINVAL, "%s: %u history entries, at most %d", path,
				g->n_history, GEN_HISTORY);
	for (i = 0; i < g->n_history; i++)
		g->history[i] = be_get64(b + 32 + 8 * i);
	g->fill = be_get64(b + 96);
	return 0;
}

int gen_load(const char *path, struct generation *g, ipm_error *err)
{
	uint8_t b[GEN_FILE_LEN];
	ssize_t n;
	int fd;

	*g = (struct generation){ 0 };
	fd = open_own_file(path, O_RDONLY, "generation file", NULL, err);
	if (fd == -ENOENT) {
		if (err)
			err->msg[0] = '\0'; /* never written: not an error */
		return 0;
	}
	if (fd < 0)
		return fd;
	n = pread_full(fd, b, sizeof(b), 0);
	close(fd);
	if (n < 0)
		return ipm_fail(err, (int)n, "%s: cannot read: %s", path, strerror((int)-n));
	if (n != GEN_FILE_LEN)
		return ipm_fail(err, -EINVAL, "%s: %zd bytes, a generation file has %d", path, n,
				GEN_FILE_LEN);
	return decode(b, path, g, err);
}

int gen_save(const char *path, const struct generation *g, ipm_error *err)
{
	uint8_t b[GEN_FILE_LEN];
	char tmp[4300];

	encode(g, b);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	return replace_file(path, tmp, b, sizeof(b), "generation file", err);
}

uint64_t gen_initial(const char *lun, uint64_t size)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	const char *p;
	int i;

	for (p = lun; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	for (i = 0; i < 8; i++)
		h = (h ^ (uint8_t)(size >> (8 * i))) * 0x100000001b3ull;
	return h ? h : 1;
}

void gen_new(struct generation *g, bool source)
{
	*g = (struct generation){ .never_synced = true };
	if (source) {
		/* a line of its own: no peer can hold it by chance, so a peer
		 * with data of its own is a split brain, never "the same" */
		gen_rotate(g);
		g->consistent = true;
		g->peer_invalid = true;
	} else {
		g->invalid = true;
	}
}

void gen_rotate(struct generation *g)
{
	uint64_t next = 0;

	while (next == 0 || next == g->current)
		auth_random((uint8_t *)&next, sizeof(next));
	if (g->current) {
		memmove(g->history + 1, g->history, (GEN_HISTORY - 1) * sizeof(g->history[0]));
		g->history[0] = g->current;
		if (g->n_history < GEN_HISTORY)
			g->n_history++;
	}
	g->current = next;
	g->shared = false;
}

void gen_adopt(struct generation *g, uint64_t current, const uint64_t *history, unsigned n)
{
	if (n > GEN_HISTORY)
		n = GEN_HISTORY;
	g->current = current;
	memcpy(g->history, history, n * sizeof(history[0]));
	g->n_history = n;
	g->shared = true;
	g->splitbrain = false;
	g->discard = false;
	g->was_primary = false;
	g->consistent = true;
	g->invalid = false;
	g->never_synced = false;
	g->fill_asked = false;
	g->peer_invalid = false;
	g->fill = 0;
}

static bool in(uint64_t v, const uint64_t *list, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (list[i] == v)
			return true;
	return false;
}

enum gen_relation gen_compare(const struct generation *mine, uint64_t peer_current,
			      const uint64_t *peer_history, unsigned n)
{
	if (mine->current == peer_current)
		return GEN_SAME;
	if (mine->current == 0 || in(mine->current, peer_history, n))
		return GEN_PEER_AHEAD;
	if (peer_current == 0 || in(peer_current, mine->history, mine->n_history))
		return GEN_PEER_BEHIND;
	return GEN_DIVERGED;
}

unsigned gen_verdict(const struct generation *mine, uint64_t peer_current,
		     const uint64_t *peer_history, unsigned n, enum gen_relation *rel)
{
	*rel = gen_compare(mine, peer_current, peer_history, n);
	/* a copy the admin gave up, or that never held anything, is replaced
	 * whole whatever its line: nothing in it is to be kept */
	if (mine->discard || mine->invalid)
		return WIRE_LV_FULL;
	if (*rel == GEN_PEER_BEHIND || *rel == GEN_DIVERGED)
		return WIRE_LV_SPLITBRAIN;
	/* our disk may hold writes the primary never saw: no journal of
	 * theirs covers them, so everything is copied */
	if (mine->was_primary || mine->splitbrain)
		return WIRE_LV_FULL;
	return 0;
}

const char *gen_relation_name(enum gen_relation r)
{
	switch (r) {
	case GEN_SAME: return "same";
	case GEN_PEER_AHEAD: return "peer ahead";
	case GEN_PEER_BEHIND: return "peer behind";
	case GEN_DIVERGED: return "diverged";
	}
	return "?";
}

/* ---- a LUN's generations ------------------------------------------------- */

void lun_gen_init(struct lun_gen *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
}

void lun_gen_fini(struct lun_gen *g)
{
	pthread_mutex_destroy(&g->lock);
}

bool lun_gen_wrote(struct ipm_lun *l)
{
	return __atomic_load_n(&l->g.wrote, __ATOMIC_ACQUIRE);
}

void lun_gen_announce(struct ipm_lun *l, struct wire_lun *wl)
{
	pthread_mutex_lock(&l->g.lock);
	wl->generation = l->g.gen.current;
	l->g.announced = l->g.gen.current;
	wl->n_history = (uint8_t)l->g.gen.n_history;
	memcpy(wl->history, l->g.gen.history, sizeof(wl->history));
	pthread_mutex_unlock(&l->g.lock);
}

static void save_locked(struct ipm_lun *l)
{
	ipm_error err = { "" };

	IPM_ASSERT_HELD(&l->g.lock);
	if (gen_save(l->g.path, &l->g.gen, &err) < 0)
		qb_log(LOG_ERR, "lun %s: %s", l->cfg->name, err.msg);
}

/* A LUN without a generation file: the source is its primary (the config's
 * primary at a first start, or whoever is promoted); written at once, so
 * that a role change, which re-opens the LUN, finds it. */
static int gen_create(struct ipm_lun *l, ipm_error *err)
{
	bool source = l->role == IPM_ROLE_PRIMARY;
	ipm_error e;
	int rc;

	gen_new(&l->g.gen, source);
	rc = gen_save(l->g.path, &l->g.gen, &e);
	if (rc < 0)
		return ipm_fail(err, rc, "lun \"%s\": %s", l->cfg->name, e.msg);
	if (source)
		qb_log(LOG_NOTICE, "lun %s: new, no generation file: this node's copy is the source of the initial sync (data generation %016llx); %s's copy is replaced whole",
		       l->cfg->name, (unsigned long long)l->g.gen.current,
		       l->engine->peer ? l->engine->peer->name : "the peer");
	else
		qb_log(LOG_WARNING, "lun %s: new, no generation file: this node's copy is inconsistent until the initial sync from %s has copied it whole",
		       l->cfg->name, l->cfg->primary);
	return 0;
}

int lun_gen_open(struct ipm_lun *l, ipm_error *err)
{
	ipm_error e;
	int rc;

	snprintf(l->g.path, sizeof(l->g.path), "%s.gen", l->journal_path);
	/* its own buffer: a message formatted into the one it reads comes out garbled */
	rc = gen_load(l->g.path, &l->g.gen, &e);
	if (rc < 0)
		return ipm_fail(err, rc, "lun \"%s\": %s", l->cfg->name, e.msg);
	/* only a missing file loads as no line and no flag: every file
	 * written has a current or the invalid flag */
	if (!l->g.gen.current && !l->g.gen.invalid)
		return gen_create(l, err);
	return 0;
}

void lun_gen_first_write(struct ipm_lun *l)
{
	pthread_mutex_lock(&l->g.lock);
	/* until a clean stop this node may hold writes the peer lacks; the
	 * primary's copy is the reference, so it is consistent */
	if (!l->g.gen.was_primary || !l->g.gen.consistent) {
		l->g.gen.was_primary = true;
		l->g.gen.consistent = true;
		save_locked(l);
	}
	__atomic_store_n(&l->g.wrote, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&l->g.lock);
}

void lun_gen_diverge(struct ipm_lun *l)
{
	uint64_t old;

	pthread_mutex_lock(&l->g.lock);
	if (l->g.gen.shared) {
		old = l->g.gen.current;
		gen_rotate(&l->g.gen);
		save_locked(l);
		qb_log(LOG_NOTICE, "lun %s: writing without the peer: new data generation %016llx (was %016llx)",
		       l->cfg->name, (unsigned long long)l->g.gen.current, (unsigned long long)old);
	}
	pthread_mutex_unlock(&l->g.lock);
}

bool lun_gen_shared(struct ipm_lun *l)
{
	bool first, named;

	pthread_mutex_lock(&l->g.lock);
	named = l->g.announced == l->g.gen.current;
	first = named && l->g.gen.peer_invalid;
	if (named && (!l->g.gen.shared || l->g.gen.peer_invalid || l->g.gen.never_synced)) {
		l->g.gen.shared = true;
		l->g.gen.peer_invalid = false;
		l->g.gen.never_synced = false;
		save_locked(l);
	}
	pthread_mutex_unlock(&l->g.lock);
	if (first)
		qb_log(LOG_NOTICE, "lun %s: %s's copy is complete: both copies are equal",
		       l->cfg->name, l->engine->peer->name);
	if (!named)
		qb_log(LOG_NOTICE, "lun %s: data generation %016llx started after %s heard of %016llx: it shakes hands again",
		       l->cfg->name, (unsigned long long)l->g.gen.current, l->engine->peer->name,
		       (unsigned long long)l->g.announced);
	return named;
}

void lun_gen_clean_stop(struct ipm_lun *l)
{
	pthread_mutex_lock(&l->g.lock);
	if (l->g.gen.was_primary) {
		l->g.gen.was_primary = false;
		save_locked(l);
	}
	pthread_mutex_unlock(&l->g.lock);
}

void lun_gen_verdict(struct ipm_lun *l, unsigned verdict, bool accepted)
{
	pthread_mutex_lock(&l->g.lock);
	if ((verdict & WIRE_LV_SPLITBRAIN) && !l->g.gen.splitbrain) {
		l->g.gen.splitbrain = true;
		save_locked(l);
		qb_log(LOG_CRIT, "lun %s: SPLIT BRAIN: the peer %s holds writes this node lacks and this node holds writes it lacks; nothing is overwritten: run `ipmirrorctl resolve %s --discard-local` on the node whose changes are to be dropped",
		       l->cfg->name, l->engine->peer->name, l->cfg->name);
	} else if (accepted && !(verdict & WIRE_LV_SPLITBRAIN) && l->g.gen.splitbrain) {
		l->g.gen.splitbrain = false;
		save_locked(l);
		qb_log(LOG_NOTICE, "lun %s: split brain resolved: the peer takes this node's data",
		       l->cfg->name);
	}
	pthread_mutex_unlock(&l->g.lock);
}

static void forget_primary_files(struct ipm_lun *l)
{
	static const char *const suffixes[] = { "", ".bitmap", ".al" };
	char path[4300];
	unsigned i;

	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s%s", l->journal_path, suffixes[i]);
		if (unlink(path) == 0)
			qb_log(LOG_NOTICE, "lun %s: %s removed: its writes were superseded by the peer's data",
			       l->cfg->name, path);
	}
}

/* A full copy begins: it gets an id, saved before the primary hears it (so
 * before any of its data arrives). One begun keeps its id until the copy
 * completes or is given up (invalidate, resolve): whatever the primary
 * copied under it is in this copy. */
static void fill_begin_locked(struct ipm_lun *l, uint64_t *fill)
{
	IPM_ASSERT_HELD(&l->g.lock);
	if (!l->g.gen.fill) {
		while (!l->g.gen.fill)
			auth_random((uint8_t *)&l->g.gen.fill, sizeof(l->g.gen.fill));
		save_locked(l);
		qb_log(LOG_INFO, "lun %s: the full copy from %s is fill %016llx",
		       l->cfg->name, l->engine->peer->name, (unsigned long long)l->g.gen.fill);
	}
	*fill = l->g.gen.fill;
}

int lun_gen_judge(struct ipm_lun *l, const struct wire_lun *peer, unsigned *verdict,
		  uint64_t *fill, char *reason, size_t reason_len)
{
	enum gen_relation rel;
	int rc = 0;

	*fill = 0;
	pthread_mutex_lock(&l->g.lock);
	*verdict = gen_verdict(&l->g.gen, peer->generation, peer->history, peer->n_history, &rel);
	if (*verdict & WIRE_LV_SPLITBRAIN) {
		if (!l->g.gen.splitbrain) {
			l->g.gen.splitbrain = true;
			save_locked(l);
			qb_log(LOG_CRIT, "lun %s: SPLIT BRAIN with %s (generations: ours %016llx, theirs %016llx, %s); nothing is overwritten: run `ipmirrorctl resolve %s --discard-local` on the node whose changes are to be dropped",
			       l->cfg->name, l->engine->peer->name,
			       (unsigned long long)l->g.gen.current,
			       (unsigned long long)peer->generation, gen_relation_name(rel),
			       l->cfg->name);
		}
		snprintf(reason, reason_len, "split brain on lun \"%s\": %s", l->cfg->name,
			 rel == GEN_DIVERGED ? "both nodes wrote without the other"
					     : "this node holds newer data");
		rc = EXDEV;
	} else if (l->g.gen.invalid && !l->g.gen.fill_asked) {
		/* the primary marks the whole LUN from now on: assume-clean
		 * can no longer skip the copy */
		l->g.gen.fill_asked = true;
		save_locked(l);
		qb_log(LOG_NOTICE, "lun %s: this copy is inconsistent: %s copies it whole",
		       l->cfg->name, l->engine->peer->name);
	}
	if (rc == 0 && (*verdict & WIRE_LV_FULL))
		fill_begin_locked(l, fill);
	/* taken over when the resync pass completes (lun_gen_insync) */
	if (rc == 0) {
		l->g.peer = (struct generation){ 0 };
		gen_adopt(&l->g.peer, peer->generation, peer->history, peer->n_history);
	}
	pthread_mutex_unlock(&l->g.lock);
	return rc;
}

void lun_gen_insync(struct ipm_lun *l)
{
	pthread_mutex_lock(&l->g.lock);
	if (l->g.gen.invalid && !l->g.gen.fill_asked) {
		/* the end of a pass that began before this copy was invalidated:
		 * only the whole copy asked for since makes it whole */
		pthread_mutex_unlock(&l->g.lock);
		return;
	}
	if (l->g.gen.current != l->g.peer.current || !l->g.gen.shared || l->g.gen.discard ||
	    l->g.gen.was_primary || l->g.gen.invalid || l->g.gen.never_synced) {
		if (l->g.gen.was_primary || l->g.gen.discard || l->g.gen.invalid)
			forget_primary_files(l);
		gen_adopt(&l->g.gen, l->g.peer.current, l->g.peer.history, l->g.peer.n_history);
		save_locked(l);
		qb_log(LOG_NOTICE, "lun %s: up to date with %s at data generation %016llx",
		       l->cfg->name, l->engine->peer->name, (unsigned long long)l->g.gen.current);
	} else if (!l->g.gen.consistent) {
		l->g.gen.consistent = true;
		save_locked(l);
	}
	pthread_mutex_unlock(&l->g.lock);
}

int lun_gen_discard(struct ipm_lun *l, ipm_error *err)
{
	int rc;

	pthread_mutex_lock(&l->g.lock);
	l->g.gen.discard = true;
	l->g.gen.splitbrain = false;
	l->g.gen.fill = 0;   /* a new copy: nothing copied before counts */
	rc = gen_save(l->g.path, &l->g.gen, err);
	pthread_mutex_unlock(&l->g.lock);
	if (rc == 0)
		qb_log(LOG_WARNING, "lun %s: local changes will be discarded: the whole LUN is copied from %s at the next connection",
		       l->cfg->name, l->engine->peer->name);
	return rc;
}

bool lun_gen_splitbrain(struct ipm_lun *l)
{
	bool sb;

	pthread_mutex_lock(&l->g.lock);
	sb = l->g.gen.splitbrain;
	pthread_mutex_unlock(&l->g.lock);
	return sb;
}

void lun_gen_string(struct ipm_lun *l, char *out, size_t len)
{
	pthread_mutex_lock(&l->g.lock);
	if (l->g.gen.current)
		snprintf(out, len, "%016llx", (unsigned long long)l->g.gen.current);
	else
		snprintf(out, len, "none");
	pthread_mutex_unlock(&l->g.lock);
}

int ipm_lun_resolve_discard(ipm_lun *l, ipm_error *err)
{
	enum ipm_role role;
	int rc;

	if (!l->cfg->mirrored)
		return ipm_fail(err, -EINVAL, "lun \"%s\" is not mirrored: nothing to resolve",
				l->cfg->name);
	role = l->role;
	if (role != IPM_ROLE_MIRROR)
		return ipm_fail(err, -EBUSY,
				"lun \"%s\": this node is its primary; demote it here first (the node whose data is discarded must be the mirror)",
				l->cfg->name);
	if (!lun_gen_splitbrain(l))
		return ipm_fail(err, -EINVAL, "lun \"%s\" is not in split brain: nothing to resolve",
				l->cfg->name);
	rc = lun_gen_discard(l, err);
	if (rc < 0)
		return rc;
	return ipm_note(err,
			"lun \"%s\": local changes will be discarded; the whole LUN is copied from %s when it connects",
			l->cfg->name, l->engine->peer->name);
}

int ipm_lun_mark_consistent(ipm_lun *l, ipm_error *err)
{
	enum ipm_role role;
	int rc = 0;

	role = l->role;
	if (role != IPM_ROLE_PRIMARY)
		return ipm_fail(err, -EINVAL, "lun \"%s\": only its primary's copy is the reference",
				l->cfg->name);
	pthread_mutex_lock(&l->g.lock);
	if (!l->g.gen.consistent) {
		l->g.gen.consistent = true;
		rc = gen_save(l->g.path, &l->g.gen, err);
	}
	pthread_mutex_unlock(&l->g.lock);
	return rc;
}

void lun_gen_resyncing(struct ipm_lun *l)
{
	pthread_mutex_lock(&l->g.lock);
	if (l->g.gen.consistent) {
		l->g.gen.consistent = false;
		save_locked(l);
	}
	pthread_mutex_unlock(&l->g.lock);
}

bool lun_gen_consistent(struct ipm_lun *l)
{
	bool c;

	pthread_mutex_lock(&l->g.lock);
	c = l->g.gen.consistent && !l->g.gen.splitbrain && !l->g.gen.invalid;
	pthread_mutex_unlock(&l->g.lock);
	return c;
}

bool lun_gen_invalid(struct ipm_lun *l)
{
	bool v;

	pthread_mutex_lock(&l->g.lock);
	v = l->g.gen.invalid;
	pthread_mutex_unlock(&l->g.lock);
	return v;
}

bool lun_gen_peer_invalid(struct ipm_lun *l)
{
	bool v;

	pthread_mutex_lock(&l->g.lock);
	v = l->g.gen.peer_invalid;
	pthread_mutex_unlock(&l->g.lock);
	return v;
}

uint64_t lun_gen_peer_current(struct ipm_lun *l)
{
	uint64_t v;

	pthread_mutex_lock(&l->g.lock);
	v = l->g.peer.current;
	pthread_mutex_unlock(&l->g.lock);
	return v;
}

/* Persist g as the LUN's record, or leave the old one in place. */
static int replace_locked(struct ipm_lun *l, const struct generation *g, ipm_error *err)
{
	int rc;

	IPM_ASSERT_HELD(&l->g.lock);
	rc = gen_save(l->g.path, g, err);
	if (rc == 0)
		l->g.gen = *g;
	return rc;
}

int lun_gen_invalidate(struct ipm_lun *l, ipm_error *err)
{
	struct generation g;
	int rc;

	pthread_mutex_lock(&l->g.lock);
	g = l->g.gen;
	/* the line is kept (history): only the data is given up */
	g.invalid = true;
	g.consistent = false;
	g.fill_asked = false;
	g.fill = 0;   /* a new copy: nothing copied before counts */
	rc = replace_locked(l, &g, err);
	pthread_mutex_unlock(&l->g.lock);
	return rc;
}

int lun_gen_assume_clean(struct ipm_lun *l, ipm_error *err)
{
	struct generation g;
	int rc;

	pthread_mutex_lock(&l->g.lock);
	g = l->g.gen;
	if (!g.never_synced || !g.invalid) {
		rc = ipm_fail(err, -EALREADY,
			      "lun \"%s\": this copy is not a never-synced one (it was synced, or holds data of its own): assume-clean only skips the initial sync of a new LUN",
			      l->cfg->name);
		goto out;
	}
	if (g.fill_asked) {
		rc = ipm_fail(err, -EALREADY,
			      "lun \"%s\": the initial sync from %s has begun (its primary marked the whole LUN for copying): it runs to the end; assume-clean applies before the nodes first connect",
			      l->cfg->name, l->engine->peer->name);
		goto out;
	}
	/* the copy counts as whole; the first resync pass that ends (journal
	 * only) makes it take the primary's line */
	g.invalid = false;
	g.consistent = true;
	rc = replace_locked(l, &g, err);
out:
	pthread_mutex_unlock(&l->g.lock);
	return rc;
}

int lun_gen_take_source(struct ipm_lun *l, ipm_error *err)
{
	struct generation g = { 0 };
	uint64_t old;
	int rc;

	pthread_mutex_lock(&l->g.lock);
	old = l->g.gen.current;
	/* no history: the peer's line, whatever it is, is no ancestor */
	gen_rotate(&g);
	g.consistent = true;
	g.peer_invalid = true;
	g.never_synced = l->g.gen.never_synced;
	rc = replace_locked(l, &g, err);
	pthread_mutex_unlock(&l->g.lock);
	if (rc == 0)
		qb_log(LOG_CRIT, "lun %s: FORCED: this inconsistent copy becomes a source of its own (data generation %016llx, was %016llx): a peer holding data meets a split brain",
		       l->cfg->name, (unsigned long long)g.current, (unsigned long long)old);
	return rc;
}
