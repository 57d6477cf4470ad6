// SPDX-License-Identifier: Apache-2.0
/* Black-box tests: a real nucleusd (fake backend) driven through its Unix socket. */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "nucleusd/audit.h"
#include "tests/unit/api/daemon.h"
#include "tests/unit/nucleusd/helpers.h"

static struct thd d;

static void setup(void)
{
	memset(&d, 0, sizeof(d));
	d.extra[0] = "--max-body";
	d.extra[1] = "4096";
	thd_start(&d);
}

static void teardown(void)
{
	thd_cleanup(&d);
}

TestSuite(blackbox, .init = setup, .fini = teardown, .timeout = 300);

#define BASIC "{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": 128"

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "(none)";
}

static void expect(const char *method, const char *path, const char *body, int status,
		   const char *state)
{
	struct api_response r = thd_call(&d, method, path, body);

	cr_assert_eq(r.status, status, "%s %s: %d %s", method, path, r.status, r.body);
	if (state)
		cr_assert_str_eq(jstr(r.json, "state"), state, "%s %s", method, path);
	api_response__clear(&r);
}

Test(blackbox, create_show_pause_resume_delete)
{
	char id[32], path[128], sub[160];
	struct api_response r;

	snprintf(id, sizeof(id), "%s", thd_create(&d, BASIC ", \"name\": \"life\"}"));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	expect("GET", path, NULL, 200, "running");
	expect("GET", "/v1/sandboxes/life", NULL, 200, "running");
	snprintf(sub, sizeof(sub), "%s/pause", path);
	expect("POST", sub, NULL, 200, "paused");
	expect("POST", sub, NULL, 409, NULL);
	snprintf(sub, sizeof(sub), "%s/tools/echo", path);
	expect("POST", sub, "{\"args\": {}}", 409, NULL);
	snprintf(sub, sizeof(sub), "%s/resume", path);
	expect("POST", sub, "{}", 200, "running");
	snprintf(sub, sizeof(sub), "%s/tools/echo", path);
	r = thd_call(&d, "POST", sub, "{\"args\": {\"msg\": \"hi\"}}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(jstr(r.json, "verdict"), "allow");
	cr_assert_str_eq(jstr(json_object_get(json_object_get(r.json, "result"), "echo"), "msg"),
			 "hi");
	api_response__clear(&r);
	expect("DELETE", path, NULL, 200, "stopped");
	expect("DELETE", path, NULL, 409, NULL);

	r = thd_call(&d, "GET", "/v1/sandboxes", NULL);
	cr_assert_eq(json_array_size(thd_sandboxes(&r)), 0, "%s", r.body);
	cr_assert_null(json_object_get(r.json, "next_cursor"), "one page: %s", r.body);
	api_response__clear(&r);
	r = thd_call(&d, "GET", "/v1/sandboxes?all=true", NULL);
	cr_assert_eq(json_array_size(thd_sandboxes(&r)), 1, "%s", r.body);
	api_response__clear(&r);

	snprintf(sub, sizeof(sub), "%s/audit", path);
	r = thd_call(&d, "GET", sub, NULL);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(json_array_size(r.json), 7, "%s", r.body);
	cr_assert_str_eq(jstr(json_array_get(r.json, 6), "kind"), "sandbox.stop");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(r.json, 6), "actor_uid")),
		     (json_int_t)getuid());
	api_response__clear(&r);
	thd_expect_intact(&d, id);
	thd_finish(&d);
}

Test(blackbox, deny_and_ask_are_403_with_reasons)
{
	char path[160];
	struct api_response r;
	const char *id = thd_create(&d, "{\"profile\": \"fake-strict\", \"vcpus\": 1, "
					"\"memory_mib\": 64}");

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/write_file", id);
	r = thd_call(&d, "POST", path, "{\"args\": {\"path\": \"/x\", \"content\": \"\"}}");
	cr_assert_eq(r.status, 403);
	cr_assert_str_eq(jstr(r.json, "verdict"), "deny");
	cr_assert_str_eq(jstr(r.json, "error"), "denied");
	cr_assert_str_eq(jstr(r.json, "reason"), "OP_DENIED");
	api_response__clear(&r);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/web_fetch", id);
	r = thd_call(&d, "POST", path, "{\"args\": {\"url\": \"https://example.com/\"}}");
	cr_assert_eq(r.status, 403);
	cr_assert_str_eq(jstr(r.json, "verdict"), "ask");
	cr_assert_str_eq(jstr(r.json, "reason"), "OP_ASK");
	cr_assert_eq(strlen(jstr(json_object_get(r.json, "approval_request"), "nonce")), 32);
	api_response__clear(&r);
	thd_finish(&d);
}

