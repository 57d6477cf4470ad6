// SPDX-License-Identifier: Apache-2.0
/*
 * Budgets in the daemon: limits at create, the tool-call gate and price, usage
 * reports, the metering / TTL timer, the budget view. The arithmetic and the ledger are
 * budget/'s (docs/budget.md); this file decides when to call it, in which transaction,
 * and what to audit and enforce.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/event.h>
#include <sqlite3.h>

#include "nucleusd/nucleusd-internal.h"

/* ---- prices, timer ---- */

static void meter_timer(evutil_socket_t fd, short what, void *arg);

int nd__budget_init(struct nucleusd *nd, const struct nd_config *cfg)
{
	struct budget_err berr = {{0}};
	json_error_t jerr;
	json_t *j;
	int r;

	nd->meter_ms = cfg->meter_interval_ms ? cfg->meter_interval_ms : ND_METER_INTERVAL_MS;
	r = nd_lru__new(ND_LIMITS_CACHE, free, &nd->limits_cache);
	if (r < 0)
		return r;
	if (cfg->prices_path) {
		j = json_load_file(cfg->prices_path, JSON_REJECT_DUPLICATES, &jerr);
		if (!j)
			return -EINVAL;
		r = budget__prices_parse(j, "prices", &nd->prices, &berr);
		json_decref(j);
	} else {
		r = budget__prices_default(&nd->prices);
	}
	if (r < 0)
		return r;
	if (!nd->base)
		return 0;
	nd->meter_ev = event_new(nd->base, -1, EV_PERSIST, meter_timer, nd);
	if (!nd->meter_ev)
		return -ENOMEM;
	if (event_add(nd->meter_ev,
		      &(struct timeval){nd->meter_ms / 1000, (nd->meter_ms % 1000) * 1000}) < 0)
		return -EIO;
	return 0;
}

static void meter_free(struct nd_meter *m)
{
	if (!m)
		return;
	free(m->cgroup); /* removed by vm-proc.c, which placed the VMM in it */
	free(m);
}

static void meter_write_pending(struct nucleusd *nd, struct nd_meter *m);

void nd__budget_fini(struct nucleusd *nd)
{
	if (nd->meter_ev)
		event_free(nd->meter_ev);
	nd->meter_ev = NULL;
	while (nd->meters) {
		struct nd_meter *m = nd->meters;

		meter_write_pending(nd, m);
		nd->meters = m->next;
		free(m->cgroup); /* the VMs may outlive the daemon: keep their cgroups */
		free(m);
	}
	budget__prices_free(nd->prices);
	nd->prices = NULL;
	nd_lru__free(nd->limits_cache);
	nd->limits_cache = NULL;
}

/* ---- limits ---- */

/*
 * A sandbox's limits, from a small LRU in front of budget_limits. The rows never change
 * after the create transaction and ids are never reused, so a copy cannot go stale; it
 * saves the tool-call gate a query (and a statement compile) per call, and the meter
 * one per tick. Every reader of limits in nucleusd goes through it.
 */
static int limits_get(struct nucleusd *nd, const char *id, struct budget_limits *ret)
{
	struct budget_limits *c = nd_lru__get(nd->limits_cache, id);
	int r;

	if (c) {
		*ret = *c;
		return 0;
	}
	r = budget__limits_load(nd->store, id, ret);
	if (r < 0)
		return r;
	/* Not cached (out of memory) is only slower: the next call reads the rows again. */
	c = nd->limits_cache ? malloc(sizeof(*c)) : NULL;
	if (c) {
		*c = *ret;
		nd_lru__put(nd->limits_cache, id, c);
	}
	return 0;
}

int nd__limits_for_create(const char *profile, json_t *profile_budget, json_t *req,
			  struct budget_limits *ret, struct nd_err *e)
{
	struct budget_limits def = {{0}}, own = {{0}};
	struct budget_err berr = {{0}};
	json_t *b = json_object_get(req, "budget");
	int r;

	if (b && !json_is_object(b))
		return nd_err__set(e, -EINVAL, "wrong_type", "budget: must be an object");
	r = budget__limits_parse(b, "budget", &own, &berr);
	if (r < 0)
		return nd_err__set(e, -EINVAL,
				   strstr(berr.msg, "unknown key") ? "unknown_field" : "bad_value",
				   "%s", berr.msg);
	if (profile_budget) {
		r = budget__limits_parse(profile_budget, "profile.budget", &def, &berr);
		if (r < 0)
			return nd_err__set(e, -EIO, "internal", "profile '%s': bad budget: %s",
					   profile ? profile : "?", berr.msg);
	}
	for (int k = 0; k < BUDGET__N_KINDS; k++)
		ret->limit[k] = own.limit[k] ? own.limit[k] : def.limit[k];
	return 0;
}

