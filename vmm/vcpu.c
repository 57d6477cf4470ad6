/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vcpu.c - vCPU creation, boot state (BSP only: the APs wait for INIT/SIPI in the
 * in-kernel LAPIC), one thread per vCPU running KVM_RUN, pause/resume/kick.
 *
 * Kicking: the kicker sets its request flag, then run->immediate_exit, then sends
 * SIGUSR1 to the thread. A vCPU inside KVM_RUN leaves it with EINTR; one about to
 * enter it leaves at once because of immediate_exit. The thread clears
 * immediate_exit before it looks at the flags, so no request is lost.
 *
 * Seccomp (seccomp.c): a vCPU thread first loads its own filter, built by vm__start(),
 * then waits at a gate that vm__lockdown() opens once the event loop has loaded its own;
 * only then does it enter KVM_RUN.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "vmm/core.h"

#define VCPU_STACK (1u << 20) /* a vCPU thread's stack */

#define KICK_SIGNAL VM_KICK_SIGNAL

#define MSR_IA32_SYSENTER_CS	0x174
#define MSR_IA32_SYSENTER_ESP	0x175
#define MSR_IA32_SYSENTER_EIP	0x176
#define MSR_IA32_TSC		0x10
#define MSR_IA32_MISC_ENABLE	0x1a0
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_KERNEL_GS_BASE	0xc0000102
#define MISC_ENABLE_FAST_STRING 1ULL

#define APIC_LVT_LINT0	 0x350
#define APIC_LVT_LINT1	 0x360
#define APIC_MODE_NMI	 0x4
#define APIC_MODE_EXTINT 0x7

static int get_supported_cpuid(struct vm *vm)
{
	for (uint32_t n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = n;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			vm->cpuid = c;
			return 0;
		}
		int e = errno;
		free(c);
		if (e != E2BIG)
			return -e;
	}
	return -E2BIG;
}

static int set_cpuid(struct vcpu *v)
{
	struct kvm_cpuid2 *src = v->vm->cpuid;
	size_t sz = sizeof(*src) + src->nent * sizeof(src->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	if (!c)
		return -ENOMEM;
	memcpy(c, src, sz);
	cpuid__filter(c, v->id, v->vm->nr_vcpus);
	int r = ioctl(v->fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	free(c);
	return r;
}

static int set_msrs(struct vcpu *v)
{
	static const struct {
		uint32_t index;
		uint64_t data;
	} boot[] = {
		{MSR_IA32_SYSENTER_CS, 0},
		{MSR_IA32_SYSENTER_ESP, 0},
		{MSR_IA32_SYSENTER_EIP, 0},
		{MSR_STAR, 0},
		{MSR_CSTAR, 0},
		{MSR_KERNEL_GS_BASE, 0},
		{MSR_SYSCALL_MASK, 0},
		{MSR_LSTAR, 0},
		{MSR_IA32_TSC, 0},
		{MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
	};
	const size_t n = sizeof(boot) / sizeof(boot[0]);
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
	if (!m)
		return -ENOMEM;
	m->nmsrs = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		m->entries[i].index = boot[i].index;
		m->entries[i].data = boot[i].data;
	}
	int r = ioctl(v->fd, KVM_SET_MSRS, m);
	free(m);
	if (r < 0)
		return -errno;
	return r == (int)n ? 0 : -EIO;
}

static void lvt_set_mode(struct kvm_lapic_state *s, unsigned reg, uint32_t mode)
{
	uint32_t val;
	memcpy(&val, s->regs + reg, 4);
	val = (val & ~0x700u) | (mode << 8);
	memcpy(s->regs + reg, &val, 4);
}

static int set_lapic(struct vcpu *v)
{
	struct kvm_lapic_state s;
	if (ioctl(v->fd, KVM_GET_LAPIC, &s) < 0)
		return -errno;
	lvt_set_mode(&s, APIC_LVT_LINT0, APIC_MODE_EXTINT);
	lvt_set_mode(&s, APIC_LVT_LINT1, APIC_MODE_NMI);
	return ioctl(v->fd, KVM_SET_LAPIC, &s) < 0 ? -errno : 0;
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool l, bool db)
{
	*s = (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = sel,
		.type = type,
		.present = 1,
		.dpl = 0,
		.db = db,
		.s = 1,
		.l = l,
		.g = 1,
	};
}

/* PVH: 32-bit flat protected mode, paging off. 64-bit: long mode, identity map. */
static int set_boot_regs(struct vcpu *v, uint64_t entry, bool pvh)
{
	struct kvm_sregs sregs;
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	if (pvh)
		seg(&sregs.cs, 0x08, 0xb, false, true);
	else
		seg(&sregs.cs, 0x10, 0xb, true, false);
	seg(&sregs.ds, 0x18, 0x3, false, true);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct kvm_segment){
		.base = 0,
		.limit = 0x67,
		.selector = 0x20,
		.type = 0xb,
		.present = 1,
	};
	sregs.gdt.base = BOOT_GDT_ADDR;
	sregs.gdt.limit = 5 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	if (pvh) {
		sregs.cr0 = 0x11; /* PE, ET */
		sregs.cr4 = 0;
		sregs.efer = 0;
	} else {
		sregs.cr3 = BOOT_PML4;
		sregs.cr4 = 0x20;	/* PAE */
		sregs.cr0 = 0x80000011; /* PG, ET, PE */
		sregs.efer = 0x500;	/* LME, LMA */
	}
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	struct kvm_regs regs = {.rflags = 0x2, .rip = entry};
	if (pvh)
		regs.rbx = BOOT_START_INFO;
	else
		regs.rsi = BOOT_ZERO_PAGE;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;

	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	return ioctl(v->fd, KVM_SET_FPU, &fpu) < 0 ? -errno : 0;
}

static int vcpu_create(struct vm *vm, struct vcpu *v, uint32_t id, int run_size)
{
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return -errno;
	void *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (run == MAP_FAILED)
		return -errno;
	v->run = run;
	v->run_size = (size_t)run_size;
	int r;
	if ((r = set_cpuid(v)) < 0 || (r = set_msrs(v)) < 0 || (r = set_lapic(v)) < 0)
		return r;
	return 0;
}

int vm__vcpus_setup(struct vm *vm, uint64_t entry, bool pvh)
{
	int r = get_supported_cpuid(vm);
	if (r < 0)
		return r;
	int run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		return -EIO;
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		if ((r = vcpu_create(vm, &vm->vcpus[i], i, run_size)) < 0)
			return r;
	return set_boot_regs(&vm->vcpus[0], entry, pvh);
}

static void kick_handler(int sig)
{
	(void)sig;
}

void vm__kick_all(struct vm *vm)
{
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (!v->started)
			continue;
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		pthread_kill(v->thread, KICK_SIGNAL);
	}
}

