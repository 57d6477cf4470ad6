// SPDX-License-Identifier: Apache-2.0
/*
 * The asynchronous requests: creating a sandbox (boot) and tool calls (decision,
 * then execution). Each keeps an nd_op until the backend completes it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sqlite3.h>

#include "nucleusd/nucleusd-internal.h"

const unsigned nd_boot_buckets_ms[ND_BOOT_BUCKETS] = {50,   100,  250,	 500,	1000,
						      2500, 5000, 10000, 30000, 60000};

struct nd_op *nd_op__new(struct nucleusd *nd, const char *id, nd_reply_fn reply, void *arg)
{
	struct nd_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->nd = nd;
	snprintf(op->id, sizeof(op->id), "%s", id);
	op->reply = reply;
	op->arg = arg;
	op->next = nd->ops;
	if (nd->ops)
		nd->ops->pprev = &op->next;
	op->pprev = &nd->ops;
	nd->ops = op;
	return op;
}

void nd_op__free(struct nd_op *op)
{
	if (!op)
		return;
	json_decref(op->args);
	*op->pprev = op->next;
	if (op->next)
		op->next->pprev = op->pprev;
	free(op);
}

/* ---- create ---- */

struct create_tx {
	struct nucleusd *nd;
	const struct nd_caller *who;
	char id[20];
	const char *name, *profile;
	json_t *policy, *req;
	unsigned vcpus, memory_mib;
	struct budget_limits limits;
	struct nd_delegation *parent; /* a child's: what it takes from its parent; NULL: none */
	json_t *own_req;	      /* a child's request as stored (the parent by id) */
	/* spawn_agent: the parent's session state before the spawn call (NULL: before any
	 * decision), whose own legs (untrusted, exfil: the parent's channel to the child)
	 * are not the child's */
	bool spawn;
	const char *parent_state;
	int short_kind;		      /* out: the budget kind the parent has too little of */
};

static int insert_sandbox(struct store *s, struct create_tx *c)
{
	static const char sql[] = "INSERT INTO sandboxes(id, name, state, profile, policy, spec, "
				  "vcpus, memory_mib, owner_uid, created_us, updated_us, parent_id) "
				  "VALUES (?1, ?2, 'creating', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)";
	char *policy = NULL, *spec = NULL;
	sqlite3_stmt *st = NULL;
	int r = -ENOMEM, rc;

	policy = json_dumps(c->policy, JSON_COMPACT | JSON_SORT_KEYS);
	spec = json_dumps(c->req, JSON_COMPACT | JSON_SORT_KEYS);
	if (!policy || !spec)
		goto out;
	r = store__stmt(s, sql, &st);
	if (r < 0)
		goto out;
	rc = sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
	if (c->name)
		rc = rc ?: sqlite3_bind_text(st, 2, c->name, -1, SQLITE_STATIC);
	if (c->profile)
		rc = rc ?: sqlite3_bind_text(st, 3, c->profile, -1, SQLITE_STATIC);
	rc = rc ?: sqlite3_bind_text(st, 4, policy, -1, SQLITE_STATIC);
	rc = rc ?: sqlite3_bind_text(st, 5, spec, -1, SQLITE_STATIC);
	rc = rc ?: sqlite3_bind_int(st, 6, (int)c->vcpus);
	rc = rc ?: sqlite3_bind_int(st, 7, (int)c->memory_mib);
	rc = rc ?: sqlite3_bind_int64(st, 8, c->who ? (int64_t)c->who->uid : -1);
	rc = rc ?: sqlite3_bind_int64(st, 9, nd_clock__wall_us());
	if (c->parent)
		rc = rc ?: sqlite3_bind_text(st, 10, c->parent->parent_id, -1, SQLITE_STATIC);
	r = store__errno(rc ?: sqlite3_step(st));
out:
	store__stmt_done(st);
	free(policy);
	free(spec);
	return r;
}

/*
 * The sandbox's policy session: its state arrives with the first decision, or, for a
 * child, is the delegated one from the start.
 */
