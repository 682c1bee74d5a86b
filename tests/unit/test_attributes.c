/* test_attributes.c - the node-attribute publisher: names and values,
 * publishing only on change, a changed journal size after an interval, retry after failures, the quiet back-off
 * without a cluster, the consistency memory, and the thread on a real
 * engine. A fake publish function records every call. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <cmocka.h>

#include "cluster/attributes.h"

#define MAX_CALLS 64

struct fake {
	pthread_mutex_t lock;
	struct ipm_attr calls[MAX_CALLS];
	int n;
	int fail_next; /* errno to return on the next call (0: none) */
};

static int fake_publish(void *opaque, const char *name, const char *value)
{
	struct fake *f = opaque;
	int rc = 0;

	pthread_mutex_lock(&f->lock);
	if (f->fail_next) {
		rc = -f->fail_next;
		f->fail_next = 0;
	} else if (f->n < MAX_CALLS) {
		snprintf(f->calls[f->n].name, sizeof(f->calls[f->n].name), "%s", name);
		snprintf(f->calls[f->n].value, sizeof(f->calls[f->n].value), "%s", value);
		f->n++;
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

/* The value of the last call for name, or NULL. */
static const char *called(struct fake *f, const char *name)
{
	const char *v = NULL;
	int i;

	pthread_mutex_lock(&f->lock);
	for (i = 0; i < f->n; i++)
		if (strcmp(f->calls[i].name, name) == 0)
			v = f->calls[i].value;
	pthread_mutex_unlock(&f->lock);
	return v;
}

/* node1: vol0 primary and journaling, vol1 mirror and up to date */
static void two_luns(ipm_status *st, ipm_lun_status luns[2])
{
	memset(st, 0, sizeof(*st));
	memset(luns, 0, 2 * sizeof(luns[0]));
	strcpy(st->node, "node1");
	strcpy(st->peer, "node2");
	st->peer_heartbeat = IPM_LINK_PROBATION;
	strcpy(luns[0].name, "vol0");
	luns[0].role = IPM_ROLE_PRIMARY;
	luns[0].mirrored = true;
	luns[0].state = IPM_STATE_JOURNALING;
	luns[0].journal_bytes = 1234567;
	strcpy(luns[1].name, "vol1");
	luns[1].role = IPM_ROLE_MIRROR;
	luns[1].mirrored = true;
	luns[1].state = IPM_STATE_UPTODATE;
	st->luns = luns;
	st->n_luns = 2;
}

static const char *find(const struct ipm_attr *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return v[i].value;
	return NULL;
}

static void test_compute_names_and_values(void **state)
{
	ipm_lun_status luns[2];
	struct ipm_attr *v;
	ipm_status st;
	size_t n;

	two_luns(&st, luns);
	assert_int_equal(ipm_attributes_compute(&st, &v, &n), 0);
	assert_int_equal(n, 8);
	assert_string_equal(find(v, n, "ipmirror-peer"), "probation");
	assert_string_equal(find(v, n, "ipmirror-peer-storage"), "off");
	assert_string_equal(find(v, n, "ipmirror-vol0-state"), "journaling");
	assert_string_equal(find(v, n, "ipmirror-vol0-journal"), "1234567");
	assert_string_equal(find(v, n, "ipmirror-vol1-state"), "uptodate");
	assert_string_equal(find(v, n, "ipmirror-vol1-journal"), "0");
	assert_string_equal(find(v, n, "ipmirror-vol0-sync"), "none");
	assert_string_equal(find(v, n, "ipmirror-vol1-sync"), "none");
	free(v);

	/* a resync this node sends: percent, rate, ETA */
	luns[0].state = IPM_STATE_RESYNCING;
	luns[0].resync_done_bytes = 3ull << 30;
	luns[0].resync_total_bytes = 4ull << 30;
	luns[0].resync_rate = 480ull << 20;
	luns[0].resync_eta_s = 2;
	assert_int_equal(ipm_attributes_compute(&st, &v, &n), 0);
	assert_string_equal(find(v, n, "ipmirror-vol0-sync"), "75% 480MiB/s eta 2s");
	free(v);
	luns[0].resync_done_bytes = (4ull << 30) - 1;   /* 100 % only once done */
	luns[0].resync_eta_s = -1;
	assert_int_equal(ipm_attributes_compute(&st, &v, &n), 0);
	assert_string_equal(find(v, n, "ipmirror-vol0-sync"), "99% 480MiB/s eta ?");
	free(v);
	luns[0].state = IPM_STATE_JOURNALING;

	/* no peer in the config: the peer is "off", not "down" */
	st.peer[0] = '\0';
	st.peer_heartbeat = IPM_LINK_DOWN;
	assert_int_equal(ipm_attributes_compute(&st, &v, &n), 0);
	assert_string_equal(find(v, n, "ipmirror-peer"), "off");
	free(v);
}

static void test_publish_only_on_change(void **state)
{
	struct fake f = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct ipm_attributes *a;
	ipm_lun_status luns[2];
	ipm_status st;

	two_luns(&st, luns);
	assert_int_equal(ipm_attributes_create(NULL, fake_publish, &f, &a, NULL), 0);
	ipm_attributes_set_journal_interval(a, 0);   /* no wait (test_journal_size_waits) */
	assert_int_equal(ipm_attributes_update(a, &st), 8);
	assert_int_equal(f.n, 8);
	assert_string_equal(called(&f, "ipmirror-vol0-state"), "journaling");

	/* nothing changed: nothing published */
	assert_int_equal(ipm_attributes_update(a, &st), 0);
	assert_int_equal(f.n, 8);

	/* one value changes: exactly that attribute */
	luns[1].journal_bytes = 4096;
	assert_int_equal(ipm_attributes_update(a, &st), 1);
	assert_int_equal(f.n, 9);
	assert_string_equal(f.calls[8].name, "ipmirror-vol1-journal");
	assert_string_equal(f.calls[8].value, "4096");

	/* the peer comes up and vol0 catches up */
	st.peer_heartbeat = IPM_LINK_UP;
	luns[0].state = IPM_STATE_UPTODATE;
	luns[0].journal_bytes = 0;
	assert_int_equal(ipm_attributes_update(a, &st), 3);
	assert_int_equal(f.n, 12);
	assert_string_equal(called(&f, "ipmirror-peer"), "up");
	assert_string_equal(called(&f, "ipmirror-vol0-state"), "uptodate");
	assert_string_equal(called(&f, "ipmirror-vol0-journal"), "0");
	ipm_attributes_stop(a);
}

/* A journal size other than 0 waits the interval (each change aborts
 * Pacemaker's transition, and a failover's promote starts a journal);
 * an emptied journal is published at once. */
static void test_journal_size_waits(void **state)
{
	struct fake f = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct ipm_attributes *a;
	ipm_lun_status luns[2];
	ipm_status st;

	two_luns(&st, luns);
	assert_int_equal(ipm_attributes_create(NULL, fake_publish, &f, &a, NULL), 0);
	ipm_attributes_set_journal_interval(a, 300);
	assert_int_equal(ipm_attributes_update(a, &st), 8);   /* the first time: all */
	/* vol0's journal grows: held; the state change beside it is not */
	luns[0].journal_bytes = 2000000;
	luns[0].state = IPM_STATE_RESYNCING;
	assert_int_equal(ipm_attributes_update(a, &st), 1);
	assert_string_equal(called(&f, "ipmirror-vol0-state"), "resyncing");
	assert_string_equal(called(&f, "ipmirror-vol0-journal"), "1234567");
	luns[0].journal_bytes = 3000000;
	assert_int_equal(ipm_attributes_update(a, &st), 0);
	usleep(350 * 1000);
	assert_int_equal(ipm_attributes_update(a, &st), 1);   /* the latest */
	assert_string_equal(called(&f, "ipmirror-vol0-journal"), "3000000");
	/* emptied: at once; filled again: it waits too */
	luns[0].journal_bytes = 0;
	assert_int_equal(ipm_attributes_update(a, &st), 1);
	assert_string_equal(called(&f, "ipmirror-vol0-journal"), "0");
	luns[0].journal_bytes = 4096;
	assert_int_equal(ipm_attributes_update(a, &st), 0);
	usleep(350 * 1000);
	assert_int_equal(ipm_attributes_update(a, &st), 1);
	assert_string_equal(called(&f, "ipmirror-vol0-journal"), "4096");
	ipm_attributes_stop(a);
}

/* A resync's progress moves on every poll: its start and its end are
 * published at once, the figures in between at most every
 * IPM_ATTR_PROGRESS_MS (each change aborts Pacemaker's transition). */
static void test_sync_progress_rate_limited(void **state)
{
	struct fake f = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct ipm_attributes *a;
	ipm_lun_status luns[2];
	ipm_status st;
	int i, before;

	(void)state;
	two_luns(&st, luns);
	assert_int_equal(ipm_attributes_create(NULL, fake_publish, &f, &a, NULL), 0);
	assert_int_equal(ipm_attributes_update(a, &st), 8);
	luns[0].state = IPM_STATE_RESYNCING;
	luns[0].resync_total_bytes = 100ull << 20;
	luns[0].resync_rate = 10ull << 20;
	luns[0].resync_eta_s = 10;
	assert_int_equal(ipm_attributes_update(a, &st), 2);   /* state and the start */
	assert_string_equal(called(&f, "ipmirror-vol0-sync"), "0% 10MiB/s eta 10s");
	before = f.n;
	for (i = 1; i < 20; i++) {   /* 20 polls in well under the limit */
		luns[0].resync_done_bytes = (uint64_t)i << 20;
		luns[0].resync_eta_s = 10 - i / 2;
		assert_int_equal(ipm_attributes_update(a, &st), 0);
	}
	assert_int_equal(f.n, before);
	/* the end goes at once */
	luns[0].state = IPM_STATE_UPTODATE;
	assert_int_equal(ipm_attributes_update(a, &st), 2);
	assert_string_equal(called(&f, "ipmirror-vol0-sync"), "none");
	/* a new resync starts at once too */
	luns[0].state = IPM_STATE_RESYNCING;
	luns[0].resync_done_bytes = 0;
	assert_int_equal(ipm_attributes_update(a, &st), 2);
	assert_string_equal(called(&f, "ipmirror-vol0-sync"), "0% 10MiB/s eta 1s");
	ipm_attributes_stop(a);
}

static void test_failed_publish_is_retried(void **state)
{
	struct fake f = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct ipm_attributes *a;
	ipm_lun_status luns[2];
	ipm_status st;

	two_luns(&st, luns);
	assert_int_equal(ipm_attributes_create(NULL, fake_publish, &f, &a, NULL), 0);
	f.fail_next = EIO;
	assert_int_equal(ipm_attributes_update(a, &st), -EIO);
	assert_int_equal(f.n, 0);
	/* the next round publishes everything, the failed one included */
	assert_int_equal(ipm_attributes_update(a, &st), 8);
	assert_string_equal(called(&f, "ipmirror-peer"), "probation");
	ipm_attributes_stop(a);
}

static void test_no_cluster_backs_off(void **state)
{
	struct fake f = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct ipm_attributes *a;
	ipm_lun_status luns[2];
	ipm_status st;

	two_luns(&st, luns);
	assert_int_equal(ipm_attributes_create(NULL, fake_publish, &f, &a, NULL), 0);
	f.fail_next = ENOTCONN;
	assert_int_equal(ipm_attributes_update(a, &st), -ENOTCONN);
	/* no spawn storm while no cluster runs: quiet for a while */
	luns[0].journal_bytes = 1;
	assert_int_equal(ipm_attributes_update(a, &st), 0);
	assert_int_equal(f.n, 0);
	ipm_attributes_stop(a);
}

static void test_consistency_memory(void **state)
{
	struct ipm_attributes *a;
	ipm_lun_status luns[2];
	ipm_status st;

	two_luns(&st, luns);
	assert_int_equal(ipm_attributes_create(NULL, NULL, NULL, &a, NULL), 0);
	assert_false(ipm_attributes_consistent(a, "vol1")); /* nothing known yet */
	assert_int_equal(ipm_attributes_update(a, &st), 0);  /* fn NULL: track only */
	assert_true(ipm_attributes_consistent(a, "vol0"));  /* primary */
	assert_true(ipm_attributes_consistent(a, "vol1"));  /* up-to-date mirror */
	assert_false(ipm_attributes_consistent(a, "nope"));

	/* the primary went away: outdated, but still holds what was acked
	 * (the engine's persisted verdict) */
	luns[1].state = IPM_STATE_OUTDATED;
	luns[1].consistent = true;
	ipm_attributes_update(a, &st);
	assert_true(ipm_attributes_consistent(a, "vol1"));

	/* a daemon restarted meanwhile knows it from the engine alone */
	{
		struct ipm_attributes *b;

		assert_int_equal(ipm_attributes_create(NULL, NULL, NULL, &b, NULL), 0);
		ipm_attributes_update(b, &st);
		assert_true(ipm_attributes_consistent(b, "vol1"));
		ipm_attributes_stop(b);
	}

	/* a resync began: half-copied data is not consistent, even afterwards */
	luns[1].state = IPM_STATE_RESYNCING;
	luns[1].consistent = false;
	ipm_attributes_update(a, &st);
	assert_false(ipm_attributes_consistent(a, "vol1"));
	luns[1].state = IPM_STATE_OUTDATED;
	ipm_attributes_update(a, &st);
	assert_false(ipm_attributes_consistent(a, "vol1"));

	/* a clean demotion says so explicitly */
	ipm_attributes_mark_consistent(a, "vol1");
	assert_true(ipm_attributes_consistent(a, "vol1"));

	luns[0].state = IPM_STATE_SPLITBRAIN;
	ipm_attributes_update(a, &st);
	assert_false(ipm_attributes_consistent(a, "vol0"));
	ipm_attributes_stop(a);
}

/* ---- the thread, on a real one-node engine ------------------------------ */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_thread_publishes_engine_status(void **state)
{
	struct fake f = { .lock = PTHREAD_MUTEX_INITIALIZER };
	char dir[] = "/tmp/ipm-test-attr.XXXXXX", path[128], xml[1024], cmd[160];
	struct ipm_attributes *a;
	ipm_error err = { "" };
	ipm_config *cfg = NULL;
	ipm_engine *e = NULL;
	int i;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.img", dir);
	write_file(path, "");
	assert_int_equal(truncate(path, 1 << 20), 0);
	snprintf(path, sizeof(path), "%s/b.img", dir);
	write_file(path, "");
	assert_int_equal(truncate(path, 1 << 20), 0);
	snprintf(xml, sizeof(xml),
		 "<ipmirror version=\"1\">\n"
		 " <node name=\"solo\"><nbd address=\"127.0.0.1\" port=\"17999\"/></node>\n"
		 " <lun name=\"alpha\" size=\"1M\" mirrored=\"no\"><backing path=\"%s/a.img\"/></lun>\n"
		 " <lun name=\"beta\" size=\"1M\" mirrored=\"no\"><backing path=\"%s/b.img\"/></lun>\n"
		 "</ipmirror>\n", dir, dir);
	snprintf(path, sizeof(path), "%s/ipmirror.xml", dir);
	write_file(path, xml);
	assert_int_equal(ipm_config_load(path, getenv("IPMIRROR_SCHEMA"), NULL, NULL, &cfg), 0);
	assert_int_equal(ipm_engine_create(cfg, "solo", &e, &err), 0);

	assert_int_equal(ipm_attributes_start(e, fake_publish, &f, &a, &err), 0);
	for (i = 0; i < 50 && !called(&f, "ipmirror-beta-sync"); i++)
		usleep(100 * 1000);
	assert_string_equal(called(&f, "ipmirror-alpha-state"), "uptodate");
	assert_string_equal(called(&f, "ipmirror-beta-state"), "uptodate");
	assert_string_equal(called(&f, "ipmirror-beta-journal"), "0");
	assert_string_equal(called(&f, "ipmirror-peer"), "off");
	assert_true(ipm_attributes_consistent(a, "alpha"));

	/* several more ticks of an unchanged engine publish nothing more */
	pthread_mutex_lock(&f.lock);
	i = f.n;
	pthread_mutex_unlock(&f.lock);
	assert_int_equal(i, 8);
	ipm_attributes_wake(a);
	usleep(1200 * 1000);
	pthread_mutex_lock(&f.lock);
	assert_int_equal(f.n, 8);
	pthread_mutex_unlock(&f.lock);

	/* detaching the engine pauses polling; the stop joins the thread */
	ipm_attributes_set_engine(a, NULL);
	ipm_attributes_stop(a);
	ipm_engine_destroy(e);
	ipm_config_free(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_set_primary(void **state)
{
	ipm_config *cfg = NULL;
	char dir[] = "/tmp/ipm-test-attr2.XXXXXX", path[128], xml[1024], cmd[160];

	assert_non_null(mkdtemp(dir));
	snprintf(xml, sizeof(xml),
		 "<ipmirror version=\"1\">\n"
		 " <node name=\"solo\"><nbd address=\"127.0.0.1\" port=\"17999\"/></node>\n"
		 " <lun name=\"alpha\" size=\"1M\" mirrored=\"no\"><backing path=\"%s/a.img\"/></lun>\n"
		 "</ipmirror>\n", dir);
	snprintf(path, sizeof(path), "%s/ipmirror.xml", dir);
	write_file(path, xml);
	assert_int_equal(ipm_config_load(path, getenv("IPMIRROR_SCHEMA"), NULL, NULL, &cfg), 0);
	assert_int_equal(ipm_config_set_primary(cfg, "alpha", "solo"), 0);
	assert_int_equal(ipm_config_set_primary(cfg, "alpha", "nobody"), -ENOENT);
	assert_int_equal(ipm_config_set_primary(cfg, "nope", "solo"), -ENOENT);
	ipm_config_free(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compute_names_and_values),
		cmocka_unit_test(test_publish_only_on_change),
		cmocka_unit_test(test_journal_size_waits),
		cmocka_unit_test(test_sync_progress_rate_limited),
		cmocka_unit_test(test_failed_publish_is_retried),
		cmocka_unit_test(test_no_cluster_backs_off),
		cmocka_unit_test(test_consistency_memory),
		cmocka_unit_test(test_thread_publishes_engine_status),
		cmocka_unit_test(test_set_primary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
