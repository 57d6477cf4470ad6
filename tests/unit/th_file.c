// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "tests/unit/th_file.h"

/* Read to EOF rather than trusting a size: /proc files and logs that grow meanwhile. */
char *th_slurp_fd(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	cr_assert_not_null(buf);
	for (;;) {
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		cr_assert_geq(n, 0, "read: %s", strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

char *th_slurp(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf;

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	buf = th_slurp_fd(fd);
	close(fd);
	return buf;
}

void th_tmpdir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/nucleus-test-XXXXXX");
	cr_assert_not_null(mkdtemp(buf));
	cr_assert_eq(chmod(buf, 0755), 0);
}

void th_rmrf(const char *dir)
{
	char cmd[512];

	if (!dir[0] || strncmp(dir, "/tmp/nucleus-test-", 18) != 0)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

int th_fork_piped(int *fd)
{
	int fds[2], pid;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	close(fds[pid == 0 ? 0 : 1]);
	*fd = fds[pid == 0 ? 1 : 0];
	return pid;
}
