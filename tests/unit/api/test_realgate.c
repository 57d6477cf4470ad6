// SPDX-License-Identifier: Apache-2.0
/*
 * The fake backend decided by the policy engine: a real nucleusd (--fake-backend) whose
 * sandboxes carry a profile of the daemon's registry (the engine's codegen, research-web,
 * ..., and the daemon's default, fake-open, fake-strict, fake-budget) or an inline engine
 * policy are decided by the engine in the daemon core (nucleusd/decide.c, whatever the
 * backend): the engine's reasons, its trace in the audit log, its session state across
 * calls, and approvals signed by a key given with --approver-key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <criterion/criterion.h>
#include <sodium.h>

#include "policy/policy.h"
#include "tests/unit/api/daemon.h"
#include "tests/unit/nucleusd/helpers.h"
#include "tests/unit/th_approval.h"

THD_SUITE(realgate);

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "(none)";
}

static const char *sb_create(const char *profile)
{
	char body[160];

	snprintf(body, sizeof(body), "{\"profile\": \"%s\", \"vcpus\": 1, \"memory_mib\": 128}",
		 profile);
	return thd_create(&d, body);
}

/* POST tools/@tool {"args": @args}; asserts @status and, unless NULL, the reason. */
static json_t *call(const char *id, const char *tool, const char *args, int status,
		    const char *reason)
{
	char path[160], *body;
	struct api_response r;
	json_t *o;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/%s", id, tool);
	cr_assert_gt(asprintf(&body, "{\"args\": %s}", args), 0);
	r = thd_call(&d, "POST", path, body);
	free(body);
	cr_assert_eq(r.status, status, "%s %s: %d %s", tool, args, r.status, r.body);
	if (reason)
		cr_assert_str_eq(jstr(r.json, "reason"), reason, "%s %s: %s", tool, args, r.body);
	o = json_incref(r.json);
	api_response__clear(&r);
	return o;
}

/* The body of the sandbox's last tool.decision audit entry (a new reference). */
static json_t *last_decision(const char *id)
{
	json_t *body = thd_last_entry(&d, id, "tool.decision");

	cr_assert_not_null(body, "no tool.decision for %s", id);
	return body;
}

static bool has_leg(json_t *legs, const char *leg)
{
	size_t i;
	json_t *v;

	json_array_foreach(legs, i, v)
	{
		if (strcmp(json_string_value(v), leg) == 0)
			return true;
	}
	return false;
}

Test(realgate, codegen_read_file_is_decided_by_the_engine)
{
	char id[32];
	json_t *o, *b;

	snprintf(id, sizeof(id), "%s", sb_create("codegen"));
	o = call(id, "read_file", "{\"path\": \"/workspace/src/main.c\"}", 200, NULL);
	cr_assert_str_eq(jstr(o, "verdict"), "allow");
	/* The fake completes the engine's operation with no work, saying so. */
	cr_assert(json_is_true(json_object_get(json_object_get(o, "result"), "fake")));
	cr_assert_str_eq(jstr(json_object_get(o, "result"), "op"), "read_file");
	json_decref(o);
	b = last_decision(id);
	cr_assert_str_eq(jstr(b, "reason"), "ALLOWED", "%s", json_dumps(b, 0));
	cr_assert_str_neq(jstr(b, "reason"), "fake_allow");
	cr_assert_str_eq(jstr(json_object_get(b, "trace"), "op"), "read_file");
	cr_assert(has_leg(json_object_get(json_object_get(b, "trace"), "legs_after"), "private"));
	json_decref(b);

	/* Outside the workspace, and a secret inside it: the engine's deny reasons. */
	o = call(id, "read_file", "{\"path\": \"/etc/passwd\"}", 403, "PATH_NOT_ALLOWED");
	cr_assert_str_eq(jstr(o, "verdict"), "deny");
	json_decref(o);
	b = last_decision(id);
	cr_assert_str_eq(jstr(b, "reason"), "PATH_NOT_ALLOWED");
	cr_assert_str_eq(jstr(b, "verdict"), "deny");
	json_decref(b);
	json_decref(call(id, "read_file", "{\"path\": \"/workspace/.env\"}", 403, "PATH_DENIED"));
	json_decref(call(id, "read_file", "{\"path\": \"/workspace/../etc\"}", 403,
			 "PATH_NOT_CANONICAL"));
	/* codegen asks before a push; no web access at all. */
	o = call(id, "git_push",
		 "{\"remote\": \"https://github.com/a/b\", \"ref\": \"refs/heads/agent/x\"}", 403,
		 "OP_ASK");
	cr_assert_str_eq(jstr(o, "verdict"), "ask");
	cr_assert_eq(strlen(jstr(json_object_get(o, "approval_request"), "nonce")), 32);
	json_decref(o);
	json_decref(call(id, "web_fetch", "{\"url\": \"https://example.com/\"}", 403, "OP_DENIED"));
	/* A plain command it allows runs like the fake's run. */
	o = call(id, "run", "{\"argv\": [\"make\", \"all\"]}", 200, NULL);
	cr_assert_str_eq(jstr(json_object_get(o, "result"), "stdout"), "all\n");
	json_decref(o);
	json_decref(call(id, "run", "{\"argv\": [\"curl\", \"x\"]}", 403, "CMD_NOT_ALLOWED"));
	/* The fake's own tools are `run` of their name: codegen has no rule for echo. */
	json_decref(call(id, "echo", "{}", 403, "CMD_NOT_ALLOWED"));
	b = last_decision(id);
	cr_assert_str_eq(jstr(json_object_get(b, "trace"), "op"), "run");
	json_decref(b);
	/* A name that is neither an engine operation nor one of the fake's tools. */
	json_decref(call(id, "no_such_tool", "{}", 404, NULL));
	thd_finish(&d);
}

