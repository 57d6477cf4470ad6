/* SPDX-License-Identifier: Apache-2.0 */
/*
 * serve.c - the accept loop and the per-connection dispatcher of nucleus-init.
 *
 * One handler process per connection (fork): whatever goes wrong while serving a
 * request ends that process, never the server (PID 1 in a VM). The parent only
 * accepts, forks, reaps (every orphan in the VM too when it is PID 1) and waits for a
 * handler to exit with HANDLER_EXIT_SHUTDOWN. Signals reach it through a signalfd.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/init/agent.h"

#define SHUTDOWN_ACK_MS 5000
/*
 * A handler that acknowledged a SHUTDOWN exits with this status. The server learns it
 * when it reaps that handler: the one event that cannot be lost or reordered (a signal
 * sent before the exit could be read after the reap, when its pid is no handler's).
 */
#define HANDLER_EXIT_SHUTDOWN 3

void agent__log(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "nucleus-init[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere else to say it */
	}
}

int agent__send(int fd, uint8_t type, uint64_t id, const struct guest_buf *pl)
{
	return guest_frame__write(fd, type, id, pl ? pl->data : NULL, pl ? pl->len : 0,
				  AGENT_IO_GRACE_MS);
}

int agent__send_error(int fd, uint64_t id, int err, const char *fmt, ...)
{
	struct guest_buf b = {0};
	char msg[512];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r = guest_buf__put_u32(&b, GUEST_TAG_ERRNO, (uint32_t)(err > 0 ? err : EIO));
	if (r == 0)
		r = guest_buf__put_str(&b, GUEST_TAG_MESSAGE, msg);
	if (r == 0)
		r = agent__send(fd, GUEST_MSG_ERROR, id, &b);
	guest_buf__release(&b);
	return r;
}

static int do_ping(int fd, uint64_t id)
{
	struct guest_buf b = {0};
	int r;

	r = guest_buf__put_u32(&b, GUEST_TAG_VERSION, GUEST_PROTO_VERSION);
	if (r == 0)
		r = guest_buf__put_str(&b, GUEST_TAG_AGENT, AGENT_NAME);
	if (r == 0)
		r = agent__send(fd, GUEST_MSG_OK, id, &b);
	guest_buf__release(&b);
	return r;
}

static int do_kill(int fd, uint64_t id, const struct guest_buf *pl)
{
	struct guest_buf b = {0};
	struct guest_tlv_iter it;
	const uint8_t *val;
	uint64_t target = 0;
	uint32_t len, sig = 0;
	uint16_t tag;
	int r, n;

	guest_tlv__init(&it, pl->data, pl->len);
	while ((r = guest_tlv__next(&it, &tag, &val, &len)) > 0) {
		if (tag == GUEST_TAG_TARGET)
			r = guest_tlv__u64(val, len, &target);
		else if (tag == GUEST_TAG_SIGNAL)
			r = guest_tlv__u32(val, len, &sig);
		if (r < 0)
			break;
	}
	if (r < 0)
		return agent__send_error(fd, id, EPROTO, "kill: malformed request");
	if (!target || sig < 1 || sig > 64)
		return agent__send_error(fd, id, EINVAL, "kill: need a target id and a signal");
	n = registry__kill(target, (int)sig);
	if (n == 0)
		return agent__send_error(fd, id, ESRCH, "kill: no running command has that id");
	r = guest_buf__put_u32(&b, GUEST_TAG_COUNT, (uint32_t)n);
	if (r == 0)
		r = agent__send(fd, GUEST_MSG_OK, id, &b);
	guest_buf__release(&b);
	return r;
}

static int dispatch(int fd, const struct guest_hdr *h, const struct guest_buf *pl,
		    bool *ret_shutdown)
{
	int r;

	switch (h->type) {
	case GUEST_MSG_PING:
		return do_ping(fd, h->id);
	case GUEST_MSG_RUN:
		return run__serve(fd, h->id, pl);
	case GUEST_MSG_READ:
		return files__read(fd, h->id, pl);
	case GUEST_MSG_WRITE:
		return files__write(fd, h->id, pl);
	case GUEST_MSG_STAT:
		return files__stat(fd, h->id, pl);
	case GUEST_MSG_LIST:
		return files__list(fd, h->id, pl);
	case GUEST_MSG_KILL:
		return do_kill(fd, h->id, pl);
	case GUEST_MSG_SHUTDOWN:
		r = agent__send(fd, GUEST_MSG_OK, h->id, NULL);
		*ret_shutdown = true;
		return r;
	default:
		return agent__send_error(fd, h->id, EPROTO, "unexpected message type 0x%02x",
					 h->type);
	}
}

