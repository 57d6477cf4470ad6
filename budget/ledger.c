// SPDX-License-Identifier: Apache-2.0
/*
 * The budget ledger over the daemon's store (table budget_ledger, budget/schema.c). One
 * row per debit, written inside the caller's transaction; balances are SUM(amount) per
 * kind, so whatever commits is exactly what was spent. Every statement is one of the
 * store's cached ones (store__stmt).
 *
 * Idempotency keys are per sandbox and kind: the stored idem_key is
 * "<sandbox>/<kind>/<client key>", so two sandboxes can use the same client key and a
 * report of several kinds (tokens + money) writes one row per kind under one key.
 *
 * Delegation uses the same keys: a child's carve is the parent's rows under key
 * "carve:CHILD", its return (credits, the only negative rows) under "return:CHILD";
 * a client's key may not begin with either.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sqlite3.h>

#include "budget/budget.h"
#include "nucleusd/clock.h"
#include "nucleusd/store.h"

#define IDEM_MAX   256
#define KEY_MAX	   80 /* "return:" and a sandbox id */
#define KEY_CARVE  "carve:"
#define KEY_RETURN "return:"

/*
 * CHARGE and CARVE are refused past the limit, METER and RETURN are not; RETURN's rows
 * are credits (negative), and its retry is a duplicate whatever it would return now.
 */
enum mode { MODE_CHARGE, MODE_METER, MODE_CARVE, MODE_RETURN };

static bool key_valid(const char *key)
{
	size_t n = 0;

	for (; key[n]; n++)
		if (key[n] < 0x21 || key[n] > 0x7e)
			return false;
	return n >= 1 && n <= 128;
}

static bool sandbox_valid(const char *sb)
{
	return sb && sb[0] && strlen(sb) <= 64 && !strchr(sb, '/');
}

/* Keys of delegation's rows, which only budget__carve and budget__return write. */
static bool key_reserved(const char *key)
{
	return strncmp(key, KEY_CARVE, strlen(KEY_CARVE)) == 0 ||
	       strncmp(key, KEY_RETURN, strlen(KEY_RETURN)) == 0;
}

/* A peak may reach its cap; the other kinds are used up when spent reaches the limit. */
static bool exhausted(enum budget_kind k, int64_t spent, int64_t limit)
{
	if (!limit)
		return false;
	return k == BUDGET_MEM_PEAK_MIB ? spent > limit : spent >= limit;
}

/* Runs @sql (rows of kind name, amount; ?1 = sandbox) into @out[kind]. Unknown kinds are
 * skipped. @out is written whatever happens; callers copy it out only on success. */
static int load_per_kind(struct store *s, const char *sql, const char *sandbox,
			 int64_t out[BUDGET__N_KINDS])
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = store__stmt_text(s, sql, sandbox, &st);
	if (r < 0)
		return r;
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int k = budget_kind__from_name((const char *)sqlite3_column_text(st, 0));

		if (k >= 0)
			out[k] = sqlite3_column_int64(st, 1);
	}
	if (r == 0)
		r = store__errno(rc);
	store__stmt_done(st);
	return r;
}

int budget__spent(struct store *s, const char *sandbox, struct budget_spent *ret)
{
	static const char sql[] = "SELECT kind, spent FROM budget_spent WHERE sandbox_id = ?1";
	struct budget_spent sp = {0};
	int r;

	if (!s || !sandbox)
		return -EINVAL;
	/* budget_spent = SUM(amount) per kind, kept by a trigger on every ledger insert */
	r = load_per_kind(s, sql, sandbox, sp.spent);
	if (r < 0)
		return r;
	*ret = sp;
	return 0;
}

static int idem_key(char *buf, const char *sandbox, int kind, const char *key)
{
	int n = snprintf(buf, IDEM_MAX, "%s/%s/%s", sandbox, budget_kind__name(kind), key);

	return n > 0 && n < IDEM_MAX ? 0 : -EINVAL;
}

