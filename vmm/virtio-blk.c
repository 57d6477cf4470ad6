// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-blk.c - a virtio block device backed by a raw image file.
 *
 * Requests run synchronously on the event-loop thread (preadv/pwritev straight into
 * guest memory): the disks are small local images, one queue, and the guest's block
 * layer keeps the queue full, so a worker thread would add locking and no throughput
 * that matters here.
 *
 * A request is: 16-byte header (type, reserved, sector) in the readable buffers, then
 * the data (readable for writes, writable for reads), then one writable status byte:
 * the last byte of the writable buffers. Buffer boundaries carry no meaning.
 * Header or status missing = guest fault; bad sector range, unaligned size or a write
 * to a read-only disk = VIRTIO_BLK_S_IOERR; unknown types = VIRTIO_BLK_S_UNSUPP.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "vmm/virtio.h"
#include "vmm/vm-internal.h"

#define SECTOR	       512ULL
#define BLK_QUEUE_SIZE 256
#define BLK_SEG_MAX    (BLK_QUEUE_SIZE - 2) /* header and status take two buffers */
#define BLK_SIZE_MAX   (1U << 20)	    /* bytes in one data buffer */
#define BLK_BATCH      BLK_QUEUE_SIZE	    /* requests per wake-up before yielding */

struct blk {
	int fd;
	bool readonly;
	uint64_t sectors;
	char id[VIRTIO_BLK_ID_BYTES];
	struct virtq_req req; /* scratch, event-loop thread only */
	struct iovec data[VIRTQ_MAX_SEGS];
};

struct blk_hdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
};

/* Sector range check without overflow: [sector, sector + bytes / 512) on the disk. */
static bool in_range(const struct blk *b, uint64_t sector, uint64_t bytes)
{
	if (bytes % SECTOR)
		return false;
	return sector <= b->sectors && bytes / SECTOR <= b->sectors - sector;
}

static int do_io(struct blk *b, bool write, const struct iovec *iov, uint32_t n, uint64_t off,
		 uint64_t len)
{
	struct iovec cur[VIRTQ_MAX_SEGS];
	uint64_t done = 0;
	ssize_t r;
	uint32_t cn;

	while (done < len) {
		cn = iov__slice(iov, n, done, len - done, cur, VIRTQ_MAX_SEGS);
		if (cn > IOV_MAX)
			cn = IOV_MAX;
		if (write)
			r = pwritev(b->fd, cur, (int)cn, (off_t)(off + done));
		else
			r = preadv(b->fd, cur, (int)cn, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			if (write)
				return -EIO;
			/* Image shrank under us: the rest reads as zeros. */
			break;
		}
		done += (uint64_t)r;
	}
	while (!write && done < len) {
		static const uint8_t zero[512];
		uint64_t z = len - done < sizeof(zero) ? len - done : sizeof(zero);

		iov__from_buf(iov, n, done, zero, z);
		done += z;
	}
	return 0;
}

