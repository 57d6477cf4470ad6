/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmm-bench - boot time and memory overhead of nucleus-vmm, next to QEMU microvm.
 * Not a test: run it where KVM works (bench/vmm/run.sh puts it in the nested harness).
 *
 *   vmm-bench --vmm PATH --kernel VMLINUX --initrd INITRAMFS [--runs N (5)]
 *             [--qemu PATH] [--json OUT] [--cycle-initrd INITRAMFS]
 *             [--cycle-kernel VMLINUX] [--jailer PATH] [--stage on|off (off)]
 *             [--qemu-trace on|off (off)] [--initcalls N (0)]
 *             [--boots N (0)] [--boot-timeout S (60)]
 *
 * Per run, nucleus-vmm (128 MiB, 1 vCPU, console to a file, "quiet"):
 *   boot_timer_us  VMM start -> the agent's READY write (the VMM's own boot timer)
 *   first_reply_us fork of the VMM -> first agent reply over vsock (measured here)
 *   console_us     fork of the VMM -> nucleus-init's "ready:" console line
 *   overhead_kib   Rss of every mapping in /proc/PID/smaps except guest RAM, taken
 *                  at agent ready
 *   life_us        fork -> agent ready -> SHUTDOWN over vsock -> the VMM reaped
 *   phases         the VMM's boot trace of that run (--trace-boot, docs/vmm.md)
 * QEMU -M microvm with the same kernel, initramfs and command line, same run:
 *   qemu_ready_us   fork -> the READY byte, caught by an isa-debugcon device on the
 *                   status port (needs a guest kernel with ioperm(), else -1)
 *   qemu_console_us fork -> the same "ready:" console line
 * With --cycle-initrd (tests/vm's nt initramfs: init prints, announces a shutdown and
 * resets), both VMMs boot it with nt=shutdown and exit on the reset (reboot=t: a triple
 * fault, which QEMU microvm, without an i8042 reset line, also takes as a reset):
 *   cycle_us, qemu_cycle_us  fork -> exit, the whole life cycle (nucleus-vmm runs it
 *                   with --trace-boot: its phases are kept as cycle_phases_us)
 * With --cycle-kernel too (a tinyconfig-class kernel, guest/kernel/tiny.config), the same
 * cycle of both VMMs again on that kernel, same run:
 *   tiny_cycle_us, qemu_tiny_cycle_us (and tiny_cycle_phases_us)
 * A cycle that does not end within WAIT_S, or ends with another status than 0, counts
 * as failed (cycle_failures in the JSON).
 * With --jailer (vmm/jailer.c, as the daemon uses it; run as root), the same VMM boot
 * again in its jail, same run:
 *   jail_first_reply_us, jail_overhead_kib  (their ratio and difference to the plain
 *                   run's are the jail's cost: targets 5 % of boot and 256 KiB)
 *   jail_setup_us   the jail's own time: (first reply - the VMM's boot timer) jailed,
 *                   less the same plain; the guest's boot, which varies most under
 *                   emulation, is in neither (both are the VMM's start to READY)
 * And always, the same VMM boot with --no-seccomp (no filter on any thread):
 *   nosec_first_reply_us, nosec_overhead_kib  (the plain run's ratio and difference to
 *                   them: seccomp's cost), nosec_first_run_us (from its vCPUs made to
 *                   its first KVM_RUN, the span in which the filters are installed)
 * With --stage on, the kernels and initramfs files are first copied into the run's
 * directory under /tmp and every VMM boots those copies: in the nested harness the
 * originals are read through 9p, whose cost (up to a second per boot, varying from run
 * to run) otherwise lands in every figure of both VMMs ("staged" in the JSON).
 * Prints a table of medians and ratios and writes JSON.
 *
 * Never inside the timed boots above, each of these adds boots of its own:
 * --qemu-trace on: per run and cycle kernel, one more QEMU cycle with QEMU's trace
 *   ("log" backend, -msg timestamp=on) of a few KVM events, for QEMU's phases next to
 *   nucleus-vmm's (qemu_cycle_phases_us, qemu_tiny_cycle_phases_us): guest RAM
 *   registered, vCPU created, runstate running, first KVM_RUN, the guest's reset
 *   (KVM_EXIT_SHUTDOWN), vCPUs stopped (runstate shutdown), fork -> exit of that traced
 *   boot and its KVM exit count. QEMU's are since the fork, nucleus-vmm's since its main.
 * --initcalls N (at most 9): after the runs, N cycles of each VMM in turn on each cycle
 *   kernel with initcall_debug, ignore_loglevel and printk.time=1, console to a file;
 *   medians of the guest kernel's time to "Run /init", of the sum of its initcalls and of
 *   each initcall, the ten costliest side by side (named from the vmlinux's symbol table
 *   when the kernel, without KALLSYMS, printed an address; "initcalls" in the JSON). The
 *   console output itself (every initcall is two lines) slows these boots down.
 * --boots N: last, N cycles of nucleus-vmm in a row on each cycle kernel (the cycle's
 *   command with the console to a file), each killed if it has not exited within
 *   --boot-timeout s: clean / hung / failed counts, median and max fork -> exit, and for
 *   every boot that did not end cleanly its exit status, last boot-trace phase and the
 *   tails of its log and console ("boots" in the JSON).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <linux/kvm.h>

#include "guest/guest.h"
#include "vmm/core.h"
#include "vmm/vmm.h"

#define MAX_RUNS  50
#define MAX_BOOTS 1000
#define WAIT_S	  180
#define GUEST_MIB 128

struct opts {
	const char *vmm, *kernel, *initrd, *qemu, *json, *cycle_initrd;
	const char *cycle_kernel; /* also the cycle on this kernel (tiny.config) */
	bool stage;		  /* boot copies of the files made in the run's directory */
	const char *jailer;	  /* also each run in the jail the daemon uses (vmm/jailer.c) */
	bool qemu_trace;	  /* also a traced QEMU cycle per run and kernel: QEMU's phases */
	int initcalls;		  /* also initcall_debug cycles of each VMM per kernel: how many */
	int runs;
	int boots, boot_timeout_s; /* nucleus-vmm cycles in a row per kernel, each's limit */
};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The wall clock: QEMU stamps its trace with gettimeofday(). */
static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static pid_t spawn(const char *const *argv, const char *log)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	return pid;
}

/* @pid's exit status (128 + N: killed by signal N), or -1 when it has not exited within
 * @timeout_s (then it is killed). */
static int reap(pid_t pid, int timeout_s)
{
	int st;
	int64_t stop = now_us() + (int64_t)timeout_s * 1000000;

	for (;;) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (now_us() >= stop)
			break;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* Rss (KiB) of all mappings except the guest RAM mapping (anonymous, GUEST_MIB). */
static long overhead_kib(pid_t pid)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long total = 0, size = 0;
	bool anon = false, skip_seen = false;
	while (fgets(line, sizeof(line), f)) {
		long v;
		unsigned long a, b;
		if (sscanf(line, "%lx-%lx ", &a, &b) == 2) {
			/* a mapping header: "start-end perms offset dev inode [path]" */
			char name[256] = "";
			sscanf(line, "%*s %*s %*s %*s %*s %255s", name);
			anon = name[0] == '\0';
			continue;
		}
		if (sscanf(line, "Size: %ld kB", &v) == 1) {
			size = v;
			continue;
		}
		if (sscanf(line, "Rss: %ld kB", &v) == 1) {
			if (anon && size == GUEST_MIB * 1024 && !skip_seen) {
				skip_seen = true; /* guest RAM */
				continue;
			}
			total += v;
		}
	}
	fclose(f);
	return skip_seen ? total : -1;
}

/* QEMU's phases (--qemu-trace): when its trace first showed each, us since the fork;
 * QPH_EXIT is that traced boot's fork -> exit, QPH_EXITS its count of KVM exits. */
enum {
	QPH_MEMORY,    /* kvm_set_user_memory: the first slot, guest RAM */
	QPH_VCPUS,     /* kvm_init_vcpu */
	QPH_RUNNING,   /* runstate_set ... (running): vm_start, the vCPUs released */
	QPH_FIRST_RUN, /* kvm_vcpu_ioctl of type KVM_RUN */
	QPH_RESET,     /* kvm_run_exit of reason KVM_EXIT_SHUTDOWN: the guest's triple fault */
	QPH_STOPPED,   /* runstate_set ... (shutdown): every vCPU paused, at QEMU's cleanup */
	QPH_EXIT,
	QPH_EXITS,
	QPH__N
};
static const char *const qph_name[QPH__N] = {"memory", "vcpus",	  "running", "first_run",
					     "reset",  "stopped", "exit",    "kvm_exits"};

