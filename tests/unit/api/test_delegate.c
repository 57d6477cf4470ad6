// SPDX-License-Identifier: Apache-2.0
/*
 * Delegation through the API (#15), black-box on the fake backend: a child's budget
 * carved out of its parent's and the rest returned at its end, the family's life (listed
 * under the parent, ended with it), spawn_agent from inside a sandbox, and the refusals
 * (unknown, foreign or stopped parent; too little budget) that record nothing. The
 * policy side (never wider, narrowings reaching children) is in test_policylife.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>

#include "tests/unit/api/daemon.h"

THD_SUITE(delegate);

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "(none)";
}

/* POST /v1/sandboxes {"parent": @parent, @more...}: asserts @status; the reply. */
static struct api_response create_child(const char *parent, const char *more, int status)
{
	char *body;
	struct api_response r;

	cr_assert_gt(asprintf(&body, "{\"parent\": \"%s\", \"vcpus\": 1, \"memory_mib\": 64%s%s}",
			      parent, more ? ", " : "", more ? more : ""),
		     0);
	r = thd_call(&d, "POST", "/v1/sandboxes", body);
	cr_assert_eq(r.status, status, "%s: %d %s", body, r.status, r.body);
	free(body);
	return r;
}

static void child_id(const char *parent, const char *more, char out[32])
{
	struct api_response r = create_child(parent, more, 201);

	snprintf(out, 32, "%s", jstr(r.json, "id"));
	api_response__clear(&r);
}

static json_t *get(const char *id)
{
	struct api_response r = thd_call(&d, "GET", thd_path(id, ""), NULL);
	json_t *o;

	cr_assert_eq(r.status, 200, "%s", r.body);
	o = json_incref(r.json);
	api_response__clear(&r);
	return o;
}

/*
 * A child's limits are carved out of its parent's remaining budget at create (audited on
 * the parent); what it did not spend goes back when it stops, once; a child asking for
 * more than is left is 402 and records nothing; a kind the parent limits must be given.
 */
Test(delegate, a_childs_budget_is_carved_out_of_its_parents_and_returned)
{
	char parent[32], child[32], *before;
	struct api_response r;
	json_t *b;

	snprintf(parent, sizeof(parent), "%s",
		 thd_create(&d, "{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": 128, "
				"\"budget\": {\"tokens\": 1000, \"mem_peak_mib\": 512}}"));

	r = create_child(parent, NULL, 400);
	cr_assert_str_eq(jstr(r.json, "error"), "budget_required", "%s", r.body);
	cr_assert_not_null(strstr(jstr(r.json, "message"), "budget.tokens"), "%s", r.body);
	api_response__clear(&r);

	before = thd_dump(&d);
	r = create_child(parent, "\"budget\": {\"tokens\": 1001}", 402);
	cr_assert_str_eq(jstr(r.json, "error"), "budget_insufficient", "%s", r.body);
	cr_assert_not_null(strstr(jstr(r.json, "message"), "tokens"), "%s", r.body);
	api_response__clear(&r);
	r = create_child(parent, "\"budget\": {\"tokens\": 10, \"mem_peak_mib\": 513}", 400);
	api_response__clear(&r);
	thd_assert_same_db(before, thd_dump(&d), "refused children");

	child_id(parent, "\"budget\": {\"tokens\": 300}", child);
	cr_assert_eq(thd_budget(&d, parent, "tokens", "spent"), 300);
	cr_assert_eq(thd_budget(&d, parent, "tokens", "remaining"), 700);
	cr_assert_eq(thd_budget(&d, child, "tokens", "limit"), 300);
	cr_assert_eq(thd_budget(&d, child, "mem_peak_mib", "limit"), 512, "the parent's peak");
	b = thd_last_entry(&d, parent, "sandbox.delegate");
	cr_assert_not_null(b);
	cr_assert_str_eq(jstr(b, "child"), child);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(b, "carved"), "tokens")),
		     300);
	json_decref(b);

	/* the child spends 120 of its 300: 180 go back when it stops */
	thd_expect(&d, "POST", thd_path(child, "/usage"),
		   "{\"key\": \"k1\", \"input_tokens\": 100, \"output_tokens\": 20}", 200);
	thd_expect(&d, "DELETE", thd_path(child, ""), NULL, 200);
	cr_assert_eq(thd_budget(&d, parent, "tokens", "spent"), 120);
	cr_assert_eq(thd_budget(&d, parent, "tokens", "remaining"), 880);
	b = thd_last_entry(&d, parent, "budget.return");
	cr_assert_not_null(b);
	cr_assert_eq(
		json_integer_value(json_object_get(json_object_get(b, "returned"), "tokens")), 180);
	json_decref(b);

	/* a child that fails and is then deleted is returned once */
	child_id(parent, "\"budget\": {\"tokens\": 800}", child);
	cr_assert_eq(thd_budget(&d, parent, "tokens", "remaining"), 80);
	thd_expect(&d, "POST", thd_path(child, "/tools/crash"), "{}", 502);
	thd_expect(&d, "DELETE", thd_path(child, ""), NULL, 200);
	cr_assert_eq(thd_budget(&d, parent, "tokens", "remaining"), 880);
	thd_expect_intact(&d, parent);
	thd_finish(&d);
}

