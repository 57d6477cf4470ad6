/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mptable.c - Intel MultiProcessor Specification 1.4 tables. The guest has no ACPI,
 * so this is how Linux finds the CPUs, the IOAPIC and the ISA/virtio interrupt pins.
 * Layout at gpa: floating pointer (16 bytes), then the configuration table.
 */
#include <errno.h>
#include <string.h>

#include "vmm/core.h"

#define MP_FP_SIZE    16
#define MP_HDR_SIZE   44
#define MP_CPU_SIZE   20
#define MP_ENTRY_SIZE 8
#define MP_IRQ_PINS   24
#define MP_APIC_VER   0x14
#define MP_IOAPIC_VER 0x11

enum { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC };
enum { MP_IRQ_INT = 0, MP_IRQ_NMI = 1, MP_IRQ_EXTINT = 3 };

size_t mptable__size(unsigned ncpus)
{
	return MP_FP_SIZE + MP_HDR_SIZE + (size_t)ncpus * MP_CPU_SIZE +
	       (2 + MP_IRQ_PINS + 2) * MP_ENTRY_SIZE;
}

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return (uint8_t)(0x100 - s);
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static uint8_t *put_cpu(uint8_t *p, unsigned id)
{
	memset(p, 0, MP_CPU_SIZE);
	p[0] = MP_PROCESSOR;
	p[1] = (uint8_t)id;
	p[2] = MP_APIC_VER;
	p[3] = 0x01 | (id == 0 ? 0x02 : 0); /* enabled, BSP */
	put32(p + 4, 0x600);		    /* family 6 signature */
	put32(p + 8, 0x201);		    /* FPU, APIC */
	return p + MP_CPU_SIZE;
}

static uint8_t *put_irq(uint8_t *p, uint8_t type, uint8_t kind, uint8_t src_irq, uint8_t dst_id,
			uint8_t dst_pin)
{
	memset(p, 0, MP_ENTRY_SIZE);
	p[0] = type;
	p[1] = kind;
	/* p[2..3] flags 0: polarity and trigger conform to the bus (ISA: edge, high) */
	p[4] = 0; /* source bus: ISA */
	p[5] = src_irq;
	p[6] = dst_id;
	p[7] = dst_pin;
	return p + MP_ENTRY_SIZE;
}

int mptable__build(uint8_t *buf, size_t cap, uint64_t gpa, unsigned ncpus)
{
	size_t size = mptable__size(ncpus);
	uint8_t ioapic_id = (uint8_t)ncpus;

	if (ncpus == 0 || ncpus > VMM_MAX_VCPUS || gpa > UINT32_MAX - size)
		return -EINVAL;
	if (cap < size)
		return -E2BIG;
	memset(buf, 0, size);

	uint8_t *fp = buf, *hdr = buf + MP_FP_SIZE, *p = hdr + MP_HDR_SIZE;
	memcpy(fp, "_MP_", 4);
	put32(fp + 4, (uint32_t)(gpa + MP_FP_SIZE));
	fp[8] = 1; /* length in 16-byte units */
	fp[9] = 4; /* spec revision 1.4 */

	for (unsigned i = 0; i < ncpus; i++)
		p = put_cpu(p, i);
	p[0] = MP_BUS;
	memcpy(p + 2, "ISA   ", 6);
	p += MP_ENTRY_SIZE;
	p[0] = MP_IOAPIC;
	p[1] = ioapic_id;
	p[2] = MP_IOAPIC_VER;
	p[3] = 0x01; /* enabled */
	put32(p + 4, MPTABLE_IOAPIC_ADDR);
	p += MP_ENTRY_SIZE;
	for (unsigned pin = 0; pin < MP_IRQ_PINS; pin++)
		p = put_irq(p, MP_INTSRC, MP_IRQ_INT, (uint8_t)pin, ioapic_id, (uint8_t)pin);
	p = put_irq(p, MP_LINTSRC, MP_IRQ_EXTINT, 0, 0xff, 0);
	p = put_irq(p, MP_LINTSRC, MP_IRQ_NMI, 0, 0xff, 1);

	size_t table = (size_t)(p - hdr);
	memcpy(hdr, "PCMP", 4);
	put16(hdr + 4, (uint16_t)table);
	hdr[6] = 4;
	memcpy(hdr + 8, "NUCLEUS ", 8);
	memcpy(hdr + 16, "MICROVM     ", 12);
	put16(hdr + 34, (uint16_t)(ncpus + 2 + MP_IRQ_PINS + 2));
	put32(hdr + 36, MPTABLE_LAPIC_ADDR);
	hdr[7] = checksum(hdr, table);
	fp[10] = checksum(fp, MP_FP_SIZE);
	return (int)size;
}
