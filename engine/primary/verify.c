/* verify.c - the primary's online verify (doc/verify.md): a LUN's copy
 * compared with the peer's, range by range, while hosts write.
 *
 * Racing writes: for each range (WIRE_VERIFY_MAX) a fence goes into the
 * LUN's list of active requests, so new host writes overlapping it wait
 * in submit() as they wait for each other; the writes admitted before it
 * are waited for (their local writes land before they leave the list).
 * Then a VERIFY numbered after every request sent so far goes to the
 * mirror, which digests the range only once all of them are applied,
 * while the range is read and digested here. Both digests cover exactly
 * the same writes, so a write in flight is never reported as a
 * difference. Differing blocks (WIRE_VERIFY_BLOCK) are logged, marked in
 * the resync's bitmap and, with repair, sent as WRITEs before the fence
 * goes; the fence is held until the mirror applied them.
 *
 * Locks: r->lock (replicator_int.h) guards struct verify_state; the
 * local read and digests are done without it. A difference costs a sync
 * of the small bitmap file under r->lock (resync_mark_locked), as a
 * journaled write does while the peer is away. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "auth.h"
#include "backing.h"
#include "clock.h"
#include "crc32c.h"
#include "lockdebug.h"
#include "lun.h"
#include "replicator_int.h"
#include "verify_digest.h"

#define VERIFY_RETRIES 3   /* answers without digests in a row (re-sent VERIFYs) */
#define VERIFY_BLOCKS (WIRE_VERIFY_MAX / WIRE_VERIFY_BLOCK)
#define PACE_SLICE_MS 100  /* a paced verify looks at stop this often */
/* Ranges compared at once: the disks read the next while one is digested,
 * and the mirror digests two at once over its connections. */
#define VERIFY_DEPTH 2

/* A range being compared: fenced, its VERIFY sent, its local read started. */
struct verify_slot {
	uint64_t off, len;
	uint8_t *buf;                          /* the range, read here */
	struct mreq *m;                        /* the fence and VERIFY */
	bool reading;                          /* a read in flight into buf */
	int rc;                                /* the read's */
	uint8_t mine[VERIFY_BLOCKS * WIRE_VERIFY_DIGEST_LEN];
};

/* One run: its thread's own state (struct verify_state is the shared part). */
struct verify_run {
	struct replicator *r;
	struct rep_lun *rl;
	uint8_t nonce[WIRE_VERIFY_NONCE_LEN];
	struct verify_key key;
	struct verify_slot slot[VERIFY_DEPTH]; /* the oldest at head, n started */
	unsigned head, n;
	uint64_t last_seq, last_dep;           /* the newest VERIFY sent */
	bool broken;                           /* a read cannot be waited for */
	bool differs[VERIFY_BLOCKS];           /* of the last range */
	uint64_t pend_off, pend_len;           /* a differing range not logged yet */
	unsigned ranges;                       /* differing ranges logged */
};

static const char *lun_name(const struct verify_run *v)
{
	return v->rl->lun->cfg->name;
}

static bool ranges_overlap(const struct wire_frame *a, const struct wire_frame *b)
{
	return a->offset < b->offset + b->length && b->offset < a->offset + a->length;
}

/* A request admitted before the fence still covers part of its range. */
static bool older_overlap(const struct rep_lun *rl, const struct mreq *fence)
{
	const struct mreq *a;

	for (a = rl->active; a; a = a->anext)
		if (a != fence && a->f.type != WIRE_FLUSH && ranges_overlap(&a->f, &fence->f))
			return true;
	return false;
}

static bool live_locked(const struct replicator *r, const struct verify_state *st)
{
	IPM_ASSERT_HELD(&r->lock);
	return r->running && !st->stop && r->link == LINK_LIVE;
}

/* Number a request after everything sent so far and queue it. */
static void send_locked(struct replicator *r, struct mreq *m)
{
	IPM_ASSERT_HELD(&r->lock);
	m->f.dep = r->next_seq;
	m->f.seq = ++r->next_seq;
	enqueue_locked(r, m);
}

/* A VERIFY: after everything sent so far, except that when nothing was
 * sent since our last VERIFY it needs only what that one needed (a VERIFY
 * changes nothing), so the mirror digests both at once. */
