// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-poke - a hostile guest, for the VMM tests. Runs as root inside the guest
 * (static binary, needs /dev/mem and /proc/self/pagemap) and breaks the virtio-mmio
 * rules on purpose, so the test can check that the VMM ends this VM with the guest-fault
 * status and a log line naming the device, without crashing.
 *
 *   virtio-poke scan              list the virtio-mmio windows (base, device id)
 *   virtio-poke BASE MODE [SEED]  abuse the device at BASE (e.g. 0xd0000000):
 *     desc-oob  queue descriptor table far beyond guest RAM, then notify
 *     loop      a descriptor chain 0 -> 1 -> 0, then notify
 *     len       one descriptor of 0xffffffff bytes, then notify
 *     idx       avail->idx jumps by 0x8000, then notify
 *     garbage   random 32-bit writes to random registers (SEED, default 1)
 *
 * The queue abused is 0, or the tx queue (1) for virtio-vsock. The rings live in one
 * locked page of this process; its guest-physical address comes
 * from /proc/self/pagemap. Exit status: 1 if the VM is still running 30 s after the
 * abuse (the VMM did not stop it), 2 for usage or setup errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MMIO_BASE  0xd0000000UL
#define MMIO_SLOTS 32
#define MMIO_SIZE  0x1000UL
#define PAGE	   4096UL

/* virtio-mmio v2 register offsets and status bits (virtio 1.x spec, 4.2.2) */
enum {
	R_MAGIC = 0x000,
	R_VERSION = 0x004,
	R_DEVICE_ID = 0x008,
	R_DEV_FEAT = 0x010,
	R_DEV_FEAT_SEL = 0x014,
	R_DRV_FEAT = 0x020,
	R_DRV_FEAT_SEL = 0x024,
	R_QUEUE_SEL = 0x030,
	R_QUEUE_NUM_MAX = 0x034,
	R_QUEUE_NUM = 0x038,
	R_QUEUE_READY = 0x044,
	R_QUEUE_NOTIFY = 0x050,
	R_STATUS = 0x070,
	R_DESC_LO = 0x080,
	R_DESC_HI = 0x084,
	R_AVAIL_LO = 0x090,
	R_AVAIL_HI = 0x094,
	R_USED_LO = 0x0a0,
	R_USED_HI = 0x0a4,
};
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8 };
enum { D_NEXT = 1, D_WRITE = 2 };

#define QSIZE 16
/* Layout of the ring page: descriptors, avail ring, used ring, then a data area. */
#define OFF_DESC  0
#define OFF_AVAIL 512
#define OFF_USED  1024
#define OFF_DATA  2048

struct poke {
	volatile uint32_t *regs;
	uint8_t *page; /* ring page, host view */
	uint64_t gpa;  /* its guest-physical address */
	uint32_t q;    /* the queue to abuse: one the device reads on notify */
};

static void wr(struct poke *p, uint32_t off, uint32_t v)
{
	p->regs[off / 4] = v;
	__sync_synchronize();
}

static uint32_t rd(struct poke *p, uint32_t off)
{
	__sync_synchronize();
	return p->regs[off / 4];
}

static volatile uint32_t *map_window(int memfd, unsigned long base)
{
	void *m = mmap(NULL, MMIO_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, (off_t)base);

	return m == MAP_FAILED ? NULL : m;
}

static int scan(int memfd)
{
	int i, found = 0;

	for (i = 0; i < MMIO_SLOTS; i++) {
		unsigned long base = MMIO_BASE + MMIO_SIZE * (unsigned long)i;
		volatile uint32_t *r = map_window(memfd, base);

		if (!r)
			continue;
		if (r[R_MAGIC / 4] == 0x74726976 && r[R_DEVICE_ID / 4] != 0) {
			printf("0x%lx device %u version %u\n", base, r[R_DEVICE_ID / 4],
			       r[R_VERSION / 4]);
			found++;
		}
		munmap((void *)r, MMIO_SIZE);
	}
	return found ? 0 : 2;
}

/* One locked page and its guest-physical address. */
static int ring_page(struct poke *p)
{
	uint64_t ent;
	int fd;

	p->page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->page == MAP_FAILED || mlock(p->page, PAGE) < 0)
		return -1;
	memset(p->page, 0, PAGE);
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (pread(fd, &ent, sizeof(ent), (off_t)((uintptr_t)p->page / PAGE * 8)) != sizeof(ent)) {
		close(fd);
		return -1;
	}
	close(fd);
	if (!(ent & (1ULL << 63)) || (ent & ((1ULL << 55) - 1)) == 0)
		return -1; /* not present, or PFNs hidden (not root) */
	p->gpa = (ent & ((1ULL << 55) - 1)) * PAGE;
	return 0;
}

