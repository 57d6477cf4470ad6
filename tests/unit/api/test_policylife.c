// SPDX-License-Identifier: Apache-2.0
/*
 * The policy's life through the API (#15), black-box on the fake backend: GET
 * /v1/sandboxes/{id}/policy, POST .../policy/narrow and .../policy/widen, and quarantine
 * that counts probes, not approved asks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <criterion/criterion.h>
#include <sodium.h>
#include <sqlite3.h>

#include "policy/policy.h"
#include "tests/unit/api/daemon.h"
#include "tests/unit/nucleusd/helpers.h"
#include "tests/unit/th_approval.h"

THD_SUITE(policylife);

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "(none)";
}

/* ---- random policies (seeded xorshift: reproducible) ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned pick(unsigned n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (unsigned)((rng * 0x2545f4914f6cdd1dull) >> 33) % n;
}

/* A JSON list of some of @pool, or "all"/"none" now and then. */
static void rand_list(FILE *f, const char *const *pool, unsigned n)
{
	unsigned k = pick(8);

	if (k == 0) {
		fputs("\"all\"", f);
		return;
	}
	if (k == 1) {
		fputs("\"none\"", f);
		return;
	}
	fputc('[', f);
	for (unsigned i = 0, first = 1; i < n; i++)
		if (pick(2)) {
			fprintf(f, "%s\"%s\"", first ? "" : ", ", pool[i]);
			first = 0;
		}
	fputs("]", f);
}

/* A random engine policy (profile JSON, malloc'd). */
static char *rand_policy(void)
{
	static const char *const ops[] = {"read_file",	"write_file", "list",	    "search",
					  "run",	"web_fetch",  "web_search", "net_connect",
					  "git_commit", "git_push",   "create_pr",  "spawn_agent"};
	static const char *const levels[] = {"deny", "ask", "allow"};
	static const char *const paths[] = {"/workspace/**",  "/workspace/src/**", "/tmp/**",
					    "/workspace/a.c", "/etc/**",	   NULL};
	static const char *const cmds[] = {"git **", "make", "make **", "ls **", "cc **", NULL};
	static const char *const interps[] = {"python3 **", "bash -c **", "sh **", NULL};
	static const char *const hosts[] = {"github.com:443", "*.example.com:*", "localhost:*",
					    "10.0.0.0/8:22", NULL};
	static const char *const refs[] = {"refs/heads/**", "refs/heads/main", "refs/tags/v*",
					   NULL};
	/* each rule set: the JSON before it and its pool */
	static const struct {
		const char *before;
		const char *const *pool;
	} sets[] = {
		{"}, \"paths\": {\"read\": ", paths},	 {", \"write\": ", paths},
		{"}, \"commands\": {\"allow\": ", cmds}, {", \"interpreters\": ", interps},
		{"}, \"egress\": {\"allow\": ", hosts},	 {"}, \"git\": {\"refs\": ", refs},
	};
	char *text = NULL;
	size_t len = 0, n;
	FILE *f = open_memstream(&text, &len);

	cr_assert_not_null(f);
	fputs("{\"levels\": {", f);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		fprintf(f, "%s\"%s\": \"%s\"", i ? ", " : "", ops[i], levels[pick(3)]);
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		for (n = 0; sets[i].pool[n]; n++)
			;
		fputs(sets[i].before, f);
		rand_list(f, sets[i].pool, (unsigned)n);
	}
	fprintf(f, "}, \"budget\": {\"max_calls\": %u}, \"uninhabitable\": \"%s\", ",
		100 + pick(1000), pick(2) ? "ask" : "deny");
	if (pick(4))
		fprintf(f, "\"quarantine_after\": %u}", 1 + pick(9));
	else
		fputs("\"quarantine_after\": \"never\"}", f);
	fclose(f);
	return text;
}

static struct policy *parse(const char *text)
{
	struct policy *p = NULL;
	struct policy_error pe = {{0}};

	cr_assert_eq(policy__profile_parse(text, &p, &pe), 0, "%s: %s", pe.msg, text);
	return p;
}

/* The engine's policy of a reply's "policy" (the one in force). */
static struct policy *in_force(json_t *reply)
{
	char *text = json_dumps(json_object_get(reply, "policy"), JSON_COMPACT);
	struct policy *p;

	cr_assert_not_null(text, "no policy in the reply");
	p = parse(text);
	free(text);
	return p;
}

static const char *create_with(const char *policy)
{
	char *body;
	const char *id;

	cr_assert_gt(asprintf(&body, "{\"policy\": %s, \"vcpus\": 1, \"memory_mib\": 128}", policy),
		     0);
	id = thd_create(&d, body);
	free(body);
	return id;
}

/* POST .../policy/@verb {"policy": @policy}: asserts @status; the reply (clear it). */
static struct api_response change(const char *id, const char *verb, const char *policy,
				  const char *approval, int status)
{
	char path[160], *body;
	struct api_response r;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/policy/%s", id, verb);
	cr_assert_gt(asprintf(&body, "{\"policy\": %s%s%s}", policy,
			      approval ? ", \"approval\": " : "", approval ? approval : ""),
		     0);
	r = thd_call(&d, "POST", path, body);
	free(body);
	cr_assert_eq(r.status, status, "%s %s: %d %s", verb, policy, r.status, r.body);
	return r;
}

static struct api_response show(const char *id)
{
	char path[160];
	struct api_response r;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/policy", id);
	r = thd_call(&d, "GET", path, NULL);
	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	return r;
}

/* Restarts the daemon pinning a new approver key: its secret key in @sk (hex in @hex). */
static void with_approver(unsigned char sk[64], char hex[65])
{
	unsigned char pk[32];

	crypto_sign_keypair(pk, sk);
	sodium_bin2hex(hex, 65, pk, sizeof(pk));
	thd_stop(&d);
	d.extra[0] = "--approver-key";
	d.extra[1] = hex;
	thd_restart(&d);
}

/* Narrows @id by @policy; the policy in force afterwards. */
static struct policy *narrowed(const char *id, const char *policy)
{
	struct api_response r = change(id, "narrow", policy, NULL, 200);
	struct policy *p = in_force(r.json);

	api_response__clear(&r);
	return p;
}

/*
 * Through the API, for random policies: the result of a narrowing is below the running
 * policy and the given one; narrowing again with the same policy changes nothing; two
 * narrowings give the same policy in either order.
 */
Test(policylife, narrowing_is_never_wider_idempotent_and_order_free)
{
	for (int round = 0; round < 20; round++) {
		char *a = rand_policy(), *b = rand_policy(), *c = rand_policy();
		struct policy *pa = parse(a), *pb = parse(b), *pc = parse(c), *x, *y, *x2;
		char id1[32], id2[32];
		struct api_response r;

		snprintf(id1, sizeof(id1), "%s", create_with(a));
		snprintf(id2, sizeof(id2), "%s", create_with(a));
		x = narrowed(id1, b);
		cr_assert(policy__leq(x, pa), "round %d: above the running policy", round);
		cr_assert(policy__leq(x, pb), "round %d: above the given policy", round);
		r = change(id1, "narrow", b, NULL, 200);
		cr_assert(json_is_false(
				  json_object_get(json_object_get(r.json, "narrowed"), "changed")),
			  "round %d: %s", round, r.body);
		x2 = in_force(r.json);
		cr_assert(policy__eq(x, x2), "round %d: not idempotent", round);
		api_response__clear(&r);
		policy__free(x);
		policy__free(x2);

		x = narrowed(id1, c);
		policy__free(narrowed(id2, c));
		y = narrowed(id2, b);
		cr_assert(policy__eq(x, y), "round %d: b then c differs from c then b", round);
		cr_assert(policy__leq(x, pc));
		policy__free(x);
		policy__free(y);
		policy__free(pa);
		policy__free(pb);
		policy__free(pc);
		free(a);
		free(b);
		free(c);
	}
	thd_finish(&d);
}