/* ---- audit helpers ---- */

static json_t *amounts_json(const int64_t v[BUDGET__N_KINDS], bool all)
{
	json_t *o = json_object();

	for (int k = 0; o && k < BUDGET__N_KINDS; k++)
		if (all || v[k])
			json_object_set_new(o, budget_kind__name(k), json_integer(v[k]));
	return o;
}

static int audit_exhausted(struct store *s, struct nucleusd *nd, const char *id, int64_t actor,
			   int kind, const char *action, json_t *extra)
{
	struct budget_limits lim;
	struct budget_spent sp;
	json_t *body;
	int r;

	r = limits_get(nd, id, &lim);
	if (r == 0)
		r = budget__spent(s, id, &sp);
	if (r < 0)
		return r;
	body = json_pack("{ss ss sI sI}", "budget", budget_kind__name(kind), "action", action,
			 "limit", (json_int_t)lim.limit[kind], "spent", (json_int_t)sp.spent[kind]);
	if (!body)
		return -ENOMEM;
	if (extra)
		json_object_update(body, extra);
	r = audit__append(s, nd->key, id, actor, "budget.exhausted", body, NULL);
	json_decref(body);
	return r;
}

int nd__budget_debit_audit(struct store *s, struct nucleusd *nd, const char *id, int64_t actor_uid,
			   const char *reason, enum budget_kind kind, int64_t amount)
{
	json_t *body = json_pack("{ss s{sI}}", "reason", reason, "charged", budget_kind__name(kind),
				 (json_int_t)amount);
	int r;

	if (!body)
		return -ENOMEM;
	r = audit__append(s, nd->key, id, actor_uid, "budget.debit", body, NULL);
	json_decref(body);
	return r;
}

int nd__budget_refused(struct nucleusd *nd, const char *id, int kind, const char *what,
		       struct nd_err *e)
{
	bool known = kind >= 0 && kind < BUDGET__N_KINDS;
	int r;

	if (known)
		nd->m.exhaustions[kind]++;
	r = nd_err__set(e, -EDQUOT, "budget_exhausted", "budget %s exhausted for sandbox %s: %s",
			known ? budget_kind__name(kind) : "?", id, what);
	if (e && known)
		snprintf(e->budget, sizeof(e->budget), "%s", budget_kind__name(kind));
	return r;
}

const char *nd_err__budget_kind(const struct nd_err *e)
{
	return e && strcmp(e->code, "budget_exhausted") == 0 && e->budget[0] ? e->budget : NULL;
}

/* ---- tool calls ---- */

int nd__budget_tool_tx(struct store *s, struct nucleusd *nd, const char *id, const char *tool,
		       int64_t actor_uid, bool allowed, int *ret_refused, int64_t *ret_charged)
{
	struct budget_limits lim;
	struct budget_result res;
	enum budget_kind kind;
	char reason[96];
	json_t *extra;
	int64_t price;
	bool limited = false;
	int r;

	*ret_refused = -1;
	*ret_charged = 0;
	r = limits_get(nd, id, &lim);
	if (r < 0)
		return r;
	for (int k = 0; k < BUDGET__N_KINDS; k++)
		limited |= lim.limit[k] > 0;
	/* No limit: nothing can be exhausted (and no ledger sum on the call's path). */
	r = limited ? budget__check(s, id, &lim, &kind) : 0;
	if (r == -EDQUOT) {
		extra = json_pack("{ss}", "tool", tool);
		r = audit_exhausted(s, nd, id, actor_uid, kind, "tool_call_refused", extra);
		json_decref(extra);
		*ret_refused = r < 0 ? -1 : (int)kind;
		return r;
	}
	if (r < 0 || !allowed)
		return r;
	price = budget__price_tool(nd->prices, tool);
	if (price <= 0)
		return 0;
	snprintf(reason, sizeof(reason), "tool:%s", tool);
	r = budget__charge(s, id, BUDGET_USD_MICRO, price, NULL, reason, &lim, &res);
	if (r == -EDQUOT) {
		extra = json_pack("{ss sI}", "tool", tool, "price", (json_int_t)price);
		r = audit_exhausted(s, nd, id, actor_uid, BUDGET_USD_MICRO, "tool_call_refused",
				    extra);
		json_decref(extra);
		*ret_refused = r < 0 ? -1 : BUDGET_USD_MICRO;
		return r;
	}
	if (r < 0)
		return r;
	*ret_charged = price;
	return 0;
}