static void send_verify_locked(struct verify_run *v, struct mreq *m)
{
	struct replicator *r = v->r;
	uint64_t dep = v->last_seq && v->last_seq == r->next_seq ? v->last_dep : r->next_seq;

	IPM_ASSERT_HELD(&r->lock);
	m->f.dep = dep;
	m->f.seq = ++r->next_seq;
	enqueue_locked(r, m);   /* encodes the header: dep is set before */
	v->last_seq = m->f.seq;
	v->last_dep = dep;
}

static struct mreq *probe_new(struct verify_run *v, uint64_t off, uint64_t len)
{
	struct mreq *m = calloc(1, sizeof(*m));

	if (!m || !(m->owned = malloc(WIRE_VERIFY_NONCE_LEN + WIRE_VERIFY_DIGESTS_LEN(len)))) {
		free(m);
		return NULL;
	}
	memcpy(m->owned, v->nonce, WIRE_VERIFY_NONCE_LEN);
	m->data = m->owned;
	m->f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_VERIFY,
				    .lun = v->rl->index, .len = WIRE_VERIFY_NONCE_LEN,
				    .offset = off, .length = len };
	m->f.csum = crc32c(0, m->data, WIRE_VERIFY_NONCE_LEN);
	m->rl = v->rl;
	m->verify = true;
	m->refs = 2;   /* ours, and in flight */
	return m;
}

static void fence_remove_locked(struct replicator *r, struct mreq *m)
{
	IPM_ASSERT_HELD(&r->lock);
	active_remove(m->rl, m);
	pthread_cond_broadcast(&r->space_cond);
	mreq_put_locked(m);
}

/* Fence [off, off+len), wait for the writes before it, send the VERIFY.
 * NULL when the link left live meanwhile (or stopping, or no memory). */
static struct mreq *fence_locked(struct verify_run *v, uint64_t off, uint64_t len)
{
	struct replicator *r = v->r;
	struct verify_state *st = &v->rl->verify;
	struct mreq *m = probe_new(v, off, len);

	IPM_ASSERT_HELD(&r->lock);
	if (!m)
		return NULL;
	active_add(v->rl, m);
	while (live_locked(r, st) && (older_overlap(v->rl, m) || window_full_locked(r, m->f.len)))
		space_wait_slice_locked(r, PACE_SLICE_MS);
	if (!live_locked(r, st)) {
		m->refs = 1;   /* never sent */
		fence_remove_locked(r, m);
		return NULL;
	}
	send_verify_locked(v, m);
	return m;
}

/* One differing block copied from here, numbered after the VERIFY. NULL
 * when the link left live (the mark in the bitmap stays: the resync copies
 * it) or out of memory. */
static struct mreq *repair_send_locked(struct verify_run *v, const uint8_t *data, uint64_t off,
				       uint32_t len)
{
	struct replicator *r = v->r;
	struct mreq *m = calloc(1, sizeof(*m));

	IPM_ASSERT_HELD(&r->lock);
	if (!m || !(m->owned = malloc(len))) {
		free(m);
		return NULL;
	}
	memcpy(m->owned, data, len);
	m->data = m->owned;
	m->f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_WRITE,
				    .lun = v->rl->index, .len = len, .offset = off, .length = len };
	m->f.csum = crc32c(0, m->data, len);
	m->rl = v->rl;
	m->refs = 2;
	while (live_locked(r, &v->rl->verify) && window_full_locked(r, len))
		space_wait_slice_locked(r, PACE_SLICE_MS);
	if (!live_locked(r, &v->rl->verify)) {
		free(m->owned);
		free(m);
		return NULL;
	}
	/* a live write like a host's: the activity log is settled again after it */
	r->al_flushed = false;
	r->last_live_ms = ipm_now_ms();
	send_locked(r, m);
	return m;
}

/* Send the differing blocks of the range in s->buf, wait until the mirror
 * applied them (the fence holds host writes meanwhile). */
