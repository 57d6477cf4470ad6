// SPDX-License-Identifier: Apache-2.0
/*
 * nucleus-vmm processes of the vmm backend (internals: nucleusd/backend-vm.h): the VM
 * records, spawning (vm_proc__spawn: the one function that starts the process, in its
 * jail through the monitor: nucleusd/monitor.h, docs/vmm.md "The jail"), supervision,
 * control socket operations, terminate with grace, adopt.
 *
 * Processes: nucleus-vmm runs in its own session (it survives a daemon crash so that
 * the next daemon can re-adopt it). Every VMM is watched through a pidfd; when it ends,
 * its parent reaps it: the monitor (a jailed VMM is reparented to it, a child
 * subreaper, when its jailer exits: the daemon itself, or the root monitor of
 * nucleusd --user), or, without a jail, this process; an adopted one (after a restart)
 * is nobody's here, and its status is unknown. Signals to a VMM go through the monitor
 * as well (a jailed one runs as another uid).
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
	if (v->b->cgroups && atomic_load(&v->dead))
		nd_monitor__cgroup_rmdir(v->b->mon, v->id);
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

/* A VMM's parent, which reaps it and may signal it: the monitor (jailed) or we. */
static struct nd_monitor *parent(struct vmb *b)
{
	return b->jailer[0] ? b->mon : b->own_mon;
}

static void on_pidfd(evutil_socket_t fd, short what, void *arg)
{
	struct vmb_vm *v = arg;
	char reason[160];
	int st = 0, r;

	r = nd_monitor__reap(parent(v->b), v->pid, &st);
	if (r == -EAGAIN) { /* the pidfd says it ended: its status follows at once */
		usleep(1000);
		r = nd_monitor__reap(parent(v->b), v->pid, &st);
	}
	if (r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == JAIL_EXIT_SETUP) {
		/* the jail's set-up failed after the jailer's fork: its line is in vmm.log */
		char why[128] = "";
		int dfd = open(v->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0) {
			nd_priv__log_tail(dfd, why, sizeof(why));
			close(dfd);
		}
		snprintf(reason, sizeof(reason), "the VMM's jail: %s",
			 why[0] ? why : "nucleus-jailer failed");
	} else if (r == 0) {
		exit_text(st, reason, sizeof(reason));
	} else if (v->adopted &&
		   nd_monitor__seccomp_death(parent(v->b), v->pid, v->adopted_us, &st) == 0) {
		/* not our child: the kernel's audit record says what its status cannot */
		snprintf(reason, sizeof(reason),
			 "seccomp: nucleus-vmm (pid %d, adopted) made a forbidden system call "
			 "(SIGSYS, system call %d, from the kernel log)",
			 (int)v->pid, st);
	} else
		snprintf(reason, sizeof(reason), "nucleus-vmm (pid %d%s) exited", (int)v->pid,
			 v->adopted ? ", adopted" : "");
	vm_exited(v, reason);
}

/* Watches @v->pid (set) through a pidfd. */
static int watch(struct vmb_vm *v)
{
	int fd = (int)syscall(SYS_pidfd_open, v->pid, 0);

	if (fd < 0)
		return -errno;
	v->pidev = event_new(v->b->base, fd, EV_READ, on_pidfd, v);
	if (!v->pidev || event_add(v->pidev, NULL) < 0) {
		close(fd);
		if (v->pidev)
			event_free(v->pidev);
		v->pidev = NULL;
		return -ENOMEM;
	}
	v->pidfd = fd;
	return 0;
}

/* SIGKILL to a VMM: a jailed one (another uid's) through the monitor, ours directly. */
static void kill_vmm(struct vmb *b, pid_t pid)
{
	if (b->jailer[0])
		nd_monitor__kill_vmm(b->mon, pid);
	else
		kill(pid, SIGKILL);
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
	struct vmb_vm *v = arg;

	if (v->pid > 0)
		kill_vmm(v->b, v->pid);
}

/* Ends the VMM: control "stop" (unless @now), SIGKILL after the grace period. */
void vm_proc__terminate(struct vmb_vm *v, bool now)
{
	struct vmm_control_reply rep;

	v->stopping = true;
	if (v->pid <= 0)
		return;
	if (now || vmm__control(v->control, "stop", &rep) < 0 || !rep.ok) {
		kill_vmm(v->b, v->pid);
		return;
	}
	if (!v->killev)
		v->killev = evtimer_new(v->b->base, on_kill_timer, v);
	if (v->killev)
		event_add(v->killev, &(struct timeval){STOP_GRACE_S, 0});
	else
		kill_vmm(v->b, v->pid);
}

