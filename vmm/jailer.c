// SPDX-License-Identifier: Apache-2.0
/*
 * nucleus-jailer: puts one nucleus-vmm (or any program) in its jail, then execs it
 * (docs/vmm.md "The jail"). A program of its own, started by the daemon with
 * posix_spawn: the set-up runs in a fresh single-threaded process, where the daemon
 * between fork and exec could only call async-signal-safe functions (it has threads).
 *
 *   1. cgroup: joins --cgroup (a v2 leaf it creates) after writing memory.max, cpu.max
 *      and pids.max, so that the program is born in it;
 *   2. namespaces: mount, PID, IPC, UTS and network (and a user namespace with
 *      --userns, for a daemon that is not root), then fork: the child is PID 1 of the
 *      new PID namespace; the jailer writes its pid (as the daemon sees it) to
 *      --pid-fd and exits, so the program is reparented to the daemon (a subreaper);
 *   3. the root: a small tmpfs on --root holding only the --bind'ed files and
 *      directories (read-only unless :rw) and the --dev nodes (its own node, mode 0600
 *      and its uid's, so a host's 0600 /dev/kvm serves it; bound in a user namespace),
 *      pivot_root into it, the old root detached (on a host whose root is the initramfs,
 *      which pivot_root refuses: moved over / and chroot), the tmpfs remounted
 *      read-only; no /proc, no /sys, nothing of the daemon's;
 *   4. limits: RLIMIT_NOFILE, RLIMIT_CORE 0, RLIMIT_FSIZE (the cgroup's pids.max bounds
 *      its threads);
 *   5. identity: every capability dropped from the bounding set, the groups, gid and uid
 *      (--uid/--gid/--group), or with --userns uid 0 of the namespace with no
 *      capabilities and the securebits locked so that exec grants none;
 *      PR_SET_NO_NEW_PRIVS; then every fd but 0-2 closed, umask 0 (its run dir guards
 *      its files), execve of the program with an empty environment.
 *
 * A failing step is one line on stderr (the VM's vmm.log) and exit status 125
 * (JAIL_EXIT_SETUP); its reasons never reach a guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/jail.h"

#define MAX_BINDS  16
#define MAX_GROUPS 8

struct bind {
	const char *src, *dst;
	bool rw, dev; /* dev: a device node of its own (--dev) */
	int fd;	      /* ":fd=N": the bound file must be the one open as fd N; -1: none */
};

struct jail {
	const char *root, *cgroup, *cpu_max, *hostname;
	struct bind binds[MAX_BINDS];
	size_t n_binds;
	gid_t groups[MAX_GROUPS];
	size_t n_groups;
	long long uid, gid;
	long long memory_max, pids_max, nofile, fsize;
	int pid_fd;
	bool userns;
	char **argv; /* the program and its arguments */
};

static void die(const char *step, int err) __attribute__((noreturn));

static void die(const char *step, int err)
{
	fprintf(stderr, "nucleus-jailer: %s: %s\n", step, strerror(err));
	_exit(JAIL_EXIT_SETUP);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: nucleus-jailer --root DIR [--uid N --gid N [--group N]... | --userns]\n"
		"         [--bind SRC:DST[:rw][:fd=N]]... [--dev SRC:DST]... [--cgroup DIR "
		"[--memory-max "
		"BYTES]\n"
		"         [--cpu-max 'QUOTA PERIOD'] [--pids-max N]] [--nofile N] [--fsize BYTES]\n"
		"         [--hostname NAME] [--pid-fd FD] -- PROGRAM [ARG...]\n");
	_exit(JAIL_EXIT_SETUP);
}

static long long number(const char *s, long long min, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		usage();
	return v;
}

/*
 * SRC:DST[:rw][:fd=N], both absolute; @dev: --dev SRC:DST, a character device. With
 * fd=N (an fd the jailer inherits) the bound file must be the one open as N (same
 * device and inode): the daemon's monitor checked that open file, and a SRC swapped
 * since (a symlink, another file) fails the jail.
 */
