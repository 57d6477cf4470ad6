/* SPDX-License-Identifier: Apache-2.0 */
/* ELF/PVH parsing and loading with valid and corrupt images; PVH start info, zero
 * page, page tables and initrd placement. */
#include <criterion/criterion.h>
#include <errno.h>
#include <elf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/core.h"

#define IMG_SIZE  0x3000
#define SEG_PADDR 0x1000000ULL
#define SEG_FILE  0x200
#define SEG_MEM	  0x800
#define PVH_ENTRY (SEG_PADDR + 0x40)
#define RAM_SIZE  (32ULL << 20)

struct img {
	uint8_t b[IMG_SIZE];
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph; /* [0] PT_LOAD at 0x1000, [1] PT_NOTE at 0x2000 */
};

/* A minimal x86_64 vmlinux: one loadable segment, one note segment with the PVH entry
 * (preceded by an unrelated note, as real kernels have several). */
static void make_img(struct img *im, bool pvh)
{
	memset(im->b, 0, sizeof(im->b));
	im->eh = (Elf64_Ehdr *)im->b;
	memcpy(im->eh->e_ident, ELFMAG, SELFMAG);
	im->eh->e_ident[EI_CLASS] = ELFCLASS64;
	im->eh->e_ident[EI_DATA] = ELFDATA2LSB;
	im->eh->e_ident[EI_VERSION] = EV_CURRENT;
	im->eh->e_type = ET_EXEC;
	im->eh->e_machine = EM_X86_64;
	im->eh->e_entry = SEG_PADDR + 0x10;
	im->eh->e_phoff = sizeof(Elf64_Ehdr);
	im->eh->e_phentsize = sizeof(Elf64_Phdr);
	im->eh->e_phnum = 2;
	im->ph = (Elf64_Phdr *)(im->b + sizeof(Elf64_Ehdr));
	im->ph[0] = (Elf64_Phdr){.p_type = PT_LOAD,
				 .p_offset = 0x1000,
				 .p_paddr = SEG_PADDR,
				 .p_vaddr = 0xffffffff81000000ULL,
				 .p_filesz = SEG_FILE,
				 .p_memsz = SEG_MEM};
	for (int i = 0; i < SEG_FILE; i++)
		im->b[0x1000 + i] = (uint8_t)(i * 7 + 1);
	uint32_t *n = (uint32_t *)(im->b + 0x2000);
	/* note 1: "GNU", type 3, 5-byte descriptor (padded to 8) */
	n[0] = 4, n[1] = 5, n[2] = 3;
	memcpy(&n[3], "GNU", 4);
	/* note 2: "Xen", XEN_ELFNOTE_PHYS32_ENTRY */
	uint32_t *x = n + 3 + 1 + 2;
	x[0] = 4, x[1] = 4, x[2] = pvh ? 18 : 17;
	memcpy(&x[3], "Xen", 4);
	x[4] = (uint32_t)PVH_ENTRY;
	im->ph[1] = (Elf64_Phdr){.p_type = PT_NOTE,
				 .p_offset = 0x2000,
				 .p_filesz = (uint64_t)((uint8_t *)&x[5] - (uint8_t *)n)};
}

Test(elf, valid_with_pvh_note)
{
	struct img im;
	struct elf_info ei;
	make_img(&im, true);
	cr_assert_eq(boot__elf_parse(im.b, sizeof(im.b), &ei), 0);
	cr_expect_eq(ei.pvh_entry, PVH_ENTRY);
	cr_expect_eq(ei.entry64, SEG_PADDR + 0x10);
	cr_expect_eq(ei.lo, SEG_PADDR);
	cr_expect_eq(ei.hi, SEG_PADDR + SEG_MEM);
}

Test(elf, valid_without_pvh_note_uses_64bit_entry)
{
	struct img im;
	struct elf_info ei;
	make_img(&im, false);
	cr_assert_eq(boot__elf_parse(im.b, sizeof(im.b), &ei), 0);
	cr_expect_eq(ei.pvh_entry, 0);
	cr_expect_eq(ei.entry64, SEG_PADDR + 0x10);
}

static void expect_rejected(struct img *im, const char *what)
{
	struct elf_info ei = {.pvh_entry = 0xdead};
	cr_expect_eq(boot__elf_parse(im->b, sizeof(im->b), &ei), -ENOEXEC, "%s", what);
	cr_expect_eq(ei.pvh_entry, 0xdead, "%s: out-param touched on failure", what);
}