/* Rows already written under @key: bit per kind in *found, their amounts in orig[]. */
static int lookup_key(struct store *s, const char *sandbox, const char *key, unsigned *found,
		      int64_t orig[BUDGET__N_KINDS])
{
	static const char sql[] = "SELECT amount FROM budget_ledger WHERE idem_key = ?1 "
				  "AND sandbox_id = ?2";
	sqlite3_stmt *st = NULL;
	char ik[IDEM_MAX];
	int r = 0;

	*found = 0;
	for (int k = 0; k < BUDGET__N_KINDS && r == 0; k++) {
		r = idem_key(ik, sandbox, k, key);
		if (r == 0)
			r = store__stmt(s, sql, &st);
		if (r < 0)
			break;
		r = store__errno(sqlite3_bind_text(st, 1, ik, -1, SQLITE_STATIC));
		if (r == 0)
			r = store__errno(sqlite3_bind_text(st, 2, sandbox, -1, SQLITE_STATIC));
		int rc = r < 0 ? SQLITE_OK : sqlite3_step(st);

		orig[k] = 0;
		if (rc == SQLITE_ROW) {
			*found |= 1u << k;
			orig[k] = sqlite3_column_int64(st, 0);
		} else if (r == 0) {
			r = store__errno(rc);
		}
		store__stmt_done(st);
	}
	return r;
}

struct rows {
	const char *sandbox;
	const int64_t *eff;
	unsigned want;
	const char *key, *reason;
};

static int insert_row(struct store *s, const struct rows *w, int kind, int64_t at)
{
	static const char sql[] = "INSERT INTO budget_ledger(sandbox_id, kind, amount, reason, "
				  "at_us, idem_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
	sqlite3_stmt *st = NULL;
	char ik[IDEM_MAX];
	int r;

	if (w->key) {
		r = idem_key(ik, w->sandbox, kind, w->key);
		if (r < 0)
			return r;
	}
	r = store__stmt_text(s, sql, w->sandbox, &st);
	if (r < 0)
		return r;
	if (r == 0)
		r = store__errno(
			sqlite3_bind_text(st, 2, budget_kind__name(kind), -1, SQLITE_STATIC));
	if (r == 0)
		r = store__errno(sqlite3_bind_int64(st, 3, w->eff[kind]));
	if (r == 0)
		r = store__errno(
			sqlite3_bind_text(st, 4, w->reason ? w->reason : "", -1, SQLITE_STATIC));
	if (r == 0)
		r = store__errno(sqlite3_bind_int64(st, 5, at));
	if (r == 0 && w->key)
		r = store__errno(sqlite3_bind_text(st, 6, ik, -1, SQLITE_STATIC));
	if (r == 0) {
		r = store__errno(sqlite3_step(st));
		if (r < 0 &&
		    sqlite3_extended_errcode(sqlite3_db_handle(st)) == SQLITE_CONSTRAINT_FOREIGNKEY)
			r = -ENOENT; /* no such sandbox */
	}
	store__stmt_done(st);
	return r;
}

static int write_rows_sp(struct store *s, void *arg)
{
	const struct rows *w = arg;
	int64_t at = nd_clock__wall_us();
	int r = 0;

	for (int k = 0; k < BUDGET__N_KINDS && r == 0; k++)
		if (w->want & (1u << k))
			r = insert_row(s, w, k, at);
	return r;
}

/* Writes the rows in a savepoint, so a failure half-way leaves the caller's tx clean. */
static int write_rows(struct store *s, const char *sandbox, const int64_t eff[BUDGET__N_KINDS],
		      unsigned want, const char *key, const char *reason)
{
	struct rows w = {sandbox, eff, want, key, reason};

	return store__savepoint(s, write_rows_sp, &w);
}

static int validate(struct store *s, const char *sandbox, const struct budget_debit *d, size_t n,
		    const char *key, enum mode mode, int64_t req[BUDGET__N_KINDS], unsigned *mask)
{
	bool delegation = mode == MODE_CARVE || mode == MODE_RETURN;

	/* a child with nothing to carve or return: no rows */
	if (!s || !sandbox_valid(sandbox) || !d || (n == 0 && !delegation) || n > BUDGET__N_KINDS)
		return -EINVAL;
	if (key && (!key_valid(key) || key_reserved(key) != delegation))
		return -EINVAL;
	if (!store__in_tx(s))
		return -EINVAL; /* the debit belongs in the caller's transaction */
	*mask = 0;
	memset(req, 0, sizeof(int64_t) * BUDGET__N_KINDS);
	for (size_t i = 0; i < n; i++) {
		if ((unsigned)d[i].kind >= BUDGET__N_KINDS || (*mask & (1u << d[i].kind)))
			return -EINVAL;
		if (d[i].amount < 0 || d[i].amount > BUDGET_AMOUNT_MAX)
			return -EINVAL;
		*mask |= 1u << d[i].kind;
		req[d[i].kind] = d[i].amount;
	}
	return 0;
}