static void parse_bind(struct jail *j, char *arg, bool dev)
{
	char *dst = strchr(arg, ':'), *mode, *fd;
	struct bind *b = &j->binds[j->n_binds];

	if (j->n_binds == MAX_BINDS || !dst)
		usage();
	*dst++ = '\0';
	b->fd = -1;
	fd = strstr(dst, ":fd=");
	if (fd) {
		*fd = '\0';
		b->fd = (int)number(fd + 4, 3, 1023);
	}
	mode = strchr(dst, ':');
	if (mode)
		*mode++ = '\0';
	if (arg[0] != '/' || dst[0] != '/' || strcmp(dst, "/") == 0 || strstr(dst, "..") ||
	    (mode && (dev || strcmp(mode, "rw") != 0)) || (dev && b->fd >= 0))
		usage();
	b->src = arg;
	b->dst = dst;
	b->rw = mode != NULL || dev;
	b->dev = dev;
	j->n_binds++;
}

static void parse(int argc, char **argv, struct jail *j)
{
	static const struct option lo[] = {{"root", required_argument, NULL, 'r'},
					   {"uid", required_argument, NULL, 'u'},
					   {"dev", required_argument, NULL, 'D'},
					   {"gid", required_argument, NULL, 'g'},
					   {"group", required_argument, NULL, 'G'},
					   {"userns", no_argument, NULL, 'U'},
					   {"bind", required_argument, NULL, 'b'},
					   {"cgroup", required_argument, NULL, 'c'},
					   {"memory-max", required_argument, NULL, 'm'},
					   {"cpu-max", required_argument, NULL, 'C'},
					   {"pids-max", required_argument, NULL, 'p'},
					   {"nofile", required_argument, NULL, 'n'},
					   {"fsize", required_argument, NULL, 'f'},
					   {"hostname", required_argument, NULL, 'H'},
					   {"pid-fd", required_argument, NULL, 'P'},
					   {NULL, 0, NULL, 0}};
	int o;

	*j = (struct jail){.uid = -1, .gid = -1, .pid_fd = -1, .hostname = "nucleus"};
	while ((o = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (o) {
		case 'r':
			j->root = optarg;
			break;
		case 'u':
			j->uid = number(optarg, 1, UINT32_MAX - 1);
			break;
		case 'g':
			j->gid = number(optarg, 1, UINT32_MAX - 1);
			break;
		case 'G':
			if (j->n_groups == MAX_GROUPS)
				usage();
			j->groups[j->n_groups++] = (gid_t)number(optarg, 0, UINT32_MAX - 1);
			break;
		case 'U':
			j->userns = true;
			break;
		case 'b':
		case 'D':
			parse_bind(j, optarg, o == 'D');
			break;
		case 'c':
			j->cgroup = optarg;
			break;
		case 'm':
			j->memory_max = number(optarg, 1 << 20, LLONG_MAX);
			break;
		case 'C':
			j->cpu_max = optarg;
			break;
		case 'p':
			j->pids_max = number(optarg, 1, 1 << 22);
			break;
		case 'n':
			j->nofile = number(optarg, 16, 1 << 20);
			break;
		case 'f':
			j->fsize = number(optarg, 1 << 20, LLONG_MAX);
			break;
		case 'H':
			j->hostname = optarg;
			break;
		case 'P':
			j->pid_fd = (int)number(optarg, 3, 1 << 20);
			break;
		default:
			usage();
		}
	}
	if (optind >= argc || !j->root || j->root[0] != '/' ||
	    j->userns == (j->uid >= 0 || j->gid >= 0) || (j->uid >= 0) != (j->gid >= 0) ||
	    (j->userns && j->n_groups) ||
	    (!j->cgroup && (j->memory_max || j->cpu_max || j->pids_max)))
		usage();
	j->argv = argv + optind;
}

/* ---- 1. cgroup ---- */

/* @optional: a file the kernel may not have (ENOENT) is skipped. */
static void write_file(const char *dir, const char *name, const char *text, const char *step,
		       bool optional)
{
	char path[PATH_MAX];
	int fd, n;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		die(step, ENAMETOOLONG);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && optional && errno == ENOENT)
		return;
	if (fd < 0)
		die(step, errno);
	n = (int)write(fd, text, strlen(text));
	if (n != (int)strlen(text))
		die(step, n < 0 ? errno : EIO);
	close(fd);
}

