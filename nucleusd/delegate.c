// SPDX-License-Identifier: Apache-2.0
/*
 * Delegation (docs/api.md "Delegation"): a sandbox created with a "parent" (POST
 * /v1/sandboxes, or the parent's spawn_agent tool) is a child of it.
 *
 *   policy   the child's policy session starts as the engine's delegation of the parent's
 *            (policy__session_delegate): the meet of the parent's policy in force and
 *            the requested one, the parent's exposure legs, probes and quarantine;
 *   budget   each limit of the child is carved out of the parent's remaining budget in
 *            the create transaction (budget__carve), and what the child did not spend
 *            goes back to the parent in the transaction that ends the child
 *            (budget__return); a peak (mem_peak_mib) is capped by the parent's, not
 *            carved.
 *
 * Later narrowings of the parent reach its children (policylife.c); an ending parent
 * ends its children (state.c). This file only computes and records: it calls neither.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "nucleusd/nucleusd-internal.h"
#include "policy/policy.h"

void nd_delegation__clear(struct nd_delegation *d)
{
	free(d->session_state);
	json_decref(d->policy);
	memset(d, 0, sizeof(*d));
}

/* The child's session: the engine's delegation of the parent's session. */
static int child_session(struct nucleusd *nd, const struct sb_row *parent, struct policy *requested,
			 struct nd_delegation *d, struct nd_err *e)
{
	struct policy_session_config cfg = {.approver_keys = (const uint8_t(*)[32])nd->approver_keys,
					    .n_approver_keys = nd->n_approver_keys};
	struct policy_session *ps = NULL, *cs = NULL;
	struct nd_sandbox_info info;
	int r;

	sb_row__info(parent, &info);
	r = nd__session_take(nd, &info, &ps, e);
	if (r < 0)
		return r;
	randombytes_buf(cfg.id, sizeof(cfg.id));
	sodium_bin2hex(d->session_id, sizeof(d->session_id), cfg.id, sizeof(cfg.id));
	r = policy__session_delegate(ps, requested, &cfg, &cs);
	if (r == 0)
		r = policy__session_to_json(cs, &d->session_state);
	if (r == 0)
		d->policy = nd_policy__json(policy__session_envelope(cs));
	if (r == 0 && !d->policy)
		r = -ENOMEM;
	nd__session_keep(nd, &info, parent->session_state, ps); /* unchanged */
	policy__session_free(cs);
	if (r < 0)
		return nd_err__set(e, r, "internal", "cannot delegate the policy of %s: %s",
				   parent->id, strerror(-r));
	return 0;
}

int nd__delegate(struct nucleusd *nd, const struct sb_row *parent, json_t *requested,
		 struct nd_delegation *ret, struct nd_err *e)
{
	struct policy *p = NULL;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (strcmp(parent->state, "running") != 0 && strcmp(parent->state, "paused") != 0)
		return nd_err__set(e, -EBUSY, "wrong_state",
				   "parent %s is %s: only a running or paused sandbox delegates",
				   parent->id, parent->state);
	snprintf(ret->parent_id, sizeof(ret->parent_id), "%s", parent->id);
	r = requested ? nd_policy__parse(requested, &p, e) : 0;
	if (r == 0)
		r = budget__limits_load(nd->store, parent->id, &ret->parent_limits);
	if (r < 0) {
		if (e && !e->code[0])
			nd_err__set(e, r, "internal", "cannot read the budget of %s", parent->id);
		goto out;
	}
	r = child_session(nd, parent, p, ret, e);
out:
	policy__free(p);
	if (r < 0)
		nd_delegation__clear(ret);
	return r;
}

int nd__delegate_limits(const struct nd_delegation *d, struct budget_limits *child,
			struct nd_err *e)
{
	for (int k = 0; k < BUDGET__N_KINDS; k++) {
		int64_t pl = d->parent_limits.limit[k];
		const char *name = budget_kind__name((enum budget_kind)k);

		if (!pl)
			continue;
		if (!budget_kind__carved((enum budget_kind)k)) {
			/* a peak: at most the parent's */
			if (!child->limit[k])
				child->limit[k] = pl;
			else if (child->limit[k] > pl)
				return nd_err__set(e, -EINVAL, "bad_value",
						   "budget.%s: at most the parent's %lld", name,
						   (long long)pl);
			continue;
		}
		if (!child->limit[k])
			return nd_err__set(e, -EINVAL, "budget_required",
					   "budget.%s: the parent %s has a %s budget; a child's is "
					   "carved out of it, so give one",
					   name, d->parent_id, name);
	}
	return 0;
}

int nd__delegate_tx(struct store *s, struct nucleusd *nd, const struct nd_delegation *d,
		    const char *child, int64_t actor_uid, const struct budget_limits *child_limits,
		    int *ret_short)
{
	struct budget_result res;
	json_t *body;
	int r;

	*ret_short = -1;
	r = budget__carve(s, d->parent_id, child, &d->parent_limits, child_limits, &res);
	if (r == -EDQUOT) {
		*ret_short = (int)res.exhausted;
		return r;
	}
	if (r < 0)
		return r;
	body = json_pack("{ss so}", "child", child, "carved",
			 budget__limits_to_json(child_limits));
	if (!body)
		return -ENOMEM;
	r = audit__append(s, nd->key, d->parent_id, actor_uid, "sandbox.delegate", body, NULL);
	json_decref(body);
	return r;
}

int nd__delegate_end_tx(struct store *s, struct nucleusd *nd, const char *parent,
			const char *child, int64_t actor_uid)
{
	struct budget_result res;
	json_t *body, *back;
	int r;

	r = budget__return(s, parent, child, &res);
	if (r < 0 || res.status == BUDGET_DUPLICATE)
		return r;
	back = json_object();
	for (int k = 0; back && k < BUDGET__N_KINDS; k++)
		if (res.charged[k])
			json_object_set_new(back, budget_kind__name((enum budget_kind)k),
					    json_integer(res.charged[k]));
	if (!back || json_object_size(back) == 0) {
		json_decref(back);
		return back ? 0 : -ENOMEM;
	}
	body = json_pack("{ss so}", "child", child, "returned", back);
	if (!body)
		return -ENOMEM;
	r = audit__append(s, nd->key, parent, actor_uid, "budget.return", body, NULL);
	json_decref(body);
	return r;
}