struct bad {
	const char *method, *path, *ctype, *body;
	int status;
	const char *code, *mention;
};

/* Every malformed request gets a 4xx JSON error and changes nothing. */
Test(blackbox, bad_inputs_get_4xx_json_and_change_nothing)
{
	static char big[6000], long_path[20000];
	static char paused_path[128], paused_tool[160], paused_pause[160];
	static char run_write[160], run_read[160], run_run[160];
	const struct bad cases[] = {
		{"POST", "/v1/sandboxes", "application/json", "{\"vcpus\": ", 400, "malformed_json",
		 NULL},
		{"POST", "/v1/sandboxes", "application/json",
		 "{\"profile\": \"fake-open\", \"vcpus\": \"1\", \"memory_mib\": 64}", 400,
		 "wrong_type", "vcpus"},
		{"POST", "/v1/sandboxes", "application/json", BASIC ", \"colour\": \"red\"}", 400,
		 "unknown_field", "colour"},
		{"POST", "/v1/sandboxes", "application/json",
		 "{\"profile\": \"fake-open\", \"vcpus\": 1}", 400, "missing_field", "memory_mib"},
		{"POST", "/v1/sandboxes", "application/json",
		 BASIC ", \"workspace\": {\"size_mib\": 10, \"persist\": true, \"x\": 1}}", 400,
		 "unknown_field", "workspace.x"},
		{"POST", "/v1/sandboxes", "application/json",
		 BASIC ", \"workspace\": {\"persist\": true}}", 400, "missing_field",
		 "workspace.size_mib"},
		{"POST", "/v1/sandboxes", "application/json",
		 "{\"profile\": \"fake-open\", \"vcpus\": 0, \"memory_mib\": 64}", 400,
		 "out_of_range", "vcpus"},
		{"POST", "/v1/sandboxes", "application/json", BASIC ", \"name\": \"a b\"}", 400,
		 "bad_value", "name"},
		{"POST", "/v1/sandboxes", "application/json", BASIC ", \"env\": {\"A\": 1}}", 400,
		 "wrong_type", "env.A"},
		{"POST", "/v1/sandboxes", "application/json", BASIC ", \"name\": null}", 400,
		 "wrong_type", "name"},
		{"POST", "/v1/sandboxes", "application/json", BASIC ", \"policy\": {}}", 400,
		 "conflicting_fields", NULL},
		{"POST", "/v1/sandboxes", "application/json",
		 "{\"profile\": \"nope\", \"vcpus\": 1, \"memory_mib\": 64}", 400,
		 "unknown_profile", "nope"},
		{"POST", "/v1/sandboxes", "application/json", "[1, 2]", 400, "wrong_type", NULL},
		{"POST", "/v1/sandboxes", "application/json",
		 "{\"vcpus\": 1, \"vcpus\": 2, \"memory_mib\": 64, \"profile\": \"fake-open\"}",
		 400, "malformed_json", NULL},
		{"POST", "/v1/sandboxes", "text/plain", BASIC "}", 415, "unsupported_media_type",
		 NULL},
		{"POST", "/v1/sandboxes", NULL, NULL, 400, "missing_body", NULL},
		{"POST", "/v1/sandboxes", "application/json", big, 413, "body_too_large", NULL},
		{"GET", "/v1/sandboxes/sb-0000000000000000", NULL, NULL, 404, "not_found", NULL},
		{"GET", "/v1/sandboxes/sb-0000000000000000/audit", NULL, NULL, 404, "not_found",
		 NULL},
		{"POST", "/v1/sandboxes/nosuch/pause", NULL, NULL, 404, "not_found", NULL},
		{"GET", "/v1/nope", NULL, NULL, 404, "not_found", NULL},
		{"GET", "/v1/sandboxes/", NULL, NULL, 404, "not_found", NULL},
		{"PUT", "/v1/sandboxes", "application/json", "{}", 405, "method_not_allowed", NULL},
		{"DELETE", "/v1/health", NULL, NULL, 405, "method_not_allowed", NULL},
		{"POST", paused_pause, NULL, NULL, 409, "wrong_state", "paused"},
		{"POST", paused_tool, "application/json", "{\"args\": {}}", 409, "wrong_state",
		 NULL},
		{"POST", paused_pause, "application/json", "{\"force\": true}", 400,
		 "unknown_field", "force"},
		{"POST", "/v1/sandboxes/x/tools/Bad-Name", "application/json", "{}", 400,
		 "bad_tool_name", NULL},
		{"POST", paused_tool, "application/json", "{\"args\": 5}", 400, "wrong_type",
		 "args"},
		{"GET", "/v1/sandboxes?bogus=1", NULL, NULL, 400, "unknown_field", "bogus"},
		{"GET", "/v1/sandboxes?all=maybe", NULL, NULL, 400, "wrong_type", NULL},
		{"GET", "/v1/sandboxes?limit=0", NULL, NULL, 400, "out_of_range", "limit"},
		{"GET", "/v1/sandboxes?limit=1001", NULL, NULL, 400, "out_of_range", "limit"},
		{"GET", "/v1/sandboxes?limit=x", NULL, NULL, 400, "out_of_range", "limit"},
		{"GET", "/v1/sandboxes?cursor=12", NULL, NULL, 400, "bad_value", "cursor"},
		{"GET", "/v1/sandboxes?cursor=1.sb-0123", NULL, NULL, 400, "bad_value", "cursor"},
		{"GET", "/v1/sandboxes?cursor=-1.sb-0123456789abcdef", NULL, NULL, 400, "bad_value",
		 "cursor"},
		{"GET", paused_path, "application/json", "{}", 400, "unexpected_body", NULL},
		{"POST", "/v1/db/check", "application/json", "{}", 400, "unexpected_body", NULL},
		{"GET", "/v1/db/check", NULL, NULL, 405, "method_not_allowed", NULL},
		{"GET", long_path, NULL, NULL, 431, "headers_too_large", NULL},
		/* Tool args against the catalogue, before any decision (a running sandbox). */
		{"POST", run_write, "application/json", "{\"args\": {\"path\": \"/x\"}}", 400,
		 "bad_args", "'content'"},
		{"POST", run_read, "application/json", "{\"args\": {\"path\": 1}}", 400, "bad_args",
		 "'path'"},
		{"POST", run_run, "application/json", "{\"args\": {\"argv\": []}}", 400, "bad_args",
		 "'argv'"},
		{"POST", run_run, "application/json",
		 "{\"stream\": true, \"args\": {\"argv\": [\"ls\"], \"timeout_ms\": -1}}", 400,
		 "bad_args", "'timeout_ms'"},
	};
	char id[32], *before, *after, req[32768];
	char audit_limit[160];

	memcpy(long_path, "/v1/health?", 11);
	memset(long_path + 11, 'a', sizeof(long_path) - 12);
	memset(big, ' ', sizeof(big) - 2);
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	snprintf(id, sizeof(id), "%s", thd_create(&d, BASIC "}"));
	snprintf(paused_path, sizeof(paused_path), "/v1/sandboxes/%s", id);
	snprintf(paused_pause, sizeof(paused_pause), "%s/pause", paused_path);
	snprintf(paused_tool, sizeof(paused_tool), "%s/tools/echo", paused_path);
	expect("POST", paused_pause, NULL, 200, "paused");
	snprintf(id, sizeof(id), "%s", thd_create(&d, BASIC "}"));
	snprintf(run_write, sizeof(run_write), "/v1/sandboxes/%s/tools/write_file", id);
	snprintf(run_read, sizeof(run_read), "/v1/sandboxes/%s/tools/read_file", id);
	snprintf(run_run, sizeof(run_run), "/v1/sandboxes/%s/tools/run", id);
	snprintf(audit_limit, sizeof(audit_limit), "%s/audit?limit=0", paused_path);

	before = thd_dump(&d);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad *c = &cases[i];
		struct api_response r;
		int n;

		n = snprintf(req, sizeof(req),
			     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%s"
			     "Content-Length: %zu\r\n\r\n%s",
			     c->method, c->path, c->ctype ? "Content-Type: " : "",
			     c->ctype ? c->ctype : "", c->ctype ? "\r\n" : "",
			     c->body ? strlen(c->body) : 0, c->body ? c->body : "");
		cr_assert_lt(n, (int)sizeof(req));
		r = thd_raw(&d, req, (size_t)n);
		cr_assert_eq(r.status, c->status, "case %zu (%s %s): got %d %s", i, c->method,
			     c->path, r.status, r.body);
		cr_assert_not_null(r.json, "case %zu: body is not JSON: %s", i, r.body);
		cr_assert(json_is_true(json_object_get(r.json, "__json_content_type")),
			  "case %zu: not served as application/json", i);
		cr_assert_str_eq(jstr(r.json, "error"), c->code, "case %zu: %s", i, r.body);
		cr_assert(json_is_string(json_object_get(r.json, "message")), "case %zu", i);
		if (c->mention)
			cr_assert_not_null(strstr(jstr(r.json, "message"), c->mention),
					   "case %zu: message does not name '%s': %s", i,
					   c->mention, r.body);
		api_response__clear(&r);
	}
	expect("GET", audit_limit, NULL, 400, NULL);
	after = thd_dump(&d);
	thd_assert_same_db(before, after, "a rejected request changed the database");
	thd_finish(&d);
}

