// SPDX-License-Identifier: Apache-2.0
/* fake-vm.c - see fake-vm.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "tests/unit/virtio/fake-vm.h"

#define MAX_REGIONS 8
#define MAX_IOEV    16
#define MAX_IRQFD   8
#define MAX_EV	    256

struct fake_ev {
	bool used;
	int fd;
	vm_ev_cb cb;
	void *opaque;
};

struct vm {
	uint8_t *ram;
	uint64_t ram_size;
	struct {
		uint64_t base, len;
		const struct vm_io_ops *ops;
		void *opaque;
	} mmio[MAX_REGIONS];
	int nmmio;
	struct {
		bool used;
		uint64_t addr, datamatch;
		uint32_t len;
		int efd;
	} ioev[MAX_IOEV];
	struct {
		bool used;
		uint32_t gsi;
		int efd;
	} irqfd[MAX_IRQFD];
	struct fake_ev ev[MAX_EV];
	int epfd;
	int slots;
	int faults;
	char fault_msg[512];
	char cmdline[1024];
};

struct vm *fake_vm__new(uint64_t ram_size)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->ram = calloc(1, ram_size);
	vm->ram_size = ram_size;
	vm->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!vm->ram || vm->epfd < 0) {
		free(vm->ram);
		free(vm);
		return NULL;
	}
	return vm;
}

void fake_vm__free(struct vm *vm)
{
	if (!vm)
		return;
	close(vm->epfd);
	free(vm->ram);
	free(vm);
}

uint8_t *fake_vm__ram(struct vm *vm)
{
	return vm->ram;
}

uint64_t fake_vm__ram_size(struct vm *vm)
{
	return vm->ram_size;
}

void *vm__gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	if (gpa > vm->ram_size || len > vm->ram_size - gpa)
		return NULL;
	return vm->ram + gpa;
}

int vm__mmio_register(struct vm *vm, uint64_t base, uint64_t len, const struct vm_io_ops *ops,
		      void *opaque)
{
	if (vm->nmmio == MAX_REGIONS)
		return -ENOSPC;
	vm->mmio[vm->nmmio].base = base;
	vm->mmio[vm->nmmio].len = len;
	vm->mmio[vm->nmmio].ops = ops;
	vm->mmio[vm->nmmio++].opaque = opaque;
	return 0;
}

int vm__pio_register(struct vm *vm, uint16_t base, uint16_t len, const struct vm_io_ops *ops,
		     void *opaque)
{
	return -ENOSYS;
}

int vm__alloc_mmio_slot(struct vm *vm, uint64_t *ret_base, uint32_t *ret_gsi)
{
	size_t n = strlen(vm->cmdline);
	uint64_t base;
	uint32_t gsi;

	if (vm->slots >= VM_MMIO_SLOTS || VM_IRQ_FIRST + vm->slots > VM_IRQ_LAST)
		return -ENOSPC;
	base = VM_MMIO_START + VM_MMIO_SLOT_SIZE * (uint64_t)vm->slots;
	gsi = VM_IRQ_FIRST + (uint32_t)vm->slots;
	vm->slots++;
	snprintf(vm->cmdline + n, sizeof(vm->cmdline) - n, " virtio_mmio.device=4K@0x%llx:%u",
		 (unsigned long long)base, gsi);
	*ret_base = base;
	*ret_gsi = gsi;
	return 0;
}

int vm__cmdline_append(struct vm *vm, const char *fmt, ...)
{
	return 0;
}

int vm__irq_line(struct vm *vm, uint32_t gsi, int level)
{
	return 0;
}

int vm__irqfd(struct vm *vm, uint32_t gsi, int efd, bool assign)
{
	int i;

	for (i = 0; i < MAX_IRQFD; i++) {
		if (assign && !vm->irqfd[i].used) {
			vm->irqfd[i].used = true;
			vm->irqfd[i].gsi = gsi;
			vm->irqfd[i].efd = efd;
			return 0;
		}
		if (!assign && vm->irqfd[i].used && vm->irqfd[i].efd == efd) {
			vm->irqfd[i].used = false;
			return 0;
		}
	}
	return assign ? -ENOSPC : -ENOENT;
}

int vm__ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, uint64_t datamatch, int efd,
		  bool assign)
{
	int i;

	for (i = 0; i < MAX_IOEV; i++) {
		if (assign && !vm->ioev[i].used) {
			vm->ioev[i].used = true;
			vm->ioev[i].addr = addr;
			vm->ioev[i].len = len;
			vm->ioev[i].datamatch = datamatch;
			vm->ioev[i].efd = efd;
			return 0;
		}
		if (!assign && vm->ioev[i].used && vm->ioev[i].efd == efd) {
			vm->ioev[i].used = false;
			return 0;
		}
	}
	return assign ? -ENOSPC : -ENOENT;
}

static struct fake_ev *ev_find(struct vm *vm, int fd)
{
	int i;

	for (i = 0; i < MAX_EV; i++)
		if (vm->ev[i].used && vm->ev[i].fd == fd)
			return &vm->ev[i];
	return NULL;
}

int vm__ev_add(struct vm *vm, int fd, uint32_t events, vm_ev_cb cb, void *opaque)
{
	struct epoll_event e = {.events = events};
	int i;

	if (ev_find(vm, fd))
		return -EEXIST;
	for (i = 0; i < MAX_EV; i++) {
		if (vm->ev[i].used)
			continue;
		e.data.ptr = &vm->ev[i];
		if (epoll_ctl(vm->epfd, EPOLL_CTL_ADD, fd, &e) < 0)
			return -errno;
		vm->ev[i].used = true;
		vm->ev[i].fd = fd;
		vm->ev[i].cb = cb;
		vm->ev[i].opaque = opaque;
		return 0;
	}
	return -ENOSPC;
}

int vm__ev_mod(struct vm *vm, int fd, uint32_t events)
{
	struct fake_ev *f = ev_find(vm, fd);
	struct epoll_event e = {.events = events};

	if (!f)
		return -ENOENT;
	e.data.ptr = f;
	return epoll_ctl(vm->epfd, EPOLL_CTL_MOD, fd, &e) < 0 ? -errno : 0;
}

int vm__ev_del(struct vm *vm, int fd)
{
	struct fake_ev *f = ev_find(vm, fd);

	if (!f)
		return -ENOENT;
	epoll_ctl(vm->epfd, EPOLL_CTL_DEL, fd, NULL);
	f->used = false;
	return 0;
}

int fake_vm__ev_count(struct vm *vm)
{
	int i, n = 0;

	for (i = 0; i < MAX_EV; i++)
		n += vm->ev[i].used;
	return n;
}

int fake_vm__run(struct vm *vm)
{
	struct epoll_event evs[16];
	int total = 0, rounds, n, i;

	for (rounds = 0; rounds < 100000; rounds++) {
		n = epoll_wait(vm->epfd, evs, 16, 0);
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			struct fake_ev *f = evs[i].data.ptr;

			if (!f->used)
				continue; /* deleted by an earlier callback of this batch */
			f->cb(f->opaque, evs[i].events);
			total++;
		}
	}
	return total;
}

