/* SPDX-License-Identifier: Apache-2.0 */
/*
 * core.h - private to the VMM core (the files of vmm/ but the virtio devices, and
 * tests/unit/vmm): struct vm and the pieces that can be tested without KVM (memory
 * layout, ELF/PVH loader, MP table, CPUID filter, command line, control protocol parsing).
 */
#ifndef NUCLEUS_VMM_CORE_H
#define NUCLEUS_VMM_CORE_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "vmm/vm-internal.h"
#include "vmm/vmm.h"

struct kvm_cpuid2;
struct kvm_run;

/* ---- memory.c: guest RAM layout ------------------------------------------------ */
#define VM_HIGH_RAM_START 0x100000000ULL
#define VM_E820_MAX	  8
#define E820_RAM	  1
#define E820_RESERVED	  2

struct vm_mem {
	uint8_t *host;	    /* one anonymous mapping of size bytes */
	uint64_t size;	    /* total RAM */
	uint64_t low_size;  /* [0, low_size) at host */
	uint64_t high_size; /* [4 GiB, 4 GiB + high_size) at host + low_size */
};

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

/* Fill m for size bytes at host (no allocation). -EINVAL for sizes out of range. */
int mem__layout(struct vm_mem *m, uint8_t *host, uint64_t size);
void *mem__gpa(const struct vm_mem *m, uint64_t gpa, uint64_t len);
/* The E820 map the guest sees; returns the number of entries (<= max). */
int mem__e820(const struct vm_mem *m, struct e820_entry *out, int max);

/* Fixed guest addresses of the boot structures (all below 1 MiB). */
#define BOOT_GDT_ADDR	 0x0500ULL
#define BOOT_START_INFO	 0x6000ULL /* PVH hvm_start_info, modlist, memmap */
#define BOOT_ZERO_PAGE	 0x7000ULL
#define BOOT_PML4	 0x9000ULL /* + PDPT 0xa000, PDs 0xb000-0xefff */
#define BOOT_CMDLINE	 0x20000ULL
#define BOOT_CMDLINE_MAX 2048
#define BOOT_MPTABLE	 0x9fc00ULL /* floating pointer + config table, 1 KiB */
#define BOOT_EBDA_END	 0x100000ULL
#define BOOT_KERNEL_MIN	 0x100000ULL /* kernel segments live at or above 1 MiB */

/* ---- cmdline.c ---------------------------------------------------------------- */
struct cmdline {
	char buf[BOOT_CMDLINE_MAX];
	size_t len;
};
void cmdline__init(struct cmdline *c);
/* Append one space-separated item; -E2BIG if it would not fit (c unchanged),
 * -EINVAL for control characters. */
int cmdline__add(struct cmdline *c, const char *item);

/* ---- boot.c: kernel loader ---------------------------------------------------- */
struct elf_info {
	uint64_t entry64;   /* e_entry: physical 64-bit entry (startup_64) */
	uint32_t pvh_entry; /* XEN_ELFNOTE_PHYS32_ENTRY, 0 if none */
	uint64_t lo, hi;    /* physical span of all PT_LOAD segments [lo, hi) */
};

/* Validate an ELF image in memory (every header, phdr and note bounded by len) and
 * describe it. Loads nothing. -ENOEXEC for anything malformed. */
int boot__elf_parse(const uint8_t *img, size_t len, struct elf_info *ret);
/* Copy the PT_LOAD segments into guest memory; segments must lie in
 * [BOOT_KERNEL_MIN, limit). */
/* @fd >= 0: the segments are read from that file (pread straight into guest RAM; of
 * @img, a mapping of it, only the headers are read), else copied from @img. */
int boot__elf_load(const struct vm_mem *m, const uint8_t *img, size_t len, int fd,
		   uint64_t limit);

struct boot_params_in {
	const char *cmdline;
	uint64_t initrd_gpa, initrd_size; /* size 0: none */
};
/* Guest structures for the PVH entry: hvm_start_info at BOOT_START_INFO. */
int boot__write_pvh(const struct vm_mem *m, const struct boot_params_in *in);
/* Guest structures for the 64-bit boot protocol: zero page, page tables, GDT. */
int boot__write_linux64(const struct vm_mem *m, const struct boot_params_in *in);
/* Initrd placement: top of low RAM, page aligned, above kernel_end. */
int boot__initrd_addr(const struct vm_mem *m, uint64_t size, uint64_t kernel_end,
		      uint64_t *ret_gpa);

#define PVH_START_MAGIC 0x336ec578U
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};
struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};
struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

/* ---- mptable.c ---------------------------------------------------------------- */
#define MPTABLE_IOAPIC_ADDR 0xfec00000U
#define MPTABLE_LAPIC_ADDR  0xfee00000U
/* Write floating pointer + configuration table for ncpus at gpa into buf (room for
 * cap bytes). Returns the bytes used or -E2BIG / -EINVAL. */