/* ---- usage reports ---- */

struct usage_tx {
	struct nucleusd *nd;
	const char *id, *key, *model;
	int64_t actor, in, out, tokens, usd;
	struct budget_result res;
	int refused;
};

static int usage_tx(struct store *s, void *arg)
{
	struct usage_tx *x = arg;
	const struct budget_debit d[2] = {{BUDGET_TOKENS, x->tokens}, {BUDGET_USD_MICRO, x->usd}};
	struct budget_limits lim;
	struct budget_result ex;
	char reason[160];
	json_t *body;
	int r;

	x->refused = -1;
	r = limits_get(x->nd, x->id, &lim);
	if (r < 0)
		return r;
	snprintf(reason, sizeof(reason), "usage:%s", x->model ? x->model : "default");
	r = budget__charge_many(s, x->id, d, 2, x->key, reason, &lim, &x->res);
	if (r == -EDQUOT) {
		/* The tokens were used already: the budget is spent, later calls are refused. */
		x->refused = (int)x->res.exhausted;
		r = budget__exhaust(s, x->id, x->res.exhausted, "usage report refused", &lim, &ex);
		if (r < 0)
			return r;
		body = json_pack("{ss sI sI}", "key", x->key, "tokens", (json_int_t)x->tokens,
				 "usd_micro", (json_int_t)x->usd);
		r = body ? audit_exhausted(s, x->nd, x->id, x->actor, x->refused,
					   "usage_report_refused", body)
			 : -ENOMEM;
		json_decref(body);
		return r;
	}
	if (r < 0 || x->res.status != BUDGET_CHARGED)
		return r;
	body = json_pack("{ss ss so}", "reason", reason, "key", x->key, "charged",
			 amounts_json(x->res.charged, false));
	if (!body)
		return -ENOMEM;
	r = audit__append(s, x->nd->key, x->id, x->actor, "budget.debit", body, NULL);
	json_decref(body);
	return r;
}

static int get_count(json_t *req, const char *name, int64_t *ret, struct nd_err *e)
{
	json_t *v = json_object_get(req, name);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > BUDGET_AMOUNT_MAX)
		return nd_err__set(e, -EINVAL, "bad_value",
				   "%s: expected an integer 0..1000000000000000", name);
	*ret = json_integer_value(v);
	return 0;
}

int nucleusd__usage(struct nucleusd *nd, const struct nd_caller *who, const char *ref, json_t *req,
		    json_t **ret, struct nd_err *e)
{
	struct usage_tx x = {.nd = nd, .actor = who ? (int64_t)who->uid : -1};
	struct sb_row row;
	json_t *o;
	int r;

	r = sb_row__load(nd, who, ref, &row, e);
	if (r < 0)
		return r;
	x.id = row.id;
	x.key = json_string_value(json_object_get(req, "key"));
	x.model = json_string_value(json_object_get(req, "model"));
	if (!x.key) {
		r = nd_err__set(e, -EINVAL, "missing_field", "key: required field missing");
		goto out;
	}
	r = get_count(req, "input_tokens", &x.in, e);
	if (r == 0)
		r = get_count(req, "output_tokens", &x.out, e);
	if (r < 0)
		goto out;
	x.tokens = x.in + x.out;
	if (x.tokens > BUDGET_AMOUNT_MAX) {
		r = nd_err__set(e, -EINVAL, "out_of_range",
				"input_tokens + output_tokens: too many");
		goto out;
	}
	r = budget__price_tokens(nd->prices, x.model, x.in, x.out, &x.usd);
	if (r == 0 && x.usd > BUDGET_AMOUNT_MAX)
		r = -EOVERFLOW;
	if (r < 0) {
		r = nd_err__set(e, -EINVAL, "out_of_range", "the report's price is too large");
		goto out;
	}
	r = store__tx(nd->store, usage_tx, &x);
	if (r == -EEXIST) {
		r = nd_err__set(e, r, "key_reused",
				"usage key '%s' was already used for a different report", x.key);
		goto out;
	}
	if (r == -EINVAL) {
		r = nd_err__set(e, r, "bad_value",
				"key: 1 to 128 printable ASCII characters without spaces");
		goto out;
	}
	if (r < 0) {
		r = nd_err__set(e, r, "internal", "cannot record the usage: %s", strerror(-r));
		goto out;
	}
	if (x.refused >= 0) {
		r = nd__budget_refused(nd, row.id, x.refused, "the usage report passes the limit",
				       e);
		goto out;
	}
	o = json_pack("{ss ss so so}", "sandbox", row.id, "status",
		      x.res.status == BUDGET_DUPLICATE ? "duplicate" : "charged", "charged",
		      json_pack("{sI sI}", "tokens", (json_int_t)x.res.charged[BUDGET_TOKENS],
				"usd_micro", (json_int_t)x.res.charged[BUDGET_USD_MICRO]),
		      "spent", amounts_json(x.res.after.spent, true));
	if (!o) {
		r = nd_err__set(e, -ENOMEM, "internal", "out of memory");
		goto out;
	}
	*ret = o;
out:
	sb_row__clear(&row);
	return r;
}

