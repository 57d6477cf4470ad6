/* SPDX-License-Identifier: Apache-2.0 */
/*
 * monitor.h - the daemon's privileged operations, and where they run (docs/daemon.md,
 * "Privilege separation"). Every operation that needs more than the daemon's own uid goes
 * through this face: making a VMM's jail and starting it (nucleus-jailer), killing and
 * reaping VMMs, starting and ending nucleus-signer (the holder of the audit key),
 * removing a jail's cgroup leaf.
 *
 * A monitor is either local (the operations run in this process: the daemon runs as root
 * or as a user with a user-namespace jail) or separate: nucleusd --user forks, before it
 * drops to that user, a process that stays root and does only these operations, each one
 * a fixed-size typed request over a SOCK_SEQPACKET socketpair, checked before use
 * (monitor.c); the daemon, which parses every client's and guest's bytes, then runs as
 * the user and cannot read DATA/audit.key, kill a VMM, or make a jail of its choosing:
 * the monitor computes every path from the sandbox id and its own configuration, opens
 * the files the jail shows as the daemon's uid (no symlinks), and only signals
 * nucleus-vmm processes of the jail's uid range and its own signer.
 *
 * The operations themselves are priv.c's (nucleusd/priv.h), the same code in both modes.
 * Loop thread only (one request at a time; the client serializes anyway).
 */
#ifndef NUCLEUS_NUCLEUSD_MONITOR_H
#define NUCLEUS_NUCLEUSD_MONITOR_H

#include "nucleusd/priv.h"

#include <stdint.h>

enum mon_type {
	MON_SPAWN_VMM = 1,
	MON_KILL_VMM,
	MON_REAP,
	MON_CGROUP_RMDIR,
	MON_SIGNER_START,
	MON_SIGNER_END,
	MON_SECCOMP_DEATH,
};

/* The wire (SOCK_SEQPACKET, one message each way; an fd with MON_SIGNER_START's reply). */
struct mon_req {
	uint32_t type;
	int32_t pid;
	int32_t arg; /* MON_SIGNER_END: grace ms */
	uint32_t zero;
	int64_t since_us; /* MON_SECCOMP_DEATH */
	struct nd_vm_req vm; /* MON_SPAWN_VMM; vm.id: MON_CGROUP_RMDIR */
};

struct mon_reply {
	int32_t r;
	int32_t pid;
	int32_t status;
	char reason[224];
};

_Static_assert(sizeof(struct mon_req) == 24 + sizeof(struct nd_vm_req), "request size");
_Static_assert(sizeof(struct mon_reply) == 236, "reply size");

struct nd_monitor;

/* A local monitor: the operations run here, with @cfg (copied). */
int nd_monitor__new_local(const struct nd_priv_cfg *cfg, struct nd_monitor **ret);
/*
 * The separate monitor: forks the monitor process (call as root, before any thread
 * exists and before dropping privileges). Returns 0 in the daemon with *ret set; in
 * the monitor process it runs the monitor until the daemon's end of the socket closes
 * and then returns 1 (the caller returns from main: nothing else of the daemon runs in
 * it). Every fd but 0-2 is closed in the monitor. A monitor that does not answer
 * within a minute, or answers wrong, is cut off (its socket shut down: it ends, and the
 * daemon sees EOF on nd_monitor__fd()).
 */
int nd_monitor__fork(const struct nd_priv_cfg *cfg, struct nd_monitor **ret);
/* Closes the socket (the monitor ends, ending its signer) and waits for the monitor. */
void nd_monitor__free(struct nd_monitor *m);
/* The socket to the separate monitor (it reads EOF when the monitor is gone), or -1. */
int nd_monitor__fd(const struct nd_monitor *m);
/* Its pid (separate), or 0. */
pid_t nd_monitor__pid(const struct nd_monitor *m);
const struct nd_priv_cfg *nd_monitor__cfg(const struct nd_monitor *m);

/* The operations (priv.h says what each does); a separate monitor's failure to answer
 * is -EPIPE (gone) or -ETIMEDOUT. */
int nd_monitor__spawn_vmm(struct nd_monitor *m, const struct nd_vm_req *q, struct nd_vm_res *res);
int nd_monitor__kill_vmm(struct nd_monitor *m, pid_t pid);
int nd_monitor__reap(struct nd_monitor *m, pid_t pid, int *status);
int nd_monitor__cgroup_rmdir(struct nd_monitor *m, const char *id);
int nd_monitor__signer_start(struct nd_monitor *m, int *fd, pid_t *pid);
int nd_monitor__signer_end(struct nd_monitor *m, pid_t pid, int grace_ms, int *status);
/* The kernel log's word on an adopted VMM's death (nd_priv__seccomp_death, /dev/kmsg). */
int nd_monitor__seccomp_death(struct nd_monitor *m, pid_t pid, int64_t since_us, int *nr);

#endif
