// SPDX-License-Identifier: Apache-2.0
/*
 * Sessions: the envelope (only ever met, never raised), the exposure legs exercised so far,
 * the suspicion counter that leads to quarantine, budget counters and used approval nonces.
 * policy__decide() judges one call and records its effect in one step; the decision path
 * does not allocate.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "policy/internal.h"

void session__set_envelope(struct policy_session *s, struct policy *p)
{
	policy__free(s->env);
	s->env = p;
	policy__digest(p, s->env_digest);
	free(s->env_text);
	s->env_text = NULL; /* made by the next policy__session_to_json */
}

/* A fresh session of @cfg with @env (taken, freed on failure) as its envelope. */
static int session_create(struct policy *env, const struct policy_session_config *cfg,
			  struct policy_session **ret)
{
	struct policy_session *s = NULL;
	int rc;

	rc = -EINVAL;
	if (!cfg || (cfg->n_approver_keys && !cfg->approver_keys))
		goto fail;
	rc = -EIO;
	if (sodium_init() < 0)
		goto fail;
	rc = -ENOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto fail;
	memcpy(s->id, cfg->id, sizeof(s->id));
	if (cfg->n_approver_keys) {
		s->keys = calloc(cfg->n_approver_keys, sizeof(*s->keys));
		if (!s->keys)
			goto fail;
		memcpy(s->keys, cfg->approver_keys, cfg->n_approver_keys * sizeof(*s->keys));
		s->nkeys = cfg->n_approver_keys;
	}
	session__set_envelope(s, env);
	*ret = s;
	return 0;
fail:
	policy__free(env);
	policy__session_free(s);
	return rc;
}

int policy__session_new(const struct policy *profile, const struct policy_session_config *cfg,
			struct policy_session **ret)
{
	struct policy *env = NULL;
	int rc;

	if (!profile)
		return -EINVAL;
	rc = policy__dup(profile, &env);
	if (rc < 0)
		return rc;
	return session_create(env, cfg, ret);
}

void policy__session_free(struct policy_session *s)
{
	if (!s)
		return;
	policy__free(s->env);
	free(s->env_text);
	free(s->keys);
	free(s->nonces);
	free(s);
}

const struct policy *policy__session_envelope(const struct policy_session *s)
{
	return s->env;
}

unsigned policy__session_legs(const struct policy_session *s)
{
	return s->legs;
}

bool policy__session_quarantined(const struct policy_session *s)
{
	return s->quarantined;
}

uint64_t policy__session_seq(const struct policy_session *s)
{
	return s->seq;
}

uint32_t policy__session_suspicion(const struct policy_session *s)
{
	return s->suspicion;
}

const uint8_t *policy__session_id(const struct policy_session *s)
{
	return s->id;
}

/* ---- evaluation ---- */

struct eval {
	enum policy_level verdict;
	enum policy_reason reason;
	unsigned legs;
	bool outside; /* refused by the envelope itself (counts as probing) */
	bool net;     /* counts against max_net */
	char *detail;
};

static void set_detail(char *d, const char *s, size_t len)
{
	if (len >= POLICY_DETAIL_LEN)
		len = POLICY_DETAIL_LEN - 1;
	memcpy(d, s, len);
	d[len] = '\0';
}

static int refuse(struct eval *e, enum policy_reason r, const char *detail)
{
	e->verdict = POLICY_DENY;
	e->reason = r;
	e->outside = true;
	if (detail)
		set_detail(e->detail, detail, strlen(detail));
	return 1;
}

static int check_path(const struct policy *p, const struct policy_call *c, struct eval *e)
{
	struct span seg[POLICY_MAX_SEGS];
	const struct pset *allow = c->op == POLICY_OP_WRITE_FILE ? &p->write : &p->read;
	const struct glob *g;
	int n = path__split(c->path, seg, POLICY_MAX_SEGS);

	if (!c->path)
		return refuse(e, POLICY_R_BAD_ARGS, "path");
	if (n < 0)
		return refuse(e, POLICY_R_PATH_NOT_CANONICAL, c->path);
	g = glob__set_match(&p->path_deny, seg, (uint32_t)n);
	if (g)
		return refuse(e, POLICY_R_PATH_DENIED, g->text);
	if (!allow->all && !glob__set_match(allow, seg, (uint32_t)n))
		return refuse(e, POLICY_R_PATH_NOT_ALLOWED, c->path);
	if (classify__secret_path(seg, (uint32_t)n))
		set_detail(e->detail, "secret-like path", 16);
	return 0;
}

