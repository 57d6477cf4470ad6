/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm-boot suite, seccomp (vmm/seccomp.c, docs/vmm.md "Seccomp"): a VMM runs every thread
 * under exactly its own filter (/proc says so for the main thread and each vCPU) and its
 * guest works as before; --no-seccomp runs without; and, in nucleus-vmm-trigger (the same
 * VMM built with the test trigger, $NUCLEUS_VMM_TRIGGER), a forbidden call on a vCPU
 * thread (the guest writes 0x5c to the status register) or on the event loop (control op
 * "test-sigsys") kills it with SIGSYS, while the release nucleus-vmm ignores both.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/vm/vmtest.h"
#include "vmm/vmm.h"

static const char *kernel(void)
{
	return vmt_env("NUCLEUS_KERNEL");
}

static const char *initrd(void)
{
	return vmt_env("NUCLEUS_BOOT_INITRD");
}

/* A field of a /proc status file ("Seccomp", ...); -1 when absent. */
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

/* Every thread of @pid has seccomp mode @mode (2: filter, 0: none); returns how many. */
static int threads_with_mode(pid_t pid, long mode)
{
	char dir[64], path[512];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	d = opendir(dir);
	cr_assert_not_null(d, "%s", dir);
	while ((de = readdir(d))) {
		long filters;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/status", dir, de->d_name);
		cr_expect_eq(status_field(path, "Seccomp"), mode, "%s", path);
		filters = status_field(path, "Seccomp_filters"); /* Linux >= 5.9 */
		if (mode == 2)
			cr_expect(filters == 1 || filters == -1,
				  "%s: %ld filters, want exactly its own", path, filters);
		n++;
	}
	closedir(d);
	return n;
}

static void control_ok(struct vmt *t, const char *op, struct vmm_control_reply *r)
{
	int e = vmm__control(t->control, op, r);

	cr_assert_eq(e, 0, "control %s: %s", op, strerror(-e));
	cr_assert(r->ok, "control %s: %s", op, r->error);
}

static void boot_ticks(struct vmt *t, bool filters)
{
	const char *on[] = {"--kernel", kernel(),  "--initrd", initrd(), "--cmdline",
			    "nt=ticks", "--vcpus", "2",	       NULL};
	const char *off[] = {"--kernel", kernel(),  "--initrd", initrd(),	"--cmdline",
			     "nt=ticks", "--vcpus", "2",	"--no-seccomp", NULL};

	vmt_spawn(t, filters ? on : off);
	cr_assert(vmt_wait_file(t, t->console, "NT-TICK 1\n", VMT_TIMEOUT_S), "no ticks");
}

TestSuite(seccomp, .timeout = VMT_TEST_TIMEOUT_S);

Test(seccomp, every_thread_runs_under_its_own_filter_and_the_guest_works)
{
	struct vmm_control_reply r;
	char path[64];
	struct vmt t;
	int st;

	vmt_init(&t);
	boot_ticks(&t, true);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)t.pid);
	cr_expect_eq(status_field(path, "Seccomp"), 2, "the VMM runs in seccomp filter mode");
	cr_expect_eq(status_field(path, "NoNewPrivs"), 1);
	cr_expect_eq(threads_with_mode(t.pid, 2), 3, "the event loop and two vCPU threads");
	/* the control socket, pause (kicks), resume, the guest ticking on */
	control_ok(&t, "pause", &r);
	cr_expect_str_eq(r.state, "paused");
	control_ok(&t, "resume", &r);
	cr_expect_str_eq(r.state, "running");
	cr_expect(vmt_wait_file(&t, t.console, "NT-TICK 3\n", VMT_TIMEOUT_S), "no ticks");
	control_ok(&t, "stop", &r);
	st = vmt_wait(&t, VMT_TIMEOUT_S);
	cr_expect_eq(st, VMM_EXIT_STOPPED, "status %d", st);
	cr_expect_neq(access(t.control, F_OK), 0, "control socket removed on exit");
	vmt_fini(&t);
}

Test(seccomp, no_seccomp_runs_without_filters)
{
	struct vmm_control_reply r;
	char path[64];
	struct vmt t;

	vmt_init(&t);
	boot_ticks(&t, false);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)t.pid);
	cr_expect_eq(status_field(path, "Seccomp"), 0);
	cr_expect_eq(threads_with_mode(t.pid, 0), 3);
	control_ok(&t, "stop", &r);
	cr_expect_eq(vmt_wait(&t, VMT_TIMEOUT_S), VMM_EXIT_STOPPED);
	vmt_fini(&t);
}

static void expect_sigsys(struct vmt *t, int st, const char *thread)
{
	char *log = vmt_read(t->log), want[64];

	cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
		  "the VMM %s %d, want killed by SIGSYS; log:\n%s",
		  WIFSIGNALED(st) ? "was killed by signal" : "exited with",
		  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), log);
	snprintf(want, sizeof(want), "seccomp test trigger: the %s thread", thread);
	cr_expect(strstr(log, want), "VMM log lacks \"%s\":\n%s", want, log);
	free(log);
}

/* nucleus-vmm-trigger (t->vmm) or the release nucleus-vmm (NULL) */
static const char *trigger_vmm(bool trigger)
{
	return trigger ? vmt_env("NUCLEUS_VMM_TRIGGER") : NULL;
}

static void vcpu_trigger(bool trigger)
{
	const char *args[] = {"--kernel",  kernel(),	"--initrd", initrd(),
			      "--cmdline", "nt=sigsys", NULL};
	struct vmt t;
	int st;

	vmt_init(&t);
	t.vmm = trigger_vmm(trigger);
	vmt_spawn(&t, args);
	st = vmt_wait_raw(&t, VMT_TIMEOUT_S);
	if (trigger) {
		char *c = vmt_read(t.console);

		expect_sigsys(&t, st, "vcpu");
		cr_expect_null(strstr(c, "NT-SURVIVED"), "the guest went on:\n%s", c);
		free(c);
	} else {
		/* no trigger in a release: the byte is ignored, the guest reboots (a crash) */
		cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == VMM_EXIT_CRASH, "status 0x%x", st);
	}
	vmt_fini(&t);
}

Test(seccomp, a_forbidden_call_on_a_vcpu_thread_kills_the_vmm)
{
	vcpu_trigger(true);
}

Test(seccomp, a_release_vmm_has_no_vcpu_trigger)
{
	vcpu_trigger(false);
}

Test(seccomp, a_forbidden_call_on_the_event_loop_kills_the_vmm)
{
	struct vmm_control_reply r;
	struct vmt t;

	vmt_init(&t);
	t.vmm = trigger_vmm(true);
	boot_ticks(&t, true);
	/* no reply: the VMM dies while handling the request */
	cr_expect_neq(vmm__control(t.control, "test-sigsys", &r), 0);
	expect_sigsys(&t, vmt_wait_raw(&t, VMT_TIMEOUT_S), "event loop");
	vmt_fini(&t);
}

Test(seccomp, a_release_vmm_has_no_event_loop_trigger)
{
	struct vmm_control_reply r;
	struct vmt t;
	int st;

	vmt_init(&t);
	boot_ticks(&t, true);
	cr_assert_eq(vmm__control(t.control, "test-sigsys", &r), 0);
	cr_expect(!r.ok && strcmp(r.error, "unknown op") == 0, "a release build has no trigger");
	control_ok(&t, "stop", &r);
	st = vmt_wait_raw(&t, VMT_TIMEOUT_S);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == VMM_EXIT_STOPPED, "status 0x%x", st);
	vmt_fini(&t);
}