struct sample {
	int64_t boot_timer_us, first_reply_us, console_us, qemu_ready_us, qemu_console_us;
	int64_t life_us, cycle_us, qemu_cycle_us;
	int64_t tiny_cycle_us, qemu_tiny_cycle_us; /* the cycle on --cycle-kernel */
	int64_t cycle_status[4];		   /* CYC_* below: exit status, -1 hung */
	int64_t cycle_phase_us[VM_PH__N];	   /* nucleus-vmm's trace of its cycle */
	int64_t tiny_cycle_phase_us[VM_PH__N];	   /* ... and of its tiny-kernel cycle */
	int64_t qemu_phase_us[QPH__N], qemu_tiny_phase_us[QPH__N]; /* --qemu-trace */
	int64_t jail_first_reply_us, jail_overhead_kib;		   /* the same run in its jail */
	int64_t jail_boot_timer_us; /* ... and its VMM's boot timer */
	int64_t nosec_first_reply_us, nosec_overhead_kib, nosec_first_run_us; /* no seccomp */
	int64_t phase_us[VM_PH__N]; /* the agent run's boot trace; -1: not reached */
	long overhead_kib;
};

/* The "boot trace {...}" line of a nucleus-vmm log into @ph (-1 where absent). */
static void read_trace(const char *log, int64_t ph[VM_PH__N])
{
	char buf[65536];
	int fd = open(log, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	const char *line;
	json_t *t;

	if (fd >= 0)
		close(fd);
	for (int i = 0; i < VM_PH__N; i++)
		ph[i] = -1;
	if (n <= 0)
		return;
	buf[n] = '\0';
	line = strstr(buf, "boot trace {");
	t = line ? json_loads(line + strlen("boot trace "), JSON_DISABLE_EOF_CHECK, NULL) : NULL;
	for (int i = 0; t && i < VM_PH__N; i++) {
		json_t *v = json_object_get(t, vm__phase_name((enum vm_phase)i));

		if (json_is_integer(v))
			ph[i] = json_integer_value(v);
	}
	json_decref(t);
}

#define READY_LINE "ready: agent listening"

static bool file_has(const char *path, const char *needle)
{
	char buf[65536];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
}

/*
 * The VMM in its jail as the daemon makes it (docs/vmm.md "The jail"): nucleus-jailer
 * forks it as PID 1 of its namespaces and writes its pid; this process, a child
 * subreaper, then is its parent. The jail sees @dir as /run/vm.
 */
static pid_t spawn_jailed(const struct opts *o, const char *dir, const char *log)
{
	char root[128], b[4][160], num[32] = "";
	int p[2];
	pid_t j;

	snprintf(root, sizeof(root), "%s/root", dir);
	mkdir(root, 0700);
	if (chown(dir, 200999, 200999) < 0 || pipe(p) < 0)
		return -1;
	snprintf(b[0], sizeof(b[0]), "%s:/nucleus-vmm", o->vmm);
	snprintf(b[1], sizeof(b[1]), "%s:/kernel", o->kernel);
	snprintf(b[2], sizeof(b[2]), "%s:/initrd", o->initrd);
	snprintf(b[3], sizeof(b[3]), "%s:/run/vm:rw", dir);
	const char *argv[] = {o->jailer,
			      "--root",
			      root,
			      "--pid-fd",
			      "3",
			      "--uid",
			      "200999",
			      "--gid",
			      "200999",
			      "--bind",
			      b[0],
			      "--bind",
			      b[1],
			      "--bind",
			      b[2],
			      "--bind",
			      b[3],
			      "--dev",
			      "/dev/kvm:/dev/kvm",
			      "--",
			      "/nucleus-vmm",
			      "--kernel",
			      "/kernel",
			      "--initrd",
			      "/initrd",
			      "--mem",
			      "128",
			      "--vcpus",
			      "1",
			      "--vsock",
			      "/run/vm/vsock",
			      "--control",
			      "/run/vm/control",
			      "--console",
			      "/run/vm/console",
			      "--trace-boot",
			      NULL};
	j = fork();
	if (j == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		dup2(p[1], 3);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(p[1]);
	if (j > 0 && read(p[0], num, sizeof(num) - 1) < 0)
		num[0] = '\0';
	close(p[0]);
	if (j > 0)
		waitpid(j, NULL, 0);
	return j > 0 && atoi(num) > 0 ? (pid_t)atoi(num) : -1;
}

/* The agent boot's three kinds: plain (seccomp on), in its jail, without seccomp. */
enum run_kind { RUN_PLAIN, RUN_JAILED, RUN_NO_SECCOMP };

static int run_nucleus(const struct opts *o, const char *dir, struct sample *s, enum run_kind kind)
{
	bool jailed = kind == RUN_JAILED;
	char vsock[128], ctl[128], log[128], con[128];
	snprintf(con, sizeof(con), "%s/console", dir);
	unlink(con);
	snprintf(vsock, sizeof(vsock), "%s/vsock", dir);
	snprintf(ctl, sizeof(ctl), "%s/control", dir);
	snprintf(log, sizeof(log), "%s/vmm.log", dir);
	const char *argv[] = {o->vmm,
			      "--kernel",
			      o->kernel,
			      "--initrd",
			      o->initrd,
			      "--mem",
			      "128",
			      "--vcpus",
			      "1",
			      "--vsock",
			      vsock,
			      "--control",
			      ctl,
			      "--console",
			      con,
			      "--trace-boot",
			      kind == RUN_NO_SECCOMP ? "--no-seccomp" : NULL,
			      NULL};
	struct guest *g = NULL;
	struct sample js, *dst = s;
	int64_t t0 = now_us();
	pid_t pid = jailed ? spawn_jailed(o, dir, log) : spawn(argv, log);

	if (kind != RUN_PLAIN) { /* only the comparable figures of such a run are kept */
		memset(&js, 0xff, sizeof(js));
		s = &js;
	}
	if (pid <= 0)
		return -1;
	if (guest__open_vsock(vsock, GUEST_AGENT_PORT, &g) < 0)
		return -1;
	guest__set_timeouts(g, 10000, 60000);
	s->first_reply_us = -1;
	s->console_us = -1;
	while (now_us() - t0 < (int64_t)WAIT_S * 1000000) {
		uint32_t v;
		if (s->console_us < 0 && file_has(con, READY_LINE))
			s->console_us = now_us() - t0;
		if (guest__ping(g, &v) == 0) {
			s->first_reply_us = now_us() - t0;
			break;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		usleep(1000);
	}
	s->overhead_kib = overhead_kib(pid);
	for (int i = 0; s->console_us < 0 && s->first_reply_us >= 0 && i < 10000; i++) {
		if (file_has(con, READY_LINE))
			s->console_us = now_us() - t0;
		usleep(1000);
	}
	struct vmm_control_reply r;
	s->boot_timer_us = vmm__control(ctl, "state", &r) == 0 ? r.boot_us : -1;
	if (s->first_reply_us >= 0)
		guest__shutdown(g);
	guest__close(g);
	if (reap(pid, 60) < 0 || s->first_reply_us < 0) {
		kill(pid, SIGKILL);
		return -1;
	}
	s->life_us = now_us() - t0;
	read_trace(log, s->phase_us);
	if (jailed) {
		dst->jail_first_reply_us = s->first_reply_us;
		dst->jail_overhead_kib = s->overhead_kib;
		dst->jail_boot_timer_us = s->boot_timer_us;
	} else if (kind == RUN_NO_SECCOMP) {
		dst->nosec_first_reply_us = s->first_reply_us;
		dst->nosec_overhead_kib = s->overhead_kib;
		if (s->phase_us[VM_PH_FIRST_RUN] >= 0 && s->phase_us[VM_PH_VCPUS] >= 0)
			dst->nosec_first_run_us =
				s->phase_us[VM_PH_FIRST_RUN] - s->phase_us[VM_PH_VCPUS];
	}
	return 0;
}

/* The last @size - 1 bytes (at most) of file @path into @buf, NUL-terminated, without
 * carriage returns; other bytes than printable ASCII, newline and tab become '?' (so the
 * text fits a JSON string). */
static void read_tail(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = 0, k = 0;

	if (fd >= 0) {
		off_t end = lseek(fd, 0, SEEK_END), want = (off_t)size - 1;

		lseek(fd, end > want ? end - want : 0, SEEK_SET);
		n = read(fd, buf, size - 1);
		close(fd);
	}
	for (ssize_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c != '\r')
			buf[k++] =
				(c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f ? '?' : (char)c;
	}
	buf[k] = '\0';
}

/* Why a VMM did not get ready: the end of its log on stderr. */
static void dump_tail(const char *path)
{
	char buf[1024];

	read_tail(path, buf, sizeof(buf));
	if (buf[0])
		fprintf(stderr, "--- %s ---\n%s\n", path, buf);
}

#define QEMU_ARGV_MAX 40

/* QEMU microvm as nucleus-vmm runs (128 MiB, 1 vCPU, no reboot) with @kernel, @initrd,
 * @append and the NULL-terminated @extra (may be NULL), into @argv (QEMU_ARGV_MAX). */
static void qemu_argv(const struct opts *o, const char *kernel, const char *initrd,
		      const char *append, const char *const *extra, const char **argv)
{
	const char *base[] = {o->qemu,	    "-M",	  "microvm",	 "-enable-kvm",
			      "-cpu",	    "host",	  "-m",		 "128",
			      "-smp",	    "1",	  "-nodefaults", "-no-user-config",
			      "-nographic", "-no-reboot", "-kernel",	 kernel,
			      "-initrd",    initrd,	  "-append",	 append};
	size_t n = 0;

	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
		argv[n++] = base[i];
	for (size_t i = 0; extra && extra[i] && n + 1 < QEMU_ARGV_MAX; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
}

static int run_qemu(const struct opts *o, const char *dir, struct sample *s)
{
	char status[128], chardev[160], log[128], con[128], serial[160];
	snprintf(con, sizeof(con), "%s/qemu-console", dir);
	snprintf(serial, sizeof(serial), "file:%s", con);
	unlink(con);
	snprintf(status, sizeof(status), "%s/qemu-status", dir);
	snprintf(chardev, sizeof(chardev), "file,id=st,path=%s", status);
	snprintf(log, sizeof(log), "%s/qemu.log", dir);
	unlink(status);
	const char *extra[] = {"-serial", serial,    "-chardev",
			       chardev,	  "-device", "isa-debugcon,iobase=0x440,chardev=st",
			       NULL};
	const char *argv[QEMU_ARGV_MAX];

	qemu_argv(o, o->kernel, o->initrd, "console=ttyS0 reboot=k panic=-1 quiet", extra, argv);
	int64_t t0 = now_us();
	pid_t pid = spawn(argv, log);
	s->qemu_ready_us = -1;
	s->qemu_console_us = -1;
	/* the console line comes after the READY write; give the byte 2 s more */
	int64_t stop = t0 + (int64_t)WAIT_S * 1000000;
	while (now_us() < stop) {
		struct stat sb;
		if (s->qemu_ready_us < 0 && stat(status, &sb) == 0 && sb.st_size > 0)
			s->qemu_ready_us = now_us() - t0;
		if (s->qemu_console_us < 0 && file_has(con, READY_LINE)) {
			s->qemu_console_us = now_us() - t0;
			if (s->qemu_ready_us < 0 && stop > now_us() + 2000000)
				stop = now_us() + 2000000;
		}
		if (s->qemu_ready_us >= 0 && s->qemu_console_us >= 0)
			break;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			dump_tail(log);
			return -1;
		}
		usleep(1000);
	}
	kill(pid, SIGTERM);
	reap(pid, 30);
	if (s->qemu_console_us < 0 && s->qemu_ready_us < 0)
		dump_tail(log);
	return s->qemu_console_us < 0 && s->qemu_ready_us < 0 ? -1 : 0;
}

/* Index of a cycle in sample.cycle_status and in the failure counts. */
enum { CYC_NUCLEUS, CYC_QEMU, CYC_NUCLEUS_TINY, CYC_QEMU_TINY, CYC__N };
static const char *const cycle_name[CYC__N] = {"nucleus", "qemu", "nucleus_tiny", "qemu_tiny"};

/* The cycle's kernel command line: nucleus-vmm's (added to its own "reboot=k panic=-1
 * quiet") and QEMU's; --initcalls adds IC_CMDLINE to both. */
#define NUC_CYCLE_CMDLINE "nt=shutdown reboot=t"
#define QEMU_CYCLE_APPEND "reboot=t panic=-1 quiet nt=shutdown"
#define IC_CMDLINE	  " initcall_debug ignore_loglevel printk.time=1"
#define CYCLE_ARGV_MAX	  16

/* nucleus-vmm's cycle on @kernel with kernel command line @cmdline and the console to
 * @console ("off": none) into @argv (CYCLE_ARGV_MAX). */
static void nucleus_cycle_argv(const struct opts *o, const char *kernel, const char *cmdline,
			       const char *console, const char **argv)
{
	const char *a[] = {
		o->vmm,	 "--kernel",	 kernel, "--initrd",  o->cycle_initrd, "--mem",
		"128",	 "--vcpus",	 "1",	 "--cmdline", cmdline,	       "--console",
		console, "--trace-boot", NULL};

	_Static_assert(sizeof(a) / sizeof(a[0]) <= CYCLE_ARGV_MAX, "CYCLE_ARGV_MAX");
	memcpy(argv, a, sizeof(a));
}

/* Runs @argv (its output into @log) until it exits, for at most @timeout_s (then it is
 * killed). Its exit status (-1: hung and killed) into @status, the wall clock at the fork
 * into @wall0 (may be NULL). Returns fork -> exit (us). */
static int64_t run_to_exit(const char *const *argv, const char *log, int timeout_s, int64_t *status,
			   int64_t *wall0)
{
	int64_t w = wall_us(), t0 = now_us();
	pid_t pid = spawn(argv, log);
	int st = pid > 0 ? reap(pid, timeout_s) : 127;

	*status = st;
	if (wall0)
		*wall0 = w;
	return now_us() - t0;
}

/* fork -> exit of one boot of the cycle initramfs (nt=shutdown); -1 on a bad exit or a
 * hang (no exit within WAIT_S: killed). Its exit status (-1: hung) into @status, the wall
 * clock at the fork into @wall0 (may be NULL). */
static int64_t cycle(const char *const *argv, const char *log, int64_t *status, int64_t *wall0)
{
	int64_t t = run_to_exit(argv, log, WAIT_S, status, wall0);

	if (*status != 0) {
		fprintf(stderr, "cycle %s: %s\n", argv[0],
			*status < 0 ? "hung (killed)" : "ended with a non-zero status");
		dump_tail(log);
	}
	return *status == 0 ? t : -1;
}

/* Whether a trace event (@ev, its arguments @args) is the one that marks QEMU phase @k. */
static bool qemu_event_is(int k, const char *ev, const char *args)
{
	const char *to = strstr(args, "new_state ");
	unsigned int type;
	int reason;

	switch (k) {
	case QPH_MEMORY:
		return !strcmp(ev, "kvm_set_user_memory");
	case QPH_VCPUS:
		return !strcmp(ev, "kvm_init_vcpu");
	case QPH_RUNNING:
		return !strcmp(ev, "runstate_set") && to && strstr(to, "(running)");
	case QPH_FIRST_RUN:
		return !strcmp(ev, "kvm_vcpu_ioctl") &&
		       sscanf(args, "cpu_index %*d, type %x", &type) == 1 && type == KVM_RUN;
	case QPH_RESET:
		return !strcmp(ev, "kvm_run_exit") &&
		       sscanf(args, "cpu_index %*d, reason %d", &reason) == 1 &&
		       reason == KVM_EXIT_SHUTDOWN;
	case QPH_STOPPED:
		return !strcmp(ev, "runstate_set") && to && strstr(to, "(shutdown)");
	}
	return false;
}

/* QEMU's trace file @path ("PID@SEC.USEC:EVENT ARGS" lines, the wall clock) into @q: the
 * first time of each QPH_* event since @wall0 and the count of KVM exits. */
static void read_qemu_trace(const char *path, int64_t wall0, int64_t q[QPH__N])
{
	char line[512], ev[64];
	long long sec, usec;
	int at;
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	q[QPH_EXITS] = 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*d@%lld.%lld:%63s %n", &sec, &usec, ev, &at) != 3)
			continue;
		q[QPH_EXITS] += !strcmp(ev, "kvm_run_exit");
		for (int k = 0; k < QPH_EXIT; k++)
			if (q[k] < 0 && qemu_event_is(k, ev, line + at))
				q[k] = sec * 1000000 + usec - wall0;
	}
	fclose(f);
}

/* One more QEMU cycle on @kernel, traced: its phases into @q (-1 where unknown). Not a
 * timed boot: every KVM_RUN and exit is a line of the trace file (~1800 in a cycle). */
static void qemu_traced_cycle(const struct opts *o, const char *dir, const char *kernel,
			      int64_t q[QPH__N])
{
	char log[128], trace[128], file[144];
	const char *extra[] = {"-trace", "enable=kvm_set_user_memory",
			       "-trace", "enable=kvm_init_vcpu",
			       "-trace", "enable=runstate_set",
			       "-trace", "enable=kvm_vcpu_ioctl",
			       "-trace", "enable=kvm_run_exit",
			       "-trace", file,
			       "-msg",	 "timestamp=on",
			       NULL};
	const char *argv[QEMU_ARGV_MAX];
	int64_t st, wall0, t;

	for (int k = 0; k < QPH__N; k++)
		q[k] = -1;
	snprintf(log, sizeof(log), "%s/qemu-traced.log", dir);
	snprintf(trace, sizeof(trace), "%s/qemu-trace", dir);
	snprintf(file, sizeof(file), "file=%s", trace);
	unlink(trace);
	qemu_argv(o, kernel, o->cycle_initrd, QEMU_CYCLE_APPEND, extra, argv);
	t = cycle(argv, log, &st, &wall0);
	if (t < 0)
		return;
	read_qemu_trace(trace, wall0, q);
	q[QPH_EXIT] = t;
}

/* The cycle of both VMMs on the project kernel or (@tiny) the --cycle-kernel: times,
 * nucleus-vmm's trace, exit statuses and, with --qemu-trace, QEMU's phases into @s. */
static void run_cycle_on(const struct opts *o, const char *dir, bool tiny, struct sample *s)
{
	const char *kernel = tiny ? o->cycle_kernel : o->kernel;
	int nuc = tiny ? CYC_NUCLEUS_TINY : CYC_NUCLEUS;
	char log[128], qlog[128];
	const char *vmm[CYCLE_ARGV_MAX], *qemu[QEMU_ARGV_MAX];
	int64_t *us = tiny ? &s->tiny_cycle_us : &s->cycle_us;

	nucleus_cycle_argv(o, kernel, NUC_CYCLE_CMDLINE, "off", vmm);
	qemu_argv(o, kernel, o->cycle_initrd, QEMU_CYCLE_APPEND, NULL, qemu);
	snprintf(log, sizeof(log), "%s/cycle-%s.log", dir, cycle_name[nuc]);
	snprintf(qlog, sizeof(qlog), "%s/cycle-%s.log", dir, cycle_name[nuc + 1]);
	*us = cycle(vmm, log, &s->cycle_status[nuc], NULL);
	read_trace(log, tiny ? s->tiny_cycle_phase_us : s->cycle_phase_us);
	if (access(o->qemu, X_OK) != 0)
		return;
	*(tiny ? &s->qemu_tiny_cycle_us : &s->qemu_cycle_us) =
		cycle(qemu, qlog, &s->cycle_status[nuc + 1], NULL);
	if (o->qemu_trace)
		qemu_traced_cycle(o, dir, kernel, tiny ? s->qemu_tiny_phase_us : s->qemu_phase_us);
}

static void run_cycles(const struct opts *o, const char *dir, struct sample *s)
{
	run_cycle_on(o, dir, false, s);
	if (o->cycle_kernel)
		run_cycle_on(o, dir, true, s);
}

/* Runs whose cycle @c ran and failed (hung or a non-zero status). */
static int cycle_failures(const struct sample *s, int n, int c)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		k += s[i].cycle_status[c] != 0 && s[i].cycle_status[c] != -2;
	return k;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Median of @v[0..k), sorted in place; -1 when k is 0. */
static int64_t median_of(int64_t *v, int k)
{
	if (k == 0)
		return -1;
	qsort(v, (size_t)k, sizeof(v[0]), cmp64);
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

/* Median of the non-negative values; -1 when none. */
static int64_t median(const struct sample *s, int n, size_t field)
{
	int64_t v[MAX_RUNS];
	int k = 0;
	for (int i = 0; i < n; i++) {
		int64_t x = *(const int64_t *)((const char *)&s[i] + field);
		if (x >= 0)
			v[k++] = x;
	}
	return median_of(v, k);
}

/* --initcalls N: what each initcall of the guest kernel took in N boots of each VMM
 * (column 0: nucleus-vmm, 1: QEMU), by the function as the kernel named it; medians. */
#define IC_MAX	     1024
#define IC_TOP	     10
#define IC_BOOTS_MAX 9

struct initcall {
	char fn[64];		     /* its symbol; the kernel prints an address without KALLSYMS */
	int64_t us[2][IC_BOOTS_MAX]; /* per boot; -1: not seen */
	int64_t med[2];		     /* their median */
};

/* Per VMM and boot: fork -> exit of the boot, the kernel's printk time of "Run /init as
 * init process", the sum and the number of its initcalls. */
enum { IC_BOOT, IC_INIT, IC_SUM, IC_COUNT, IC__N };

struct initcalls {
	struct initcall v[IC_MAX];
	int n, boots;
	int64_t per[2][IC__N][IC_BOOTS_MAX]; /* -1: unknown */
	int64_t med[2][IC__N];
};

/* Median of the non-negative values of @v[0..n) (n <= IC_BOOTS_MAX); -1 when none. */
static int64_t median_known(const int64_t *v, int n)
{
	int64_t w[IC_BOOTS_MAX];
	int k = 0;

	for (int i = 0; i < n; i++)
		if (v[i] >= 0)
			w[k++] = v[i];
	return median_of(w, k);
}

/* The initcall_debug lines ("initcall FN returned R after N usecs") of the console @path,
 * boot @r of VMM @c, into @ic. */
static void read_initcalls(const char *path, int c, int r, struct initcalls *ic)
{
	char line[512], fn[64];
	long long us, sec, frac;
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	ic->per[c][IC_SUM][r] = ic->per[c][IC_COUNT][r] = 0;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "initcall ");
		struct initcall *e = NULL;

		if (strstr(line, "Run /init as init process") &&
		    sscanf(line, "[%lld.%lld]", &sec, &frac) == 2)
			ic->per[c][IC_INIT][r] = sec * 1000000 + frac;
		if (!p || sscanf(p, "initcall %63s returned %*d after %lld usecs", fn, &us) != 2)
			continue;
		fn[strcspn(fn, "+")] = '\0'; /* "name+0x0/0x1c" with KALLSYMS */
		for (int i = 0; i < ic->n && !e; i++)
			if (!strcmp(ic->v[i].fn, fn))
				e = &ic->v[i];
		if (!e && ic->n < IC_MAX) {
			e = &ic->v[ic->n++];
			snprintf(e->fn, sizeof(e->fn), "%s", fn);
			memset(e->us, 0xff, sizeof(e->us)); /* all -1 */
		}
		if (e)
			e->us[c][r] = (e->us[c][r] > 0 ? e->us[c][r] : 0) + us;
		ic->per[c][IC_SUM][r] += us;
		ic->per[c][IC_COUNT][r]++;
	}
	fclose(f);
}

/* Both VMMs' median time of an initcall, the costliest first. */
static int cmp_initcall(const void *a, const void *b)
{
	const struct initcall *x = a, *y = b;
	int64_t tx = (x->med[0] > 0 ? x->med[0] : 0) + (x->med[1] > 0 ? x->med[1] : 0);
	int64_t ty = (y->med[0] > 0 ? y->med[0] : 0) + (y->med[1] > 0 ? y->med[1] : 0);

	return tx > ty ? -1 : tx < ty;
}

/* Names the initcalls @v[0..n) the kernel printed as an address ("0xffffffff81..."): the
 * function symbol at that address in @vmlinux's symbol table. */
static void name_initcalls(const char *vmlinux, struct initcall *v, int n)
{
	int fd = open(vmlinux, O_RDONLY);
	struct stat sb;
	const unsigned char *m;
	const Elf64_Ehdr *eh;
	const Elf64_Shdr *sh;
	size_t size;

	if (fd < 0)
		return;
	m = fstat(fd, &sb) == 0 && sb.st_size >= (off_t)sizeof(Elf64_Ehdr)
		    ? mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0)
		    : MAP_FAILED;
	close(fd);
	if (m == MAP_FAILED)
		return;
	size = (size_t)sb.st_size;
	eh = (const Elf64_Ehdr *)m;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff > size ||
	    eh->e_shnum > (size - eh->e_shoff) / sizeof(Elf64_Shdr))
		goto out;
	sh = (const Elf64_Shdr *)(m + eh->e_shoff);
	for (int i = 0; i < eh->e_shnum; i++) {
		const Elf64_Shdr *str;
		const Elf64_Sym *sym;

		if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum ||
		    sh[i].sh_offset > size || sh[i].sh_size > size - sh[i].sh_offset)
			continue;
		str = &sh[sh[i].sh_link];
		sym = (const Elf64_Sym *)(m + sh[i].sh_offset);
		if (str->sh_offset > size || str->sh_size > size - str->sh_offset)
			continue;
		for (size_t j = 0; j < sh[i].sh_size / sizeof(*sym); j++) {
			const char *name = (const char *)m + str->sh_offset + sym[j].st_name;

			if (ELF64_ST_TYPE(sym[j].st_info) != STT_FUNC ||
			    sym[j].st_name >= str->sh_size)
				continue;
			for (int k = 0; k < n; k++)
				if (!strncmp(v[k].fn, "0x", 2) &&
				    strtoull(v[k].fn, NULL, 16) == sym[j].st_value)
					snprintf(v[k].fn, sizeof(v[k].fn), "%.*s",
						 (int)strnlen(name, str->sh_size - sym[j].st_name),
						 name);
		}
	}