static int insert_session(struct store *s, struct create_tx *c)
{
	static const char sql[] = "INSERT INTO sessions(id, sandbox_id, peer_uid, created_us, "
				  "updated_us, state) VALUES (?1, ?2, ?3, ?4, ?4, ?5)";
	unsigned char rnd[16];
	char id[33];
	sqlite3_stmt *st = NULL;
	int r, rc;

	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(id, sizeof(id), rnd, sizeof(rnd));
	r = store__stmt(s, sql, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_text(st, 1, c->parent ? c->parent->session_id : id, -1, SQLITE_STATIC);
	rc = rc ?: sqlite3_bind_text(st, 2, c->id, -1, SQLITE_STATIC);
	rc = rc ?: sqlite3_bind_int64(st, 3, c->who ? (int64_t)c->who->uid : -1);
	rc = rc ?: sqlite3_bind_int64(st, 4, nd_clock__wall_us());
	if (c->parent)
		rc = rc ?: sqlite3_bind_text(st, 5, c->parent->session_state, -1, SQLITE_STATIC);
	r = store__errno(rc ?: sqlite3_step(st));
	store__stmt_done(st);
	return r;
}

static int create_tx(struct store *s, void *arg)
{
	struct create_tx *c = arg;
	json_t *body;
	int r;

	r = insert_sandbox(s, c);
	if (r < 0)
		return r;
	r = insert_session(s, c);
	if (r < 0)
		return r;
	r = budget__limits_save(s, c->id, &c->limits);
	if (r == 0 && c->parent)
		r = nd__delegate_tx(s, c->nd, c->parent, c->id, c->who ? (int64_t)c->who->uid : -1,
				    &c->limits, &c->short_kind);
	if (r < 0)
		return r;
	/* the env values only as digests: the entry is kept forever */
	body = json_pack("{s:s? s:s? sI sI so}", "name", c->name, "profile", c->profile, "vcpus",
			 (json_int_t)c->vcpus, "memory_mib", (json_int_t)c->memory_mib, "spec",
			 nd_env__redact(c->req));
	if (body && c->parent)
		json_object_set_new(body, "policy", json_incref(c->policy));
	if (!body)
		return -ENOMEM;
	r = audit__append(s, c->nd->key, c->id, c->who ? (int64_t)c->who->uid : -1,
			  "sandbox.create", body, NULL);
	json_decref(body);
	return r;
}

/*
 * A child's create (@req has "parent"): the parent as @who sees it, the delegation of its
 * policy session with the requested policy (@requested; NULL: the parent's in force), the
 * limits checked against the parent's, and the stored request naming the parent by id.
 */
static int create_child(struct nucleusd *nd, json_t *req, json_t *requested, struct create_tx *c,
			struct nd_err *e)
{
	struct sb_row parent;
	int r;

	r = sb_row__load(nd, c->who, json_string_value(json_object_get(req, "parent")), &parent,
			 e);
	if (r < 0)
		return r;
	if (c->spawn) {
		free(parent.session_state);
		parent.session_state = c->parent_state ? strdup(c->parent_state) : NULL;
		if (c->parent_state && !parent.session_state) {
			sb_row__clear(&parent);
			return nd_err__set(e, -ENOMEM, "internal", "out of memory");
		}
	}
	c->parent = calloc(1, sizeof(*c->parent));
	r = c->parent ? nd__delegate(nd, &parent, requested, c->parent, e)
		      : nd_err__set(e, -ENOMEM, "internal", "out of memory");
	if (r == 0)
		r = nd__delegate_limits(c->parent, &c->limits, e);
	if (r == 0) {
		c->policy = json_incref(c->parent->policy);
		c->own_req = json_copy(req); /* the parent by its id, not a name */
		c->req = c->own_req ? c->own_req : req;
		if (!c->own_req ||
		    json_object_set_new(c->own_req, "parent", json_string(parent.id)) < 0)
			r = nd_err__set(e, -ENOMEM, "internal", "out of memory");
	}
	sb_row__clear(&parent);
	return r;
}

static int create_check(struct nucleusd *nd, json_t *req, struct create_tx *c, struct nd_err *e)
{
	json_t *profile = json_object_get(req, "profile");
	json_t *policy = json_object_get(req, "policy");
	json_t *budget = NULL, *requested = NULL;
	bool child = json_object_get(req, "parent") != NULL;
	int r;

	if (profile && policy)
		return nd_err__set(e, -EINVAL, "conflicting_fields",
				   "exactly one of 'profile' and 'policy' is required");
	if (!profile && !policy && !child)
		return nd_err__set(e, -EINVAL, "missing_field",
				   "exactly one of 'profile' and 'policy' is required (or a "
				   "'parent' whose policy the child takes)");
	if (!json_is_integer(json_object_get(req, "vcpus")) ||
	    !json_is_integer(json_object_get(req, "memory_mib")))
		return nd_err__set(e, -EINVAL, "missing_field",
				   "'vcpus' and 'memory_mib' are "
				   "required");
	if (nd->be->spec_check) {
		r = nd->be->spec_check(nd->be->ctx, req, e);
		if (r < 0)
			return r;
	}
	c->name = json_string_value(json_object_get(req, "name"));
	c->vcpus = (unsigned)json_integer_value(json_object_get(req, "vcpus"));
	c->memory_mib = (unsigned)json_integer_value(json_object_get(req, "memory_mib"));
	c->profile = json_string_value(profile);
	/* The profile's policy and default budget: one row of the profile registry. */
	r = profile ? nd__profile_load(nd, c->profile, &requested, &budget, e) : 0;
	if (r == 0)
		r = nd__limits_for_create(c->profile, budget, req, &c->limits, e);
	json_decref(budget);
	/* An inline policy is a policy of the engine, checked before anything is recorded. */
	if (r == 0 && policy) {
		r = nd_policy__check(policy, e);
		requested = json_incref(policy);
	}
	if (r == 0 && child)
		r = create_child(nd, req, requested, c, e);
	else if (r == 0)
		c->policy = json_incref(requested);
	json_decref(requested);
	return r;
}

static void new_id(char out[20])
{
	unsigned char rnd[8];

	randombytes_buf(rnd, sizeof(rnd));
	memcpy(out, "sb-", 3);
	sodium_bin2hex(out + 3, 17, rnd, sizeof(rnd));
}

static void reply_sandbox(struct nd_op *op, int rc, const struct nd_err *e)
{
	struct sb_row row;
	json_t *body = NULL;

	if (sb_row__load(op->nd, NULL, op->id, &row, NULL) == 0) {
		body = sb_row__json(&row);
		sb_row__clear(&row);
	}
	op->reply(op->arg, rc, e, body);
	json_decref(body);
}

static void count_boot(struct nd_metrics *m, uint32_t ms)
{
	unsigned i = 0;

	while (i < ND_BOOT_BUCKETS && ms > nd_boot_buckets_ms[i])
		i++;
	m->boot_bucket[i]++;
	m->boot_ms_sum += ms;
	m->boots_ok++;
}

static void boot_done(void *token, int err, const struct nd_boot_result *res, const char *reason)
{
	struct nd_op *op = token;
	struct nucleusd *nd = op->nd;
	struct transition t = {.nd = nd,
			       .id = op->id,
			       .from_mask = SB_CREATING,
			       .actor_uid = op->actor_uid,
			       .boot_ms = -1};
	struct nd_err e = {0};
	int r;

	if (err < 0 || !res) {
		t.to = "failed";
		t.kind = "sandbox.failed";
		t.reason = reason ? reason : "boot failed";
		nd->m.boots_failed++;
		r = nd__transition(&t, &e);
		nd_err__set(&e, err < 0 ? err : -EIO, "boot_failed",
			    "sandbox %s failed to boot: %s", op->id, t.reason);
		reply_sandbox(op, err < 0 ? err : -EIO, &e);
		goto out;
	}
	t.to = "running";
	t.kind = "sandbox.running";
	t.boot_ms = res->boot_ms;
	t.vmm_pid = res->vmm_pid;
	r = nd__transition(&t, &e);
	if (r == 0) {
		count_boot(&nd->m, res->boot_ms);
		nd__meter_attach(nd, op->id, res->vmm_pid);
	} else if (nd->be->stop) {
		/* Failed or stopped meanwhile: do not leave a VM behind. */
		struct sb_row row;
		struct nd_sandbox_info info;

		if (sb_row__load(nd, NULL, op->id, &row, NULL) == 0) {
			sb_row__info(&row, &info);
			nd->be->stop(nd->be->ctx, &info, NULL);
			sb_row__clear(&row);
		}
	}
	reply_sandbox(op, r, r < 0 ? &e : NULL);
out:
	nd_op__free(op);
}

static int start_boot(struct nucleusd *nd, struct create_tx *c, nd_reply_fn reply, void *arg,
		      struct nd_err *e)
{
	struct sb_row row;
	struct nd_sandbox_info info;
	struct nd_op *op;
	int r;

	r = sb_row__load(nd, NULL, c->id, &row, e);
	if (r < 0)
		return r;
	op = nd_op__new(nd, c->id, reply, arg);
	if (!op) {
		r = nd_err__set(e, -ENOMEM, "internal", "out of memory");
		goto out;
	}
	op->actor_uid = c->who ? (int64_t)c->who->uid : -1;
	sb_row__info(&row, &info);
	r = nd->be->boot(nd->be->ctx, &info, boot_done, op, e);
	if (r < 0) {
		struct transition t = {.nd = nd,
				       .id = c->id,
				       .from_mask = SB_CREATING,
				       .to = "failed",
				       .kind = "sandbox.failed",
				       .actor_uid = op->actor_uid,
				       .boot_ms = -1,
				       .reason = e && e->msg[0] ? e->msg : strerror(-r)};

		nd_op__free(op);
		nd->m.boots_failed++;
		nd__transition(&t, NULL);
		if (e && !e->code[0])
			nd_err__set(e, r, "boot_failed", "cannot boot: %s", strerror(-r));
	}
out:
	sb_row__clear(&row);
	return r;
}

/* POST /v1/sandboxes, and spawn_agent's child (@parent_state: see create_tx). */
static int sandbox_create(struct nucleusd *nd, const struct nd_caller *who, json_t *req,
			  bool spawn, const char *parent_state, nd_reply_fn reply, void *arg,
			  struct nd_err *e)
{
	struct create_tx c = {.nd = nd,
			      .who = who,
			      .req = req,
			      .short_kind = -1,
			      .spawn = spawn,
			      .parent_state = parent_state};
	int r;

	if (!json_is_object(req))
		return nd_err__set(e, -EINVAL, "malformed_json", "request must be an object");
	if (!nd->be->boot)
		return nd_err__set(e, -EAGAIN, "backend_unavailable",
				   "no sandbox backend is wired into this nucleusd (backend '%s')",
				   nd->be->name);
	r = create_check(nd, req, &c, e);
	if (r < 0)
		goto out;
	new_id(c.id);
	r = store__tx(nd->store, create_tx, &c);
	if (r == -EDQUOT && c.short_kind >= 0) {
		r = nd_err__set(e, r, "budget_insufficient",
				"budget.%s: the parent %s has less than that left",
				budget_kind__name((enum budget_kind)c.short_kind),
				c.parent->parent_id);
		goto out;
	}
	if (r == -EEXIST) {
		r = nd_err__set(e, r, "name_taken", "a live sandbox is already named '%s'",
				c.name ? c.name : "");
		goto out;
	}
	if (r < 0) {
		r = nd_err__set(e, r, "internal", "cannot record sandbox: %s", strerror(-r));
		goto out;
	}
	r = start_boot(nd, &c, reply, arg, e);
out:
	json_decref(c.policy);
	json_decref(c.own_req);
	if (c.parent) {
		nd_delegation__clear(c.parent);
		free(c.parent);
	}
	return r;
}

int nucleusd__sandbox_create(struct nucleusd *nd, const struct nd_caller *who, json_t *req,
			     nd_reply_fn reply, void *arg, struct nd_err *e)
{
	return sandbox_create(nd, who, req, false, NULL, reply, arg, e);
}

/* ---- tool calls ---- */

struct decision_tx {
	struct nucleusd *nd;
	const struct sb_row *row;
	const char *tool;
	json_t *args;
	int64_t actor_uid;
	const struct nd_decision *d;
	char nonce[33];
	int64_t expires_us;
	int refused;	 /* out: budget kind that refuses the call, or -1 */
	int64_t charged; /* out: the call's price, debited */
};

static void args_digest(json_t *args, char hex[65])
{
	unsigned char h[32];
	char *text = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);

	crypto_generichash(h, sizeof(h), (const unsigned char *)(text ? text : ""),
			   text ? strlen(text) : 0, NULL, 0);
	sodium_bin2hex(hex, 65, h, sizeof(h));
	free(text);
}