static void repair_locked(struct verify_run *v, const struct verify_slot *s, unsigned n)
{
	uint64_t off = s->off, len = s->len;
	struct replicator *r = v->r;
	struct mreq *sent[VERIFY_BLOCKS] = { NULL };
	unsigned i;

	IPM_ASSERT_HELD(&r->lock);
	for (i = 0; i < n; i++) {
		uint64_t b = (uint64_t)i * WIRE_VERIFY_BLOCK;
		uint64_t blen = len - b < WIRE_VERIFY_BLOCK ? len - b : WIRE_VERIFY_BLOCK;

		if (v->differs[i])
			sent[i] = repair_send_locked(v, s->buf + b, off + b, (uint32_t)blen);
	}
	for (i = 0; i < n; i++) {
		if (!sent[i])
			continue;
		while (!sent[i]->done && r->running && !v->rl->verify.stop)
			space_wait_slice_locked(r, PACE_SLICE_MS);
		if (sent[i]->done && sent[i]->status == 0)
			v->rl->verify.repaired += sent[i]->f.length;
		mreq_put_locked(sent[i]);
	}
}

/* The mirror's digests against ours: -EAGAIN when it answered without
 * them (a re-sent VERIFY answered before: ask again), -ECONNRESET when the
 * link left live. */
static int compare_locked(struct verify_run *v, const struct verify_slot *s)
{
	struct replicator *r = v->r;
	struct mreq *m = s->m;
	uint64_t off = s->off, len = s->len;
	const uint8_t *theirs = (const uint8_t *)m->owned + WIRE_VERIFY_NONCE_LEN;
	unsigned i, n = (unsigned)(WIRE_VERIFY_DIGESTS_LEN(len) / WIRE_VERIFY_DIGEST_LEN);
	bool any = false;

	IPM_ASSERT_HELD(&r->lock);
	if (!m->digests)
		return live_locked(r, &v->rl->verify) ? -EAGAIN : -ECONNRESET;
	if (m->status)
		return -m->status;
	for (i = 0; i < n; i++) {
		uint64_t b = (uint64_t)i * WIRE_VERIFY_BLOCK;
		uint64_t blen = len - b < WIRE_VERIFY_BLOCK ? len - b : WIRE_VERIFY_BLOCK;

		v->differs[i] = memcmp(s->mine + (size_t)i * WIRE_VERIFY_DIGEST_LEN,
				       theirs + (size_t)i * WIRE_VERIFY_DIGEST_LEN,
				       WIRE_VERIFY_DIGEST_LEN) != 0;
		if (!v->differs[i])
			continue;
		any = true;
		v->rl->verify.out_of_sync += blen;
		resync_mark_locked(&r->rs, v->rl->index, off + b, blen);
	}
	if (any && v->rl->verify.repair)
		repair_locked(v, s, n);
	return 0;
}

static void log_pending(struct verify_run *v)
{
	if (!v->pend_len)
		return;
	v->ranges++;
	qb_log(LOG_WARNING, "lun %s: verify: out of sync with %s: offset %llu length %llu (%s)",
	       lun_name(v), v->r->e->peer->name, (unsigned long long)v->pend_off,
	       (unsigned long long)v->pend_len,
	       v->rl->verify.repair ? "repaired from this copy" : "marked for the next resync");
	v->pend_len = 0;
}

/* Adjacent differing blocks make one range, one log line. */
static void note_diffs(struct verify_run *v, uint64_t off, uint64_t len)
{
	unsigned i, n = (unsigned)(WIRE_VERIFY_DIGESTS_LEN(len) / WIRE_VERIFY_DIGEST_LEN);

	for (i = 0; i < n; i++) {
		uint64_t b = off + (uint64_t)i * WIRE_VERIFY_BLOCK;
		uint64_t blen = off + len - b < WIRE_VERIFY_BLOCK ? off + len - b : WIRE_VERIFY_BLOCK;

		if (!v->differs[i]) {
			log_pending(v);
		} else if (v->pend_len && v->pend_off + v->pend_len == b) {
			v->pend_len += blen;
		} else {
			log_pending(v);
			v->pend_off = b;
			v->pend_len = blen;
		}
	}
}

/* ---- ranges in flight ----
 *
 * Up to VERIFY_DEPTH ranges are fenced, asked of the mirror and read here
 * at once (reads through this thread's read ring, bypassing the page
 * cache: a verify reads every byte once); the oldest is digested and
 * compared while the others are read. */

/* Fence the next range, send its VERIFY, start reading it: -ECONNRESET
 * when the link left live (nothing started). */
