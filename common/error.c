/* error.c - the one error contract: a negative errno returned, the reason
 * written into the caller's ipm_error; ipm_note for text on success. */
#include <stdarg.h>
#include <stdio.h>

#include "ipmirror.h"

int ipm_fail(ipm_error *err, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return rc;
}

int ipm_note(ipm_error *err, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return 0;
}