/* ---- concurrency ---- */

struct worker {
	pthread_t t;
	int n;
	int failures;
	char why[256];
};

static void *work(void *arg)
{
	struct worker *w = arg;
	struct api_client *c = NULL;
	struct api_response r = {0};
	char body[160], path[160];
	json_t *req;
	const char *steps[][2] = {
		{"POST", "/tools/echo"}, {"GET", ""}, {"POST", "/pause"}, {"POST", "/resume"}};

	if (api_client__new(d.sock, &c) < 0)
		return NULL;
	snprintf(body, sizeof(body), BASIC ", \"name\": \"w%d\"}", w->n);
	req = json_loads(body, 0, NULL);
	if (api_client__call(c, "POST", "/v1/sandboxes", req, &r) < 0 || r.status != 201) {
		w->failures++;
		snprintf(w->why, sizeof(w->why), "create: %d %s", r.status, r.body);
		goto out;
	}
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct api_response s = {0};

		snprintf(path, sizeof(path), "/v1/sandboxes/%s%s",
			 json_string_value(json_object_get(r.json, "id")), steps[i][1]);
		if (api_client__call(c, steps[i][0], path, NULL, &s) < 0 || s.status != 200) {
			w->failures++;
			snprintf(w->why, sizeof(w->why), "%s %s: %d %s", steps[i][0], path,
				 s.status, s.body);
		}
		api_response__clear(&s);
	}
