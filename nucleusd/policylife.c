// SPDX-License-Identifier: Apache-2.0
/*
 * The policy's life through the API (docs/api.md "The policy of a sandbox"): the policy
 * in force and its versions (GET .../policy), narrowing (.../policy/narrow) and widening
 * (.../policy/widen, only with an approver's signature).
 *
 * The policy in force is the envelope of the sandbox's policy session (decide.c); a
 * change is one transaction: the session's new state and its audit entry. The version
 * history is the audit log itself: version 1 is the policy the sandbox was created with,
 * every later one an entry "policy.narrow", "policy.widen" or "policy.quarantine" of the
 * sandbox whose body carries "version" (a narrowing that changes nothing makes none).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sqlite3.h>

#include "nucleusd/nucleusd-internal.h"
#include "policy/policy.h"

static void digest_hex(const struct policy *p, char out[65])
{
	uint8_t d[POLICY_DIGEST_LEN];

	policy__digest(p, d);
	sodium_bin2hex(out, 65, d, sizeof(d));
}

/* ---- versions ---- */

struct history {
	json_t *versions; /* [{version, digest, at_us, how}] */
	json_t *entries;  /* the sandbox's policy.* entries */
	json_int_t last;  /* the newest version */
};

static void history_clear(struct history *h)
{
	json_decref(h->versions);
	json_decref(h->entries);
	memset(h, 0, sizeof(*h));
}

static int history_load(struct store *s, const struct sb_row *row, struct history *h)
{
	struct policy *p = NULL;
	char hex[65];
	json_t *en, *body;
	size_t i;
	int r;

	memset(h, 0, sizeof(*h));
	r = audit__list_kinds(s, row->id, "policy.*", &h->entries);
	if (r < 0)
		return r;
	r = nd_policy__parse(row->policy, &p, NULL);
	if (r < 0)
		goto fail;
	digest_hex(p, hex);
	policy__free(p);
	h->last = 1;
	h->versions = json_pack("[{sI ss sI ss}]", "version", (json_int_t)1, "digest", hex, "at_us",
				(json_int_t)row->created_us, "how", "create");
	r = -ENOMEM;
	if (!h->versions)
		goto fail;
	json_array_foreach(h->entries, i, en)
	{
		body = json_object_get(en, "body");
		if (!json_is_integer(json_object_get(body, "version")))
			continue;
		h->last = json_integer_value(json_object_get(body, "version"));
		if (json_array_append_new(h->versions,
					  json_pack("{sO sO sO sO}", "version",
						    json_object_get(body, "version"), "digest",
						    json_object_get(body, "after"), "at_us",
						    json_object_get(en, "at_us"), "how",
						    json_object_get(body, "how"))) < 0)
			goto fail;
	}
	return 0;
fail:
	history_clear(h);
	return r;
}

/* The next version of @sandbox's policy, in a transaction. */
static int next_version(struct store *s, const char *sandbox, json_int_t *ret)
{
	json_t *arr = NULL, *en;
	json_int_t v = 1;
	size_t i;
	int r = audit__list_kinds(s, sandbox, "policy.*", &arr);

	if (r < 0)
		return r;
	json_array_foreach(arr, i, en)
	{
		json_t *ver = json_object_get(json_object_get(en, "body"), "version");

		if (json_is_integer(ver))
			v = json_integer_value(ver);
	}
	json_decref(arr);
	*ret = v + 1;
	return 0;
}

/* Sets @body's "version" (the next one) and "how": @body is a new version. */
static int new_version(struct store *s, const char *sandbox, const char *how, json_t *body)
{
	json_int_t v;
	int r = next_version(s, sandbox, &v);

	if (r < 0)
		return r;
	if (json_object_set_new(body, "version", json_integer(v)) < 0 ||
	    json_object_set_new(body, "how", json_string(how)) < 0)
		return -ENOMEM;
	return 0;
}

