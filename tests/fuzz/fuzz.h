/* SPDX-License-Identifier: Apache-2.0 */
/* What every fuzz harness shares (tests/fuzz/fuzz.c): failing an invariant, fd leaks. */
#ifndef NUCLEUS_TESTS_FUZZ_H
#define NUCLEUS_TESTS_FUZZ_H

/* Aborts with a message: the harnesses' invariant failures (libFuzzer saves the input). */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define FZ_CHECK(cond, ...)                                                                        \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fz_fail(__VA_ARGS__);                                                      \
	} while (0)

/* The lowest free fd now: equal before and after a device's life, or it leaked one. */
int fz_lowest_fd(void);

#endif
