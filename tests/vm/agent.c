/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm-agent suite: the whole stack from the VMM to the guest agent. nucleus-vmm boots the
 * guest kernel with the default initramfs (nucleus-init as PID 1), and the test talks to
 * the agent over the VMM's vsock Unix socket with the host client library (guest/guest.h).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <dirent.h>
#include <unistd.h>

#include "guest/guest.h"
#include "tests/vm/vmtest.h"
#include "vmm/vmm.h"

struct out {
	char *data;
	size_t len, cap;
};

static int out_add(struct out *o, const void *data, size_t len)
{
	if (o->len + len + 1 > o->cap) {
		o->cap = (o->len + len + 1) * 2;
		o->data = realloc(o->data, o->cap);
		cr_assert_not_null(o->data);
	}
	memcpy(o->data + o->len, data, len);
	o->len += len;
	o->data[o->len] = '\0';
	return 0;
}

struct run {
	struct out out, err;
	struct guest_run_result res;
	int rc;
};

static int on_out(void *opaque, const void *data, size_t len)
{
	return out_add(&((struct run *)opaque)->out, data, len);
}

static int on_err(void *opaque, const void *data, size_t len)
{
	return out_add(&((struct run *)opaque)->err, data, len);
}

static void run_free(struct run *r)
{
	free(r->out.data);
	free(r->err.data);
	memset(r, 0, sizeof(*r));
}

/* Run argv in the guest; stdout/stderr collected separately. */
static void grun(struct guest *g, const char *const *argv, struct run *r)
{
	struct guest_run_req req = {.argv = argv};
	struct guest_run_cbs cbs = {.out = on_out, .err = on_err};
	memset(r, 0, sizeof(*r));
	out_add(&r->out, "", 0);
	out_add(&r->err, "", 0);
	r->rc = guest__run(g, &req, &cbs, r, &r->res);
}

static void sh(struct guest *g, const char *script, struct run *r)
{
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	grun(g, argv, r);
	cr_assert_eq(r->rc, 0, "run %s: %s", script, strerror(-r->rc));
}

/* Boot a VM with the agent initramfs (or initrd) and wait until the agent answers. */
static struct guest *boot_agent(struct vmt *t, const char *initrd, const char *const *extra)
{
	const char *args[32];
	int n = 0;
	args[n++] = "--kernel";
	args[n++] = vmt_env("NUCLEUS_KERNEL");
	args[n++] = "--initrd";
	args[n++] = initrd ? initrd : vmt_env("NUCLEUS_INITRD");
	args[n++] = "--vsock";
	args[n++] = t->vsock;
	args[n++] = "--vcpus";
	args[n++] = "2";
	args[n++] = "--mem";
	args[n++] = "256";
	for (int i = 0; extra && extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	vmt_spawn(t, args);

	struct guest *g = NULL;
	cr_assert_eq(guest__open_vsock(t->vsock, GUEST_AGENT_PORT, &g), 0);
	guest__set_timeouts(g, 60000, 300000);
	for (int i = 0; i < VMT_TIMEOUT_S * 2; i++) {
		uint32_t version;
		if (guest__ping(g, &version) == 0)
			return g;
		if (vmt_exited(t))
			break;
		usleep(500 * 1000);
	}
	char *log = vmt_read(t->log);
	cr_assert_fail("agent never answered%s; VMM log:\n%s",
		       vmt_exited(t) ? " (the VMM exited)" : "", log);
	return NULL;
}

/* A hung test fails alone (criterion kills it) instead of eating the whole nested boot. */
TestSuite(agent, .timeout = VMT_TEST_TIMEOUT_S);

static int shutdown_vm(struct vmt *t, struct guest *g)
{
	cr_expect_eq(guest__shutdown(g), 0);
	guest__close(g);
	return vmt_wait(t, VMT_TIMEOUT_S);
}

Test(agent, uname_pid1_and_isolation)
{
	struct vmt t;
	struct run r;
	struct utsname host;
	vmt_init(&t);
	struct guest *g = boot_agent(&t, NULL, NULL);

	const char *uname_argv[] = {"uname", "-r", NULL};
	grun(g, uname_argv, &r);
	cr_assert_eq(r.rc, 0);
	cr_expect_eq(r.res.exit_code, 0);
	uname(&host);
	cr_expect_gt(r.out.len, 1);
	r.out.data[strcspn(r.out.data, "\n")] = '\0';
	cr_expect_str_neq(r.out.data, host.release, "guest kernel is the host's");
	run_free(&r);

	sh(g, "cat /proc/1/comm", &r);
	cr_expect_str_eq(r.out.data, "nucleus-init\n");
	run_free(&r);

	/* host processes are invisible: the VMM and this test do not show up */
	sh(g, "cat /proc/[0-9]*/comm", &r);
	cr_expect_null(strstr(r.out.data, "nucleus-vmm"), "%s", r.out.data);
	cr_expect_null(strstr(r.out.data, "vm-agent"), "%s", r.out.data);
	run_free(&r);

	cr_expect_eq(shutdown_vm(&t, g), VMM_EXIT_SHUTDOWN);
	vmt_fini(&t);
}

Test(agent, exit_codes_signals_and_separate_streams)
{
	struct vmt t;
	struct run r;
	vmt_init(&t);
	struct guest *g = boot_agent(&t, NULL, NULL);

	sh(g, "exit 7", &r);
	cr_expect_eq(r.res.exit_code, 7);
	cr_expect_eq(r.res.signal, 0);
	run_free(&r);

	sh(g, "kill -TERM $$", &r);
	cr_expect_eq(r.res.signal, SIGTERM);
	cr_expect_eq(r.res.exit_code, -1);
	run_free(&r);

	sh(g, "echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 3", &r);
	cr_expect_str_eq(r.out.data, "out1\nout2\n");
	cr_expect_str_eq(r.err.data, "err1\nerr2\n");
	cr_expect_eq(r.res.exit_code, 3);
	run_free(&r);

	const char *nope[] = {"/no/such/program", NULL};
	grun(g, nope, &r);
	cr_expect_lt(r.rc, 0, "an unknown program fails to start");
	run_free(&r);

	sh(g, "grep -c ^processor /proc/cpuinfo", &r);
	cr_expect_str_eq(r.out.data, "2\n", "2 vCPUs visible in the guest");
	run_free(&r);

	cr_expect_eq(shutdown_vm(&t, g), VMM_EXIT_SHUTDOWN);
	vmt_fini(&t);
}

static uint8_t *pattern(size_t len, uint32_t seed)
{
	uint8_t *p = malloc(len);
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1664525u + 1013904223u;
		p[i] = (uint8_t)(seed >> 24);
	}
	return p;
}