/* research-web reaches each leg, never all three: the session remembers the earlier call. */
Test(realgate, the_session_state_carries_over_between_calls)
{
	static const char post[] =
		"{\"url\": \"https://example.com/submit\", \"method\": \"POST\", \"body\": \"hi\"}";
	char a[32], b[32];
	json_t *o, *t;

	snprintf(a, sizeof(a), "%s", sb_create("research-web"));
	snprintf(b, sizeof(b), "%s", sb_create("research-web"));
	/* On a fresh session, the POST alone is fine (untrusted + exfil). */
	json_decref(call(b, "web_fetch", post, 200, NULL));
	o = last_decision(b);
	cr_assert_str_eq(jstr(o, "reason"), "ALLOWED");
	json_decref(o);
	/* Reading a note (private) is fine too... */
	json_decref(call(a, "read_file", "{\"path\": \"/workspace/notes/todo.md\"}", 200, NULL));
	/* ...but after it the same POST would complete the three legs. */
	o = call(a, "web_fetch", post, 403, "UNINHABITABLE");
	cr_assert_str_eq(jstr(o, "verdict"), "deny");
	json_decref(o);
	o = last_decision(a);
	t = json_object_get(o, "trace");
	cr_assert_eq(json_integer_value(json_object_get(t, "seq")), 2, "%s", json_dumps(o, 0));
	cr_assert(has_leg(json_object_get(t, "legs_before"), "private"));
	json_decref(o);
	/* And the other way round: after the POST, reading a note is refused. */
	json_decref(call(b, "read_file", "{\"path\": \"/workspace/notes/todo.md\"}", 403,
			 "UNINHABITABLE"));
	/* The committed session state is the engine's. */
	{
		char sql[160];
		json_t *st;

		snprintf(sql, sizeof(sql), "SELECT state FROM sessions WHERE sandbox_id = '%s'", a);
		st = json_loads(th_query_file(d.db, sql), 0, NULL);
		cr_assert_not_null(st);
		cr_assert_eq(json_integer_value(json_object_get(st, "version")), 1);
		cr_assert(has_leg(json_object_get(st, "legs"), "private"));
		json_decref(st);
	}
	thd_finish(&d);
}

