// SPDX-License-Identifier: Apache-2.0
/*
 * The real backend ("vmm"): one nucleus-vmm process per sandbox, the guest agent
 * reached through the VMM's vsock Unix socket. Policy is not its business: the daemon core
 * decides every call (nucleusd/decide.c) before it reaches a backend.
 *
 * This file is the ops table and the glue: the boot's stages (workspace disk on a
 * worker, spawn, agent wait on a worker), jobs on the bounded pool, setup and free. The jobs
 * themselves live in vm-proc.c (processes), images.c (images, workspaces) and vm-tools.c (the guest
 * tools); who owns what, and on which thread, is written in nucleusd/backend-vm.h.
 *
 * Threads: every call and every completion happens on the event-loop thread. Work that
 * blocks runs as a job on the pool (nucleusd/pool.h: at most VMB_WORKERS threads, at
 * most VMB_QUEUE_MAX jobs waiting; more is a 503 backend_busy); the pool hands each
 * finished job back to the loop, which calls its completion.
 *
 * A persisted workspace lives in DATA/workspaces/ID.ext4.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/event.h>

#include "guest/guest.h"
#include "nucleusd/backend-vm.h"
#include "nucleusd/clock.h"
#include "policy/policy.h"

/* ---- boot ---- */

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
		vm_proc__terminate(v, true);
	else
		vm_proc__unlist(v);
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
	res = (struct nd_boot_result){.boot_ms = (uint32_t)vmb_job__age_ms(j),
				      .vmm_pid = j->vm->pid};
	j->boot_done(j->token, 0, &res, NULL);
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
	r = vm_proc__spawn(b, j->vm,
			   (unsigned)json_integer_value(json_object_get(j->args, "vcpus")),
			   (unsigned)json_integer_value(json_object_get(j->args, "memory_mib")));
	if (r < 0) {
		j->err = r;
		if (j->vm->reason[0]) /* the jail said why */
			snprintf(j->reason, sizeof(j->reason), "%s", j->vm->reason);
		else
			snprintf(j->reason, sizeof(j->reason), "cannot start %.160s: %s", b->vmm,
				 strerror(-r));
		boot_fail(j);
		return;
	}
	/* Second stage: wait for the agent. The job's start time carries over. */
	p = vmb_job__new(b, j->vm);
	r = p ? vm_proc__agent_client(j->vm, &p->own_g) : -ENOMEM;
	if (r < 0) {
		if (p)
			vmb_job__free(p);
		j->err = r;
		boot_fail(j);
		return;
	}
	p->start_us = j->start_us;
	p->work = vm_proc__wait_agent;
	p->finish = finish_ping;
	p->boot_done = j->boot_done;
	p->token = j->token;
	r = vmb_job__submit(p);
	if (r < 0) {
		vmb_job__free(p);
		j->err = r;
		if (r == -EAGAIN)
			snprintf(j->reason, sizeof(j->reason),
				 "the backend is busy (%d jobs queued)", VMB_QUEUE_MAX);
		boot_fail(j);
	}
}

static int vmb_spec_check(void *ctx, json_t *spec, struct nd_err *e)
{
	char kernel[PATH_MAX], initrd[PATH_MAX];

	return vm_image__resolve(ctx, json_string_value(json_object_get(spec, "image")), kernel,
				 initrd, e);
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

	r = vm_image__resolve(b, image, kernel, initrd, e);
	if (r < 0)
		return r;
	if (ws && json_integer_value(json_object_get(ws, "size_mib")) < 8)
		return nd_err__set(e, -EINVAL, "bad_workspace",
				   "workspace.size_mib must be at least 8");
	if (vm_proc__find(b, sb->id))
		return nd_err__set(e, -EEXIST, "backend_error", "VM %s exists", sb->id);
	if (strlen(b->data_dir) + strlen(sb->id) + 16 >= VM_PATH_MAX)
		return nd_err__set(e, -ENAMETOOLONG, "backend_error",
				   "data dir path too long for the VM's sockets");
	v = vm_proc__new(b, sb->id);
	if (!v)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	memcpy(v->kernel, kernel, sizeof(v->kernel));
	memcpy(v->initrd, initrd, sizeof(v->initrd));
	if (mkdir(v->dir, 0700) < 0 && errno != EEXIST) {
		r = nd_err__set(e, -errno, "backend_error", "mkdir %s: %s", v->dir,
				strerror(errno));
		vm_proc__unlist(v);
		return r;
	}
	unlink(v->vsock);
	unlink(v->control);
	if (ws && vm_image__workspace_path(b, v, ws) < 0) {
		vm_proc__unlist(v);
		return nd_err__set(e, -ENAMETOOLONG, "backend_error",
				   "data dir path too long for the workspace image");
	}
	j = vmb_job__new(b, v);
	if (!j) {
		vm_proc__unlist(v);
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	}
	j->size_mib = ws ? (unsigned)json_integer_value(json_object_get(ws, "size_mib")) : 0;
	j->args = json_pack("{sI sI}", "vcpus", (json_int_t)(sb->vcpus ? sb->vcpus : 1),
			    "memory_mib", (json_int_t)(sb->memory_mib ? sb->memory_mib : 256));
	j->work = vm_image__make_workspace;
	j->finish = finish_disk;
	j->boot_done = done;
	j->token = token;
	v->booting = true;
	r = j->args ? vmb_job__submit(j) : -ENOMEM;
	if (r < 0) {
		vmb_job__free(j);
		vm_proc__unlist(v);
		if (r == -EAGAIN)
			return nd_err__set(e, r, "backend_busy",
					   "too many boots and calls in progress (%d queued), "
					   "try again",
					   VMB_QUEUE_MAX);
		return nd_err__set(e, r, "internal", "cannot start the boot: %s", strerror(-r));
	}
	return 0;
}

