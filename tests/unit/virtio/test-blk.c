// SPDX-License-Identifier: Apache-2.0
/*
 * test-blk.c - virtio-blk on a temporary raw image: read/write/flush round trips that
 * reach the file, read-only disks, sector bounds, GET_ID, unsupported requests.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include "tests/unit/virtio/driver.h"
#include "tests/unit/virtio/fake-vm.h"

#define RAM	(16ULL << 20)
#define SECTORS 2048ULL /* 1 MiB image */
#define FEAT	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_BLK_F_FLUSH))

static struct vm *vm;
static struct virtio_dev *dev;
static struct tdrv d;
static char img[] = "/tmp/nucleus-virtio-blk-XXXXXX";
static int imgfd = -1;

static void make_image(void)
{
	uint8_t sec[512];
	uint64_t i;

	imgfd = mkstemp(img);
	cr_assert(imgfd >= 0);
	for (i = 0; i < SECTORS; i++) {
		memset(sec, (int)(i & 0xff), sizeof(sec));
		cr_assert(pwrite(imgfd, sec, sizeof(sec), (off_t)(i * 512)) == 512);
	}
}

static void open_disk(bool ro)
{
	vm = fake_vm__new(RAM);
	cr_assert(vm);
	cr_assert_eq(virtio_blk__create(vm, img, ro, &dev), 0);
	cr_assert_eq(drv__init(&d, vm, dev, FEAT | (ro ? 1ULL << VIRTIO_BLK_F_RO : 0), 1, 64), 0);
}

static void setup_rw(void)
{
	make_image();
	open_disk(false);
}

static void setup_ro(void)
{
	make_image();
	open_disk(true);
}

static void teardown(void)
{
	virtio_dev__free(dev);
	fake_vm__free(vm);
	close(imgfd);
	unlink(img);
	strcpy(img, "/tmp/nucleus-virtio-blk-XXXXXX");
}

TestSuite(blk, .init = setup_rw, .fini = teardown);
TestSuite(blk_ro, .init = setup_ro, .fini = teardown);

/* One request; data is written to (OUT) or read from (IN, GET_ID) guest memory. The
 * header is split over two descriptors and the data over two, to prove framing does
 * not matter. Returns the status byte; *used gets the used length. */
static uint8_t blk_req(uint32_t type, uint64_t sector, void *data, uint32_t len, uint32_t *used)
{
	uint64_t hdr = drv__alloc(&d, 16), buf = drv__alloc(&d, len ? len : 1),
		 st = drv__alloc(&d, 1);
	uint32_t h[4] = {type, 0, (uint32_t)sector, (uint32_t)(sector >> 32)};
	bool w = type != VIRTIO_BLK_T_OUT;
	uint32_t half = len / 2, id, ul = 0;
	struct tbuf b[5];
	int n = 0;

	memcpy(drv__host(&d, hdr), h, 16);
	if (!w && len)
		memcpy(drv__host(&d, buf), data, len);
	else if (len)
		memset(drv__host(&d, buf), 0xee, len);
	*(uint8_t *)drv__host(&d, st) = 0xff;
	b[n++] = (struct tbuf){hdr, 8, false};
	b[n++] = (struct tbuf){hdr + 8, 8, false};
	if (len) {
		b[n++] = (struct tbuf){buf, half, w};
		b[n++] = (struct tbuf){buf + half, len - half, w};
	}
	b[n++] = (struct tbuf){st, 1, true};
	cr_assert(drv__add(&d, 0, b, n) >= 0);
	drv__kick(&d, 0);
	fake_vm__run(vm);
	cr_assert(drv__used(&d, 0, &id, &ul), "request not completed");
	if (w && len)
		memcpy(data, drv__host(&d, buf), len);
	if (used)
		*used = ul;
	return *(uint8_t *)drv__host(&d, st);
}

Test(blk, capacity_and_limits_in_config)
{
	uint64_t cap = fake_vm__mmio_read(vm, d.base + VIRTIO_MMIO_CONFIG, 4) |
		       fake_vm__mmio_read(vm, d.base + VIRTIO_MMIO_CONFIG + 4, 4) << 32;
	uint32_t seg_max = (uint32_t)fake_vm__mmio_read(vm, d.base + VIRTIO_MMIO_CONFIG + 12, 4);
	uint32_t size_max = (uint32_t)fake_vm__mmio_read(vm, d.base + VIRTIO_MMIO_CONFIG + 8, 4);

	cr_assert_eq(cap, SECTORS);
	cr_assert(seg_max >= 1 && seg_max <= 254);
	cr_assert(size_max >= 4096);
}

Test(blk, read_returns_file_contents)
{
	uint8_t buf[1024];
	uint32_t used;

	cr_assert_eq(blk_req(VIRTIO_BLK_T_IN, 7, buf, sizeof(buf), &used), VIRTIO_BLK_S_OK);
	cr_assert_eq(used, 1025);
	cr_assert_eq(buf[0], 7);
	cr_assert_eq(buf[511], 7);
	cr_assert_eq(buf[512], 8);
	cr_assert_eq(buf[1023], 8);
	cr_assert_eq(fake_vm__faults(vm), 0);
}