out:
	json_decref(req);
	api_response__clear(&r);
	api_client__free(c);
	return NULL;
}

Test(blackbox, twenty_concurrent_clients)
{
	struct worker w[20] = {0};
	struct api_response r;

	for (int i = 0; i < 20; i++) {
		w[i].n = i;
		cr_assert_eq(pthread_create(&w[i].t, NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < 20; i++) {
		pthread_join(w[i].t, NULL);
		cr_assert_eq(w[i].failures, 0, "client %d: %s", i, w[i].why);
	}
	r = thd_call(&d, "GET", "/v1/sandboxes", NULL);
	cr_assert_eq(json_array_size(thd_sandboxes(&r)), 20);
	api_response__clear(&r);
	/* 1 daemon.start + 20 x (create, running, decision, result, pause, resume) */
	cr_assert_str_eq(th_query_file(d.db, "SELECT count(*) FROM audit_log"), "121");
	r = thd_call(&d, "GET", "/v1/sandboxes/w7/audit/verify", NULL);
	cr_assert(json_is_true(json_object_get(r.json, "ok")), "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "entries")), 121);
	api_response__clear(&r);
	thd_finish(&d);
}

/* ---- kill -9 ---- */

struct inflight {
	const char *method, *path, *body;
	pid_t pid;
};

/* A client in a child process; it blocks until the daemon answers or dies. */
static void start_inflight(struct inflight *f)
{
	f->pid = fork();
	cr_assert_geq(f->pid, 0);
	if (f->pid == 0) {
		struct api_client *c = NULL;
		struct api_response r = {0};
		json_t *b = f->body ? json_loads(f->body, 0, NULL) : NULL;

		if (api_client__new(d.sock, &c) < 0)
			_exit(2);
		_exit(api_client__call(c, f->method, f->path, b, &r) < 0 ? 0 : 1);
	}
}

static void wait_for(const char *sql, const char *want)
{
	for (int i = 0; i < 6000; i++) {
		if (strcmp(th_query_file(d.db, sql), want) == 0)
			return;
		usleep(10000);
	}
	cr_assert_fail("never saw %s = %s", sql, want);
}

Test(blackbox, kill_9_mid_request_keeps_state_and_chain)
{
	char id[32], path[160];
	struct inflight tool = {"POST", path, "{\"args\": {}}"};
	struct inflight boot = {"POST", "/v1/sandboxes", BASIC ", \"image\": \"fake:hang\"}"};
	struct api_response r;
	int status;

	snprintf(id, sizeof(id), "%s", thd_create(&d, BASIC ", \"name\": \"k9\"}"));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/hang", id);
	start_inflight(&tool);
	start_inflight(&boot);
	wait_for("SELECT count(*) FROM audit_log WHERE kind = 'tool.decision'", "1");
	wait_for("SELECT count(*) FROM sandboxes WHERE state = 'creating'", "1");

	thd_kill9(&d);
	waitpid(tool.pid, &status, 0);
	cr_assert_eq(WEXITSTATUS(status), 0, "the in-flight tool call got an answer");
	waitpid(boot.pid, &status, 0);
	cr_assert_eq(WEXITSTATUS(status), 0, "the in-flight create got an answer");
	cr_assert_str_eq(th_query_file(d.db, "PRAGMA integrity_check"), "ok");

	thd_restart(&d);
	r = thd_call(&d, "GET", "/v1/sandboxes?all=true", NULL);
	cr_assert_eq(json_array_size(thd_sandboxes(&r)), 2, "a sandbox vanished: %s", r.body);
	for (size_t i = 0; i < 2; i++) {
		json_t *sb = json_array_get(thd_sandboxes(&r), i);

		cr_assert_str_eq(jstr(sb, "state"), "failed", "%s", r.body);
		cr_assert_not_null(strstr(jstr(sb, "reason"), "restart"), "%s", r.body);
	}
	api_response__clear(&r);
	thd_expect_intact(&d, id);
	/* The decision was committed, its result never happened, the failure is recorded. */
	snprintf(path, sizeof(path),
		 "SELECT group_concat(kind) FROM (SELECT kind FROM audit_log WHERE sandbox_id = "
		 "'%s' ORDER BY seq)",
		 id);
	cr_assert_str_eq(th_query_file(d.db, path),
			 "sandbox.create,sandbox.running,tool.decision,sandbox.failed");
	thd_finish(&d);
}

Test(blackbox, kill_9_under_load_leaves_a_consistent_database)
{
	pid_t kids[4];
	struct api_response r;
	int status;

	for (int k = 0; k < 4; k++) {
		kids[k] = fork();
		cr_assert_geq(kids[k], 0);
		if (kids[k] == 0) {
			struct api_client *c = NULL;
			json_t *b = json_loads(BASIC "}", 0, NULL);

			if (api_client__new(d.sock, &c) < 0)
				_exit(2);
			for (;;) {
				struct api_response x = {0};

				if (api_client__call(c, "POST", "/v1/sandboxes", b, &x) < 0)
					_exit(0);
				api_response__clear(&x);
			}
		}
	}
	wait_for("SELECT count(*) >= 8 FROM sandboxes", "1");
	thd_kill9(&d);
	for (int k = 0; k < 4; k++)
		waitpid(kids[k], &status, 0);
	thd_restart(&d);
	/* Every sandbox row has its create entry, and none is left half-way. */
	cr_assert_str_eq(th_query_file(d.db, "SELECT count(*) FROM sandboxes WHERE id NOT IN "
					     "(SELECT sandbox_id FROM audit_log WHERE kind = "
					     "'sandbox.create')"),
			 "0");
	cr_assert_str_eq(th_query_file(d.db, "SELECT count(*) FROM sandboxes WHERE state IN "
					     "('creating', 'running', 'paused')"),
			 "0");
	r = thd_call(&d, "GET", "/v1/health", NULL);
	cr_assert_eq(r.status, 200);
	api_response__clear(&r);
	cr_assert_str_eq(th_query_file(d.db, "PRAGMA integrity_check"), "ok");
	r = thd_call(&d, "GET", "/v1/sandboxes?all=true", NULL);
	thd_expect_intact(&d, jstr(json_array_get(thd_sandboxes(&r), 0), "id"));
	api_response__clear(&r);
	thd_finish(&d);
}

/* ---- peer credentials ---- */

/* One GET /v1/health as @uid/@gid; its status, or -errno (-1000: a 403 not "forbidden"). */
static int health_as(uid_t uid, gid_t gid)
{
	const struct thd_peer p = {uid, gid, 0};
	struct api_response r = thd_call_as(&d, &p, "GET", "/v1/health", NULL);
	int st = r.status;

	if (st == 403 && strcmp(jstr(r.json, "error"), "forbidden") != 0)
		st = -1000;
	api_response__clear(&r);
	return st;
}

Test(blackbox, the_socket_is_0660)
{
	struct stat st;

	cr_assert_eq(stat(d.sock, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0660);
	if (getuid() == 0)
		cr_assert_eq(health_as(65534, 65534), -EACCES,
			     "the file mode let a stranger connect");
	thd_finish(&d);
}

Test(blackbox, a_wrong_uid_is_refused_and_logged)
{
	struct api_response r;
	char log[8192] = "";
	FILE *f;

	if (getuid() != 0)
		cr_skip_test("needs root to run a client as another uid");
	/* Even when the socket's mode lets it connect, the peer check refuses it. */
	cr_assert_eq(chmod(d.sock, 0666), 0);
	cr_assert_eq(health_as(65534, 65534), 403);
	r = thd_call(&d, "GET", "/v1/metrics", NULL);
	cr_assert_not_null(strstr(r.body, "nucleus_http_peer_denied_total 1\n"), "%s", r.body);
	api_response__clear(&r);
	f = fopen(d.log, "r");
	cr_assert_not_null(f);
	log[fread(log, 1, sizeof(log) - 1, f)] = '\0';
	fclose(f);
	cr_assert_not_null(strstr(log, "refused request from uid 65534"), "%s", log);
	thd_finish(&d);
}

Test(blackbox, the_owner_group_is_admitted_and_recorded)
{
	char path[160];
	struct api_response r;

	if (getuid() != 0)
		cr_skip_test("needs root to run a client as another uid");
	thd_stop(&d);
	d.extra[2] = "--owner-gid";
	d.extra[3] = "4321";
	thd_restart(&d);
	cr_assert_eq(health_as(5555, 4321), 200);
	cr_assert_eq(health_as(5555, 5555), -EACCES);
	/* A create by the group member records its uid. */
	{
		pid_t pid = fork();

		cr_assert_geq(pid, 0);
		if (pid == 0) {
			struct api_client *c = NULL;
			struct api_response x = {0};
			json_t *b = json_loads(BASIC ", \"name\": \"grp\"}", 0, NULL);

			if (setgroups(0, NULL) || setgid(4321) || setuid(5555))
				_exit(3);
			api_client__new(d.sock, &c);
			_exit(api_client__call(c, "POST", "/v1/sandboxes", b, &x) == 0 &&
					      x.status == 201
				      ? 0
				      : 1);
		}
		int status;

		waitpid(pid, &status, 0);
		cr_assert_eq(WEXITSTATUS(status), 0);
	}
	snprintf(path, sizeof(path), "/v1/sandboxes/grp/audit");
	r = thd_call(&d, "GET", path, NULL);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(r.json, 0), "actor_uid")),
		     5555, "%s", r.body);
	api_response__clear(&r);
	thd_finish(&d);
}

Test(blackbox, health_and_metrics_tell_the_truth)
{
	struct api_response r = thd_call(&d, "GET", "/v1/health", NULL);

	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(jstr(json_object_get(r.json, "backend"), "name"), "fake");
	cr_assert(json_is_false(json_object_get(json_object_get(r.json, "backend"), "real")));
	cr_assert_str_eq(jstr(r.json, "status"), "degraded");
	cr_assert_not_null(strstr(jstr(r.json, "warning"), "not the product"));
	api_response__clear(&r);
	thd_create(&d, BASIC "}");
	r = thd_call(&d, "GET", "/v1/metrics", NULL);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(strstr(r.body, "nucleus_sandboxes{state=\"running\"} 1\n"), "%s",
			   r.body);
	cr_assert_not_null(strstr(r.body, "nucleus_boots_total{result=\"ok\"} 1\n"));
	cr_assert_not_null(strstr(r.body, "nucleus_backend_real{backend=\"fake\"} 0\n"));
	cr_assert_not_null(strstr(r.body, "nucleus_http_requests_total{code=\"2xx\"}"));
	api_response__clear(&r);
	thd_finish(&d);
}

/* Sealed entries per the database file (the daemon's own view is not asked). */
static long long sealed_gap(void)
{
	return atoll(th_query_file(d.db, "SELECT (SELECT max(seq) FROM audit_log) - "
					 "(SELECT coalesce(max(seq), 0) FROM audit_seals)"));
}

Test(blackbox, the_audit_log_is_sealed_soon_after_each_change_and_at_stop)
{
	struct timespec ts = {0, 10 * 1000000};
	char path[160];
	struct api_response r;
	const char *id = thd_create(&d, BASIC "}");
	int i;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/echo", id);
	r = thd_call(&d, "POST", path, "{\"args\": {}}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	api_response__clear(&r);
	/* No request follows: the seal timer alone must get there. */
	for (i = 0; i < 3000 && sealed_gap() != 0; i++)
		nanosleep(&ts, NULL);
	cr_assert_eq(sealed_gap(), 0, "entries left unsealed");
	r = thd_call(&d, "GET", "/v1/metrics", NULL);
	cr_assert_not_null(strstr(r.body, "nucleus_audit_unsealed_entries 0\n"), "%s", r.body);
	cr_assert_null(strstr(r.body, "nucleus_audit_seals_total 0\n"), "%s", r.body);
	api_response__clear(&r);
	/* verify seals what is pending first, so it reports every entry as signed */
	r = thd_call(&d, "POST", path, "{\"args\": {}}");
	api_response__clear(&r);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/audit/verify", id);
	r = thd_call(&d, "GET", path, NULL);
	cr_assert(json_is_true(json_object_get(r.json, "ok")), "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "unsealed")), 0, "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "sealed_through")),
		     json_integer_value(json_object_get(r.json, "entries")), "%s", r.body);
	api_response__clear(&r);
	/* A clean stop seals its last entries (the stop is one) before it exits. */
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/echo", id);
	r = thd_call(&d, "POST", path, "{\"args\": {}}");
	api_response__clear(&r);
	thd_stop(&d);
	cr_assert_eq(sealed_gap(), 0);
	thd_restart(&d);
	thd_finish(&d);
}

