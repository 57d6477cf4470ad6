// SPDX-License-Identifier: Apache-2.0
/* Store: migrations, the transaction helper, constraint rollbacks, crash safety. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <sqlite3.h>

#include "budget/budget.h"
#include "nucleusd/nucleusd.h"
#include "nucleusd/store.h"
#include "tests/unit/nucleusd/helpers.h"
#include "tests/unit/nucleusd/legacy.h"

static char dir[256], db[300];

static void setup(void)
{
	th_tmpdir(dir, sizeof(dir));
	snprintf(db, sizeof(db), "%s/nucleus.db", dir);
}

static void teardown(void)
{
	th_rmrf(dir);
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, migrates_an_empty_database_to_the_newest_version)
{
	struct store *s = th_open(db);

	cr_assert_eq(store__version(s, "core"), (int)store__core.n);
	cr_assert_eq(store__version(s, "budget"), (int)budget__schema.n);
	cr_assert_eq(store__version(s, "nothing"), -ENOENT);
	cr_assert_str_eq(th_query(s, "PRAGMA journal_mode"), "wal");
	cr_assert_str_eq(th_query(s, "PRAGMA foreign_keys"), "1");
	/* deleted secrets (a stopped sandbox's env) do not stay in free pages */
	cr_assert_str_eq(th_query(s, "PRAGMA secure_delete"), "1");
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
				     "name IN ('sandboxes', 'profiles', 'sessions', 'approvals', "
				     "'budget_ledger', 'budget_limits', 'audit_log')"),
			 "7");
	store__free(s);
}

Test(store, reopening_is_idempotent)
{
	struct store *s = th_open(db);

	cr_assert_eq(store__exec(s, "INSERT INTO profiles(name, body, updated_us) VALUES "
				    "('p', '{}', 1)"),
		     0);
	store__free(s);
	cr_assert_eq(th_store_open(db, &s), 0);
	cr_assert_eq(store__version(s, "core"), (int)store__core.n);
	cr_assert_eq(atoi(th_query(s, "SELECT count(*) FROM schema_versions")),
		     (int)(store__core.n + budget__schema.n), "each migration applied once");
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM profiles"), "1");
	store__free(s);
}

Test(store, refuses_a_database_from_a_newer_version)
{
	struct store *s = th_open(db);

	cr_assert_eq(store__exec(s, "INSERT INTO schema_versions VALUES ('budget', 99, 0)"), 0);
	store__free(s);
	s = NULL;
	cr_assert_eq(th_store_open(db, &s), -EPROTO);
	cr_assert_null(s);
}

Test(store, a_failing_migration_rolls_back_alone)
{
	static const char *const migs[] = {
		"CREATE TABLE a (x INTEGER)",
		"CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1)",
	};
	const struct store_schema two = {"t", migs, 2, NULL, 0}, one = {"t", migs, 1, NULL, 0};
	const struct store_schema *const with_two[] = {&two}, *const with_one[] = {&one};
	struct store *s = NULL;

	cr_assert_lt(store__open(db, with_two, 1, &s), 0);
	cr_assert_eq(store__open(db, with_one, 1, &s), 0);
	cr_assert_eq(store__version(s, "t"), 1);
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM sqlite_master WHERE name = 'b'"), "0");
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM sqlite_master WHERE name = 'a'"), "1");
	store__free(s);
}

static int insert_two(struct store *s, void *arg)
{
	int r = store__exec(s,
			    "INSERT INTO profiles(name, body, updated_us) VALUES ('ok', '{}', 1)");

	if (r < 0)
		return r;
	return store__exec(s, arg); /* the second statement decides */
}