/* ---- view, resume gate ---- */

static void meter_one(struct nucleusd *nd, const char *id, int64_t pid, bool force);

int nucleusd__budget(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
		     json_t **ret, struct nd_err *e)
{
	struct budget_limits lim;
	struct sb_row row;
	int r;

	r = sb_row__load(nd, who, ref, &row, e);
	if (r < 0)
		return r;
	if (strcmp(row.state, "running") == 0 && row.vmm_pid > 0)
		meter_one(nd, row.id, row.vmm_pid, true); /* what is pending, written first */
	r = limits_get(nd, row.id, &lim);
	if (r == 0)
		r = budget__view(nd->store, row.id, &lim, ret);
	if (r < 0)
		nd_err__set(e, r, "internal", "cannot read the budget: %s", strerror(-r));
	sb_row__clear(&row);
	return r;
}

struct refusal_tx {
	struct nucleusd *nd;
	const char *id, *action;
	int64_t actor;
	int kind; /* out: -1 when nothing is exhausted */
};

static int refusal_tx(struct store *s, void *arg)
{
	struct refusal_tx *x = arg;
	struct budget_limits lim;
	enum budget_kind kind;
	int r;

	x->kind = -1;
	r = limits_get(x->nd, x->id, &lim);
	if (r < 0)
		return r;
	r = budget__check(s, x->id, &lim, &kind);
	if (r != -EDQUOT)
		return r;
	x->kind = (int)kind;
	return audit_exhausted(s, x->nd, x->id, x->actor, kind, x->action, NULL);
}

int nd__budget_resume_check(struct nucleusd *nd, const struct sb_row *row, int64_t actor_uid,
			    struct nd_err *e)
{
	struct refusal_tx x = {nd, row->id, "resume_refused", actor_uid, -1};
	int r;

	r = store__tx(nd->store, refusal_tx, &x);
	if (r < 0)
		return nd_err__set(e, r, "internal", "cannot read the budget: %s", strerror(-r));
	if (x.kind >= 0)
		return nd__budget_refused(nd, row->id, x.kind, "resume refused", e);
	return 0;
}

/* ---- metering ---- */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int r = 0;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	if (n < 0)
		r = -errno;
	else if ((size_t)n != strlen(text))
		r = -EIO;
	close(fd);
	return r;
}

/* The daemon's own cgroup v2 directory, or -ENOENT (no unified hierarchy mounted). */
static int own_cgroup(char *buf, size_t len)
{
	char line[1024];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (snprintf(buf, len, "/sys/fs/cgroup%s", strcmp(line + 3, "/") ? line + 3 : "") <
		    (int)len)
			r = 0;
		break;
	}
	fclose(f);
	if (r == 0) {
		char ctl[1100];
		struct stat st;

		snprintf(ctl, sizeof(ctl), "%s/cgroup.controllers", buf);
		if (stat(ctl, &st) < 0)
			r = -ENOENT;
	}
	return r;
}

static struct nd_meter *meter_get(struct nucleusd *nd, const char *id, int64_t pid)
{
	struct nd_meter *m;