Test(elf, corrupt_headers)
{
	struct img im;
	make_img(&im, true);
	im.eh->e_ident[1] = 'X';
	expect_rejected(&im, "magic");
	make_img(&im, true);
	im.eh->e_ident[EI_CLASS] = ELFCLASS32;
	expect_rejected(&im, "32-bit");
	make_img(&im, true);
	im.eh->e_ident[EI_DATA] = ELFDATA2MSB;
	expect_rejected(&im, "big endian");
	make_img(&im, true);
	im.eh->e_machine = EM_AARCH64;
	expect_rejected(&im, "machine");
	make_img(&im, true);
	im.eh->e_type = ET_DYN;
	expect_rejected(&im, "type");
	make_img(&im, true);
	im.eh->e_phentsize = 32;
	expect_rejected(&im, "phentsize");
	make_img(&im, true);
	im.eh->e_phnum = 0;
	expect_rejected(&im, "no phdrs");
	make_img(&im, true);
	im.eh->e_phnum = 0xffff;
	expect_rejected(&im, "phnum");
	make_img(&im, true);
	im.eh->e_phoff = IMG_SIZE - 8;
	expect_rejected(&im, "phoff at end");
	make_img(&im, true);
	im.eh->e_phoff = UINT64_MAX - 16;
	expect_rejected(&im, "phoff wraps");
}

Test(elf, corrupt_segments)
{
	struct img im;
	make_img(&im, true);
	im.ph[0].p_offset = IMG_SIZE;
	expect_rejected(&im, "offset past end");
	make_img(&im, true);
	im.ph[0].p_offset = UINT64_MAX - 0x10;
	expect_rejected(&im, "offset wraps");
	make_img(&im, true);
	im.ph[0].p_filesz = IMG_SIZE;
	expect_rejected(&im, "filesz past end");
	make_img(&im, true);
	im.ph[0].p_memsz = SEG_FILE - 1;
	expect_rejected(&im, "filesz > memsz");
	make_img(&im, true);
	im.ph[0].p_paddr = UINT64_MAX - 0x100;
	expect_rejected(&im, "paddr wraps");
	make_img(&im, true);
	im.ph[0].p_paddr = VM_MMIO_START;
	expect_rejected(&im, "in MMIO hole");
	make_img(&im, true);
	im.ph[0].p_type = PT_NULL;
	expect_rejected(&im, "no PT_LOAD");
}

Test(elf, corrupt_notes)
{
	struct img im;
	uint32_t *n;
	make_img(&im, true);
	n = (uint32_t *)(im.b + 0x2000);
	n[0] = 0xfffffff0;
	expect_rejected(&im, "namesz huge");
	make_img(&im, true);
	n = (uint32_t *)(im.b + 0x2000);
	n[1] = 0xffffffff;
	expect_rejected(&im, "descsz wraps when aligned");
	make_img(&im, true);
	im.ph[1].p_filesz = IMG_SIZE;
	expect_rejected(&im, "note past file");
	make_img(&im, true);
	n = (uint32_t *)(im.b + 0x2000);
	n[6 + 4] = 0x100;
	expect_rejected(&im, "PVH entry outside the segments");
	make_img(&im, true);
	n = (uint32_t *)(im.b + 0x2000);
	n[6 + 1] = 2;
	expect_rejected(&im, "PVH descriptor of 2 bytes");
}

Test(elf, every_truncation_is_rejected_or_safe)
{
	struct img im;
	make_img(&im, true);
	for (size_t len = 0; len < 0x1000 + SEG_FILE; len++) {
		uint8_t *copy = malloc(len ? len : 1);
		memcpy(copy, im.b, len);
		struct elf_info ei;
		cr_expect_lt(boot__elf_parse(copy, len, &ei), 0, "len %zu", len);
		free(copy);
	}
}

Test(elf, random_corruption_never_crashes)
{
	struct img im;
	unsigned seed = 12345;
	int accepted = 0;
	for (int round = 0; round < 3000; round++) {
		make_img(&im, true);
		for (int k = 0; k < 4; k++) {
			seed = seed * 1103515245u + 12345u;
			size_t pos = (seed >> 8) % 0x2040; /* headers, phdrs and notes */
			im.b[pos] = (uint8_t)(seed >> 24);
		}
		struct elf_info ei;
		if (boot__elf_parse(im.b, sizeof(im.b), &ei) == 0) {
			accepted++;
			cr_assert(ei.lo < ei.hi && ei.hi <= VM_MMIO_START);
			cr_assert(!ei.pvh_entry || (ei.pvh_entry >= ei.lo && ei.pvh_entry < ei.hi));
		}
	}
	cr_expect_gt(accepted, 0, "some flips hit unused bytes");
}

struct ram {
	uint8_t *buf;
	struct vm_mem m;
};

static void ram_init(struct ram *r)
{
	r->buf = calloc(1, RAM_SIZE);
	cr_assert_not_null(r->buf);
	cr_assert_eq(mem__layout(&r->m, r->buf, RAM_SIZE), 0);
}

