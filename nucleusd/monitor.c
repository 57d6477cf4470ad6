// SPDX-License-Identifier: Apache-2.0
/*
 * Where the privileged operations run (nucleusd/monitor.h): here, or in the separate
 * monitor process that nucleusd --user forks while it is still root.
 *
 * The monitor process: PR_SET_DUMPABLE 0, no supplementary groups, a child subreaper
 * (the jailed VMMs are reparented to it), every fd closed but 0-2 and its socket, the
 * daemon's terminal signals ignored (a Ctrl-C or a systemd stop reaches the whole
 * group: the daemon's clean stop still needs its signer). It reads one request at a
 * time, checks it (size, type, strings, ranges; nd_priv__vm_req_check), does it with
 * its own configuration and answers; a malformed request gets -EBADMSG or -EINVAL and
 * the monitor goes on. It ends when the daemon's end closes (the daemon's exit, even
 * kill -9): VMMs keep running, in their own sessions, for the next daemon to adopt.
 * The messages are monitor.h's.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nucleusd/monitor.h"

/* A request the daemon waits for: a jail's set-up takes a while under emulation. */
#define MON_TIMEOUT_MS 60000

struct nd_monitor {
	struct nd_priv_cfg cfg;
	int fd;	   /* the separate monitor's socket; -1: local */
	pid_t pid; /* the separate monitor */
	pthread_mutex_t lock;
};

static int alloc(const struct nd_priv_cfg *cfg, struct nd_monitor **ret)
{
	struct nd_monitor *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->cfg = *cfg;
	m->fd = -1;
	pthread_mutex_init(&m->lock, NULL);
	*ret = m;
	return 0;
}

int nd_monitor__new_local(const struct nd_priv_cfg *cfg, struct nd_monitor **ret)
{
	return alloc(cfg, ret);
}

/* ---- the monitor process ---- */