Test(blackbox, a_second_daemon_on_the_same_socket_is_refused)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "%s --fake-backend --data-dir %s/other --socket %s 2>/dev/null",
		 NUCLEUSD_PATH, d.dir, d.sock);
	cr_assert_neq(system(cmd), 0);
	expect("GET", "/v1/health", NULL, 200, NULL); /* the first one is untouched */
	thd_finish(&d);
}

/* nucleusd with @opts (after --fake-backend and a data dir): its exit status and stderr. */
static int nucleusd_with(const char *opts, char *out, size_t len)
{
	char cmd[1024];
	FILE *f;
	size_t n;

	snprintf(cmd, sizeof(cmd),
		 "%s --fake-backend --data-dir %s/opts --socket %s/opts.sock %s 2>&1",
		 NUCLEUSD_PATH, d.dir, d.dir, opts);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	return pclose(f);
}

/* The VM backend's options are refused with the fake one, not accepted and ignored. */
Test(blackbox, vm_backend_options_are_refused_with_the_fake_backend)
{
	static const char *const opts[] = {"--boot-timeout 5", "--vmm /bin/true",
					   "--kernel /dev/null", "--initrd /dev/null"};
	char out[2048];

	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		cr_assert_neq(nucleusd_with(opts[i], out, sizeof(out)), 0, "%s accepted", opts[i]);
		cr_assert_not_null(strstr(out, "--fake-backend runs no VMs"), "%s: %s", opts[i],
				   out);
	}
	cr_assert_neq(nucleusd_with("--boot-timeout 0", out, sizeof(out)), 0);
	cr_assert_not_null(strstr(out, "bad option value '0'"), "%s", out);
	expect("GET", "/v1/health", NULL, 200, NULL); /* the running one is untouched */
	thd_finish(&d);
}

