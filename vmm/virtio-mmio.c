// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-mmio.c - the virtio-mmio transport, version 2 (modern devices only).
 *
 * Register rules enforced (anything else is a guest fault that stops the device):
 * control registers are accessed with aligned 32-bit accesses only; read-only and
 * unknown registers are never written; the status only gains bits until a reset
 * (write 0), in the order ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK; the driver
 * accepts only offered features and only before FEATURES_OK; queue registers are
 * written only for an existing, not-ready queue; QueueNotify names an existing queue;
 * the config space is read-only.
 *
 * Notifications: a QueueNotify write of the queue index is caught by KVM (ioeventfd,
 * one eventfd per queue with datamatch) and handled on the event-loop thread.
 * Interrupts: the InterruptStatus bit is set before the irqfd fires, so an interrupt
 * handler that runs for an earlier edge still sees the new work.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include "vmm/virtio.h"
#include "vmm/vm-internal.h"

#define MMIO_MAGIC 0x74726976 /* "virt" */
#define STATUS_KNOWN                                                                               \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |      \
	 VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED)

__attribute__((format(printf, 2, 0))) static void vfault(struct virtio_dev *dev, const char *fmt,
							 va_list ap)
{
	char msg[256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (dev->broken)
		return;
	dev->broken = true;
	vm__guest_fault(dev->vm, dev->ops->name, "%s", msg);
}

void virtio__fault(struct virtio_dev *dev, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfault(dev, fmt, ap);
	va_end(ap);
}

bool virtio__queue_live(const struct virtio_dev *dev, uint32_t q)
{
	return !dev->broken && q < dev->ops->nqueues && dev->vq[q].ready &&
	       (dev->status & VIRTIO_CONFIG_S_DRIVER_OK) && !(dev->status & VIRTIO_CONFIG_S_FAILED);
}

void virtio__kick(struct virtio_dev *dev, uint32_t q)
{
	uint64_t one = 1;

	if (q < dev->ops->nqueues && write(dev->kickfd[q], &one, sizeof(one)) < 0) {
		/* The counter is saturated: a notification is pending anyway. */
	}
}

void virtio_mmio__signal_used(struct virtio_dev *dev)
{
	uint64_t one = 1;

	__atomic_fetch_or(&dev->isr, VIRTIO_MMIO_INT_VRING, __ATOMIC_SEQ_CST);
	if (write(dev->irqfd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the irqfd counter is saturated, an interrupt is pending. */
	}
}

static void transport_reset(struct virtio_dev *dev)
{
	uint32_t q;

	for (q = 0; q < VIRTIO_MAX_QUEUES; q++)
		virtq__reset(&dev->vq[q]);
	dev->guest_features = 0;
	dev->status = 0;
	dev->dev_feat_sel = dev->drv_feat_sel = dev->queue_sel = 0;
	__atomic_store_n(&dev->isr, 0, __ATOMIC_SEQ_CST);
	if (dev->ops->reset)
		dev->ops->reset(dev);
}

static uint32_t reg_read(struct virtio_dev *dev, uint64_t off)
{
	struct virtq *vq = dev->queue_sel < dev->ops->nqueues ? &dev->vq[dev->queue_sel] : NULL;

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return dev->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (dev->dev_feat_sel > 1)
			return 0;
		return (uint32_t)(dev->host_features >> (32 * dev->dev_feat_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return vq ? dev->ops->queue_max : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return vq ? vq->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return __atomic_load_n(&dev->isr, __ATOMIC_SEQ_CST);
	case VIRTIO_MMIO_STATUS:
		return dev->status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return dev->config_gen;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		return 0xffffffff; /* no shared memory regions */
	default:
		return 0;
	}
}

static void mmio_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct virtio_dev *dev = opaque;
	uint32_t v;

	memset(data, 0, len);
	if (off >= VIRTIO_MMIO_CONFIG) {
		uint64_t c = off - VIRTIO_MMIO_CONFIG;

		pthread_mutex_lock(&dev->lock);
		if (c < dev->config_len && len <= dev->config_len - c)
			memcpy(data, dev->config + c, len);
		pthread_mutex_unlock(&dev->lock);
		return;
	}
	if (off == VIRTIO_MMIO_INTERRUPT_STATUS && len == 4) {
		/* Lock-free: the interrupt handler must not wait for device I/O. */
		v = __atomic_load_n(&dev->isr, __ATOMIC_SEQ_CST);
		memcpy(data, &v, 4);
		return;
	}
	pthread_mutex_lock(&dev->lock);
	if (len != 4 || (off & 3)) {
		virtio__fault(dev, "%u-byte read at register 0x%03llx (must be aligned 32-bit)",
			      len, (unsigned long long)off);
	} else if (!dev->broken) {
		v = reg_read(dev, off);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&dev->lock);
}

static void write_status(struct virtio_dev *dev, uint32_t v)
{
	uint32_t added;

	if (v == 0) {
		transport_reset(dev);
		return;
	}
	if (v & ~STATUS_KNOWN) {
		virtio__fault(dev, "status 0x%x has unknown bits", v);
		return;
	}
	if (dev->status & ~v) {
		virtio__fault(dev, "status 0x%x -> 0x%x clears bits without a reset", dev->status,
			      v);
		return;
	}
	if (v & VIRTIO_CONFIG_S_FAILED) {
		vm__log(dev->vm, "%s: driver set FAILED (status 0x%x)", dev->ops->name, v);
		dev->status = v;
		return;
	}
	added = v & ~dev->status;
	if ((added & VIRTIO_CONFIG_S_DRIVER) && !(v & VIRTIO_CONFIG_S_ACKNOWLEDGE))
		goto order;
	if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
		if (!(v & VIRTIO_CONFIG_S_DRIVER))
			goto order;
		if (dev->guest_features & ~dev->host_features) {
			virtio__fault(
				dev, "driver accepted features 0x%llx that were not offered",
				(unsigned long long)(dev->guest_features & ~dev->host_features));
			return;
		}
		if (!(dev->guest_features & (1ULL << VIRTIO_F_VERSION_1))) {
			/* A legacy driver: refuse FEATURES_OK, it will give up. */
			v &= ~VIRTIO_CONFIG_S_FEATURES_OK;
		}
	}
	if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !(v & VIRTIO_CONFIG_S_FEATURES_OK))
		goto order;
	dev->status = v;
	if (added & VIRTIO_CONFIG_S_DRIVER_OK) {
		uint32_t q;

		/* Work the driver queued before DRIVER_OK starts now. */
		for (q = 0; q < dev->ops->nqueues; q++)
			virtio__kick(dev, q);
	}
	return;
order:
	virtio__fault(dev, "status 0x%x -> 0x%x out of order", dev->status, v);
}