/* The policy in force of @row: its session's envelope (before any decision: its policy). */
static int envelope_of(const struct sb_row *row, struct policy **ret)
{
	struct policy_session *ps = NULL;
	int r;

	if (!row->session_state)
		return nd_policy__parse(row->policy, ret, NULL);
	r = policy__session_from_json(row->session_state, &ps, NULL);
	if (r == 0)
		r = policy__dup(policy__session_envelope(ps), ret);
	policy__session_free(ps);
	return r;
}

static int narrow_children_tx(struct store *s, struct nucleusd *nd, const char *parent,
			      int64_t actor_uid);
static json_t *change_body(const struct policy_decision *d, json_t *given, const char *before,
			   const char *after, json_t *trace);

/*
 * In a transaction: child @id narrowed by its parent's policy in force @penv (@given: its
 * JSON), audited policy.narrow "by" the parent as a new version when it changes, and on
 * to the child's own children.
 */
static int narrow_child_tx(struct store *s, struct nucleusd *nd, const char *parent,
			   const struct policy *penv, json_t *given, const char *id,
			   int64_t actor_uid)
{
	struct policy_session *cs = NULL;
	struct nd_sandbox_info info;
	struct policy_decision d;
	struct policy *before = NULL;
	struct sb_row row;
	char bh[65], ah[65], *state = NULL;
	json_t *trace = NULL, *body = NULL;
	int r;

	r = sb_row__load(nd, NULL, id, &row, NULL);
	if (r < 0)
		return r;
	sb_row__info(&row, &info);
	r = nd__session_take(nd, &info, &cs, NULL);
	if (r == 0)
		r = policy__dup(policy__session_envelope(cs), &before);
	if (r == 0)
		r = policy__narrow(cs, penv, nd_clock__wall_us() / 1000000, &d);
	if (r < 0)
		goto out;
	digest_hex(before, bh);
	digest_hex(policy__session_envelope(cs), ah);
	if (strcmp(bh, ah) == 0)
		goto out; /* within the parent's already, and so are its children */
	r = policy__session_to_json(cs, &state);
	trace = r == 0 ? policy__trace_json(&d.trace) : NULL;
	body = trace ? change_body(&d, given, bh, ah, trace) : NULL;
	if (r == 0 && (!body || json_object_set_new(body, "by", json_string(parent)) < 0))
		r = -ENOMEM;
	if (r == 0)
		r = nd__session_save(s, row.session_id, state);
	if (r == 0)
		r = new_version(s, id, "narrow", body);
	if (r == 0)
		r = audit__append(s, nd->key, id, actor_uid, "policy.narrow", body, NULL);
	if (r == 0)
		r = narrow_children_tx(s, nd, id, actor_uid);
out:
	json_decref(body);
	json_decref(trace);
	free(state);
	policy__free(before);
	policy__session_free(cs); /* the committed state is parsed again by the next call */
	sb_row__clear(&row);
	return r;
}

/*
 * In a transaction that changed @parent's policy in force (a narrowing, a quarantine):
 * its live children, and theirs, are narrowed by it, so that no child can do what its
 * parent cannot.
 */
static int narrow_children_tx(struct store *s, struct nucleusd *nd, const char *parent,
			      int64_t actor_uid)
{
	struct policy *penv = NULL;
	struct sb_row prow = {0};
	json_t *kids = NULL, *given = NULL, *k;
	size_t i;
	int r;

	r = nd__children(nd, parent, true, &kids);
	if (r < 0 || json_array_size(kids) == 0)
		goto out;
	r = sb_row__load(nd, NULL, parent, &prow, NULL);
	if (r == 0)
		r = envelope_of(&prow, &penv);
	given = r == 0 ? nd_policy__json(penv) : NULL;
	if (r == 0 && !given)
		r = -ENOMEM;
	json_array_foreach(kids, i, k)
	{
		if (r < 0)
			break;
		r = narrow_child_tx(s, nd, parent, penv, given,
				    json_string_value(json_object_get(k, "id")), actor_uid);
	}
out:
	json_decref(kids);
	json_decref(given);
	policy__free(penv);
	sb_row__clear(&prow);
	return r;
}