static int insert_approval(struct store *s, struct decision_tx *d)
{
	static const char sql[] = "INSERT INTO approvals(nonce, sandbox_id, tool, request, "
				  "created_us, expires_us) VALUES (?, ?, ?, ?, ?, ?)";
	unsigned char rnd[16];
	sqlite3_stmt *st = NULL;
	char *req;
	int r, rc;

	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(d->nonce, sizeof(d->nonce), rnd, sizeof(rnd));
	d->expires_us = nd_clock__wall_us() + 600LL * 1000000;
	req = json_dumps(d->args, JSON_COMPACT | JSON_SORT_KEYS);
	if (!req)
		return -ENOMEM;
	r = store__stmt(s, sql, &st);
	if (r == 0) {
		rc = sqlite3_bind_text(st, 1, d->nonce, -1, SQLITE_STATIC);
		rc = rc ?: sqlite3_bind_text(st, 2, d->row->id, -1, SQLITE_STATIC);
		rc = rc ?: sqlite3_bind_text(st, 3, d->tool, -1, SQLITE_STATIC);
		rc = rc ?: sqlite3_bind_text(st, 4, req, -1, SQLITE_STATIC);
		rc = rc ?: sqlite3_bind_int64(st, 5, nd_clock__wall_us());
		rc = rc ?: sqlite3_bind_int64(st, 6, d->expires_us);
		r = store__errno(rc ?: sqlite3_step(st));
	}
	store__stmt_done(st);
	free(req);
	return r;
}

