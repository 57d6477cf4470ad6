// SPDX-License-Identifier: Apache-2.0
/*
 * The policy engine's per-call path (decide.c) and its session cache: a cached session
 * is used only for the exact state text it produced, so a decision that was never
 * committed cannot leak into the next one.
 */
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>

#include "nucleusd/nucleusd-internal.h"
#include "policy/policy.h"

static struct nd_session_cache *cache;
static json_t *policy, *args;
static struct nd_sandbox_info sb;

static void setup(void)
{
	cr_assert_eq(nd_session_cache__new(&cache), 0);
	policy = json_loads(policy__builtin_json("permissive-local"), 0, NULL);
	cr_assert_not_null(policy);
	args = json_pack("{ss}", "path", "/workspace/README.md");
	memset(&sb, 0, sizeof(sb));
	sb.id = "sb-00000000000000aa";
	sb.policy = policy;
	sb.session_id = "000102030405060708090a0b0c0d0e0f";
}

static void teardown(void)
{
	nd_session_cache__free(cache);
	json_decref(policy);
	json_decref(args);
}

TestSuite(decide, .init = setup, .fini = teardown);

/* One decision from @state (NULL: a fresh session); its trace seq; *@next = new state. */
static json_int_t decide(struct nd_session_cache *c, const char *state, char **next)
{
	struct nd_decision d = {0};
	struct nd_err e = {0};
	json_int_t seq;

	sb.session_state = state;
	cr_assert_eq(nd_policy__decide(c, NULL, 0, &sb, "read_file", args, &d, &e), 0, "%s", e.msg);
	cr_assert_eq(d.verdict, ND_ALLOW, "%s", d.message);
	seq = json_integer_value(json_object_get(d.trace, "seq"));
	json_decref(d.trace);
	*next = d.session_state;
	return seq;
}

Test(decide, a_state_that_was_never_committed_is_not_reused)
{
	char *s1, *s2, *again, *s3, *other;

	cr_assert_eq(decide(cache, NULL, &s1), 1);
	/* s1 was not committed: the next call starts from the fresh session again. */
	cr_assert_eq(decide(cache, NULL, &again), 1);
	cr_assert_str_eq(again, s1);
	free(again);
	cr_assert_eq(decide(cache, s1, &s2), 2);
	/* s2 rolled back: the database still says s1. */
	cr_assert_eq(decide(cache, s1, &again), 2);
	cr_assert_str_eq(again, s2);
	cr_assert_eq(decide(cache, again, &s3), 3);
	/* The same chain without a cache gives the same states: the cache changes nothing. */
	cr_assert_eq(decide(NULL, s1, &other), 2);
	cr_assert_str_eq(other, s2);
	free(other);
	free(again);
	free(s1);
	free(s2);
	free(s3);
}

Test(decide, the_cache_follows_each_session_by_id)
{
	char *a1, *b1, *a2, *b2;

	cr_assert_eq(decide(cache, NULL, &a1), 1);
	sb.session_id = "ffffffffffffffffffffffffffffffff";
	cr_assert_eq(decide(cache, NULL, &b1), 1);
	cr_assert_eq(decide(cache, b1, &b2), 2);
	sb.session_id = "000102030405060708090a0b0c0d0e0f";
	cr_assert_eq(decide(cache, a1, &a2), 2);
	cr_assert(strstr(a2, "000102030405060708090a0b0c0d0e0f"), "%s", a2);
	cr_assert(strstr(b2, "ffffffffffffffffffffffffffffffff"), "%s", b2);
	free(a1);
	free(b1);
	free(a2);
	free(b2);
}

Test(decide, an_unknown_tool_is_enoent)
{
	struct nd_decision d = {0};
	struct nd_err e = {0};

	cr_assert_eq(nd_policy__decide(cache, NULL, 0, &sb, "echo", args, &d, &e), -ENOENT);
	cr_assert_str_eq(e.code, "unknown_tool");
}
