/* SPDX-License-Identifier: Apache-2.0 */
/*
 * boot.c - load an uncompressed vmlinux and write what its entry point expects.
 *
 * The ELF file comes from disk and is treated as untrusted: every header, program
 * header and note is bounds-checked against the file, and every segment against
 * guest RAM and the boot structures below 1 MiB.
 *
 * Two entries: PVH (ELF note XEN_ELFNOTE_PHYS32_ENTRY, 32-bit protected mode, EBX =
 * hvm_start_info) is preferred; else the Linux 64-bit boot protocol (long mode with
 * identity page tables, RSI = zero page).
 */
#include <elf.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "vmm/core.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define ELF_MAX_PHDRS		 64

static bool add_ok(uint64_t a, uint64_t b, uint64_t limit)
{
	return a <= limit && b <= limit - a;
}

static uint64_t align4(uint32_t v)
{
	return ((uint64_t)v + 3) & ~3ULL;
}

/* Walk one PT_NOTE segment [off, off + sz) of the image looking for the PVH note. */
static int parse_notes(const uint8_t *img, uint64_t off, uint64_t sz, uint32_t *pvh)
{
	uint64_t pos = 0;

	while (sz - pos >= 12) {
		uint32_t hdr[3];
		memcpy(hdr, img + off + pos, sizeof(hdr));
		pos += 12;
		uint64_t namesz = align4(hdr[0]), descsz = align4(hdr[1]);
		if (namesz > sz - pos)
			return -ENOEXEC;
		const uint8_t *name = img + off + pos;
		pos += namesz;
		if (descsz > sz - pos)
			return -ENOEXEC;
		const uint8_t *desc = img + off + pos;
		pos += descsz;
		if (hdr[0] == 4 && memcmp(name, "Xen", 4) == 0 &&
		    hdr[2] == XEN_ELFNOTE_PHYS32_ENTRY) {
			if (hdr[1] != 4 && hdr[1] != 8)
				return -ENOEXEC;
			uint64_t e = 0;
			memcpy(&e, desc, hdr[1]);
			if (e == 0 || e > UINT32_MAX)
				return -ENOEXEC;
			*pvh = (uint32_t)e;
		}
	}
	return 0;
}

static int read_ehdr(const uint8_t *img, size_t len, Elf64_Ehdr *eh)
{
	if (!img || len < sizeof(*eh))
		return -ENOEXEC;
	memcpy(eh, img, sizeof(*eh));
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64 ||
	    eh->e_type != ET_EXEC || eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phnum > ELF_MAX_PHDRS)
		return -ENOEXEC;
	if (!add_ok(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr), len))
		return -ENOEXEC;
	return 0;
}

static void get_phdr(const uint8_t *img, const Elf64_Ehdr *eh, unsigned i, Elf64_Phdr *ph)
{
	memcpy(ph, img + eh->e_phoff + (uint64_t)i * sizeof(*ph), sizeof(*ph));
}

typedef int (*segment_fn)(const uint8_t *img, const Elf64_Phdr *ph, void *opaque);

/*
 * Checks the ELF header into *eh, then calls fn on each PT_LOAD program header (and each
 * PT_NOTE one too if notes) in order, once its file bytes are known to lie inside the
 * image. Stops at the first error, of the image or of fn.
 */
static int for_each_segment(const uint8_t *img, size_t len, bool notes, Elf64_Ehdr *eh,
			    segment_fn fn, void *opaque)
{
	int r = read_ehdr(img, len, eh);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		get_phdr(img, eh, i, &ph);
		if (ph.p_type != PT_LOAD && !(notes && ph.p_type == PT_NOTE))
			continue;
		if (!add_ok(ph.p_offset, ph.p_filesz, len))
			return -ENOEXEC;
		r = fn(img, &ph, opaque);
		if (r < 0)
			return r;
	}
	return 0;
}

/* boot__elf_parse's step: the PVH note, or a segment's share of [lo, hi). */
static int parse_segment(const uint8_t *img, const Elf64_Phdr *ph, void *opaque)
{
	struct elf_info *info = opaque;
	if (ph->p_type == PT_NOTE)
		return parse_notes(img, ph->p_offset, ph->p_filesz, &info->pvh_entry);
	if (ph->p_filesz > ph->p_memsz || ph->p_memsz == 0 ||
	    !add_ok(ph->p_paddr, ph->p_memsz, VM_MMIO_START))
		return -ENOEXEC;
	if (ph->p_paddr < info->lo)
		info->lo = ph->p_paddr;
	if (ph->p_paddr + ph->p_memsz > info->hi)
		info->hi = ph->p_paddr + ph->p_memsz;
	return 0;
}