static int slot_start(struct verify_run *v, uint64_t off, uint64_t len)
{
	struct verify_slot *s = &v->slot[(v->head + v->n) % VERIFY_DEPTH];
	struct replicator *r = v->r;

	pthread_mutex_lock(&r->lock);
	s->m = fence_locked(v, off, len);
	pthread_mutex_unlock(&r->lock);
	if (!s->m)
		return -ECONNRESET;
	s->off = off;
	s->len = len;
	s->reading = lun_read_start(v->rl->lun, s->buf, len, off, s) == 0;
	if (!s->reading)
		s->rc = lun_bulk_read(v->rl->lun, s->buf, len, off);
	v->n++;
	return 0;
}

/* Wait until the oldest range's read ended. */
static void head_read(struct verify_run *v)
{
	struct verify_slot *head = &v->slot[v->head], *s;
	void *tag;
	int rc;

	while (head->reading && !v->broken) {
		tag = NULL;
		rc = lun_read_wait(&tag);
		if (!tag) {
			qb_log(LOG_CRIT, "lun %s: verify: cannot wait for a local read (%s); its buffers are left to it",
			       lun_name(v), strerror(-rc));
			v->broken = true;
			break;
		}
		s = tag;
		s->rc = rc;
		s->reading = false;
	}
}

/* Compare the oldest range and drop its fence: 0, -EAGAIN (ask again),
 * -ECONNRESET (the link left live, or stopping), another -errno (the read
 * failed). */
static int slot_finish(struct verify_run *v)
{
	struct verify_slot *s = &v->slot[v->head];
	struct replicator *r = v->r;
	int rc;

	head_read(v);
	rc = v->broken ? -EIO : s->rc;
	if (rc == 0)
		verify_digests(&v->key, s->off, s->buf, s->len, s->mine);
	memset(v->differs, 0, sizeof(v->differs));
	pthread_mutex_lock(&r->lock);
	while (!s->m->done && live_locked(r, &v->rl->verify))
		space_wait_slice_locked(r, PACE_SLICE_MS);
	if (rc == 0)
		rc = compare_locked(v, s);
	fence_remove_locked(r, s->m);
	pthread_mutex_unlock(&r->lock);
	s->m = NULL;
	v->head = (v->head + 1) % VERIFY_DEPTH;
	v->n--;
	if (rc == 0)
		note_diffs(v, s->off, s->len);
	return rc;
}

/* The ranges still started are dropped (their reads waited for). */
static void slots_drop(struct verify_run *v)
{
	struct verify_slot *s;

	while (v->n > 0) {
		s = &v->slot[v->head];
		head_read(v);
		pthread_mutex_lock(&v->r->lock);
		fence_remove_locked(v->r, s->m);
		pthread_mutex_unlock(&v->r->lock);
		s->m = NULL;
		v->head = (v->head + 1) % VERIFY_DEPTH;
		v->n--;
	}
}

/* Keep the verify under the resync's rate (bytes compared per second). */
static void pace(struct verify_run *v, uint64_t done, int64_t t0)
{
	uint64_t rate = v->r->rs.rate;
	int64_t due_ms, left;

	if (!rate)
		return;
	due_ms = (int64_t)(done * 1000 / rate);
	while ((left = due_ms - (ipm_now_ms() - t0)) > 0 &&
	       !__atomic_load_n(&v->rl->verify.stop, __ATOMIC_RELAXED))
		usleep((useconds_t)(left < PACE_SLICE_MS ? left : PACE_SLICE_MS) * 1000);
}

static int run_ranges(struct verify_run *v, uint64_t *done, int64_t t0)
{
	uint64_t size = v->rl->lun->size, next = 0, len;
	unsigned tries = 0;
	int rc = 0;

	while (*done < size) {
		while (v->n < VERIFY_DEPTH && next < size) {
			len = size - next < WIRE_VERIFY_MAX ? size - next : WIRE_VERIFY_MAX;
			rc = slot_start(v, next, len);
			if (rc < 0)
				goto out;
			next += len;
		}
		len = v->slot[v->head].len;   /* the oldest starts at *done */
		rc = slot_finish(v);
		if (rc == -EAGAIN && ++tries < VERIFY_RETRIES) {
			/* asked again, and the ranges after it */
			slots_drop(v);
			next = *done;
			continue;
		}
		if (rc < 0)
			goto out;
		tries = 0;
		*done += len;
		pthread_mutex_lock(&v->r->lock);
		v->rl->verify.done = *done;
		pthread_mutex_unlock(&v->r->lock);
		pace(v, *done, t0);
	}
out:
	slots_drop(v);
	log_pending(v);
	return rc;
}