static int save_session(struct store *s, struct decision_tx *d)
{
	if (!d->d->session_state)
		return 0;
	return nd__session_save(s, d->row->session_id, d->d->session_state);
}

static int decision_tx(struct store *s, void *arg)
{
	struct decision_tx *d = arg;
	char digest[65], reason[96];
	json_t *body;
	int r;

	/* Budgets first: an exhausted sandbox gets no decision (402), a price is debited. */
	r = nd__budget_tool_tx(s, d->nd, d->row->id, d->tool, d->actor_uid,
			       d->d->verdict == ND_ALLOW, &d->refused, &d->charged);
	if (r < 0 || d->refused >= 0)
		return r;
	if (d->d->verdict == ND_ASK) {
		r = insert_approval(s, d);
		if (r < 0)
			return r;
	}
	r = save_session(s, d);
	if (r < 0)
		return r;
	args_digest(d->args, digest);
	body = json_pack("{ss ss ss ss ss}", "tool", d->tool, "verdict",
			 nd_verdict__name(d->d->verdict), "reason", d->d->reason, "message",
			 d->d->message, "args_blake2b", digest);
	if (!body)
		return -ENOMEM;
	if (d->d->verdict == ND_ASK)
		json_object_set_new(body, "approval_nonce", json_string(d->nonce));
	if (d->d->trace)
		json_object_set(body, "trace", d->d->trace);
	r = audit__append(s, d->nd->key, d->row->id, d->actor_uid, "tool.decision", body, NULL);
	json_decref(body);
	if (r == 0 && d->d->quarantined)
		r = nd__policy_quarantined_tx(s, d->nd, d->row->id, d->actor_uid, d->tool,
					      d->d->probes, d->d->trace);
	if (r < 0 || d->charged <= 0)
		return r;
	snprintf(reason, sizeof(reason), "tool:%s", d->tool);
	return nd__budget_debit_audit(s, d->nd, d->row->id, d->actor_uid, reason, BUDGET_USD_MICRO,
				      d->charged);
}

struct result_tx {
	struct nucleusd *nd;
	const struct nd_op *op;
	int err;
	const char *reason;
};

static int result_tx(struct store *s, void *arg)
{
	struct result_tx *x = arg;
	json_t *body;
	int r;

	body = json_pack("{ss sb}", "tool", x->op->tool, "ok", x->err == 0);
	if (!body)
		return -ENOMEM;
	if (x->err < 0)
		json_object_set_new(body, "error", json_string(x->reason ? x->reason : "failed"));
	r = audit__append(s, x->nd->key, x->op->id, x->op->actor_uid, "tool.result", body, NULL);
	json_decref(body);
	return r;
}

