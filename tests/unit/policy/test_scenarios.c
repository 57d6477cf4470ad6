// SPDX-License-Identifier: Apache-2.0
/*
 * The scenario corpus: every .json file in scenarios/ is one test. A scenario names a profile
 * (built-in name or inline object) and a sequence of steps; each step is a call (optionally
 * with an approval this runner signs), a narrowing, a widening request or a restart
 * (the session is serialized and restored), with the expected verdict and reason code.
 * The format is described in docs/policy.md.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

struct scen {
	char file[256];
};

static int cmp_names(const void *a, const void *b)
{
	return strcmp(((const struct scen *)a)->file, ((const struct scen *)b)->file);
}

static size_t list_scenarios(struct scen *out, size_t max)
{
	DIR *d = opendir(SCENARIO_DIR);
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		size_t len = strlen(e->d_name);

		if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0 &&
		    len < sizeof(out[n].file))
			memcpy(out[n++].file, e->d_name, len + 1);
	}
	closedir(d);
	qsort(out, n, sizeof(*out), cmp_names);
	return n;
}

ParameterizedTestParameters(scenario, run)
{
	struct scen tmp[512];
	size_t n = list_scenarios(tmp, 512);
	struct scen *params = cr_malloc(sizeof(*params) * (n ? n : 1));

	memcpy(params, tmp, n * sizeof(*params));
	return cr_make_param_array(struct scen, params, n);
}

/* ---- the runner ---- */

struct runner {
	const char *file;
	struct policy_session *s;
	uint8_t pk[32], sk[64], rogue_pk[32], rogue_sk[64];
	int64_t now;
	int step;
};

static char *dump(json_t *j)
{
	return json_dumps(j, JSON_COMPACT);
}

static struct policy *load_profile(struct runner *r, json_t *spec)
{
	struct policy *p = NULL;
	struct policy_error err = {{0}};
	int rc;

	if (json_is_string(spec)) {
		rc = policy__profile_builtin(json_string_value(spec), &p);
		cr_assert_eq(rc, 0, "%s: unknown built-in profile %s", r->file,
			     json_string_value(spec));
	} else {
		char *text = dump(spec);

		rc = policy__profile_parse(text, &p, &err);
		free(text);
		cr_assert_eq(rc, 0, "%s step %d: bad profile: %s", r->file, r->step, err.msg);
	}
	return p;
}

static struct policy_call_owned *load_call(struct runner *r, json_t *spec)
{
	struct policy_call_owned *c = NULL;
	struct policy_error err = {{0}};
	char *text = dump(spec);
	int rc = policy__call_parse(text, &c, &err);

	free(text);
	cr_assert_eq(rc, 0, "%s step %d: bad call: %s", r->file, r->step, err.msg);
	return c;
}

/* Build and sign the approval a step asks for. */
static void make_approval(struct runner *r, json_t *spec, const struct policy_call *call,
			  struct policy_approval *a)
{
	json_t *forj = json_object_get(spec, "for"), *op = json_object_get(spec, "op");
	const char *key = json_string_value(json_object_get(spec, "key"));
	const char *sess = json_string_value(json_object_get(spec, "session"));
	json_t *exp = json_object_get(spec, "expires_in"), *nonce = json_object_get(spec, "nonce");
	struct policy_call_owned *other = forj ? load_call(r, forj) : NULL;
	const struct policy_call *target = other ? policy__call_get(other) : call;

	memset(a, 0, sizeof(*a));
	memcpy(a->session_id, policy__session_id(r->s), POLICY_SESSION_ID_LEN);
	if (sess && strcmp(sess, "other") == 0)
		a->session_id[0] ^= 0xff;
	a->op = (uint8_t)(op ? policy__op_from_name(json_string_value(op)) : (int)target->op);
	cr_assert_lt(a->op, POLICY_OP_COUNT, "%s step %d: bad approval op", r->file, r->step);
	policy__call_digest(target, a->args_digest);
	memset(a->nonce, (int)(json_is_integer(nonce) ? json_integer_value(nonce) : 1),
	       sizeof(a->nonce));
	a->expires = r->now + (json_is_integer(exp) ? json_integer_value(exp) : 60);
	cr_assert_eq(
		policy__approval_sign(a, key && strcmp(key, "rogue") == 0 ? r->rogue_sk : r->sk),
		0);
	policy__call_free(other);
}

static void restart(struct runner *r)
{
	struct policy_session *t = NULL;
	struct policy_error err = {{0}};
	char *text = NULL;

	cr_assert_eq(policy__session_to_json(r->s, &text), 0);
	cr_assert_eq(policy__session_from_json(text, &t, &err), 0, "%s step %d: restore: %s",
		     r->file, r->step, err.msg);
	free(text);
	policy__session_free(r->s);
	r->s = t;
}

