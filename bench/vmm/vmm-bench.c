/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmm-bench - boot time and memory overhead of nucleus-vmm, next to QEMU microvm.
 * Not a test: run it where KVM works (bench/vmm/run.sh puts it in the nested harness).
 *
 *   vmm-bench --vmm PATH --kernel VMLINUX --initrd INITRAMFS [--runs N (5)]
 *             [--qemu PATH] [--json OUT] [--cycle-initrd INITRAMFS] [--jailer PATH]
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
 *   cycle_us, qemu_cycle_us  fork -> exit, the whole life cycle
 * With --jailer (vmm/jailer.c, as the daemon uses it; run as root), the same VMM boot
 * again in its jail, same run:
 *   jail_first_reply_us, jail_overhead_kib  (their ratio and difference to the plain
 *                   run's are the jail's cost: targets 5 % of boot and 256 KiB)
 * Prints a table of medians and ratios and writes JSON.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "guest/guest.h"
#include "vmm/core.h"
#include "vmm/vmm.h"

#define MAX_RUNS  50
#define WAIT_S	  180
#define GUEST_MIB 128

struct opts {
	const char *vmm, *kernel, *initrd, *qemu, *json, *cycle_initrd;
	const char *jailer; /* also each run in the jail the daemon uses (vmm/jailer.c) */
	int runs;
};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
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