Test(realgate, every_builtin_profile_is_an_engine_policy_of_the_one_registry)
{
	const char *const *names = policy__builtin_names();
	char id[32];
	json_t *o;

	cr_assert_not_null(names[0]);
	for (size_t i = 0; names[i]; i++)
		cr_assert_not_null(sb_create(names[i]), "%s", names[i]);
	/* The gate benchmark's call (no call budget in permissive-local). */
	snprintf(id, sizeof(id), "%s", sb_create("permissive-local"));
	json_decref(call(id, "read_file", "{\"path\": \"/workspace/README.md\"}", 200, NULL));
	o = last_decision(id);
	cr_assert_str_eq(jstr(o, "reason"), "ALLOWED");
	json_decref(o);
	/* The profiles table: every one an engine policy; "default" is codegen's body. */
	cr_assert_str_eq(th_query_file(d.db,
				       "SELECT group_concat(name) FROM (SELECT name FROM "
				       "profiles WHERE builtin = 1 AND name IN ('default', "
				       "'fake-open', 'fake-strict', 'fake-budget') ORDER BY name)"),
			 "default,fake-budget,fake-open,fake-strict");
	cr_assert_str_eq(th_query_file(d.db, "SELECT (SELECT body FROM profiles WHERE name = "
					     "'default') = (SELECT body FROM profiles WHERE name = "
					     "'codegen')"),
			 "1");
	cr_assert_str_eq(th_query_file(d.db, "SELECT count(*) FROM profiles WHERE "
					     "json_type(body, '$.deny') IS NOT NULL OR "
					     "json_type(body, '$.ask') IS NOT NULL OR "
					     "json_type(body, '$.levels') IS NOT 'object'"),
			 "0");
	snprintf(id, sizeof(id), "%s", sb_create("default"));
	json_decref(call(id, "echo", "{}", 403, "CMD_NOT_ALLOWED"));
	json_decref(call(id, "read_file", "{\"path\": \"/workspace/a\"}", 200, NULL));
	/* fake-open: everything the fake does, decided by the engine. */
	snprintf(id, sizeof(id), "%s", sb_create("fake-open"));
	json_decref(call(id, "echo", "{}", 200, NULL));
	o = last_decision(id);
	cr_assert_str_eq(jstr(o, "reason"), "ALLOWED");
	cr_assert_str_eq(jstr(json_object_get(o, "trace"), "op"), "run");
	json_decref(o);
	json_decref(call(id, "write_file", "{\"path\": \"/x\", \"content\": \"\"}", 200, NULL));
	json_decref(call(id, "run", "{\"argv\": [\"anything\", \"hi\"]}", 200, NULL));
	/* fake-strict: write_file denied, web_fetch asks, the rest as fake-open. */
	snprintf(id, sizeof(id), "%s", sb_create("fake-strict"));
	json_decref(
		call(id, "write_file", "{\"path\": \"/x\", \"content\": \"\"}", 403, "OP_DENIED"));
	json_decref(call(id, "web_fetch", "{\"url\": \"https://example.com/\"}", 403, "OP_ASK"));
	json_decref(call(id, "echo", "{}", 200, NULL));
	json_decref(call(id, "read_file", "{\"path\": \"/etc/hostname\"}", 200, NULL));
	thd_finish(&d);
}

/*
 * Each create with the inline policy bad[i][0] is a 400 invalid_policy whose message
 * names bad[i][1], and none of them changes the database.
 */
static void creates_are_invalid_policies(const char *const (*bad)[2], size_t n)
{
	struct api_response r;
	char *body, *before, *after;

	before = thd_dump(&d);
	for (size_t i = 0; i < n; i++) {
		cr_assert_gt(asprintf(&body, "{\"policy\": %s, \"vcpus\": 1, \"memory_mib\": 128}",
				      bad[i][0]),
			     0);
		r = thd_call(&d, "POST", "/v1/sandboxes", body);
		free(body);
		cr_assert_eq(r.status, 400, "case %zu: %d %s", i, r.status, r.body);
		cr_assert_str_eq(jstr(r.json, "error"), "invalid_policy", "case %zu: %s", i,
				 r.body);
		cr_assert_not_null(strstr(jstr(r.json, "message"), bad[i][1]),
				   "case %zu: message does not name '%s': %s", i, bad[i][1],
				   r.body);
		api_response__clear(&r);
	}
	after = thd_dump(&d);
	thd_assert_same_db(before, after, "a rejected create changed the database");
}

Test(realgate, an_inline_engine_policy_is_accepted_and_a_malformed_one_records_nothing)
{
	static const char *const bad[][2] = {
		{"{\"levels\": {\"read_file\": \"sometimes\"}}", "$.levels.read_file"},
		{"{\"levelz\": {}}", "$.levelz"},
		{"{\"paths\": {\"read\": [\"relative/**\"]}}", "$.paths.read"},
		/* the removed fake dialect is no policy of the engine: "deny"/"ask" are no keys */
		{"{\"deny\": [], \"levels\": {}}", "$.deny"},
		{"{\"deny\": 5}", "$.deny: unknown key"},
	};
	const char *text = policy__builtin_json("research-web");
	char *body, id[32];
	json_t *o;

	cr_assert_not_null(text);
	cr_assert_gt(asprintf(&body, "{\"policy\": %s, \"vcpus\": 1, \"memory_mib\": 128}", text),
		     0);
	snprintf(id, sizeof(id), "%s", thd_create(&d, body));
	free(body);
	json_decref(call(id, "read_file", "{\"path\": \"/workspace/notes/a\"}", 200, NULL));
	o = last_decision(id);
	cr_assert_str_eq(jstr(o, "reason"), "ALLOWED");
	json_decref(o);
	json_decref(call(id, "read_file", "{\"path\": \"/workspace/src/a.c\"}", 403,
			 "PATH_NOT_ALLOWED"));

	creates_are_invalid_policies(bad, sizeof(bad) / sizeof(bad[0]));
	thd_expect_intact(&d, id);
	thd_finish(&d);
}

