/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nt-status - a static guest program for the vm-boot suite's initramfs: writes one
 * byte (argv[1], e.g. 1 = ready, 2 = shutdown follows) to the VMM's status register,
 * like nucleus-init does, so the boot tests do not depend on the agent. Uses the
 * port when the kernel allows ioperm(), else the memory-mapped alias via /dev/mem.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <unistd.h>

#define STATUS_PORT 0x440
#define STATUS_MMIO 0xd0020000UL

static int write_mmio(uint8_t v)
{
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0) {
		perror("nt-status: /dev/mem");
		return 1;
	}
	volatile uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, STATUS_MMIO);
	close(fd);
	if (p == MAP_FAILED) {
		perror("nt-status: mmap");
		return 1;
	}
	*p = v;
	munmap((void *)p, 4096);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: nt-status BYTE\n");
		return 2;
	}
	uint8_t v = (uint8_t)strtoul(argv[1], NULL, 0);
	if (ioperm(STATUS_PORT, 1, 1) < 0)
		return write_mmio(v);
	outb(v, STATUS_PORT);
	return 0;
}