static void tool_done(void *token, int err, json_t *result, const char *reason)
{
	struct nd_op *op = token;
	struct result_tx x = {op->nd, op, err, reason};
	struct nd_err e = {0};
	json_t *body = NULL;
	int r;

	r = store__tx(op->nd->store, result_tx, &x);
	if (err < 0) {
		op->nd->m.tool_failed++;
		nd_err__set(&e, err, "tool_failed", "%s: %s", op->tool, reason ? reason : "failed");
		op->reply(op->arg, err, &e, NULL);
	} else if (r < 0) {
		op->nd->m.tool_failed++;
		nd_err__set(&e, r, "internal", "cannot record tool result");
		op->reply(op->arg, r, &e, NULL);
	} else {
		op->nd->m.tool_ok++;
		body = json_pack("{ss sO}", "verdict", "allow", "result",
				 result ? result : json_null());
		op->reply(op->arg, body ? 0 : -ENOMEM, NULL, body);
		json_decref(body);
	}
	nd_op__free(op);
}

static int denial(struct decision_tx *d, json_t **ret, struct nd_err *e)
{
	json_t *o = json_pack("{ss ss ss}", "verdict", nd_verdict__name(d->d->verdict), "reason",
			      d->d->reason, "message", d->d->message);

	if (o && d->d->verdict == ND_ASK)
		json_object_set_new(o, "approval_request",
				    json_pack("{ss sI ss ss sO}", "nonce", d->nonce, "expires_us",
					      (json_int_t)d->expires_us, "tool", d->tool, "session",
					      d->row->session_id, "args", d->args));
	if (ret)
		*ret = o;
	else
		json_decref(o);
	return nd_err__set(e, -EACCES, d->d->verdict == ND_ASK ? "approval_required" : "denied",
			   "%s", d->d->message);
}

static int op_chunk(void *token, int fd, const void *data, size_t len)
{
	struct nd_op *op = token;

	return op->chunk(op->arg, fd, data, len);
}

/* What the caller asked for: the reply, and for a streamed call the chunk consumer. */
struct tool_sink {
	nd_reply_fn reply;
	nd_chunk_fn chunk; /* NULL: whole result */
	void *arg;
	struct nd_op *op; /* out */
};

static int start_tool(struct nucleusd *nd, const struct nd_sandbox_info *info, const char *tool,
		      json_t *args, struct nd_op *op, struct nd_err *e)
{
	if (op->chunk)
		return nd->be->tool_stream(nd->be->ctx, info, tool, args, op_chunk, tool_done, op,
					   e);
	return nd->be->tool(nd->be->ctx, info, tool, args, tool_done, op, e);
}

static int run_tool(struct nucleusd *nd, const struct sb_row *row, const char *tool, json_t *args,
		    int64_t uid, struct tool_sink *sink, struct nd_err *e)
{
	struct nd_sandbox_info info;
	struct nd_op *op;
	struct result_tx x;
	int r;

	op = nd_op__new(nd, row->id, sink->reply, sink->arg);
	if (!op)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	snprintf(op->tool, sizeof(op->tool), "%s", tool);
	op->actor_uid = uid;
	op->chunk = sink->chunk;
	sb_row__info(row, &info);
	r = start_tool(nd, &info, tool, args, op, e);
	if (r == 0)
		sink->op = op;
	if (r < 0) {
		x = (struct result_tx){nd, op, r, e && e->msg[0] ? e->msg : strerror(-r)};
		store__tx(nd->store, result_tx, &x);
		nd->m.tool_failed++;
		nd_op__free(op);
		if (r == -ENOENT)
			nd_err__set(e, r, "unknown_tool", "no tool '%s'", tool);
		else if (e && !e->code[0])
			nd_err__set(e, r, "tool_failed", "%s: %s", tool, strerror(-r));
	}
	return r;
}

/* The child's create finished (booted, or not): spawn_agent's result. */
static void spawned(void *arg, int rc, const struct nd_err *e, json_t *body)
{
	json_t *result = rc == 0 && body ? json_pack("{sO}", "sandbox", body) : NULL;

	tool_done(arg, rc == 0 && !result ? -ENOMEM : rc, result,
		  e && e->msg[0] ? e->msg : NULL);
	json_decref(result);
}

/*
 * spawn_agent, performed by the daemon once the policy allowed it: a child of @row made
 * as POST /v1/sandboxes with "parent" would make it (@args: that request's fields; vcpus
 * and memory_mib default to the parent's), its session from the parent's as it was
 * before this call (@row). Its result, once the child booted: {"sandbox": the child}.
 */
static int spawn(struct nucleusd *nd, const struct nd_caller *who, const struct sb_row *row,
		 json_t *args, int64_t uid, struct tool_sink *sink, struct nd_err *e)
{
	static const char *const keys[] = {"profile",	  "policy", "budget",
					   "ttl_seconds", "vcpus",  "memory_mib"};
	struct result_tx x;
	struct nd_op *op = NULL;
	json_t *req;
	int r = -ENOMEM;

	req = json_pack("{ss sI sI}", "parent", row->id, "vcpus", (json_int_t)row->vcpus,
			"memory_mib", (json_int_t)row->memory_mib);
	for (size_t i = 0; req && i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_object_get(args, keys[i]) &&
		    json_object_set(req, keys[i], json_object_get(args, keys[i])) < 0)
			goto fail;
	op = req ? nd_op__new(nd, row->id, sink->reply, sink->arg) : NULL;
	if (!op)
		goto fail;
	snprintf(op->tool, sizeof(op->tool), "spawn_agent");
	op->actor_uid = uid;
	r = sandbox_create(nd, who, req, true, row->session_state, spawned, op, e);
	if (r == 0) {
		sink->op = op;
		json_decref(req);
		return 0;
	}
	x = (struct result_tx){nd, op, r, e && e->msg[0] ? e->msg : strerror(-r)};
	store__tx(nd->store, result_tx, &x);
	nd->m.tool_failed++;
	nd_op__free(op);
	json_decref(req);
	return r;
fail:
	json_decref(req);
	return nd_err__set(e, r, "internal", "out of memory");
}

