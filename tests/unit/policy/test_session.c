// SPDX-License-Identifier: Apache-2.0
/* Sessions: decisions, trace records, narrowing/widening, quarantine, approvals, JSON. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sodium.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

static uint8_t pk[32], sk[64];
static struct policy_session *s;

static struct policy_session *session(const char *profile)
{
	struct policy *p = NULL;
	struct policy_session_config cfg = {.approver_keys = (const uint8_t(*)[32])pk,
					    .n_approver_keys = 1};
	struct policy_session *r = NULL;

	memset(cfg.id, 0xab, sizeof(cfg.id));
	cr_assert_eq(policy__profile_builtin(profile, &p), 0);
	cr_assert_eq(policy__session_new(p, &cfg, &r), 0);
	policy__free(p);
	return r;
}

static void setup(void)
{
	uint8_t seed[32] = {1, 2, 3};

	cr_assert_geq(sodium_init(), 0);
	crypto_sign_seed_keypair(pk, sk, seed);
	s = session("permissive-local");
}

static void teardown(void)
{
	policy__session_free(s);
}

static struct policy_decision decide(const struct policy_call *c, int64_t now)
{
	struct policy_decision d;

	cr_assert_eq(policy__decide(s, c, now, &d), 0);
	return d;
}

TestSuite(session, .init = setup, .fini = teardown);

Test(session, trace_record_of_an_allowed_call)
{
	struct policy_call c = {.op = POLICY_OP_READ_FILE, .path = "/workspace/a.c"};
	struct policy_decision d = decide(&c, 100);
	uint8_t dig[32];
	char *json = NULL, text[512];

	cr_expect_eq(d.verdict, POLICY_ALLOW);
	cr_expect_eq(d.reason, POLICY_R_ALLOWED);
	cr_expect_eq(d.trace.seq, 1);
	cr_expect_eq(d.trace.time, 100);
	cr_expect_eq(d.trace.legs_before, 0);
	cr_expect_eq(d.trace.legs_after, POLICY_LEG_PRIVATE);
	cr_expect_arr_eq(d.trace.envelope_before, d.trace.envelope_after, 32);
	cr_assert_eq(policy__call_digest(&c, dig), 0);
	cr_expect_arr_eq(d.trace.args_digest, dig, 32);
	cr_assert_eq(policy__trace_to_json(&d.trace, &json), 0);
	cr_expect(strstr(json, "\"reason\":\"ALLOWED\""), "%s", json);
	cr_expect(strstr(json, "\"legs_after\":[\"private\"]"), "%s", json);
	free(json);
	cr_assert_eq(policy__explain(&d, text, sizeof(text)), 0);
	cr_expect(strstr(text, "read_file: allow (ALLOWED)"), "%s", text);
	cr_expect_eq(policy__explain(&d, text, 10), -ENOSPC);
	d = decide(&c, 101);
	cr_expect_eq(d.trace.seq, 2);
}

Test(session, digests_bind_every_argument)
{
	const char *const a1[] = {"ls", "-l"}, *const a2[] = {"ls", "-l", ""};
	struct policy_call x = {.op = POLICY_OP_RUN, .argv = a1, .argc = 2}, y = x;
	uint8_t d1[32], d2[32];

	y.argv = a2;
	y.argc = 3;
	policy__call_digest(&x, d1);
	policy__call_digest(&y, d2);
	cr_expect_arr_neq(d1, d2, 32);
	y = (struct policy_call){.op = POLICY_OP_WEB_FETCH, .url = "u"};
	x = (struct policy_call){.op = POLICY_OP_WEB_FETCH, .url = "u", .method = ""};
	policy__call_digest(&x, d1);
	policy__call_digest(&y, d2);
	cr_expect_arr_neq(d1, d2, 32, "absent and empty differ");
	x.method = NULL;
	policy__call_digest(&x, d1);
	cr_expect_arr_eq(d1, d2, 32);
}

Test(session, narrowing_and_refused_widening)
{
	struct policy *ro = NULL, *top = NULL;
	struct policy_decision d;
	struct policy_call w = {.op = POLICY_OP_WRITE_FILE, .path = "/workspace/x"};

	cr_assert_eq(policy__read_only(&ro), 0);
	cr_assert_eq(policy__top(&top), 0);
	cr_assert_eq(policy__request_widen(s, top, 5, &d), 0);
	cr_expect_eq(d.verdict, POLICY_DENY);
	cr_expect_eq(d.reason, POLICY_R_WIDEN_REFUSED);
	cr_expect_arr_eq(d.trace.envelope_before, d.trace.envelope_after, 32);
	cr_expect_eq(decide(&w, 6).verdict, POLICY_ALLOW);
	cr_assert_eq(policy__narrow(s, ro, 7, &d), 0);
	cr_expect_eq(d.reason, POLICY_R_NARROWED);
	cr_expect_arr_neq(d.trace.envelope_before, d.trace.envelope_after, 32);
	d = decide(&w, 8);
	cr_expect_eq(d.verdict, POLICY_DENY);
	cr_expect_eq(d.reason, POLICY_R_OP_DENIED);
	cr_expect(policy__leq(policy__session_envelope(s), ro));
	policy__free(ro);
	policy__free(top);
}

Test(session, quarantine_after_probing_is_absorbing)
{
	struct policy_call web = {.op = POLICY_OP_WEB_FETCH, .url = "http://localhost:8000/x"};
	struct policy_call bad = {.op = POLICY_OP_READ_FILE, .path = "/root/x"};
	struct policy_call rd = {.op = POLICY_OP_READ_FILE, .path = "/workspace/x"};
	struct policy_call w = {.op = POLICY_OP_WRITE_FILE, .path = "/workspace/x"};
	struct policy *top = NULL;
	struct policy_decision d;

	web.approval = NULL;
	cr_expect_eq(decide(&web, 1).verdict, POLICY_ASK);
	/* an ask is not untrusted content yet: probing does not count */
	cr_expect_eq(decide(&bad, 2).reason, POLICY_R_PATH_NOT_ALLOWED);
	cr_expect_eq(policy__session_suspicion(s), 0);
	cr_assert_eq(policy__top(&top), 0);
	cr_assert_eq(policy__narrow(s, top, 3, &d), 0); /* no-op narrowing */
	policy__free(top);
	{
		struct policy_call sp = {.op = POLICY_OP_WEB_SEARCH, .query = "x"};
		struct policy *p = NULL;

		cr_assert_eq(policy__profile_parse("{\"levels\": {\"web_search\": \"allow\", "
						   "\"read_file\": \"allow\", \"write_file\": "
						   "\"allow\"}, \"quarantine_after\": 2}",
						   &p, NULL),
			     0);
		policy__session_free(s);
		s = NULL;
		{
			struct policy_session_config cfg = {{0}};

			cr_assert_eq(policy__session_new(p, &cfg, &s), 0);
		}
		policy__free(p);
		cr_expect_eq(decide(&sp, 4).verdict, POLICY_ALLOW);
	}
	cr_expect_eq(decide(&w, 5).verdict, POLICY_ALLOW);
	bad.op = POLICY_OP_GIT_PUSH;
	cr_expect_eq(decide(&bad, 6).reason, POLICY_R_OP_DENIED);
	cr_expect(!policy__session_quarantined(s));
	d = decide(&bad, 7);
	cr_expect(d.trace.quarantined);
	cr_expect(policy__session_quarantined(s));
	cr_expect_arr_neq(d.trace.envelope_before, d.trace.envelope_after, 32);
	d = decide(&w, 8);
	cr_expect_eq(d.verdict, POLICY_DENY);
	cr_expect_eq(d.reason, POLICY_R_QUARANTINED);
	cr_expect_eq(decide(&rd, 9).verdict, POLICY_ALLOW);
	cr_expect(policy__session_quarantined(s));
	cr_expect_eq(decide(&w, 1000000).reason, POLICY_R_QUARANTINED);
}

