// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target of the split-virtqueue walk (vmm/virtqueue.c): a hostile guest owns the
 * descriptor table, the avail ring (and its used_event) and the buffers, and may
 * rewrite them between two pops. No transport: the queue is set up as the virtio-mmio
 * registers would (size, ring addresses, negotiated INDIRECT_DESC / EVENT_IDX).
 *
 * Input: an 8-byte queue header, a list of operations, then the guest RAM image:
 *   [0] queue size: 1 << (b & 15), or with bit 7 set the raw value b & 0x7f
 *   [1] bit 0 INDIRECT_DESC, bit 1 EVENT_IDX
 *   [2..7] desc, avail, used guest-physical addresses (le16 each; RAM is 32 KiB, so
 *       part of that range is outside it)
 *   [8] n, then n operations of 4 bytes {op, a, b, c}, then the RAM image.
 *
 * Invariants: virtq__enable accepts exactly the queues the rules allow (computed here
 * independently); a pop returns -EFAULT exactly when one guest fault was reported, and
 * then the chain breaks a rule per an independent walk of the same memory (the
 * reference model below), else it returns the same buffers as that walk: every iovec
 * inside guest RAM, non-empty, the lengths summed, readable before writable; the used
 * ring and the avail_event index are written where and as the spec says; has_avail
 * and want_irq agree with the ring; the iovec helpers copy and slice exactly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "tests/fuzz/fuzz_vm.h"
#include "vmm/virtio.h"

#define RAM	 (32u << 10)
#define MAX_PEND 64
#define DEV	 "virtio-fuzz"

static struct virtq_req reqs[MAX_PEND], ref;
static uint8_t scratch[RAM];

static uint16_t rd16(const uint8_t *ram, uint64_t off)
{
	uint16_t v;

	memcpy(&v, ram + off, 2);
	return v;
}

static void wr16(uint8_t *ram, uint64_t off, uint16_t v)
{
	memcpy(ram + off, &v, 2);
}

/* ---- the reference walk: the rules of virtqueue.c's header, written out again ---- */

struct rdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static struct rdesc rdesc_at(const uint8_t *table, uint32_t i)
{
	struct rdesc d;

	memcpy(&d.addr, table + 16 * (size_t)i, 8);
	memcpy(&d.len, table + 16 * (size_t)i + 8, 4);
	memcpy(&d.flags, table + 16 * (size_t)i + 12, 2);
	memcpy(&d.next, table + 16 * (size_t)i + 14, 2);
	return d;
}

static bool ref_in_ram(uint64_t addr, uint64_t len)
{
	return addr <= RAM && len <= RAM - addr;
}

static bool ref_add(uint8_t *ram, const struct rdesc *d, bool *seen_write)
{
	struct virtq_req *r = &ref;

	if (!ref_in_ram(d->addr, d->len))
		return false;
	if (d->flags & VRING_DESC_F_WRITE) {
		*seen_write = true;
		if (!d->len)
			return true;
		if (r->nin >= VIRTQ_MAX_SEGS)
			return false;
		r->in[r->nin].iov_base = ram + d->addr;
		r->in[r->nin++].iov_len = d->len;
		r->in_len += d->len;
		return true;
	}
	if (*seen_write)
		return false;
	if (!d->len)
		return true;
	if (r->nout >= VIRTQ_MAX_SEGS)
		return false;
	r->out[r->nout].iov_base = ram + d->addr;
	r->out[r->nout++].iov_len = d->len;
	r->out_len += d->len;
	return true;
}

/* true: a valid chain (in ref); false: the guest broke a rule. */
static bool ref_walk(uint8_t *ram, const struct virtq *vq, uint16_t head)
{
	bool seen_write = false;
	uint32_t count = 0, i = head;

	ref.nout = ref.nin = 0;
	ref.out_len = ref.in_len = 0;
	for (;;) {
		struct rdesc d;

		if (++count > vq->num)
			return false;
		d = rdesc_at(vq->desc, i);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			uint32_t n, k = 0, c = 0;

			if (!vq->indirect || (d.flags & VRING_DESC_F_NEXT) || d.len == 0 ||
			    d.len % 16 || d.len / 16 > VIRTQ_MAX_SEGS || !ref_in_ram(d.addr, d.len))
				return false;
			n = d.len / 16;
			for (;; c++) {
				struct rdesc e;

				if (c >= n)
					return false;
				e = rdesc_at(ram + d.addr, k);
				if ((e.flags & VRING_DESC_F_INDIRECT) ||
				    !ref_add(ram, &e, &seen_write))
					return false;
				if (!(e.flags & VRING_DESC_F_NEXT))
					return true;
				if (e.next >= n)
					return false;
				k = e.next;
			}
		}
		if (!ref_add(ram, &d, &seen_write))
			return false;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return true;
		if (d.next >= vq->num)
			return false;
		i = d.next;
	}
}