/* ---- boot: the process and the agent ---- */

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

/* The name of @v's image ("": the default pair), from its initramfs path. */
static void image_name(const struct vmb *b, const struct vmb_vm *v, char *buf, size_t len)
{
	size_t n = strlen(b->data_dir);
	const char *p = v->initrd + n + strlen("/images/");

	buf[0] = '\0';
	if (v->initrd[0] && strncmp(v->initrd, b->data_dir, n) == 0 &&
	    strncmp(v->initrd + n, "/images/", 8) == 0 && strchr(p, '/'))
		snprintf(buf, len, "%.*s", (int)(strchr(p, '/') - p), p);
}

/* In its jail, made by the monitor from what it is told here (nucleusd/priv.h). */
static int spawn_jailed(struct vmb *b, struct vmb_vm *v, unsigned vcpus, unsigned mem)
{
	struct nd_vm_req q = {.vcpus = vcpus, .mem_mib = mem};
	struct nd_vm_res res;
	int r;

	snprintf(q.id, sizeof(q.id), "%s", v->id);
	image_name(b, v, q.image, sizeof(q.image));
	q.disk = !v->disk[0] ? ND_DISK_NONE : v->disk_tmp ? ND_DISK_RUN : ND_DISK_PERSIST;
	if (!b->userns) {
		v->uid = free_uid(b);
		if (!v->uid)
			return -EUSERS;
		q.uid = (uint32_t)v->uid;
	}
	r = nd_monitor__spawn_vmm(b->mon, &q, &res);
	if (r < 0) {
		v->uid = 0;
		snprintf(v->reason, sizeof(v->reason), "%.*s", (int)sizeof(v->reason) - 1,
			 res.reason);
		return -ECHILD;
	}
	v->pid = res.pid;
	return 0;
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

/*
 * The one function that starts the nucleus-vmm process: in its jail, or (--no-jail) as
 * the daemon's own child, in its own session; watched through a pidfd either way.
 */
int vm_proc__spawn(struct vmb *b, struct vmb_vm *v, unsigned vcpus, unsigned mem)
{
	char num[2][16], console[PATH_MAX + 16];
	const char *argv[24];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int r;

	if (b->jailer[0]) {
		r = spawn_jailed(b, v, vcpus, mem);
	} else {
		snprintf(console, sizeof(console), "%s/console.log", v->dir);
		nd_priv__vmm_argv(b->vmm, v->kernel[0] ? v->kernel : b->kernel,
				  v->initrd[0] ? v->initrd : b->initrd, v->vsock, v->control,
				  console, v->disk[0] ? v->disk : NULL, vcpus, mem, argv, num);
		spawn_attrs(v, &fa, &at);
		r = -posix_spawn(&v->pid, b->vmm, &fa, &at, (char *const *)argv, environ);
		posix_spawn_file_actions_destroy(&fa);
		posix_spawnattr_destroy(&at);
	}
	if (r < 0) {
		v->pid = 0;
		return r;
	}
	r = watch(v);
	if (r < 0) { /* unwatched, it would never be reaped: not kept */
		kill_vmm(b, v->pid);
		snprintf(v->reason, sizeof(v->reason), "cannot watch nucleus-vmm: %s",
			 strerror(-r));
		v->pid = 0;
		return -ECHILD;
	}
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
	if (sb->vmm_pid > 0 && nd_priv__is_vmm((pid_t)sb->vmm_pid) &&
	    vmm__control(tmp.control, "state", &rep) == 0) {
		kill_vmm(b, (pid_t)sb->vmm_pid);
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

	/* alive (EPERM: a jailed one, another uid's) and a nucleus-vmm */
	if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM) || !nd_priv__is_vmm(pid))
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
	v->pid = pid;
	v->adopted = true;
	v->adopted_us = nd_clock__mono_us();
	if (watch(v) < 0) {
		v->pid = 0;
		vm_proc__unlist(v);
		return nd_err__set(e, -ESRCH, "backend_error", "cannot watch pid %d", (int)pid);
	}
	v->uid = jailed_uid(b, pid); /* not given to another VM while this one runs */
	return 0;
}
