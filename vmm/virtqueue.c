// SPDX-License-Identifier: Apache-2.0
/*
 * virtqueue.c - split virtqueues, device side.
 *
 * The guest owns the ring memory and may rewrite it while we read it: every field is
 * read exactly once into a local copy, then checked, then used. Rules enforced (a breach
 * is a guest fault naming the rule):
 *   - QueueNum is a power of 2 in [1, QueueNumMax]; rings are aligned and inside RAM;
 *   - avail->idx never runs more than QueueNum entries ahead of the device;
 *   - head and next indexes are < QueueNum; a chain has at most QueueNum descriptors
 *     (this also catches loops); an indirect table is 16-byte sized, non-empty, inside
 *     RAM, only at the end of a chain, not nested, and its walk is bounded by its size;
 *   - every buffer [addr, addr + len) is guest RAM (overflow included), and no
 *     device-readable buffer follows a device-writable one.
 *
 * With VIRTIO_RING_F_EVENT_IDX the device publishes avail_event (after the used ring)
 * each time it finds the ring empty, then looks again, so a buffer the driver adds
 * meanwhile is either seen or notified; interrupts follow the driver's used_event
 * (after the avail ring).
 */
#include <errno.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "vmm/virtio.h"
#include "vmm/vm-internal.h"

#define DESC_SIZE 16

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static uint16_t load16(const uint8_t *p)
{
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
}

static void store16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE);
}

static void read_desc(const uint8_t *table, uint32_t i, struct desc *d)
{
	uint8_t raw[DESC_SIZE];

	/* One copy of the guest's descriptor; the checks run on it only. */
	memcpy(raw, table + (size_t)i * DESC_SIZE, DESC_SIZE);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	memcpy(&d->addr, raw, 8);
	memcpy(&d->len, raw + 8, 4);
	memcpy(&d->flags, raw + 12, 2);
	memcpy(&d->next, raw + 14, 2);
}

static uint8_t *avail_event(const struct virtq *vq)
{
	return vq->used + 4 + 8 * (size_t)vq->num;
}

static uint8_t *used_event(const struct virtq *vq)
{
	return vq->avail + 4 + 2 * (size_t)vq->num;
}

void virtq__reset(struct virtq *vq)
{
	memset(vq, 0, sizeof(*vq));
}

int virtq__enable(struct virtq *vq, struct vm *vm, const char *dev_name)
{
	uint64_t n = vq->num;

	if (n == 0 || (n & (n - 1)) != 0) {
		vm__guest_fault(vm, dev_name, "queue size %u is not a power of 2", vq->num);
		return -EFAULT;
	}
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3)) {
		vm__guest_fault(vm, dev_name,
				"misaligned ring (desc 0x%llx avail 0x%llx used 0x%llx)",
				(unsigned long long)vq->desc_gpa, (unsigned long long)vq->avail_gpa,
				(unsigned long long)vq->used_gpa);
		return -EFAULT;
	}
	vq->desc = vm__gpa(vm, vq->desc_gpa, DESC_SIZE * n);
	vq->avail = vm__gpa(vm, vq->avail_gpa, 6 + 2 * n);
	vq->used = vm__gpa(vm, vq->used_gpa, 6 + 8 * n);
	if (!vq->desc || !vq->avail || !vq->used) {
		vm__guest_fault(vm, dev_name,
				"ring outside guest RAM (desc 0x%llx avail 0x%llx used 0x%llx, "
				"size %u)",
				(unsigned long long)vq->desc_gpa, (unsigned long long)vq->avail_gpa,
				(unsigned long long)vq->used_gpa, vq->num);
		vq->desc = vq->avail = vq->used = NULL;
		return -EFAULT;
	}
	vq->last_avail = 0;
	vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->ready = true;
	return 0;
}

bool virtq__has_avail(const struct virtq *vq)
{
	if (!vq->ready)
		return false;
	return load16(vq->avail + 2) != vq->last_avail;
}

