/* test_fencing.c - resource-level fencing: the per-LUN decision, the
 * handler thread (fence on peer loss, unfence after resync, retries after
 * a failing handler, arming by promotion, unfence on a clean demotion) with
 * a fake runner, and the default runner on a real script. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <cmocka.h>

#include "cluster/fencing.h"
#include "unit_util.h"

#define MAX_CALLS 32
#define RETRY_MS 50

struct fake {
	pthread_mutex_t lock;
	char calls[MAX_CALLS][80];
	int n;
	int fail; /* fail this many more calls */
};

static int fake_run(void *opaque, const char *action, const char *lun, char *out, size_t outlen)
{
	struct fake *f = opaque;
	int rc = 0;

	pthread_mutex_lock(&f->lock);
	if (f->n < MAX_CALLS)
		snprintf(f->calls[f->n++], sizeof(f->calls[0]), "%s %s", action, lun);
	if (f->fail > 0) {
		f->fail--;
		snprintf(out, outlen, "cibadmin: connection refused");
		rc = 1;
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

static int calls(struct fake *f)
{
	int n;

	pthread_mutex_lock(&f->lock);
	n = f->n;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* wait up to 5 s until the fake has seen n calls */
static void wait_calls(struct fake *f, int n)
{
	int i;

	for (i = 0; i < 500 && calls(f) < n; i++)
		usleep(10 * 1000);
	assert_int_equal(calls(f), n);
}

/* no further call within 3 retry periods */
static void no_more_calls(struct fake *f, int n)
{
	usleep(3 * RETRY_MS * 1000 + 100 * 1000);
	assert_int_equal(calls(f), n);
}

static void one_lun(ipm_status *st, ipm_lun_status *l, enum ipm_role role,
		    enum ipm_lun_state state)
{
	memset(st, 0, sizeof(*st));
	memset(l, 0, sizeof(*l));
	strcpy(st->node, "node1");
	strcpy(st->peer, "node2");
	strcpy(l->name, "vol0");
	l->role = role;
	l->mirrored = true;
	l->state = state;
	st->luns = l;
	st->n_luns = 1;
}

static void test_decide(void **state)
{
	ipm_status st;
	ipm_lun_status l;
	bool armed = false;

	(void)state;
	/* a primary from the config, never up to date: no fencing */
	one_lun(&st, &l, IPM_ROLE_PRIMARY, IPM_STATE_JOURNALING);
	assert_int_equal(ipm_fencing_decide(&l, &armed), IPM_FENCE_KEEP);
	assert_false(armed);
	/* up to date as primary: unfence, and armed from now on */
	l.state = IPM_STATE_UPTODATE;
	assert_int_equal(ipm_fencing_decide(&l, &armed), IPM_FENCE_UNFENCE);
	assert_true(armed);
	l.state = IPM_STATE_JOURNALING;
	assert_int_equal(ipm_fencing_decide(&l, &armed), IPM_FENCE_FENCE);
	l.state = IPM_STATE_PROBATION;
	assert_int_equal(ipm_fencing_decide(&l, &armed), IPM_FENCE_FENCE);
	l.state = IPM_STATE_RESYNCING;
	assert_int_equal(ipm_fencing_decide(&l, &armed), IPM_FENCE_FENCE);
	l.state = IPM_STATE_SPLITBRAIN;
	assert_int_equal(ipm_fencing_decide(&l, &armed), IPM_FENCE_KEEP);
	/* a mirror never fences and is disarmed; up to date it unfences */
	l.role = IPM_ROLE_MIRROR;
	l.state = IPM_STATE_OUTDATED;
	assert_int_equal(ipm_fencing_decide(&l, &armed), IPM_FENCE_KEEP);
	assert_false(armed);
	l.state = IPM_STATE_UPTODATE;
	assert_int_equal(ipm_fencing_decide(&l, &armed), IPM_FENCE_UNFENCE);
	assert_false(armed);
	/* an unmirrored LUN has no peer to fence */
	armed = true;
	l.role = IPM_ROLE_PRIMARY;
	l.state = IPM_STATE_JOURNALING;
	l.mirrored = false;
	assert_int_equal(ipm_fencing_decide(&l, &armed), IPM_FENCE_KEEP);
	assert_false(armed);
}

static void test_fence_retry_unfence(void **state)
{
	struct fake f = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct ipm_fencing *fe = NULL;
	ipm_error err = { "" };
	ipm_status st;
	ipm_lun_status l;

	(void)state;
	assert_int_equal(ipm_fencing_start(fake_run, &f, RETRY_MS, &fe, &err), 0);
	/* first sight, up to date: one unfence clears a predecessor's constraint */
	one_lun(&st, &l, IPM_ROLE_PRIMARY, IPM_STATE_UPTODATE);
	ipm_fencing_update(fe, &st);
	wait_calls(&f, 1);
	assert_string_equal(f.calls[0], "unfence vol0");
	ipm_fencing_update(fe, &st);
	no_more_calls(&f, 1);

	/* peer lost: fence; the handler fails twice and is retried */
	f.fail = 2;
	l.state = IPM_STATE_JOURNALING;
	ipm_fencing_update(fe, &st);
	wait_calls(&f, 4);
	assert_string_equal(f.calls[1], "fence vol0");
	assert_string_equal(f.calls[3], "fence vol0");
	assert_true(ipm_fencing_fenced(fe, "vol0"));
	/* probation and resync keep the fence, without more runs */
	l.state = IPM_STATE_PROBATION;
	ipm_fencing_update(fe, &st);
	l.state = IPM_STATE_RESYNCING;
	ipm_fencing_update(fe, &st);
	no_more_calls(&f, 4);

	/* resynced: unfence once */
	l.state = IPM_STATE_UPTODATE;
	ipm_fencing_update(fe, &st);
	wait_calls(&f, 5);
	assert_string_equal(f.calls[4], "unfence vol0");
	assert_false(ipm_fencing_fenced(fe, "vol0"));
	no_more_calls(&f, 5);
	assert_int_equal(ipm_fencing_runs(fe), 5);
	ipm_fencing_stop(fe);
}

static void test_arming_and_demotion(void **state)
{
	struct fake f = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct ipm_fencing *fe = NULL;
	ipm_error err = { "" };
	ipm_status st;
	ipm_lun_status l;

	(void)state;
	assert_int_equal(ipm_fencing_start(fake_run, &f, RETRY_MS, &fe, &err), 0);
	/* primary from the config, the peer unreachable: nothing */
	one_lun(&st, &l, IPM_ROLE_PRIMARY, IPM_STATE_JOURNALING);
	ipm_fencing_update(fe, &st);
	no_more_calls(&f, 0);
	/* a mirror promoted here while its peer is away: fence at once */
	l.role = IPM_ROLE_MIRROR;
	l.state = IPM_STATE_OUTDATED;
	ipm_fencing_update(fe, &st);
	ipm_fencing_promoted(fe, "vol0");
	l.role = IPM_ROLE_PRIMARY;
	l.state = IPM_STATE_JOURNALING;
	ipm_fencing_update(fe, &st);
	wait_calls(&f, 1);
	assert_string_equal(f.calls[0], "fence vol0");
	/* a forced demotion keeps the fence; a clean one lifts it */
	ipm_fencing_demoted(fe, "vol0", false);
	no_more_calls(&f, 1);
	assert_true(ipm_fencing_fenced(fe, "vol0"));
	ipm_fencing_demoted(fe, "vol0", true);
	wait_calls(&f, 2);
	assert_string_equal(f.calls[1], "unfence vol0");
	/* as a mirror that is not up to date it leaves things alone */
	l.role = IPM_ROLE_MIRROR;
	l.state = IPM_STATE_RESYNCING;
	ipm_fencing_update(fe, &st);
	no_more_calls(&f, 2);
	ipm_fencing_stop(fe);
}

/* the default runner: arguments, output, exit status, a missing program */
static void test_run_handler(void **state)
{
	char dir[256], path[300], out[128];
	FILE *fp;

	(void)state;
	assert_int_equal(scratch_dir_make(dir, sizeof(dir), "fence"), 0);
	snprintf(path, sizeof(path), "%s/handler", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "#!/bin/sh\necho \"$1 of $2\"\necho oops >&2\n[ \"$1\" = fence ] && exit 0\nexit 3\n");
	fclose(fp);
	chmod(path, 0755);
	assert_int_equal(ipm_fence_run_handler(path, "fence", "vol0", out, sizeof(out)), 0);
	assert_string_equal(out, "fence of vol0;oops");
	assert_int_equal(ipm_fence_run_handler(path, "unfence", "vol0", out, sizeof(out)), 3);
	assert_string_equal(out, "unfence of vol0;oops");
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(ipm_fence_run_handler(path, "fence", "vol0", out, sizeof(out)), -ENOENT);
	assert_non_null(strstr(out, "cannot run"));
	assert_int_equal(scratch_dir_remove(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_fence_retry_unfence),
		cmocka_unit_test(test_arming_and_demotion),
		cmocka_unit_test(test_run_handler),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
