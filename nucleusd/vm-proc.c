// SPDX-License-Identifier: Apache-2.0
/*
 * nucleus-vmm processes of the vmm backend (internals: nucleusd/backend-vm.h): the VM
 * records, spawning (vm_proc__spawn: the one function that makes the process, through
 * nucleus-jailer: docs/vmm.md "The jail"), supervision, control socket operations,
 * terminate with grace, adopt.
 *
 * Processes: nucleus-vmm runs in its own session (it survives a daemon crash so that
 * the next daemon can re-adopt it). Our own children (a jailed VMM is reparented to the
 * daemon, a child subreaper, when its jailer exits) are reaped on SIGCHLD (libevent
 * signal event); adopted ones are watched through a pidfd.
 *
 * Per sandbox: DATA/vms/ID/{vsock,control,console.log,vmm.log[,workspace.ext4]} and
 * root/, the jail's mount point (empty from the host).
 *
 * Threads: everything here runs on the loop, except vm_proc__wait_agent (a worker).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/guest.h"
#include "nucleusd/backend-vm.h"
#include "vmm/jail.h"
#include "vmm/vmm.h"

extern char **environ;

#define STOP_GRACE_S 5 /* control "stop", then SIGKILL */

static void exit_text(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "nucleus-vmm exited with status %d (%s)", WEXITSTATUS(status),
			 vmm__exit_name(WEXITSTATUS(status)));
	else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		/* its seccomp filter (vmm/seccomp.c) killed it: docs/daemon.md, "Seccomp" */
		snprintf(buf, len, "seccomp: nucleus-vmm made a forbidden system call (SIGSYS)");
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "nucleus-vmm was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "nucleus-vmm ended (status 0x%x)", (unsigned)status);
}

/* ---- VMs ---- */

static int fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));

/* snprintf that reports truncation (-ENAMETOOLONG). */
static int fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

struct vmb_vm *vm_proc__find(struct vmb *b, const char *id)
{
	for (struct vmb_vm *v = b->vms; v; v = v->next)
		if (strcmp(v->id, id) == 0)
			return v;
	return NULL;
}

static void vm_paths(struct vmb *b, struct vmb_vm *v, const char *id)
{
	fmt(v->id, sizeof(v->id), "%s", id);
	fmt(v->dir, sizeof(v->dir), "%s/vms/%s", b->data_dir, id);
	fmt(v->vsock, sizeof(v->vsock), "%s/vsock", v->dir);
	fmt(v->control, sizeof(v->control), "%s/control", v->dir);
}

static void vm_cleanup_files(struct vmb_vm *v)
{
	static const char *const names[] = {"vsock", "control", "console.log", "vmm.log"};
	char p[PATH_MAX + 32];

	/* A failed VM keeps its logs for the post-mortem. */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (v->failed && i >= 2)
			break;
		snprintf(p, sizeof(p), "%s/%s", v->dir, names[i]);
		unlink(p);
	}
	if (v->disk_tmp && v->disk[0])
		unlink(v->disk);
	snprintf(p, sizeof(p), "%s/root", v->dir); /* the jail's mount point */
	rmdir(p);
	rmdir(v->dir);
	/* The jail's cgroup leaf, once its VMM is gone (one that outlives the daemon keeps
	 * it); nothing else places or removes it. */
	if (v->b->cgroups && atomic_load(&v->dead) && nd__cgroup_leaf(v->id, p, sizeof(p)) == 0)
		rmdir(p);
}

void vm_proc__unref(struct vmb_vm *v)
{
	if (!v || --v->refs > 0)
		return;
	if (v->pidev)
		event_free(v->pidev);
	if (v->killev)
		event_free(v->killev);
	if (v->pidfd >= 0)
		close(v->pidfd);
	guest__close(v->g);
	vm_cleanup_files(v);
	free(v);
}

