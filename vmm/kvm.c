/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kvm.c - the VM: KVM fds, guest RAM slots, in-kernel irqchip and PIT, I/O
 * dispatch tables, interrupts, logging and the stop/fault paths (vm-internal.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vmm/core.h"

#define TSS_ADDR	  0xfffbd000ULL
#define IDENTITY_MAP_ADDR 0xfffbc000ULL
#define UNHANDLED_LOG_MAX 20

uint64_t vm__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#define LOG_PREFIX "nucleus-vmm: "

__attribute__((format(printf, 2, 0))) static void vlog(const char *prefix, const char *fmt,
						       va_list ap)
{
	char line[sizeof(LOG_PREFIX) + 512];
	size_t len;
	int n = snprintf(line, sizeof(line), LOG_PREFIX "%s", prefix);

	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		return;
	len = (size_t)n;
	n = vsnprintf(line + len, sizeof(line) - 1 - len, fmt, ap);
	if (n < 0)
		return;
	len += (size_t)n < sizeof(line) - 1 - len ? (size_t)n : sizeof(line) - 2 - len;
	line[len++] = '\n';
	/* One write per line so lines of different threads do not interleave; a plain
	 * write(), which every thread's seccomp list allows on stderr (no stdio). */
	if (write(STDERR_FILENO, line, len) < 0) {
		/* nowhere left to say it */
	}
}

void vm__log(struct vm *vm, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog("", fmt, ap);
	va_end(ap);
}

void vm__request_stop(struct vm *vm, int status)
{
	int expected = -1;
	if (!atomic_compare_exchange_strong(&vm->exit_status, &expected, status))
		return;
	vm__phase(VM_PH_STOP);
	atomic_store(&vm->state, VM_STOPPING);
	pthread_mutex_lock(&vm->lock);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	vm__kick_all(vm);
	uint64_t one = 1;
	if (write(vm->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter cannot overflow here; nothing else to do */
	}
}

void vm__guest_fault(struct vm *vm, const char *dev, const char *fmt, ...)
{
	char msg[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Only the first fault is logged: the VM is going down anyway. */
	if (atomic_load(&vm->exit_status) == -1)
		vm__log(vm, "guest fault: %s: %s", dev, msg);
	vm__request_stop(vm, VMM_EXIT_GUEST_FAULT);
}

void vm__guest_reset(struct vm *vm, const char *why)
{
	bool clean = atomic_load(&vm->shutdown_intent);

	vm__phase(VM_PH_RESET);
	if (atomic_load(&vm->exit_status) == -1)
		vm__log(vm, "guest reset (%s): %s", why,
			clean ? "clean shutdown" : "no shutdown announced: crash");
	vm__request_stop(vm, clean ? VMM_EXIT_SHUTDOWN : VMM_EXIT_CRASH);
}

static int io_register(struct vm *vm, struct vm_io_range *tab, unsigned *nr, uint64_t base,
		       uint64_t len, const struct vm_io_ops *ops, void *opaque)
{
	if (vm->started)
		return -EBUSY;
	if (!ops || len == 0 || base + len < base)
		return -EINVAL;
	for (unsigned i = 0; i < *nr; i++)
		if (base < tab[i].base + tab[i].len && tab[i].base < base + len)
			return -EEXIST;
	if (*nr >= VM_IO_MAX)
		return -ENOSPC;
	tab[(*nr)++] = (struct vm_io_range){base, len, ops, opaque};
	return 0;
}

int vm__mmio_register(struct vm *vm, uint64_t base, uint64_t len, const struct vm_io_ops *ops,
		      void *opaque)
{
	if (len == 0 || mem__gpa(&vm->mem, base, 1) || mem__gpa(&vm->mem, base + len - 1, 1))
		return -EINVAL;
	return io_register(vm, vm->mmio, &vm->nr_mmio, base, len, ops, opaque);
}

int vm__pio_register(struct vm *vm, uint16_t base, uint16_t len, const struct vm_io_ops *ops,
		     void *opaque)
{
	if ((uint32_t)base + len > 0x10000)
		return -EINVAL;
	return io_register(vm, vm->pio, &vm->nr_pio, base, len, ops, opaque);
}

/* The tables are frozen at vm__start(), so vCPU threads read them without a lock. */
void vm__io_dispatch(struct vm *vm, bool mmio, uint64_t addr, void *data, uint32_t len, bool write)
{
	const struct vm_io_range *tab = mmio ? vm->mmio : vm->pio;
	unsigned nr = mmio ? vm->nr_mmio : vm->nr_pio;

	for (unsigned i = 0; i < nr; i++) {
		const struct vm_io_range *r = &tab[i];
		if (addr < r->base || addr - r->base >= r->len || len > r->len - (addr - r->base))
			continue;
		if (write) {
			if (r->ops->write)
				r->ops->write(r->opaque, addr - r->base, data, len);
		} else if (r->ops->read) {
			r->ops->read(r->opaque, addr - r->base, data, len);
		} else {
			memset(data, 0xff, len);
		}
		return;
	}
	if (!write)
		memset(data, 0xff, len);
	if (atomic_fetch_add(&vm->unhandled_logs, 1) < UNHANDLED_LOG_MAX)
		vm__log(vm, "unhandled %s %s at %#llx len %u%s", mmio ? "mmio" : "pio",
			write ? "write" : "read", (unsigned long long)addr, len,
			atomic_load(&vm->unhandled_logs) == UNHANDLED_LOG_MAX
				? " (further ones not logged)"
				: "");
}

void *vm__gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	return vm ? mem__gpa(&vm->mem, gpa, len) : NULL;
}

int vm__cmdline_append(struct vm *vm, const char *fmt, ...)
{
	char item[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(item, sizeof(item), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(item))
		return -E2BIG;
	if (vm->started)
		return -EBUSY;
	return cmdline__add(&vm->cmdline, item);
}

int vm__alloc_mmio_slot(struct vm *vm, uint64_t *ret_base, uint32_t *ret_gsi)
{
	if (vm->started)
		return -EBUSY;
	if (vm->next_slot >= VM_MMIO_SLOTS || VM_IRQ_FIRST + vm->next_slot > VM_IRQ_LAST)
		return -ENOSPC;
	uint64_t base = VM_MMIO_START + vm->next_slot * VM_MMIO_SLOT_SIZE;
	uint32_t gsi = VM_IRQ_FIRST + vm->next_slot;
	int r = vm__cmdline_append(vm, "virtio_mmio.device=4K@%#llx:%u", (unsigned long long)base,
				   gsi);
	if (r < 0)
		return r;
	vm->next_slot++;
	*ret_base = base;
	*ret_gsi = gsi;
	return 0;
}

int vm__irq_line(struct vm *vm, uint32_t gsi, int level)
{
	struct kvm_irq_level irq = {.irq = gsi, .level = level ? 1 : 0};
	if (gsi > VM_IRQ_LAST)
		return -EINVAL;
	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

int vm__irqfd(struct vm *vm, uint32_t gsi, int efd, bool assign)
{
	struct kvm_irqfd req = {
		.fd = (uint32_t)efd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};
	if (gsi > VM_IRQ_LAST || efd < 0)
		return -EINVAL;
	return ioctl(vm->vm_fd, KVM_IRQFD, &req) < 0 ? -errno : 0;
}

int vm__ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, uint64_t datamatch, int efd,
		  bool assign)
{
	struct kvm_ioeventfd req = {
		.datamatch = datamatch,
		.addr = addr,
		.len = len,
		.fd = efd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};
	if (efd < 0 || (len != 1 && len != 2 && len != 4 && len != 8))
		return -EINVAL;
	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &req) < 0 ? -errno : 0;
}

static bool has_module(const char *sys_module, const char *name)
{
	char path[512];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", sys_module, name) >= sizeof(path))
		return false;
	return access(path, F_OK) == 0;
}

const char *vm__kvm_unsupported_at(const char *sys_module)
{
	if (has_module(sys_module, "kvm_intel") || has_module(sys_module, "kvm_amd"))
		return NULL;
	if (has_module(sys_module, "kvm_pvm"))
		return "this /dev/kvm is PVM (kvm_pvm): it runs only PVM-enabled guest kernels, "
		       "and nucleus needs hardware virtualization (kvm_intel or kvm_amd)";
	return NULL;
}

const char *vm__kvm_unsupported(void)
{
	return vm__kvm_unsupported_at("/sys/module");
}

static int kvm_setup(struct vm *vm)
{
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return -errno;
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return -ENOTSUP;
	static const int caps[] = {KVM_CAP_IRQCHIP, KVM_CAP_IOEVENTFD,	    KVM_CAP_IRQFD,
				   KVM_CAP_PIT2,    KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_USER_MEMORY};
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, caps[i]) <= 0)
			return -ENOTSUP;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return -errno;
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)TSS_ADDR) < 0)
		return -errno;
	uint64_t idmap = IDENTITY_MAP_ADDR;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		return -errno;
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return -errno;
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return -errno;
	/* The guest keeps time with kvm-clock and the LAPIC timer; the PIT only serves
	 * calibration. Reinjection of missed PIT ticks is what KVM advises against for
	 * such guests: it inhibits APIC acceleration and, under nested KVM, was seen to
	 * spin the host's kvm-pit thread into a soft lockup. */
	struct kvm_reinject_control reinject = {.pit_reinject = 0};
	if (ioctl(vm->vm_fd, KVM_REINJECT_CONTROL, &reinject) < 0)
		return -errno;
	return 0;
}