/*
 * A narrowing is in effect for the next call, audited with the digests, kept across a
 * restart, and an operation left with nothing allowed becomes deny in the reply.
 */
Test(policylife, narrowing_takes_effect_is_audited_and_survives_a_restart)
{
	static const char open_p[] =
		"{\"levels\": {\"read_file\": \"allow\", \"web_fetch\": "
		"\"allow\"}, \"egress\": {\"allow\": [\"a.example.com:443\"]}}";
	static const char other[] = "{\"levels\": {\"read_file\": \"allow\", \"web_fetch\": "
				    "\"allow\"}, \"egress\": {\"allow\": [\"b.example.com:443\"]}}";
	char id[32], path[160], digest[65];
	struct api_response r;
	json_t *v, *en, *found = NULL;
	size_t i;

	snprintf(id, sizeof(id), "%s", create_with(open_p));
	r = show(id);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 1, "%s", r.body);
	cr_assert_str_eq(jstr(json_object_get(r.json, "policy"), "uninhabitable"), "deny");
	cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "versions"), 0), "how"),
			 "create");
	cr_assert(json_is_false(json_object_get(json_object_get(r.json, "session"), "quarantined")),
		  "%s", r.body);
	api_response__clear(&r);

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/web_fetch", id);
	thd_expect(&d, "POST", path, "{\"args\": {\"url\": \"https://a.example.com/x\"}}", 200);

	r = change(id, "narrow", other, NULL, 200);
	v = json_object_get(r.json, "narrowed");
	cr_assert(json_is_true(json_object_get(v, "changed")), "%s", r.body);
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(v, "denied_ops"), 0)),
			 "web_fetch", "%s", r.body);
	cr_assert_str_eq(
		jstr(json_object_get(json_object_get(r.json, "policy"), "levels"), "web_fetch"),
		"deny", "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 2, "%s", r.body);
	snprintf(digest, sizeof(digest), "%s", jstr(r.json, "digest"));
	cr_assert_str_eq(jstr(v, "after"), digest);
	cr_assert_eq(
		json_integer_value(json_object_get(
			json_object_get(json_object_get(r.json, "session"), "counters"), "calls")),
		1, "the session goes on: %s", r.body);
	api_response__clear(&r);

	r = thd_call(&d, "POST", path, "{\"args\": {\"url\": \"https://a.example.com/x\"}}");
	cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "reason"), "OP_DENIED", "%s", r.body);
	api_response__clear(&r);

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/audit", id);
	r = thd_call(&d, "GET", path, NULL);
	json_array_foreach(r.json, i, en)
	{
		if (strcmp(jstr(en, "kind"), "policy.narrow") == 0)
			found = json_object_get(en, "body");
	}
	cr_assert_not_null(found, "no policy.narrow entry: %s", r.body);
	cr_assert_str_eq(jstr(found, "after"), digest);
	cr_assert_eq(strlen(jstr(found, "before")), 64);
	cr_assert_eq(strlen(jstr(found, "given")), 64);
	cr_assert_str_eq(jstr(found, "how"), "narrow");
	cr_assert_not_null(json_object_get(found, "policy"));
	api_response__clear(&r);

	thd_kill9(&d);
	thd_restart(&d);
	r = show(id);
	/* the fake backend cannot adopt a sandbox: failed, its session closed as it was */
	cr_assert_str_eq(jstr(r.json, "digest"), digest, "after a restart: %s", r.body);
	cr_assert(json_is_true(json_object_get(json_object_get(r.json, "session"), "closed")), "%s",
		  r.body);
	cr_assert_eq(json_array_size(json_object_get(r.json, "versions")), 2, "%s", r.body);
	cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "versions"), 1), "how"),
			 "narrow");
	api_response__clear(&r);
	thd_expect_intact(&d, id);
	thd_finish(&d);
}

/* Bad input is a 400 naming the problem and changes nothing; a stopped sandbox is 409. */
Test(policylife, bad_narrowing_is_400_and_changes_nothing)
{
	static const struct {
		const char *body, *code;
	} cases[] = {
		{"{}", "missing_field"},
		{"{\"policy\": 3}", "wrong_type"},
		{"{\"policy\": {\"levels\": {\"fly\": \"allow\"}}}", "invalid_policy"},
		{"{\"policy\": {}, \"x\": 1}", "unknown_field"},
	};
	char id[32], path[160], *before;
	struct api_response r;

	snprintf(id, sizeof(id), "%s", create_with("{\"levels\": {\"read_file\": \"allow\"}}"));
	before = thd_dump(&d);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (int w = 0; w < 2; w++) {
			snprintf(path, sizeof(path), "/v1/sandboxes/%s/policy/%s", id,
				 w ? "widen" : "narrow");
			r = thd_call(&d, "POST", path, cases[i].body);
			cr_assert_eq(r.status, 400, "%s %s: %d %s", path, cases[i].body, r.status,
				     r.body);
			cr_assert_str_eq(jstr(r.json, "error"), cases[i].code, "%s", r.body);
			cr_assert_neq(jstr(r.json, "message")[0], '\0');
			api_response__clear(&r);
		}
	r = thd_call(&d, "POST", "/v1/sandboxes/sb-0000000000000000/policy/narrow",
		     "{\"policy\": {}}");
	cr_assert_eq(r.status, 404, "%d %s", r.status, r.body);
	api_response__clear(&r);
	thd_assert_same_db(before, thd_dump(&d), "bad narrowings");

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	thd_expect(&d, "DELETE", path, NULL, 200);
	r = change(id, "narrow", "{}", NULL, 409);
	cr_assert_str_eq(jstr(r.json, "error"), "wrong_state", "%s", r.body);
	api_response__clear(&r);
	thd_finish(&d);
}