	for (m = nd->meters; m; m = m->next)
		if (strcmp(m->id, id) == 0)
			break;
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m)
			return NULL;
		snprintf(m->id, sizeof(m->id), "%s", id);
		m->next = nd->meters;
		nd->meters = m;
	}
	if (m->pid != pid) {
		m->pid = pid;
		budget_sampler__init(&m->s);
	}
	return m;
}

/* Is controller @name in the space-separated @list? */
static bool has_word(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; (p = strstr(p, name)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || !p[n]))
			return true;
	return false;
}

int nd__cgroup_enable(void)
{
	char base[900], path[1000], ctl[256] = "";
	ssize_t n;
	int r, fd;

	r = own_cgroup(base, sizeof(base));
	if (r < 0)
		return r;
	/* Best effort; refused while the daemon's own cgroup holds processes. */
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", base);
	write_file(path, "+memory +cpu +pids");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, ctl, sizeof(ctl) - 1);
	close(fd);
	ctl[n > 0 ? n : 0] = '\0';
	if (!has_word(ctl, "memory") || !has_word(ctl, "cpu") || !has_word(ctl, "pids") ||
	    access(base, W_OK) < 0)
		return -EACCES;
	return 0;
}

int nd__cgroup_leaf(const char *id, char *buf, size_t len)
{
	char base[900];
	int r = own_cgroup(base, sizeof(base));

	if (r < 0)
		return r;
	return snprintf(buf, len, "%s/nucleus-%s", base, id) < (int)len ? 0 : -ENAMETOOLONG;
}

/*
 * The cgroup v2 leaf the VMM @pid was born in (its jail's: vm-proc.c places it, the
 * one place that does), when that is a leaf of its own (nd__cgroup_leaf's name for
 * sandbox @m->id); anything else (no jail, no writable cgroup v2) leaves metering on
 * /proc.
 */
static int cgroup_of(struct nd_meter *m, int64_t pid)
{
	char path[64], line[1024], leaf[1000], want[1000];
	FILE *f;
	int r = -ENOENT;

	if (nd__cgroup_leaf(m->id, want, sizeof(want)) < 0)
		return -ENOENT;
	snprintf(path, sizeof(path), "/proc/%lld/cgroup", (long long)pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (snprintf(leaf, sizeof(leaf), "/sys/fs/cgroup%s", line + 3) < (int)sizeof(leaf) &&
		    strcmp(leaf, want) == 0)
			r = 0;
		break;
	}
	if (f)
		fclose(f);
	if (r == 0 && !(m->cgroup = strdup(want)))
		r = -ENOMEM;
	return r;
}

void nd__meter_attach(struct nucleusd *nd, const char *id, int64_t pid)
{
	struct nd_meter *m;

	if (pid <= 0)
		return;
	m = meter_get(nd, id, pid);
	if (!m)
		return;
	if (!m->s.primed) {
		/* A fresh VMM: its counters started at 0, so the boot's CPU is charged too. */
		struct budget_sample zero = {.t_us = nd_clock__mono_us()};
		struct budget_delta ignored;

		budget_sampler__step(&m->s, &zero, &ignored);
	}
	if (!m->cgroup)
		cgroup_of(m, pid); /* < 0: no cgroup of its own, /proc metering */
}

struct meter_tx {
	struct nucleusd *nd;
	const char *id;
	struct budget_delta d;
	int pause_kind; /* out */
};

static int meter_tx(struct store *s, void *arg)
{
	struct meter_tx *x = arg;
	struct budget_debit d[4];
	struct budget_limits lim;
	struct budget_result res;
	unsigned metered =
		(1u << BUDGET_CPU_MS) | (1u << BUDGET_MEM_MIB_S) | (1u << BUDGET_MEM_PEAK_MIB);
	int64_t usd = 0;
	size_t n = 0;
	int r;

	x->pause_kind = -1;
	r = limits_get(x->nd, x->id, &lim);
	if (r < 0)
		return r;
	if (x->d.cpu_ms > 0)
		d[n++] = (struct budget_debit){BUDGET_CPU_MS, x->d.cpu_ms};
	if (x->d.mem_mib_s > 0)
		d[n++] = (struct budget_debit){BUDGET_MEM_MIB_S, x->d.mem_mib_s};
	if (x->d.peak_mib > 0)
		d[n++] = (struct budget_debit){BUDGET_MEM_PEAK_MIB, x->d.peak_mib};
	if (budget__price_cpu(x->nd->prices, x->d.cpu_ms, &usd) == 0 && usd > 0) {
		d[n++] = (struct budget_debit){BUDGET_USD_MICRO, usd};
		metered |= 1u << BUDGET_USD_MICRO;
	}
	if (n == 0)
		return 0;
	r = budget__meter(s, x->id, d, n, NULL, "meter", &lim, &res);
	if (r < 0)
		return r;
	/*
	 * Metered debits stay in the ledger only: a signed audit entry per tick and
	 * sandbox would bury the log. What they cause (a pause) is audited below.
	 */
	for (int k = 0; k < BUDGET__N_KINDS; k++) {
		if ((res.over_mask & metered) & (1u << k)) {
			x->pause_kind = k;
			return audit_exhausted(s, x->nd, x->id, -1, k, "pause", NULL);
		}
	}
	return 0;
}