out:
	munmap((void *)m, size);
}

/* --initcalls N: N cycles of each VMM (in turn) on the project kernel or (@tiny) the
 * --cycle-kernel with initcall_debug and the console to a file, into @ic (the costliest
 * initcalls first). */
static void run_initcalls(const struct opts *o, const char *dir, bool tiny, struct initcalls *ic)
{
	const char *kernel = tiny ? o->cycle_kernel : o->kernel;
	char con[2][128], log[2][128], serial[160];
	const char *argv[2][QEMU_ARGV_MAX], *extra[] = {"-serial", serial, NULL};
	int64_t st;

	memset(ic, 0, sizeof(*ic));
	memset(ic->per, 0xff, sizeof(ic->per)); /* all -1 */
	ic->boots = o->initcalls;
	for (int c = 0; c < 2; c++) {
		snprintf(con[c], sizeof(con[c]), "%s/initcalls-%d.console", dir, c);
		snprintf(log[c], sizeof(log[c]), "%s/initcalls-%d.log", dir, c);
	}
	snprintf(serial, sizeof(serial), "file:%s", con[1]);
	nucleus_cycle_argv(o, kernel, NUC_CYCLE_CMDLINE IC_CMDLINE, con[0], argv[0]);
	qemu_argv(o, kernel, o->cycle_initrd, "console=ttyS0 " QEMU_CYCLE_APPEND IC_CMDLINE, extra,
		  argv[1]);
	for (int r = 0; r < ic->boots; r++)
		for (int c = 0; c < 2 && (c == 0 || access(o->qemu, X_OK) == 0); c++) {
			unlink(con[c]);
			ic->per[c][IC_BOOT][r] = cycle(argv[c], log[c], &st, NULL);
			read_initcalls(con[c], c, r, ic);
		}
	for (int c = 0; c < 2; c++) {
		for (int k = 0; k < IC__N; k++)
			ic->med[c][k] = median_known(ic->per[c][k], ic->boots);
		for (int i = 0; i < ic->n; i++)
			ic->v[i].med[c] = median_known(ic->v[i].us[c], ic->boots);
	}
	qsort(ic->v, (size_t)ic->n, sizeof(ic->v[0]), cmp_initcall);
	name_initcalls(kernel, ic->v, ic->n < IC_TOP ? ic->n : IC_TOP);
}

