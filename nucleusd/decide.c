// SPDX-License-Identifier: Apache-2.0
/*
 * The daemon's per-call decision path with the policy engine, whatever the backend:
 * the core decides every tool call here (calls.c), with the one session cache and the
 * approver keys of struct nucleusd; backends only run what was allowed.
 *
 * Every decision parses the call, takes the session at its last committed state (or
 * opens one from the policy), decides, and hands back the reason, the explanation, the
 * trace record and the new session state. The committed state (sessions.state) is the
 * truth; a cache keeps the parsed session that a state text was serialized from, keyed
 * by that exact text, so the next call skips the parse (a fifth of the gate's time) when
 * the state in the database is the one the last decision produced. A decision that was
 * not committed leaves another text in the database: a miss, never a stale session.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>
#include <sqlite3.h>

#include "nucleusd/clock.h"
#include "nucleusd/lru.h"
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

/* ---- session cache (one nd_lru, nucleusd/lru.h) ---- */

#define SESSION_CACHE 64

struct nd_session_cache {
	struct nd_lru *lru; /* session id (hex) -> struct cached_session */
};

struct cached_session {
	char *state; /* the state text @s was serialized to */
	struct policy_session *s;
};

static void cached_free(void *p)
{
	struct cached_session *cs = p;

	if (!cs)
		return;
	free(cs->state);
	policy__session_free(cs->s);
	free(cs);
}

