// SPDX-License-Identifier: Apache-2.0
/*
 * The privileged monitor of nucleusd --user (nucleusd/monitor.h, docs/daemon.md
 * "Privilege separation"), over its socket as a compromised daemon would use it: every
 * malformed request is refused with an error and the monitor goes on; it signals only
 * nucleus-vmm processes of the jail's range and its own signer, reaps no signer through
 * the VMM path, opens nothing of DATA through a symlink or beyond the daemon's rights,
 * and ends with the daemon's end of the socket, taking its signer along.
 * Run as root (the tests start it as the daemon would).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "nucleusd/monitor.h"
#include "nucleusd/signer.h"
#include "tests/unit/th_file.h"

#define DAEMON_UID 64000

static char dir[256], data[300];
static struct nd_monitor *mon;

/* A directory of the daemon's (as the daemon would have made it). */
static void daemon_dir(const char *path, mode_t mode)
{
	cr_assert_eq(mkdir(path, mode), 0, "%s", path);
	cr_assert_eq(chown(path, DAEMON_UID, DAEMON_UID), 0);
}

static void setup(void)
{
	struct nd_priv_cfg c = {.uid_first = 200000,
				.uid_count = 16,
				.daemon_uid = DAEMON_UID,
				.daemon_gid = DAEMON_UID};
	char vms[320];

	cr_assert_eq(geteuid(), 0, "the monitor's tests run as root");
	th_tmpdir(dir, sizeof(dir));
	cr_assert_eq(chmod(dir, 0711), 0);
	snprintf(data, sizeof(data), "%s/data", dir);
	daemon_dir(data, 0700);
	snprintf(vms, sizeof(vms), "%s/vms", data);
	daemon_dir(vms, 0700);
	snprintf(c.data_dir, sizeof(c.data_dir), "%s", data);
	snprintf(c.jailer, sizeof(c.jailer), "/bin/false"); /* never reached: checks first */
	snprintf(c.vmm, sizeof(c.vmm), "/bin/true");
	snprintf(c.kernel, sizeof(c.kernel), "/bin/true");
	snprintf(c.initrd, sizeof(c.initrd), "/bin/true");
	snprintf(c.signer, sizeof(c.signer), "%s", SIGNER_PATH);
	snprintf(c.key, sizeof(c.key), "%s/audit.key", dir);
	int r = nd_monitor__fork(&c, &mon);

	if (r == 1) /* the monitor process, ended */
		_exit(0);
	cr_assert_eq(r, 0);
}

static void teardown(void)
{
	nd_monitor__free(mon);
	mon = NULL;
	th_rmrf(dir);
}

TestSuite(monitor, .init = setup, .fini = teardown, .timeout = 60);

/* Raw bytes to the monitor; its reply (asserts one came, of the reply's size). */
static struct mon_reply raw(const void *msg, size_t len)
{
	struct mon_reply rep;
	int fd = nd_monitor__fd(mon);

	cr_assert_eq(send(fd, msg, len, 0), (ssize_t)len);
	cr_assert_eq(recv(fd, &rep, sizeof(rep), 0), (ssize_t)sizeof(rep), "no reply");
	return rep;
}

static struct mon_reply spawn(const char *id, const char *image, uint32_t uid, uint32_t disk)
{
	struct mon_req q = {.type = MON_SPAWN_VMM,
			    .vm = {.vcpus = 1, .mem_mib = 128, .uid = uid, .disk = disk}};

	snprintf(q.vm.id, sizeof(q.vm.id), "%s", id);
	snprintf(q.vm.image, sizeof(q.vm.image), "%s", image);
	return raw(&q, sizeof(q));
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fputs(text, f) >= 0 && fclose(f) == 0, true);
}

static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char buf[65536];
	size_t n;

	cr_assert(in && out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		cr_assert_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	cr_assert_eq(fclose(out), 0);
}

/* A spawn the monitor refuses before any jail, with @what in its reason. */
static void refused(const char *id, const char *image, uint32_t uid, uint32_t disk,
		    const char *what)
{
	struct mon_reply rep = spawn(id, image, uid, disk);

	cr_assert_lt(rep.r, 0, "spawned: %s", rep.reason);
	cr_assert_not_null(strstr(rep.reason, what), "%s", rep.reason);
}

static pid_t start(const char *path, char *const argv[])
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		execv(path, argv);
		_exit(127);
	}
	return pid;
}

static bool alive(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) == 0;
}