static void set_desc(struct poke *p, int i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *d = p->page + OFF_DESC + 16 * i;

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void publish(struct poke *p, uint16_t head, uint16_t idx)
{
	uint16_t *avail = (uint16_t *)(p->page + OFF_AVAIL);

	avail[2] = head;
	__sync_synchronize();
	avail[1] = idx;
	__sync_synchronize();
}

/* Takes the device over like a driver would: reset, VERSION_1 only, queue p->q in our
 * page (descriptor table at desc_gpa), DRIVER_OK. */
static void takeover(struct poke *p, uint64_t desc_gpa)
{
	uint32_t max;

	wr(p, R_STATUS, 0);
	wr(p, R_STATUS, S_ACK);
	wr(p, R_STATUS, S_ACK | S_DRIVER);
	wr(p, R_DRV_FEAT_SEL, 0);
	wr(p, R_DRV_FEAT, 0);
	wr(p, R_DRV_FEAT_SEL, 1);
	wr(p, R_DRV_FEAT, 1); /* VIRTIO_F_VERSION_1 */
	wr(p, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	wr(p, R_QUEUE_SEL, p->q);
	max = rd(p, R_QUEUE_NUM_MAX);
	wr(p, R_QUEUE_NUM, max < QSIZE ? max : QSIZE);
	wr(p, R_DESC_LO, (uint32_t)desc_gpa);
	wr(p, R_DESC_HI, (uint32_t)(desc_gpa >> 32));
	wr(p, R_AVAIL_LO, (uint32_t)(p->gpa + OFF_AVAIL));
	wr(p, R_AVAIL_HI, (uint32_t)((p->gpa + OFF_AVAIL) >> 32));
	wr(p, R_USED_LO, (uint32_t)(p->gpa + OFF_USED));
	wr(p, R_USED_HI, (uint32_t)((p->gpa + OFF_USED) >> 32));
	wr(p, R_QUEUE_READY, 1);
	wr(p, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

static int abuse(struct poke *p, const char *mode, unsigned seed)
{
	uint64_t data = p->gpa + OFF_DATA;
	int i;

	if (strcmp(mode, "desc-oob") == 0) {
		takeover(p, 0x7f00000000ULL); /* 508 GiB: beyond any test VM's RAM */
		publish(p, 0, 1);
	} else if (strcmp(mode, "loop") == 0) {
		takeover(p, p->gpa + OFF_DESC);
		set_desc(p, 0, data, 16, D_NEXT, 1);
		set_desc(p, 1, data + 16, 16, D_NEXT, 0);
		publish(p, 0, 1);
	} else if (strcmp(mode, "len") == 0) {
		takeover(p, p->gpa + OFF_DESC);
		set_desc(p, 0, data, 0xffffffffU, D_WRITE, 0);
		publish(p, 0, 1);
	} else if (strcmp(mode, "idx") == 0) {
		takeover(p, p->gpa + OFF_DESC);
		set_desc(p, 0, data, 16, 0, 0);
		publish(p, 0, 0x8000);
	} else if (strcmp(mode, "garbage") == 0) {
		srand(seed);
		for (i = 0; i < 4096; i++)
			wr(p, (uint32_t)(rand() % 64) * 4, (uint32_t)rand());
		wr(p, R_MAGIC, 0xdeadbeef); /* read-only: a fault whatever came before */
		return 0;
	} else {
		fprintf(stderr, "virtio-poke: unknown mode %s\n", mode);
		return -1;
	}
	wr(p, R_QUEUE_NOTIFY, p->q);
	return 0;
}

int main(int argc, char **argv)
{
	struct poke p = {0};
	unsigned long base;
	char *end;
	int memfd;

	if (argc < 2 || (strcmp(argv[1], "scan") != 0 && argc < 3)) {
		fprintf(stderr,
			"usage: virtio-poke scan | BASE desc-oob|loop|len|idx|garbage [SEED]\n");
		return 2;
	}
	memfd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
	if (memfd < 0) {
		perror("virtio-poke: /dev/mem");
		return 2;
	}
	if (strcmp(argv[1], "scan") == 0)
		return scan(memfd);
	base = strtoul(argv[1], &end, 0);
	if (*end || base < MMIO_BASE || base >= MMIO_BASE + MMIO_SLOTS * MMIO_SIZE ||
	    base % MMIO_SIZE) {
		fprintf(stderr, "virtio-poke: %s is not a virtio-mmio window\n", argv[1]);
		return 2;
	}
	p.regs = map_window(memfd, base);
	if (!p.regs || p.regs[R_MAGIC / 4] != 0x74726976) {
		fprintf(stderr, "virtio-poke: no virtio-mmio device at 0x%lx\n", base);
		return 2;
	}
	if (ring_page(&p) < 0) {
		fprintf(stderr, "virtio-poke: no locked page with a known address: %s\n",
			strerror(errno));
		return 2;
	}
	/* vsock (19) reads its tx queue (1) on notify; blk and others read queue 0 */
	p.q = p.regs[R_DEVICE_ID / 4] == 19 ? 1 : 0;
	printf("virtio-poke: %s on device %u at 0x%lx (rings at 0x%llx)\n", argv[2],
	       p.regs[R_DEVICE_ID / 4], base, (unsigned long long)p.gpa);
	fflush(stdout);
	if (abuse(&p, argv[2], argc > 3 ? (unsigned)strtoul(argv[3], NULL, 0) : 1) < 0)
		return 2;
	sleep(30);
	printf("virtio-poke: the VM is still running\n");
	return 1;
}
