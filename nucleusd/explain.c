// SPDX-License-Identifier: Apache-2.0
/*
 * The policy engine as a service of the daemon, for clients that do not link it
 * (nucleusctl's `policy check` and `policy explain`): check a policy, and decide one call
 * in a fresh session of a profile or policy, with the engine's explanation. Nothing is
 * stored and nothing is audited: no sandbox is involved.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "nucleusd/clock.h"
#include "nucleusd/nucleusd-internal.h"
#include "policy/policy.h"

int nucleusd__policy_check(struct nucleusd *nd, json_t *policy, json_t **ret, struct nd_err *e)
{
	struct policy_error pe = {{0}};
	char *text = json_dumps(policy, JSON_COMPACT | JSON_ENCODE_ANY);
	int r;

	if (!text)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	r = policy__profile_check(text, &pe);
	free(text);
	if (r == -EINVAL)
		*ret = json_pack("{sb ss}", "ok", 0, "problem", pe.msg);
	else if (r == 0)
		*ret = json_pack("{sb}", "ok", 1);
	else
		return nd_err__set(e, r, "internal", "the policy engine failed");
	return *ret ? 0 : nd_err__set(e, -ENOMEM, "internal", "out of memory");
}

/* The body of the profile @name from the daemon's profiles table (malloc'd). */
/* The profile named in @req, or its inline policy (exactly one of them). */
static int explain_policy(struct nucleusd *nd, json_t *req, struct policy **ret, struct nd_err *e)
{
	const char *name = json_string_value(json_object_get(req, "profile"));
	json_t *inline_policy = json_object_get(req, "policy");
	struct policy_error pe = {{0}};
	char *text = NULL;
	int r;

	if (!name == !inline_policy)
		return nd_err__set(e, -EINVAL, name ? "conflicting_fields" : "missing_field",
				   "exactly one of 'profile' and 'policy' is required");
	if (name) {
		json_t *body = NULL, *budget = NULL;

		r = nd__profile_load(nd, name, &body, &budget, e); /* the one registry */
		if (r < 0)
			return r;
		text = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		json_decref(budget);
	} else {
		text = json_dumps(inline_policy, JSON_COMPACT);
	}
	if (!text)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	r = policy__profile_parse(text, ret, &pe);
	free(text);
	if (r == -EINVAL && name)
		return nd_err__set(e, r, "invalid_policy", "profile '%s': %s", name, pe.msg);
	if (r == -EINVAL)
		return nd_err__set(e, r, "invalid_policy", "%s", pe.msg);
	if (r < 0)
		return nd_err__set(e, r, "internal", "the policy engine failed");
	return 0;
}

int nucleusd__policy_explain(struct nucleusd *nd, json_t *req, json_t **ret, struct nd_err *e)
{
	struct policy_session_config cfg = {{0}};
	struct policy_error pe = {{0}};
	struct policy_call_owned *call = NULL;
	struct policy_session *s = NULL;
	struct policy *p = NULL;
	struct policy_decision d;
	char *text = NULL, why[1024];
	int r;

	r = explain_policy(nd, req, &p, e);
	if (r < 0)
		return r;
	text = json_dumps(json_object_get(req, "call"), JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text) {
		r = nd_err__set(e, -ENOMEM, "internal", "out of memory");
		goto out;
	}
	r = policy__call_parse(text, &call, &pe);
	if (r == -EINVAL) {
		r = nd_err__set(e, r, "invalid_call", "%s", pe.msg);
		goto out;
	}
	if (r < 0) {
		r = nd_err__set(e, r, "internal", "the policy engine failed");
		goto out;
	}
	randombytes_buf(cfg.id, sizeof(cfg.id));
	r = policy__session_new(p, &cfg, &s);
	if (r == 0)
		r = policy__decide(s, policy__call_get(call), nd_clock__wall_us() / 1000000, &d);
	if (r < 0) {
		r = nd_err__set(e, r, "internal", "the policy engine failed");
		goto out;
	}
	if (policy__explain(&d, why, sizeof(why)) < 0)
		snprintf(why, sizeof(why), "%s", policy__reason_message(d.reason));
	*ret = json_pack("{ss ss ss}", "verdict", policy__level_name(d.verdict), "reason",
			 policy__reason_name(d.reason), "explanation", why);
	if (!*ret)
		r = nd_err__set(e, -ENOMEM, "internal", "out of memory");
out:
	free(text);
	policy__call_free(call);
	policy__session_free(s);
	policy__free(p);
	return r;
}
