/* SPDX-License-Identifier: Apache-2.0 */
/* Guest RAM layout, E820 map, vm__gpa-style bounds, kernel command line. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm/core.h"

/* Address space only (PROT_NONE, never touched): the tests check pointer arithmetic. */
static uint8_t *reserve(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(p, MAP_FAILED);
	return p;
}

/* Lays out size bytes of guest RAM over reserved address space; returns the base. */
static uint8_t *laid_out(struct vm_mem *m, uint64_t size)
{
	uint8_t *fake = reserve(size);
	cr_assert_eq(mem__layout(m, fake, size), 0);
	return fake;
}

/* The E820 map of a guest with ram bytes, in a table of max entries. */
static int e820_of(uint64_t ram, struct e820_entry *e, int max)
{
	struct vm_mem m;
	laid_out(&m, ram);
	return mem__e820(&m, e, max);
}

Test(layout, small_ram_is_all_low)
{
	struct vm_mem m;
	laid_out(&m, 128ULL << 20);
	cr_expect_eq(m.low_size, 128ULL << 20);
	cr_expect_eq(m.high_size, 0);
}

Test(layout, big_ram_splits_around_the_mmio_hole)
{
	struct vm_mem m;
	uint8_t *fake = laid_out(&m, 4ULL << 30);
	cr_expect_eq(m.low_size, VM_MMIO_START);
	cr_expect_eq(m.high_size, (4ULL << 30) - VM_MMIO_START);
	/* the first byte above 4 GiB follows the last low byte in the host mapping */
	cr_expect_eq(mem__gpa(&m, VM_HIGH_RAM_START, 1), fake + VM_MMIO_START);
	cr_expect_null(mem__gpa(&m, VM_MMIO_START, 1));
	cr_expect_null(mem__gpa(&m, VM_MMIO_START - 1, 2), "range crossing into the hole");
}

Test(layout, rejects_bad_sizes)
{
	struct vm_mem m;
	uint8_t *fake = reserve(1 << 20);
	cr_expect_lt(mem__layout(&m, fake, 0), 0);
	cr_expect_lt(mem__layout(&m, fake, 1ULL << 20), 0);
	cr_expect_lt(mem__layout(&m, fake, (128ULL << 20) + 1), 0);
	cr_expect_lt(mem__layout(&m, fake, 1ULL << 50), 0);
}

Test(gpa, bounds)
{
	struct vm_mem m;
	const uint64_t sz = 64ULL << 20;
	uint8_t *fake = laid_out(&m, sz);
	cr_expect_eq(mem__gpa(&m, 0, sz), fake);
	cr_expect_eq(mem__gpa(&m, sz - 1, 1), fake + sz - 1);
	cr_expect_eq(mem__gpa(&m, sz, 0), fake + sz, "len 0 at the end of RAM is allowed");
	cr_expect_null(mem__gpa(&m, sz, 1), "one past the end");
	cr_expect_null(mem__gpa(&m, sz - 1, 2), "straddles the end");
	cr_expect_null(mem__gpa(&m, 0, sz + 1));
	cr_expect_null(mem__gpa(&m, sz + 1, 0));
}

Test(gpa, overflow_and_wrap)
{
	struct vm_mem m;
	laid_out(&m, 4ULL << 30);
	cr_expect_null(mem__gpa(&m, UINT64_MAX, 1));
	cr_expect_null(mem__gpa(&m, UINT64_MAX, 0));
	cr_expect_null(mem__gpa(&m, 0x1000, UINT64_MAX));
	cr_expect_null(mem__gpa(&m, 0x1000, UINT64_MAX - 0xfff), "gpa + len wraps to 0");
	cr_expect_null(mem__gpa(&m, VM_HIGH_RAM_START + 0x1000, UINT64_MAX - 0x800));
	cr_expect_null(mem__gpa(&m, UINT64_MAX - 0xfff, 0x2000));
	cr_expect_null(mem__gpa(NULL, 0, 1));
}

Test(gpa, vm_wrapper_rejects_null_vm)
{
	cr_expect_null(vm__gpa(NULL, 0, 0));
}

