// SPDX-License-Identifier: Apache-2.0
/*
 * The daemon's privileged operations, done in this process (nucleusd/priv.h): the one
 * place that makes a VMM's jail (through nucleus-jailer, docs/vmm.md "The jail"), kills
 * and reaps VMMs, starts and ends nucleus-signer, and removes a jail's cgroup leaf.
 * nucleusd/monitor.c runs these in the daemon or in the separate root monitor.
 *
 * What a jail shows of DATA (the run dir, the workspace disk, an image's kernel and
 * initramfs) is opened here with the daemon's uid and gid (setfsuid) and without
 * following any symlink below DATA (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS); the
 * jailer inherits those open files, binds their paths and checks that each bound file
 * is the open one (":fd=N": same device and inode; a bind mount from an fd of another
 * mount namespace is refused by the kernel): a daemon that owns DATA cannot make the
 * monitor show a VMM, or hand to a jail's uid, a file it could not open itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nucleusd/nucleusd-internal.h"
#include "nucleusd/priv.h"
#include "nucleusd/signer.h"
#include "vmm/jail.h"

extern char **environ;

/* The fds the jailer inherits (3: its pid fd): kernel, initrd, run dir, disk. */
enum { FD_KERNEL = 4, FD_INITRD, FD_RUN, FD_DISK, FD__N };

int nd_priv__vm_req_check(const struct nd_priv_cfg *c, const struct nd_vm_req *q)
{
	size_t n = strnlen(q->id, sizeof(q->id));

	if (!c->jailer[0] || n == 0 || n == sizeof(q->id) ||
	    strnlen(q->image, sizeof(q->image)) == sizeof(q->image))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789-", q->id[i]))
			return -EINVAL;
	if (q->image[0] && strcmp(q->image, "default") != 0 && nd_image__check(q->image, NULL) < 0)
		return -EINVAL;
	if (q->vcpus < 1 || q->vcpus > 256 || q->mem_mib < 16 || q->mem_mib > (1u << 22) ||
	    q->disk > ND_DISK_PERSIST)
		return -EINVAL;
	if (c->userns ? q->uid != 0
		      : q->uid < c->uid_first || q->uid - c->uid_first >= c->uid_count)
		return -EINVAL;
	return 0;
}

/* @rel beneath @dirfd, with the daemon's rights and no symlinks: an fd or -errno. */
static int open_as_daemon(const struct nd_priv_cfg *c, int dirfd, const char *rel, int flags,
			  mode_t mode)
{
	struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
			       .mode = (flags & O_CREAT) ? mode : 0,
			       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
					  RESOLVE_NO_MAGICLINKS};
	uid_t ou = (uid_t)setfsuid(c->daemon_uid);
	gid_t og = (gid_t)setfsgid(c->daemon_gid);
	long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	int err = errno;

	setfsuid(ou);
	setfsgid(og);
	return fd < 0 ? -err : (int)fd;
}

/* A fd of ours moved to >= 100 (clear of the jailer's fixed numbers), or -errno. */
static int high(int fd)
{
	int h;

	if (fd < 0)
		return fd;
	h = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	close(fd);
	return h < 0 ? -errno : h;
}

struct jail {
	const char *argv[72];
	int n;
	char buf[20][PATH_MAX + 200];
	int nb;
	int fd[FD__N];			  /* FD_*: our fds of the files the jail shows; -1: none */
	char path[FD__N][PATH_MAX + 160]; /* ... and their paths: the jailer binds the path and
					   * checks that it is the open file (":fd=N") */
	int log;     /* the VM's vmm.log: the jailer's and the VMM's stdout/stderr */
	int pipe[2]; /* the VMM's pid from the jailer */
	long long disk_size;
};

static const char *jfmt(struct jail *a, const char *f, ...) __attribute__((format(printf, 2, 3)));

static const char *jfmt(struct jail *a, const char *f, ...)
{
	va_list ap;
	char *s = a->buf[a->nb++];

	va_start(ap, f);
	vsnprintf(s, sizeof(a->buf[0]), f, ap);
	va_end(ap);
	return s;
}

