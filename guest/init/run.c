/* SPDX-License-Identifier: Apache-2.0 */
/*
 * run.c - the RUN request: start a command in its own session (so its process group
 * can be signalled as one), feed it the request's stdin, stream its stdout and stderr
 * as separate frames while they come, enforce the timeout (SIGKILL to the group) and
 * end with an EXIT frame. If the client goes away mid-run the group is killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest/init/agent.h"

#define DRAIN_MAX (16u << 20) /* output read after the command exited, per stream */

struct run_req {
	char **argv;
	size_t argc;
	char **envp;
	size_t envc;
	size_t env_bytes; /* of all ENV fields */
	char *cwd;
	const uint8_t *in;
	size_t inlen;
	uint32_t timeout_ms;
};

struct run_ctx {
	int conn;
	uint64_t id;
	pid_t pid;
	int pidfd;
	int in_w, out_r, err_r;
	const uint8_t *in;
	size_t inleft;
	int64_t deadline; /* < 0: none */
	int64_t grace;	  /* after the timeout: how long replies may still block */
	bool timed_out;
	bool gone; /* the client left: nothing more is sent */
	uint8_t *chunk;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static void req_free(struct run_req *rq)
{
	strv_free(rq->argv, rq->argc);
	strv_free(rq->envp, rq->envc);
	free(rq->cwd);
}

/* Appends s to a NULL-terminated vector. */
static int strv_push(char ***v, size_t *n, char *s)
{
	char **nv;

	if (*n >= AGENT_MAX_ARGS)
		return -E2BIG;
	nv = realloc(*v, (*n + 2) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = s;
	nv[*n] = NULL;
	*v = nv;
	return 0;
}

/* One "NAME=value" against the limits in guest.h. */
static int check_env(struct run_req *rq, const char *s, size_t len)
{
	const char *eq = strchr(s, '=');

	if (!eq || !guest_env__name_ok(s, (size_t)(eq - s)) ||
	    len - (size_t)(eq + 1 - s) > GUEST_ENV_VALUE_MAX)
		return -EINVAL;
	if (rq->envc >= GUEST_ENV_MAX || rq->env_bytes + len > GUEST_ENV_TOTAL_MAX)
		return -E2BIG;
	rq->env_bytes += len;
	return 0;
}

static int parse_field(struct run_req *rq, uint16_t tag, const uint8_t *val, uint32_t len)
{
	char *s = NULL;
	int r;

	switch (tag) {
	case GUEST_TAG_ARG:
	case GUEST_TAG_ENV:
		r = guest_tlv__str(val, len, &s);
		if (r == 0 && tag == GUEST_TAG_ENV)
			r = check_env(rq, s, len);
		if (r == 0)
			r = tag == GUEST_TAG_ARG ? strv_push(&rq->argv, &rq->argc, s)
						 : strv_push(&rq->envp, &rq->envc, s);
		if (r < 0)
			free(s);
		return r;
	case GUEST_TAG_CWD:
		if (rq->cwd)
			return -EPROTO;
		return guest_tlv__str(val, len, &rq->cwd);
	case GUEST_TAG_STDIN:
		rq->in = val;
		rq->inlen = len;
		return 0;
	case GUEST_TAG_TIMEOUT_MS:
		return guest_tlv__u32(val, len, &rq->timeout_ms);
	default:
		return 0;
	}
}

static int parse_req(const struct guest_buf *pl, struct run_req *rq)
{
	struct guest_tlv_iter it;
	const uint8_t *val;
	uint32_t len;
	uint16_t tag;
	int r;

	guest_tlv__init(&it, pl->data, pl->len);
	while ((r = guest_tlv__next(&it, &tag, &val, &len)) > 0) {
		r = parse_field(rq, tag, val, len);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	if (rq->argc == 0 || rq->argv[0][0] == 0)
		return -EINVAL;
	return 0;
}

static const char *path_of(char **envp)
{
	for (size_t i = 0; envp && envp[i]; i++)
		if (strncmp(envp[i], "PATH=", 5) == 0)
			return envp[i] + 5;
	return AGENT_DEFAULT_PATH;
}

struct exec_failure {
	int err;
	int stage; /* 1 chdir, 2 exec, 3 setup */
};

static void child_exec(const struct run_req *rq, int in, int out, int err, int ep)
{
	static char *default_env[] = {"PATH=" AGENT_DEFAULT_PATH, "HOME=/root", NULL};
	struct exec_failure f = {0, 3};
	sigset_t none;

	setsid();
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		goto fail;
	f.stage = 1;
	if (chdir(rq->cwd ? rq->cwd : "/") < 0)
		goto fail;
	f.stage = 2;
	/* execvpe searches the caller's PATH: make it the command's. */
	setenv("PATH", path_of(rq->envp), 1);
	execvpe(rq->argv[0], rq->argv, rq->envp ? rq->envp : default_env);
fail:
	f.err = errno;
	if (write(ep, &f, sizeof(f)) < 0) {
		/* the handler then sees EOF and an exit status 127 */
	}
	_exit(127);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int spawn(const struct run_req *rq, struct run_ctx *c, struct exec_failure *ret_f)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, ep[2] = {-1, -1};
	struct exec_failure f = {0};
	ssize_t n;
	int r = 0;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
	    pipe2(ep, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	c->pid = fork();
	if (c->pid < 0) {
		r = -errno;
		goto out;
	}
	if (c->pid == 0)
		child_exec(rq, in[0], out[1], err[1], ep[1]);
	close_fd(&ep[1]);
	do
		n = read(ep[0], &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(f)) {
		waitpid(c->pid, NULL, 0);
		c->pid = -1;
		*ret_f = f;
		r = -(f.err ? f.err : EIO);
		goto out;
	}
	c->in_w = in[1], in[1] = -1;
	c->out_r = out[0], out[0] = -1;
	c->err_r = err[0], err[0] = -1;
	fcntl(c->in_w, F_SETFL, O_NONBLOCK);
	fcntl(c->out_r, F_SETFL, O_NONBLOCK);
	fcntl(c->err_r, F_SETFL, O_NONBLOCK);
out:
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&err[i]);
		close_fd(&ep[i]);
	}
	return r;
}

static void expire(struct run_ctx *c)
{
	kill(-c->pid, SIGKILL);
	c->timed_out = true;
	c->grace = now_ms() + AGENT_IO_GRACE_MS;
}

static void client_gone(struct run_ctx *c)
{
	if (!c->gone)
		kill(-c->pid, SIGKILL);
	c->gone = true;
}

/* Waits until conn is writable; the command's deadline still applies meanwhile. */
static int wait_writable(struct run_ctx *c)
{
	struct pollfd pfd = {.fd = c->conn, .events = POLLOUT};
	int64_t until = c->timed_out ? c->grace : c->deadline;
	int timeout = -1, r;

	if (until >= 0) {
		int64_t left = until - now_ms();

		timeout = left < 0 ? 0 : (left > 1000000 ? 1000000 : (int)left);
	}
	r = poll(&pfd, 1, timeout);
	if (r < 0 && errno != EINTR)
		return -errno;
	if (r == 0 && until >= 0 && now_ms() >= until) {
		if (c->timed_out)
			return -ETIMEDOUT;
		expire(c);
	}
	return 0;
}

static int send_all(struct run_ctx *c, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = send(c->conn, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int r = wait_writable(c);

		if (r < 0)
			return r;
	}
	return 0;
}

static int ctx_send(struct run_ctx *c, uint8_t type, const void *data, size_t len)
{
	struct guest_hdr h = {
		.version = GUEST_PROTO_VERSION, .type = type, .len = (uint32_t)len, .id = c->id};
	uint8_t raw[GUEST_HDR_SIZE];
	int r;

	if (c->gone)
		return -EPIPE;
	guest_hdr__encode(&h, raw);
	r = send_all(c, raw, sizeof(raw));
	if (r == 0 && len)
		r = send_all(c, data, len);
	if (r < 0)
		client_gone(c);
	return r;
}

/* One read from an output pipe; EOF closes it. Returns bytes read (0 if none). */
static size_t pump(struct run_ctx *c, int *fd, uint8_t type)
{
	ssize_t n = read(*fd, c->chunk, GUEST_CHUNK);

	if (n > 0) {
		ctx_send(c, type, c->chunk, (size_t)n);
		return (size_t)n;
	}
	if (n == 0 || (errno != EAGAIN && errno != EINTR))
		close_fd(fd);
	return 0;
}

static void feed_stdin(struct run_ctx *c)
{
	size_t n = c->inleft < GUEST_CHUNK ? c->inleft : GUEST_CHUNK;
	ssize_t w = n ? write(c->in_w, c->in, n) : 0;

	if (w > 0) {
		c->in += w;
		c->inleft -= (size_t)w;
	}
	/* Done, or the command closed its stdin: the rest is dropped. */
	if (c->inleft == 0 || (w < 0 && errno != EAGAIN && errno != EINTR))
		close_fd(&c->in_w);
}

static void check_conn(struct run_ctx *c)
{
	char ch;
	ssize_t n = recv(c->conn, &ch, 1, MSG_DONTWAIT);

	/* EOF, an error, or bytes a client must not send after its RUN frame. */
	if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		client_gone(c);
}

static bool has_exited(pid_t pid)
{
	siginfo_t si = {0};

	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD;
	return si.si_pid == pid;
}

static int poll_timeout(const struct run_ctx *c)
{
	int timeout = -1;

	if (c->deadline >= 0 && !c->timed_out) {
		int64_t left = c->deadline - now_ms();

		timeout = left < 0 ? 0 : (left > 1000000 ? 1000000 : (int)left);
	}
	/* Without a pidfd, look for the exit now and then. */
	if (c->pidfd < 0 && (timeout < 0 || timeout > 50))
		timeout = 50;
	return timeout;
}

/* Runs until the command (the session leader) exited. */
static void run_loop(struct run_ctx *c)
{
	for (;;) {
		struct pollfd p[5];
		int n = 0, i_conn = -1, i_in = -1, i_out = -1, i_err = -1, i_pid = -1;

		if (!c->gone)
			i_conn = n, p[n++] = (struct pollfd){.fd = c->conn, .events = POLLIN};
		if (c->in_w >= 0)
			i_in = n, p[n++] = (struct pollfd){.fd = c->in_w, .events = POLLOUT};
		if (c->out_r >= 0)
			i_out = n, p[n++] = (struct pollfd){.fd = c->out_r, .events = POLLIN};
		if (c->err_r >= 0)
			i_err = n, p[n++] = (struct pollfd){.fd = c->err_r, .events = POLLIN};
		if (c->pidfd >= 0)
			i_pid = n, p[n++] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};
		if (poll(p, (nfds_t)n, poll_timeout(c)) < 0 && errno != EINTR)
			break; /* cannot happen with valid fds; the exit check below decides */
		if (c->deadline >= 0 && !c->timed_out && now_ms() >= c->deadline)
			expire(c);
		if (i_conn >= 0 && p[i_conn].revents)
			check_conn(c);
		if (i_in >= 0 && p[i_in].revents)
			feed_stdin(c);
		if (i_out >= 0 && p[i_out].revents)
			pump(c, &c->out_r, GUEST_MSG_STDOUT);
		if (i_err >= 0 && p[i_err].revents)
			pump(c, &c->err_r, GUEST_MSG_STDERR);
		if ((i_pid < 0 || p[i_pid].revents) && has_exited(c->pid))
			return;
	}
}

/* What the leader wrote before it exited is in the pipes: send it (bounded, in case
 * something it left behind keeps writing). */
static void drain(struct run_ctx *c, int *fd, uint8_t type)
{
	size_t total = 0, n;

	while (*fd >= 0 && total < DRAIN_MAX && (n = pump(c, fd, type)) > 0)
		total += n;
	close_fd(fd);
}

static void send_exit(struct run_ctx *c, int status)
{
	struct guest_buf b = {0};
	int r;

	if (WIFSIGNALED(status))
		r = guest_buf__put_u32(&b, GUEST_TAG_EXIT_SIGNAL, (uint32_t)WTERMSIG(status));
	else
		r = guest_buf__put_u32(&b, GUEST_TAG_EXIT_CODE, (uint32_t)WEXITSTATUS(status));
	if (r == 0 && c->timed_out)
		r = guest_buf__put_u32(&b, GUEST_TAG_TIMED_OUT, 1);
	if (r == 0)
		ctx_send(c, GUEST_MSG_EXIT, b.data, b.len);
	guest_buf__release(&b);
}

static int send_started(struct run_ctx *c)
{
	struct guest_buf b = {0};
	int r = guest_buf__put_u32(&b, GUEST_TAG_PID, (uint32_t)c->pid);

	if (r == 0)
		r = ctx_send(c, GUEST_MSG_STARTED, b.data, b.len);
	guest_buf__release(&b);
	return r;
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

static int run_started(struct run_ctx *c, const struct run_req *rq)
{
	int slot, status = 0;

	c->pidfd = open_pidfd(c->pid);
	if (c->pidfd >= 0)
		fcntl(c->pidfd, F_SETFD, FD_CLOEXEC);
	slot = registry__claim(c->id, c->pid);
	if (slot < 0)
		agent__log("run: kill registry full, request not killable by id");
	c->in = rq->in;
	c->inleft = rq->inlen;
	if (c->inleft == 0)
		close_fd(&c->in_w);
	c->deadline = rq->timeout_ms ? now_ms() + rq->timeout_ms : -1;
	send_started(c);
	run_loop(c);
	/* Still a zombie here: its pgid cannot be reused before the slot is free. */
	registry__release(slot);
	drain(c, &c->out_r, GUEST_MSG_STDOUT);
	drain(c, &c->err_r, GUEST_MSG_STDERR);
	while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
		;
	send_exit(c, status);
	return c->gone ? -EPIPE : 0;
}

int run__serve(int fd, uint64_t id, const struct guest_buf *pl)
{
	struct run_ctx c = {
		.conn = fd, .id = id, .pid = -1, .pidfd = -1, .in_w = -1, .out_r = -1, .err_r = -1};
	struct exec_failure f = {0};
	struct run_req rq = {0};
	int r;

	r = parse_req(pl, &rq);
	if (r < 0) {
		r = agent__send_error(fd, id, -r, "run: malformed request");
		goto out;
	}
	c.chunk = malloc(GUEST_CHUNK);
	if (!c.chunk) {
		r = agent__send_error(fd, id, ENOMEM, "run: out of memory");
		goto out;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	r = spawn(&rq, &c, &f);
	if (r < 0) {
		r = agent__send_error(fd, id, -r, "run: %s %s: %s",
				      f.stage == 1   ? "chdir"
				      : f.stage == 2 ? "exec"
						     : "start",
				      f.stage == 1 ? (rq.cwd ? rq.cwd : "/") : rq.argv[0],
				      strerror(-r));
		goto out;
	}
	r = run_started(&c, &rq);
out:
	close_fd(&c.pidfd);
	close_fd(&c.in_w);
	close_fd(&c.out_r);
	close_fd(&c.err_r);
	free(c.chunk);
	req_free(&rq);
	return r;
}
