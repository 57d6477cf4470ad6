/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm-internal.h - what the VMM core (kvm.c, memory, vCPUs, event loop) offers to the
 * device models (serial, i8042, virtio-mmio, virtio-blk, virtio-vsock). Private to
 * vmm/: the module's face for the rest of Nucleus is vmm.h.
 *
 * Threads: vCPU threads call the mmio/pio handlers; the event-loop thread runs the
 * ev__ callbacks. A device that is reached from both must lock its own state.
 *
 * Hostile guest: every address, length and index that comes from guest memory or a
 * register write is checked before use. A device that finds the guest broke the
 * rules calls vm__guest_fault(); the VM then stops with VMM_EXIT_GUEST_FAULT and a
 * log line naming the device and the rule. The host process never crashes for it.
 */
#ifndef NUCLEUS_VMM_VM_INTERNAL_H
#define NUCLEUS_VMM_VM_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;

/* Guest physical layout (x86_64). RAM is [0, min(size, MMIO_START)); RAM beyond that
 * is placed from 4 GiB up. Devices live in the hole below 4 GiB. */
#define VM_MMIO_START     0xd0000000ULL /* virtio-mmio windows, 4 KiB each */
#define VM_MMIO_SLOT_SIZE 0x1000ULL
#define VM_MMIO_SLOTS     32
#define VM_IRQ_FIRST      5 /* GSIs handed to devices: 5, 6, ... (IOAPIC pins < 24) */
#define VM_IRQ_LAST       23

/* Port I/O owned by the core: serial 0x3f8-0x3ff, i8042 0x60/0x64, and the status
 * register (VM_STATUS_PORT, VM_STATUS_MMIO), whose numbers are part of the guest
 * contract and so live in vmm.h. */

/* Returns a host pointer for guest-physical [gpa, gpa + len) when the whole range is
 * guest RAM in one mapping, else NULL. len 0 is allowed (any gpa in RAM or at its
 * end). Never faults on guest input: overflow and wrap-around return NULL. */
void *vm__gpa(struct vm *vm, uint64_t gpa, uint64_t len);

/* Memory-mapped and port I/O handlers, called on vCPU threads with 1, 2, 4 or 8 bytes.
 * off is relative to the registered base. Reads must fill all len bytes. */
struct vm_io_ops {
	void (*read)(void *opaque, uint64_t off, void *data, uint32_t len);
	void (*write)(void *opaque, uint64_t off, const void *data, uint32_t len);
};
int vm__mmio_register(struct vm *vm, uint64_t base, uint64_t len, const struct vm_io_ops *ops,
		      void *opaque);
int vm__pio_register(struct vm *vm, uint16_t base, uint16_t len, const struct vm_io_ops *ops,
		     void *opaque);

/* A virtio-mmio slot: base address and GSI, and the kernel command line entry
 * "virtio_mmio.device=4K@0x...:GSI" is appended for it. Only before vm__start(). */
int vm__alloc_mmio_slot(struct vm *vm, uint64_t *ret_base, uint32_t *ret_gsi);
int vm__cmdline_append(struct vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Interrupts (in-kernel IOAPIC): level for KVM_IRQ_LINE; irqfd/ioeventfd wiring. */
int vm__irq_line(struct vm *vm, uint32_t gsi, int level);
int vm__irqfd(struct vm *vm, uint32_t gsi, int efd, bool assign);
int vm__ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, uint64_t datamatch, int efd,
		  bool assign);

/* Event loop of the device thread (epoll). Callbacks run on that thread only. */
typedef void (*vm_ev_cb)(void *opaque, uint32_t events);
int vm__ev_add(struct vm *vm, int fd, uint32_t events, vm_ev_cb cb, void *opaque);
int vm__ev_mod(struct vm *vm, int fd, uint32_t events);
int vm__ev_del(struct vm *vm, int fd);

/*
 * System call filters (vmm/seccomp.c, docs/vmm.md "Seccomp"): each thread of the VMM runs
 * under an allow-list whose argument filters name fds, so a device tells the core which
 * of its fds each thread kind uses beyond the event loop's ordinary I/O. Only before
 * vm__start(); -ENOSPC past VM_SECCOMP_FDS_MAX per use, -EBUSY after the start.
 */
enum vm_fd_use {
	VM_FD_VCPU_WRITE, /* written on vCPU threads: an eventfd a register write kicks, the
			   * console. vCPU threads write() to these fds (and stderr) only */
	VM_FD_LISTEN,	  /* a listening socket: accept4() on the event loop */
	VM_FD__N
};
int vm__seccomp_fd(struct vm *vm, enum vm_fd_use use, int fd);

/* The guest broke a device rule: log "guest fault: <dev>: <message>" and stop this VM
 * (exit status VMM_EXIT_GUEST_FAULT). Safe from any thread; returns, never exits. */
void vm__guest_fault(struct vm *vm, const char *dev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Logging for the VMM process (stderr, one line each, prefixed). */
void vm__log(struct vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