Test(store, constraint_violations_roll_the_whole_transaction_back)
{
	static const char *const bad[] = {
		/* duplicate primary key */
		"INSERT INTO profiles(name, body, updated_us) VALUES ('ok', '{}', 2)",
		/* CHECK: body must be JSON */
		"INSERT INTO profiles(name, body, updated_us) VALUES ('x', 'nope', 2)",
		/* foreign key: no such sandbox */
		"INSERT INTO budget_ledger(sandbox_id, kind, amount, reason, at_us) VALUES "
		"('sb-0000000000000000', 'tokens', 1, 'r', 1)",
		/* CHECK: unknown state */
		"INSERT INTO sandboxes(id, state, policy, spec, vcpus, memory_mib, owner_uid, "
		"created_us, updated_us) VALUES ('sb-0000000000000001', 'zombie', '{}', '{}', 1, "
		"64, 0, 1, 1)",
	};
	struct store *s = th_open(db);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_lt(store__tx(s, insert_two, (void *)bad[i]), 0, "case %zu", i);
		cr_assert_not(store__in_tx(s));
		cr_assert_str_eq(th_query(s, "SELECT count(*) FROM profiles"), "0", "case %zu", i);
	}
	cr_assert_eq(store__tx(s, insert_two, "SELECT 1"), 0);
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM profiles"), "1");
	store__free(s);
}

static int nested(struct store *s, void *arg)
{
	return store__tx(s, insert_two, "SELECT 1");
}

Test(store, transactions_do_not_nest)
{
	struct store *s = th_open(db);

	cr_assert_eq(store__tx(s, nested, NULL), -EINVAL);
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM profiles"), "0");
	store__free(s);
}

