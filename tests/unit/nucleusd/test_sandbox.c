// SPDX-License-Identifier: Apache-2.0
/* The sandbox manager over the fake backend: state machine, audit entries, recovery. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>
#include <event2/event.h>

#include "nucleusd/nucleusd-internal.h"
#include "tests/unit/nucleusd/helpers.h"

static char dir[256];
static struct event_base *base;
static struct nucleusd *nd;
static const struct nd_caller me = {.uid = 4242, .gid = 4242, .pid = 1};

struct reply {
	bool done;
	int rc;
	struct nd_err e;
	json_t *body;
};

static void start(bool fake)
{
	struct nd_backend *be = NULL;
	struct nd_config cfg = {.data_dir = dir, .signer = SIGNER_PATH};

	cr_assert_eq(fake ? nd_fake_backend__new(&be) : nd_none_backend__new(&be), 0);
	cr_assert_eq(nucleusd__new(base, &cfg, be, &nd), 0);
}

static void setup(void)
{
	th_tmpdir(dir, sizeof(dir));
	base = event_base_new();
	cr_assert_not_null(base);
	start(true);
}

static void teardown(void)
{
	nucleusd__free(nd);
	event_base_free(base);
	th_rmrf(dir);
}

TestSuite(sandbox, .init = setup, .fini = teardown);

static void on_reply(void *arg, int rc, const struct nd_err *e, json_t *body)
{
	struct reply *r = arg;

	cr_assert_not(r->done, "reply called twice");
	r->done = true;
	r->rc = rc;
	if (e)
		r->e = *e;
	r->body = body ? json_incref(body) : NULL;
}

static void wait_reply(struct reply *r)
{
	for (int i = 0; i < 1000 && !r->done; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	cr_assert(r->done, "no reply from the backend");
}

static const char *state_of(json_t *sb)
{
	return json_string_value(json_object_get(sb, "state"));
}

/* Creates a sandbox from JSON text and returns its id (static buffer). */
static const char *create(const char *req_text, int want_rc)
{
	static char id[32];
	struct reply r = {0};
	struct nd_err e = {0};
	json_t *req = json_loads(req_text, 0, NULL);
	int rc;

	cr_assert_not_null(req);
	rc = nucleusd__sandbox_create(nd, &me, req, on_reply, &r, &e);
	json_decref(req);
	if (rc < 0) {
		cr_assert_eq(rc, want_rc, "create: %s", e.msg);
		return NULL;
	}
	wait_reply(&r);
	cr_assert_eq(r.rc, want_rc, "create: %s", r.e.msg);
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.body, "id")));
	json_decref(r.body);
	return id;
}

static const char *state(const char *id)
{
	static char buf[16];
	struct nd_err e;
	json_t *sb = NULL;

	cr_assert_eq(nucleusd__sandbox_get(nd, &me, id, &sb, &e), 0, "%s", e.msg);
	snprintf(buf, sizeof(buf), "%s", state_of(sb));
	json_decref(sb);
	return buf;
}

/* Kinds of the sandbox's audit entries, comma-separated. */
static const char *kinds(const char *id)
{
	static char buf[1024];
	json_t *arr = NULL, *e;
	struct nd_err err;
	size_t i;

	buf[0] = '\0';
	cr_assert_eq(nucleusd__audit_list(nd, &me, id, 0, 1000, &arr, &err), 0);
	json_array_foreach(arr, i, e)
	{
		strcat(buf, i ? "," : "");
		strcat(buf, json_string_value(json_object_get(e, "kind")));
	}
	json_decref(arr);
	return buf;
}

/* Verify runs on the maintenance thread: its reply comes through the loop. */
static void chain_intact(void)
{
	struct reply r = {0};
	struct nd_err e;

	cr_assert_eq(nucleusd__audit_verify(nd, NULL, NULL, on_reply, &r, &e), 0);
	cr_assert_not(r.done, "answered on the loop");
	while (!r.done)
		event_base_loop(base, EVLOOP_ONCE);
	cr_assert_eq(r.rc, 0, "%s", r.e.msg);
	cr_assert(json_is_true(json_object_get(r.body, "ok")), "chain broken");
	json_decref(r.body);
}

#define BASIC  "{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": 128"
#define STRICT "{\"profile\": \"fake-strict\", \"vcpus\": 1, \"memory_mib\": 128}"