static int reap(pid_t pid, int timeout_s)
{
	int st;
	for (int i = 0; i < timeout_s * 100; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
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

struct sample {
	int64_t boot_timer_us, first_reply_us, console_us, qemu_ready_us, qemu_console_us;
	int64_t life_us, cycle_us, qemu_cycle_us;
	int64_t jail_first_reply_us, jail_overhead_kib; /* the same run in its jail */
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
	const char *argv[] = {o->jailer, "--root", root, "--pid-fd", "3", "--uid", "200999",
			      "--gid", "200999", "--bind", b[0], "--bind",
			      b[1], "--bind", b[2], "--bind", b[3], "--dev",
			      "/dev/kvm:/dev/kvm", "--", "/nucleus-vmm", "--kernel", "/kernel",
			      "--initrd", "/initrd", "--mem", "128", "--vcpus", "1", "--vsock",
			      "/run/vm/vsock", "--control", "/run/vm/control", "--console",
			      "/run/vm/console", "--trace-boot", NULL};
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

static int run_nucleus(const struct opts *o, const char *dir, struct sample *s, bool jailed)
{
	char vsock[128], ctl[128], log[128], con[128];
	snprintf(con, sizeof(con), "%s/console", dir);
	unlink(con);
	snprintf(vsock, sizeof(vsock), "%s/vsock", dir);
	snprintf(ctl, sizeof(ctl), "%s/control", dir);
	snprintf(log, sizeof(log), "%s/vmm.log", dir);
	const char *argv[] = {o->vmm,	      "--kernel",  o->kernel, "--initrd",  o->initrd,
			      "--mem",	      "128",	   "--vcpus", "1",	   "--vsock",
			      vsock,	      "--control", ctl,	      "--console", con,
			      "--trace-boot", NULL};
	struct guest *g = NULL;
	struct sample js, *dst = s;
	int64_t t0 = now_us();
	pid_t pid = jailed ? spawn_jailed(o, dir, log) : spawn(argv, log);

	if (jailed) { /* only the comparable figures of a jailed run are kept */
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
	}
	return 0;
}

/* Why a VMM did not get ready: the end of its log on stderr. */
static void dump_tail(const char *path)
{
	char buf[1024];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	lseek(fd, end > (off_t)sizeof(buf) ? end - (off_t)sizeof(buf) : 0, SEEK_SET);
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n > 0)
		fprintf(stderr, "--- %s ---\n%.*s\n", path, (int)n, buf);
}

#define QEMU_ARGV_MAX 40

/* QEMU microvm as nucleus-vmm runs (128 MiB, 1 vCPU, no reboot) with @initrd, @append and
 * the NULL-terminated @extra (may be NULL), into @argv (QEMU_ARGV_MAX). */
static void qemu_argv(const struct opts *o, const char *initrd, const char *append,
		      const char *const *extra, const char **argv)
{
	const char *base[] = {o->qemu,	    "-M",	  "microvm",	 "-enable-kvm",
			      "-cpu",	    "host",	  "-m",		 "128",
			      "-smp",	    "1",	  "-nodefaults", "-no-user-config",
			      "-nographic", "-no-reboot", "-kernel",	 o->kernel,
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

	qemu_argv(o, o->initrd, "console=ttyS0 reboot=k panic=-1 quiet", extra, argv);
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

/* fork -> exit of one boot of the cycle initramfs (nt=shutdown); -1 on a bad exit. */
static int64_t cycle(const char *const *argv, const char *log)
{
	int64_t t0 = now_us();
	pid_t pid = spawn(argv, log);
	int st = reap(pid, WAIT_S);

	return st == 0 ? now_us() - t0 : -1;
}

static void run_cycles(const struct opts *o, const char *dir, struct sample *s)
{
	char log[128], qlog[128];
	const char *vmm[] = {
		o->vmm, "--kernel", o->kernel, "--initrd",  o->cycle_initrd,	    "--mem",
		"128",	"--vcpus",  "1",       "--cmdline", "nt=shutdown reboot=t", "--console",
		"off",	NULL};
	const char *qemu[QEMU_ARGV_MAX];

	qemu_argv(o, o->cycle_initrd, "reboot=t panic=-1 quiet nt=shutdown", NULL, qemu);

	snprintf(log, sizeof(log), "%s/cycle.log", dir);
	snprintf(qlog, sizeof(qlog), "%s/qemu-cycle.log", dir);
	s->cycle_us = cycle(vmm, log);
	if (s->cycle_us < 0)
		dump_tail(log);
	if (access(o->qemu, X_OK) == 0) {
		s->qemu_cycle_us = cycle(qemu, qlog);
		if (s->qemu_cycle_us < 0)
			dump_tail(qlog);
	}
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
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
	if (k == 0)
		return -1;
	qsort(v, (size_t)k, sizeof(v[0]), cmp64);
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

static int parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){
		.runs = 5, .qemu = "/usr/bin/qemu-system-x86_64", .json = "vmm-bench.json"};
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
		else if (!strcmp(k, "--jailer"))
			o->jailer = v;
		else
			return -1;
	}
	if (argc % 2 != 1 || !o->vmm || !o->kernel || !o->initrd || o->runs < 1 ||
	    o->runs > MAX_RUNS)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct sample s[MAX_RUNS];
	char dir[] = "/tmp/vmm-bench-XXXXXX";

	if (parse(argc, argv, &o) < 0) {
		fprintf(stderr, "usage: vmm-bench --vmm PATH --kernel VMLINUX --initrd FILE "
				"[--runs N] [--qemu PATH] [--json OUT] [--cycle-initrd FILE] "
				"[--jailer PATH]\n");
		return 2;
	}
	if (!mkdtemp(dir))
		return 1;
	chmod(dir, 0755);
	signal(SIGPIPE, SIG_IGN);
	/* a jailed VMM is reparented to us when its jailer exits: we reap it */
	if (o.jailer && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return 1;
	for (int i = 0; i < o.runs; i++) {
		memset(&s[i], 0xff, sizeof(s[i])); /* all -1 */
		if (run_nucleus(&o, dir, &s[i], false) < 0)
			fprintf(stderr, "run %d: nucleus-vmm did not reach agent ready\n", i);
		if (o.jailer && run_nucleus(&o, dir, &s[i], true) < 0)
			fprintf(stderr, "run %d: the jailed nucleus-vmm did not reach agent ready\n", i);
		if (access(o.qemu, X_OK) == 0 && run_qemu(&o, dir, &s[i]) < 0)
			fprintf(stderr, "run %d: qemu microvm did not reach ready\n", i);
		if (o.cycle_initrd)
			run_cycles(&o, dir, &s[i]);
		fprintf(stderr,
			"run %d: boot_timer %lld us, first_reply %lld us, console %lld us, "
			"qemu ready %lld us, qemu console %lld us, overhead %ld KiB, life %lld us, "
			"cycle %lld us, qemu cycle %lld us\n",
			i, (long long)s[i].boot_timer_us, (long long)s[i].first_reply_us,
			(long long)s[i].console_us, (long long)s[i].qemu_ready_us,
			(long long)s[i].qemu_console_us, s[i].overhead_kib, (long long)s[i].life_us,
			(long long)s[i].cycle_us, (long long)s[i].qemu_cycle_us);
	}
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
	int64_t jfr = median(s, o.runs, offsetof(struct sample, jail_first_reply_us));
	int64_t jov = median(s, o.runs, offsetof(struct sample, jail_overhead_kib));
	double ratio_jail = jfr > 0 && fr > 0 ? (double)jfr / (double)fr : -1;
	int64_t ph[VM_PH__N];

	for (int k = 0; k < VM_PH__N; k++)
		ph[k] = median(s, o.runs,
			       offsetof(struct sample, phase_us) + (size_t)k * sizeof(int64_t));

	printf("%-44s %14s\n", "metric (median of runs)", "value");
	printf("%-44s %14lld\n", "nucleus-vmm boot timer (us)", (long long)bt);
	printf("%-44s %14lld\n", "nucleus-vmm first vsock reply (us)", (long long)fr);
	printf("%-44s %14lld\n", "nucleus-vmm console ready line (us)", (long long)nc);
	printf("%-44s %14lld\n", "qemu microvm ready byte (us)", (long long)qr);
	printf("%-44s %14lld\n", "qemu microvm console ready line (us)", (long long)qc);
	printf("%-44s %14.3f\n", "ratio console ready nucleus / qemu", ratio_con);
	printf("%-44s %14.3f\n", "ratio boot timer / qemu (target <= 0.5)", ratio_bt);
	printf("%-44s %14.3f\n", "ratio first reply / qemu", ratio_fr);
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
		printf("%-44s %14.3f\n", "ratio jailed / plain first reply (<= 1.05)",
		       ratio_jail);
		printf("%-44s %14lld\n", "jailed: overhead RSS (KiB)", (long long)jov);
		printf("%-44s %14lld\n", "jail's RSS cost (KiB, target <= 256)",
		       (long long)(jov >= 0 && ov >= 0 ? jov - ov : -1));
	}
	if (o.cycle_initrd) {
		printf("%-44s %14lld\n", "nucleus-vmm cycle: boot..reset..exit (us)",
		       (long long)cy);
		printf("%-44s %14lld\n", "qemu microvm cycle: boot..reset..exit (us)",
		       (long long)qcy);
		printf("%-44s %14.3f\n", "ratio cycle nucleus / qemu (target <= 0.8)", ratio_cy);
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
			"\"jail_overhead_kib\":%lld,\"phases_us\":{",
			o.runs, (long long)bt, (long long)fr, (long long)qr, ratio_bt, ratio_fr,
			(long long)ov, (long long)nc, (long long)qc, ratio_con, (long long)life,
			(long long)cy, (long long)qcy, ratio_cy, (long long)jfr, ratio_jail,
			(long long)jov);
		for (int k = 0; k < VM_PH__N; k++)
			fprintf(j, "%s\"%s\":%lld", k ? "," : "", vm__phase_name((enum vm_phase)k),
				(long long)ph[k]);
		fprintf(j, "},\"samples\":[");
		for (int i = 0; i < o.runs; i++)
			fprintf(j,
				"%s{\"boot_timer_us\":%lld,\"first_reply_us\":%lld,"
				"\"qemu_ready_us\":%lld,\"overhead_kib\":%ld}",
				i ? "," : "", (long long)s[i].boot_timer_us,
				(long long)s[i].first_reply_us, (long long)s[i].qemu_ready_us,
				s[i].overhead_kib);
		fprintf(j, "]}\n");
		fclose(j);
	}
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return 0;
}
