// SPDX-License-Identifier: Apache-2.0
/*
 * nucleus-jailer (vmm/jailer.c) with a probe program in place of nucleus-vmm: what the
 * program sees from inside (its ids, PID 1, no capabilities, no_new_privs, a read-only
 * root holding only what was bound, no /proc, no network, the limits) and from outside
 * (/proc/PID/status, its own namespaces), as root with a uid of its own and as an
 * unprivileged user with a user namespace; a step that fails is exit 125 and one line.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "vmm/jail.h"

#define JAIL_UID 200123

static char dir[64], root[128], run[128], kernel[128];
/* An fd of the test's the jailer inherits as fd 20 (-1: none); fd 9 is always one. */
static int pass_fd = -1;

static void setup(void)
{
	int fd;

	snprintf(dir, sizeof(dir), "/tmp/jail-test-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	chmod(dir, 0755);
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(run, sizeof(run), "%s/run", dir);
	snprintf(kernel, sizeof(kernel), "%s/kernel", dir);
	cr_assert_eq(mkdir(root, 0700), 0);
	cr_assert_eq(mkdir(run, 0700), 0);
	fd = open(kernel, O_WRONLY | O_CREAT, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "vmlinux", 7), 7);
	close(fd);
	chmod(kernel, 0666); /* only the read-only bind stops a write */
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(jail, .init = setup, .fini = teardown, .timeout = 60);

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: the jail of a root daemon, uids of their own");
}

struct run {
	int status;	/* the jailer's */
	pid_t pid;	/* the program's (from --pid-fd) */
	char out[4096]; /* the program's stdout */
	char err[1024]; /* the jailer's stderr */
};

static void read_all(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t k;

	while (n < len - 1 && (k = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
	close(fd);
}

/*
 * Runs nucleus-jailer @args (NULL-ended; --pid-fd 3 added) -- the probe @sleep_s, as
 * @uid (0: as is). With @inspect, called with the program's pid while it sleeps.
 */
static void jail_run(const char *const *args, uid_t uid, const char *sleep_s, struct run *r,
		     void (*inspect)(pid_t pid))
{
	int out[2], err[2], pidp[2];
	const char *argv[48];
	char num[32] = "";
	int n = 0;
	pid_t jailer;

	argv[n++] = JAILER;
	argv[n++] = "--pid-fd";
	argv[n++] = "3";
	while (*args)
		argv[n++] = *args++;
	argv[n++] = "--";
	argv[n++] = "/probe";
	argv[n++] = sleep_s;
	argv[n] = NULL;
	cr_assert_eq(pipe(out), 0);
	cr_assert_eq(pipe(err), 0);
	cr_assert_eq(pipe(pidp), 0);
	jailer = fork();
	cr_assert_geq(jailer, 0);
	if (jailer == 0) {
		if (pass_fd >= 0) /* first: it may have any number */
			dup2(pass_fd, 20);
		dup2(out[1], 1);
		dup2(err[1], 2);
		dup2(pidp[1], 3);
		dup2(out[1], 9); /* inherited, not CLOEXEC: the program must not get it */
		if (uid && (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0))
			_exit(99);
		execv(JAILER, (char *const *)argv);
		_exit(98);
	}
	close(out[1]);
	close(err[1]);
	close(pidp[1]);
	read_all(pidp[0], num, sizeof(num));
	r->pid = (pid_t)atoi(num);
	cr_assert_eq(waitpid(jailer, &r->status, 0), jailer);
	read_all(err[0], r->err, sizeof(r->err));
	if (inspect && r->pid > 0)
		inspect(r->pid);
	if (r->pid > 0)
		kill(r->pid, SIGKILL);
	read_all(out[0], r->out, sizeof(r->out));
}

/* The value of "@key value" in the probe's output. */
static const char *said(const struct run *r, const char *key)
{
	static char v[512];
	char want[64];
	const char *at;

	snprintf(want, sizeof(want), "\n%s ", key);
	at = strstr(r->out, want) ? strstr(r->out, want) + strlen(want)
	     : strncmp(r->out, want + 1, strlen(want) - 1) == 0 ? r->out + strlen(want) - 1
								 : NULL;
	cr_assert_not_null(at, "no %s in:\n%s\n(stderr: %s)", key, r->out, r->err);
	snprintf(v, sizeof(v), "%.*s", (int)strcspn(at, "\n"), at);
	return v;
}

static char status_text[4096];

static const char *status_line(const char *key)
{
	static char v[256];
	const char *at = strstr(status_text, key);

	cr_assert_not_null(at, "no %s in /proc/PID/status", key);
	at += strlen(key);
	at += strspn(at, "\t ");
	snprintf(v, sizeof(v), "%.*s", (int)strcspn(at, "\n"), at);
	return v;
}

static char ns_same[64];

/* From outside: the program's status and namespaces, while it sleeps. */
static void look(pid_t pid)
{
	static const char *const kinds[] = {"mnt", "pid", "net", "ipc", "uts"};
	char path[64], a[128], b[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	read_all(fd, status_text, sizeof(status_text));
	ns_same[0] = '\0';
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, kinds[i]);
		n = readlink(path, a, sizeof(a) - 1);
		a[n > 0 ? n : 0] = '\0';
		snprintf(path, sizeof(path), "/proc/self/ns/%s", kinds[i]);
		n = readlink(path, b, sizeof(b) - 1);
		b[n > 0 ? n : 0] = '\0';
		if (strcmp(a, b) == 0)
			strcat(ns_same, kinds[i]);
	}
}

static void expect_jailed_view(const struct run *r)
{
	char roots[256];

	cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "jailer: %#x %s",
		  r->status, r->err);
	cr_assert_str_eq(said(r, "pid"), "1", "PID 1 of its namespace");
	cr_assert_str_eq(said(r, "nnp"), "1");
	cr_assert_str_eq(said(r, "cap_eff"), "000000000");
	cr_assert_str_eq(said(r, "cap_prm"), "000000000");
	cr_assert_str_eq(said(r, "cap_bnd_sys_admin"), "0");
	cr_assert_str_eq(said(r, "hostname"), "nucleus");
	snprintf(roots, sizeof(roots), " %s ", said(r, "root"));
	cr_assert(strstr(roots, " probe ") && strstr(roots, " kernel ") && strstr(roots, " run ") &&
			  strstr(roots, " dev "),
		  "root: %s", roots);
	cr_assert_eq(strlen(roots), strlen(" probe kernel run dev "), "only what was bound: %s",
		     roots);
	cr_assert_str_eq(said(r, "dev_null"), "ok", "its device node");
	cr_assert_str_eq(said(r, "proc"), strerror(ENOENT));
	cr_assert_str_eq(said(r, "write_root"), strerror(EROFS));
	cr_assert_str_eq(said(r, "write_ro"), strerror(EROFS));
	cr_assert_str_eq(said(r, "write_rw"), "ok");
	cr_assert_str_eq(said(r, "net"), strerror(ENETUNREACH), "no network at all");
	cr_assert_str_eq(said(r, "rlimit_core"), "0");
	cr_assert_str_eq(said(r, "rlimit_nofile"), "256");
	cr_assert_str_eq(said(r, "rlimit_fsize"), "67108864");
	cr_assert_str_eq(said(r, "environ"), "empty");
	cr_assert_str_eq(said(r, "fds"), "0", "fds beyond stdio reach the program");
	cr_assert_str_eq(said(r, "umask"), "000", "its run dir guards its files, not its umask");
	cr_assert_str_eq(status_line("NoNewPrivs:"), "1");
	cr_assert_str_eq(status_line("CapEff:"), "0000000000000000");
	cr_assert_str_eq(status_line("CapBnd:"), "0000000000000000");
	cr_assert_str_eq(ns_same, "", "namespaces shared with the host: %s", ns_same);
}

