/* SPDX-License-Identifier: Apache-2.0 */
/* MP table: checksums, pointers and the entries Linux relies on to find CPUs and IRQs. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "vmm/core.h"

#define GPA 0x9fc00ULL

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

struct parsed {
	unsigned cpus, bsp, buses, ioapics, intsrc, lint;
	uint8_t cpu_ids[VMM_MAX_VCPUS];
	uint8_t ioapic_id;
	bool pin_seen[24];
	bool pin_ok;
};

static void parse(const uint8_t *buf, unsigned ncpus, struct parsed *p)
{
	memset(p, 0, sizeof(*p));
	p->pin_ok = true;
	cr_assert_arr_eq(buf, "_MP_", 4);
	cr_assert_eq(buf[8], 1, "floating pointer length");
	cr_assert_eq(buf[9], 4, "spec 1.4");
	cr_assert_eq(sum(buf, 16), 0, "floating pointer checksum");
	uint32_t cfg = get32(buf + 4);
	cr_assert_eq(cfg, GPA + 16, "config table right after the pointer");
	const uint8_t *h = buf + (cfg - GPA);
	cr_assert_arr_eq(h, "PCMP", 4);
	uint16_t len = get16(h + 4);
	cr_assert_eq(sum(h, len), 0, "config table checksum");
	cr_assert_eq(16 + len, mptable__size(ncpus));
	cr_expect_eq(get32(h + 36), 0xfee00000);
	const uint8_t *e = h + 44, *end = h + len;
	unsigned count = 0;
	while (e < end) {
		count++;
		switch (e[0]) {
		case 0:
			p->cpu_ids[p->cpus++] = e[1];
			if (e[3] & 2)
				p->bsp++;
			cr_expect(e[3] & 1, "cpu enabled");
			e += 20;
			break;
		case 1:
			p->buses++;
			cr_expect_arr_eq(e + 2, "ISA   ", 6);
			e += 8;
			break;
		case 2:
			p->ioapics++;
			p->ioapic_id = e[1];
			cr_expect_eq(get32(e + 4), 0xfec00000);
			e += 8;
			break;
		case 3:
			p->intsrc++;
			if (e[7] < 24) {
				p->pin_seen[e[7]] = true;
				p->pin_ok &= e[5] == e[7]; /* ISA IRQ n -> pin n */
			}
			e += 8;
			break;
		case 4:
			p->lint++;
			e += 8;
			break;
		default:
			cr_assert_fail("unknown entry type %u", e[0]);
		}
	}
	cr_expect_eq(e, end);
	cr_expect_eq(count, get16(h + 34), "entry count");
}

Test(mptable, two_cpus)
{
	uint8_t buf[1024];
	struct parsed p;
	int n = mptable__build(buf, sizeof(buf), GPA, 2);
	cr_assert_gt(n, 0);
	parse(buf, 2, &p);
	cr_expect_eq(p.cpus, 2);
	cr_expect_eq(p.bsp, 1);
	cr_expect_eq(p.cpu_ids[0], 0);
	cr_expect_eq(p.cpu_ids[1], 1);
	cr_expect_eq(p.buses, 1);
	cr_expect_eq(p.ioapics, 1);
	cr_expect_geq(p.ioapic_id, 2, "IOAPIC id must not clash with a LAPIC id");
	cr_expect_eq(p.intsrc, 24);
	for (int i = 0; i < 24; i++)
		cr_expect(p.pin_seen[i], "pin %d routed (ISA 0-15 and virtio GSIs up to 23)", i);
	cr_expect(p.pin_ok);
	cr_expect_eq(p.lint, 2, "LINT0 ExtINT and LINT1 NMI");
}

Test(mptable, max_cpus_fit_below_1k)
{
	uint8_t buf[1024];
	struct parsed p;
	cr_assert_leq(mptable__size(VMM_MAX_VCPUS), 1024, "1 KiB reserved at 0x9fc00");
	cr_assert_gt(mptable__build(buf, sizeof(buf), GPA, VMM_MAX_VCPUS), 0);
	parse(buf, VMM_MAX_VCPUS, &p);
	cr_expect_eq(p.cpus, VMM_MAX_VCPUS);
	cr_expect_eq(p.bsp, 1);
}

Test(mptable, rejects_bad_arguments)
{
	uint8_t buf[1024];
	cr_expect_lt(mptable__build(buf, sizeof(buf), GPA, 0), 0);
	cr_expect_lt(mptable__build(buf, sizeof(buf), GPA, VMM_MAX_VCPUS + 1), 0);
	cr_expect_eq(mptable__build(buf, 100, GPA, 2), -E2BIG);
	cr_expect_lt(mptable__build(buf, sizeof(buf), 0xffffff00ULL, 2), 0);
}
