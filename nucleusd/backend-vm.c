// SPDX-License-Identifier: Apache-2.0
/*
 * The real backend ("vmm"): one nucleus-vmm process per sandbox, the guest agent
 * reached through the VMM's vsock Unix socket, decisions by the policy engine.
 *
 * Threads: every call and every completion happens on the event-loop thread. Work that
 * blocks (making a workspace image, waiting for the agent, every guest client call)
 * runs on a worker thread per job; the worker writes the job's pointer into a pipe and
 * the loop finishes the job (joins the thread, calls the completion).
 *
 * Processes: nucleus-vmm runs in its own session (it survives a daemon crash so that
 * the next daemon can re-adopt it). Our own children are reaped on SIGCHLD (libevent
 * signal event); adopted ones are watched through a pidfd.
 *
 * Per sandbox: DATA/vms/ID/{vsock,control,console.log,vmm.log[,workspace.ext4]};
 * a persisted workspace lives in DATA/workspaces/ID.ext4.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <sodium.h>

#include "guest/guest.h"
#include "nucleusd/nucleusd-internal.h"
#include "policy/policy.h"
#include "vmm/vmm.h"

extern char **environ;

#define BOOT_WAIT_S  600	  /* bounds a hung boot only (nested KVM is slow) */
#define STOP_GRACE_S 5		  /* control "stop", then SIGKILL */
#define READ_MAX     (8u << 20)	  /* read_file result limit */
#define OUT_MAX	     (4u << 20)	  /* run: stdout/stderr kept per stream */
#define VM_PATH_MAX  108	  /* sun_path */
#define STREAM_MAX   (256u << 10) /* run, streamed: output queued for the loop */

struct vmb;

struct vmb_vm {
	struct vmb_vm *next;
	struct vmb *b;
	int refs;
	char id[20];
	char dir[PATH_MAX], vsock[VM_PATH_MAX], control[VM_PATH_MAX], disk[PATH_MAX];
	char kernel[PATH_MAX], initrd[PATH_MAX]; /* of its image */
	bool disk_tmp;				 /* remove the disk with the VM */
	pid_t pid;				 /* 0 once gone */
	bool child;				 /* our child (waitpid) or adopted (pidfd) */
	int pidfd;
	struct event *pidev, *killev;
	struct guest *g;
	bool listed, booting, stopping, failed;
	atomic_bool dead;
	char reason[192];
};

/* A streamed run's output on its way from the worker to the loop (bounded). */
struct piece {
	struct piece *next;
	int fd;
	size_t len;
	char data[];
};

struct vmb_stream {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* the loop took a piece */
	struct piece *head, **tail;
	size_t bytes;
	int efd;	   /* eventfd: the worker's "pieces queued" */
	struct event *ev;  /* on efd, or activated by resume */
	nd_chunk_fn chunk; /* the consumer (loop thread) */
	bool paused;	   /* loop only: the consumer is full */
};

struct vmb_job {
	struct vmb_job *next;
	struct vmb *b;
	struct vmb_vm *vm;
	pthread_t th;
	void (*work)(struct vmb_job *j);
	void (*finish)(struct vmb_job *j);
	nd_boot_done_fn boot_done;
	nd_tool_done_fn tool_done;
	void *token;
	struct timespec start;
	unsigned size_mib; /* boot: workspace to create (0: none) */
	char tool[32];
	json_t *args, *result;
	int err;
	char reason[256];
	struct vmb_stream *st; /* run, streamed */
};

struct vmb {
	struct event_base *base;
	struct nucleusd *nd;
	char vmm[PATH_MAX], kernel[PATH_MAX], initrd[PATH_MAX], data_dir[PATH_MAX];
	struct vmb_vm *vms;
	struct vmb_job *jobs;
	int pipe[2];
	struct event *pipeev, *chldev;
	atomic_bool closing;
};

/* ---- small helpers ---- */

static int64_t ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

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

static json_t *bytes_json(const void *data, size_t len, bool *ret_b64)
{
	json_t *s = json_stringn(data, len); /* NULL unless valid UTF-8 */
	size_t n;
	char *b;

	*ret_b64 = false;
	if (s && !memchr(data, 0, len))
		return s;
	json_decref(s);
	n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	b = malloc(n);
	if (!b)
		return NULL;
	sodium_bin2base64(b, n, data, len, sodium_base64_VARIANT_ORIGINAL);
	s = json_string(b);
	free(b);
	*ret_b64 = true;
	return s;
}

/* ---- VMs ---- */

static struct vmb_vm *vm_find(struct vmb *b, const char *id)
{
	for (struct vmb_vm *v = b->vms; v; v = v->next)
		if (strcmp(v->id, id) == 0)
			return v;
	return NULL;
}

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

static void vm_unref(struct vmb_vm *v)
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

static void vm_unlist(struct vmb_vm *v)
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
	vm_unref(v);
}

static struct vmb_vm *vm_new(struct vmb *b, const char *id)
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

