// SPDX-License-Identifier: Apache-2.0
/*
 * The HTTP request-head parser (api/http.c) on its own: what it accepts and how it
 * splits it, what it refuses with which status and code, incremental feeding, and the
 * fuzz target's invariants over the seed corpus and seeded mutations of it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <criterion/criterion.h>

#include "api/http.h"
#include "tests/fuzz/fuzz_http.h"

static const struct api_http_limits lim = {.max_head = 512, .max_body = 1000};

/* Parses @s whole (a buffer of exactly its length); the head goes to @h. */
static enum api_http_result parse(const char *s, size_t n, struct api_http_head *h)
{
	char *buf = malloc(n ? n : 1);
	enum api_http_result r;

	cr_assert_not_null(buf);
	memcpy(buf, s, n);
	memset(h, 0, sizeof(*h));
	r = api__http_parse(buf, n, &lim, h);
	free(buf);
	return r;
}

#define PARSE(lit, h) parse(lit, sizeof(lit) - 1, h)

static bool span_is(const char *buf, struct api_http_span s, const char *want)
{
	return strlen(want) == s.len && memcmp(buf + s.off, want, s.len) == 0;
}

Test(http, a_simple_head)
{
	static const char req[] = "GET /v1/sandboxes?all=true HTTP/1.1\r\nHost: x\r\n"
				  "Content-Type:  application/json ; charset=utf-8 \t\r\n\r\nBODY";
	struct api_http_head h;
	const struct api_http_field *f;

	cr_assert_eq(PARSE(req, &h), API_HTTP_COMPLETE);
	cr_assert_eq(h.len, sizeof(req) - 1 - 4, "the head ends before its body");
	cr_assert(span_is(req, h.method, "GET"));
	cr_assert(span_is(req, h.target, "/v1/sandboxes?all=true"));
	cr_assert(span_is(req, h.path, "/v1/sandboxes"));
	cr_assert(h.has_query);
	cr_assert(span_is(req, h.query, "all=true"));
	cr_assert_eq(h.minor, 1);
	cr_assert(h.keep_alive);
	cr_assert_eq(h.nfields, 2);
	cr_assert(!h.has_length);
	cr_assert_eq(h.length, 0);
	f = api__http_field(&h, req, "content-type");
	cr_assert_not_null(f);
	cr_assert(span_is(req, f->value, "application/json ; charset=utf-8"), "trimmed value");
	cr_assert_null(api__http_field(&h, req, "Content-Length"));
}

