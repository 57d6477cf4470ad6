/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backend-vm.h - the internals of the real backend ("vmm"), shared by its files; its face
 * is nd_vm_backend__new() in nucleusd/nucleusd.h. One file per job:
 *
 *   backend-vm.c  the ops table and glue: boot stages, setup/free
 *   vm-jobs.c     blocking jobs on the bounded pool (nucleusd/pool.h), finished on the loop
 *   vm-proc.c     nucleus-vmm processes: spawn (in its jail, through the monitor:
 *                 nucleusd/monitor.h), pidfd watch, control socket ops, terminate with
 *                 grace, adopt
 *   images.c      image names, image and kernel resolution, workspace disks
 *   vm-tools.c    the guest side of each catalogue tool (nucleusd/tools.c): read_file,
 *                 write_file, list, run (whole or streamed)
 *   pool.c        the bounded worker pool the jobs run on (nucleusd/pool.h)
 *
 * Threads. The event-loop thread ("loop") makes every seam call and every completion.
 * Blocking work (mke2fs, waiting for the agent, every guest client call) runs as a job
 * on the pool's workers ("worker"); the pool hands each finished job back to the loop.
 * Ownership, field by field, is written at each struct below; the rule of thumb: the
 * loop owns everything; a worker only reads what was fixed before its job was submitted,
 * writes its own job's result fields, and talks to the loop through atomics, the
 * stream's lock, and the pool.
 */
#ifndef NUCLEUS_NUCLEUSD_BACKEND_VM_H
#define NUCLEUS_NUCLEUSD_BACKEND_VM_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <event2/event.h>

#include "nucleusd/nucleusd-internal.h"
#include "nucleusd/clock.h"
#include "nucleusd/monitor.h"
#include "nucleusd/pool.h"

#define VM_PATH_MAX 108 /* sun_path */

/* The pool: long jobs (a boot's agent wait, a run without timeout) hold a worker each. */
#define VMB_WORKERS   64
#define VMB_QUEUE_MAX 256
/* A boot whose guest agent does not answer within this fails (nested KVM is slow). */
#define VMB_BOOT_TIMEOUT_S 600
/* The jail's uids when the daemon is root (nucleusd --jail-uids): one per VM. */
#define ND_JAIL_UID_FIRST 200000
#define ND_JAIL_UID_COUNT 65536

struct vmb;
struct guest;

/*
 * One VM: a nucleus-vmm process and its run dir. Loop-owned, except:
 *   - id, dir, vsock, control, disk, kernel, initrd: fixed before the first job is
 *     submitted; workers read them.
 *   - g: the guest client (per VM), set at creation; workers make calls on it (each
 *     call its own connection); the loop calls guest__cancel on it at shutdown.
 *   - dead: atomic; the loop sets it when the process is gone, workers poll it.
 *   - refs: loop only; the list holds one, every job one (so a VM outlives its jobs).
 */
struct vmb_vm {
	struct vmb_vm *next;
	struct vmb *b;
	int refs;
	char id[20];
	char dir[PATH_MAX], vsock[VM_PATH_MAX], control[VM_PATH_MAX], disk[PATH_MAX];
	char kernel[PATH_MAX], initrd[PATH_MAX]; /* of its image */
	bool disk_tmp;				 /* remove the disk with the VM */
	pid_t pid;				 /* 0 once gone */
	bool adopted;				 /* after a restart: nobody here reaps it */
	int64_t adopted_us;			 /* when (monotonic): alive then */
	int pidfd;
	struct event *pidev, *killev;
	struct guest *g;
	bool listed, booting, stopping, failed;
	atomic_bool dead;
	char reason[192];
	uid_t uid; /* jailed as this uid (its own, from the range); 0: none or a userns */
};

/* A streamed run's output on its way from the worker to the loop (bounded). */
struct piece {
	struct piece *next;
	int fd;
	size_t len;
	char data[];
};

/*
 * A streamed run. lock guards head/tail/bytes (worker appends, loop takes); cond wakes
 * the worker when the loop took a piece (or at shutdown). efd: the worker's "pieces
 * queued" (written by the worker, read by the loop). ev, chunk, paused: loop only.
 */
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

/*
 * One blocking job. The loop fills it and submits it; while it is in the pool the worker
 * owns err, reason, result (and the stream's worker side); the rest is read-only to the
 * worker. work() runs on the worker, finish() on the loop (never for a job dropped at
 * shutdown). next: b->jobs, loop only.
 */
struct vmb_job {
	struct nd_pool_job pj; /* first: the pool's handle */
	struct vmb_job *next;
	struct vmb *b;
	struct vmb_vm *vm;
	void (*work)(struct vmb_job *j);
	void (*finish)(struct vmb_job *j);
	nd_boot_done_fn boot_done;
	nd_tool_done_fn tool_done;
	void *token;
	int64_t start_us;	 /* nd_clock__mono_us() when the job was made */
	unsigned size_mib;	 /* boot: workspace to create (0: none) */
	const struct nd_tool *t; /* tools: its catalogue row */
	char tool[32];
	json_t *args, *result;
	int err;
	char reason[256];
	struct vmb_stream *st; /* run, streamed */
	struct guest *own_g;   /* the agent wait's own client (canceled at shutdown) */
	/* Optional, set by the job's owner: free what it attached (loop, at free) and wake
	 * a worker blocked on it (loop, at shutdown while work() may run). */
	void (*release)(struct vmb_job *j);
	void (*unblock)(struct vmb_job *j);
};

