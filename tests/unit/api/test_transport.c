// SPDX-License-Identifier: Apache-2.0
/*
 * Transport-level errors, black-box through the socket: a malformed request line or
 * header, an oversize head or body, an unknown method, a bad Content-Length,
 * Transfer-Encoding, Expect: each is JSON {"error","message"} with the right status,
 * and nothing reaches the database.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "tests/unit/api/daemon.h"
#include "tests/unit/nucleusd/helpers.h"

THD_SUITE(transport); /* default limits: body 1 MiB, head 16 KiB */

/* Sends @len bytes (as many as the server takes), returns all it answers until EOF. */
static char *exchange(const char *req, size_t len)
{
	size_t cap = 1 << 16, got = 0;
	char *buf = malloc(cap);
	ssize_t n;
	int fd;

	cr_assert_not_null(buf);
	fd = thd_dial(&d);
	for (size_t off = 0; off < len; off += (size_t)n) {
		n = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break; /* answered and closed before reading it all */
	}
	while ((n = recv(fd, buf + got, cap - 1 - got, 0)) > 0) {
		got += (size_t)n;
		if (got == cap - 1) {
			buf = realloc(buf, cap *= 2);
			cr_assert_not_null(buf);
		}
	}
	/*
	 * EOF, or a reset: closing a socket with unread input (the rest of a refused body)
	 * resets it. The answer is complete either way (expect_json checks its length).
	 */
	cr_assert(n == 0 || errno == ECONNRESET, "no EOF from the server (%s); got: %.*s",
		  strerror(errno), (int)got, buf);
	close(fd);
	buf[got] = '\0';
	return buf;
}

/* Checks the response at @p: @status, JSON {error: @code, message}; returns its end. */
static const char *expect_json(const char *p, int status, const char *code, const char *what)
{
	const char *sep, *cl;
	int st = 0;
	size_t len;
	json_t *o;
	json_error_t err;

	cr_assert_eq(sscanf(p, "HTTP/1.1 %d", &st), 1, "%s: no HTTP response: '%.300s'", what, p);
	cr_assert_eq(st, status, "%s: status %d, want %d: %.600s", what, st, status, p);
	sep = strstr(p, "\r\n\r\n");
	cr_assert_not_null(sep, "%s", what);
	cl = strcasestr(p, "\r\nContent-Length:");
	cr_assert(cl && cl < sep, "%s: no Content-Length", what);
	len = strtoul(cl + 17, NULL, 10);
	cr_assert(strcasestr(p, "\r\nContent-Type: application/json") < sep &&
			  strcasestr(p, "\r\nContent-Type: application/json"),
		  "%s: not served as JSON: %.400s", what, p);
	o = json_loadb(sep + 4, len, 0, &err);
	cr_assert_not_null(o, "%s: body is not JSON: %.*s", what, (int)len, sep + 4);
	if (code)
		cr_assert_str_eq(json_string_value(json_object_get(o, "error")), code, "%s: %.*s",
				 what, (int)len, sep + 4);
	else
		cr_assert(json_is_string(json_object_get(o, "error")), "%s", what);
	cr_assert(json_is_string(json_object_get(o, "message")), "%s", what);
	json_decref(o);
	return sep + 4 + len;
}

static void one(const char *req, size_t len, int status, const char *code, const char *what)
{
	char *out = exchange(req, len);
	const char *end = expect_json(out, status, code, what);

	cr_assert_str_eq(end, "", "%s: more after the error reply: %.200s", what, end);
	free(out);
}

#define ONE(req, status, code) one(req, sizeof(req) - 1, status, code, req)

/* A request whose head is the line @line alone: 400 bad_request_line. */
#define BAD_LINE(line) ONE(line "\r\n\r\n", 400, "bad_request_line")

/* A GET whose one header line is @line: 400 bad_header. */
#define BAD_HEADER(line) ONE("GET /v1/health HTTP/1.1\r\n" line "\r\n\r\n", 400, "bad_header")

Test(transport, malformed_request_lines_are_json_400)
{
	BAD_LINE("GARBAGE");
	BAD_LINE("GET /v1/health");
	BAD_LINE("GET  /v1/health HTTP/1.1");
	BAD_LINE("GET /v1/health HTTP/1.1 x");
	BAD_LINE("GET /v1/health HTTP/one");
	BAD_LINE("GET /v1/\x01health HTTP/1.1");
	BAD_LINE("G(T /v1/health HTTP/1.1");
	ONE("GET /v1/health HTTP/2.0\r\n\r\n", 505, "http_version_not_supported");
}

