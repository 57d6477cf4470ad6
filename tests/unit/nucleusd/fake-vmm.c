// SPDX-License-Identifier: Apache-2.0
/*
 * A stand-in for nucleus-vmm in the vmm backend's unit tests (no KVM): it takes the same
 * arguments, serves the control socket (state, pause, resume, stop -> exit 4) and the
 * vsock Unix socket: "CONNECT <port>\n" -> "OK 1\n", then the connection is spliced to
 * a guest agent, nucleus-init-host --serve-unix (FAKE_VMM_AGENT names the binary).
 * FAKE_VMM_MODE: "exit3" exits at once with status 3 (guest fault); "mute" accepts
 * vsock connections and never answers (a hung guest).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int listen_on(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 64) < 0)
		return -1;
	return fd;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		ssize_t r = read(fd, buf + n, 1);

		if (r <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* One vsock connection (a child process): handshake, then both directions spliced. */
static void serve_vsock(int c, const char *agent, bool mute)
{
	struct pollfd p[2];
	char line[64], buf[65536];
	int a;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (read_line(c, line, sizeof(line)) < 0 || strncmp(line, "CONNECT ", 8) != 0)
		_exit(1);
	while (mute)
		pause();
	a = connect_to(agent);
	if (a < 0 || write_all(c, "OK 1\n", 5) < 0)
		_exit(1);
	p[0] = (struct pollfd){.fd = c, .events = POLLIN};
	p[1] = (struct pollfd){.fd = a, .events = POLLIN};
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0 || write_all(p[1 - i].fd, buf, (size_t)n) < 0)
				_exit(0);
		}
	}
}

static const char state[] = "{\"ok\":true,\"state\":\"running\",\"phases\":"
			    "{\"kvm\":100,\"memory\":200,\"first_run\":2000}}\n";

int main(int argc, char **argv)
{
	const char *vsock = NULL, *control = NULL, *disk = NULL;
	const char *mode = getenv("FAKE_VMM_MODE"), *init = getenv("FAKE_VMM_AGENT");
	char agent[160], line[256];
	struct pollfd p[2];
	pid_t agent_pid;

	for (int i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "--vsock") == 0)
			vsock = argv[++i];
		else if (strcmp(argv[i], "--control") == 0)
			control = argv[++i];
		else if (strcmp(argv[i], "--disk") == 0)
			disk = argv[++i];
	}
	/* Unlike nucleus-vmm, a test's VMM does not outlive the test. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (mode && strcmp(mode, "exit3") == 0)
		return 3;
	if (!vsock || !control || !init || (disk && access(disk, R_OK | W_OK) < 0))
		return 1;
	snprintf(agent, sizeof(agent), "%s.agent", vsock);
	unlink(agent);
	signal(SIGCHLD, SIG_IGN); /* connection children reap themselves */
	agent_pid = fork();
	if (agent_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGCHLD, SIG_DFL); /* the agent waits for its commands */
		execl(init, init, "--serve-unix", agent, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && access(agent, F_OK) < 0; i++)
		usleep(10000);
	p[0] = (struct pollfd){.fd = listen_on(control), .events = POLLIN};
	p[1] = (struct pollfd){.fd = listen_on(vsock), .events = POLLIN};
	if (p[0].fd < 0 || p[1].fd < 0)
		return 1;
	for (;;) {
		int c;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents & POLLIN) {
			c = accept4(p[1].fd, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0 && fork() == 0)
				serve_vsock(c, agent, mode && strcmp(mode, "mute") == 0);
			if (c >= 0)
				close(c);
		}
		if (!(p[0].revents & POLLIN))
			continue;
		c = accept4(p[0].fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0 || read_line(c, line, sizeof(line)) < 0) {
			if (c >= 0)
				close(c);
			continue;
		}
		if (strstr(line, "\"stop\"")) {
			write_all(c, "{\"ok\":true,\"state\":\"stopping\"}\n", 31);
			close(c);
			kill(agent_pid, SIGKILL);
			unlink(agent);
			return 4;
		}
		/* a boot trace as nucleus-vmm's (docs/vmm.md), stuck after its first KVM_RUN */
		write_all(c, state, strlen(state));
		close(c);
	}
}