/* A client that hangs up while its call is under way must not hurt the daemon. */
Test(blackbox, a_client_gone_before_the_reply_is_harmless)
{
	char id[32], req[512], path[160];
	struct api_response r;
	int n;

	snprintf(id, sizeof(id), "%s", thd_create(&d, BASIC "}"));
	for (int i = 0; i < 5; i++) {
		int fd = thd_dial(&d);

		n = snprintf(req, sizeof(req),
			     "POST /v1/sandboxes/%s/tools/slow HTTP/1.1\r\nHost: x\r\n"
			     "Content-Type: application/json\r\nContent-Length: 21\r\n\r\n"
			     "{\"args\": {\"ms\": 100}}",
			     id);
		cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
		close(fd); /* gone before the reply */
	}
	/* Wait until every result is recorded, i.e. every reply was attempted. */
	wait_for("SELECT count(*) FROM audit_log WHERE kind = 'tool.result'", "5");
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/echo", id);
	r = thd_call(&d, "POST", path, "{\"args\": {\"still\": \"here\"}}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	api_response__clear(&r);
	cr_assert_eq(kill(d.pid, 0), 0, "the daemon died");
	thd_finish(&d);
}

/*
 * A client that stops in the middle of its request gets 408 JSON once the idle pause
 * (--timeout) passed, and the connection is closed (no time is asserted).
 */
Test(blackbox, a_stalled_request_is_cut_off)
{
	struct timeval tv = {.tv_sec = 120};
	static const char partial[] = "POST /v1/sandboxes HTTP/1.1\r\nContent-Length: 100\r\n";
	char buf[2048];
	size_t got = 0;
	ssize_t n;
	int fd;

	thd_stop(&d);
	d.extra[2] = "--timeout";
	d.extra[3] = "1";
	thd_restart(&d);
	fd = thd_dial(&d);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(send(fd, partial, sizeof(partial) - 1, MSG_NOSIGNAL),
		     (ssize_t)sizeof(partial) - 1);
	while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
		got += (size_t)n;
	cr_assert(n == 0 || (n < 0 && errno == ECONNRESET), "connection not closed: %zd", n);
	close(fd);
	buf[got] = '\0';
	cr_assert_eq(strncmp(buf, "HTTP/1.1 408 ", 13), 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "\"error\":\"request_timeout\""), "%s", buf);
	cr_assert_not_null(strstr(buf, "Connection: close\r\n"), "%s", buf);
	expect("GET", "/v1/health", NULL, 200, NULL);
	thd_finish(&d);
}