static int send_reply(int fd, const struct mon_reply *rep, int pass_fd)
{
	struct iovec iov = {.iov_base = (void *)rep, .iov_len = sizeof(*rep)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (pass_fd >= 0) {
		struct cmsghdr *cm;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(*rep) ? 0 : -EPIPE;
}

/* One request, checked, done; *pass: an fd to send with the reply (the caller closes). */
static void serve(struct nd_monitor *m, const struct mon_req *q, ssize_t len, pid_t *signer,
		  struct mon_reply *rep, int *pass)
{
	struct nd_vm_res res;
	int st = 0;

	memset(rep, 0, sizeof(*rep));
	if (len != (ssize_t)sizeof(*q)) {
		rep->r = -EBADMSG;
		return;
	}
	if (q->zero != 0) {
		rep->r = -EINVAL;
		return;
	}
	switch (q->type) {
	case MON_SPAWN_VMM:
		rep->r = nd_priv__spawn_vmm(&m->cfg, &q->vm, &res);
		rep->pid = res.pid;
		memcpy(rep->reason, res.reason, sizeof(rep->reason));
		break;
	case MON_KILL_VMM:
		rep->r = nd_priv__kill_vmm(&m->cfg, q->pid);
		break;
	case MON_REAP:
		/* a VMM's status; never the signer's (MON_SIGNER_END reaps that) */
		rep->r = q->pid <= 1 || q->pid == *signer ? -EPERM : nd_priv__reap(q->pid, &st);
		rep->status = st;
		break;
	case MON_CGROUP_RMDIR:
		rep->r = strnlen(q->vm.id, sizeof(q->vm.id)) == sizeof(q->vm.id) || !q->vm.id[0] ||
					 strchr(q->vm.id, '/') || q->vm.id[0] == '.'
				 ? -EINVAL
				 : nd_priv__cgroup_rmdir(&m->cfg, q->vm.id);
		break;
	case MON_SIGNER_START:
		if (*signer > 0) /* one at a time: the old one ends first */
			nd_priv__signer_end(*signer, 0, &st);
		*signer = 0;
		rep->r = nd_priv__signer_start(&m->cfg, pass, signer);
		rep->pid = *signer;
		break;
	case MON_SIGNER_END:
		if (q->pid <= 0 || q->pid != *signer || q->arg < 0 || q->arg > 10000) {
			rep->r = -EPERM;
			break;
		}
		rep->r = nd_priv__signer_end(*signer, q->arg, &st);
		rep->status = st;
		*signer = 0;
		break;
	case MON_SECCOMP_DEATH:
		rep->r = q->pid <= 1
				 ? -EINVAL
				 : nd_priv__seccomp_death("/dev/kmsg", q->pid, q->since_us, &st);
		rep->status = st;
		break;
	default:
		rep->r = -EOPNOTSUPP;
	}
}

static void monitor_main(struct nd_monitor *m, int fd)
{
	struct mon_req q;
	struct mon_reply rep;
	pid_t signer = 0;
	ssize_t n;

	for (;;) {
		int pass = -1;

		n = recv(fd, &q, sizeof(q), MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		serve(m, &q, n, &signer, &rep, &pass);
		n = send_reply(fd, &rep, pass);
		if (pass >= 0)
			close(pass);
		if (n < 0)
			break;
	}
	if (signer > 0) {
		int st;

		nd_priv__signer_end(signer, 1000, &st);
	}
}

int nd_monitor__fork(const struct nd_priv_cfg *cfg, struct nd_monitor **ret)
{
	struct nd_monitor *m;
	int sv[2], r;
	pid_t pid;

	r = alloc(cfg, &m);
	if (r < 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		free(m);
		return r;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(sv[0]);
		close(sv[1]);
		free(m);
		return r;
	}
	if (pid == 0) {
		/* the monitor: nothing of the daemon's but its socket (moved to 3) */
		close(sv[0]);
		if (sv[1] != 3 && (dup2(sv[1], 3) < 0 || close(sv[1]) < 0))
			return 1;
		syscall(SYS_close_range, 4, ~0U, 0);
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGQUIT, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		prctl(PR_SET_NAME, "nucleus-monitor", 0, 0, 0);
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		if (setgroups(0, NULL) == 0 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
			monitor_main(m, 3);
		free(m);
		return 1;
	}
	close(sv[1]);
	m->fd = sv[0];
	m->pid = pid;
	*ret = m;
	return 0;
}

void nd_monitor__free(struct nd_monitor *m)
{
	if (!m)
		return;
	if (m->fd >= 0) {
		close(m->fd); /* it ends at EOF, ending its signer */
		while (m->pid > 0 && waitpid(m->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int nd_monitor__fd(const struct nd_monitor *m)
{
	return m ? m->fd : -1;
}

pid_t nd_monitor__pid(const struct nd_monitor *m)
{
	return m ? m->pid : 0;
}

const struct nd_priv_cfg *nd_monitor__cfg(const struct nd_monitor *m)
{
	return &m->cfg;
}

/* ---- the daemon's side ---- */

/* One round trip to the separate monitor; @fd: the fd it passed, if any. */
static int call(struct nd_monitor *m, struct mon_req *q, struct mon_reply *rep, int *fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = rep, .iov_len = sizeof(*rep)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct pollfd p = {.fd = m->fd, .events = POLLIN};
	ssize_t n;
	int k, r = 0;

	if (fd)
		*fd = -1;
	pthread_mutex_lock(&m->lock);
	do
		n = send(m->fd, q, sizeof(*q), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*q)) {
		r = -EPIPE;
		goto out;
	}
	do
		k = poll(&p, 1, MON_TIMEOUT_MS);
	while (k < 0 && errno == EINTR);
	if (k <= 0) {
		r = k == 0 ? -ETIMEDOUT : -errno;
		goto out;
	}
	do
		n = recvmsg(m->fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*rep)) {
		r = n <= 0 ? -EPIPE : -EBADMSG;
		goto out;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			int got;

			memcpy(&got, CMSG_DATA(cm), sizeof(int));
			if (fd && *fd < 0)
				*fd = got;
			else
				close(got);
		}
	rep->reason[sizeof(rep->reason) - 1] = '\0';
	r = rep->r > 0 || rep->r < -4095 ? -EBADMSG : 0;
out:
	/* out of step with it (a late reply would answer the next request): cut it off */
	if (r < 0)
		shutdown(m->fd, SHUT_RDWR);
	pthread_mutex_unlock(&m->lock);
	return r;
}

int nd_monitor__spawn_vmm(struct nd_monitor *m, const struct nd_vm_req *q, struct nd_vm_res *res)
{
	struct mon_req rq = {.type = MON_SPAWN_VMM, .vm = *q};
	struct mon_reply rep;
	int r;

	if (m->fd < 0)
		return nd_priv__spawn_vmm(&m->cfg, q, res);
	r = call(m, &rq, &rep, NULL);
	res->pid = r == 0 ? rep.pid : 0;
	snprintf(res->reason, sizeof(res->reason), "%s",
		 r == 0 ? rep.reason : "the privileged monitor does not answer");
	return r < 0 ? r : rep.r;
}

int nd_monitor__kill_vmm(struct nd_monitor *m, pid_t pid)
{
	struct mon_req rq = {.type = MON_KILL_VMM, .pid = pid};
	struct mon_reply rep;
	int r;

	if (m->fd < 0)
		return nd_priv__kill_vmm(&m->cfg, pid);
	r = call(m, &rq, &rep, NULL);
	return r < 0 ? r : rep.r;
}

int nd_monitor__reap(struct nd_monitor *m, pid_t pid, int *status)
{
	struct mon_req rq = {.type = MON_REAP, .pid = pid};
	struct mon_reply rep;
	int r;

	if (m->fd < 0)
		return nd_priv__reap(pid, status);
	r = call(m, &rq, &rep, NULL);
	*status = r == 0 ? rep.status : 0;
	return r < 0 ? r : rep.r;
}

int nd_monitor__cgroup_rmdir(struct nd_monitor *m, const char *id)
{
	struct mon_req rq = {.type = MON_CGROUP_RMDIR};
	struct mon_reply rep;
	int r;

	if (m->fd < 0)
		return nd_priv__cgroup_rmdir(&m->cfg, id);
	if (snprintf(rq.vm.id, sizeof(rq.vm.id), "%s", id) >= (int)sizeof(rq.vm.id))
		return -EINVAL;
	r = call(m, &rq, &rep, NULL);
	return r < 0 ? r : rep.r;
}

int nd_monitor__signer_start(struct nd_monitor *m, int *fd, pid_t *pid)
{
	struct mon_req rq = {.type = MON_SIGNER_START};
	struct mon_reply rep;
	int r;

	if (m->fd < 0)
		return nd_priv__signer_start(&m->cfg, fd, pid);
	r = call(m, &rq, &rep, fd);
	if (r == 0 && rep.r == 0 && *fd < 0)
		r = -EBADMSG;
	if (r < 0 || rep.r < 0) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		*pid = 0;
		return r < 0 ? r : rep.r;
	}
	*pid = rep.pid;
	return 0;
}

int nd_monitor__signer_end(struct nd_monitor *m, pid_t pid, int grace_ms, int *status)
{
	struct mon_req rq = {.type = MON_SIGNER_END, .pid = pid, .arg = grace_ms};
	struct mon_reply rep;
	int r;

	if (m->fd < 0)
		return nd_priv__signer_end(pid, grace_ms, status);
	r = call(m, &rq, &rep, NULL);
	*status = r == 0 ? rep.status : 0;
	return r < 0 ? r : rep.r;
}

int nd_monitor__seccomp_death(struct nd_monitor *m, pid_t pid, int64_t since_us, int *nr)
{
	struct mon_req rq = {.type = MON_SECCOMP_DEATH, .pid = pid, .since_us = since_us};
	struct mon_reply rep;
	int r;

	if (m->fd < 0)
		return nd_priv__seccomp_death("/dev/kmsg", pid, since_us, nr);
	r = call(m, &rq, &rep, NULL);
	*nr = r == 0 ? rep.status : -1;
	return r < 0 ? r : rep.r;
}
