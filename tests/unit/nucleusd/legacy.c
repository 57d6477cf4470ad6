// SPDX-License-Identifier: Apache-2.0
/*
 * A database as nucleusd made it before modules had versions: the one migration list
 * of nucleusd/store.c as it shipped (versions 1-4, every table in it, one table
 * schema_version), applied the way that store applied it. A frozen copy: tests open
 * what it makes with today's store to show that old databases keep their data.
 */
#include <stdio.h>
#include <criterion/criterion.h>
#include <sqlite3.h>

#include "tests/unit/nucleusd/legacy.h"

/* Migration 1: the whole initial schema. */
static const char migration_1[] =
	"CREATE TABLE profiles ("
	"  name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),"
	"  body TEXT NOT NULL CHECK (json_valid(body)),"
	"  builtin INTEGER NOT NULL DEFAULT 0 CHECK (builtin IN (0, 1)),"
	"  updated_us INTEGER NOT NULL);"
	"CREATE TABLE sandboxes ("
	"  id TEXT PRIMARY KEY CHECK (id GLOB 'sb-[0-9a-f]*' AND length(id) = 19),"
	"  name TEXT,"
	"  state TEXT NOT NULL CHECK (state IN"
	"    ('creating', 'running', 'paused', 'stopped', 'failed')),"
	"  profile TEXT REFERENCES profiles(name) ON UPDATE CASCADE ON DELETE RESTRICT,"
	"  policy TEXT NOT NULL CHECK (json_valid(policy)),"
	"  spec TEXT NOT NULL CHECK (json_valid(spec)),"
	"  vcpus INTEGER NOT NULL CHECK (vcpus BETWEEN 1 AND 64),"
	"  memory_mib INTEGER NOT NULL CHECK (memory_mib BETWEEN 16 AND 1048576),"
	"  boot_ms INTEGER CHECK (boot_ms IS NULL OR boot_ms >= 0),"
	"  vmm_pid INTEGER NOT NULL DEFAULT 0,"
	"  reason TEXT,"
	"  owner_uid INTEGER NOT NULL,"
	"  created_us INTEGER NOT NULL,"
	"  updated_us INTEGER NOT NULL);"
	/* A name is unique among sandboxes that are still alive. */
	"CREATE UNIQUE INDEX sandboxes_live_name ON sandboxes(name)"
	"  WHERE name IS NOT NULL AND state NOT IN ('stopped', 'failed');"
	"CREATE INDEX sandboxes_state ON sandboxes(state);"
	/* Policy sessions: state is the policy engine's serialized session (JSON). */
	"CREATE TABLE sessions ("
	"  id TEXT PRIMARY KEY CHECK (length(id) = 32),"
	"  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),"
	"  peer_uid INTEGER NOT NULL,"
	"  state TEXT CHECK (state IS NULL OR json_valid(state)),"
	"  created_us INTEGER NOT NULL,"
	"  updated_us INTEGER NOT NULL,"
	"  closed_us INTEGER);"
	"CREATE UNIQUE INDEX sessions_open ON sessions(sandbox_id) WHERE closed_us IS NULL;"
	"CREATE TABLE approvals ("
	"  nonce TEXT PRIMARY KEY CHECK (length(nonce) >= 16),"
	"  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),"
	"  tool TEXT NOT NULL,"
	"  request TEXT NOT NULL CHECK (json_valid(request)),"
	"  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN"
	"    ('pending', 'approved', 'denied', 'used', 'expired')),"
	"  created_us INTEGER NOT NULL,"
	"  expires_us INTEGER NOT NULL,"
	"  decided_us INTEGER,"
	"  approver TEXT,"
	"  signature BLOB);"
	"CREATE INDEX approvals_sandbox ON approvals(sandbox_id, state);"
	/* Budgets (issue 6): limits per sandbox and kind; balances = limit - SUM(ledger). */
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
	"  idem_key TEXT UNIQUE);"
	"CREATE INDEX budget_ledger_sandbox ON budget_ledger(sandbox_id, kind);"
	/* The audit log: append-only (triggers), hash-chained and signed (audit.c). */
	"CREATE TABLE audit_log ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  at_us INTEGER NOT NULL,"
	"  sandbox_id TEXT,"
	"  actor_uid INTEGER,"
	"  kind TEXT NOT NULL,"
	"  body TEXT NOT NULL,"
	"  prev_hash BLOB NOT NULL,"
	"  hash BLOB NOT NULL,"
	"  sig BLOB NOT NULL);"
	"CREATE INDEX audit_log_sandbox ON audit_log(sandbox_id, seq);"
	"CREATE TABLE audit_head ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  seq INTEGER NOT NULL,"
	"  hash BLOB NOT NULL,"
	"  sig BLOB NOT NULL);"
	"CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
	"  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
	"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
	"  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

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
	"CREATE TRIGGER budget_ledger_spent AFTER INSERT ON budget_ledger BEGIN"
	"  INSERT INTO budget_spent(sandbox_id, kind, spent)"
	"    VALUES (NEW.sandbox_id, NEW.kind, NEW.amount)"
	"    ON CONFLICT (sandbox_id, kind) DO UPDATE SET spent = spent + excluded.spent;"
	"  END;"
	"CREATE TRIGGER budget_ledger_no_update BEFORE UPDATE ON budget_ledger"
	"  BEGIN SELECT RAISE(ABORT, 'the budget ledger is append-only'); END;"
	"CREATE TRIGGER budget_ledger_no_delete BEFORE DELETE ON budget_ledger"
	"  BEGIN SELECT RAISE(ABORT, 'the budget ledger is append-only'); END;";