/* The VMM process is gone (reaped or its pidfd fired). */
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
	vm_unlist(v);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
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
static void vm_terminate(struct vmb_vm *v, bool now)
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

/* ---- jobs ---- */

static void *job_thread(void *arg)
{
	struct vmb_job *j = arg;
	ssize_t n;

	j->work(j);
	do
		n = write(j->b->pipe[1], &j, sizeof(j));
	while (n < 0 && errno == EINTR);
	return NULL;
}

static void stream_free(struct vmb_stream *st)
{
	if (!st)
		return;
	while (st->head) {
		struct piece *p = st->head;

		st->head = p->next;
		free(p);
	}
	if (st->ev)
		event_free(st->ev);
	if (st->efd >= 0)
		close(st->efd);
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

static void job_free(struct vmb_job *j)
{
	stream_free(j->st);
	json_decref(j->args);
	json_decref(j->result);
	vm_unref(j->vm);
	free(j);
}

static void job_unlink(struct vmb_job *j)
{
	for (struct vmb_job **pp = &j->b->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
	struct vmb_job *j;
	ssize_t n;

	while ((n = read(fd, &j, sizeof(j))) == (ssize_t)sizeof(j)) {
		pthread_join(j->th, NULL);
		job_unlink(j);
		j->finish(j);
		job_free(j);
	}
}

static struct vmb_job *job_new(struct vmb *b, struct vmb_vm *vm)
{
	struct vmb_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->b = b;
	j->vm = vm;
	vm->refs++;
	clock_gettime(CLOCK_MONOTONIC, &j->start);
	return j;
}

static int job_start(struct vmb_job *j)
{
	int r = pthread_create(&j->th, NULL, job_thread, j);

	if (r != 0)
		return -r;
	j->next = j->b->jobs;
	j->b->jobs = j;
	return 0;
}

/* ---- boot ---- */

static int run_wait(const char *const *argv)
{
	pid_t pid;
	int st, r;

	r = posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ);
	if (r != 0)
		return -r;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static void work_disk(struct vmb_job *j)
{
	char size[24];
	const char *mke2fs = access("/sbin/mke2fs", X_OK) == 0 ? "/sbin/mke2fs" : "mke2fs";
	const char *argv[] = {mke2fs,		"-q",	     "-F", "-t", "ext4", "-E",
			      "root_owner=0:0", j->vm->disk, size, NULL};
	int fd;

	if (j->size_mib == 0 || access(j->vm->disk, F_OK) == 0)
		return; /* no workspace, or a persisted one */
	fd = open(j->vm->disk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)j->size_mib << 20) < 0) {
		j->err = -errno;
		snprintf(j->reason, sizeof(j->reason), "workspace image %.160s: %s", j->vm->disk,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	snprintf(size, sizeof(size), "%uM", j->size_mib);
	j->err = run_wait(argv);
	if (j->err < 0) {
		unlink(j->vm->disk);
		snprintf(j->reason, sizeof(j->reason), "mke2fs of the workspace image failed");
	}
}

static void work_ping(struct vmb_job *j)
{
	struct guest *g = NULL;
	uint32_t ver;
	int r = -ETIMEDOUT;

	if (guest__open_vsock(j->vm->vsock, GUEST_AGENT_PORT, &g) < 0) {
		j->err = -ENOMEM;
		return;
	}
	guest__set_timeouts(g, 2000, 5000);
	while (ms_since(&j->start) < BOOT_WAIT_S * 1000LL) {
		if (atomic_load(&j->vm->dead) || atomic_load(&j->b->closing)) {
			r = -EHOSTDOWN;
			break;
		}
		r = guest__ping(g, &ver);
		if (r == 0)
			break;
		usleep(20000);
	}
	guest__close(g);
	j->err = r;
	if (r == -ETIMEDOUT)
		snprintf(j->reason, sizeof(j->reason), "the guest agent did not answer within %d s",
			 BOOT_WAIT_S);
	else if (r < 0)
		snprintf(j->reason, sizeof(j->reason), "the guest agent did not come up: %s",
			 strerror(-r));
}

static void boot_fail(struct vmb_job *j)
{
	struct vmb_vm *v = j->vm;
	const char *reason = j->reason[0] ? j->reason : strerror(-j->err);

	/* If the VMM died, its exit status says more than the ping did. */
	if (atomic_load(&v->dead) && v->reason[0])
		reason = v->reason;
	v->booting = false;
	v->failed = true;
	if (v->pid > 0)
		vm_terminate(v, true);
	else
		vm_unlist(v);
	j->boot_done(j->token, j->err < 0 ? j->err : -EIO, NULL, reason);
}

static void finish_ping(struct vmb_job *j)
{
	struct nd_boot_result res;

	if (j->err < 0 || atomic_load(&j->vm->dead)) {
		if (j->err == 0)
			j->err = -EHOSTDOWN;
		boot_fail(j);
		return;
	}
	j->vm->booting = false;
	res = (struct nd_boot_result){.boot_ms = (uint32_t)ms_since(&j->start),
				      .vmm_pid = j->vm->pid};
	j->boot_done(j->token, 0, &res, NULL);
}

static int spawn_vmm(struct vmb *b, struct vmb_vm *v, unsigned vcpus, unsigned mem)
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

static void finish_disk(struct vmb_job *j)
{
	struct vmb *b = j->b;
	struct vmb_job *p;
	int r;

	if (j->err < 0 || atomic_load(&b->closing)) {
		if (j->err == 0)
			j->err = -ECANCELED;
		boot_fail(j);
		return;
	}
	r = spawn_vmm(b, j->vm, (unsigned)json_integer_value(json_object_get(j->args, "vcpus")),
		      (unsigned)json_integer_value(json_object_get(j->args, "memory_mib")));
	if (r < 0) {
		j->err = r;
		snprintf(j->reason, sizeof(j->reason), "cannot start %.160s: %s", b->vmm,
			 strerror(-r));
		boot_fail(j);
		return;
	}
	/* Second stage: wait for the agent. The job's start time carries over. */
	p = job_new(b, j->vm);
	if (!p) {
		j->err = -ENOMEM;
		boot_fail(j);
		return;
	}
	p->start = j->start;
	p->work = work_ping;
	p->finish = finish_ping;
	p->boot_done = j->boot_done;
	p->token = j->token;
	r = job_start(p);
	if (r < 0) {
		job_free(p);
		j->err = r;
		boot_fail(j);
	}
}

static bool image_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 ||
	    !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789._-", name[i]))
			return false;
	return true;
}

/*
 * The image's kernel and initramfs. "default" (or none) is the daemon's own pair; any
 * other name is DATA_DIR/images/NAME/ with initramfs.cpio.gz and, optionally, vmlinux
 * (else the default kernel).
 */
static int image_resolve(struct vmb *b, const char *image, char kernel[PATH_MAX],
			 char initrd[PATH_MAX], struct nd_err *e)
{
	char dir[PATH_MAX];

	kernel[0] = initrd[0] = '\0';
	if (!image || strcmp(image, "default") == 0)
		return 0;
	if (!image_name_ok(image))
		return nd_err__set(e, -EINVAL, "bad_image",
				   "image names are 1-64 of [a-z0-9._-], starting with a letter or "
				   "digit");
	if ((size_t)snprintf(dir, sizeof(dir), "%s/images/%s", b->data_dir, image) >= sizeof(dir))
		return nd_err__set(e, -ENAMETOOLONG, "bad_image", "image path too long");
	snprintf(initrd, PATH_MAX, "%.*s/initramfs.cpio.gz", PATH_MAX - 32, dir);
	if (access(initrd, R_OK) < 0) {
		initrd[0] = '\0';
		return nd_err__set(e, -EINVAL, "bad_image",
				   "unknown image '%s' (no readable %s/initramfs.cpio.gz)", image,
				   dir);
	}
	snprintf(kernel, PATH_MAX, "%.*s/vmlinux", PATH_MAX - 32, dir);
	if (access(kernel, R_OK) < 0)
		kernel[0] = '\0';
	return 0;
}

static int vmb_spec_check(void *ctx, json_t *spec, struct nd_err *e)
{
	char kernel[PATH_MAX], initrd[PATH_MAX];

	return image_resolve(ctx, json_string_value(json_object_get(spec, "image")), kernel, initrd,
			     e);
}

static int vmb_boot(void *ctx, const struct nd_sandbox_info *sb, nd_boot_done_fn done, void *token,
		    struct nd_err *e)
{
	struct vmb *b = ctx;
	const char *image = json_string_value(json_object_get(sb->spec, "image"));
	json_t *ws = json_object_get(sb->spec, "workspace");
	char kernel[PATH_MAX], initrd[PATH_MAX];
	struct vmb_vm *v;
	struct vmb_job *j;
	int r;

	r = image_resolve(b, image, kernel, initrd, e);
	if (r < 0)
		return r;
	if (ws && json_integer_value(json_object_get(ws, "size_mib")) < 8)
		return nd_err__set(e, -EINVAL, "bad_workspace",
				   "workspace.size_mib must be at least 8");
	if (vm_find(b, sb->id))
		return nd_err__set(e, -EEXIST, "backend_error", "VM %s exists", sb->id);
	if (strlen(b->data_dir) + strlen(sb->id) + 16 >= VM_PATH_MAX)
		return nd_err__set(e, -ENAMETOOLONG, "backend_error",
				   "data dir path too long for the VM's sockets");
	v = vm_new(b, sb->id);
	if (!v)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	memcpy(v->kernel, kernel, sizeof(v->kernel));
	memcpy(v->initrd, initrd, sizeof(v->initrd));
	if (mkdir(v->dir, 0700) < 0 && errno != EEXIST) {
		r = nd_err__set(e, -errno, "backend_error", "mkdir %s: %s", v->dir,
				strerror(errno));
		vm_unlist(v);
		return r;
	}
	unlink(v->vsock);
	unlink(v->control);
	if (ws) {
		bool persist = json_is_true(json_object_get(ws, "persist"));

		if (persist)
			fmt(v->disk, sizeof(v->disk), "%s/workspaces/%s.ext4", b->data_dir, sb->id);
		else
			fmt(v->disk, sizeof(v->disk), "%s/workspace.ext4", v->dir);
		v->disk_tmp = !persist;
	}
	j = job_new(b, v);
	if (!j) {
		vm_unlist(v);
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	}
	j->size_mib = ws ? (unsigned)json_integer_value(json_object_get(ws, "size_mib")) : 0;
	j->args = json_pack("{sI sI}", "vcpus", (json_int_t)(sb->vcpus ? sb->vcpus : 1),
			    "memory_mib", (json_int_t)(sb->memory_mib ? sb->memory_mib : 256));
	j->work = work_disk;
	j->finish = finish_disk;
	j->boot_done = done;
	j->token = token;
	v->booting = true;
	r = j->args ? job_start(j) : -ENOMEM;
	if (r < 0) {
		job_free(j);
		vm_unlist(v);
		return nd_err__set(e, r, "internal", "cannot start the boot: %s", strerror(-r));
	}
	return 0;
}

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

static int vmb_stop(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	struct vmb *b = ctx;
	struct vmb_vm *v = vm_find(b, sb->id);
	struct vmb_vm tmp;
	struct vmm_control_reply rep;

	if (v) {
		vm_terminate(v, v->booting);
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

static int control_op(struct vmb *b, const struct nd_sandbox_info *sb, const char *op,
		      struct nd_err *e)
{
	struct vmb_vm *v = vm_find(b, sb->id);
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

static int vmb_pause(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	return control_op(ctx, sb, "pause", e);
}

static int vmb_resume(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	return control_op(ctx, sb, "resume", e);
}

static int vmb_adopt(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	struct vmb *b = ctx;
	struct vmm_control_reply rep;
	struct vmb_vm *v;
	pid_t pid = (pid_t)sb->vmm_pid;
	int fd;

	if (pid <= 0 || kill(pid, 0) < 0 || !is_vmm_pid(pid))
		return nd_err__set(e, -ESRCH, "backend_error",
				   "its nucleus-vmm (pid %d) no longer runs", (int)pid);
	v = vm_new(b, sb->id);
	if (!v)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	if (vmm__control(v->control, "state", &rep) < 0 || !rep.ok) {
		vm_unlist(v);
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
		vm_unlist(v);
		return nd_err__set(e, -ESRCH, "backend_error", "cannot watch pid %d", (int)pid);
	}
	v->pidfd = fd;
	v->pid = pid;
	v->child = false;
	return 0;
}

/* ---- tools ---- */

static void work_read(struct vmb_job *j)
{
	const char *path = json_string_value(json_object_get(j->args, "path"));
	void *data = NULL;
	size_t len = 0;
	bool b64;
	json_t *c;

	j->err = guest__read_file_all(j->vm->g, path, READ_MAX, &data, &len);
	if (j->err < 0) {
		snprintf(j->reason, sizeof(j->reason), "%s: %s", path, strerror(-j->err));
		return;
	}
	c = bytes_json(data, len, &b64);
	free(data);
	j->result = c ? json_pack("{ss sI so ss}", "path", path, "size", (json_int_t)len, "content",
				  c, "encoding", b64 ? "base64" : "utf-8")
		      : NULL;
	if (!j->result)
		j->err = -ENOMEM;
}

static void work_write(struct vmb_job *j)
{
	const char *path = json_string_value(json_object_get(j->args, "path"));
	const char *content = json_string_value(json_object_get(j->args, "content"));
	const char *enc = json_string_value(json_object_get(j->args, "encoding"));
	json_t *m = json_object_get(j->args, "mode");
	size_t len = json_string_length(json_object_get(j->args, "content")), n = 0;
	unsigned char *bin = NULL;
	const void *data = content;

	if (enc && strcmp(enc, "base64") == 0) {
		bin = malloc(len + 1);
		if (!bin || sodium_base642bin(bin, len + 1, content, len, " \n\r", &n, NULL,
					      sodium_base64_VARIANT_ORIGINAL) < 0) {
			j->err = bin ? -EINVAL : -ENOMEM;
			snprintf(j->reason, sizeof(j->reason), "content is not valid base64");
			free(bin);
			return;
		}
		data = bin;
		len = n;
	}
	j->err = guest__write_file(j->vm->g, path, m ? (uint32_t)json_integer_value(m) : 0644, data,
				   len);
	free(bin);
	if (j->err < 0) {
		snprintf(j->reason, sizeof(j->reason), "%s: %s", path, strerror(-j->err));
		return;
	}
	j->result = json_pack("{ss sI}", "path", path, "size", (json_int_t)len);
	if (!j->result)
		j->err = -ENOMEM;
}

static const char *ftype_name(uint32_t t)
{
	static const char *const names[] = {"unknown", "file",	"dir",	"symlink",
					    "char",    "block", "fifo", "socket"};

	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

static int list_cb(void *opaque, const char *name, const struct guest_stat *st)
{
	json_t *o = json_pack("{ss ss sI sI sI}", "name", name, "type", ftype_name(st->ftype),
			      "mode", (json_int_t)st->mode, "size", (json_int_t)st->size,
			      "mtime_ns", (json_int_t)st->mtime_ns);

	if (!o || json_array_append_new(opaque, o) < 0)
		return -ENOMEM;
	return 0;
}

static void work_list(struct vmb_job *j)
{
	const char *path = json_string_value(json_object_get(j->args, "path"));
	json_t *arr = json_array();
	int r;

	r = arr ? guest__list(j->vm->g, path, list_cb, arr) : -ENOMEM;
	if (r < 0) {
		json_decref(arr);
		j->err = r;
		snprintf(j->reason, sizeof(j->reason), "%s: %s", path, strerror(-r));
		return;
	}
	j->result = json_pack("{ss so}", "path", path, "entries", arr);
	if (!j->result)
		j->err = -ENOMEM;
}

struct outbuf {
	char *data;
	size_t len;
	bool truncated;
};

static int out_add(struct outbuf *o, const void *data, size_t len)
{
	size_t n = len;
	char *p;

	if (o->len + n > OUT_MAX) {
		n = OUT_MAX - o->len;
		o->truncated = true;
	}
	if (n == 0)
		return 0;
	p = realloc(o->data, o->len + n);
	if (!p)
		return -ENOMEM;
	memcpy(p + o->len, data, n);
	o->data = p;
	o->len += n;
	return 0;
}

static int run_out(void *opaque, const void *data, size_t len)
{
	return out_add(&((struct outbuf *)opaque)[0], data, len);
}

static int run_err(void *opaque, const void *data, size_t len)
{
	return out_add(&((struct outbuf *)opaque)[1], data, len);
}

static int str_array(json_t *arr, const char ***ret)
{
	size_t n = json_array_size(arr), i;
	const char **v = calloc(n + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		v[i] = json_string_value(json_array_get(arr, i));
	*ret = v;
	return 0;
}

static int env_array(json_t *env, char ***ret)
{
	size_t n = json_object_size(env), i = 0;
	char **v = calloc(n + 2, sizeof(*v));
	const char *k;
	json_t *val;

	if (!v)
		return -ENOMEM;
	if (!json_object_get(env, "PATH"))
		v[i++] = strdup("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
	json_object_foreach(env, k, val)
	{
		if (asprintf(&v[i], "%s=%s", k, json_string_value(val)) < 0)
			v[i] = NULL;
		i++;
	}
	*ret = v;
	return 0;
}

static void run_result(struct vmb_job *j, const struct guest_run_result *res, struct outbuf out[2])
{
	bool b64o, b64e;
	json_t *so = bytes_json(out[0].data ? out[0].data : "", out[0].len, &b64o);
	json_t *se = bytes_json(out[1].data ? out[1].data : "", out[1].len, &b64e);

	j->result = so && se ? json_pack("{si si sb so so sb sb}", "exit_code", res->exit_code,
					 "signal", res->signal, "timed_out", res->timed_out,
					 "stdout", so, "stderr", se, "stdout_truncated",
					 out[0].truncated, "stderr_truncated", out[1].truncated)
			     : NULL;
	if (!j->result) {
		j->err = -ENOMEM;
		return;
	}
	if (b64o)
		json_object_set_new(j->result, "stdout_encoding", json_string("base64"));
	if (b64e)
		json_object_set_new(j->result, "stderr_encoding", json_string("base64"));
}

/* Worker: queues a piece for the loop, waiting while the queue is full. */
static int stream_put(struct vmb_job *j, int fd, const void *data, size_t len)
{
	struct vmb_stream *st = j->st;
	struct piece *p = malloc(sizeof(*p) + len);
	uint64_t one = 1;
	ssize_t n;

	if (!p)
		return -ENOMEM;
	p->next = NULL;
	p->fd = fd;
	p->len = len;
	memcpy(p->data, data, len);
	pthread_mutex_lock(&st->lock);
	while (st->bytes > 0 && st->bytes + len > STREAM_MAX && !atomic_load(&j->b->closing)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&st->cond, &st->lock, &ts);
	}
	if (atomic_load(&j->b->closing)) {
		pthread_mutex_unlock(&st->lock);
		free(p);
		return -ECANCELED;
	}
	*st->tail = p;
	st->tail = &p->next;
	st->bytes += len;
	pthread_mutex_unlock(&st->lock);
	do
		n = write(st->efd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
	return 0;
}

static int stream_out(void *opaque, const void *data, size_t len)
{
	return stream_put(opaque, 1, data, len);
}

static int stream_err(void *opaque, const void *data, size_t len)
{
	return stream_put(opaque, 2, data, len);
}

/* Loop: hands queued pieces to the consumer until it is full (@all: until empty). */
static void stream_deliver(struct vmb_job *j, bool all)
{
	struct vmb_stream *st = j->st;
	struct piece *p;

	while (all || !st->paused) {
		pthread_mutex_lock(&st->lock);
		p = st->head;
		if (p) {
			st->head = p->next;
			if (!st->head)
				st->tail = &st->head;
			st->bytes -= p->len;
			pthread_cond_signal(&st->cond);
		}
		pthread_mutex_unlock(&st->lock);
		if (!p)
			break;
		if (st->chunk(j->token, p->fd, p->data, p->len) == ND_STREAM_FULL)
			st->paused = true;
		free(p);
	}
}

static void on_stream(evutil_socket_t fd, short what, void *arg)
{
	struct vmb_job *j = arg;
	uint64_t v;

	if (what & EV_READ)
		while (read(j->st->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			;
	stream_deliver(j, false);
}

static void work_run(struct vmb_job *j)
{
	struct guest_run_cbs cbs = {.out = run_out, .err = run_err};
	struct guest_run_result res = {0};
	struct guest_run_req req = {0};
	struct outbuf out[2] = {{0}};
	json_t *env = json_object_get(j->args, "env");
	const char *in = json_string_value(json_object_get(j->args, "stdin"));
	const char **argv = NULL;
	char **envp = NULL;

	j->err = str_array(json_object_get(j->args, "argv"), &argv);
	if (j->err == 0 && env)
		j->err = env_array(env, &envp);
	if (j->err < 0)
		goto out;
	req.argv = argv;
	req.envp = (const char *const *)envp;
	req.cwd = json_string_value(json_object_get(j->args, "cwd"));
	req.stdin_data = in;
	req.stdin_len = in ? strlen(in) : 0;
	req.timeout_ms = (uint32_t)json_integer_value(json_object_get(j->args, "timeout_ms"));
	if (j->st) {
		cbs = (struct guest_run_cbs){.out = stream_out, .err = stream_err};
		j->err = guest__run(j->vm->g, &req, &cbs, j, &res);
	} else {
		j->err = guest__run(j->vm->g, &req, &cbs, out, &res);
	}
	if (j->err < 0)
		snprintf(j->reason, sizeof(j->reason), "%s: %s", argv[0], strerror(-j->err));
	else if (j->st)
		j->result = json_pack("{si si sb}", "exit_code", res.exit_code, "signal",
				      res.signal, "timed_out", res.timed_out);
	else
		run_result(j, &res, out);
out:
	for (size_t i = 0; envp && envp[i]; i++)
		free(envp[i]);
	free(envp);
	free(argv);
	free(out[0].data);
	free(out[1].data);
}

static void finish_tool(struct vmb_job *j)
{
	if (j->err == 0 && atomic_load(&j->vm->dead) && !j->result)
		j->err = -EHOSTDOWN;
	if (j->err < 0 && !j->reason[0])
		snprintf(j->reason, sizeof(j->reason), "%s", strerror(-j->err));
	if (j->err < 0 && atomic_load(&j->vm->dead))
		snprintf(j->reason, sizeof(j->reason), "the VM died: %s",
			 j->vm->reason[0] ? j->vm->reason : "nucleus-vmm exited");
	j->tool_done(j->token, j->err, j->err < 0 ? NULL : j->result,
		     j->err < 0 ? j->reason : NULL);
}

/* A streamed run: what is still queued goes out before the completion. */
static void finish_stream(struct vmb_job *j)
{
	stream_deliver(j, true);
	if (j->err == 0 && !j->result)
		j->err = -ENOMEM;
	finish_tool(j);
}

static struct vmb_stream *stream_new(struct vmb *b, struct vmb_job *j, nd_chunk_fn chunk)
{
	struct vmb_stream *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	st->tail = &st->head;
	st->chunk = chunk;
	st->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	st->ev = st->efd >= 0 ? event_new(b->base, st->efd, EV_READ | EV_PERSIST, on_stream, j)
			      : NULL;
	if (!st->ev || event_add(st->ev, NULL) < 0) {
		stream_free(st);
		return NULL;
	}
	return st;
}

static bool is_str(json_t *args, const char *key, bool required)
{
	json_t *v = json_object_get(args, key);

	return v ? json_is_string(v) : !required;
}

/* Shape checks the policy engine does not make (it ignores content, mode, cwd...). */
static int check_args(const char *tool, json_t *args, struct nd_err *e)
{
	json_t *v;
	size_t i;

	if (!is_str(args, "path", strcmp(tool, "run") != 0))
		return nd_err__set(e, -EINVAL, "bad_args", "%s: 'path' must be a string", tool);
	if (strcmp(tool, "write_file") == 0) {
		v = json_object_get(args, "mode");
		if (!is_str(args, "content", true) || !is_str(args, "encoding", false) ||
		    (v && (!json_is_integer(v) || json_integer_value(v) < 0 ||
			   json_integer_value(v) > 07777)))
			return nd_err__set(
				e, -EINVAL, "bad_args",
				"write_file: needs 'content' (string), optional "
				"'encoding' (\"utf-8\"|\"base64\") and 'mode' (0..4095)");
	}
	if (strcmp(tool, "run") == 0) {
		v = json_object_get(args, "argv");
		if (!json_is_array(v) || json_array_size(v) == 0)
			return nd_err__set(e, -EINVAL, "bad_args",
					   "run: 'argv' must be a "
					   "non-empty array of strings");
		for (i = 0; i < json_array_size(v); i++)
			if (!json_is_string(json_array_get(v, i)))
				return nd_err__set(e, -EINVAL, "bad_args",
						   "run: argv[%zu] is not a string", i);
		v = json_object_get(args, "timeout_ms");
		if (!is_str(args, "cwd", false) || !is_str(args, "stdin", false) ||
		    (v && (!json_is_integer(v) || json_integer_value(v) < 0 ||
			   json_integer_value(v) > UINT32_MAX)))
			return nd_err__set(e, -EINVAL, "bad_args",
					   "run: 'cwd', 'stdin' must be strings, 'timeout_ms' "
					   "a non-negative integer");
		/* env: checked with the sandbox's spec.env by nd_env__merge() */
	}
	return 0;
}

static int tool_start(struct vmb *b, const struct nd_sandbox_info *sb, const char *tool,
		      json_t *args, nd_chunk_fn chunk, nd_tool_done_fn done, void *token,
		      struct nd_err *e);

static int vmb_tool(void *ctx, const struct nd_sandbox_info *sb, const char *tool, json_t *args,
		    nd_tool_done_fn done, void *token, struct nd_err *e)
{
	return tool_start(ctx, sb, tool, args, NULL, done, token, e);
}

static int vmb_tool_stream(void *ctx, const struct nd_sandbox_info *sb, const char *tool,
			   json_t *args, nd_chunk_fn chunk, nd_tool_done_fn done, void *token,
			   struct nd_err *e)
{
	if (strcmp(tool, "run") != 0)
		return nd_err__set(e, -EINVAL, "bad_value", "only 'run' can stream its output");
	return tool_start(ctx, sb, tool, args, chunk, done, token, e);
}

static void vmb_stream_resume(void *ctx, void *token)
{
	struct vmb *b = ctx;

	for (struct vmb_job *j = b->jobs; j; j = j->next) {
		if (j->st && j->token == token && j->st->paused) {
			j->st->paused = false;
			event_active(j->st->ev, 0, 1); /* delivers from the loop */
		}
	}
}

static int tool_start(struct vmb *b, const struct nd_sandbox_info *sb, const char *tool,
		      json_t *args, nd_chunk_fn chunk, nd_tool_done_fn done, void *token,
		      struct nd_err *e)
{
	struct vmb_vm *v = vm_find(b, sb->id);
	void (*work)(struct vmb_job *) = NULL;
	struct vmb_job *j;
	int r;

	if (strcmp(tool, "read_file") == 0)
		work = work_read;
	else if (strcmp(tool, "write_file") == 0)
		work = work_write;
	else if (strcmp(tool, "list") == 0)
		work = work_list;
	else if (strcmp(tool, "run") == 0)
		work = work_run;
	else if (policy__op_from_name(tool) >= 0)
		return nd_err__set(e, -ENOSYS, "not_implemented",
				   "'%s' is allowed by the policy, but this backend cannot "
				   "perform it (the guest has no such tool)",
				   tool);
	else
		return nd_err__set(e, -ENOENT, "unknown_tool", "no tool '%s'", tool);
	r = check_args(tool, args, e);
	if (r < 0)
		return r;
	if (!v || v->pid <= 0 || v->stopping || atomic_load(&v->dead))
		return nd_err__set(e, -EHOSTDOWN, "backend_error", "no VM runs for sandbox %s",
				   sb->id);
	j = job_new(b, v);
	if (!j)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	snprintf(j->tool, sizeof(j->tool), "%s", tool);
	j->args = args ? json_deep_copy(args) : json_object();
	if (j->args && work == work_run) {
		/* Every run gets the sandbox's spec.env, the call's env on top. */
		json_t *env = NULL;

		r = nd_env__merge(sb->spec, args, &env, e);
		if (r < 0) {
			job_free(j);
			return r;
		}
		json_object_del(j->args, "env");
		if (env)
			json_object_set_new(j->args, "env", env);
	}
	j->work = work;
	j->finish = chunk ? finish_stream : finish_tool;
	j->tool_done = done;
	j->token = token;
	r = j->args ? 0 : -ENOMEM;
	if (r == 0 && chunk) {
		j->st = stream_new(b, j, chunk);
		r = j->st ? 0 : -ENOMEM;
	}
	if (r == 0)
		r = job_start(j);
	if (r < 0) {
		job_free(j);
		return nd_err__set(e, r, "internal", "cannot start the tool call: %s",
				   strerror(-r));
	}
	return 0;
}

/* ---- setup ---- */

static void vmb_attach(void *ctx, struct event_base *base, struct nucleusd *nd)
{
	struct vmb *b = ctx;

	b->base = base;
	b->nd = nd;
	b->pipeev = event_new(base, b->pipe[0], EV_READ | EV_PERSIST, on_pipe, b);
	b->chldev = evsignal_new(base, SIGCHLD, on_sigchld, b);
	if (b->pipeev)
		event_add(b->pipeev, NULL);
	if (b->chldev)
		event_add(b->chldev, NULL);
}

static void vmb_free(void *ctx)
{
	struct vmb *b = ctx;
	struct vmb_vm *v, *next;
	struct vmb_job *j;
	int tries;

	if (!b)
		return;
	atomic_store(&b->closing, true);
	/*
	 * VMMs keep running (a restarted daemon re-adopts them); jobs still waiting on a
	 * guest get up to 2 s, then the backend is left allocated for them (the process
	 * is exiting) rather than freed under their feet. Completions are dropped.
	 */
	for (tries = 0; b->jobs && tries < 200; tries++) {
		while (read(b->pipe[0], &j, sizeof(j)) == (ssize_t)sizeof(j)) {
			pthread_join(j->th, NULL);
			job_unlink(j);
			job_free(j);
		}
		if (b->jobs)
			usleep(10000);
	}
	if (b->pipeev)
		event_free(b->pipeev);
	if (b->chldev)
		event_free(b->chldev);
	b->pipeev = b->chldev = NULL;
	if (b->jobs)
		return;
	for (v = b->vms; v; v = next) {
		next = v->next;
		v->failed = true; /* keep sockets and logs: the VM still runs */
		v->disk_tmp = false;
		v->listed = false;
		v->dir[0] = '\0';
		vm_unref(v);
	}
	close(b->pipe[0]);
	close(b->pipe[1]);
	free(b);
}

static int check_file(const char *what, const char *path, struct nd_err *e)
{
	if (!path || !*path)
		return nd_err__set(e, -EINVAL, "config", "no %s configured", what);
	if (access(path, R_OK) < 0)
		return nd_err__set(e, -errno, "config", "%s %s: %s", what, path, strerror(errno));
	return 0;
}

int nd_vm_backend__new(const struct nd_vm_config *cfg, struct nd_backend **ret, struct nd_err *e)
{
	struct nd_backend *be = NULL;
	struct vmb *b = NULL;
	char dir[PATH_MAX + 16];
	int r;

	r = check_file("nucleus-vmm", cfg->vmm, e);
	if (r == 0)
		r = check_file("guest kernel", cfg->kernel, e);
	if (r == 0)
		r = check_file("guest initramfs", cfg->initrd, e);
	if (r < 0)
		return r;
	be = calloc(1, sizeof(*be));
	b = calloc(1, sizeof(*b));
	if (!be || !b || pipe2(b->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(be);
		free(b);
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	}
	snprintf(b->vmm, sizeof(b->vmm), "%s", cfg->vmm);
	snprintf(b->kernel, sizeof(b->kernel), "%s", cfg->kernel);
	snprintf(b->initrd, sizeof(b->initrd), "%s", cfg->initrd);
	snprintf(b->data_dir, sizeof(b->data_dir), "%s", cfg->data_dir);
	/* The worker writes one pointer at a time: blocking is fine for it. */
	fcntl(b->pipe[1], F_SETFL, 0);
	snprintf(dir, sizeof(dir), "%s/vms", b->data_dir);
	if (r == 0 && mkdir(dir, 0700) < 0 && errno != EEXIST)
		r = -errno;
	snprintf(dir, sizeof(dir), "%s/workspaces", b->data_dir);
	if (r == 0 && mkdir(dir, 0700) < 0 && errno != EEXIST)
		r = -errno;
	if (r < 0) {
		nd_err__set(e, r, "config", "cannot set up %s: %s", cfg->data_dir, strerror(-r));
		vmb_free(b);
		free(be);
		return r;
	}
	be->name = "vmm";
	be->real = true;
	be->ctx = b;
	be->attach = vmb_attach;
	be->boot = vmb_boot;
	be->stop = vmb_stop;
	be->pause = vmb_pause;
	be->resume = vmb_resume;
	be->adopt = vmb_adopt;
	be->tool = vmb_tool;
	be->tool_stream = vmb_tool_stream;
	be->stream_resume = vmb_stream_resume;
	be->spec_check = vmb_spec_check;
	be->free = vmb_free;
	*ret = be;
	return 0;
}
