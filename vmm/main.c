/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - nucleus-vmm: one microVM per process (docs/vmm.md).
 *
 *   nucleus-vmm --kernel VMLINUX [--initrd FILE] [--cmdline STR] [--mem MIB]
 *               [--vcpus N] [--disk PATH[,ro]]... [--vsock UDS_PATH] [--cid N]
 *               [--console off|stderr|FILE] [--control UDS_PATH] [--trace-boot]
 *               [--no-seccomp]
 *
 * Every thread runs under its own seccomp allow-list (vmm/seccomp.c) from before the
 * first KVM_RUN; --no-seccomp, for debugging only, runs them without.
 *
 * Exit status: enum vmm_exit (vmm/vmm.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/core.h"
#include "vmm/virtio.h"

#define MAX_DISKS  8
#define KERNEL_MAX (512ULL << 20)

struct opts {
	const char *kernel, *initrd, *cmdline, *vsock, *console, *control;
	const char *disks[MAX_DISKS];
	bool disk_ro[MAX_DISKS];
	unsigned nr_disks;
	uint64_t mem_mib;
	uint32_t vcpus;
	uint64_t cid;
	bool trace;	 /* --trace-boot */
	bool no_seccomp; /* --no-seccomp */
};

struct vmm {
	struct opts o;
	struct vm *vm;
	struct serial *serial;
	struct control *control;
	int console_fd;
	struct virtio_dev *devs[MAX_DISKS + 1];
	unsigned nr_devs;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: nucleus-vmm --kernel VMLINUX [--initrd FILE] [--cmdline STR]\n"
		   "         [--mem MIB (128)] [--vcpus N (1)] [--disk PATH[,ro]]...\n"
		   "         [--vsock UDS_PATH] [--cid N (3)] [--console off|stderr|FILE]\n"
		   "         [--control UDS_PATH] [--trace-boot] [--no-seccomp]\n");
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max || s[0] == '-')
		return false;
	*ret = v;
	return true;
}

static int parse_disk(struct opts *o, const char *arg)
{
	if (o->nr_disks >= MAX_DISKS)
		return -1;
	size_t n = strlen(arg);
	bool ro = n > 3 && strcmp(arg + n - 3, ",ro") == 0;
	char *path = strndup(arg, ro ? n - 3 : n);
	if (!path)
		return -1;
	o->disks[o->nr_disks] = path;
	o->disk_ro[o->nr_disks++] = ro;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	/* clang-format off */
	static const struct option lo[] = {
		{"kernel", required_argument, 0, 'k'},	{"initrd", required_argument, 0, 'i'},
		{"cmdline", required_argument, 0, 'c'}, {"mem", required_argument, 0, 'm'},
		{"vcpus", required_argument, 0, 'n'},	{"disk", required_argument, 0, 'd'},
		{"vsock", required_argument, 0, 'v'},	{"cid", required_argument, 0, 'C'},
		{"console", required_argument, 0, 'o'}, {"control", required_argument, 0, 's'},
		{"trace-boot", no_argument, 0, 't'},	{"help", no_argument, 0, 'h'},
		{"no-seccomp", no_argument, 0, 'S'},	{0, 0, 0, 0},
	};
	/* clang-format on */
	uint64_t v;
	int c;

	*o = (struct opts){.mem_mib = 128, .vcpus = 1, .cid = 3, .console = "off"};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'k':
			o->kernel = optarg;
			break;
		case 'i':
			o->initrd = optarg;
			break;
		case 'c':
			o->cmdline = optarg;
			break;
		case 'v':
			o->vsock = optarg;
			break;
		case 'o':
			o->console = optarg;
			break;
		case 's':
			o->control = optarg;
			break;
		case 'm':
			if (!parse_u64(optarg, 16, 65536, &o->mem_mib))
				return -1;
			break;
		case 'n':
			if (!parse_u64(optarg, 1, VMM_MAX_VCPUS, &v))
				return -1;
			o->vcpus = (uint32_t)v;
			break;
		case 'C':
			if (!parse_u64(optarg, 3, UINT32_MAX - 1, &o->cid))
				return -1;
			break;
		case 'd':
			if (parse_disk(o, optarg) < 0)
				return -1;
			break;
		case 't':
			o->trace = true;
			break;
		case 'S':
			o->no_seccomp = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind != argc || !o->kernel)
		return -1;
	return 0;
}

/* A regular file of 1..@max bytes, opened: its fd and size. */
static int open_file(const char *path, uint64_t max, int *ret_fd, size_t *ret_len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > max)
		r = -EFBIG;
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	*ret_len = (size_t)st.st_size;
	return 0;
}

/* @len bytes of @fd into @buf (guest RAM: the one copy). */
static int read_into(int fd, uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = read(fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (size_t)n;
	}
	return 0;
}

/*
 * The kernel image, mapped, for its headers; its PT_LOAD segments are then read from
 * @ret_fd straight into guest RAM (boot__elf_load): no symbol tables (about 40 % of a
 * vmlinux) are read, nothing is copied twice, and the file's pages are not faulted into
 * this process one by one (under nested emulation, each such fault is costly). A file
 * system that cannot map falls back to one read into the heap (then *ret_fd is -1).
 */
