/* SPDX-License-Identifier: Apache-2.0 */
/*
 * status.c - the status port (VM_STATUS_PORT): the guest init writes
 * VM_STATUS_READY once its agent listens (the boot timer stops there) and
 * VM_STATUS_SHUTDOWN right before it resets for a clean shutdown. Reads return 0.
 * Also reachable as MMIO at VM_STATUS_MMIO (offset 0) for guests without ioperm().
 */
#include <string.h>

#include "vmm/core.h"

static void status_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	memset(data, 0, len);
}

static void status_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct vm *vm = opaque;
	uint8_t v = ((const uint8_t *)data)[0];

	if (off != 0)
		return;
	if (v == VM_STATUS_READY) {
		long long expected = -1;

		vm__phase(VM_PH_READY);
		long long us = (long long)((vm__now_ns() - vm->start_ns) / 1000);
		if (atomic_compare_exchange_strong(&vm->boot_us, &expected, us))
			vm__log(vm, "guest ready after %lld us", us);
	} else if (v == VM_STATUS_SHUTDOWN) {
		vm__phase(VM_PH_SHUTDOWN);
		atomic_store(&vm->shutdown_intent, true);
#ifdef NUCLEUS_SECCOMP_TEST_TRIGGER
	} else if (v == VM_STATUS_TEST_SIGSYS) {
		vm__seccomp_test_trigger(vm, "vcpu");
#endif
	}
}

static const struct vm_io_ops status_ops = {.read = status_read, .write = status_write};

int status__create(struct vm *vm)
{
	int r = vm__pio_register(vm, VM_STATUS_PORT, 1, &status_ops, vm);
	if (r < 0)
		return r;
	return vm__mmio_register(vm, VM_STATUS_MMIO, 0x1000, &status_ops, vm);
}
