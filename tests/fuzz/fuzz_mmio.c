// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target of the virtio-mmio transport (vmm/virtio-mmio.c, with virtqueue.c behind
 * it): a hostile guest driver makes any sequence of register reads and writes (any
 * offset in the 4 KiB window, 1/2/4/8 bytes, any value), writes guest RAM and lets the
 * event loop run. The device behind the transport is a small test device: it takes
 * every chain of a notified queue, checks it, and returns it used.
 *
 * Input: [0] device shape (queues 1..3, QueueNumMax 1..256), [1] offered features
 * (INDIRECT_DESC, EVENT_IDX), [2..13] config space, then 8-byte operations
 * {kind, off le16, value le32, high}: kind & 3 = 0 write, 1 read, 2 guest RAM write
 * (le32 at off * 4), 3 run the event loop; (kind >> 2) & 3 picks the width 4, 1, 2, 8.
 *
 * Invariants: magic, version, device and vendor ids read back as fixed; a read fills
 * exactly its width and reads the registers' model (status, QueueReady, QueueNumMax,
 * features, config bytes); the status only gains bits until a reset, holds only known
 * bits, DRIVER_OK only after FEATURES_OK, FEATURES_OK only with VERSION_1 and offered
 * features; a misaligned or non-32-bit register access breaks the device; a broken
 * device reports no second fault and ignores writes (but the interrupt ack); a ready
 * queue has a valid size and its rings in RAM; every chain the device gets is inside
 * RAM; the device is reset exactly on status 0; freeing it leaves no fd or event behind.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include "tests/fuzz/fuzz_vm.h"
#include "vmm/virtio.h"

#define RAM	     (64u << 10)
#define STATUS_KNOWN 0x8fu /* ACK, DRIVER, DRIVER_OK, FEATURES_OK, FAILED */

static struct {
	struct vm *vm;
	uint8_t *ram;
	int resets, notifies;
	struct virtq_req req;
} fz;

static void dev_notify(struct virtio_dev *dev, uint32_t q)
{
	struct virtq *vq = &dev->vq[q];
	bool used = false;
	int r;

	FZ_CHECK(virtio__queue_live(dev, q), "notify for queue %u, which is not live", q);
	fz.notifies++;
	for (int i = 0; i < 300; i++) {
		r = virtq__pop(vq, dev->vm, dev->ops->name, &fz.req);
		if (r < 0)
			dev->broken = true;
		if (r <= 0)
			break;
		for (uint32_t k = 0; k < fz.req.nout + fz.req.nin; k++) {
			const struct iovec *v =
				k < fz.req.nout ? &fz.req.out[k] : &fz.req.in[k - fz.req.nout];
			const uint8_t *p = v->iov_base;

			FZ_CHECK(p >= fz.ram && v->iov_len &&
					 v->iov_len <= (size_t)(fz.ram + RAM - p),
				 "queue %u: a buffer outside guest RAM", q);
		}
		/* the device writes what it read, as far as it fits */
		if (fz.req.nin) {
			static uint8_t tmp[RAM];
			size_t n = iov__to_buf(fz.req.out, fz.req.nout, 0, tmp, sizeof(tmp));

			iov__from_buf(fz.req.in, fz.req.nin, 0, tmp, n);
		}
		virtq__push(vq, fz.req.head, (uint32_t)(fz.req.in_len > 7 ? 7 : fz.req.in_len));
		used = true;
	}
	if (used && virtq__want_irq(vq))
		virtio_mmio__signal_used(dev);
}

static void dev_reset(struct virtio_dev *dev)
{
	fz.resets++;
}

static const struct virtio_dev_ops shapes[3] = {
	{.name = "virtio-fuzz",
	 .device_id = 42,
	 .nqueues = 1,
	 .notify = dev_notify,
	 .reset = dev_reset},
	{.name = "virtio-fuzz",
	 .device_id = 42,
	 .nqueues = 2,
	 .notify = dev_notify,
	 .reset = dev_reset},
	{.name = "virtio-fuzz",
	 .device_id = 42,
	 .nqueues = 3,
	 .notify = dev_notify,
	 .reset = dev_reset},
};