static void print_initcalls(const char *what, const struct initcalls *ic)
{
	static const char *const rows[IC__N] = {"  the boot: fork..exit",
						"  kernel: start..Run /init (printk time)",
						"  sum of all initcalls", "  number of initcalls"};
	char row[64];

	snprintf(row, sizeof(row), "%s, %d boots (us)", what, ic->boots);
	printf("%-44s %14s %14s\n", row, "nucleus-vmm", "qemu");
	for (int k = 0; k < IC__N; k++)
		printf("%-44s %14lld %14lld\n", rows[k], (long long)ic->med[0][k],
		       (long long)ic->med[1][k]);
	for (int i = 0; i < ic->n && i < IC_TOP; i++) {
		snprintf(row, sizeof(row), "  %s", ic->v[i].fn);
		printf("%-44s %14lld %14lld\n", row, (long long)ic->v[i].med[0],
		       (long long)ic->v[i].med[1]);
	}
}

static json_t *initcalls_json(const struct initcalls *ic)
{
	json_t *top = json_array(), *vmm[2];

	for (int c = 0; c < 2; c++)
		vmm[c] = json_pack("{s:I,s:I,s:I,s:I}", "boot_us", (json_int_t)ic->med[c][IC_BOOT],
				   "init_us", (json_int_t)ic->med[c][IC_INIT], "sum_us",
				   (json_int_t)ic->med[c][IC_SUM], "count",
				   (json_int_t)ic->med[c][IC_COUNT]);
	for (int i = 0; i < ic->n && i < IC_TOP; i++)
		json_array_append_new(top, json_pack("{s:s,s:I,s:I}", "initcall", ic->v[i].fn,
						     "nucleus_us", (json_int_t)ic->v[i].med[0],
						     "qemu_us", (json_int_t)ic->v[i].med[1]));
	return json_pack("{s:i,s:o,s:o,s:o}", "boots", ic->boots, "nucleus", vmm[0], "qemu", vmm[1],
			 "top", top);
}

