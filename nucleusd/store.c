// SPDX-License-Identifier: Apache-2.0
/*
 * The daemon's SQLite store: WAL mode, foreign keys, busy timeout, versioned
 * migrations (each in its own transaction) and the one transaction helper every
 * state change goes through.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>

#include "nucleusd/nucleusd.h"

struct store {
	sqlite3 *db;
	int version;
};

/*
 * Migration 1: the whole initial schema. Later versions append entries; never edit
 * one that has shipped.
 */
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

const char *const store__migrations[] = {
	migration_1,
};
const size_t store__n_migrations = sizeof(store__migrations) / sizeof(store__migrations[0]);

int store__errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_MISUSE:
	case SQLITE_RANGE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

struct sqlite3 *store__db(struct store *s)
{
	return s->db;
}

int store__version(struct store *s)
{
	return s->version;
}

bool store__in_tx(struct store *s)
{
	return s && sqlite3_get_autocommit(s->db) == 0;
}

int store__exec(struct store *s, const char *sql)
{
	return store__errno(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

int store__tx(struct store *s, store_tx_fn fn, void *arg)
{
	int r;

	if (store__in_tx(s))
		return -EINVAL; /* no nesting: one effect, one transaction */
	r = store__exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	r = fn(s, arg);
	if (r >= 0) {
		int c = store__exec(s, "COMMIT");

		if (c == 0)
			return r;
		r = c;
	}
	/* ROLLBACK fails only when SQLite already rolled back on its own. */
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static int read_version(struct store *s, int *ret)
{
	sqlite3_stmt *st = NULL;
	int r;

	r = store__errno(sqlite3_prepare_v2(s->db,
					    "SELECT coalesce(max(version), 0) FROM "
					    "schema_version",
					    -1, &st, NULL));
	if (r < 0)
		return r;
	if (sqlite3_step(st) != SQLITE_ROW) {
		r = store__errno(sqlite3_errcode(s->db));
		r = r < 0 ? r : -EIO;
		goto out;
	}
	*ret = sqlite3_column_int(st, 0);
out:
	sqlite3_finalize(st);
	return r;
}

struct migration {
	const char *sql;
	int version;
};

static int apply_one(struct store *s, void *arg)
{
	const struct migration *m = arg;
	char ins[128];
	int r;

	r = store__exec(s, m->sql);
	if (r < 0)
		return r;
	snprintf(ins, sizeof(ins),
		 "INSERT INTO schema_version(version, applied_us) VALUES (%d, %lld)", m->version,
		 (long long)time(NULL) * 1000000LL);
	return store__exec(s, ins);
}

static int migrate(struct store *s, const char *const *migrations, size_t n)
{
	int r, v;

	r = store__exec(s, "CREATE TABLE IF NOT EXISTS schema_version ("
			   "  version INTEGER PRIMARY KEY, applied_us INTEGER NOT NULL)");
	if (r < 0)
		return r;
	r = read_version(s, &v);
	if (r < 0)
		return r;
	if (v > (int)n)
		return -EPROTO; /* written by a newer nucleusd */
	for (; v < (int)n; v++) {
		struct migration m = {migrations[v], v + 1};

		r = store__tx(s, apply_one, &m);
		if (r < 0)
			return r;
	}
	s->version = v;
	return 0;
}

static int configure(sqlite3 *db)
{
	/*
	 * WAL + synchronous=NORMAL: a commit is atomic and survives a crash of nucleusd
	 * (kill -9); only an OS crash or power loss can lose the newest commits (never
	 * half of one). FULL would fsync every tool-call decision, far beyond the gate's
	 * latency budget.
	 */
	static const char pragmas[] = "PRAGMA journal_mode=WAL;"
				      "PRAGMA synchronous=NORMAL;"
				      "PRAGMA foreign_keys=ON;";
	char *mode = NULL;
	sqlite3_stmt *st = NULL;
	int r;

	r = store__errno(sqlite3_busy_timeout(db, 5000));
	if (r < 0)
		return r;
	r = store__errno(sqlite3_exec(db, pragmas, NULL, NULL, NULL));
	if (r < 0)
		return r;
	/* journal_mode=WAL can silently stay on another mode (e.g. in-memory DBs). */
	r = store__errno(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL));
	if (r < 0)
		return r;
	if (sqlite3_step(st) == SQLITE_ROW)
		mode = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (!mode)
		return -ENOMEM;
	r = strcmp(mode, "wal") == 0 ? 0 : -ENOTSUP;
	free(mode);
	return r;
}

int store__open_with(const char *path, const char *const *migrations, size_t n, struct store **ret)
{
	struct store *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = store__errno(sqlite3_open_v2(
		path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
		NULL));
	if (r < 0)
		goto fail;
	r = configure(s->db);
	if (r < 0)
		goto fail;
	r = migrate(s, migrations, n);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	store__free(s);
	return r;
}

int store__open(const char *path, struct store **ret)
{
	return store__open_with(path, store__migrations, store__n_migrations, ret);
}

void store__free(struct store *s)
{
	if (!s)
		return;
	sqlite3_close_v2(s->db);
	free(s);
}

int nd_err__set(struct nd_err *e, int rc, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return rc;
	snprintf(e->code, sizeof(e->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return rc;
}
