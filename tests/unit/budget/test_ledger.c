// SPDX-License-Identifier: Apache-2.0
/*
 * The ledger over the daemon's real schema: sums, idempotency, refusal, metering, views,
 * concurrent writers in several processes, and kill -9 between debits.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <sqlite3.h>

#include "budget/budget.h"
#include "nucleusd/store.h"
#include "tests/unit/budget/helpers.h"

static char dir[256];
static struct store *st;
static sqlite3 *db;
static const char *sb;

static void setup(void)
{
	th_tmpdir(dir, sizeof(dir));
	st = bt_store(dir);
	db = store__db(st);
	sb = bt_sandbox(db, 1);
}

static void teardown(void)
{
	store__free(st);
	th_rmrf(dir);
}

/* budget__charge in its own transaction, committed whatever the result. */
static int charge1(enum budget_kind k, int64_t amount, const char *key,
		   const struct budget_limits *l, struct budget_result *res)
{
	int r;

	bt_begin(db);
	r = budget__charge(st, sb, k, amount, key, "test", l, res);
	bt_commit(db);
	return r;
}

static int64_t spent(enum budget_kind k)
{
	struct budget_spent s;

	cr_assert_eq(budget__spent(st, sb, &s), 0);
	return s.spent[k];
}

/*
 * Tests that fork writers close the parent's store first: its checkpoint thread must
 * not exist at fork() (a child of a multi-threaded process may inherit a lock held by
 * another thread — under ASan, the allocator's — and hang).
 */
static void store_park(void)
{
	store__free(st);
	st = NULL;
	db = NULL;
}

static void store_unpark(void)
{
	st = bt_store(dir);
	db = store__db(st);
}

TestSuite(ledger, .init = setup, .fini = teardown);

Test(ledger, sums_per_kind_and_sandbox)
{
	const char *other = bt_sandbox(db, 2);
	struct budget_result res;
	struct budget_spent s;

	cr_assert_eq(charge1(BUDGET_TOKENS, 100, NULL, NULL, &res), 0);
	cr_assert_eq(charge1(BUDGET_TOKENS, 250, NULL, NULL, &res), 0);
	cr_expect_eq(res.status, BUDGET_CHARGED);
	cr_expect_eq(res.charged[BUDGET_TOKENS], 250);
	cr_expect_eq(res.after.spent[BUDGET_TOKENS], 350);
	cr_assert_eq(charge1(BUDGET_USD_MICRO, 7, NULL, NULL, &res), 0);
	bt_begin(db);
	cr_assert_eq(budget__charge(st, other, BUDGET_TOKENS, 1000, NULL, "x", NULL, &res), 0);
	bt_commit(db);
	cr_assert_eq(budget__spent(st, sb, &s), 0);
	cr_expect_eq(s.spent[BUDGET_TOKENS], 350);
	cr_expect_eq(s.spent[BUDGET_USD_MICRO], 7);
	cr_expect_eq(s.spent[BUDGET_CPU_MS], 0);
	cr_expect_eq(bt_int(db, "SELECT count(*) FROM budget_ledger"), 4);
	cr_expect_eq(bt_int(db, "SELECT SUM(amount) FROM budget_ledger WHERE kind = 'tokens'"),
		     1350);
}

Test(ledger, debit_only_inside_a_transaction_and_rolled_back_with_it)
{
	struct budget_result res;

	cr_expect_eq(budget__charge(st, sb, BUDGET_TOKENS, 5, NULL, "x", NULL, &res), -EINVAL);
	bt_begin(db);
	cr_assert_eq(budget__charge(st, sb, BUDGET_TOKENS, 5, "k", "x", NULL, &res), 0);
	bt_rollback(db);
	cr_expect_eq(spent(BUDGET_TOKENS), 0, "the debit went with the caller's rollback");
	cr_assert_eq(charge1(BUDGET_TOKENS, 5, "k", NULL, &res), 0);
	cr_expect_eq(res.status, BUDGET_CHARGED, "a rolled-back key is not a duplicate");
}

Test(ledger, bad_arguments)
{
	struct budget_result res;
	struct budget_debit twice[2] = {{BUDGET_TOKENS, 1}, {BUDGET_TOKENS, 2}};

	bt_begin(db);
	cr_expect_eq(budget__charge(st, sb, BUDGET_TOKENS, -1, NULL, "x", NULL, &res), -EINVAL);
	cr_expect_eq(budget__charge(st, sb, BUDGET__N_KINDS, 1, NULL, "x", NULL, &res), -EINVAL);
	cr_expect_eq(budget__charge(st, sb, BUDGET_TOKENS, 1, "", "x", NULL, &res), -EINVAL);
	cr_expect_eq(budget__charge(st, sb, BUDGET_TOKENS, 1, "a b", "x", NULL, &res), -EINVAL);
	cr_expect_eq(budget__charge_many(st, sb, twice, 2, NULL, "x", NULL, &res), -EINVAL);
	cr_expect_eq(budget__charge(st, "sb-nope", BUDGET_TOKENS, 1, NULL, "x", NULL, &res),
		     -ENOENT, "the sandbox must exist (foreign key)");
	bt_commit(db);
	cr_expect_eq(bt_int(db, "SELECT count(*) FROM budget_ledger"), 0);
}

Test(ledger, idempotent_retry_is_charged_once)
{
	struct budget_limits l = {0};
	struct budget_result res;

	l.limit[BUDGET_TOKENS] = 1000;
	cr_assert_eq(charge1(BUDGET_TOKENS, 400, "report-1", &l, &res), 0);
	cr_expect_eq(res.status, BUDGET_CHARGED);
	cr_assert_eq(charge1(BUDGET_TOKENS, 400, "report-1", &l, &res), 0);
	cr_expect_eq(res.status, BUDGET_DUPLICATE);
	cr_expect_eq(res.charged[BUDGET_TOKENS], 400, "the original amount is reported");
	cr_expect_eq(res.after.spent[BUDGET_TOKENS], 400);
	cr_expect_eq(spent(BUDGET_TOKENS), 400);
	/* The same key with another amount is a conflict, not a silent duplicate. */
	cr_expect_eq(charge1(BUDGET_TOKENS, 401, "report-1", &l, &res), -EEXIST);
	cr_expect_eq(charge1(BUDGET_USD_MICRO, 400, "report-1", &l, &res), -EEXIST);
	/* Keys are per sandbox. */
	bt_begin(db);
	cr_assert_eq(budget__charge(st, bt_sandbox(db, 9), BUDGET_TOKENS, 400, "report-1", "x", &l,
				    &res),
		     0);
	cr_expect_eq(res.status, BUDGET_CHARGED);
	bt_commit(db);
	cr_expect_eq(spent(BUDGET_TOKENS), 400);
}

