/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pid1.c - what nucleus-init does because it is PID 1 in the VM: mount the API file
 * systems, give itself a console, set the hostname, mount the workspace disk named on
 * the kernel command line, listen on vsock, tell the VMM through the status port when
 * the agent is ready, and power off cleanly. Nothing here may end PID 1: failures are
 * logged and the VM goes on without the missing piece, or reboots (a crash, for the
 * VMM) when there is no way to serve.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest/init/agent.h"
#include "vmm/vmm.h"

#define WORKSPACE_DIR "/workspace"

static bool workspace_mounted;

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void mount_one(const char *src, const char *dir, const char *type, unsigned long flags,
		      const char *data)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		agent__log("mkdir %s: %s", dir, strerror(errno));
	if (mount(src, dir, type, flags, data) < 0 && errno != EBUSY)
		agent__log("mount %s on %s: %s", type, dir, strerror(errno));
}

/* The kernel may start init without fds 0-2 (no /dev/console in the initramfs). */
static void console_fds(void)
{
	int fd;

	if (fcntl(0, F_GETFD) >= 0 && fcntl(1, F_GETFD) >= 0 && fcntl(2, F_GETFD) >= 0)
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) < 0)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

/* Value of "key=value" on the kernel command line, copied into out. */
static bool cmdline_get(const char *key, char *out, size_t cap)
{
	char buf[4096], *tok, *save = NULL;
	size_t klen = strlen(key);
	ssize_t n;
	int fd;

	fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	for (tok = strtok_r(buf, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		if (strncmp(tok, key, klen) || tok[klen] != '=')
			continue;
		snprintf(out, cap, "%s", tok + klen + 1);
		return true;
	}
	return false;
}

static void loopback_up(void)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return; /* no IPv4 in this kernel */
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
}

static void mount_workspace(void)
{
	char dev[256];
	struct stat st;
	int tries;

	if (!cmdline_get("nucleus.workspace", dev, sizeof(dev)) || dev[0] != '/')
		return;
	/* devtmpfs gets the node when the disk is probed; it may come a little late. */
	for (tries = 0; stat(dev, &st) < 0 && tries < 250; tries++)
		sleep_ms(20);
	if (mkdir(WORKSPACE_DIR, 0755) < 0 && errno != EEXIST)
		agent__log("mkdir %s: %s", WORKSPACE_DIR, strerror(errno));
	if (mount(dev, WORKSPACE_DIR, "ext4", MS_NOATIME, NULL) < 0) {
		agent__log("workspace %s: mount ext4: %s", dev, strerror(errno));
		return;
	}
	workspace_mounted = true;
}

void pid1__early(void)
{
	char host[65] = "nucleus";

	mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	console_fds();
	mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "ptmxmode=0666,mode=0620");
	mount_one("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_one("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	setenv("PATH", AGENT_DEFAULT_PATH, 1);
	setenv("HOME", "/root", 1);
	cmdline_get("nucleus.hostname", host, sizeof(host));
	if (sethostname(host, strlen(host)) < 0)
		agent__log("sethostname: %s", strerror(errno));
	loopback_up();
	mount_workspace();
}

int pid1__listen_vsock(int *ret_fd)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = GUEST_AGENT_PORT};
	int fd = -1, r = 0;

	/* The vsock transport registers when the device is probed: allow it a moment. */
	for (int tries = 0; tries < 250; tries++) {
		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
		    listen(fd, 128) == 0)
			break;
		r = -errno;
		if (fd >= 0)
			close(fd);
		fd = -1;
		sleep_ms(20);
	}
	if (fd < 0) {
		agent__log("vsock port %u: %s", GUEST_AGENT_PORT, strerror(-r));
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* The status port needs CONFIG_X86_IOPL_IOPERM (ioperm) or /dev/port (CONFIG_DEVPORT). */
static void status_out(uint8_t v)
{
#if defined(__x86_64__) || defined(__i386__)
	static bool allowed;
	int fd, err;

	if (allowed || ioperm(VM_STATUS_PORT, 1, 1) == 0) {
		allowed = true;
		__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"((uint16_t)VM_STATUS_PORT));
		return;
	}
	err = errno;
	fd = open("/dev/port", O_WRONLY | O_CLOEXEC);
	if (fd >= 0 && pwrite(fd, &v, 1, VM_STATUS_PORT) == 1) {
		close(fd);
		return;
	}
	if (fd >= 0)
		close(fd);
	agent__log("status port 0x%x: ioperm: %s; /dev/port unusable (kernel needs "
		   "CONFIG_X86_IOPL_IOPERM=y)",
		   VM_STATUS_PORT, strerror(err));
#else
	(void)v;
#endif
}

void pid1__ready(void)
{
	status_out(VM_STATUS_READY);
}

/* Reaps until no child is left or ms passed. */
static void reap_all(long ms)
{
	for (long waited = 0; waited <= ms; waited += 10) {
		pid_t p;

		while ((p = waitpid(-1, NULL, WNOHANG)) > 0)
			;
		if (p < 0 && errno == ECHILD)
			return;
		sleep_ms(10);
	}
}

void pid1__poweroff(void)
{
	agent__log("shutdown requested");
	kill(-1, SIGTERM);
	reap_all(2000);
	kill(-1, SIGKILL);
	reap_all(2000);
	sync();
	if (workspace_mounted && umount2(WORKSPACE_DIR, 0) < 0) {
		agent__log("umount %s: %s", WORKSPACE_DIR, strerror(errno));
		umount2(WORKSPACE_DIR, MNT_DETACH);
	}
	sync();
	status_out(VM_STATUS_SHUTDOWN);
	reboot(RB_AUTOBOOT);
	agent__log("reboot: %s", strerror(errno));
	for (;;)
		pause();
}

void pid1__crash(const char *why)
{
	/* No VM_STATUS_SHUTDOWN: the VMM reports a crash, which this is. */
	agent__log("fatal: %s; rebooting", why);
	sync();
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}
