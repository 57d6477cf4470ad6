// SPDX-License-Identifier: Apache-2.0
/*
 * test-mmio.c - the virtio-mmio transport and the split virtqueue rules, driven through
 * a virtio-blk device on the fake core: register identity, feature negotiation, the
 * status state machine, interrupts, and every hostile ring the guest can build.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include "tests/unit/virtio/driver.h"
#include "tests/unit/virtio/fake-vm.h"

#define RAM   (16ULL << 20)
#define QSIZE 16
#define FEAT  ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_BLK_F_FLUSH))

static struct vm *vm;
static struct virtio_dev *dev;
static struct tdrv d;
static char img[] = "/tmp/nucleus-virtio-mmio-XXXXXX";

static void setup(void)
{
	int fd = mkstemp(img);

	cr_assert(fd >= 0);
	cr_assert(ftruncate(fd, 1 << 20) == 0);
	close(fd);
	vm = fake_vm__new(RAM);
	cr_assert(vm);
	cr_assert(virtio_blk__create(vm, img, false, &dev) == 0);
	d.vm = vm;
	d.base = dev->base;
}

static void teardown(void)
{
	virtio_dev__free(dev);
	fake_vm__free(vm);
	unlink(img);
	strcpy(img, "/tmp/nucleus-virtio-mmio-XXXXXX");
}

TestSuite(mmio, .init = setup, .fini = teardown);

static void expect_fault(const char *what)
{
	cr_assert_eq(fake_vm__faults(vm), 1, "expected one guest fault, got %d",
		     fake_vm__faults(vm));
	cr_assert(strstr(fake_vm__fault_msg(vm), "virtio-blk: ") == fake_vm__fault_msg(vm),
		  "fault does not name the device: %s", fake_vm__fault_msg(vm));
	cr_assert(strstr(fake_vm__fault_msg(vm), what), "fault '%s' lacks '%s'",
		  fake_vm__fault_msg(vm), what);
}

/* A valid 1-sector read request: header, 512-byte data, status. */
static int add_read(uint64_t sector)
{
	uint64_t hdr = drv__alloc(&d, 16), data = drv__alloc(&d, 512), st = drv__alloc(&d, 1);
	uint32_t h[4] = {VIRTIO_BLK_T_IN, 0, (uint32_t)sector, (uint32_t)(sector >> 32)};
	struct tbuf b[3] = {{hdr, 16, false}, {data, 512, true}, {st, 1, true}};

	memcpy(drv__host(&d, hdr), h, 16);
	*(uint8_t *)drv__host(&d, st) = 0xff;
	return drv__add(&d, 0, b, 3);
}

static void kick_run(void)
{
	drv__kick(&d, 0);
	fake_vm__run(vm);
}

Test(mmio, identity_registers_and_cmdline)
{
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_VERSION), 2);
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_DEVICE_ID), 2);
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
	cr_assert_eq(dev->base, VM_MMIO_START);
	cr_assert(strstr(fake_vm__cmdline(vm), "virtio_mmio.device=4K@0xd0000000:5"));
	cr_assert_eq(fake_vm__faults(vm), 0);
}

Test(mmio, feature_negotiation)
{
	uint32_t lo, hi;

	drv__wr(&d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	lo = drv__rd(&d, VIRTIO_MMIO_DEVICE_FEATURES);
	drv__wr(&d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	hi = drv__rd(&d, VIRTIO_MMIO_DEVICE_FEATURES);
	drv__wr(&d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	cr_assert(hi & 1, "VERSION_1 not offered");
	cr_assert(lo & (1U << VIRTIO_BLK_F_FLUSH));
	cr_assert(lo & (1U << VIRTIO_RING_F_INDIRECT_DESC));
	cr_assert(!(lo & (1U << VIRTIO_BLK_F_RO)), "read-write disk offers RO");
	cr_assert_eq(drv__init(&d, vm, dev, FEAT, 1, QSIZE), 0);
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_STATUS),
		     VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			     VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	cr_assert_eq(dev->guest_features, FEAT);
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_QUEUE_READY), 1);
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_SEL, 1);
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "queue 1 must not exist");
	cr_assert_eq(fake_vm__faults(vm), 0);
}

