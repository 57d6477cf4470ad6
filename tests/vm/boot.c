/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm-boot suite: boots the Nucleus guest kernel in nucleus-vmm with a busybox
 * initramfs whose /init does what the kernel parameter nt=ACTION says
 * (tests/vm/mkinitramfs-test.sh), and checks what a user of the VMM relies on:
 * the console, SMP, exit statuses, the control socket and signals.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/vm/vmtest.h"
#include "vmm/core.h"
#include "vmm/vmm.h"

static const char *kernel(void)
{
	return vmt_env("NUCLEUS_KERNEL");
}

static const char *initrd(void)
{
	return vmt_env("NUCLEUS_BOOT_INITRD");
}

/* Boot with nt=action (plus extra args) and return the exit status. */
static int boot_action(struct vmt *t, const char *action, const char *vcpus)
{
	char cmdline[64];
	snprintf(cmdline, sizeof(cmdline), "nt=%s", action);
	const char *args[] = {"--kernel", kernel(),  "--initrd", initrd(), "--cmdline",
			      cmdline,	  "--vcpus", vcpus,	 NULL};
	vmt_spawn(t, args);
	return vmt_wait(t, VMT_TIMEOUT_S);
}

static void expect_console(struct vmt *t, const char *needle)
{
	char *c = vmt_read(t->console);
	cr_expect(strstr(c, needle), "console lacks \"%s\":\n%s", needle, c);
	free(c);
}

static void expect_log(struct vmt *t, const char *needle)
{
	char *c = vmt_read(t->log);
	cr_expect(strstr(c, needle), "VMM log lacks \"%s\":\n%s", needle, c);
	free(c);
}

TestSuite(boot, .timeout = VMT_TEST_TIMEOUT_S);

/*
 * A boot with nt=@action: what the console and the VMM log show, and the exit status.
 * Arrays, not pointers: criterion runs each case in a new process (of its own layout).
 */
struct boot_case {
	char what[64], action[16], vcpus[4];
	char console[2][32]; /* each must appear ("": none) */
	char log[32];	     /* must appear in the VMM log ("": no check) */
	int status;
};

ParameterizedTestParameters(boot, console_and_exit_status)
{
	static struct boot_case cases[] = {
		{.what = "announced shutdown + reset is a clean shutdown",
		 .action = "shutdown",
		 .vcpus = "1",
		 .console = {"NT-BOOTED action=shutdown"},
		 .log = "clean shutdown",
		 .status = VMM_EXIT_SHUTDOWN},
		{.what = "a reboot without announcement is a crash",
		 .action = "reboot",
		 .vcpus = "1",
		 .console = {"NT-BOOTED action=reboot"},
		 .status = VMM_EXIT_CRASH},
		{.what = "SMP: two vCPUs visible",
		 .action = "cpus",
		 .vcpus = "2",
		 .console = {"NT-CPUS 2\n"},
		 .status = VMM_EXIT_SHUTDOWN},
		{.what = "four vCPUs visible",
		 .action = "cpus",
		 .vcpus = "4",
		 .console = {"NT-CPUS 4\n"},
		 .status = VMM_EXIT_SHUTDOWN},
		{.what = "init's exit panics the kernel, a crash",
		 .action = "panic",
		 .vcpus = "1",
		 .console = {"NT-EXITING", "Kernel panic"},
		 .status = VMM_EXIT_CRASH},
	};

	return cr_make_param_array(struct boot_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct boot_case *c, boot, console_and_exit_status)
{
	struct vmt t;
	int st;

	vmt_init(&t);
	st = boot_action(&t, c->action, c->vcpus);
	for (size_t i = 0; i < 2 && c->console[i][0]; i++)
		expect_console(&t, c->console[i]);
	if (c->log[0])
		expect_log(&t, c->log);
	cr_expect_eq(st, c->status, "%s: status %d, want %d", c->what, st, c->status);
	vmt_fini(&t);
}

Test(boot, console_off_still_boots)
{
	struct vmt t;
	vmt_init(&t);
	const char *args[] = {"--kernel",    kernel(),	  "--initrd", initrd(), "--cmdline",
			      "nt=shutdown", "--console", "off",      NULL};
	vmt_spawn(&t, args);
	int st = vmt_wait(&t, VMT_TIMEOUT_S);
	cr_expect_eq(st, VMM_EXIT_SHUTDOWN, "status %d", st);
	struct stat sb;
	cr_expect(stat(t.console, &sb) < 0 || sb.st_size == 0, "console off wrote output");
	vmt_fini(&t);
}

/* --trace-boot: every phase of a clean boot-and-shutdown, once, in order (docs/vmm.md). */
Test(boot, trace_boot_reports_every_phase_in_order)
{
	static const enum vm_phase order[] = {
		VM_PH_KVM,   VM_PH_MEMORY,    VM_PH_DEVICES,  VM_PH_LOADED,
		VM_PH_VCPUS, VM_PH_FIRST_RUN, VM_PH_SHUTDOWN, VM_PH_RESET,
		VM_PH_STOP,  VM_PH_JOINED,    VM_PH_EXIT,
	};
	const char *args[] = {"--kernel",  kernel(),	  "--initrd",	  initrd(),
			      "--cmdline", "nt=shutdown", "--trace-boot", NULL};
	json_int_t prev = 0;
	struct vmt t;
	json_t *trace;
	char *log, *line;
	int st;

	vmt_init(&t);
	vmt_spawn(&t, args);
	st = vmt_wait(&t, VMT_TIMEOUT_S);
	cr_expect_eq(st, VMM_EXIT_SHUTDOWN, "status %d", st);
	log = vmt_read(t.log);
	/* each phase as it came (a hung VM shows how far it got), then the whole trace */
	cr_expect_not_null(strstr(log, "trace: first_run at "), "%s", log);
	line = strstr(log, "boot trace {");
	cr_assert_not_null(line, "%s", log);
	trace = json_loads(line + strlen("boot trace "), JSON_DISABLE_EOF_CHECK, NULL);
	cr_assert(json_is_object(trace), "%s", line);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		json_t *v = json_object_get(trace, vm__phase_name(order[i]));

		cr_assert(json_is_integer(v), "no %s in %s", vm__phase_name(order[i]), line);
		cr_expect_geq(json_integer_value(v), prev, "%s before the phase ahead of it: %s",
			      vm__phase_name(order[i]), line);
		prev = json_integer_value(v);
	}
	json_decref(trace);
	free(log);
	vmt_fini(&t);
}

