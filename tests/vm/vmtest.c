/* SPDX-License-Identifier: Apache-2.0 */
/* vmtest.c - see vmtest.h. */
#include "vmtest.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *vmt_env(const char *name)
{
	const char *v = getenv(name);
	cr_assert(v && *v, "%s is not set (run through meson test / suite.sh)", name);
	return v;
}

void vmt_init(struct vmt *t)
{
	memset(t, 0, sizeof(*t));
	strcpy(t->dir, "/tmp/vmt-XXXXXX");
	cr_assert_not_null(mkdtemp(t->dir));
	snprintf(t->console, sizeof(t->console), "%s/console", t->dir);
	snprintf(t->log, sizeof(t->log), "%s/vmm.log", t->dir);
	snprintf(t->control, sizeof(t->control), "%s/control.sock", t->dir);
	snprintf(t->vsock, sizeof(t->vsock), "%s/vsock.sock", t->dir);
	t->pid = -1;
}

void vmt_spawn(struct vmt *t, const char *const *args)
{
	const char *argv[64];
	int n = 0;
	argv[n++] = t->vmm ? t->vmm : vmt_env("NUCLEUS_VMM");
	argv[n++] = "--console";
	argv[n++] = t->console;
	argv[n++] = "--control";
	argv[n++] = t->control;
	for (int i = 0; args[i]; i++) {
		cr_assert_lt(n, 63);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	int log = open(t->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert_geq(log, 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* A test that crashes or times out must not leave its VM running. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(log, STDERR_FILENO);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(log);
	t->pid = pid;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int vmt_wait(struct vmt *t, int timeout_s)
{
	int st = vmt_wait_raw(t, timeout_s);

	if (!WIFEXITED(st)) {
		char *log = vmt_read(t->log);
		cr_assert_fail("nucleus-vmm died of signal %d; log:\n%s", WTERMSIG(st), log);
	}
	return WEXITSTATUS(st);
}

int vmt_wait_raw(struct vmt *t, int timeout_s)
{
	double end = now() + timeout_s;
	int st;
	cr_assert_gt(t->pid, 0);
	for (;;) {
		pid_t r = waitpid(t->pid, &st, WNOHANG);
		cr_assert_geq(r, 0);
		if (r == t->pid)
			break;
		if (now() > end) {
			kill(t->pid, SIGKILL);
			waitpid(t->pid, &st, 0);
			t->pid = -1;
			char *log = vmt_read(t->log);
			cr_assert_fail("nucleus-vmm did not exit; log:\n%s", log);
		}
		usleep(50 * 1000);
	}
	t->pid = -1;
	return st;
}

char *vmt_read(const char *file)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return strdup("");
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	size_t n;
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 2)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	/* the guest tty turns \n into \r\n: compare text without the \r */
	size_t w = 0;
	for (size_t i = 0; i < len; i++)
		if (buf[i] != '\r')
			buf[w++] = buf[i];
	buf[w] = '\0';
	return buf;
}

bool vmt_exited(struct vmt *t)
{
	siginfo_t si;

	if (t->pid <= 0)
		return false;
	/* peek only (WNOWAIT): the VMM stays waitable for vmt_wait */
	memset(&si, 0, sizeof(si));
	waitid(P_PID, (id_t)t->pid, &si, WEXITED | WNOHANG | WNOWAIT);
	return si.si_pid == t->pid;
}

bool vmt_wait_file(struct vmt *t, const char *file, const char *needle, int timeout_s)
{
	double end = now() + timeout_s;
	for (;;) {
		char *s = vmt_read(file);
		bool found = strstr(s, needle) != NULL;
		free(s);
		if (found)
			return true;
		if (vmt_exited(t)) {
			s = vmt_read(file);
			found = strstr(s, needle) != NULL;
			free(s);
			return found;
		}
		if (now() > end)
			return false;
		usleep(50 * 1000);
	}
}

void vmt_fini(struct vmt *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
		t->pid = -1;
	}
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	if (system(cmd) != 0) {
		/* best effort */
	}
}
