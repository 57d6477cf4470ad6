// SPDX-License-Identifier: Apache-2.0
/*
 * The policy product and its lattice: levels (min/max), allow-sets (down-set lattice with
 * `all` as top), deny-sets (the same, reversed), budgets (min/max), the validity window
 * (intersection/hull), the uninhabitable mode (deny < ask) and the quarantine threshold.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "policy/internal.h"

static const char *const op_names[POLICY_OP_COUNT] = {
	"read_file", "write_file",  "list",	      "search",	    "run",
	"web_fetch", "web_search",  "net_connect",    "git_commit", "git_push",
	"create_pr", "spawn_agent", "manage_sandbox",
};

static const char *const level_names[] = {"deny", "ask", "allow"};

static const struct {
	const char *name, *msg;
} reasons[POLICY_R_COUNT] = {
	[POLICY_R_ALLOWED] = {"ALLOWED", "allowed by the envelope"},
	[POLICY_R_APPROVED] = {"APPROVED", "allowed by a valid signed approval"},
	[POLICY_R_OP_DENIED] = {"OP_DENIED", "the operation is denied by the envelope"},
	[POLICY_R_OP_ASK] = {"OP_ASK", "the operation needs an approval"},
	[POLICY_R_BAD_ARGS] = {"BAD_ARGS", "missing or malformed arguments"},
	[POLICY_R_PATH_NOT_CANONICAL] = {"PATH_NOT_CANONICAL",
					 "the path is not a canonical absolute path"},
	[POLICY_R_PATH_DENIED] = {"PATH_DENIED", "the path matches a deny rule"},
	[POLICY_R_PATH_NOT_ALLOWED] = {"PATH_NOT_ALLOWED", "the path matches no allow rule"},
	[POLICY_R_CMD_DENIED] = {"CMD_DENIED", "the command matches a deny rule"},
	[POLICY_R_CMD_NOT_ALLOWED] = {"CMD_NOT_ALLOWED", "the command matches no allow rule"},
	[POLICY_R_INTERP_NOT_ALLOWED] = {"INTERP_NOT_ALLOWED",
					 "inline interpreter code matches no interpreter rule"},
	[POLICY_R_BAD_URL] = {"BAD_URL", "the URL, host or remote cannot be judged"},
	[POLICY_R_EGRESS_NOT_ALLOWED] = {"EGRESS_NOT_ALLOWED",
					 "the destination matches no egress rule"},
	[POLICY_R_REF_NOT_ALLOWED] = {"REF_NOT_ALLOWED", "the git ref matches no ref rule"},
	[POLICY_R_UNINHABITABLE] = {"UNINHABITABLE",
				    "the call would complete private+untrusted+exfil"},
	[POLICY_R_UNINHABITABLE_ASK] = {"UNINHABITABLE_ASK",
					"the call would complete private+untrusted+exfil; "
					"it needs an approval"},
	[POLICY_R_QUARANTINED] = {"QUARANTINED", "the session is quarantined (read-only)"},
	[POLICY_R_NOT_YET_VALID] = {"NOT_YET_VALID", "the envelope is not valid yet"},
	[POLICY_R_EXPIRED] = {"EXPIRED", "the envelope has expired"},
	[POLICY_R_BUDGET_EXHAUSTED] = {"BUDGET_EXHAUSTED", "a budget limit is reached"},
	[POLICY_R_APPROVAL_BAD_SIG] = {"APPROVAL_BAD_SIG",
				       "the approval is not signed by a pinned approver key"},
	[POLICY_R_APPROVAL_EXPIRED] = {"APPROVAL_EXPIRED", "the approval has expired"},
	[POLICY_R_APPROVAL_TOO_LONG] = {"APPROVAL_TOO_LONG",
					"the approval is valid for more than 5 minutes"},
	[POLICY_R_APPROVAL_REPLAY] = {"APPROVAL_REPLAY", "the approval nonce was already used"},
	[POLICY_R_APPROVAL_WRONG_OP] = {"APPROVAL_WRONG_OP",
					"the approval is for another operation"},
	[POLICY_R_APPROVAL_WRONG_ARGS] = {"APPROVAL_WRONG_ARGS",
					  "the approval is for other arguments"},
	[POLICY_R_APPROVAL_WRONG_SESSION] = {"APPROVAL_WRONG_SESSION",
					     "the approval is for another session"},
	[POLICY_R_NARROWED] = {"NARROWED", "the envelope was narrowed"},
	[POLICY_R_WIDEN_REFUSED] = {"WIDEN_REFUSED",
				    "the request is not below the envelope; refused"},
	[POLICY_R_WIDENED] = {"WIDENED", "the envelope was widened by a signed approval"},
};

const char *policy__op_name(enum policy_op op)
{
	return (unsigned)op < POLICY_OP_COUNT ? op_names[op] : NULL;
}

int policy__op_from_name(const char *name)
{
	for (int i = 0; name && i < POLICY_OP_COUNT; i++)
		if (strcmp(name, op_names[i]) == 0)
			return i;
	return -EINVAL;
}

const char *policy__level_name(enum policy_level l)
{
	return (unsigned)l <= POLICY_ALLOW ? level_names[l] : NULL;
}

int level__from_name(const char *name)
{
	for (int i = 0; name && i <= POLICY_ALLOW; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -EINVAL;
}

const char *policy__reason_name(enum policy_reason r)
{
	return (unsigned)r < POLICY_R_COUNT ? reasons[r].name : NULL;
}

const char *policy__reason_message(enum policy_reason r)
{
	return (unsigned)r < POLICY_R_COUNT ? reasons[r].msg : NULL;
}

int policy__reason_from_name(const char *name)
{
	for (int i = 0; name && i < POLICY_R_COUNT; i++)
		if (strcmp(name, reasons[i].name) == 0)
			return i;
	return -EINVAL;
}

void perr(struct policy_error *err, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err)
		return;
	n = snprintf(err->msg, sizeof(err->msg), "%s: ", path);
	if (n < 0 || (size_t)n >= sizeof(err->msg))
		return;
	va_start(ap, fmt);
	vsnprintf(err->msg + n, sizeof(err->msg) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* ---- lifecycle ---- */

