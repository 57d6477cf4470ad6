// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target of the virtio-blk device (vmm/virtio-blk.c) on a 32 KiB disk (a memfd):
 * a hostile guest sends requests with any type, sector and data layout, read-only or
 * not, and raw descriptor chains of its own making.
 *
 * Input: [0] bit 0 read-only disk, bit 1 EVENT_IDX, bit 2 INDIRECT_DESC; then requests:
 *   structured {kind, sector, nseg, seglen x nseg}: kind & 7 picks the type (IN, OUT,
 *     FLUSH, GET_ID, DISCARD, 0x77, IN, OUT), bit 3 a sector near 2^64, bit 4 the header
 *     in two buffers, bit 5 the status byte at the end of the last data buffer, bit 6 an
 *     indirect table; segment n is (seglen & 63) * 64 bytes (+1 if seglen & 64) and, for
 *     writes, filled with seglen.
 *   raw (kind bit 7): {n} and n descriptors of 16 bytes, addresses taken modulo 2 x RAM.
 *
 * Invariants, for the structured requests (the guest follows the spec's layout): the
 * status is the one the spec gives for that header and those lengths (OK, IOERR for an
 * unaligned, out-of-range or read-only access, UNSUPP for an unknown type; a missing
 * header or status byte is a guest fault); the used length is data + status byte; a read
 * returns the disk's bytes, a write changes exactly its sectors (the disk is compared to
 * a shadow copy after every request), GET_ID gives "nucleus-..."; for any request: at
 * most one guest fault, after which the device takes nothing more; the disk never
 * changes on a read-only device; freeing it leaves no fd or event behind.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>

#include "tests/fuzz/fuzz_drv.h"
#include "tests/fuzz/fuzz_vm.h"

#define RAM   (256u << 10)
#define DISK  (32u << 10)
#define SECTS (DISK / 512)
#define QSIZE 64

static int disk_fd = -1;
static char disk_path[64];
static uint8_t shadow[DISK], now[DISK];

static void disk_reset(void)
{
	for (uint32_t i = 0; i < DISK; i++)
		shadow[i] = (uint8_t)(i / 512 * 7 + i);
	if (pwrite(disk_fd, shadow, DISK, 0) != DISK)
		abort();
}

static void disk_check(const char *after)
{
	FZ_CHECK(pread(disk_fd, now, DISK, 0) == DISK, "cannot read the disk back");
	for (uint32_t i = 0; i < DISK; i++)
		FZ_CHECK(now[i] == shadow[i], "after %s: disk byte %u is 0x%02x, want 0x%02x",
			 after, i, now[i], shadow[i]);
}

struct req_model {
	uint32_t type;
	uint64_t sector;
	uint64_t out_len, in_len;
};