static void check_iovs(const struct iovec *iov, uint32_t n, uint64_t total, const uint8_t *ram,
		       const char *what)
{
	uint64_t sum = 0;

	FZ_CHECK(n <= VIRTQ_MAX_SEGS, "%s: %u buffers", what, n);
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *p = iov[i].iov_base;

		FZ_CHECK(iov[i].iov_len > 0, "%s[%u]: empty buffer", what, i);
		FZ_CHECK(p >= ram && p <= ram + RAM && iov[i].iov_len <= (size_t)(ram + RAM - p),
			 "%s[%u]: %p+%zu outside guest RAM", what, i, (const void *)p,
			 iov[i].iov_len);
		sum += iov[i].iov_len;
	}
	FZ_CHECK(sum == total, "%s: lengths sum to %llu, the request says %llu", what,
		 (unsigned long long)sum, (unsigned long long)total);
}

static void same_iovs(const struct iovec *a, const struct iovec *b, uint32_t n, const char *what)
{
	for (uint32_t i = 0; i < n; i++)
		FZ_CHECK(a[i].iov_base == b[i].iov_base && a[i].iov_len == b[i].iov_len,
			 "%s[%u] differs from the reference walk", what, i);
}

/* The iovec helpers on a popped request: exact copies and slices. */
static void check_helpers(const struct virtq_req *r, uint32_t a, uint32_t b)
{
	static struct iovec dst[VIRTQ_MAX_SEGS];
	uint64_t off = a % (r->out_len + 2), len = b % (r->out_len + 2), got = 0;
	uint32_t n = iov__slice(r->out, r->nout, off, len, dst, VIRTQ_MAX_SEGS);
	size_t copied, want = off < r->out_len ? r->out_len - off : 0;

	if (want > len)
		want = len;
	for (uint32_t i = 0; i < n; i++)
		got += dst[i].iov_len;
	FZ_CHECK(got == want, "iov__slice(%llu, %llu) of %llu bytes: %llu", (unsigned long long)off,
		 (unsigned long long)len, (unsigned long long)r->out_len, (unsigned long long)got);
	want = len < sizeof(scratch) ? len : sizeof(scratch);
	copied = iov__to_buf(r->out, r->nout, off, scratch, want);
	FZ_CHECK(copied == (off < r->out_len ? (r->out_len - off < want ? r->out_len - off : want)
					     : 0),
		 "iov__to_buf copied %zu", copied);
	/* the slice and the copy see the same bytes (buffers may overlap: compare first) */
	for (uint32_t i = 0, pos = 0; i < n && pos < copied; i++) {
		size_t k = dst[i].iov_len < copied - pos ? dst[i].iov_len : copied - pos;

		FZ_CHECK(memcmp(scratch + pos, dst[i].iov_base, k) == 0,
			 "iov__slice and iov__to_buf disagree at byte %u", pos);
		pos += (uint32_t)k;
	}
	if (r->nin) {
		size_t put = iov__from_buf(r->in, r->nin, 0, scratch, copied);

		FZ_CHECK(put == (copied < r->in_len ? copied : r->in_len), "iov__from_buf put %zu",
			 put);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm *vm;
	struct virtq vq;
	uint8_t *ram;
	uint32_t num, nops, npend = 0, pushed = 0;
	uint64_t dgpa, agpa, ugpa;
	bool want_ok, last_was_pop = false;
	int r;

	if (size < 9)
		return 0;
	vm = fz_vm__new(RAM);
	ram = fz_vm__ram(vm);
	num = data[0] & 0x80 ? data[0] & 0x7fu : 1u << (data[0] & 15);
	dgpa = data[2] | data[3] << 8;
	agpa = data[4] | data[5] << 8;
	ugpa = data[6] | data[7] << 8;
	nops = data[8];
	if (size < 9 + 4 * (size_t)nops)
		nops = (uint32_t)((size - 9) / 4);
	if (size > 9 + 4 * (size_t)nops) {
		size_t img = size - 9 - 4 * (size_t)nops;

		memcpy(ram, data + 9 + 4 * nops, img < RAM ? img : RAM);
	}

	virtq__reset(&vq);
	vq.num = (uint16_t)num;
	vq.desc_gpa = dgpa;
	vq.avail_gpa = agpa;
	vq.used_gpa = ugpa;
	vq.indirect = data[1] & 1;
	vq.event_idx = data[1] & 2;
	want_ok = num && !(num & (num - 1)) && !(dgpa & 15) && !(agpa & 1) && !(ugpa & 3) &&
		  ref_in_ram(dgpa, 16ull * num) && ref_in_ram(agpa, 6 + 2ull * num) &&
		  ref_in_ram(ugpa, 6 + 8ull * num);
	r = virtq__enable(&vq, vm, DEV);
	FZ_CHECK((r == 0) == want_ok,
		 "virtq__enable: %d for size %u desc 0x%llx avail 0x%llx "
		 "used 0x%llx",
		 r, num, (unsigned long long)dgpa, (unsigned long long)agpa,
		 (unsigned long long)ugpa);
	FZ_CHECK(fz_vm__faults(vm) == (r < 0), "virtq__enable: %d with %d faults", r,
		 fz_vm__faults(vm));
	if (r < 0)
		goto out;
	FZ_CHECK(vq.desc == ram + dgpa && vq.avail == ram + agpa && vq.used == ram + ugpa,
		 "ring pointers do not match their addresses");

	for (uint32_t i = 0; i < nops + 8 && fz_vm__faults(vm) == 0; i++) {
		const uint8_t *op = i < nops ? data + 9 + 4 * i : (const uint8_t *)"\0\0\0\0";
		uint32_t a = op[1], b = op[2], c = op[3];

		switch (op[0] & 7) {
		case 0: { /* pop */
			uint16_t last = vq.last_avail, idx = rd16(ram, agpa + 2), head;
			uint16_t pending = (uint16_t)(idx - last);
			struct virtq_req *q = &reqs[npend < MAX_PEND ? npend : MAX_PEND - 1];
			bool ok;

			head = rd16(ram, agpa + 4 + 2 * (last & (num - 1)));
			r = virtq__pop(&vq, vm, DEV, q);
			FZ_CHECK(r == 1 || r == 0 || r == -EFAULT, "virtq__pop: %d", r);
			FZ_CHECK(fz_vm__faults(vm) == (r < 0), "virtq__pop: %d with %d faults", r,
				 fz_vm__faults(vm));
			if (vq.event_idx && pending == 0)
				FZ_CHECK(rd16(ram, ugpa + 4 + 8 * num) == last,
					 "avail_event not published on an empty ring");
			if (pending == 0) {
				FZ_CHECK(r == 0, "virtq__pop: %d on an empty ring", r);
				last_was_pop = false;
				break;
			}
			if (pending > num || head >= num) {
				FZ_CHECK(r < 0, "virtq__pop: %d with %u pending, head %u, size %u",
					 r, pending, head, num);
				break;
			}
			ok = ref_walk(ram, &vq, head);
			FZ_CHECK(ok == (r == 1), "virtq__pop: %d, the reference walk says %s (%s)",
				 r, ok ? "valid" : "invalid", fz_vm__fault_msg(vm));
			if (r < 0)
				break;
			FZ_CHECK(q->head == head && vq.last_avail == (uint16_t)(last + 1),
				 "virtq__pop: head %u (want %u), last_avail %u", q->head, head,
				 vq.last_avail);
			FZ_CHECK(q->nout == ref.nout && q->nin == ref.nin &&
					 q->out_len == ref.out_len && q->in_len == ref.in_len,
				 "virtq__pop: %u+%u buffers, the reference %u+%u", q->nout, q->nin,
				 ref.nout, ref.nin);
			check_iovs(q->out, q->nout, q->out_len, ram, "out");
			check_iovs(q->in, q->nin, q->in_len, ram, "in");
			same_iovs(q->out, ref.out, q->nout, "out");
			same_iovs(q->in, ref.in, q->nin, "in");
			if (npend < MAX_PEND)
				npend++;
			last_was_pop = true;
			continue;
		}
		case 1: /* push the newest popped request */
			if (npend) {
				struct virtq_req *q = &reqs[--npend];
				uint32_t written = (a | b << 8) % (uint32_t)(q->in_len + 1), id,
					 len;
				uint64_t slot = ugpa + 4 + 8 * (uint64_t)(vq.used_idx & (num - 1));

				virtq__push(&vq, q->head, written);
				pushed++;
				memcpy(&id, ram + slot, 4);
				memcpy(&len, ram + slot + 4, 4);
				FZ_CHECK(id == q->head && len == written &&
						 rd16(ram, ugpa + 2) == vq.used_idx &&
						 vq.used_idx == (uint16_t)pushed,
					 "virtq__push: used ring holds %u/%u, idx %u", id, len,
					 rd16(ram, ugpa + 2));
			}
			break;
		case 2: /* the guest rewrites a byte */
			ram[(a | b << 8) % RAM] = (uint8_t)c;
			break;
		case 3: /* the guest publishes c more entries */
			wr16(ram, agpa + 2, (uint16_t)(rd16(ram, agpa + 2) + c));
			break;
		case 4: { /* interrupt decision */
			uint16_t flags = rd16(ram, agpa), before = vq.signalled_used;
			bool w = virtq__want_irq(&vq);

			if (!vq.event_idx)
				FZ_CHECK(w == !(flags & VRING_AVAIL_F_NO_INTERRUPT),
					 "want_irq %d with avail flags 0x%x", w, flags);
			else if (before == vq.used_idx)
				FZ_CHECK(!w,
					 "want_irq with nothing pushed since the last decision");
			break;
		}
		case 5: /* give back the request just popped */
			if (last_was_pop && npend) {
				virtq__unpop(&vq);
				npend--;
			}
			break;
		case 6:
			FZ_CHECK(virtq__has_avail(&vq) == (rd16(ram, agpa + 2) != vq.last_avail),
				 "has_avail disagrees with the ring");
			break;
		default:
			if (npend)
				check_helpers(&reqs[npend - 1], a | c << 8, b | c << 8);
			break;
		}
		last_was_pop = false;
	}
out:
	fz_vm__free(vm);
	return 0;
}