Test(monitor, malformed_requests_are_refused_and_it_goes_on)
{
	struct mon_req q = {.type = MON_KILL_VMM, .pid = 1};
	struct mon_reply rep;
	uint32_t word = MON_SIGNER_START;

	rep = raw(&word, sizeof(word));
	cr_assert_eq(rep.r, -EBADMSG, "a short request: %d", rep.r);
	q.zero = 1;
	rep = raw(&q, sizeof(q));
	cr_assert_eq(rep.r, -EINVAL, "the reserved field: %d", rep.r);
	q.zero = 0;
	q.type = 99;
	rep = raw(&q, sizeof(q));
	cr_assert_eq(rep.r, -EOPNOTSUPP, "an unknown type: %d", rep.r);
	/* a VM request out of bounds: no jailer is run, no path is made from it */
	cr_assert_eq(spawn("../x", "", 200000, 0).r, -EINVAL);
	cr_assert_eq(spawn("", "", 200000, 0).r, -EINVAL);
	cr_assert_eq(spawn("sb-A", "", 200000, 0).r, -EINVAL);
	cr_assert_eq(spawn("abc", "../../etc", 200000, 0).r, -EINVAL);
	cr_assert_eq(spawn("abc", "", 5, 0).r, -EINVAL, "a uid out of the range");
	cr_assert_eq(spawn("abc", "", 200016, 0).r, -EINVAL, "a uid past the range");
	cr_assert_eq(spawn("abc", "", 200000, 7).r, -EINVAL, "a disk kind");
	memset(&q, 0, sizeof(q));
	q.type = MON_SPAWN_VMM;
	memset(q.vm.id, 'a', sizeof(q.vm.id)); /* no NUL */
	q.vm.vcpus = 1;
	q.vm.mem_mib = 128;
	q.vm.uid = 200000;
	cr_assert_eq(raw(&q, sizeof(q)).r, -EINVAL);
	memset(&q, 0, sizeof(q));
	q.type = MON_CGROUP_RMDIR;
	snprintf(q.vm.id, sizeof(q.vm.id), "a/b");
	cr_assert_eq(raw(&q, sizeof(q)).r, -EINVAL);
	/* still there, and it still works */
	int fd;
	pid_t pid;

	cr_assert_eq(nd_monitor__signer_start(mon, &fd, &pid), 0);
	cr_assert_gt(pid, 0);
	close(fd);
	int st;

	cr_assert_eq(nd_monitor__signer_end(mon, pid, 1000, &st), 0);
}

Test(monitor, it_signals_only_vmms_of_the_range_and_its_signer)
{
	char fake[320];
	char *sleep_argv[] = {"sleep", "30", NULL};
	pid_t other = start("/bin/sleep", sleep_argv), named, sp;
	int fd, st;
	struct mon_req q = {.type = MON_REAP};

	/* not a nucleus-vmm: left alone */
	cr_assert_eq(nd_monitor__kill_vmm(mon, other), -ESRCH);
	cr_assert_eq(nd_monitor__kill_vmm(mon, 1), -ESRCH);
	/* a nucleus-vmm by name, but root's: neither a jail's uid nor the daemon's */
	snprintf(fake, sizeof(fake), "%s/nucleus-vmm", dir);
	copy_file("/bin/sleep", fake);
	cr_assert_eq(chmod(fake, 0755), 0);
	named = start(fake, sleep_argv);
	for (int i = 0; i < 100; i++) { /* exec'd: its comm is the new name */
		char path[64], comm[32] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/comm", (int)named);
		f = fopen(path, "r");
		if (f && fgets(comm, sizeof(comm), f) && strncmp(comm, "nucleus-vmm", 11) == 0) {
			fclose(f);
			break;
		}
		if (f)
			fclose(f);
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
	cr_assert_eq(nd_monitor__kill_vmm(mon, named), -EPERM);
	cr_assert(alive(other) && alive(named), "a refused kill killed");
	/* the signer: ended by MON_SIGNER_END with its own pid only, never reaped as a VMM */
	cr_assert_eq(nd_monitor__signer_start(mon, &fd, &sp), 0);
	q.pid = sp;
	cr_assert_eq(raw(&q, sizeof(q)).r, -EPERM);
	cr_assert_eq(nd_monitor__signer_end(mon, other, 0, &st), -EPERM);
	cr_assert_eq(nd_monitor__signer_end(mon, sp, 1000, &st), 0);
	cr_assert_neq(kill(sp, 0), 0, "the signer still runs");
	close(fd);
	kill(other, SIGKILL);
	kill(named, SIGKILL);
	waitpid(other, NULL, 0);
	waitpid(named, NULL, 0);
}

/*
 * What the jail would show is opened with the daemon's rights and no symlink below DATA:
 * a daemon that owns DATA cannot have root hand it (or a jail) another file.
 */
Test(monitor, it_opens_nothing_of_data_through_a_symlink_or_beyond_the_daemons_rights)
{
	char run[400], path[400], secret[400];
	struct stat st;
	struct mon_reply rep;

	/* the run dir a symlink to a root directory */
	snprintf(run, sizeof(run), "%s/vms/aaa", data);
	cr_assert_eq(symlink("/etc", run), 0);
	refused("aaa", "", 200000, ND_DISK_NONE, "the run dir");
	cr_assert_eq(stat("/etc", &st), 0);
	cr_assert_eq(st.st_uid, 0, "/etc changed hands");
	/* a persisted workspace that is a symlink to a root file, and one only root reads */
	snprintf(run, sizeof(run), "%s/vms/bbb", data);
	daemon_dir(run, 0700);
	snprintf(path, sizeof(path), "%s/workspaces", data);
	daemon_dir(path, 0700);
	snprintf(secret, sizeof(secret), "%s/secret", dir);
	write_file(secret, "root's\n");
	cr_assert_eq(chmod(secret, 0600), 0);
	snprintf(path, sizeof(path), "%s/workspaces/bbb.ext4", data);
	cr_assert_eq(symlink(secret, path), 0);
	refused("bbb", "", 200000, ND_DISK_PERSIST, "the workspace");
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(link(secret, path), 0); /* a hard link: root's file, mode 0600 */
	refused("bbb", "", 200000, ND_DISK_PERSIST, "Permission denied");
	cr_assert_eq(stat(secret, &st), 0);
	cr_assert(st.st_uid == 0 && (st.st_mode & 07777) == 0600, "the secret changed hands");
	/* a persisted workspace of an earlier boot (that VM uid's, the daemon's group's):
	 * opened again and handed to this boot's uid; the jail (here /bin/false) fails */
	cr_assert_eq(unlink(path), 0);
	write_file(path, "ext4\n");
	cr_assert_eq(chown(path, 200007, DAEMON_UID), 0);
	cr_assert_eq(chmod(path, 0660), 0);
	rep = spawn("bbb", "", 200001, ND_DISK_PERSIST);
	cr_assert_eq(rep.r, -ECHILD, "%d %s", rep.r, rep.reason);
	cr_assert_not_null(strstr(rep.reason, "the VMM's jail"), "%s", rep.reason);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(st.st_uid == 200001 && st.st_gid == DAEMON_UID && (st.st_mode & 07777) == 0660,
		  "the workspace is uid %u gid %u mode %04o", (unsigned)st.st_uid,
		  (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777));
	/* an image whose initramfs is a symlink */
	snprintf(path, sizeof(path), "%s/images", data);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/images/img", data);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/images/img/initramfs.cpio.gz", data);
	cr_assert_eq(symlink(secret, path), 0);
	refused("bbb", "img", 200000, ND_DISK_NONE, "image img");
}