/* The last boot-trace phase @log shows ("trace: NAME at N us", --trace-boot) into
 * @name ("none" if none) and when into @at_us (-1). */
static void last_phase(const char *log, char name[32], int64_t *at_us)
{
	char line[512], ph[32];
	long long at;
	FILE *f = fopen(log, "r");

	snprintf(name, 32, "none");
	*at_us = -1;
	while (f && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "trace: ");

		if (p && sscanf(p, "trace: %31s at %lld us", ph, &at) == 2) {
			snprintf(name, 32, "%s", ph);
			*at_us = at;
		}
	}
	if (f)
		fclose(f);
}

/* --boots: nucleus-vmm's cycles in a row on one kernel. */
struct boots {
	int n, clean, hung, failed;
	int64_t median_us, max_us; /* fork -> exit of the clean ones */
	json_t *failures;	   /* each boot that did not end cleanly */
};

/* o->boots cycles of nucleus-vmm in a row on the project kernel or (@tiny) the
 * --cycle-kernel, each with o->boot_timeout_s to exit, into @b. */
static void run_boots(const struct opts *o, const char *dir, bool tiny, struct boots *b)
{
	const char *kernel = tiny ? o->cycle_kernel : o->kernel, *what = tiny ? "tiny" : "project";
	char log[128], con[128];
	const char *argv[CYCLE_ARGV_MAX];
	int64_t *t = calloc((size_t)o->boots, sizeof(*t));

	*b = (struct boots){.median_us = -1, .max_us = -1, .failures = json_array()};
	if (!t)
		return;
	snprintf(log, sizeof(log), "%s/boot.log", dir);
	snprintf(con, sizeof(con), "%s/boot.console", dir);
	nucleus_cycle_argv(o, kernel, NUC_CYCLE_CMDLINE, con, argv);
	for (int i = 0; i < o->boots; i++) {
		char ph[32], how[32], ltail[1024], ctail[512];
		int64_t st, at, us;

		unlink(con);
		us = run_to_exit(argv, log, o->boot_timeout_s, &st, NULL);
		b->n++;
		if (st == 0) {
			t[b->clean++] = us;
			b->max_us = us > b->max_us ? us : b->max_us;
		} else {
			*(st < 0 ? &b->hung : &b->failed) += 1;
			if (st > 128)
				snprintf(how, sizeof(how), "signal %d", (int)st - 128);
			else
				snprintf(how, sizeof(how), "%s",
					 st < 0 ? "hung" : vmm__exit_name((int)st));
			last_phase(log, ph, &at);
			read_tail(log, ltail, sizeof(ltail));
			read_tail(con, ctail, sizeof(ctail));
			fprintf(stderr,
				"boot %d (%s kernel): %s (status %lld) after %lld us, last phase "
				"%s at "
				"%lld us\n--- its log ---\n%s\n--- its console ---\n%s\n",
				i, what, how, (long long)st, (long long)us, ph, (long long)at,
				ltail, ctail);
			json_array_append_new(b->failures,
					      json_pack("{s:i,s:I,s:s,s:I,s:s,s:I,s:s,s:s}", "boot",
							i, "status", (json_int_t)st, "outcome", how,
							"after_us", (json_int_t)us, "last_phase",
							ph, "last_phase_us", (json_int_t)at,
							"log_tail", ltail, "console_tail", ctail));
		}
		if ((i + 1) % 10 == 0 || i + 1 == o->boots)
			fprintf(stderr, "boots (%s kernel): %d of %d, %d clean\n", what, i + 1,
				o->boots, b->clean);
	}
	b->median_us = median_of(t, b->clean);
	free(t);
}

