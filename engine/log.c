/* log.c - libqb logging set-up for the engine and the programs using it,
 * and the lock that makes it safe to log from many threads. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>
#include <qb/qblog.h>
#include "ipmirror.h"

/* Lets libqb find this library's log callsites when loaded as a DSO. */
QB_LOG_INIT_DATA(ipmirror);

static int log_file_target = -1;
static char log_file_name[PATH_MAX];  /* of log_file_target */

/* ---- one writer at a time ------------------------------------------------
 *
 * libqb 2.0.6 guards qb_log_real_va_() with a plain static flag, not a lock:
 * a line logged while another thread is inside it is silently dropped (8
 * threads x 20 000 lines kept 20 000). Every log line of the process, ours,
 * libqb's own and the cluster libraries', reaches libqb's formatter through
 * that function by its PLT entry (qb_log_real_ and the external-source
 * entries call it so), so defining it here puts this lock in front of all
 * of them. The lock is a leaf: taken under any other lock, it takes none.
 * It is held while libqb writes the line (one write per target).
 * Recursive: a line logged from inside libqb's formatter must not deadlock
 * (libqb drops such a line itself). */

typedef void (*log_va_fn)(struct qb_log_callsite *, va_list);

static pthread_mutex_t log_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static log_va_fn real_log_va;

static void log_lock_fork_prepare(void)
{
	pthread_mutex_lock(&log_lock);
}

static void log_lock_fork_release(void)
{
	pthread_mutex_unlock(&log_lock);
}

static void log_once_init(void)
{
	real_log_va = (log_va_fn)dlsym(RTLD_NEXT, "qb_log_real_va_");
	/* a child forked while another thread logs must not inherit a held lock */
	pthread_atfork(log_lock_fork_prepare, log_lock_fork_release, log_lock_fork_release);
}

void qb_log_real_va_(struct qb_log_callsite *cs, va_list ap)
{
	pthread_once(&log_once, log_once_init);
	if (!real_log_va)
		return;
	pthread_mutex_lock(&log_lock);
	real_log_va(cs, ap);
	pthread_mutex_unlock(&log_lock);
}

/* True when the process resolves libqb's formatter to the locked one above
 * (not so were libqb ahead of this library in the lookup order). */
static bool log_lock_active(void)
{
	return dlsym(RTLD_DEFAULT, "qb_log_real_va_") == (void *)qb_log_real_va_;
}

/* ---- targets -------------------------------------------------------------- */

static void enable_target(int t, int level)
{
	qb_log_filter_ctl(t, QB_LOG_FILTER_CLEAR_ALL, QB_LOG_FILTER_FILE, "*", LOG_TRACE);
	qb_log_filter_ctl(t, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", level);
	/* never a format that can come out empty: libqb (2.0.6) then reads
	 * output_buffer[-1] and the daemon dies of an empty message (the
	 * filter takes every callsite of the process, pacemaker's too) */
	qb_log_format_set(t, t == QB_LOG_SYSLOG ? "%p: %b" : "%t %N[%P] %p: %b");
	qb_log_ctl(t, QB_LOG_CONF_ENABLED, QB_TRUE);
}

int ipm_log_init(const char *ident, int level, unsigned targets, const char *file)
{
	static int initialised;

	if (!initialised) {
		qb_log_init(ident, LOG_DAEMON, LOG_INFO);
		qb_log_tags_stringify_fn_set(NULL);
		initialised = 1;
	}
	qb_log_ctl(QB_LOG_SYSLOG, QB_LOG_CONF_ENABLED, QB_FALSE);
	qb_log_ctl(QB_LOG_STDERR, QB_LOG_CONF_ENABLED, QB_FALSE);
	if (targets & IPM_LOG_SYSLOG)
		enable_target(QB_LOG_SYSLOG, level);
	if (targets & IPM_LOG_STDERR)
		enable_target(QB_LOG_STDERR, level);
	if (log_file_target >= 0) {
		qb_log_file_close(log_file_target);
		log_file_target = -1;
	}
	if (file) {
		log_file_target = qb_log_file_open(file);
		if (log_file_target < 0)
			return log_file_target;
		snprintf(log_file_name, sizeof(log_file_name), "%s", file);
		enable_target(log_file_target, level);
	}
	if (!log_lock_active())
		qb_log(LOG_WARNING, "log lock not in effect (libqb resolved ahead of libipmirror): lines logged by two threads at once may be lost");
	return 0;
}

/* Under the log lock: no line is half written to the old file, none is
 * lost between close and open (libqb's own reopen has no lock of its own
 * against writers). */
int ipm_log_reopen(ipm_error *err)
{
	int rc;

	if (log_file_target < 0)
		return ipm_note(err, "no log file configured (<log file=...>): nothing to reopen");
	pthread_once(&log_once, log_once_init);
	pthread_mutex_lock(&log_lock);
	rc = qb_log_file_reopen(log_file_target, NULL);
	pthread_mutex_unlock(&log_lock);
	if (rc < 0)
		return ipm_fail(err, rc, "cannot reopen log file %s: %s", log_file_name,
				strerror(-rc));
	qb_log(LOG_NOTICE, "log file %s reopened", log_file_name);
	return ipm_note(err, "log file %s reopened", log_file_name);
}

void ipm_log_fini(void)
{
	qb_log_fini();
}