/* nucleusctl policy show (a table) and policy narrow FILE. */
Test(policylife, nucleusctl_policy_show_and_narrow)
{
	char id[32], file[400];
	struct thd_run *r;
	FILE *f;

	snprintf(id, sizeof(id), "%s",
		 create_with("{\"levels\": {\"read_file\": \"allow\", \"write_file\": "
			     "\"allow\"}, \"quarantine_after\": 4}"));
	r = thd_ctl(d.sock, "policy", "show", id, NULL);
	cr_assert_eq(r->code, 0, "%s %s", r->out, r->err);
	cr_assert_not_null(strstr(r->out, "write_file     allow"), "%s", r->out);
	cr_assert_not_null(strstr(r->out, "quarantined      no"), "%s", r->out);
	cr_assert_not_null(strstr(r->out, "1        create"), "%s", r->out);

	snprintf(file, sizeof(file), "%s/narrow.json", d.dir);
	f = fopen(file, "w");
	cr_assert_not_null(f);
	fputs("{\"levels\": {\"read_file\": \"allow\"}}", f);
	fclose(f);
	r = thd_ctl(d.sock, "policy", "narrow", id, file, NULL);
	cr_assert_eq(r->code, 0, "%s %s", r->out, r->err);
	cr_assert_not_null(strstr(r->out, "write_file     deny"), "%s", r->out);
	cr_assert_not_null(strstr(r->out, "2        narrow"), "%s", r->out);
	r = thd_ctl(d.sock, "--json", "policy", "show", id, NULL);
	cr_assert_eq(r->code, 0, "%s %s", r->out, r->err);
	cr_assert_not_null(strstr(r->out, "\"version\": 2"), "%s", r->out);
	r = thd_ctl(d.sock, "policy", "narrow", id, "/nonexistent/x.json", NULL);
	cr_assert_eq(r->code, 2, "%s %s", r->out, r->err);
	thd_finish(&d);
}

/* A widen approval of @id's session for @policy (JSON text), signed with @sk (malloc'd). */
static char *widen_approval(const char *id, const char *policy, const unsigned char sk[64],
			    uint8_t nonce)
{
	struct api_response r = show(id);
	const char *session = jstr(json_object_get(r.json, "session"), "id");
	struct policy_approval a = {0};
	struct policy *p = parse(policy);
	char *json = NULL;

	cr_assert_eq(sodium_hex2bin(a.session_id, sizeof(a.session_id), session, strlen(session),
				    NULL, NULL, NULL),
		     0, "%s", r.body);
	policy__digest(p, a.args_digest);
	memset(a.nonce, nonce, sizeof(a.nonce));
	a.expires = (int64_t)time(NULL) + 120;
	cr_assert_eq(policy__widen_sign(&a, sk), 0);
	cr_assert_eq(policy__widen_approval_to_json(&a, &json), 0);
	policy__free(p);
	api_response__clear(&r);
	return json;
}

/* 403 widen_refused with @reason; cleared. */
static void refused(struct api_response *r, const char *reason)
{
	cr_assert_str_eq(jstr(r->json, "error"), "widen_refused", "%s", r->body);
	cr_assert_str_eq(jstr(r->json, "reason"), reason, "%s", r->body);
	api_response__clear(r);
}

/*
 * Widening: without an approval always 403 and audited with what was asked; with one
 * signed by a pinned approver key for this session and this policy, a new version
 * whose legs are the session's as they were; never twice with the same approval.
 */
Test(policylife, widening_needs_an_approver_signature)
{
	static const char small[] = "{\"levels\": {\"read_file\": \"allow\"}}";
	static const char wide[] = "{\"levels\": {\"read_file\": \"allow\", \"write_file\": "
				   "\"allow\"}}";
	unsigned char sk[64], rogue_pk[32], rogue_sk[64];
	char hex[65], id[32], other[32], path[160], *appr, *before;
	struct api_response r;
	json_t *b;

	crypto_sign_keypair(rogue_pk, rogue_sk);
	with_approver(sk, hex);
	snprintf(id, sizeof(id), "%s", create_with(small));
	snprintf(other, sizeof(other), "%s", create_with(small));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/read_file", id);
	thd_expect(&d, "POST", path, "{\"args\": {\"path\": \"/workspace/a\"}}", 200);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/write_file", id);
	thd_expect(&d, "POST", path, "{\"args\": {\"path\": \"/workspace/a\", \"content\": \"x\"}}",
		   403);

	/* no approval: refused, even for a policy below the running one */
	r = change(id, "widen", wide, NULL, 403);
	refused(&r, "WIDEN_REFUSED");
	b = thd_last_entry(&d, id, "policy.widen_refused");
	cr_assert_not_null(b);
	cr_assert_eq(strlen(jstr(b, "given")), 64);
	cr_assert_str_eq(
		jstr(json_object_get(json_object_get(b, "policy"), "levels"), "write_file"),
		"allow");
	json_decref(b);
	r = change(id, "widen", small, NULL, 403);
	refused(&r, "WIDEN_REFUSED");

	appr = widen_approval(id, wide, rogue_sk, 1);
	r = change(id, "widen", wide, appr, 403);
	refused(&r, "APPROVAL_BAD_SIG");
	free(appr);
	appr = widen_approval(other, wide, sk, 2);
	r = change(id, "widen", wide, appr, 403);
	refused(&r, "APPROVAL_WRONG_SESSION");
	free(appr);
	appr = widen_approval(id, small, sk, 3);
	r = change(id, "widen", wide, appr, 403);
	refused(&r, "APPROVAL_WRONG_ARGS");
	free(appr);
	before = thd_dump(&d);
	r = change(id, "widen", wide, "{\"session\": \"00\"}", 400);
	cr_assert_str_eq(jstr(r.json, "error"), "bad_approval", "%s", r.body);
	api_response__clear(&r);
	thd_assert_same_db(before, thd_dump(&d), "a malformed approval");

	appr = widen_approval(id, wide, sk, 4);
	r = change(id, "widen", wide, appr, 200);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 2, "%s", r.body);
	cr_assert_str_eq(
		jstr(json_object_get(json_object_get(r.json, "policy"), "levels"), "write_file"),
		"allow", "%s", r.body);
	cr_assert_str_eq(json_string_value(json_array_get(
				 json_object_get(json_object_get(r.json, "session"), "legs"), 0)),
			 "private", "the legs stay: %s", r.body);
	cr_assert_eq(json_array_size(json_object_get(json_object_get(r.json, "session"), "legs")),
		     1, "%s", r.body);
	api_response__clear(&r);
	b = thd_last_entry(&d, id, "policy.widen");
	cr_assert_not_null(b);
	cr_assert_str_eq(jstr(b, "how"), "widen");
	cr_assert_not_null(json_object_get(b, "approval"));
	json_decref(b);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/write_file", id);
	thd_expect(&d, "POST", path, "{\"args\": {\"path\": \"/workspace/a\", \"content\": \"x\"}}",
		   200);
	r = change(id, "widen", wide, appr, 403); /* the same approval again */
	refused(&r, "APPROVAL_REPLAY");
	free(appr);
	thd_expect_intact(&d, id);
	thd_finish(&d);
}