int nd__policy_quarantined_tx(struct store *s, struct nucleusd *nd, const char *sandbox,
			      int64_t actor_uid, const char *what, uint32_t probes, json_t *trace)
{
	json_t *body = json_pack("{ss ss sI ss sO sO}", "rule", "quarantine_after", "reason",
				 ND_QUARANTINE_REASON, "probes", (json_int_t)probes, "tool", what,
				 "before", json_object_get(trace, "envelope_before"), "after",
				 json_object_get(trace, "envelope_after"));
	int r;

	if (!body)
		return -ENOMEM;
	r = new_version(s, sandbox, "quarantine", body);
	if (r == 0)
		r = audit__append(s, nd->key, sandbox, actor_uid, "policy.quarantine", body, NULL);
	json_decref(body);
	if (r == 0) /* read-only now: so are its children */
		r = narrow_children_tx(s, nd, sandbox, actor_uid);
	return r;
}

/* ---- the view ---- */

/* The session as a person reads it, from its state text (policy__session_to_json). */
static json_t *session_view(const char *session_id, const char *state, json_t *envelope)
{
	json_t *st = json_loads(state, 0, NULL), *o = NULL, *q;

	if (!st)
		return NULL;
	o = json_pack("{ss sO sO sO sO sO sO}", "id", session_id, "seq", json_object_get(st, "seq"),
		      "legs", json_object_get(st, "legs"), "counters",
		      json_object_get(st, "counters"), "suspicion",
		      json_object_get(st, "suspicion"), "quarantine_after",
		      json_object_get(envelope, "quarantine_after"), "quarantined",
		      json_object_get(st, "quarantined"));
	q = o ? nd_session__quarantine_json(state) : NULL;
	if (q)
		json_object_set_new(o, "quarantine", q);
	json_decref(st);
	return o;
}

/*
 * The reply of GET .../policy: the policy in force (@s's envelope; NULL: the sandbox has
 * no open session), its digest and version, the versions and the session.
 */
static json_t *view(const struct sb_row *row, struct policy_session *s, const char *state,
		    struct history *h)
{
	json_t *o, *env = NULL;
	char hex[65];

