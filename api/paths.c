// SPDX-License-Identifier: Apache-2.0
/* Where the daemon's socket lives by default (shared by the server and the client). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "api/api.h"

const char *api__default_socket(char *buf, size_t len)
{
	const char *env = getenv("NUCLEUS_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (env && *env)
		snprintf(buf, len, "%s", env);
	else if (geteuid() != 0 && xdg && *xdg)
		snprintf(buf, len, "%s/nucleus/nucleusd.sock", xdg);
	else
		snprintf(buf, len, "/run/nucleus/nucleusd.sock");
	return buf;
}