Test(transport, unknown_and_unrouted_methods_are_json_405)
{
	ONE("BREW /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed");
	ONE("get /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed");
	/* a method HTTP knows but no route takes */
	ONE("PUT /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
	    405, "method_not_allowed");
}

Test(transport, malformed_headers_are_json_400)
{
	BAD_HEADER("Host x");
	BAD_HEADER(": x");
	BAD_HEADER("Ho st: x");
	BAD_HEADER("Host: x\r\n folded");
	BAD_HEADER("Host: a\rb");
	BAD_HEADER("X-A: \x7f");
	BAD_HEADER("X-A: a\0b");
	BAD_HEADER("Host : x");
	ONE("GET /v1/health HTTP/1.1\r\nExpect: teapot\r\n\r\n", 417, "expectation_failed");
}

Test(transport, bad_content_length_and_transfer_encoding)
{
	ONE("POST /v1/sandboxes HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400,
	    "bad_content_length");
	ONE("POST /v1/sandboxes HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "bad_content_length");
	ONE("POST /v1/sandboxes HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400,
	    "bad_content_length");
	ONE("POST /v1/sandboxes HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400,
	    "bad_content_length");
	ONE("POST /v1/sandboxes HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
	    411, "length_required");
	ONE("GET /v1/health HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 400, "unexpected_body");
}

Test(transport, a_post_without_content_length_has_no_body)
{
	/* RFC 9112: no length, no body (nothing waits for EOF). */
	ONE("POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400,
	    "missing_body");
}

static void oversize_head(size_t value_len, const char *what)
{
	static const char start[] = "GET /v1/health HTTP/1.1\r\nX-Big: ";
	size_t n = sizeof(start) - 1 + value_len + 4;
	char *req = malloc(n + 1);

	cr_assert_not_null(req);
	memcpy(req, start, sizeof(start) - 1);
	memset(req + sizeof(start) - 1, 'a', value_len);
	memcpy(req + n - 4, "\r\n\r\n", 5);
	one(req, n, 431, "headers_too_large", what);
	/* The same without the end of the head: refused once it passes the limit. */
	one(req, n - 4, 431, "headers_too_large", what);
	free(req);
}

Test(transport, oversize_heads_are_json_431)
{
	oversize_head(17 << 10, "head just over our 16 KiB");
	oversize_head(80 << 10, "head over libevent's own limit");
	/* a long request line */
	{
		size_t n = 20 << 10;
		char *req = malloc(n + 64);

		cr_assert_not_null(req);
		memcpy(req, "GET /", 5);
		memset(req + 5, 'a', n);
		strcpy(req + 5 + n, " HTTP/1.1\r\n\r\n");
		one(req, strlen(req), 431, "headers_too_large", "long request line");
		free(req);
	}
}

static void oversize_body(size_t declared, size_t sent, const char *what)
{
	char head[256];
	size_t h = (size_t)snprintf(head, sizeof(head),
				    "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Type: "
				    "application/json\r\nContent-Length: %zu\r\n\r\n",
				    declared);
	char *req = malloc(h + sent);

	cr_assert_not_null(req);
	memcpy(req, head, h);
	memset(req + h, ' ', sent);
	one(req, h + sent, 413, "body_too_large", what);
	free(req);
}

Test(transport, oversize_bodies_are_json_413)
{
	oversize_body((1 << 20) + 1, (1 << 20) + 1, "body of 1 MiB + 1, all sent");
	oversize_body(5u << 20, 5u << 20, "body above libevent's own cap, all sent");
	oversize_body((size_t)64 << 30, 4096, "huge declared body");
}

Test(transport, a_body_at_the_limit_is_parsed)
{
	static const char json[] =
		"{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": 128}";
	size_t body = 1 << 20;
	char head[256];
	size_t h = (size_t)snprintf(head, sizeof(head),
				    "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nConnection: "
				    "close\r\nContent-Type: application/json\r\nContent-Length: "
				    "%zu\r\n\r\n",
				    body);
	char *req = malloc(h + body), *out;
	int st = 0;

	cr_assert_not_null(req);
	memcpy(req, head, h);
	memset(req + h, ' ', body);
	memcpy(req + h, json, sizeof(json) - 1);
	out = exchange(req, h + body);
	cr_assert_eq(sscanf(out, "HTTP/1.1 %d", &st), 1);
	cr_assert_eq(st, 201, "%.400s", out);
	free(out);
	free(req);
}

Test(transport, keep_alive_and_pipelining_still_work)
{
	static const char two[] =
		"\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
		"GET /v1/sandboxes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	static const char then_bad[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
				       "NONSENSE\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n";
	char *out = exchange(two, sizeof(two) - 1);
	const char *p;
	int st = 0;

	cr_assert_eq(sscanf(out, "HTTP/1.1 %d", &st), 1);
	cr_assert_eq(st, 200, "%.300s", out);
	p = strstr(out + 1, "HTTP/1.1 ");
	cr_assert_not_null(p, "one answer for two requests: %s", out);
	cr_assert_eq(sscanf(p, "HTTP/1.1 %d", &st), 1);
	cr_assert_eq(st, 200, "%.300s", p);
	free(out);
	/* A bad request after a good one: the good one is answered, then JSON, then EOF. */
	out = exchange(then_bad, sizeof(then_bad) - 1);
	cr_assert_eq(sscanf(out, "HTTP/1.1 %d", &st), 1);
	cr_assert_eq(st, 200, "%.300s", out);
	p = strstr(out + 1, "HTTP/1.1 ");
	cr_assert_not_null(p, "%s", out);
	cr_assert_str_eq(expect_json(p, 400, "bad_request_line", "pipelined"), "",
			 "answered after the bad request");
	free(out);
}

Test(transport, rejected_requests_change_nothing_and_the_daemon_goes_on)
{
	char *before = thd_dump(&d), *after;
	struct api_response r;

	ONE("POST /v1/sandboxes HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}{}{",
	    400, "bad_content_length");
	ONE("POST /v1/sandboxes HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411,
	    "length_required");
	oversize_body(2u << 20, 2u << 20, "body of 2 MiB");
	after = thd_dump(&d);
	thd_assert_same_db(before, after, "a rejected request changed the database");
	r = thd_call(&d, "GET", "/v1/health", NULL);
	cr_assert_eq(r.status, 200);
	api_response__clear(&r);
	thd_finish(&d);
}

/* The status of the response at @p, and (in @len) where its body ends; 0 when none. */
static int response_at(const char *p, const char **end)
{
	const char *sep = strstr(p, "\r\n\r\n"), *cl;
	int st = 0;

	if (sscanf(p, "HTTP/1.1 %d", &st) != 1 || !sep)
		return 0;
	cl = strcasestr(p, "\r\nContent-Length:");
	*end = sep + 4 + (cl && cl < sep ? strtoul(cl + 17, NULL, 10) : 0);
	return st;
}

Test(transport, non_ascii_header_values_are_accepted)
{
	/* UTF-8 and a lone Latin-1 byte in values; the header that was reserved is ordinary */
	static const char req[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\n"
				  "X-Name: J\xc3\xbcrgen \xe2\x9c\x93\r\nX-Latin: caf\xe9\r\n"
				  "X-Nucleus-Transport-Error: 400 bad_header x\r\n"
				  "Connection: close\r\n\r\n";
	char *out = exchange(req, sizeof(req) - 1);
	const char *end;

	cr_assert_eq(response_at(out, &end), 200, "%.300s", out);
	cr_assert_str_eq(end, "", "%s", out);
	free(out);
	/* bytes >= 0x80 stay refused in the request line, where only ASCII belongs */
	BAD_LINE("GET /v1/h\xc3\xa9 HTTP/1.1");
}

Test(transport, connect_and_head_get_405_with_allow)
{
	static const char head[] = "HEAD /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n";
	static const char connect[] = "CONNECT /v1/sandboxes HTTP/1.1\r\nConnection: close\r\n\r\n";
	char *out;
	const char *end;

	ONE("CONNECT /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n", 405, "method_not_allowed");
	ONE("OPTIONS /v1/sandboxes HTTP/1.1\r\nConnection: close\r\n\r\n", 405,
	    "method_not_allowed");
	BAD_LINE("CONNECT nucleus:443 HTTP/1.1");
	ONE("CONNECT /v1/nowhere HTTP/1.1\r\nConnection: close\r\n\r\n", 404, "not_found");
	out = exchange(connect, sizeof(connect) - 1);
	cr_assert_not_null(strstr(out, "\r\nAllow: GET, POST\r\n"), "%s", out);
	free(out);
	/* A reply to HEAD has no body (its Content-Length tells what GET would get). */
	out = exchange(head, sizeof(head) - 1);
	cr_assert_eq(response_at(out, &end), 405, "%s", out);
	cr_assert_not_null(strstr(out, "\r\nAllow: GET\r\n"), "%s", out);
	cr_assert_str_eq(strstr(out, "\r\n\r\n"), "\r\n\r\n", "a body after HEAD: %s", out);
	free(out);
}

Test(transport, targets_and_queries_are_decoded_strictly)
{
	static const char ok[] =
		"GET /v1/%73andboxes?a%6cl=tru%65 HTTP/1.1\r\nHost: x\r\n\r\n"
		"GET http://nucleus/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	char *out = exchange(ok, sizeof(ok) - 1);
	const char *end;

	cr_assert_eq(response_at(out, &end), 200, "%.300s", out);
	cr_assert_eq(response_at(end, &end), 200, "%.300s", out);
	cr_assert_str_eq(end, "", "%s", out);
	free(out);
	BAD_LINE("GET /v1/health%zz HTTP/1.1");
	BAD_LINE("GET /v1/health% HTTP/1.1");
	BAD_LINE("GET /v1/health#frag HTTP/1.1");
	ONE("GET /v1/heal%00th HTTP/1.1\r\nConnection: close\r\n\r\n", 404, "not_found");
	ONE("GET /v1%2Fhealth HTTP/1.1\r\nConnection: close\r\n\r\n", 404, "not_found");
	ONE("GET /v1/sandboxes?all=%00 HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "bad_query");
	ONE("GET /v1/sandboxes?all HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "bad_query");
	ONE("GET /v1/sandboxes?all=1&all=1 HTTP/1.1\r\nConnection: close\r\n\r\n", 400,
	    "bad_query");
	ONE("GET /v1/sandboxes?al%6c=maybe HTTP/1.1\r\nConnection: close\r\n\r\n", 400,
	    "wrong_type");
}

Test(transport, http_1_0_and_expect_100_continue)
{
	static const char ten[] = "GET /v1/health HTTP/1.0\r\n\r\n";
	static const char ten_ka[] = "GET /v1/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
				     "GET /v1/health HTTP/1.0\r\n\r\n";
	static const char cont[] =
		"POST /v1/sandboxes HTTP/1.1\r\nContent-Type: application/json\r\n"
		"Expect: 100-continue\r\nContent-Length: 2\r\nConnection: close"
		"\r\n\r\n";
	char *out = exchange(ten, sizeof(ten) - 1), buf[4096];
	const char *end;
	size_t got = 0;
	ssize_t n;
	int fd;

	/* HTTP/1.0 without keep-alive: one answer, then EOF (exchange waits for it) */
	cr_assert_eq(response_at(out, &end), 200, "%.300s", out);
	cr_assert_not_null(strstr(out, "Connection: close\r\n"), "%s", out);
	free(out);
	out = exchange(ten_ka, sizeof(ten_ka) - 1);
	cr_assert_eq(response_at(out, &end), 200, "%.300s", out);
	cr_assert_not_null(strstr(out, "Connection: keep-alive\r\n"), "%s", out);
	cr_assert_eq(response_at(end, &end), 200, "%.300s", out);
	cr_assert_str_eq(end, "", "%s", out);
	free(out);
	/* 100 Continue comes before the body is sent, the answer after it */
	fd = thd_dial(&d);
	cr_assert_eq(send(fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(cont) - 1);
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_assert_str_eq(buf, "HTTP/1.1 100 Continue\r\n\r\n");
	cr_assert_eq(send(fd, "{}", 2, MSG_NOSIGNAL), 2);
	while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	cr_assert_str_eq(expect_json(buf, 400, "missing_field", "after 100-continue"), "");
}

/*
 * Requests pipelined behind one that waits for the backend are answered after it, in
 * order, on the same connection (the late reply lets the loop take the next one).
 */
Test(transport, pipelined_requests_wait_for_an_async_one)
{
	const char *id = thd_create(&d, "{\"profile\": \"fake-open\", \"vcpus\": 1, "
					"\"memory_mib\": 128}");
	static const char body[] = "{\"args\": {\"ms\": 200, \"n\": 1}}";
	char req[1024], *out;
	const char *p;
	int n;

	n = snprintf(req, sizeof(req),
		     "POST /v1/sandboxes/%s/tools/slow HTTP/1.1\r\nContent-Type: application/json"
		     "\r\nContent-Length: %zu\r\n\r\n%s"
		     "GET /v1/sandboxes/%s HTTP/1.1\r\n\r\n"
		     "GET /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n",
		     id, sizeof(body) - 1, body, id);
	cr_assert_lt(n, (int)sizeof(req));
	out = exchange(req, (size_t)n);
	cr_assert_eq(response_at(out, &p), 200, "%.400s", out);
	cr_assert_not_null(strstr(out, "\"n\":1"), "the slow call's reply first: %.400s", out);
	cr_assert_eq(response_at(p, &p), 200, "%.400s", out);
	cr_assert_eq(response_at(p, &p), 200, "%.400s", out);
	cr_assert_str_eq(p, "", "%s", out);
	free(out);
	thd_finish(&d);
}