/* Runs one request; returns the status byte and sets *written (data bytes written). */
static uint8_t blk_exec(struct blk *b, struct virtio_dev *dev, const struct blk_hdr *h,
			uint64_t *written)
{
	struct virtq_req *req = &b->req;
	uint64_t data_len;
	uint32_t n;

	*written = 0;
	switch (h->type) {
	case VIRTIO_BLK_T_IN:
		data_len = req->in_len - 1;
		if (!in_range(b, h->sector, data_len))
			return VIRTIO_BLK_S_IOERR;
		n = iov__slice(req->in, req->nin, 0, data_len, b->data, VIRTQ_MAX_SEGS);
		if (do_io(b, false, b->data, n, h->sector * SECTOR, data_len) < 0)
			return VIRTIO_BLK_S_IOERR;
		*written = data_len;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_OUT:
		data_len = req->out_len - sizeof(*h);
		if (b->readonly || !in_range(b, h->sector, data_len))
			return VIRTIO_BLK_S_IOERR;
		n = iov__slice(req->out, req->nout, sizeof(*h), data_len, b->data, VIRTQ_MAX_SEGS);
		if (do_io(b, true, b->data, n, h->sector * SECTOR, data_len) < 0)
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		if (!b->readonly && fdatasync(b->fd) < 0)
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		data_len = req->in_len - 1;
		if (data_len > VIRTIO_BLK_ID_BYTES)
			data_len = VIRTIO_BLK_ID_BYTES;
		*written = iov__from_buf(req->in, req->nin, 0, b->id, data_len);
		return VIRTIO_BLK_S_OK;
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

static int blk_one(struct blk *b, struct virtio_dev *dev)
{
	struct virtq_req *req = &b->req;
	struct blk_hdr h;
	uint64_t written;
	uint8_t status;
	int r;

	r = virtq__pop(&dev->vq[0], dev->vm, dev->ops->name, req);
	if (r <= 0)
		return r;
	if (req->out_len < sizeof(h) || req->in_len < 1) {
		virtio__fault(dev, "request without %s (readable %llu, writable %llu bytes)",
			      req->out_len < sizeof(h) ? "header" : "status byte",
			      (unsigned long long)req->out_len, (unsigned long long)req->in_len);
		return -EFAULT;
	}
	iov__to_buf(req->out, req->nout, 0, &h, sizeof(h));
	status = blk_exec(b, dev, &h, &written);
	iov__from_buf(req->in, req->nin, req->in_len - 1, &status, 1);
	virtq__push(&dev->vq[0], req->head, (uint32_t)(written + 1));
	return 1;
}

static void blk_notify(struct virtio_dev *dev, uint32_t q)
{
	struct blk *b = dev->priv;
	bool used = false;
	int i, r = 0;

	for (i = 0; i < BLK_BATCH; i++) {
		r = blk_one(b, dev);
		if (r <= 0)
			break;
		used = true;
	}
	if (r < 0)
		dev->broken = true;
	if (used && virtq__want_irq(&dev->vq[0]))
		virtio_mmio__signal_used(dev);
	if (r > 0 && !dev->broken)
		virtio__kick(dev, 0); /* more queued: continue after other events */
}

static void blk_free(struct virtio_dev *dev)
{
	struct blk *b = dev->priv;

	if (b->fd >= 0)
		close(b->fd);
	free(b);
}

static const struct virtio_dev_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.nqueues = 1,
	.queue_max = BLK_QUEUE_SIZE,
	.notify = blk_notify,
	.free = blk_free,
};

static void put_le32(void *p, uint32_t v)
{
	uint8_t *b = p;

	b[0] = v;
	b[1] = v >> 8;
	b[2] = v >> 16;
	b[3] = v >> 24;
}

int virtio_blk__create(struct vm *vm, const char *path, bool readonly, struct virtio_dev **ret)
{
	struct virtio_blk_config cfg;
	struct virtio_dev *dev;
	uint64_t features;
	struct stat st;
	struct blk *b;
	int r;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->readonly = readonly;
	b->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0 || fstat(b->fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		r = -EINVAL;
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(b->fd, 0, SEEK_END);

		if (end < 0) {
			r = -errno;
			goto fail;
		}
		st.st_size = end;
	}
	b->sectors = (uint64_t)st.st_size / SECTOR;
	snprintf(b->id, sizeof(b->id), "nucleus-%llx", (unsigned long long)st.st_ino);

	memset(&cfg, 0, sizeof(cfg));
	memcpy(&cfg.capacity, &b->sectors, 8); /* x86: host and virtio are little-endian */
	put_le32(&cfg.size_max, BLK_SIZE_MAX);
	put_le32(&cfg.seg_max, BLK_SEG_MAX);
	put_le32(&cfg.blk_size, SECTOR);
	features = (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
		   (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |
		   (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_RING_F_EVENT_IDX);
	if (readonly)
		features |= 1ULL << VIRTIO_BLK_F_RO;
	r = virtio_mmio__create(vm, &blk_ops, b, features, &cfg, sizeof(cfg), &dev);
	if (r < 0)
		goto fail;
	r = virtio_mmio__activate(dev);
	if (r < 0) {
		virtio_dev__free(dev);
		return r;
	}
	*ret = dev;
	return 0;
fail:
	if (b->fd >= 0)
		close(b->fd);
	free(b);
	return r;
}