/* Ledger writes per sandbox are coalesced over this many meter intervals (10 s by default). */
#define ND_METER_FLUSH_TICKS 10

static bool pend_empty(const struct budget_delta *d)
{
	return d->cpu_ms == 0 && d->mem_mib_s == 0 && d->peak_mib == 0;
}

/* Would writing @m's pending debits exhaust a metered budget? Then they are written now. */
static bool pend_reaches_limit(struct nucleusd *nd, struct nd_meter *m)
{
	const struct budget_delta *pend = &m->pend;
	struct budget_limits limits;
	const int64_t *lim = limits.limit;
	struct budget_spent sp;
	int64_t usd = 0;

	if (limits_get(nd, m->id, &limits) < 0)
		return true; /* cannot tell: write */
	if (!lim[BUDGET_CPU_MS] && !lim[BUDGET_MEM_MIB_S] && !lim[BUDGET_MEM_PEAK_MIB] &&
	    !lim[BUDGET_USD_MICRO])
		return false; /* nothing metered is limited: no balance to read */
	if (budget__spent(nd->store, m->id, &sp) < 0)
		return true;
	if (lim[BUDGET_CPU_MS] && sp.spent[BUDGET_CPU_MS] + pend->cpu_ms >= lim[BUDGET_CPU_MS])
		return true;
	if (lim[BUDGET_MEM_MIB_S] &&
	    sp.spent[BUDGET_MEM_MIB_S] + pend->mem_mib_s >= lim[BUDGET_MEM_MIB_S])
		return true;
	if (lim[BUDGET_MEM_PEAK_MIB] && pend->peak_mib > lim[BUDGET_MEM_PEAK_MIB])
		return true;
	return lim[BUDGET_USD_MICRO] && budget__price_cpu(nd->prices, pend->cpu_ms, &usd) == 0 &&
	       usd > 0 && sp.spent[BUDGET_USD_MICRO] + usd >= lim[BUDGET_USD_MICRO];
}

/* Writes what @m has pending (one transaction) and pauses the VM if that exhausts a budget. */
static void meter_flush(struct nucleusd *nd, struct nd_meter *m)
{
	struct meter_tx x = {.nd = nd, .id = m->id, .d = m->pend, .pause_kind = -1};
	char reason[64];

	if (pend_empty(&m->pend))
		return;
	if (store__tx(nd->store, meter_tx, &x) < 0) {
		nd->m.meter_errors++;
		return; /* kept pending: written with the next flush */
	}
	memset(&m->pend, 0, sizeof(m->pend));
	m->flush_us = nd_clock__mono_us();
	if (x.pause_kind < 0)
		return;
	nd->m.exhaustions[x.pause_kind]++;
	snprintf(reason, sizeof(reason), "budget:%s", budget_kind__name(x.pause_kind));
	nd__pause_for(nd, m->id, reason);
}

/* What was metered but not yet written, without pausing (the daemon is leaving). */
static void meter_write_pending(struct nucleusd *nd, struct nd_meter *m)
{
	struct meter_tx x = {.nd = nd, .id = m->id, .d = m->pend, .pause_kind = -1};

	if (nd->store && !pend_empty(&m->pend) && store__tx(nd->store, meter_tx, &x) < 0)
		nd->m.meter_errors++; /* lost, as after a kill -9: never counted twice */
}

/*
 * One sample of the VMM. What it measured is added to the meter's pending debits, which
 * go to the ledger every ND_METER_FLUSH_TICKS intervals, when they would reach a limit
 * (so enforcement is as prompt as the sampling), or when @force (a budget is read).
 */