/* A healthy database: db check says ok, with no problems. */
Test(blackbox, db_check_of_a_sound_database_is_ok)
{
	struct api_response r = thd_call(&d, "POST", "/v1/db/check", NULL);

	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(json_is_true(json_object_get(r.json, "ok")), "%s", r.body);
	cr_assert_eq(json_array_size(json_object_get(r.json, "problems")), 0, "%s", r.body);
	cr_assert_not_null(json_object_get(r.json, "backup"), "%s", r.body);
	api_response__clear(&r);
	thd_finish(&d);
}

#define FILLER 200000

static int fill_tx(struct store *s, void *k)
{
	json_t *body = json_object();
	int r = body ? 0 : -ENOMEM;

	for (int i = 0; i < FILLER && r == 0; i++)
		r = audit__append(s, k, NULL, -1, "test.filler", body, NULL);
	json_decref(body);
	return r;
}

/* The response on a connection of its own (sent with Connection: close), parsed. */
static json_t *read_reply(int fd)
{
	char *text = th_slurp_fd(fd), *body = strstr(text, "\r\n\r\n");
	json_t *j;

	cr_assert_not_null(body, "%s", text);
	cr_assert_not_null(strstr(text, " 200 "), "%.300s", text);
	j = json_loads(body + 4, 0, NULL);
	cr_assert_not_null(j, "%.300s", body);
	free(text);
	return j;
}

