// SPDX-License-Identifier: Apache-2.0
/*
 * The tool catalogue (nucleusd/tools.c): it covers exactly the policy engine's
 * operations, every row is documented in docs/api.md (guest tools with each argument in
 * their table row), and nd_tool__check names the field it refuses.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>

#include "nucleusd/nucleusd.h"
#include "policy/policy.h"
#include "tests/unit/th_file.h"

Test(tools, the_catalogue_is_the_policy_engines_operations)
{
	bool seen[POLICY_OP_COUNT] = {false};

	cr_assert_eq(nd_n_tools, (size_t)POLICY_OP_COUNT);
	for (size_t i = 0; i < nd_n_tools; i++) {
		const struct nd_tool *t = &nd_tools[i];

		cr_assert(t->op >= 0 && t->op < POLICY_OP_COUNT, "%s: op %d", t->name, t->op);
		cr_assert(!seen[t->op], "%s: op listed twice", t->name);
		seen[t->op] = true;
		cr_assert_str_eq(policy__op_name(t->op), t->name);
		cr_assert_eq(policy__op_from_name(t->name), t->op);
		cr_assert_eq(nd_tool__find(t->name), t);
		cr_assert(!t->streams || t->guest, "%s streams but is not a guest tool", t->name);
		cr_assert((t->guest || t->daemon) == (t->args != NULL),
			  "%s: guest and daemon tools have a schema", t->name);
		cr_assert(!(t->guest && t->daemon), "%s: performed by whom?", t->name);
	}
	cr_assert_null(nd_tool__find("echo"));
	cr_assert_null(nd_tool__find(NULL));
}

Test(tools, every_tool_and_argument_is_documented_in_api_md)
{
	char *doc = th_slurp(API_DOC), want[96];

	for (size_t i = 0; i < nd_n_tools; i++) {
		const struct nd_tool *t = &nd_tools[i];
		const char *at;
		char *row;

		snprintf(want, sizeof(want), "`%s`", t->name);
		cr_assert_not_null(strstr(doc, want), "docs/api.md does not mention %s", want);
		if (!t->args)
			continue;
		/* Guest tools: their row of the table lists every argument. */
		snprintf(want, sizeof(want), "\n| `%s` |", t->name);
		at = strstr(doc, want);
		cr_assert_not_null(at, "docs/api.md has no table row for %s", t->name);
		row = strndup(at + 1, strcspn(at + 1, "\n"));
		cr_assert_not_null(row);
		for (const struct nd_tool_arg *a = t->args; a->name; a++) {
			snprintf(want, sizeof(want), "`%s", a->name);
			cr_assert_not_null(strstr(row, want), "docs/api.md: %s does not list '%s'",
					   t->name, a->name);
		}
		free(row);
	}
	free(doc);
}

/* nd_tool__check of @args (JSON text); returns the error, "" when accepted. */
static const char *check(const char *tool, const char *args)
{
	static struct nd_err e;
	json_t *a = args ? json_loads(args, JSON_ALLOW_NUL, NULL) : NULL;
	int r;

	cr_assert(!args || a, "bad test JSON %s", args);
	memset(&e, 0, sizeof(e));
	r = nd_tool__check(tool, a, &e);
	json_decref(a);
	if (r == 0)
		return "";
	cr_assert_eq(r, -EINVAL);
	cr_assert_str_eq(e.code, "bad_args");
	return e.msg;
}

static void refused(const char *tool, const char *args, const char *mention)
{
	const char *msg = check(tool, args);

	cr_assert(msg[0], "%s %s was accepted", tool, args);
	cr_assert_not_null(strstr(msg, mention), "%s %s: '%s' does not name %s", tool, args, msg,
			   mention);
}

Test(tools, good_calls_pass)
{
	cr_assert_str_eq(check("read_file", "{\"path\": \"/workspace/a\"}"), "");
	cr_assert_str_eq(check("list", "{\"path\": \"/\"}"), "");
	cr_assert_str_eq(check("write_file", "{\"path\": \"/a\", \"content\": \"aGk=\", "
					     "\"encoding\": \"base64\", \"mode\": 4095}"),
			 "");
	cr_assert_str_eq(check("run", "{\"argv\": [\"make\", \"-j2\"], \"cwd\": \"/w\", "
				      "\"env\": {\"A\": \"1\"}, \"stdin\": \"x\", "
				      "\"timeout_ms\": 4294967295}"),
			 "");
	/* The engine's own fields (an approval) are not the catalogue's business. */
	cr_assert_str_eq(check("read_file", "{\"path\": \"/a\", \"approval\": {}}"), "");
	/* Tools without a schema, and names that are not tools: the backend answers. */
	cr_assert_str_eq(check("web_fetch", "{\"url\": 3}"), "");
	cr_assert_str_eq(check("echo", "{\"anything\": [1]}"), "");
	cr_assert_str_eq(check("hang", NULL), "");
}

Test(tools, bad_calls_name_the_field)
{
	static const struct {
		const char *tool, *args, *want;
	} bad[] = {
		{"read_file", NULL, "'path' is required"},
		{"read_file", "{}", "'path' is required"},
		{"list", "{\"path\": 7}", "'path'"},
		{"read_file", "{\"path\": \"/a\\u0000b\"}", "'path'"},
		{"write_file", "{\"path\": \"/x\"}", "'content' is required"},
		{"write_file", "{\"path\": \"/x\", \"content\": 1}", "'content'"},
		{"write_file", "{\"path\": \"/x\", \"content\": \"\", \"encoding\": \"latin1\"}",
		 "'encoding' must be one of \"utf-8\", \"base64\""},
		{"write_file", "{\"path\": \"/x\", \"content\": \"\", \"mode\": 4096}", "'mode'"},
		{"write_file", "{\"path\": \"/x\", \"content\": \"\", \"mode\": -1}", "'mode'"},
		{"write_file", "{\"path\": \"/x\", \"content\": \"\", \"mode\": \"644\"}",
		 "'mode'"},
		{"run", "{}", "'argv' is required"},
		{"run", "{\"argv\": []}", "'argv' must be a non-empty array"},
		{"run", "{\"argv\": \"ls\"}", "'argv'"},
		{"run", "{\"argv\": [\"ls\", 2]}", "argv[1]"},
		{"run", "{\"argv\": [\"ls\"], \"cwd\": false}", "'cwd'"},
		{"run", "{\"argv\": [\"ls\"], \"stdin\": {}}", "'stdin'"},
		{"run", "{\"argv\": [\"ls\"], \"env\": \"A=1\"}", "'env' must be an object"},
		{"run", "{\"argv\": [\"ls\"], \"timeout_ms\": 4294967296}", "'timeout_ms'"},
		{"run", "{\"argv\": [\"ls\"], \"timeout_ms\": 1.5}", "'timeout_ms'"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused(bad[i].tool, bad[i].args, bad[i].want);
}

Test(tools, args_that_are_not_an_object_are_refused)
{
	struct nd_err e = {0};
	json_t *a = json_array();

	cr_assert_eq(nd_tool__check("run", a, &e), -EINVAL);
	cr_assert_str_eq(e.code, "bad_args");
	json_decref(a);
}