Test(mmio, legacy_driver_is_refused_without_fault)
{
	cr_assert_eq(drv__init(&d, vm, dev, 1ULL << VIRTIO_BLK_F_FLUSH, 1, QSIZE), -1);
	cr_assert_eq(fake_vm__faults(vm), 0);
}

Test(mmio, unoffered_feature_is_a_fault)
{
	drv__init(&d, vm, dev, FEAT | (1ULL << VIRTIO_BLK_F_MQ), 1, QSIZE);
	expect_fault("not offered");
}

Test(mmio, status_cannot_lose_bits_without_reset)
{
	cr_assert_eq(drv__init(&d, vm, dev, FEAT, 1, QSIZE), 0);
	drv__wr(&d, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	expect_fault("without a reset");
}

Test(mmio, driver_ok_before_features_ok_is_a_fault)
{
	drv__wr(&d, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	drv__wr(&d, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	drv__wr(&d, VIRTIO_MMIO_STATUS,
		VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK);
	expect_fault("out of order");
}

Test(mmio, narrow_register_write_is_a_fault)
{
	fake_vm__mmio_write(vm, d.base + VIRTIO_MMIO_STATUS, 1, 2);
	expect_fault("2-byte write");
}

Test(mmio, write_to_read_only_register_is_a_fault)
{
	drv__wr(&d, VIRTIO_MMIO_MAGIC_VALUE, 0xdeadbeef);
	expect_fault("read-only or unknown register 0x000");
}

Test(mmio, config_write_is_a_fault)
{
	fake_vm__mmio_write(vm, d.base + VIRTIO_MMIO_CONFIG, 0, 1);
	expect_fault("config space");
}

Test(mmio, notify_of_missing_queue_is_a_fault)
{
	cr_assert_eq(drv__init(&d, vm, dev, FEAT, 1, QSIZE), 0);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_NOTIFY, 7);
	expect_fault("QueueNotify for queue 7");
}

Test(mmio, queue_size_above_max_is_a_fault)
{
	drv__wr(&d, VIRTIO_MMIO_QUEUE_SEL, 0);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_NUM, 512);
	expect_fault("size 512");
}

Test(mmio, queue_size_not_power_of_two_is_a_fault)
{
	cr_assert_eq(drv__init(&d, vm, dev, FEAT, 1, 12), 0);
	expect_fault("not a power of 2");
}

Test(mmio, queue_register_while_ready_is_a_fault)
{
	cr_assert_eq(drv__init(&d, vm, dev, FEAT, 1, QSIZE), 0);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
	expect_fault("while the queue is ready");
}

Test(mmio, ring_beyond_ram_is_a_fault)
{
	drv__wr(&d, VIRTIO_MMIO_STATUS, 1);
	drv__wr(&d, VIRTIO_MMIO_STATUS, 3);
	drv__wr(&d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	drv__wr(&d, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	drv__wr(&d, VIRTIO_MMIO_STATUS, 11);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_SEL, 0);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_NUM, 16);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_DESC_LOW, 0);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x10); /* 64 GiB: far beyond RAM */
	drv__wr(&d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x1000);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_USED_LOW, 0x2000);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_READY, 1);
	expect_fault("outside guest RAM");
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_QUEUE_READY), 0);
}

Test(mmio, reset_clears_state_and_allows_reinit)
{
	cr_assert_eq(drv__init(&d, vm, dev, FEAT, 1, QSIZE), 0);
	drv__wr(&d, VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_STATUS), 0);
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_QUEUE_READY), 0);
	cr_assert_eq(dev->guest_features, 0);
	cr_assert_eq(drv__init(&d, vm, dev, FEAT, 1, QSIZE), 0);
	add_read(0);
	kick_run();
	uint32_t id, len;
	cr_assert(drv__used(&d, 0, &id, &len));
	cr_assert_eq(fake_vm__faults(vm), 0);
}

Test(mmio, config_space_reads)
{
	uint64_t cap;

	cap = fake_vm__mmio_read(vm, d.base + VIRTIO_MMIO_CONFIG, 4) |
	      (fake_vm__mmio_read(vm, d.base + VIRTIO_MMIO_CONFIG + 4, 4) << 32);
	cr_assert_eq(cap, (1 << 20) / 512);
	cr_assert_eq(fake_vm__mmio_read(vm, d.base + VIRTIO_MMIO_CONFIG + 1, 1), 8);
	cr_assert_eq(fake_vm__mmio_read(vm, d.base + VIRTIO_MMIO_CONFIG + 0x800, 4), 0);
	cr_assert_eq(fake_vm__faults(vm), 0);
}