int nd_session_cache__new(struct nd_session_cache **ret)
{
	struct nd_session_cache *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	r = nd_lru__new(SESSION_CACHE, cached_free, &c->lru);
	if (r < 0) {
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void nd_session_cache__free(struct nd_session_cache *c)
{
	if (!c)
		return;
	nd_lru__free(c->lru);
	free(c);
}

/* The parsed session for (@id, @state), taken out of the cache; NULL: a miss. */
static struct policy_session *cache_take(struct nd_session_cache *c, const char *id,
					 const char *state)
{
	struct cached_session *cs = c && state ? nd_lru__take(c->lru, id) : NULL;
	struct policy_session *s = NULL;

	if (!cs)
		return NULL;
	/* Another text: that state was never committed, or is superseded. */
	if (strcmp(cs->state, state) == 0) {
		s = cs->s;
		cs->s = NULL;
	}
	cached_free(cs);
	return s;
}

/* Keeps @s, serialized to @state, for the next decision; takes @s either way. */
static void cache_put(struct nd_session_cache *c, const char *id, const char *state,
		      struct policy_session *s)
{
	struct cached_session *cs = c && state ? calloc(1, sizeof(*cs)) : NULL;

	if (!cs || !(cs->state = strdup(state))) {
		free(cs);
		policy__session_free(s);
		return;
	}
	cs->s = s;
	nd_lru__put(c->lru, id, cs); /* frees it when the id does not fit */
}

void nd_session_cache__drop(struct nd_session_cache *c, const char *session_id)
{
	if (c && session_id)
		cached_free(nd_lru__take(c->lru, session_id));
}

/* ---- the session's row ---- */

int nd__session_save(struct store *s, const char *session_id, const char *state)
{
	static const char sql[] = "UPDATE sessions SET state = ?1, updated_us = ?2 WHERE id = ?3 "
				  "AND closed_us IS NULL";
	sqlite3_stmt *st = NULL;
	int r, rc;

	if (!session_id || !session_id[0])
		return -ENOENT;
	r = store__stmt(s, sql, &st); /* every decision: prepared once */
	if (r < 0)
		return r;
	rc = sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	rc = rc ?: sqlite3_bind_int64(st, 2, nd_clock__wall_us());
	rc = rc ?: sqlite3_bind_text(st, 3, session_id, -1, SQLITE_STATIC);
	r = store__errno(rc ?: sqlite3_step(st));
	if (r == 0 && sqlite3_changes(store__db(s)) != 1)
		r = -ENOENT;
	store__stmt_done(st);
	return r;
}

/* ---- quarantine ---- */

json_t *nd_session__quarantine_json(const char *state)
{
	json_t *st, *o = NULL;

	/* canonical compact JSON: the flag is only ever spelled this way */
	if (!state || !strstr(state, "\"quarantined\":true"))
		return NULL;
	st = json_loads(state, 0, NULL);
	if (json_is_true(json_object_get(st, "quarantined")))
		o = json_pack("{ss ss sO}", "rule", "quarantine_after", "reason",
			      ND_QUARANTINE_REASON, "probes", json_object_get(st, "suspicion"));
	json_decref(st);
	return o;
}

/* ---- decisions ---- */

static int parse_policy(json_t *policy, struct policy **ret, struct policy_error *pe)
{
	char *text = json_dumps(policy, JSON_COMPACT);
	int r;

	if (!text) {
		snprintf(pe->msg, sizeof(pe->msg), "out of memory");
		return -ENOMEM;
	}
	r = policy__profile_parse(text, ret, pe);
	free(text);
	return r;
}

int nd_policy__parse(json_t *policy, struct policy **ret, struct nd_err *e)
{
	struct policy_error pe = {{0}};
	int r = parse_policy(policy, ret, &pe);

	if (r < 0)
		return nd_err__set(e, r, r == -ENOMEM ? "internal" : "invalid_policy", "%s",
				   pe.msg);
	return 0;
}

json_t *nd_policy__json(const struct policy *p)
{
	char *text = NULL;
	json_t *o;

	if (policy__to_json(p, &text) < 0)
		return NULL;
	o = json_loads(text, 0, NULL);
	free(text);
	return o;
}

static int load_session(const uint8_t (*approver_keys)[32], size_t n_keys,
			const struct nd_sandbox_info *sb, struct policy_session **ret,
			struct nd_err *e)
{
	struct policy_session_config cfg = {.approver_keys = approver_keys,
					    .n_approver_keys = n_keys};
	struct policy_error pe = {{0}};
	struct policy *p = NULL;
	int r;

	if (sb->session_state) {
		r = policy__session_from_json(sb->session_state, ret, &pe);
		if (r < 0)
			return nd_err__set(e, r, "policy_error", "session state: %s", pe.msg);
		return 0;
	}
	if (hex16(sb->session_id, cfg.id) < 0)
		return nd_err__set(e, -EINVAL, "policy_error", "bad session id");
	r = parse_policy(sb->policy, &p, &pe);
	if (r < 0)
		return nd_err__set(e, r, "policy_error", "policy: %s", pe.msg);
	r = policy__session_new(p, &cfg, ret);
	policy__free(p);
	if (r < 0)
		return nd_err__set(e, r, "policy_error", "cannot open the policy session");
	return 0;
}

/* @sb's session at its last committed state: the cached one, or parsed/opened. */
static int session_get(struct nd_session_cache *cache, const uint8_t (*approver_keys)[32],
		       size_t n_keys, const struct nd_sandbox_info *sb, struct policy_session **ret,
		       struct nd_err *e)
{
	*ret = cache_take(cache, sb->session_id, sb->session_state);
	return *ret ? 0 : load_session(approver_keys, n_keys, sb, ret, e);
}

int nd__session_take(struct nucleusd *nd, const struct nd_sandbox_info *sb,
		     struct policy_session **ret, struct nd_err *e)
{
	if (!sb->session_id)
		return nd_err__set(e, -EBUSY, "wrong_state",
				   "sandbox %s has no open policy session", sb->id);
	return session_get(nd->sessions, (const uint8_t(*)[32])nd->approver_keys,
			   nd->n_approver_keys, sb, ret, e);
}

void nd__session_keep(struct nucleusd *nd, const struct nd_sandbox_info *sb, const char *state,
		      struct policy_session *s)
{
	cache_put(nd->sessions, sb->session_id, state, s);
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

int nd_policy__decide(struct nd_session_cache *cache, const uint8_t (*approver_keys)[32],
		      size_t n_keys, const struct nd_sandbox_info *sb, const char *tool,
		      json_t *args, struct nd_decision *ret, struct nd_err *e)
{
	struct nd_decision d = {0};
	struct policy_session *s = NULL;
	struct policy_call_owned *call = NULL;
	struct policy_decision pd;
	struct policy_error pe = {{0}};
	struct policy_approval appr;
	struct policy_call pc;
	char *text = NULL;
	json_t *cj, *aj = json_object_get(args, "approval");
	bool was;
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
	r = session_get(cache, approver_keys, n_keys, sb, &s, e);
	if (r < 0)
		goto out;
	was = policy__session_quarantined(s);
	r = policy__decide(s, &pc, nd_clock__wall_us() / 1000000, &pd);
	if (r < 0) {
		r = nd_err__set(e, r, "policy_error", "the policy engine failed: %s", strerror(-r));
		goto out;
	}
	d.quarantined = !was && policy__session_quarantined(s);
	d.probes = policy__session_suspicion(s);
	d.verdict = pd.verdict == POLICY_ALLOW ? ND_ALLOW
		    : pd.verdict == POLICY_ASK ? ND_ASK
					       : ND_DENY;
	snprintf(d.reason, sizeof(d.reason), "%s", policy__reason_name(pd.reason));
	if (policy__explain(&pd, d.message, sizeof(d.message)) < 0)
		snprintf(d.message, sizeof(d.message), "%s", policy__reason_message(pd.reason));
	d.trace = policy__trace_json(&pd.trace);
	r = policy__session_to_json(s, &d.session_state);
	if (r < 0) {
		json_decref(d.trace);
		r = nd_err__set(e, r, "policy_error", "cannot save the policy session");
		goto out;
	}
	cache_put(cache, sb->session_id, d.session_state, s);
	s = NULL;
	*ret = d;
out:
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

static bool own_tool(const struct nd_backend *be, const char *tool)
{
	for (const char *const *t = be->own_tools; t && *t; t++)
		if (strcmp(*t, tool) == 0)
			return true;
	return false;
}

int nd__decide(struct nucleusd *nd, const struct nd_sandbox_info *sb, const char *tool,
	       json_t *args, struct nd_decision *ret, struct nd_err *e)
{
	const uint8_t(*keys)[32] = (const uint8_t(*)[32])nd->approver_keys;
	json_t *as_run, *approval;
	int r;

	if (policy__op_from_name(tool) >= 0 || !own_tool(nd->be, tool))
		return nd_policy__decide(nd->sessions, keys, nd->n_approver_keys, sb, tool, args,
					 ret, e);
	/* The backend's own tool: `run` of a command named after it (argv [tool]). */
	as_run = json_pack("{s[s]}", "argv", tool);
	approval = json_object_get(args, "approval");
	if (as_run && approval && json_object_set(as_run, "approval", approval) < 0) {
		json_decref(as_run);
		as_run = NULL;
	}
	if (!as_run)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	r = nd_policy__decide(nd->sessions, keys, nd->n_approver_keys, sb, "run", as_run, ret, e);
	json_decref(as_run);
	return r;
}

void nd__decision_abort(struct nucleusd *nd, const struct nd_sandbox_info *sb)
{
	nd_session_cache__drop(nd->sessions, sb->session_id);
}

const char *nd_verdict__name(enum nd_verdict v)
{
	switch (v) {
	case ND_ALLOW:
		return "allow";
	case ND_DENY:
		return "deny";
	case ND_ASK:
		return "ask";
	}
	return "?";
}