/* Park while a pause is requested. Returns false when the VM is stopping. */
static bool vcpu_park(struct vcpu *v)
{
	struct vm *vm = v->vm;
	pthread_mutex_lock(&vm->lock);
	while (atomic_load(&vm->pause_req) && atomic_load(&vm->exit_status) == -1) {
		if (!atomic_load(&v->parked)) {
			atomic_store(&v->parked, true);
			pthread_cond_broadcast(&vm->cond);
		}
		pthread_cond_wait(&vm->cond, &vm->lock);
	}
	atomic_store(&v->parked, false);
	pthread_mutex_unlock(&vm->lock);
	return atomic_load(&vm->exit_status) == -1;
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint32_t size = run->io.size, count = run->io.count;
	uint64_t off = run->io.data_offset;

	if ((size != 1 && size != 2 && size != 4) || off > v->run_size ||
	    (uint64_t)size * count > v->run_size - off) {
		vm__log(v->vm, "vcpu %u: bad io exit size %u count %u", v->id, size, count);
		vm__request_stop(v->vm, VMM_EXIT_CRASH);
		return;
	}
	uint8_t *data = (uint8_t *)run + off;
	for (uint32_t i = 0; i < count; i++)
		vm__io_dispatch(v->vm, false, run->io.port, data + (size_t)i * size, size,
				run->io.direction == KVM_EXIT_IO_OUT);
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint32_t len = run->mmio.len;
	if (len == 0 || len > sizeof(run->mmio.data))
		return;
	vm__io_dispatch(v->vm, true, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write);
}

/* KVM could not go on (e.g. an instruction it cannot emulate): say where, for triage. */
static void log_internal_error(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct kvm_regs regs;
	char words[16 * 19 + 1] = "";
	uint32_t n = run->internal.ndata;
	size_t off = 0;

	if (n > 16)
		n = 16;
	for (uint32_t i = 0; i < n; i++)
		off += (size_t)snprintf(words + off, sizeof(words) - off, " %llx",
					(unsigned long long)run->internal.data[i]);
	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		memset(&regs, 0, sizeof(regs));
	vm__log(v->vm, "vcpu %u: KVM internal error, suberror %u, rip %#llx, data[%u]:%s", v->id,
		run->internal.suberror, (unsigned long long)regs.rip, run->internal.ndata, words);
}