void serve__conn(int fd, bool *ret_shutdown)
{
	struct guest_buf pl = {0};
	struct guest_hdr h;
	int r;

	*ret_shutdown = false;
	r = guest_frame__read(fd, &h, &pl, AGENT_REQ_MS);
	switch (r) {
	case 0:
		dispatch(fd, &h, &pl, ret_shutdown);
		break;
	case -EPROTO:
		agent__send_error(fd, 0, EPROTO, "bad frame magic");
		break;
	case -EPROTONOSUPPORT:
		agent__send_error(fd, 0, EPROTONOSUPPORT, "protocol version %u only",
				  GUEST_PROTO_VERSION);
		break;
	case -EMSGSIZE:
		agent__send_error(fd, 0, EMSGSIZE, "frame larger than %u bytes", GUEST_FRAME_MAX);
		break;
	default: /* the peer left, or never said anything */
		break;
	}
	guest_buf__release(&pl);
}

/* ---- the accept loop ------------------------------------------------------------------ */

struct server {
	bool pid1;
	int listen_fd;
	int sfd;
	pid_t handlers[AGENT_MAX_CONN];
	int nhandlers;
	int result; /* 1 shutdown requested, 0 terminated, < 0 fatal */
	bool done;
};

/* Whether @pid was a handler (now forgotten). */
static bool forget_handler(struct server *s, pid_t pid)
{
	for (int i = 0; i < s->nhandlers; i++) {
		if (s->handlers[i] != pid)
			continue;
		s->handlers[i] = s->handlers[--s->nhandlers];
		registry__release_owner(pid);
		return true;
	}
	return false;
}

static void reap(struct server *s)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		/* Only a handler that acknowledged a SHUTDOWN request asks for it. */
		if (forget_handler(s, pid) && WIFEXITED(st) &&
		    WEXITSTATUS(st) == HANDLER_EXIT_SHUTDOWN) {
			s->result = 1;
			s->done = true;
		}
	}
}

static void handler_main(struct server *s, int conn)
{
	sigset_t all;
	bool shutdown = false;

	close(s->listen_fd);
	close(s->sfd);
	signal(SIGPIPE, SIG_IGN);
	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	serve__conn(conn, &shutdown);
	if (shutdown) {
		/* The OK must reach the host before the VM goes: wait until the client has
		 * read it and hung up (bounded), then ask PID 1 to power off by exiting so. */
		struct pollfd pfd = {.fd = conn, .events = POLLIN};
		char c;

		if (poll(&pfd, 1, SHUTDOWN_ACK_MS) > 0 && read(conn, &c, 1) < 0) {
			/* gone either way */
		}
	}
	close(conn);
	_exit(shutdown ? HANDLER_EXIT_SHUTDOWN : 0);
}

/* Never blocks the server: the reply fits an empty socket buffer (timeout 0). */
static void busy_reply(int conn)
{
	struct guest_buf b = {0};

	if (guest_buf__put_u32(&b, GUEST_TAG_ERRNO, EBUSY) == 0)
		guest_frame__write(conn, GUEST_MSG_ERROR, 0, b.data, b.len, 0);
	guest_buf__release(&b);
}

static void accept_one(struct server *s)
{
	int conn = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	pid_t pid;

	if (conn < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			agent__log("accept: %s", strerror(errno));
		return;
	}
	if (s->nhandlers >= AGENT_MAX_CONN) {
		busy_reply(conn);
		close(conn);
		return;
	}
	pid = fork();
	if (pid == 0)
		handler_main(s, conn);
	if (pid < 0)
		agent__log("fork: %s", strerror(errno));
	else
		s->handlers[s->nhandlers++] = pid;
	close(conn);
}

static void on_signal(struct server *s)
{
	struct signalfd_siginfo si;

	while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(s);
			break;
		case SIGTERM:
		case SIGINT:
			if (!s->pid1) {
				s->result = 0;
				s->done = true;
			}
			break;
		default:
			break;
		}
	}
	reap(s); /* SIGCHLDs coalesce */
}

static int setup_signals(struct server *s)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	s->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return s->sfd < 0 ? -errno : 0;
}

int serve__loop(int listen_fd, bool pid1)
{
	struct server s = {.pid1 = pid1, .listen_fd = listen_fd, .sfd = -1};
	int r;

	r = registry__init();
	if (r == 0)
		r = setup_signals(&s);
	if (r < 0)
		return r;
	while (!s.done) {
		struct pollfd pfd[2] = {
			{.fd = s.sfd, .events = POLLIN},
			{.fd = listen_fd, .events = POLLIN},
		};

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			s.result = -errno;
			break;
		}
		if (pfd[0].revents)
			on_signal(&s);
		if (!s.done && pfd[1].revents)
			accept_one(&s);
	}
	/* What still runs belongs to nobody now. */
	registry__kill_all(SIGKILL);
	for (int i = 0; i < s.nhandlers; i++)
		kill(s.handlers[i], SIGKILL);
	while (s.nhandlers > 0) {
		pid_t pid = waitpid(-1, NULL, 0);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0)
			break;
		forget_handler(&s, pid);
	}
	close(s.sfd);
	return s.result;
}