Test(elf, load_copies_and_zeroes_bss)
{
	struct img im;
	struct ram r;
	make_img(&im, true);
	ram_init(&r);
	memset(r.buf + SEG_PADDR, 0xcc, SEG_MEM + 16);
	cr_assert_eq(boot__elf_load(&r.m, im.b, sizeof(im.b), -1, RAM_SIZE), 0);
	cr_expect_arr_eq(r.buf + SEG_PADDR, im.b + 0x1000, SEG_FILE);
	for (size_t i = SEG_FILE; i < SEG_MEM; i++)
		cr_assert_eq(r.buf[SEG_PADDR + i], 0, "bss byte %zu", i);
	cr_expect_eq(r.buf[SEG_PADDR + SEG_MEM], 0xcc, "nothing written past memsz");
	free(r.buf);
}

/* From the file (the VMM's way): the same bytes as from the image; a short file is -EIO. */
Test(elf, load_reads_segments_from_the_file)
{
	char path[] = "/tmp/nucleus-elf-XXXXXX";
	struct img im;
	struct ram r;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	unlink(path);
	make_img(&im, true);
	cr_assert_eq(write(fd, im.b, sizeof(im.b)), (ssize_t)sizeof(im.b));
	ram_init(&r);
	memset(r.buf + SEG_PADDR, 0xcc, SEG_MEM + 16);
	cr_assert_eq(boot__elf_load(&r.m, im.b, sizeof(im.b), fd, RAM_SIZE), 0);
	cr_expect_arr_eq(r.buf + SEG_PADDR, im.b + 0x1000, SEG_FILE);
	for (size_t i = SEG_FILE; i < SEG_MEM; i++)
		cr_assert_eq(r.buf[SEG_PADDR + i], 0, "bss byte %zu", i);
	cr_expect_eq(r.buf[SEG_PADDR + SEG_MEM], 0xcc, "nothing written past memsz");
	cr_assert_eq(ftruncate(fd, 0x1000 + SEG_FILE / 2), 0); /* shrunk under the VMM */
	cr_assert_eq(boot__elf_load(&r.m, im.b, sizeof(im.b), fd, RAM_SIZE), -EIO);
	close(fd);
	free(r.buf);
}

Test(elf, load_refuses_low_memory_and_limit)
{
	struct img im;
	struct ram r;
	ram_init(&r);
	make_img(&im, true);
	im.ph[0].p_paddr = 0x9000; /* would overwrite the page tables */
	cr_expect_lt(boot__elf_load(&r.m, im.b, sizeof(im.b), -1, RAM_SIZE), 0);
	make_img(&im, true);
	cr_expect_lt(boot__elf_load(&r.m, im.b, sizeof(im.b), -1, SEG_PADDR + SEG_MEM - 1), 0,
		     "overlaps the initrd");
	make_img(&im, true);
	im.ph[0].p_paddr = RAM_SIZE - 0x100; /* beyond this guest's RAM */
	cr_expect_lt(boot__elf_load(&r.m, im.b, sizeof(im.b), -1, VM_MMIO_START), 0);
	free(r.buf);
}