static uint8_t want_status(const struct req_model *m, bool ro, uint64_t *data_len)
{
	uint64_t len;

	*data_len = 0;
	switch (m->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		len = m->type == VIRTIO_BLK_T_IN ? m->in_len - 1 : m->out_len - 16;
		if ((m->type == VIRTIO_BLK_T_OUT && ro) || len % 512 || m->sector > SECTS ||
		    len / 512 > SECTS - m->sector)
			return VIRTIO_BLK_S_IOERR;
		*data_len = len;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		*data_len =
			m->in_len - 1 < VIRTIO_BLK_ID_BYTES ? m->in_len - 1 : VIRTIO_BLK_ID_BYTES;
		return VIRTIO_BLK_S_OK;
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t types[8] = {VIRTIO_BLK_T_IN,     VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH,
					  VIRTIO_BLK_T_GET_ID, 11 /* DISCARD */, 0x77,
					  VIRTIO_BLK_T_IN,     VIRTIO_BLK_T_OUT};
	struct virtio_dev *dev = NULL;
	struct fz_drv d;
	struct vm *vm;
	uint64_t features;
	size_t pos = 1;
	bool ro, tainted = false; /* raw chains may have written over the rings */
	int fd0, r;

	if (disk_fd < 0) {
		disk_fd = memfd_create("fuzz-blk", 0);
		if (disk_fd < 0 || ftruncate(disk_fd, DISK) < 0)
			abort();
		snprintf(disk_path, sizeof(disk_path), "/proc/self/fd/%d", disk_fd);
	}
	if (size < 1)
		return 0;
	disk_reset();
	ro = data[0] & 1;
	fd0 = fz_lowest_fd();
	vm = fz_vm__new(RAM);
	r = virtio_blk__create(vm, disk_path, ro, &dev);
	FZ_CHECK(r == 0, "virtio_blk__create: %d", r);
	FZ_CHECK(*(uint64_t *)dev->config == SECTS, "capacity %llu",
		 (unsigned long long)*(uint64_t *)dev->config);
	features = (data[0] & 2 ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0) |
		   (data[0] & 4 ? 1ULL << VIRTIO_RING_F_INDIRECT_DESC : 0) |
		   (ro ? 1ULL << VIRTIO_BLK_F_RO : 0);
	FZ_CHECK(fz_drv__init(&d, vm, dev, features, 1, QSIZE) == 0,
		 "the device refused the driver");

	while (pos < size && !fz_vm__faults(vm)) {
		uint8_t kind = data[pos];
		struct fz_buf b[8];
		uint32_t id, used_len;
		int n = 0;

		if (kind & 0x80) { /* raw descriptors */
			uint32_t nd = pos + 1 < size ? (data[pos + 1] & 3) + 1 : 1;
			uint16_t head = d.q[0].next_desc % QSIZE;

			if (pos + 2 + 16 * nd > size)
				break;
			for (uint32_t i = 0; i < nd; i++) {
				uint8_t *p =
					d.ram + d.q[0].desc + 16 * (size_t)((head + i) % QSIZE);
				uint64_t addr;

				memcpy(p, data + pos + 2 + 16 * i, 16);
				memcpy(&addr, p, 8);
				addr %= 2 * (uint64_t)RAM;
				memcpy(p, &addr, 8);
			}
			d.q[0].next_desc = (uint16_t)(d.q[0].next_desc + nd);
			memcpy(d.ram + d.q[0].avail + 4 + 2 * (d.q[0].avail_idx % QSIZE), &head, 2);
			d.q[0].avail_idx++;
			memcpy(d.ram + d.q[0].avail + 2, &d.q[0].avail_idx, 2);
			pos += 2 + 16 * nd;
			fz_drv__kick(&d, 0);
			fz_vm__run(vm);
			while (fz_drv__used(&d, 0, &id, &used_len))
				FZ_CHECK(id < QSIZE, "used id %u", id);
			FZ_CHECK(fz_vm__faults(vm) <= 1, "%d faults", fz_vm__faults(vm));
			if (ro)
				disk_check("a raw request on a read-only disk");
			else if (pread(disk_fd, shadow, DISK, 0) != DISK)
				abort();
			tainted = true;
			continue;
		}
		if (pos + 3 > size)
			break;
		{
			struct req_model m = {.type = types[kind & 7]};
			uint32_t nseg = data[pos + 2] % 4, status_at = 0;
			struct virtio_blk_outhdr h;
			uint64_t hdr_gpa, status_gpa, data_len, seg_gpa[4] = {0};
			uint32_t seg_len[4] = {0};
			uint8_t want, got;
			bool write = m.type == VIRTIO_BLK_T_OUT, merged = kind & 0x20;

			if (pos + 3 + nseg > size)
				break;
			m.sector = kind & 8 ? UINT64_MAX - data[pos + 1] : data[pos + 1];
			h.type = m.type;
			h.ioprio = 0;
			h.sector = m.sector;
			hdr_gpa = fz_drv__alloc(&d, 16);
			memcpy(d.ram + hdr_gpa, &h, 16);
			if (kind & 0x10) {
				b[n++] = (struct fz_buf){hdr_gpa, 5, false};
				b[n++] = (struct fz_buf){hdr_gpa + 5, 11, false};
			} else {
				b[n++] = (struct fz_buf){hdr_gpa, 16, false};
			}
			m.out_len = 16;
			for (uint32_t s = 0; s < nseg; s++) {
				uint8_t sl = data[pos + 3 + s];

				seg_len[s] = (sl & 63) * 64u + (sl & 64 ? 1 : 0);
				seg_gpa[s] = fz_drv__alloc(&d, seg_len[s] + 1);
				memset(d.ram + seg_gpa[s], write ? sl : 0xee, seg_len[s] + 1);
				if (!seg_len[s])
					continue;
				b[n++] = (struct fz_buf){seg_gpa[s], seg_len[s], !write};
				if (write)
					m.out_len += seg_len[s];
				else
					m.in_len += seg_len[s];
			}
			if (merged && !write && n > 1 && b[n - 1].write) {
				b[n - 1].len++; /* the status byte ends the last data buffer */
				status_gpa = b[n - 1].gpa + b[n - 1].len - 1;
				status_at = 1;
			} else {
				status_gpa = fz_drv__alloc(&d, 1);
				b[n++] = (struct fz_buf){status_gpa, 1, true};
			}
			m.in_len += 1;
			d.ram[status_gpa] = 0xcc;
			pos += 3 + nseg;
			fz_drv__add(&d, 0, b, n,
				    (kind & 0x40) &&
					    (features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC)));
			fz_drv__kick(&d, 0);
			fz_vm__run(vm);
			if (tainted) {
				while (fz_drv__used(&d, 0, &id, &used_len))
					;
				if (ro)
					disk_check("a request on a read-only disk");
				else if (pread(disk_fd, shadow, DISK, 0) != DISK)
					abort();
				continue;
			}
			FZ_CHECK(fz_vm__faults(vm) == 0, "a well-formed request faulted: %s",
				 fz_vm__fault_msg(vm));
			FZ_CHECK(fz_drv__used(&d, 0, &id, &used_len),
				 "no used element for a request");
			want = want_status(&m, ro, &data_len);
			got = d.ram[status_gpa];
			FZ_CHECK(got == want,
				 "type %u sector %llu, %llu+%llu bytes: status %u, want %u", m.type,
				 (unsigned long long)m.sector, (unsigned long long)m.out_len,
				 (unsigned long long)m.in_len, got, want);
			FZ_CHECK(used_len == (m.type == VIRTIO_BLK_T_OUT ? 0 : data_len) + 1,
				 "type %u: used len %u, data %llu", m.type, used_len,
				 (unsigned long long)data_len);
			if (want == VIRTIO_BLK_S_OK && m.type == VIRTIO_BLK_T_IN) {
				uint64_t off = m.sector * 512, done = 0;

				for (uint32_t s = 0; s < nseg && done < data_len; s++) {
					uint64_t k = seg_len[s] < data_len - done ? seg_len[s]
										  : data_len - done;

					FZ_CHECK(memcmp(d.ram + seg_gpa[s], shadow + off + done,
							k) == 0,
						 "a read of sector %llu returned other bytes",
						 (unsigned long long)m.sector);
					done += k;
				}
			}
			if (want == VIRTIO_BLK_S_OK && m.type == VIRTIO_BLK_T_OUT) {
				uint64_t off = m.sector * 512;

				for (uint32_t s = 0; s < nseg; s++) {
					memcpy(shadow + off, d.ram + seg_gpa[s], seg_len[s]);
					off += seg_len[s];
				}
			}
			if (want == VIRTIO_BLK_S_OK && m.type == VIRTIO_BLK_T_GET_ID &&
			    data_len >= 8)
				FZ_CHECK(memcmp(d.ram + seg_gpa[0], "nucleus-", 8) == 0 ||
						 seg_len[0] < 8,
					 "GET_ID gave another id");
			(void)status_at;
			disk_check("a request");
		}
	}
	FZ_CHECK(fz_vm__faults(vm) <= 1, "%d faults", fz_vm__faults(vm));
	virtio_dev__free(dev);
	FZ_CHECK(fz_vm__ev_count(vm) == 0, "%d event-loop fds left", fz_vm__ev_count(vm));
	FZ_CHECK(fz_lowest_fd() == fd0, "fds leaked (lowest free %d, was %d)", fz_lowest_fd(), fd0);
	fz_vm__free(vm);
	return 0;
}
