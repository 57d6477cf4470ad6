/* SPDX-License-Identifier: Apache-2.0 */
/*
 * priv.h - the daemon's privileged operations, done in the calling process (priv.c).
 * Callers go through nucleusd/monitor.h, which runs them here or in the separate monitor
 * process; only monitor.c calls these directly.
 */
#ifndef NUCLEUS_NUCLEUSD_PRIV_H
#define NUCLEUS_NUCLEUSD_PRIV_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define ND_PRIV_ID_MAX 20 /* a sandbox id and its NUL ("sb-" and 16 hex) */

/* Fixed when the monitor is made; the monitor's own copy is never changed by requests. */
struct nd_priv_cfg {
	char data_dir[PATH_MAX];
	/* the VM backend: nucleus-vmm, the default kernel and initramfs, nucleus-jailer
	 * ("": VMMs are not jailed, and no VMM operation is allowed) */
	char vmm[PATH_MAX], kernel[PATH_MAX], initrd[PATH_MAX], jailer[PATH_MAX];
	uid_t uid_first;    /* the jail's uids: [uid_first, uid_first + uid_count) */
	unsigned uid_count; /* 0 with userns */
	bool userns;	    /* the jail is a user namespace (the daemon is not root) */
	bool cgroups;	    /* a cgroup v2 leaf per VM (nd__cgroup_enable() said yes) */
	/* the daemon's uid and gid: run dirs are theirs, and what a jail shows of DATA is
	 * opened with their rights */
	uid_t daemon_uid;
	gid_t daemon_gid;
	/* nucleus-signer and the key file it is given ("": no signer operations) */
	char signer[PATH_MAX], key[PATH_MAX];
};

/* Where a VM's workspace disk is: none, DATA/vms/ID/workspace.ext4, DATA/workspaces/ID.ext4. */
enum nd_vm_disk { ND_DISK_NONE, ND_DISK_RUN, ND_DISK_PERSIST };

/* What makes a jailed VMM; every path follows from it and the config. */
struct nd_vm_req {
	char id[ND_PRIV_ID_MAX]; /* [a-z0-9-], the run dir DATA/vms/ID exists */
	char image[68];		 /* "" or "default": the config's pair; else DATA/images/NAME/ */
	uint32_t vcpus, mem_mib;
	uint32_t uid;  /* from the range (not with userns: 0) */
	uint32_t disk; /* enum nd_vm_disk */
};

struct nd_vm_res {
	int32_t pid;	  /* the VMM (PID 1 of its namespaces), our child */
	char reason[224]; /* on failure: why (the jailer's last line, or the check's) */
};

/* nucleus-vmm's arguments (@disk NULL: none); @num holds the numbers. */
void nd_priv__vmm_argv(const char *vmm, const char *kernel, const char *initrd, const char *vsock,
		       const char *control, const char *console, const char *disk, unsigned vcpus,
		       unsigned mem, const char **argv, char num[2][16]);
/* The last line of vmm.log in the run dir @dirfd (where nucleus-jailer says what
 * failed), or "". */
void nd_priv__log_tail(int dirfd, char *buf, size_t len);
/* Is @pid a nucleus-vmm (its /proc comm, which anyone may read)? */
bool nd_priv__is_vmm(pid_t pid);
/* Checks @q against @c (the monitor checks every request with it): 0 or -EINVAL. */
int nd_priv__vm_req_check(const struct nd_priv_cfg *c, const struct nd_vm_req *q);
/*
 * Makes the jail and starts nucleus-vmm in it through nucleus-jailer; the VMM is our
 * child (a child subreaper) when this returns 0. -ECHILD with res->reason when the
 * jailer failed.
 */
int nd_priv__spawn_vmm(const struct nd_priv_cfg *c, const struct nd_vm_req *q,
		       struct nd_vm_res *res);
/* SIGKILL to @pid if it is a nucleus-vmm of the jail's uid range (-EPERM otherwise). */
int nd_priv__kill_vmm(const struct nd_priv_cfg *c, pid_t pid);
/* Waits for our child @pid (a VMM that has ended: pidfd said so): its status; -ECHILD
 * when it is not our child (adopted after a restart). */
int nd_priv__reap(pid_t pid, int *status);
/*
 * Did seccomp kill the nucleus-vmm @pid at or after @since_us (CLOCK_MONOTONIC, as the
 * kernel log's times)? From the kernel's audit record in @kmsg ("/dev/kmsg"): 0 and the
 * system call's number in @nr; -ENOENT: no such record; -errno: the log is not readable.
 * For a VMM that is nobody's child here (adopted), whose exit status is unknown.
 */
int nd_priv__seccomp_death(const char *kmsg, pid_t pid, int64_t since_us, int *nr);
/* Removes sandbox @id's cgroup leaf (it must be empty: -EBUSY otherwise). */
int nd_priv__cgroup_rmdir(const struct nd_priv_cfg *c, const char *id);
/* Execs nucleus-signer with the key file: our end of its socket in @fd, its pid. */
int nd_priv__signer_start(const struct nd_priv_cfg *c, int *fd, pid_t *pid);
/* Ends signer @pid: waits @grace_ms for its own end, then SIGKILL; reaps it. */
int nd_priv__signer_end(pid_t pid, int grace_ms, int *status);

#endif
