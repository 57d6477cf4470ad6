// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target of the REST API's request handlers (api/) with JSON bodies, in process:
 * the real server (api/server.c: HTTP, routing, peer check, the validator, every
 * handler) on its Unix socket, in front of the real daemon core (nucleusd/: SQLite
 * store in a scratch data dir, audit log, policy engine, budgets) with the fake backend
 * (no VMs). Each input is one request, sent over a socket as a client would and
 * answered by running the event loop: the deepest path that runs in one process.
 *
 * Input: [0] the route (22 routes of api/routes.c, tool calls weighted up), [1] the
 * sandbox it names (a fresh one made for this input with one of the built-in profiles,
 * a long-lived one whose state accumulates, or an unknown name) and the tool, then the
 * body (POST) or the query string (GET, percent-encoded here).
 *
 * Invariants: every request gets one complete HTTP/1.1 reply within 10 s; never a 500
 * (an internal error: a bug or a broken store); a reply that is not 2xx is a JSON object
 * {"error": code, "message": text}; a JSON reply parses; a body that is not valid JSON
 * or that the route's spec refuses (api__validate, run here on the same bytes) never
 * gets a 2xx; every 64 inputs /v1/health answers 200, every 256 the audit chain of every
 * sandbox verifies (GET /v1/audit/verify: "ok": true).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <jansson.h>

#include "api/api.h"
#include "tests/fuzz/fuzz.h"
#include "nucleusd/nucleusd.h"

struct route {
	const char *method, *path; /* %s: the sandbox, %t: the tool */
	const struct api_field *spec;
	bool body;
};

static const struct route routes[] = {
	{"GET", "/v1/health"},
	{"GET", "/v1/metrics"},
	{"GET", "/v1/sandboxes"},
	{"POST", "/v1/sandboxes", api__create_spec, true},
	{"GET", "/v1/sandboxes/%s"},
	{"DELETE", "/v1/sandboxes/%s"},
	{"POST", "/v1/sandboxes/%s/pause"},
	{"POST", "/v1/sandboxes/%s/resume"},
	{"POST", "/v1/sandboxes/%s/tools/%t", api__tool_spec, true},
	{"POST", "/v1/sandboxes/%s/approvals", api__approval_spec, true},
	{"POST", "/v1/sandboxes/%s/approvals/refuse", api__refusal_spec, true},
	{"GET", "/v1/sandboxes/%s/audit"},
	{"GET", "/v1/sandboxes/%s/audit/verify"},
	{"POST", "/v1/sandboxes/%s/usage", api__usage_spec, true},
	{"GET", "/v1/sandboxes/%s/budget"},
	{"GET", "/v1/sandboxes/%s/policy"},
	{"POST", "/v1/sandboxes/%s/policy/narrow", api__policy_check_spec, true},
	{"POST", "/v1/sandboxes/%s/policy/widen", api__policy_widen_spec, true},
	{"GET", "/v1/audit/verify"},
	{"POST", "/v1/policy/check", api__policy_check_spec, true},
	{"POST", "/v1/db/check"},
	{"POST", "/v1/policy/explain", api__policy_explain_spec, true},
};
#define NROUTES	   (sizeof(routes) / sizeof(routes[0]))
#define TOOL_ROUTE 8

static const char *const tools[] = {"read_file",      "write_file",  "list",	 "run",
				    "search",	      "web_fetch",   "git_push", "spawn_agent",
				    "manage_sandbox", "no_such_tool"};
static const char *const profiles[] = {"permissive-local", "codegen", "research-web", "read-only"};

static struct {
	char dir[80], sock[108];
	struct event_base *base;
	struct nucleusd *nd;
	struct api_server *srv;
	unsigned long n, fresh;
} fz;

struct reply {
	int status;
	char *raw;
	size_t len;
	const char *body;
	bool chunked, json_type;
};

