/* test_log.c - the log set-up survives what libqb's formatter does not:
 * with a syslog format of "%b" alone, an empty message made libqb 2.0.6
 * read output_buffer[(unsigned)-1] and killed ipmirrord (seen in the lab:
 * two daemons segfaulted in qb_log_target_format at a split brain's heal;
 * which callsite logged nothing was not found); and libqb drops a line
 * logged while another thread is inside its formatter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <syslog.h>
#include <unistd.h>
#include <cmocka.h>
#include <qb/qblog.h>

#include "ipmirror.h"

#define N_THREADS 8
#define N_LINES 20000

static void test_empty_message_to_syslog(void **state)
{
	const char *empty = "";

	(void)state;
	assert_int_equal(ipm_log_init("test_log", LOG_DEBUG, IPM_LOG_SYSLOG, NULL), 0);
	qb_log(LOG_DEBUG, "%s", empty);
	qb_log(LOG_DEBUG, "%s", "\n");
	ipm_log_fini();
}

static pthread_barrier_t go;

static void *logger(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg, i;

	pthread_barrier_wait(&go);
	for (i = 0; i < N_LINES; i++)
		qb_log(LOG_INFO, "thread %u line %u of %u end", t, i, N_LINES);
	return NULL;
}

/* Each line must be whole ("... thread T line I of M end") and each (T, I)
 * must come exactly once. Returns the number of good lines. */
static unsigned count_lines(FILE *f, uint8_t *seen)
{
	char line[512];
	unsigned t, i, m, good = 0;
	char *p;

	while (fgets(line, sizeof(line), f)) {
		p = strstr(line, "thread ");
		if (!p || sscanf(p, "thread %u line %u of %u end", &t, &i, &m) != 3 ||
		    m != N_LINES || t >= N_THREADS || i >= N_LINES || !strstr(p, " end\n")) {
			print_error("garbled line: %s", line);
			continue;
		}
		if (seen[t * N_LINES + i]++) {
			print_error("duplicate line: %s", line);
			continue;
		}
		good++;
	}
	return good;
}

/* N threads log M numbered lines each at once: all N x M arrive, whole. */
static void test_threads_lose_no_line(void **state)
{
	char path[] = "/tmp/test_log.XXXXXX";
	pthread_t th[N_THREADS];
	uint8_t *seen = calloc(N_THREADS * N_LINES, 1);
	unsigned t;
	FILE *f;
	int fd;

	(void)state;
	assert_non_null(seen);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(ipm_log_init("test_log", LOG_INFO, 0, path), 0);
	pthread_barrier_init(&go, NULL, N_THREADS);
	for (t = 0; t < N_THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, logger, (void *)(uintptr_t)t), 0);
	for (t = 0; t < N_THREADS; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&go);
	/* closes the file target (libqb 2.0.6 cannot init again after fini) */
	assert_int_equal(ipm_log_init("test_log", LOG_INFO, 0, NULL), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(count_lines(f, seen), N_THREADS * N_LINES);
	fclose(f);
	unlink(path);
	free(seen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_lose_no_line),
		cmocka_unit_test(test_empty_message_to_syslog),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