static void join_cgroup(const struct jail *j)
{
	char v[64];

	if (!j->cgroup)
		return;
	if (mkdir(j->cgroup, 0755) < 0 && errno != EEXIST)
		die("cgroup: mkdir", errno);
	if (j->memory_max) {
		snprintf(v, sizeof(v), "%lld", j->memory_max);
		write_file(j->cgroup, "memory.max", v, "cgroup: memory.max", false);
		/* absent without swap accounting (swapaccount=0): nothing to cap then */
		write_file(j->cgroup, "memory.swap.max", "0", "cgroup: memory.swap.max", true);
	}
	if (j->cpu_max)
		write_file(j->cgroup, "cpu.max", j->cpu_max, "cgroup: cpu.max", false);
	if (j->pids_max) {
		snprintf(v, sizeof(v), "%lld", j->pids_max);
		write_file(j->cgroup, "pids.max", v, "cgroup: pids.max", false);
	}
	write_file(j->cgroup, "cgroup.procs", "0", "cgroup: cgroup.procs", false);
}

/* ---- 2. namespaces ---- */

static void map_self(const char *file, long long outer)
{
	char v[64];

	snprintf(v, sizeof(v), "0 %lld 1\n", outer);
	write_file("/proc/self", file, v, file, false);
}

static void enter_namespaces(const struct jail *j)
{
	int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET;
	long long uid = getuid(), gid = getgid();

	if (j->userns)
		flags |= CLONE_NEWUSER;
	if (unshare(flags) < 0)
		die("unshare", errno);
	if (j->userns) { /* the daemon's uid and gid are root of the namespace */
		write_file("/proc/self", "setgroups", "deny", "setgroups", false);
		map_self("uid_map", uid);
		map_self("gid_map", gid);
	}
}

/* The daemon learns the program's pid; the jailer's part ends here. */
static void fork_program(const struct jail *j)
{
	char v[32];
	pid_t pid = fork();

	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		if (j->pid_fd >= 0)
			close(j->pid_fd);
		return;
	}
	if (j->pid_fd >= 0) {
		int n = snprintf(v, sizeof(v), "%d\n", (int)pid);

		if (write(j->pid_fd, v, (size_t)n) != n) {
			kill(pid, SIGKILL);
			die("pid-fd", errno ? errno : EIO);
		}
	}
	_exit(0);
}

/* ---- 3. the root ---- */

enum target { T_PARENTS, T_DIR, T_FILE };

/* Makes @path's parents (absolute, in the new root) and, but for T_PARENTS, @path itself. */
static void make_target(const char *path, enum target kind)
{
	char tmp[PATH_MAX];
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		die("bind target", ENAMETOOLONG);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			die("bind target: mkdir", errno);
		*p = '/';
	}
	if (kind == T_PARENTS)
		return;
	if (kind == T_DIR) {
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			die("bind target: mkdir", errno);
		return;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		die("bind target: create", errno);
	close(fd);
}

static void bind_one(const struct jail *j, const struct bind *b)
{
	char dst[PATH_MAX];
	struct stat st;
	unsigned long ro = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID;

	if (stat(b->src, &st) < 0)
		die(b->src, errno);
	if (snprintf(dst, sizeof(dst), "%s%s", j->root, b->dst) >= (int)sizeof(dst))
		die("bind", ENAMETOOLONG);
	if (b->dev && !S_ISCHR(st.st_mode))
		die(b->src, ENODEV);
	if (b->dev && !j->userns) {
		/* its own node, the program's alone (mode 0600), whatever the host's mode */
		make_target(dst, T_PARENTS);
		if (mknod(dst, S_IFCHR | 0600, st.st_rdev) < 0 ||
		    chown(dst, (uid_t)j->uid, (gid_t)j->gid) < 0)
			die(b->dst, errno);
		return;
	}
	make_target(dst, S_ISDIR(st.st_mode) ? T_DIR : T_FILE);
	if (mount(b->src, dst, NULL, MS_BIND, NULL) < 0)
		die(b->src, errno);
	if (b->fd >= 0) {
		struct stat want, got;

		if (fstat(b->fd, &want) < 0 || stat(dst, &got) < 0)
			die(b->dst, errno);
		if (want.st_dev != got.st_dev || want.st_ino != got.st_ino)
			die("bind: not the file that was checked", ESTALE);
	}
	/* device nodes keep working; everything else is nodev; all is nosuid */
	if (!S_ISCHR(st.st_mode))
		ro |= MS_NODEV;
	if (mount(NULL, dst, NULL, b->rw ? ro & ~MS_RDONLY : ro, NULL) < 0)
		die("bind: remount", errno);
}

