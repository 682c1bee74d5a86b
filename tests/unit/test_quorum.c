/* test_quorum.c - the promotion's quorum decision on corosync's answers:
 * quorate, not quorate, no corosync, no quorum provider, errors. */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <corosync/quorum.h>

#include "cluster/quorum.h"
#include "unit_util.h"

static void test_quorate(void **state)
{
	ipm_error err = { "" };

	(void)state;
	check_fail(ipm_quorum_decide(CS_OK, QUORUM_SET, CS_OK, 1, &err), 0, &err, "quorate");
}

static void test_not_quorate(void **state)
{
	ipm_error err = { "" };

	(void)state;
	check_fail(ipm_quorum_decide(CS_OK, QUORUM_SET, CS_OK, 0, &err), -EPERM, &err,
		   "partition has no quorum");
	assert_non_null(strstr(err.msg, "--force"));
}

static void test_no_corosync(void **state)
{
	ipm_error err = { "" };

	(void)state;
	check_fail(ipm_quorum_decide(CS_ERR_LIBRARY, 0, CS_OK, 0, &err), 0, &err,
		   "no corosync running");
}

static void test_no_provider(void **state)
{
	ipm_error err = { "" };

	(void)state;
	check_fail(ipm_quorum_decide(CS_OK, QUORUM_FREE, CS_OK, 0, &err), 0, &err,
		   "no quorum provider");
}

static void test_errors_refuse(void **state)
{
	ipm_error err = { "" };

	(void)state;
	check_fail(ipm_quorum_decide(CS_ERR_TRY_AGAIN, 0, CS_OK, 0, &err), -EAGAIN, &err,
		   "quorum_initialize: error 6");
	check_fail(ipm_quorum_decide(CS_OK, QUORUM_SET, CS_ERR_BAD_HANDLE, 1, &err), -EAGAIN,
		   &err, "quorum_getquorate: error 9");
}

/* The real query in a network namespace of its own, where no corosync can
 * answer (libqb's IPC sockets are abstract, so per namespace): it must say
 * "no corosync running" and allow. Without the right to unshare (not root),
 * only a well-formed answer can be asked for. */
static void test_real_query(void **state)
{
	ipm_error err = { "" };
	int rc;

	(void)state;
	if (unshare(CLONE_NEWNET) < 0) {
		print_message("# unshare(CLONE_NEWNET): %s: the host's corosync may answer\n",
			      strerror(errno));
		rc = ipm_quorum_check(&err);
		print_message("# ipm_quorum_check: %d %s\n", rc, err.msg);
		assert_true(rc == 0 || rc == -EPERM || rc == -EAGAIN);
		assert_true(err.msg[0] != 0);
		return;
	}
	check_fail(ipm_quorum_check(&err), 0, &err, "no corosync running");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quorate),
		cmocka_unit_test(test_not_quorate),
		cmocka_unit_test(test_no_corosync),
		cmocka_unit_test(test_no_provider),
		cmocka_unit_test(test_errors_refuse),
		cmocka_unit_test(test_real_query),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