/* The sandbox @ref as @who sees it, which must be running (409 wrong_state otherwise). */
static int running_row(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
		       struct sb_row *row, struct nd_err *e)
{
	int r = sb_row__load(nd, who, ref, row, e);

	if (r == 0 && strcmp(row->state, "running") != 0) {
		r = nd_err__set(e, -EBUSY, "wrong_state", "sandbox %s is %s, not running", row->id,
				row->state);
		sb_row__clear(row);
	}
	return r;
}

static int tool_call(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
		     const char *tool, json_t *args, struct tool_sink *sink, json_t **ret_denial,
		     struct nd_err *e)
{
	struct nd_decision dec = {0};
	struct decision_tx d = {0};
	struct nd_sandbox_info info;
	struct sb_row row;
	int r;

	r = running_row(nd, who, ref, &row, e);
	if (r < 0)
		return r;
	nd__meter_sandbox(nd, &row); /* a sample on every call; may pause the sandbox */
	r = nd__expire_asks(nd, &row, e);
	if (r > 0) { /* the session moved on: the row again */
		char id[sizeof(row.id)];

		memcpy(id, row.id, sizeof(id));
		sb_row__clear(&row);
		r = sb_row__load(nd, who, id, &row, e);
	}
	if (r < 0)
		goto out;
	sb_row__info(&row, &info);
	r = nd__decide(nd, &info, tool, args, &dec, e);
	if (r == 0 && dec.verdict != ND_ALLOW && dec.verdict != ND_DENY && dec.verdict != ND_ASK)
		r = -EPROTO;
	if (r < 0) {
		if (e && !e->code[0])
			nd_err__set(e, r, "policy_error", "no decision for '%s'", tool);
		goto out;
	}
	d = (struct decision_tx){.nd = nd,
				 .row = &row,
				 .tool = tool,
				 .args = args,
				 .actor_uid = who ? (int64_t)who->uid : -1,
				 .d = &dec,
				 .refused = -1};
	r = store__tx(nd->store, decision_tx, &d);
	if (r < 0 || d.refused >= 0) {
		nd__decision_abort(nd, &info);
		if (r < 0)
			r = nd_err__set(e, r, "internal", "cannot record decision");
		else
			r = nd__budget_refused(nd, row.id, d.refused, "tool call refused", e);
		goto out;
	}
	nd->m.decisions[dec.verdict]++;
	nd->m.quarantines += dec.quarantined;
	if (dec.verdict != ND_ALLOW) {
		r = denial(&d, ret_denial, e);
		goto out;
	}
	if (nd_tool__find(tool) && nd_tool__find(tool)->daemon)
		r = spawn(nd, who, &row, args, d.actor_uid, sink, e);
	else
		r = run_tool(nd, &row, tool, args, d.actor_uid, sink, e);
out:
	json_decref(dec.trace);
	free(dec.session_state);
	sb_row__clear(&row);
	return r;
}

/*
 * One way to answer an ask: POST .../approvals, which uses up the pending request. An
 * approval inside a call's own args would leave that request pending: refused (400),
 * before anything is decided or recorded.
 */
static int no_approval_in_args(json_t *args, struct nd_err *e)
{
	if (!json_object_get(args, "approval"))
		return 0;
	return nd_err__set(e, -EINVAL, "bad_args",
			   "args.approval: answer an approval request with POST "
			   "/v1/sandboxes/{id}/approvals {\"nonce\", \"approval\"}");
}

/* ---- remote names: resolved before the policy judges a push ---- */

#define ND_REPO_DEFAULT "/workspace"

/* git_push and create_pr with a remote name (origin), not a URL: resolved first. */
static bool names_a_remote(const char *tool, json_t *args)
{
	return (strcmp(tool, "git_push") == 0 || strcmp(tool, "create_pr") == 0) &&
	       nd_git__is_remote_name(json_string_value(json_object_get(args, "remote")));
}

/* The repository of a push: args.repo, absolute and canonical, else ND_REPO_DEFAULT. */
static int repo_of(const char *tool, json_t *args, const char **ret, struct nd_err *e)
{
	json_t *v = json_object_get(args, "repo");
	const char *s = json_string_value(v);

	*ret = ND_REPO_DEFAULT;
	if (!v)
		return 0;
	if (!s || strlen(s) != json_string_length(v) || s[0] != '/' || strlen(s) > 1024 ||
	    strstr(s, "//") || strstr(s, "/./") || strstr(s, "/../") ||
	    (strlen(s) > 1 && s[strlen(s) - 1] == '/') ||
	    (strlen(s) >= 2 && strcmp(s + strlen(s) - 2, "/.") == 0) ||
	    (strlen(s) >= 3 && strcmp(s + strlen(s) - 3, "/..") == 0))
		return nd_err__set(e, -EINVAL, "bad_args",
				   "%s: 'repo' must be an absolute, canonical path of the "
				   "repository in the guest",
				   tool);
	*ret = s;
	return 0;
}