static void enter_root(const struct jail *j)
{
	char old[PATH_MAX];

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die("mount: private", errno);
	/* not nodev: the --dev nodes live on it; nothing else can be made there */
	if (mount("nucleus-jail", j->root, "tmpfs", MS_NOSUID, "size=1m,mode=0755") < 0)
		die("mount: tmpfs root", errno);
	for (size_t i = 0; i < j->n_binds; i++)
		bind_one(j, &j->binds[i]);
	snprintf(old, sizeof(old), "%s/.old", j->root);
	if (mkdir(old, 0700) < 0)
		die("mkdir .old", errno);
	if (syscall(SYS_pivot_root, j->root, old) == 0) {
		if (chdir("/") < 0)
			die("chdir /", errno);
		if (umount2("/.old", MNT_DETACH) < 0)
			die("umount old root", errno);
		if (rmdir("/.old") < 0)
			die("rmdir /.old", errno);
	} else if (errno == EINVAL) {
		/*
		 * The host's root is the initramfs (rootfs: a machine that booted into
		 * it, as the nested test harness's L1 does), which pivot_root refuses:
		 * the new root is moved over / instead and entered with chroot. The old
		 * root stays mounted below it, out of reach of a process without
		 * CAP_SYS_ADMIN and CAP_SYS_CHROOT, which this one loses below.
		 */
		if (rmdir(old) < 0 || chdir(j->root) < 0)
			die("enter the root", errno);
		if (mount(j->root, "/", NULL, MS_MOVE, NULL) < 0)
			die("mount --move the root", errno);
		if (chroot(".") < 0 || chdir("/") < 0)
			die("chroot", errno);
	} else {
		die("pivot_root", errno);
	}
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID, NULL) < 0)
		die("remount / read-only", errno);
	if (sethostname(j->hostname, strlen(j->hostname)) < 0)
		die("sethostname", errno);
}

/* ---- 4. limits ---- */

static void limit(int res, long long v, const char *step)
{
	struct rlimit rl = {(rlim_t)v, (rlim_t)v};

	if (setrlimit(res, &rl) < 0)
		die(step, errno);
}

static void set_limits(const struct jail *j)
{
	limit(RLIMIT_CORE, 0, "RLIMIT_CORE");
	limit(RLIMIT_NOFILE, j->nofile ? j->nofile : 1024, "RLIMIT_NOFILE");
	if (j->fsize)
		limit(RLIMIT_FSIZE, j->fsize, "RLIMIT_FSIZE");
}

/* ---- 5. identity ---- */

static void drop_caps(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2] = {{0}};

	for (int c = 0; c <= CAP_LAST_CAP; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			die("PR_CAPBSET_DROP", errno);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		die("PR_CAP_AMBIENT", errno);
	if (syscall(SYS_capset, &h, d) < 0)
		die("capset", errno);
}

static void become(const struct jail *j)
{
	if (j->userns) {
		/* uid 0 of the namespace: exec must not make it privileged again */
		if (prctl(PR_SET_SECUREBITS,
			  SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
				  SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED,
			  0, 0, 0) < 0)
			die("PR_SET_SECUREBITS", errno);
		drop_caps();
	} else {
		for (int c = 0; c <= CAP_LAST_CAP; c++)
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
				die("PR_CAPBSET_DROP", errno);
		if (setgroups(j->n_groups, j->groups) < 0)
			die("setgroups", errno);
		if (setresgid((gid_t)j->gid, (gid_t)j->gid, (gid_t)j->gid) < 0)
			die("setresgid", errno);
		if (setresuid((uid_t)j->uid, (uid_t)j->uid, (uid_t)j->uid) < 0)
			die("setresuid", errno); /* from root: every capability goes */
		if (setresuid(0, 0, 0) == 0)
			die("setresuid kept root", EPERM);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("PR_SET_NO_NEW_PRIVS", errno);
}

int main(int argc, char **argv)
{
	static char *const no_env[] = {NULL};
	struct jail j;

	parse(argc, argv, &j);
	join_cgroup(&j);
	enter_namespaces(&j);
	fork_program(&j); /* from here on: the program-to-be, PID 1 of its namespace */
	enter_root(&j);
	set_limits(&j);
	become(&j);
	/* The program gets stdin, stdout and stderr only: the files the daemon passed to
	 * --bind as /proc/self/fd/N are bound by now. Its umask is 0: what it creates
	 * (sockets, console log) is guarded by the run dir it is given (0770, the
	 * daemon's and this uid's group's), and the daemon must connect to its sockets. */
	if (syscall(SYS_close_range, 3, ~0U, 0) < 0)
		die("close_range", errno);
	umask(0);
	execve(j.argv[0], j.argv, no_env);
	die(j.argv[0], errno);
}