static void check_state(const struct virtio_dev *dev)
{
	uint32_t s = dev->status;

	FZ_CHECK(!(s & ~STATUS_KNOWN), "status 0x%x has unknown bits", s);
	if (!(s & VIRTIO_CONFIG_S_FAILED)) {
		if (s & VIRTIO_CONFIG_S_DRIVER_OK)
			FZ_CHECK(s & VIRTIO_CONFIG_S_FEATURES_OK, "DRIVER_OK without FEATURES_OK");
		if (s & VIRTIO_CONFIG_S_FEATURES_OK)
			FZ_CHECK((s & VIRTIO_CONFIG_S_DRIVER) && (s & VIRTIO_CONFIG_S_ACKNOWLEDGE),
				 "FEATURES_OK in status 0x%x", s);
		if (s & VIRTIO_CONFIG_S_DRIVER)
			FZ_CHECK(s & VIRTIO_CONFIG_S_ACKNOWLEDGE, "DRIVER without ACKNOWLEDGE");
	}
	if ((s & VIRTIO_CONFIG_S_FEATURES_OK) && !(s & VIRTIO_CONFIG_S_FAILED))
		FZ_CHECK(!(dev->guest_features & ~dev->host_features) &&
				 (dev->guest_features & (1ULL << VIRTIO_F_VERSION_1)),
			 "FEATURES_OK with features 0x%llx of 0x%llx",
			 (unsigned long long)dev->guest_features,
			 (unsigned long long)dev->host_features);
	for (uint32_t q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		const struct virtq *vq = &dev->vq[q];

		if (q >= dev->ops->nqueues) {
			FZ_CHECK(!vq->ready && !vq->num, "queue %u exists (device has %u)", q,
				 dev->ops->nqueues);
			continue;
		}
		if (!vq->ready)
			continue;
		FZ_CHECK(vq->num && !(vq->num & (vq->num - 1)) && vq->num <= dev->ops->queue_max,
			 "queue %u ready with size %u (max %u)", q, vq->num, dev->ops->queue_max);
		FZ_CHECK(vq->desc == fz.ram + vq->desc_gpa &&
				 vq->desc_gpa + 16ull * vq->num <= RAM &&
				 vq->avail == fz.ram + vq->avail_gpa &&
				 vq->avail_gpa + 6 + 2ull * vq->num <= RAM &&
				 vq->used == fz.ram + vq->used_gpa &&
				 vq->used_gpa + 6 + 8ull * vq->num <= RAM,
			 "queue %u ready with rings outside RAM", q);
	}
}

