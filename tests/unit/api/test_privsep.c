// SPDX-License-Identifier: Apache-2.0
/*
 * nucleusd --user (docs/daemon.md, "Privilege separation"), the real daemon (fake
 * backend) started as root: it runs as the user beside a root monitor that starts the
 * signer; the user cannot read the audit key; a root data dir is handed over; the
 * monitor restarts a killed signer; the daemon stops without its monitor, and the
 * monitor and signer end with the daemon; bad --user values are refused; the daemon's
 * own seccomp filter.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <jansson.h>

#include "api/daemon/confine.h"
#include "tests/unit/api/daemon.h"
#include "tests/unit/th_file.h"

#define USER	 "64000:64001"
#define USER_UID 64000
#define USER_GID 64001
#define BASIC	 "{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": 128}"

static struct thd d;

static void init(void)
{
	memset(&d, 0, sizeof(d));
	d.extra[0] = "--user";
	d.extra[1] = USER;
	thd_start(&d);
}

static void fini(void)
{
	thd_cleanup(&d);
}

TestSuite(privsep, .init = init, .fini = fini, .timeout = 120);

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000}, NULL);
}

/* The value of "@key:" in /proc/@pid/status, tabs as spaces ("" when absent). */
static const char *status_of(pid_t pid, const char *key)
{
	static char val[256];
	char path[64], line[512];
	size_t n = strlen(key);
	FILE *f;

	val[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, key, n) == 0 && line[n] == ':') {
			char *v = line + n + 1;

			v += strspn(v, "\t ");
			v[strcspn(v, "\n")] = '\0';
			for (char *t = v; *t; t++)
				*t = *t == '\t' ? ' ' : *t;
			snprintf(val, sizeof(val), "%s", v);
			break;
		}
	if (f)
		fclose(f);
	return val;
}

/* The child of @parent named @comm that is not a zombie (0: none). */
static pid_t child_of(pid_t parent, const char *comm)
{
	DIR *proc = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	cr_assert_not_null(proc);
	while ((e = readdir(proc)) && !found) {
		pid_t pid = (pid_t)atoi(e->d_name);

		if (pid > 0 && atoi(status_of(pid, "PPid")) == parent &&
		    strcmp(status_of(pid, "Name"), comm) == 0 && status_of(pid, "State")[0] != 'Z')
			found = pid;
	}
	closedir(proc);
	return found;
}

/* open(@path) by a child running as the user: 0 or -errno. */
static int open_as_user(const char *path)
{
	gid_t g = USER_GID;
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (setgroups(1, &g) < 0 || setgid(USER_GID) < 0 || setuid(USER_UID) < 0)
			_exit(100);
		_exit(open(path, O_RDONLY) < 0 ? errno : 0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 100);
	return -WEXITSTATUS(st);
}

static void expect_owner(const char *name, uid_t uid, unsigned mode)
{
	char path[400];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", d.data, name);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	cr_assert_eq(st.st_uid, uid, "%s is uid %u's", name, (unsigned)st.st_uid);
	if (mode)
		cr_assert_eq(st.st_mode & 07777, mode, "%s is mode %04o", name,
			     (unsigned)(st.st_mode & 07777));
}

static bool gone(pid_t pid)
{
	for (int i = 0; i < 500; i++) {
		if (kill(pid, 0) < 0 || status_of(pid, "State")[0] == 'Z')
			return true;
		sleep_ms(10);
	}
	return false;
}

Test(privsep, the_daemon_runs_as_the_user_beside_a_root_monitor)
{
	pid_t mon = child_of(d.pid, "nucleus-monitor"), sig;
	char key[400];
	const char *id;

	cr_assert_str_eq(status_of(d.pid, "Uid"), "64000 64000 64000 64000");
	cr_assert_str_eq(status_of(d.pid, "Gid"), "64001 64001 64001 64001");
	cr_assert_str_eq(status_of(d.pid, "Groups"), "64001 ");
	cr_assert_str_eq(status_of(d.pid, "CapEff"), "0000000000000000");
	cr_assert_str_eq(status_of(d.pid, "CapPrm"), "0000000000000000");
	cr_assert_str_eq(status_of(d.pid, "NoNewPrivs"), "1");
	cr_assert_gt(mon, 0, "no nucleus-monitor child of nucleusd %d", (int)d.pid);
	cr_assert_str_eq(status_of(mon, "Uid"), "0 0 0 0");
	cr_assert_str_eq(status_of(mon, "Groups"), "", "the monitor keeps no groups");
	sig = child_of(mon, "nucleus-signer");
	cr_assert_gt(sig, 0, "no nucleus-signer child of the monitor");
	cr_assert_eq(child_of(d.pid, "nucleus-signer"), 0, "the daemon started a signer");
	/* DATA is the user's, the key root's alone */
	expect_owner("", USER_UID, 0700);
	expect_owner("nucleus.db", USER_UID, 0);
	expect_owner("audit.key", 0, 0600);
	snprintf(key, sizeof(key), "%s/audit.key", d.data);
	cr_assert_eq(open_as_user(key), -EACCES, "the user can read the key");
	snprintf(key, sizeof(key), "%s/nucleus.db", d.data);
	cr_assert_eq(open_as_user(key), 0, "the user cannot read its database");
	/* and it works: a sandbox, a tool call, sealed and intact */
	id = thd_create(&d, BASIC);
	thd_settle(&d);
	thd_expect_intact(&d, id);
	thd_finish(&d);
	cr_assert(gone(mon) && gone(sig), "the monitor or signer outlived the daemon's stop");
}

