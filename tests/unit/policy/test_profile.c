// SPDX-License-Identifier: Apache-2.0
/* Profiles: the schema, precise error paths, the built-ins and JSON round trips. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "policy/internal.h"
#include "tests/unit/th_file.h"

static const char *const expected_builtins[] = {"code-review", "codegen", "permissive-local",
						"read-only",   "release", "research-web"};

Test(profile, builtins_parse_and_match_their_files)
{
	const char *const *names = policy__builtin_names();
	size_t n = 0;

	for (; names[n]; n++) {
		char path[512], *text;
		struct policy *p = NULL;

		cr_assert_lt(n, 6);
		cr_expect_str_eq(names[n], expected_builtins[n]);
		cr_assert_eq(policy__profile_builtin(names[n], &p), 0, "%s", names[n]);
		cr_expect_str_eq(policy__name(p), names[n]);
		policy__free(p);
		snprintf(path, sizeof(path), "%s/%s.json", PROFILE_DIR, names[n]);
		text = th_slurp(path);
		cr_expect_str_eq(text, policy__builtin_json(names[n]));
		free(text);
	}
	cr_expect_eq(n, 6);
	cr_expect_null(policy__builtin_json("nope"));
	cr_expect_eq(policy__profile_builtin("nope", &(struct policy *){NULL}), -ENOENT);
}

Test(profile, canonical_json_round_trips)
{
	for (const char *const *n = policy__builtin_names(); *n; n++) {
		struct policy *p = NULL, *q = NULL;
		char *text = NULL;
		uint8_t d1[32], d2[32];

		cr_assert_eq(policy__profile_builtin(*n, &p), 0);
		cr_assert_eq(policy__to_json(p, &text), 0);
		cr_assert_eq(policy__profile_parse(text, &q, NULL), 0, "%s", text);
		cr_expect(policy__eq(p, q), "%s", *n);
		policy__digest(p, d1);
		policy__digest(q, d2);
		cr_expect_arr_eq(d1, d2, 32);
		free(text);
		policy__free(p);
		policy__free(q);
	}
}

static void expect_error(const char *json, const char *msg)
{
	struct policy_error err = {{0}};

	cr_expect_eq(policy__profile_check(json, &err), -EINVAL, "%s", json);
	cr_expect_str_eq(err.msg, msg, "%s", json);
}

Test(profile, errors_name_the_json_path)
{
	expect_error("{\"paths\": {\"read\": [\"/a\", \"/b\", 3]}}",
		     "$.paths.read[2]: expected string");
	expect_error("{\"pathz\": {}}", "$.pathz: unknown key");
	expect_error("{\"paths\": {\"raed\": []}}", "$.paths.raed: unknown key");
	expect_error("{\"levels\": {\"read_file\": \"yes\"}}",
		     "$.levels.read_file: expected \"deny\", \"ask\" or \"allow\"");
	expect_error("{\"levels\": {\"fly\": \"allow\"}}", "$.levels.fly: unknown operation");
	expect_error("{\"paths\": {\"write\": [\"relative\"]}}",
		     "$.paths.write[0]: path patterns must be absolute: \"relative\"");
	expect_error("{\"paths\": {\"deny\": \"none\"}}", "$.paths.deny: expected array");
	expect_error("{\"egress\": {\"allow\": [\"ok.com:443\", \"bad host:1\"]}}",
		     "$.egress.allow[1]: bad host: \"bad host:1\"");
	expect_error("{\"egress\": {\"allow\": [\"ok.com:99999\"]}}",
		     "$.egress.allow[0]: bad port set (N, N-M, N,M or *; ports 1-65535): "
		     "\"ok.com:99999\"");
	expect_error("{\"commands\": {\"allow\": [\"/bin/ls\"]}}",
		     "$.commands.allow[0]: the program must be a basename: \"/bin/ls\"");
	expect_error("{\"budget\": {\"max_calls\": -1}}",
		     "$.budget.max_calls: expected a non-negative integer or \"unlimited\"");
	expect_error("{\"quarantine_after\": 0}",
		     "$.quarantine_after: expected a positive integer or \"never\"");
	expect_error("{\"validity\": {\"not_after\": \"soon\"}}",
		     "$.validity.not_after: expected integer (seconds)");
	expect_error("{\"uninhabitable\": \"allow\"}",
		     "$.uninhabitable: expected \"deny\" or \"ask\"");
	expect_error("{\"git\": {\"refs\": [\"heads/main\"]}}",
		     "$.git.refs[0]: ref patterns start with refs/: \"heads/main\"");
	expect_error("[]", "$: expected object");
	expect_error("{\"name\": 1}", "$.name: expected string");
}

Test(profile, syntax_errors_have_a_position)
{
	struct policy_error err = {{0}};

	cr_expect_eq(policy__profile_check("{\n  \"name\": }", &err), -EINVAL);
	cr_expect(strstr(err.msg, "$: JSON syntax error at line 2") == err.msg, "%s", err.msg);
	cr_expect_eq(policy__profile_check("{\"name\": \"a\", \"name\": \"b\"}", &err), -EINVAL);
	cr_expect_eq(policy__profile_check(NULL, &err), -EINVAL);
}

Test(profile, defaults_and_the_empty_allow_list)
{
	struct policy *p = NULL, *all = NULL, *none = NULL;

	cr_assert_eq(policy__profile_parse("{}", &p, NULL), 0);
	for (int op = 0; op < POLICY_OP_COUNT; op++)
		cr_expect_eq(policy__level(p, op), POLICY_DENY);
	cr_expect(p->read.all && p->egress.all && p->cmd.all);
	cr_expect_eq(p->uninhabitable, POLICY_DENY);
	cr_expect_eq(p->quarantine_after, 3);
	cr_assert_eq(policy__profile_parse("{\"paths\": {\"read\": []}}", &all, NULL), 0);
	cr_expect(all->read.all, "an empty allow list means everything");
	cr_assert_eq(policy__profile_parse("{\"paths\": {\"read\": \"none\"}}", &none, NULL), 0);
	cr_expect(!none->read.all && none->read.n == 0);
	cr_expect(policy__leq(none, all));
	cr_expect(!policy__leq(all, none));
	policy__free(p);
	policy__free(all);
	policy__free(none);
}

Test(profile, normalization_keeps_maximal_patterns)
{
	struct policy *p = NULL;
	char *text = NULL;

	cr_assert_eq(policy__profile_parse("{\"paths\": {\"read\": [\"/w/a/**\", \"/w/**\", "
					   "\"/w/b.c\", \"/x\", \"/x\"]}}",
					   &p, NULL),
		     0);
	cr_expect_eq(p->read.n, 2);
	cr_expect_str_eq(((struct glob *)p->read.e[0])->text, "/w/**");
	cr_expect_str_eq(((struct glob *)p->read.e[1])->text, "/x");
	cr_assert_eq(policy__to_json(p, &text), 0);
	cr_expect(strstr(text, "\"/w/**\""));
	free(text);
	policy__free(p);
}

/*
 * What each built-in's description claims about reachable legs, checked with probe calls
 * on fresh sessions: the union of the legs of every probe that is not denied.
 */