Test(e820, small_guest)
{
	struct e820_entry e[VM_E820_MAX];
	int n = e820_of(128ULL << 20, e, VM_E820_MAX);
	cr_assert_eq(n, 3);
	cr_expect_eq(e[0].addr, 0);
	cr_expect_eq(e[0].type, E820_RAM);
	cr_expect_eq(e[0].addr + e[0].size, BOOT_MPTABLE, "RAM stops below the MP table");
	cr_expect_eq(e[1].type, E820_RESERVED);
	cr_expect_eq(e[1].addr, BOOT_MPTABLE);
	cr_expect_eq(e[1].addr + e[1].size, 0x100000);
	cr_expect_eq(e[2].addr, 0x100000);
	cr_expect_eq(e[2].addr + e[2].size, 128ULL << 20);
	cr_expect_eq(e[2].type, E820_RAM);
}

Test(e820, big_guest_has_high_ram_and_no_hole_ram)
{
	struct e820_entry e[VM_E820_MAX];
	int n = e820_of(6ULL << 30, e, VM_E820_MAX);
	cr_assert_eq(n, 4);
	uint64_t ram = 0;
	for (int i = 0; i < n; i++) {
		if (e[i].type == E820_RAM)
			ram += e[i].size;
		cr_expect(e[i].addr + e[i].size <= VM_MMIO_START || e[i].addr >= VM_HIGH_RAM_START,
			  "entry %d overlaps the MMIO hole", i);
	}
	cr_expect_eq(e[3].addr, VM_HIGH_RAM_START);
	cr_expect_eq(ram + (0x100000 - BOOT_MPTABLE), 6ULL << 30, "all RAM but the legacy area");
}

Test(e820, too_small_table)
{
	struct e820_entry e[2];
	cr_expect_lt(e820_of(128ULL << 20, e, 2), 0);
}

Test(cmdline, builds_space_separated)
{
	struct cmdline c;
	cmdline__init(&c);
	cr_assert_eq(cmdline__add(&c, "console=ttyS0"), 0);
	cr_assert_eq(cmdline__add(&c, "reboot=k panic=-1"), 0);
	cr_assert_eq(cmdline__add(&c, ""), 0);
	cr_assert_eq(cmdline__add(&c, "virtio_mmio.device=4K@0xd0000000:5"), 0);
	cr_expect_str_eq(c.buf,
			 "console=ttyS0 reboot=k panic=-1 virtio_mmio.device=4K@0xd0000000:5");
	cr_expect_eq(c.len, strlen(c.buf));
}

Test(cmdline, bounded_and_unchanged_on_overflow)
{
	struct cmdline c;
	char big[BOOT_CMDLINE_MAX];
	cmdline__init(&c);
	memset(big, 'a', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\0'; /* 2046 chars: fits alone with the NUL */
	cr_assert_eq(cmdline__add(&c, big), 0);
	cr_expect_eq(cmdline__add(&c, "x"), -E2BIG, "a space and x would not fit");
	cr_expect_eq(c.len, sizeof(big) - 2);
	cr_expect_eq(c.buf[c.len], '\0');
	char bigger[BOOT_CMDLINE_MAX + 1];
	cmdline__init(&c);
	memset(bigger, 'b', sizeof(bigger) - 1);
	bigger[sizeof(bigger) - 1] = '\0';
	cr_expect_eq(cmdline__add(&c, bigger), -E2BIG, "no room for the terminator");
	cr_expect_eq(c.len, 0);
	bigger[sizeof(bigger) - 2] = '\0';
	cr_expect_eq(cmdline__add(&c, bigger), 0, "2047 characters and the NUL fit");
}

Test(cmdline, rejects_control_characters)
{
	struct cmdline c;
	cmdline__init(&c);
	cr_expect_eq(cmdline__add(&c, "a\nb"), -EINVAL);
	cr_expect_eq(cmdline__add(&c, "a\tb"), -EINVAL);
	cr_expect_eq(c.len, 0);
}
