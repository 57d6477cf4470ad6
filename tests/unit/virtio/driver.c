// SPDX-License-Identifier: Apache-2.0
/* driver.c - see driver.h. */
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include "tests/unit/virtio/driver.h"
#include "tests/unit/virtio/fake-vm.h"

#define RING_AREA 0x100000ULL /* rings at 1 MiB, scratch heap from 2 MiB */
#define HEAP_LO	  0x200000ULL

uint32_t drv__rd(struct tdrv *d, uint64_t off)
{
	return (uint32_t)fake_vm__mmio_read(d->vm, d->base + off, 4);
}

void drv__wr(struct tdrv *d, uint64_t off, uint32_t v)
{
	fake_vm__mmio_write(d->vm, d->base + off, v, 4);
}

void *drv__host(struct tdrv *d, uint64_t gpa)
{
	return fake_vm__ram(d->vm) + gpa;
}

uint64_t drv__alloc(struct tdrv *d, uint32_t len)
{
	uint64_t gpa;

	len = (len + 15) & ~15U;
	if (d->heap + len > d->heap_hi)
		d->heap = d->heap_lo;
	gpa = d->heap;
	d->heap += len;
	return gpa;
}

static void setup_queue(struct tdrv *d, int qi, uint16_t qsize)
{
	struct tq *q = &d->q[qi];
	uint64_t area = RING_AREA + (uint64_t)qi * 0x10000;

	memset(q, 0, sizeof(*q));
	q->num = qsize;
	q->desc = area;
	q->avail = area + 0x1000 * 2;
	q->used = area + 0x1000 * 3;
	memset(drv__host(d, area), 0, 0x10000);
	drv__wr(d, VIRTIO_MMIO_QUEUE_SEL, (uint32_t)qi);
	drv__wr(d, VIRTIO_MMIO_QUEUE_NUM, qsize);
	drv__wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)q->desc);
	drv__wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(q->desc >> 32));
	drv__wr(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)q->avail);
	drv__wr(d, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
	drv__wr(d, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)q->used);
	drv__wr(d, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
	drv__wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
}

int drv__init(struct tdrv *d, struct vm *vm, struct virtio_dev *dev, uint64_t features, int nq,
	      uint16_t qsize)
{
	uint32_t st;
	int i;

	memset(d, 0, sizeof(*d));
	d->vm = vm;
	d->dev = dev;
	d->base = dev->base;
	d->heap = d->heap_lo = HEAP_LO;
	d->heap_hi = fake_vm__ram_size(vm);
	drv__wr(d, VIRTIO_MMIO_STATUS, 0);
	st = VIRTIO_CONFIG_S_ACKNOWLEDGE;
	drv__wr(d, VIRTIO_MMIO_STATUS, st);
	st |= VIRTIO_CONFIG_S_DRIVER;
	drv__wr(d, VIRTIO_MMIO_STATUS, st);
	drv__wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	drv__wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	drv__wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	drv__wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	st |= VIRTIO_CONFIG_S_FEATURES_OK;
	drv__wr(d, VIRTIO_MMIO_STATUS, st);
	if (!(drv__rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK))
		return -1;
	for (i = 0; i < nq; i++)
		setup_queue(d, i, qsize);
	st |= VIRTIO_CONFIG_S_DRIVER_OK;
	drv__wr(d, VIRTIO_MMIO_STATUS, st);
	return 0;
}

void drv__set_desc(struct tdrv *d, int q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		   uint16_t next)
{
	uint8_t *p = drv__host(d, d->q[q].desc + 16ULL * i);

	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

void drv__set_avail_idx(struct tdrv *d, int q, uint16_t idx)
{
	uint16_t *p = drv__host(d, d->q[q].avail + 2);

	__atomic_store_n(p, idx, __ATOMIC_RELEASE);
}

void drv__publish(struct tdrv *d, int q, uint16_t head)
{
	struct tq *t = &d->q[q];
	uint16_t *ring = drv__host(d, t->avail + 4);

	ring[t->avail_idx % t->num] = head;
	t->avail_idx++;
	drv__set_avail_idx(d, q, t->avail_idx);
}

void drv__kick(struct tdrv *d, int q)
{
	drv__wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t)q);
}

static int alloc_desc(struct tq *t)
{
	int i;

	for (i = 0; i < t->num; i++) {
		if (!t->busy[i]) {
			t->busy[i] = true;
			return i;
		}
	}
	return -1;
}

int drv__add(struct tdrv *d, int q, const struct tbuf *bufs, int n)
{
	struct tq *t = &d->q[q];
	int idx[TQ_MAX], i;

	for (i = 0; i < n; i++) {
		idx[i] = alloc_desc(t);
		if (idx[i] < 0)
			return -1;
	}
	for (i = 0; i < n; i++)
		drv__set_desc(d, q, (uint16_t)idx[i], bufs[i].gpa, bufs[i].len,
			      (uint16_t)((bufs[i].write ? VRING_DESC_F_WRITE : 0) |
					 (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
			      (uint16_t)(i + 1 < n ? idx[i + 1] : 0));
	drv__publish(d, q, (uint16_t)idx[0]);
	return idx[0];
}

int drv__add_indirect(struct tdrv *d, int q, const struct tbuf *bufs, int n)
{
	uint64_t table = drv__alloc(d, 16U * (uint32_t)n);
	uint8_t *p = drv__host(d, table);
	int head = alloc_desc(&d->q[q]), i;

	if (head < 0)
		return -1;
	for (i = 0; i < n; i++) {
		uint16_t flags = (uint16_t)((bufs[i].write ? VRING_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VRING_DESC_F_NEXT : 0));
		uint16_t next = (uint16_t)(i + 1);

		memcpy(p + 16 * i, &bufs[i].gpa, 8);
		memcpy(p + 16 * i + 8, &bufs[i].len, 4);
		memcpy(p + 16 * i + 12, &flags, 2);
		memcpy(p + 16 * i + 14, &next, 2);
	}
	drv__set_desc(d, q, (uint16_t)head, table, 16U * (uint32_t)n, VRING_DESC_F_INDIRECT, 0);
	drv__publish(d, q, (uint16_t)head);
	return head;
}

bool drv__used(struct tdrv *d, int q, uint32_t *id, uint32_t *len)
{
	struct tq *t = &d->q[q];
	uint16_t *uidx = drv__host(d, t->used + 2);
	uint8_t *elem;
	uint16_t i;

	if (__atomic_load_n(uidx, __ATOMIC_ACQUIRE) == t->used_seen)
		return false;
	elem = drv__host(d, t->used + 4 + 8ULL * (t->used_seen % t->num));
	memcpy(id, elem, 4);
	memcpy(len, elem + 4, 4);
	t->used_seen++;
	/* Free the chain. */
	for (i = (uint16_t)*id; i < t->num && t->busy[i];) {
		uint8_t *dp = drv__host(d, t->desc + 16ULL * i);
		uint16_t flags, next;

		memcpy(&flags, dp + 12, 2);
		memcpy(&next, dp + 14, 2);
		t->busy[i] = false;
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		i = next;
	}
	return true;
}