/* nucleusctl policy widen: refused (exit 1) without a signature, applied with one. */
Test(policylife, nucleusctl_policy_widen)
{
	static const char small[] = "{\"levels\": {\"read_file\": \"allow\"}}";
	static const char wide[] = "{\"levels\": {\"read_file\": \"allow\", \"write_file\": "
				   "\"allow\"}}";
	unsigned char sk[64];
	char hex[65], id[32], file[400], *appr;
	struct thd_run *r;
	FILE *f;

	with_approver(sk, hex);
	snprintf(id, sizeof(id), "%s", create_with(small));
	snprintf(file, sizeof(file), "%s/wide.json", d.dir);
	f = fopen(file, "w");
	cr_assert_not_null(f);
	fputs(wide, f);
	fclose(f);
	r = thd_ctl(d.sock, "policy", "widen", id, file, NULL);
	cr_assert_eq(r->code, 1, "%s %s", r->out, r->err);
	cr_assert_not_null(strstr(r->err, "widen_refused"), "%s", r->err);
	appr = widen_approval(id, wide, sk, 9);
	r = thd_ctl(d.sock, "policy", "widen", id, file, appr, NULL);
	free(appr);
	cr_assert_eq(r->code, 0, "%s %s", r->out, r->err);
	cr_assert_not_null(strstr(r->out, "write_file     allow"), "%s", r->out);
	cr_assert_not_null(strstr(r->out, "2        widen"), "%s", r->out);
	r = thd_ctl(d.sock, "policy", "widen", id, file, "{not json", NULL);
	cr_assert_eq(r->code, 2, "a malformed approval is a usage error: %s", r->err);
	thd_finish(&d);
}

/* POST tools/@tool with @args; 403 approval_required answered by an approval: 200. */
static void approved_call(const char *id, const char *tool, const char *args, const char *call_json,
			  const unsigned char sk[64])
{
	char path[160], *body;
	struct api_response r;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/%s", id, tool);
	cr_assert_gt(asprintf(&body, "{\"args\": %s}", args), 0);
	r = thd_call(&d, "POST", path, body);
	free(body);
	cr_assert_eq(r.status, 403, "%s: %d %s", tool, r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "error"), "approval_required", "%s", r.body);
	body = th_approval_body(json_object_get(r.json, "approval_request"), call_json, sk);
	api_response__clear(&r);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/approvals", id);
	r = thd_call(&d, "POST", path, body);
	free(body);
	cr_assert_eq(r.status, 200, "approved %s: %d %s", tool, r.status, r.body);
	api_response__clear(&r);
}

/*
 * A permissive-local sandbox (uninhabitable "ask", quarantine_after 5) of a daemon with a
 * new approver key (@sk, @hex) whose session has read a file and fetched a page (approved):
 * private and untrusted content. Its id in @id.
 */
static void untrusted_session(char id[32], unsigned char sk[64], char hex[65])
{
	char path[160];

	with_approver(sk, hex);
	snprintf(id, 32, "%s",
		 thd_create(&d, "{\"profile\": \"permissive-local\", \"vcpus\": 1, "
				"\"memory_mib\": 128}"));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/read_file", id);
	thd_expect(&d, "POST", path, "{\"args\": {\"path\": \"/workspace/a\"}}", 200);
	approved_call(id, "web_fetch", "{\"url\": \"http://localhost:8000/x\"}",
		      "{\"op\": \"web_fetch\", \"url\": \"http://localhost:8000/x\"}", sk);
}

/* The value of metric @name in GET /v1/metrics. */
static long long metric(const char *name)
{
	struct api_response r = thd_call(&d, "GET", "/v1/metrics", NULL);
	char key[128];
	const char *at;
	long long v;

	snprintf(key, sizeof(key), "\n%s ", name);
	at = r.body ? strstr(r.body, key) : NULL;
	cr_assert_not_null(at, "no %s in %s", name, r.body);
	v = strtoll(at + strlen(key), NULL, 10);
	api_response__clear(&r);
	return v;
}

static json_t *sandbox(const char *id)
{
	char path[160];
	struct api_response r;
	json_t *o;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	r = thd_call(&d, "GET", path, NULL);
	cr_assert_eq(r.status, 200, "%s", r.body);
	o = json_incref(r.json);
	api_response__clear(&r);
	return o;
}

/* The sandbox's JSON says whether it is quarantined: @want. */
static void expect_quarantined(const char *id, bool want)
{
	json_t *o = sandbox(id);
	char *text = json_dumps(o, JSON_COMPACT);

	cr_assert_eq(json_is_true(json_object_get(o, "quarantined")), want, "%s", text);
	free(text);
	json_decref(o);
}

/*
 * Quarantine counts probes (#15): after untrusted content, with uninhabitable "ask"
 * (permissive-local, quarantine_after 5), twenty pushes each approved by a person run
 * without quarantine; five refused calls then quarantine the session: visible in the
 * sandbox's JSON, nucleusctl ls, GET .../policy, the metrics and the audit log.
 */
Test(policylife, approved_pushes_are_not_probes_refused_calls_quarantine)
{
	static const char push[] = "{\"remote\": \"https://github.com/o/r\", \"ref\": \"main\"}";
	static const char push_call[] = "{\"op\": \"git_push\", \"remote\": "
					"\"https://github.com/o/r\", \"ref\": \"main\"}";
	unsigned char sk[64];
	char hex[65], id[32], path[160];
	struct api_response r;
	struct thd_run *run;
	json_t *o, *b;

	untrusted_session(id, sk, hex);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/read_file", id);
	for (int i = 0; i < 20; i++)
		approved_call(id, "git_push", push, push_call, sk);
	expect_quarantined(id, false);
	cr_assert_eq(metric("nucleus_sandboxes_quarantined"), 0);
	r = show(id);
	cr_assert_eq(json_integer_value(
			     json_object_get(json_object_get(r.json, "session"), "suspicion")),
		     0, "%s", r.body);
	api_response__clear(&r);

	/* unapproved probing still quarantines */
	for (int i = 0; i < 5; i++)
		thd_expect(&d, "POST", path, "{\"args\": {\"path\": \"/root/secret\"}}", 403);
	o = sandbox(id);
	cr_assert(json_is_true(json_object_get(o, "quarantined")), "%s",
		  json_dumps(o, JSON_COMPACT));
	cr_assert_str_eq(jstr(json_object_get(o, "quarantine"), "rule"), "quarantine_after");
	cr_assert_not_null(strstr(jstr(json_object_get(o, "quarantine"), "reason"),
				  "reached quarantine_after"));
	cr_assert_eq(
		json_integer_value(json_object_get(json_object_get(o, "quarantine"), "probes")), 5);
	json_decref(o);
	cr_assert_eq(metric("nucleus_sandboxes_quarantined"), 1);
	cr_assert_eq(metric("nucleus_quarantines_total"), 1);
	b = thd_last_entry(&d, id, "policy.quarantine");
	cr_assert_not_null(b, "no policy.quarantine entry");
	cr_assert_str_eq(jstr(b, "how"), "quarantine");
	cr_assert_str_eq(jstr(b, "tool"), "read_file");
	json_decref(b);
	r = show(id);
	o = json_object_get(r.json, "session");
	cr_assert(json_is_true(json_object_get(o, "quarantined")), "%s", r.body);
	cr_assert_not_null(
		strstr(jstr(json_object_get(o, "quarantine"), "reason"), "quarantine_after"));
	cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "versions"), 1), "how"),
			 "quarantine", "%s", r.body);
	api_response__clear(&r);
	run = thd_ctl(d.sock, "ls", NULL);
	cr_assert_eq(run->code, 0, "%s", run->err);
	cr_assert_not_null(strstr(run->out, "QUARANTINED"), "%s", run->out);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/git_push", id);
	r = thd_call(&d, "POST", path, "{\"args\": {\"remote\": \"https://github.com/o/r\"}}");
	cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "reason"), "QUARANTINED", "%s", r.body);
	api_response__clear(&r);
	thd_expect_intact(&d, id);
	thd_finish(&d);
}