/*
 * Migration 3: sealed audit log (audit.c). Entries are hash-chained but no longer
 * signed one by one, and there is no per-append head row: the daemon signs the chain's
 * head into audit_seals, one row per seal, off the request path. The table is rebuilt
 * without AUTOINCREMENT (seq is set by audit.c; sqlite_sequence was one more page
 * written per entry) and without the per-entry signatures, which the old signed head
 * covers: it becomes the first seal (same message). Seals are append-only.
 */
static const char migration_3[] =
	"CREATE TABLE audit_log_v3 ("
	"  seq INTEGER PRIMARY KEY CHECK (seq > 0),"
	"  at_us INTEGER NOT NULL,"
	"  sandbox_id TEXT,"
	"  actor_uid INTEGER,"
	"  kind TEXT NOT NULL,"
	"  body TEXT NOT NULL,"
	"  prev_hash BLOB NOT NULL,"
	"  hash BLOB NOT NULL);"
	"INSERT INTO audit_log_v3(seq, at_us, sandbox_id, actor_uid, kind, body, prev_hash, hash)"
	"  SELECT seq, at_us, sandbox_id, actor_uid, kind, body, prev_hash, hash FROM audit_log"
	"  ORDER BY seq;"
	"DROP TABLE audit_log;"
	"ALTER TABLE audit_log_v3 RENAME TO audit_log;"
	"CREATE INDEX audit_log_sandbox ON audit_log(sandbox_id, seq);"
	"CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
	"  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
	"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
	"  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
	"CREATE TABLE audit_seals ("
	"  seq INTEGER PRIMARY KEY CHECK (seq > 0),"
	"  hash BLOB NOT NULL,"
	"  sig BLOB NOT NULL,"
	"  at_us INTEGER NOT NULL);"
	"INSERT INTO audit_seals(seq, hash, sig, at_us)"
	"  SELECT seq, hash, sig, CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
	"  FROM audit_head WHERE seq > 0;"
	"DROP TABLE audit_head;"
	"CREATE TRIGGER audit_seals_no_update BEFORE UPDATE ON audit_seals"
	"  BEGIN SELECT RAISE(ABORT, 'audit seals are append-only'); END;"
	"CREATE TRIGGER audit_seals_no_delete BEFORE DELETE ON audit_seals"
	"  BEGIN SELECT RAISE(ABORT, 'audit seals are append-only'); END;";

/*
 * Migration 4: sandboxes by name. A name lookup (nucleusctl show NAME, every API path
 * that takes a name) scanned the table, which keeps every sandbox ever made.
 */
static const char migration_4[] =
	"CREATE INDEX sandboxes_name ON sandboxes(name, created_us) WHERE name IS NOT NULL;";

static const char *const legacy_migrations[] = {
	migration_1,
	migration_2,
	migration_3,
	migration_4,
};
void th_legacy_db(const char *path, int version)
{
	sqlite3 *db = NULL;
	char sql[128];

	cr_assert_leq(version, TH_LEGACY_VERSIONS);
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
		     SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db,
				  "PRAGMA page_size=1024; PRAGMA journal_mode=WAL;"
				  "PRAGMA foreign_keys=ON;"
				  "CREATE TABLE IF NOT EXISTS schema_version ("
				  "  version INTEGER PRIMARY KEY, applied_us INTEGER NOT NULL)",
				  NULL, NULL, NULL),
		     SQLITE_OK, "%s", sqlite3_errmsg(db));
	for (int v = 0; v < version; v++) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO schema_version(version, applied_us) VALUES (%d, %d)", v + 1,
			 1000 + v);
		cr_assert_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
		cr_assert_eq(sqlite3_exec(db, legacy_migrations[v], NULL, NULL, NULL), SQLITE_OK,
			     "legacy migration %d: %s", v + 1, sqlite3_errmsg(db));
		cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		cr_assert_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	}
	cr_assert_eq(sqlite3_close(db), SQLITE_OK);
}