static void init_sets(struct policy *p, bool all)
{
	pset__init(&p->read, &glob_ops, all);
	pset__init(&p->write, &glob_ops, all);
	pset__init(&p->path_deny, &glob_ops, false);
	pset__init(&p->cmd, &glob_ops, all);
	pset__init(&p->cmd_deny, &glob_ops, false);
	pset__init(&p->interp, &glob_ops, all);
	pset__init(&p->egress, &erule_ops, all);
	pset__init(&p->refs, &glob_ops, all);
}

/* The top: everything allowed, no limits, asks on the uninhabitable state. */
struct policy *policy__alloc(void)
{
	struct policy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	memset(p->level, POLICY_ALLOW, sizeof(p->level));
	init_sets(p, true);
	p->max_calls = p->max_net = p->max_spawn = POLICY_UNLIMITED;
	p->not_before = INT64_MIN;
	p->not_after = INT64_MAX;
	p->uninhabitable = POLICY_ASK;
	p->quarantine_after = POLICY_NEVER;
	return p;
}

int policy__top(struct policy **ret)
{
	struct policy *p = policy__alloc();

	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

int policy__read_only(struct policy **ret)
{
	struct policy *p = policy__alloc();

	if (!p)
		return -ENOMEM;
	memset(p->level, POLICY_DENY, sizeof(p->level));
	p->level[POLICY_OP_READ_FILE] = POLICY_ALLOW;
	p->level[POLICY_OP_LIST] = POLICY_ALLOW;
	p->level[POLICY_OP_SEARCH] = POLICY_ALLOW;
	*ret = p;
	return 0;
}

void policy__free(struct policy *p)
{
	if (!p)
		return;
	pset__clear(&p->read);
	pset__clear(&p->write);
	pset__clear(&p->path_deny);
	pset__clear(&p->cmd);
	pset__clear(&p->cmd_deny);
	pset__clear(&p->interp);
	pset__clear(&p->egress);
	pset__clear(&p->refs);
	free(p->name);
	free(p);
}

const char *policy__name(const struct policy *p)
{
	return p && p->name ? p->name : "";
}

enum policy_level policy__level(const struct policy *p, enum policy_op op)
{
	return (unsigned)op < POLICY_OP_COUNT ? p->level[op] : POLICY_DENY;
}

/* ---- the lattice ---- */

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

typedef int (*set_op)(const struct pset *, const struct pset *, struct pset *);

/* meet (or join) componentwise; deny-sets use the dual operation. */
static int combine(const struct policy *a, const struct policy *b, bool meet, struct policy **ret)
{
	struct policy *r = calloc(1, sizeof(*r));
	set_op up = meet ? pset__meet : pset__join, down = meet ? pset__join : pset__meet;
	int rc;

	if (!r)
		return -ENOMEM;
	init_sets(r, false);
	for (int i = 0; i < POLICY_OP_COUNT; i++)
		r->level[i] = meet ? MIN(a->level[i], b->level[i]) : MAX(a->level[i], b->level[i]);
	if ((rc = up(&a->read, &b->read, &r->read)) < 0 ||
	    (rc = up(&a->write, &b->write, &r->write)) < 0 ||
	    (rc = down(&a->path_deny, &b->path_deny, &r->path_deny)) < 0 ||
	    (rc = up(&a->cmd, &b->cmd, &r->cmd)) < 0 ||
	    (rc = down(&a->cmd_deny, &b->cmd_deny, &r->cmd_deny)) < 0 ||
	    (rc = up(&a->interp, &b->interp, &r->interp)) < 0 ||
	    (rc = up(&a->egress, &b->egress, &r->egress)) < 0 ||
	    (rc = up(&a->refs, &b->refs, &r->refs)) < 0)
		goto fail;
	r->max_calls = meet ? MIN(a->max_calls, b->max_calls) : MAX(a->max_calls, b->max_calls);
	r->max_net = meet ? MIN(a->max_net, b->max_net) : MAX(a->max_net, b->max_net);
	r->max_spawn = meet ? MIN(a->max_spawn, b->max_spawn) : MAX(a->max_spawn, b->max_spawn);
	r->not_before =
		meet ? MAX(a->not_before, b->not_before) : MIN(a->not_before, b->not_before);
	r->not_after = meet ? MIN(a->not_after, b->not_after) : MAX(a->not_after, b->not_after);
	r->uninhabitable = meet ? MIN(a->uninhabitable, b->uninhabitable)
				: MAX(a->uninhabitable, b->uninhabitable);
	r->quarantine_after = meet ? MIN(a->quarantine_after, b->quarantine_after)
				   : MAX(a->quarantine_after, b->quarantine_after);
	rc = -ENOMEM;
	if (a->name && !(r->name = strdup(a->name)))
		goto fail;
	*ret = r;
	return 0;
fail:
	policy__free(r);
	return rc;
}

int policy__meet(const struct policy *a, const struct policy *b, struct policy **ret)
{
	return combine(a, b, true, ret);
}

static bool empty(const struct pset *s)
{
	return !s->all && s->n == 0;
}

void policy__deny_empty(struct policy *p)
{
	/* the allow-sets an operation is judged by: with none left it can allow nothing */
	const bool none[POLICY_OP_COUNT] = {
		[POLICY_OP_READ_FILE] = empty(&p->read),
		[POLICY_OP_LIST] = empty(&p->read),
		[POLICY_OP_SEARCH] = empty(&p->read),
		[POLICY_OP_WRITE_FILE] = empty(&p->write),
		[POLICY_OP_RUN] = empty(&p->cmd) && empty(&p->interp),
		[POLICY_OP_WEB_FETCH] = empty(&p->egress),
		[POLICY_OP_NET_CONNECT] = empty(&p->egress),
		[POLICY_OP_GIT_PUSH] = empty(&p->egress) || empty(&p->refs),
		[POLICY_OP_CREATE_PR] = empty(&p->egress),
	};

	for (int i = 0; i < POLICY_OP_COUNT; i++)
		if (none[i])
			p->level[i] = POLICY_DENY;
}

int policy__join(const struct policy *a, const struct policy *b, struct policy **ret)
{
	return combine(a, b, false, ret);
}

int policy__dup(const struct policy *p, struct policy **ret)
{
	return combine(p, p, true, ret);
}

bool policy__leq(const struct policy *a, const struct policy *b)
{
	for (int i = 0; i < POLICY_OP_COUNT; i++)
		if (a->level[i] > b->level[i])
			return false;
	return pset__leq(&a->read, &b->read) && pset__leq(&a->write, &b->write) &&
	       pset__leq(&b->path_deny, &a->path_deny) && pset__leq(&a->cmd, &b->cmd) &&
	       pset__leq(&b->cmd_deny, &a->cmd_deny) && pset__leq(&a->interp, &b->interp) &&
	       pset__leq(&a->egress, &b->egress) && pset__leq(&a->refs, &b->refs) &&
	       a->max_calls <= b->max_calls && a->max_net <= b->max_net &&
	       a->max_spawn <= b->max_spawn && a->not_before >= b->not_before &&
	       a->not_after <= b->not_after && a->uninhabitable <= b->uninhabitable &&
	       a->quarantine_after <= b->quarantine_after;
}

bool policy__eq(const struct policy *a, const struct policy *b)
{
	return memcmp(a->level, b->level, sizeof(a->level)) == 0 && pset__eq(&a->read, &b->read) &&
	       pset__eq(&a->write, &b->write) && pset__eq(&a->path_deny, &b->path_deny) &&
	       pset__eq(&a->cmd, &b->cmd) && pset__eq(&a->cmd_deny, &b->cmd_deny) &&
	       pset__eq(&a->interp, &b->interp) && pset__eq(&a->egress, &b->egress) &&
	       pset__eq(&a->refs, &b->refs) && a->max_calls == b->max_calls &&
	       a->max_net == b->max_net && a->max_spawn == b->max_spawn &&
	       a->not_before == b->not_before && a->not_after == b->not_after &&
	       a->uninhabitable == b->uninhabitable && a->quarantine_after == b->quarantine_after;
}

/* ---- JSON out ---- */

static json_t *limit_json(uint64_t v)
{
	return v == POLICY_UNLIMITED ? json_string("unlimited") : json_integer((json_int_t)v);
}

static int set_new(json_t *o, const char *k, json_t *v)
{
	return v ? json_object_set_new(o, k, v) : -1;
}

static json_t *levels_json(const struct policy *p)
{
	json_t *o = json_object();

	for (int i = 0; o && i < POLICY_OP_COUNT; i++) {
		if (set_new(o, op_names[i], json_string(level_names[p->level[i]])) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static json_t *deny_json(const struct pset *s)
{
	/* a deny-set is never `all` from a profile; "none" would read oddly: [] */
	return s->n == 0 && !s->all ? json_array() : pset__to_json(s);
}

json_t *policy__json(const struct policy *p, bool with_name)
{
	json_t *root = json_object();
	json_t *paths = json_object(), *cmds = json_object(), *eg = json_object();
	json_t *git = json_object(), *bud = json_object(), *val = json_object();
	bool ok = root && paths && cmds && eg && git && bud && val;

	ok = ok && set_new(paths, "read", pset__to_json(&p->read)) == 0 &&
	     set_new(paths, "write", pset__to_json(&p->write)) == 0 &&
	     set_new(paths, "deny", deny_json(&p->path_deny)) == 0 &&
	     set_new(cmds, "allow", pset__to_json(&p->cmd)) == 0 &&
	     set_new(cmds, "deny", deny_json(&p->cmd_deny)) == 0 &&
	     set_new(cmds, "interpreters", pset__to_json(&p->interp)) == 0 &&
	     set_new(eg, "allow", pset__to_json(&p->egress)) == 0 &&
	     set_new(git, "refs", pset__to_json(&p->refs)) == 0 &&
	     set_new(bud, "max_calls", limit_json(p->max_calls)) == 0 &&
	     set_new(bud, "max_net", limit_json(p->max_net)) == 0 &&
	     set_new(bud, "max_spawn", limit_json(p->max_spawn)) == 0 &&
	     set_new(val, "not_before", json_integer(p->not_before)) == 0 &&
	     set_new(val, "not_after", json_integer(p->not_after)) == 0;
	ok = ok && set_new(root, "levels", levels_json(p)) == 0 &&
	     json_object_set(root, "paths", paths) == 0 &&
	     json_object_set(root, "commands", cmds) == 0 &&
	     json_object_set(root, "egress", eg) == 0 && json_object_set(root, "git", git) == 0 &&
	     json_object_set(root, "budget", bud) == 0 &&
	     json_object_set(root, "validity", val) == 0 &&
	     set_new(root, "uninhabitable", json_string(level_names[p->uninhabitable])) == 0 &&
	     set_new(root, "quarantine_after",
		     p->quarantine_after == POLICY_NEVER ? json_string("never")
							 : json_integer(p->quarantine_after)) == 0;
	if (ok && with_name && p->name)
		ok = set_new(root, "name", json_string(p->name)) == 0;
	json_decref(paths);
	json_decref(cmds);
	json_decref(eg);
	json_decref(git);
	json_decref(bud);
	json_decref(val);
	if (!ok) {
		json_decref(root);
		return NULL;
	}
	return root;
}

int json__dump_take(json_t *j, size_t flags, char **ret)
{
	char *s = j ? json_dumps(j, flags) : NULL;

	json_decref(j);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int policy__to_json(const struct policy *p, char **ret)
{
	return json__dump_take(policy__json(p, true), JSON_SORT_KEYS | JSON_INDENT(2), ret);
}

/* BLAKE2b-256 of the canonical compact JSON without the name; all-zero on OOM. */
void policy__digest(const struct policy *p, uint8_t out[POLICY_DIGEST_LEN])
{
	json_t *j = policy__json(p, false);
	char *s = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;

	memset(out, 0, POLICY_DIGEST_LEN);
	if (s)
		crypto_generichash(out, POLICY_DIGEST_LEN, (const unsigned char *)s, strlen(s),
				   NULL, 0);
	free(s);
	json_decref(j);
}

/* ---- hex ---- */

void hex__encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex__decode(const char *in, uint8_t *out, size_t n)
{
	if (!in || strlen(in) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int h = hexval(in[2 * i]), l = hexval(in[2 * i + 1]);

		if (h < 0 || l < 0)
			return -EINVAL;
		out[i] = (uint8_t)(h << 4 | l);
	}
	return 0;
}
