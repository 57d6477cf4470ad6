// SPDX-License-Identifier: Apache-2.0
/* fuzz_vm.c - see fuzz_vm.h. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_vm.h"

#define MAX_REGIONS 8
#define MAX_IOEV    16
#define MAX_IRQFD   8
#define MAX_EV	    160

struct fz_ev {
	bool used;
	int fd;
	uint32_t events;
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
	int nmmio, slots;
	struct {
		bool used;
		uint64_t addr, datamatch;
		uint32_t len;
		int efd;
	} ioev[MAX_IOEV];
	struct {
		bool used;
		int efd;
	} irqfd[MAX_IRQFD];
	struct fz_ev ev[MAX_EV];
	int faults;
	char fault_msg[512];
};

struct vm *fz_vm__new(uint64_t ram_size)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		abort();
	/* One RAM buffer for the process, cleared for each input: a large allocation per
	 * input would be an mmap and munmap under ASan, most of a run's time. */
	static uint8_t *cache;
	static uint64_t cache_size;

	if (cache_size < ram_size) {
		free(cache);
		cache = malloc(ram_size);
		cache_size = ram_size;
		if (!cache)
			abort();
	}
	memset(cache, 0, ram_size);
	vm->ram = cache;
	vm->ram_size = ram_size;
	return vm;
}

void fz_vm__free(struct vm *vm)
{
	if (!vm)
		return;
	free(vm); /* the RAM buffer stays for the next input */
}

uint8_t *fz_vm__ram(struct vm *vm)
{
	return vm->ram;
}

