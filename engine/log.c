/* log.c - libqb logging set-up for the engine and the programs using it. */
#include <errno.h>
#include <syslog.h>
#include <qb/qblog.h>
#include "ipmirror.h"

/* Lets libqb find this library's log callsites when loaded as a DSO. */
QB_LOG_INIT_DATA(ipmirror);

static int log_file_target = -1;

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
		enable_target(log_file_target, level);
	}
	return 0;
}

void ipm_log_fini(void)
{
	qb_log_fini();
}
