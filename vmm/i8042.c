/* SPDX-License-Identifier: Apache-2.0 */
/*
 * i8042.c - just enough of the PC keyboard controller for the guest to reset the
 * machine (reboot=k): status reads say "no data, input buffer empty", and the
 * command 0xFE on port 0x64 (pulse the reset line) ends the VM.
 */
#include <string.h>

#include "vmm/core.h"

#define I8042_DATA  0x60
#define I8042_CMD   0x64
#define I8042_RESET 0xfe

static void i8042_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	memset(data, 0, len);
}

static void i8042_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct vm *vm = opaque;
	if (off == I8042_CMD - I8042_DATA && ((const uint8_t *)data)[0] == I8042_RESET)
		vm__guest_reset(vm, "i8042 reset");
}

static const struct vm_io_ops i8042_ops = {.read = i8042_read, .write = i8042_write};

int i8042__create(struct vm *vm)
{
	return vm__pio_register(vm, I8042_DATA, I8042_CMD - I8042_DATA + 1, &i8042_ops, vm);
}
