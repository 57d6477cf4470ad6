// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target of the policy engine's JSON parsers (policy/): profiles, session state,
 * approvals, widen approvals and tool calls, and what the engine then does with what
 * they accepted.
 *
 * Input: [0] & 7 picks the parser, the rest is the JSON text:
 *   0 profile   1 session state   2 approval   3 widen approval   4 call
 *   5 profile and call, split at the first NUL byte
 *
 * Invariants: a refusal says why (a non-empty message); policy__profile_check agrees
 * with policy__profile_parse; whatever parses prints back (to_json) to text that parses
 * to an equal value and prints the same again (canonical, idempotent), with the same
 * digest; the lattice laws hold with a built-in profile (meet below both, join above
 * both, leq reflexive, dup equal); a session restored from JSON round-trips, has legs
 * within the three and makes decisions; approvals round-trip byte for byte; a call
 * classifies within the legs, digests, and gets a verdict and reason from the engine
 * with an explanation and a trace; narrowing never widens the envelope.
 *
 * NUCLEUS_FUZZ_POLICY_SEEDS=DIR: writes seed inputs made by the engine itself (a session
 * after some calls, signed approvals) into DIR and exits (tests/fuzz/mkcorpus.py).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "policy/policy.h"
#include "tests/fuzz/fuzz.h"

static struct policy *builtin[8];
static int nbuiltin;

#define CHECK(c, what, detail) FZ_CHECK(c, "%s (%s)", what, (detail) ? (detail) : "")

static void check_err(const struct policy_error *e)
{
	CHECK(strnlen(e->msg, sizeof(e->msg)) < sizeof(e->msg) && e->msg[0],
	      "a refusal without a message", NULL);
}

static void lattice(const struct policy *p)
{
	const char *name = policy__name(p);
	const struct policy *q = builtin[(name ? (unsigned char)name[0] : 0) % nbuiltin];
	struct policy *m = NULL, *j = NULL, *d = NULL;
	uint8_t d1[POLICY_DIGEST_LEN], d2[POLICY_DIGEST_LEN];

	CHECK(policy__leq(p, p) && policy__eq(p, p), "leq/eq not reflexive", policy__name(p));
	CHECK(policy__dup(p, &d) == 0 && policy__eq(p, d), "dup differs", policy__name(p));
	policy__digest(p, d1);
	policy__digest(d, d2);
	CHECK(memcmp(d1, d2, sizeof(d1)) == 0, "equal policies, other digests", policy__name(p));
	if (policy__meet(p, q, &m) == 0) {
		CHECK(policy__leq(m, p) && policy__leq(m, q), "meet not below both",
		      policy__name(p));
		policy__free(m);
	}
	if (policy__join(p, q, &j) == 0) {
		CHECK(policy__leq(p, j) && policy__leq(q, j), "join not above both",
		      policy__name(p));
		policy__free(j);
	}
	for (int op = 0; op < POLICY_OP_COUNT; op++)
		CHECK(policy__level(p, (enum policy_op)op) <= POLICY_ALLOW, "level out of range",
		      NULL);
	policy__free(d);
}

static struct policy *profile(const char *text, bool must)
{
	struct policy *p = NULL, *p2 = NULL;
	struct policy_error e = {{0}}, e2 = {{0}};
	char *j1 = NULL, *j2 = NULL;
	int r = policy__profile_parse(text, &p, &e), rc = policy__profile_check(text, &e2);

	CHECK((r == 0) == (rc == 0), "profile_check and profile_parse disagree", text);
	if (r < 0) {
		check_err(&e);
		check_err(&e2);
		CHECK(!must, "a printed profile does not parse", e.msg);
		return NULL;
	}
	CHECK(policy__to_json(p, &j1) == 0, "a parsed profile does not print", NULL);
	CHECK(policy__profile_parse(j1, &p2, &e) == 0, "a printed profile does not parse", e.msg);
	CHECK(policy__eq(p, p2), "a profile changed through its JSON", j1);
	CHECK(policy__to_json(p2, &j2) == 0 && strcmp(j1, j2) == 0, "to_json is not canonical", j1);
	lattice(p);
	policy__free(p2);
	free(j1);
	free(j2);
	return p;
}

