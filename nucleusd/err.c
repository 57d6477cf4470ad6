// SPDX-License-Identifier: Apache-2.0
/* struct nd_err, the error every nucleusd__ call may fill (nucleusd/nucleusd.h). */
#include <stdarg.h>
#include <stdio.h>

#include "nucleusd/nucleusd.h"

int nd_err__set(struct nd_err *e, int rc, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return rc;
	snprintf(e->code, sizeof(e->code), "%s", code);
	e->budget[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return rc;
}