static void meter_one(struct nucleusd *nd, const char *id, int64_t pid, bool force)
{
	struct budget_sample smp = {0};
	struct budget_delta d;
	struct nd_meter *m;
	int64_t now;
	int r;

	m = meter_get(nd, id, pid);
	if (!m)
		return;
	m->seen = true;
	r = m->cgroup ? budget__cpu_usec_cgroup(m->cgroup, &smp.cpu_usec)
		      : budget__cpu_usec_pid(NULL, (pid_t)pid, &smp.cpu_usec);
	if (r == 0)
		r = budget__rss_kib_pid(NULL, (pid_t)pid, &smp.rss_kib);
	if (r < 0)
		return; /* the VMM is gone: the backend reports that */
	now = smp.t_us = nd_clock__mono_us();
	budget_sampler__step(&m->s, &smp, &d);
	m->pend.cpu_ms += d.cpu_ms;
	m->pend.mem_mib_s += d.mem_mib_s;
	if (d.peak_mib > m->pend.peak_mib)
		m->pend.peak_mib = d.peak_mib;
	if (!m->flush_us)
		m->flush_us = now;
	if (force || now - m->flush_us >= (int64_t)nd->meter_ms * 1000 * ND_METER_FLUSH_TICKS ||
	    pend_reaches_limit(nd, m))
		meter_flush(nd, m);
}

/*
 * A sample taken this recently already says what the VMM spent: a burst of tool calls
 * costs one /proc read and one transaction per ND_METER_CALL_GAP_US, not one per call.
 */
#define ND_METER_CALL_GAP_US 10000

void nd__meter_sandbox(struct nucleusd *nd, const struct sb_row *row)
{
	if (strcmp(row->state, "running") != 0 || row->vmm_pid <= 0)
		return;
	for (struct nd_meter *m = nd->meters; m; m = m->next)
		if (strcmp(m->id, row->id) == 0 && m->pid == row->vmm_pid && m->s.primed &&
		    nd_clock__mono_us() - m->s.last.t_us < ND_METER_CALL_GAP_US)
			return;
	meter_one(nd, row->id, row->vmm_pid, false);
}

static void meter_prune(struct nucleusd *nd)
{
	for (struct nd_meter **pp = &nd->meters; *pp;) {
		struct nd_meter *m = *pp;

		if (m->seen) {
			m->seen = false;
			pp = &m->next;
			continue;
		}
		*pp = m->next;
		meter_flush(nd, m); /* the sandbox ended: what it spent last still counts */
		meter_free(m);
	}
}

/*
 * The timer's queries read the sandboxes a page at a time, ordered by id and resumed
 * after the last id seen (a keyset cursor): nothing is left out however many sandboxes
 * run, and no statement is open while a page's sandboxes are metered, paused or stopped
 * (which writes to the rows being read).
 */
#define ND_TICK_PAGE 64

struct tick_row {
	char id[20];
	int64_t n;    /* vmm_pid (meter), ttl_seconds (TTL) */
	bool running; /* meter: 'running' (else 'paused') */
};

/* Up to ND_TICK_PAGE rows of @sql (?1 = the last id seen, ?2 = now, ?3 = page size). */
static int tick_page(struct nucleusd *nd, const char *sql, const char *after,
		     struct tick_row rows[ND_TICK_PAGE], size_t *ret_n)
{
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	int r, rc = SQLITE_DONE;

	r = store__stmt_text(nd->store, sql, after, &st);
	if (r < 0)
		return r;
	if (r == 0)
		r = store__errno(sqlite3_bind_int64(st, 2, nd_clock__wall_us()));
	if (r == 0)
		r = store__errno(sqlite3_bind_int(st, 3, ND_TICK_PAGE));
	while (r == 0 && n < ND_TICK_PAGE && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		snprintf(rows[n].id, sizeof(rows[n].id), "%s",
			 (const char *)sqlite3_column_text(st, 0));
		rows[n].n = sqlite3_column_int64(st, 1);
		rows[n++].running = sqlite3_column_int(st, 2) != 0;
	}
	if (r == 0 && rc != SQLITE_ROW)
		r = store__errno(rc);
	store__stmt_done(st);
	*ret_n = n;
	return r;
}