int boot__elf_parse(const uint8_t *img, size_t len, struct elf_info *ret)
{
	struct elf_info info = {.lo = UINT64_MAX};
	Elf64_Ehdr eh;
	int r = for_each_segment(img, len, true, &eh, parse_segment, &info);
	if (r < 0)
		return r;
	if (info.hi == 0)
		return -ENOEXEC;
	if (info.pvh_entry && (info.pvh_entry < info.lo || info.pvh_entry >= info.hi))
		return -ENOEXEC;
	if (eh.e_entry >= info.lo && eh.e_entry < info.hi)
		info.entry64 = eh.e_entry;
	if (!info.pvh_entry && !info.entry64)
		return -ENOEXEC;
	*ret = info;
	return 0;
}

struct load_to {
	const struct vm_mem *m;
	uint64_t limit;
	int fd;
};

/* @len bytes of @fd at @off into @dst; -EIO on a short file. */
static int pread_full(int fd, uint8_t *dst, uint64_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, dst, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		dst += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* boot__elf_load's step: one segment into guest RAM, its bss zeroed. */
static int load_segment(const uint8_t *img, const Elf64_Phdr *ph, void *opaque)
{
	const struct load_to *to = opaque;
	if (ph->p_filesz > ph->p_memsz)
		return -ENOEXEC;
	if (ph->p_paddr < BOOT_KERNEL_MIN || !add_ok(ph->p_paddr, ph->p_memsz, to->limit))
		return -ERANGE;
	uint8_t *dst = mem__gpa(to->m, ph->p_paddr, ph->p_memsz);
	if (!dst)
		return -ERANGE;
	if (to->fd >= 0) {
		int r = pread_full(to->fd, dst, ph->p_filesz, ph->p_offset);

		if (r < 0)
			return r;
	} else {
		memcpy(dst, img + ph->p_offset, ph->p_filesz);
	}
	memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
	return 0;
}

int boot__elf_load(const struct vm_mem *m, const uint8_t *img, size_t len, int fd, uint64_t limit)
{
	struct load_to to = {.m = m, .limit = limit, .fd = fd};
	Elf64_Ehdr eh;
	return for_each_segment(img, len, false, &eh, load_segment, &to);
}

int boot__initrd_addr(const struct vm_mem *m, uint64_t size, uint64_t kernel_end, uint64_t *ret_gpa)
{
	uint64_t top = m->low_size;
	uint64_t floor = (kernel_end + 0xfff) & ~0xfffULL;

	if (size == 0 || size > top)
		return -E2BIG;
	uint64_t gpa = (top - size) & ~0xfffULL;
	if (gpa < floor || gpa < BOOT_KERNEL_MIN)
		return -E2BIG;
	*ret_gpa = gpa;
	return 0;
}

/* GDT shared by both entries: 0x08 code32, 0x10 code64, 0x18 data, 0x20 TSS. */
static int write_gdt(const struct vm_mem *m)
{
	static const uint64_t gdt[] = {
		0,
		0x00cf9b000000ffffULL,
		0x00af9b000000ffffULL,
		0x00cf93000000ffffULL,
		0x00008b0000000067ULL,
	};
	void *p = mem__gpa(m, BOOT_GDT_ADDR, sizeof(gdt));
	if (!p)
		return -EFAULT;
	memcpy(p, gdt, sizeof(gdt));
	return 0;
}

static int write_cmdline(const struct vm_mem *m, const char *cmdline)
{
	size_t n = strlen(cmdline) + 1;
	if (n > BOOT_CMDLINE_MAX)
		return -E2BIG;
	char *p = mem__gpa(m, BOOT_CMDLINE, BOOT_CMDLINE_MAX);
	if (!p)
		return -EFAULT;
	memset(p, 0, BOOT_CMDLINE_MAX);
	memcpy(p, cmdline, n);
	return 0;
}

int boot__write_pvh(const struct vm_mem *m, const struct boot_params_in *in)
{
	const uint64_t modlist = BOOT_START_INFO + 0x40, memmap = BOOT_START_INFO + 0x80;
	struct e820_entry e820[VM_E820_MAX];
	int n = mem__e820(m, e820, VM_E820_MAX);
	int r;

	if (n < 0)
		return n;
	if ((r = write_gdt(m)) < 0 || (r = write_cmdline(m, in->cmdline)) < 0)
		return r;
	struct hvm_start_info *si = mem__gpa(m, BOOT_START_INFO, 0x1000);
	if (!si)
		return -EFAULT;
	memset(si, 0, 0x1000);
	*si = (struct hvm_start_info){
		.magic = PVH_START_MAGIC,
		.version = 1,
		.cmdline_paddr = BOOT_CMDLINE,
		.memmap_paddr = memmap,
		.memmap_entries = (uint32_t)n,
	};
	if (in->initrd_size) {
		struct hvm_modlist_entry mod = {.paddr = in->initrd_gpa, .size = in->initrd_size};
		memcpy((uint8_t *)si + (modlist - BOOT_START_INFO), &mod, sizeof(mod));
		si->nr_modules = 1;
		si->modlist_paddr = modlist;
	}
	for (int i = 0; i < n; i++) {
		struct hvm_memmap_entry e = {e820[i].addr, e820[i].size, e820[i].type, 0};
		memcpy((uint8_t *)si + (memmap - BOOT_START_INFO) + (size_t)i * sizeof(e), &e,
		       sizeof(e));
	}
	return 0;
}

/* Identity map of the first 4 GiB with 2 MiB pages. */
static int write_page_tables(const struct vm_mem *m)
{
	uint64_t *pml4 = mem__gpa(m, BOOT_PML4, 0x6000);
	if (!pml4)
		return -EFAULT;
	memset(pml4, 0, 0x6000);
	uint64_t *pdpt = pml4 + 512, *pd = pml4 + 1024;
	pml4[0] = (BOOT_PML4 + 0x1000) | 0x3;
	for (uint64_t i = 0; i < 4; i++) {
		pdpt[i] = (BOOT_PML4 + 0x2000 + i * 0x1000) | 0x3;
		for (uint64_t j = 0; j < 512; j++)
			pd[i * 512 + j] = ((i * 512 + j) << 21) | 0x83;
	}
	return 0;
}

/* Offsets in struct boot_params (Documentation/arch/x86/zero-page). */
#define ZP_EXT_RAMDISK_IMAGE 0x0c0
#define ZP_EXT_RAMDISK_SIZE  0x0c4
#define ZP_EXT_CMD_LINE_PTR  0x0c8
#define ZP_E820_ENTRIES	     0x1e8
#define ZP_BOOT_FLAG	     0x1fe
#define ZP_HEADER	     0x202
#define ZP_VERSION	     0x206
#define ZP_TYPE_OF_LOADER    0x210
#define ZP_LOADFLAGS	     0x211
#define ZP_RAMDISK_IMAGE     0x218
#define ZP_RAMDISK_SIZE	     0x21c
#define ZP_CMD_LINE_PTR	     0x228
#define ZP_INITRD_ADDR_MAX   0x22c
#define ZP_KERNEL_ALIGNMENT  0x230
#define ZP_CMDLINE_SIZE	     0x238
#define ZP_E820_TABLE	     0x2d0
#define ZP_E820_MAX	     128

static void put32(uint8_t *zp, size_t off, uint32_t v)
{
	memcpy(zp + off, &v, sizeof(v));
}

int boot__write_linux64(const struct vm_mem *m, const struct boot_params_in *in)
{
	struct e820_entry e820[VM_E820_MAX];
	int n = mem__e820(m, e820, VM_E820_MAX);
	int r;

	if (n < 0)
		return n;
	if ((r = write_gdt(m)) < 0 || (r = write_cmdline(m, in->cmdline)) < 0 ||
	    (r = write_page_tables(m)) < 0)
		return r;
	uint8_t *zp = mem__gpa(m, BOOT_ZERO_PAGE, 0x1000);
	if (!zp)
		return -EFAULT;
	memset(zp, 0, 0x1000);
	uint16_t flag = 0xaa55, version = 0x020f;
	memcpy(zp + ZP_BOOT_FLAG, &flag, 2);
	put32(zp, ZP_HEADER, 0x53726448); /* "HdrS" */
	memcpy(zp + ZP_VERSION, &version, 2);
	zp[ZP_TYPE_OF_LOADER] = 0xff;
	zp[ZP_LOADFLAGS] = 0x01; /* LOADED_HIGH */
	put32(zp, ZP_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE);
	put32(zp, ZP_EXT_CMD_LINE_PTR, 0);
	put32(zp, ZP_CMDLINE_SIZE, BOOT_CMDLINE_MAX - 1);
	put32(zp, ZP_KERNEL_ALIGNMENT, 0x1000000);
	put32(zp, ZP_INITRD_ADDR_MAX, 0x7fffffff);
	if (in->initrd_size) {
		put32(zp, ZP_RAMDISK_IMAGE, (uint32_t)in->initrd_gpa);
		put32(zp, ZP_RAMDISK_SIZE, (uint32_t)in->initrd_size);
		put32(zp, ZP_EXT_RAMDISK_IMAGE, (uint32_t)(in->initrd_gpa >> 32));
		put32(zp, ZP_EXT_RAMDISK_SIZE, (uint32_t)(in->initrd_size >> 32));
	}
	zp[ZP_E820_ENTRIES] = (uint8_t)n;
	for (int i = 0; i < n && i < ZP_E820_MAX; i++) {
		uint8_t *e = zp + ZP_E820_TABLE + (size_t)i * 20;
		memcpy(e, &e820[i].addr, 8);
		memcpy(e + 8, &e820[i].size, 8);
		memcpy(e + 16, &e820[i].type, 4);
	}
	return 0;
}
