/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio.h - virtio devices of the VMM: virtio-mmio transport (version 2, modern only),
 * split virtqueues, virtio-blk and userspace virtio-vsock.
 *
 * The public part (top) is what main.c calls. The rest is shared by virtio-mmio.c,
 * virtqueue.c, virtio-blk.c and virtio-vsock.c (and the unit tests).
 *
 * Threads: the mmio handlers run on vCPU threads; queue notifications arrive through
 * ioeventfds and are processed on the event-loop thread; interrupts go out through an
 * irqfd. One mutex per device (dev->lock) covers the transport and the device state;
 * the interrupt status register is atomic so the guest's interrupt handler never waits
 * for device I/O.
 *
 * Lifetime: create after the VM and its memory exist and before the vCPUs start; free
 * after the vCPUs and the event loop stopped, while the struct vm is still alive.
 */
#ifndef NUCLEUS_VMM_VIRTIO_H
#define NUCLEUS_VMM_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct vm;
struct virtio_dev;

/* ---- public device API (main.c) ---- */

/* A virtio-blk disk backed by the raw image at path (size rounded down to 512 bytes).
 * readonly: opened O_RDONLY, VIRTIO_BLK_F_RO offered, guest writes fail with IOERR. */
int virtio_blk__create(struct vm *vm, const char *path, bool readonly, struct virtio_dev **ret);

/* A virtio-vsock device for guest_cid (>= 3). The host side listens on uds_path (a stale
 * socket file there is replaced): clients write "CONNECT <port>\n" and get
 * "OK <hostport>\n" once the guest accepted. Guest connections to host port P go to the
 * Unix socket "<uds_path>_P". */
int virtio_vsock__create(struct vm *vm, uint64_t guest_cid, const char *uds_path,
			 struct virtio_dev **ret);

/* Unwires and frees a device (NULL is a no-op). */
void virtio_dev__free(struct virtio_dev *dev);

/* ---- shared by the device files ---- */

#define VIRTIO_MAX_QUEUES  3
#define VIRTQ_MAX_SIZE	   256	      /* largest QueueNumMax any of our devices offers */
#define VIRTQ_MAX_SEGS	   1024	      /* buffers in one chain, indirect tables included */
#define VIRTIO_MMIO_VENDOR 0x4c43554e /* "NUCL" */

/* A split virtqueue as configured by the driver. Host pointers are resolved and checked
 * when the driver sets QueueReady (guest RAM never moves during the VM's life). */
struct virtq {
	uint16_t num; /* QueueNum */
	bool ready;   /* QueueReady */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint8_t *desc;		 /* 16 * num bytes */
	uint8_t *avail;		 /* 6 + 2 * num */
	uint8_t *used;		 /* 6 + 8 * num */
	uint16_t last_avail;	 /* next avail ring entry the device takes */
	uint16_t used_idx;	 /* device's copy of used->idx */
	bool indirect;		 /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	bool event_idx;		 /* VIRTIO_RING_F_EVENT_IDX negotiated */
	uint16_t signalled_used; /* used_idx at the last interrupt decision */
};

/* One descriptor chain taken from the avail ring, mapped to host memory: out[] are the
 * device-readable buffers (in chain order), in[] the device-writable ones. */
struct virtq_req {
	uint16_t head;
	uint32_t nout, nin;
	uint64_t out_len, in_len;
	struct iovec out[VIRTQ_MAX_SEGS];
	struct iovec in[VIRTQ_MAX_SEGS];
};

/* Sets up vq from the transport registers; checks size and ring addresses.
 * Returns 0, or -EFAULT after reporting the guest fault with dev_name. */
int virtq__enable(struct virtq *vq, struct vm *vm, const char *dev_name);
void virtq__reset(struct virtq *vq);

/* Takes the next available chain. Returns 1 with *req filled, 0 when the ring is empty,
 * -EFAULT after calling vm__guest_fault(vm, dev_name, ...) for any rule the guest broke. */
int virtq__pop(struct virtq *vq, struct vm *vm, const char *dev_name, struct virtq_req *req);
/* Gives back the chain virtq__pop just returned, unused (it is taken again next time). */
void virtq__unpop(struct virtq *vq);
/* Returns a chain to the guest with the number of bytes written into its in[] buffers. */
void virtq__push(struct virtq *vq, uint16_t head, uint32_t written);
/* Whether the guest wants an interrupt for the entries pushed since the last call:
 * VRING_AVAIL_F_NO_INTERRUPT, or with EVENT_IDX its used_event index. */