/* @a for this session, expiring at @expires, with nonce @n repeated. */
static struct policy_approval stamp(struct policy_approval a, int64_t expires, uint8_t n)
{
	memcpy(a.session_id, policy__session_id(s), POLICY_SESSION_ID_LEN);
	a.expires = expires;
	memset(a.nonce, n, sizeof(a.nonce));
	return a;
}

static struct policy_approval approval(const struct policy_call *c, int64_t expires, uint8_t n)
{
	struct policy_approval a = {.op = (uint8_t)c->op};

	policy__call_digest(c, a.args_digest);
	a = stamp(a, expires, n);
	cr_assert_eq(policy__approval_sign(&a, sk), 0);
	return a;
}

Test(session, approvals)
{
	struct policy_call push = {
		.op = POLICY_OP_GIT_PUSH, .remote = "https://github.com/o/r", .ref = "main"};
	struct policy_approval a = approval(&push, 160, 1), b;
	struct policy_decision d = decide(&push, 100);
	char *json = NULL;

	cr_expect_eq(d.verdict, POLICY_ASK);
	cr_expect_eq(d.reason, POLICY_R_OP_ASK);
	push.approval = &a;
	d = decide(&push, 100);
	cr_expect_eq(d.verdict, POLICY_ALLOW);
	cr_expect_eq(d.reason, POLICY_R_APPROVED);
	cr_expect_eq(decide(&push, 101).reason, POLICY_R_APPROVAL_REPLAY);
	a = approval(&push, 160, 2);
	push.approval = &a;
	cr_expect_eq(decide(&push, 160).reason, POLICY_R_APPROVAL_EXPIRED);
	a = approval(&push, 100 + 301, 3);
	cr_expect_eq(decide(&push, 100).reason, POLICY_R_APPROVAL_TOO_LONG);
	a = approval(&push, 150, 4);
	a.sig[5] ^= 1;
	cr_expect_eq(decide(&push, 100).reason, POLICY_R_APPROVAL_BAD_SIG);
	a = approval(&push, 150, 5);
	cr_assert_eq(policy__approval_to_json(&a, &json), 0);
	cr_assert_eq(policy__approval_from_json(json, &b, NULL), 0);
	cr_expect_arr_eq(a.session_id, b.session_id, sizeof(a.session_id));
	cr_expect_eq(a.op, b.op);
	cr_expect_arr_eq(a.args_digest, b.args_digest, sizeof(a.args_digest));
	cr_expect_arr_eq(a.nonce, b.nonce, sizeof(a.nonce));
	cr_expect_eq(a.expires, b.expires);
	cr_expect_arr_eq(a.sig, b.sig, sizeof(a.sig));
	free(json);
	push.approval = &b;
	cr_expect_eq(decide(&push, 100).reason, POLICY_R_APPROVED);
}