Test(ledger, over_the_limit_is_refused_and_later_reports_too)
{
	struct budget_limits l = {0};
	struct budget_result res;

	l.limit[BUDGET_TOKENS] = 1000;
	cr_assert_eq(charge1(BUDGET_TOKENS, 600, "a", &l, &res), 0);
	cr_expect_eq(charge1(BUDGET_TOKENS, 600, "b", &l, &res), -EDQUOT);
	cr_expect_eq(res.status, BUDGET_REFUSED);
	cr_expect_eq(res.exhausted, BUDGET_TOKENS);
	cr_expect_eq(res.after.spent[BUDGET_TOKENS], 600);
	cr_expect_eq(charge1(BUDGET_TOKENS, 401, "c", &l, &res), -EDQUOT);
	cr_expect_eq(charge1(BUDGET_TOKENS, 600, "b", &l, &res), -EDQUOT,
		     "a refused key was not remembered as charged");
	cr_expect_eq(spent(BUDGET_TOKENS), 600);
	cr_expect_eq(bt_int(db, "SELECT count(*) FROM budget_ledger"), 1, "refusals write nothing");
	/* Exactly up to the limit is allowed; then the sandbox's calls are gated. */
	cr_assert_eq(budget__check(st, sb, &l, NULL), 0);
	cr_assert_eq(charge1(BUDGET_TOKENS, 400, "d", &l, &res), 0);
	cr_expect(res.over_mask & (1u << BUDGET_TOKENS));
	enum budget_kind k = BUDGET__N_KINDS;

	cr_expect_eq(budget__check(st, sb, &l, &k), -EDQUOT);
	cr_expect_eq(k, BUDGET_TOKENS);
	cr_expect_eq(charge1(BUDGET_TOKENS, 1, "e", &l, &res), -EDQUOT);
	cr_expect_eq(spent(BUDGET_TOKENS), 1000);
}

Test(ledger, refused_usage_report_can_exhaust_the_budget_for_later_calls)
{
	struct budget_limits l = {0};
	struct budget_result res;
	enum budget_kind k = BUDGET__N_KINDS;

	l.limit[BUDGET_TOKENS] = 1000;
	cr_assert_eq(charge1(BUDGET_TOKENS, 600, "a", &l, &res), 0);
	/* The harness reports 600 tokens it already used: refused, then exhausted. */
	bt_begin(db);
	cr_assert_eq(budget__charge(st, sb, BUDGET_TOKENS, 600, "b", "usage", &l, &res), -EDQUOT);
	cr_assert_eq(budget__exhaust(st, sb, BUDGET_TOKENS, "refused usage report b", &l, &res), 0);
	cr_expect_eq(res.charged[BUDGET_TOKENS], 400);
	bt_commit(db);
	cr_expect_eq(spent(BUDGET_TOKENS), 1000);
	cr_expect_eq(budget__check(st, sb, &l, &k), -EDQUOT, "later calls are refused");
	cr_expect_eq(k, BUDGET_TOKENS);
	cr_expect_eq(charge1(BUDGET_TOKENS, 1, "c", &l, &res), -EDQUOT);
	cr_expect_eq(charge1(BUDGET_TOKENS, 600, "b", &l, &res), -EDQUOT, "its retry too");
	bt_begin(db);
	cr_assert_eq(budget__exhaust(st, sb, BUDGET_TOKENS, "again", &l, &res), 0);
	bt_commit(db);
	cr_expect_eq(spent(BUDGET_TOKENS), 1000, "exhausting twice adds nothing");
	cr_expect_eq(bt_int(db, "SELECT count(*) FROM budget_ledger"), 2);
}

Test(ledger, several_kinds_all_or_nothing)
{
	struct budget_limits l = {0};
	struct budget_result res;
	struct budget_debit d[2] = {{BUDGET_TOKENS, 500}, {BUDGET_USD_MICRO, 3000}};

	l.limit[BUDGET_USD_MICRO] = 5000;
	bt_begin(db);
	cr_assert_eq(budget__charge_many(st, sb, d, 2, "u1", "usage", &l, &res), 0);
	cr_expect_eq(budget__charge_many(st, sb, d, 2, "u2", "usage", &l, &res), -EDQUOT);
	cr_expect_eq(res.exhausted, BUDGET_USD_MICRO);
	cr_assert_eq(budget__charge_many(st, sb, d, 2, "u1", "usage", &l, &res), 0);
	cr_expect_eq(res.status, BUDGET_DUPLICATE);
	cr_expect_eq(res.charged[BUDGET_USD_MICRO], 3000);
	cr_expect_eq(budget__charge_many(st, sb, d, 1, "u1", "usage", &l, &res), -EEXIST,
		     "the key was used for tokens + money, not tokens only");
	bt_commit(db);
	cr_expect_eq(spent(BUDGET_TOKENS), 500, "the refused report charged no tokens either");
	cr_expect_eq(spent(BUDGET_USD_MICRO), 3000);
}

Test(ledger, metered_usage_is_recorded_and_flags_exhaustion)
{
	struct budget_limits l = {0};
	struct budget_result res;
	struct budget_debit d[3] = {
		{BUDGET_CPU_MS, 700}, {BUDGET_MEM_MIB_S, 10}, {BUDGET_MEM_PEAK_MIB, 300}};

	l.limit[BUDGET_CPU_MS] = 1000;
	l.limit[BUDGET_MEM_PEAK_MIB] = 400;
	bt_begin(db);
	cr_assert_eq(budget__meter(st, sb, d, 3, NULL, "sample", &l, &res), 0);
	cr_expect_eq(res.over_mask, 0);
	d[2].amount = 250; /* peak fell: no row, the high-water mark stays 300 */
	cr_assert_eq(budget__meter(st, sb, d, 3, NULL, "sample", &l, &res), 0);
	cr_expect_eq(res.charged[BUDGET_MEM_PEAK_MIB], 0);
	cr_expect(res.over_mask & (1u << BUDGET_CPU_MS), "1400 ms > 1000 ms: recorded, flagged");
	d[2].amount = 450;
	cr_assert_eq(budget__meter(st, sb, d, 3, NULL, "sample", &l, &res), 0);
	cr_expect_eq(res.charged[BUDGET_MEM_PEAK_MIB], 150);
	cr_expect(res.over_mask & (1u << BUDGET_MEM_PEAK_MIB));
	bt_commit(db);
	cr_expect_eq(spent(BUDGET_CPU_MS), 2100);
	cr_expect_eq(spent(BUDGET_MEM_MIB_S), 30);
	cr_expect_eq(spent(BUDGET_MEM_PEAK_MIB), 450);
	cr_expect_eq(bt_int(db, "SELECT count(*) FROM budget_ledger WHERE kind = "
				"'mem_peak_mib'"),
		     2);
}

