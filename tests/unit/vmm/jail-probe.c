// SPDX-License-Identifier: Apache-2.0
/*
 * What a program sees in nucleus-jailer's jail (tests/unit/vmm/test-jail.c), one
 * "key value" line each: its ids, pid, no_new_privs, capabilities, hostname, the root's
 * entries, what it can open, write and reach. Static: the jail has no libraries. With
 * an argument N it then sleeps N seconds (the test looks at it from outside).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *err_name(int ok)
{
	return ok ? "ok" : strerror(errno);
}

int main(int argc, char **argv)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2] = {{0}};
	struct sockaddr_in lo = {.sin_family = AF_INET, .sin_port = htons(9)};
	struct rlimit rl;
	char host[64] = "";
	struct dirent *e;
	DIR *dir;
	int fd;

	/* first, before it opens anything: what it inherited beyond stdio, and its umask */
	fd = 0;
	for (int i = 3; i < 1024; i++)
		fd += fcntl(i, F_GETFD) >= 0;
	printf("fds %d\n", fd);
	printf("umask %03o\n", (unsigned)umask(0));
	printf("uid %d\ngid %d\npid %d\n", (int)getuid(), (int)getgid(), (int)getpid());
	printf("nnp %d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	syscall(SYS_capget, &h, d);
	printf("cap_eff %x%08x\ncap_prm %x%08x\n", d[1].effective, d[0].effective, d[1].permitted,
	       d[0].permitted);
	printf("cap_bnd_sys_admin %d\n", prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0));
	gethostname(host, sizeof(host) - 1);
	printf("hostname %s\n", host);
	printf("root");
	dir = opendir("/");
	while (dir && (e = readdir(dir)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			printf(" %s", e->d_name);
	printf("\n");
	if (dir)
		closedir(dir);
	printf("proc %s\n", err_name(access("/proc/self", F_OK) == 0));
	fd = open("/new-file", O_WRONLY | O_CREAT, 0600);
	printf("write_root %s\n", err_name(fd >= 0));
	fd = open("/run/vm/probe-was-here", O_WRONLY | O_CREAT, 0600);
	printf("write_rw %s\n", err_name(fd >= 0 && write(fd, "x", 1) == 1));
	fd = open("/kernel", O_WRONLY);
	printf("write_ro %s\n", err_name(fd >= 0));
	fd = open("/dev/null", O_WRONLY);
	printf("dev_null %s\n", err_name(fd >= 0 && write(fd, "x", 1) == 1));
	fd = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, "127.0.0.1", &lo.sin_addr);
	printf("net %s\n", err_name(fd >= 0 && connect(fd, (struct sockaddr *)&lo, sizeof(lo)) == 0));
	getrlimit(RLIMIT_CORE, &rl);
	printf("rlimit_core %llu\n", (unsigned long long)rl.rlim_cur);
	getrlimit(RLIMIT_NOFILE, &rl);
	printf("rlimit_nofile %llu\n", (unsigned long long)rl.rlim_cur);
	getrlimit(RLIMIT_FSIZE, &rl);
	printf("rlimit_fsize %llu\n", (unsigned long long)rl.rlim_cur);
	printf("environ %s\n", getenv("PATH") ? "PATH" : "empty");
	fflush(stdout);
	if (argc > 1)
		sleep((unsigned)atoi(argv[1]));
	return 0;
}
