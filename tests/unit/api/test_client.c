// SPDX-License-Identifier: Apache-2.0
/* The client library against a canned server: framing of responses. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "api/api.h"
#include "tests/unit/nucleusd/helpers.h"

struct canned {
	char dir[256], path[300];
	int lfd;
	const char *reply;
	char request[4096];
	pthread_t t;
};

static void *serve(void *arg)
{
	struct canned *c = arg;
	size_t got = 0;
	ssize_t n;
	int fd = accept(c->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	while (got < sizeof(c->request) - 1 &&
	       (n = recv(fd, c->request + got, sizeof(c->request) - 1 - got, 0)) > 0) {
		got += (size_t)n;
		c->request[got] = '\0';
		if (strstr(c->request, "\r\n\r\n") && strstr(c->request, "}"))
			break;
		if (strstr(c->request, "Content-Length: 0\r\n\r\n"))
			break;
	}
	send(fd, c->reply, strlen(c->reply), MSG_NOSIGNAL);
	close(fd);
	return NULL;
}

static void canned_start(struct canned *c, const char *reply)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	th_tmpdir(c->dir, sizeof(c->dir));
	snprintf(c->path, sizeof(c->path), "%s/s", c->dir);
	memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
	c->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(c->lfd, 1), 0);
	c->reply = reply;
	cr_assert_eq(pthread_create(&c->t, NULL, serve, c), 0);
}

static int call(struct canned *c, const char *method, json_t *body, struct api_response *r)
{
	struct api_client *cl = NULL;
	int rc;

	cr_assert_eq(api_client__new(c->path, &cl), 0);
	rc = api_client__call(cl, method, "/v1/x", body, r);
	api_client__free(cl);
	pthread_join(c->t, NULL);
	close(c->lfd);
	th_rmrf(c->dir);
	return rc;
}

Test(client, reads_a_content_length_body_and_sends_json)
{
	struct canned c;
	struct api_response r = {0};
	json_t *body = json_pack("{si}", "vcpus", 2);

	canned_start(&c, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
			 "Content-Length: 11\r\n\r\n{\"a\": true}trailing");
	cr_assert_eq(call(&c, "POST", body, &r), 0);
	json_decref(body);
	cr_assert_eq(r.status, 201);
	cr_assert(json_is_true(json_object_get(r.json, "a")));
	cr_assert_not_null(strstr(c.request, "POST /v1/x HTTP/1.1\r\n"));
	cr_assert_not_null(strstr(c.request, "Content-Type: application/json\r\n"));
	cr_assert_not_null(strstr(c.request, "{\"vcpus\":2}"));
	api_response__clear(&r);
}

Test(client, reads_a_chunked_body)
{
	struct canned c;
	struct api_response r = {0};

	canned_start(&c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "4\r\n{\"x\"\r\n6\r\n: [1]}\r\n0\r\n\r\n");
	cr_assert_eq(call(&c, "GET", NULL, &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"x\": [1]}");
	cr_assert_eq(json_array_size(json_object_get(r.json, "x")), 1);
	api_response__clear(&r);
}

Test(client, a_truncated_response_is_an_error)
{
	struct canned c;
	struct api_response r = {0};

	canned_start(&c, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"short\"");
	cr_assert_eq(call(&c, "GET", NULL, &r), -EBADMSG);
	cr_assert_null(r.body);
}

Test(client, a_non_http_answer_is_an_error)
{
	struct canned c;
	struct api_response r = {0};

	canned_start(&c, "SSH-2.0-OpenSSH\r\n");
	cr_assert_eq(call(&c, "GET", NULL, &r), -EBADMSG);
}

Test(client, no_daemon_is_a_connect_error)
{
	struct api_client *cl = NULL;
	struct api_response r = {0};

	cr_assert_eq(api_client__new("/tmp/nucleus-test-none/s", &cl), 0);
	cr_assert_eq(api_client__call(cl, "GET", "/v1/health", NULL, &r), -ENOENT);
	api_client__free(cl);
}
