/* unit_util.h - helpers shared by the cmocka unit tests. Include after
 * <cmocka.h> and "ipmirror.h". */
#ifndef IPM_UNIT_UTIL_H
#define IPM_UNIT_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* rc must be want and err must mention substr. */
static inline void check_fail(int rc, int want, const ipm_error *err, const char *substr)
{
	if (rc != want || !strstr(err->msg, substr))
		print_error("rc %d (want %d), message \"%s\" (want \"%s\")\n", rc, want,
			    err->msg, substr);
	assert_int_equal(rc, want);
	assert_non_null(strstr(err->msg, substr));
}

/* A fresh directory under $TMPDIR (default /tmp) named after tag. 0 or -1. */
static inline int scratch_dir_make(char *dir, size_t size, const char *tag)
{
	const char *base = getenv("TMPDIR");

	snprintf(dir, size, "%s/ipm-%s-XXXXXX", base ? base : "/tmp", tag);
	return mkdtemp(dir) ? 0 : -1;
}

static inline int scratch_dir_remove(const char *dir)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#endif