void vm_proc__unlist(struct vmb_vm *v)
{
	if (!v->listed)
		return;
	for (struct vmb_vm **pp = &v->b->vms; *pp; pp = &(*pp)->next) {
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	}
	v->listed = false;
	vm_proc__unref(v);
}

struct vmb_vm *vm_proc__new(struct vmb *b, const char *id)
{
	struct vmb_vm *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->b = b;
	v->refs = 1; /* the list's */
	v->pidfd = -1;
	vm_paths(b, v, id);
	if (guest__open_vsock(v->vsock, GUEST_AGENT_PORT, &v->g) < 0) {
		free(v);
		return NULL;
	}
	guest__set_timeouts(v->g, 10000, 60000);
	v->next = b->vms;
	b->vms = v;
	v->listed = true;
	return v;
}

static void vm_exited(struct vmb_vm *v, const char *reason)
{
	struct vmb *b = v->b;

	v->pid = 0;
	atomic_store(&v->dead, true);
	if (v->killev)
		event_del(v->killev);
	if (v->pidev)
		event_del(v->pidev);
	snprintf(v->reason, sizeof(v->reason), "%s", reason);
	if (!v->booting && !v->stopping) {
		v->failed = true;
		nucleusd__sandbox_failed(b->nd, v->id, reason);
	}
	vm_proc__unlist(v);
}

void vm_proc__on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct vmb *b = arg;
	struct vmb_vm *v, *next;
	char reason[160];
	int st;

	for (v = b->vms; v; v = next) {
		next = v->next;
		if (!v->child || v->pid <= 0 || waitpid(v->pid, &st, WNOHANG) != v->pid)
			continue;
		exit_text(st, reason, sizeof(reason));
		vm_exited(v, reason);
	}
}

static void on_pidfd(evutil_socket_t fd, short what, void *arg)
{
	struct vmb_vm *v = arg;
	char reason[96];

	snprintf(reason, sizeof(reason), "nucleus-vmm (pid %d, adopted) exited", (int)v->pid);
	vm_exited(v, reason);
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
	struct vmb_vm *v = arg;

	if (v->pid > 0)
		kill(v->pid, SIGKILL);
}

/* Ends the VMM: control "stop" (unless @now), SIGKILL after the grace period. */
void vm_proc__terminate(struct vmb_vm *v, bool now)
{
	struct vmm_control_reply rep;

	v->stopping = true;
	if (v->pid <= 0)
		return;
	if (now || vmm__control(v->control, "stop", &rep) < 0 || !rep.ok) {
		kill(v->pid, SIGKILL);
		return;
	}
	if (!v->killev)
		v->killev = evtimer_new(v->b->base, on_kill_timer, v);
	if (v->killev)
		event_add(v->killev, &(struct timeval){STOP_GRACE_S, 0});
	else
		kill(v->pid, SIGKILL);
}

/* ---- boot: the process and the agent ---- */

/*
 * nucleus-vmm's arguments: the host's paths, or (@jailed) the paths its jail shows it
 * (vmm/jail.h), where the same files are bound.
 */
static int vmm_argv(struct vmb *b, struct vmb_vm *v, unsigned vcpus, unsigned mem, bool jailed,
		    const char **argv, char bufs[5][PATH_MAX + 16])
{
	char *smem = bufs[0], *scpu = bufs[1], *console = bufs[2];
	int n = 0;

	snprintf(smem, 16, "%u", mem);
	snprintf(scpu, 16, "%u", vcpus);
	snprintf(console, PATH_MAX + 16, "%s/console.log", jailed ? JAIL_RUN : v->dir);
	snprintf(bufs[3], PATH_MAX + 16, "%s/vsock", JAIL_RUN);
	snprintf(bufs[4], PATH_MAX + 16, "%s/control", JAIL_RUN);
	argv[n++] = jailed ? JAIL_VMM : b->vmm;
	argv[n++] = "--kernel";
	argv[n++] = jailed ? JAIL_KERNEL : v->kernel[0] ? v->kernel : b->kernel;
	argv[n++] = "--initrd";
	argv[n++] = jailed ? JAIL_INITRD : v->initrd[0] ? v->initrd : b->initrd;
	argv[n++] = "--mem";
	argv[n++] = smem;
	argv[n++] = "--vcpus";
	argv[n++] = scpu;
	argv[n++] = "--vsock";
	argv[n++] = jailed ? bufs[3] : v->vsock;
	argv[n++] = "--control";
	argv[n++] = jailed ? bufs[4] : v->control;
	argv[n++] = "--console";
	argv[n++] = console;
	if (v->disk[0]) {
		argv[n++] = "--disk";
		argv[n++] = jailed ? JAIL_DISK : v->disk;
		argv[n++] = "--cmdline";
		argv[n++] = "nucleus.workspace=/dev/vda";
	}
	argv[n] = NULL;
	return n;
}