static void run_free(struct verify_run *v)
{
	unsigned i;

	/* a broken read ring may still write into them */
	for (i = 0; i < VERIFY_DEPTH && !v->broken; i++)
		free(v->slot[i].buf);
	free(v);
}

static void *verify_main(void *arg)
{
	struct verify_run *v = arg;
	struct verify_state *st = &v->rl->verify;
	int64_t t0 = ipm_now_ms();
	uint64_t done = 0, oos;
	int rc = run_ranges(v, &done, t0);

	pthread_mutex_lock(&v->r->lock);
	oos = st->out_of_sync;
	st->running = false;
	pthread_mutex_unlock(&v->r->lock);
	/* nothing of r->lock after this: verify_start may join us holding it */
	if (rc < 0)
		qb_log(LOG_WARNING, "lun %s: verify stopped after %llu of %llu bytes (%s): %llu bytes out of sync so far",
		       lun_name(v), (unsigned long long)done, (unsigned long long)v->rl->lun->size,
		       rc == -ECONNRESET ? "the link to the peer left live, or stopping" :
		       strerror(-rc), (unsigned long long)oos);
	else
		qb_log(oos ? LOG_WARNING : LOG_NOTICE,
		       "lun %s: verify done in %lld ms: %llu bytes compared with %s, %llu out of sync in %u range(s)%s",
		       lun_name(v), (long long)(ipm_now_ms() - t0), (unsigned long long)done,
		       v->r->e->peer->name, (unsigned long long)oos, v->ranges,
		       !oos ? "" : st->repair ? ", repaired" : ", marked for the next resync");
	run_free(v);
	return NULL;
}

/* The protocol version the pair speaks (negotiated at the handshake). */
static unsigned pair_version_locked(const struct replicator *r)
{
	IPM_ASSERT_HELD(&r->lock);
	return r->wire_version;
}

static int refuse_locked(struct replicator *r, struct rep_lun *rl, ipm_error *err)
{
	const char *lun = rl->lun->cfg->name, *peer = r->e->peer->name;
	const struct verify_state *st = &rl->verify;

	IPM_ASSERT_HELD(&r->lock);
	if (!r->running)
		return ipm_fail(err, -ESHUTDOWN, "lun \"%s\": the engine is stopping", lun);
	if (st->running)
		return ipm_fail(err, -EBUSY, "lun \"%s\": a verify runs already (%llu of %llu bytes compared)",
				lun, (unsigned long long)st->done, (unsigned long long)st->total);
	if (r->link != LINK_LIVE)
		return ipm_fail(err, -ENOTCONN,
				"lun \"%s\": %s is not connected and up to date (this side is %s): a verify compares both copies over the mirror connections",
				lun, peer, ipm_state_name(rl->state));
	if (pair_version_locked(r) < VERIFY_MIN_VERSION)
		return ipm_fail(err, -EPROTONOSUPPORT,
				"lun \"%s\": %s speaks protocol version %u; a verify needs version %d (upgrade %s first)",
				lun, peer, pair_version_locked(r), VERIFY_MIN_VERSION, peer);
	return 0;
}

static struct verify_run *run_new(struct replicator *r, struct rep_lun *rl, ipm_error *err)
{
	struct verify_run *v = calloc(1, sizeof(*v));
	unsigned i;

	for (i = 0; v && i < VERIFY_DEPTH; i++) {
		if (posix_memalign((void **)&v->slot[i].buf, 4096, WIRE_VERIFY_MAX) != 0) {
			v->slot[i].buf = NULL;
			run_free(v);
			v = NULL;
		}
	}
	if (!v) {
		ipm_fail(err, -ENOMEM, "out of memory");
		return NULL;
	}
	v->r = r;
	v->rl = rl;
	auth_random(v->nonce, sizeof(v->nonce));
	verify_key_init(&v->key, r->secret, v->nonce);
	return v;
}

