/* SPDX-License-Identifier: Apache-2.0 */
/*
 * seccomp.c - one system call allow-list per thread kind of nucleus-vmm (docs/vmm.md,
 * "Seccomp"), built with libseccomp. Any call not on a thread's list kills the whole
 * process with SIGSYS (SCMP_ACT_KILL_PROCESS), and so does a call of another ABI (i386
 * int 0x80, x32).
 *
 * Install order (each thread ends with exactly its own list: a filter is inherited by
 * the threads created after it is loaded, never by those that exist):
 *   1. main, before any thread: seccomp__prepare() (NO_NEW_PRIVS, one malloc arena,
 *      jansson's hash seed), then the whole set-up (devices, fds, control socket).
 *   2. vm__start(): the main thread builds each vCPU's list, then starts the vCPU
 *      threads; each loads its own (seccomp_load, no TSYNC: that thread only), frees
 *      the library's copy, reports, and waits at the gate.
 *   3. vm__lockdown() on the main thread: once every vCPU reported, it makes the loop's
 *      signalfd, loads the event loop's list on itself (the vCPU threads exist already,
 *      so they do not inherit it; no thread is created after this), and opens the gate.
 *   4. the vCPUs enter KVM_RUN for the first time.
 *
 * The lists hold what the code calls after the set-up, as glibc makes it (recv is
 * recvfrom, pthread_kill is getpid + tgkill + rt_sigprocmask, a lock is futex), and
 * what malloc needs (brk, mmap and mprotect without PROT_EXEC, munmap, madvise,
 * mremap). Lazily made state that would need a call outside the lists is made before
 * any filter exists:
 *   - glibc's per-thread malloc arenas open /proc/sys/vm/overcommit_memory the first
 *     time one shrinks: M_ARENA_MAX 1 keeps every thread on the main arena (brk);
 *   - jansson seeds its hash function from /dev/urandom at the first JSON object (the
 *     control socket's first request): json_object_seed() seeds it now.
 * For the same reason the log is one write() per line (kvm.c: no stdio, whose dprintf
 * also calls lseek and fstat) and vsock's spare fd is an eventfd, not /dev/null.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/kvm.h>
#include <malloc.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/core.h"

/* struct vm_seccomp is the libseccomp context itself. */
static scmp_filter_ctx ctx_of(struct vm_seccomp *f)
{
	return (scmp_filter_ctx)f;
}

int seccomp__prepare(bool filters)
{
	/* best effort: a sanitizer's allocator ignores it (and has no such arenas) */
	mallopt(M_ARENA_MAX, 1);
	json_object_seed(0);
	if (filters && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

const char *seccomp__thread_name(enum vm_thread kind)
{
	return kind == VM_THREAD_VCPU ? "vcpu" : "event loop";
}

/* ---- the lists ------------------------------------------------------------------- */

/* Both kinds: locks, the kick signal's handler, time, memory, exit. */
static const int both_plain[] = {
	SCMP_SYS(futex),	   /* mutexes, condition variables, pthread_join */
	SCMP_SYS(getpid),	   /* pthread_kill: tgkill's tgid */
	SCMP_SYS(gettid),	   /* pthread_kill of the calling thread */
	SCMP_SYS(rt_sigprocmask),  /* pthread_kill blocks signals around tgkill */
	SCMP_SYS(rt_sigreturn),	   /* return from the kick's handler (vCPU threads) */
	SCMP_SYS(restart_syscall), /* resumes an allowed call a signal interrupted */
	SCMP_SYS(clock_gettime),   /* where the vDSO falls back to the kernel */
	SCMP_SYS(brk),		   /* malloc */
	SCMP_SYS(munmap),	   /* free, thread stacks */
	SCMP_SYS(madvise),	   /* free, a thread's exit */
	SCMP_SYS(mremap),	   /* realloc of a mapped chunk */
	SCMP_SYS(exit),		   /* a vCPU thread's end */
	SCMP_SYS(exit_group),
};

/* The event loop: device and socket I/O on fds made at run time, teardown. */
static const int loop_plain[] = {
	SCMP_SYS(read),	     /* eventfds, the signalfd */
	SCMP_SYS(write),     /* eventfds, the log, the console's flush */
	SCMP_SYS(recvfrom),  /* recv(): control clients, vsock connections */
	SCMP_SYS(sendto),    /* send() */
	SCMP_SYS(recvmsg),   /* vsock: host -> guest */
	SCMP_SYS(sendmsg),   /* vsock: guest -> host */
	SCMP_SYS(connect),   /* vsock: a guest connects to <uds>_PORT */
	SCMP_SYS(shutdown),  /* vsock: the guest shut its side */
	SCMP_SYS(close),     /* everything the loop opened */
	SCMP_SYS(preadv),    /* virtio-blk */
	SCMP_SYS(pwritev),   /* virtio-blk */
	SCMP_SYS(fdatasync), /* virtio-blk flush */
	SCMP_SYS(eventfd2),  /* vsock: the spare fd, remade after shedding a connection */
	SCMP_SYS(unlink),    /* the control and vsock sockets go at exit */
};

/* A sanitized build: gcc says __SANITIZE_ADDRESS__, clang before 16 only __has_feature. */
#if defined(__SANITIZE_ADDRESS__)
#define VMM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VMM_SANITIZED 1
#endif
#endif

#ifdef VMM_SANITIZED
/* ASan builds only (build-asan: unit suites, no guest): the sanitizer runtime's own
 * calls, e.g. a thread's alternate signal stack removed when it ends. */
static const int sanitizer_plain[] = {
	SCMP_SYS(sigaltstack),
};
#endif

static int allow(scmp_filter_ctx ctx, int nr, unsigned n, const struct scmp_arg_cmp *cmp)
{
	return seccomp_rule_add_exact_array(ctx, SCMP_ACT_ALLOW, nr, n, cmp);
}

static int allow_list(scmp_filter_ctx ctx, const int *nrs, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++)
		r = allow(ctx, nrs[i], 0, NULL);
	return r;
}

/* ioctl(@fd, @req): both compared as the kernel reads them (int fd, unsigned int cmd). */
static int allow_ioctl(scmp_filter_ctx ctx, int fd, unsigned long req)
{
	const struct scmp_arg_cmp cmp[] = {
		SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)fd),
		SCMP_A1_32(SCMP_CMP_EQ, (uint32_t)req),
	};

	return allow(ctx, SCMP_SYS(ioctl), 2, cmp);
}