/*
 * Quarantine counts probes, not asks (#15): with uninhabitable "ask", every push after
 * untrusted content asks and a person approves it; twenty of them do not quarantine the
 * session. Refused calls still do: a push with a bad approval, and calls outside the
 * envelope, reach quarantine_after (5).
 */
Test(session, approved_pushes_are_not_probes_refused_calls_are)
{
	struct policy_call rd = {.op = POLICY_OP_READ_FILE, .path = "/workspace/a.c"};
	struct policy_call web = {.op = POLICY_OP_WEB_FETCH, .url = "http://localhost:8000/x"};
	struct policy_call push = {
		.op = POLICY_OP_GIT_PUSH, .remote = "https://github.com/o/r", .ref = "main"};
	struct policy_call bad = {.op = POLICY_OP_READ_FILE, .path = "/root/x"};
	struct policy_approval a;
	struct policy_decision d;
	int64_t now = 100;

	cr_expect_eq(decide(&rd, now++).verdict, POLICY_ALLOW);
	a = approval(&web, now + 60, 200);
	web.approval = &a;
	cr_expect_eq(decide(&web, now++).reason, POLICY_R_APPROVED);
	cr_assert(policy__session_legs(s) & POLICY_LEG_UNTRUSTED);
	for (uint8_t i = 0; i < 20; i++) {
		push.approval = NULL;
		d = decide(&push, now++);
		cr_assert_eq(d.verdict, POLICY_ASK, "push %u: %s", i,
			     policy__reason_name(d.reason));
		a = approval(&push, now + 60, i);
		push.approval = &a;
		d = decide(&push, now++);
		cr_assert_eq(d.reason, POLICY_R_APPROVED, "push %u: %s", i,
			     policy__reason_name(d.reason));
	}
	cr_expect(!policy__session_quarantined(s));
	cr_expect_eq(policy__session_suspicion(s), 0);
	/* a push whose approval is refused is a probe; so are calls outside the envelope */
	a = approval(&push, now + 60, 3); /* a used nonce */
	push.approval = &a;
	cr_expect_eq(decide(&push, now++).reason, POLICY_R_APPROVAL_REPLAY);
	cr_expect_eq(policy__session_suspicion(s), 1);
	for (int i = 0; i < 4; i++)
		cr_expect_eq(decide(&bad, now++).reason, POLICY_R_PATH_NOT_ALLOWED);
	cr_expect(policy__session_quarantined(s));
	push.approval = NULL;
	cr_expect_eq(decide(&push, now++).reason, POLICY_R_QUARANTINED);
}