Test(ledger, limits_saved_and_view)
{
	struct budget_limits l = {0}, back;
	struct budget_result res;
	json_t *v = NULL, *usd;

	l.limit[BUDGET_TOKENS] = 100;
	l.limit[BUDGET_USD_MICRO] = 1500000;
	bt_begin(db);
	cr_assert_eq(budget__limits_save(st, sb, &l), 0);
	bt_commit(db);
	cr_assert_eq(budget__limits_load(st, sb, &back), 0);
	cr_expect_eq(memcmp(&l, &back, sizeof(l)), 0);
	cr_assert_eq(charge1(BUDGET_TOKENS, 100, NULL, &back, &res), 0);
	cr_assert_eq(charge1(BUDGET_USD_MICRO, 250000, NULL, &back, &res), 0);
	cr_assert_eq(budget__view(st, sb, &back, &v), 0);
	cr_expect_str_eq(json_string_value(json_object_get(v, "sandbox")), sb);
	json_t *tok = json_object_get(json_object_get(v, "budgets"), "tokens");

	cr_expect_eq(json_integer_value(json_object_get(tok, "limit")), 100);
	cr_expect_eq(json_integer_value(json_object_get(tok, "spent")), 100);
	cr_expect_eq(json_integer_value(json_object_get(tok, "remaining")), 0);
	cr_expect(json_is_true(json_object_get(tok, "exhausted")));
	json_t *cpu = json_object_get(json_object_get(v, "budgets"), "cpu_ms");

	cr_expect(json_is_null(json_object_get(cpu, "limit")));
	cr_expect(json_is_null(json_object_get(cpu, "remaining")));
	usd = json_object_get(json_object_get(v, "budgets"), "usd_micro");
	cr_expect_eq(json_integer_value(json_object_get(usd, "remaining")), 1250000);
	cr_expect_str_eq(json_string_value(json_object_get(usd, "remaining_usd")), "1.250000");
	cr_expect_str_eq(json_string_value(json_object_get(usd, "spent_usd")), "0.250000");
	cr_expect_eq(json_array_size(json_object_get(v, "exhausted")), 1);
	cr_expect_str_eq(json_string_value(json_array_get(json_object_get(v, "exhausted"), 0)),
			 "tokens");
	json_decref(v);
}

/* ---- several processes, one WAL database ------------------------------------------- */

#define WRITERS 4
#define CHARGES 60

/* A writer's own connection: a store of its own on the same database. */
static struct store *open_conn(const char *path)
{
	struct store *c = NULL;

	return bt_store_open(path, &c) == 0 ? c : NULL;
}

struct charge_arg {
	const char *sandbox, *key;
	int64_t amount;
	struct budget_result res;
};

static int charge_tx(struct store *c, void *arg)
{
	struct charge_arg *a = arg;

	return budget__charge(c, a->sandbox, BUDGET_TOKENS, a->amount, a->key, "w", NULL, &a->res);
}

/* One charge in its own BEGIN IMMEDIATE transaction, retried while the database is busy. */
static int charge_retry(struct store *c, const char *sandbox, int64_t amount, const char *key)
{
	struct charge_arg a = {sandbox, key, amount, {0}};

	for (int attempt = 0; attempt < 1000; attempt++) {
		int r = store__tx(c, charge_tx, &a);

		if (r == -EBUSY)
			continue;
		return r < 0 ? r : (int)a.res.status;
	}
	return -EBUSY;
}

static int writer(const char *path, const char *sandbox, int w)
{
	struct store *c = open_conn(path);
	char key[64];
	int dups = 0;

	if (!c)
		return 100;
	for (int i = 0; i < CHARGES; i++) {
		snprintf(key, sizeof(key), "w%d-%d", w, i);
		if (charge_retry(c, sandbox, i + 1, key) != BUDGET_CHARGED)
			return 101;
		/* Every third report is retried, as a client whose answer got lost would. */
		if (i % 3 == 0 && charge_retry(c, sandbox, i + 1, key) == BUDGET_DUPLICATE)
			dups++;
	}
	store__free(c);
	return dups == (CHARGES + 2) / 3 ? 0 : 102;
}

Test(ledger, concurrent_processes_sum_exactly)
{
	char path[512];
	pid_t pids[WRITERS];
	int status;

	snprintf(path, sizeof(path), "%s/nucleus.db", dir);
	store_park();
	for (int w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		cr_assert_geq(pids[w], 0);
		if (pids[w] == 0)
			_exit(writer(path, sb, w));
	}
	for (int w = 0; w < WRITERS; w++) {
		cr_assert_eq(waitpid(pids[w], &status, 0), pids[w]);
		cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d: status %d", w,
			  status);
	}
	store_unpark();
	/* Each writer charged 1 + 2 + ... + CHARGES once. */
	cr_expect_eq(spent(BUDGET_TOKENS), (int64_t)WRITERS * CHARGES * (CHARGES + 1) / 2);
	cr_expect_eq(bt_int(db, "SELECT count(*) FROM budget_ledger"), WRITERS * CHARGES);
}

struct writer_arg {
	const char *path, *sandbox;
	int w, rc;
};

static void *writer_thread(void *p)
{
	struct writer_arg *a = p;

	a->rc = writer(a->path, a->sandbox, a->w);
	return NULL;
}

Test(ledger, concurrent_threads_with_own_connections_sum_exactly)
{
	struct writer_arg args[WRITERS];
	pthread_t th[WRITERS];
	char path[512];

	snprintf(path, sizeof(path), "%s/nucleus.db", dir);
	for (int w = 0; w < WRITERS; w++) {
		args[w] = (struct writer_arg){path, sb, w, -1};
		cr_assert_eq(pthread_create(&th[w], NULL, writer_thread, &args[w]), 0);
	}
	for (int w = 0; w < WRITERS; w++) {
		pthread_join(th[w], NULL);
		cr_expect_eq(args[w].rc, 0, "writer thread %d", w);
	}
	cr_expect_eq(spent(BUDGET_TOKENS), (int64_t)WRITERS * CHARGES * (CHARGES + 1) / 2);
	cr_expect_eq(bt_int(db, "SELECT count(*) FROM budget_ledger"), WRITERS * CHARGES);
}