/* A copy of the kernel whose PVH note is renamed, so the VMM must use the Linux
 * 64-bit boot protocol instead. */
static void strip_pvh_note(const char *src, const char *dst)
{
	char *img;
	size_t len;
	FILE *f = fopen(src, "rb");
	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	img = malloc(len);
	cr_assert_eq(fread(img, 1, len, f), len);
	fclose(f);
	Elf64_Ehdr eh;
	memcpy(&eh, img, sizeof(eh));
	int patched = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_NOTE)
			continue;
		for (size_t off = 0; off + 12 <= ph.p_filesz;) {
			uint32_t h[3];
			memcpy(h, img + ph.p_offset + off, 12);
			if (h[0] == 4 && memcmp(img + ph.p_offset + off + 12, "Xen", 4) == 0 &&
			    h[2] == 18) {
				h[2] = 0x7fff;
				memcpy(img + ph.p_offset + off, h, 12);
				patched++;
			}
			off += 12 + ((h[0] + 3) & ~3u) + ((h[1] + 3) & ~3u);
		}
	}
	cr_assert_eq(patched, 1, "the kernel has one PVH note");
	f = fopen(dst, "wb");
	cr_assert_eq(fwrite(img, 1, len, f), len);
	fclose(f);
	free(img);
}

Test(boot, linux64_boot_protocol_without_pvh_note)
{
	struct vmt t;
	char k[128];
	vmt_init(&t);
	snprintf(k, sizeof(k), "%s/vmlinux-nopvh", t.dir);
	strip_pvh_note(kernel(), k);
	const char *args[] = {"--kernel", k,	     "--initrd", initrd(), "--cmdline",
			      "nt=cpus",  "--vcpus", "2",	 NULL};
	vmt_spawn(&t, args);
	int st = vmt_wait(&t, VMT_TIMEOUT_S);
	expect_console(&t, "NT-CPUS 2\n");
	cr_expect_eq(st, VMM_EXIT_SHUTDOWN, "status %d", st);
	vmt_fini(&t);
}