/* The config was read (or not): the call goes on with the remote's URL, or is a 400. */
static void config_read(void *token, int err, json_t *result, const char *reason)
{
	struct nd_op *op = token;
	struct tool_sink sink = {.reply = op->reply, .arg = op->arg};
	const char *name = json_string_value(json_object_get(op->args, "remote"));
	const char *text = json_string_value(json_object_get(result, "content"));
	const char *enc = json_string_value(json_object_get(result, "encoding"));
	struct nd_err e = {0};
	json_t *args = NULL, *denial = NULL;
	char why[160], *url = NULL;
	int r;

	if (err < 0 || !text || (enc && strcmp(enc, "utf-8") != 0))
		r = nd_err__set(&e, -EINVAL, "bad_args",
				"%s: remote '%s': cannot read %s: %s; give the remote's URL, or "
				"the repository in 'repo'",
				op->tool, name, op->path,
				err < 0 ? (reason ? reason : strerror(-err)) : "not a text file");
	else if ((r = nd_git__push_url(text, json_string_length(json_object_get(result, "content")),
				       name, &url, why, sizeof(why))) < 0)
		r = nd_err__set(&e, r == -ENOMEM ? r : -EINVAL,
				r == -ENOMEM ? "internal" : "bad_args", "%s: %s (%s)", op->tool,
				why, op->path);
	else if (!(args = json_copy(op->args)) ||
		 json_object_set_new(args, "remote", json_string(url)) < 0 ||
		 json_object_set_new(args, "remote_name", json_string(name)) < 0)
		r = nd_err__set(&e, -ENOMEM, "internal", "out of memory");
	else
		r = tool_call(op->nd, op->has_who ? &op->who : NULL, op->id, op->tool, args, &sink,
			      &denial, &e);
	if (r < 0)
		sink.reply(sink.arg, r, &e, denial);
	json_decref(denial);
	json_decref(args);
	free(url);
	nd_op__free(op);
}

/*
 * A push to a remote name: the daemon reads the repository's .git/config in the guest
 * (args.repo, else ND_REPO_DEFAULT) and the call is decided with the remote's push URL
 * in "remote" (its name in "remote_name"): the policy judges where the push goes.
 * Completes through @sink->reply, never before this returns.
 */
static int resolve_remote(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			  const char *tool, json_t *args, struct tool_sink *sink, struct nd_err *e)
{
	struct nd_sandbox_info info;
	struct sb_row row;
	struct nd_op *op = NULL;
	const char *repo;
	json_t *read = NULL;
	int r;

	r = repo_of(tool, args, &repo, e);
	if (r == 0)
		r = running_row(nd, who, ref, &row, e);
	if (r < 0)
		return r;
	op = nd_op__new(nd, row.id, sink->reply, sink->arg);
	if (op) {
		snprintf(op->tool, sizeof(op->tool), "%s", tool);
		snprintf(op->path, sizeof(op->path), "%s/.git/config", repo);
		op->args = json_incref(args);
		op->has_who = who != NULL;
		if (who)
			op->who = *who;
		read = json_pack("{ss}", "path", op->path);
	}
	if (!op || !read) {
		r = nd_err__set(e, -ENOMEM, "internal", "out of memory");
		goto out;
	}
	sb_row__info(&row, &info);
	r = nd->be->tool(nd->be->ctx, &info, "read_file", read, config_read, op, e);
	if (r < 0 && e && !e->code[0])
		nd_err__set(e, r, "backend_error", "%s: cannot read %s: %s", tool, op->path,
			    strerror(-r));
out:
	if (r < 0)
		nd_op__free(op);
	json_decref(read);
	sb_row__clear(&row);
	return r;
}

int nucleusd__tool_call(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			const char *tool, json_t *args, nd_reply_fn reply, void *arg,
			json_t **ret_denial, struct nd_err *e)
{
	struct tool_sink sink = {.reply = reply, .arg = arg};
	int r = no_approval_in_args(args, e);

	if (r == 0 && names_a_remote(tool, args))
		return resolve_remote(nd, who, ref, tool, args, &sink, e);
	return r < 0 ? r : tool_call(nd, who, ref, tool, args, &sink, ret_denial, e);
}

int nucleusd__tool_call_stream(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			       const char *tool, json_t *args, nd_chunk_fn chunk, nd_reply_fn reply,
			       void *arg, void **ret_stream, json_t **ret_denial, struct nd_err *e)
{
	struct tool_sink sink = {.reply = reply, .chunk = chunk, .arg = arg};
	int r;

	if (strcmp(tool, "run") != 0)
		return nd_err__set(e, -EINVAL, "bad_value", "only 'run' can stream its output");
	if (!nd->be->tool_stream || !nd->be->stream_resume)
		return nd_err__set(e, -EOPNOTSUPP, "not_implemented",
				   "backend '%s' cannot stream output", nd->be->name);
	r = no_approval_in_args(args, e);
	if (r == 0)
		r = tool_call(nd, who, ref, tool, args, &sink, ret_denial, e);
	if (r == 0)
		*ret_stream = sink.op;
	return r;
}

