/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nucleus-init - PID 1 of a Nucleus guest and the agent that serves the host's requests
 * (docs/agent-protocol.md).
 *   nucleus-init                       as PID 1: mounts, vsock port 1024, status port
 *   nucleus-init --serve-unix PATH [--ready-fd FD]
 *                                      the same server on a Unix socket, as a normal
 *                                      process (tests): no mounts, no ports, no reboot;
 *                                      SHUTDOWN makes it exit 0. FD gets one byte once
 *                                      it listens.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "guest/init/agent.h"

#define INIT_PATH "/sbin/nucleus-init"

static int listen_unix(const char *path, int *ret_fd)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	struct stat st;
	int fd, r;

	if (len >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, len + 1);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* stale socket of an earlier run */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static int serve_unix(const char *path, int ready_fd)
{
	int fd, r;

	prctl(PR_SET_CHILD_SUBREAPER, 1);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	r = listen_unix(path, &fd);
	if (r < 0) {
		fprintf(stderr, "nucleus-init: listen on %s: %s\n", path, strerror(-r));
		return 1;
	}
	if (ready_fd >= 0) {
		if (write(ready_fd, "R", 1) < 0)
			fprintf(stderr, "nucleus-init: ready fd: %s\n", strerror(errno));
		close(ready_fd);
	}
	r = serve__loop(fd, false);
	close(fd);
	unlink(path);
	if (r < 0)
		fprintf(stderr, "nucleus-init: %s\n", strerror(-r));
	return r < 0 ? 1 : 0;
}

static int pid1_main(char **argv)
{
	int fd;

	/* Started as /init (a link): become /sbin/nucleus-init so ps shows who PID 1 is. */
	if (!strstr(argv[0], "nucleus-init") && access(INIT_PATH, X_OK) == 0) {
		argv[0] = (char *)INIT_PATH;
		execv(INIT_PATH, argv);
	}
	prctl(PR_SET_NAME, "nucleus-init");
	signal(SIGPIPE, SIG_IGN);
	umask(022);
	pid1__early();
	if (chdir("/") < 0)
		agent__log("chdir /: %s", strerror(errno));
	if (pid1__listen_vsock(&fd) < 0)
		pid1__crash("cannot listen on vsock");
	pid1__ready();
	agent__log("ready: agent listening on vsock port %u", GUEST_AGENT_PORT);
	if (serve__loop(fd, true) == 1)
		pid1__poweroff();
	pid1__crash("the server loop failed");
}

static int usage(void)
{
	fprintf(stderr, "usage: nucleus-init              (as PID 1)\n"
			"       nucleus-init --serve-unix PATH [--ready-fd FD]\n");
	return 1;
}

int main(int argc, char **argv)
{
	const char *unix_path = NULL;
	int ready_fd = -1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--serve-unix") && i + 1 < argc) {
			unix_path = argv[++i];
		} else if (!strcmp(argv[i], "--ready-fd") && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);

			if (*end || v < 0 || v > 65535)
				return usage();
			ready_fd = (int)v;
		} else if (getpid() != 1) {
			return usage();
		}
	}
	if (unix_path)
		return serve_unix(unix_path, ready_fd);
	if (getpid() != 1)
		return usage();
	return pid1_main(argv);
}
