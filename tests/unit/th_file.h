/* SPDX-License-Identifier: Apache-2.0 */
/* Files for unit tests: one way to read one whole. */
#ifndef NUCLEUS_TESTS_TH_FILE_H
#define NUCLEUS_TESTS_TH_FILE_H

/* The whole of @path, NUL-terminated (free it). Asserts that it can be read. */
char *th_slurp(const char *path);

#endif
