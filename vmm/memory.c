/* SPDX-License-Identifier: Apache-2.0 */
/*
 * memory.c - guest RAM layout and guest-physical address translation.
 *
 * RAM is one anonymous mapping. Guest-physical [0, low) maps its start, where
 * low = min(size, VM_MMIO_START); the rest appears at [4 GiB, 4 GiB + high).
 */
#include <errno.h>

#include "vmm/core.h"

#define MEM_MIN (16ULL << 20)
#define MEM_MAX (64ULL << 30)

int mem__layout(struct vm_mem *m, uint8_t *host, uint64_t size)
{
	if (size < MEM_MIN || size > MEM_MAX || (size & 0xfff))
		return -EINVAL;
	m->host = host;
	m->size = size;
	m->low_size = size < VM_MMIO_START ? size : VM_MMIO_START;
	m->high_size = size - m->low_size;
	return 0;
}

/* [gpa, gpa + len) inside [base, base + size)? Written so nothing can overflow. */
static bool range_in(uint64_t gpa, uint64_t len, uint64_t base, uint64_t size)
{
	if (gpa < base)
		return false;
	uint64_t off = gpa - base;
	return off <= size && len <= size - off;
}

void *mem__gpa(const struct vm_mem *m, uint64_t gpa, uint64_t len)
{
	if (!m || !m->host)
		return NULL;
	if (range_in(gpa, len, 0, m->low_size))
		return m->host + gpa;
	if (m->high_size && range_in(gpa, len, VM_HIGH_RAM_START, m->high_size))
		return m->host + m->low_size + (gpa - VM_HIGH_RAM_START);
	return NULL;
}

static int e820_add(struct e820_entry *out, int n, int max, uint64_t addr, uint64_t size,
		    uint32_t type)
{
	if (n < 0 || n >= max)
		return -E2BIG;
	out[n] = (struct e820_entry){.addr = addr, .size = size, .type = type};
	return n + 1;
}

int mem__e820(const struct vm_mem *m, struct e820_entry *out, int max)
{
	int n = 0;

	/* Low memory up to the MP table, which sits in the last KiB below 640 KiB; the
	 * legacy area up to 1 MiB is reserved. */
	n = e820_add(out, n, max, 0, BOOT_MPTABLE, E820_RAM);
	n = e820_add(out, n, max, BOOT_MPTABLE, BOOT_EBDA_END - BOOT_MPTABLE, E820_RESERVED);
	n = e820_add(out, n, max, BOOT_EBDA_END, m->low_size - BOOT_EBDA_END, E820_RAM);
	if (m->high_size)
		n = e820_add(out, n, max, VM_HIGH_RAM_START, m->high_size, E820_RAM);
	return n;
}