static json_t *boots_json(const struct boots *b)
{
	return json_pack("{s:i,s:i,s:i,s:i,s:I,s:I,s:o}", "boots", b->n, "clean", b->clean, "hung",
			 b->hung, "failed", b->failed, "median_us", (json_int_t)b->median_us,
			 "max_us", (json_int_t)b->max_us, "failures", b->failures);
}

/* nucleus-vmm's cycle phases (medians; since its main) next to QEMU's (--qemu-trace;
 * since the fork), by the point of the boot they mark; n/a: that VMM has no such mark. */
static void print_phases(const char *what, const int64_t ph[VM_PH__N], int64_t cycle_us,
			 const int64_t q[QPH__N], bool traced)
{
	static const struct {
		const char *row;
		int nuc, qemu; /* -1: n/a; nuc -2: the cycle's fork -> exit */
	} rows[] = {
		{"  guest RAM registered", VM_PH_MEMORY, QPH_MEMORY},
		{"  kernel and initrd loaded", VM_PH_LOADED, -1},
		{"  vCPU created (and set up)", VM_PH_VCPUS, QPH_VCPUS},
		{"  VM running (qemu: runstate)", -1, QPH_RUNNING},
		{"  first KVM_RUN", VM_PH_FIRST_RUN, QPH_FIRST_RUN},
		{"  guest's shutdown intent (status port)", VM_PH_SHUTDOWN, -1},
		{"  guest reset (KVM_EXIT_SHUTDOWN)", VM_PH_RESET, QPH_RESET},
		{"  vCPUs stopped (nucleus: joined)", VM_PH_JOINED, QPH_STOPPED},
		{"  torn down", VM_PH_EXIT, -1},
		{"  exit (since the fork)", -2, QPH_EXIT},
		{"  KVM exits", -1, QPH_EXITS},
	};

	printf("%-44s %14s %14s\n", what, "nucleus-vmm", traced ? "qemu (traced)" : "qemu");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char n[24] = "n/a", qv[24] = "n/a";

		if (rows[i].nuc != -1)
			snprintf(n, sizeof(n), "%lld",
				 (long long)(rows[i].nuc < 0 ? cycle_us : ph[rows[i].nuc]));
		if (rows[i].qemu >= 0 && traced)
			snprintf(qv, sizeof(qv), "%lld", (long long)q[rows[i].qemu]);
		else if (rows[i].qemu >= 0)
			snprintf(qv, sizeof(qv), "not traced");
		printf("%-44s %14s %14s\n", rows[i].row, n, qv);
	}
}

/* Copies @src into @dir as @name (0644); @src then names the copy. -1 on failure. */
static int stage(const char *dir, const char *name, const char **src)
{
	static char paths[4][128];
	static int used;
	char buf[65536];
	ssize_t n = 0;
	int in, out;

	if (!*src)
		return 0;
	if (used == 4)
		return -1;
	snprintf(paths[used], sizeof(paths[used]), "%s/%s", dir, name);
	in = open(*src, O_RDONLY);
	out = open(paths[used], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0)
		n = -1;
	if (in < 0 || out < 0 || n < 0) {
		fprintf(stderr, "vmm-bench: cannot copy %s to %s\n", *src, paths[used]);
		return -1;
	}
	*src = paths[used++];
	return 0;
}

/* "on" or "off" into @b; false for anything else. */
static bool on_off(const char *v, bool *b)
{
	*b = !strcmp(v, "on");
	return *b || !strcmp(v, "off");
}

