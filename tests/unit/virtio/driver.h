/* SPDX-License-Identifier: Apache-2.0 */
/*
 * driver.h - a minimal virtio-mmio guest driver for the unit tests: it drives the
 * device registers and builds split rings in the fake guest RAM like Linux would.
 */
#ifndef NUCLEUS_TESTS_VIRTIO_DRIVER_H
#define NUCLEUS_TESTS_VIRTIO_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/virtio.h"

#define TQ_MAX 256

struct tbuf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

struct tq {
	uint16_t num;
	uint64_t desc, avail, used;
	uint16_t avail_idx, used_seen;
	bool busy[TQ_MAX];
};

struct tdrv {
	struct vm *vm;
	struct virtio_dev *dev;
	uint64_t base;
	struct tq q[3];
	uint64_t heap, heap_lo, heap_hi;
};

uint32_t drv__rd(struct tdrv *d, uint64_t off);
void drv__wr(struct tdrv *d, uint64_t off, uint32_t v);

/* Reset + ACK + DRIVER + features (must include VERSION_1) + FEATURES_OK + nq queues of
 * qsize + DRIVER_OK. Returns 0, or -1 if the device refused (FEATURES_OK not kept). */
int drv__init(struct tdrv *d, struct vm *vm, struct virtio_dev *dev, uint64_t features, int nq,
	      uint16_t qsize);
/* Guest RAM from a wrapping scratch heap (the tests consume packets synchronously). */
uint64_t drv__alloc(struct tdrv *d, uint32_t len);
void *drv__host(struct tdrv *d, uint64_t gpa);

/* Raw descriptor / ring access for the hostile tests. */
void drv__set_desc(struct tdrv *d, int q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		   uint16_t next);
void drv__publish(struct tdrv *d, int q, uint16_t head);
void drv__set_avail_idx(struct tdrv *d, int q, uint16_t idx);
void drv__kick(struct tdrv *d, int q);

/* Adds a chain of bufs (readable ones first) and publishes it; returns the head. */
int drv__add(struct tdrv *d, int q, const struct tbuf *bufs, int n);
/* Adds one indirect descriptor pointing to a table holding bufs. */
int drv__add_indirect(struct tdrv *d, int q, const struct tbuf *bufs, int n);
/* Next used element: true with *id and *len set; frees its descriptors. */
bool drv__used(struct tdrv *d, int q, uint32_t *id, uint32_t *len);

#endif