#define RAM_ALIGN (2ULL << 20)

/*
 * Guest RAM: anonymous, zero-filled on demand, 2 MiB aligned and advised for
 * transparent huge pages where the host has them in "madvise" mode (as QEMU does): the
 * guest's memory then sits on 2 MiB pages of the host, and the nested page tables take a
 * fault per 2 MiB instead of per 4 KiB (under nested emulation each fault is costly:
 * docs/vmm.md "Benchmark"). Nothing is touched here; with THP off the advice is a no-op.
 */
static void *ram_map(uint64_t bytes)
{
	uint8_t *p = mmap(NULL, bytes + RAM_ALIGN, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint64_t head;

	if (p == MAP_FAILED)
		return MAP_FAILED;
	head = (RAM_ALIGN - ((uintptr_t)p & (RAM_ALIGN - 1))) & (RAM_ALIGN - 1);
	if (head)
		munmap(p, head);
	munmap(p + head + bytes, RAM_ALIGN - head);
	madvise(p + head, bytes, MADV_HUGEPAGE);
	return p + head;
}

static int mem_setup(struct vm *vm, uint64_t bytes)
{
	void *p = ram_map(bytes);
	if (p == MAP_FAILED)
		return -errno;
	int r = mem__layout(&vm->mem, p, bytes);
	if (r < 0) {
		munmap(p, bytes);
		return r;
	}
	struct kvm_userspace_memory_region lo = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = vm->mem.low_size,
		.userspace_addr = (uintptr_t)vm->mem.host,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &lo) < 0)
		return -errno;
	if (vm->mem.high_size) {
		struct kvm_userspace_memory_region hi = {
			.slot = 1,
			.guest_phys_addr = VM_HIGH_RAM_START,
			.memory_size = vm->mem.high_size,
			.userspace_addr = (uintptr_t)(vm->mem.host + vm->mem.low_size),
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &hi) < 0)
			return -errno;
	}
	return 0;
}