/* ---- kill -9 between debits ----------------------------------------------------------- */

static int endless_writer(const char *path, const char *sandbox)
{
	struct store *c = open_conn(path);
	char key[64];

	if (!c)
		return 100;
	for (int i = 0; i < 1000000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		if (charge_retry(c, sandbox, 7, key) != BUDGET_CHARGED)
			return 101;
	}
	return 0;
}

Test(ledger, kill_9_between_debits_loses_and_doubles_nothing)
{
	char path[512], key[64];
	struct budget_result res;
	int64_t n;
	int status;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/nucleus.db", dir);
	store_park();
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(endless_writer(path, sb));
	/* Wait for some commits (no time assumption: poll the ledger), on a plain connection. */
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	while (bt_int(db, "SELECT count(*) FROM budget_ledger") < 40) {
		cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "writer died: %d", status);
		usleep(2000);
	}
	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	sqlite3_close(db);

	store_unpark(); /* reopen, as the daemon's restart would */
	n = bt_int(db, "SELECT count(*) FROM budget_ledger");
	cr_expect_eq(spent(BUDGET_TOKENS), 7 * n, "balance = the ledger rows");
	cr_expect_eq(bt_int(db, "SELECT count(DISTINCT idem_key) FROM budget_ledger"), n);
	/* The commits form a prefix k0..k(n-1): nothing lost in between. */
	cr_expect_eq(bt_int(db, "SELECT max(CAST(substr(idem_key, 29) AS INTEGER)) FROM "
				"budget_ledger"),
		     n - 1);
	/* The client retries every report it sent, plus ten new ones: each charged once. */
	for (int64_t i = 0; i < n + 10; i++) {
		snprintf(key, sizeof(key), "k%lld", (long long)i);
		cr_assert_eq(charge1(BUDGET_TOKENS, 7, key, NULL, &res), 0);
		cr_expect_eq(res.status, i < n ? BUDGET_DUPLICATE : BUDGET_CHARGED, "%s", key);
	}
	cr_expect_eq(spent(BUDGET_TOKENS), 7 * (n + 10));
}

/*
 * Balances are read from budget_spent, which a trigger keeps equal to SUM(amount) of the
 * ledger in the same transaction (rollbacks, refused and duplicate debits, peaks
 * included); the ledger itself is append-only.
 */
Test(ledger, running_balance_equals_the_ledger_and_rows_are_append_only)
{
	struct budget_limits l = {.limit = {[BUDGET_TOKENS] = 1000}};
	struct budget_debit peak = {BUDGET_MEM_PEAK_MIB, 0};
	struct budget_result res;

	for (int i = 1; i <= 60; i++) {
		bt_begin(db);
		budget__charge(st, sb, BUDGET_TOKENS, i, i % 3 ? NULL : "same", "t", &l, &res);
		peak.amount = (i * 37) % 500;
		cr_assert_eq(budget__meter(st, sb, &peak, 1, NULL, "meter", NULL, &res), 0);
		if (i % 7 == 0)
			bt_rollback(db);
		else
			bt_commit(db);
	}
	for (int k = 0; k < BUDGET__N_KINDS; k++) {
		char sql[160];

		snprintf(sql, sizeof(sql),
			 "SELECT COALESCE(SUM(amount), 0) FROM budget_ledger WHERE sandbox_id = "
			 "'%s' AND kind = '%s'",
			 sb, budget_kind__name(k));
		cr_expect_eq(spent(k), bt_int(db, sql), "%s", budget_kind__name(k));
	}
	cr_expect_gt(spent(BUDGET_TOKENS), 0);
	cr_expect_leq(spent(BUDGET_TOKENS), 1000);
	cr_expect_eq(spent(BUDGET_MEM_PEAK_MIB), 499, "the highest peak");
	cr_expect_neq(sqlite3_exec(db, "UPDATE budget_ledger SET amount = 0", NULL, NULL, NULL),
		      SQLITE_OK);
	cr_expect_neq(sqlite3_exec(db, "DELETE FROM budget_ledger", NULL, NULL, NULL), SQLITE_OK);
	cr_expect_gt(bt_int(db, "SELECT count(*) FROM budget_ledger"), 0);
}

/* ---- delegation: carve out of the parent, return what the child did not spend ------- */

TestSuite(delegation, .init = setup, .fini = teardown);

static int carve1(const char *parent, const char *child, const struct budget_limits *pl,
		  const struct budget_limits *cl, struct budget_result *res)
{
	int r;

	bt_begin(db);
	r = budget__carve(st, parent, child, pl, cl, res);
	bt_commit(db);
	return r;
}

static int return1(const char *parent, const char *child, struct budget_result *res)
{
	int r;

	bt_begin(db);
	r = budget__return(st, parent, child, res);
	bt_commit(db);
	return r;
}

/* Rows of the ledger whose reason is @prefix@child. */
static int64_t rows_of(const char *prefix, const char *child)
{
	char sql[200];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM budget_ledger WHERE reason = '%s%s'",
		 prefix, child);
	return bt_int(db, sql);
}

static int64_t spent_of(const char *sandbox, enum budget_kind k)
{
	struct budget_spent s;

	cr_assert_eq(budget__spent(st, sandbox, &s), 0);
	return s.spent[k];
}

/* A child's own spending, as the daemon would write it (a charge, or metered). */
static void child_spends(const char *child, enum budget_kind k, int64_t amount, bool metered)
{
	struct budget_debit d = {k, amount};
	struct budget_result res;

	bt_begin(db);
	cr_assert_eq(metered ? budget__meter(st, child, &d, 1, NULL, "meter", NULL, &res)
			     : budget__charge(st, child, k, amount, NULL, "tool:x", NULL, &res),
		     0);
	bt_commit(db);
}