uint64_t fz_vm__ram_size(struct vm *vm)
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
	if (vm->slots >= VM_MMIO_SLOTS || VM_IRQ_FIRST + vm->slots > VM_IRQ_LAST)
		return -ENOSPC;
	*ret_base = VM_MMIO_START + VM_MMIO_SLOT_SIZE * (uint64_t)vm->slots;
	*ret_gsi = VM_IRQ_FIRST + (uint32_t)vm->slots;
	vm->slots++;
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
	for (int i = 0; i < MAX_IRQFD; i++) {
		if (assign && !vm->irqfd[i].used) {
			vm->irqfd[i].used = true;
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
	for (int i = 0; i < MAX_IOEV; i++) {
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

static struct fz_ev *ev_find(struct vm *vm, int fd)
{
	for (int i = 0; i < MAX_EV; i++)
		if (vm->ev[i].used && vm->ev[i].fd == fd)
			return &vm->ev[i];
	return NULL;
}

int vm__ev_add(struct vm *vm, int fd, uint32_t events, vm_ev_cb cb, void *opaque)
{
	FZ_CHECK(fd >= 0, "ev_add of fd %d", fd);
	if (ev_find(vm, fd))
		return -EEXIST;
	for (int i = 0; i < MAX_EV; i++) {
		if (vm->ev[i].used)
			continue;
		vm->ev[i] = (struct fz_ev){true, fd, events, cb, opaque};
		return 0;
	}
	return -ENOSPC;
}

int vm__ev_mod(struct vm *vm, int fd, uint32_t events)
{
	struct fz_ev *f = ev_find(vm, fd);

	if (!f)
		return -ENOENT;
	f->events = events;
	return 0;
}

int vm__ev_del(struct vm *vm, int fd)
{
	struct fz_ev *f = ev_find(vm, fd);

	if (!f)
		return -ENOENT;
	f->used = false;
	return 0;
}

int fz_vm__ev_count(struct vm *vm)
{
	int n = 0;

	for (int i = 0; i < MAX_EV; i++)
		n += vm->ev[i].used;
	return n;
}

/* poll() flags and epoll flags have the same values for IN, OUT, ERR and HUP. */
int fz_vm__run(struct vm *vm)
{
	struct pollfd pfd[MAX_EV];
	int idx[MAX_EV];
	int total = 0;

	for (int round = 0; round < 1000; round++) {
		int n = 0, ready;

		/* After a guest fault the real VM stops: its event loop runs no more. */
		if (vm->faults)
			return total;

		for (int i = 0; i < MAX_EV; i++) {
			if (!vm->ev[i].used)
				continue;
			pfd[n] = (struct pollfd){.fd = vm->ev[i].fd,
						 .events = (short)vm->ev[i].events};
			idx[n++] = i;
		}
		ready = poll(pfd, (nfds_t)n, 0);
		if (ready <= 0)
			return total;
		for (int k = 0; k < n; k++) {
			struct fz_ev *f = &vm->ev[idx[k]];

			if (!pfd[k].revents || !f->used || f->fd != pfd[k].fd)
				continue; /* deleted (or replaced) by an earlier callback */
			if (pfd[k].revents & POLLNVAL)
				fz_fail("the event loop polls fd %d, which is closed", f->fd);
			if (round == 999 && getenv("FUZZ_VM_DEBUG"))
				fprintf(stderr, "spinning: fd %d events 0x%x revents 0x%x\n", f->fd,
					f->events, pfd[k].revents);
			f->cb(f->opaque, (uint32_t)pfd[k].revents);
			total++;
		}
	}
	/* Still busy after 1000 rounds with nothing new coming from outside: a device that
	 * keeps an fd ready without making progress makes the real (level-triggered) event
	 * loop spin at 100 % CPU. */
	fz_fail("the event loop did not go idle after 1000 rounds (%d callbacks)", total);
}

uint64_t fz_vm__irqs(struct vm *vm)
{
	uint64_t cnt, total = 0;

	for (int i = 0; i < MAX_IRQFD; i++)
		if (vm->irqfd[i].used && read(vm->irqfd[i].efd, &cnt, sizeof(cnt)) == sizeof(cnt))
			total += cnt;
	return total;
}

void fz_vm__mmio_write(struct vm *vm, uint64_t addr, uint64_t val, uint32_t len)
{
	uint64_t one = 1;

	for (int i = 0; i < MAX_IOEV; i++) {
		if (vm->ioev[i].used && vm->ioev[i].addr == addr && vm->ioev[i].len == len &&
		    vm->ioev[i].datamatch == val) {
			if (write(vm->ioev[i].efd, &one, sizeof(one)) < 0) {
				/* saturated */
			}
			return;
		}
	}
	for (int i = 0; i < vm->nmmio; i++) {
		if (addr >= vm->mmio[i].base && addr - vm->mmio[i].base < vm->mmio[i].len) {
			vm->mmio[i].ops->write(vm->mmio[i].opaque, addr - vm->mmio[i].base, &val,
					       len);
			return;
		}
	}
}

uint64_t fz_vm__mmio_read(struct vm *vm, uint64_t addr, uint32_t len)
{
	uint8_t buf[16];
	uint64_t val = 0;

	memset(buf, 0xa5, sizeof(buf));
	for (int i = 0; i < vm->nmmio; i++) {
		if (addr >= vm->mmio[i].base && addr - vm->mmio[i].base < vm->mmio[i].len) {
			vm->mmio[i].ops->read(vm->mmio[i].opaque, addr - vm->mmio[i].base, buf,
					      len);
			for (uint32_t k = len; k < sizeof(buf); k++)
				FZ_CHECK(buf[k] == 0xa5, "a %u-byte read at 0x%llx wrote byte %u",
					 len, (unsigned long long)addr, k);
			memcpy(&val, buf, len < 8 ? len : 8);
			break;
		}
	}
	return val;
}

void vm__guest_fault(struct vm *vm, const char *dev, const char *fmt, ...)
{
	va_list ap;
	int n;

	FZ_CHECK(dev && strncmp(dev, "virtio-", 7) == 0, "a guest fault names no device");
	vm->faults++;
	n = snprintf(vm->fault_msg, sizeof(vm->fault_msg), "%s: ", dev);
	va_start(ap, fmt);
	vsnprintf(vm->fault_msg + n, sizeof(vm->fault_msg) - (size_t)n, fmt, ap);
	va_end(ap);
	FZ_CHECK(vm->fault_msg[n] != '\0', "guest fault of %s without a message", dev);
}

void vm__log(struct vm *vm, const char *fmt, ...)
{
}

int vm__seccomp_fd(struct vm *vm, enum vm_fd_use use, int fd)
{
	return fd >= 0 && (unsigned)use < VM_FD__N ? 0 : -EINVAL;
}

int fz_vm__faults(struct vm *vm)
{
	return vm->faults;
}

const char *fz_vm__fault_msg(struct vm *vm)
{
	return vm->fault_msg;
}