/* @nr with its first argument, an fd, one of @fds. */
static int allow_on_fds(scmp_filter_ctx ctx, int nr, const int *fds, unsigned n)
{
	int r = 0;

	for (unsigned i = 0; i < n && r == 0; i++) {
		const struct scmp_arg_cmp cmp = SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)fds[i]);

		r = allow(ctx, nr, 1, &cmp);
	}
	return r;
}

/* Both kinds: no new executable memory; signals only the kick, only to this process. */
static int allow_both(scmp_filter_ctx ctx)
{
	const struct scmp_arg_cmp no_exec = SCMP_A2_32(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	const struct scmp_arg_cmp kick[] = {
		SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)getpid()),
		SCMP_A2_32(SCMP_CMP_EQ, VM_KICK_SIGNAL),
	};
	int r;

	if ((r = allow_list(ctx, both_plain, sizeof(both_plain) / sizeof(both_plain[0]))) < 0 ||
	    (r = allow(ctx, SCMP_SYS(mmap), 1, &no_exec)) < 0 ||
	    (r = allow(ctx, SCMP_SYS(mprotect), 1, &no_exec)) < 0 ||
	    (r = allow(ctx, SCMP_SYS(tgkill), 2, kick)) < 0)
		return r;
#ifdef VMM_SANITIZED
	r = allow_list(ctx, sanitizer_plain, sizeof(sanitizer_plain) / sizeof(sanitizer_plain[0]));
#endif
	return r;
}

/*
 * A vCPU thread: KVM_RUN on its own vCPU (KVM_GET_REGS to log a KVM internal error),
 * the serial port's interrupt line on the VM, writes to the registered fds (console,
 * kick and irq eventfds, the stop eventfd, the log).
 */
static int allow_vcpu(scmp_filter_ctx ctx, const struct seccomp_fds *fds)
{
	int r;

	if ((r = allow_ioctl(ctx, fds->vcpu_fd, KVM_RUN)) < 0 ||
	    (r = allow_ioctl(ctx, fds->vcpu_fd, KVM_GET_REGS)) < 0 ||
	    (r = allow_ioctl(ctx, fds->vm_fd, KVM_IRQ_LINE)) < 0 ||
	    (r = allow_on_fds(ctx, SCMP_SYS(write), fds->write, fds->nr_write)) < 0)
		return r;
	return 0;
}

/*
 * The event loop: its epoll set, accept4 on its listening sockets, AF_UNIX sockets
 * only, and on the VM only the irqfd/ioeventfd requests its devices' teardown makes.
 */
static int allow_loop(scmp_filter_ctx ctx, const struct seccomp_fds *fds)
{
	const struct scmp_arg_cmp unix_only = SCMP_A0_32(SCMP_CMP_EQ, AF_UNIX);
	int r;

	if ((r = allow_list(ctx, loop_plain, sizeof(loop_plain) / sizeof(loop_plain[0]))) < 0 ||
	    (r = allow_on_fds(ctx, SCMP_SYS(epoll_wait), &fds->epoll_fd, 1)) < 0 ||
	    (r = allow_on_fds(ctx, SCMP_SYS(epoll_pwait), &fds->epoll_fd, 1)) < 0 ||
	    (r = allow_on_fds(ctx, SCMP_SYS(epoll_ctl), &fds->epoll_fd, 1)) < 0 ||
	    (r = allow_on_fds(ctx, SCMP_SYS(accept4), fds->listen, fds->nr_listen)) < 0 ||
	    (r = allow(ctx, SCMP_SYS(socket), 1, &unix_only)) < 0 ||
	    (r = allow_ioctl(ctx, fds->vm_fd, KVM_IRQFD)) < 0 ||
	    (r = allow_ioctl(ctx, fds->vm_fd, KVM_IOEVENTFD)) < 0)
		return r;
	return 0;
}

