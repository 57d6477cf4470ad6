/* SPDX-License-Identifier: Apache-2.0 */
/* CPUID filter: per-vCPU APIC ids, hypervisor bit, KVM signature, removed features. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/core.h"

static struct kvm_cpuid2 *sample(void)
{
	const uint32_t n = 7;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
	c->nent = n;
	c->entries[0] = (struct kvm_cpuid_entry2){.function = 0, .eax = 0xd};
	c->entries[1] = (struct kvm_cpuid_entry2){.function = 1,
						  .eax = 0x806ea,
						  .ebx = 0xff0f0800,
						  .ecx = 0x7ffafbff,
						  .edx = 0xbfebfbff};
	c->entries[2] = (struct kvm_cpuid_entry2){
		.function = 5, .eax = 0x40, .ebx = 0x40, .ecx = 3, .edx = 0x11142120};
	c->entries[3] =
		(struct kvm_cpuid_entry2){.function = 0xb, .index = 0, .ecx = 0x100, .edx = 77};
	c->entries[4] =
		(struct kvm_cpuid_entry2){.function = 0xb, .index = 1, .ecx = 0x201, .edx = 77};
	c->entries[5] = (struct kvm_cpuid_entry2){.function = 0x40000000, .eax = 0x40000001};
	c->entries[6] = (struct kvm_cpuid_entry2){.function = 0x80000001, .ecx = 0xffffffff};
	return c;
}

Test(cpuid, apic_ids_per_vcpu)
{
	for (uint32_t id = 0; id < 4; id++) {
		struct kvm_cpuid2 *c = sample();
		cpuid__filter(c, id, 4);
		cr_expect_eq(c->entries[1].ebx >> 24, id, "leaf 1 initial APIC id");
		cr_expect_eq((c->entries[1].ebx >> 16) & 0xff, 4, "logical processor count");
		cr_expect_eq(c->entries[1].ebx & 0xffff, 0x0800, "brand/clflush kept");
		cr_expect_eq(c->entries[3].edx, id, "leaf 0xb x2APIC id, level 0");
		cr_expect_eq(c->entries[4].edx, id, "leaf 0xb x2APIC id, level 1");
		cr_expect_eq(c->entries[4].ecx & 0xff, 1, "leaf 0xb level number");
		free(c);
	}
}

Test(cpuid, hypervisor_and_removed_features)
{
	struct kvm_cpuid2 *c = sample();
	cpuid__filter(c, 0, 1);
	cr_expect(c->entries[1].ecx & (1u << 31), "hypervisor bit");
	cr_expect_not(c->entries[1].ecx & (1u << 3), "MONITOR/MWAIT cleared");
	cr_expect_not(c->entries[1].ecx & (1u << 5), "VMX cleared");
	cr_expect_not(c->entries[1].edx & (1u << 28), "no HTT with one vCPU");
	cr_expect_eq(c->entries[1].eax, 0x806ea, "signature unchanged");
	cr_expect_eq(c->entries[2].eax | c->entries[2].ebx | c->entries[2].ecx | c->entries[2].edx,
		     0, "leaf 5 (MONITOR) zeroed");
	cr_expect_not(c->entries[6].ecx & (1u << 2), "SVM cleared");
	free(c);
}

Test(cpuid, kvm_signature)
{
	struct kvm_cpuid2 *c = sample();
	cpuid__filter(c, 1, 2);
	char sig[13] = {0};
	memcpy(sig, &c->entries[5].ebx, 4);
	memcpy(sig + 4, &c->entries[5].ecx, 4);
	memcpy(sig + 8, &c->entries[5].edx, 4);
	cr_expect_str_eq(sig, "KVMKVMKVM");
	cr_expect_geq(c->entries[5].eax, 0x40000001, "features leaf reachable");
	cr_expect(c->entries[1].edx & (1u << 28), "HTT with two vCPUs");
	free(c);
}
