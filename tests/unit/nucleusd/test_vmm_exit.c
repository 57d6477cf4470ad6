// SPDX-License-Identifier: Apache-2.0
/*
 * The reason a dead nucleus-vmm leaves (exit_text in nucleusd/vm-proc.c), through the vmm
 * backend's boot: a VMM killed by SIGSYS (its seccomp filter, vmm/seccomp.c) is reported
 * as "seccomp: ...", the reason the boot fails with and a running sandbox becomes failed
 * with (docs/daemon.md, "Seccomp"); other signals keep their names. A shell script that
 * kills itself stands in for the VMM (no KVM).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <event2/event.h>

#include "helpers.h"
#include "nucleusd/nucleusd.h"

static char dir[64];

struct waiter {
	bool done;
	int err;
	char reason[256];
};

static void touch(const char *name, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
}

/* A "nucleus-vmm" that kills itself with @sig (no core file). */
static void fake_vmm(const char *sig, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/nucleus-vmm", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "#!/bin/sh\nulimit -c 0\nkill -s %s $$\nsleep 60\n", sig);
	fclose(f);
	cr_assert_eq(chmod(path, 0755), 0);
}

static void boot_done(void *token, int err, const struct nd_boot_result *res, const char *reason)
{
	struct waiter *w = token;

	w->done = true;
	w->err = err;
	snprintf(w->reason, sizeof(w->reason), "%s", reason ? reason : "");
}

/* Boots a sandbox on a VMM that dies of @sig; the boot's failure reason in @w. */
static void boot_dying(const char *sig, struct waiter *w)
{
	char kernel[128], initrd[128], vmm[128];
	struct nd_vm_config cfg = {0};
	struct nd_sandbox_info sb = {0};
	struct nd_err e = {0};
	struct nd_backend *be;
	struct event_base *base;

	touch("vmlinux", kernel, sizeof(kernel));
	touch("initramfs.cpio.gz", initrd, sizeof(initrd));
	fake_vmm(sig, vmm, sizeof(vmm));
	cfg.vmm = vmm;
	cfg.kernel = kernel;
	cfg.initrd = initrd;
	cfg.data_dir = dir;
	cr_assert_eq(nd_vm_backend__new(&cfg, &be, &e), 0, "%s", e.msg);
	base = event_base_new();
	cr_assert_not_null(base);
	be->attach(be->ctx, base, NULL);
	sb.id = "sb-00000000000000b1";
	sb.spec = json_object();
	sb.vcpus = 1;
	sb.memory_mib = 64;
	memset(w, 0, sizeof(*w));
	cr_assert_eq(be->boot(be->ctx, &sb, boot_done, w, &e), 0, "%s", e.msg);
	for (int i = 0; i < 30000 && !w->done; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	cr_assert(w->done, "no completion");
	nd_backend__free(be);
	event_base_free(base);
	json_decref(sb.spec);
}

static void setup(void)
{
	th_tmpdir(dir, sizeof(dir));
}

static void teardown(void)
{
	th_rmrf(dir);
}

TestSuite(vmm_exit, .init = setup, .fini = teardown, .timeout = 120);

struct exit_case {
	char sig[8];
	char reason[80]; /* the reason starts with it */
};

ParameterizedTestParameters(vmm_exit, the_reason_names_the_cause)
{
	static struct exit_case cases[] = {
		{"SYS", "seccomp: nucleus-vmm made a forbidden system call (SIGSYS)"},
		{"KILL", "nucleus-vmm was killed by signal 9 (Killed)"},
		{"SEGV", "nucleus-vmm was killed by signal 11 (Segmentation fault)"},
	};

	return cr_make_param_array(struct exit_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct exit_case *c, vmm_exit, the_reason_names_the_cause)
{
	struct waiter w;

	boot_dying(c->sig, &w);
	cr_expect_lt(w.err, 0, "the boot of a dead VMM fails");
	cr_expect_eq(strncmp(w.reason, c->reason, strlen(c->reason)), 0,
		     "SIG%s: reason \"%s\", want \"%s\"", c->sig, w.reason, c->reason);
}