static void write_features(struct virtio_dev *dev, uint32_t v)
{
	if ((dev->status & VIRTIO_CONFIG_S_FEATURES_OK) ||
	    !(dev->status & VIRTIO_CONFIG_S_DRIVER)) {
		virtio__fault(dev, "driver features written in status 0x%x", dev->status);
		return;
	}
	if (dev->drv_feat_sel > 1) {
		if (v)
			virtio__fault(dev, "driver features 0x%x for select %u", v,
				      dev->drv_feat_sel);
		return;
	}
	if (dev->drv_feat_sel == 0)
		dev->guest_features = (dev->guest_features & ~0xffffffffULL) | v;
	else
		dev->guest_features = (dev->guest_features & 0xffffffffULL) | ((uint64_t)v << 32);
}

static void set_half(uint64_t *p, bool high, uint32_t v)
{
	if (high)
		*p = (*p & 0xffffffffULL) | ((uint64_t)v << 32);
	else
		*p = (*p & ~0xffffffffULL) | v;
}

static void write_queue_ready(struct virtio_dev *dev, struct virtq *vq, uint32_t v)
{
	if (v == 0) {
		vq->ready = false;
		return;
	}
	if (v != 1) {
		virtio__fault(dev, "QueueReady %u", v);
		return;
	}
	if (!(dev->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
		virtio__fault(dev, "queue %u enabled before FEATURES_OK", dev->queue_sel);
		return;
	}
	vq->indirect = dev->guest_features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	vq->event_idx = dev->guest_features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	if (virtq__enable(vq, dev->vm, dev->ops->name) < 0)
		dev->broken = true;
}

static void write_queue_reg(struct virtio_dev *dev, uint64_t off, uint32_t v)
{
	struct virtq *vq;

	if (dev->queue_sel >= dev->ops->nqueues) {
		virtio__fault(dev, "queue register 0x%03llx written for queue %u (device has %u)",
			      (unsigned long long)off, dev->queue_sel, dev->ops->nqueues);
		return;
	}
	vq = &dev->vq[dev->queue_sel];
	if (off == VIRTIO_MMIO_QUEUE_READY) {
		write_queue_ready(dev, vq, v);
		return;
	}
	if (vq->ready) {
		virtio__fault(dev, "queue %u register 0x%03llx written while the queue is ready",
			      dev->queue_sel, (unsigned long long)off);
		return;
	}
	switch (off) {
	case VIRTIO_MMIO_QUEUE_NUM:
		if (v == 0 || v > dev->ops->queue_max) {
			virtio__fault(dev, "queue %u size %u (max %u)", dev->queue_sel, v,
				      dev->ops->queue_max);
			return;
		}
		vq->num = (uint16_t)v;
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		set_half(&vq->desc_gpa, off == VIRTIO_MMIO_QUEUE_DESC_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		set_half(&vq->avail_gpa, off == VIRTIO_MMIO_QUEUE_AVAIL_HIGH, v);
		break;
	default: /* VIRTIO_MMIO_QUEUE_USED_LOW / _HIGH */
		set_half(&vq->used_gpa, off == VIRTIO_MMIO_QUEUE_USED_HIGH, v);
		break;
	}
}

static void reg_write(struct virtio_dev *dev, uint64_t off, uint32_t v)
{
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		dev->dev_feat_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		write_features(dev, v);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		dev->drv_feat_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		dev->queue_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
	case VIRTIO_MMIO_QUEUE_READY:
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		write_queue_reg(dev, off, v);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Normally caught by the ioeventfd; this is the slow path. */
		if (v >= dev->ops->nqueues)
			virtio__fault(dev, "QueueNotify for queue %u (device has %u)", v,
				      dev->ops->nqueues);
		else
			virtio__kick(dev, v);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		__atomic_fetch_and(&dev->isr, ~v, __ATOMIC_SEQ_CST);
		break;
	case VIRTIO_MMIO_STATUS:
		write_status(dev, v);
		break;
	case VIRTIO_MMIO_SHM_SEL:
		break;
	default:
		virtio__fault(dev, "write 0x%x to read-only or unknown register 0x%03llx", v,
			      (unsigned long long)off);
		break;
	}
}

static void mmio_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct virtio_dev *dev = opaque;
	uint32_t v;

	if (off == VIRTIO_MMIO_INTERRUPT_ACK && len == 4) {
		memcpy(&v, data, 4);
		__atomic_fetch_and(&dev->isr, ~v, __ATOMIC_SEQ_CST);
		return;
	}
	pthread_mutex_lock(&dev->lock);
	if (dev->broken)
		goto out;
	if (off >= VIRTIO_MMIO_CONFIG) {
		virtio__fault(dev, "%u-byte write to read-only config space at 0x%llx", len,
			      (unsigned long long)(off - VIRTIO_MMIO_CONFIG));
		goto out;
	}
	if (len != 4 || (off & 3)) {
		virtio__fault(dev, "%u-byte write at register 0x%03llx (must be aligned 32-bit)",
			      len, (unsigned long long)off);
		goto out;
	}
	memcpy(&v, data, 4);
	reg_write(dev, off, v);
out:
	pthread_mutex_unlock(&dev->lock);
}

