/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seccomp allow-lists of nucleus-vmm's threads (vmm/seccomp.c), without KVM. A child
 * process installs them in the VMM's order (a vCPU-like thread loads its own list and
 * waits at a gate, then the main thread loads the event loop's) and makes the calls each
 * thread makes: they work (ioctls on /dev/null reach the kernel and fail with ENOTTY), the
 * vCPU-like thread ends through glibc's thread exit, and every thread carries exactly one
 * filter. Then one child per forbidden call, of each list: it dies of SIGSYS.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/core.h"

/* In the child: a failed check says where on stderr (allowed in both lists) and exits 3. */
#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			child_fail(__LINE__, #c);                                                  \
	} while (0)

static void child_fail(int line, const char *what)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "test-seccomp.c:%d: child: %s (errno %d)\n", line, what,
			 errno);

	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0) {
		/* nothing else to do */
	}
	_exit(3);
}

/* The fds a child's lists name, and those they do not. */
struct fds {
	int vm_fd, vcpu_fd, other_fd; /* /dev/null: any KVM ioctl gets ENOTTY */
	int efd, epfd, other_epfd, lfd, filefd;
	char sock[108], file[108];
};

static volatile sig_atomic_t kicks;

static void on_kick(int sig)
{
	kicks++;
}

static void child_setup(struct fds *f, const char *dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct sigaction act = {.sa_handler = on_kick};
	sigset_t set;

	CHECK(seccomp__prepare(true) == 0);
	/* like main.c: the kick signal is blocked but in the vCPU threads, no SA_RESTART */
	sigemptyset(&act.sa_mask);
	CHECK(sigaction(VM_KICK_SIGNAL, &act, NULL) == 0);
	sigemptyset(&set);
	sigaddset(&set, VM_KICK_SIGNAL);
	CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);
	CHECK((f->vm_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0);
	CHECK((f->vcpu_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0);
	CHECK((f->other_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0);
	CHECK((f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) >= 0);
	CHECK((f->epfd = epoll_create1(EPOLL_CLOEXEC)) >= 0);
	CHECK((f->other_epfd = epoll_create1(EPOLL_CLOEXEC)) >= 0);
	snprintf(f->sock, sizeof(f->sock), "%s/control.sock", dir);
	snprintf(f->file, sizeof(f->file), "%s/disk.img", dir);
	CHECK((f->filefd = open(f->file, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) >= 0);
	strcpy(sa.sun_path, f->sock);
	CHECK((f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) >= 0);
	CHECK(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(f->lfd, 8) == 0);
}

static struct vm_seccomp *child_filter(enum vm_thread kind, const struct fds *f)
{
	static int write_fds[2];
	struct seccomp_fds sf = {
		.vm_fd = f->vm_fd,
		.vcpu_fd = f->vcpu_fd,
		.epoll_fd = f->epfd,
		.write = write_fds,
		.nr_write = 2,
		.listen = &f->lfd,
		.nr_listen = 1,
	};
	struct vm_seccomp *flt = NULL;

	write_fds[0] = STDERR_FILENO;
	write_fds[1] = f->efd;
	CHECK(seccomp__build(kind, &sf, &flt) == 0);
	return flt;
}

/* ---- the allowed calls, in the VMM's order ----------------------------------------- */

struct gate {
	const struct fds *f;
	struct vm_seccomp *filter;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool armed, open;
};

/* What a vCPU thread does after its start: KVM_RUN, the serial IRQ, kicks and logs. */
static void vcpu_calls(const struct fds *f)
{
	struct kvm_regs regs;
	struct kvm_irq_level irq = {.irq = 4, .level = 1};
	struct timespec ts;
	uint64_t one = 1;
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	char *p;

	CHECK(ioctl(f->vcpu_fd, KVM_RUN, 0) < 0 && errno == ENOTTY);
	CHECK(ioctl(f->vcpu_fd, KVM_GET_REGS, &regs) < 0 && errno == ENOTTY);
	CHECK(ioctl(f->vm_fd, KVM_IRQ_LINE, &irq) < 0 && errno == ENOTTY);
	CHECK(write(f->efd, &one, sizeof(one)) == sizeof(one));
	CHECK(write(STDERR_FILENO, "", 0) == 0);
	CHECK(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) == 0);
	CHECK(getpid() > 0 && syscall(SYS_gettid) > 0);
	pthread_mutex_lock(&m);
	pthread_mutex_unlock(&m);
	free(malloc(100));
	CHECK((p = malloc(4 << 20)) != NULL); /* mmap'd */
	memset(p, 1, 4 << 20);
	CHECK((p = realloc(p, 8 << 20)) != NULL); /* mremap */
	free(p);
	/* a vCPU that asks to stop kicks every vCPU, itself included */
	kicks = 0;
	CHECK(pthread_kill(pthread_self(), VM_KICK_SIGNAL) == 0);
	CHECK(kicks == 1);
}

static void *vcpu_thread(void *arg)
{
	struct gate *g = arg;
	sigset_t set;
	int r;

	sigemptyset(&set);
	sigaddset(&set, VM_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	r = seccomp__load(g->filter);
	pthread_mutex_lock(&g->lock);
	g->armed = true;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	CHECK(r == 0);
	vcpu_calls(g->f);
	return NULL; /* glibc's thread exit, under the filter */
}

/* What the event loop does: epoll, sockets, the disk, eventfds, JSON, teardown. */
static void loop_calls(const struct fds *f)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct epoll_event ev = {.events = EPOLLIN}, evs[4];
	struct kvm_irqfd irqfd = {.fd = (uint32_t)f->efd, .gsi = 5};
	struct kvm_ioeventfd ioev = {.addr = 0xd0000050, .len = 4, .fd = f->efd};
	char buf[16] = "", data[512] = "sector";
	struct iovec iov = {.iov_base = buf, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct iovec dv = {.iov_base = data, .iov_len = sizeof(data)};
	uint64_t cnt;
	json_t *j;
	char *s;
	int c, a, e;

	CHECK(epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->efd, &ev) == 0);
	CHECK(epoll_wait(f->epfd, evs, 4, 0) >= 0);
	CHECK(read(f->efd, &cnt, sizeof(cnt)) == sizeof(cnt) || errno == EAGAIN);
	CHECK(epoll_ctl(f->epfd, EPOLL_CTL_DEL, f->efd, NULL) == 0);
	/* vsock: a guest connects to a host port; the control socket accepts */
	strcpy(sa.sun_path, f->sock);
	CHECK((c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) >= 0);
	CHECK(connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK((a = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0);
	CHECK(send(c, "x", 1, MSG_NOSIGNAL) == 1);
	CHECK(recv(a, buf, 1, MSG_DONTWAIT) == 1);
	iov.iov_base = "y";
	CHECK(sendmsg(c, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == 1);
	iov.iov_base = buf;
	CHECK(recvmsg(a, &msg, MSG_DONTWAIT) == 1 && buf[0] == 'y');
	CHECK(shutdown(c, SHUT_WR) == 0);
	CHECK(close(c) == 0 && close(a) == 0);
	/* virtio-blk */
	CHECK(pwritev(f->filefd, &dv, 1, 4096) == sizeof(data));
	CHECK(preadv(f->filefd, &dv, 1, 4096) == sizeof(data));
	CHECK(fdatasync(f->filefd) == 0);
	/* vsock's spare fd; the teardown's irqfd and ioeventfd removal */
	CHECK((e = eventfd(0, EFD_CLOEXEC)) >= 0 && close(e) == 0);
	CHECK(ioctl(f->vm_fd, KVM_IRQFD, &irqfd) < 0 && errno == ENOTTY);
	CHECK(ioctl(f->vm_fd, KVM_IOEVENTFD, &ioev) < 0 && errno == ENOTTY);
	/* control replies and the boot trace */
	CHECK((j = json_pack("{s:b, s:s, s:I}", "ok", 1, "state", "running", "boot_us",
			     (json_int_t)123)) != NULL);
	CHECK((s = json_dumps(j, JSON_COMPACT)) != NULL);
	json_decref(j);
	CHECK((j = json_loads(s, 0, NULL)) != NULL);
	json_decref(j);
	free(s);
	/* exit: the sockets' files go */
	CHECK(unlink(f->sock) == 0);
}

static void child_allowed(const char *dir, int report, int go)
{
	struct fds f;
	struct gate g = {.f = &f};
	struct vm_seccomp *loop;
	pthread_t t;
	void *ret;
	char b;

	child_setup(&f, dir);
	g.filter = child_filter(VM_THREAD_VCPU, &f);
	pthread_mutex_init(&g.lock, NULL);
	pthread_cond_init(&g.cond, NULL);
	CHECK(pthread_create(&t, NULL, vcpu_thread, &g) == 0);
	pthread_mutex_lock(&g.lock);
	while (!g.armed)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	/* the vCPU thread exists: it does not inherit the loop's filter */
	loop = child_filter(VM_THREAD_LOOP, &f);
	CHECK(seccomp__load(loop) == 0);
	seccomp__free(loop);
	/* the parent reads every thread's /proc status now */
	CHECK(write(report, "r", 1) == 1);
	CHECK(read(go, &b, 1) == 1);
	/* a kick while the vCPU waits (in futex), then the gate opens */
	CHECK(pthread_kill(t, VM_KICK_SIGNAL) == 0);
	pthread_mutex_lock(&g.lock);
	g.open = true;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	loop_calls(&f);
	CHECK(pthread_join(t, &ret) == 0 && ret == NULL);
	seccomp__free(g.filter);
	free(malloc(1 << 20));
	_exit(0); /* exit_group; no atexit handlers (the sanitizers' would need more) */
}

/* "Seccomp:\t2" and the like, from a /proc status file. */
static long status_field(const char *path, const char *name)
{
	char line[256];
	long v = -1;
	FILE *f = fopen(path, "r");

	cr_assert_not_null(f, "%s", path);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ':')
			v = strtol(line + strlen(name) + 1, NULL, 10);
	fclose(f);
	return v;
}

static char dir[64];

static void mkdir_tmp(void)
{
	strcpy(dir, "/tmp/nucleus-seccomp-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/control.sock", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/disk.img", dir);
	unlink(p);
	rmdir(dir);
}

TestSuite(seccomp, .init = mkdir_tmp, .fini = rm_tmp, .timeout = 60);

Test(seccomp, each_thread_makes_its_calls_under_exactly_its_own_list)
{
	int report[2], go[2], st, tasks = 0;
	char task_dir[64], path[512], b;
	struct dirent *de;
	pid_t pid;
	DIR *d;

	cr_assert_eq(pipe(report), 0);
	cr_assert_eq(pipe(go), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(report[0]);
		close(go[1]);
		child_allowed(dir, report[1], go[0]);
	}
	close(report[1]);
	close(go[0]);
	if (read(report[0], &b, 1) == 1) {
		snprintf(task_dir, sizeof(task_dir), "/proc/%d/task", (int)pid);
		d = opendir(task_dir);
		cr_assert_not_null(d);
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/status", task_dir, de->d_name);
			cr_expect_eq(status_field(path, "Seccomp"), 2, "%s: filter mode", path);
			cr_expect_eq(status_field(path, "NoNewPrivs"), 1, "%s", path);
			/* absent before Linux 5.9 (-1) */
			long n = status_field(path, "Seccomp_filters");
			cr_expect(n == 1 || n == -1, "%s: %ld filters, want exactly its own", path,
				  n);
			tasks++;
		}
		closedir(d);
		cr_expect_eq(tasks, 2, "the main thread and the vCPU-like thread");
		cr_assert_eq(write(go[1], "g", 1), 1);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	close(report[0]);
	close(go[1]);
	cr_assert(WIFEXITED(st), "the child died of signal %d (%s): an allowed call was refused",
		  WTERMSIG(st), strsignal(WTERMSIG(st)));
	cr_assert_eq(WEXITSTATUS(st), 0, "a check failed in the child (see its stderr)");
}

/* ---- forbidden calls ------------------------------------------------------------------ */

enum forbidden {
	F_OPEN,	     /* open a file */
	F_EXEC,	     /* run a program */
	F_FORK,	     /* clone */
	F_EXEC_MMAP, /* new executable memory */
	F_EXEC_MPROTECT,
	F_KILL,		     /* a signal other than the kick, or to another process */
	F_VCPU_SET_REGS,     /* vCPU: a KVM request it never makes */
	F_VCPU_RUN_OTHER,    /* vCPU: KVM_RUN on an fd not its own */
	F_VCPU_WRITE_OTHER,  /* vCPU: write() to an fd not registered */
	F_VCPU_SOCKET,	     /* vCPU: no sockets */
	F_VCPU_READ,	     /* vCPU: no reads */
	F_LOOP_INET,	     /* loop: sockets are AF_UNIX only */
	F_LOOP_KVM_RUN,	     /* loop: no KVM_RUN, not even on the VM fd */
	F_LOOP_IRQ_LINE,     /* loop: only the irqfd/ioeventfd requests */
	F_LOOP_ACCEPT_OTHER, /* loop: accept4 on its listening sockets only */
	F_LOOP_EPOLL_OTHER,  /* loop: its own epoll set only */
	F_TRIGGER,	     /* the test trigger (test builds only) */
};

struct forbidden_case {
	enum vm_thread kind;
	enum forbidden what;
	char name[48];
};

static void forbidden_call(const struct fds *f, enum forbidden what)
{
	struct kvm_regs regs = {0};
	struct kvm_irq_level irq = {0};
	struct epoll_event ev;
	uint64_t cnt;
	char *argv[] = {"/bin/true", NULL};

	switch (what) {
	case F_OPEN:
		open("/etc/hostname", O_RDONLY | O_CLOEXEC);
		break;
	case F_EXEC:
		execve(argv[0], argv, NULL);
		break;
	case F_FORK:
		if (fork() == 0)
			_exit(0);
		break;
	case F_EXEC_MMAP:
		mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		break;
	case F_EXEC_MPROTECT: {
		void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		mprotect(p, 4096, PROT_READ | PROT_EXEC);
		break;
	}
	case F_KILL:
		syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGTERM);
		break;
	case F_VCPU_SET_REGS:
		ioctl(f->vcpu_fd, KVM_SET_REGS, &regs);
		break;
	case F_VCPU_RUN_OTHER:
		ioctl(f->other_fd, KVM_RUN, 0);
		break;
	case F_VCPU_WRITE_OTHER:
		if (write(f->other_fd, "x", 1) < 0)
			break;
		break;
	case F_VCPU_SOCKET:
		socket(AF_UNIX, SOCK_STREAM, 0);
		break;
	case F_VCPU_READ:
		if (read(f->efd, &cnt, sizeof(cnt)) < 0)
			break;
		break;
	case F_LOOP_INET:
		socket(AF_INET, SOCK_STREAM, 0);
		break;
	case F_LOOP_KVM_RUN:
		ioctl(f->vm_fd, KVM_RUN, 0);
		break;
	case F_LOOP_IRQ_LINE:
		ioctl(f->vm_fd, KVM_IRQ_LINE, &irq);
		break;
	case F_LOOP_ACCEPT_OTHER:
		accept4(f->other_fd, NULL, NULL, SOCK_CLOEXEC);
		break;
	case F_LOOP_EPOLL_OTHER:
		epoll_wait(f->other_epfd, &ev, 1, 0);
		break;
	case F_TRIGGER:
#ifdef NUCLEUS_SECCOMP_TEST_TRIGGER
		vm__seccomp_test_trigger(NULL, seccomp__thread_name(VM_THREAD_VCPU));
#endif
		break;
	}
}

ParameterizedTestParameters(seccomp, a_forbidden_call_kills_the_process_with_sigsys)
{
	static struct forbidden_case cases[] = {
		{VM_THREAD_VCPU, F_OPEN, "vcpu: openat"},
		{VM_THREAD_VCPU, F_EXEC, "vcpu: execve"},
		{VM_THREAD_VCPU, F_FORK, "vcpu: clone"},
		{VM_THREAD_VCPU, F_EXEC_MMAP, "vcpu: mmap PROT_EXEC"},
		{VM_THREAD_VCPU, F_EXEC_MPROTECT, "vcpu: mprotect PROT_EXEC"},
		{VM_THREAD_VCPU, F_KILL, "vcpu: tgkill SIGTERM"},
		{VM_THREAD_VCPU, F_VCPU_SET_REGS, "vcpu: KVM_SET_REGS"},
		{VM_THREAD_VCPU, F_VCPU_RUN_OTHER, "vcpu: KVM_RUN on another fd"},
		{VM_THREAD_VCPU, F_VCPU_WRITE_OTHER, "vcpu: write to another fd"},
		{VM_THREAD_VCPU, F_VCPU_SOCKET, "vcpu: socket"},
		{VM_THREAD_VCPU, F_VCPU_READ, "vcpu: read"},
		{VM_THREAD_LOOP, F_OPEN, "loop: openat"},
		{VM_THREAD_LOOP, F_EXEC, "loop: execve"},
		{VM_THREAD_LOOP, F_FORK, "loop: clone"},
		{VM_THREAD_LOOP, F_EXEC_MMAP, "loop: mmap PROT_EXEC"},
		{VM_THREAD_LOOP, F_EXEC_MPROTECT, "loop: mprotect PROT_EXEC"},
		{VM_THREAD_LOOP, F_KILL, "loop: tgkill SIGTERM"},
		{VM_THREAD_LOOP, F_LOOP_INET, "loop: AF_INET socket"},
		{VM_THREAD_LOOP, F_LOOP_KVM_RUN, "loop: KVM_RUN"},
		{VM_THREAD_LOOP, F_LOOP_IRQ_LINE, "loop: KVM_IRQ_LINE"},
		{VM_THREAD_LOOP, F_LOOP_ACCEPT_OTHER, "loop: accept4 on another fd"},
		{VM_THREAD_LOOP, F_LOOP_EPOLL_OTHER, "loop: epoll_wait on another epoll"},
#ifdef NUCLEUS_SECCOMP_TEST_TRIGGER
		{VM_THREAD_VCPU, F_TRIGGER, "vcpu: the test trigger"},
		{VM_THREAD_LOOP, F_TRIGGER, "loop: the test trigger"},
#endif
	};

	return cr_make_param_array(struct forbidden_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct forbidden_case *c, seccomp, a_forbidden_call_kills_the_process_with_sigsys)
{
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct fds f;
		struct vm_seccomp *flt;

		child_setup(&f, dir);
		flt = child_filter(c->kind, &f);
		CHECK(seccomp__load(flt) == 0);
		forbidden_call(&f, c->what);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
		  "%s: the child %s %d, want killed by SIGSYS", c->name,
		  WIFSIGNALED(st) ? "was killed by signal" : "exited with",
		  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

/* The control op of the trigger exists only in test builds; a release refuses it. */
Test(seccomp, the_test_trigger_op_exists_only_in_test_builds)
{
	static const char req[] = "{\"op\":\"test-sigsys\"}";
	enum control_op op;
	int r = control__parse(req, strlen(req), &op);

#ifdef NUCLEUS_SECCOMP_TEST_TRIGGER
	cr_expect_eq(r, 0);
	cr_expect_eq(op, CONTROL_TEST_SIGSYS);
#else
	cr_expect_eq(r, -EPROTO, "the release library knows no such op");
#endif
}