/* An ask nobody approved in time is a probe once untrusted content is in the session. */
Test(session, expired_asks_are_probes_after_untrusted_content)
{
	struct policy_call web = {.op = POLICY_OP_WEB_FETCH, .url = "http://localhost:8000/x"};
	struct policy_approval a = approval(&web, 160, 9);

	policy__ask_expired(s);
	cr_expect_eq(policy__session_suspicion(s), 0, "no untrusted content yet");
	web.approval = &a;
	cr_expect_eq(decide(&web, 100).reason, POLICY_R_APPROVED);
	for (int i = 0; i < 4; i++)
		policy__ask_expired(s);
	cr_expect_eq(policy__session_suspicion(s), 4);
	cr_expect(!policy__session_quarantined(s));
	policy__ask_expired(s); /* permissive-local: quarantine_after 5 */
	cr_expect(policy__session_quarantined(s));
}

static struct policy_approval widen_approval(const struct policy *p, int64_t expires, uint8_t n,
					     const uint8_t *key)
{
	struct policy_approval a = {0};

	policy__digest(p, a.args_digest);
	a = stamp(a, expires, n);
	cr_assert_eq(policy__widen_sign(&a, key), 0);
	return a;
}

/* A signed widening adopts the policy as it is, once; the legs stay. */
Test(session, widening_signed_by_an_approver)
{
	struct policy_call rd = {.op = POLICY_OP_READ_FILE, .path = "/workspace/a.c"};
	struct policy_call w = {.op = POLICY_OP_WRITE_FILE, .path = "/workspace/a.c"};
	struct policy *ro = NULL, *top = NULL;
	struct policy_approval a, b;
	struct policy_decision d;
	uint8_t rogue_pk[32], rogue_sk[64], dig[32];
	char *json = NULL;

	crypto_sign_keypair(rogue_pk, rogue_sk);
	cr_assert_eq(policy__read_only(&ro), 0);
	cr_assert_eq(policy__top(&top), 0);
	cr_expect_eq(decide(&rd, 100).verdict, POLICY_ALLOW);
	cr_assert_eq(policy__narrow(s, ro, 101, &d), 0);
	cr_expect_eq(decide(&w, 102).reason, POLICY_R_OP_DENIED);

	a = widen_approval(top, 160, 1, rogue_sk);
	cr_assert_eq(policy__widen(s, top, &a, 103, &d), 0);
	cr_expect_eq(d.reason, POLICY_R_APPROVAL_BAD_SIG);
	a = widen_approval(ro, 160, 2, sk); /* signed for another policy */
	cr_assert_eq(policy__widen(s, top, &a, 104, &d), 0);
	cr_expect_eq(d.reason, POLICY_R_APPROVAL_WRONG_ARGS);
	a = widen_approval(top, 104 + 301, 3, sk);
	cr_assert_eq(policy__widen(s, top, &a, 104, &d), 0);
	cr_expect_eq(d.reason, POLICY_R_APPROVAL_TOO_LONG);
	cr_expect(policy__leq(policy__session_envelope(s), ro));

	a = widen_approval(top, 160, 4, sk);
	cr_assert_eq(policy__widen_approval_to_json(&a, &json), 0);
	cr_expect(strstr(json, "\"policy_digest\""), "%s", json);
	cr_assert_eq(policy__widen_approval_from_json(json, &b, NULL), 0);
	cr_expect_neq(policy__approval_from_json(json, &b, NULL), 0, "not a call approval");
	free(json);
	cr_assert_eq(policy__widen(s, top, &b, 105, &d), 0);
	cr_expect_eq(d.verdict, POLICY_ALLOW);
	cr_expect_eq(d.reason, POLICY_R_WIDENED);
	cr_expect_eq(d.trace.event, POLICY_EV_WIDEN);
	policy__digest(top, dig);
	cr_expect_arr_eq(d.trace.envelope_after, dig, 32);
	cr_expect(policy__eq(policy__session_envelope(s), top));
	cr_expect_eq(policy__session_legs(s), POLICY_LEG_PRIVATE, "the legs stay");
	cr_expect_eq(decide(&w, 106).verdict, POLICY_ALLOW);
	cr_assert_eq(policy__widen(s, top, &b, 107, &d), 0);
	cr_expect_eq(d.reason, POLICY_R_APPROVAL_REPLAY);
	cr_expect_eq(d.verdict, POLICY_DENY);
	policy__free(ro);
	policy__free(top);
}