#define BINDS(run_dir)                                                                             \
	"--bind", PROBE ":/probe", "--bind", kernel_bind, "--bind", run_bind, "--nofile", "256",  \
		"--fsize", "67108864", "--dev", "/dev/null:/dev/null"

/* As root: a uid of its own, every namespace, a root of only its files. */
Test(jail, a_root_daemon_jails_with_a_uid_of_its_own)
{
	char kernel_bind[160], run_bind[160], owned[160];
	struct run r;
	struct stat st;

	need_root();
	snprintf(kernel_bind, sizeof(kernel_bind), "%s:%s", kernel, JAIL_KERNEL);
	snprintf(run_bind, sizeof(run_bind), "%s:%s:rw", run, JAIL_RUN);
	cr_assert_eq(chown(run, JAIL_UID, JAIL_UID), 0);
	{
		const char *args[] = {"--root", root, "--uid", "200123", "--gid", "200123",
				      BINDS(run), NULL};

		jail_run(args, 0, "5", &r, look);
	}
	expect_jailed_view(&r);
	cr_assert_str_eq(said(&r, "uid"), "200123");
	cr_assert_str_eq(said(&r, "gid"), "200123");
	cr_assert_not_null(strstr(status_line("Uid:"), "200123"), "%s", status_line("Uid:"));
	snprintf(owned, sizeof(owned), "%s/probe-was-here", run);
	cr_assert_eq(stat(owned, &st), 0);
	cr_assert_eq(st.st_uid, JAIL_UID, "written as its uid");
}

