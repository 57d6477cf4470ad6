/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fake-vm.h - a test double of the VMM core (vm-internal.h) for the virtio unit tests:
 * guest RAM is a malloc'd buffer at guest-physical 0, MMIO accesses are routed like KVM
 * would (ioeventfd matches first), the event loop is an epoll set the test runs until
 * idle, and guest faults are recorded instead of stopping anything.
 */
#ifndef NUCLEUS_TESTS_FAKE_VM_H
#define NUCLEUS_TESTS_FAKE_VM_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/vm-internal.h"

struct vm *fake_vm__new(uint64_t ram_size);
void fake_vm__free(struct vm *vm);
uint8_t *fake_vm__ram(struct vm *vm);
uint64_t fake_vm__ram_size(struct vm *vm);

/* A guest access to guest-physical addr (1, 2, 4 or 8 bytes). */
void fake_vm__mmio_write(struct vm *vm, uint64_t addr, uint64_t val, uint32_t len);
uint64_t fake_vm__mmio_read(struct vm *vm, uint64_t addr, uint32_t len);

/* Dispatches ready event-loop callbacks until none is ready; returns how many ran. */
int fake_vm__run(struct vm *vm);
/* Interrupts sent through the irqfd of gsi since the last call. */
uint64_t fake_vm__irqs(struct vm *vm, uint32_t gsi);

int fake_vm__faults(struct vm *vm);
/* "<dev>: <message>" of the last guest fault, "" if none. */
const char *fake_vm__fault_msg(struct vm *vm);
const char *fake_vm__cmdline(struct vm *vm);
int fake_vm__ev_count(struct vm *vm);

#endif