Test(session, json_round_trip_preserves_behaviour)
{
	struct policy_call rd = {.op = POLICY_OP_READ_FILE, .path = "/workspace/x"};
	struct policy_call push = {.op = POLICY_OP_GIT_PUSH, .remote = "https://github.com/o/r"};
	struct policy_approval a = approval(&push, 200, 7);
	struct policy_session *t = NULL;
	struct policy_error err = {{0}};
	struct policy_decision d1, d2;
	char *j1 = NULL, *j2 = NULL;

	decide(&rd, 100);
	push.approval = &a;
	cr_expect_eq(decide(&push, 100).reason, POLICY_R_APPROVED);
	cr_assert_eq(policy__session_to_json(s, &j1), 0);
	cr_assert_eq(policy__session_from_json(j1, &t, &err), 0, "%s", err.msg);
	cr_assert_eq(policy__session_to_json(t, &j2), 0);
	cr_expect_str_eq(j1, j2);
	cr_expect(policy__eq(policy__session_envelope(s), policy__session_envelope(t)));
	cr_expect_eq(policy__session_legs(t), policy__session_legs(s));
	cr_expect_eq(policy__session_seq(t), policy__session_seq(s));
	/* the restored session still remembers the nonce */
	cr_assert_eq(policy__decide(t, &push, 101, &d2), 0);
	cr_expect_eq(d2.reason, POLICY_R_APPROVAL_REPLAY);
	cr_assert_eq(policy__decide(s, &push, 101, &d1), 0);
	cr_expect_eq(d1.reason, d2.reason);
	cr_expect_arr_eq(d1.trace.envelope_after, d2.trace.envelope_after, 32);
	cr_expect_eq(d1.trace.seq, d2.trace.seq);
	free(j1);
	free(j2);
	policy__session_free(t);
}

/* The session text is canonical (sorted keys, compact): what a re-dump of it gives. */
static void expect_canonical(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	char *again;

	cr_assert_not_null(j, "%s", text);
	again = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	cr_expect_str_eq(again, text);
	cr_expect_not_null(json_object_get(j, "envelope"));
	free(again);
	json_decref(j);
}

