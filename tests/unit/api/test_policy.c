// SPDX-License-Identifier: Apache-2.0
/*
 * POST /v1/policy/check and /v1/policy/explain, black-box: the daemon's policy engine
 * for clients that do not link it (nucleusctl). Nothing is stored or audited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>

#include "tests/unit/api/daemon.h"
#include "tests/unit/nucleusd/helpers.h"
#include "tests/unit/th_file.h"

THD_SUITE(policy_api);

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "(none)";
}

/* The text of a built-in profile's source file (malloc'd). */
static char *profile_file(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/policy/profiles/%s.json", SOURCE_ROOT, name);
	return th_slurp(path);
}

/* POST /v1/policy/explain of @body: 200 with this verdict and reason (clear the reply). */
static struct api_response explained(const char *body, const char *verdict, const char *reason)
{
	struct api_response r = thd_call(&d, "POST", "/v1/policy/explain", body);

	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "verdict"), verdict, "%s", r.body);
	cr_assert_str_eq(jstr(r.json, "reason"), reason, "%s", r.body);
	return r;
}

/* POST /v1/policy/check of @body: 200, ok or the problem named (NULL: ok). */
static void checked(const char *body, const char *problem)
{
	struct api_response r = thd_call(&d, "POST", "/v1/policy/check", body);

	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	cr_assert_eq(json_is_true(json_object_get(r.json, "ok")), !problem, "%s", r.body);
	if (problem)
		cr_assert_str_eq(jstr(r.json, "problem"), problem);
	else
		cr_assert_null(json_object_get(r.json, "problem"), "%s", r.body);
	api_response__clear(&r);
}

Test(policy_api, check_says_ok_or_names_the_problem_and_stores_nothing)
{
	char *codegen = profile_file("codegen"), *body, *before = thd_dump(&d);

	cr_assert_gt(asprintf(&body, "{\"policy\": %s}", codegen), 0);
	checked(body, NULL);
	checked("{\"policy\": {\"paths\": {\"read\": [\"/workspace/**\", 5]}}}",
		"$.paths.read[1]: expected string");
	checked("{\"policy\": {\"deny\": [\"run\"]}}", "$.deny: unknown key");

	thd_assert_same_db(before, thd_dump(&d), "policy checks");
	free(body);
	free(codegen);
	thd_finish(&d);
}

/* The engine's verdict, reason and explanation, for a profile of the daemon or a policy. */
Test(policy_api, explain_decides_one_call_in_a_fresh_session)
{
	char *read_only = profile_file("read-only"), *body, *before = thd_dump(&d);
	struct api_response r;

	for (int i = 0; i < 2; i++) {
		/* the same call twice: each is the first of its own session (#1) */
		r = explained("{\"profile\": \"codegen\", \"call\": {\"op\": \"read_file\", "
			      "\"path\": \"/workspace/src/main.c\"}}",
			      "allow", "ALLOWED");
		cr_assert_str_eq(jstr(r.json, "explanation"),
				 "#1 read_file: allow (ALLOWED): allowed by the envelope; "
				 "exposure: call private, session none -> private");
		api_response__clear(&r);
	}

	r = explained("{\"profile\": \"codegen\", \"call\": {\"op\": \"git_push\", \"remote\": "
		      "\"https://github.com/a/b\", \"ref\": \"refs/heads/feature/x\"}}",
		      "ask", "OP_ASK");
	api_response__clear(&r);

	cr_assert_gt(asprintf(&body,
			      "{\"policy\": %s, \"call\": {\"op\": \"write_file\", \"path\": "
			      "\"/workspace/a\"}}",
			      read_only),
		     0);
	r = explained(body, "deny", "OP_DENIED");
	cr_assert_not_null(strstr(jstr(r.json, "explanation"), "[write_file]"), "%s", r.body);
	api_response__clear(&r);

	thd_assert_same_db(before, thd_dump(&d), "policy explanations");
	free(body);
	free(read_only);
	thd_finish(&d);
}

/* Bad input: 400 JSON whose code and message name the problem. */
Test(policy_api, bad_requests_are_400_naming_the_problem)
{
	static const struct {
		const char *path, *body;
		int status;
		const char *code, *in_message;
	} cases[] = {
		{"/v1/policy/check", "{}", 400, "missing_field", "policy"},
		{"/v1/policy/check", "{\"policy\": [1]}", 400, "wrong_type", "policy"},
		{"/v1/policy/check", "{\"policy\": {}, \"x\": 1}", 400, "unknown_field", "x"},
		{"/v1/policy/check", NULL, 400, "missing_body", NULL},
		{"/v1/policy/explain", "{\"profile\": \"codegen\"}", 400, "missing_field", "call"},
		{"/v1/policy/explain", "{\"profile\": \"codegen\", \"call\": \"read_file\"}", 400,
		 "wrong_type", "call"},
		{"/v1/policy/explain", "{\"call\": {\"op\": \"list\", \"path\": \"/workspace\"}}",
		 400, "missing_field", "profile"},
		{"/v1/policy/explain",
		 "{\"profile\": \"codegen\", \"policy\": {}, \"call\": {\"op\": \"list\"}}", 400,
		 "conflicting_fields", "policy"},
		{"/v1/policy/explain", "{\"profile\": \"\", \"call\": {\"op\": \"list\"}}", 400,
		 "out_of_range", "profile"},
		{"/v1/policy/explain", "{\"profile\": \"a b\", \"call\": {\"op\": \"list\"}}", 400,
		 "unknown_profile", "'a b'"},
		{"/v1/policy/explain", "{\"profile\": \"nope\", \"call\": {\"op\": \"list\"}}", 400,
		 "unknown_profile", "'nope'"},
		{"/v1/policy/explain", "{\"policy\": {\"deny\": []}, \"call\": {\"op\": \"list\"}}",
		 400, "invalid_policy", "$.deny: unknown key"},
		{"/v1/policy/explain", "{\"profile\": \"codegen\", \"call\": {\"op\": \"fly\"}}",
		 400, "invalid_call", "$.op: unknown operation"},
		{"/v1/policy/explain", "{\"profile\": \"codegen\", \"call\": {\"path\": \"/a\"}}",
		 400, "invalid_call", "\"op\""},
		{"/v1/policy/explain",
		 "{\"profile\": \"codegen\", \"call\": {\"op\": \"read_file\", \"path\": 7}}", 400,
		 "invalid_call", "$.path"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct api_response r = thd_call(&d, "POST", cases[i].path, cases[i].body);

		cr_assert_eq(r.status, cases[i].status, "case %zu: %d %s", i, r.status, r.body);
		cr_assert_not_null(r.json, "case %zu: not JSON: %s", i, r.body);
		cr_assert_str_eq(jstr(r.json, "error"), cases[i].code, "case %zu: %s", i, r.body);
		if (cases[i].in_message)
			cr_assert_not_null(strstr(jstr(r.json, "message"), cases[i].in_message),
					   "case %zu: %s", i, r.body);
		api_response__clear(&r);
	}
	{
		struct api_response r = thd_call(&d, "GET", "/v1/policy/explain", NULL);

		cr_assert_eq(r.status, 405, "%d %s", r.status, r.body);
		api_response__clear(&r);
	}
	thd_finish(&d);
}