/*
 * One approval path: an approval inside a call's args is refused (400, nothing recorded)
 * and names POST .../approvals; that route answers the pending request once (then 409).
 */
Test(policylife, approvals_go_through_the_approvals_route_only)
{
	static const char fetch_call[] =
		"{\"op\": \"web_fetch\", \"url\": \"https://example.com/x\"}";
	unsigned char sk[64];
	char hex[65], id[32], path[160], *body, *args, *before;
	struct api_response r, ask;
	json_t *req;

	with_approver(sk, hex);
	snprintf(id, sizeof(id), "%s",
		 thd_create(&d,
			    "{\"profile\": \"fake-strict\", \"vcpus\": 1, \"memory_mib\": 128}"));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/web_fetch", id);
	ask = thd_call(&d, "POST", path, "{\"args\": {\"url\": \"https://example.com/x\"}}");
	cr_assert_eq(ask.status, 403, "%d %s", ask.status, ask.body);
	req = json_object_get(ask.json, "approval_request");
	body = th_approval_body(req, fetch_call, sk);
	/* the same signed approval inside the call's args */
	{
		json_t *b = json_loads(body, 0, NULL);
		char *aj = json_dumps(json_object_get(b, "approval"), JSON_COMPACT);

		cr_assert_gt(asprintf(&args,
				      "{\"args\": {\"url\": \"https://example.com/x\", "
				      "\"approval\": %s}}",
				      aj),
			     0);
		free(aj);
		json_decref(b);
	}
	before = thd_dump(&d);
	r = thd_call(&d, "POST", path, args);
	cr_assert_eq(r.status, 400, "%d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "error"), "bad_args", "%s", r.body);
	cr_assert_not_null(strstr(jstr(r.json, "message"), "/approvals"), "%s", r.body);
	api_response__clear(&r);
	thd_assert_same_db(before, thd_dump(&d), "an approval in args");
	free(args);

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/approvals", id);
	r = thd_call(&d, "POST", path, body);
	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	api_response__clear(&r);
	r = thd_call(&d, "POST", path, body);
	cr_assert_eq(r.status, 409, "%d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "error"), "approval_used", "%s", r.body);
	api_response__clear(&r);
	free(body);
	api_response__clear(&ask);
	thd_finish(&d);
}

/* Refused widenings after untrusted content are probes: they quarantine too, audited. */
Test(policylife, refused_widenings_are_probes)
{
	static const char pol[] = "{\"levels\": {\"read_file\": \"allow\", \"web_fetch\": "
				  "\"allow\"}, \"egress\": {\"allow\": [\"a.example.com:443\"]}, "
				  "\"quarantine_after\": 2}";
	static const char wide[] = "{\"levels\": {\"read_file\": \"allow\", \"web_fetch\": "
				   "\"allow\", \"run\": \"allow\"}}";
	char id[32], path[160];
	struct api_response r;
	json_t *b;

	snprintf(id, sizeof(id), "%s", create_with(pol));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/web_fetch", id);
	thd_expect(&d, "POST", path, "{\"args\": {\"url\": \"https://a.example.com/x\"}}", 200);
	r = change(id, "widen", wide, NULL, 403);
	refused(&r, "WIDEN_REFUSED");
	expect_quarantined(id, false);
	r = change(id, "widen", wide, NULL, 403);
	refused(&r, "WIDEN_REFUSED");
	expect_quarantined(id, true);
	b = thd_last_entry(&d, id, "policy.quarantine");
	cr_assert_not_null(b);
	cr_assert_str_eq(jstr(b, "tool"), "policy.widen_refused");
	cr_assert_eq(json_integer_value(json_object_get(b, "probes")), 2);
	json_decref(b);
	thd_expect(&d, "POST", path, "{\"args\": {\"url\": \"https://a.example.com/x\"}}", 403);
	thd_expect_intact(&d, id);
	thd_finish(&d);
}

/*
 * Asks nobody approved before they expired are probes: five pushes asked and left
 * unanswered quarantine the session (quarantine_after 5) once they expire; their
 * requests are then expired (409 approval_expired), audited as approval.expired.
 */
/* A git_push tool call's body, and the engine call it is decided as. */
#define PUSH_BODY "{\"args\": {\"remote\": \"https://github.com/o/r\", \"ref\": \"main\"}}"
#define PUSH_CALL_JSON                                                                             \
	"{\"op\": \"git_push\", \"remote\": \"https://github.com/o/r\", \"ref\": \"main\"}"

/* POST @body to @path: 409 with the error @code. */
static void expect_conflict(const char *path, const char *body, const char *code)
{
	struct api_response r = thd_call(&d, "POST", path, body);

	cr_assert_eq(r.status, 409, "%s: %d %s", path, r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "error"), code, "%s", r.body);
	api_response__clear(&r);
}

/* POST .../approvals/refuse with @nonce: @status, and the reply (caller clears it). */
static struct api_response refuse(const char *id, const char *nonce, int status)
{
	char path[160], body[96];
	struct api_response r;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/approvals/refuse", id);
	snprintf(body, sizeof(body), "{\"nonce\": \"%s\"}", nonce);
	r = thd_call(&d, "POST", path, body);
	cr_assert_eq(r.status, status, "refuse %s: %d %s", nonce, r.status, r.body);
	return r;
}

/* A person's refusal: the request is answered (no later approval), and it is a probe. */
Test(policylife, refused_asks_are_answered_and_are_probes)
{
	unsigned char sk[64];
	char hex[65], id[32], path[160], nonces[5][33], *before;
	struct api_response r;
	json_int_t probes = 0;
	json_t *b, *req = NULL;

	untrusted_session(id, sk, hex);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/git_push", id);
	for (int i = 0; i < 5; i++) {
		r = thd_call(&d, "POST", path, PUSH_BODY);
		cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
		snprintf(nonces[i], sizeof(nonces[i]), "%s",
			 jstr(json_object_get(r.json, "approval_request"), "nonce"));
		if (!req)
			req = json_incref(json_object_get(r.json, "approval_request"));
		api_response__clear(&r);
	}
	/* bad input changes nothing */
	before = thd_dump(&d);
	r = refuse(id, "00000000000000000000000000000000", 404);
	cr_assert_str_eq(jstr(r.json, "error"), "unknown_approval", "%s", r.body);
	api_response__clear(&r);
	r = refuse(id, "XYZ", 400);
	api_response__clear(&r);
	thd_assert_same_db(before, thd_dump(&d), "a refusal of nothing");
	for (int i = 0; i < 5; i++) {
		r = refuse(id, nonces[i], 200);
		cr_assert_str_eq(jstr(r.json, "state"), "denied", "%s", r.body);
		cr_assert_gt(json_integer_value(json_object_get(r.json, "probes")), probes,
			     "each refusal is a probe: %s", r.body);
		probes = json_integer_value(json_object_get(r.json, "probes"));
		api_response__clear(&r);
	}
	expect_quarantined(id, true);
	b = thd_last_entry(&d, id, "approval.refused");
	cr_assert_not_null(b);
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(b, "nonces"), 0)),
			 nonces[4]);
	json_decref(b);
	/* answered: neither refused again nor approved later */
	r = refuse(id, nonces[0], 409);
	cr_assert_str_eq(jstr(r.json, "error"), "approval_used", "%s", r.body);
	api_response__clear(&r);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/approvals", id);
	before = th_approval_body(req, PUSH_CALL_JSON, sk);
	expect_conflict(path, before, "approval_used"); /* a refused request is answered */
	free(before);
	json_decref(req);
	thd_expect_intact(&d, id);
	thd_finish(&d);
}