static unsigned reachable(const char *name)
{
	static const char *const curl[] = {"curl", "https://example.com/"};
	static const char *const sh[] = {"bash", "-c", "make"};
	static const char *const fetch[] = {"git", "fetch", "origin"};
	static const char *const pip[] = {"python3", "-m", "pip", "install", "x"};
	static const char *const make[] = {"make", "all"};
	const struct policy_call probes[] = {
		{.op = POLICY_OP_READ_FILE, .path = "/workspace/notes/a.md"},
		{.op = POLICY_OP_LIST, .path = "/workspace"},
		{.op = POLICY_OP_RUN, .argv = make, .argc = 2},
		{.op = POLICY_OP_WEB_SEARCH, .query = "q"},
		{.op = POLICY_OP_WEB_FETCH, .url = "https://example.com/"},
		{.op = POLICY_OP_WEB_FETCH, .url = "https://example.com/", .method = "POST"},
		{.op = POLICY_OP_NET_CONNECT, .host = "example.com", .port = 443},
		{.op = POLICY_OP_GIT_PUSH, .remote = "git@github.com:o/r.git", .ref = "main"},
		{.op = POLICY_OP_GIT_PUSH, .remote = "git@github.com:o/r.git", .ref = "agent/x"},
		{.op = POLICY_OP_CREATE_PR, .remote = "https://github.com/o/r"},
		{.op = POLICY_OP_SPAWN_AGENT, .target = "x"},
		{.op = POLICY_OP_RUN, .argv = curl, .argc = 2},
		{.op = POLICY_OP_RUN, .argv = sh, .argc = 3},
		{.op = POLICY_OP_RUN, .argv = fetch, .argc = 3},
		{.op = POLICY_OP_RUN, .argv = pip, .argc = 5},
	};
	struct policy_session_config cfg = {{0}};
	struct policy *p = NULL;
	unsigned legs = 0;

	cr_assert_eq(policy__profile_builtin(name, &p), 0);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		struct policy_session *s = NULL;
		struct policy_decision d;

		cr_assert_eq(policy__session_new(p, &cfg, &s), 0);
		cr_assert_eq(policy__decide(s, &probes[i], 0, &d), 0);
		if (d.verdict != POLICY_DENY)
			legs |= d.call_legs;
		policy__session_free(s);
	}
	policy__free(p);
	return legs;
}

Test(profile, builtins_reach_the_legs_their_descriptions_claim)
{
	enum { P = POLICY_LEG_PRIVATE, U = POLICY_LEG_UNTRUSTED, X = POLICY_LEG_EXFIL };

	cr_expect_eq(reachable("read-only"), P);
	cr_expect_eq(reachable("code-review"), P);
	cr_expect_eq(reachable("codegen"), P | X);
	cr_expect_eq(reachable("release"), P | X);
	cr_expect_eq(reachable("research-web"), P | U | X);
	cr_expect_eq(reachable("permissive-local"), P | U | X);
}