Test(mmio, interrupt_status_set_before_irq_and_acked)
{
	uint32_t id, len;

	cr_assert_eq(drv__init(&d, vm, dev, FEAT, 1, QSIZE), 0);
	fake_vm__irqs(vm, dev->gsi);
	add_read(1);
	kick_run();
	cr_assert(fake_vm__irqs(vm, dev->gsi) >= 1, "no interrupt for a used buffer");
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING,
		     VIRTIO_MMIO_INT_VRING);
	drv__wr(&d, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	cr_assert_eq(drv__rd(&d, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	cr_assert(drv__used(&d, 0, &id, &len));
	cr_assert_eq(len, 513);
}

Test(mmio, no_interrupt_when_suppressed)
{
	uint16_t *flags;
	uint32_t id, len;

	cr_assert_eq(drv__init(&d, vm, dev, FEAT, 1, QSIZE), 0);
	flags = drv__host(&d, d.q[0].avail);
	*flags = VRING_AVAIL_F_NO_INTERRUPT;
	fake_vm__irqs(vm, dev->gsi);
	add_read(1);
	kick_run();
	cr_assert(drv__used(&d, 0, &id, &len), "request not processed");
	cr_assert_eq(fake_vm__irqs(vm, dev->gsi), 0);
}

Test(mmio, notify_before_driver_ok_is_served_at_driver_ok)
{
	uint32_t id, len;
	int i;

	drv__wr(&d, VIRTIO_MMIO_STATUS, 1);
	drv__wr(&d, VIRTIO_MMIO_STATUS, 3);
	drv__wr(&d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	drv__wr(&d, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	drv__wr(&d, VIRTIO_MMIO_STATUS, 11);
	/* queue set up by hand, request queued and notified before DRIVER_OK */
	d.q[0].num = QSIZE;
	d.q[0].desc = 0x100000;
	d.q[0].avail = 0x102000;
	d.q[0].used = 0x103000;
	d.heap = d.heap_lo = 0x200000;
	d.heap_hi = RAM;
	drv__wr(&d, VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x100000);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x102000);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_USED_LOW, 0x103000);
	drv__wr(&d, VIRTIO_MMIO_QUEUE_READY, 1);
	add_read(0);
	kick_run();
	cr_assert(!drv__used(&d, 0, &id, &len), "device used a buffer before DRIVER_OK");
	drv__wr(&d, VIRTIO_MMIO_STATUS, 15);
	for (i = 0; i < 3; i++)
		fake_vm__run(vm);
	cr_assert(drv__used(&d, 0, &id, &len));
	cr_assert_eq(fake_vm__faults(vm), 0);
}

/* ---- hostile rings ---- */

static void hostile_setup(void)
{
	cr_assert_eq(drv__init(&d, vm, dev, FEAT | (1ULL << VIRTIO_RING_F_INDIRECT_DESC), 1, QSIZE),
		     0);
}

static void expect_stopped(const char *what)
{
	uint32_t id, len;

	expect_fault(what);
	cr_assert(!drv__used(&d, 0, &id, &len), "faulty chain was completed");
	/* The device stays stopped: more work is ignored, no second fault, no crash. */
	add_read(0);
	kick_run();
	cr_assert(!drv__used(&d, 0, &id, &len));
	cr_assert_eq(fake_vm__faults(vm), 1);
}

Test(mmio, descriptor_loop_is_a_fault)
{
	hostile_setup();
	drv__set_desc(&d, 0, 0, 0x200000, 16, VRING_DESC_F_NEXT, 1);
	drv__set_desc(&d, 0, 1, 0x201000, 16, VRING_DESC_F_NEXT, 0);
	d.q[0].busy[0] = d.q[0].busy[1] = true;
	drv__publish(&d, 0, 0);
	kick_run();
	expect_stopped("longer than queue size");
}

Test(mmio, next_index_out_of_range_is_a_fault)
{
	hostile_setup();
	drv__set_desc(&d, 0, 0, 0x200000, 16, VRING_DESC_F_NEXT, QSIZE);
	d.q[0].busy[0] = true;
	drv__publish(&d, 0, 0);
	kick_run();
	expect_stopped("next index 16");
}

Test(mmio, head_index_out_of_range_is_a_fault)
{
	hostile_setup();
	drv__publish(&d, 0, 999);
	kick_run();
	expect_stopped("head 999");
}

Test(mmio, buffer_beyond_ram_is_a_fault)
{
	hostile_setup();
	drv__set_desc(&d, 0, 0, RAM - 8, 16, 0, 0);
	d.q[0].busy[0] = true;
	drv__publish(&d, 0, 0);
	kick_run();
	expect_stopped("outside guest RAM");
}

Test(mmio, address_plus_len_overflow_is_a_fault)
{
	hostile_setup();
	drv__set_desc(&d, 0, 0, 0xfffffffffffffff0ULL, 0x20, 0, 0);
	d.q[0].busy[0] = true;
	drv__publish(&d, 0, 0);
	kick_run();
	expect_stopped("outside guest RAM");
}

Test(mmio, huge_length_is_a_fault)
{
	hostile_setup();
	drv__set_desc(&d, 0, 0, 0x200000, 0xffffffff, VRING_DESC_F_WRITE, 0);
	d.q[0].busy[0] = true;
	drv__publish(&d, 0, 0);
	kick_run();
	expect_stopped("outside guest RAM");
}

Test(mmio, avail_idx_jump_is_a_fault)
{
	hostile_setup();
	drv__set_avail_idx(&d, 0, 1000);
	kick_run();
	expect_stopped("avail idx jumped from 0 to 1000");
}

Test(mmio, readable_after_writable_is_a_fault)
{
	struct tbuf b[3] = {{0x200000, 16, false}, {0x201000, 1, true}, {0x202000, 512, false}};

	hostile_setup();
	drv__add(&d, 0, b, 3);
	kick_run();
	expect_stopped("readable descriptor after a writable one");
}

Test(mmio, request_without_status_is_a_fault)
{
	struct tbuf b[1] = {{0x200000, 16, false}};

	hostile_setup();
	drv__add(&d, 0, b, 1);
	kick_run();
	expect_stopped("without status byte");
}

Test(mmio, nested_indirect_is_a_fault)
{
	uint8_t *t;
	uint16_t fl = VRING_DESC_F_INDIRECT;

	hostile_setup();
	t = drv__host(&d, 0x300000);
	memset(t, 0, 32);
	memcpy(t + 12, &fl, 2);
	*(uint64_t *)t = 0x300100;
	*(uint32_t *)(t + 8) = 16;
	drv__set_desc(&d, 0, 0, 0x300000, 16, VRING_DESC_F_INDIRECT, 0);
	d.q[0].busy[0] = true;
	drv__publish(&d, 0, 0);
	kick_run();
	expect_stopped("nested indirect");
}

Test(mmio, indirect_loop_is_a_fault)
{
	struct tbuf b[2] = {{0x200000, 16, false}, {0x201000, 16, false}};
	uint16_t *next;

	hostile_setup();
	drv__add_indirect(&d, 0, b, 2);
	/* entry 1 -> entry 0: a loop inside the table */
	next = drv__host(&d, *(uint64_t *)drv__host(&d, d.q[0].desc) + 16 + 14);
	*next = 0;
	*(uint16_t *)drv__host(&d, *(uint64_t *)drv__host(&d, d.q[0].desc) + 16 + 12) =
		VRING_DESC_F_NEXT;
	kick_run();
	expect_stopped("longer than its table");
}

Test(mmio, indirect_without_feature_is_a_fault)
{
	struct tbuf b[2] = {{0x200000, 16, false}, {0x201000, 1, true}};

	cr_assert_eq(drv__init(&d, vm, dev, FEAT, 1, QSIZE), 0);
	drv__add_indirect(&d, 0, b, 2);
	kick_run();
	expect_fault("without the feature");
}

Test(mmio, indirect_table_beyond_ram_is_a_fault)
{
	hostile_setup();
	drv__set_desc(&d, 0, 0, RAM - 16, 32, VRING_DESC_F_INDIRECT, 0);
	d.q[0].busy[0] = true;
	drv__publish(&d, 0, 0);
	kick_run();
	expect_stopped("indirect table");
}

Test(mmio, indirect_request_works)
{
	uint64_t hdr, data, st;
	uint32_t h[4] = {VIRTIO_BLK_T_IN, 0, 0, 0};
	uint32_t id, len;

	hostile_setup();
	hdr = drv__alloc(&d, 16);
	data = drv__alloc(&d, 512);
	st = drv__alloc(&d, 1);
	struct tbuf b[3] = {{hdr, 16, false}, {data, 512, true}, {st, 1, true}};
	memcpy(drv__host(&d, hdr), h, 16);
	*(uint8_t *)drv__host(&d, st) = 0xff;
	drv__add_indirect(&d, 0, b, 3);
	kick_run();
	cr_assert(drv__used(&d, 0, &id, &len));
	cr_assert_eq(len, 513);
	cr_assert_eq(*(uint8_t *)drv__host(&d, st), VIRTIO_BLK_S_OK);
	cr_assert_eq(fake_vm__faults(vm), 0);
}

/* ---- VIRTIO_RING_F_EVENT_IDX ---- */

#define FEAT_EV (FEAT | (1ULL << VIRTIO_RING_F_EVENT_IDX))

static uint16_t *avail_event_p(void)
{
	return drv__host(&d, d.q[0].used + 4 + 8 * QSIZE);
}

static uint16_t *used_event_p(void)
{
	return drv__host(&d, d.q[0].avail + 4 + 2 * QSIZE);
}

Test(mmio, event_idx_offered_and_avail_event_published)
{
	uint32_t id, len;
	int i;

	drv__wr(&d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	cr_assert(drv__rd(&d, VIRTIO_MMIO_DEVICE_FEATURES) & (1U << VIRTIO_RING_F_EVENT_IDX));
	cr_assert_eq(drv__init(&d, vm, dev, FEAT_EV, 1, QSIZE), 0);
	for (i = 0; i < 3; i++)
		add_read((uint64_t)i);
	kick_run();
	for (i = 0; i < 3; i++)
		cr_assert(drv__used(&d, 0, &id, &len));
	/* the device caught up: it wants a notification for entry 3 */
	cr_assert_eq(*avail_event_p(), 3);
	add_read(0);
	kick_run();
	cr_assert(drv__used(&d, 0, &id, &len));
	cr_assert_eq(*avail_event_p(), 4);
	cr_assert_eq(fake_vm__faults(vm), 0);
}

Test(mmio, event_idx_interrupts_follow_used_event)
{
	uint32_t id, len;

	cr_assert_eq(drv__init(&d, vm, dev, FEAT_EV, 1, QSIZE), 0);
	*used_event_p() = 3; /* interrupt once used->idx passes 3 */
	fake_vm__irqs(vm, dev->gsi);
	add_read(0);
	kick_run();
	cr_assert_eq(fake_vm__irqs(vm, dev->gsi), 0, "interrupt before used_event");
	add_read(0);
	add_read(0);
	kick_run();
	cr_assert_eq(fake_vm__irqs(vm, dev->gsi), 0, "interrupt at used_event, not past it");
	add_read(0);
	kick_run();
	cr_assert_eq(fake_vm__irqs(vm, dev->gsi), 1, "no interrupt when passing used_event");
	while (drv__used(&d, 0, &id, &len))
		;
	cr_assert_eq(d.q[0].used_seen, 4);
}

Test(mmio, event_idx_entry_added_without_kick_is_seen_on_recheck)
{
	uint32_t id, len;

	cr_assert_eq(drv__init(&d, vm, dev, FEAT_EV, 1, QSIZE), 0);
	add_read(0);
	kick_run();
	cr_assert(drv__used(&d, 0, &id, &len));
	/* the driver publishes two and notifies once: both are processed */
	add_read(0);
	add_read(1);
	kick_run();
	cr_assert(drv__used(&d, 0, &id, &len));
	cr_assert(drv__used(&d, 0, &id, &len));
	cr_assert_eq(*avail_event_p(), 3);
}