static void check(struct runner *r, json_t *step, const struct policy_decision *d)
{
	const char *verdict = json_string_value(json_object_get(step, "expect"));
	const char *reason = json_string_value(json_object_get(step, "reason"));
	char why[512];

	cr_assert(verdict && reason, "%s step %d: needs \"expect\" and \"reason\"", r->file,
		  r->step);
	policy__explain(d, why, sizeof(why));
	cr_expect_str_eq(policy__level_name(d->verdict), verdict, "%s step %d: %s", r->file,
			 r->step, why);
	cr_expect_str_eq(policy__reason_name(d->reason), reason, "%s step %d: %s", r->file, r->step,
			 why);
	cr_assert_geq(policy__reason_from_name(reason), 0, "%s step %d: unknown reason %s", r->file,
		      r->step, reason);
}

static void run_step(struct runner *r, json_t *step)
{
	struct policy_decision d;
	json_t *at = json_object_get(step, "at"), *v;

	r->now = json_is_integer(at) ? json_integer_value(at) : r->now + 1;
	if (json_is_true(json_object_get(step, "restart"))) {
		restart(r);
		return;
	}
	if ((v = json_object_get(step, "call"))) {
		struct policy_call_owned *c = load_call(r, v);
		struct policy_call call = *policy__call_get(c);
		struct policy_approval a;

		if ((v = json_object_get(step, "approval"))) {
			make_approval(r, v, &call, &a);
			call.approval = &a;
		}
		cr_assert_eq(policy__decide(r->s, &call, r->now, &d), 0);
		policy__call_free(c);
	} else if ((v = json_object_get(step, "narrow")) || (v = json_object_get(step, "widen"))) {
		struct policy *p = load_profile(r, v);
		bool widen = json_object_get(step, "widen") != NULL;

		cr_assert_eq(widen ? policy__request_widen(r->s, p, r->now, &d)
				   : policy__narrow(r->s, p, r->now, &d),
			     0);
		policy__free(p);
	} else {
		cr_assert_fail("%s step %d: no call, narrow, widen or restart", r->file, r->step);
	}
	check(r, step, &d);
}

static unsigned legs_of(json_t *arr)
{
	static const char *const names[] = {"private", "untrusted", "exfil"};
	unsigned legs = 0;
	size_t i;
	json_t *e;

	json_array_foreach(arr, i, e) for (unsigned k = 0; k < 3;
					   k++) if (json_is_string(e) &&
						    strcmp(json_string_value(e), names[k]) == 0)
		legs |= 1u << k;
	return legs;
}

static void check_final(struct runner *r, json_t *fin)
{
	json_t *legs = json_object_get(fin, "legs"), *q = json_object_get(fin, "quarantined");

	if (legs)
		cr_expect_eq(policy__session_legs(r->s), legs_of(legs), "%s: final legs", r->file);
	if (q)
		cr_expect_eq(policy__session_quarantined(r->s), json_is_true(q),
			     "%s: final quarantine", r->file);
}

ParameterizedTest(struct scen *sc, scenario, run)
{
	struct runner r = {.file = sc->file, .now = 1000};
	struct policy_session_config cfg = {{0}};
	char path[512];
	json_error_t je;
	json_t *root, *steps, *step;
	struct policy *p;
	uint8_t seed[32] = {7}, rseed[32] = {9};
	size_t i;

	cr_assert_geq(sodium_init(), 0);
	crypto_sign_seed_keypair(r.pk, r.sk, seed);
	crypto_sign_seed_keypair(r.rogue_pk, r.rogue_sk, rseed);
	snprintf(path, sizeof(path), "%s/%s", SCENARIO_DIR, sc->file);
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	cr_assert_not_null(root, "%s: line %d: %s", sc->file, je.line, je.text);
	cr_assert(json_is_string(json_object_get(root, "name")), "%s: needs a name", sc->file);
	steps = json_object_get(root, "steps");
	cr_assert(json_is_array(steps) && json_array_size(steps) > 0, "%s: needs steps", sc->file);
	p = load_profile(&r, json_object_get(root, "profile"));
	memcpy(cfg.id, "scenario-session", POLICY_SESSION_ID_LEN);
	cfg.approver_keys = (const uint8_t(*)[32])r.pk;
	cfg.n_approver_keys = 1;
	cr_assert_eq(policy__session_new(p, &cfg, &r.s), 0);
	policy__free(p);
	json_array_foreach(steps, i, step)
	{
		r.step = (int)i;
		run_step(&r, step);
	}
	check_final(&r, json_object_get(root, "final"));
	policy__session_free(r.s);
	json_decref(root);
}

Test(scenario, corpus_is_large_enough)
{
	struct scen tmp[512];

	cr_expect_geq(list_scenarios(tmp, 512), 40, "the corpus must hold at least 40 scenarios");
}