/* As an unprivileged user: a user namespace; the same view, uid 0 of it, no capability. */
Test(jail, an_unprivileged_daemon_jails_in_a_user_namespace)
{
	char kernel_bind[160], run_bind[160];
	struct run r;

	need_root(); /* to be the unprivileged user 65534 */
	snprintf(kernel_bind, sizeof(kernel_bind), "%s:%s", kernel, JAIL_KERNEL);
	snprintf(run_bind, sizeof(run_bind), "%s:%s:rw", run, JAIL_RUN);
	cr_assert_eq(chown(root, 65534, 65534), 0);
	cr_assert_eq(chown(run, 65534, 65534), 0);
	{
		const char *args[] = {"--root", root, "--userns", BINDS(run), NULL};

		jail_run(args, 65534, "5", &r, look);
	}
	expect_jailed_view(&r);
	cr_assert_str_eq(said(&r, "uid"), "0", "root of its namespace only");
	cr_assert_not_null(strstr(status_line("Uid:"), "65534"), "%s", status_line("Uid:"));
}

/*
 * A bind with ":fd=N" binds the path and checks it is the file open as N (the daemon's
 * monitor checked that open file): the same file works, another is a failed jail.
 */
Test(jail, a_bind_must_be_the_file_that_was_checked)
{
	char kernel_bind[160], run_bind[160], other[160];
	struct run r;
	const char *args[] = {"--root", root, "--uid", "200123", "--gid", "200123", BINDS(run),
			      NULL};

	need_root();
	snprintf(kernel_bind, sizeof(kernel_bind), "%s:%s:fd=20", kernel, JAIL_KERNEL);
	snprintf(run_bind, sizeof(run_bind), "%s:%s:rw", run, JAIL_RUN);
	cr_assert_eq(chown(run, JAIL_UID, JAIL_UID), 0);
	pass_fd = open(kernel, O_RDONLY);
	cr_assert_geq(pass_fd, 0);
	jail_run(args, 0, "0", &r, NULL);
	close(pass_fd);
	cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%#x %s", r.status, r.err);
	cr_assert_str_eq(said(&r, "fds"), "0", "the checked file's fd reached the program");
	/* the path now names another file than the one open */
	snprintf(other, sizeof(other), "%s/other", dir);
	pass_fd = open(other, O_RDONLY | O_CREAT, 0644);
	cr_assert_geq(pass_fd, 0);
	memset(&r, 0, sizeof(r));
	jail_run(args, 0, "0", &r, NULL);
	close(pass_fd);
	pass_fd = -1;
	cr_assert_str_eq(r.out, "", "the program ran: %s", r.out);
	cr_assert_not_null(strstr(r.err, "nucleus-jailer: bind: not the file that was checked"),
			   "%s", r.err);
}

/* A step that fails: exit 125, one line naming it, the program never runs. */
Test(jail, a_failed_step_is_exit_125_and_one_line)
{
	struct run r;
	const char *args[] = {"--root", root, "--uid", "200123", "--gid", "200123",
			      "--bind", "/nonexistent-file:/x", NULL};

	need_root();
	jail_run(args, 0, "0", &r, NULL);
	cr_assert(WIFEXITED(r.status), "%#x", r.status);
	/* the jailer forked before the root was made: the program-to-be said it */
	cr_assert_str_eq(r.out, "", "the program ran: %s", r.out);
	cr_assert_not_null(strstr(r.err, "nucleus-jailer: /nonexistent-file: "), "%s", r.err);
}

/* The cgroup: made, limited and joined where cgroup v2 lets us; else a loud refusal. */
Test(jail, a_cgroup_leaf_with_its_limits_or_a_loud_refusal)
{
	char base[700] = "", leaf[760], line[600], path[800], v[64] = "";
	struct run r;
	FILE *f = fopen("/proc/self/cgroup", "r");
	int fd;

	need_root();
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(base, sizeof(base), "/sys/fs/cgroup%s",
				 strcmp(line + 3, "/") ? line + 3 : "");
		}
	if (f)
		fclose(f);
	snprintf(leaf, sizeof(leaf), "%s/nucleus-jail-test-%d", base, (int)getpid());
	{
		const char *args[] = {"--root",	      root,	   "--uid",	   "200123",
				      "--gid",	      "200123",	   "--bind",	   PROBE ":/probe",
				      "--cgroup",     leaf,	   "--memory-max", "268435456",
				      "--pids-max",   "64",	   "--cpu-max",	   "50000 100000",
				      NULL};

		jail_run(args, 0, "2", &r, NULL);
	}
	if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) {
		snprintf(path, sizeof(path), "%s/memory.max", leaf);
		fd = open(path, O_RDONLY);
		cr_assert_geq(fd, 0);
		read_all(fd, v, sizeof(v));
		cr_assert_str_eq(v, "268435456\n");
		snprintf(path, sizeof(path), "%s/pids.max", leaf);
		fd = open(path, O_RDONLY);
		cr_assert_geq(fd, 0);
		read_all(fd, v, sizeof(v));
		cr_assert_str_eq(v, "64\n");
		usleep(200000);
		rmdir(leaf);
	} else {
		cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == JAIL_EXIT_SETUP, "%#x",
			  r.status);
		cr_assert_not_null(strstr(r.err, "nucleus-jailer: cgroup"), "%s", r.err);
		cr_assert_str_eq(r.out, "", "ran without its cgroup");
		rmdir(leaf);
	}
}