Test(blk, write_read_flush_round_trip_reaches_file)
{
	uint8_t out[1536], in[1536], file[1536];
	uint32_t used;
	size_t i;

	for (i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7 + 3);
	cr_assert_eq(blk_req(VIRTIO_BLK_T_OUT, 100, out, sizeof(out), &used), VIRTIO_BLK_S_OK);
	cr_assert_eq(used, 1);
	cr_assert_eq(blk_req(VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &used), VIRTIO_BLK_S_OK);
	cr_assert_eq(pread(imgfd, file, sizeof(file), 100 * 512), (ssize_t)sizeof(file));
	cr_assert_arr_eq(file, out, sizeof(out));
	cr_assert_eq(blk_req(VIRTIO_BLK_T_IN, 100, in, sizeof(in), NULL), VIRTIO_BLK_S_OK);
	cr_assert_arr_eq(in, out, sizeof(out));
	/* neighbours untouched */
	cr_assert_eq(pread(imgfd, file, 1, 99 * 512 + 511), 1);
	cr_assert_eq(file[0], 99);
	cr_assert_eq(pread(imgfd, file, 1, 103 * 512), 1);
	cr_assert_eq(file[0], 103);
}

Test(blk, last_sector_ok_beyond_is_ioerr)
{
	uint8_t buf[1024];

	cr_assert_eq(blk_req(VIRTIO_BLK_T_IN, SECTORS - 1, buf, 512, NULL), VIRTIO_BLK_S_OK);
	cr_assert_eq(buf[0], (SECTORS - 1) & 0xff);
	cr_assert_eq(blk_req(VIRTIO_BLK_T_IN, SECTORS - 1, buf, 1024, NULL), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(blk_req(VIRTIO_BLK_T_IN, SECTORS, buf, 512, NULL), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(blk_req(VIRTIO_BLK_T_OUT, SECTORS, buf, 512, NULL), VIRTIO_BLK_S_IOERR);
	/* sector * 512 would overflow 64 bits */
	cr_assert_eq(blk_req(VIRTIO_BLK_T_IN, 1ULL << 62, buf, 512, NULL), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(blk_req(VIRTIO_BLK_T_OUT, ~0ULL, buf, 512, NULL), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(fake_vm__faults(vm), 0, "bad sectors are I/O errors, not faults");
}

Test(blk, unaligned_length_is_ioerr)
{
	uint8_t buf[100];

	cr_assert_eq(blk_req(VIRTIO_BLK_T_IN, 0, buf, sizeof(buf), NULL), VIRTIO_BLK_S_IOERR);
}

Test(blk, get_id)
{
	char id[VIRTIO_BLK_ID_BYTES + 1] = {0};
	uint32_t used;

	cr_assert_eq(blk_req(VIRTIO_BLK_T_GET_ID, 0, id, VIRTIO_BLK_ID_BYTES, &used),
		     VIRTIO_BLK_S_OK);
	cr_assert(strncmp(id, "nucleus-", 8) == 0, "id '%s'", id);
	cr_assert(used > 9 && used <= VIRTIO_BLK_ID_BYTES + 1);
}

Test(blk, unsupported_type_is_unsupp)
{
	uint8_t buf[16] = {0};

	cr_assert_eq(blk_req(VIRTIO_BLK_T_DISCARD, 0, buf, sizeof(buf), NULL), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(blk_req(0x1234, 0, NULL, 0, NULL), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(fake_vm__faults(vm), 0);
}

Test(blk, many_requests_in_one_kick)
{
	uint64_t hdr[20], data[20], st[20];
	uint32_t id, len;
	int i, done = 0;

	for (i = 0; i < 20; i++) {
		uint32_t h[4] = {VIRTIO_BLK_T_IN, 0, (uint32_t)i, 0};
		struct tbuf b[3];

		hdr[i] = drv__alloc(&d, 16);
		data[i] = drv__alloc(&d, 512);
		st[i] = drv__alloc(&d, 1);
		memcpy(drv__host(&d, hdr[i]), h, 16);
		b[0] = (struct tbuf){hdr[i], 16, false};
		b[1] = (struct tbuf){data[i], 512, true};
		b[2] = (struct tbuf){st[i], 1, true};
		cr_assert(drv__add(&d, 0, b, 3) >= 0);
	}
	drv__kick(&d, 0);
	fake_vm__run(vm);
	while (drv__used(&d, 0, &id, &len))
		done++;
	cr_assert_eq(done, 20);
	for (i = 0; i < 20; i++) {
		cr_assert_eq(*(uint8_t *)drv__host(&d, st[i]), VIRTIO_BLK_S_OK);
		cr_assert_eq(*(uint8_t *)drv__host(&d, data[i] + 100), i);
	}
}

Test(blk_ro, read_only_offers_ro_and_rejects_writes)
{
	uint8_t out[512], file[512];

	drv__wr(&d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	cr_assert(drv__rd(&d, VIRTIO_MMIO_DEVICE_FEATURES) & (1U << VIRTIO_BLK_F_RO));
	memset(out, 0xab, sizeof(out));
	cr_assert_eq(blk_req(VIRTIO_BLK_T_OUT, 5, out, sizeof(out), NULL), VIRTIO_BLK_S_IOERR);
	cr_assert_eq(pread(imgfd, file, sizeof(file), 5 * 512), 512);
	cr_assert_eq(file[0], 5, "a read-only disk was written");
	cr_assert_eq(file[511], 5);
	cr_assert_eq(blk_req(VIRTIO_BLK_T_IN, 5, out, sizeof(out), NULL), VIRTIO_BLK_S_OK);
	cr_assert_eq(out[0], 5);
	cr_assert_eq(blk_req(VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL), VIRTIO_BLK_S_OK);
	cr_assert_eq(fake_vm__faults(vm), 0);
}

Test(blk_ro, missing_image_fails_cleanly)
{
	struct virtio_dev *d2 = NULL;

	cr_assert_lt(virtio_blk__create(vm, "/nonexistent/nucleus.img", true, &d2), 0);
	cr_assert_null(d2);
}
