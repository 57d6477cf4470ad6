// SPDX-License-Identifier: Apache-2.0
/*
 * The vmm backend (backend-vm.c, vm-proc.c, images.c, vm-tools.c, pool.c) without KVM:
 * tests/unit/nucleusd/fake-vmm.c stands in for nucleus-vmm (control socket, vsock
 * handshake spliced to a real guest agent, nucleus-init-host). Boot with a workspace,
 * every guest tool whole and streamed, the catalogue's answers, stop through the control
 * socket, a VMM that dies during the boot, and shutdown with a guest call and a boot in
 * flight (cancelled and joined at once; ASan checks that nothing leaks).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <event2/event.h>

#include "helpers.h"
#include "nucleusd/nucleusd.h"

#define SB_ID "sb-00000000000000a1"

static char dir[64];
static struct event_base *base;
static struct nd_backend *be;
static json_t *spec;
static struct nd_sandbox_info sb;

struct waiter {
	bool done;
	int err;
	char reason[256];
	struct nd_boot_result res;
	json_t *result;
	char out[2][256]; /* streamed stdout, stderr */
};

static void touch(const char *name, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
}

static void setup(void)
{
	char kernel[128], initrd[128];
	struct nd_vm_config cfg = {0};
	struct nd_err e = {0};

	th_tmpdir(dir, sizeof(dir));
	touch("vmlinux", kernel, sizeof(kernel));
	touch("initramfs.cpio.gz", initrd, sizeof(initrd));
	setenv("FAKE_VMM_AGENT", GUEST_INIT_HOST, 1);
	unsetenv("FAKE_VMM_MODE");
	cfg.vmm = FAKE_VMM;
	cfg.kernel = kernel;
	cfg.initrd = initrd;
	cfg.data_dir = dir;
	cr_assert_eq(nd_vm_backend__new(&cfg, &be, &e), 0, "%s", e.msg);
	base = event_base_new();
	cr_assert_not_null(base);
	/* No nucleusd: nothing here makes a running VM die unasked. */
	be->attach(be->ctx, base, NULL);
	spec = json_pack("{s{sisb}}", "workspace", "size_mib", 8, "persist", 0);
	memset(&sb, 0, sizeof(sb));
	sb.id = SB_ID;
	sb.spec = spec;
	sb.vcpus = 1;
	sb.memory_mib = 64;
}

static void teardown(void)
{
	nd_backend__free(be);
	event_base_free(base);
	json_decref(spec);
	th_rmrf(dir);
}

TestSuite(backend_vm, .init = setup, .fini = teardown, .timeout = 120);

static void boot_done(void *token, int err, const struct nd_boot_result *res, const char *reason)
{
	struct waiter *w = token;

	cr_assert(!w->done, "a second completion");
	w->done = true;
	w->err = err;
	if (res)
		w->res = *res;
	snprintf(w->reason, sizeof(w->reason), "%s", reason ? reason : "");
}

static void tool_done(void *token, int err, json_t *result, const char *reason)
{
	struct waiter *w = token;

	cr_assert(!w->done, "a second completion");
	w->done = true;
	w->err = err;
	w->result = json_incref(result);
	snprintf(w->reason, sizeof(w->reason), "%s", reason ? reason : "");
}

static int chunk(void *token, int fd, const void *data, size_t len)
{
	struct waiter *w = token;
	char *o = w->out[fd == 2];
	size_t n = strlen(o);

	cr_assert(!w->done, "output after the completion");
	snprintf(o + n, sizeof(w->out[0]) - n, "%.*s", (int)len, (const char *)data);
	return 0;
}

static void wait_for(struct waiter *w)
{
	for (int i = 0; i < 30000 && !w->done; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	cr_assert(w->done, "no completion");
}

static void boot(struct waiter *w)
{
	struct nd_err e = {0};

	memset(w, 0, sizeof(*w));
	cr_assert_eq(be->boot(be->ctx, &sb, boot_done, w, &e), 0, "%s", e.msg);
	wait_for(w);
}

/* A tool call through the backend; the result (or NULL) stays in @w. */
static int tool(struct waiter *w, const char *name, const char *args, bool stream, struct nd_err *e)
{
	json_t *a = json_loads(args, 0, NULL);
	int r;

	cr_assert_not_null(a, "test JSON %s", args);
	memset(w, 0, sizeof(*w));
	memset(e, 0, sizeof(*e));
	r = stream ? be->tool_stream(be->ctx, &sb, name, a, chunk, tool_done, w, e)
		   : be->tool(be->ctx, &sb, name, a, tool_done, w, e);
	json_decref(a);
	if (r == 0)
		wait_for(w);
	return r;
}

static json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Children of this process (the VMMs the backend runs) not yet reaped; with @end, killed. */
static int children(bool end)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d))) {
		char path[300], buf[512], *p, state = 0;
		FILE *f;
		int ppid = 0;

		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2 || ppid != getpid())
			continue;
		n++;
		if (end)
			reap(atoi(de->d_name));
	}
	closedir(d);
	return n;
}

