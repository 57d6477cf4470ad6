// SPDX-License-Identifier: Apache-2.0
/*
 * The per-call decision path of the policy engine, shared by the backends: the `vmm`
 * backend (backend-vm.c) and the fake backend for real (non-fake) policies.
 *
 * Nothing is kept in memory: every decision parses the call, rebuilds the session from
 * its last committed state (or opens one from the policy), decides, and hands back the
 * reason, the explanation, the trace record and the new session state.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "nucleusd/nucleusd-internal.h"
#include "policy/policy.h"

static int hex16(const char *hex, uint8_t out[POLICY_SESSION_ID_LEN])
{
	size_t n = 0;

	if (!hex ||
	    sodium_hex2bin(out, POLICY_SESSION_ID_LEN, hex, strlen(hex), NULL, &n, NULL) < 0 ||
	    n != POLICY_SESSION_ID_LEN)
		return -EINVAL;
	return 0;
}

static int load_session(const uint8_t (*approver_keys)[32], size_t n_keys,
			const struct nd_sandbox_info *sb, struct policy_session **ret,
			struct nd_err *e)
{
	struct policy_session_config cfg = {.approver_keys = approver_keys,
					    .n_approver_keys = n_keys};
	struct policy_error pe = {{0}};
	struct policy *p = NULL;
	char *text;
	int r;

	if (sb->session_state) {
		r = policy__session_from_json(sb->session_state, ret, &pe);
		if (r < 0)
			return nd_err__set(e, r, "policy_error", "session state: %s", pe.msg);
		return 0;
	}
	if (hex16(sb->session_id, cfg.id) < 0)
		return nd_err__set(e, -EINVAL, "policy_error", "bad session id");
	text = json_dumps(sb->policy, JSON_COMPACT);
	if (!text)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	r = policy__profile_parse(text, &p, &pe);
	free(text);
	if (r < 0)
		return nd_err__set(e, r, "policy_error", "policy: %s", pe.msg);
	r = policy__session_new(p, &cfg, ret);
	policy__free(p);
	if (r < 0)
		return nd_err__set(e, r, "policy_error", "cannot open the policy session");
	return 0;
}

/* The policy engine's view of a tool call: {"op": tool} + the arguments it knows. */
static json_t *policy_call_json(const char *tool, json_t *args)
{
	static const char *const keys[] = {"path", "argv", "url",    "method", "body_len", "query",
					   "host", "port", "remote", "ref",    "target"};
	json_t *c = json_pack("{ss}", "op", tool), *v;

	for (size_t i = 0; c && i < sizeof(keys) / sizeof(keys[0]); i++) {
		v = json_object_get(args, keys[i]);
		if (v)
			json_object_set(c, keys[i], v);
	}
	if (c && strcmp(tool, "web_fetch") == 0 && !json_object_get(c, "body_len")) {
		const char *body = json_string_value(json_object_get(args, "body"));

		if (body)
			json_object_set_new(c, "body_len", json_integer((json_int_t)strlen(body)));
	}
	return c;
}

int nd_policy__decide(const uint8_t (*approver_keys)[32], size_t n_keys,
		      const struct nd_sandbox_info *sb, const char *tool, json_t *args,
		      struct nd_decision *ret, struct nd_err *e)
{
	struct nd_decision d = {0};
	struct policy_session *s = NULL;
	struct policy_call_owned *call = NULL;
	struct policy_decision pd;
	struct policy_error pe = {{0}};
	struct policy_approval appr;
	struct policy_call pc;
	char *text = NULL, *trace = NULL;
	json_t *cj, *aj = json_object_get(args, "approval");
	int r;

	if (policy__op_from_name(tool) < 0)
		return nd_err__set(e, -ENOENT, "unknown_tool", "no tool '%s'", tool);
	cj = policy_call_json(tool, args);
	text = cj ? json_dumps(cj, JSON_COMPACT) : NULL;
	json_decref(cj);
	if (!text)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	r = policy__call_parse(text, &call, &pe);
	free(text);
	if (r < 0) {
		r = nd_err__set(e, -EINVAL, "bad_args", "%s: %s", tool, pe.msg);
		goto out;
	}
	pc = *policy__call_get(call);
	if (aj) {
		text = json_dumps(aj, JSON_COMPACT);
		r = text ? policy__approval_from_json(text, &appr, &pe) : -ENOMEM;
		free(text);
		if (r < 0) {
			r = nd_err__set(e, -EINVAL, "bad_approval", "approval: %s", pe.msg);
			goto out;
		}
		pc.approval = &appr;
	}
	r = load_session(approver_keys, n_keys, sb, &s, e);
	if (r < 0)
		goto out;
	r = policy__decide(s, &pc, (int64_t)time(NULL), &pd);
	if (r < 0) {
		r = nd_err__set(e, r, "policy_error", "the policy engine failed: %s", strerror(-r));
		goto out;
	}
	d.verdict = pd.verdict == POLICY_ALLOW ? ND_ALLOW
		    : pd.verdict == POLICY_ASK ? ND_ASK
					       : ND_DENY;
	snprintf(d.reason, sizeof(d.reason), "%s", policy__reason_name(pd.reason));
	if (policy__explain(&pd, d.message, sizeof(d.message)) < 0)
		snprintf(d.message, sizeof(d.message), "%s", policy__reason_message(pd.reason));
	if (policy__trace_to_json(&pd.trace, &trace) == 0)
		d.trace = json_loads(trace, 0, NULL);
	r = policy__session_to_json(s, &d.session_state);
	if (r < 0) {
		json_decref(d.trace);
		r = nd_err__set(e, r, "policy_error", "cannot save the policy session");
		goto out;
	}
	*ret = d;
out:
	free(trace);
	policy__call_free(call);
	policy__session_free(s);
	return r;
}

int nd_policy__check(json_t *policy, struct nd_err *e)
{
	struct policy_error pe = {{0}};
	char *text = json_dumps(policy, JSON_COMPACT);
	int r;

	if (!text)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	r = policy__profile_check(text, &pe);
	free(text);
	if (r < 0)
		return nd_err__set(e, -EINVAL, "invalid_policy", "%s", pe.msg);
	return 0;
}