Test(delegation, carve_within_the_parent_limits)
{
	const char *child = bt_sandbox(db, 2);
	struct budget_limits pl = {.limit = {[BUDGET_TOKENS] = 1000, [BUDGET_USD_MICRO] = 5000000}};
	struct budget_limits cl = {.limit = {[BUDGET_TOKENS] = 300, [BUDGET_USD_MICRO] = 1000000}};
	struct budget_result res;

	cr_assert_eq(charge1(BUDGET_TOKENS, 100, NULL, &pl, &res), 0);
	cr_assert_eq(carve1(sb, child, &pl, &cl, &res), 0);
	cr_expect_eq(res.status, BUDGET_CHARGED);
	cr_expect_eq(res.charged[BUDGET_TOKENS], 300);
	cr_expect_eq(res.charged[BUDGET_USD_MICRO], 1000000);
	cr_expect_eq(res.after.spent[BUDGET_TOKENS], 400);
	cr_expect_eq(res.after.spent[BUDGET_USD_MICRO], 1000000);
	cr_expect_eq(rows_of("carve:", child), 2, "a row per carved kind");
	cr_expect_eq(spent_of(sb, BUDGET_TOKENS), 400);
	cr_expect_eq(spent_of(child, BUDGET_TOKENS), 0, "the child starts with nothing spent");

	/* the same carve again (a retried create) writes nothing */
	cr_assert_eq(carve1(sb, child, &pl, &cl, &res), 0);
	cr_expect_eq(res.status, BUDGET_DUPLICATE);
	cr_expect_eq(res.charged[BUDGET_TOKENS], 300);
	cr_expect_eq(res.after.spent[BUDGET_TOKENS], 400);
	cr_expect_eq(rows_of("carve:", child), 2);
	cl.limit[BUDGET_TOKENS] = 50;
	bt_begin(db);
	cr_expect_eq(budget__carve(st, sb, child, &pl, &cl, &res), -EEXIST, "other amounts");
	bt_commit(db);
	cr_expect_eq(spent_of(sb, BUDGET_TOKENS), 400);
}

Test(delegation, carve_past_the_parent_remaining_writes_nothing)
{
	const char *child = bt_sandbox(db, 2);
	struct budget_limits pl = {.limit = {[BUDGET_TOKENS] = 1000, [BUDGET_USD_MICRO] = 1000}};
	struct budget_limits cl = {.limit = {[BUDGET_TOKENS] = 201, [BUDGET_USD_MICRO] = 10}};
	struct budget_result res;

	cr_assert_eq(charge1(BUDGET_TOKENS, 800, NULL, &pl, &res), 0);
	bt_begin(db);
	cr_expect_eq(budget__carve(st, sb, child, &pl, &cl, &res), -EDQUOT);
	bt_commit(db);
	cr_expect_eq(res.status, BUDGET_REFUSED);
	cr_expect_eq(res.exhausted, BUDGET_TOKENS, "names the kind the parent lacks");
	cr_expect_eq(rows_of("carve:", child), 0, "all or nothing: money was not carved either");
	cr_expect_eq(spent_of(sb, BUDGET_TOKENS), 800);
	cr_expect_eq(spent_of(sb, BUDGET_USD_MICRO), 0);

	/* exactly what is left can be carved, and the refused carve left no key behind */
	cl.limit[BUDGET_TOKENS] = 200;
	cr_assert_eq(carve1(sb, child, &pl, &cl, &res), 0);
	cr_expect_eq(res.status, BUDGET_CHARGED);
	cr_expect_eq(res.after.spent[BUDGET_TOKENS], 1000);
	cr_expect_eq(budget__check(st, sb, &pl, NULL), -EDQUOT, "the parent has nothing left");
}

Test(delegation, carve_of_a_kind_the_parent_does_not_limit)
{
	const char *child = bt_sandbox(db, 2);
	struct budget_limits pl = {.limit = {[BUDGET_TOKENS] = 10}};
	struct budget_limits cl = {.limit = {[BUDGET_CPU_MS] = BUDGET_AMOUNT_MAX}};
	struct budget_result res;

	cr_assert_eq(carve1(sb, child, &pl, &cl, &res), 0);
	cr_expect_eq(res.charged[BUDGET_CPU_MS], BUDGET_AMOUNT_MAX);
	cr_expect_eq(spent_of(sb, BUDGET_CPU_MS), BUDGET_AMOUNT_MAX, "carved all the same");
	cr_expect_eq(budget__check(st, sb, &pl, NULL), 0, "an unlimited kind is never exhausted");
	child_spends(child, BUDGET_CPU_MS, 1234, true);
	cr_assert_eq(return1(sb, child, &res), 0);
	cr_expect_eq(res.charged[BUDGET_CPU_MS], BUDGET_AMOUNT_MAX - 1234);
	cr_expect_eq(spent_of(sb, BUDGET_CPU_MS), 1234, "the parent paid what the child used");

	/* a parent with no limits at all (NULL) */
	child = bt_sandbox(db, 3);
	cr_assert_eq(carve1(sb, child, NULL, &cl, &res), 0);
	cr_expect_eq(res.after.spent[BUDGET_CPU_MS], 1234 + BUDGET_AMOUNT_MAX);
}

Test(delegation, return_credits_what_the_child_did_not_spend)
{
	const char *child = bt_sandbox(db, 2);
	struct budget_limits pl = {.limit = {[BUDGET_TOKENS] = 1000, [BUDGET_USD_MICRO] = 5000000}};
	struct budget_limits cl = {.limit = {[BUDGET_TOKENS] = 300, [BUDGET_USD_MICRO] = 1000000}};
	struct budget_result res;
	char sql[200];

	cr_assert_eq(charge1(BUDGET_TOKENS, 100, NULL, &pl, &res), 0);
	cr_assert_eq(carve1(sb, child, &pl, &cl, &res), 0);
	child_spends(child, BUDGET_TOKENS, 120, false);
	child_spends(child, BUDGET_USD_MICRO, 250000, false);
	cr_assert_eq(return1(sb, child, &res), 0);
	cr_expect_eq(res.status, BUDGET_CHARGED);
	cr_expect_eq(res.charged[BUDGET_TOKENS], 180, "returned amounts are positive");
	cr_expect_eq(res.charged[BUDGET_USD_MICRO], 750000);
	cr_expect_eq(res.charged[BUDGET_CPU_MS], 0, "not carved, not returned");
	cr_expect_eq(res.after.spent[BUDGET_TOKENS], 100 + 120);
	cr_expect_eq(res.after.spent[BUDGET_USD_MICRO], 250000);
	cr_expect_eq(rows_of("return:", child), 2, "a row per carved kind");
	snprintf(sql, sizeof(sql),
		 "SELECT amount FROM budget_ledger WHERE reason = 'return:%s' AND kind = 'tokens'",
		 child);
	cr_expect_eq(bt_int(db, sql), -180, "a credit");
	cr_expect_eq(spent_of(sb, BUDGET_TOKENS),
		     bt_int(db, "SELECT SUM(amount) FROM budget_ledger WHERE sandbox_id = "
				"'sb-0000000000000001' AND kind = 'tokens'"),
		     "budget_spent stays SUM(amount)");
	cr_expect_eq(spent_of(child, BUDGET_TOKENS), 120, "the child's own rows are untouched");
}