static int parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.runs = 5,
			   .qemu = "/usr/bin/qemu-system-x86_64",
			   .json = "vmm-bench.json",
			   .boot_timeout_s = 60};
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--vmm"))
			o->vmm = v;
		else if (!strcmp(k, "--kernel"))
			o->kernel = v;
		else if (!strcmp(k, "--initrd"))
			o->initrd = v;
		else if (!strcmp(k, "--qemu"))
			o->qemu = v;
		else if (!strcmp(k, "--json"))
			o->json = v;
		else if (!strcmp(k, "--runs"))
			o->runs = atoi(v);
		else if (!strcmp(k, "--cycle-initrd"))
			o->cycle_initrd = v;
		else if (!strcmp(k, "--cycle-kernel"))
			o->cycle_kernel = v;
		else if (!strcmp(k, "--jailer"))
			o->jailer = v;
		else if (!strcmp(k, "--stage") && on_off(v, &o->stage))
			;
		else if (!strcmp(k, "--qemu-trace") && on_off(v, &o->qemu_trace))
			;
		else if (!strcmp(k, "--initcalls"))
			o->initcalls = atoi(v);
		else if (!strcmp(k, "--boots"))
			o->boots = atoi(v);
		else if (!strcmp(k, "--boot-timeout"))
			o->boot_timeout_s = atoi(v);
		else
			return -1;
	}
	if (argc % 2 != 1 || !o->vmm || !o->kernel || !o->initrd || o->runs < 1 ||
	    o->runs > MAX_RUNS || o->boots < 0 || o->boots > MAX_BOOTS || o->boot_timeout_s < 1 ||
	    o->initcalls < 0 || o->initcalls > IC_BOOTS_MAX ||
	    ((o->cycle_kernel || o->qemu_trace || o->initcalls || o->boots) && !o->cycle_initrd))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct sample s[MAX_RUNS];
	char dir[] = "/tmp/vmm-bench-XXXXXX";

	if (parse(argc, argv, &o) < 0) {
		fprintf(stderr,
			"usage: vmm-bench --vmm PATH --kernel VMLINUX --initrd FILE "
			"[--runs N] [--qemu PATH] [--json OUT] [--cycle-initrd FILE "
			"[--cycle-kernel VMLINUX] [--qemu-trace on|off] [--initcalls N] "
			"[--boots N] [--boot-timeout S]] [--jailer PATH] [--stage on|off]\n");
		return 2;
	}
	if (!mkdtemp(dir))
		return 1;
	chmod(dir, 0755);
	const char *cycle_kernel = o.cycle_kernel; /* its path in the JSON: not the copy's */
	if (o.stage &&
	    (stage(dir, "kernel", &o.kernel) < 0 || stage(dir, "initrd", &o.initrd) < 0 ||
	     stage(dir, "cycle-initrd", &o.cycle_initrd) < 0 ||
	     stage(dir, "cycle-kernel", &o.cycle_kernel) < 0))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	/* a jailed VMM is reparented to us when its jailer exits: we reap it */
	if (o.jailer && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return 1;
	for (int i = 0; i < o.runs; i++) {
		memset(&s[i], 0xff, sizeof(s[i])); /* all -1 */
		for (int c = 0; c < CYC__N; c++)
			s[i].cycle_status[c] = -2; /* not run */
		if (run_nucleus(&o, dir, &s[i], RUN_PLAIN) < 0)
			fprintf(stderr, "run %d: nucleus-vmm did not reach agent ready\n", i);
		if (o.jailer && run_nucleus(&o, dir, &s[i], RUN_JAILED) < 0)
			fprintf(stderr,
				"run %d: the jailed nucleus-vmm did not reach agent ready\n", i);
		if (run_nucleus(&o, dir, &s[i], RUN_NO_SECCOMP) < 0)
			fprintf(stderr,
				"run %d: nucleus-vmm --no-seccomp did not reach agent ready\n", i);
		if (access(o.qemu, X_OK) == 0 && run_qemu(&o, dir, &s[i]) < 0)
			fprintf(stderr, "run %d: qemu microvm did not reach ready\n", i);
		if (o.cycle_initrd)
			run_cycles(&o, dir, &s[i]);
		fprintf(stderr,
			"run %d: boot_timer %lld us, first_reply %lld us, console %lld us, "
			"qemu ready %lld us, qemu console %lld us, overhead %ld KiB, life %lld us, "
			"cycle %lld us, qemu cycle %lld us, tiny cycle %lld us, "
			"qemu tiny cycle %lld us\n",
			i, (long long)s[i].boot_timer_us, (long long)s[i].first_reply_us,
			(long long)s[i].console_us, (long long)s[i].qemu_ready_us,
			(long long)s[i].qemu_console_us, s[i].overhead_kib, (long long)s[i].life_us,
			(long long)s[i].cycle_us, (long long)s[i].qemu_cycle_us,
			(long long)s[i].tiny_cycle_us, (long long)s[i].qemu_tiny_cycle_us);
	}
	/* after the timed runs, each with boots of its own: [0] the project kernel, [1] tiny */
	static struct initcalls ic[2];
	struct boots boots[2] = {{0}};
	int kernels = o.cycle_kernel ? 2 : 1;

	for (int k = 0; o.initcalls && k < kernels; k++)
		run_initcalls(&o, dir, k == 1, &ic[k]);
	for (int k = 0; o.boots && k < kernels; k++)
		run_boots(&o, dir, k == 1, &boots[k]);
	int64_t bt = median(s, o.runs, offsetof(struct sample, boot_timer_us));
	int64_t fr = median(s, o.runs, offsetof(struct sample, first_reply_us));
	int64_t qr = median(s, o.runs, offsetof(struct sample, qemu_ready_us));
	int64_t ov = median(s, o.runs, offsetof(struct sample, overhead_kib));
	int64_t nc = median(s, o.runs, offsetof(struct sample, console_us));
	int64_t qc = median(s, o.runs, offsetof(struct sample, qemu_console_us));
	double ratio_con = nc > 0 && qc > 0 ? (double)nc / (double)qc : -1;
	double ratio_bt = bt > 0 && qr > 0 ? (double)bt / (double)qr : -1;
	double ratio_fr = fr > 0 && qr > 0 ? (double)fr / (double)qr : -1;
	int64_t life = median(s, o.runs, offsetof(struct sample, life_us));
	int64_t cy = median(s, o.runs, offsetof(struct sample, cycle_us));
	int64_t qcy = median(s, o.runs, offsetof(struct sample, qemu_cycle_us));
	double ratio_cy = cy > 0 && qcy > 0 ? (double)cy / (double)qcy : -1;
	int64_t tcy = median(s, o.runs, offsetof(struct sample, tiny_cycle_us));
	int64_t qtcy = median(s, o.runs, offsetof(struct sample, qemu_tiny_cycle_us));
	double ratio_tcy = tcy > 0 && qtcy > 0 ? (double)tcy / (double)qtcy : -1;
	int64_t cph[VM_PH__N], tph[VM_PH__N], qph[QPH__N], qtph[QPH__N];
	int fails[CYC__N];
	int64_t jfr = median(s, o.runs, offsetof(struct sample, jail_first_reply_us));
	int64_t jov = median(s, o.runs, offsetof(struct sample, jail_overhead_kib));
	double ratio_jail = jfr > 0 && fr > 0 ? (double)jfr / (double)fr : -1;
	int64_t nfr = median(s, o.runs, offsetof(struct sample, nosec_first_reply_us));
	int64_t nov = median(s, o.runs, offsetof(struct sample, nosec_overhead_kib));
	int64_t nrun = median(s, o.runs, offsetof(struct sample, nosec_first_run_us));
	int64_t prun[MAX_RUNS], prun_med = -1;
	int np = 0;

	for (int i = 0; i < o.runs; i++)
		if (s[i].phase_us[VM_PH_FIRST_RUN] >= 0 && s[i].phase_us[VM_PH_VCPUS] >= 0)
			prun[np++] = s[i].phase_us[VM_PH_FIRST_RUN] - s[i].phase_us[VM_PH_VCPUS];
	if (np)
		prun_med = median_of(prun, np);
	double ratio_sec = fr > 0 && nfr > 0 ? (double)fr / (double)nfr : -1;
	double ratio_on_off = jfr > 0 && nfr > 0 ? (double)jfr / (double)nfr : -1;
	int64_t jail_setup = -1, wrap[MAX_RUNS], jwrap[MAX_RUNS];
	int nw = 0, njw = 0;
	int64_t ph[VM_PH__N];

	/* the time around the VMM's own boot timer (its start to READY): exec, and the jail */
	for (int i = 0; i < o.runs; i++) {
		if (s[i].first_reply_us >= 0 && s[i].boot_timer_us >= 0)
			wrap[nw++] = s[i].first_reply_us - s[i].boot_timer_us;
		if (s[i].jail_first_reply_us >= 0 && s[i].jail_boot_timer_us >= 0)
			jwrap[njw++] = s[i].jail_first_reply_us - s[i].jail_boot_timer_us;
	}
	if (nw && njw)
		jail_setup = median_of(jwrap, njw) - median_of(wrap, nw);

	for (int k = 0; k < VM_PH__N; k++) {
		size_t at = (size_t)k * sizeof(int64_t);

		ph[k] = median(s, o.runs, offsetof(struct sample, phase_us) + at);
		cph[k] = median(s, o.runs, offsetof(struct sample, cycle_phase_us) + at);
		tph[k] = median(s, o.runs, offsetof(struct sample, tiny_cycle_phase_us) + at);
	}
	for (int k = 0; k < QPH__N; k++) {
		size_t at = (size_t)k * sizeof(int64_t);

		qph[k] = median(s, o.runs, offsetof(struct sample, qemu_phase_us) + at);
		qtph[k] = median(s, o.runs, offsetof(struct sample, qemu_tiny_phase_us) + at);
	}
	for (int c = 0; c < CYC__N; c++)
		fails[c] = cycle_failures(s, o.runs, c);

	printf("%-44s %14s\n", "metric (median of runs)", "value");
	printf("%-44s %14s\n", "runs / files staged in /tmp", o.stage ? "on" : "off");
	printf("%-44s %14lld\n", "nucleus-vmm boot timer (us)", (long long)bt);
	printf("%-44s %14lld\n", "nucleus-vmm first vsock reply (us)", (long long)fr);
	printf("%-44s %14lld\n", "nucleus-vmm console ready line (us)", (long long)nc);
	printf("%-44s %14lld\n", "qemu microvm ready byte (us)", (long long)qr);
	printf("%-44s %14lld\n", "qemu microvm console ready line (us)", (long long)qc);
	printf("%-44s %14.3f\n", "ratio console ready nucleus / qemu", ratio_con);
	printf("%-44s %14.3f\n", "ratio boot timer / qemu (target <= 0.7)", ratio_bt);
	printf("%-44s %14.3f\n", "ratio first reply / qemu (target <= 0.7)", ratio_fr);
	printf("%-44s %14lld\n", "nucleus-vmm overhead RSS (KiB, target <= 2048)", (long long)ov);
	printf("%-44s %14lld\n", "nucleus-vmm life: start..ready..exit (us)", (long long)life);
	for (int k = 0; k < VM_PH__N; k++) {
		char name[64];

		snprintf(name, sizeof(name), "  phase %s (us since start)",
			 vm__phase_name((enum vm_phase)k));
		printf("%-44s %14lld\n", name, (long long)ph[k]);
	}
	if (o.jailer) {
		printf("%-44s %14lld\n", "jailed: first vsock reply (us)", (long long)jfr);
		printf("%-44s %14.3f\n", "ratio jailed / plain first reply (<= 1.05)", ratio_jail);
		printf("%-44s %14lld\n", "jailed: overhead RSS (KiB)", (long long)jov);
		printf("%-44s %14lld\n", "jail's RSS cost (KiB, target <= 256)",
		       (long long)(jov >= 0 && ov >= 0 ? jov - ov : -1));
		printf("%-44s %14lld\n", "jail's own set-up (us, around the boot timer)",
		       (long long)jail_setup);
		printf("%-44s %14.3f\n", "  as a share of the plain first reply (<= 0.05)",
		       jail_setup >= 0 && fr > 0 ? (double)jail_setup / (double)fr : -1);
	}
	printf("%-44s %14lld\n", "no seccomp: first vsock reply (us)", (long long)nfr);
	printf("%-44s %14.3f\n", "ratio seccomp / no seccomp first reply", ratio_sec);
	printf("%-44s %14lld\n", "seccomp's RSS cost (KiB)",
	       (long long)(ov >= 0 && nov >= 0 ? ov - nov : -1));
	printf("%-44s %7lld / %-6lld\n", "vCPUs made..first KVM_RUN, seccomp / none (us)",
	       (long long)prun_med, (long long)nrun);
	if (o.jailer)
		printf("%-44s %14.3f\n", "ratio jail+seccomp / neither, first reply", ratio_on_off);
	if (o.cycle_initrd) {
		printf("%-44s %14lld\n", "nucleus-vmm cycle: boot..reset..exit (us)",
		       (long long)cy);
		printf("%-44s %14lld\n", "qemu microvm cycle: boot..reset..exit (us)",
		       (long long)qcy);
		printf("%-44s %14.3f\n", "ratio cycle nucleus / qemu", ratio_cy);
		printf("%-44s %7d / %-6d\n", "failed cycles nucleus / qemu", fails[CYC_NUCLEUS],
		       fails[CYC_QEMU]);
	}
	if (o.cycle_kernel) {
		printf("%-44s %14lld\n", "tiny kernel: nucleus-vmm cycle (us)", (long long)tcy);
		printf("%-44s %14lld\n", "tiny kernel: qemu microvm cycle (us)", (long long)qtcy);
		printf("%-44s %14.3f\n", "tiny kernel: ratio cycle (target <= 0.8)", ratio_tcy);
		printf("%-44s %7d / %-6d\n", "tiny kernel: failed cycles nucleus / qemu",
		       fails[CYC_NUCLEUS_TINY], fails[CYC_QEMU_TINY]);
	}
	for (int k = 0; o.cycle_initrd && k < kernels; k++)
		print_phases(k ? "cycle phases, tiny kernel (us)"
			       : "cycle phases, project kernel (us)",
			     k ? tph : cph, k ? tcy : cy, k ? qtph : qph, o.qemu_trace);
	for (int k = 0; o.initcalls && k < kernels; k++)
		print_initcalls(k ? "initcall_debug, tiny kernel"
				  : "initcall_debug, project kernel",
				&ic[k]);
	for (int k = 0; o.boots && k < kernels; k++) {
		char row[64];

		snprintf(row, sizeof(row), "%d boots in a row, %s kernel", boots[k].n,
			 k ? "tiny" : "project");
		printf("%-44s %14s\n", row, "clean/hung/failed");
		printf("%-44s %7d/%d/%d\n", "  outcome", boots[k].clean, boots[k].hung,
		       boots[k].failed);
		printf("%-44s %14lld\n", "  fork..exit median (us)", (long long)boots[k].median_us);
		printf("%-44s %14lld\n", "  fork..exit max (us)", (long long)boots[k].max_us);
	}

	FILE *j = fopen(o.json, "w");
	if (j) {
		fprintf(j,
			"{\"runs\":%d,\"nucleus_boot_timer_us\":%lld,"
			"\"nucleus_first_reply_us\":%lld,\"qemu_microvm_ready_us\":%lld,"
			"\"ratio_boot_timer\":%.4f,\"ratio_first_reply\":%.4f,"
			"\"overhead_kib\":%lld,\"nucleus_console_us\":%lld,"
			"\"qemu_console_us\":%lld,\"ratio_console\":%.4f,\"nucleus_life_us\":%lld,"
			"\"nucleus_cycle_us\":%lld,\"qemu_cycle_us\":%lld,\"ratio_cycle\":%.4f,"
			"\"jail_first_reply_us\":%lld,\"ratio_jail\":%.4f,"
			"\"jail_overhead_kib\":%lld,\"jail_setup_us\":%lld,"
			"\"nosec_first_reply_us\":%lld,\"ratio_seccomp\":%.4f,"
			"\"nosec_overhead_kib\":%lld,\"nosec_first_run_us\":%lld,"
			"\"ratio_jail_seccomp_on_off\":%.4f,\"phases_us\":{",
			o.runs, (long long)bt, (long long)fr, (long long)qr, ratio_bt, ratio_fr,
			(long long)ov, (long long)nc, (long long)qc, ratio_con, (long long)life,
			(long long)cy, (long long)qcy, ratio_cy, (long long)jfr, ratio_jail,
			(long long)jov, (long long)jail_setup, (long long)nfr, ratio_sec,
			(long long)nov, (long long)nrun, ratio_on_off);
		for (int k = 0; k < VM_PH__N; k++)
			fprintf(j, "%s\"%s\":%lld", k ? "," : "", vm__phase_name((enum vm_phase)k),
				(long long)ph[k]);
		fprintf(j,
			"},\"nucleus_tiny_cycle_us\":%lld,\"qemu_tiny_cycle_us\":%lld,"
			"\"ratio_tiny_cycle\":%.4f,\"staged\":%s,\"cycle_kernel\":",
			(long long)tcy, (long long)qtcy, ratio_tcy, o.stage ? "true" : "false");
		json_t *ck = cycle_kernel ? json_string(cycle_kernel) : json_null();

		json_dumpf(ck, j, JSON_ENCODE_ANY);
		json_decref(ck);
		fprintf(j, ",\"cycle_failures\":{");
		for (int c = 0; c < CYC__N; c++)
			fprintf(j, "%s\"%s\":%d", c ? "," : "", cycle_name[c], fails[c]);
		fprintf(j, "},\"cycle_phases_us\":{");
		for (int k = 0; k < VM_PH__N; k++)
			fprintf(j, "%s\"%s\":%lld", k ? "," : "", vm__phase_name((enum vm_phase)k),
				(long long)cph[k]);
		fprintf(j, "},\"tiny_cycle_phases_us\":{");
		for (int k = 0; k < VM_PH__N; k++)
			fprintf(j, "%s\"%s\":%lld", k ? "," : "", vm__phase_name((enum vm_phase)k),
				(long long)tph[k]);
		fprintf(j, "},\"qemu_cycle_phases_us\":{");
		for (int k = 0; k < QPH__N; k++)
			fprintf(j, "%s\"%s\":%lld", k ? "," : "", qph_name[k], (long long)qph[k]);
		fprintf(j, "},\"qemu_tiny_cycle_phases_us\":{");
		for (int k = 0; k < QPH__N; k++)
			fprintf(j, "%s\"%s\":%lld", k ? "," : "", qph_name[k], (long long)qtph[k]);
		json_t *extra = json_pack(
			"{s:b,s:o,s:o}", "qemu_traced", o.qemu_trace, "initcalls",
			o.initcalls ? json_object() : json_null(), "boots",
			o.boots ? json_pack("{s:i}", "timeout_s", o.boot_timeout_s) : json_null());

		for (int k = 0; k < kernels; k++) {
			const char *key = k ? "tiny" : "project";

			if (o.initcalls)
				json_object_set_new(json_object_get(extra, "initcalls"), key,
						    initcalls_json(&ic[k]));
			if (o.boots)
				json_object_set_new(json_object_get(extra, "boots"), key,
						    boots_json(&boots[k]));
		}
		/* its members after the ones above: drop its braces */
		char *ex = json_dumps(extra, JSON_COMPACT);

		if (ex && strlen(ex) > 2)
			fprintf(j, "},%.*s,\"samples\":[", (int)strlen(ex) - 2, ex + 1);
		else
			fprintf(j, "},\"samples\":[");
		free(ex);
		json_decref(extra);
		for (int i = 0; i < o.runs; i++) {
			fprintf(j,
				"%s{\"boot_timer_us\":%lld,\"first_reply_us\":%lld,"
				"\"qemu_ready_us\":%lld,\"overhead_kib\":%ld,\"console_us\":%lld,"
				"\"qemu_console_us\":%lld,\"life_us\":%lld,\"cycle_us\":%lld,"
				"\"qemu_cycle_us\":%lld,\"tiny_cycle_us\":%lld,"
				"\"qemu_tiny_cycle_us\":%lld,",
				i ? "," : "", (long long)s[i].boot_timer_us,
				(long long)s[i].first_reply_us, (long long)s[i].qemu_ready_us,
				s[i].overhead_kib, (long long)s[i].console_us,
				(long long)s[i].qemu_console_us, (long long)s[i].life_us,
				(long long)s[i].cycle_us, (long long)s[i].qemu_cycle_us,
				(long long)s[i].tiny_cycle_us, (long long)s[i].qemu_tiny_cycle_us);
			for (int k = 0; o.qemu_trace && k < QPH__N; k++)
				fprintf(j, "%s\"%s\":%lld", k ? "," : "\"qemu_cycle_phases_us\":{",
					qph_name[k], (long long)s[i].qemu_phase_us[k]);
			for (int k = 0; o.qemu_trace && o.cycle_kernel && k < QPH__N; k++)
				fprintf(j, "%s\"%s\":%lld",
					k ? "," : "},\"qemu_tiny_cycle_phases_us\":{", qph_name[k],
					(long long)s[i].qemu_tiny_phase_us[k]);
			fprintf(j, "%s\"cycle_status\":{", o.qemu_trace ? "}," : "");
			for (int c = 0; c < CYC__N; c++)
				fprintf(j, "%s\"%s\":%lld", c ? "," : "", cycle_name[c],
					(long long)s[i].cycle_status[c]);
			fprintf(j, "}}");
		}
		fprintf(j, "]}\n");
		fclose(j);
	}
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return 0;
}