Test(session, json_is_canonical_and_follows_the_envelope)
{
	struct policy_call w = {.op = POLICY_OP_WRITE_FILE, .path = "/workspace/x"};
	struct policy *ro = NULL;
	struct policy_decision d;
	struct policy_session *t = NULL;
	struct policy_error err = {{0}};
	char *j1 = NULL, *j2 = NULL, *j3 = NULL;

	decide(&w, 6);
	cr_assert_eq(policy__session_to_json(s, &j1), 0);
	expect_canonical(j1);
	/* the envelope text is kept between calls: it must follow a narrowing */
	cr_assert_eq(policy__read_only(&ro), 0);
	cr_assert_eq(policy__narrow(s, ro, 7, &d), 0);
	cr_assert_eq(policy__session_to_json(s, &j2), 0);
	expect_canonical(j2);
	cr_assert_eq(policy__session_from_json(j2, &t, &err), 0, "%s", err.msg);
	cr_expect(policy__eq(policy__session_envelope(t), policy__session_envelope(s)));
	cr_expect(policy__leq(policy__session_envelope(t), ro));
	cr_assert_eq(policy__session_to_json(t, &j3), 0);
	cr_expect_str_eq(j3, j2);
	cr_expect_str_neq(j1, j2);
	policy__session_free(t);
	policy__free(ro);
	free(j1);
	free(j2);
	free(j3);
}

Test(session, restore_rejects_bad_json)
{
	struct policy_session *t = NULL;
	struct policy_error err = {{0}};
	char *j = NULL, *p;

	cr_assert_eq(policy__session_to_json(s, &j), 0);
	p = strstr(j, "\"seq\"");
	cr_assert_not_null(p);
	p[1] = 'x';
	cr_expect_eq(policy__session_from_json(j, &t, &err), -EINVAL);
	cr_expect_str_eq(err.msg, "$.xeq: unknown key");
	free(j);
	cr_expect_eq(policy__session_from_json("{", &t, &err), -EINVAL);
}

Test(session, call_json)
{
	struct policy_call_owned *c = NULL;
	struct policy_error err = {{0}};

	cr_assert_eq(policy__call_parse("{\"op\":\"run\",\"argv\":[\"git\",\"push\"]}", &c, &err),
		     0);
	cr_expect_eq(policy__call_get(c)->op, POLICY_OP_RUN);
	cr_expect_eq(policy__call_get(c)->argc, 2);
	cr_expect_str_eq(policy__call_get(c)->argv[1], "push");
	policy__call_free(c);
	cr_expect_eq(policy__call_parse("{\"op\":\"run\",\"argv\":[1]}", &c, &err), -EINVAL);
	cr_expect_str_eq(err.msg, "$.argv[0]: expected string");
	cr_expect_eq(policy__call_parse("{\"op\":\"fly\"}", &c, &err), -EINVAL);
	cr_expect_str_eq(err.msg, "$.op: unknown operation");
	cr_expect_eq(policy__call_parse("{\"op\":\"run\",\"x\":1}", &c, &err), -EINVAL);
	cr_expect_str_eq(err.msg, "$.x: unknown key");
	policy__call_free(NULL);
}

Test(session, names_are_stable)
{
	cr_expect_str_eq(policy__reason_name(POLICY_R_UNINHABITABLE), "UNINHABITABLE");
	cr_expect_eq(policy__reason_from_name("PATH_NOT_CANONICAL"), POLICY_R_PATH_NOT_CANONICAL);
	cr_expect_lt(policy__reason_from_name("NOPE"), 0);
	for (int r = 0; r < POLICY_R_COUNT; r++) {
		cr_expect_not_null(policy__reason_name(r));
		cr_expect_not_null(policy__reason_message(r));
	}
	cr_expect_str_eq(policy__op_name(POLICY_OP_MANAGE_SANDBOX), "manage_sandbox");
	cr_expect_eq(policy__op_from_name("git_push"), POLICY_OP_GIT_PUSH);
	cr_expect_null(policy__op_name(POLICY_OP_COUNT));
}