static int check_command(const struct policy *p, const struct cmd_info *ci, struct eval *e)
{
	const struct pset *allow = ci->cls == CMD_INTERP ? &p->interp : &p->cmd;
	const struct glob *g = glob__set_match(&p->cmd_deny, ci->tok, ci->ntok);

	if (g)
		return refuse(e, POLICY_R_CMD_DENIED, g->text);
	g = allow->all ? NULL : glob__set_match(allow, ci->tok, ci->ntok);
	if (!allow->all && !g)
		return refuse(e,
			      ci->cls == CMD_INTERP ? POLICY_R_INTERP_NOT_ALLOWED
						    : POLICY_R_CMD_NOT_ALLOWED,
			      ci->tok[0].s);
	set_detail(e->detail, g ? g->text : ci->tok[0].s, g ? strlen(g->text) : ci->tok[0].len);
	e->net = ci->cls == CMD_NET;
	return 0;
}

static int check_egress(const struct policy *p, const struct egress_subject *subj, struct eval *e)
{
	const struct erule *r;

	if (p->egress.all)
		return 0;
	r = egress__match(&p->egress, subj);
	if (!r)
		return refuse(e, POLICY_R_EGRESS_NOT_ALLOWED, subj->host ? subj->host : "address");
	set_detail(e->detail, r->text, strlen(r->text));
	return 0;
}

static int check_ref(const struct policy *p, const char *ref, struct eval *e)
{
	struct span seg[POLICY_MAX_SEGS];
	char full[256];
	size_t len;
	int n;

	if (!ref)
		return p->refs.all ? 0 : refuse(e, POLICY_R_BAD_ARGS, "ref");
	len = strlen(ref);
	if (len + 12 > sizeof(full))
		return refuse(e, POLICY_R_BAD_ARGS, "ref");
	if (strncmp(ref, "refs/", 5) == 0) {
		memcpy(full, ref, len + 1);
	} else {
		memcpy(full, "refs/heads/", 11);
		memcpy(full + 11, ref, len + 1);
	}
	n = ref__split(full, seg, POLICY_MAX_SEGS);
	if (n < 0)
		return refuse(e, POLICY_R_BAD_ARGS, ref);
	if (!p->refs.all && !glob__set_match(&p->refs, seg, (uint32_t)n))
		return refuse(e, POLICY_R_REF_NOT_ALLOWED, full);
	return 0;
}

/* Destination checks of the network operations. */
static int check_dest(const struct policy *p, const struct policy_call *c, bool *has_query,
		      struct eval *e)
{
	struct egress_subject subj;
	char buf[256];
	int rc;

	switch (c->op) {
	case POLICY_OP_WEB_FETCH:
		if (url__parse(c->url, &subj, buf, sizeof(buf), has_query) < 0)
			return refuse(e, POLICY_R_BAD_URL, c->url ? c->url : "url");
		e->net = true;
		return check_egress(p, &subj, e);
	case POLICY_OP_WEB_SEARCH:
		e->net = true;
		return 0;
	case POLICY_OP_NET_CONNECT:
		if (!c->host || c->port == 0 ||
		    egress__subject(c->host, strlen(c->host), c->port, &subj, buf, sizeof(buf)) < 0)
			return refuse(e, POLICY_R_BAD_URL, c->host ? c->host : "host");
		e->net = true;
		return check_egress(p, &subj, e);
	case POLICY_OP_GIT_PUSH:
	case POLICY_OP_CREATE_PR:
		if (remote__parse(c->remote, &subj, buf, sizeof(buf)) < 0)
			return refuse(e, POLICY_R_BAD_URL, c->remote ? c->remote : "remote");
		rc = check_egress(p, &subj, e);
		if (rc)
			return rc;
		if (c->op == POLICY_OP_CREATE_PR && !c->ref)
			return 0;
		return check_ref(p, c->ref, e);
	default:
		return 0;
	}
}

static int check_args(const struct policy *p, const struct policy_call *c, struct cmd_info *ci,
		      bool *has_query, struct eval *e)
{
	switch (c->op) {
	case POLICY_OP_READ_FILE:
	case POLICY_OP_WRITE_FILE:
	case POLICY_OP_LIST:
	case POLICY_OP_SEARCH:
		return check_path(p, c, e);
	case POLICY_OP_RUN:
		if (classify__command(c->argv, c->argc, ci) < 0)
			return refuse(e, POLICY_R_BAD_ARGS, "argv");
		return check_command(p, ci, e);
	default:
		return check_dest(p, c, has_query, e);
	}
}