/* stdin /dev/null, stdout and stderr the VM's vmm.log; own session, default signals. */
static void spawn_attrs(struct vmb_vm *v, posix_spawn_file_actions_t *fa, posix_spawnattr_t *at)
{
	char log[PATH_MAX + 16];
	sigset_t none, def;

	snprintf(log, sizeof(log), "%s/vmm.log", v->dir);
	sigemptyset(&none);
	posix_spawn_file_actions_init(fa);
	posix_spawnattr_init(at);
	posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(fa, 1, 2);
	/* Own session: a VMM outlives a crashed daemon and can be re-adopted. */
	posix_spawnattr_setflags(at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					     POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(at, &none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGCHLD);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	posix_spawnattr_setsigdefault(at, &def);
}

/* ---- the jail (vmm/jailer.c; docs/vmm.md "The jail") ---- */

/* The lowest uid of the range no listed VM has; 0 when all are taken. */
static uid_t free_uid(struct vmb *b)
{
	for (unsigned i = 0; i < b->uid_count; i++) {
		uid_t u = b->uid_first + i;
		struct vmb_vm *o = b->vms;

		while (o && o->uid != u)
			o = o->next;
		if (!o)
			return u;
	}
	return 0;
}

/* The files the jailed VMM writes become its uid's (root daemon only). */
static int hand_over(struct vmb_vm *v, const char *root)
{
	if (chown(v->dir, v->uid, v->uid) < 0 || chmod(v->dir, 0700) < 0)
		return -errno;
	if (v->disk[0] && (chown(v->disk, v->uid, v->uid) < 0 || chmod(v->disk, 0600) < 0))
		return -errno;
	/* the jail's mount point stays the daemon's: the VMM never sees it */
	if (mkdir(root, 0700) < 0 && errno != EEXIST)
		return -errno;
	return chown(root, 0, 0) < 0 ? -errno : 0;
}

struct jail_args {
	const char *argv[64];
	int n;
	char buf[16][PATH_MAX + 32];
	int nb;
};

static const char *jail_fmt(struct jail_args *a, const char *f, ...)
	__attribute__((format(printf, 2, 3)));

static const char *jail_fmt(struct jail_args *a, const char *f, ...)
{
	va_list ap;
	char *s = a->buf[a->nb++];

	va_start(ap, f);
	vsnprintf(s, sizeof(a->buf[0]), f, ap);
	va_end(ap);
	return s;
}

static void jail_opt(struct jail_args *a, const char *opt, const char *val)
{
	a->argv[a->n++] = opt;
	a->argv[a->n++] = val;
}

/* nucleus-jailer's arguments for @v (the VMM's own follow "--"). */
static void jail_argv(struct vmb *b, struct vmb_vm *v, unsigned vcpus, unsigned mem,
		      const char *root, const char *cgroup, struct jail_args *a)
{
	struct stat st;
	long long disk = 0;

	a->argv[a->n++] = b->jailer;
	jail_opt(a, "--root", root);
	jail_opt(a, "--pid-fd", "3");
	if (b->userns) {
		a->argv[a->n++] = "--userns";
	} else {
		jail_opt(a, "--uid", jail_fmt(a, "%u", (unsigned)v->uid));
		jail_opt(a, "--gid", jail_fmt(a, "%u", (unsigned)v->uid));
	}
	jail_opt(a, "--bind", jail_fmt(a, "%s:%s", b->vmm, JAIL_VMM));
	jail_opt(a, "--bind",
		 jail_fmt(a, "%s:%s", v->kernel[0] ? v->kernel : b->kernel, JAIL_KERNEL));
	jail_opt(a, "--bind",
		 jail_fmt(a, "%s:%s", v->initrd[0] ? v->initrd : b->initrd, JAIL_INITRD));
	jail_opt(a, "--bind", jail_fmt(a, "%s:%s:rw", v->dir, JAIL_RUN));
	if (access("/dev/kvm", F_OK) == 0)
		jail_opt(a, "--dev", "/dev/kvm:" JAIL_KVM);
	if (v->disk[0]) {
		jail_opt(a, "--bind", jail_fmt(a, "%s:%s:rw", v->disk, JAIL_DISK));
		if (stat(v->disk, &st) == 0)
			disk = (long long)st.st_size;
	}
	/* the disk is written within its size; the logs get 256 MiB */
	jail_opt(a, "--fsize", jail_fmt(a, "%lld", disk > (256LL << 20) ? disk : 256LL << 20));
	jail_opt(a, "--nofile", "1024");
	if (cgroup) {
		jail_opt(a, "--cgroup", cgroup);
		jail_opt(a, "--memory-max", jail_fmt(a, "%llu", ((unsigned long long)mem + 256) << 20));
		jail_opt(a, "--cpu-max", jail_fmt(a, "%u 100000", vcpus * 100000));
		jail_opt(a, "--pids-max", jail_fmt(a, "%u", vcpus + 64));
	}
	a->argv[a->n++] = "--";
}

/* The last line of @v's vmm.log (where nucleus-jailer says what failed), or "". */
static void last_log_line(struct vmb_vm *v, char *buf, size_t len)
{
	char path[PATH_MAX + 16], tail[512], *line;
	ssize_t n = 0;
	int fd;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "%s/vmm.log", v->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
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
	if (strlen(line) >= len)
		line[len - 1] = '\0';
	memcpy(buf, line, strlen(line) + 1);
}

/*
 * nucleus-jailer makes the VMM's jail and forks it as PID 1 of its namespaces; it writes
 * the VMM's pid to fd 3 and exits. The daemon, a child subreaper, then is the VMM's
 * parent: supervision (SIGCHLD), the control socket and metering are as without a jail.
 */
static int spawn_jailed(struct vmb *b, struct vmb_vm *v, unsigned vcpus, unsigned mem)
{
	char bufs[5][PATH_MAX + 16], root[PATH_MAX + 16], cgroup[1000], num[32], why[200];
	struct jail_args *a = calloc(1, sizeof(*a));
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	pid_t jailer = 0;
	int pfd[2] = {-1, -1}, r, st;
	ssize_t n = 0, k;

	if (!a)
		return -ENOMEM;
	snprintf(root, sizeof(root), "%s/root", v->dir);
	r = 0;
	if (!b->userns) {
		v->uid = free_uid(b);
		r = v->uid ? hand_over(v, root) : -EUSERS;
	} else if (mkdir(root, 0700) < 0 && errno != EEXIST) {
		r = -errno;
	}
	if (r == 0 && pipe2(pfd, O_CLOEXEC) < 0)
		r = -errno;
	if (r < 0)
		goto out;
	jail_argv(b, v, vcpus, mem, root,
		  b->cgroups && nd__cgroup_leaf(v->id, cgroup, sizeof(cgroup)) == 0 ? cgroup : NULL,
		  a);
	vmm_argv(b, v, vcpus, mem, true, a->argv + a->n, bufs);
	spawn_attrs(v, &fa, &at);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 3);
	r = -posix_spawn(&jailer, b->jailer, &fa, &at, (char *const *)a->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(pfd[1]);
	pfd[1] = -1;
	if (r < 0)
		goto out;
	/* the VMM's pid, or EOF when the jailer failed before its fork */
	while (n < (ssize_t)sizeof(num) - 1 &&
	       ((k = read(pfd[0], num + n, sizeof(num) - 1 - (size_t)n)) > 0 || (k < 0 && errno == EINTR)))
		n += k > 0 ? k : 0;
	num[n] = '\0';
	while (waitpid(jailer, &st, 0) < 0 && errno == EINTR)
		;
	v->pid = (pid_t)strtol(num, NULL, 10);
	if (v->pid <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		v->pid = 0;
		last_log_line(v, why, sizeof(why));
		snprintf(v->reason, sizeof(v->reason), "the VMM's jail: %s",
			 why[0] ? why : "nucleus-jailer failed");
		r = -ECHILD;
		goto out;
	}
	v->child = true; /* reparented to us: the jailer exited */
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (r < 0 && !b->userns)
		v->uid = 0;
	free(a);
	return r;
}

/*
 * The one function that makes the nucleus-vmm process: in its jail, or (--no-jail) as
 * the daemon's own child, in its own session. Sets v->pid and v->child; supervision
 * (SIGCHLD/pidfd) and the control socket are the same either way.
 */
int vm_proc__spawn(struct vmb *b, struct vmb_vm *v, unsigned vcpus, unsigned mem)
{
	char bufs[5][PATH_MAX + 16];
	const char *argv[24];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int r;

	if (b->jailer[0])
		return spawn_jailed(b, v, vcpus, mem);
	vmm_argv(b, v, vcpus, mem, false, argv, bufs);
	spawn_attrs(v, &fa, &at);
	r = posix_spawn(&v->pid, b->vmm, &fa, &at, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r != 0) {
		v->pid = 0;
		return -r;
	}
	v->child = true;
	return 0;
}

int vm_proc__agent_client(struct vmb_vm *v, struct guest **ret)
{
	int r = guest__open_vsock(v->vsock, GUEST_AGENT_PORT, ret);

	if (r == 0)
		guest__set_timeouts(*ret, 2000, 5000);
	return r;
}

/* " (the VMM's last boot phase: P at N us)" from its control socket, or "" (a hang's where). */
static const char *boot_phase(struct vmb_vm *v, char *buf, size_t len)
{
	struct vmm_control_reply rep;

	if (vmm__control(v->control, "state", &rep) < 0 || !rep.ok || !rep.last_phase[0])
		return "";
	snprintf(buf, len, " (the VMM's last boot phase: %s, first KVM_RUN at %lld us)",
		 rep.last_phase, (long long)rep.first_run_us);
	return buf;
}

void vm_proc__wait_agent(struct vmb_job *j)
{
	char phase[128];
	uint32_t ver;
	int r = -ETIMEDOUT;

	while (vmb_job__age_ms(j) < j->b->boot_timeout_s * 1000LL) {
		if (atomic_load(&j->vm->dead) || atomic_load(&j->b->closing)) {
			r = -EHOSTDOWN;
			break;
		}
		r = guest__ping(j->own_g, &ver);
		if (r == 0)
			break;
		usleep(20000);
	}
	j->err = r;
	if (r == -ETIMEDOUT)
		snprintf(j->reason, sizeof(j->reason),
			 "the guest agent did not answer within %d s%s", j->b->boot_timeout_s,
			 boot_phase(j->vm, phase, sizeof(phase)));
	else if (r < 0)
		snprintf(j->reason, sizeof(j->reason), "the guest agent did not come up: %s",
			 strerror(-r));
}

/* ---- lifecycle ---- */

/* ---- lifecycle ---- */

/* Is @pid a nucleus-vmm? (/proc/PID/exe, tolerating a rebuilt binary's " (deleted)") */
static bool is_vmm_pid(pid_t pid)
{
	char link[64], exe[PATH_MAX];
	const char *base;
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	base = strrchr(exe, '/');
	base = base ? base + 1 : exe;
	return strncmp(base, "nucleus-vmm", 11) == 0;
}

int vm_proc__stop(struct vmb *b, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	struct vmb_vm *v = vm_proc__find(b, sb->id);
	struct vmb_vm tmp;
	struct vmm_control_reply rep;

	if (v) {
		vm_proc__terminate(v, v->booting);
		return 0;
	}
	/*
	 * Left over from an earlier daemon (e.g. recovery of a half-booted sandbox, whose
	 * pid was never recorded): its control socket in the run dir still answers.
	 */
	memset(&tmp, 0, sizeof(tmp));
	vm_paths(b, &tmp, sb->id);
	if (vmm__control(tmp.control, "stop", &rep) == 0 && rep.ok)
		return 0;
	if (sb->vmm_pid > 0 && is_vmm_pid((pid_t)sb->vmm_pid) &&
	    vmm__control(tmp.control, "state", &rep) == 0) {
		kill((pid_t)sb->vmm_pid, SIGKILL);
		return 0;
	}
	return nd_err__set(e, -ESRCH, "backend_error", "no VM runs for sandbox %s", sb->id);
}

int vm_proc__control(struct vmb *b, const struct nd_sandbox_info *sb, const char *op,
		     struct nd_err *e)
{
	struct vmb_vm *v = vm_proc__find(b, sb->id);
	struct vmm_control_reply rep;
	int r;

	if (!v || v->pid <= 0 || v->stopping)
		return nd_err__set(e, -ESRCH, "backend_error", "no VM runs for sandbox %s", sb->id);
	r = vmm__control(v->control, op, &rep);
	if (r < 0)
		return nd_err__set(e, -EHOSTDOWN, "backend_error", "VMM control %s: %s", op,
				   strerror(-r));
	if (!rep.ok)
		return nd_err__set(e, -EIO, "backend_error", "VMM refused %s: %s", op, rep.error);
	return 0;
}

/* The uid of process @pid when it is one of the jail's range, else 0. */
static uid_t jailed_uid(struct vmb *b, pid_t pid)
{
	char path[64], line[256];
	unsigned long u;
	uid_t ret = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %lu", &u) == 1) {
			if (!b->userns && u >= b->uid_first && u - b->uid_first < b->uid_count)
				ret = (uid_t)u;
			break;
		}
	if (f)
		fclose(f);
	return ret;
}