/* Same key again: the same report (-> duplicate) or a different one (-EEXIST). */
static int duplicate(const int64_t req[BUDGET__N_KINDS], unsigned mask,
		     const int64_t orig[BUDGET__N_KINDS], unsigned found)
{
	for (int k = 0; k < BUDGET__N_KINDS; k++) {
		if (k == BUDGET_MEM_PEAK_MIB)
			continue; /* absolute reading, the row holds the rise */
		if ((found & (1u << k)) && !(mask & (1u << k)))
			return -EEXIST;
		if (req[k] != orig[k])
			return -EEXIST;
	}
	return 0;
}

static void result_init(struct budget_result *r, const struct budget_spent *s)
{
	memset(r, 0, sizeof(*r));
	r->exhausted = BUDGET__N_KINDS;
	r->after = *s;
}

static int debit(struct store *s, const char *sandbox, const struct budget_debit *d, size_t n,
		 const char *key, const char *reason, const struct budget_limits *limits,
		 enum mode mode, struct budget_result *ret)
{
	static const struct budget_limits none;
	int64_t req[BUDGET__N_KINDS], orig[BUDGET__N_KINDS], eff[BUDGET__N_KINDS] = {0};
	unsigned mask, found = 0, want = 0;
	int sign = mode == MODE_RETURN ? -1 : 1; /* a return's rows are credits */
	struct budget_spent sp;
	struct budget_result res;
	int r;

	limits = limits ? limits : &none;
	r = validate(s, sandbox, d, n, key, mode, req, &mask);
	if (r < 0)
		return r;
	r = budget__spent(s, sandbox, &sp);
	if (r < 0)
		return r;
	result_init(&res, &sp);
	if (key) {
		r = lookup_key(s, sandbox, key, &found, orig);
		if (r < 0)
			return r;
	}
	if (found) {
		/* a return is made once: its retry is told what the first one returned */
		r = mode == MODE_RETURN ? 0 : duplicate(req, mask, orig, found);
		if (r < 0)
			return r;
		res.status = BUDGET_DUPLICATE;
		for (int k = 0; k < BUDGET__N_KINDS; k++)
			res.charged[k] = sign * orig[k];
		goto done;
	}
	for (int k = 0; k < BUDGET__N_KINDS; k++) {
		if (!(mask & (1u << k)))
			continue;
		eff[k] = sign * req[k];
		if (k == BUDGET_MEM_PEAK_MIB)
			eff[k] = req[k] > sp.spent[k] ? req[k] - sp.spent[k] : 0;
		if ((mode == MODE_CHARGE || mode == MODE_CARVE) && limits->limit[k] &&
		    sp.spent[k] + eff[k] > limits->limit[k]) {
			res.status = BUDGET_REFUSED;
			res.exhausted = k;
			*ret = res;
			return -EDQUOT;
		}
		/* Zero rows only to remember a key; a peak that did not rise needs none. */
		if (eff[k] != 0 || (key && k != BUDGET_MEM_PEAK_MIB))
			want |= 1u << k;
	}
	r = want ? write_rows(s, sandbox, eff, want, key, reason) : 0;
	if (r < 0)
		return r;
	for (int k = 0; k < BUDGET__N_KINDS; k++) {
		res.charged[k] = sign * eff[k];
		res.after.spent[k] += eff[k];
	}
done:
	for (int k = 0; k < BUDGET__N_KINDS; k++)
		if (exhausted(k, res.after.spent[k], limits->limit[k]))
			res.over_mask |= 1u << k;
	*ret = res;
	return 0;
}

int budget__charge_many(struct store *s, const char *sandbox, const struct budget_debit *d,
			size_t n, const char *key, const char *reason,
			const struct budget_limits *limits, struct budget_result *ret)
{
	return debit(s, sandbox, d, n, key, reason, limits, MODE_CHARGE, ret);
}

int budget__charge(struct store *s, const char *sandbox, enum budget_kind kind, int64_t amount,
		   const char *key, const char *reason, const struct budget_limits *limits,
		   struct budget_result *ret)
{
	struct budget_debit d = {kind, amount};

	return debit(s, sandbox, &d, 1, key, reason, limits, MODE_CHARGE, ret);
}

int budget__meter(struct store *s, const char *sandbox, const struct budget_debit *d, size_t n,
		  const char *key, const char *reason, const struct budget_limits *limits,
		  struct budget_result *ret)
{
	return debit(s, sandbox, d, n, key, reason, limits, MODE_METER, ret);
}