Test(boot, initrd_at_top_of_low_ram)
{
	struct vm_mem m;
	uint8_t *fake = mmap(NULL, 8ULL << 30, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint64_t gpa = 0;
	cr_assert_neq(fake, MAP_FAILED);
	cr_assert_eq(mem__layout(&m, fake, 128ULL << 20), 0);
	cr_assert_eq(boot__initrd_addr(&m, 0x12345, 0x2000000, &gpa), 0);
	cr_expect_eq(gpa & 0xfff, 0);
	cr_expect_geq(gpa + 0x12345, (128ULL << 20) - 0x1000);
	cr_expect_leq(gpa + 0x12345, 128ULL << 20);
	cr_expect_lt(boot__initrd_addr(&m, 127ULL << 20, 0x2000000, &gpa), 0, "hits the kernel");
	cr_expect_lt(boot__initrd_addr(&m, 129ULL << 20, 0, &gpa), 0, "bigger than RAM");
	cr_assert_eq(mem__layout(&m, fake, 8ULL << 30), 0);
	cr_assert_eq(boot__initrd_addr(&m, 0x1000, 0x2000000, &gpa), 0);
	cr_expect_eq(gpa, VM_MMIO_START - 0x1000, "below the MMIO hole");
}

Test(boot, pvh_start_info)
{
	struct ram r;
	ram_init(&r);
	struct boot_params_in in = {
		.cmdline = "console=ttyS0 quiet", .initrd_gpa = 0x1f00000, .initrd_size = 0x1234};
	cr_assert_eq(boot__write_pvh(&r.m, &in), 0);
	struct hvm_start_info si;
	memcpy(&si, r.buf + BOOT_START_INFO, sizeof(si));
	cr_expect_eq(si.magic, 0x336ec578);
	cr_expect_eq(si.version, 1);
	cr_expect_str_eq((char *)r.buf + si.cmdline_paddr, "console=ttyS0 quiet");
	cr_assert_eq(si.nr_modules, 1);
	struct hvm_modlist_entry mod;
	memcpy(&mod, r.buf + si.modlist_paddr, sizeof(mod));
	cr_expect_eq(mod.paddr, 0x1f00000);
	cr_expect_eq(mod.size, 0x1234);
	cr_expect_eq(si.rsdp_paddr, 0);
	cr_assert_eq(si.memmap_entries, 3);
	struct hvm_memmap_entry e;
	memcpy(&e, r.buf + si.memmap_paddr + 2 * sizeof(e), sizeof(e));
	cr_expect_eq(e.addr, 0x100000);
	cr_expect_eq(e.addr + e.size, RAM_SIZE);
	cr_expect_eq(e.type, 1);
	/* boot structures must not overlap each other */
	cr_expect_leq(si.memmap_paddr + 3 * sizeof(e), BOOT_ZERO_PAGE);
	cr_expect_geq(si.modlist_paddr, BOOT_START_INFO + sizeof(si));
	free(r.buf);
}

Test(boot, pvh_without_initrd_has_no_modules)
{
	struct ram r;
	ram_init(&r);
	struct boot_params_in in = {.cmdline = ""};
	cr_assert_eq(boot__write_pvh(&r.m, &in), 0);
	struct hvm_start_info si;
	memcpy(&si, r.buf + BOOT_START_INFO, sizeof(si));
	cr_expect_eq(si.nr_modules, 0);
	free(r.buf);
}

Test(boot, linux64_zero_page_and_page_tables)
{
	struct ram r;
	ram_init(&r);
	struct boot_params_in in = {
		.cmdline = "root=/dev/vda", .initrd_gpa = 0x1f00000, .initrd_size = 0x4321};
	cr_assert_eq(boot__write_linux64(&r.m, &in), 0);
	uint8_t *zp = r.buf + BOOT_ZERO_PAGE;
	uint32_t v32;
	uint16_t v16;
	memcpy(&v16, zp + 0x1fe, 2);
	cr_expect_eq(v16, 0xaa55);
	memcpy(&v32, zp + 0x202, 4);
	cr_expect_eq(v32, 0x53726448);
	memcpy(&v32, zp + 0x228, 4);
	cr_expect_str_eq((char *)r.buf + v32, "root=/dev/vda");
	memcpy(&v32, zp + 0x218, 4);
	cr_expect_eq(v32, 0x1f00000);
	memcpy(&v32, zp + 0x21c, 4);
	cr_expect_eq(v32, 0x4321);
	cr_expect_eq(zp[0x1e8], 3, "e820 entries");
	uint64_t a, s;
	memcpy(&a, zp + 0x2d0 + 2 * 20, 8);
	memcpy(&s, zp + 0x2d0 + 2 * 20 + 8, 8);
	cr_expect_eq(a, 0x100000);
	cr_expect_eq(a + s, RAM_SIZE);
	/* identity map: walk the tables for a few addresses */
	uint64_t *pml4 = (uint64_t *)(r.buf + BOOT_PML4);
	for (uint64_t addr = 0; addr < (4ULL << 30); addr += 0x3fe00000ULL) {
		uint64_t pdpt = pml4[(addr >> 39) & 511] & ~0xfffULL;
		cr_assert_neq(pdpt, 0);
		uint64_t pd = ((uint64_t *)(r.buf + pdpt))[(addr >> 30) & 511] & ~0xfffULL;
		cr_assert_neq(pd, 0);
		uint64_t pde = ((uint64_t *)(r.buf + pd))[(addr >> 21) & 511];
		cr_expect_eq(pde & 0x80, 0x80, "2 MiB page");
		cr_expect_eq(pde & ~0x1fffffULL, addr & ~0x1fffffULL, "identity at %#llx",
			     (unsigned long long)addr);
	}
	free(r.buf);
}

Test(boot, cmdline_too_long_rejected)
{
	struct ram r;
	ram_init(&r);
	char *big = malloc(BOOT_CMDLINE_MAX + 1);
	memset(big, 'x', BOOT_CMDLINE_MAX);
	big[BOOT_CMDLINE_MAX] = '\0';
	struct boot_params_in in = {.cmdline = big};
	cr_expect_lt(boot__write_pvh(&r.m, &in), 0);
	cr_expect_lt(boot__write_linux64(&r.m, &in), 0);
	free(big);
	free(r.buf);
}