/* One KVM exit; false when the vCPU must stop. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v);
		return true;
	case KVM_EXIT_MMIO:
		handle_mmio(v);
		return true;
	case KVM_EXIT_SHUTDOWN:
		vm__guest_reset(v->vm, "triple fault");
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		vm__guest_reset(v->vm, "system event");
		return false;
	case KVM_EXIT_HLT:
		vm__log(v->vm, "vcpu %u halted with interrupts off", v->id);
		vm__request_stop(v->vm, VMM_EXIT_CRASH);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		vm__log(v->vm, "vcpu %u: entry failed, reason %#llx", v->id,
			(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vm__request_stop(v->vm, VMM_EXIT_CRASH);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		log_internal_error(v);
		vm__request_stop(v->vm, VMM_EXIT_CRASH);
		return false;
	default:
		vm__log(v->vm, "vcpu %u: unexpected exit reason %u", v->id, run->exit_reason);
		vm__request_stop(v->vm, VMM_EXIT_CRASH);
		return false;
	}
}

/* Loads this thread's own filter, then frees the library's copy: it is in the kernel. */
static int vcpu_seccomp(struct vcpu *v)
{
	int r;

	if (!v->filter)
		return 0;
	r = seccomp__load(v->filter);
	seccomp__free(v->filter);
	v->filter = NULL;
	return r;
}

/*
 * Reports this thread's filter load (@err) to vm__lockdown(), then waits until it opens
 * the gate. False when this vCPU must not run: its load failed or the VM stops.
 */
static bool vcpu_gate(struct vcpu *v, int err)
{
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->lock);
	if (err < 0 && vm->arm_err == 0)
		vm->arm_err = err;
	vm->nr_armed++;
	pthread_cond_broadcast(&vm->cond);
	while (!vm->go && atomic_load(&vm->exit_status) == -1)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	return err == 0 && atomic_load(&vm->exit_status) == -1;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	bool ran = false;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	if (!vcpu_gate(v, vcpu_seccomp(v)))
		return NULL;
	for (;;) {
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (atomic_load(&vm->exit_status) != -1)
			break;
		if (atomic_load(&vm->pause_req) && !vcpu_park(v))
			break;
		if (!ran) {
			ran = true;
			vm__phase(VM_PH_FIRST_RUN);
		}
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			vm__log(vm, "vcpu %u: KVM_RUN: %s", v->id, strerror(errno));
			vm__request_stop(vm, VMM_EXIT_CRASH);
			break;
		}
		if (!handle_exit(v))
			break;
	}
	return NULL;
}

int vm__start(struct vm *vm)
{
	struct sigaction sa = {.sa_handler = kick_handler};
	int r;

	sigemptyset(&sa.sa_mask);
	if (sigaction(KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	if ((r = vm__seccomp_vcpus(vm)) < 0) {
		vm__log(vm, "seccomp: the vcpu filters: %s", strerror(-r));
		return r;
	}
	/* A stack of 1 MiB, not glibc's 8: less than a huge page, so a host with
	 * transparent huge pages "always" never backs it with 2 MiB (the thread stack lies
	 * next to 2 MiB-aligned guest RAM; kvm.c) */
	pthread_attr_t at;

	r = pthread_attr_init(&at);
	if (r == 0)
		r = pthread_attr_setstacksize(&at, VCPU_STACK);
	if (r)
		return -r;
	vm->started = true;
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		r = pthread_create(&v->thread, &at, vcpu_thread, v);
		if (r) {
			pthread_attr_destroy(&at);
			vm__request_stop(vm, VMM_EXIT_SETUP);
			return -r;
		}
		v->started = true;
	}
	pthread_attr_destroy(&at);
	return 0;
}

/* Event-loop thread only. Waits until every vCPU is parked (or the VM stops). */
int vm__pause(struct vm *vm)
{
	atomic_store(&vm->pause_req, true);
	vm__kick_all(vm);
	pthread_mutex_lock(&vm->lock);
	for (;;) {
		uint32_t parked = 0;
		for (uint32_t i = 0; i < vm->nr_vcpus; i++)
			parked += atomic_load(&vm->vcpus[i].parked) ? 1 : 0;
		if (parked == vm->nr_vcpus || atomic_load(&vm->exit_status) != -1)
			break;
		pthread_cond_wait(&vm->cond, &vm->lock);
	}
	pthread_mutex_unlock(&vm->lock);
	if (atomic_load(&vm->exit_status) != -1)
		return -ESHUTDOWN;
	atomic_store(&vm->state, VM_PAUSED);
	return 0;
}

void vm__resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	atomic_store(&vm->pause_req, false);
	if (atomic_load(&vm->exit_status) == -1)
		atomic_store(&vm->state, VM_RUNNING);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

void vm__join(struct vm *vm)
{
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (!v->started)
			continue;
		pthread_join(v->thread, NULL);
		v->started = false;
	}
}