int budget__exhaust(struct store *s, const char *sandbox, enum budget_kind kind, const char *reason,
		    const struct budget_limits *limits, struct budget_result *ret)
{
	struct budget_debit d = {kind, 0};
	struct budget_spent sp;
	int r;

	if (!s || !sandbox || !limits || (unsigned)kind >= BUDGET__N_KINDS ||
	    kind == BUDGET_MEM_PEAK_MIB)
		return -EINVAL;
	r = budget__spent(s, sandbox, &sp);
	if (r < 0)
		return r;
	if (limits->limit[kind] > sp.spent[kind])
		d.amount = limits->limit[kind] - sp.spent[kind];
	return debit(s, sandbox, &d, 1, NULL, reason, limits, MODE_METER, ret);
}

bool budget_kind__carved(enum budget_kind k)
{
	return (unsigned)k < BUDGET__N_KINDS && k != BUDGET_MEM_PEAK_MIB;
}

/* @prefix @child: the key (and reason) of a child's carve or return. */
static int child_key(char buf[KEY_MAX], const char *prefix, const char *parent, const char *child)
{
	int n;

	if (!sandbox_valid(parent) || !sandbox_valid(child) || strcmp(parent, child) == 0)
		return -EINVAL;
	n = snprintf(buf, KEY_MAX, "%s%s", prefix, child);
	return n > 0 && n < KEY_MAX ? 0 : -EINVAL;
}

int budget__carve(struct store *s, const char *parent, const char *child,
		  const struct budget_limits *parent_limits,
		  const struct budget_limits *child_limits, struct budget_result *ret)
{
	struct budget_debit d[BUDGET__N_KINDS];
	char key[KEY_MAX];
	size_t n = 0;
	int r;

	if (!child_limits)
		return -EINVAL;
	r = child_key(key, KEY_CARVE, parent, child);
	if (r < 0)
		return r;
	for (int k = 0; k < BUDGET__N_KINDS; k++)
		if (budget_kind__carved(k) && child_limits->limit[k])
			d[n++] = (struct budget_debit){k, child_limits->limit[k]};
	return debit(s, parent, d, n, key, key, parent_limits, MODE_CARVE, ret);
}

int budget__return(struct store *s, const char *parent, const char *child,
		   struct budget_result *ret)
{
	struct budget_debit d[BUDGET__N_KINDS];
	char carve[KEY_MAX], key[KEY_MAX];
	int64_t carved[BUDGET__N_KINDS];
	struct budget_spent sp;
	unsigned found;
	size_t n = 0;
	int r;

	r = child_key(carve, KEY_CARVE, parent, child);
	if (r == 0)
		r = child_key(key, KEY_RETURN, parent, child);
	if (r == 0 && (!s || !store__in_tx(s)))
		r = -EINVAL;
	if (r == 0)
		r = lookup_key(s, parent, carve, &found, carved);
	if (r == 0)
		r = budget__spent(s, child, &sp);
	if (r < 0)
		return r;
	/* what the carve gave and the child did not spend; an overspent kind returns 0 */
	for (int k = 0; k < BUDGET__N_KINDS; k++)
		if (found & (1u << k))
			d[n++] = (struct budget_debit){
				k, carved[k] > sp.spent[k] ? carved[k] - sp.spent[k] : 0};
	return debit(s, parent, d, n, key, key, NULL, MODE_RETURN, ret);
}

int budget__check(struct store *s, const char *sandbox, const struct budget_limits *limits,
		  enum budget_kind *ret_kind)
{
	struct budget_spent sp;
	int r;

	if (!limits)
		return 0;
	r = budget__spent(s, sandbox, &sp);
	if (r < 0)
		return r;
	for (int k = 0; k < BUDGET__N_KINDS; k++) {
		if (exhausted(k, sp.spent[k], limits->limit[k])) {
			if (ret_kind)
				*ret_kind = k;
			return -EDQUOT;
		}
	}
	return 0;
}

