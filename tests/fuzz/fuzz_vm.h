/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_vm.h - the VMM core as the virtio fuzz targets see it (vm-internal.h without KVM):
 * guest RAM is one malloc'd buffer at guest-physical 0, MMIO accesses go to the device
 * registered there (QueueNotify through the ioeventfd first, as KVM does), the event
 * loop is poll() over the registered fds, run until idle, and guest faults are counted
 * and checked (each must name its device) instead of stopping a VM.
 */
#ifndef NUCLEUS_TESTS_FUZZ_VM_H
#define NUCLEUS_TESTS_FUZZ_VM_H

#include <stdbool.h>
#include <stdint.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/vm-internal.h"

struct vm *fz_vm__new(uint64_t ram_size);
void fz_vm__free(struct vm *vm);
uint8_t *fz_vm__ram(struct vm *vm);
uint64_t fz_vm__ram_size(struct vm *vm);

/* A guest access of 1, 2, 4 or 8 bytes at guest-physical @addr. */
void fz_vm__mmio_write(struct vm *vm, uint64_t addr, uint64_t val, uint32_t len);
/* The bytes of @len beyond the access must stay untouched (checked: traps otherwise). */
uint64_t fz_vm__mmio_read(struct vm *vm, uint64_t addr, uint32_t len);

/* Runs ready event-loop callbacks until none is ready; how many ran. Still busy after
 * 1000 rounds: fails (a device that keeps an fd ready spins a level-triggered loop). */
int fz_vm__run(struct vm *vm);
/* Interrupts sent through irqfds since the last call. */
uint64_t fz_vm__irqs(struct vm *vm);

int fz_vm__faults(struct vm *vm);
const char *fz_vm__fault_msg(struct vm *vm);
/* Registered event-loop fds (a device that is freed must remove all of its own). */
int fz_vm__ev_count(struct vm *vm);

#endif