Test(delegation, return_of_an_overspent_metered_kind_is_zero)
{
	const char *child = bt_sandbox(db, 2);
	struct budget_limits pl = {.limit = {[BUDGET_CPU_MS] = 10000, [BUDGET_TOKENS] = 100}};
	struct budget_limits cl = {.limit = {[BUDGET_CPU_MS] = 1000, [BUDGET_TOKENS] = 50}};
	struct budget_result res;

	cr_assert_eq(carve1(sb, child, &pl, &cl, &res), 0);
	child_spends(child, BUDGET_CPU_MS, 1500, true); /* metering overshoots its limit */
	child_spends(child, BUDGET_TOKENS, 10, false);
	cr_assert_eq(return1(sb, child, &res), 0);
	cr_expect_eq(res.charged[BUDGET_CPU_MS], 0);
	cr_expect_eq(res.charged[BUDGET_TOKENS], 40);
	cr_expect_eq(spent_of(sb, BUDGET_CPU_MS), 1000,
		     "the carve, no more: the overshoot is "
		     "the child's");
	cr_expect_eq(spent_of(sb, BUDGET_TOKENS), 10);
	cr_expect_eq(rows_of("return:", child), 2, "the 0 row records the return too");
}

Test(delegation, a_second_return_writes_nothing)
{
	const char *child = bt_sandbox(db, 2);
	struct budget_limits cl = {.limit = {[BUDGET_TOKENS] = 300}};
	struct budget_result res;
	int64_t n;

	cr_assert_eq(carve1(sb, child, NULL, &cl, &res), 0);
	child_spends(child, BUDGET_TOKENS, 100, false);
	cr_assert_eq(return1(sb, child, &res), 0);
	cr_expect_eq(res.charged[BUDGET_TOKENS], 200);
	n = bt_int(db, "SELECT count(*) FROM budget_ledger");
	child_spends(child, BUDGET_TOKENS, 50, false); /* late metering after the end */
	cr_assert_eq(return1(sb, child, &res), 0);
	cr_expect_eq(res.status, BUDGET_DUPLICATE);
	cr_expect_eq(res.charged[BUDGET_TOKENS], 200, "the first return's amounts");
	cr_expect_eq(res.after.spent[BUDGET_TOKENS], 100);
	cr_expect_eq(bt_int(db, "SELECT count(*) FROM budget_ledger"), n + 1,
		     "the child's row only");
	cr_expect_eq(spent_of(sb, BUDGET_TOKENS), 100);

	/* a rolled-back return leaves no key: the next one is made */
	child = bt_sandbox(db, 3);
	cr_assert_eq(carve1(sb, child, NULL, &cl, &res), 0);
	bt_begin(db);
	cr_assert_eq(budget__return(st, sb, child, &res), 0);
	bt_rollback(db);
	cr_assert_eq(return1(sb, child, &res), 0);
	cr_expect_eq(res.status, BUDGET_CHARGED);
	cr_expect_eq(res.charged[BUDGET_TOKENS], 300);
	cr_expect_eq(spent_of(sb, BUDGET_TOKENS), 100);
}

Test(delegation, mem_peak_mib_is_never_carved)
{
	const char *child = bt_sandbox(db, 2);
	struct budget_limits pl = {.limit = {[BUDGET_MEM_PEAK_MIB] = 1024}};
	struct budget_limits cl = {.limit = {[BUDGET_MEM_PEAK_MIB] = 2048, [BUDGET_TOKENS] = 5}};
	struct budget_result res;

	for (int k = 0; k < BUDGET__N_KINDS; k++)
		cr_expect_eq(budget_kind__carved(k), k != BUDGET_MEM_PEAK_MIB, "%d", k);
	cr_expect_not(budget_kind__carved(BUDGET__N_KINDS));
	cr_assert_eq(carve1(sb, child, &pl, &cl, &res), 0, "a peak is not carved, not refused");
	cr_expect_eq(res.charged[BUDGET_MEM_PEAK_MIB], 0);
	cr_expect_eq(res.charged[BUDGET_TOKENS], 5);
	cr_expect_eq(bt_int(db, "SELECT count(*) FROM budget_ledger WHERE kind = 'mem_peak_mib'"),
		     0);
	child_spends(child, BUDGET_MEM_PEAK_MIB, 300, true);
	cr_assert_eq(return1(sb, child, &res), 0);
	cr_expect_eq(res.charged[BUDGET_MEM_PEAK_MIB], 0);
	cr_expect_eq(spent_of(sb, BUDGET_MEM_PEAK_MIB), 0);
	cr_expect_eq(bt_int(db, "SELECT count(*) FROM budget_ledger WHERE kind = 'mem_peak_mib'"),
		     1, "the child's own peak only");

	/* a child with nothing to carve: nothing written, nothing to return */
	child = bt_sandbox(db, 3);
	cl.limit[BUDGET_TOKENS] = 0;
	cr_assert_eq(carve1(sb, child, &pl, &cl, &res), 0);
	cr_expect_eq(res.status, BUDGET_CHARGED);
	cr_assert_eq(return1(sb, child, &res), 0);
	cr_expect_eq(rows_of("carve:", child) + rows_of("return:", child), 0);
}

static json_t *view_kind(json_t *v, enum budget_kind k)
{
	return json_object_get(json_object_get(v, "budgets"), budget_kind__name(k));
}

static int64_t view_int(json_t *v, enum budget_kind k, const char *field)
{
	return json_integer_value(json_object_get(view_kind(v, k), field));
}