int seccomp__build(enum vm_thread kind, const struct seccomp_fds *fds, struct vm_seccomp **ret)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r;

	if (!ctx)
		return -ENOMEM;
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0 ||
	    (r = allow_both(ctx)) < 0)
		goto fail;
	r = kind == VM_THREAD_VCPU ? allow_vcpu(ctx, fds) : allow_loop(ctx, fds);
	if (r < 0)
		goto fail;
	*ret = (struct vm_seccomp *)ctx;
	return 0;
fail:
	seccomp_release(ctx);
	return r;
}

int seccomp__load(struct vm_seccomp *f)
{
	return seccomp_load(ctx_of(f));
}

void seccomp__free(struct vm_seccomp *f)
{
	if (f)
		seccomp_release(ctx_of(f));
}

/* ---- the VM's threads -------------------------------------------------------------- */

int vm__seccomp_fd(struct vm *vm, enum vm_fd_use use, int fd)
{
	if (vm->started)
		return -EBUSY;
	if (fd < 0 || (unsigned)use >= VM_FD__N)
		return -EINVAL;
	if (vm->nr_sc_fds[use] >= VM_SECCOMP_FDS_MAX)
		return -ENOSPC;
	vm->sc_fds[use][vm->nr_sc_fds[use]++] = fd;
	return 0;
}

int vm__seccomp_vcpus(struct vm *vm)
{
	int write[VM_SECCOMP_FDS_MAX + 2];
	unsigned n = 0;
	int r = 0;

	if (!vm->seccomp)
		return 0;
	/* every thread logs to stderr; any thread may ask the loop to stop (wake_fd) */
	write[n++] = STDERR_FILENO;
	write[n++] = vm->wake_fd;
	memcpy(write + n, vm->sc_fds[VM_FD_VCPU_WRITE],
	       vm->nr_sc_fds[VM_FD_VCPU_WRITE] * sizeof(write[0]));
	n += vm->nr_sc_fds[VM_FD_VCPU_WRITE];
	for (uint32_t i = 0; i < vm->nr_vcpus && r == 0; i++) {
		struct vcpu *v = &vm->vcpus[i];
		const struct seccomp_fds fds = {
			.vm_fd = vm->vm_fd,
			.vcpu_fd = v->fd,
			.epoll_fd = -1,
			.write = write,
			.nr_write = n,
		};

		r = seccomp__build(VM_THREAD_VCPU, &fds, &v->filter);
	}
	return r;
}

static int load_loop_filter(struct vm *vm)
{
	const struct seccomp_fds fds = {
		.vm_fd = vm->vm_fd,
		.vcpu_fd = -1,
		.epoll_fd = vm->epfd,
		.listen = vm->sc_fds[VM_FD_LISTEN],
		.nr_listen = vm->nr_sc_fds[VM_FD_LISTEN],
	};
	struct vm_seccomp *f = NULL;
	int r;

	if ((r = seccomp__build(VM_THREAD_LOOP, &fds, &f)) < 0)
		goto out;
	r = seccomp__load(f);
out:
	seccomp__free(f);
	return r;
}

int vm__lockdown(struct vm *vm)
{
	uint32_t started = 0;
	int r;

	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		started += vm->vcpus[i].started ? 1 : 0;
	pthread_mutex_lock(&vm->lock);
	while (vm->nr_armed < started && atomic_load(&vm->exit_status) == -1)
		pthread_cond_wait(&vm->cond, &vm->lock);
	r = atomic_load(&vm->exit_status) != -1 ? -ESHUTDOWN : vm->arm_err;
	pthread_mutex_unlock(&vm->lock);
	if (r < 0) {
		if (r != -ESHUTDOWN)
			vm__log(vm, "seccomp: a vcpu thread could not load its filter: %s",
				strerror(-r));
		return r;
	}
	if ((r = vm__ev_signals(vm)) < 0)
		return r;
	if (vm->seccomp && (r = load_loop_filter(vm)) < 0) {
		vm__log(vm, "seccomp: the event loop's filter: %s", strerror(-r));
		return r;
	}
	pthread_mutex_lock(&vm->lock);
	vm->go = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

#ifdef NUCLEUS_SECCOMP_TEST_TRIGGER
void vm__seccomp_test_trigger(struct vm *vm, const char *thread)
{
	int fd;

	vm__log(vm, "seccomp test trigger: the %s thread opens a file", thread);
	fd = openat(AT_FDCWD, "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
	vm__log(vm, "seccomp test trigger: the %s thread is still alive (filters off)", thread);
}
#endif