int vm__create(struct vm **ret, uint64_t mem_bytes, uint32_t nr_vcpus)
{
	struct vm *vm;
	int r;

	if (nr_vcpus == 0 || nr_vcpus > VMM_MAX_VCPUS)
		return -EINVAL;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->kvm_fd = vm->vm_fd = vm->epfd = vm->wake_fd = vm->sig_fd = -1;
	vm->seccomp = true;
	for (unsigned i = 0; i < VMM_MAX_VCPUS; i++)
		vm->vcpus[i].fd = -1;
	vm->nr_vcpus = nr_vcpus;
	vm->start_ns = vm__now_ns();
	atomic_init(&vm->exit_status, -1);
	atomic_init(&vm->boot_us, -1);
	atomic_init(&vm->state, VM_RUNNING);
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	pthread_mutex_init(&vm->ev_lock, NULL);
	cmdline__init(&vm->cmdline);

	vm->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->wake_fd < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = kvm_setup(vm)) < 0)
		goto fail;
	vm__phase(VM_PH_KVM);
	if ((r = mem_setup(vm, mem_bytes)) < 0)
		goto fail;
	vm__phase(VM_PH_MEMORY);
	if ((r = vm__ev_init(vm)) < 0)
		goto fail;
	*ret = vm;
	return 0;
fail:
	vm__free(vm);
	return r;
}

void vm__free(struct vm *vm)
{
	if (!vm)
		return;
	for (unsigned i = 0; i < VMM_MAX_VCPUS; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (v->run)
			munmap(v->run, v->run_size);
		if (v->fd >= 0)
			close(v->fd);
		seccomp__free(v->filter); /* a vCPU that never ran left it */
	}
	vm__ev_fini(vm);
	if (vm->sig_fd >= 0)
		close(vm->sig_fd);
	if (vm->mem.host)
		munmap(vm->mem.host, vm->mem.size);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->wake_fd >= 0)
		close(vm->wake_fd);
	free(vm->cpuid);
	pthread_mutex_destroy(&vm->ev_lock);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}