Test(http, forms_of_heads_it_accepts)
{
	struct api_http_head h;

	/* empty lines first, bare LF line ends */
	cr_assert_eq(PARSE("\r\n\n\r\nDELETE /x HTTP/1.1\n\n", &h), API_HTTP_COMPLETE);
	cr_assert_eq(h.method.off, 5);
	/* absolute-form: the path is what follows the authority */
	cr_assert_eq(PARSE("GET http://nucleus:80/v1/health?x=%41 HTTP/1.0\r\n\r\n", &h),
		     API_HTTP_COMPLETE);
	cr_assert_eq(h.path.len, strlen("/v1/health"));
	cr_assert_eq(h.minor, 0);
	cr_assert(!h.keep_alive, "HTTP/1.0 closes unless asked");
	cr_assert_eq(PARSE("GET HTTPS://n HTTP/1.1\r\n\r\n", &h), API_HTTP_COMPLETE);
	cr_assert_eq(h.path.len, 0);
	/* an unknown method is a token like any (the server answers it 405) */
	cr_assert_eq(PARSE("BREW /pot HTTP/1.1\r\n\r\n", &h), API_HTTP_COMPLETE);
	/* UTF-8 and other bytes >= 0x80 in values; HTAB inside a value */
	cr_assert_eq(PARSE("GET / HTTP/1.1\r\nX-N: J\xc3\xbcrgen\tcaf\xe9\r\n\r\n", &h),
		     API_HTTP_COMPLETE);
	/* an empty value */
	cr_assert_eq(PARSE("GET / HTTP/1.1\r\nX-Empty:\r\n\r\n", &h), API_HTTP_COMPLETE);
	cr_assert_eq(h.fields[0].value.len, 0);
	/* Connection options, keep-alive on 1.0 */
	cr_assert_eq(PARSE("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h),
		     API_HTTP_COMPLETE);
	cr_assert(h.keep_alive);
	cr_assert_eq(PARSE("GET / HTTP/1.1\r\nConnection: upgrade , close\r\n\r\n", &h),
		     API_HTTP_COMPLETE);
	cr_assert(!h.keep_alive);
	/* Content-Length and Expect */
	cr_assert_eq(
		PARSE("POST / HTTP/1.1\r\nContent-Length: 1000\r\nExpect: 100-Continue\r\n\r\n",
		      &h),
		API_HTTP_COMPLETE);
	cr_assert(h.has_length);
	cr_assert_eq(h.length, 1000);
	cr_assert(h.expect_continue);
	cr_assert_eq(PARSE("POST / HTTP/1.1\r\nContent-Length: 0000\r\n\r\n", &h),
		     API_HTTP_COMPLETE);
	cr_assert(h.has_length);
	cr_assert_eq(h.length, 0);
}

struct bad {
	const char *req;
	int status;
	const char *code;
};

Test(http, heads_it_refuses)
{
	static char big_line[600], big_field[700], many[2048];
	const struct bad cases[] = {
		{"GARBAGE\r\n\r\n", 400, "bad_request_line"},
		{"GET /\r\n\r\n", 400, "bad_request_line"},
		{"GET  / HTTP/1.1\r\n\r\n", 400, "bad_request_line"},
		{" GET / HTTP/1.1\r\n\r\n", 400, "bad_request_line"},
		{"GET / HTTP/1.1 \r\n\r\n", 400, "bad_request_line"},
		{"GET / http/1.1\r\n\r\n", 400, "bad_request_line"},
		{"GET / HTTP/1.12\r\n\r\n", 400, "bad_request_line"},
		{"GET / HTTP/2.0\r\n\r\n", 505, "http_version_not_supported"},
		{"GET / HTTP/0.9\r\n\r\n", 505, "http_version_not_supported"},
		{"G(T / HTTP/1.1\r\n\r\n", 400, "bad_request_line"},
		{"GET /a\tb HTTP/1.1\r\n\r\n", 400, "bad_request_line"},
		{"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 400, "bad_request_line"},
		{"GET /a\"b HTTP/1.1\r\n\r\n", 400, "bad_request_line"},
		{"GET /a#b HTTP/1.1\r\n\r\n", 400, "bad_request_line"},
		{"GET /a%2 HTTP/1.1\r\n\r\n", 400, "bad_request_line"},
		{"GET /a%g0 HTTP/1.1\r\n\r\n", 400, "bad_request_line"},
		{"GET * HTTP/1.1\r\n\r\n", 400, "bad_request_line"},
		{"CONNECT host:443 HTTP/1.1\r\n\r\n", 400, "bad_request_line"},
		{"GET http:///x HTTP/1.1\r\n\r\n", 400, "bad_request_line"},
		{"GET / HTTP/1.1\r\r\n\r\n", 400, "bad_request_line"},
		{"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, "bad_header"},
		{"GET / HTTP/1.1\r\n: x\r\n\r\n", 400, "bad_header"},
		{"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", 400, "bad_header"},
		{"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "bad_header"},
		{"GET / HTTP/1.1\r\nH\xc3\xa9: x\r\n\r\n", 400, "bad_header"},
		{"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400, "bad_header"},
		{"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", 400, "bad_header"},
		{"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400, "bad_header"},
		{"GET / HTTP/1.1\r\nA: \x7f\r\n\r\n", 400, "bad_header"},
		{"GET / HTTP/1.1\r\nA: \x1b[0m\r\n\r\n", 400, "bad_header"},
		{"POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413, "body_too_large"},
		{"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", 400,
		 "bad_content_length"},
		{"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 400, "bad_content_length"},
		{"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400, "bad_content_length"},
		{"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "bad_content_length"},
		{"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400, "bad_content_length"},
		{"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400,
		 "bad_content_length"},
		{"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400, "bad_content_length"},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "length_required"},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 411, "length_required"},
		{"GET / HTTP/1.1\r\nExpect: teapot\r\n\r\n", 417, "expectation_failed"},
		{big_line, 431, "headers_too_large"},
		{big_field, 431, "headers_too_large"},
	};
	struct api_http_head h;

	memcpy(big_line, "GET /", 5);
	memset(big_line + 5, 'a', sizeof(big_line) - 6);
	snprintf(big_field, sizeof(big_field), "GET / HTTP/1.1\r\nX: %0*d\r\n\r\n", 600, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad *c = &cases[i];
		enum api_http_result r = parse(c->req, strlen(c->req), &h);

		cr_assert_eq(r, API_HTTP_ERROR, "case %zu (%s): %d", i, c->req, r);
		cr_assert_eq(h.status, c->status, "case %zu (%s): %d %s", i, c->req, h.status,
			     h.msg);
		cr_assert_str_eq(h.code, c->code, "case %zu (%s)", i, c->req);
		cr_assert(h.msg[0], "case %zu", i);
		/* the error stays */
		cr_assert_eq(api__http_parse(c->req, strlen(c->req), &lim, &h), API_HTTP_ERROR);
	}
	/* More field lines than API_HTTP_MAX_FIELDS, within the byte limit. */
	{
		const struct api_http_limits roomy = {.max_head = 4096, .max_body = 0};
		size_t n = (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\n");

		for (int i = 0; i <= API_HTTP_MAX_FIELDS; i++)
			n += (size_t)snprintf(many + n, sizeof(many) - n, "a:\r\n");
		n += (size_t)snprintf(many + n, sizeof(many) - n, "\r\n");
		memset(&h, 0, sizeof(h));
		cr_assert_eq(api__http_parse(many, n, &roomy, &h), API_HTTP_ERROR);
		cr_assert_eq(h.status, 431);
		/* one line fewer is fine */
		memset(&h, 0, sizeof(h));
		cr_assert_eq(api__http_parse(many, n - 6, &roomy, &h), API_HTTP_NEED_MORE);
	}
}

Test(http, a_head_over_the_limit_is_refused_before_its_end)
{
	static char req[1024];
	struct api_http_head h = {0};

	memcpy(req, "GET / HTTP/1.1\r\nX: ", 19);
	memset(req + 19, 'a', sizeof(req) - 19);
	cr_assert_eq(api__http_parse(req, 512, &lim, &h), API_HTTP_NEED_MORE, "at the limit");
	cr_assert_eq(api__http_parse(req, 513, &lim, &h), API_HTTP_ERROR, "one byte over");
	cr_assert_eq(h.status, 431);
	/* a head of exactly the limit is fine */
	memset(&h, 0, sizeof(h));
	memcpy(req + 508, "\r\n\r\n", 4);
	cr_assert_eq(api__http_parse(req, 600, &lim, &h), API_HTTP_COMPLETE);
	cr_assert_eq(h.len, 512);
}

/* Byte by byte, in buffers of exactly the bytes so far: the same result as at once. */
Test(http, incremental_feeding_gives_the_same_head)
{
	static const char req[] = "\r\nPOST /v1/sandboxes/x/tools/run?z=1 HTTP/1.1\r\nHost: "
				  "n\r\nContent-Length: 7\r\n"
				  "Connection: close\r\nX-U: \xe2\x9c\x93\r\n\r\n{\"a\":1}";
	size_t head = sizeof(req) - 1 - 7;
	struct api_http_head whole, h = {0};
	enum api_http_result r = API_HTTP_NEED_MORE;
	size_t n;

	cr_assert_eq(PARSE(req, &whole), API_HTTP_COMPLETE);
	for (n = 1; n <= sizeof(req) - 1 && r == API_HTTP_NEED_MORE; n++) {
		char *part = malloc(n);

		cr_assert_not_null(part);
		memcpy(part, req, n);
		r = api__http_parse(part, n, &lim, &h);
		free(part);
	}
	cr_assert_eq(r, API_HTTP_COMPLETE);
	cr_assert_eq(n - 1, head, "complete at byte %zu, not at the head's end %zu", n - 1, head);
	cr_assert_eq(h.len, whole.len);
	cr_assert_eq(h.nfields, whole.nfields);
	cr_assert_eq(h.length, 7);
	cr_assert(!h.keep_alive);
	cr_assert_eq(memcmp(&h.fields, &whole.fields, sizeof(h.fields)), 0);
	/* once complete, it stays complete */
	cr_assert_eq(api__http_parse(req, sizeof(req) - 1, &lim, &h), API_HTTP_COMPLETE);
}

/* An error shows as soon as its line is complete, not only at the head's end. */
Test(http, errors_show_at_the_end_of_their_line)
{
	static const char req[] = "GET / HTTP/1.1\r\nBad Name: x\r\nMore: ";
	struct api_http_head h = {0};

	cr_assert_eq(api__http_parse(req, 16, &lim, &h), API_HTTP_NEED_MORE);
	cr_assert_eq(api__http_parse(req, sizeof(req) - 1, &lim, &h), API_HTTP_ERROR);
	cr_assert_eq(h.status, 400);
	cr_assert_str_eq(h.code, "bad_header");
}

Test(http, unescape)
{
	char out[64];
	size_t n;

	cr_assert_eq(api__http_unescape("a%41%2fb+c", 10, false, out, &n), 0);
	cr_assert_str_eq(out, "aA/b+c");
	cr_assert_eq(n, 6);
	cr_assert_eq(api__http_unescape("a%41%2fb+c", 10, true, out, &n), 0);
	cr_assert_str_eq(out, "aA/b c");
	cr_assert_eq(api__http_unescape("", 0, true, out, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(api__http_unescape("%e2%9C%93", 9, false, out, &n), 0);
	cr_assert_str_eq(out, "\xe2\x9c\x93");
	cr_assert_eq(api__http_unescape("a%00b", 5, false, out, &n), -EINVAL);
	cr_assert_eq(api__http_unescape("a%0", 3, false, out, &n), -EINVAL);
	cr_assert_eq(api__http_unescape("a%", 2, false, out, &n), -EINVAL);
	cr_assert_eq(api__http_unescape("%zz", 3, false, out, &n), -EINVAL);
	/* @n bounds it: what follows is not read */
	cr_assert_eq(api__http_unescape("ab%41", 3, false, out, &n), -EINVAL);
}

/* ---- the fuzz target, deterministically ---- */

struct seed {
	uint8_t *data;
	size_t len;
};

static size_t load_corpus(struct seed *seeds, size_t max)
{
	DIR *dir = opendir(HTTP_CORPUS_DIR);
	struct dirent *e;
	size_t n = 0;

	cr_assert_not_null(dir, "%s: %s", HTTP_CORPUS_DIR, strerror(errno));
	while ((e = readdir(dir)) && n < max) {
		char path[4096];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", HTTP_CORPUS_DIR, e->d_name);
		f = fopen(path, "rb");
		cr_assert_not_null(f, "%s", path);
		seeds[n].data = malloc(8192);
		cr_assert_not_null(seeds[n].data);
		seeds[n].len = fread(seeds[n].data, 1, 8192, f);
		fclose(f);
		n++;
	}
	closedir(dir);
	return n;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* One to eight edits of @buf (@len bytes, room for 8192). */
static size_t mutate(uint8_t *buf, size_t len, const struct seed *seeds, size_t nseeds)
{
	static const char interesting[] = "\r\n :%\t\x00\x7f\x80\xff/?-0";
	int edits = 1 + (int)(rng() % 8);

	for (int i = 0; i < edits; i++) {
		size_t at = len ? rng() % len : 0;

		switch (rng() % 6) {
		case 0: /* flip a bit */
			if (len)
				buf[at] ^= (uint8_t)(1u << (rng() % 8));
			break;
		case 1: /* an interesting byte instead */
			if (len)
				buf[at] = (uint8_t)interesting[rng() % (sizeof(interesting) - 1)];
			break;
		case 2: /* insert one */
			if (len < 8192) {
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = (uint8_t)interesting[rng() % (sizeof(interesting) - 1)];
				len++;
			}
			break;
		case 3: /* delete a run */
			if (len) {
				size_t n = 1 + rng() % (len - at);

				memmove(buf + at, buf + at + n, len - at - n);
				len -= n;
			}
			break;
		case 4: /* cut */
			len = at;
			break;
		default: { /* splice a piece of another seed in */
			const struct seed *s = &seeds[rng() % nseeds];
			size_t from = s->len ? rng() % s->len : 0, n = s->len - from;

			if (n > 8192 - at)
				n = 8192 - at;
			memcpy(buf + at, s->data + from, n);
			if (at + n > len)
				len = at + n;
		}
		}
	}
	return len;
}

Test(http, fuzz_corpus_and_seeded_mutations_keep_the_invariants)
{
	struct seed seeds[64];
	size_t nseeds = load_corpus(seeds, 64), runs = 0;
	uint8_t *buf = malloc(8192);
	char why[256];
	struct timespec t0, t;

	cr_assert_not_null(buf);
	cr_assert_geq(nseeds, 12, "the seed corpus is %zu files", nseeds);
	for (size_t i = 0; i < nseeds; i++)
		cr_assert_eq(fuzz_http_check(seeds[i].data, seeds[i].len, why, sizeof(why)), 0,
			     "seed %zu: %s", i, why);
	/* A bounded number of mutations, and a few seconds at most. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (runs = 0; runs < 100000; runs++) {
		const struct seed *s = &seeds[rng() % nseeds];
		size_t len;

		memcpy(buf, s->data, s->len);
		len = mutate(buf, s->len, seeds, nseeds);
		cr_assert_eq(fuzz_http_check(buf, len, why, sizeof(why)), 0,
			     "mutation %zu (%zu bytes): %s", runs, len, why);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec >= 3)
			break;
	}
	cr_log_info("%zu seeds, %zu mutations", nseeds, runs);
	cr_assert_geq(runs, 1000, "only %zu mutations ran", runs);
	for (size_t i = 0; i < nseeds; i++)
		free(seeds[i].data);
	free(buf);
}
