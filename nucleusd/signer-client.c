// SPDX-License-Identifier: Apache-2.0
/*
 * The daemon's side of the audit signer (nucleusd/signer.h): nucleus-signer is exec'd
 * (nd_priv__signer_start, through the monitor: here, or by the root monitor of nucleusd
 * --user, which alone can read the key file) with its end of a SOCK_SEQPACKET pair as
 * fd 3, every other fd closed, an environment of the sanitizers' options only, default
 * signals, in a process group of its own (a Ctrl-C meant for the daemon does not end it
 * before the daemon's last seal).
 *
 * One request at a time, on the loop thread: send, poll for the reply (bounded), receive.
 * A signer that is gone, hangs or answers wrong is killed (SIGKILL) and reaped by its
 * parent (this process or the monitor), by its pid: each child is reaped by its pid
 * (waitpid(pid)), never with -1, so the VMM reaper (vm-proc.c) never takes the signer's
 * status, nor this one a VMM's. The next seal starts a new signer, at most once per
 * SIGNER_RESTART_MS, and keeps it only if its public key is the one the daemon had.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nucleusd/clock.h"
#include "nucleusd/monitor.h"
#include "nucleusd/signer.h"

extern char **environ;

/* nucleus-signer's start (exec, loader, the key file): within this, or it failed. */
#define SIGNER_START_MS 10000

struct signer {
	char exe[PATH_MAX], key[PATH_MAX];
	struct nd_monitor *m, *own; /* where it is started and ended; own: a local one */
	pid_t pid;		    /* 0: none runs */
	int fd;			    /* our end; -1 with pid 0 */
	int err;		    /* while none runs: why (returned until a restart) */
	int64_t start_us;	    /* monotonic time of the last start */
	uint64_t restarts;	    /* signers started again after one failed */
	uint8_t pk[SIGNER_PK_LEN];
	char problem[256]; /* how the last one failed; "": never */
};

static void note(struct signer *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct signer *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->problem, sizeof(s->problem), fmt, ap);
	va_end(ap);
}

/* Appends how the process ended to the problem. */
static void note_end(struct signer *s, int st)
{
	size_t at = strlen(s->problem);
	char *p = s->problem + at;
	size_t left = sizeof(s->problem) - at;

	if (WIFEXITED(st))
		snprintf(p, left, " (it exited with status %d)", WEXITSTATUS(st));
	else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS)
		snprintf(p, left, " (seccomp: it made a forbidden system call, SIGSYS)");
	else if (WIFSIGNALED(st))
		snprintf(p, left, " (it was killed by signal %d, %s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
}

/* Kills (SIGKILL: nothing of it needs a clean end) and reaps the signer; @err from now. */
static int stop(struct signer *s, int err)
{
	int st = 0;

	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (s->pid > 0) {
		if (nd_monitor__signer_end(s->m, s->pid, 0, &st) == 0)
			note_end(s, st);
		s->pid = 0;
	}
	s->err = err;
	return err;
}