Test(agent, binary_files_and_10mib_output_byte_exact)
{
	struct vmt t;
	struct run r;
	vmt_init(&t);
	struct guest *g = boot_agent(&t, NULL, NULL);

	/* every byte value, NULs included */
	const size_t small = 70000;
	uint8_t *a = pattern(small, 1);
	memset(a, 0, 100);
	cr_assert_eq(guest__write_file(g, "/tmp/bin", 0640, a, small), 0);
	void *back = NULL;
	size_t back_len = 0;
	cr_assert_eq(guest__read_file_all(g, "/tmp/bin", 1 << 24, &back, &back_len), 0);
	cr_expect_eq(back_len, small);
	cr_expect(back_len == small && memcmp(back, a, small) == 0, "file round trip differs");
	struct guest_stat st;
	cr_assert_eq(guest__stat(g, "/tmp/bin", &st), 0);
	cr_expect_eq(st.size, small);
	cr_expect_eq(st.mode, 0640);
	free(back);
	free(a);

	/* 10 MiB through stdout */
	const size_t big = 10u << 20;
	uint8_t *b = pattern(big, 7);
	cr_assert_eq(guest__write_file(g, "/tmp/big", 0600, b, big), 0);
	sh(g, "cat /tmp/big; echo done >&2", &r);
	cr_expect_eq(r.res.exit_code, 0);
	cr_expect_eq(r.out.len, big, "stdout %zu bytes", r.out.len);
	cr_expect(r.out.len == big && memcmp(r.out.data, b, big) == 0, "stdout differs");
	cr_expect_str_eq(r.err.data, "done\n");
	run_free(&r);
	free(b);

	cr_expect_eq(shutdown_vm(&t, g), VMM_EXIT_SHUTDOWN);
	vmt_fini(&t);
}