/* A run that ended leaves its thread to join: done here, with the lock
 * dropped, before the next one starts. */
static void join_ended(struct replicator *r, struct verify_state *st)
{
	pthread_t t;
	bool join = false;

	pthread_mutex_lock(&r->lock);
	if (st->joinable && !st->running) {
		t = st->thread;
		st->joinable = false;
		join = true;
	}
	pthread_mutex_unlock(&r->lock);
	if (join)
		pthread_join(t, NULL);
}

int replicator_verify(struct replicator *r, struct ipm_lun *l, bool repair, ipm_error *err)
{
	struct rep_lun *rl = &r->luns[l->wire_index];
	struct verify_state *st = &rl->verify;
	struct verify_run *v;
	int rc;

	pthread_mutex_lock(&r->lock);
	rc = refuse_locked(r, rl, err);
	pthread_mutex_unlock(&r->lock);
	if (rc < 0)
		return rc;
	join_ended(r, st);
	v = run_new(r, rl, err);
	if (!v)
		return -ENOMEM;
	pthread_mutex_lock(&r->lock);
	rc = refuse_locked(r, rl, err);  /* again: the link may have gone */
	if (rc == 0 && !st->joinable) {
		*st = (struct verify_state){ .running = true, .repair = repair, .total = l->size };
		rc = -pthread_create(&st->thread, NULL, verify_main, v);
		st->running = st->joinable = rc == 0;
		if (rc < 0)
			ipm_fail(err, rc, "cannot start the verify thread");
	} else if (rc == 0) {
		rc = ipm_fail(err, -EBUSY, "lun \"%s\": a verify is starting already", l->cfg->name);
	}
	pthread_mutex_unlock(&r->lock);
	if (rc < 0) {
		run_free(v);
		return rc;
	}
	qb_log(LOG_NOTICE, "lun %s: verify%s started by the admin: %llu bytes to compare with %s",
	       l->cfg->name, repair ? " --repair" : "", (unsigned long long)l->size,
	       r->e->peer->name);
	return ipm_note(err, "lun \"%s\": verify%s started; progress in `ipmirrorctl status %s`",
			l->cfg->name, repair ? " --repair" : "", l->cfg->name);
}

void verify_stop_all(struct replicator *r)
{
	unsigned i;

	for (i = 0; i < r->n_luns; i++) {
		struct verify_state *st = &r->luns[i].verify;

		pthread_mutex_lock(&r->lock);
		st->stop = true;
		pthread_cond_broadcast(&r->space_cond);
		pthread_mutex_unlock(&r->lock);
		join_ended(r, st);
		/* still running: it sees stop within PACE_SLICE_MS */
		pthread_mutex_lock(&r->lock);
		while (st->running)
			ipm_cond_wait_ms(&r->space_cond, &r->lock, 10);
		pthread_mutex_unlock(&r->lock);
		join_ended(r, st);
	}
}

void verify_answer_locked(struct mreq *m, const struct wire_frame *f, const uint8_t *payload)
{
	if (!m->verify || f->type != WIRE_VERIFY_REPLY)
		return;  /* an ACK (a duplicate's): no digests */
	if (f->offset != m->f.offset || f->length != m->f.length) {
		qb_log(LOG_ERR, "lun %s: VERIFY_REPLY %llu names another range than its VERIFY; ignored",
		       ipm_lun_name(m->rl->lun), (unsigned long long)f->seq);
		return;
	}
	if (f->status == 0 && crc32c(0, payload, f->len) != f->csum) {
		qb_log(LOG_ERR, "lun %s: VERIFY_REPLY %llu: digests checksum mismatch; asked again",
		       ipm_lun_name(m->rl->lun), (unsigned long long)f->seq);
		return;
	}
	if (f->status == 0)
		memcpy((uint8_t *)m->owned + WIRE_VERIFY_NONCE_LEN, payload, f->len);
	m->digests = true;
}

void verify_status_locked(const struct rep_lun *rl, ipm_lun_status *s)
{
	s->verify_running = rl->verify.running;
	s->verify_done_bytes = rl->verify.done;
	s->verify_total_bytes = rl->verify.total;
	s->verify_out_of_sync_bytes = rl->verify.out_of_sync;
}
