/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VM smoke suite: proves that the test bed gives real KVM (natively or nested).
 * Opens /dev/kvm, makes a VM with one vCPU, runs a few real-mode instructions that
 * do port I/O and reach HLT, and checks what the guest wrote.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_MEM  0x10000
#define GUEST_LOAD 0x1000

struct tiny_vm {
	int kvm, vm, vcpu;
	uint8_t *mem;
	struct kvm_run *run;
	size_t run_size;
};

static void tiny_vm_open(struct tiny_vm *t, const uint8_t *code, size_t len)
{
	t->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	cr_assert_geq(t->kvm, 0, "open /dev/kvm: %s", strerror(errno));
	t->vm = ioctl(t->kvm, KVM_CREATE_VM, 0);
	cr_assert_geq(t->vm, 0, "KVM_CREATE_VM: %s", strerror(errno));
	t->mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(t->mem, MAP_FAILED);
	memcpy(t->mem + GUEST_LOAD, code, len);
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = GUEST_MEM,
		.userspace_addr = (uintptr_t)t->mem,
	};
	cr_assert_eq(ioctl(t->vm, KVM_SET_USER_MEMORY_REGION, &region), 0, "%s", strerror(errno));
	t->vcpu = ioctl(t->vm, KVM_CREATE_VCPU, 0);
	cr_assert_geq(t->vcpu, 0, "KVM_CREATE_VCPU: %s", strerror(errno));
	int sz = ioctl(t->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	cr_assert_gt(sz, 0);
	t->run_size = (size_t)sz;
	t->run = mmap(NULL, t->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, t->vcpu, 0);
	cr_assert_neq(t->run, MAP_FAILED);

	struct kvm_sregs sregs;
	cr_assert_eq(ioctl(t->vcpu, KVM_GET_SREGS, &sregs), 0);
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	cr_assert_eq(ioctl(t->vcpu, KVM_SET_SREGS, &sregs), 0);
	struct kvm_regs regs = { .rip = GUEST_LOAD, .rflags = 0x2 };
	cr_assert_eq(ioctl(t->vcpu, KVM_SET_REGS, &regs), 0);
}

static void tiny_vm_close(struct tiny_vm *t)
{
	munmap(t->run, t->run_size);
	munmap(t->mem, GUEST_MEM);
	close(t->vcpu);
	close(t->vm);
	close(t->kvm);
}

/* A hang fails the test (criterion kills it) rather than the nested boot. */
TestSuite(kvm, .timeout = 600);

Test(kvm, api_version)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	cr_assert_geq(kvm, 0, "open /dev/kvm: %s", strerror(errno));
	cr_expect_eq(ioctl(kvm, KVM_GET_API_VERSION, 0), KVM_API_VERSION);
	cr_expect_gt(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY), 0);
	cr_expect_gt(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP), 0);
	cr_expect_gt(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD), 0);
	cr_expect_gt(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD), 0);
	close(kvm);
}

/* Real mode: out 0x3f8 for each byte of "KVM\n", computing one of them (AL + BL),
 * then hlt. The host checks every byte, its port, its size and the final state. */
Test(kvm, port_io_until_hlt)
{
	static const uint8_t code[] = {
		0xba, 0xf8, 0x03,       /* mov dx, 0x3f8 */
		0xb0, 'K',              /* mov al, 'K'   */
		0xee,                   /* out dx, al    */
		0xb0, 'U', 0xb3, 0x01,  /* mov al, 'U'; mov bl, 1 */
		0x00, 0xd8,             /* add al, bl  -> 'V' */
		0xee,                   /* out dx, al    */
		0xb0, 'M', 0xee,        /* mov al, 'M'; out dx, al */
		0xb0, '\n', 0xee,       /* mov al, '\n'; out dx, al */
		0xf4,                   /* hlt */
	};
	struct tiny_vm t;
	tiny_vm_open(&t, code, sizeof(code));

	char seen[16] = { 0 };
	size_t n = 0;
	for (;;) {
		cr_assert_eq(ioctl(t.vcpu, KVM_RUN, 0), 0, "KVM_RUN: %s", strerror(errno));
		if (t.run->exit_reason == KVM_EXIT_HLT)
			break;
		cr_assert_eq(t.run->exit_reason, KVM_EXIT_IO, "unexpected exit %u", t.run->exit_reason);
		cr_assert_eq(t.run->io.direction, KVM_EXIT_IO_OUT);
		cr_assert_eq(t.run->io.port, 0x3f8);
		cr_assert_eq(t.run->io.size, 1);
		cr_assert_eq(t.run->io.count, 1);
		cr_assert_lt(n, sizeof(seen) - 1);
		seen[n++] = *((char *)t.run + t.run->io.data_offset);
	}
	cr_expect_str_eq(seen, "KVM\n");

	struct kvm_regs regs;
	cr_assert_eq(ioctl(t.vcpu, KVM_GET_REGS, &regs), 0);
	cr_expect_eq(regs.rip, GUEST_LOAD + sizeof(code), "rip after hlt: %#llx", regs.rip);
	cr_expect_eq(regs.rax & 0xff, '\n');
	tiny_vm_close(&t);
}

/* The guest reads a port (in al, dx), the host answers, the guest stores the value in
 * its memory and halts: both directions of I/O and guest memory writes are real. */
Test(kvm, port_in_and_memory_write)
{
	static const uint8_t code[] = {
		0xba, 0x00, 0x05,       /* mov dx, 0x500 */
		0xec,                   /* in al, dx     */
		0xa2, 0x00, 0x20,       /* mov [0x2000], al */
		0xf4,                   /* hlt */
	};
	struct tiny_vm t;
	tiny_vm_open(&t, code, sizeof(code));
	for (;;) {
		cr_assert_eq(ioctl(t.vcpu, KVM_RUN, 0), 0, "KVM_RUN: %s", strerror(errno));
		if (t.run->exit_reason == KVM_EXIT_HLT)
			break;
		cr_assert_eq(t.run->exit_reason, KVM_EXIT_IO);
		cr_assert_eq(t.run->io.direction, KVM_EXIT_IO_IN);
		cr_assert_eq(t.run->io.port, 0x500);
		*((uint8_t *)t.run + t.run->io.data_offset) = 0x5a;
	}
	cr_expect_eq(t.mem[0x2000], 0x5a);
	tiny_vm_close(&t);
}