/* One message of exactly @len bytes into @buf within @ms; -EPIPE: the peer is gone. */
static int recv_one(int fd, void *buf, size_t len, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int64_t until = nd_clock__mono_us() + (int64_t)ms * 1000;
	uint8_t raw[128]; /* larger than any message: a longer one is seen */
	ssize_t n;
	int k;

	for (;;) {
		int64_t left = (until - nd_clock__mono_us()) / 1000;

		k = poll(&p, 1, left > 0 ? (int)left : 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -ETIMEDOUT;
		break;
	}
	n = recv(fd, raw, sizeof(raw), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
		return -EPIPE;
	if (n < 0)
		return -errno;
	if ((size_t)n != len)
		return -EBADMSG;
	memcpy(buf, raw, len);
	return 0;
}

/* Execs a signer and reads its hello: its public key in @pk. */
static int spawn(struct signer *s, uint8_t pk[SIGNER_PK_LEN])
{
	struct signer_hello h;
	int r;

	s->start_us = nd_clock__mono_us();
	r = nd_monitor__signer_start(s->m, &s->fd, &s->pid);
	if (r < 0) {
		note(s, "cannot start %s: %s", s->exe, strerror(-r));
		return stop(s, r);
	}
	r = recv_one(s->fd, &h, sizeof(h), SIGNER_START_MS);
	if (r == 0 && h.magic != SIGNER_HELLO_MAGIC)
		r = -EBADMSG;
	if (r < 0) {
		if (r == -ETIMEDOUT)
			note(s, "%s (pid %d) did not start within %d ms", s->exe, (int)s->pid,
			     SIGNER_START_MS);
		else
			note(s, "%s (pid %d) is not a nucleus-signer, or ended at its start",
			     s->exe, (int)s->pid);
		return stop(s, r == -ETIMEDOUT ? r : -ENOEXEC);
	}
	if (h.status < 0 && h.status > -4096) {
		note(s, "%s (pid %d) cannot use the key %s: %s", s->exe, (int)s->pid, s->key,
		     strerror(-h.status));
		return stop(s, h.status);
	}
	if (h.status != 0) {
		note(s, "%s (pid %d) said %d at its start", s->exe, (int)s->pid, (int)h.status);
		return stop(s, -EBADMSG);
	}
	memcpy(pk, h.pk, SIGNER_PK_LEN);
	return 0;
}

int signer__start(struct nd_monitor *m, const char *exe, const char *key_path, struct signer **ret)
{
	struct nd_priv_cfg *cfg = NULL;
	struct signer *s;
	int r;

	if (!exe || !*exe || !key_path)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	r = -ENAMETOOLONG;
	if (snprintf(s->exe, sizeof(s->exe), "%s", exe) >= (int)sizeof(s->exe) ||
	    snprintf(s->key, sizeof(s->key), "%s", key_path) >= (int)sizeof(s->key))
		goto fail;
	if (!m) { /* started and ended here */
		r = -ENOMEM;
		cfg = calloc(1, sizeof(*cfg));
		if (!cfg)
			goto fail;
		memcpy(cfg->signer, s->exe, sizeof(cfg->signer));
		memcpy(cfg->key, s->key, sizeof(cfg->key));
		r = nd_monitor__new_local(cfg, &s->own);
		if (r < 0)
			goto fail;
		m = s->own;
	}
	s->m = m;
	r = spawn(s, s->pk);
	if (r < 0)
		goto fail;
	free(cfg);
	*ret = s;
	return 0;
fail:
	nd_monitor__free(s->own);
	free(cfg);
	free(s);
	return r;
}

void signer__free(struct signer *s)
{
	int st;

	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	/* it ends at the closed socket; SIGKILL when it does not within a second */
	if (s->pid > 0)
		nd_monitor__signer_end(s->m, s->pid, 1000, &st);
	nd_monitor__free(s->own);
	free(s);
}

/* A signer again, after one failed: not sooner than SIGNER_RESTART_MS after the last start. */
static int restart(struct signer *s)
{
	uint8_t pk[SIGNER_PK_LEN];
	int r;

	if (nd_clock__mono_us() - s->start_us < (int64_t)SIGNER_RESTART_MS * 1000)
		return s->err;
	r = spawn(s, pk);
	if (r < 0)
		return r;
	if (memcmp(pk, s->pk, SIGNER_PK_LEN) != 0) {
		note(s, "the restarted %s (pid %d) has another public key: %s changed; refused",
		     s->exe, (int)s->pid, s->key);
		return stop(s, -EKEYREJECTED);
	}
	s->restarts++;
	return 0;
}

int signer__seal(struct signer *s, uint64_t seq, const uint8_t hash[SIGNER_HASH_LEN],
		 uint8_t sig[SIGNER_SIG_LEN])
{
	struct signer_req req = {.type = SIGNER_SEAL, .seq = seq};
	struct signer_reply rep;
	ssize_t n;
	int r;

	if (!s)
		return -EINVAL;
	if (s->pid <= 0) {
		r = restart(s);
		if (r < 0)
			return r;
	}
	memcpy(req.hash, hash, SIGNER_HASH_LEN);
	do
		n = send(s->fd, &req, sizeof(req), MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(req)) {
		/* one request at a time: a full socket is a signer that stopped reading */
		r = n < 0 && errno == EAGAIN ? -ETIMEDOUT : -EPIPE;
		note(s, "%s (pid %d) %s", s->exe, (int)s->pid,
		     r == -EPIPE ? "is gone" : "does not read its requests");
		return stop(s, r);
	}
	r = recv_one(s->fd, &rep, sizeof(rep), SIGNER_TIMEOUT_MS);
	if (r == 0 && (rep.status > 0 || rep.status <= -4096))
		r = -EBADMSG;
	if (r < 0) {
		if (r == -ETIMEDOUT)
			note(s, "%s (pid %d) did not answer within %d ms", s->exe, (int)s->pid,
			     SIGNER_TIMEOUT_MS);
		else if (r == -EPIPE)
			note(s, "%s (pid %d) is gone", s->exe, (int)s->pid);
		else
			note(s, "%s (pid %d) answered a malformed reply", s->exe, (int)s->pid);
		return stop(s, r == -ETIMEDOUT || r == -EPIPE ? r : -EBADMSG);
	}
	if (rep.status < 0)
		return rep.status; /* refused (the request was wrong): the signer stays */
	memcpy(sig, rep.sig, SIGNER_SIG_LEN);
	return 0;
}

const uint8_t *signer__pk(const struct signer *s)
{
	return s->pk;
}

pid_t signer__pid(const struct signer *s)
{
	return s ? s->pid : 0;
}

uint64_t signer__restarts(const struct signer *s)
{
	return s ? s->restarts : 0;
}

const char *signer__problem(const struct signer *s)
{
	return s ? s->problem : "";
}