void nucleusd__stream_resume(struct nucleusd *nd, void *stream)
{
	if (stream && nd->be->stream_resume)
		nd->be->stream_resume(nd->be->ctx, stream);
}

/* ---- approvals ---- */

struct approval_tx {
	struct nucleusd *nd;
	const char *sandbox, *nonce;
	int64_t actor_uid;
	char tool[72];
	char *request; /* out: the asked call's args (JSON text) */
	const char *state;
	json_t *approval;
};

int nd__approval_state(const char *state, int64_t expires_us, int64_t now_us)
{
	if (!state)
		return -ENOMEM;
	if (strcmp(state, "expired") == 0)
		return -ETIME;
	if (strcmp(state, "pending") != 0)
		return -EBUSY;
	return expires_us <= now_us ? -ETIME : 0;
}

int nd__approval_err(int r, const char *nonce, const char *sandbox, struct nd_err *e)
{
	if (r == -ENOENT)
		return nd_err__set(e, r, "unknown_approval",
				   "no approval request %s for sandbox %s", nonce, sandbox);
	if (r == -EBUSY)
		return nd_err__set(e, r, "approval_used",
				   "approval request %s was already answered", nonce);
	if (r == -ETIME)
		return nd_err__set(e, -EBUSY, "approval_expired", "approval request %s expired",
				   nonce);
	return nd_err__set(e, r, "internal", "cannot read the approval request");
}

/* Takes the pending approval row (it becomes 'used' whatever the verdict). */
static int approval_take_tx(struct store *s, void *arg)
{
	static const char sel[] = "SELECT tool, request, state, expires_us FROM approvals "
				  "WHERE nonce = ?1 AND sandbox_id = ?2";
	static const char upd[] = "UPDATE approvals SET state = 'used', decided_us = ?2, "
				  "signature = ?3 WHERE nonce = ?1";
	struct approval_tx *x = arg;
	sqlite3_stmt *st = NULL;
	const char *sig = json_string_value(json_object_get(x->approval, "sig"));
	const char *tool, *request, *state;
	json_t *body;
	int r, rc;

	r = store__stmt(s, sel, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_text(st, 1, x->nonce, -1, SQLITE_STATIC);
	rc = rc ?: sqlite3_bind_text(st, 2, x->sandbox, -1, SQLITE_STATIC);
	rc = rc ?: sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		store__stmt_done(st);
		return rc == SQLITE_DONE ? -ENOENT : store__errno(rc);
	}
	tool = (const char *)sqlite3_column_text(st, 0);
	request = (const char *)sqlite3_column_text(st, 1);
	state = (const char *)sqlite3_column_text(st, 2);
	if (!tool || !request || !state) { /* NOT NULL columns: only out of memory */
		store__stmt_done(st);
		return -ENOMEM;
	}
	snprintf(x->tool, sizeof(x->tool), "%s", tool);
	x->request = strdup(request);
	r = nd__approval_state(state, sqlite3_column_int64(st, 3), nd_clock__wall_us());
	store__stmt_done(st);
	if (r < 0 || !x->request)
		return r < 0 ? r : -ENOMEM;
	r = store__stmt(s, upd, &st);
	if (r < 0)
		return r;
	rc = sqlite3_bind_text(st, 1, x->nonce, -1, SQLITE_STATIC);
	rc = rc ?: sqlite3_bind_int64(st, 2, nd_clock__wall_us());
	if (sig)
		rc = rc ?: sqlite3_bind_text(st, 3, sig, -1, SQLITE_STATIC);
	r = store__errno(rc ?: sqlite3_step(st));
	store__stmt_done(st);
	if (r < 0)
		return r;
	body = json_pack("{ss ss}", "nonce", x->nonce, "tool", x->tool);
	if (!body)
		return -ENOMEM;
	r = audit__append(s, x->nd->key, x->sandbox, x->actor_uid, "approval.submitted", body,
			  NULL);
	json_decref(body);
	return r;
}

int nucleusd__approve(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
		      const char *nonce, json_t *approval, nd_reply_fn reply, void *arg,
		      json_t **ret_denial, struct nd_err *e)
{
	struct approval_tx x = {.nd = nd,
				.nonce = nonce,
				.actor_uid = who ? (int64_t)who->uid : -1,
				.approval = approval};
	struct tool_sink sink = {.reply = reply, .arg = arg};
	struct sb_row row;
	json_t *args = NULL;
	int r;

	r = sb_row__load(nd, who, ref, &row, e);
	if (r < 0)
		return r;
	x.sandbox = row.id;
	r = store__tx(nd->store, approval_take_tx, &x);
	if (r < 0)
		r = nd__approval_err(r, nonce, row.id, e);
	if (r < 0)
		goto out;
	args = json_loads(x.request, 0, NULL);
	if (!json_is_object(args)) {
		r = nd_err__set(e, -EIO, "internal", "stored approval request is not an object");
		goto out;
	}
	/* The call again, with the signed approval: the policy engine judges it. */
	json_object_set(args, "approval", approval);
	r = tool_call(nd, who, row.id, x.tool, args, &sink, ret_denial, e);
out:
	json_decref(args);
	free(x.request);
	sb_row__clear(&row);
	return r;
}