/* Inserts profile @arg, then fails when its name starts with "bad". */
static int sp_insert(struct store *s, void *arg)
{
	static const char sql[] =
		"INSERT INTO profiles(name, body, updated_us) VALUES (?1, '{}', 1)";
	sqlite3_stmt *st = NULL;
	int r;

	r = store__stmt(s, sql, &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	r = store__errno(sqlite3_step(st));
	store__stmt_done(st);
	if (r < 0)
		return r;
	return strncmp(arg, "bad", 3) == 0 ? -EIO : 1;
}

static int with_savepoints(struct store *s, void *arg)
{
	int r = sp_insert(s, "outer");

	if (r < 0)
		return r;
	cr_assert_eq(store__savepoint(s, sp_insert, "bad-one"), -EIO);
	cr_assert_eq(store__savepoint(s, sp_insert, "kept"), 1, "fn's result comes back");
	/* A savepoint whose statement fails (duplicate) is undone alone, too. */
	cr_assert_eq(store__savepoint(s, sp_insert, "outer"), -EEXIST);
	return sp_insert(s, "after");
}

Test(store, a_failed_savepoint_undoes_only_its_own_writes)
{
	struct store *s = th_open(db);

	cr_assert_eq(store__savepoint(s, sp_insert, "x"), -EINVAL, "only inside a transaction");
	cr_assert_eq(store__tx(s, with_savepoints, NULL), 1);
	cr_assert_str_eq(th_query(s, "SELECT group_concat(name) FROM (SELECT name FROM profiles "
				     "ORDER BY name)"),
			 "after,kept,outer");
	store__free(s);
}

Test(store, the_ledger_idempotency_key_is_unique)
{
	struct store *s = th_open(db);

	cr_assert_eq(store__exec(s,
				 "INSERT INTO sandboxes(id, state, policy, spec, vcpus, "
				 "memory_mib, owner_uid, created_us, updated_us) VALUES "
				 "('sb-0000000000000001', 'running', '{}', '{}', 1, 64, 0, 1, 1)"),
		     0);
	cr_assert_eq(store__exec(s, "INSERT INTO budget_ledger(sandbox_id, kind, amount, reason, "
				    "at_us, idem_key) VALUES ('sb-0000000000000001', 'tokens', 5, "
				    "'usage', 1, 'k1')"),
		     0);
	cr_assert_eq(store__exec(s, "INSERT INTO budget_ledger(sandbox_id, kind, amount, reason, "
				    "at_us, idem_key) VALUES ('sb-0000000000000001', 'tokens', 5, "
				    "'usage', 2, 'k1')"),
		     -EEXIST);
	cr_assert_str_eq(th_query(s, "SELECT sum(amount) FROM budget_ledger"), "5");
	store__free(s);
}

/* Child: commits one transaction, starts another, and waits to be killed inside it. */
static void crash_child(int ready_fd, const char *path)
{
	struct store *s = NULL;
	char c = 'r';

	if (th_store_open(path, &s) < 0)
		_exit(10);
	if (store__exec(s, "INSERT INTO profiles(name, body, updated_us) VALUES ('kept', "
			   "'{}', 1)") < 0)
		_exit(11);
	if (store__exec(s, "BEGIN IMMEDIATE") < 0)
		_exit(12);
	for (int i = 0; i < 500; i++) {
		char sql[160];

		snprintf(sql, sizeof(sql),
			 "INSERT INTO profiles(name, body, updated_us) VALUES ('lost%d', '{}', 1)",
			 i);
		if (store__exec(s, sql) < 0)
			_exit(13);
	}
	if (write(ready_fd, &c, 1) != 1)
		_exit(14);
	for (;;)
		pause();
}

Test(store, kill_9_inside_a_transaction_loses_only_that_transaction)
{
	struct store *s = NULL;
	int fd, status;
	char c;
	pid_t pid = th_fork_piped(&fd);

	if (pid == 0)
		crash_child(fd, db);
	cr_assert_eq(read(fd, &c, 1), 1, "child did not reach the open transaction");
	close(fd);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	cr_assert(WIFSIGNALED(status));
	cr_assert_eq(th_store_open(db, &s), 0);
	cr_assert_str_eq(th_query(s, "PRAGMA integrity_check"), "ok");
	cr_assert_str_eq(th_query(s, "SELECT group_concat(name) FROM profiles"), "kept");
	/* The database is writable again: the dead writer's lock is gone. */
	cr_assert_eq(store__exec(s, "INSERT INTO profiles(name, body, updated_us) VALUES "
				    "('after', '{}', 1)"),
		     0);
	store__free(s);
}

/* ---- prepared-statement cache ---- */

Test(store, cached_statements_come_back_reset_and_unbound)
{
	static const char sel[] = "SELECT ?1 || 'x'";
	sqlite3_stmt *a = NULL, *b = NULL, *busy = NULL;
	struct store *s = th_open(db);
	char copy[sizeof(sel)];

	cr_assert_eq(store__stmt(s, sel, &a), 0);
	cr_assert_eq(sqlite3_bind_text(a, 1, "a", -1, SQLITE_STATIC), SQLITE_OK);
	cr_assert_eq(sqlite3_step(a), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(a, 0), "ax");
	/* Left on a row: asking for it again is a bug up the stack, not a second user. */
	cr_assert_eq(store__stmt(s, sel, &busy), -EBUSY);
	cr_assert_null(busy);
	store__stmt_done(a);
	/* Same text at another address: the same statement, reset, its binding gone. */
	memcpy(copy, sel, sizeof(sel));
	cr_assert_eq(store__stmt(s, copy, &b), 0);
	cr_assert_eq(a, b);
	cr_assert_eq(sqlite3_step(b), SQLITE_ROW);
	cr_assert_eq(sqlite3_column_type(b, 0), SQLITE_NULL); /* NULL || 'x' */
	store__stmt_done(b);
	cr_assert_eq(store__stmt(s, "", &b), -EINVAL);
	cr_assert_lt(store__stmt(s, "SELEC nonsense", &b), 0);
	store__stmt_done(NULL);
	store__free(s); /* finalizes them (the sanitizer build checks for leaks) */
}

Test(store, cached_statements_see_later_schema_changes)
{
	static const char sel[] = "SELECT count(*) FROM profiles";
	sqlite3_stmt *st = NULL;
	struct store *s = th_open(db);

	cr_assert_eq(store__stmt(s, sel, &st), 0);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	store__stmt_done(st);
	cr_assert_eq(store__exec(s, "CREATE TABLE later(x); INSERT INTO profiles(name, body, "
				    "updated_us) VALUES ('p', '{}', 1)"),
		     0);
	cr_assert_eq(store__stmt(s, sel, &st), 0);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	cr_assert_eq(sqlite3_column_int(st, 0), 1);
	store__stmt_done(st);
	store__free(s);
}

/* ---- checkpoints ---- */

static int insert_rows(struct store *s, void *arg)
{
	static const char sql[] = "INSERT INTO meta(key, value) VALUES (?1, hex(randomblob(900)))";
	int *n = arg, r = 0;
	char key[32];
	sqlite3_stmt *st;

	for (int i = 0; i < 4 && r == 0; i++) {
		snprintf(key, sizeof(key), "k%d.%d", *n, i);
		r = store__stmt(s, sql, &st);
		if (r < 0)
			break;
		sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
		r = store__errno(sqlite3_step(st));
		store__stmt_done(st);
	}
	(*n)++;
	return r;
}

/*
 * Commits until the WAL holds at least @frames frames or @max_tx transactions are done;
 * returns the most frames seen.
 */
static unsigned fill_wal(struct store *s, int *n, unsigned frames, int max_tx)
{
	struct store_ckpt_stats st;
	unsigned most = 0;

	do {
		cr_assert_eq(store__tx(s, insert_rows, n), 0);
		store__ckpt_stats(s, &st);
		most = st.last_frames > most ? st.last_frames : most;
	} while (st.last_frames < frames && *n < max_tx);
	return most;
}

Test(store, the_wal_is_checkpointed_off_the_committing_thread)
{
	struct store_ckpt_stats st = {0};
	struct store *s = th_open(db);
	struct timespec ts = {0, 5 * 1000000};
	int n = 0;

	cr_assert_geq(fill_wal(s, &n, STORE_CKPT_FRAMES, 100000), STORE_CKPT_FRAMES);
	/* The checkpointer copies the WAL and, with the writer idle, reaches its end. */
	for (int i = 0; i < 4000; i++) {
		store__ckpt_stats(s, &st);
		if (st.background > 0)
			break;
		nanosleep(&ts, NULL);
	}
	cr_assert_gt(st.background, 0, "no background checkpoint");
	cr_assert_eq(st.in_commit, 0);
	cr_assert_eq(st.failed, 0);
	/* Once everything is copied the next writer starts the WAL over. */
	for (int i = 0; i < 4000; i++) {
		cr_assert_eq(store__tx(s, insert_rows, &n), 0);
		store__ckpt_stats(s, &st);
		if (st.last_frames < STORE_CKPT_FRAMES)
			break;
		nanosleep(&ts, NULL);
	}
	cr_assert_lt(st.last_frames, STORE_CKPT_FRAMES, "the WAL never restarted");
	cr_assert_str_eq(th_query(s, "PRAGMA integrity_check"), "ok");
	store__free(s);
	/* Everything committed is in the file for the next opener. */
	cr_assert_eq(th_store_open(db, &s), 0);
	cr_assert_eq(atoi(th_query(s, "SELECT count(*) FROM meta")), n * 4);
	store__free(s);
}

Test(store, a_writer_that_never_pauses_keeps_the_wal_bounded)
{
	struct store_ckpt_stats st;
	struct store *s = th_open(db);
	unsigned most;
	int n = 0;

	/*
	 * ~90000 frames without a pause: whoever checkpoints, the WAL starts over. The
	 * committing connection skips its checkpoint while the thread runs one; at twice
	 * the limit it waits for it.
	 */
	most = fill_wal(s, &n, 1u << 30, 10000);
	store__ckpt_stats(s, &st);
	cr_assert_eq(n, 10000);
	cr_assert_lt(most, 2 * STORE_CKPT_IN_COMMIT_FRAMES + 64, "WAL grew to %u frames", most);
	cr_assert_gt(st.background + st.in_commit, 0);
	store__free(s);
}

/*
 * A database made before budget had its own migrations, at version 1 of the one list
 * (budget tables, no running balances): core is recorded at 1 and migrated on, budget
 * at 1, and budget's migration 2 backfills the balances.
 */
Test(store, a_version_1_database_gets_its_budget_balances_backfilled)
{
	struct store *s = NULL;
	sqlite3 *raw = NULL;

	th_legacy_db(db, 1);
	cr_assert_eq(sqlite3_open(db, &raw), SQLITE_OK);
	cr_assert_eq(
		sqlite3_exec(raw,
			     "INSERT INTO sandboxes(id, state, policy, spec, vcpus, "
			     "memory_mib, owner_uid, created_us, updated_us) VALUES "
			     "('sb-00000000000000aa', 'running', '{}', '{}', 1, 64, 0, 1, 1);"
			     "INSERT INTO budget_ledger(sandbox_id, kind, amount, reason, at_us) "
			     "VALUES ('sb-00000000000000aa', 'tokens', 5, 'r', 1),"
			     " ('sb-00000000000000aa', 'tokens', 7, 'r', 2),"
			     " ('sb-00000000000000aa', 'cpu_ms', 3, 'r', 3)",
			     NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(raw);
	cr_assert_eq(th_store_open(db, &s), 0);
	cr_assert_eq(store__version(s, "core"), (int)store__core.n);
	cr_assert_eq(store__version(s, "budget"), (int)budget__schema.n);
	cr_assert_str_eq(th_query(s, "SELECT group_concat(module || version || ':' || "
				     "(applied_us >= 1000000), ' ') FROM (SELECT * FROM "
				     "schema_versions ORDER BY module, version)"),
			 "budget1:0 budget2:1 budget3:1 core1:0 core2:1 core3:1 core4:1 core5:1 core6:1 "
			 "core7:1 core8:1 core9:1",
			 "adopted versions keep the old table's times, new ones get now");
	cr_assert_str_eq(th_query(s, "SELECT spent FROM budget_spent WHERE kind = 'tokens'"), "12");
	cr_assert_str_eq(th_query(s, "SELECT spent FROM budget_spent WHERE kind = 'cpu_ms'"), "3");
	cr_assert_eq(store__exec(s, "INSERT INTO budget_ledger(sandbox_id, kind, amount, reason, "
				    "at_us) VALUES ('sb-00000000000000aa', 'tokens', 30, 'r', 4)"),
		     0);
	cr_assert_str_eq(th_query(s, "SELECT spent FROM budget_spent WHERE kind = 'tokens'"), "42");
	store__free(s);
}

/* Tables, indexes and triggers by name (the text of renamed tables differs). */
static char *schema_names(const char *path)
{
	static const char sql[] = "SELECT group_concat(type || ' ' || name, ', ') FROM (SELECT "
				  "type, name FROM sqlite_master WHERE name NOT IN "
				  "('schema_version', 'schema_versions', "
				  "'sqlite_autoindex_schema_versions_1') ORDER BY type, name)";

	return strdup(th_query_file(path, sql));
}

/*
 * A database made by the one migration list at its last version (4), with data in
 * every module, opens with today's schemas: core and budget are recognised at their
 * versions, no migration runs again, nothing is lost, and the schema is the one a new
 * database gets.
 */
Test(store, a_version_4_database_opens_and_keeps_its_data)
{
	char later[16];
	struct store *s = NULL;
	struct budget_result res;
	struct budget_spent sp;
	char fresh[320];
	char *want, *got;
	sqlite3 *raw = NULL;

	th_legacy_db(db, TH_LEGACY_VERSIONS);
	cr_assert_eq(sqlite3_open(db, &raw), SQLITE_OK);
	cr_assert_eq(
		sqlite3_exec(
			raw,
			"PRAGMA foreign_keys=ON;"
			"INSERT INTO profiles(name, body, updated_us) VALUES ('p', '{}', 1);"
			"INSERT INTO sandboxes(id, name, state, profile, policy, spec, vcpus, "
			"memory_mib, owner_uid, created_us, updated_us) VALUES "
			"('sb-00000000000000bb', 'old', 'running', 'p', '{}', '{}', 1, 64, 0, "
			"1, 1);"
			"INSERT INTO budget_limits VALUES ('sb-00000000000000bb', 'tokens', 100);"
			"INSERT INTO budget_ledger(sandbox_id, kind, amount, reason, at_us, "
			"idem_key) VALUES ('sb-00000000000000bb', 'tokens', 40, 'r', 1, "
			"'sb-00000000000000bb/tokens/k1');"
			"INSERT INTO audit_log(seq, at_us, kind, body, prev_hash, hash) VALUES "
			"(1, 1, 'daemon.start', '{}', zeroblob(32), zeroblob(32))",
			NULL, NULL, NULL),
		SQLITE_OK, "%s", sqlite3_errmsg(raw));
	sqlite3_close(raw);

	cr_assert_eq(th_store_open(db, &s), 0);
	cr_assert_eq(store__version(s, "core"), (int)store__core.n);
	cr_assert_eq(store__version(s, "budget"), (int)budget__schema.n);
	cr_assert_str_eq(th_query(s, "SELECT group_concat(module || version || '@' || applied_us, "
				     "' ') FROM (SELECT * FROM schema_versions WHERE version <= "
				     "CASE module WHEN 'budget' THEN 2 ELSE 4 END ORDER BY module, "
				     "version)"),
			 "budget1@1000 budget2@1001 core1@1000 core2@1001 core3@1002 core4@1003",
			 "recorded from the old versions, nothing applied again");
	/* what came after (budget 3: the ledger rebuilt for returns) is applied now */
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM schema_versions WHERE module = "
				     "'budget' AND version > 2 AND applied_us >= 1000000"),
			 "1");
	/* what came after the one list (core 5: profiles.budget) is applied now */
	snprintf(later, sizeof(later), "%d", (int)store__core.n - 4);
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM schema_versions WHERE module = 'core' "
				     "AND version > 4 AND applied_us >= 1000000"),
			 later, "every core migration after 4 applied at open");
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM schema_version"), "4", "left as it was");
	cr_assert_str_eq(th_query(s, "SELECT name FROM sandboxes"), "old");
	cr_assert_str_eq(th_query(s, "SELECT kind FROM audit_log WHERE seq = 1"), "daemon.start");
	/* budget's tables work on: the balance, its trigger, the limits and the keys. */
	cr_assert_eq(budget__spent(s, "sb-00000000000000bb", &sp), 0);
	cr_assert_eq(sp.spent[BUDGET_TOKENS], 40);
	cr_assert_eq(store__exec(s, "BEGIN IMMEDIATE"), 0);
	cr_assert_eq(
		budget__charge(s, "sb-00000000000000bb", BUDGET_TOKENS, 40, "k1", "r", NULL, &res),
		0);
	cr_assert_eq(res.status, BUDGET_DUPLICATE, "the old row's key still counts");
	cr_assert_eq(
		budget__charge(s, "sb-00000000000000bb", BUDGET_TOKENS, 20, "k2", "r", NULL, &res),
		0);
	cr_assert_eq(store__exec(s, "COMMIT"), 0);
	cr_assert_str_eq(th_query(s, "SELECT spent FROM budget_spent"), "60");
	cr_assert_str_eq(th_query(s, "SELECT amount FROM budget_limits"), "100");
	store__free(s);
	s = NULL;
	/* Opened again: nothing to adopt or apply a second time. */
	cr_assert_eq(th_store_open(db, &s), 0);
	snprintf(later, sizeof(later), "%d", (int)(store__core.n + budget__schema.n));
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM schema_versions"), later);
	store__free(s);

	snprintf(fresh, sizeof(fresh), "%s/fresh.db", dir);
	cr_assert_eq(th_store_open(fresh, &s), 0);
	store__free(s);
	want = schema_names(fresh);
	got = schema_names(db);
	cr_assert_str_eq(got, want, "the old database's schema is a new one's");
	free(want);
	free(got);
}