int budget__limits_save(struct store *s, const char *sandbox, const struct budget_limits *l)
{
	static const char sql[] = "INSERT INTO budget_limits(sandbox_id, kind, amount) "
				  "VALUES (?1, ?2, ?3) ON CONFLICT(sandbox_id, kind) "
				  "DO UPDATE SET amount = excluded.amount";
	sqlite3_stmt *st = NULL;
	int r = 0;

	if (!s || !sandbox || !l)
		return -EINVAL;
	for (int k = 0; k < BUDGET__N_KINDS && r == 0; k++) {
		if (!l->limit[k])
			continue;
		r = store__stmt(s, sql, &st);
		if (r < 0)
			break;
		r = store__errno(sqlite3_bind_text(st, 1, sandbox, -1, SQLITE_STATIC));
		if (r == 0)
			r = store__errno(
				sqlite3_bind_text(st, 2, budget_kind__name(k), -1, SQLITE_STATIC));
		if (r == 0)
			r = store__errno(sqlite3_bind_int64(st, 3, l->limit[k]));
		if (r == 0)
			r = store__errno(sqlite3_step(st));
		store__stmt_done(st);
	}
	return r;
}

int budget__limits_load(struct store *s, const char *sandbox, struct budget_limits *ret)
{
	static const char sql[] = "SELECT kind, amount FROM budget_limits WHERE sandbox_id = ?1";
	struct budget_limits l = {0};
	int r;

	if (!s || !sandbox)
		return -EINVAL;
	r = load_per_kind(s, sql, sandbox, l.limit);
	if (r < 0)
		return r;
	*ret = l;
	return 0;
}

static json_t *amount_or_null(bool set, int64_t v)
{
	return set ? json_integer(v) : json_null();
}

static int add_usd(json_t *o, const char *name, bool set, int64_t v)
{
	char buf[32];

	if (!set)
		return json_object_set_new(o, name, json_null());
	budget__usd_format(v, buf, sizeof(buf));
	return json_object_set_new(o, name, json_string(buf));
}

static json_t *kind_view(int k, int64_t limit, int64_t spent, int64_t carved)
{
	int64_t rem = limit > spent ? limit - spent : 0;
	bool set = limit != 0;
	json_t *o;

	o = json_pack("{soso*so*sbsI}", "limit", amount_or_null(set, limit), "spent",
		      json_integer(spent), "remaining", amount_or_null(set, rem), "exhausted",
		      exhausted(k, spent, limit), "carved", (json_int_t)carved);
	if (o && k == BUDGET_USD_MICRO &&
	    (add_usd(o, "limit_usd", set, limit) < 0 || add_usd(o, "spent_usd", true, spent) < 0 ||
	     add_usd(o, "remaining_usd", set, rem) < 0 ||
	     add_usd(o, "carved_usd", true, carved) < 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * Per kind, what @sandbox's carves for children not yet returned hold: the carve rows
 * (one range of the idem_key index per kind the sandbox has spent, which a carve is),
 * each with no return row of the same key (one lookup each). No scan of the ledger.
 * The upper bound is the key prefix with ':' raised to ';'.
 */
static const char carved_sql[] =
	"SELECT b.kind, (SELECT coalesce(sum(c.amount), 0) FROM budget_ledger c"
	"  WHERE c.idem_key > ?1 || '/' || b.kind || '/" KEY_CARVE "'"
	"  AND c.idem_key < ?1 || '/' || b.kind || '/carve;'"
	"  AND NOT EXISTS (SELECT 1 FROM budget_ledger r"
	"    WHERE r.idem_key = replace(c.idem_key, '/" KEY_CARVE "', '/" KEY_RETURN "')))"
	" FROM budget_spent b WHERE b.sandbox_id = ?1";

int budget__view(struct store *s, const char *sandbox, const struct budget_limits *limits,
		 json_t **ret)
{
	static const struct budget_limits none;
	int64_t carved[BUDGET__N_KINDS] = {0};
	json_t *o = NULL, *kinds, *ex;
	struct budget_spent sp;
	int r;

	limits = limits ? limits : &none;
	r = budget__spent(s, sandbox, &sp);
	if (r == 0)
		r = load_per_kind(s, carved_sql, sandbox, carved);
	if (r < 0)
		return r;
	o = json_pack("{sss{}s[]}", "sandbox", sandbox, "budgets", "exhausted");
	if (!o)
		return -ENOMEM;
	kinds = json_object_get(o, "budgets");
	ex = json_object_get(o, "exhausted");
	for (int k = 0; k < BUDGET__N_KINDS; k++) {
		json_t *v = kind_view(k, limits->limit[k], sp.spent[k], carved[k]);

		if (!v || json_object_set_new(kinds, budget_kind__name(k), v) < 0)
			goto nomem;
		if (exhausted(k, sp.spent[k], limits->limit[k]) &&
		    json_array_append_new(ex, json_string(budget_kind__name(k))) < 0)
			goto nomem;
	}
	*ret = o;
	return 0;
nomem:
	json_decref(o);
	return -ENOMEM;
}