bool virtq__want_irq(struct virtq *vq);
/* True when the avail ring has entries the device did not take yet. */
bool virtq__has_avail(const struct virtq *vq);

/* iovec helpers: copy between a flat buffer and an iovec array at a byte offset. Both
 * return the number of bytes copied (short when the iovecs end). */
size_t iov__to_buf(const struct iovec *iov, uint32_t n, uint64_t off, void *buf, size_t len);
size_t iov__from_buf(const struct iovec *iov, uint32_t n, uint64_t off, const void *buf,
		     size_t len);
/* Builds in dst (capacity max) the sub-range [off, off + len) of iov; returns the count. */
uint32_t iov__slice(const struct iovec *iov, uint32_t n, uint64_t off, uint64_t len,
		    struct iovec *dst, uint32_t max);

/* What a device model plugs into the transport. Callbacks run with dev->lock held. */
struct virtio_dev_ops {
	const char *name;   /* "virtio-blk": names the device in fault and log lines */
	uint32_t device_id; /* VIRTIO_ID_* */
	uint32_t nqueues;   /* <= VIRTIO_MAX_QUEUES */
	uint16_t queue_max; /* QueueNumMax, power of 2, <= VIRTQ_MAX_SIZE */
	/* Queue q was notified (event-loop thread). */
	void (*notify)(struct virtio_dev *dev, uint32_t q);
	/* The driver reset the device (status 0), any thread. */
	void (*reset)(struct virtio_dev *dev);
	/* Releases the device model (dev itself is freed by the transport). */
	void (*free)(struct virtio_dev *dev);
};

struct virtio_kick {
	struct virtio_dev *dev;
	uint32_t q;
};

struct virtio_dev {
	struct vm *vm;
	const struct virtio_dev_ops *ops;
	void *priv; /* the device model */
	pthread_mutex_t lock;
	uint64_t base; /* MMIO window */
	uint32_t gsi;
	uint64_t host_features;	 /* offered */
	uint64_t guest_features; /* written by the driver */
	uint32_t status;
	uint32_t dev_feat_sel, drv_feat_sel, queue_sel;
	uint32_t isr; /* InterruptStatus, atomic */
	uint32_t config_gen;
	uint8_t *config; /* device config space (little-endian), config_len bytes */
	uint32_t config_len;
	bool broken; /* guest fault seen: the device does nothing more */
	int irqfd;
	int kickfd[VIRTIO_MAX_QUEUES];
	bool ioevent_on[VIRTIO_MAX_QUEUES], ev_on[VIRTIO_MAX_QUEUES], irqfd_on;
	struct virtq vq[VIRTIO_MAX_QUEUES];
	struct virtio_kick kick[VIRTIO_MAX_QUEUES];
};

/* Allocates the transport for ops, offering features (VIRTIO_F_VERSION_1 is added) and
 * config (copied). Takes an MMIO slot, wires ioeventfds, irqfd and event loop. The
 * guest sees nothing before virtio_mmio__activate(). On failure priv is untouched; once
 * it succeeded, virtio_dev__free() (which calls ops->free) undoes everything. */
int virtio_mmio__create(struct vm *vm, const struct virtio_dev_ops *ops, void *priv,
			uint64_t features, const void *config, uint32_t config_len,
			struct virtio_dev **ret);
/* Registers the MMIO window: the last step of a device's create (cannot be undone). */
int virtio_mmio__activate(struct virtio_dev *dev);
/* Raises the used-buffer interrupt (InterruptStatus bit 0, then the irqfd). */
void virtio_mmio__signal_used(struct virtio_dev *dev);
/* Reports a guest fault for dev and stops the device. Lock held or not. */
void virtio__fault(struct virtio_dev *dev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Queue q is usable: the driver finished initialization and the queue is ready. */
bool virtio__queue_live(const struct virtio_dev *dev, uint32_t q);
/* Schedules ops->notify(q) on the event-loop thread (through the queue's kick eventfd). */
void virtio__kick(struct virtio_dev *dev, uint32_t q);

#endif
