// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target of the HTTP request-head parser. Built two ways: by clang with
 * -fsanitize=fuzzer when meson has -Dfuzz=true (tests/fuzz/meson.build, docs/fuzzing.md
 * says how to run it), and always into the api unit tests, whose driver replays
 * tests/fuzz/corpus/http and seeded mutations of it through fuzz_http_check().
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "tests/fuzz/fuzz_http.h"

/* Small limits, so that inputs reach them. */
#define FUZZ_MAX_HEAD 1024
#define FUZZ_MAX_BODY 100000

static int failf(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int failf(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -1;
}

static bool within(struct api_http_span s, size_t end)
{
	return (size_t)s.off + s.len <= end;
}

/* The invariants of one result over @n bytes at @buf. */
static int check_one(enum api_http_result r, const struct api_http_head *h, const char *buf,
		     size_t n, char *why, size_t wl)
{
	switch (r) {
	case API_HTTP_NEED_MORE:
		if (h->status || h->len)
			return failf(why, wl, "need-more with status %d len %zu", h->status,
				     h->len);
		if (n > FUZZ_MAX_HEAD)
			return failf(why, wl, "need-more after %zu bytes (limit %d)", n,
				     FUZZ_MAX_HEAD);
		return 0;
	case API_HTTP_ERROR:
		if (!(h->status >= 400 && h->status <= 431) && h->status != 505)
			return failf(why, wl, "error status %d", h->status);
		if (!h->code || !*h->code)
			return failf(why, wl, "error %d without a code", h->status);
		if (strnlen(h->msg, sizeof(h->msg)) == sizeof(h->msg) || !h->msg[0])
			return failf(why, wl, "error %d: bad message", h->status);
		return 0;
	case API_HTTP_COMPLETE:
		break;
	default:
		return failf(why, wl, "result %d", (int)r);
	}
	if (h->status || !h->len || h->len > n || h->len > FUZZ_MAX_HEAD || buf[h->len - 1] != '\n')
		return failf(why, wl, "complete: len %zu of %zu, status %d", h->len, n, h->status);
	if (!h->method.len || !within(h->method, h->len) || !h->target.len ||
	    !within(h->target, h->len) || h->method.off + h->method.len >= h->target.off)
		return failf(why, wl, "complete: request line spans out of place");
	if (h->path.off < h->target.off || !within(h->path, h->target.off + h->target.len) ||
	    h->query.off < h->target.off || !within(h->query, h->target.off + h->target.len))
		return failf(why, wl, "complete: path or query outside the target");
	if (h->target.len && buf[h->target.off] != '/' && buf[h->target.off] != 'h' &&
	    buf[h->target.off] != 'H')
		return failf(why, wl, "complete: target starts with 0x%02x",
			     (unsigned char)buf[h->target.off]);
	if (h->minor != 0 && h->minor != 1)
		return failf(why, wl, "complete: HTTP/1.%d", h->minor);
	if (h->nfields > API_HTTP_MAX_FIELDS)
		return failf(why, wl, "complete: %u fields", h->nfields);
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct api_http_field *f = &h->fields[i];

		if (!f->name.len || !within(f->name, h->len) || !within(f->value, h->len) ||
		    f->value.off < f->name.off + f->name.len)
			return failf(why, wl, "complete: field %u out of place", i);
		for (uint32_t k = 0; k < f->value.len; k++) {
			unsigned char c = (unsigned char)buf[f->value.off + k];

			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return failf(why, wl, "complete: field %u has 0x%02x", i, c);
		}
	}
	if (h->has_length ? h->length > FUZZ_MAX_BODY : h->length != 0)
		return failf(why, wl, "complete: length %llu", (unsigned long long)h->length);
	return 0;
}

static bool same(enum api_http_result a, const struct api_http_head *x, enum api_http_result b,
		 const struct api_http_head *y)
{
	if (a != b)
		return false;
	if (a == API_HTTP_ERROR)
		return x->status == y->status && strcmp(x->code, y->code) == 0;
	if (a == API_HTTP_COMPLETE)
		return x->len == y->len && x->nfields == y->nfields &&
		       x->method.len == y->method.len && x->target.off == y->target.off &&
		       x->target.len == y->target.len && x->length == y->length &&
		       x->keep_alive == y->keep_alive && x->minor == y->minor;
	return true;
}

int fuzz_http_check(const uint8_t *data, size_t size, char *why, size_t why_len)
{
	const struct api_http_limits lim = {FUZZ_MAX_HEAD, FUZZ_MAX_BODY};
	struct api_http_head *whole = calloc(1, sizeof(*whole)), *inc = calloc(1, sizeof(*inc));
	char *buf = malloc(size ? size : 1), *out = malloc(size + 1);
	enum api_http_result r, again, ri = API_HTTP_NEED_MORE;
	size_t step = 1 + size / 11, outlen;
	int ret = -1;

	if (!whole || !inc || !buf || !out) {
		failf(why, why_len, "out of memory");
		goto out;
	}
	memcpy(buf, data, size);
	r = api__http_parse(buf, size, &lim, whole);
	if (check_one(r, whole, buf, size, why, why_len) < 0)
		goto out;
	again = api__http_parse(buf, size, &lim, whole);
	if (!same(r, whole, again, whole)) {
		failf(why, why_len, "a second call changed the result %d -> %d", r, again);
		goto out;
	}
	/* The same bytes in growing prefixes, each in a buffer of exactly its size. */
	for (size_t cut = step < size ? step : size;; cut = cut + step < size ? cut + step : size) {
		char *part = malloc(cut ? cut : 1);

		if (!part) {
			failf(why, why_len, "out of memory");
			goto out;
		}
		memcpy(part, data, cut);
		ri = api__http_parse(part, cut, &lim, inc);
		ret = check_one(ri, inc, part, cut, why, why_len);
		free(part);
		if (ret < 0)
			goto out;
		ret = -1;
		if (ri != API_HTTP_NEED_MORE || cut == size)
			break;
	}
	if (!same(r, whole, ri, inc)) {
		failf(why, why_len,
		      "whole: %d (status %d, len %zu); in steps of %zu: %d (status %d, "
		      "len %zu)",
		      r, whole->status, whole->len, step, ri, inc->status, inc->len);
		goto out;
	}
	/* The decoder: never longer than its input, never a NUL inside. */
	for (int plus = 0; plus < 2; plus++) {
		if (api__http_unescape(buf, size, plus, out, &outlen) == 0 &&
		    (outlen > size || memchr(out, '\0', outlen) || out[outlen] != '\0')) {
			failf(why, why_len, "unescape: %zu bytes out of %zu", outlen, size);
			goto out;
		}
	}
	ret = 0;
out:
	free(whole);
	free(inc);
	free(buf);
	free(out);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];

	if (fuzz_http_check(data, size, why, sizeof(why)) < 0) {
		fprintf(stderr, "fuzz_http: %s\n", why);
		__builtin_trap();
	}
	return 0;
}