static const struct vm_io_ops mmio_ops = {
	.read = mmio_read,
	.write = mmio_write,
};

static void kick_cb(void *opaque, uint32_t events)
{
	struct virtio_kick *k = opaque;
	struct virtio_dev *dev = k->dev;
	uint64_t cnt;

	if (read(dev->kickfd[k->q], &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&dev->lock);
	if (virtio__queue_live(dev, k->q) && dev->ops->notify)
		dev->ops->notify(dev, k->q);
	pthread_mutex_unlock(&dev->lock);
}

static void unwire(struct virtio_dev *dev)
{
	uint32_t q;

	for (q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (dev->ev_on[q])
			vm__ev_del(dev->vm, dev->kickfd[q]);
		if (dev->ioevent_on[q])
			vm__ioeventfd(dev->vm, dev->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, q,
				      dev->kickfd[q], false);
		if (dev->kickfd[q] >= 0)
			close(dev->kickfd[q]);
		dev->ev_on[q] = dev->ioevent_on[q] = false;
		dev->kickfd[q] = -1;
	}
	if (dev->irqfd_on)
		vm__irqfd(dev->vm, dev->gsi, dev->irqfd, false);
	if (dev->irqfd >= 0)
		close(dev->irqfd);
	dev->irqfd_on = false;
	dev->irqfd = -1;
}

static int wire(struct virtio_dev *dev)
{
	uint32_t q;
	int r;

	dev->irqfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (dev->irqfd < 0)
		return -errno;
	r = vm__irqfd(dev->vm, dev->gsi, dev->irqfd, true);
	if (r < 0)
		return r;
	dev->irqfd_on = true;
	/* vCPU threads kick queues (QueueNotify's slow path, DRIVER_OK) and may signal */
	r = vm__seccomp_fd(dev->vm, VM_FD_VCPU_WRITE, dev->irqfd);
	if (r < 0)
		return r;
	for (q = 0; q < dev->ops->nqueues; q++) {
		dev->kick[q].dev = dev;
		dev->kick[q].q = q;
		dev->kickfd[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (dev->kickfd[q] < 0)
			return -errno;
		r = vm__seccomp_fd(dev->vm, VM_FD_VCPU_WRITE, dev->kickfd[q]);
		if (r < 0)
			return r;
		r = vm__ioeventfd(dev->vm, dev->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, q,
				  dev->kickfd[q], true);
		if (r < 0)
			return r;
		dev->ioevent_on[q] = true;
		r = vm__ev_add(dev->vm, dev->kickfd[q], EPOLLIN, kick_cb, &dev->kick[q]);
		if (r < 0)
			return r;
		dev->ev_on[q] = true;
	}
	return 0;
}

int virtio_mmio__create(struct vm *vm, const struct virtio_dev_ops *ops, void *priv,
			uint64_t features, const void *config, uint32_t config_len,
			struct virtio_dev **ret)
{
	struct virtio_dev *dev;
	uint32_t q;
	int r;

	if (ops->nqueues == 0 || ops->nqueues > VIRTIO_MAX_QUEUES ||
	    ops->queue_max > VIRTQ_MAX_SIZE || config_len > VM_MMIO_SLOT_SIZE - VIRTIO_MMIO_CONFIG)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->vm = vm;
	dev->ops = ops;
	dev->priv = priv;
	dev->irqfd = -1;
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++)
		dev->kickfd[q] = -1;
	dev->host_features = features | (1ULL << VIRTIO_F_VERSION_1);
	pthread_mutex_init(&dev->lock, NULL);
	dev->config = calloc(1, config_len ? config_len : 1);
	if (!dev->config) {
		r = -ENOMEM;
		goto fail;
	}
	memcpy(dev->config, config, config_len);
	dev->config_len = config_len;
	r = vm__alloc_mmio_slot(vm, &dev->base, &dev->gsi);
	if (r < 0)
		goto fail;
	r = wire(dev);
	if (r < 0)
		goto fail;
	*ret = dev;
	return 0;
fail:
	unwire(dev);
	free(dev->config);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
	return r;
}

int virtio_mmio__activate(struct virtio_dev *dev)
{
	return vm__mmio_register(dev->vm, dev->base, VM_MMIO_SLOT_SIZE, &mmio_ops, dev);
}

void virtio_dev__free(struct virtio_dev *dev)
{
	if (!dev)
		return;
	unwire(dev);
	if (dev->ops->free)
		dev->ops->free(dev);
	free(dev->config);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}