/*
 * The family: a child names its parent, the parent lists its children, nucleusctl ls
 * shows a child under its parent, and stopping the parent ends the children and theirs.
 */
Test(delegate, a_child_is_listed_under_its_parent_and_ends_with_it)
{
	char parent[32], child[32], grand[32], other[32];
	struct thd_run *run;
	const char *at_p, *at_c, *at_g;
	json_t *o;

	snprintf(parent, sizeof(parent), "%s",
		 thd_create(&d, "{\"name\": \"boss\", \"profile\": \"fake-open\", \"vcpus\": 1, "
				"\"memory_mib\": 128}"));
	snprintf(other, sizeof(other), "%s",
		 thd_create(&d, "{\"name\": \"loner\", \"profile\": \"fake-open\", \"vcpus\": 1, "
				"\"memory_mib\": 128}"));
	child_id("boss", "\"name\": \"worker\"", child); /* the parent by name */
	child_id(child, "\"name\": \"helper\"", grand);

	o = get(child);
	cr_assert_str_eq(jstr(o, "parent"), parent);
	cr_assert_str_eq(jstr(json_object_get(o, "spec"), "parent"), parent, "stored by id");
	json_decref(o);
	o = get(parent);
	cr_assert(json_is_null(json_object_get(o, "parent")));
	cr_assert_eq(json_array_size(json_object_get(o, "children")), 1);
	cr_assert_str_eq(jstr(json_array_get(json_object_get(o, "children"), 0), "id"), child);
	json_decref(o);

	run = thd_ctl(d.sock, "ls", NULL);
	cr_assert_eq(run->code, 0, "%s", run->err);
	at_p = strstr(run->out, parent);
	at_c = strstr(run->out, "\u2514\u2500 worker");
	at_g = strstr(run->out, "  \u2514\u2500 helper");
	cr_assert(at_p && at_c && at_g, "%s", run->out);
	cr_assert(at_p < at_c && at_c < at_g, "not a tree:\n%s", run->out);
	cr_assert(strstr(run->out, other) < at_p || strstr(run->out, other) > at_g,
		  "the loner inside the family:\n%s", run->out);
	run = thd_ctl(d.sock, "create", "--parent", child, "--name", "cli-kid", NULL);
	cr_assert_eq(run->code, 0, "%s %s", run->out, run->err);
	cr_assert_not_null(strstr(run->out, child), "%s", run->out);

	thd_expect(&d, "DELETE", thd_path(parent, ""), NULL, 200);
	o = get(grand);
	cr_assert_str_eq(jstr(o, "state"), "stopped");
	cr_assert_not_null(strstr(jstr(o, "reason"), child), "%s", jstr(o, "reason"));
	json_decref(o);
	o = get(child);
	cr_assert_str_eq(jstr(o, "state"), "stopped");
	cr_assert_not_null(strstr(jstr(o, "reason"), parent));
	json_decref(o);
	o = get("cli-kid");
	cr_assert_str_eq(jstr(o, "state"), "stopped");
	json_decref(o);
	o = get(other);
	cr_assert_str_eq(jstr(o, "state"), "running", "not of the family");
	json_decref(o);
	thd_finish(&d);
}