/*
 * Verify walks a large log on the maintenance thread: a health check sent after it is
 * answered while it runs, so the health reply comes before the verify reply.
 */
Test(blackbox, health_answers_while_a_long_verify_runs)
{
	struct audit_key *k = NULL;
	struct store *s = NULL;
	struct pollfd p;
	char id[32], req[256];
	json_t *v;
	int fd, n;

	snprintf(id, sizeof(id), "%s", thd_create(&d, BASIC "}"));
	thd_stop(&d);
	/* FILLER entries in the daemon's chain, with its key, sealed */
	cr_assert_eq(audit__key_load(d.data, SIGNER_PATH, NULL, &k), 0);
	cr_assert_eq(th_store_open(d.db, &s), 0);
	cr_assert_eq(audit__attach(k, s, NULL, NULL), 0);
	cr_assert_eq(store__tx(s, fill_tx, k), 0);
	cr_assert_eq(audit__seal(s, k), 1);
	store__free(s);
	audit__key_free(k);
	thd_restart(&d);

	fd = thd_dial(&d);
	n = snprintf(req, sizeof(req),
		     "GET /v1/sandboxes/%s/audit/verify HTTP/1.1\r\nHost: x\r\n"
		     "Connection: close\r\n\r\n",
		     id);
	cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
	/* health, on another connection, while the verify runs */
	expect("GET", "/v1/health", NULL, 200, NULL);
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 0), 0, "the verify answered before the health check");
	v = read_reply(fd);
	close(fd);
	cr_assert(json_is_true(json_object_get(v, "ok")), "%s", json_dumps(v, 0));
	cr_assert_geq(json_integer_value(json_object_get(v, "entries")), FILLER);
	json_decref(v);
	thd_finish(&d);
}
