/* SPDX-License-Identifier: Apache-2.0 */
/* Files for unit tests: one way to read one whole. */
#ifndef NUCLEUS_TESTS_TH_FILE_H
#define NUCLEUS_TESTS_TH_FILE_H

/* The whole of @path, NUL-terminated (free it). Asserts that it can be read. */
char *th_slurp(const char *path);
/* Everything @fd gives until EOF, NUL-terminated (free it). */
char *th_slurp_fd(int fd);

/*
 * fork() with a pipe from the child to the parent: the child gets 0 and, in @fd, the end
 * it writes; the parent gets the pid and the end it reads. Asserts.
 */
int th_fork_piped(int *fd);
/* A fresh /tmp/nucleus-test-XXXXXX directory (mode 0755) in @buf. */
void th_tmpdir(char *buf, size_t len);
/* rm -rf @dir, only below /tmp/nucleus-test-. */
void th_rmrf(const char *dir);

#endif