/* Refusals that record nothing: unknown, another owner's, stopped parent; bad fields. */
Test(delegate, bad_parents_are_refused_and_record_nothing)
{
	static const struct thd_peer alice = {5555, 4000, 0}, bob = {5556, 4000, 0};
	char parent[32], stopped[32], *before, body[256];
	struct api_response r;

	/* alice and bob may open the socket: its group is theirs */
	thd_stop(&d);
	d.extra[0] = "--owner-gid";
	d.extra[1] = "4000";
	thd_restart(&d);
	r = thd_call_as(&d, &alice, "POST", "/v1/sandboxes",
			"{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": 128}");
	cr_assert_eq(r.status, 201, "%d %s (the test runs as root)", r.status, r.body);
	snprintf(parent, sizeof(parent), "%s", jstr(r.json, "id"));
	api_response__clear(&r);
	snprintf(stopped, sizeof(stopped), "%s",
		 thd_create(&d, "{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": 128}"));
	thd_expect(&d, "DELETE", thd_path(stopped, ""), NULL, 200);
	before = thd_dump(&d);
	r = create_child("sb-0000000000000000", NULL, 404);
	api_response__clear(&r);
	r = create_child(stopped, NULL, 409);
	cr_assert_str_eq(jstr(r.json, "error"), "wrong_state", "%s", r.body);
	api_response__clear(&r);
	r = create_child("../x", NULL, 400);
	api_response__clear(&r);
	r = create_child(parent, "\"profile\": \"fake-open\", \"policy\": {}", 400);
	api_response__clear(&r);
	r = create_child(parent, "\"profile\": \"no-such\"", 400);
	cr_assert_str_eq(jstr(r.json, "error"), "unknown_profile", "%s", r.body);
	api_response__clear(&r);
	/* another owner cannot see the parent: a 404 like an unknown one */
	snprintf(body, sizeof(body), "{\"parent\": \"%s\", \"vcpus\": 1, \"memory_mib\": 64}",
		 parent);
	r = thd_call_as(&d, &bob, "POST", "/v1/sandboxes", body);
	cr_assert_eq(r.status, 404, "%d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "error"), "not_found", "%s", r.body);
	api_response__clear(&r);
	thd_assert_same_db(before, thd_dump(&d), "refused children");
	/* its owner can */
	r = thd_call_as(&d, &alice, "POST", "/v1/sandboxes", body);
	cr_assert_eq(r.status, 201, "%d %s", r.status, r.body);
	api_response__clear(&r);
	thd_finish(&d);
}

/* spawn_agent of @id with @body is 403 with @reason, and makes no child. */
static void spawn_refused(const char *id, const char *body, const char *reason)
{
	struct api_response r = thd_call(&d, "POST", thd_path(id, "/tools/spawn_agent"), body);
	json_t *o;

	cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "reason"), reason, "%s", r.body);
	api_response__clear(&r);
	o = get(id);
	cr_assert_lt(json_array_size(json_object_get(o, "children")), 2, "a child too many");
	json_decref(o);
}

/*
 * spawn_agent from inside a sandbox: decided by its policy (max_spawn, deny), then the
 * daemon makes a child of it within its policy and budget; the result is the child.
 */