/* The removed {"deny": [...], "ask": [...]} dialect: a 400 naming the key, nothing recorded. */
Test(realgate, the_removed_deny_ask_dialect_is_a_400_naming_the_key)
{
	static const char *const bad[][2] = {
		{"{\"deny\": [\"write_file\"], \"ask\": [\"web_fetch\"]}", "$.deny: unknown key"},
		{"{\"deny\": [\"write_file\"]}", "$.deny: unknown key"},
		{"{\"ask\": []}", "$.ask: unknown key"},
		{"{\"deny\": [], \"ask\": []}", ": unknown key"},
	};
	creates_are_invalid_policies(bad, sizeof(bad) / sizeof(bad[0]));
	thd_finish(&d);
}

/* The approval for the `ask` in @denial (a 403 body); see th_approval_body. */
static char *approval_body(json_t *denial, const char *call_json, const unsigned char sk[64])
{
	return th_approval_body(json_object_get(denial, "approval_request"), call_json, sk);
}

static struct api_response approve(const char *id, const char *body)
{
	char path[160];

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/approvals", id);
	return thd_call(&d, "POST", path, body);
}

/*
 * The fake backend honours --approver-key: the core pins the keys in every new policy
 * session, so a signed approval turns an `ask` into `allow` and the call then runs;
 * without the key (or with another key) the same approval is a deny.
 */
Test(realgate, approvals_signed_by_an_approver_key_let_the_asked_call_run)
{
	static const char fetch[] = "{\"url\": \"https://example.com/x\"}";
	static const char fetch_call[] =
		"{\"op\": \"web_fetch\", \"url\": \"https://example.com/x\"}";
	unsigned char pk[32], sk[64], rogue_pk[32], rogue_sk[64];
	char hex[65], id[32], *body;
	struct api_response r;
	json_t *o, *b;

	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(rogue_pk, rogue_sk);
	sodium_bin2hex(hex, sizeof(hex), pk, sizeof(pk));

	/* No key given: a well-signed approval is not honoured. */
	snprintf(id, sizeof(id), "%s", sb_create("fake-strict"));
	o = call(id, "web_fetch", fetch, 403, "OP_ASK");
	body = approval_body(o, fetch_call, sk);
	json_decref(o);
	r = approve(id, body);
	free(body);
	cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "reason"), "APPROVAL_BAD_SIG", "%s", r.body);
	api_response__clear(&r);

	/* With --approver-key: the same kind of approval lets the call run. */
	thd_stop(&d);
	d.extra[0] = "--approver-key";
	d.extra[1] = hex;
	thd_restart(&d);
	snprintf(id, sizeof(id), "%s", sb_create("fake-strict"));
	o = call(id, "web_fetch", fetch, 403, "OP_ASK");
	body = approval_body(o, fetch_call, rogue_sk); /* a key the daemon does not pin */
	r = approve(id, body);
	free(body);
	cr_assert_eq(r.status, 403, "rogue: %d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "reason"), "APPROVAL_BAD_SIG", "%s", r.body);
	api_response__clear(&r);
	json_decref(o);
	o = call(id, "web_fetch", fetch, 403, "OP_ASK");
	body = approval_body(o, fetch_call, sk);
	json_decref(o);
	r = approve(id, body);
	cr_assert_eq(r.status, 200, "approved: %d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "verdict"), "allow");
	cr_assert(json_is_true(json_object_get(json_object_get(r.json, "result"), "fake")), "%s",
		  r.body);
	cr_assert_str_eq(jstr(json_object_get(r.json, "result"), "op"), "web_fetch");
	api_response__clear(&r);
	b = last_decision(id);
	cr_assert_str_eq(jstr(b, "reason"), "APPROVED", "%s", json_dumps(b, 0));
	json_decref(b);
	r = approve(id, body); /* the request is used up */
	free(body);
	cr_assert_eq(r.status, 409, "second use: %d %s", r.status, r.body);
	api_response__clear(&r);

	/* The fake's own tool asked as `run` of its name, approved as that run. */
	snprintf(id, sizeof(id), "%s",
		 thd_create(&d, "{\"policy\": {\"levels\": {\"run\": \"ask\"}}, \"vcpus\": 1, "
				"\"memory_mib\": 128}"));
	o = call(id, "echo", "{\"msg\": \"hi\"}", 403, "OP_ASK");
	body = approval_body(o, "{\"op\": \"run\", \"argv\": [\"echo\"]}", sk);
	json_decref(o);
	r = approve(id, body);
	free(body);
	cr_assert_eq(r.status, 200, "approved echo: %d %s", r.status, r.body);
	cr_assert_str_eq(jstr(json_object_get(json_object_get(r.json, "result"), "echo"), "msg"),
			 "hi", "%s", r.body);
	api_response__clear(&r);
	thd_finish(&d);
}
