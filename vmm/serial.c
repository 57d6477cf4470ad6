/* SPDX-License-Identifier: Apache-2.0 */
/*
 * serial.c - a minimal 8250/16550A UART at 0x3f8 (COM1, IRQ 4): enough registers for
 * Linux's 8250 driver to probe it and print through it. Output goes to an fd (the
 * VMM's stderr or a file) or nowhere when the console is off; the ports answer
 * either way. No input: the receive buffer is always empty.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/core.h"

#define SERIAL_BASE 0x3f8
#define SERIAL_IRQ  4

#define UART_IER_THRI 0x02
#define UART_IIR_NONE 0x01
#define UART_IIR_THRI 0x02
#define UART_IIR_FIFO 0xc0
#define UART_LCR_DLAB 0x80
#define UART_MCR_LOOP 0x10
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_MSR_IDLE 0xb0 /* DCD, DSR, CTS */

struct serial {
	struct vm *vm;
	int out_fd; /* -1: console off */
	pthread_mutex_t lock;
	uint8_t ier, lcr, mcr, fcr, scr, dll, dlm;
	bool thre_pending;
	bool irq_high;
	char buf[256];
	size_t len;
};

static void flush_locked(struct serial *s)
{
	size_t off = 0;
	while (off < s->len) {
		ssize_t n = write(s->out_fd, s->buf + off, s->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the console is best effort: never block the guest on it */
		off += (size_t)n;
	}
	s->len = 0;
}

static void emit(struct serial *s, uint8_t c)
{
	if (s->out_fd < 0)
		return;
	s->buf[s->len++] = (char)c;
	if (c == '\n' || s->len == sizeof(s->buf))
		flush_locked(s);
}

/* Edge-triggered ISA line: pulse it when an interrupt becomes pending. */
static void update_irq(struct serial *s)
{
	bool pending = (s->ier & UART_IER_THRI) && s->thre_pending;
	if (pending && !s->irq_high) {
		vm__irq_line(s->vm, SERIAL_IRQ, 1);
		vm__irq_line(s->vm, SERIAL_IRQ, 0);
	}
	s->irq_high = pending;
}

static uint8_t msr(const struct serial *s)
{
	if (!(s->mcr & UART_MCR_LOOP))
		return UART_MSR_IDLE;
	/* loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD */
	return (uint8_t)(((s->mcr & 0x01) << 5) | ((s->mcr & 0x02) << 3) | ((s->mcr & 0x04) << 4) |
			 ((s->mcr & 0x08) << 4));
}

static uint8_t reg_read(struct serial *s, uint64_t off)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	uint8_t v;
	switch (off) {
	case 0:
		return dlab ? s->dll : 0;
	case 1:
		return dlab ? s->dlm : s->ier;
	case 2:
		v = (s->fcr & 1) ? UART_IIR_FIFO : 0;
		if ((s->ier & UART_IER_THRI) && s->thre_pending) {
			s->thre_pending = false; /* reading IIR acknowledges THRE */
			update_irq(s);
			return v | UART_IIR_THRI;
		}
		return v | UART_IIR_NONE;
	case 3:
		return s->lcr;
	case 4:
		return s->mcr;
	case 5:
		return UART_LSR_THRE | UART_LSR_TEMT;
	case 6:
		return msr(s);
	default:
		return s->scr;
	}
}

static void reg_write(struct serial *s, uint64_t off, uint8_t v)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	switch (off) {
	case 0:
		if (dlab) {
			s->dll = v;
			return;
		}
		if (!(s->mcr & UART_MCR_LOOP))
			emit(s, v);
		s->thre_pending = true;
		break;
	case 1:
		if (dlab) {
			s->dlm = v;
			return;
		}
		if ((v & UART_IER_THRI) && !(s->ier & UART_IER_THRI))
			s->thre_pending = true;
		s->ier = v & 0x0f;
		break;
	case 2:
		s->fcr = v;
		return;
	case 3:
		s->lcr = v;
		return;
	case 4:
		s->mcr = v & 0x1f;
		return;
	case 7:
		s->scr = v;
		return;
	default:
		return;
	}
	update_irq(s);
}

static void serial_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct serial *s = opaque;
	pthread_mutex_lock(&s->lock);
	memset(data, 0, len);
	((uint8_t *)data)[0] = reg_read(s, off);
	pthread_mutex_unlock(&s->lock);
}

static void serial_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct serial *s = opaque;
	pthread_mutex_lock(&s->lock);
	reg_write(s, off, ((const uint8_t *)data)[0]);
	pthread_mutex_unlock(&s->lock);
}

static const struct vm_io_ops serial_ops = {.read = serial_read, .write = serial_write};

int serial__create(struct vm *vm, int out_fd, struct serial **ret)
{
	struct serial *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->vm = vm;
	s->out_fd = out_fd;
	pthread_mutex_init(&s->lock, NULL);
	/* the guest's writes reach the console on its vCPU threads */
	int r = out_fd >= 0 ? vm__seccomp_fd(vm, VM_FD_VCPU_WRITE, out_fd) : 0;
	if (r == 0)
		r = vm__pio_register(vm, SERIAL_BASE, 8, &serial_ops, s);
	if (r < 0) {
		serial__free(s);
		return r;
	}
	*ret = s;
	return 0;
}

void serial__flush(struct serial *s)
{
	if (!s || s->out_fd < 0)
		return;
	pthread_mutex_lock(&s->lock);
	flush_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void serial__free(struct serial *s)
{
	if (!s)
		return;
	serial__flush(s);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
