// SPDX-License-Identifier: Apache-2.0
/*
 * nucleus-vmm processes of the vmm backend (internals: nucleusd/backend-vm.h): the VM
 * records, spawning (vm_proc__spawn: the one function that makes the process, where a
 * jail plugs in), supervision, control socket operations, terminate with grace, adopt.
 *
 * Processes: nucleus-vmm runs in its own session (it survives a daemon crash so that
 * the next daemon can re-adopt it). Our own children are reaped on SIGCHLD (libevent
 * signal event); adopted ones are watched through a pidfd.
 *
 * Per sandbox: DATA/vms/ID/{vsock,control,console.log,vmm.log[,workspace.ext4]}.
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/guest.h"
#include "nucleusd/backend-vm.h"
#include "vmm/vmm.h"

extern char **environ;

#define STOP_GRACE_S 5 /* control "stop", then SIGKILL */

static void exit_text(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "nucleus-vmm exited with status %d (%s)", WEXITSTATUS(status),
			 vmm__exit_name(WEXITSTATUS(status)));
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
	rmdir(v->dir);
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
 * The seam for a jail: everything that makes the nucleus-vmm process is here (argv,
 * file actions, session, signal state). A jail (namespaces, seccomp, cgroup, a
 * dedicated uid) replaces the posix_spawn below with its own launcher and still sets
 * v->pid and v->child; supervision (SIGCHLD/pidfd) and the control socket stay as is.
 */
int vm_proc__spawn(struct vmb *b, struct vmb_vm *v, unsigned vcpus, unsigned mem)
{
	char smem[16], scpu[16], console[PATH_MAX + 16], log[PATH_MAX + 16], disk[PATH_MAX + 8];
	const char *argv[24];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	int n = 0, r;

	snprintf(smem, sizeof(smem), "%u", mem);
	snprintf(scpu, sizeof(scpu), "%u", vcpus);
	snprintf(console, sizeof(console), "%s/console.log", v->dir);
	snprintf(log, sizeof(log), "%s/vmm.log", v->dir);
	argv[n++] = b->vmm;
	argv[n++] = "--kernel";
	argv[n++] = v->kernel[0] ? v->kernel : b->kernel;
	argv[n++] = "--initrd";
	argv[n++] = v->initrd[0] ? v->initrd : b->initrd;
	argv[n++] = "--mem";
	argv[n++] = smem;
	argv[n++] = "--vcpus";
	argv[n++] = scpu;
	argv[n++] = "--vsock";
	argv[n++] = v->vsock;
	argv[n++] = "--control";
	argv[n++] = v->control;
	argv[n++] = "--console";
	argv[n++] = console;
	if (v->disk[0]) {
		snprintf(disk, sizeof(disk), "%s", v->disk);
		argv[n++] = "--disk";
		argv[n++] = disk;
		argv[n++] = "--cmdline";
		argv[n++] = "nucleus.workspace=/dev/vda";
	}
	argv[n] = NULL;

	sigemptyset(&none);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	/* Own session: a VMM outlives a crashed daemon and can be re-adopted. */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&at, &none);
	{
		sigset_t def;

		sigemptyset(&def);
		sigaddset(&def, SIGPIPE);
		sigaddset(&def, SIGCHLD);
		sigaddset(&def, SIGTERM);
		sigaddset(&def, SIGINT);
		posix_spawnattr_setsigdefault(&at, &def);
	}
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
	return 0;
}