Test(privsep, a_root_data_dir_is_handed_over_and_its_seals_still_verify)
{
	const char *id = thd_create(&d, BASIC);
	char path[400];

	thd_settle(&d);
	thd_stop(&d);
	/* as a root daemon would have left it */
	snprintf(path, sizeof(path), "chown -R 0:0 %s", d.data);
	cr_assert_eq(system(path), 0);
	expect_owner("nucleus.db", 0, 0);
	thd_restart(&d);
	expect_owner("", USER_UID, 0700);
	expect_owner("nucleus.db", USER_UID, 0);
	expect_owner("audit.key", 0, 0600);
	thd_expect_intact(&d, id);
	thd_finish(&d);
}

Test(privsep, a_killed_signer_is_restarted_by_the_monitor)
{
	pid_t mon = child_of(d.pid, "nucleus-monitor"), first = child_of(mon, "nucleus-signer");
	pid_t again;
	const char *id;

	cr_assert_gt(first, 0);
	thd_settle(&d);
	cr_assert_eq(kill(first, SIGKILL), 0);
	id = thd_create(&d, BASIC);
	for (int i = 0; i < 1000 && thd_metric(&d, "nucleus_audit_signer_restarts_total") < 1; i++)
		sleep_ms(10);
	cr_assert_eq(thd_metric(&d, "nucleus_audit_signer_restarts_total"), 1);
	thd_settle(&d);
	cr_assert_eq(thd_metric(&d, "nucleus_audit_sealing_failing"), 0);
	thd_expect_intact(&d, id);
	again = child_of(mon, "nucleus-signer");
	cr_assert(again > 0 && again != first, "signer %d, before %d", (int)again, (int)first);
	cr_assert(gone(first), "the killed signer is left");
	cr_assert_neq(status_of(first, "State")[0], 'Z', "the killed signer is left unreaped");
	thd_finish(&d);
}

Test(privsep, the_daemon_stops_when_its_monitor_is_gone)
{
	pid_t mon = child_of(d.pid, "nucleus-monitor");
	char *log;
	int st = 0;

	cr_assert_gt(mon, 0);
	cr_assert_eq(kill(mon, SIGKILL), 0);
	for (int i = 0; i < 1000 && waitpid(d.pid, &st, WNOHANG) == 0; i++)
		sleep_ms(10);
	cr_assert(WIFEXITED(st), "the daemon did not stop without its monitor");
	d.pid = 0;
	log = th_slurp(d.log);
	cr_assert_not_null(strstr(log, "the privileged monitor is gone: stopping"), "%s", log);
	free(log);
}

Test(privsep, the_monitor_and_signer_end_with_a_killed_daemon)
{
	pid_t mon = child_of(d.pid, "nucleus-monitor"), sig = child_of(mon, "nucleus-signer");

	cr_assert(mon > 0 && sig > 0);
	thd_kill9(&d);
	cr_assert(gone(mon), "the monitor outlived the daemon");
	cr_assert(gone(sig), "the signer outlived the daemon");
}