static void decide(struct policy *p, const struct policy_call *call, int64_t now)
{
	struct policy_session_config cfg = {.id = {1, 2, 3}};
	struct policy_session *s = NULL;
	struct policy_decision d;
	char buf[64], *tj = NULL;

	CHECK(policy__session_new(p, &cfg, &s) == 0, "no session for a parsed profile", NULL);
	for (int round = 0; round < 2; round++) {
		memset(&d, 0, sizeof(d));
		if (policy__decide(s, call, now, &d) < 0)
			break;
		CHECK(d.verdict <= POLICY_ALLOW && d.reason < POLICY_R_COUNT &&
			      policy__reason_name(d.reason),
		      "a verdict or reason out of range", NULL);
		CHECK(d.verdict != POLICY_ALLOW || d.reason == POLICY_R_ALLOWED ||
			      d.reason == POLICY_R_APPROVED,
		      "allowed for a reason that denies", policy__reason_name(d.reason));
		CHECK(d.call_legs <= POLICY_LEGS_ALL && d.trace.legs_after <= POLICY_LEGS_ALL,
		      "legs out of range", NULL);
		CHECK(strnlen(d.detail, sizeof(d.detail)) < sizeof(d.detail), "detail unterminated",
		      NULL);
		policy__explain(&d, buf, sizeof(buf));
		CHECK(strnlen(buf, sizeof(buf)) < sizeof(buf), "explain overflows", NULL);
		CHECK(policy__trace_to_json(&d.trace, &tj) == 0, "a trace does not print", NULL);
		free(tj);
		tj = NULL;
	}
	{
		const struct policy *before = policy__session_envelope(s);
		struct policy *old = NULL;

		CHECK(policy__dup(before, &old) == 0, "dup", NULL);
		if (policy__narrow(s, p, now, &d) == 0)
			CHECK(policy__leq(policy__session_envelope(s), old), "narrowing widened",
			      NULL);
		policy__free(old);
	}
	policy__session_free(s);
}

static void call(const char *text, struct policy *p)
{
	struct policy_call_owned *c = NULL;
	struct policy_error e = {{0}};
	uint8_t dg[POLICY_DIGEST_LEN];

	if (policy__call_parse(text, &c, &e) < 0) {
		check_err(&e);
		return;
	}
	CHECK(policy__call_get(c)->op < POLICY_OP_COUNT, "a call with an unknown op", text);
	CHECK(policy__classify(policy__call_get(c)) <= POLICY_LEGS_ALL, "legs out of range", text);
	policy__call_digest(policy__call_get(c), dg);
	decide(p ? p : builtin[(unsigned char)text[0] % nbuiltin], policy__call_get(c), 1000);
	policy__call_free(c);
}

static void session(const char *text)
{
	struct policy_session *s = NULL, *s2 = NULL;
	struct policy_error e = {{0}};
	char *j1 = NULL, *j2 = NULL;
	struct policy_call c = {.op = POLICY_OP_READ_FILE, .path = "/workspace/a"};
	struct policy_decision d;

	if (policy__session_from_json(text, &s, &e) < 0) {
		check_err(&e);
		return;
	}
	CHECK(policy__session_legs(s) <= POLICY_LEGS_ALL, "session legs out of range", text);
	CHECK(policy__session_to_json(s, &j1) == 0, "a session does not print", text);
	CHECK(policy__session_from_json(j1, &s2, &e) == 0, "a printed session does not parse",
	      e.msg);
	CHECK(policy__session_to_json(s2, &j2) == 0 && strcmp(j1, j2) == 0,
	      "a session changed through its JSON", j1);
	CHECK(policy__eq(policy__session_envelope(s), policy__session_envelope(s2)),
	      "a session's envelope changed through its JSON", j1);
	if (policy__decide(s, &c, 1000, &d) == 0)
		CHECK(d.verdict <= POLICY_ALLOW, "a verdict out of range", NULL);
	policy__session_free(s);
	policy__session_free(s2);
	free(j1);
	free(j2);
}