Test(sandbox, create_boots_to_running_with_its_audit_entries)
{
	const char *id = create(BASIC ", \"name\": \"one\"}", 0);
	char sid[32];

	snprintf(sid, sizeof(sid), "%s", id);
	cr_assert_str_eq(state(sid), "running");
	cr_assert_str_eq(state("one"), "running"); /* by name */
	cr_assert_str_eq(kinds(sid), "sandbox.create,sandbox.running");
	chain_intact();
}

Test(sandbox, the_state_machine_is_enforced)
{
	char id[32];
	json_t *o = NULL;
	struct nd_err e = {0};

	snprintf(id, sizeof(id), "%s", create(BASIC "}", 0));
	cr_assert_eq(nucleusd__sandbox_resume(nd, &me, id, &o, &e), -EBUSY);
	cr_assert_str_eq(e.code, "wrong_state");
	cr_assert_eq(nucleusd__sandbox_pause(nd, &me, id, &o, &e), 0);
	cr_assert_str_eq(state_of(o), "paused");
	json_decref(o);
	cr_assert_eq(nucleusd__sandbox_pause(nd, &me, id, &o, &e), -EBUSY);
	cr_assert_eq(nucleusd__sandbox_resume(nd, &me, id, &o, &e), 0);
	json_decref(o);
	cr_assert_eq(nucleusd__sandbox_stop(nd, &me, id, &o, &e), 0);
	cr_assert_str_eq(state_of(o), "stopped");
	json_decref(o);
	cr_assert_eq(nucleusd__sandbox_stop(nd, &me, id, &o, &e), -EBUSY);
	cr_assert_eq(nucleusd__sandbox_resume(nd, &me, id, &o, &e), -EBUSY);
	cr_assert_str_eq(kinds(id), "sandbox.create,sandbox.running,sandbox.pause,"
				    "sandbox.resume,sandbox.stop");
	chain_intact();
}

Test(sandbox, the_caller_uid_is_recorded)
{
	char id[32];
	json_t *arr = NULL;
	struct nd_err e;

	snprintf(id, sizeof(id), "%s", create(BASIC "}", 0));
	cr_assert_eq(nucleusd__audit_list(nd, &me, id, 0, 10, &arr, &e), 0);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(arr, 0), "actor_uid")),
		     4242);
	json_decref(arr);
}

Test(sandbox, bad_creates_are_refused_without_a_trace)
{
	const char *before = th_query(nucleusd__store(nd), "SELECT count(*) FROM audit_log");
	char n[16];

	snprintf(n, sizeof(n), "%s", before);
	create("{\"vcpus\": 1, \"memory_mib\": 128}", -EINVAL);
	create(BASIC ", \"policy\": {}}", -EINVAL);
	create("{\"profile\": \"nope\", \"vcpus\": 1, \"memory_mib\": 128}", -EINVAL);
	create("{\"policy\": {\"bogus\": 1}, \"vcpus\": 1, \"memory_mib\": 128}", -EINVAL);
	cr_assert_str_eq(th_query(nucleusd__store(nd), "SELECT count(*) FROM sandboxes"), "0");
	cr_assert_str_eq(th_query(nucleusd__store(nd), "SELECT count(*) FROM audit_log"), n);
}

Test(sandbox, a_live_name_is_unique_but_reusable_after_stop)
{
	char id[32];
	json_t *o = NULL;
	struct nd_err e;

	snprintf(id, sizeof(id), "%s", create(BASIC ", \"name\": \"dup\"}", 0));
	create(BASIC ", \"name\": \"dup\"}", -EEXIST);
	cr_assert_eq(nucleusd__sandbox_stop(nd, &me, id, &o, &e), 0);
	json_decref(o);
	create(BASIC ", \"name\": \"dup\"}", 0);
}

Test(sandbox, a_failed_boot_leaves_a_failed_sandbox)
{
	char id[32];

	snprintf(id, sizeof(id), "%s", create(BASIC ", \"image\": \"fake:fail\"}", -EIO));
	cr_assert_str_eq(state(id), "failed");
	cr_assert_str_eq(kinds(id), "sandbox.create,sandbox.failed");
}