/* nucleusd with @args (NULL-ended, after the data dir): its exit status, its stderr. */
static int run_daemon(uid_t as, const char *const *args, char *err, size_t len)
{
	const char *argv[16] = {NUCLEUSD_PATH, "--fake-backend", "--data-dir",
				d.data,	       "--socket",	 d.sock};
	int n = 6, fd, st;
	pid_t pid;

	while (*args)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid = th_fork_piped(&fd);
	if (pid == 0) {
		dup2(fd, 2);
		if (as && (setgid(as) < 0 || setuid(as) < 0))
			_exit(100);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	{
		char *out = th_slurp_fd(fd);

		snprintf(err, len, "%s", out ? out : "");
		free(out);
	}
	close(fd);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(privsep, bad_user_values_are_refused)
{
	char err[2048];

	thd_stop(&d);
	cr_assert_eq(run_daemon(0, (const char *[]){"--user", "0", NULL}, err, sizeof(err)), 2);
	cr_assert_not_null(strstr(err, "bad option value '0'"), "%s", err);
	cr_assert_eq(run_daemon(0, (const char *[]){"--user", "root", NULL}, err, sizeof(err)), 2);
	cr_assert_eq(run_daemon(0, (const char *[]){"--user", "no-such-user-here", NULL}, err,
				sizeof(err)),
		     2);
	cr_assert_eq(run_daemon(0, (const char *[]){"--user", "64000:no-such-group", NULL}, err,
				sizeof(err)),
		     2);
	cr_assert_eq(
		run_daemon(USER_UID, (const char *[]){"--user", "64002", NULL}, err, sizeof(err)),
		2);
	cr_assert_not_null(strstr(err, "--user needs root"), "%s", err);
}

/*
 * The daemon's own seccomp filter (api/daemon/confine.c), in a child: what a compromised
 * daemon would reach for fails, what the daemon does (threads, processes, files,
 * sockets) works.
 */
static void *thread_fn(void *arg)
{
	return arg;
}

Test(privsep, the_daemons_filter_denies_the_kernels_surface_it_never_uses)
{
	pid_t pid;
	int st;

	cr_assert_str_eq(status_of(d.pid, "Seccomp"), "2", "the daemon runs unfiltered");
	cr_assert_str_eq(status_of(child_of(d.pid, "nucleus-monitor"), "Seccomp"), "0",
			 "the monitor makes jails: no filter of the daemon's");
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		pthread_t t;
		void *ret = NULL;
		int fds[2];
		char *argv[] = {"true", NULL};
		pid_t spawned;

		if (nd_confine__daemon() < 0)
			_exit(1);
		if (unshare(CLONE_NEWUSER) == 0 || errno != EPERM)
			_exit(2);
		if (mount("none", "/tmp", "tmpfs", 0, NULL) == 0 || errno != EPERM)
			_exit(3);
		if (syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, 0) >= 0 ||
		    errno != EPERM)
			_exit(4);
		if (syscall(SYS_keyctl, 0, 0, 0, 0, 0) == 0 || errno != EPERM)
			_exit(5);
		if (syscall(SYS_io_uring_setup, 1, NULL) >= 0 || errno != EPERM)
			_exit(6);
		if (syscall(SYS_bpf, 0, NULL, 0) >= 0 || errno != EPERM)
			_exit(7);
		if (pthread_create(&t, NULL, thread_fn, fds) != 0 || pthread_join(t, &ret) != 0 ||
		    ret != fds)
			_exit(8);
		if (pipe(fds) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
			_exit(9);
		if (posix_spawnp(&spawned, "true", NULL, NULL, argv, NULL) != 0 ||
		    waitpid(spawned, &st, 0) != spawned || !WIFEXITED(st) || WEXITSTATUS(st))
			_exit(10);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "step %d failed under the filter",
		  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* --user hands over a data dir only: not a shared one, not someone else's directory. */
Test(privsep, a_foreign_or_shared_directory_is_not_handed_over)
{
	char other[sizeof(d.data)], file[sizeof(d.data) + 16], err[2048], saved[sizeof(d.data)];
	struct stat st;

	thd_stop(&d);
	/* a root directory of something else, given by mistake */
	cr_assert_lt(snprintf(other, sizeof(other), "%.250s/etc-like", d.dir), (int)sizeof(other));
	cr_assert_eq(mkdir(other, 0755), 0);
	snprintf(file, sizeof(file), "%s/passwd", other);
	{
		FILE *f = fopen(file, "w");

		cr_assert_not_null(f);
		fputs("root:x:0:0\n", f);
		cr_assert_eq(fclose(f), 0);
	}
	memcpy(saved, d.data, sizeof(saved));
	memcpy(d.data, other, sizeof(d.data));
	cr_assert_eq(run_daemon(0, (const char *[]){"--user", USER, NULL}, err, sizeof(err)), 1);
	cr_assert_not_null(strstr(err, "holds no nucleus.db: not handed over"), "%s", err);
	cr_assert_eq(stat(file, &st), 0);
	cr_assert_eq(st.st_uid, 0, "a file of it was handed over");
	cr_assert_eq(stat(other, &st), 0);
	cr_assert_eq(st.st_uid, 0, "the directory was handed over");
	/* a shared one (a /tmp given by mistake) */
	cr_assert_eq(chmod(other, 01777), 0);
	cr_assert_eq(run_daemon(0, (const char *[]){"--user", USER, NULL}, err, sizeof(err)), 1);
	cr_assert_not_null(strstr(err, "writable by others"), "%s", err);
	cr_assert_eq(stat(file, &st), 0);
	cr_assert_eq(st.st_uid, 0, "a file of it was handed over");
	memcpy(d.data, saved, sizeof(d.data));
}