/* The planner's words for a query (all rows of EXPLAIN QUERY PLAN, joined). */
static void plan(struct store *s, const char *sql, char *out, size_t len)
{
	sqlite3_stmt *st = NULL;
	char q[1024];

	snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
	cr_assert_eq(sqlite3_prepare_v2(store__db(s), q, -1, &st, NULL), SQLITE_OK);
	out[0] = '\0';
	while (sqlite3_step(st) == SQLITE_ROW)
		snprintf(out + strlen(out), len - strlen(out), "%s; ", sqlite3_column_text(st, 3));
	sqlite3_finalize(st);
}

/* Sandboxes are never deleted: finding one by id or by name must not scan them all. */
Test(store, sandbox_lookups_by_id_and_name_use_an_index)
{
	struct store *s = th_open(db);
	char p[1024];

	plan(s,
	     "SELECT s.id FROM sandboxes s LEFT JOIN sessions ss ON ss.sandbox_id = s.id AND "
	     "ss.closed_us IS NULL WHERE s.name = 'x' ORDER BY s.state NOT IN ('stopped', "
	     "'failed') DESC, s.created_us DESC LIMIT 1",
	     p, sizeof(p));
	cr_assert(strstr(p, "sandboxes_name"), "%s", p);
	cr_assert_null(strstr(p, "SCAN s;"), "%s", p);
	plan(s, "SELECT s.id FROM sandboxes s WHERE s.id = 'sb-0000000000000000'", p, sizeof(p));
	cr_assert_null(strstr(p, "SCAN s;"), "%s", p);
	store__free(s);
}