Test(delegation, parent_spent_remaining_and_carved_in_the_view)
{
	const char *a = bt_sandbox(db, 2), *b = bt_sandbox(db, 3);
	struct budget_limits pl = {.limit = {[BUDGET_TOKENS] = 1000, [BUDGET_USD_MICRO] = 2000000}};
	struct budget_limits la = {.limit = {[BUDGET_TOKENS] = 100, [BUDGET_USD_MICRO] = 500000}};
	struct budget_limits lb = {.limit = {[BUDGET_TOKENS] = 200}};
	struct budget_result res;
	json_t *v = NULL;

	cr_assert_eq(charge1(BUDGET_TOKENS, 10, NULL, &pl, &res), 0);
	cr_assert_eq(carve1(sb, a, &pl, &la, &res), 0);
	cr_assert_eq(carve1(sb, b, &pl, &lb, &res), 0);
	cr_assert_eq(budget__view(st, sb, &pl, &v), 0);
	cr_expect_eq(view_int(v, BUDGET_TOKENS, "spent"), 310);
	cr_expect_eq(view_int(v, BUDGET_TOKENS, "remaining"), 690);
	cr_expect_eq(view_int(v, BUDGET_TOKENS, "carved"), 300);
	cr_expect_eq(view_int(v, BUDGET_USD_MICRO, "carved"), 500000);
	cr_expect_str_eq(
		json_string_value(json_object_get(view_kind(v, BUDGET_USD_MICRO), "carved_usd")),
		"0.500000");
	cr_expect_eq(view_int(v, BUDGET_MEM_PEAK_MIB, "carved"), 0);
	cr_expect(json_is_integer(json_object_get(view_kind(v, BUDGET_CPU_MS), "carved")));
	json_decref(v);

	child_spends(a, BUDGET_TOKENS, 30, false);
	cr_assert_eq(return1(sb, a, &res), 0);
	cr_assert_eq(budget__view(st, sb, &pl, &v), 0);
	cr_expect_eq(view_int(v, BUDGET_TOKENS, "spent"), 10 + 30 + 200);
	cr_expect_eq(view_int(v, BUDGET_TOKENS, "remaining"), 760);
	cr_expect_eq(view_int(v, BUDGET_TOKENS, "carved"), 200, "b's carve only");
	cr_expect_eq(view_int(v, BUDGET_USD_MICRO, "spent"), 0);
	cr_expect_eq(view_int(v, BUDGET_USD_MICRO, "carved"), 0);
	json_decref(v);
	cr_assert_eq(budget__view(st, a, &la, &v), 0);
	cr_expect_eq(view_int(v, BUDGET_TOKENS, "spent"), 30);
	cr_expect_eq(view_int(v, BUDGET_TOKENS, "carved"), 0, "a child carved nothing itself");
	json_decref(v);
}

Test(delegation, only_a_return_may_be_negative)
{
	struct budget_result res;
	char sql[256];

	static const char *const refused[] = {"usage:m", "carve:sb-0000000000000002", "meter",
					      " return:x", "RETURN:x"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO budget_ledger(sandbox_id, kind, amount, reason, at_us) "
			 "VALUES ('%s', 'tokens', -1, '%s', 1)",
			 sb, refused[i]);
		cr_expect_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_CONSTRAINT, "%s",
			     refused[i]);
	}
	snprintf(sql, sizeof(sql),
		 "INSERT INTO budget_ledger(sandbox_id, kind, amount, reason, at_us) "
		 "VALUES ('%s', 'tokens', -1, 'return:sb-0000000000000002', 1)",
		 sb);
	cr_expect_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	cr_expect_eq(spent(BUDGET_TOKENS), -1);

	/* clients cannot write delegation's rows: the keys are reserved, amounts >= 0 */
	bt_begin(db);
	cr_expect_eq(budget__charge(st, sb, BUDGET_TOKENS, 1, "return:x", "x", NULL, &res),
		     -EINVAL);
	cr_expect_eq(budget__charge(st, sb, BUDGET_TOKENS, 1, "carve:x", "x", NULL, &res), -EINVAL);
	cr_expect_eq(budget__charge(st, sb, BUDGET_TOKENS, -1, NULL, "return:x", NULL, &res),
		     -EINVAL);
	cr_expect_eq(budget__charge(st, sb, BUDGET_TOKENS, 1, "returned", "x", NULL, &res), 0);
	bt_commit(db);
}

Test(delegation, bad_arguments)
{
	const char *child = bt_sandbox(db, 2);
	struct budget_limits cl = {.limit = {[BUDGET_TOKENS] = 5}};
	struct budget_result res;

	cr_expect_eq(budget__carve(st, sb, child, NULL, &cl, &res), -EINVAL, "outside a tx");
	cr_expect_eq(budget__return(st, sb, child, &res), -EINVAL, "outside a tx");
	bt_begin(db);
	cr_expect_eq(budget__carve(st, sb, sb, NULL, &cl, &res), -EINVAL, "its own child");
	cr_expect_eq(budget__return(st, sb, sb, &res), -EINVAL);
	cr_expect_eq(budget__carve(st, sb, "a/b", NULL, &cl, &res), -EINVAL);
	cr_expect_eq(budget__carve(st, sb, NULL, NULL, &cl, &res), -EINVAL);
	cr_expect_eq(budget__carve(st, NULL, child, NULL, &cl, &res), -EINVAL);
	cr_expect_eq(budget__carve(st, sb, child, NULL, NULL, &res), -EINVAL);
	cr_expect_eq(budget__return(st, NULL, child, &res), -EINVAL);
	cr_expect_eq(budget__carve(st, "sb-nope", child, NULL, &cl, &res), -ENOENT,
		     "the parent must exist");
	bt_commit(db);
	cr_expect_eq(bt_int(db, "SELECT count(*) FROM budget_ledger"), 0);
}

/* ---- budget migration 3 on a database with rows ------------------------------------- */

/* The ledger as budget's migration 2 left it, described in full. */
struct ledger_shape {
	char *rows, *seq, *cols, *fks, *indexes, *objects, *spent;
};