static int check_budget(const struct policy_session *s, const struct policy_call *c, struct eval *e)
{
	if (s->n_calls >= s->env->max_calls)
		return refuse(e, POLICY_R_BUDGET_EXHAUSTED, "max_calls");
	if (e->net && s->n_net >= s->env->max_net)
		return refuse(e, POLICY_R_BUDGET_EXHAUSTED, "max_net");
	if (c->op == POLICY_OP_SPAWN_AGENT && s->n_spawn >= s->env->max_spawn)
		return refuse(e, POLICY_R_BUDGET_EXHAUSTED, "max_spawn");
	return 0;
}

static bool quarantine_blocks(enum policy_op op)
{
	return op != POLICY_OP_READ_FILE && op != POLICY_OP_LIST && op != POLICY_OP_SEARCH;
}

static void evaluate(const struct policy_session *s, const struct policy_call *c, int64_t now,
		     struct eval *e)
{
	const struct policy *p = s->env;
	struct cmd_info ci;
	bool has_query = false;
	enum policy_level lv = p->level[c->op];

	ci.legs = POLICY_LEGS_ALL;
	if (now < p->not_before && refuse(e, POLICY_R_NOT_YET_VALID, NULL))
		return;
	if (now >= p->not_after && refuse(e, POLICY_R_EXPIRED, NULL))
		return;
	if (s->quarantined && quarantine_blocks(c->op) &&
	    refuse(e, POLICY_R_QUARANTINED, policy__op_name(c->op)))
		return;
	if (lv == POLICY_DENY && refuse(e, POLICY_R_OP_DENIED, policy__op_name(c->op)))
		return;
	if (check_args(p, c, &ci, &has_query, e) || check_budget(s, c, e))
		goto legs;
	e->legs = classify__legs(c, c->op == POLICY_OP_RUN ? &ci : NULL, has_query);
	if ((s->legs | e->legs) == POLICY_LEGS_ALL && e->legs) {
		e->verdict = p->uninhabitable;
		e->reason = p->uninhabitable == POLICY_ASK ? POLICY_R_UNINHABITABLE_ASK
							   : POLICY_R_UNINHABITABLE;
		return;
	}
	e->verdict = lv;
	e->reason = lv == POLICY_ASK ? POLICY_R_OP_ASK : POLICY_R_ALLOWED;
	return;
legs:
	/* refused by a rule: still report what the call would have exposed */
	if (c->op != POLICY_OP_RUN || e->reason != POLICY_R_BAD_ARGS)
		e->legs = classify__legs(c, c->op == POLICY_OP_RUN ? &ci : NULL, has_query);
}

/* ---- recording ---- */

int session__quarantine(struct policy_session *s)
{
	struct policy *ro = NULL, *m = NULL;
	int rc;

	s->quarantined = true; /* enforced by the flag even if the meet below fails */
	rc = policy__read_only(&ro);
	if (rc == 0)
		rc = policy__meet(s->env, ro, &m);
	policy__free(ro);
	if (rc == 0)
		session__set_envelope(s, m);
	return rc;
}

static void suspect(struct policy_session *s)
{
	if (!(s->legs & POLICY_LEG_UNTRUSTED))
		return;
	if (s->suspicion < UINT32_MAX)
		s->suspicion++;
	if (!s->quarantined && s->suspicion >= s->env->quarantine_after)
		session__quarantine(s);
}

void policy__ask_expired(struct policy_session *s)
{
	if (s)
		suspect(s);
}

static void trace_begin(struct policy_session *s, struct policy_trace *t, int64_t now,
			enum policy_event ev)
{
	memset(t, 0, sizeof(*t));
	t->seq = ++s->seq;
	t->time = now;
	t->event = (uint8_t)ev;
	t->legs_before = (uint8_t)s->legs;
	memcpy(t->envelope_before, s->env_digest, POLICY_DIGEST_LEN);
}

static void trace_end(const struct policy_session *s, struct policy_decision *d)
{
	d->trace.verdict = (uint8_t)d->verdict;
	d->trace.reason = (uint8_t)d->reason;
	d->trace.call_legs = d->call_legs;
	d->trace.legs_after = (uint8_t)s->legs;
	d->trace.quarantined = s->quarantined;
	memcpy(d->trace.envelope_after, s->env_digest, POLICY_DIGEST_LEN);
}

static void record_allowed(struct policy_session *s, const struct policy_call *c, bool net)
{
	s->n_calls++;
	s->n_net += net;
	s->n_spawn += c->op == POLICY_OP_SPAWN_AGENT;
}

int policy__decide(struct policy_session *s, const struct policy_call *call, int64_t now,
		   struct policy_decision *ret)
{
	struct policy_decision d;
	struct eval e = {.verdict = POLICY_DENY, .reason = POLICY_R_OP_DENIED};

