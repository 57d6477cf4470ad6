/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The jail of a nucleus-vmm (vmm/jailer.c, docs/vmm.md "The jail"): what the daemon and
 * nucleus-jailer agree on. Inside the jail the VMM sees only these paths.
 */
#ifndef NUCLEUS_VMM_JAIL_H
#define NUCLEUS_VMM_JAIL_H

/* nucleus-jailer's exit status (and its program's) when a set-up step failed. */
#define JAIL_EXIT_SETUP 125

#define JAIL_VMM    "/nucleus-vmm" /* the VMM binary, read-only */
#define JAIL_KERNEL "/kernel"	   /* the guest kernel, read-only */
#define JAIL_INITRD "/initrd"	   /* the guest initramfs, read-only */
#define JAIL_RUN    "/run/vm"	   /* the VM's run dir: its sockets and console, writable */
#define JAIL_DISK   "/disk"	   /* the workspace disk image, writable */
#define JAIL_KVM    "/dev/kvm"

#endif
