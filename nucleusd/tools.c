// SPDX-License-Identifier: Apache-2.0
/*
 * The tool catalogue (declared in nucleusd/nucleusd.h): one row per tool, and the one
 * function that checks a call's arguments against a row. Constant data, no state.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "nucleusd/nucleusd.h"
#include "policy/policy.h"

#define READ_MAX (8u << 20) /* read_file: the whole file, at most */
#define OUT_MAX	 (4u << 20) /* run: stdout and stderr, each */

static const char *const encodings[] = {"utf-8", "base64", NULL};

static const struct nd_tool_arg path_args[] = {
	{"path", ND_ARG_STRING, true},
	{NULL},
};

static const struct nd_tool_arg write_args[] = {
	{"path", ND_ARG_STRING, true},
	{"content", ND_ARG_STRING, true},
	{"encoding", ND_ARG_STRING, false, .one_of = encodings},
	{"mode", ND_ARG_INT, false, 0, 07777},
	{NULL},
};

static const struct nd_tool_arg run_args[] = {
	{"argv", ND_ARG_STRINGS, true},
	{"cwd", ND_ARG_STRING, false},
	/* Names and sizes checked with the sandbox's spec.env by nd_env__merge(). */
	{"env", ND_ARG_OBJECT, false},
	{"stdin", ND_ARG_STRING, false},
	{"timeout_ms", ND_ARG_INT, false, 0, UINT32_MAX},
	{NULL},
};

/* A child sandbox (docs/api.md "Delegation"): a create request's fields but "parent". */
static const struct nd_tool_arg spawn_args[] = {
	{"target", ND_ARG_STRING, false},
	{"profile", ND_ARG_STRING, false},
	{"policy", ND_ARG_OBJECT, false},
	{"budget", ND_ARG_OBJECT, false},
	{"vcpus", ND_ARG_INT, false, 1, 64},
	{"memory_mib", ND_ARG_INT, false, 16, 1048576},
	{"ttl_seconds", ND_ARG_INT, false, 1, 30 * 86400},
	{NULL},
};

const struct nd_tool nd_tools[] = {
	{"read_file", POLICY_OP_READ_FILE, true, false, READ_MAX, path_args},
	{"write_file", POLICY_OP_WRITE_FILE, true, false, 0, write_args},
	{"list", POLICY_OP_LIST, true, false, 0, path_args},
	{"run", POLICY_OP_RUN, true, true, OUT_MAX, run_args},
	/* Decided by the policy engine (it parses their args), not performed yet. */
	{"search", POLICY_OP_SEARCH},
	{"web_fetch", POLICY_OP_WEB_FETCH},
	{"web_search", POLICY_OP_WEB_SEARCH},
	{"net_connect", POLICY_OP_NET_CONNECT},
	{"git_commit", POLICY_OP_GIT_COMMIT},
	{"git_push", POLICY_OP_GIT_PUSH},
	{"create_pr", POLICY_OP_CREATE_PR},
	/* Performed by the daemon: a child sandbox of the caller's. */
	{"spawn_agent", POLICY_OP_SPAWN_AGENT, false, false, 0, spawn_args, true},
	{"manage_sandbox", POLICY_OP_MANAGE_SANDBOX},
};

const size_t nd_n_tools = sizeof(nd_tools) / sizeof(nd_tools[0]);

const struct nd_tool *nd_tool__find(const char *name)
{
	for (size_t i = 0; name && i < nd_n_tools; i++)
		if (strcmp(nd_tools[i].name, name) == 0)
			return &nd_tools[i];
	return NULL;
}

static bool str_ok(json_t *v)
{
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

static int check_arg(const struct nd_tool *t, const struct nd_tool_arg *a, json_t *v,
		     struct nd_err *e)
{
	const char *const *s;
	json_int_t n;
	size_t i;

	switch (a->type) {
	case ND_ARG_STRING:
		if (!str_ok(v))
			return nd_err__set(e, -EINVAL, "bad_args",
					   "%s: '%s' must be a string without NUL", t->name,
					   a->name);
		for (s = a->one_of; s && *s && strcmp(*s, json_string_value(v)) != 0; s++)
			;
		if (s && !*s) {
			char vals[128];
			size_t k = 0;

			vals[0] = '\0';
			for (s = a->one_of; *s && k < sizeof(vals); s++)
				k += (size_t)snprintf(vals + k, sizeof(vals) - k, "%s\"%s\"",
						      s == a->one_of ? "" : ", ", *s);
			return nd_err__set(e, -EINVAL, "bad_args", "%s: '%s' must be one of %s",
					   t->name, a->name, vals);
		}
		return 0;
	case ND_ARG_INT:
		n = json_integer_value(v);
		if (!json_is_integer(v) || n < a->min || n > a->max)
			return nd_err__set(e, -EINVAL, "bad_args",
					   "%s: '%s' must be an integer from %lld to %lld", t->name,
					   a->name, (long long)a->min, (long long)a->max);
		return 0;
	case ND_ARG_STRINGS:
		if (!json_is_array(v) || json_array_size(v) == 0)
			return nd_err__set(e, -EINVAL, "bad_args",
					   "%s: '%s' must be a non-empty array of strings", t->name,
					   a->name);
		for (i = 0; i < json_array_size(v); i++)
			if (!str_ok(json_array_get(v, i)))
				return nd_err__set(e, -EINVAL, "bad_args",
						   "%s: %s[%zu] is not a string (without NUL)",
						   t->name, a->name, i);
		return 0;
	case ND_ARG_OBJECT:
		if (!json_is_object(v))
			return nd_err__set(e, -EINVAL, "bad_args", "%s: '%s' must be an object",
					   t->name, a->name);
		return 0;
	}
	return nd_err__set(e, -EINVAL, "bad_args", "%s: '%s' has no type", t->name, a->name);
}

int nd_tool__check(const char *name, json_t *args, struct nd_err *e)
{
	const struct nd_tool *t = nd_tool__find(name);
	int r;

	if (!t || !t->args)
		return 0;
	if (args && !json_is_object(args))
		return nd_err__set(e, -EINVAL, "bad_args", "%s: args must be an object", name);
	for (const struct nd_tool_arg *a = t->args; a->name; a++) {
		json_t *v = json_object_get(args, a->name);

		if (!v) {
			if (a->required)
				return nd_err__set(e, -EINVAL, "bad_args", "%s: '%s' is required",
						   name, a->name);
			continue;
		}
		r = check_arg(t, a, v, e);
		if (r < 0)
			return r;
	}
	return 0;
}
