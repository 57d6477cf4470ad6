// SPDX-License-Identifier: Apache-2.0
/*
 * The seccomp filter of a daemon run with --user (docs/daemon.md, "Privilege
 * separation"), installed after the drop, when the root monitor runs apart: a deny-list
 * of the kernel's surface that the daemon never uses and a compromised daemon would
 * reach for, each call failing with EPERM (ENOSYS for clone3, whose flags a filter
 * cannot read: glibc then falls back to clone, whose flags it can). An allow-list of
 * what the daemon does use (SQLite, libevent, threads, sockets, mke2fs children) would
 * be long and brittle; the monitor, the signer and the VMMs have filters of their own.
 */
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <seccomp.h>

#include "api/daemon/confine.h"

static const int denied[] = {
	/* namespaces, mounts, roots: the jail's tools, the monitor's alone */
	SCMP_SYS(unshare),
	SCMP_SYS(setns),
	SCMP_SYS(mount),
	SCMP_SYS(umount2),
	SCMP_SYS(pivot_root),
	SCMP_SYS(chroot),
	SCMP_SYS(open_tree),
	SCMP_SYS(move_mount),
	SCMP_SYS(fsopen),
	SCMP_SYS(fsconfig),
	SCMP_SYS(fsmount),
	SCMP_SYS(fspick),
	SCMP_SYS(mount_setattr),
	/* the kernel itself */
	SCMP_SYS(kexec_load),
	SCMP_SYS(kexec_file_load),
	SCMP_SYS(init_module),
	SCMP_SYS(finit_module),
	SCMP_SYS(delete_module),
	SCMP_SYS(reboot),
	SCMP_SYS(swapon),
	SCMP_SYS(swapoff),
	SCMP_SYS(acct),
	SCMP_SYS(syslog),
	SCMP_SYS(quotactl),
	SCMP_SYS(iopl),
	SCMP_SYS(ioperm),
	/* other processes' memory, the kernel's rich interfaces */
	SCMP_SYS(process_vm_readv),
	SCMP_SYS(process_vm_writev),
	SCMP_SYS(kcmp),
	SCMP_SYS(perf_event_open),
	SCMP_SYS(bpf),
	SCMP_SYS(userfaultfd),
	SCMP_SYS(io_uring_setup),
	SCMP_SYS(io_uring_enter),
	SCMP_SYS(io_uring_register),
	SCMP_SYS(add_key),
	SCMP_SYS(request_key),
	SCMP_SYS(keyctl),
	SCMP_SYS(open_by_handle_at),
	SCMP_SYS(name_to_handle_at),
#ifndef ND_SANITIZED
	SCMP_SYS(ptrace),
#endif
};

/* clone() flags that make namespaces. */
static const unsigned long ns_flags[] = {CLONE_NEWNS,  CLONE_NEWUSER, CLONE_NEWPID,   CLONE_NEWNET,
					 CLONE_NEWIPC, CLONE_NEWUTS,  CLONE_NEWCGROUP};

int nd_confine__daemon(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r = ctx ? 0 : -ENOMEM;

	for (size_t i = 0; r == 0 && i < sizeof(denied) / sizeof(denied[0]); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0);
	for (size_t i = 0; r == 0 && i < sizeof(ns_flags) / sizeof(ns_flags[0]); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* every thread, those the sanitizers or libraries started too */
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}
