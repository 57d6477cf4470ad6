/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpuid.c - turn KVM_GET_SUPPORTED_CPUID into what one vCPU of this VM reports:
 * its own APIC id (leaves 1 and 0xB), the hypervisor bit, the KVM signature leaves
 * (so the guest uses kvmclock and the paravirt features), and nothing the guest
 * cannot use here (MONITOR/MWAIT, nested VMX/SVM, thermal and power management).
 */
#include <linux/kvm.h>
#include <string.h>

#include "vmm/core.h"

#define LEAF1_ECX_MONITOR      (1u << 3)
#define LEAF1_ECX_VMX	       (1u << 5)
#define LEAF1_ECX_TSC_DEADLINE (1u << 24)
#define LEAF1_ECX_HYPERVISOR   (1u << 31)
#define LEAF1_EDX_HTT	       (1u << 28)
#define EXT1_ECX_SVM	       (1u << 2)
#define KVM_SIG_LEAF	       0x40000000u
#define KVM_FEAT_LEAF	       0x40000001u

static void set_signature(struct kvm_cpuid_entry2 *e)
{
	static const char sig[12] = "KVMKVMKVM\0\0\0";
	e->eax = KVM_FEAT_LEAF;
	memcpy(&e->ebx, sig, 4);
	memcpy(&e->ecx, sig + 4, 4);
	memcpy(&e->edx, sig + 8, 4);
}

static void filter_one(struct kvm_cpuid_entry2 *e, uint32_t id, uint32_t ncpus)
{
	switch (e->function) {
	case 1:
		e->ebx = (e->ebx & 0x0000ffffu) | (id << 24) | ((ncpus & 0xffu) << 16);
		e->ecx &= ~(LEAF1_ECX_MONITOR | LEAF1_ECX_VMX);
		e->ecx |= LEAF1_ECX_HYPERVISOR;
		if (ncpus > 1)
			e->edx |= LEAF1_EDX_HTT;
		else
			e->edx &= ~LEAF1_EDX_HTT;
		break;
	case 5: /* MONITOR/MWAIT */
	case 6: /* thermal and power management */
		e->eax = e->ebx = e->ecx = e->edx = 0;
		break;
	case 0xb: /* extended topology: x2APIC id in EDX, level number in ECX */
		e->edx = id;
		e->ecx = (e->ecx & ~0xffu) | (e->index & 0xffu);
		break;
	case 0x80000001:
		e->ecx &= ~EXT1_ECX_SVM;
		break;
	case KVM_SIG_LEAF:
		set_signature(e);
		break;
	default:
		break;
	}
}

void cpuid__filter(struct kvm_cpuid2 *c, uint32_t id, uint32_t ncpus)
{
	for (uint32_t i = 0; i < c->nent; i++)
		filter_one(&c->entries[i], id, ncpus);
}