/*
 * The backend. Loop-owned but for `closing` (atomic: set by vmb_free, polled by
 * workers) and the configuration strings (fixed at creation).
 */
struct vmb {
	struct event_base *base;
	struct nucleusd *nd;
	char vmm[PATH_MAX], kernel[PATH_MAX], initrd[PATH_MAX], data_dir[PATH_MAX];
	/* the jail (vm-proc.c): nucleus-jailer ("": none), each VM's own uid from
	 * [uid_first, uid_first + uid_count) when the daemon is root, else a user
	 * namespace; its cgroup leaf when cgroup v2 is writable; one line saying which */
	char jailer[PATH_MAX];
	struct nd_monitor *mon, *own_mon; /* where jails are made, VMMs killed and reaped;
					   * own_mon: a local one of ours */
	uid_t uid_first;
	unsigned uid_count;
	bool userns, cgroups;
	char jail_note[640];
	int boot_timeout_s; /* read by workers; set before any */
	struct vmb_vm *vms;
	struct vmb_job *jobs; /* submitted, not finished */
	struct nd_pool *pool;
	atomic_bool closing;
};

/* ---- jobs (vm-jobs.c; loop thread) ---- */

struct vmb_job *vmb_job__new(struct vmb *b, struct vmb_vm *vm);
/* Submits @j to the pool: -EAGAIN when the pool is full (the caller's 503). */
int vmb_job__submit(struct vmb_job *j);
/* Frees a job that was never submitted (or whose done came). */
void vmb_job__free(struct vmb_job *j);
/* Milliseconds since @j was made (monotonic; any thread). */
static inline int64_t vmb_job__age_ms(const struct vmb_job *j)
{
	return (nd_clock__mono_us() - j->start_us) / 1000;
}

/* ---- processes (vm-proc.c; loop thread unless said) ---- */

struct vmb_vm *vm_proc__find(struct vmb *b, const char *id);
/* A new listed VM record for @id (its run dir paths and guest client). */
struct vmb_vm *vm_proc__new(struct vmb *b, const char *id);
void vm_proc__unref(struct vmb_vm *v);
/* Takes @v off the list (drops the list's reference). */
void vm_proc__unlist(struct vmb_vm *v);
/*
 * Starts nucleus-vmm for @v (its paths, kernel/initrd, disk) in its own session: the one
 * function that makes the process, in its jail (nucleus-jailer) unless --no-jail. Sets
 * v->pid, v->uid; on a jail's failure -ECHILD with v->reason saying why.
 */
int vm_proc__spawn(struct vmb *b, struct vmb_vm *v, unsigned vcpus, unsigned mem_mib);
/* Ends the VMM: control "stop" (unless @now), SIGKILL after the grace period. */
void vm_proc__terminate(struct vmb_vm *v, bool now);
/* Loop: the client a boot's agent wait pings with (the job's own_g: its own, so that
 * shutdown can cancel it). */
int vm_proc__agent_client(struct vmb_vm *v, struct guest **ret);
/* Worker: pings the agent (j->own_g) until it answers, the VM dies, the backend closes
 * or the boot's time is up; fills j->err, j->reason. */
void vm_proc__wait_agent(struct vmb_job *j);
int vm_proc__stop(struct vmb *b, const struct nd_sandbox_info *sb, struct nd_err *e);
/* Control socket "pause" / "resume". */
int vm_proc__control(struct vmb *b, const struct nd_sandbox_info *sb, const char *op,
		     struct nd_err *e);
int vm_proc__adopt(struct vmb *b, const struct nd_sandbox_info *sb, struct nd_err *e);

/* ---- images and workspaces (images.c) ---- */

/*
 * The image's kernel and initramfs: "default" (or none) leaves both empty (the daemon's
 * pair); else DATA/images/NAME/{initramfs.cpio.gz, vmlinux?}. -EINVAL bad_image.
 */
int vm_image__resolve(struct vmb *b, const char *image, char kernel[PATH_MAX],
		      char initrd[PATH_MAX], struct nd_err *e);
/* Loop: the workspace disk path of @v from spec.workspace @ws (persisted or not);
 * -ENAMETOOLONG when it does not fit. */
int vm_image__workspace_path(struct vmb *b, struct vmb_vm *v, json_t *ws);
/* Worker: makes the ext4 workspace image of j->size_mib at j->vm->disk unless it exists. */
void vm_image__make_workspace(struct vmb_job *j);

/* ---- tools (vm-tools.c; loop thread) ---- */

int vm_tools__start(struct vmb *b, const struct nd_sandbox_info *sb, const char *tool, json_t *args,
		    nd_chunk_fn chunk, nd_tool_done_fn done, void *token, struct nd_err *e);
void vm_tools__stream_resume(struct vmb *b, void *token);

#endif