	if (!s || !call || !ret || (unsigned)call->op >= POLICY_OP_COUNT)
		return -EINVAL;
	d.detail[0] = '\0';
	e.detail = d.detail;
	trace_begin(s, &d.trace, now, POLICY_EV_CALL);
	d.trace.op = (uint8_t)call->op;
	policy__call_digest(call, d.trace.args_digest);
	evaluate(s, call, now, &e);
	if (e.verdict == POLICY_ASK && call->approval) {
		e.reason = approval__check(s, call, d.trace.args_digest, now);
		e.verdict = e.reason == POLICY_R_APPROVED ? POLICY_ALLOW : POLICY_DENY;
	}
	d.verdict = e.verdict;
	d.reason = e.reason;
	d.call_legs = (uint8_t)e.legs;
	if (d.verdict == POLICY_ALLOW) {
		s->legs |= e.legs;
		record_allowed(s, call, e.net);
	} else if (d.verdict == POLICY_DENY && (e.outside || (e.legs & POLICY_LEG_EXFIL))) {
		/* a probe: refused. An ask is not (yet): a person may approve it. */
		suspect(s);
	}
	trace_end(s, &d);
	*ret = d;
	return 0;
}

/* What narrowing @env by @p gives: the meet, with the operations it left unusable denied. */
static int narrowed(const struct policy *env, const struct policy *p, struct policy **ret)
{
	int rc = policy__meet(env, p, ret);

	if (rc == 0)
		policy__deny_empty(*ret);
	return rc;
}

/* @widen 0: narrow, 1: a widening request, 2: a widening that only @a can allow. */
static int envelope_step(struct policy_session *s, const struct policy *p,
			 const struct policy_approval *a, int64_t now, int widen,
			 struct policy_decision *ret)
{
	struct policy_decision d;
	struct policy *m = NULL;
	int rc;

	if (!s || !p || !ret)
		return -EINVAL;
	memset(&d, 0, sizeof(d));
	trace_begin(s, &d.trace, now, widen ? POLICY_EV_WIDEN : POLICY_EV_NARROW);
	policy__digest(p, d.trace.args_digest);
	d.reason = POLICY_R_NARROWED;
	if (a)
		d.reason = approval__check_widen(s, a, d.trace.args_digest, now);
	else if (widen == 2 || (widen && !policy__leq(p, s->env)))
		d.reason = POLICY_R_WIDEN_REFUSED;
	if (d.reason != POLICY_R_NARROWED && d.reason != POLICY_R_APPROVED) {
		d.verdict = POLICY_DENY;
		suspect(s);
	} else {
		/* approved: @p as it is; else the meet, with unusable operations denied */
		rc = a ? policy__dup(p, &m) : narrowed(s->env, p, &m);
		if (rc < 0) {
			s->seq--;
			return rc;
		}
		session__set_envelope(s, m);
		if (a && s->quarantined && session__quarantine(s) < 0) {
			s->seq--; /* still quarantined by the flag; the caller does not commit */
			return -ENOMEM;
		}
		d.verdict = POLICY_ALLOW;
		d.reason = a ? POLICY_R_WIDENED : POLICY_R_NARROWED;
	}
	set_detail(d.detail, policy__name(p), strlen(policy__name(p)));
	trace_end(s, &d);
	*ret = d;
	return 0;
}

int policy__narrow(struct policy_session *s, const struct policy *p, int64_t now,
		   struct policy_decision *ret)
{
	return envelope_step(s, p, NULL, now, 0, ret);
}

int policy__request_widen(struct policy_session *s, const struct policy *p, int64_t now,
			  struct policy_decision *ret)
{
	return envelope_step(s, p, NULL, now, 1, ret);
}

int policy__widen(struct policy_session *s, const struct policy *p, const struct policy_approval *a,
		  int64_t now, struct policy_decision *ret)
{
	return envelope_step(s, p, a, now, 2, ret);
}

int policy__session_delegate(const struct policy_session *parent, const struct policy *requested,
			     const struct policy_session_config *cfg, struct policy_session **ret)
{
	struct policy_session *s = NULL;
	struct policy *env = NULL;
	int rc;

	if (!parent || !ret)
		return -EINVAL;
	rc = requested ? narrowed(parent->env, requested, &env) : policy__dup(parent->env, &env);
	if (rc < 0)
		return rc;
	rc = session_create(env, cfg, &s);
	if (rc < 0)
		return rc;
	/*
	 * What the sub-agent inherits. A quarantined parent's envelope is within read-only
	 * already (session__quarantine), so the child's meet is too: the flag is what is left
	 * to carry. Like a narrowing, a lower quarantine_after in @requested quarantines at
	 * the next probe, not here.
	 */
	s->legs = parent->legs;
	s->suspicion = parent->suspicion;
	s->quarantined = parent->quarantined;
	*ret = s;
	return 0;
}