Test(monitor, it_ends_with_the_daemons_socket_and_takes_its_signer_along)
{
	pid_t pid = nd_monitor__pid(mon), sp;
	int fd;

	cr_assert_eq(nd_monitor__signer_start(mon, &fd, &sp), 0);
	close(fd);
	nd_monitor__free(mon); /* closes, waits for the monitor */
	mon = NULL;
	cr_assert_neq(kill(pid, 0), 0, "the monitor still runs");
	cr_assert_neq(kill(sp, 0), 0, "its signer still runs");
}

/*
 * An adopted VMM's death (nobody's child here: no exit status) is read from the kernel's
 * seccomp audit record: its pid, a nucleus-vmm, SIGSYS, after the VMM was seen alive.
 */
Test(monitor, an_adopted_vmms_seccomp_death_is_read_from_the_kernel_log)
{
	char log[320];
	int nr = 0;

	snprintf(log, sizeof(log), "%s/kmsg", dir);
	write_file(log,
		   "6,1,1000,-;audit: type=1326 audit(1:1): pid=4242 comm=\"nucleus-vmm\" "
		   "sig=31 arch=c000003e syscall=101 code=0x80000000\n"
		   "6,2,5000000,-;audit: type=1326 audit(1:2): pid=4243 comm=\"nucleus-vmm\" "
		   "sig=31 arch=c000003e syscall=102 code=0x80000000\n"
		   "6,3,5000001,-;audit: type=1326 audit(1:3): pid=4242 comm=\"other\" sig=31 "
		   "arch=c000003e syscall=103 code=0x80000000\n"
		   "6,4,5000002,-;some other line pid=4242 \n"
		   "6,5,5000003,-;audit: type=1326 audit(1:5): pid=4242 comm=\"nucleus-vmm-tri\" "
		   "sig=31 arch=c000003e syscall=57 code=0x80000000\n");
	cr_assert_eq(nd_priv__seccomp_death(log, 4242, 2000000, &nr), 0);
	cr_assert_eq(nr, 57, "the record after it was seen alive: %d", nr);
	/* only an older record (another process of that pid, before) */
	cr_assert_eq(nd_priv__seccomp_death(log, 4243, 6000000, &nr), -ENOENT);
	cr_assert_eq(nd_priv__seccomp_death(log, 4244, 0, &nr), -ENOENT);
	cr_assert_eq(nd_priv__seccomp_death("/nonexistent/kmsg", 4242, 0, &nr), -ENOENT);
	/* through the monitor: a pid it will not look for */
	cr_assert_eq(nd_monitor__seccomp_death(mon, 1, 0, &nr), -EINVAL);
}
