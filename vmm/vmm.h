/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmm.h - the face of the VMM module for the rest of Nucleus.
 *
 * Each microVM runs in its own process, nucleus-vmm (see docs/vmm.md). The daemon
 * spawns it, reads its exit status (enum vmm_exit) and talks to it over the per-VM
 * control socket with vmm__control(). The guest init reports to it through the status
 * register (VM_STATUS_*).
 */
#ifndef NUCLEUS_VMM_VMM_H
#define NUCLEUS_VMM_VMM_H

#include <stdbool.h>
#include <stdint.h>

/* Exit status of nucleus-vmm. */
enum vmm_exit {
	VMM_EXIT_SHUTDOWN = 0,	  /* clean guest shutdown (reset after VM_STATUS_SHUTDOWN) */
	VMM_EXIT_SETUP = 1,	  /* usage or setup error */
	VMM_EXIT_CRASH = 2,	  /* reset without shutdown intent, KVM internal error */
	VMM_EXIT_GUEST_FAULT = 3, /* a device caught the guest breaking its rules */
	VMM_EXIT_STOPPED = 4,	  /* stopped from outside: control "stop", SIGTERM/SIGINT */
};

#define VMM_MAX_VCPUS 16

/* The status register: the contract between the guest init (guest/init/pid1.c) and the
 * VMM (vmm/status.c). The guest writes one byte to the port: */
#define VM_STATUS_PORT	   0x440 /* the port */
#define VM_STATUS_READY	   0x01	 /* agent ready: the boot timer stops here */
#define VM_STATUS_SHUTDOWN 0x02	 /* clean shutdown follows (reset after it = exit 0) */
/* Only nucleus-vmm-trigger (built for the tests, never installed) acts on it:
 * the vCPU thread makes a forbidden system call and the VMM dies of SIGSYS. Others
 * ignore it like any unknown value. */
#define VM_STATUS_TEST_SIGSYS 0x5c
/* The same register, memory-mapped: for guest kernels without CONFIG_X86_IOPL_IOPERM, a
 * 1-byte write at offset 0 of this page (mmap of /dev/mem, allowed by STRICT_DEVMEM since
 * it is not RAM) does what a write to the port does. */
#define VM_STATUS_MMIO 0xd0020000ULL

/* One reply of the control socket (docs/vmm.md, "Control protocol"). */
struct vmm_control_reply {
	bool ok;
	char state[16];	   /* "running", "paused", "stopping" */
	int64_t boot_us;   /* VMM start -> guest ready (status port), -1 if not yet */
	int64_t uptime_us; /* since the VMM started */
	uint32_t vcpus;
	uint32_t mem_mib;
	/* the boot trace (docs/vmm.md): the newest phase reached, and when the vCPUs ran */
	char last_phase[16];
	int64_t first_run_us; /* VMM start -> first KVM_RUN, -1 if unknown */
	char error[128];      /* set when !ok */
};

/* Send one request ("state", "pause", "resume", "stop") to the control socket at path
 * and parse the reply. Returns 0 when a reply arrived (check ret->ok), else -errno. */
int vmm__control(const char *path, const char *op, struct vmm_control_reply *ret);

/* Human-readable name of an exit status ("shutdown", "crash", ...). */
const char *vmm__exit_name(int status);

#endif