static void shape_of(sqlite3 *d, struct ledger_shape *s)
{
	s->rows = bt_text(d, "SELECT group_concat(id || '|' || sandbox_id || '|' || kind || '|' || "
			     "amount || '|' || reason || '|' || at_us || '|' || "
			     "coalesce(idem_key, '-'), ';') FROM (SELECT * FROM budget_ledger "
			     "ORDER BY id)");
	s->seq = bt_text(d, "SELECT seq FROM sqlite_sequence WHERE name = 'budget_ledger'");
	s->cols = bt_text(d, "SELECT group_concat(cid || name || type || \"notnull\" || "
			     "coalesce(dflt_value, '') || pk, ';') FROM "
			     "pragma_table_info('budget_ledger')");
	s->fks = bt_text(d,
			 "SELECT group_concat(\"table\" || \"from\" || \"to\" || on_update || "
			 "on_delete || match, ';') FROM pragma_foreign_key_list('budget_ledger')");
	s->indexes =
		bt_text(d, "SELECT group_concat(name || \"unique\" || origin || partial, ';') "
			   "FROM (SELECT * FROM pragma_index_list('budget_ledger') ORDER BY name)");
	s->objects = bt_text(d, "SELECT group_concat(type || ' ' || name || ' ' || "
				"coalesce(sql, '-'), ';') FROM (SELECT * FROM sqlite_master WHERE "
				"tbl_name = 'budget_ledger' AND type != 'table' ORDER BY name)");
	s->spent = bt_text(d, "SELECT group_concat(sandbox_id || kind || spent, ';') FROM "
			      "(SELECT * FROM budget_spent ORDER BY sandbox_id, kind)");
}

static void shape_free(struct ledger_shape *s)
{
	char **f[] = {&s->rows, &s->seq, &s->cols, &s->fks, &s->indexes, &s->objects, &s->spent};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		free(*f[i]);
}

Test(delegation, migration_3_rebuilds_a_ledger_with_rows)
{
	struct store_schema v2 = budget__schema;
	const struct store_schema *const at_v2[] = {&store__core, &v2};
	struct budget_debit m[3] = {
		{BUDGET_CPU_MS, 70}, {BUDGET_MEM_MIB_S, 9}, {BUDGET_MEM_PEAK_MIB, 33}};
	struct budget_limits cl = {.limit = {[BUDGET_TOKENS] = 100}};
	struct ledger_shape before, after;
	struct budget_result res;
	struct store *old = NULL;
	char path[300], *fresh, *migrated;
	const char *p, *c;
	sqlite3 *od;

	/* a database at budget version 2, with rows of every sort and a gap in the ids */
	v2.n = 2;
	snprintf(path, sizeof(path), "%s/v2.db", dir);
	cr_assert_eq(store__open(path, at_v2, 2, &old), 0);
	od = store__db(old);
	cr_assert_eq(store__version(old, "budget"), 2);
	p = bt_sandbox(od, 7);
	c = bt_sandbox(od, 8);
	bt_begin(od);
	for (int i = 0; i < 20; i++) {
		char key[16];

		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(budget__charge(old, i % 2 ? p : c, BUDGET_TOKENS, i,
					    i % 3 ? key : NULL, "usage:m", NULL, &res),
			     0);
		m[2].amount += i;
		cr_assert_eq(budget__meter(old, p, m, 3, NULL, "meter", NULL, &res), 0);
	}
	bt_commit(od);
	cr_assert_eq(sqlite3_exec(od,
				  "UPDATE sqlite_sequence SET seq = seq + 50 WHERE name = "
				  "'budget_ledger'",
				  NULL, NULL, NULL),
		     SQLITE_OK);
	shape_of(od, &before);
	cr_assert_gt(bt_int(od, "SELECT count(*) FROM budget_ledger"), 60);
	store__free(old);

	/* opened by today's daemon: migration 3 runs, in its own transaction */
	old = NULL;
	cr_assert_eq(bt_store_open(path, &old), 0);
	od = store__db(old);
	cr_assert_eq(store__version(old, "budget"), 3);
	shape_of(od, &after);
	cr_expect_str_eq(after.rows, before.rows, "every row, id and value");
	cr_expect_str_eq(after.seq, before.seq, "the AUTOINCREMENT sequence, gap included");
	cr_expect_str_eq(after.cols, before.cols);
	cr_expect_str_eq(after.fks, before.fks);
	cr_expect_str_eq(after.indexes, before.indexes, "the index and idem_key's UNIQUE");
	cr_expect_str_eq(after.objects, before.objects, "index and triggers, the same text");
	cr_expect_str_eq(after.spent, before.spent, "budget_spent untouched");
	cr_expect_eq(bt_int(od, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%v3%'"), 0);
	migrated = bt_text(od, "SELECT sql FROM sqlite_master WHERE name = 'budget_ledger'");
	fresh = bt_text(db, "SELECT sql FROM sqlite_master WHERE name = 'budget_ledger'");
	cr_expect_str_eq(migrated, fresh, "as a new database has it");
	cr_expect(strstr(migrated, "AUTOINCREMENT"));
	cr_expect(strstr(migrated, "CHECK (amount >= 0 OR reason GLOB 'return:*')"));
	free(migrated);
	free(fresh);

	/* and it works on: ids after the gap, balances, keys, append-only, delegation */
	bt_begin(od);
	cr_assert_eq(budget__charge(old, p, BUDGET_TOKENS, 1, "k1", "usage:m", NULL, &res), 0);
	cr_expect_eq(res.status, BUDGET_DUPLICATE, "an old row's key still counts");
	cr_assert_eq(budget__charge(old, p, BUDGET_TOKENS, 5, NULL, "usage:m", NULL, &res), 0);
	bt_commit(od);
	cr_expect_eq(bt_int(od, "SELECT max(id) FROM budget_ledger"), atoll(before.seq) + 1);
	cr_expect_eq(bt_int(od, "SELECT spent FROM budget_spent WHERE kind = 'tokens' AND "
				"sandbox_id = 'sb-0000000000000007'"),
		     bt_int(od, "SELECT sum(amount) FROM budget_ledger WHERE kind = 'tokens' AND "
				"sandbox_id = 'sb-0000000000000007'"));
	cr_expect_neq(sqlite3_exec(od, "UPDATE budget_ledger SET amount = 0", NULL, NULL, NULL),
		      SQLITE_OK);
	cr_expect_neq(sqlite3_exec(od, "DELETE FROM budget_ledger", NULL, NULL, NULL), SQLITE_OK);
	cr_expect_neq(sqlite3_exec(od,
				   "INSERT INTO budget_ledger(sandbox_id, kind, amount, "
				   "reason, at_us) VALUES ('sb-nope', 'tokens', 1, 'r', 1)",
				   NULL, NULL, NULL),
		      SQLITE_OK, "the foreign key holds");
	bt_begin(od);
	cr_assert_eq(budget__carve(old, p, c, NULL, &cl, &res), 0);
	cr_assert_eq(budget__return(old, p, c, &res), 0);
	bt_commit(od);
	cr_expect_eq(res.charged[BUDGET_TOKENS], 100 - 90, "the child spent 0 + 2 + .. + 18");
	store__free(old);
	shape_free(&before);
	shape_free(&after);
}
