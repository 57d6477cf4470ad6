/* SPDX-License-Identifier: Apache-2.0 */
/* The fuzz target of the HTTP head parser (api/http.h) and its invariant check. */
#ifndef NUCLEUS_TESTS_FUZZ_HTTP_H
#define NUCLEUS_TESTS_FUZZ_HTTP_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parses @data whole, again (results stay), and in growing prefixes (each in a buffer
 * of exactly its size), checking the parser's invariants. 0, or -1 with @why filled.
 */
int fuzz_http_check(const uint8_t *data, size_t size, char *why, size_t why_len);

/* libFuzzer's entry point: traps when fuzz_http_check fails. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
