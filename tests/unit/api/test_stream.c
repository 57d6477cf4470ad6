// SPDX-License-Identifier: Apache-2.0
/*
 * Streamed `run` (POST tools/run with "stream": true) against a real nucleusd (fake
 * backend, whose run produces its output pieces over time): NDJSON order, stdout/stderr
 * separation, the final status line, policy before the 200, back-pressure and clients
 * that go away mid-stream, and nucleusctl run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <sodium.h>

#include "tests/unit/api/daemon.h"
#include "tests/unit/nucleusd/helpers.h"

#define BASIC "{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": 128}"

THD_SUITE(stream);

/* Every line received, in order, the data decoded. */
struct lines {
	char kind[4096]; /* 'o' stdout, 'e' stderr, 'x' exit, 's' signal, '!' error */
	char *data[4096];
	long status[4096];
	int n;
};

static int on_line(void *arg, json_t *line)
{
	struct lines *l = arg;
	const char *stream = json_string_value(json_object_get(line, "stream"));

	cr_assert_lt(l->n, 4096);
	if (stream) {
		const char *b64 = json_string_value(json_object_get(line, "data"));
		size_t len = strlen(b64), n = 0;
		char *bin = malloc(len + 1);

		cr_assert_not_null(bin);
		cr_assert_eq(sodium_base642bin((unsigned char *)bin, len + 1, b64, len, NULL, &n,
					       NULL, sodium_base64_VARIANT_ORIGINAL),
			     0, "bad base64 '%s'", b64);
		bin[n] = '\0';
		l->kind[l->n] = strcmp(stream, "stderr") == 0 ? 'e' : 'o';
		l->data[l->n] = bin;
	} else if (json_object_get(line, "exit_code")) {
		l->kind[l->n] = 'x';
		l->status[l->n] = (long)json_integer_value(json_object_get(line, "exit_code"));
	} else if (json_object_get(line, "signal")) {
		l->kind[l->n] = 's';
		l->status[l->n] = (long)json_integer_value(json_object_get(line, "signal"));
	} else {
		l->kind[l->n] = '!';
	}
	l->n++;
	return 0;
}

static void lines_free(struct lines *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->data[i]);
}

static struct api_response stream(const char *id, const char *body, struct lines *l)
{
	struct api_response r = {0};
	struct api_client *c = NULL;
	char path[128];
	json_t *b = json_loads(body, 0, NULL);

	cr_assert_not_null(b, "test JSON");
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/run", id);
	cr_assert_eq(api_client__new(d.sock, &c), 0);
	cr_assert_eq(api_client__stream(c, "POST", path, b, on_line, l, &r), 0, "no stream");
	api_client__free(c);
	json_decref(b);
	return r;
}

/* A streamed run that must be accepted: its lines in @l (lines_free them). */
static void stream_ok(const char *id, const char *body, struct lines *l)
{
	struct api_response r = stream(id, body, l);

	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	api_response__clear(&r);
}

/* A streamed run whose lines are one @kind piece @data, then the @end line with @status. */
static void expect_piece_then_end(const char *id, const char *body, char kind, const char *data,
				  char end, long status)
{
	struct lines l = {0};

	stream_ok(id, body, &l);
	cr_assert_eq(l.n, 2, "lines: %d", l.n);
	cr_assert_eq(l.kind[0], kind);
	cr_assert_str_eq(l.data[0], data);
	cr_assert_eq(l.kind[1], end);
	cr_assert_eq(l.status[1], status);
	lines_free(&l);
}

Test(stream, chunks_in_order_with_streams_apart_then_exit_code)
{
	const char *id = thd_create(&d, BASIC);
	static const char *const want[] = {"a1\n", "b1\n", "a2\n"};
	struct lines l = {0};

	stream_ok(id,
		  "{\"stream\": true, \"args\": {\"argv\": [\"fake\"], \"out\": [[1, \"a1\\n\"], "
		  "[2, \"b1\\n\"], "
		  "[1, \"a2\\n\"]], \"repeat\": 3, \"ms\": 5, \"exit_code\": 3}}",
		  &l);
	cr_assert_eq(l.n, 10, "lines: %d", l.n);
	for (int i = 0; i < 9; i++) {
		cr_assert_eq(l.kind[i], i % 3 == 1 ? 'e' : 'o', "line %d", i);
		cr_assert_str_eq(l.data[i], want[i % 3], "line %d", i);
	}
	cr_assert_eq(l.kind[9], 'x');
	cr_assert_eq(l.status[9], 3);
	lines_free(&l);
	thd_finish(&d);
}

Test(stream, signal_is_the_last_line)
{
	const char *id = thd_create(&d, BASIC);

	expect_piece_then_end(id,
			      "{\"stream\": true, \"args\": {\"argv\": [\"fake\"], \"out\": [[2, "
			      "\"dying\"]], \"signal\": 9}}",
			      'e', "dying", 's', 9);
	thd_finish(&d);
}

Test(stream, policy_decides_before_the_200)
{
	const char *id = thd_create(&d, "{\"policy\": {\"levels\": {\"run\": \"deny\"}}, "
					"\"vcpus\": 1, \"memory_mib\": 128}");
	struct lines l = {0};
	struct api_response r;
	char path[128];

	r = stream(id,
		   "{\"stream\": true, \"args\": {\"argv\": [\"fake\"], \"out\": [[1, \"x\"]]}}",
		   &l);
	cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "verdict")), "deny");
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "reason")), "OP_DENIED");
	cr_assert_eq(l.n, 0);
	api_response__clear(&r);
	/* Only run streams; a wrong type is a 400 like any other field. */
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/echo", id);
	thd_expect(&d, "POST", path, "{\"stream\": true}", 400);
	thd_expect(&d, "POST", path, "{\"stream\": 1}", 400);
	thd_finish(&d);
}

