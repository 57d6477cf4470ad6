/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_drv.h - a minimal guest driver for the device fuzz targets (vsock, blk): it
 * brings a device up through its registers (as Linux does) and builds descriptor chains
 * in guest RAM, so that the fuzz input spends itself on what the device parses.
 */
#ifndef NUCLEUS_TESTS_FUZZ_DRV_H
#define NUCLEUS_TESTS_FUZZ_DRV_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/virtio.h"

#define FZ_Q_MAX 64

struct fz_buf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

struct fz_q {
	uint16_t num;
	uint64_t desc, avail, used;
	uint16_t avail_idx, used_seen, next_desc;
};

struct fz_drv {
	struct vm *vm;
	struct virtio_dev *dev;
	uint8_t *ram;
	uint64_t ram_size;
	struct fz_q q[3];
	uint64_t heap, heap_lo, heap_hi; /* wrapping buffer space */
};

/* Status ACK, DRIVER, features, FEATURES_OK, queues of @qsize at fixed places below
 * @rings_end, DRIVER_OK. Buffers come from [rings_end, ram_size). 0, or -1 if refused. */
int fz_drv__init(struct fz_drv *d, struct vm *vm, struct virtio_dev *dev, uint64_t features, int nq,
		 uint16_t qsize);
uint64_t fz_drv__alloc(struct fz_drv *d, uint32_t len);
/* Writes a chain of @n buffers (descriptors from a rotating index) and publishes it;
 * @indirect: one indirect descriptor pointing at a table of them. Returns the head. */
int fz_drv__add(struct fz_drv *d, int q, const struct fz_buf *bufs, int n, bool indirect);
void fz_drv__kick(struct fz_drv *d, int q);
/* The next used element: true with *id, *len. */
bool fz_drv__used(struct fz_drv *d, int q, uint32_t *id, uint32_t *len);

#endif