static long file_size(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

static void control(struct vmt *t, const char *op, struct vmm_control_reply *r)
{
	int e = vmm__control(t->control, op, r);
	cr_assert_eq(e, 0, "control %s: %s", op, strerror(-e));
	cr_assert(r->ok, "control %s: %s", op, r->error);
}

Test(boot, pause_resume_stop_over_the_control_socket)
{
	struct vmt t;
	struct vmm_control_reply r;
	vmt_init(&t);
	const char *args[] = {"--kernel", kernel(), "--initrd", initrd(), "--cmdline", "nt=ticks",
			      "--vcpus",  "2",	    "--mem",	"192",	  NULL};
	vmt_spawn(&t, args);
	cr_assert(vmt_wait_file(&t, t.console, "NT-TICK 2\n", VMT_TIMEOUT_S), "no ticks");

	control(&t, "state", &r);
	cr_expect_str_eq(r.state, "running");
	cr_expect_eq(r.vcpus, 2);
	cr_expect_eq(r.mem_mib, 192);
	cr_expect_gt(r.boot_us, 0, "the guest wrote READY before ticking");
	cr_expect_geq(r.uptime_us, r.boot_us);
	cr_expect_str_eq(r.last_phase, "ready", "the boot trace's newest phase");
	cr_expect_gt(r.first_run_us, 0);

	control(&t, "pause", &r);
	cr_expect_str_eq(r.state, "paused");
	long before = file_size(t.console);
	sleep(4); /* the guest ticks every second when it runs */
	control(&t, "state", &r);
	cr_expect_str_eq(r.state, "paused");
	cr_expect_eq(file_size(t.console), before, "console grew while paused");

	control(&t, "resume", &r);
	cr_expect_str_eq(r.state, "running");
	char *c = vmt_read(t.console);
	char *last = strrchr(c, 'K'); /* ...NT-TICK n */
	int n = last ? atoi(last + 2) : 0;
	free(c);
	char next[32];
	snprintf(next, sizeof(next), "NT-TICK %d\n", n + 2);
	cr_expect(vmt_wait_file(&t, t.console, next, VMT_TIMEOUT_S), "no ticks after resume");

	/* garbage on the control socket gets an error, the VM keeps running */
	cr_expect_eq(vmm__control(t.control, "reboot", &r), 0);
	cr_expect_not(r.ok);
	control(&t, "state", &r);
	cr_expect_str_eq(r.state, "running");

	control(&t, "stop", &r);
	int st = vmt_wait(&t, VMT_TIMEOUT_S);
	cr_expect_eq(st, VMM_EXIT_STOPPED, "status %d", st);
	cr_expect_neq(access(t.control, F_OK), 0, "control socket removed on exit");
	vmt_fini(&t);
}

Test(boot, stop_while_paused)
{
	struct vmt t;
	struct vmm_control_reply r;
	vmt_init(&t);
	const char *args[] = {"--kernel", kernel(),  "--initrd", initrd(), "--cmdline",
			      "nt=ticks", "--vcpus", "2",	 NULL};
	vmt_spawn(&t, args);
	cr_assert(vmt_wait_file(&t, t.console, "NT-TICK 1\n", VMT_TIMEOUT_S), "no ticks");
	control(&t, "pause", &r);
	control(&t, "stop", &r);
	int st = vmt_wait(&t, VMT_TIMEOUT_S);
	cr_expect_eq(st, VMM_EXIT_STOPPED, "status %d", st);
	vmt_fini(&t);
}

Test(boot, sigterm_stops_with_status_4)
{
	struct vmt t;
	vmt_init(&t);
	const char *args[] = {"--kernel",  kernel(),   "--initrd", initrd(),
			      "--cmdline", "nt=ticks", NULL};
	vmt_spawn(&t, args);
	cr_assert(vmt_wait_file(&t, t.console, "NT-TICK 1\n", VMT_TIMEOUT_S), "no ticks");
	kill(t.pid, SIGTERM);
	int st = vmt_wait(&t, VMT_TIMEOUT_S);
	cr_expect_eq(st, VMM_EXIT_STOPPED, "status %d", st);
	expect_log(&t, "stopping");
	vmt_fini(&t);
}

Test(boot, setup_errors_exit_1)
{
	struct vmt t;
	vmt_init(&t);
	const char *not_elf[] = {"--kernel", "/etc/hostname", NULL};
	vmt_spawn(&t, not_elf);
	cr_expect_eq(vmt_wait(&t, VMT_TIMEOUT_S), VMM_EXIT_SETUP);
	expect_log(&t, "not a valid x86_64 vmlinux");
	const char *no_kernel[] = {"--mem", "128", NULL};
	vmt_spawn(&t, no_kernel);
	cr_expect_eq(vmt_wait(&t, VMT_TIMEOUT_S), VMM_EXIT_SETUP);
	const char *bad_vcpus[] = {"--kernel", kernel(), "--vcpus", "0", NULL};
	vmt_spawn(&t, bad_vcpus);
	cr_expect_eq(vmt_wait(&t, VMT_TIMEOUT_S), VMM_EXIT_SETUP);
	const char *huge_initrd[] = {"--kernel", kernel(), "--initrd", kernel(),
				     "--mem",	 "16",	   NULL};
	vmt_spawn(&t, huge_initrd);
	cr_expect_eq(vmt_wait(&t, VMT_TIMEOUT_S), VMM_EXIT_SETUP);
	vmt_fini(&t);
}