/* Ends every child of this process (the VMMs the backend left running). */
static void reap_children(void)
{
	children(true);
}

Test(backend_vm, boot_tools_and_stop)
{
	struct waiter w;
	struct nd_err e;
	char args[256], disk[128];
	pid_t pid;

	boot(&w);
	cr_assert_eq(w.err, 0, "boot: %s", w.reason);
	pid = (pid_t)w.res.vmm_pid;
	cr_assert_gt(pid, 0);
	snprintf(disk, sizeof(disk), "%s/vms/%s/workspace.ext4", dir, SB_ID);
	cr_assert_eq(access(disk, F_OK), 0, "the workspace image was made");

	snprintf(args, sizeof(args),
		 "{\"path\": \"%s/hello.txt\", \"content\": \"aGkK\", "
		 "\"encoding\": \"base64\", \"mode\": 384}",
		 dir);
	cr_assert_eq(tool(&w, "write_file", args, false, &e), 0, "%s", e.msg);
	cr_assert_eq(w.err, 0, "%s", w.reason);
	cr_assert_eq(jint(w.result, "size"), 3);
	json_decref(w.result);
	snprintf(args, sizeof(args), "{\"path\": \"%s/hello.txt\"}", dir);
	cr_assert_eq(tool(&w, "read_file", args, false, &e), 0, "%s", e.msg);
	cr_assert_eq(w.err, 0, "%s", w.reason);
	cr_assert_str_eq(json_string_value(json_object_get(w.result, "content")), "hi\n");
	json_decref(w.result);
	snprintf(args, sizeof(args), "{\"path\": \"%s\"}", dir);
	cr_assert_eq(tool(&w, "list", args, false, &e), 0, "%s", e.msg);
	cr_assert_eq(w.err, 0, "%s", w.reason);
	cr_assert_geq(json_array_size(json_object_get(w.result, "entries")), 3);
	json_decref(w.result);

	cr_assert_eq(tool(&w, "run",
			  "{\"argv\": [\"sh\", \"-c\", \"echo out; echo err >&2; exit 3\"]}", false,
			  &e),
		     0, "%s", e.msg);
	cr_assert_eq(w.err, 0, "%s", w.reason);
	cr_assert_eq(jint(w.result, "exit_code"), 3);
	cr_assert_str_eq(json_string_value(json_object_get(w.result, "stdout")), "out\n");
	cr_assert_str_eq(json_string_value(json_object_get(w.result, "stderr")), "err\n");
	json_decref(w.result);
	cr_assert_eq(tool(&w, "run", "{\"argv\": [\"sh\", \"-c\", \"echo a; echo b >&2; exit 2\"]}",
			  true, &e),
		     0, "%s", e.msg);
	cr_assert_eq(w.err, 0, "%s", w.reason);
	cr_assert_eq(jint(w.result, "exit_code"), 2);
	cr_assert_null(json_object_get(w.result, "stdout"), "streamed: no stdout in the result");
	cr_assert_str_eq(w.out[0], "a\n");
	cr_assert_str_eq(w.out[1], "b\n");
	json_decref(w.result);
	cr_assert_eq(tool(&w, "run", "{\"argv\": [\"/no/such/program\"]}", false, &e), 0);
	cr_assert_lt(w.err, 0, "a program that does not exist fails the call");
	cr_assert_null(w.result);

	/* The catalogue's answers, synchronously, without a completion. */
	cr_assert_eq(tool(&w, "echo", "{}", false, &e), -ENOENT);
	cr_assert_str_eq(e.code, "unknown_tool");
	cr_assert_eq(tool(&w, "web_fetch", "{\"url\": \"https://x/\"}", false, &e), -ENOSYS);
	cr_assert_str_eq(e.code, "not_implemented");
	cr_assert_eq(tool(&w, "run", "{\"argv\": []}", false, &e), -EINVAL);
	cr_assert_str_eq(e.code, "bad_args");
	cr_assert_eq(tool(&w, "read_file", "{\"path\": \"/\"}", true, &e), -EINVAL);
	cr_assert_str_eq(e.code, "bad_value");
	cr_assert(!w.done);

	memset(&e, 0, sizeof(e));
	cr_assert_eq(be->pause(be->ctx, &sb, &e), 0, "%s", e.msg);
	cr_assert_eq(be->resume(be->ctx, &sb, &e), 0, "%s", e.msg);
	cr_assert_eq(be->stop(be->ctx, &sb, &e), 0, "%s", e.msg);
	/* The VMM exits (status 4, stopped); the backend reaps it on SIGCHLD. */
	for (int i = 0; i < 5000 && kill(pid, 0) == 0; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	cr_assert_neq(kill(pid, 0), 0, "the stopped VMM was not reaped");
	cr_assert_neq(access(disk, F_OK), 0, "the temporary workspace went with the VM");
	cr_assert_eq(tool(&w, "run", "{\"argv\": [\"true\"]}", false, &e), -EHOSTDOWN);
}

Test(backend_vm, a_vmm_that_dies_fails_the_boot_with_its_status)
{
	struct waiter w;

	setenv("FAKE_VMM_MODE", "exit3", 1);
	boot(&w);
	cr_assert_lt(w.err, 0);
	cr_assert_not_null(strstr(w.reason, "exited with status 3"), "%s", w.reason);
}

/*
 * The boot's watchdog: a guest agent that never answers fails the boot at the backend's
 * limit, the VMM is killed, and the reason names the VMM's last boot phase.
 */
Test(backend_vm, a_guest_that_never_answers_fails_the_boot_naming_the_last_phase)
{
	struct nd_vm_config cfg = {.vmm = FAKE_VMM, .data_dir = dir, .boot_timeout_s = 1};
	char kernel[128], initrd[128];
	struct nd_err e = {0};
	struct waiter w;

	nd_backend__free(be);
	snprintf(kernel, sizeof(kernel), "%s/vmlinux", dir);
	snprintf(initrd, sizeof(initrd), "%s/initramfs.cpio.gz", dir);
	cfg.kernel = kernel;
	cfg.initrd = initrd;
	cr_assert_eq(nd_vm_backend__new(&cfg, &be, &e), 0, "%s", e.msg);
	be->attach(be->ctx, base, NULL);
	setenv("FAKE_VMM_MODE", "mute", 1);
	boot(&w);
	cr_assert_eq(w.err, -ETIMEDOUT, "%d %s", w.err, w.reason);
	cr_assert_not_null(strstr(w.reason, "did not answer within 1 s"), "%s", w.reason);
	cr_assert_not_null(strstr(w.reason, "last boot phase: first_run"), "%s", w.reason);
	/* the watchdog killed the VMM, and the backend reaped it */
	for (int i = 0; i < 5000 && children(false) > 0; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	cr_assert_eq(children(false), 0, "the VMM of the failed boot is still there");
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(backend_vm, shutdown_cancels_a_guest_call_in_flight_and_joins)
{
	struct waiter w, ws, w2;
	struct nd_err e = {0};
	json_t *a = json_pack("{s[ss]}", "argv", "sleep", "1000");
	int64_t t0;
	pid_t pid;

	boot(&w);
	cr_assert_eq(w.err, 0, "boot: %s", w.reason);
	pid = (pid_t)w.res.vmm_pid;
	memset(&w, 0, sizeof(w));
	memset(&ws, 0, sizeof(ws));
	cr_assert_eq(be->tool(be->ctx, &sb, "run", a, tool_done, &w, &e), 0, "%s", e.msg);
	cr_assert_eq(be->tool_stream(be->ctx, &sb, "run", a, chunk, tool_done, &ws, &e), 0, "%s",
		     e.msg);
	json_decref(a);
	/* A second sandbox whose guest never answers: its boot waits for the agent. */
	setenv("FAKE_VMM_MODE", "mute", 1);
	sb.id = "sb-00000000000000a2";
	memset(&w2, 0, sizeof(w2));
	cr_assert_eq(be->boot(be->ctx, &sb, boot_done, &w2, &e), 0, "%s", e.msg);
	for (int i = 0; i < 300; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	cr_assert(!w.done && !ws.done && !w2.done);
	t0 = now_ms();
	nd_backend__free(be);
	be = NULL;
	cr_assert_lt(now_ms() - t0, 1500, "shutdown took %lld ms", (long long)(now_ms() - t0));
	cr_assert(!w.done && !ws.done && !w2.done, "completions are dropped at shutdown");
	/* The VMMs kept running (re-adoption); this test ends them. */
	reap(pid);
	reap_children();
}