static int map_file(const char *path, uint64_t max, const uint8_t **ret, size_t *ret_len,
		    bool *ret_mapped, int *ret_fd)
{
	uint8_t *buf;
	size_t len;
	int fd, r = open_file(path, max, &fd, &len);

	*ret_fd = -1;
	if (r < 0)
		return r;
	buf = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	*ret_mapped = buf != MAP_FAILED;
	if (buf == MAP_FAILED) {
		buf = malloc(len);
		r = buf ? read_into(fd, buf, len) : -ENOMEM;
		if (r < 0) {
			free(buf);
			buf = NULL;
		}
	}
	if (r < 0 || !*ret_mapped)
		close(fd);
	else
		*ret_fd = fd;
	if (r < 0)
		return r;
	*ret = buf;
	*ret_len = len;
	return 0;
}

static void unmap_file(const uint8_t *buf, size_t len, bool mapped)
{
	if (mapped)
		munmap((void *)buf, len);
	else
		free((void *)buf);
}

/* Kernel, initrd, command line, MP table; returns the entry point. */
static int load_guest(struct vmm *m, uint64_t *ret_entry, bool *ret_pvh)
{
	struct vm *vm = m->vm;
	struct boot_params_in in = {.cmdline = vm->cmdline.buf};
	struct elf_info ei;
	const uint8_t *img = NULL;
	size_t len = 0, rdlen = 0;
	uint64_t limit = vm->mem.low_size;
	bool mapped = false;
	int r, rd = -1, kfd = -1;

	if ((r = map_file(m->o.kernel, KERNEL_MAX, &img, &len, &mapped, &kfd)) < 0) {
		vm__log(vm, "kernel %s: %s", m->o.kernel, strerror(-r));
		goto out;
	}
	if ((r = boot__elf_parse(img, len, &ei)) < 0) {
		vm__log(vm, "kernel %s: not a valid x86_64 vmlinux ELF", m->o.kernel);
		goto out;
	}
	if (m->o.initrd) {
		if ((r = open_file(m->o.initrd, vm->mem.low_size, &rd, &rdlen)) < 0 ||
		    (r = boot__initrd_addr(&vm->mem, rdlen, ei.hi, &in.initrd_gpa)) < 0 ||
		    (r = read_into(rd, mem__gpa(&vm->mem, in.initrd_gpa, rdlen), rdlen)) < 0) {
			vm__log(vm, "initrd %s: %s", m->o.initrd,
				r == -E2BIG ? "does not fit in guest RAM" : strerror(-r));
			goto out;
		}
		in.initrd_size = rdlen;
		limit = in.initrd_gpa;
	}
	if ((r = boot__elf_load(&vm->mem, img, len, kfd, limit)) < 0) {
		vm__log(vm, "kernel %s: %s", m->o.kernel,
			r == -ERANGE || r == -ENOEXEC ? "segments outside guest RAM"
						      : strerror(-r));
		goto out;
	}
	r = ei.pvh_entry ? boot__write_pvh(&vm->mem, &in) : boot__write_linux64(&vm->mem, &in);
	if (r < 0) {
		vm__log(vm, "boot structures: %s", strerror(-r));
		goto out;
	}
	r = mptable__build(mem__gpa(&vm->mem, BOOT_MPTABLE, 1024), 1024, BOOT_MPTABLE,
			   vm->nr_vcpus);
	if (r < 0)
		goto out;
	*ret_pvh = ei.pvh_entry != 0;
	*ret_entry = ei.pvh_entry ? ei.pvh_entry : ei.entry64;
	r = 0;
out:
	if (img)
		unmap_file(img, len, mapped);
	if (kfd >= 0)
		close(kfd);
	if (rd >= 0)
		close(rd);
	return r;
}