/* ---- lifecycle (vm-proc.c) ---- */

static int vmb_stop(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	return vm_proc__stop(ctx, sb, e);
}

static int vmb_pause(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	return vm_proc__control(ctx, sb, "pause", e);
}

static int vmb_resume(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	return vm_proc__control(ctx, sb, "resume", e);
}

static int vmb_adopt(void *ctx, const struct nd_sandbox_info *sb, struct nd_err *e)
{
	return vm_proc__adopt(ctx, sb, e);
}

/* ---- tools (vm-tools.c) ---- */

static int vmb_tool(void *ctx, const struct nd_sandbox_info *sb, const char *tool, json_t *args,
		    nd_tool_done_fn done, void *token, struct nd_err *e)
{
	return vm_tools__start(ctx, sb, tool, args, NULL, done, token, e);
}

static int vmb_tool_stream(void *ctx, const struct nd_sandbox_info *sb, const char *tool,
			   json_t *args, nd_chunk_fn chunk, nd_tool_done_fn done, void *token,
			   struct nd_err *e)
{
	return vm_tools__start(ctx, sb, tool, args, chunk, done, token, e);
}

static void vmb_stream_resume(void *ctx, void *token)
{
	vm_tools__stream_resume(ctx, token);
}

/* ---- setup ---- */

static void vmb_attach(void *ctx, struct event_base *base, struct nucleusd *nd)
{
	struct vmb *b = ctx;

	b->base = base;
	b->nd = nd;
	/* On failure b->pool stays NULL: every boot and call is then refused (-ENOMEM). */
	nd_pool__new(base, VMB_WORKERS, VMB_QUEUE_MAX, &b->pool);
}

