// SPDX-License-Identifier: Apache-2.0
/* fuzz_drv.c - see fuzz_drv.h. */
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include "tests/fuzz/fuzz_drv.h"
#include "tests/fuzz/fuzz_vm.h"

static void wr(struct fz_drv *d, uint64_t off, uint32_t v)
{
	fz_vm__mmio_write(d->vm, d->dev->base + off, v, 4);
}

static uint32_t rd(struct fz_drv *d, uint64_t off)
{
	return (uint32_t)fz_vm__mmio_read(d->vm, d->dev->base + off, 4);
}

int fz_drv__init(struct fz_drv *d, struct vm *vm, struct virtio_dev *dev, uint64_t features, int nq,
		 uint16_t qsize)
{
	uint64_t at = 0;

	memset(d, 0, sizeof(*d));
	d->vm = vm;
	d->dev = dev;
	d->ram = fz_vm__ram(vm);
	d->ram_size = fz_vm__ram_size(vm);
	wr(d, VIRTIO_MMIO_STATUS, 0);
	wr(d, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(d, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	features |= 1ULL << VIRTIO_F_VERSION_1;
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	wr(d, VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK))
		return -1;
	for (int q = 0; q < nq; q++) {
		struct fz_q *fq = &d->q[q];

		fq->num = qsize;
		fq->desc = at;
		fq->avail = at + 16ull * qsize;
		fq->used = (fq->avail + 6 + 2ull * qsize + 3) & ~3ull;
		at = (fq->used + 6 + 8ull * qsize + 15) & ~15ull;
		memset(d->ram + fq->desc, 0, at - fq->desc);
		wr(d, VIRTIO_MMIO_QUEUE_SEL, (uint32_t)q);
		wr(d, VIRTIO_MMIO_QUEUE_NUM, qsize);
		wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)fq->desc);
		wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
		wr(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)fq->avail);
		wr(d, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
		wr(d, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)fq->used);
		wr(d, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
		wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	wr(d, VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
		   VIRTIO_CONFIG_S_DRIVER_OK);
	d->heap = d->heap_lo = (at + 4095) & ~4095ull;
	d->heap_hi = d->ram_size;
	return 0;
}

uint64_t fz_drv__alloc(struct fz_drv *d, uint32_t len)
{
	uint64_t a;

	len = (len + 15) & ~15u;
	if (len > d->heap_hi - d->heap_lo)
		len = (uint32_t)(d->heap_hi - d->heap_lo);
	if (d->heap + len > d->heap_hi)
		d->heap = d->heap_lo;
	a = d->heap;
	d->heap += len;
	return a;
}

static void put_desc(uint8_t *table, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *p = table + 16 * (size_t)i;

	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

int fz_drv__add(struct fz_drv *d, int q, const struct fz_buf *bufs, int n, bool indirect)
{
	struct fz_q *fq = &d->q[q];
	uint16_t head = fq->next_desc % fq->num, slot;

	if (indirect) {
		uint64_t t = fz_drv__alloc(d, 16u * (uint32_t)n);

		for (int i = 0; i < n; i++)
			put_desc(d->ram + t, (uint32_t)i, bufs[i].gpa, bufs[i].len,
				 (uint16_t)((bufs[i].write ? VRING_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
				 (uint16_t)(i + 1));
		put_desc(d->ram + fq->desc, head, t, 16u * (uint32_t)n, VRING_DESC_F_INDIRECT, 0);
		fq->next_desc++;
	} else {
		for (int i = 0; i < n; i++) {
			uint16_t me = fq->next_desc++ % fq->num;

			put_desc(d->ram + fq->desc, me, bufs[i].gpa, bufs[i].len,
				 (uint16_t)((bufs[i].write ? VRING_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
				 (uint16_t)(fq->next_desc % fq->num));
		}
	}
	slot = fq->avail_idx % fq->num;
	memcpy(d->ram + fq->avail + 4 + 2 * slot, &head, 2);
	fq->avail_idx++;
	__atomic_store_n((uint16_t *)(d->ram + fq->avail + 2), fq->avail_idx, __ATOMIC_RELEASE);
	return head;
}

void fz_drv__kick(struct fz_drv *d, int q)
{
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t)q);
}

bool fz_drv__used(struct fz_drv *d, int q, uint32_t *id, uint32_t *len)
{
	struct fz_q *fq = &d->q[q];
	uint16_t idx;
	uint8_t *e;

	memcpy(&idx, d->ram + fq->used + 2, 2);
	if (idx == fq->used_seen)
		return false;
	e = d->ram + fq->used + 4 + 8 * (size_t)(fq->used_seen % fq->num);
	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
	fq->used_seen++;
	return true;
}