bool virtq__want_irq(struct virtq *vq)
{
	uint16_t old, now, ev;

	if (!vq->ready)
		return false;
	/* Order our used->idx store before reading the guest's flags / used_event. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(load16(vq->avail) & VRING_AVAIL_F_NO_INTERRUPT);
	old = vq->signalled_used;
	now = vq->used_idx;
	vq->signalled_used = now;
	ev = load16(used_event(vq));
	/* Did used->idx pass used_event + 1 with the entries since the last decision? */
	return (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
}

struct walk {
	struct virtq_req *req;
	struct vm *vm;
	const char *dev;
	bool seen_write;
};

/* Adds one buffer descriptor (not an indirect one) to the request. */
static int add_buf(struct walk *w, const struct desc *d)
{
	struct virtq_req *req = w->req;
	void *host;

	host = vm__gpa(w->vm, d->addr, d->len);
	if (!host) {
		vm__guest_fault(w->vm, w->dev, "buffer 0x%llx+0x%x outside guest RAM",
				(unsigned long long)d->addr, d->len);
		return -EFAULT;
	}
	if (d->flags & VRING_DESC_F_WRITE) {
		w->seen_write = true;
		if (d->len == 0)
			return 0;
		if (req->nin >= VIRTQ_MAX_SEGS)
			goto too_many;
		req->in[req->nin].iov_base = host;
		req->in[req->nin++].iov_len = d->len;
		req->in_len += d->len;
		return 0;
	}
	if (w->seen_write) {
		vm__guest_fault(w->vm, w->dev, "readable descriptor after a writable one");
		return -EFAULT;
	}
	if (d->len == 0)
		return 0;
	if (req->nout >= VIRTQ_MAX_SEGS)
		goto too_many;
	req->out[req->nout].iov_base = host;
	req->out[req->nout++].iov_len = d->len;
	req->out_len += d->len;
	return 0;
too_many:
	vm__guest_fault(w->vm, w->dev, "more than %d buffers in one chain", VIRTQ_MAX_SEGS);
	return -EFAULT;
}

static int walk_indirect(struct walk *w, const struct desc *ind)
{
	const uint8_t *table;
	uint32_t n, i, count;
	struct desc d;

	if (ind->flags & VRING_DESC_F_NEXT) {
		vm__guest_fault(w->vm, w->dev, "indirect descriptor with NEXT set");
		return -EFAULT;
	}
	if (ind->len == 0 || ind->len % DESC_SIZE || ind->len / DESC_SIZE > VIRTQ_MAX_SEGS) {
		vm__guest_fault(w->vm, w->dev, "indirect table length %u invalid", ind->len);
		return -EFAULT;
	}
	table = vm__gpa(w->vm, ind->addr, ind->len);
	if (!table) {
		vm__guest_fault(w->vm, w->dev, "indirect table 0x%llx+0x%x outside guest RAM",
				(unsigned long long)ind->addr, ind->len);
		return -EFAULT;
	}
	n = ind->len / DESC_SIZE;
	for (i = 0, count = 0;; count++) {
		if (count >= n) {
			vm__guest_fault(w->vm, w->dev,
					"indirect chain longer than its table (%u entries, loop?)",
					n);
			return -EFAULT;
		}
		read_desc(table, i, &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			vm__guest_fault(w->vm, w->dev, "nested indirect descriptor");
			return -EFAULT;
		}
		if (add_buf(w, &d) < 0)
			return -EFAULT;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= n) {
			vm__guest_fault(w->vm, w->dev, "indirect next index %u >= table size %u",
					d.next, n);
			return -EFAULT;
		}
		i = d.next;
	}
}