Test(delegate, spawn_agent_makes_a_child_within_the_policy)
{
	static const char p[] = "{\"policy\": {\"levels\": {\"read_file\": \"allow\", "
				"\"spawn_agent\": \"allow\", \"write_file\": \"allow\"}, \"paths\": "
				"{\"read\": \"all\", \"write\": \"all\"}, \"budget\": "
				"{\"max_spawn\": 2}}, \"vcpus\": 2, \"memory_mib\": 256, "
				"\"budget\": {\"usd\": \"1.00\"}}";
	static const char spawn[] = "{\"args\": {\"target\": \"fix the tests\", \"policy\": "
				    "{\"levels\": {\"read_file\": \"allow\"}}, \"budget\": "
				    "{\"usd\": \"0.25\"}}}";
	char parent[32], denier[32], child[32];
	struct api_response r;
	json_t *sb, *o, *legs;

	snprintf(parent, sizeof(parent), "%s", thd_create(&d, p));
	r = thd_call(&d, "POST", thd_path(parent, "/tools/spawn_agent"), spawn);
	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	sb = json_object_get(json_object_get(r.json, "result"), "sandbox");
	cr_assert_str_eq(jstr(sb, "parent"), parent, "%s", r.body);
	cr_assert_str_eq(jstr(sb, "state"), "running", "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(sb, "vcpus")), 2, "the parent's");
	snprintf(child, sizeof(child), "%s", jstr(sb, "id"));
	api_response__clear(&r);
	cr_assert_eq(thd_budget(&d, child, "usd_micro", "limit"), 250000);
	cr_assert_eq(thd_budget(&d, parent, "usd_micro", "remaining") <= 750000, 1);
	/* the child has read_file only: write_file was the parent's, not requested */
	thd_expect(&d, "POST", thd_path(child, "/tools/read_file"), "{\"args\": {\"path\": \"/a\"}}",
		   200);
	thd_expect(&d, "POST", thd_path(child, "/tools/write_file"),
		   "{\"args\": {\"path\": \"/a\", \"content\": \"x\"}}", 403);
	/*
	 * The child's session started from the parent's as it was before the spawn: the
	 * spawn call's own legs (untrusted, exfil: the parent's channel to its child) are
	 * the parent's, so the child's legs are what it did itself (private: its read).
	 */
	r = thd_call(&d, "GET", thd_path(child, "/policy"), NULL);
	legs = json_object_get(json_object_get(r.json, "session"), "legs");
	cr_assert_eq(json_array_size(legs), 1, "%s", r.body);
	cr_assert_str_eq(json_string_value(json_array_get(legs, 0)), "private", "%s", r.body);
	api_response__clear(&r);
	r = thd_call(&d, "GET", thd_path(parent, "/policy"), NULL);
	legs = json_object_get(json_object_get(r.json, "session"), "legs");
	cr_assert_eq(json_array_size(legs), 2, "the parent's: untrusted, exfil: %s", r.body);
	api_response__clear(&r);

	r = thd_call(&d, "POST", thd_path(parent, "/tools/spawn_agent"),
		     "{\"args\": {\"target\": \"x\", \"budget\": {\"usd\": \"5.00\"}}}");
	cr_assert_eq(r.status, 402, "%d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "error"), "budget_insufficient", "%s", r.body);
	api_response__clear(&r);

	/* max_spawn 2: the refused (402) spawn counted, so the third is refused */
	spawn_refused(parent, spawn, "BUDGET_EXHAUSTED");
	o = get(parent);
	cr_assert_eq(json_array_size(json_object_get(o, "children")), 1);
	json_decref(o);

	/* a policy that denies spawn_agent: no child */
	snprintf(denier, sizeof(denier), "%s",
		 thd_create(&d, "{\"policy\": {\"levels\": {\"read_file\": \"allow\"}}, "
				"\"vcpus\": 1, \"memory_mib\": 128}"));
	spawn_refused(denier, spawn, "OP_DENIED");
	o = get(denier);
	cr_assert_eq(json_array_size(json_object_get(o, "children")), 0);
	json_decref(o);
	/* bad args: 400 before any decision */
	thd_expect(&d, "POST", thd_path(parent, "/tools/spawn_agent"),
		   "{\"args\": {\"vcpus\": 0}}", 400);
	thd_finish(&d);
}