Test(sandbox, budget_limits_are_recorded_with_the_sandbox)
{
	char id[32], sql[160];

	snprintf(id, sizeof(id), "%s",
		 create(BASIC ", \"budget\": {\"tokens\": 1000, \"usd\": \"2.50\"}}", 0));
	snprintf(sql, sizeof(sql),
		 "SELECT group_concat(kind || '=' || amount) FROM (SELECT * FROM budget_limits "
		 "WHERE sandbox_id = '%s' ORDER BY kind)",
		 id);
	cr_assert_str_eq(th_query(nucleusd__store(nd), sql), "tokens=1000,usd_micro=2500000");
}

/* A profile's body and default budget come from its one row in the profiles table. */
Test(sandbox, a_profile_is_one_row_body_and_budget_defaults)
{
	struct store *st = nucleusd__store(nd);
	char id[32], sql[200];

	cr_assert_str_eq(th_query(st, "SELECT json_extract(budget, '$.tokens') || ' ' || "
				      "json_extract(budget, '$.usd') || ' ' || "
				      "json_extract(body, '$.levels.run') FROM profiles WHERE "
				      "name = 'fake-budget'"),
			 "1000 1.00 allow");
	cr_assert_eq(store__exec(st, "UPDATE profiles SET budget = '{\"tokens\": 7}', body = "
				     "json_set(body, '$.levels.write_file', 'deny') WHERE name = "
				     "'fake-budget'"),
		     0);
	snprintf(id, sizeof(id), "%s",
		 create("{\"profile\": \"fake-budget\", \"vcpus\": 1, \"memory_mib\": 128}", 0));
	snprintf(sql, sizeof(sql),
		 "SELECT group_concat(kind || '=' || amount) FROM budget_limits WHERE "
		 "sandbox_id = '%s'",
		 id);
	cr_assert_str_eq(th_query(st, sql), "tokens=7");
	snprintf(
		sql, sizeof(sql),
		"SELECT json_extract(policy, '$.levels.write_file') FROM sandboxes WHERE id = '%s'",
		id);
	cr_assert_str_eq(th_query(st, sql), "deny");
	/* At the next start the registry's built-in wins again. */
	nucleusd__free(nd);
	start(true);
	cr_assert_str_eq(th_query(nucleusd__store(nd),
				  "SELECT json_extract(budget, '$.tokens') || ' ' || "
				  "json_extract(body, '$.levels.write_file') FROM profiles WHERE "
				  "name = 'fake-budget'"),
			 "1000 allow");
}

static int tool(const char *id, const char *name, struct reply *r, json_t **denial)
{
	json_t *args = json_pack("{ss ss}", "path", "/etc/hostname", "url", "https://example.com/");
	struct nd_err e = {0};
	int rc;

	rc = nucleusd__tool_call(nd, &me, id, name, args, on_reply, r, denial, &e);
	json_decref(args);
	if (rc == 0)
		wait_reply(r);
	return rc;
}

Test(sandbox, tool_calls_are_decided_audited_and_run)
{
	const char *id = create(STRICT, 0);
	struct reply r = {0};
	json_t *denial = NULL;

	cr_assert_eq(tool(id, "echo", &r, &denial), 0);
	cr_assert_eq(r.rc, 0);
	cr_assert_str_eq(json_string_value(json_object_get(r.body, "verdict")), "allow");
	cr_assert_str_eq(
		json_string_value(json_object_get(
			json_object_get(json_object_get(r.body, "result"), "echo"), "path")),
		"/etc/hostname");
	json_decref(r.body);

	cr_assert_eq(tool(id, "write_file", &r, &denial), -EACCES);
	cr_assert_str_eq(json_string_value(json_object_get(denial, "verdict")), "deny");
	cr_assert_str_eq(json_string_value(json_object_get(denial, "reason")), "OP_DENIED");
	json_decref(denial);
	denial = NULL;

	cr_assert_eq(tool(id, "web_fetch", &r, &denial), -EACCES);
	cr_assert_str_eq(json_string_value(json_object_get(denial, "verdict")), "ask");
	cr_assert_str_eq(json_string_value(json_object_get(denial, "reason")), "OP_ASK");
	cr_assert_not_null(json_object_get(json_object_get(denial, "approval_request"), "nonce"));
	json_decref(denial);
	cr_assert_str_eq(
		th_query(nucleusd__store(nd), "SELECT state || ':' || tool FROM approvals"),
		"pending:web_fetch");
	cr_assert_str_eq(kinds(id), "sandbox.create,sandbox.running,tool.decision,tool.result,"
				    "tool.decision,tool.decision");
	/* echo, the fake's own tool, was decided by the engine as `run` of "echo". */
	cr_assert_str_eq(th_query(nucleusd__store(nd),
				  "SELECT json_extract(body, '$.reason') || ':' || "
				  "json_extract(body, '$.trace.op') FROM audit_log WHERE kind = "
				  "'tool.decision' ORDER BY seq LIMIT 1"),
			 "ALLOWED:run");
	chain_intact();
}