static int open_console(const char *spec)
{
	if (strcmp(spec, "off") == 0)
		return -1;
	if (strcmp(spec, "stderr") == 0)
		return dup(STDERR_FILENO);
	return open(spec, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
}

static int add_devices(struct vmm *m)
{
	int r;

	for (unsigned i = 0; i < m->o.nr_disks; i++) {
		r = virtio_blk__create(m->vm, m->o.disks[i], m->o.disk_ro[i], &m->devs[m->nr_devs]);
		if (r < 0) {
			vm__log(m->vm, "disk %s: %s", m->o.disks[i], strerror(-r));
			return r;
		}
		m->nr_devs++;
	}
	if (m->o.vsock) {
		r = virtio_vsock__create(m->vm, m->o.cid, m->o.vsock, &m->devs[m->nr_devs]);
		if (r < 0) {
			vm__log(m->vm, "vsock %s: %s", m->o.vsock, strerror(-r));
			return r;
		}
		m->nr_devs++;
	}
	return 0;
}

static int setup(struct vmm *m)
{
	struct vm *vm;
	uint64_t entry = 0;
	bool pvh = false;
	int r;

	const char *why = vm__kvm_unsupported();
	if (why) {
		fprintf(stderr, "nucleus-vmm: cannot create the VM: %s\n", why);
		return -ENOTSUP;
	}
	if ((r = vm__create(&m->vm, m->o.mem_mib << 20, m->o.vcpus)) < 0) {
		fprintf(stderr, "nucleus-vmm: cannot create the VM: %s\n", strerror(-r));
		return r;
	}
	vm = m->vm;
	vm->seccomp = !m->o.no_seccomp;
	if (strcmp(m->o.console, "off") != 0) {
		m->console_fd = open_console(m->o.console);
		if (m->console_fd < 0) {
			r = -errno;
			vm__log(vm, "console %s: %s", m->o.console, strerror(errno));
			return r;
		}
		cmdline__add(&vm->cmdline, "console=ttyS0");
	}
	if ((r = cmdline__add(&vm->cmdline, "reboot=k panic=-1 quiet")) < 0 ||
	    (r = serial__create(vm, m->console_fd, &m->serial)) < 0 ||
	    (r = i8042__create(vm)) < 0 || (r = status__create(vm)) < 0 || (r = add_devices(m)) < 0)
		goto fail;
	vm__phase(VM_PH_DEVICES);
	if (m->o.cmdline && (r = cmdline__add(&vm->cmdline, m->o.cmdline)) < 0) {
		vm__log(vm, "kernel command line too long or invalid");
		goto fail;
	}
	if ((r = load_guest(m, &entry, &pvh)) < 0)
		return r;
	vm__phase(VM_PH_LOADED);
	if ((r = vm__vcpus_setup(vm, entry, pvh)) < 0) {
		vm__log(vm, "vcpu setup: %s", strerror(-r));
		return r;
	}
	vm__phase(VM_PH_VCPUS);
	if (m->o.control && (r = control__open(vm, m->o.control, &m->control)) < 0) {
		vm__log(vm, "control socket %s: %s", m->o.control, strerror(-r));
		return r;
	}
	return 0;
fail:
	vm__log(vm, "device setup: %s", strerror(-r));
	return r;
}

static void teardown(struct vmm *m)
{
	control__free(m->control);
	for (unsigned i = m->nr_devs; i-- > 0;)
		virtio_dev__free(m->devs[i]);
	serial__free(m->serial);
	vm__free(m->vm);
	if (m->console_fd >= 0)
		close(m->console_fd);
	for (unsigned i = 0; i < m->o.nr_disks; i++)
		free((char *)m->o.disks[i]);
}

/* The phases reached, as one JSON line in the log. */
static void trace_report(void)
{
	json_t *j = vm__trace_json();
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	vm__log(NULL, "boot trace %s", text ? text : "(out of memory)");
	free(text);
	json_decref(j);
}

/* Teardown, then the trace's last phase and, with --trace-boot, the whole trace. */
static int finish(struct vmm *m, int status)
{
	bool trace = m->o.trace;

	teardown(m);
	vm__phase(VM_PH_EXIT);
	if (trace)
		trace_report();
	return status;
}

int main(int argc, char **argv)
{
	struct vmm m = {.console_fd = -1};
	sigset_t set;
	int status, r;

	vm__trace_begin();
	if (parse_args(argc, argv, &m.o) < 0) {
		usage(stderr);
		teardown(&m);
		return VMM_EXIT_SETUP;
	}
	/* Signals for the signalfd stay blocked in every thread; vCPU threads inherit. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	vm__trace_log(m.o.trace);
#ifdef NUCLEUS_SECCOMP_TEST_TRIGGER
	vm__log(NULL, "built with the seccomp test trigger (nucleus-vmm-trigger): "
		      "for tests only");
#endif
	if (m.o.no_seccomp)
		vm__log(NULL, "seccomp: off (--no-seccomp): the threads run without filters");
	/* Before any thread exists: see vmm/seccomp.c for the install order. */
	if ((r = seccomp__prepare(!m.o.no_seccomp)) < 0) {
		vm__log(NULL, "seccomp: %s", strerror(-r));
		return finish(&m, VMM_EXIT_SETUP);
	}

	if (setup(&m) < 0 || vm__start(m.vm) < 0 || vm__lockdown(m.vm) < 0) {
		if (m.vm) {
			vm__request_stop(m.vm, VMM_EXIT_SETUP);
			vm__join(m.vm);
			vm__phase(VM_PH_JOINED);
		}
		return finish(&m, VMM_EXIT_SETUP);
	}
	r = vm__ev_run(m.vm);
	if (r < 0) {
		vm__log(m.vm, "event loop: %s", strerror(-r));
		vm__request_stop(m.vm, VMM_EXIT_SETUP);
	}
	vm__kick_all(m.vm);
	vm__join(m.vm);
	vm__phase(VM_PH_JOINED);
	status = atomic_load(&m.vm->exit_status);
	vm__log(m.vm, "exit status %d (%s)", status, vmm__exit_name(status));
	return finish(&m, status);
}