Test(policylife, expired_asks_are_probes)
{
	unsigned char sk[64];
	char hex[65], id[32], path[160], rd[160], *body = NULL;
	struct api_response r;
	sqlite3 *db;
	json_t *o, *b;

	untrusted_session(id, sk, hex);
	snprintf(rd, sizeof(rd), "/v1/sandboxes/%s/tools/read_file", id);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/git_push", id);
	for (int i = 0; i < 5; i++) {
		r = thd_call(&d, "POST", path, PUSH_BODY);
		cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
		cr_assert_str_eq(jstr(r.json, "error"), "approval_required", "%s", r.body);
		if (!body)
			body = th_approval_body(json_object_get(r.json, "approval_request"),
						PUSH_CALL_JSON, sk);
		api_response__clear(&r);
	}
	thd_expect(&d, "POST", rd, "{\"args\": {\"path\": \"/workspace/a\"}}", 200);
	o = sandbox(id);
	cr_assert(json_is_false(json_object_get(o, "quarantined")), "asks are not probes");
	json_decref(o);

	/* the ten minutes pass for the pending requests (and only for them) */
	cr_assert_eq(sqlite3_open(d.db, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	cr_assert_eq(sqlite3_exec(db, "UPDATE approvals SET expires_us = 1 WHERE state = 'pending'",
				  NULL, NULL, NULL),
		     SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
	thd_expect(&d, "POST", rd, "{\"args\": {\"path\": \"/workspace/a\"}}", 200);
	expect_quarantined(id, true);
	b = thd_last_entry(&d, id, "approval.expired");
	cr_assert_not_null(b);
	cr_assert_eq(json_array_size(json_object_get(b, "nonces")), 5);
	json_decref(b);
	b = thd_last_entry(&d, id, "policy.quarantine");
	cr_assert_not_null(b);
	cr_assert_str_eq(jstr(b, "tool"), "approval.expired");
	json_decref(b);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/approvals", id);
	expect_conflict(path, body, "approval_expired");
	free(body);
	thd_expect_intact(&d, id);
	thd_finish(&d);
}

/* ---- delegation (#15): a child's policy is within its parent's, for good ---- */

/* POST /v1/sandboxes of a child of @parent with @policy (JSON, NULL: none); its id. */
static const char *child_of(const char *parent, const char *policy)
{
	char *body;
	const char *id;

	cr_assert_gt(asprintf(&body, "{\"parent\": \"%s\", %s%s%s\"vcpus\": 1, \"memory_mib\": 128}",
			      parent, policy ? "\"policy\": " : "", policy ? policy : "",
			      policy ? ", " : ""),
		     0);
	id = thd_create(&d, body);
	free(body);
	return id;
}

/* The policy in force of @id (GET .../policy). */
static struct policy *policy_of(const char *id)
{
	struct api_response r = show(id);
	struct policy *p = in_force(r.json);

	api_response__clear(&r);
	return p;
}

static char *policy_text(const struct policy *p)
{
	char *text = NULL;

	cr_assert_eq(policy__to_json(p, &text), 0);
	return text;
}

/*
 * Through the API, for random policies: a child's policy is below its parent's and the
 * requested one; delegating again with the same request changes nothing (idempotent);
 * a grandchild through A then B is the child through the meet of A and B (associative);
 * with no policy the child has its parent's.
 */
Test(policylife, delegation_is_never_wider_idempotent_and_associative)
{
	for (int round = 0; round < 16; round++) {
		char *a = rand_policy(), *b = rand_policy(), *c = rand_policy(), *bc_text;
		struct policy *pp, *pb = parse(b), *pc = parse(c), *x, *x2, *g, *m, *bc = NULL;
		char parent[32], child[32];

		snprintf(parent, sizeof(parent), "%s", create_with(a));
		pp = policy_of(parent);
		snprintf(child, sizeof(child), "%s", child_of(parent, b));
		x = policy_of(child);
		cr_assert(policy__leq(x, pp), "round %d: the child is above its parent", round);
		cr_assert(policy__leq(x, pb), "round %d: the child is above its request", round);

		x2 = policy_of(child_of(child, b));
		cr_assert(policy__eq(x, x2), "round %d: delegating twice is not idempotent", round);
		policy__free(x2);

		g = policy_of(child_of(child, c));
		cr_assert_eq(policy__meet(pb, pc, &bc), 0);
		bc_text = policy_text(bc);
		m = policy_of(child_of(parent, bc_text));
		cr_assert(policy__eq(g, m), "round %d: (P.b).c differs from P.(b meet c)", round);
		cr_assert(policy__leq(g, pc));

		x2 = policy_of(child_of(parent, NULL));
		cr_assert(policy__eq(x2, pp), "round %d: no request, not the parent's", round);
		policy__free(x2);
		policy__free(g);
		policy__free(m);
		policy__free(bc);
		policy__free(x);
		policy__free(pp);
		policy__free(pb);
		policy__free(pc);
		free(bc_text);
		free(a);
		free(b);
		free(c);
	}
	thd_finish(&d);
}

/* POST /v1/policy/explain of @call in the fresh session of @policy: its verdict. */
static bool explain_allows(const struct policy *policy, const char *call)
{
	char *text = policy_text(policy), *body;
	struct api_response r;
	bool allow;

	cr_assert_gt(asprintf(&body, "{\"policy\": %s, \"call\": %s}", text, call), 0);
	r = thd_call(&d, "POST", "/v1/policy/explain", body);
	cr_assert_eq(r.status, 200, "%s: %s", body, r.body);
	allow = strcmp(jstr(r.json, "verdict"), "allow") == 0;
	api_response__clear(&r);
	free(body);
	free(text);
	return allow;
}

/*
 * A delegated child can never do what its parent cannot, after any sequence of parent
 * narrowings: each narrowing of the parent reaches the child and the grandchild (in the
 * same transaction, audited "by" the parent), checked on the policies in force and on
 * calls decided by both; and a call the parent lost is refused in the child.
 */
Test(policylife, a_child_never_does_what_its_parent_cannot)
{
	static const char *const calls[] = {
		"{\"op\": \"read_file\", \"path\": \"/workspace/a.c\"}",
		"{\"op\": \"read_file\", \"path\": \"/tmp/x\"}",
		"{\"op\": \"write_file\", \"path\": \"/workspace/src/m.c\"}",
		"{\"op\": \"run\", \"argv\": [\"make\"]}",
		"{\"op\": \"run\", \"argv\": [\"git\", \"status\"]}",
		"{\"op\": \"web_fetch\", \"url\": \"https://github.com/x\"}",
		"{\"op\": \"net_connect\", \"host\": \"10.1.2.3\", \"port\": 22}",
		"{\"op\": \"git_push\", \"remote\": \"https://github.com/o/r\", \"ref\": \"main\"}",
	};
	static const char open_p[] =
		"{\"levels\": {\"read_file\": \"allow\", \"write_file\": \"allow\", \"run\": "
		"\"allow\", \"web_fetch\": \"allow\", \"net_connect\": \"allow\", \"git_push\": "
		"\"allow\"}, \"paths\": {\"read\": \"all\", \"write\": \"all\"}, \"commands\": "
		"{\"allow\": [\"git **\", \"make\", \"make **\"]}, \"egress\": {\"allow\": "
		"[\"github.com:443\", \"10.0.0.0/8:22\"]}, \"git\": {\"refs\": \"all\"}}";
	static const char no_tmp[] = "{\"levels\": {\"read_file\": \"allow\"}, \"paths\": "
				     "{\"read\": [\"/workspace/**\"]}}";
	char parent[32], child[32], grand[32], path[160];
	struct api_response r;
	json_t *b;

	snprintf(parent, sizeof(parent), "%s", create_with(open_p));
	snprintf(child, sizeof(child), "%s", child_of(parent, NULL));
	snprintf(grand, sizeof(grand), "%s", child_of(child, NULL));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/read_file", grand);
	thd_expect(&d, "POST", path, "{\"args\": {\"path\": \"/tmp/x\"}}", 200);
	for (int round = 0; round < 12; round++) {
		char *n = rand_policy();
		struct policy *pp, *pc, *pg;

		policy__free(narrowed(parent, n));
		pp = policy_of(parent);
		pc = policy_of(child);
		pg = policy_of(grand);
		cr_assert(policy__leq(pc, pp), "round %d: the child is above its parent", round);
		cr_assert(policy__leq(pg, pc), "round %d: the grandchild is above", round);
		for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
			if (!explain_allows(pp, calls[i]))
				cr_assert(!explain_allows(pg, calls[i]),
					  "round %d: the parent refuses %s, its grandchild not",
					  round, calls[i]);
		policy__free(pp);
		policy__free(pc);
		policy__free(pg);
		free(n);
	}

	/* the same with real calls: a fresh family, the parent loses /tmp */
	snprintf(parent, sizeof(parent), "%s", create_with(open_p));
	snprintf(child, sizeof(child), "%s", child_of(parent, NULL));
	snprintf(grand, sizeof(grand), "%s", child_of(child, NULL));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/read_file", grand);
	thd_expect(&d, "POST", path, "{\"args\": {\"path\": \"/tmp/x\"}}", 200);
	r = change(parent, "narrow", no_tmp, NULL, 200);
	api_response__clear(&r);
	r = thd_call(&d, "POST", path, "{\"args\": {\"path\": \"/tmp/x\"}}");
	cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
	cr_assert_str_eq(jstr(r.json, "reason"), "PATH_NOT_ALLOWED", "%s", r.body);
	api_response__clear(&r);
	thd_expect(&d, "POST", path, "{\"args\": {\"path\": \"/workspace/a.c\"}}", 200);
	b = thd_last_entry(&d, grand, "policy.narrow");
	cr_assert_not_null(b, "no policy.narrow on the grandchild");
	cr_assert_str_eq(jstr(b, "by"), child);
	cr_assert_str_eq(jstr(b, "how"), "narrow");
	json_decref(b);
	r = show(grand);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 2, "%s", r.body);
	api_response__clear(&r);
	thd_expect_intact(&d, grand);
	thd_finish(&d);
}

/*
 * A child starts with its parent's exposure legs and probe count, and a quarantine of the
 * parent (read-only) reaches it.
 */
Test(policylife, a_child_inherits_legs_probes_and_quarantine)
{
	static const char p[] = "{\"levels\": {\"read_file\": \"allow\", \"web_fetch\": \"allow\", "
				"\"write_file\": \"allow\"}, \"paths\": {\"read\": \"all\", "
				"\"write\": \"all\"}, \"egress\": {\"allow\": "
				"[\"a.example.com:443\"]}, \"quarantine_after\": 2}";
	char parent[32], child[32], path[160];
	struct api_response r, rc;
	json_t *ps, *cs;

	snprintf(parent, sizeof(parent), "%s", create_with(p));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/web_fetch", parent);
	thd_expect(&d, "POST", path, "{\"args\": {\"url\": \"https://a.example.com/x\"}}", 200);
	/* a probe after untrusted content: refused, counted */
	thd_expect(&d, "POST", path, "{\"args\": {\"url\": \"https://b.example.com/x\"}}", 403);
	snprintf(child, sizeof(child), "%s", child_of(parent, NULL));
	r = show(parent);
	rc = show(child);
	ps = json_object_get(r.json, "session");
	cs = json_object_get(rc.json, "session");
	cr_assert(json_equal(json_object_get(ps, "legs"), json_object_get(cs, "legs")), "%s / %s",
		  r.body, rc.body);
	cr_assert_gt(json_array_size(json_object_get(cs, "legs")), 0, "%s", rc.body);
	cr_assert_eq(json_integer_value(json_object_get(cs, "suspicion")), 1, "%s", rc.body);
	cr_assert_str_neq(jstr(ps, "id"), jstr(cs, "id"), "one session each");
	api_response__clear(&r);
	api_response__clear(&rc);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/write_file", child);
	thd_expect(&d, "POST", path, "{\"args\": {\"path\": \"/workspace/a\", \"content\": \"x\"}}",
		   200);

	/* the parent's second probe quarantines it, and its child with it */
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/web_fetch", parent);
	thd_expect(&d, "POST", path, "{\"args\": {\"url\": \"https://b.example.com/x\"}}", 403);
	expect_quarantined(parent, true);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/write_file", child);
	r = thd_call(&d, "POST", path, "{\"args\": {\"path\": \"/workspace/a\", \"content\": \"x\"}}");
	cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
	api_response__clear(&r);
	rc = show(child);
	cr_assert_str_eq(
		jstr(json_object_get(json_object_get(rc.json, "policy"), "levels"), "write_file"),
		"deny", "%s", rc.body);
	api_response__clear(&rc);
	thd_finish(&d);
}

/*
 * A signed widening of a child stays within its parent: past the parent's policy it is
 * refused (403, audited with beyond_parent, a probe) whoever signed it; up to the
 * parent's it is applied.
 */
Test(policylife, no_signature_widens_a_child_past_its_parent)
{
	static const char wide[] = "{\"levels\": {\"read_file\": \"allow\", \"write_file\": "
				   "\"allow\"}}";
	static const char small[] = "{\"levels\": {\"read_file\": \"allow\"}}";
	static const char wider[] = "{\"levels\": {\"read_file\": \"allow\", \"write_file\": "
				    "\"allow\", \"run\": \"allow\"}, \"commands\": {\"allow\": "
				    "[\"make\"]}}";
	unsigned char sk[64];
	char hex[65], parent[32], child[32], *appr;
	struct api_response r;
	json_t *b;

	with_approver(sk, hex);
	snprintf(parent, sizeof(parent), "%s", create_with(wide));
	snprintf(child, sizeof(child), "%s", child_of(parent, small));
	appr = widen_approval(child, wider, sk, 1);
	r = change(child, "widen", wider, appr, 403);
	cr_assert_str_eq(jstr(r.json, "error"), "widen_refused", "%s", r.body);
	cr_assert_not_null(strstr(jstr(r.json, "message"), parent), "%s", r.body);
	api_response__clear(&r);
	free(appr);
	b = thd_last_entry(&d, child, "policy.widen_refused");
	cr_assert_not_null(b);
	cr_assert_str_eq(jstr(b, "beyond_parent"), parent);
	json_decref(b);

	appr = widen_approval(child, wide, sk, 2);
	r = change(child, "widen", wide, appr, 200);
	cr_assert_str_eq(
		jstr(json_object_get(json_object_get(r.json, "policy"), "levels"), "write_file"),
		"allow", "%s", r.body);
	api_response__clear(&r);
	free(appr);
	thd_finish(&d);
}

/* ---- remote names (#15): the policy judges where a push goes ---- */

/* POST .../tools/@tool {"args": @args} of @id: asserts @status; the reply. */
static struct api_response call_tool(const char *id, const char *tool, const char *args,
				     int status)
{
	char path[160], *body;
	struct api_response r;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/%s", id, tool);
	cr_assert_gt(asprintf(&body, "{\"args\": %s}", args), 0);
	r = thd_call(&d, "POST", path, body);
	cr_assert_eq(r.status, status, "%s %s: %d %s", tool, args, r.status, r.body);
	free(body);
	return r;
}

/* write_file of @path with @content (JSON string body, quoted) in @id. */
static void put(const char *id, const char *path, const char *content)
{
	char *args;
	struct api_response r;

	cr_assert_gt(asprintf(&args, "{\"path\": \"%s\", \"content\": %s}", path, content), 0);
	r = call_tool(id, "write_file", args, 200);
	api_response__clear(&r);
	free(args);
}

/* The reply's error message contains @want. */
static void says(struct api_response *r, const char *code, const char *want)
{
	cr_assert_str_eq(jstr(r->json, "error"), code, "%s", r->body);
	cr_assert_not_null(strstr(jstr(r->json, "message"), want), "%s", r->body);
	api_response__clear(r);
}

/*
 * git_push and create_pr with a remote name: the daemon reads the repository's
 * .git/config in the guest and the policy decides the push URL git would use (rewrites
 * included); an unknown remote, an unreadable config or a bad repo path is a 400 naming
 * it; an ask carries the resolved URL into its approval request.
 */
Test(policylife, a_remote_name_is_resolved_before_the_policy_judges_the_push)
{
	static const char p[] = "{\"levels\": {\"write_file\": \"allow\", \"git_push\": \"allow\", "
				"\"create_pr\": \"ask\"}, \"paths\": {\"write\": \"all\"}, "
				"\"egress\": {\"allow\": [\"github.com:443\"]}, \"git\": {\"refs\": "
				"\"all\"}}";
	char id[32];
	struct api_response r;
	json_t *a, *b;

	snprintf(id, sizeof(id), "%s", create_with(p));
	r = call_tool(id, "git_push", "{\"remote\": \"origin\", \"ref\": \"main\"}", 400);
	says(&r, "bad_args", "/workspace/.git/config");

	put(id, "/workspace/.git/config",
	    "\"[core]\\n\\tbare = false\\n[remote \\\"origin\\\"]\\n\\turl = "
	    "https://github.com/o/r.git\\n\"");
	r = call_tool(id, "git_push", "{\"remote\": \"origin\", \"ref\": \"main\"}", 200);
	a = json_object_get(json_object_get(r.json, "result"), "args");
	cr_assert_str_eq(jstr(a, "remote"), "https://github.com/o/r.git", "%s", r.body);
	cr_assert_str_eq(jstr(a, "remote_name"), "origin", "%s", r.body);
	api_response__clear(&r);
	b = thd_last_entry(&d, id, "tool.decision");
	cr_assert_str_eq(jstr(b, "verdict"), "allow");
	json_decref(b);

	r = call_tool(id, "git_push", "{\"remote\": \"upstream\", \"ref\": \"main\"}", 400);
	says(&r, "bad_args", "no remote 'upstream'");
	r = call_tool(id, "git_push", "{\"remote\": \"origin\", \"repo\": \"rel/x\"}", 400);
	says(&r, "bad_args", "'repo'");
	r = call_tool(id, "git_push", "{\"remote\": \"origin\", \"repo\": \"/a/../b\"}", 400);
	says(&r, "bad_args", "'repo'");

	/* another repository, named */
	put(id, "/srv/r/.git/config", "\"[remote \\\"origin\\\"]\\n url = https://github.com/x/y\\n\"");
	r = call_tool(id, "git_push", "{\"remote\": \"origin\", \"ref\": \"main\", \"repo\": "
				      "\"/srv/r\"}",
		      200);
	a = json_object_get(json_object_get(r.json, "result"), "args");
	cr_assert_str_eq(jstr(a, "remote"), "https://github.com/x/y", "%s", r.body);
	api_response__clear(&r);

	/* a rewrite in the config sends the push elsewhere: the policy sees where */
	put(id, "/workspace/.git/config",
	    "\"[url \\\"https://evil.example/\\\"]\\n insteadOf = https://github.com/\\n"
	    "[remote \\\"origin\\\"]\\n url = https://github.com/o/r\\n\"");
	r = call_tool(id, "git_push", "{\"remote\": \"origin\", \"ref\": \"main\"}", 403);
	cr_assert_str_eq(jstr(r.json, "reason"), "EGRESS_NOT_ALLOWED", "%s", r.body);
	cr_assert_not_null(strstr(jstr(r.json, "message"), "evil.example"), "%s", r.body);
	api_response__clear(&r);
	put(id, "/workspace/.git/config",
	    "\"[remote \\\"origin\\\"]\\n url = https://a/x\\n url = https://github.com/o/r\\n\"");
	r = call_tool(id, "git_push", "{\"remote\": \"origin\", \"ref\": \"main\"}", 400);
	says(&r, "bad_args", "more than one push URL");

	/* an ask of a resolved call: its approval request holds the URL */
	put(id, "/workspace/.git/config",
	    "\"[remote \\\"origin\\\"]\\n url = https://github.com/o/r\\n\"");
	r = call_tool(id, "create_pr", "{\"remote\": \"origin\", \"ref\": \"main\"}", 403);
	cr_assert_str_eq(jstr(r.json, "error"), "approval_required", "%s", r.body);
	a = json_object_get(json_object_get(r.json, "approval_request"), "args");
	cr_assert_str_eq(jstr(a, "remote"), "https://github.com/o/r", "%s", r.body);
	api_response__clear(&r);

	/* a URL is judged as it is: nothing read */
	r = call_tool(id, "git_push", "{\"remote\": \"https://github.com/q/w\", \"ref\": \"main\"}",
		      200);
	cr_assert_null(json_object_get(json_object_get(json_object_get(r.json, "result"), "args"),
				       "remote_name"),
		       "%s", r.body);
	api_response__clear(&r);
	thd_expect_intact(&d, id);
	thd_finish(&d);
}