	o = json_pack("{ss sI sO}", "sandbox", row->id, "version", h->last, "versions",
		      h->versions);
	if (!o || !s) {
		if (o)
			json_object_set_new(o, "session", json_null());
		return o;
	}
	env = nd_policy__json(policy__session_envelope(s));
	digest_hex(policy__session_envelope(s), hex);
	if (!env || json_object_set_new(o, "digest", json_string(hex)) < 0 ||
	    json_object_set_new(o, "session", session_view(row->session_id, state, env)) < 0 ||
	    json_object_set_new(o, "policy", env) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* A sandbox without an open session (stopped, failed): its newest one, closed. */
static int last_session(struct store *s, const char *sandbox, char id[33], char **state)
{
	static const char sql[] = "SELECT id, state FROM sessions WHERE sandbox_id = ?1 "
				  "ORDER BY created_us DESC LIMIT 1";
	sqlite3_stmt *st = NULL;
	const char *text;
	int r = store__stmt_text(s, sql, sandbox, &st), rc;

	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : store__errno(rc);
	if (r == 0) {
		snprintf(id, 33, "%s", (const char *)sqlite3_column_text(st, 0));
		text = (const char *)sqlite3_column_text(st, 1);
		*state = text ? strdup(text) : NULL;
		if (text && !*state)
			r = -ENOMEM;
	}
	store__stmt_done(st);
	return r;
}

int nucleusd__policy_show(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			  json_t **ret, struct nd_err *e)
{
	struct policy_session *s = NULL;
	struct nd_sandbox_info info;
	struct history h;
	struct sb_row row;
	char *state = NULL, *closed = NULL, closed_id[33] = "";
	int r;

	r = sb_row__load(nd, who, ref, &row, e);
	if (r < 0)
		return r;
	sb_row__info(&row, &info);
	r = history_load(nd->store, &row, &h);
	if (r == 0 && !info.session_id) {
		r = last_session(nd->store, row.id, closed_id, &closed);
		if (r == 0) {
			info.session_id = closed_id;
			info.session_state = closed;
			snprintf(row.session_id, sizeof(row.session_id), "%s", closed_id);
		}
		r = r == -ENOENT ? 0 : r;
	}
	if (r < 0) {
		r = nd_err__set(e, r, "internal", "cannot read the policy's history");
		goto out;
	}
	if (info.session_id) {
		r = nd__session_take(nd, &info, &s, e);
		if (r < 0)
			goto out;
		r = policy__session_to_json(s, &state);
		if (r < 0) {
			r = nd_err__set(e, r, "internal", "cannot read the policy session");
			goto out;
		}
	}
	*ret = view(&row, s, state, &h);
	r = *ret ? 0 : nd_err__set(e, -ENOMEM, "internal", "out of memory");
	if (r == 0 && s) /* a stopped sandbox's session is closed: its last state */
		json_object_set_new(json_object_get(*ret, "session"), "closed",
				    json_boolean(closed_id[0] != '\0'));
	if (s && !closed_id[0]) { /* a closed session does not displace a live one */
		nd__session_keep(nd, &info, state, s); /* the state it was taken at */
		s = NULL;
	}
out:
	policy__session_free(s);
	free(state);
	free(closed);
	history_clear(&h);
	sb_row__clear(&row);
	return r;
}

/* ---- changes ---- */

struct change_tx {
	struct nucleusd *nd;
	const struct sb_row *row;
	int64_t actor_uid;
	const char *kind, *how; /* how: a new version, or NULL */
	const char *state;
	json_t *body;
	bool quarantined; /* the step quarantined the session: also policy.quarantine */
	uint32_t probes;
};

static int change_tx(struct store *s, void *arg)
{
	struct change_tx *c = arg;
	int r;

	r = nd__session_save(s, c->row->session_id, c->state);
	if (r == 0 && c->how)
		r = new_version(s, c->row->id, c->how, c->body);
	if (r == 0)
		r = audit__append(s, c->nd->key, c->row->id, c->actor_uid, c->kind, c->body, NULL);
	if (r == 0 && c->how && strcmp(c->how, "narrow") == 0)
		r = narrow_children_tx(s, c->nd, c->row->id, c->actor_uid);
	if (r == 0 && c->quarantined)
		r = nd__policy_quarantined_tx(s, c->nd, c->row->id, c->actor_uid, c->kind,
					      c->probes, json_object_get(c->body, "trace"));
	return r;
}

/* What a narrowing or widening asked for: the policy and, for a widening, the approval. */
struct change_req {
	json_t *policy;
	json_t *approval; /* widen: the signed approval, or NULL */
	bool widen;
};

/* The operations @after denies that @before did not: a narrowing's visible effect. */
static json_t *newly_denied(const struct policy *before, const struct policy *after)
{
	json_t *arr = json_array();

	for (int i = 0; arr && i < POLICY_OP_COUNT; i++)
		if (policy__level(before, (enum policy_op)i) != POLICY_DENY &&
		    policy__level(after, (enum policy_op)i) == POLICY_DENY)
			json_array_append_new(arr, json_string(policy__op_name((enum policy_op)i)));
	return arr;
}

static int parse_approval(json_t *aj, struct policy_approval *a, struct nd_err *e)
{
	struct policy_error pe = {{0}};
	char *text = json_dumps(aj, JSON_COMPACT);
	int r;

	if (!text)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	r = policy__widen_approval_from_json(text, a, &pe);
	free(text);
	if (r < 0)
		return nd_err__set(e, -EINVAL, "bad_approval", "approval: %s", pe.msg);
	return 0;
}

/* The engine's step on @s: narrow, or widen (refused without an approval). */
static int step(struct policy_session *s, const struct change_req *q, const struct policy *p,
		const struct policy_approval *a, struct policy_decision *d)
{
	int64_t now = nd_clock__wall_us() / 1000000;

	if (!q->widen)
		return policy__narrow(s, p, now, d);
	return policy__widen(s, p, a, now, d);
}

/* The audit body of a change: what was asked, the digests, the outcome. */
static json_t *change_body(const struct policy_decision *d, json_t *given, const char *before,
			   const char *after, json_t *trace)
{
	char gh[65];

	sodium_bin2hex(gh, sizeof(gh), d->trace.args_digest, POLICY_DIGEST_LEN);
	return json_pack("{ss ss ss sO ss sO}", "given", gh, "before", before, "after", after,
			 "policy", given, "reason", policy__reason_name(d->reason), "trace", trace);
}

/* 1 when @p is within the policy in force of @row's parent, 0 when not, or -errno. */
static int within_parent(struct nucleusd *nd, const struct sb_row *row, const struct policy *p)
{
	struct policy *penv = NULL;
	struct sb_row prow;
	int r;

	r = sb_row__load(nd, NULL, row->parent_id, &prow, NULL);
	if (r < 0)
		return r;
	r = envelope_of(&prow, &penv);
	if (r == 0)
		r = policy__leq(p, penv);
	policy__free(penv);
	sb_row__clear(&prow);
	return r;
}

static int change(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
		  const struct change_req *q, json_t **ret, json_t **ret_denial, struct nd_err *e)
{
	struct policy_session *s = NULL;
	struct policy *p = NULL, *before = NULL;
	struct policy_approval a, *ap = NULL;
	struct policy_decision d;
	struct nd_sandbox_info info;
	struct change_tx c = {.nd = nd, .actor_uid = who ? (int64_t)who->uid : -1};
	struct history h = {0};
	struct sb_row row;
	char bh[65], ah[65], *state = NULL;
	json_t *trace = NULL, *o;
	bool beyond = false; /* a child's widening past its parent's policy */
	int r;

	r = sb_row__load(nd, who, ref, &row, e);
	if (r < 0)
		return r;
	sb_row__info(&row, &info);
	r = nd_policy__parse(q->policy, &p, e);
	if (r == 0 && q->approval)
		r = parse_approval(q->approval, &a, e);
	if (r < 0)
		goto out;
	ap = q->approval ? &a : NULL;
	if (ap && row.parent_id[0]) {
		r = within_parent(nd, &row, p);
		if (r < 0) {
			r = nd_err__set(e, r, "internal", "cannot read the policy of parent %s",
					row.parent_id);
			goto out;
		}
		beyond = r == 0;
		if (beyond)
			ap = NULL; /* refused like an unsigned widening: recorded, a probe */
	}
	r = nd__session_take(nd, &info, &s, e);
	if (r < 0)
		goto out;
	c.quarantined = policy__session_quarantined(s); /* before: so not newly */
	r = policy__dup(policy__session_envelope(s), &before);
	if (r == 0)
		r = step(s, q, p, ap, &d);
	c.quarantined = !c.quarantined && policy__session_quarantined(s);
	c.probes = policy__session_suspicion(s);
	if (r == 0)
		r = policy__session_to_json(s, &state);
	trace = r == 0 ? policy__trace_json(&d.trace) : NULL;
	if (!trace) {
		r = nd_err__set(e, r < 0 ? r : -ENOMEM, "internal", "the policy engine failed");
		goto out;
	}
	digest_hex(before, bh);
	digest_hex(policy__session_envelope(s), ah);
	c.row = &row;
	c.state = state;
	c.body = change_body(&d, q->policy, bh, ah, trace);
	c.kind = !q->widen		     ? "policy.narrow"
		 : d.verdict == POLICY_ALLOW ? "policy.widen"
					     : "policy.widen_refused";
	c.how = d.verdict != POLICY_ALLOW || strcmp(bh, ah) == 0 ? NULL
		: q->widen					 ? "widen"
								 : "narrow";
	if (c.body && q->approval)
		json_object_set(c.body, "approval", q->approval);
	if (c.body && beyond)
		json_object_set_new(c.body, "beyond_parent", json_string(row.parent_id));
	r = c.body ? store__tx(nd->store, change_tx, &c) : -ENOMEM;
	if (r < 0) {
		r = nd_err__set(e, r, "internal", "cannot record the policy change: %s",
				strerror(-r));
		goto out;
	}
	nd->m.quarantines += c.quarantined;
	if (d.verdict != POLICY_ALLOW) {
		o = json_pack("{ss ss ss}", "reason", policy__reason_name(d.reason), "requested",
			      json_string_value(json_object_get(c.body, "given")), "digest", bh);
		if (ret_denial)
			*ret_denial = o;
		else
			json_decref(o);
		if (beyond)
			r = nd_err__set(e, -EACCES, "widen_refused",
					"%s is a child of %s: no signature widens it past its "
					"parent's policy",
					row.id, row.parent_id);
		else
			r = nd_err__set(e, -EACCES, "widen_refused",
					"widening the policy of %s needs an approver's signature: "
					"%s",
					row.id, policy__reason_message(d.reason));
		goto keep;
	}
	r = history_load(nd->store, &row, &h);
	o = r == 0 ? view(&row, s, state, &h) : NULL;
	if (o)
		json_object_set_new(o, q->widen ? "widened" : "narrowed",
				    json_pack("{ss ss ss sb so}", "before", bh, "given",
					      json_string_value(json_object_get(c.body, "given")),
					      "after", ah, "changed", strcmp(bh, ah) != 0,
					      "denied_ops",
					      newly_denied(before, policy__session_envelope(s))));
	*ret = o;
	if (!o)
		r = nd_err__set(e, r < 0 ? r : -ENOMEM, "internal",
				"the change is recorded, but its reply could not be built: %s",
				strerror(r < 0 ? -r : ENOMEM));
keep:
	nd__session_keep(nd, &info, state, s); /* committed: the next decision's start */
	s = NULL;
out:
	json_decref(c.body);
	json_decref(trace);
	history_clear(&h);
	policy__session_free(s);
	policy__free(p);
	policy__free(before);
	free(state);
	sb_row__clear(&row);
	return r;
}

int nucleusd__policy_narrow(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			    json_t *policy, json_t **ret, struct nd_err *e)
{
	struct change_req q = {.policy = policy};

	return change(nd, who, ref, &q, ret, NULL, e);
}

int nucleusd__policy_widen(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			   json_t *policy, json_t *approval, json_t **ret, json_t **ret_denial,
			   struct nd_err *e)
{
	struct change_req q = {.policy = policy, .approval = approval, .widen = true};

	return change(nd, who, ref, &q, ret, ret_denial, e);
}

/* ---- asks nobody approved: expired, or refused by a person ---- */

struct unanswered_tx {
	struct nucleusd *nd;
	const struct sb_row *row;
	int64_t now_us, actor_uid;
	const char *refused; /* the one nonce a person refused; NULL: every expired one */
	const char *kind;    /* approval.expired, approval.refused */
	const char *state;
	json_t *body;
	bool quarantined, in_quarantine; /* newly; now */
	uint32_t probes;
};

/* Why @nonce of @sandbox could not be refused: unknown, answered, or expired. */
static int not_pending(struct store *s, const char *sandbox, const char *nonce, int64_t now_us)
{
	static const char sel[] = "SELECT state, expires_us FROM approvals WHERE nonce = ?1 AND "
				  "sandbox_id = ?2";
	sqlite3_stmt *st = NULL;
	int r = store__stmt_text(s, sel, nonce, &st), rc;

	if (r < 0)
		return r;
	rc = sqlite3_bind_text(st, 2, sandbox, -1, SQLITE_STATIC) ?: sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		/* pending and in time yet not updated: answered meanwhile */
		r = nd__approval_state((const char *)sqlite3_column_text(st, 0),
				       sqlite3_column_int64(st, 1), now_us)
			    ?: -EBUSY;
	} else {
		r = rc == SQLITE_DONE ? -ENOENT : store__errno(rc);
	}
	store__stmt_done(st);
	return r;
}

static int unanswered_tx(struct store *s, void *arg)
{
	static const char expire[] = "UPDATE approvals SET state = 'expired', decided_us = ?2 "
				     "WHERE sandbox_id = ?1 AND state = 'pending' AND "
				     "expires_us <= ?2";
	static const char refuse[] = "UPDATE approvals SET state = 'denied', decided_us = ?2 "
				     "WHERE sandbox_id = ?1 AND state = 'pending' AND "
				     "expires_us > ?2 AND nonce = ?3";
	struct unanswered_tx *x = arg;
	sqlite3_stmt *st = NULL;
	int r = store__stmt_text(s, x->refused ? refuse : expire, x->row->id, &st), rc;

	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(st, 2, x->now_us);
	if (x->refused)
		rc = rc ?: sqlite3_bind_text(st, 3, x->refused, -1, SQLITE_STATIC);
	r = store__errno(rc ?: sqlite3_step(st));
	store__stmt_done(st);
	if (r == 0 && x->refused && sqlite3_changes(store__db(s)) != 1)
		r = not_pending(s, x->row->id, x->refused, x->now_us);
	if (r == 0)
		r = nd__session_save(s, x->row->session_id, x->state);
	if (r == 0)
		r = audit__append(s, x->nd->key, x->row->id, x->actor_uid, x->kind, x->body, NULL);
	if (r == 0 && x->quarantined)
		r = nd__policy_quarantined_tx(s, x->nd, x->row->id, x->actor_uid, x->kind,
					      x->probes, x->body);
	return r;
}

static int add_nonce(sqlite3_stmt *st, void *arg)
{
	return json_array_append_new(arg, json_string((const char *)sqlite3_column_text(st, 0))) < 0
		       ? -ENOMEM
		       : 0;
}

/* The nonces of @row's approval requests still pending at @cutoff_us, which has passed. */
static int expired_asks(struct store *s, const char *sandbox, int64_t cutoff_us, json_t **ret)
{
	static const char sel[] = "SELECT nonce FROM approvals WHERE sandbox_id = ?1 AND "
				  "state = 'pending' AND expires_us <= ?2 ORDER BY expires_us";
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array();
	int r = arr ? store__stmt_text(s, sel, sandbox, &st) : -ENOMEM;

	if (r == 0)
		r = store__errno(sqlite3_bind_int64(st, 2, cutoff_us));
	if (r == 0)
		r = store__rows(st, add_nonce, arr);
	store__stmt_done(st);
	if (r < 0)
		json_decref(arr);
	else
		*ret = arr;
	return r;
}

/*
 * The asks @nonces of @row nobody approved, each a probe of its session (it may be
 * quarantined), recorded in one transaction with the session (x->refused, x->kind and
 * x->actor_uid say which and by whom). 0 or -errno (the transaction's own when it failed).
 */
static int unanswered(struct unanswered_tx *x, json_t *nonces, struct nd_err *e)
{
	struct policy_session *s = NULL;
	struct nd_sandbox_info info;
	char bh[65], ah[65], *state = NULL;
	int r;

	sb_row__info(x->row, &info);
	r = nd__session_take(x->nd, &info, &s, e);
	if (r < 0)
		return r;
	x->quarantined = policy__session_quarantined(s);
	digest_hex(policy__session_envelope(s), bh);
	for (size_t i = 0; i < json_array_size(nonces); i++)
		policy__ask_expired(s);
	x->in_quarantine = policy__session_quarantined(s);
	x->quarantined = !x->quarantined && x->in_quarantine;
	x->probes = policy__session_suspicion(s);
	digest_hex(policy__session_envelope(s), ah);
	r = policy__session_to_json(s, &state);
	x->state = state;
	x->body = r == 0 ? json_pack("{sO sI ss ss}", "nonces", nonces, "probes",
				     (json_int_t)x->probes, "envelope_before", bh, "envelope_after",
				     ah)
			 : NULL;
	r = x->body ? store__tx(x->nd->store, unanswered_tx, x) : -ENOMEM;
	if (r == 0) {
		x->nd->m.quarantines += x->quarantined;
		nd__session_keep(x->nd, &info, state, s);
		s = NULL;
	}
	json_decref(x->body);
	x->body = NULL;
	policy__session_free(s);
	free(state);
	return r;
}

int nd__expire_asks(struct nucleusd *nd, const struct sb_row *row, struct nd_err *e)
{
	struct unanswered_tx x = {.nd = nd,
				  .row = row,
				  .now_us = nd_clock__wall_us(),
				  .actor_uid = -1,
				  .kind = "approval.expired"};
	json_t *nonces = NULL;
	int r;

	r = expired_asks(nd->store, row->id, x.now_us, &nonces);
	if (r == 0 && json_array_size(nonces) > 0)
		r = unanswered(&x, nonces, e) ?: 1;
	if (r < 0 && !(e && e->code[0]))
		r = nd_err__set(e, r, "internal", "cannot record expired approval requests");
	json_decref(nonces);
	return r;
}

int nucleusd__approval_refuse(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			      const char *nonce, json_t **ret, struct nd_err *e)
{
	struct unanswered_tx x = {.nd = nd,
				  .now_us = nd_clock__wall_us(),
				  .actor_uid = who ? (int64_t)who->uid : -1,
				  .refused = nonce,
				  .kind = "approval.refused"};
	json_t *nonces = NULL;
	struct sb_row row;
	int r;

	r = sb_row__load(nd, who, ref, &row, e);
	if (r < 0)
		return r;
	x.row = &row;
	if (!row.session_id[0]) {
		r = nd_err__set(e, -EBUSY, "wrong_state", "sandbox %s is %s: nothing to refuse",
				row.id, row.state);
		goto out;
	}
	nonces = json_pack("[s]", nonce);
	r = nonces ? unanswered(&x, nonces, e) : -ENOMEM;
	if (r < 0 && !(e && e->code[0]))
		r = nd__approval_err(r, nonce, row.id, e);
	if (r == 0) {
		*ret = json_pack("{ss ss ss sI sb}", "sandbox", row.id, "nonce", nonce, "state",
				 "denied", "probes", (json_int_t)x.probes, "quarantined",
				 x.in_quarantine);
		r = *ret ? 0 : nd_err__set(e, -ENOMEM, "internal", "out of memory");
	}
out:
	json_decref(nonces);
	sb_row__clear(&row);
	return r;
}

/* ---- metrics ---- */

int nd__policy_metrics(struct nucleusd *nd, FILE *f)
{
	static const char sql[] = "SELECT count(*) FROM sessions WHERE closed_us IS NULL AND "
				  "json_extract(state, '$.quarantined') = 1";
	sqlite3_stmt *st = NULL;
	long long n = 0;
	int r = store__stmt(nd->store, sql, &st);

	if (r < 0)
		return r;
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	r = store__errno(r);
	store__stmt_done(st);
	if (r < 0)
		return r;
	fprintf(f,
		"# HELP nucleus_sandboxes_quarantined Live sandboxes whose policy session is "
		"quarantined.\n"
		"# TYPE nucleus_sandboxes_quarantined gauge\n"
		"nucleus_sandboxes_quarantined %lld\n"
		"# HELP nucleus_quarantines_total Policy sessions quarantined since the start.\n"
		"# TYPE nucleus_quarantines_total counter\n"
		"nucleus_quarantines_total %llu\n",
		n, (unsigned long long)nd->m.quarantines);
	return 0;
}