static void vmb_free(void *ctx)
{
	struct vmb *b = ctx;
	struct vmb_vm *v, *next;

	if (!b)
		return;
	atomic_store(&b->closing, true);
	/*
	 * VMMs keep running (a restarted daemon re-adopts them). The pool cancels the guest
	 * calls in progress (their connections are shut down), joins its workers and drops
	 * every job without its completion.
	 */
	nd_pool__free(b->pool);
	b->pool = NULL;
	for (v = b->vms; v; v = next) {
		next = v->next;
		v->failed = true; /* keep sockets and logs: the VM still runs */
		v->disk_tmp = false;
		v->listed = false;
		v->dir[0] = '\0';
		vm_proc__unref(v);
	}
	nd_monitor__free(b->own_mon);
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

static const struct nd_backend vmb_backend = {
	.name = "vmm",
	.real = true,
	.attach = vmb_attach,
	.boot = vmb_boot,
	.stop = vmb_stop,
	.pause = vmb_pause,
	.resume = vmb_resume,
	.adopt = vmb_adopt,
	.tool = vmb_tool,
	.tool_stream = vmb_tool_stream,
	.stream_resume = vmb_stream_resume,
	.spec_check = vmb_spec_check,
	.free = vmb_free,
};

int nd_vm_config__priv(const struct nd_vm_config *cfg, uid_t daemon_uid, gid_t daemon_gid,
		       struct nd_priv_cfg *out, struct nd_err *e)
{
	char leaf[1000];

	memset(out, 0, sizeof(*out));
	if (snprintf(out->data_dir, sizeof(out->data_dir), "%s", cfg->data_dir) >=
		    (int)sizeof(out->data_dir) ||
	    snprintf(out->vmm, sizeof(out->vmm), "%s", cfg->vmm) >= (int)sizeof(out->vmm) ||
	    snprintf(out->kernel, sizeof(out->kernel), "%s", cfg->kernel) >=
		    (int)sizeof(out->kernel) ||
	    snprintf(out->initrd, sizeof(out->initrd), "%s", cfg->initrd) >=
		    (int)sizeof(out->initrd) ||
	    snprintf(out->jailer, sizeof(out->jailer), "%s", cfg->jailer ? cfg->jailer : "") >=
		    (int)sizeof(out->jailer))
		return nd_err__set(e, -ENAMETOOLONG, "config", "a path is too long");
	out->daemon_uid = daemon_uid;
	out->daemon_gid = daemon_gid;
	out->userns = geteuid() != 0;
	if (!out->userns) {
		out->uid_first = cfg->jail_uid_first ? cfg->jail_uid_first : ND_JAIL_UID_FIRST;
		out->uid_count = cfg->jail_uid_count ? cfg->jail_uid_count : ND_JAIL_UID_COUNT;
		if (out->uid_first == 0 || out->uid_first + (uint64_t)out->uid_count > UINT32_MAX ||
		    (daemon_uid >= out->uid_first && daemon_uid - out->uid_first < out->uid_count))
			return nd_err__set(e, -EINVAL, "config",
					   "bad jail uid range %u+%u (the daemon's uid %u must "
					   "not be in it)",
					   (unsigned)out->uid_first, out->uid_count,
					   (unsigned)daemon_uid);
	}
	out->cgroups = cfg->jailer && nd__cgroup_enable() == 0 &&
		       nd__cgroup_leaf("probe", leaf, sizeof(leaf)) == 0;
	return 0;
}

/*
 * The jail's mode: root gives each VM its own uid from the range, anyone else a user
 * namespace; a cgroup v2 leaf per VM where the daemon's cgroup lets it make one. The
 * jails are made where the monitor runs (cfg->monitor: the separate root monitor of
 * nucleusd --user), else here: the daemon then is a child subreaper, a jailed VMM is
 * reparented to it when its jailer exits. The note says what the jail is here, and
 * what is missing.
 */
static int jail_init(struct vmb *b, const struct nd_vm_config *cfg, struct nd_err *e)
{
	struct nd_priv_cfg pc;
	int r;

	snprintf(b->jailer, sizeof(b->jailer), "%s", cfg->jailer ? cfg->jailer : "");
	if (cfg->jailer && cfg->monitor) {
		b->mon = cfg->monitor;
		pc = *nd_monitor__cfg(b->mon);
	} else {
		r = nd_vm_config__priv(cfg, geteuid(), getegid(), &pc, e);
		if (r < 0)
			return r;
		r = nd_monitor__new_local(&pc, &b->own_mon);
		if (r < 0)
			return nd_err__set(e, r, "internal", "out of memory");
		b->mon = b->own_mon;
		if (cfg->jailer && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
			return nd_err__set(e, -errno, "config", "PR_SET_CHILD_SUBREAPER: %s",
					   strerror(errno));
	}
	b->userns = pc.userns;
	b->uid_first = pc.uid_first;
	b->uid_count = pc.uid_count;
	b->cgroups = pc.cgroups;
	if (!cfg->jailer) {
		snprintf(b->jail_note, sizeof(b->jail_note),
			 "NO jail (--no-jail): every VMM runs as the daemon's user, in the "
			 "daemon's namespaces, with the daemon's files in reach; for debugging "
			 "only");
		return 0;
	}
	snprintf(b->jail_note, sizeof(b->jail_note),
		 "jail: %s, mount/PID/IPC/UTS/network namespaces, a read-only root of its own "
		 "files, no capabilities, no_new_privs; %s; made by %s",
		 b->userns ? "a user namespace (the daemon is not root: every VMM runs as the "
			     "daemon's uid, without a uid of its own)"
			   : "a uid of its own per VM",
		 b->cgroups ? "a cgroup v2 leaf per VM with memory.max, cpu.max, pids.max"
			    : "NO cgroup limits (cgroup v2 is not writable here, or its memory, "
			      "cpu and pids controllers are not delegated: no memory.max, cpu.max "
			      "or pids.max per VM)",
		 b->own_mon ? "the daemon itself"
			    : "the privileged monitor (the daemon runs "
			      "unprivileged)");
	return 0;
}

const char *nd_vm_backend__jail(const struct nd_backend *be)
{
	return be && be->ctx && strcmp(be->name, "vmm") == 0
		       ? ((const struct vmb *)be->ctx)->jail_note
		       : "";
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
	if (!be || !b) {
		free(be);
		free(b);
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	}
	snprintf(b->vmm, sizeof(b->vmm), "%s", cfg->vmm);
	snprintf(b->kernel, sizeof(b->kernel), "%s", cfg->kernel);
	snprintf(b->initrd, sizeof(b->initrd), "%s", cfg->initrd);
	snprintf(b->data_dir, sizeof(b->data_dir), "%s", cfg->data_dir);
	b->boot_timeout_s = cfg->boot_timeout_s > 0 ? cfg->boot_timeout_s : VMB_BOOT_TIMEOUT_S;
	if (cfg->jailer)
		r = check_file("nucleus-jailer", cfg->jailer, e);
	if (r == 0)
		r = jail_init(b, cfg, e);
	if (r < 0) {
		vmb_free(b);
		free(be);
		return r;
	}
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
	*be = vmb_backend;
	be->ctx = b;
	*ret = be;
	return 0;
}