/* The fake's own tools are `run` of a command named after them: `commands` governs them. */
Test(sandbox, own_tools_are_decided_as_run_of_their_name)
{
	const char *id = create("{\"policy\": {\"levels\": {\"run\": \"allow\"}, \"commands\": "
				"{\"allow\": [\"echo\"], \"deny\": [\"slow\"]}}, \"vcpus\": 1, "
				"\"memory_mib\": 128}",
				0);
	struct reply r = {0};
	json_t *denial = NULL;
	cr_assert_eq(tool(id, "echo", &r, &denial), 0);
	cr_assert_eq(r.rc, 0);
	json_decref(r.body);
	cr_assert_eq(tool(id, "slow", &r, &denial), -EACCES);
	cr_assert_str_eq(json_string_value(json_object_get(denial, "reason")), "CMD_DENIED");
	json_decref(denial);
	denial = NULL;
	cr_assert_eq(tool(id, "fail", &r, &denial), -EACCES);
	cr_assert_str_eq(json_string_value(json_object_get(denial, "reason")), "CMD_NOT_ALLOWED");
	json_decref(denial);
	denial = NULL;
	/* "default" is codegen, whose commands do not include echo. */
	id = create("{\"profile\": \"default\", \"vcpus\": 1, \"memory_mib\": 128}", 0);
	cr_assert_eq(tool(id, "echo", &r, &denial), -EACCES);
	cr_assert_str_eq(json_string_value(json_object_get(denial, "reason")), "CMD_NOT_ALLOWED");
	json_decref(denial);
}

Test(sandbox, tool_calls_need_a_running_sandbox)
{
	struct reply r = {0};
	json_t *o = NULL, *denial = NULL;
	struct nd_err e;
	char id[32];

	snprintf(id, sizeof(id), "%s", create(BASIC "}", 0));
	cr_assert_eq(nucleusd__sandbox_pause(nd, &me, id, &o, &e), 0);
	json_decref(o);
	cr_assert_eq(tool(id, "echo", &r, &denial), -EBUSY);
	cr_assert_eq(tool("sb-0000000000000000", "echo", &r, &denial), -ENOENT);
}

/* Neither an engine operation nor one of the backend's own tools: 404, nothing decided. */
Test(sandbox, an_unknown_tool_is_refused_undecided)
{
	struct reply r = {0};
	json_t *denial = NULL, *args = json_object();
	struct nd_err e = {0};
	char id[32];

	snprintf(id, sizeof(id), "%s", create(BASIC "}", 0));
	cr_assert_eq(
		nucleusd__tool_call(nd, &me, id, "no_such_tool", args, on_reply, &r, &denial, &e),
		-ENOENT);
	json_decref(args);
	cr_assert_str_eq(e.code, "unknown_tool");
	cr_assert_null(denial);
	cr_assert_not(r.done);
	cr_assert_str_eq(kinds(id), "sandbox.create,sandbox.running");
}

Test(sandbox, a_dying_vm_fails_its_sandbox_only)
{
	struct reply r = {0};
	json_t *denial = NULL;
	char a[32], b[32];

	snprintf(a, sizeof(a), "%s", create(BASIC "}", 0));
	snprintf(b, sizeof(b), "%s", create(BASIC "}", 0));
	cr_assert_eq(tool(a, "crash", &r, &denial), 0);
	cr_assert_lt(r.rc, 0);
	cr_assert_str_eq(state(a), "failed");
	cr_assert_str_eq(state(b), "running");
	chain_intact();
}

