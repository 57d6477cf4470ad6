// SPDX-License-Identifier: Apache-2.0
/*
 * budget/'s tables in the daemon's store: its migrations (struct store_schema, applied
 * by nucleusd/store.c after the core schema, whose sandboxes table they refer to).
 * Append new ones; never edit one that has shipped.
 */
#include "budget/budget.h"
#include "nucleusd/store.h"

/*
 * The ledger's index (migration 1) and triggers (migration 2), one text for the
 * migrations that make them and for migration 3, which rebuilds the table and must make
 * them again exactly as they were.
 */
#define LEDGER_INDEX "CREATE INDEX budget_ledger_sandbox ON budget_ledger(sandbox_id, kind);"
#define LEDGER_TRIGGERS                                                                            \
	"CREATE TRIGGER budget_ledger_spent AFTER INSERT ON budget_ledger BEGIN"                   \
	"  INSERT INTO budget_spent(sandbox_id, kind, spent)"                                      \
	"    VALUES (NEW.sandbox_id, NEW.kind, NEW.amount)"                                        \
	"    ON CONFLICT (sandbox_id, kind) DO UPDATE SET spent = spent + excluded.spent;"         \
	"  END;"                                                                                   \
	"CREATE TRIGGER budget_ledger_no_update BEFORE UPDATE ON budget_ledger"                    \
	"  BEGIN SELECT RAISE(ABORT, 'the budget ledger is append-only'); END;"                    \
	"CREATE TRIGGER budget_ledger_no_delete BEFORE DELETE ON budget_ledger"                    \
	"  BEGIN SELECT RAISE(ABORT, 'the budget ledger is append-only'); END;"

/*
 * Migration 1: limits per sandbox and kind, and the ledger (balances = limit -
 * SUM(ledger)). Until budget had versions of its own this was part of the daemon's
 * migration 1: the text is that part, unchanged.
 */
static const char migration_1[] =
	"CREATE TABLE budget_limits ("
	"  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),"
	"  kind TEXT NOT NULL CHECK (kind IN ('cpu_ms', 'mem_mib_s', 'mem_peak_mib', 'tokens',"
	"    'usd_micro')),"
	"  amount INTEGER NOT NULL CHECK (amount >= 0),"
	"  PRIMARY KEY (sandbox_id, kind));"
	"CREATE TABLE budget_ledger ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),"
	"  kind TEXT NOT NULL CHECK (kind IN ('cpu_ms', 'mem_mib_s', 'mem_peak_mib', 'tokens',"
	"    'usd_micro')),"
	"  amount INTEGER NOT NULL CHECK (amount >= 0),"
	"  reason TEXT NOT NULL,"
	"  at_us INTEGER NOT NULL,"
	"  idem_key TEXT UNIQUE);" LEDGER_INDEX;

/*
 * Migration 2: running balances. budget_spent(sandbox, kind) is SUM(amount) of the
 * ledger, kept by a trigger in the same transaction as every insert (so it commits and
 * rolls back with the rows and a crash cannot split them), and read instead of summing a
 * ledger that the meter grows by a few rows per second. The ledger becomes append-only.
 */
static const char migration_2[] =
	"CREATE TABLE budget_spent ("
	"  sandbox_id TEXT NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  spent INTEGER NOT NULL,"
	"  PRIMARY KEY (sandbox_id, kind));"
	"INSERT INTO budget_spent(sandbox_id, kind, spent)"
	"  SELECT sandbox_id, kind, SUM(amount) FROM budget_ledger GROUP BY sandbox_id, kind;"
	/* the running balance, no update, no delete */ LEDGER_TRIGGERS;

/*
 * Migration 3: delegation. A child sandbox's budget is carved out of its parent's (a
 * debit of the parent, reason "carve:CHILD") and what the child did not spend goes back
 * as a credit: a negative row, reason "return:CHILD" (budget__carve, budget__return),
 * so budget_spent stays SUM(amount). Only a return may be negative. A CHECK cannot be
 * altered, so the table is rebuilt as core's migration 3 rebuilt audit_log: the same
 * columns, rows and ids, the AUTOINCREMENT sequence carried over (an id is never used
 * twice), the same foreign key, index and triggers. budget_spent does not change (the
 * copy fires no trigger).
 */
static const char migration_3[] =
	"CREATE TABLE budget_ledger_v3 ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),"
	"  kind TEXT NOT NULL CHECK (kind IN ('cpu_ms', 'mem_mib_s', 'mem_peak_mib', 'tokens',"
	"    'usd_micro')),"
	"  amount INTEGER NOT NULL CHECK (amount >= 0 OR reason GLOB 'return:*'),"
	"  reason TEXT NOT NULL,"
	"  at_us INTEGER NOT NULL,"
	"  idem_key TEXT UNIQUE);"
	"INSERT INTO budget_ledger_v3(id, sandbox_id, kind, amount, reason, at_us, idem_key)"
	"  SELECT id, sandbox_id, kind, amount, reason, at_us, idem_key FROM budget_ledger"
	"  ORDER BY id;"
	"DELETE FROM sqlite_sequence WHERE name = 'budget_ledger_v3';"
	"INSERT INTO sqlite_sequence(name, seq)"
	"  SELECT 'budget_ledger_v3', seq FROM sqlite_sequence WHERE name = 'budget_ledger';"
	"DROP TABLE budget_ledger;"
	"ALTER TABLE budget_ledger_v3 RENAME TO budget_ledger;" LEDGER_INDEX LEDGER_TRIGGERS;

static const char *const migrations[] = {
	migration_1,
	migration_2,
	migration_3,
};

/*
 * A database from before modules had versions (one list, 1-4): its version 1 had
 * budget's migration 1, version 2 and later had both.
 */
static const int legacy[] = {0, 1, 2, 2, 2};

const struct store_schema budget__schema = {
	.module = "budget",
	.migrations = migrations,
	.n = sizeof(migrations) / sizeof(migrations[0]),
	.legacy = legacy,
	.n_legacy = sizeof(legacy) / sizeof(legacy[0]),
};