static void jopt(struct jail *a, const char *opt, const char *val)
{
	a->argv[a->n++] = opt;
	a->argv[a->n++] = val;
}

/* Opens what the jail shows; the run dir becomes the daemon's and the VM uid's group's. */
static int open_files(const struct nd_priv_cfg *c, const struct nd_vm_req *q, struct jail *a,
		      char *why, size_t len)
{
	char rel[160];
	struct stat st;
	int data, r = 0;
	gid_t group = c->userns ? c->daemon_gid : (gid_t)q->uid;

	data = open(c->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (data < 0)
		return -errno;
	snprintf(rel, sizeof(rel), "vms/%s", q->id);
	snprintf(a->path[FD_RUN], sizeof(a->path[0]), "%s/%s", c->data_dir, rel);
	a->fd[FD_RUN] = high(open_as_daemon(c, data, rel, O_RDONLY | O_DIRECTORY, 0));
	if (a->fd[FD_RUN] < 0) {
		r = a->fd[FD_RUN];
		snprintf(why, len, "the run dir %.100s/%.40s: %s", c->data_dir, rel, strerror(-r));
		goto out;
	}
	/* the daemon's (it connects to the sockets, reads the console, removes it all) and
	 * the VM uid's group's; the VMM's umask is 0 (vmm/jailer.c): its sockets and
	 * console are guarded by this directory alone */
	if ((!c->userns && fchown(a->fd[FD_RUN], c->daemon_uid, group) < 0) ||
	    fchmod(a->fd[FD_RUN], 0770) < 0) {
		r = -errno;
		snprintf(why, len, "the run dir: %s", strerror(-r));
		goto out;
	}
	a->log = high(openat(a->fd[FD_RUN], "vmm.log",
			     O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
	if (a->log >= 0 && fchown(a->log, c->daemon_uid, c->daemon_gid) < 0 && !c->userns)
		r = -errno;
	if (a->log < 0 || r < 0) {
		r = a->log < 0 ? a->log : r;
		snprintf(why, len, "vmm.log: %s", strerror(-r));
		goto out;
	}
	if (q->disk != ND_DISK_NONE) {
		if (q->disk == ND_DISK_RUN)
			snprintf(rel, sizeof(rel), "vms/%s/workspace.ext4", q->id);
		else
			snprintf(rel, sizeof(rel), "workspaces/%s.ext4", q->id);
		snprintf(a->path[FD_DISK], sizeof(a->path[0]), "%s/%s", c->data_dir, rel);
		a->fd[FD_DISK] = high(open_as_daemon(c, data, rel, O_RDWR, 0));
		r = a->fd[FD_DISK] < 0 ? a->fd[FD_DISK] : 0;
		if (r == 0 && (fstat(a->fd[FD_DISK], &st) < 0 || !S_ISREG(st.st_mode)))
			r = -EINVAL;
		/* the VM uid's, and the daemon's group's: a persisted workspace is opened
		 * again, with the daemon's rights, for the sandbox's next boot */
		if (r == 0 && !c->userns &&
		    (fchown(a->fd[FD_DISK], q->uid, c->daemon_gid) < 0 ||
		     fchmod(a->fd[FD_DISK], 0660) < 0))
			r = -errno;
		if (r < 0) {
			snprintf(why, len, "the workspace %.100s: %s", rel, strerror(-r));
			goto out;
		}
		a->disk_size = (long long)st.st_size;
	}
	if (q->image[0] && strcmp(q->image, "default") != 0) {
		snprintf(rel, sizeof(rel), "images/%s/initramfs.cpio.gz", q->image);
		snprintf(a->path[FD_INITRD], sizeof(a->path[0]), "%s/%s", c->data_dir, rel);
		a->fd[FD_INITRD] = high(open_as_daemon(c, data, rel, O_RDONLY, 0));
		if (a->fd[FD_INITRD] < 0) {
			r = a->fd[FD_INITRD];
			snprintf(why, len, "image %s: %s", q->image, strerror(-r));
			goto out;
		}
		snprintf(rel, sizeof(rel), "images/%s/vmlinux", q->image);
		snprintf(a->path[FD_KERNEL], sizeof(a->path[0]), "%s/%s", c->data_dir, rel);
		a->fd[FD_KERNEL] = high(open_as_daemon(c, data, rel, O_RDONLY, 0));
		if (a->fd[FD_KERNEL] == -ENOENT) /* optional: the default kernel */
			a->fd[FD_KERNEL] = -1;
	}
	/* the configured defaults: paths given by whoever started the daemon */
	if (a->fd[FD_KERNEL] < 0) {
		snprintf(a->path[FD_KERNEL], sizeof(a->path[0]), "%s", c->kernel);
		a->fd[FD_KERNEL] = high(open(c->kernel, O_RDONLY | O_CLOEXEC));
	}
	if (a->fd[FD_INITRD] < 0) {
		snprintf(a->path[FD_INITRD], sizeof(a->path[0]), "%s", c->initrd);
		a->fd[FD_INITRD] = high(open(c->initrd, O_RDONLY | O_CLOEXEC));
	}
	for (int i = FD_KERNEL; r == 0 && i <= FD_INITRD; i++)
		if (a->fd[i] < 0 || fstat(a->fd[i], &st) < 0 || !S_ISREG(st.st_mode)) {
			r = a->fd[i] < 0 ? a->fd[i] : -EINVAL;
			snprintf(why, len, "the guest %s: %s",
				 i == FD_KERNEL ? "kernel" : "initramfs", strerror(-r));
		}
out:
	close(data);
	return r;
}

void nd_priv__vmm_argv(const char *vmm, const char *kernel, const char *initrd, const char *vsock,
		       const char *control, const char *console, const char *disk, unsigned vcpus,
		       unsigned mem, const char **argv, char num[2][16])
{
	int n = 0;

	snprintf(num[0], 16, "%u", mem);
	snprintf(num[1], 16, "%u", vcpus);
	argv[n++] = vmm;
	argv[n++] = "--kernel";
	argv[n++] = kernel;
	argv[n++] = "--initrd";
	argv[n++] = initrd;
	argv[n++] = "--mem";
	argv[n++] = num[0];
	argv[n++] = "--vcpus";
	argv[n++] = num[1];
	argv[n++] = "--vsock";
	argv[n++] = vsock;
	argv[n++] = "--control";
	argv[n++] = control;
	argv[n++] = "--console";
	argv[n++] = console;
	if (disk) {
		argv[n++] = "--disk";
		argv[n++] = disk;
		argv[n++] = "--cmdline";
		argv[n++] = "nucleus.workspace=/dev/vda";
	}
	argv[n] = NULL;
}

/* nucleus-jailer's arguments, then "--" and the VMM's (the paths its jail shows). */
static void jail_argv(const struct nd_priv_cfg *c, const struct nd_vm_req *q, struct jail *a)
{
	char leaf[1000];
	long long fsize = a->disk_size > (256LL << 20) ? a->disk_size : 256LL << 20;

	a->argv[a->n++] = c->jailer;
	jopt(a, "--root", jfmt(a, "%s/vms/%s/root", c->data_dir, q->id));
	jopt(a, "--pid-fd", "3");
	if (c->userns) {
		a->argv[a->n++] = "--userns";
	} else {
		jopt(a, "--uid", jfmt(a, "%u", q->uid));
		jopt(a, "--gid", jfmt(a, "%u", q->uid));
	}
	jopt(a, "--bind", jfmt(a, "%s:%s", c->vmm, JAIL_VMM));
	jopt(a, "--bind", jfmt(a, "%s:%s:fd=%d", a->path[FD_KERNEL], JAIL_KERNEL, FD_KERNEL));
	jopt(a, "--bind", jfmt(a, "%s:%s:fd=%d", a->path[FD_INITRD], JAIL_INITRD, FD_INITRD));
	jopt(a, "--bind", jfmt(a, "%s:%s:rw:fd=%d", a->path[FD_RUN], JAIL_RUN, FD_RUN));
	if (access("/dev/kvm", F_OK) == 0)
		jopt(a, "--dev", "/dev/kvm:" JAIL_KVM);
	if (a->fd[FD_DISK] >= 0)
		jopt(a, "--bind", jfmt(a, "%s:%s:rw:fd=%d", a->path[FD_DISK], JAIL_DISK, FD_DISK));
	/* the disk is written within its size; the logs get 256 MiB */
	jopt(a, "--fsize", jfmt(a, "%lld", fsize));
	jopt(a, "--nofile", "1024");
	if (c->cgroups && nd__cgroup_leaf(q->id, leaf, sizeof(leaf)) == 0) {
		jopt(a, "--cgroup", jfmt(a, "%s", leaf));
		jopt(a, "--memory-max",
		     jfmt(a, "%llu", ((unsigned long long)q->mem_mib + 256) << 20));
		jopt(a, "--cpu-max", jfmt(a, "%u 100000", q->vcpus * 100000));
		jopt(a, "--pids-max", jfmt(a, "%u", q->vcpus + 64));
	}
	a->argv[a->n++] = "--";
	nd_priv__vmm_argv(JAIL_VMM, JAIL_KERNEL, JAIL_INITRD, JAIL_RUN "/vsock",
			  JAIL_RUN "/control", JAIL_RUN "/console.log",
			  a->fd[FD_DISK] >= 0 ? JAIL_DISK : NULL, q->vcpus, q->mem_mib,
			  a->argv + a->n, (char(*)[16])a->buf[a->nb]);
	a->nb++;
}

void nd_priv__log_tail(int dirfd, char *buf, size_t len)
{
	char tail[512], *line;
	ssize_t n;
	int fd = openat(dirfd, "vmm.log", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	buf[0] = '\0';
	if (fd < 0)
		return;
	if (lseek(fd, -(off_t)(sizeof(tail) - 1), SEEK_END) < 0)
		lseek(fd, 0, SEEK_SET);
	n = read(fd, tail, sizeof(tail) - 1);
	close(fd);
	if (n <= 0)
		return;
	tail[n] = '\0';
	while (n > 0 && tail[n - 1] == '\n')
		tail[--n] = '\0';
	line = strrchr(tail, '\n') ? strrchr(tail, '\n') + 1 : tail;
	snprintf(buf, len, "%.*s", (int)(len - 1), line);
}

/* Default signals, none blocked, its own session (it outlives a crashed daemon). */
static int session_attrs(posix_spawnattr_t *at, short extra)
{
	sigset_t none, def;
	int r;

	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGCHLD);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGHUP);
	r = posix_spawnattr_init(at);
	if (!r)
		r = posix_spawnattr_setflags(
			at, (short)(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | extra));
	if (!r)
		r = posix_spawnattr_setsigmask(at, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(at, &def);
	return -r;
}

int nd_priv__spawn_vmm(const struct nd_priv_cfg *c, const struct nd_vm_req *q,
		       struct nd_vm_res *res)
{
	struct jail *a = calloc(1, sizeof(*a));
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	char num[32], root[PATH_MAX + 32];
	pid_t jailer = 0;
	ssize_t n = 0, k;
	int r, st = 0;

	res->pid = 0;
	res->reason[0] = '\0';
	if (!a)
		return -ENOMEM;
	a->log = a->pipe[0] = a->pipe[1] = -1;
	for (int i = 0; i < FD__N; i++)
		a->fd[i] = -1;
	r = nd_priv__vm_req_check(c, q);
	if (r < 0) {
		snprintf(res->reason, sizeof(res->reason), "a malformed VM request");
		goto out;
	}
	r = open_files(c, q, a, res->reason, sizeof(res->reason));
	if (r < 0)
		goto out;
	/* the jail's mount point: root's, empty; the VMM never sees it */
	snprintf(root, sizeof(root), "root");
	if (mkdirat(a->fd[FD_RUN], root, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		snprintf(res->reason, sizeof(res->reason), "the jail's root: %s", strerror(-r));
		goto out;
	}
	if (pipe2(a->pipe, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	a->pipe[1] = high(a->pipe[1]); /* clear of 0-3, which the file actions set */
	if (a->pipe[1] < 0) {
		r = a->pipe[1];
		goto out;
	}
	jail_argv(c, q, a);
	r = -posix_spawn_file_actions_init(&fa);
	if (r < 0)
		goto out;
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, a->log, 1);
	posix_spawn_file_actions_adddup2(&fa, a->log, 2);
	posix_spawn_file_actions_adddup2(&fa, a->pipe[1], 3);
	for (int i = FD_KERNEL; i < FD__N; i++)
		if (a->fd[i] >= 0)
			posix_spawn_file_actions_adddup2(&fa, a->fd[i], i);
	r = session_attrs(&at, POSIX_SPAWN_SETSID);
	if (r == 0) {
		r = -posix_spawn(&jailer, c->jailer, &fa, &at, (char *const *)a->argv, environ);
		posix_spawnattr_destroy(&at);
	}
	posix_spawn_file_actions_destroy(&fa);
	close(a->pipe[1]);
	a->pipe[1] = -1;
	if (r < 0) {
		snprintf(res->reason, sizeof(res->reason), "cannot start %.120s: %s", c->jailer,
			 strerror(-r));
		goto out;
	}
	/* the VMM's pid, or EOF when the jailer failed before its fork */
	while (n < (ssize_t)sizeof(num) - 1 &&
	       ((k = read(a->pipe[0], num + n, sizeof(num) - 1 - (size_t)n)) > 0 ||
		(k < 0 && errno == EINTR)))
		n += k > 0 ? k : 0;
	num[n] = '\0';
	while (waitpid(jailer, &st, 0) < 0 && errno == EINTR)
		;
	res->pid = (int32_t)strtol(num, NULL, 10);
	if (res->pid <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char why[200];

		res->pid = 0;
		nd_priv__log_tail(a->fd[FD_RUN], why, sizeof(why));
		snprintf(res->reason, sizeof(res->reason), "the VMM's jail: %s",
			 why[0] ? why : "nucleus-jailer failed");
		r = -ECHILD;
	}
out:
	for (int i = 0; i < FD__N; i++)
		if (a->fd[i] >= 0)
			close(a->fd[i]);
	if (a->log >= 0)
		close(a->log);
	if (a->pipe[0] >= 0)
		close(a->pipe[0]);
	if (a->pipe[1] >= 0)
		close(a->pipe[1]);
	free(a);
	return r;
}

/* The uid of process @pid, or -1. */
static long long proc_uid(pid_t pid)
{
	char path[64], line[256];
	unsigned long u;
	long long ret = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %lu", &u) == 1) {
			ret = (long long)u;
			break;
		}
	if (f)
		fclose(f);
	return ret;
}

bool nd_priv__is_vmm(pid_t pid)
{
	char path[64], comm[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	return n >= 11 && strncmp(comm, "nucleus-vmm", 11) == 0;
}

int nd_priv__kill_vmm(const struct nd_priv_cfg *c, pid_t pid)
{
	long long u;

	if (pid <= 1 || !nd_priv__is_vmm(pid))
		return -ESRCH;
	u = proc_uid(pid);
	/* jailed: a uid of the range; in a user namespace or without a jail: the daemon's */
	if (!(c->uid_count && u >= (long long)c->uid_first &&
	      u - (long long)c->uid_first < (long long)c->uid_count) &&
	    u != (long long)c->daemon_uid)
		return -EPERM;
	return kill(pid, SIGKILL) < 0 ? -errno : 0;
}

int nd_priv__reap(pid_t pid, int *status)
{
	pid_t w;

	do
		w = waitpid(pid, status, WNOHANG);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	return w == pid ? 0 : -EAGAIN; /* still runs */
}

int nd_priv__cgroup_rmdir(const struct nd_priv_cfg *c, const char *id)
{
	char leaf[1000];
	int r;

	if (!c->cgroups)
		return 0;
	r = nd__cgroup_leaf(id, leaf, sizeof(leaf));
	if (r < 0)
		return r;
	return rmdir(leaf) < 0 && errno != ENOENT ? -errno : 0;
}

/* Does the kernel log line @msg say that seccomp killed @pid, a nucleus-vmm? */
static bool seccomp_line(const char *msg, pid_t pid, int *nr)
{
	char want[32];
	const char *p;

	snprintf(want, sizeof(want), " pid=%d ", (int)pid);
	if (!strstr(msg, "type=1326") || !strstr(msg, want) ||
	    !strstr(msg, " comm=\"nucleus-vmm") || !strstr(msg, " sig=31 "))
		return false;
	p = strstr(msg, " syscall=");
	*nr = p ? atoi(p + 9) : -1;
	return true;
}

int nd_priv__seccomp_death(const char *kmsg, pid_t pid, int64_t since_us, int *nr)
{
	char buf[8192], *line, *end;
	size_t have = 0;
	ssize_t n;
	int fd = open(kmsg, O_RDONLY | O_NONBLOCK | O_CLOEXEC), r = -ENOENT;

	if (fd < 0)
		return -errno;
	/* /dev/kmsg gives one record per read; a file (the tests') gives many: lines either way */
	for (;;) {
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EPIPE) /* records overwritten meanwhile: read on */
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		for (line = buf; (end = strchr(line, '\n')); line = end + 1) {
			unsigned long long ts;
			const char *msg = strchr(line, ';');

			*end = '\0';
			/* "PRI,SEQ,TS_USEC,FLAGS;MESSAGE" */
			if (msg && sscanf(line, "%*u,%*u,%llu", &ts) == 1 &&
			    (int64_t)ts >= since_us && seccomp_line(msg, pid, nr))
				r = 0;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == sizeof(buf) - 1) /* a line longer than the buffer: dropped */
			have = 0;
	}
	close(fd);
	return r;
}

/* The sanitizers' options (a sanitized build's signer reads them); nothing else. */
static void signer_env(char **env, size_t max)
{
	size_t n = 0;

	for (char **e = environ; e && *e && n + 1 < max; e++) {
		const char *eq = strchr(*e, '=');

		if (eq && eq - *e >= 11 && memcmp(eq - 11, "SAN_OPTIONS", 11) == 0)
			env[n++] = *e;
	}
	env[n] = NULL;
}

int nd_priv__signer_start(const struct nd_priv_cfg *c, int *fd, pid_t *pid)
{
	char *argv[] = {(char *)c->signer, (char *)c->key, NULL}, *env[8];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int sv[2], r;

	*fd = -1;
	*pid = 0;
	if (!c->signer[0])
		return -EINVAL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* clear of SIGNER_FD: dup2() onto itself would keep O_CLOEXEC */
	sv[1] = high(sv[1]);
	if (sv[1] < 0) {
		close(sv[0]);
		return sv[1];
	}
	signer_env(env, sizeof(env) / sizeof(env[0]));
	r = -posix_spawn_file_actions_init(&fa);
	if (r < 0)
		goto out;
	r = -posix_spawn_file_actions_adddup2(&fa, sv[1], SIGNER_FD);
	if (!r)
		r = -posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!r)
		r = -posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	/* stderr stays ours until the signer closes it (the loader's errors) */
	if (!r)
		r = -posix_spawn_file_actions_addclosefrom_np(&fa, SIGNER_FD + 1);
	/* a process group of its own: a Ctrl-C meant for the daemon spares it */
	if (!r)
		r = session_attrs(&at, POSIX_SPAWN_SETPGROUP);
	if (!r) {
		posix_spawnattr_setpgroup(&at, 0);
		r = -posix_spawn(pid, c->signer, &fa, &at, argv, env);
		posix_spawnattr_destroy(&at);
	}
	posix_spawn_file_actions_destroy(&fa);
out:
	close(sv[1]);
	if (r < 0) {
		*pid = 0;
		close(sv[0]);
		return r;
	}
	*fd = sv[0];
	return 0;
}

int nd_priv__signer_end(pid_t pid, int grace_ms, int *status)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	pid_t w;

	if (pidfd < 0)
		return -errno;
	if (grace_ms > 0) {
		struct pollfd p = {.fd = pidfd, .events = POLLIN};

		while (poll(&p, 1, grace_ms) < 0 && errno == EINTR)
			;
	}
	syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	close(pidfd);
	do
		w = waitpid(pid, status, 0);
	while (w < 0 && errno == EINTR);
	return w == pid ? 0 : -errno;
}
