// SPDX-License-Identifier: Apache-2.0
/*
 * test-fuzz.c - seeded garbage from a hostile guest (run it under ASan/UBSan too):
 * random register writes and random ring contents must end in at most one guest fault
 * naming the device, never in a crash or an out-of-bounds access on the host.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include "tests/unit/virtio/driver.h"
#include "tests/unit/virtio/fake-vm.h"

#define RAM (8ULL << 20)

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng_state >> 33);
}

static char img[] = "/tmp/nucleus-virtio-fuzz-XXXXXX";
static char dir[] = "/tmp/nucleus-virtio-fuzzv-XXXXXX";

static void setup(void)
{
	int fd = mkstemp(img);

	cr_assert(fd >= 0);
	cr_assert(ftruncate(fd, 256 * 1024) == 0);
	close(fd);
	cr_assert(mkdtemp(dir));
}

static void teardown(void)
{
	char path[128];

	unlink(img);
	snprintf(path, sizeof(path), "%s/v", dir);
	unlink(path);
	rmdir(dir);
}

TestSuite(fuzz, .init = setup, .fini = teardown);

static struct virtio_dev *make(struct vm *vm, bool vsock)
{
	struct virtio_dev *dev = NULL;
	char path[128];

	snprintf(path, sizeof(path), "%s/v", dir);
	if (vsock)
		cr_assert_eq(virtio_vsock__create(vm, 3, path, &dev), 0);
	else
		cr_assert_eq(virtio_blk__create(vm, img, false, &dev), 0);
	return dev;
}

static void check_one_fault(struct vm *vm, const char *name, uint64_t seed)
{
	cr_assert_leq(fake_vm__faults(vm), 1, "seed %llu: %d faults (device did not stop)",
		      (unsigned long long)seed, fake_vm__faults(vm));
	if (fake_vm__faults(vm))
		cr_assert(strncmp(fake_vm__fault_msg(vm), name, strlen(name)) == 0,
			  "seed %llu: fault '%s' does not name %s", (unsigned long long)seed,
			  fake_vm__fault_msg(vm), name);
}

static void register_garbage(bool vsock)
{
	static const uint32_t lens[] = {1, 2, 4, 8};
	uint64_t seed;
	int i;

	for (seed = 1; seed <= 150; seed++) {
		struct vm *vm = fake_vm__new(RAM);
		struct virtio_dev *dev = make(vm, vsock);

		rng_state = seed;
		for (i = 0; i < 300; i++) {
			uint64_t off = rnd() % (seed & 1 ? 0x100 : 0x1000);
			uint32_t len = lens[rnd() % 4];
			uint64_t v = ((uint64_t)rnd() << 32 | rnd()) >> (rnd() % 64);

			off &= ~(uint64_t)(len - 1);
			if (rnd() % 3 == 0)
				fake_vm__mmio_read(vm, dev->base + off, len);
			else
				fake_vm__mmio_write(vm, dev->base + off, v, len);
			if (rnd() % 16 == 0)
				fake_vm__run(vm);
		}
		fake_vm__run(vm);
		/* 300 random writes always break some rule */
		cr_assert_eq(fake_vm__faults(vm), 1, "seed %llu: %d faults",
			     (unsigned long long)seed, fake_vm__faults(vm));
		check_one_fault(vm, vsock ? "virtio-vsock: " : "virtio-blk: ", seed);
		virtio_dev__free(dev);
		fake_vm__free(vm);
	}
}

Test(fuzz, blk_register_garbage)
{
	register_garbage(false);
}

Test(fuzz, vsock_register_garbage)
{
	register_garbage(true);
}

/* A correctly initialized device, then random descriptors and avail entries. */
static void ring_garbage(bool vsock)
{
	uint64_t seed;
	int round, i, q = vsock ? 1 : 0, faulted = 0;

	for (seed = 1; seed <= 150; seed++) {
		struct vm *vm = fake_vm__new(RAM);
		struct virtio_dev *dev = make(vm, vsock);
		struct tdrv d;
		uint8_t *ram = fake_vm__ram(vm);

		rng_state = seed * 7919;
		cr_assert_eq(drv__init(&d, vm, dev,
				       (1ULL << VIRTIO_F_VERSION_1) |
					       (vsock ? 0 : 1ULL << VIRTIO_RING_F_INDIRECT_DESC),
				       vsock ? 3 : 1, 16),
			     0);
		for (round = 0; round < 4 && !fake_vm__faults(vm); round++) {
			uint8_t *desc = ram + d.q[q].desc;

			for (i = 0; i < 16; i++) {
				/* mostly plausible addresses, sometimes anything */
				uint64_t addr = rnd() % 4 ? 0x200000 + rnd() % 0x100000
							  : ((uint64_t)rnd() << 32 | rnd());
				uint32_t len = rnd() % 4 ? rnd() % 0x2000 : rnd();
				uint16_t flags = (uint16_t)(rnd() % 8),
					 next = (uint16_t)(rnd() % 20);

				memcpy(desc + 16 * i, &addr, 8);
				memcpy(desc + 16 * i + 8, &len, 4);
				memcpy(desc + 16 * i + 12, &flags, 2);
				memcpy(desc + 16 * i + 14, &next, 2);
			}
			/* random bytes in the buffers too (vsock headers, blk headers) */
			for (i = 0; i < 4096; i++)
				ram[0x200000 + rnd() % 0x100000] = (uint8_t)rnd();
			for (i = 0; i < 4; i++)
				drv__publish(&d, q, (uint16_t)(rnd() % 18));
			drv__kick(&d, q);
			fake_vm__run(vm);
		}
		faulted += fake_vm__faults(vm);
		check_one_fault(vm, vsock ? "virtio-vsock: " : "virtio-blk: ", seed);
		virtio_dev__free(dev);
		fake_vm__free(vm);
	}
	cr_assert_gt(faulted, 0,
		     "no seed produced a fault: the garbage is not reaching the device");
}

Test(fuzz, blk_ring_garbage)
{
	ring_garbage(false);
}

Test(fuzz, vsock_ring_garbage)
{
	ring_garbage(true);
}