/* What an aligned 32-bit read of register @off must give (config space excluded). */
static bool expected_read(const struct virtio_dev *dev, uint64_t off, uint32_t *want)
{
	const struct virtq *vq =
		dev->queue_sel < dev->ops->nqueues ? &dev->vq[dev->queue_sel] : NULL;

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		*want = 0x74726976;
		return true;
	case VIRTIO_MMIO_VERSION:
		*want = 2;
		return true;
	case VIRTIO_MMIO_DEVICE_ID:
		*want = 42;
		return true;
	case VIRTIO_MMIO_VENDOR_ID:
		*want = VIRTIO_MMIO_VENDOR;
		return true;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		*want = dev->dev_feat_sel > 1
				? 0
				: (uint32_t)(dev->host_features >> (32 * dev->dev_feat_sel));
		return true;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		*want = vq ? dev->ops->queue_max : 0;
		return true;
	case VIRTIO_MMIO_QUEUE_READY:
		*want = vq ? vq->ready : 0;
		return true;
	case VIRTIO_MMIO_STATUS:
		*want = dev->status;
		return true;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		*want = dev->isr;
		return true;
	default:
		return false;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t widths[4] = {4, 1, 2, 8};
	struct virtio_dev_ops ops;
	struct virtio_dev *dev = NULL;
	uint8_t config[12] = {0};
	uint64_t features;
	int fd0, r;

	if (size < 14)
		return 0;
	memset(&fz, 0, sizeof(fz));
	fd0 = fz_lowest_fd();
	fz.vm = fz_vm__new(RAM);
	fz.ram = fz_vm__ram(fz.vm);
	ops = shapes[data[0] % 3];
	ops.queue_max = (uint16_t)(1u << ((data[0] >> 2) % 9));
	features = (data[1] & 1 ? 1ULL << VIRTIO_RING_F_INDIRECT_DESC : 0) |
		   (data[1] & 2 ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0) |
		   (data[1] & 4 ? 1ULL << 5 : 0);
	memcpy(config, data + 2, sizeof(config));
	r = virtio_mmio__create(fz.vm, &ops, NULL, features, config,
				data[1] & 8 ? 0 : sizeof(config), &dev);
	FZ_CHECK(r == 0, "virtio_mmio__create: %d", r);
	FZ_CHECK(virtio_mmio__activate(dev) == 0, "activate failed");

	for (size_t pos = 14; pos + 8 <= size; pos += 8) {
		const uint8_t *op = data + pos;
		uint32_t len = widths[(op[0] >> 2) & 3], v32, before_status = dev->status;
		uint64_t off = (uint64_t)(op[1] | op[2] << 8) & 0xfff, v;
		bool was_broken = dev->broken;
		int faults = fz_vm__faults(fz.vm), resets = fz.resets;

		memcpy(&v32, op + 3, 4);
		v = v32 | (uint64_t)op[7] << 32;
		switch (op[0] & 3) {
		case 0: { /* write */
			struct virtio_dev snap = *dev;

			if (len < 8)
				v &= (1ULL << (8 * len)) - 1;
			fz_vm__mmio_write(fz.vm, dev->base + off, v, len);
			if (was_broken && !(off == VIRTIO_MMIO_INTERRUPT_ACK && len == 4))
				FZ_CHECK(dev->status == snap.status &&
						 dev->guest_features == snap.guest_features &&
						 dev->queue_sel == snap.queue_sel &&
						 memcmp(dev->vq, snap.vq, sizeof(snap.vq)) == 0,
					 "a broken device took a write at 0x%03llx",
					 (unsigned long long)off);
			if (!was_broken && off == VIRTIO_MMIO_STATUS && len == 4 && v == 0)
				FZ_CHECK(fz.resets == resets + 1 && dev->status == 0 &&
						 !dev->guest_features && !dev->isr,
					 "status 0 did not reset the device");
			else
				FZ_CHECK(fz.resets == resets, "a reset without status 0");
			if (!was_broken && off < VIRTIO_MMIO_CONFIG && (len != 4 || (off & 3)) &&
			    !(off == VIRTIO_MMIO_QUEUE_NOTIFY && len == 4))
				FZ_CHECK(dev->broken, "a %u-byte write at 0x%03llx was taken", len,
					 (unsigned long long)off);
			if (!was_broken && off >= VIRTIO_MMIO_CONFIG)
				FZ_CHECK(dev->broken, "a config space write was taken");
			break;
		}
		case 1: { /* read */
			uint32_t want = 0;
			bool known = expected_read(dev, off, &want);
			uint64_t got = fz_vm__mmio_read(fz.vm, dev->base + off, len);

			if (off >= VIRTIO_MMIO_CONFIG) {
				uint64_t c = off - VIRTIO_MMIO_CONFIG, exp = 0;

				if (c < dev->config_len && len <= dev->config_len - c)
					memcpy(&exp, dev->config + c, len);
				FZ_CHECK(got == exp, "config read at %llu: 0x%llx, want 0x%llx",
					 (unsigned long long)c, (unsigned long long)got,
					 (unsigned long long)exp);
			} else if (len == 4 && !(off & 3) &&
				   (!was_broken || off == VIRTIO_MMIO_INTERRUPT_STATUS)) {
				if (known)
					FZ_CHECK(got == want,
						 "register 0x%03llx read 0x%llx, want 0x%x",
						 (unsigned long long)off, (unsigned long long)got,
						 want);
			} else if (!was_broken) {
				FZ_CHECK(dev->broken && got == 0,
					 "a %u-byte read at 0x%03llx was taken", len,
					 (unsigned long long)off);
			} else {
				FZ_CHECK(got == 0, "a broken device answered a read");
			}
			break;
		}
		case 2: /* guest RAM */
			memcpy(fz.ram + (off * 4 + op[7] * 16384ull) % (RAM - 4), &v32, 4);
			break;
		default:
			fz_vm__run(fz.vm);
			break;
		}
		if (!(was_broken || (off == VIRTIO_MMIO_STATUS && (op[0] & 3) == 0 && v == 0)))
			FZ_CHECK((dev->status & before_status) == before_status,
				 "status 0x%x -> 0x%x without a reset", before_status, dev->status);
		FZ_CHECK(fz_vm__faults(fz.vm) <= 1, "%d faults: %s", fz_vm__faults(fz.vm),
			 fz_vm__fault_msg(fz.vm));
		FZ_CHECK(!fz_vm__faults(fz.vm) == !dev->broken, "broken %d after %d faults (%s)",
			 dev->broken, fz_vm__faults(fz.vm), fz_vm__fault_msg(fz.vm));
		if (faults)
			FZ_CHECK(dev->broken, "a broken device got repaired");
		check_state(dev);
	}
	fz_vm__run(fz.vm);
	fz_vm__irqs(fz.vm);
	virtio_dev__free(dev);
	FZ_CHECK(fz_vm__ev_count(fz.vm) == 0, "%d event-loop fds left", fz_vm__ev_count(fz.vm));
	FZ_CHECK(fz_lowest_fd() == fd0, "fds leaked (lowest free %d, was %d)", fz_lowest_fd(), fd0);
	fz_vm__free(fz.vm);
	return 0;
}