Test(sandbox, after_a_restart_nothing_silently_vanishes)
{
	struct reply r = {0};
	struct nd_err e;
	json_t *req = json_loads(BASIC ", \"image\": \"fake:hang\"}", 0, NULL);
	char run[32], booting[32];
	json_t *o = NULL;

	snprintf(run, sizeof(run), "%s", create(BASIC "}", 0));
	cr_assert_eq(nucleusd__sandbox_create(nd, &me, req, on_reply, &r, &e), 0);
	json_decref(req);
	for (int i = 0; i < 10; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	cr_assert_not(r.done);
	cr_assert_str_eq(th_query(nucleusd__store(nd), "SELECT count(*) FROM sandboxes WHERE "
						       "state = 'creating'"),
			 "1");
	snprintf(
		booting, sizeof(booting), "%s",
		th_query(nucleusd__store(nd), "SELECT id FROM sandboxes WHERE state = 'creating'"));
	cr_assert_eq(nucleusd__sandbox_stop(nd, &me, booting, &o, &e), -EBUSY);

	nucleusd__free(nd); /* the daemon goes away; the fake's VMs with it */
	start(true);
	cr_assert_str_eq(state(run), "failed");
	cr_assert_str_eq(state(booting), "failed");
	cr_assert_eq(nucleusd__sandbox_get(nd, &me, booting, &o, &e), 0);
	cr_assert_not_null(strstr(json_string_value(json_object_get(o, "reason")), "restart"));
	json_decref(o);
	cr_assert_eq(nucleusd__sandbox_stop(nd, &me, run, &o, &e), 0); /* failed -> stopped */
	json_decref(o);
	chain_intact();
}

Test(sandbox, without_a_backend_the_daemon_says_so)
{
	json_t *h = NULL, *req = json_loads(BASIC "}", 0, NULL);
	struct reply r = {0};
	struct nd_err e = {0};

	nucleusd__free(nd);
	start(false);
	cr_assert_eq(nucleusd__health(nd, &h), 0);
	cr_assert_str_eq(json_string_value(json_object_get(h, "status")), "degraded");
	cr_assert(json_is_false(json_object_get(json_object_get(h, "backend"), "real")));
	cr_assert_not_null(json_object_get(h, "warning"));
	json_decref(h);
	cr_assert_eq(nucleusd__sandbox_create(nd, &me, req, on_reply, &r, &e), -EAGAIN);
	cr_assert_str_eq(e.code, "backend_unavailable");
	json_decref(req);
}

Test(sandbox, metrics_count_what_happened)
{
	char *m = NULL;
	struct reply r = {0};
	json_t *denial = NULL;
	char id[32];

	snprintf(id, sizeof(id), "%s", create(BASIC "}", 0));
	create(BASIC ", \"image\": \"fake:fail\"}", -EIO);
	cr_assert_eq(tool(id, "echo", &r, &denial), 0);
	json_decref(r.body);
	cr_assert_eq(nucleusd__metrics(nd, &m), 0);
	cr_assert_not_null(strstr(m, "nucleus_sandboxes{state=\"running\"} 1\n"));
	cr_assert_not_null(strstr(m, "nucleus_sandboxes{state=\"failed\"} 1\n"));
	cr_assert_not_null(strstr(m, "nucleus_boots_total{result=\"ok\"} 1\n"));
	cr_assert_not_null(strstr(m, "nucleus_boots_total{result=\"failed\"} 1\n"));
	cr_assert_not_null(strstr(m, "nucleus_boot_duration_seconds_count 1\n"));
	cr_assert_not_null(strstr(m, "nucleus_decisions_total{verdict=\"allow\"} 1\n"));
	free(m);
}

Test(sandbox, the_policy_session_state_commits_with_each_decision)
{
	struct reply r = {0};
	json_t *denial = NULL, *o = NULL, *arr = NULL;
	struct nd_err e;
	char id[32], sql[200];

	snprintf(id, sizeof(id), "%s", create(STRICT, 0));
	snprintf(sql, sizeof(sql),
		 "SELECT coalesce(state, 'none') || '/' || (closed_us IS NULL) FROM sessions "
		 "WHERE sandbox_id = '%s'",
		 id);
	cr_assert_str_eq(th_query(nucleusd__store(nd), sql), "none/1");
	cr_assert_eq(tool(id, "echo", &r, &denial), 0);
	json_decref(r.body);
	cr_assert_eq(tool(id, "write_file", &r, &denial), -EACCES);
	json_decref(denial);
	/* Each decision started from the committed state: the session is at seq 2. */
	snprintf(sql, sizeof(sql),
		 "SELECT json_extract(state, '$.seq') || '/' || (closed_us IS NULL) FROM sessions "
		 "WHERE sandbox_id = '%s'",
		 id);
	cr_assert_str_eq(th_query(nucleusd__store(nd), sql), "2/1");
	cr_assert_eq(nucleusd__audit_list(nd, &me, id, 0, 100, &arr, &e), 0);
	cr_assert_eq(
		json_integer_value(json_object_get(
			json_object_get(json_object_get(json_array_get(arr, 4), "body"), "trace"),
			"seq")),
		2);
	json_decref(arr);
	cr_assert_eq(nucleusd__sandbox_stop(nd, &me, id, &o, &e), 0);
	json_decref(o);
	cr_assert_str_eq(th_query(nucleusd__store(nd), sql), "2/0");
}

/* Collects every page of a list (@limit a page) into @ids, one id a line. */
static size_t list_pages(bool all, unsigned limit, char *ids, size_t len, size_t *pages)
{
	struct nd_list_opts o = {.all = all, .limit = limit};
	char *cursor = NULL;
	size_t n = 0, off = 0;

	*pages = 0;
	do {
		json_t *arr = NULL, *sb;
		char *next = NULL;
		size_t i;

		o.cursor = cursor;
		cr_assert_eq(nucleusd__sandbox_list(nd, NULL, &o, &arr, &next, NULL), 0);
		cr_assert_leq(json_array_size(arr), limit);
		if (next)
			cr_assert_eq(json_array_size(arr), limit, "only the last page is short");
		json_array_foreach(arr, i, sb)
		{
			off += (size_t)snprintf(ids + off, len - off, "%s\n",
						json_string_value(json_object_get(sb, "id")));
			cr_assert_lt(off, len);
			n++;
		}
		json_decref(arr);
		free(cursor);
		cursor = next;
		(*pages)++;
	} while (cursor);
	return n;
}

/*
 * 250 sandboxes (many made in the same microsecond, every fifth stopped) listed 7 at a
 * time: every one once, in the one-page order, the live list without the stopped.
 */
Test(sandbox, the_list_pages_without_duplicates_or_misses)
{
	static char paged[250 * 24], whole[250 * 24];
	struct store *s = nucleusd__store(nd);
	size_t pages, n;

	cr_assert_eq(store__exec(s,
				 "WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i "
				 "WHERE n < 250) INSERT INTO sandboxes(id, state, policy, spec, "
				 "vcpus, memory_mib, owner_uid, created_us, updated_us) SELECT "
				 "printf('sb-%016x', (n * 7919) % 65536), CASE WHEN n % 5 = 0 "
				 "THEN 'stopped' ELSE 'paused' END, '{}', '{}', 1, 64, 0, n / 4, "
				 "n / 4 FROM i"),
		     0);
	for (int all = 0; all < 2; all++) {
		n = list_pages(all, 7, paged, sizeof(paged), &pages);
		cr_assert_eq(n, all ? 250u : 200u);
		cr_assert_eq(pages, (n + 6) / 7, "all=%d: no empty last page", all);
		cr_assert_eq(list_pages(all, 1000, whole, sizeof(whole), &pages), n);
		cr_assert_eq(pages, 1);
		cr_assert_str_eq(paged, whole, "all=%d: the pages are the whole list", all);
		cr_assert_str_eq(th_query(s, all ? "SELECT count(DISTINCT id) FROM sandboxes"
						 : "SELECT count(*) FROM sandboxes WHERE state != "
						   "'stopped'"),
				 all ? "250" : "200");
	}
}

Test(sandbox, a_bad_cursor_is_refused)
{
	const char *bad[] = {"",
			     "x",
			     "12",
			     "1.sb-0123",
			     "1.sb-0123456789ABCDEF",
			     "-1.sb-0123456789abcdef",
			     "99999999999999999999.sb-0123456789abcdef"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct nd_list_opts o = {.limit = 5, .cursor = bad[i]};
		struct nd_err e = {0};
		json_t *arr = NULL;
		char *next = NULL;

		cr_assert_eq(nucleusd__sandbox_list(nd, &me, &o, &arr, &next, &e), -EINVAL, "%s",
			     bad[i]);
		cr_assert_str_eq(e.code, "bad_value");
		cr_assert_null(arr);
	}
}
