/* test_log.c - the log set-up survives what libqb's formatter does not:
 * with a syslog format of "%b" alone, an empty message made libqb 2.0.6
 * read output_buffer[(unsigned)-1] and killed ipmirrord (seen in the lab:
 * two daemons segfaulted in qb_log_target_format at a split brain's heal;
 * which callsite logged nothing was not found). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>
#include <cmocka.h>
#include <qb/qblog.h>

#include "ipmirror.h"

static void test_empty_message_to_syslog(void **state)
{
	const char *empty = "";

	(void)state;
	assert_int_equal(ipm_log_init("test_log", LOG_DEBUG, IPM_LOG_SYSLOG, NULL), 0);
	qb_log(LOG_DEBUG, "%s", empty);
	qb_log(LOG_DEBUG, "%s", "\n");
	ipm_log_fini();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_message_to_syslog),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