/* Runs @fn on every row of @sql, page by page; the first error ends the walk. */
static int tick_walk(struct nucleusd *nd, const char *sql,
		     void (*fn)(struct nucleusd *nd, const struct tick_row *row))
{
	struct tick_row rows[ND_TICK_PAGE];
	char after[20] = "";
	size_t n;
	int r;

	do {
		r = tick_page(nd, sql, after, rows, &n);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++)
			fn(nd, &rows[i]);
		if (n)
			memcpy(after, rows[n - 1].id, sizeof(after));
	} while (n == ND_TICK_PAGE);
	return 0;
}

static void ttl_stop(struct nucleusd *nd, const struct tick_row *row)
{
	char reason[96];

	snprintf(reason, sizeof(reason), "ttl_expired: ttl_seconds %lld passed", (long long)row->n);
	if (nd__stop_for(nd, row->id, reason) < 0)
		nd->m.meter_errors++; /* still expired: the next run tries again */
}

static void meter_row(struct nucleusd *nd, const struct tick_row *row)
{
	struct nd_meter *m;

	if (row->running) {
		meter_one(nd, row->id, row->n, false);
		return;
	}
	/* Paused: not metered; a fresh baseline when it runs again. */
	m = meter_get(nd, row->id, row->n);
	if (m) {
		m->seen = true;
		m->s.primed = false;
		meter_flush(nd, m);
	}
}

void nucleusd__meter_tick(struct nucleusd *nd)
{
	static const char ttl[] =
		"SELECT id, json_extract(spec, '$.ttl_seconds'), 0 FROM sandboxes "
		"WHERE state IN ('running', 'paused') AND id > ?1 AND "
		"json_extract(spec, '$.ttl_seconds') > 0 AND created_us + "
		"json_extract(spec, '$.ttl_seconds') * 1000000 <= ?2 "
		"ORDER BY id LIMIT ?3";
	static const char meter[] = "SELECT id, vmm_pid, state = 'running' FROM sandboxes WHERE "
				    "state IN ('running', 'paused') AND vmm_pid > 0 AND id > ?1 "
				    "ORDER BY id LIMIT ?3"; /* ?2 (now) unused */

	if (tick_walk(nd, ttl, ttl_stop) < 0)
		nd->m.meter_errors++;
	if (tick_walk(nd, meter, meter_row) < 0) {
		/* Not every sandbox was seen: pruning now would drop meters still in use. */
		nd->m.meter_errors++;
		return;
	}
	meter_prune(nd);
}

static void meter_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	nucleusd__meter_tick(arg);
}

/* ---- metrics ---- */

int nd__budget_metrics(struct nucleusd *nd, FILE *f)
{
	static const char sql[] = "SELECT kind, sum(spent) FROM budget_spent GROUP BY kind";
	int64_t spent[BUDGET__N_KINDS] = {0};
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = store__stmt(nd->store, sql, &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int k = budget_kind__from_name((const char *)sqlite3_column_text(st, 0));

		if (k >= 0)
			spent[k] = sqlite3_column_int64(st, 1);
	}
	r = store__errno(rc);
	store__stmt_done(st);
	if (r < 0)
		return r;
	fprintf(f, "# HELP nucleus_budget_spent_total Spent by all sandboxes, by budget kind "
		   "(ledger sum; usd_micro is micro-USD).\n"
		   "# TYPE nucleus_budget_spent_total counter\n");
	for (int k = 0; k < BUDGET__N_KINDS; k++)
		fprintf(f, "nucleus_budget_spent_total{kind=\"%s\"} %lld\n", budget_kind__name(k),
			(long long)spent[k]);
	fprintf(f, "# HELP nucleus_budget_exhaustions_total Budget enforcements (402 or pause) "
		   "by kind since the daemon started.\n"
		   "# TYPE nucleus_budget_exhaustions_total counter\n");
	for (int k = 0; k < BUDGET__N_KINDS; k++)
		fprintf(f, "nucleus_budget_exhaustions_total{kind=\"%s\"} %llu\n",
			budget_kind__name(k), (unsigned long long)nd->m.exhaustions[k]);
	fprintf(f,
		"# HELP nucleus_meter_errors_total Meter/TTL timer failures: reading the "
		"sandboxes, writing metered debits, stopping an expired sandbox (each retried).\n"
		"# TYPE nucleus_meter_errors_total counter\n"
		"nucleus_meter_errors_total %llu\n",
		(unsigned long long)nd->m.meter_errors);
	return 0;
}