static void approval(const char *text, bool widen)
{
	struct policy_approval a, b;
	struct policy_error e = {{0}};
	char *j = NULL;
	int r;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	r = widen ? policy__widen_approval_from_json(text, &a, &e)
		  : policy__approval_from_json(text, &a, &e);
	if (r < 0) {
		check_err(&e);
		return;
	}
	r = widen ? policy__widen_approval_to_json(&a, &j) : policy__approval_to_json(&a, &j);
	CHECK(r == 0, "an approval does not print", text);
	r = widen ? policy__widen_approval_from_json(j, &b, &e)
		  : policy__approval_from_json(j, &b, &e);
	CHECK(r == 0, "a printed approval does not parse", e.msg);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0, "an approval changed through its JSON", j);
	free(j);
}

static void emit(const char *dir, const char *name, char mode, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		abort();
	fputc(mode, f);
	fputs(text, f);
	fclose(f);
}

/* Seeds that only the engine can make: signed approvals, a session with history. */
static void emit_seeds(const char *dir)
{
	struct policy_session_config cfg = {.id = {9, 8, 7, 6, 5, 4, 3, 2, 1}};
	static const uint8_t seed[32] = {1, 2, 3};
	uint8_t pk[32], sk[64];
	struct policy_session *s = NULL;
	struct policy_approval a = {0};
	struct policy_decision d;
	struct policy_call c = {.op = POLICY_OP_WEB_FETCH, .url = "https://example.com/x"};
	struct policy_call r = {.op = POLICY_OP_READ_FILE, .path = "/workspace/secret"};
	char *j = NULL;

	crypto_sign_seed_keypair(pk, sk, seed);
	cfg.approver_keys = (const uint8_t(*)[32])pk;
	cfg.n_approver_keys = 1;
	if (policy__session_new(builtin[0], &cfg, &s) < 0)
		abort();
	policy__decide(s, &r, 100, &d);
	policy__decide(s, &c, 101, &d);
	if (policy__session_to_json(s, &j) < 0)
		abort();
	emit(dir, "session-after-calls", 1, j);
	free(j);
	memcpy(a.session_id, cfg.id, sizeof(a.session_id));
	a.op = POLICY_OP_GIT_PUSH;
	a.nonce[0] = 7;
	a.expires = 400;
	policy__approval_sign(&a, sk);
	policy__approval_to_json(&a, &j);
	emit(dir, "approval-signed", 2, j);
	free(j);
	policy__widen_sign(&a, sk);
	a.op = 0;
	policy__widen_approval_to_json(&a, &j);
	emit(dir, "widen-signed", 3, j);
	free(j);
	policy__session_free(s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *const *names = policy__builtin_names();
	const char *seeds = getenv("NUCLEUS_FUZZ_POLICY_SEEDS");

	for (int i = 0; names[i] && nbuiltin < 8; i++)
		if (policy__profile_builtin(names[i], &builtin[nbuiltin]) == 0)
			nbuiltin++;
	if (!nbuiltin)
		abort();
	if (seeds) {
		emit_seeds(seeds);
		exit(0);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;
	struct policy *p;
	size_t split;

	if (size < 1)
		return 0;
	text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	switch (data[0] & 7) {
	case 0:
		p = profile(text, false);
		policy__free(p);
		break;
	case 1:
		session(text);
		break;
	case 2:
		approval(text, false);
		break;
	case 3:
		approval(text, true);
		break;
	case 5:
		split = strlen(text);
		p = profile(text, false);
		if (p && split + 1 < size - 1)
			call(text + split + 1, p);
		policy__free(p);
		break;
	default:
		call(text, NULL);
		break;
	}
	free(text);
	return 0;
}