static int walk_chain(struct virtq *vq, struct walk *w, uint16_t head)
{
	uint32_t count = 0;
	uint16_t i = head;
	struct desc d;

	for (;;) {
		if (++count > vq->num) {
			vm__guest_fault(w->vm, w->dev,
					"descriptor chain from head %u longer than queue size %u "
					"(loop?)",
					head, vq->num);
			return -EFAULT;
		}
		read_desc(vq->desc, i, &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!vq->indirect) {
				vm__guest_fault(w->vm, w->dev,
						"indirect descriptor without the feature");
				return -EFAULT;
			}
			return walk_indirect(w, &d);
		}
		if (add_buf(w, &d) < 0)
			return -EFAULT;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= vq->num) {
			vm__guest_fault(w->vm, w->dev, "next index %u >= queue size %u", d.next,
					vq->num);
			return -EFAULT;
		}
		i = d.next;
	}
}

int virtq__pop(struct virtq *vq, struct vm *vm, const char *dev_name, struct virtq_req *req)
{
	struct walk w = {.req = req, .vm = vm, .dev = dev_name};
	uint16_t avail_idx, pending, head;

	if (!vq->ready)
		return 0;
	avail_idx = load16(vq->avail + 2);
	if (avail_idx == vq->last_avail && vq->event_idx) {
		/* Ask to be notified of the next entry, then look again: one added before
		 * the driver could see the request is taken now, not missed. */
		store16(avail_event(vq), vq->last_avail);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = load16(vq->avail + 2);
	}
	pending = (uint16_t)(avail_idx - vq->last_avail);
	if (pending == 0)
		return 0;
	if (pending > vq->num) {
		vm__guest_fault(vm, dev_name, "avail idx jumped from %u to %u (queue size %u)",
				vq->last_avail, avail_idx, vq->num);
		return -EFAULT;
	}
	head = load16(vq->avail + 4 + 2 * (vq->last_avail & (vq->num - 1)));
	if (head >= vq->num) {
		vm__guest_fault(vm, dev_name, "avail ring head %u >= queue size %u", head, vq->num);
		return -EFAULT;
	}
	req->head = head;
	req->nout = req->nin = 0;
	req->out_len = req->in_len = 0;
	if (walk_chain(vq, &w, head) < 0)
		return -EFAULT;
	vq->last_avail++;
	return 1;
}

void virtq__unpop(struct virtq *vq)
{
	vq->last_avail--;
}

void virtq__push(struct virtq *vq, uint16_t head, uint32_t written)
{
	uint8_t *elem;
	uint32_t id = head;

	if (!vq->ready)
		return;
	elem = vq->used + 4 + 8 * (size_t)(vq->used_idx & (vq->num - 1));
	memcpy(elem, &id, 4);
	memcpy(elem + 4, &written, 4);
	vq->used_idx++;
	/* The element is visible before the index that publishes it. */
	store16(vq->used + 2, vq->used_idx);
}

size_t iov__to_buf(const struct iovec *iov, uint32_t n, uint64_t off, void *buf, size_t len)
{
	size_t done = 0;
	uint32_t i;

	for (i = 0; i < n && done < len; i++) {
		size_t seg = iov[i].iov_len, take;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		take = seg - off;
		if (take > len - done)
			take = len - done;
		memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + off, take);
		done += take;
		off = 0;
	}
	return done;
}

size_t iov__from_buf(const struct iovec *iov, uint32_t n, uint64_t off, const void *buf, size_t len)
{
	size_t done = 0;
	uint32_t i;

	for (i = 0; i < n && done < len; i++) {
		size_t seg = iov[i].iov_len, put;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		put = seg - off;
		if (put > len - done)
			put = len - done;
		memcpy((uint8_t *)iov[i].iov_base + off, (const uint8_t *)buf + done, put);
		done += put;
		off = 0;
	}
	return done;
}

uint32_t iov__slice(const struct iovec *iov, uint32_t n, uint64_t off, uint64_t len,
		    struct iovec *dst, uint32_t max)
{
	uint32_t i, out = 0;

	for (i = 0; i < n && len > 0 && out < max; i++) {
		uint64_t seg = iov[i].iov_len, take;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		take = seg - off;
		if (take > len)
			take = len;
		dst[out].iov_base = (uint8_t *)iov[i].iov_base + off;
		dst[out++].iov_len = take;
		len -= take;
		off = 0;
	}
	return out;
}