Test(agent, workspace_disk_keeps_a_file_across_boots)
{
	struct vmt t;
	struct run r;
	char img[128], disk[160], cmd[512];
	vmt_init(&t);
	snprintf(img, sizeof(img), "%s/ws.ext4", t.dir);
	snprintf(cmd, sizeof(cmd), "%s %s 32", vmt_env("NUCLEUS_MKEXT4"), img);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	snprintf(disk, sizeof(disk), "%s", img);
	const char *extra[] = {"--disk", disk, "--cmdline", "nucleus.workspace=/dev/vda", NULL};

	struct guest *g = boot_agent(&t, NULL, extra);
	const char msg[] = "kept across boots\n";
	cr_assert_eq(guest__write_file(g, "/workspace/note.txt", 0644, msg, sizeof(msg) - 1), 0);
	cr_expect_eq(shutdown_vm(&t, g), VMM_EXIT_SHUTDOWN);

	g = boot_agent(&t, NULL, extra);
	sh(g, "cat /workspace/note.txt", &r);
	cr_expect_str_eq(r.out.data, msg);
	run_free(&r);
	cr_expect_eq(shutdown_vm(&t, g), VMM_EXIT_SHUTDOWN);
	vmt_fini(&t);
}

Test(agent, pause_resume_with_agent)
{
	struct vmt t;
	struct run r;
	struct vmm_control_reply c;
	vmt_init(&t);
	struct guest *g = boot_agent(&t, NULL, NULL);
	cr_assert_eq(vmm__control(t.control, "state", &c), 0);
	cr_expect_gt(c.boot_us, 0, "boot timer: the agent wrote READY");
	cr_assert_eq(vmm__control(t.control, "pause", &c), 0);
	cr_expect_str_eq(c.state, "paused");
	cr_assert_eq(vmm__control(t.control, "resume", &c), 0);
	cr_expect_str_eq(c.state, "running");
	sh(g, "echo alive", &r);
	cr_expect_str_eq(r.out.data, "alive\n");
	run_free(&r);
	cr_expect_eq(shutdown_vm(&t, g), VMM_EXIT_SHUTDOWN);
	vmt_fini(&t);
}

/* A guest that breaks the virtio rules ends its own VM with status 3 and one clear
 * log line; another VM running next to it is not affected. */
static void hostile(const char *mode)
{
	struct vmt bad, good;
	struct run r;
	char script[128];
	vmt_init(&bad);
	vmt_init(&good);
	struct guest *gg = boot_agent(&good, NULL, NULL);
	struct guest *gb = boot_agent(&bad, vmt_env("NUCLEUS_POKE_INITRD"), NULL);

	snprintf(script, sizeof(script), "virtio-poke 0xd0000000 %s", mode);
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	grun(gb, argv, &r); /* the connection dies with the VM: any result is fine */
	run_free(&r);
	guest__close(gb);
	int st = vmt_wait(&bad, VMT_TIMEOUT_S);
	cr_expect_eq(st, VMM_EXIT_GUEST_FAULT, "status %d", st);
	char *log = vmt_read(bad.log);
	cr_expect(strstr(log, "guest fault: virtio"), "log:\n%s", log);
	free(log);

	sh(gg, "echo still here", &r);
	cr_expect_str_eq(r.out.data, "still here\n");
	run_free(&r);
	cr_expect_eq(shutdown_vm(&good, gg), VMM_EXIT_SHUTDOWN);
	vmt_fini(&bad);
	vmt_fini(&good);
}

Test(agent, hostile_guest_desc_out_of_bounds)
{
	hostile("desc-oob");
}

Test(agent, hostile_guest_descriptor_loop)
{
	hostile("loop");
}

Test(agent, hostile_guest_huge_length)
{
	hostile("len");
}

Test(agent, hostile_guest_avail_index_jump)
{
	hostile("idx");
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static long rss_kib(void)
{
	char *s = vmt_read("/proc/self/status");
	char *p = strstr(s, "VmRSS:");
	long v = p ? strtol(p + 6, NULL, 10) : -1;
	free(s);
	return v;
}

Test(agent, ten_boots_leak_no_fds_or_memory)
{
	int fds0 = -1;
	long rss0 = -1;
	for (int i = 0; i < 10; i++) {
		struct vmt t;
		struct run r;
		vmt_init(&t);
		struct guest *g = boot_agent(&t, NULL, NULL);
		sh(g, "echo boot", &r);
		cr_expect_str_eq(r.out.data, "boot\n");
		run_free(&r);
		cr_expect_eq(shutdown_vm(&t, g), VMM_EXIT_SHUTDOWN, "boot %d", i);
		vmt_fini(&t);
		if (i == 0) { /* after one full cycle: libraries and caches are warm */
			fds0 = count_fds();
			rss0 = rss_kib();
		}
	}
	cr_expect_eq(count_fds(), fds0, "fds after 10 boots");
	cr_expect_lt(rss_kib() - rss0, 4096, "VmRSS grew from %ld to %ld KiB", rss0, rss_kib());
}