int mptable__build(uint8_t *buf, size_t cap, uint64_t gpa, unsigned ncpus);
size_t mptable__size(unsigned ncpus);

/* ---- cpuid.c ------------------------------------------------------------------ */
/* Normalize a copy of KVM_GET_SUPPORTED_CPUID for vCPU id of ncpus. */
void cpuid__filter(struct kvm_cpuid2 *c, uint32_t id, uint32_t ncpus);

/* ---- control.c ---------------------------------------------------------------- */
enum control_op {
	CONTROL_STATE,
	CONTROL_PAUSE,
	CONTROL_RESUME,
	CONTROL_STOP,
#ifdef NUCLEUS_SECCOMP_TEST_TRIGGER
	CONTROL_TEST_SIGSYS, /* test builds only: the event loop makes a forbidden call */
#endif
};
/* Parse one request line (without the newline). -EINVAL/-EPROTO on garbage. */
int control__parse(const char *line, size_t len, enum control_op *ret);
struct control;
int control__open(struct vm *vm, const char *path, struct control **ret);
void control__free(struct control *c);

/* ---- devices of the core ------------------------------------------------------ */
struct serial;
int serial__create(struct vm *vm, int out_fd, struct serial **ret);
void serial__flush(struct serial *s);
void serial__free(struct serial *s);
int i8042__create(struct vm *vm);
int status__create(struct vm *vm);

/* ---- struct vm (kvm.c, vcpu.c, evloop.c) -------------------------------------- */
#define VM_IO_MAX 64

struct vm_io_range {
	uint64_t base, len;
	const struct vm_io_ops *ops;
	void *opaque;
};

struct vm_seccomp;

struct vcpu {
	struct vm *vm;
	uint32_t id;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	atomic_bool parked;
	struct vm_seccomp *filter; /* built by vm__start(), loaded and freed by the thread */
};

/* The signal that kicks a vCPU out of KVM_RUN (vcpu.c; the filters allow only it). */
#define VM_KICK_SIGNAL SIGUSR1
/* Most fds one use may register with vm__seccomp_fd(). */
#define VM_SECCOMP_FDS_MAX 64

enum vm_state { VM_RUNNING, VM_PAUSED, VM_STOPPING };

struct ev_entry;

struct vm {
	int kvm_fd, vm_fd;
	struct vm_mem mem;
	uint32_t nr_vcpus;
	struct vcpu vcpus[VMM_MAX_VCPUS];
	struct kvm_cpuid2 *cpuid; /* supported, unfiltered */

	struct vm_io_range mmio[VM_IO_MAX], pio[VM_IO_MAX];
	unsigned nr_mmio, nr_pio;
	unsigned next_slot;
	bool started;
	struct cmdline cmdline;

	/* event loop */
	int epfd, wake_fd, sig_fd;
	pthread_mutex_t ev_lock;
	struct ev_entry *evs, *ev_dead;

	/* lifecycle */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_int state; /* enum vm_state */
	atomic_bool pause_req;
	atomic_int exit_status; /* -1 until the first stop request */
	atomic_bool shutdown_intent;
	atomic_llong boot_us; /* -1 until VM_STATUS_READY */
	uint64_t start_ns;
	atomic_uint unhandled_logs;

	/* seccomp.c: filters on (the default), the fds they allow per use, and the gate
	 * the vCPU threads wait at until every thread has loaded its filter (under lock) */
	bool seccomp;
	int sc_fds[VM_FD__N][VM_SECCOMP_FDS_MAX];
	unsigned nr_sc_fds[VM_FD__N];
	unsigned nr_armed; /* vCPU threads past their seccomp_load */
	int arm_err;	   /* the first vCPU thread's load error */
	bool go;	   /* vm__lockdown() done: the vCPUs may enter KVM_RUN */
};

uint64_t vm__now_ns(void);
int vm__create(struct vm **ret, uint64_t mem_bytes, uint32_t nr_vcpus);
/*
 * Why this machine's /dev/kvm cannot run a stock guest kernel, or NULL when it can
 * (as far as can be told without booting). Today: a PVM-only KVM (module kvm_pvm
 * loaded, neither kvm_intel nor kvm_amd), which runs only PVM-enabled guests.
 */