uint64_t fake_vm__irqs(struct vm *vm, uint32_t gsi)
{
	uint64_t cnt, total = 0;
	int i;

	for (i = 0; i < MAX_IRQFD; i++)
		if (vm->irqfd[i].used && vm->irqfd[i].gsi == gsi &&
		    read(vm->irqfd[i].efd, &cnt, sizeof(cnt)) == sizeof(cnt))
			total += cnt;
	return total;
}

void fake_vm__mmio_write(struct vm *vm, uint64_t addr, uint64_t val, uint32_t len)
{
	uint64_t one = 1;
	int i;

	for (i = 0; i < MAX_IOEV; i++) {
		if (vm->ioev[i].used && vm->ioev[i].addr == addr && vm->ioev[i].len == len &&
		    vm->ioev[i].datamatch == val) {
			if (write(vm->ioev[i].efd, &one, sizeof(one)) < 0) {
				/* saturated */
			}
			return;
		}
	}
	for (i = 0; i < vm->nmmio; i++) {
		if (addr >= vm->mmio[i].base && addr - vm->mmio[i].base < vm->mmio[i].len) {
			vm->mmio[i].ops->write(vm->mmio[i].opaque, addr - vm->mmio[i].base, &val,
					       len);
			return;
		}
	}
}

uint64_t fake_vm__mmio_read(struct vm *vm, uint64_t addr, uint32_t len)
{
	uint64_t val = 0;
	int i;

	for (i = 0; i < vm->nmmio; i++) {
		if (addr >= vm->mmio[i].base && addr - vm->mmio[i].base < vm->mmio[i].len) {
			vm->mmio[i].ops->read(vm->mmio[i].opaque, addr - vm->mmio[i].base, &val,
					      len);
			break;
		}
	}
	return val;
}

void vm__guest_fault(struct vm *vm, const char *dev, const char *fmt, ...)
{
	va_list ap;
	int n;

	vm->faults++;
	n = snprintf(vm->fault_msg, sizeof(vm->fault_msg), "%s: ", dev);
	va_start(ap, fmt);
	vsnprintf(vm->fault_msg + n, sizeof(vm->fault_msg) - (size_t)n, fmt, ap);
	va_end(ap);
}

void vm__log(struct vm *vm, const char *fmt, ...)
{
}

/* No seccomp filters here: the fds a device registers for them are only checked. */
int vm__seccomp_fd(struct vm *vm, enum vm_fd_use use, int fd)
{
	return fd >= 0 && (unsigned)use < VM_FD__N ? 0 : -EINVAL;
}

int fake_vm__faults(struct vm *vm)
{
	return vm->faults;
}

const char *fake_vm__fault_msg(struct vm *vm)
{
	return vm->fault_msg;
}

const char *fake_vm__cmdline(struct vm *vm)
{
	return vm->cmdline;
}