static void reply_free(struct reply *r)
{
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One request on its own connection; runs the loop until the server closed it. */
static void call(const char *method, const char *path, const char *body, size_t blen,
		 struct reply *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char head[1024];
	size_t cap = 1 << 16, hl;
	int64_t deadline = now_ms() + 10000;
	int fd, n;

	memset(out, 0, sizeof(*out));
	strcpy(sa.sun_path, fz.sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fz_fail("cannot connect to the server: %s", strerror(errno));
	n = snprintf(head, sizeof(head),
		     "%s %s HTTP/1.1\r\nHost: nucleus\r\nConnection: close\r\n%s"
		     "Content-Length: %zu\r\n\r\n",
		     method, path, blen ? "Content-Type: application/json\r\n" : "", blen);
	if (n >= (int)sizeof(head))
		fz_fail("request head too long");
	hl = (size_t)n;
	out->raw = malloc(cap + 1);
	{
		size_t sent = 0, total = hl + blen;

		while (sent < total) {
			const char *p = sent < hl ? head + sent : body + (sent - hl);
			size_t len = sent < hl ? hl - sent : total - sent;
			ssize_t w = send(fd, p, len, MSG_NOSIGNAL);

			if (w > 0) {
				sent += (size_t)w;
				continue;
			}
			if (w < 0 && errno != EAGAIN)
				break; /* the server may answer (413) and close early */
			event_base_loop(fz.base, EVLOOP_NONBLOCK);
			if (now_ms() > deadline)
				fz_fail("%s %s: the request could not be sent", method, path);
		}
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		event_base_loop(fz.base, EVLOOP_NONBLOCK);
		if (poll(&p, 1, 0) > 0) {
			if (out->len == cap) {
				cap *= 2;
				out->raw = realloc(out->raw, cap + 1);
			}
			r = recv(fd, out->raw + out->len, cap - out->len, 0);
			if (r == 0 || (r < 0 && errno != EAGAIN))
				break;
			if (r > 0) {
				out->len += (size_t)r;
				continue;
			}
		}
		if (now_ms() > deadline)
			fz_fail("%s %s: no complete reply within 10 s (%zu bytes)", method, path,
				out->len);
		/* wait for either side: the server's loop or our socket */
		event_base_loop(fz.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		poll(&p, 1, 1);
	}
	close(fd);
	out->raw[out->len] = '\0';
	if (out->len < 12 || sscanf(out->raw, "HTTP/1.1 %d ", &out->status) != 1)
		fz_fail("%s %s: no status line in %zu bytes: %.80s", method, path, out->len,
			out->raw);
	out->body = strstr(out->raw, "\r\n\r\n");
	if (!out->body)
		fz_fail("%s %s: a reply without the end of its head", method, path);
	out->body += 4;
	out->chunked = strcasestr(out->raw, "\r\nTransfer-Encoding: chunked") &&
		       strcasestr(out->raw, "\r\nTransfer-Encoding: chunked") < out->body;
	out->json_type = strcasestr(out->raw, "\r\nContent-Type: application/json") &&
			 strcasestr(out->raw, "\r\nContent-Type: application/json") < out->body;
}

static json_t *check_reply(const char *method, const char *path, struct reply *r)
{
	json_t *j = NULL;
	json_error_t e;

	if (r->status < 100 || r->status > 599)
		fz_fail("%s %s: status %d", method, path, r->status);
	if (r->status == 500)
		fz_fail("%s %s: 500: %.300s", method, path, r->body);
	if (r->json_type && !r->chunked && strcmp(method, "HEAD") != 0) {
		j = json_loads(r->body, 0, &e);
		if (!j)
			fz_fail("%s %s: %d with a JSON body that does not parse: %s: %.200s",
				method, path, r->status, e.text, r->body);
	}
	if (r->status >= 400) {
		if (!j || !json_is_string(json_object_get(j, "error")) ||
		    !json_is_string(json_object_get(j, "message")))
			fz_fail("%s %s: %d without {error, message}: %.200s", method, path,
				r->status, r->body);
	}
	return j;
}

static void expect(const char *method, const char *path, const char *body, int status)
{
	struct reply r;
	json_t *j;

	call(method, path, body, body ? strlen(body) : 0, &r);
	j = check_reply(method, path, &r);
	if (r.status != status)
		fz_fail("%s %s: %d, want %d: %.300s", method, path, r.status, status, r.body);
	if (strcmp(path, "/v1/audit/verify") == 0 && !json_is_true(json_object_get(j, "ok")))
		fz_fail("the audit chain does not verify: %.300s", r.body);
	json_decref(j);
	reply_free(&r);
}

static void make_sandbox(const char *name, const char *profile)
{
	char body[256];

	snprintf(body, sizeof(body),
		 "{\"name\": \"%s\", \"profile\": \"%s\", \"vcpus\": 1, \"memory_mib\": 64}", name,
		 profile);
	expect("POST", "/v1/sandboxes", body, 201);
}

static void logf_cb(void *arg, enum api_log_level lvl, const char *msg)
{
	if (getenv("NUCLEUS_FUZZ_API_LOG"))
		fprintf(stderr, "api: %s\n", msg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct nd_config cfg = {0};
	struct api_server_config scfg = {0};
	struct nd_backend *be = NULL;
	char data[96];

	signal(SIGPIPE, SIG_IGN);
	if (snprintf(fz.dir, sizeof(fz.dir), "%s/nucleus-fuzz-api-%d",
		     getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
		     (int)getpid()) >= (int)sizeof(fz.dir))
		fz_fail("$TMPDIR too long for the socket path");
	snprintf(data, sizeof(data), "%s/data", fz.dir);
	snprintf(fz.sock, sizeof(fz.sock), "%s/api.sock", fz.dir);
	if (mkdir(fz.dir, 0700) < 0 || mkdir(data, 0700) < 0)
		fz_fail("cannot make %s", fz.dir);
	fz.base = event_base_new();
	if (!fz.base || nd_fake_backend__new(&be) < 0)
		fz_fail("setup");
	cfg.data_dir = data;
	cfg.signer = SIGNER_PATH;
	if (nucleusd__new(fz.base, &cfg, be, &fz.nd) < 0)
		fz_fail("nucleusd__new");
	scfg.socket_path = fz.sock;
	scfg.owner_uid = getuid();
	scfg.owner_gid = API_NO_GID;
	scfg.admin_gid = API_NO_GID;
	scfg.max_body = 64 << 10;
	scfg.log = logf_cb;
	if (api_server__new(fz.base, fz.nd, &scfg, &fz.srv) < 0)
		fz_fail("api_server__new");
	expect("GET", "/v1/health", NULL, 200);
	make_sandbox("fz-keep", "permissive-local");
	return 0;
}

static void query_of(const uint8_t *p, size_t n, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	out[o++] = '?';
	for (size_t i = 0; i < n && o + 4 < cap; i++) {
		uint8_t c = p[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-._~=&+", c)) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct route *rt;
	char name[32], path[512], query[1400];
	const char *ref, *body = NULL;
	size_t blen = 0;
	bool fresh = false, bad_body = false;
	struct reply r;
	json_t *j;

	if (size < 2 || size > 16384)
		return 0;
	rt = &routes[data[0] % 32 < NROUTES ? data[0] % 32 : TOOL_ROUTE];
	switch (data[1] & 3) {
	case 1:
		ref = "fz-keep";
		break;
	case 2:
		ref = "no-such-sandbox";
		break;
	default:
		snprintf(name, sizeof(name), "fz-%lu", ++fz.fresh);
		ref = name;
		fresh = strstr(rt->path, "%s") != NULL;
		break;
	}
	if (fresh)
		make_sandbox(name, profiles[(data[1] >> 2) & 3]);
	{
		const char *t = tools[(data[1] >> 4) % (sizeof(tools) / sizeof(tools[0]))];
		size_t o = 0;

		for (const char *p = rt->path; *p && o + 64 < sizeof(path); p++) {
			if (p[0] == '%' && p[1] == 's')
				o += (size_t)snprintf(path + o, sizeof(path) - o, "%s", ref), p++;
			else if (p[0] == '%' && p[1] == 't')
				o += (size_t)snprintf(path + o, sizeof(path) - o, "%s", t), p++;
			else
				path[o++] = *p;
		}
		path[o] = '\0';
	}
	if (strcmp(rt->method, "GET") == 0 && size > 2) {
		query_of(data + 2, size - 2, query, sizeof(query));
		if (strlen(path) + strlen(query) < sizeof(path))
			strcat(path, query);
	} else if (size > 2) {
		body = (const char *)data + 2;
		blen = size - 2;
	}
	if (blen && rt->spec) {
		json_error_t e;
		json_t *b = json_loadb(body, blen, JSON_REJECT_DUPLICATES, &e);
		struct api_verr verr;

		bad_body = !b || api__validate(b, rt->spec, &verr) < 0;
		json_decref(b);
	} else if (blen) {
		bad_body = true; /* this route takes no body */
	}
	call(rt->method, path, body, blen, &r);
	j = check_reply(rt->method, path, &r);
	if (bad_body && r.status < 300)
		fz_fail("%s %s: %d for a body that its spec refuses: %.200s", rt->method, path,
			r.status, body);
	json_decref(j);
	reply_free(&r);
	if (fresh) { /* gone, or deleted now: either way no longer in the way */
		snprintf(path, sizeof(path), "/v1/sandboxes/%s", name);
		call("DELETE", path, NULL, 0, &r);
		json_decref(check_reply("DELETE", path, &r));
		reply_free(&r);
	}
	if (++fz.n % 64 == 0)
		expect("GET", "/v1/health", NULL, 200);
	if (fz.n % 256 == 0)
		expect("GET", "/v1/audit/verify", NULL, 200);
	return 0;
}