const char *vm__kvm_unsupported(void);
/* The same, looking for the modules under @sys_module (normally "/sys/module"). */
const char *vm__kvm_unsupported_at(const char *sys_module);
void vm__free(struct vm *vm);
/* Ask the VM to end with status (the first request wins). Any thread. */
void vm__request_stop(struct vm *vm, int status);
/* Reset from the guest (i8042 0xFE, triple fault): clean if intent was announced. */
void vm__guest_reset(struct vm *vm, const char *why);
void vm__io_dispatch(struct vm *vm, bool mmio, uint64_t addr, void *data, uint32_t len, bool write);
int vm__vcpus_setup(struct vm *vm, uint64_t entry, bool pvh);
int vm__start(struct vm *vm);
int vm__pause(struct vm *vm);
void vm__resume(struct vm *vm);
void vm__kick_all(struct vm *vm);
void vm__join(struct vm *vm);
/* Run the event loop until a stop was requested. */
int vm__ev_run(struct vm *vm);
/* The signalfd of the loop (SIGTERM, SIGINT, SIGCHLD), made before the loop's filter
 * would forbid it; vm__ev_run() makes it if nobody did. */
int vm__ev_signals(struct vm *vm);
int vm__ev_init(struct vm *vm);
void vm__ev_fini(struct vm *vm);

/* ---- trace.c: where a VM's life spends its time (--trace-boot) ------------------ */

/* The phases of one VM process, in the order they normally come. */
enum vm_phase {
	VM_PH_KVM,	 /* /dev/kvm opened, the VM and its irqchip made */
	VM_PH_MEMORY,	 /* guest RAM mapped and registered */
	VM_PH_DEVICES,	 /* console, i8042, status port, virtio devices */
	VM_PH_LOADED,	 /* kernel, initrd and boot structures in guest RAM */
	VM_PH_VCPUS,	 /* vCPUs created and set up */
	VM_PH_FIRST_RUN, /* the first KVM_RUN entered */
	VM_PH_READY,	 /* the guest wrote VM_STATUS_READY (its agent listens) */
	VM_PH_SHUTDOWN,	 /* the guest wrote VM_STATUS_SHUTDOWN */
	VM_PH_RESET,	 /* the guest reset */
	VM_PH_STOP,	 /* the first stop request (any cause) */
	VM_PH_JOINED,	 /* every vCPU thread joined */
	VM_PH_EXIT,	 /* torn down, about to exit */
	VM_PH__N
};

/* Process start: the origin of every phase's time (first thing in main). */
void vm__trace_begin(void);
/* Log each phase when first reached, so that a VM that hangs shows how far it came. */
void vm__trace_log(bool on);
/* Records @ph the first time it is reached (later calls keep the first). Any thread. */
void vm__phase(enum vm_phase ph);
/* {"phase": microseconds since process start, ...} for the phases reached (NULL: ENOMEM). */
json_t *vm__trace_json(void);
const char *vm__phase_name(enum vm_phase ph);

/* ---- seccomp.c: one system call allow-list per thread kind (docs/vmm.md) --------- */

/* The kinds of thread of nucleus-vmm, each with its own list. */
enum vm_thread { VM_THREAD_VCPU, VM_THREAD_LOOP };

/* What a list's argument filters compare against: fds fixed when it is installed. */
struct seccomp_fds {
	int vm_fd;
	int vcpu_fd;	  /* VM_THREAD_VCPU: its own vCPU */
	int epoll_fd;	  /* VM_THREAD_LOOP */
	const int *write; /* VM_THREAD_VCPU: the only fds it writes to */
	unsigned nr_write;
	const int *listen; /* VM_THREAD_LOOP: the listening sockets it accepts on */
	unsigned nr_listen;
};

/* Process-wide, before any thread exists: NO_NEW_PRIVS (when @filters), one malloc arena
 * and the lazily made state of libraries made now, so that no thread later needs a call
 * its list lacks (see seccomp.c). -errno. */
int seccomp__prepare(bool filters);
/* The allow-list of one thread kind, built (libseccomp) but not loaded. -errno. */
int seccomp__build(enum vm_thread kind, const struct seccomp_fds *fds, struct vm_seccomp **ret);
/* Load @f on the calling thread only (no TSYNC). -errno. */
int seccomp__load(struct vm_seccomp *f);
void seccomp__free(struct vm_seccomp *f);
/* A list's name in the VMM's log ("vcpu", "event loop"). */
const char *seccomp__thread_name(enum vm_thread kind);

/* vm__start(): every vCPU's filter, built on the main thread before the threads start. */
int vm__seccomp_vcpus(struct vm *vm);
/* After vm__start(): waits until every vCPU thread loaded its own filter, makes the
 * loop's signalfd, loads the event loop's filter on the calling (main) thread, then lets
 * the vCPUs enter KVM_RUN. With vm->seccomp off it only opens the gate. -errno. */
int vm__lockdown(struct vm *vm);

#ifdef NUCLEUS_SECCOMP_TEST_TRIGGER
/* nucleus-vmm-trigger ONLY (tests, never installed): the calling thread makes a system call
 * no list allows, so that tests see the VMM die of SIGSYS. */
void vm__seccomp_test_trigger(struct vm *vm, const char *thread);
#endif

#endif