int vm_proc__adopt(struct vmb *b, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	struct vmm_control_reply rep;
	struct vmb_vm *v;
	pid_t pid = (pid_t)sb->vmm_pid;
	int fd;

	if (pid <= 0 || kill(pid, 0) < 0 || !is_vmm_pid(pid))
		return nd_err__set(e, -ESRCH, "backend_error",
				   "its nucleus-vmm (pid %d) no longer runs", (int)pid);
	v = vm_proc__new(b, sb->id);
	if (!v)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	if (vmm__control(v->control, "state", &rep) < 0 || !rep.ok) {
		vm_proc__unlist(v);
		return nd_err__set(e, -ESRCH, "backend_error",
				   "nucleus-vmm pid %d does not answer on %s", (int)pid,
				   v->control);
	}
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0)
		v->pidev = event_new(b->base, fd, EV_READ, on_pidfd, v);
	if (fd < 0 || !v->pidev || event_add(v->pidev, NULL) < 0) {
		if (fd >= 0)
			close(fd);
		vm_proc__unlist(v);
		return nd_err__set(e, -ESRCH, "backend_error", "cannot watch pid %d", (int)pid);
	}
	v->pidfd = fd;
	v->pid = pid;
	v->child = false;
	v->uid = jailed_uid(b, pid); /* not given to another VM while this one runs */
	return 0;
}