/* Sends a streamed run of @repeat pieces of 1 KiB (raw socket); returns the fd. */
static int start_big(const char *id, int repeat)
{
	static char piece[1025];
	char *body, *req;
	int fd, n;

	memset(piece, 'z', 1024);
	cr_assert_gt(asprintf(&body,
			      "{\"stream\": true, \"args\": {\"argv\": [\"fake\"], \"out\": [[1, "
			      "\"%s\"]], "
			      "\"repeat\": %d, \"exit_code\": 0}}",
			      piece, repeat),
		     0);
	n = asprintf(&req,
		     "POST /v1/sandboxes/%s/tools/run HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		     id, strlen(body), body);
	cr_assert_gt(n, 0);
	fd = thd_dial(&d);
	cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
	free(body);
	free(req);
	return fd;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* A client that does not read for a while still gets every byte, in order, once it does. */
Test(stream, slow_reader_gets_everything)
{
	const char *id = thd_create(&d, BASIC);
	int fd = start_big(id, 3000), lines = 0;
	size_t cap = 8 << 20, got = 0;
	char *buf = malloc(cap), *p;
	ssize_t n;

	cr_assert_not_null(buf);
	sleep_ms(300); /* the daemon fills the socket and its high-water mark meanwhile */
	while (got < cap - 1 && (n = recv(fd, buf + got, cap - 1 - got, 0)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	cr_assert_not_null(strstr(buf, "Transfer-Encoding: chunked"));
	for (p = buf; (p = strstr(p, "{\"stream\":\"stdout\"")); p++)
		lines++;
	cr_assert_eq(lines, 3000);
	cr_assert_not_null(strstr(buf, "{\"exit_code\":0}\n"));
	free(buf);
	thd_finish(&d);
}

/* A client that goes away mid-stream: the daemon lets the run finish, records it, goes on. */
Test(stream, client_gone_mid_stream_harms_nothing)
{
	const char *id = thd_create(&d, BASIC);
	char buf[4096], path[128];
	struct api_response r;
	bool recorded = false;
	int fd = start_big(id, 20000);

	cr_assert_gt(recv(fd, buf, sizeof(buf), 0), 0);
	close(fd);
	/* The daemon still serves, and its next streamed run is whole. */
	expect_piece_then_end(id,
			      "{\"stream\": true, \"args\": {\"argv\": [\"fake\"], \"out\": [[1, "
			      "\"after\"]], \"exit_code\": 1}}",
			      'o', "after", 'x', 1);
	/* The abandoned call still completes and is audited (two tool.result entries). */
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/audit", id);
	for (int i = 0; i < 3000 && !recorded; i++) {
		json_t *e;
		size_t k;
		int results = 0;

		r = thd_call(&d, "GET", path, NULL);
		cr_assert_eq(r.status, 200);
		json_array_foreach(r.json, k, e)
		{
			const char *kind = json_string_value(json_object_get(e, "kind"));

			results += kind && strcmp(kind, "tool.result") == 0;
		}
		recorded = results == 2;
		api_response__clear(&r);
		if (!recorded)
			sleep_ms(20);
	}
	cr_assert(recorded, "the abandoned run was never recorded");
	r = thd_call(&d, "GET", "/v1/health", NULL);
	cr_assert_eq(r.status, 200);
	api_response__clear(&r);
	thd_finish(&d);
}

/* HTTP/1.0 has no chunks: the NDJSON lines come as they are and the body ends at close. */
Test(stream, an_http_1_0_client_gets_the_lines_until_close)
{
	const char *id = thd_create(&d, BASIC);
	static const char body[] = "{\"stream\": true, \"args\": {\"argv\": [\"fake\"], "
				   "\"out\": [[1, \"x\"]], \"repeat\": 2, \"exit_code\": 4}}";
	char req[512], buf[8192], *sep;
	size_t got = 0;
	ssize_t n;
	int fd, len;

	len = snprintf(req, sizeof(req),
		       "POST /v1/sandboxes/%s/tools/run HTTP/1.0\r\nContent-Type: application/json"
		       "\r\nContent-Length: %zu\r\n\r\n%s",
		       id, sizeof(body) - 1, body);
	fd = thd_dial(&d);
	cr_assert_eq(send(fd, req, (size_t)len, MSG_NOSIGNAL), len);
	while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	cr_assert_eq(strncmp(buf, "HTTP/1.1 200 ", 13), 0, "%s", buf);
	sep = strstr(buf, "\r\n\r\n");
	cr_assert_not_null(sep);
	*sep = '\0';
	cr_assert_null(strstr(buf, "Transfer-Encoding"), "%s", buf);
	cr_assert_null(strstr(buf, "Content-Length"), "%s", buf);
	cr_assert_not_null(strstr(buf, "Connection: close"), "%s", buf);
	cr_assert_str_eq(sep + 4, "{\"stream\":\"stdout\",\"data\":\"eA==\"}\n"
				  "{\"stream\":\"stdout\",\"data\":\"eA==\"}\n{\"exit_code\":4}\n");
	thd_finish(&d);
}
