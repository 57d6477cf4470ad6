// SPDX-License-Identifier: Apache-2.0
/*
 * The daemon's SQLite store (nucleusd/store.h): WAL mode, foreign keys, busy timeout,
 * versioned migrations per module (each in its own transaction), the one transaction
 * helper every state change goes through, savepoints, the prepared-statement cache
 * every statement goes through, the SQLite-to-errno map, and WAL checkpoints on a
 * background thread (off the request path). Its own library (nucleus_store), below
 * budget/ and the rest of nucleusd/.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "nucleusd/clock.h"
#include "nucleusd/store.h"

/*
 * Checkpoints: SQLite's automatic checkpoint (wal_autocheckpoint) runs inside the
 * COMMIT that crosses 1000 WAL frames and fsyncs the WAL and the database there, which
 * made those requests milliseconds slow (the gate's p99). A checkpoint on another
 * thread is no cure while requests keep coming: its fsyncs stall the writer's WAL
 * appends and take the CPU the requests need (measured: 1-2% of tool calls 3-10x
 * slower on a 2-vCPU machine). So the WAL hook wakes a thread with its own connection
 * once the WAL holds STORE_CKPT_FRAMES frames, and the thread waits until the writer
 * has committed nothing for STORE_CKPT_IDLE_MS before it runs a PASSIVE checkpoint
 * (which never blocks the writer). The next commit after a complete checkpoint starts
 * the WAL over, which costs that commit one fsync of the WAL header (SQLite's rule): a
 * large threshold makes that rare. A writer that never pauses for that long never
 * lets the thread run, so past STORE_CKPT_IN_COMMIT_FRAMES the committing connection
 * checkpoints itself: one slow commit per that many frames instead of many.
 */

struct store_stmt {
	const char *sql; /* the caller's text: its address is the fast key */
	sqlite3_stmt *st;
};

/* A module's version in the open database. */
struct store_version {
	const char *module; /* the schema's (static) name */
	int version;
};

struct store {
	sqlite3 *db;
	struct store_version *versions;
	size_t n_versions;
	struct store_stmt *stmts;
	size_t n_stmts, cap_stmts;
	bool ckpt_woken; /* the thread was woken for this WAL (the hook's thread only) */
	store_tx_end_fn tx_end;
	void *tx_end_arg;

	/* The checkpointer; lock guards everything below it. */
	char *path;
	bool ckpt_started;
	pthread_t ckpt_thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool ckpt_want, ckpt_stop;
	struct store_ckpt_stats stats;
	uint64_t commits;	  /* the writer's commits, for the thread's idle test */
	pthread_mutex_t sql_lock; /* held by the checkpointer while it is inside SQLite */
	struct store *next_open;  /* on open_stores */
};

/*
 * fork() with the checkpointer inside SQLite would leave SQLite's global mutexes locked
 * in the child (tests fork writers that use SQLite). Around a fork every store's
 * sql_lock is held, so the checkpointer is outside SQLite.
 */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct store *open_stores;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
	pthread_mutex_lock(&open_lock);
	for (struct store *s = open_stores; s; s = s->next_open)
		pthread_mutex_lock(&s->sql_lock);
}

static void fork_parent(void)
{
	for (struct store *s = open_stores; s; s = s->next_open)
		pthread_mutex_unlock(&s->sql_lock);
	pthread_mutex_unlock(&open_lock);
}

static void fork_child(void)
{
	for (struct store *s = open_stores; s; s = s->next_open) {
		s->ckpt_started = false; /* the thread stayed in the parent */
		pthread_mutex_unlock(&s->sql_lock);
	}
	pthread_mutex_unlock(&open_lock);
}

static void atfork_register(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/*
 * nucleusd's own tables ("core"). Migration 1: the initial schema. Its budget tables
 * (budget_limits, budget_ledger) are budget/'s migration 1 now (budget/schema.c):
 * budget owns and migrates its tables; a database made before that has them already
 * and records them as budget's (store_schema.legacy). Later versions append entries;
 * never edit one that has shipped.
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
 * Migration 2 (running balances of the budget ledger) is budget/'s migration 2 now.
 * Core's keeps its number, so that a database's core version means what it meant
 * before modules had versions of their own; it changes nothing.
 */
static const char migration_2[] = "-- moved to budget/schema.c (its migration 2)";

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

/*
 * Migration 5: a profile's default budget limits (docs/budget.md "Limits", JSON, or
 * NULL) live next to its policy body, so both come from one row (nucleusd/profiles.c).
 */
static const char migration_5[] =
	"ALTER TABLE profiles ADD COLUMN budget TEXT CHECK (budget IS NULL OR json_valid(budget));";

/*
 * Migration 6: the sandbox list in its order (created_us, id) without a sort. The list
 * of live sandboxes (the default, and the daemon's recovery at start) reads a partial
 * index of them only; ?all=true reads the whole table in index order. Before, both
 * scanned the table and sorted it (every sandbox ever made) on every list.
 */
static const char migration_6[] = "CREATE INDEX sandboxes_created ON sandboxes(created_us, id);"
				  "CREATE INDEX sandboxes_live_created ON sandboxes(created_us, id)"
				  "  WHERE state != 'stopped';";

/*
 * Migration 7: one owner's list (GET /v1/sandboxes of a caller who is not listing every
 * owner's) reads the owner's sandboxes in list order from these.
 */
static const char migration_7[] =
	"CREATE INDEX sandboxes_owner_created ON sandboxes(owner_uid, created_us, id);"
	"CREATE INDEX sandboxes_owner_live_created ON sandboxes(owner_uid, created_us, id)"
	"  WHERE state != 'stopped';";

/*
 * Migration 8: a name is unique among one owner's live sandboxes, not across owners: a
 * create refused as "name taken" told one user that another's sandbox of that name lived.
 */
static const char migration_8[] =
	"DROP INDEX sandboxes_live_name;"
	"CREATE UNIQUE INDEX sandboxes_live_name ON sandboxes(owner_uid, name)"
	"  WHERE name IS NOT NULL AND state NOT IN ('stopped', 'failed');";

/*
 * Migration 9: delegation. A child sandbox names its parent (its policy is within the
 * parent's, its budget carved out of the parent's); the index finds a sandbox's children
 * (a narrowing reaches them, an ending parent ends them).
 */
static const char migration_9[] =
	"ALTER TABLE sandboxes ADD COLUMN parent_id TEXT REFERENCES sandboxes(id);"
	"CREATE INDEX sandboxes_parent ON sandboxes(parent_id, created_us)"
	"  WHERE parent_id IS NOT NULL;";

static const char *const core_migrations[] = {
	migration_1, migration_2, migration_3, migration_4, migration_5,
	migration_6, migration_7, migration_8, migration_9,
};

/* A database from before modules had versions: core's version was the one version. */
static const int core_legacy[] = {0, 1, 2, 3, 4};

const struct store_schema store__core = {
	.module = "core",
	.migrations = core_migrations,
	.n = sizeof(core_migrations) / sizeof(core_migrations[0]),
	.legacy = core_legacy,
	.n_legacy = sizeof(core_legacy) / sizeof(core_legacy[0]),
};

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

int store__version(struct store *s, const char *module)
{
	for (size_t i = 0; s && module && i < s->n_versions; i++)
		if (strcmp(s->versions[i].module, module) == 0)
			return s->versions[i].version;
	return -ENOENT;
}

bool store__in_tx(struct store *s)
{
	return s && sqlite3_get_autocommit(s->db) == 0;
}

int store__exec(struct store *s, const char *sql)
{
	return store__errno(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

int store__stmt(struct store *s, const char *sql, struct sqlite3_stmt **ret)
{
	struct store_stmt *e = NULL;
	sqlite3_stmt *st = NULL;
	int r;

	if (!s || !sql)
		return -EINVAL;
	for (size_t i = 0; i < s->n_stmts && !e; i++)
		if (s->stmts[i].sql == sql)
			e = &s->stmts[i];
	for (size_t i = 0; i < s->n_stmts && !e; i++)
		if (strcmp(sqlite3_sql(s->stmts[i].st), sql) == 0)
			e = &s->stmts[i];
	if (e) {
		/* Still in use by a caller up the stack: a bug, not a reason to share it. */
		if (sqlite3_stmt_busy(e->st))
			return -EBUSY;
		sqlite3_reset(e->st);
		sqlite3_clear_bindings(e->st);
		*ret = e->st;
		return 0;
	}
	if (s->n_stmts == s->cap_stmts) {
		size_t cap = s->cap_stmts ? s->cap_stmts * 2 : 32;
		struct store_stmt *n = realloc(s->stmts, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->stmts = n;
		s->cap_stmts = cap;
	}
	r = store__errno(sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL));
	if (r < 0)
		return r;
	if (!st)
		return -EINVAL; /* empty SQL */
	s->stmts[s->n_stmts++] = (struct store_stmt){sql, st};
	*ret = st;
	return 0;
}

int store__stmt_text(struct store *s, const char *sql, const char *text, sqlite3_stmt **ret)
{
	sqlite3_stmt *st = NULL;
	int r;

	r = store__stmt(s, sql, &st);
	if (r < 0)
		return r;
	r = store__errno(sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC));
	if (r < 0) {
		store__stmt_done(st);
		return r;
	}
	*ret = st;
	return 0;
}

void store__stmt_done(struct sqlite3_stmt *st)
{
	if (!st)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int store__rows(struct sqlite3_stmt *st, store_row_fn fn, void *arg)
{
	int rc, r;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = fn(st, arg);
		if (r < 0)
			return r;
	}
	return store__errno(rc);
}

int store__step(struct store *s, const char *sql)
{
	sqlite3_stmt *st;
	int r;

	r = store__stmt(s, sql, &st);
	if (r < 0)
		return r;
	r = store__errno(sqlite3_step(st));
	store__stmt_done(st);
	return r;
}

int store__tx(struct store *s, store_tx_fn fn, void *arg)
{
	static const char begin[] = "BEGIN IMMEDIATE", commit[] = "COMMIT", rollback[] = "ROLLBACK";
	int r;

	if (store__in_tx(s))
		return -EINVAL; /* no nesting: one effect, one transaction */
	r = store__step(s, begin);
	if (r < 0)
		return r;
	r = fn(s, arg);
	if (r >= 0) {
		int c = store__step(s, commit);

		if (c == 0) {
			if (s->tx_end)
				s->tx_end(s->tx_end_arg, true);
			return r;
		}
		r = c;
	}
	/*
	 * ROLLBACK fails only when SQLite already rolled back on its own; then the
	 * transaction is over all the same and @r says why.
	 */
	if (store__in_tx(s))
		store__step(s, rollback);
	if (s->tx_end)
		s->tx_end(s->tx_end_arg, false);
	return r;
}

int store__savepoint(struct store *s, store_tx_fn fn, void *arg)
{
	static const char save[] = "SAVEPOINT store_sp", undo[] = "ROLLBACK TO store_sp",
			  release[] = "RELEASE store_sp";
	int r, u;

	if (!store__in_tx(s))
		return -EINVAL; /* a savepoint belongs to the caller's transaction */
	r = store__step(s, save);
	if (r < 0)
		return r;
	r = fn(s, arg);
	if (r < 0) {
		u = store__step(s, undo);
		/* Not undone: the caller must roll the whole transaction back (r < 0 says so). */
		if (u < 0)
			return r;
	}
	u = store__step(s, release);
	return r < 0 ? r : u < 0 ? u : r;
}

void store__on_tx_end(struct store *s, store_tx_end_fn fn, void *arg)
{
	s->tx_end = fn;
	s->tx_end_arg = arg;
}

/* ---- checkpoints ---- */

/* The monotonic time @ms from now, for pthread_cond_timedwait (cond_init_monotonic). */
static void deadline_ms(struct timespec *ts, long ms)
{
	int64_t at = nd_clock__mono_us() + (int64_t)ms * 1000;

	ts->tv_sec = (time_t)(at / 1000000);
	ts->tv_nsec = (long)(at % 1000000) * 1000;
}

/*
 * Waits for work, then until the writer has committed nothing for STORE_CKPT_IDLE_MS.
 * @pending: the last checkpoint left frames behind, so an idle writer is reason enough.
 * True when asked to stop. Called and returns with s->lock held.
 */
static bool ckpt_wait(struct store *s, bool pending)
{
	struct timespec ts;
	uint64_t seen;

	while (!s->ckpt_want && !pending && !s->ckpt_stop)
		pthread_cond_wait(&s->cond, &s->lock);
	do {
		seen = s->commits;
		deadline_ms(&ts, STORE_CKPT_IDLE_MS);
		while (!s->ckpt_stop &&
		       pthread_cond_timedwait(&s->cond, &s->lock, &ts) != ETIMEDOUT)
			;
	} while (!s->ckpt_stop && s->commits != seen);
	s->ckpt_want = false;
	return s->ckpt_stop;
}

static void *ckpt_main(void *arg)
{
	struct store *s = arg;
	bool pending = false, ok;
	sqlite3 *db = NULL;

	/*
	 * Lower priority than the event loop, but not SCHED_IDLE: a starved checkpointer
	 * leaves a large unsynced WAL for the in-commit fallback to fsync.
	 */
	setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
	pthread_mutex_lock(&s->sql_lock); /* while in SQLite: see fork_prepare() */
	ok = sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) ==
	     SQLITE_OK;
	/* A connection finds the WAL when it first reads; until then it has none to copy. */
	ok = ok &&
	     sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) == SQLITE_OK;
	pthread_mutex_unlock(&s->sql_lock);
	pthread_mutex_lock(&s->lock);
	if (!ok)
		s->stats.failed++; /* the in-commit fallback still bounds the WAL */
	while (!ckpt_wait(s, pending)) {
		int log = -1, done = -1, rc;

		if (!ok)
			continue;
		pthread_mutex_unlock(&s->lock);
		/* PASSIVE: copies what no reader still needs; never waits for the writer. */
		pthread_mutex_lock(&s->sql_lock);
		rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
		pthread_mutex_unlock(&s->sql_lock);
		pthread_mutex_lock(&s->lock);
		if (rc == SQLITE_OK && log < 0)
			rc = SQLITE_ERROR; /* not in WAL mode: nothing was copied */
		pending = rc != SQLITE_OK || log != done;
		if (rc == SQLITE_OK)
			s->stats.background++;
		else if (rc != SQLITE_BUSY)
			s->stats.failed++;
	}
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_lock(&s->sql_lock);
	sqlite3_close_v2(db);
	pthread_mutex_unlock(&s->sql_lock);
	return NULL;
}

/*
 * Runs on the store's connection after each of its commits, @frames = frames now in
 * the WAL. Wakes the thread once per WAL (it then waits for the writer to pause).
 */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store *s = arg;
	bool wake = false, in_commit = false;
	int rc = SQLITE_OK;

	if (frames < STORE_CKPT_FRAMES)
		s->ckpt_woken = false; /* the WAL started over */
	if (frames >= STORE_CKPT_IN_COMMIT_FRAMES ||
	    (frames >= STORE_CKPT_FRAMES && !s->ckpt_started)) {
		/*
		 * Not while the thread runs one (SQLite would say SQLITE_BUSY); at twice the
		 * limit wait for it to end, so the WAL stays bounded.
		 */
		if (frames >= 2 * STORE_CKPT_IN_COMMIT_FRAMES)
			in_commit = pthread_mutex_lock(&s->sql_lock) == 0;
		else
			in_commit = pthread_mutex_trylock(&s->sql_lock) == 0;
		if (in_commit) {
			rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL,
						       NULL);
			pthread_mutex_unlock(&s->sql_lock);
		}
	} else if (frames >= STORE_CKPT_FRAMES && !s->ckpt_woken) {
		s->ckpt_woken = true;
		wake = true;
	}
	pthread_mutex_lock(&s->lock);
	s->stats.last_frames = (unsigned)frames;
	s->commits++;
	if (in_commit && rc == SQLITE_OK)
		s->stats.in_commit++;
	if (wake) {
		s->ckpt_want = true;
		pthread_cond_signal(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return SQLITE_OK;
}

static int cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t a;
	int r;

	r = -pthread_condattr_init(&a);
	if (r < 0)
		return r;
	r = -pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	if (r == 0)
		r = -pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return r;
}

static int ckpt_start(struct store *s)
{
	sigset_t all, old;
	int r;

	pthread_once(&atfork_once, atfork_register);
	pthread_mutex_lock(&open_lock);
	s->next_open = open_stores;
	open_stores = s;
	pthread_mutex_unlock(&open_lock);

	/* Signals stay with the event loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&s->ckpt_thread, NULL, ckpt_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return r;
	s->ckpt_started = true;
	return 0;
}

static void ckpt_stop(struct store *s)
{
	pthread_mutex_lock(&open_lock);
	for (struct store **p = &open_stores; *p; p = &(*p)->next_open)
		if (*p == s) {
			*p = s->next_open;
			break;
		}
	pthread_mutex_unlock(&open_lock);
	if (!s->ckpt_started)
		return;
	pthread_mutex_lock(&s->lock);
	s->ckpt_stop = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->ckpt_thread, NULL);
	s->ckpt_started = false;
}

void store__ckpt_stats(struct store *s, struct store_ckpt_stats *ret)
{
	pthread_mutex_lock(&s->lock);
	*ret = s->stats;
	pthread_mutex_unlock(&s->lock);
}

/*
 * Versions: one row (module, version) per applied migration. Before modules, one list
 * had one table (schema_version, 1-4); a module without a row of its own takes its
 * version from that table once (store_schema.legacy), which is left as it was.
 */
static const char versions_table[] = "CREATE TABLE IF NOT EXISTS schema_versions ("
				     "  module TEXT NOT NULL,"
				     "  version INTEGER NOT NULL CHECK (version > 0),"
				     "  applied_us INTEGER NOT NULL,"
				     "  PRIMARY KEY (module, version))";

/* Steps @sql (?1 = @text, may be NULL) for one integer: its first row's first column. */
static int one_int(struct store *s, const char *sql, const char *text, int64_t *ret)
{
	sqlite3_stmt *st;
	int r, rc;

	r = store__stmt(s, sql, &st);
	if (r < 0)
		return r;
	if (text)
		r = store__errno(sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC));
	rc = r < 0 ? SQLITE_OK : sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	else if (r == 0)
		r = rc == SQLITE_DONE ? -ENOENT : store__errno(rc);
	store__stmt_done(st);
	return r;
}

struct version_row {
	const char *module;
	int version;
	int legacy; /* > 0: adopted from schema_version, at its version @legacy */
};

static int insert_version(struct store *s, const struct version_row *v)
{
	static const char sql[] =
		"INSERT INTO schema_versions(module, version, applied_us) VALUES (?1, ?2, "
		"coalesce((SELECT applied_us FROM schema_version WHERE ?4 > 0 AND version = ?4), "
		"?3))";
	static const char sql_new[] =
		"INSERT INTO schema_versions(module, version, applied_us) VALUES (?1, ?2, ?3)";
	sqlite3_stmt *st;
	int r;

	/* sql names schema_version, which a database made after modules does not have. */
	r = store__stmt_text(s, v->legacy > 0 ? sql : sql_new, v->module, &st);
	if (r < 0)
		return r;
	if (r == 0)
		r = store__errno(sqlite3_bind_int(st, 2, v->version));
	if (r == 0)
		r = store__errno(sqlite3_bind_int64(st, 3, nd_clock__wall_us()));
	if (r == 0 && v->legacy > 0)
		r = store__errno(sqlite3_bind_int(st, 4, v->legacy));
	if (r == 0)
		r = store__errno(sqlite3_step(st));
	store__stmt_done(st);
	return r;
}

struct migration {
	const char *sql;
	struct version_row row;
};

static int apply_one(struct store *s, void *arg)
{
	const struct migration *m = arg;
	int r;

	r = store__exec(s, m->sql);
	if (r < 0)
		return r;
	return insert_version(s, &m->row);
}

struct adopt {
	const struct store_schema *sc;
	int legacy_version; /* of the database */
	int version;	    /* the module's, from sc->legacy */
};

/* Records versions 1..a->version of a module whose tables a pre-module database has. */
static int adopt_tx(struct store *s, void *arg)
{
	const struct adopt *a = arg;
	int r = 0;

	for (int v = 1; v <= a->version && r == 0; v++) {
		/* the legacy version that brought the module to v: the first that maps there */
		int w = 0;

		while (w < a->legacy_version && a->sc->legacy[w] < v)
			w++;
		r = insert_version(s, &(struct version_row){a->sc->module, v, w});
	}
	return r;
}

/* @sc's version, adopting it from a pre-module database the first time. */
static int schema_version(struct store *s, const struct store_schema *sc, bool legacy_db, int *ret)
{
	static const char mine[] =
		"SELECT coalesce(max(version), 0) FROM schema_versions WHERE module = ?1";
	static const char old[] = "SELECT coalesce(max(version), 0) FROM schema_version";
	struct adopt a = {.sc = sc};
	int64_t v, lv;
	int r;

	r = one_int(s, mine, sc->module, &v);
	if (r < 0)
		return r;
	if (v > 0 || !legacy_db || !sc->legacy) {
		*ret = (int)v;
		return 0;
	}
	r = one_int(s, old, NULL, &lv);
	if (r < 0)
		return r;
	if (lv < 0 || (size_t)lv >= sc->n_legacy)
		return -EPROTO; /* a pre-module version this nucleusd does not know */
	a.legacy_version = (int)lv;
	a.version = sc->legacy[lv];
	if (a.version > 0) {
		r = store__tx(s, adopt_tx, &a);
		if (r < 0)
			return r;
	}
	*ret = a.version;
	return 0;
}

static int migrate_one(struct store *s, const struct store_schema *sc, bool legacy_db,
		       struct store_version *out)
{
	int r, v;

	r = schema_version(s, sc, legacy_db, &v);
	if (r < 0)
		return r;
	if (v > (int)sc->n)
		return -EPROTO; /* written by a newer nucleusd */
	for (; v < (int)sc->n; v++) {
		struct migration m = {sc->migrations[v], {sc->module, v + 1, 0}};

		r = store__tx(s, apply_one, &m);
		if (r < 0)
			return r;
	}
	*out = (struct store_version){sc->module, v};
	return 0;
}

static int migrate(struct store *s, const struct store_schema *const *schemas, size_t n)
{
	static const char has_old[] = "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
				      "AND name = 'schema_version'";
	int64_t legacy_db;
	int r;

	r = store__exec(s, versions_table);
	if (r < 0)
		return r;
	r = one_int(s, has_old, NULL, &legacy_db);
	if (r < 0)
		return r;
	s->versions = calloc(n ? n : 1, sizeof(*s->versions));
	if (!s->versions)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		r = migrate_one(s, schemas[i], legacy_db > 0, &s->versions[i]);
		if (r < 0)
			return r;
		s->n_versions = i + 1;
	}
	return 0;
}

static int configure(struct store *s)
{
	/*
	 * WAL + synchronous=NORMAL: a commit is atomic and survives a crash of nucleusd
	 * (kill -9); only an OS crash or power loss can lose the newest commits (never
	 * half of one). FULL would fsync every tool-call decision, far beyond the gate's
	 * latency budget.
	 */
	/*
	 * Page size, for a new database only (an existing one keeps its own): every
	 * commit writes each page it touched to the WAL, and a tool call touches about
	 * five (audit entry, its index, the session), mostly to add a few hundred bytes.
	 * 1 KiB pages write a quarter of what 4 KiB pages do, so checkpoints come four
	 * times less often and fsync a quarter of the data.
	 */
	static const char pragmas[] = "PRAGMA page_size=1024;"
				      "PRAGMA journal_mode=WAL;"
				      "PRAGMA synchronous=NORMAL;"
				      /* shrinks a WAL that outgrew the checkpoint bound */
				      "PRAGMA journal_size_limit=83886080;"
				      "PRAGMA foreign_keys=ON;"
				      /* what is deleted (a stopped sandbox's env) is overwritten */
				      "PRAGMA secure_delete=ON;";
	static const char mode[] = "SELECT journal_mode = 'wal' FROM pragma_journal_mode";
	int64_t wal = 0;
	int r;

	r = store__errno(sqlite3_busy_timeout(s->db, 5000));
	if (r < 0)
		return r;
	r = store__exec(s, pragmas);
	if (r < 0)
		return r;
	/* journal_mode=WAL can silently stay on another mode (e.g. in-memory DBs). */
	r = one_int(s, mode, NULL, &wal);
	if (r < 0)
		return r;
	return wal ? 0 : -ENOTSUP;
}

struct quick_check {
	store_row_fn fn;
	void *arg;
	int problems;
};

/* One row of quick_check: "ok" alone, or one problem per row. */
static int quick_check_row(sqlite3_stmt *st, void *arg)
{
	struct quick_check *q = arg;
	const char *line = (const char *)sqlite3_column_text(st, 0);

	if (line && strcmp(line, "ok") == 0)
		return 0;
	q->problems++;
	return q->fn ? q->fn(st, q->arg) : 0;
}

/* fsync @path, so that a rename over the old copy never leaves an empty one behind. */
static int sync_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

/*
 * The database and its -wal and -shm hold secrets (a create's env until the stop): 0600.
 * Makes the database file 0600 when it does not exist yet (SQLite then gives the -wal
 * and -shm it creates the database's mode) and narrows any of the three that exists
 * with another mode. By path only, never open() and close(): closing any descriptor of
 * a file drops the process's POSIX locks on it, SQLite's included.
 */
static int private_files(const char *path)
{
	static const char *const suffix[] = {"", "-wal", "-shm"};
	char p[PATH_MAX];
	struct stat st;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0)
		close(fd); /* new: nobody holds a lock on it yet */
	else if (errno != EEXIST)
		return -errno;
	for (size_t i = 0; i < 3; i++) {
		if ((size_t)snprintf(p, sizeof(p), "%s%s", path, suffix[i]) >= sizeof(p))
			return -ENAMETOOLONG;
		if (lstat(p, &st) < 0) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		if (!S_ISREG(st.st_mode))
			return -EINVAL;
		if ((st.st_mode & 07777) != 0600 && chmod(p, 0600) < 0)
			return -errno;
	}
	return 0;
}

/* A store on no connection yet: its locks and path. */
static int store_alloc(const char *path, struct store **ret)
{
	struct store *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->sql_lock, NULL);
	r = cond_init_monotonic(&s->cond);
	if (r < 0) {
		pthread_mutex_destroy(&s->lock);
		pthread_mutex_destroy(&s->sql_lock);
		free(s);
		return r;
	}
	s->path = strdup(path);
	if (!s->path) {
		store__free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

int store__open(const char *path, const struct store_schema *const *schemas, size_t n,
		struct store **ret)
{
	struct store *s;
	int r;

	r = store_alloc(path, &s);
	if (r < 0)
		return r;
	r = private_files(path);
	if (r < 0)
		goto fail;
	r = store__errno(sqlite3_open_v2(
		path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
		NULL));
	if (r < 0)
		goto fail;
	r = configure(s);
	if (r < 0)
		goto fail;
	/* and check what SQLite made of them (the -wal and -shm it just created) */
	r = private_files(path);
	if (r < 0)
		goto fail;
	r = migrate(s, schemas, n);
	if (r < 0)
		goto fail;
	/* Replaces wal_autocheckpoint (both use the one WAL hook slot). */
	sqlite3_wal_hook(s->db, wal_hook, s);
	r = ckpt_start(s);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	store__free(s);
	return r;
}

int store__open_reader(const char *path, struct store **ret)
{
	static const char probe[] = "SELECT count(*) FROM sqlite_master";
	struct store *s;
	int r;

	r = store_alloc(path, &s);
	if (r < 0)
		return r;
	r = store__errno(
		sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL));
	if (r == 0)
		r = store__errno(sqlite3_busy_timeout(s->db, 5000));
	/* the first read: a file that is no database says so here, not later */
	if (r == 0)
		r = store__exec(s, probe);
	if (r < 0) {
		store__free(s);
		return r;
	}
	*ret = s;
	return 0;
}

void store__interrupt(struct store *s)
{
	if (s && s->db)
		sqlite3_interrupt(s->db);
}

const char *store__errmsg(struct store *s)
{
	return s && s->db ? sqlite3_errmsg(s->db) : "out of memory";
}

int store__quick_check(struct store *s, unsigned max, store_row_fn fn, void *arg)
{
	static const char sql[] = "SELECT quick_check FROM pragma_quick_check(?1)";
	struct quick_check q = {fn, arg, 0};
	sqlite3_stmt *st;
	int r;

	r = store__stmt(s, sql, &st);
	if (r < 0)
		return r;
	r = store__errno(sqlite3_bind_int(st, 1, max ? (int)max : 100));
	if (r == 0)
		r = store__rows(st, quick_check_row, &q);
	store__stmt_done(st);
	return r < 0 ? r : q.problems;
}

int store__backup(struct store *s, const char *path)
{
	char tmp[4096];
	sqlite3 *to = NULL;
	sqlite3_backup *b;
	int r, fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	/* 0600 from its first byte: the copy holds what the database holds */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	r = store__errno(
		sqlite3_open_v2(tmp, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL));
	if (r < 0)
		goto out;
	b = sqlite3_backup_init(to, "main", s->db, "main");
	if (!b) {
		r = store__errno(sqlite3_errcode(to));
		goto out;
	}
	/* one step: one read transaction, so the copy is one snapshot (WAL: no writer waits) */
	r = sqlite3_backup_step(b, -1);
	r = r == SQLITE_DONE ? 0 : store__errno(r == SQLITE_OK ? SQLITE_ERROR : r);
	if (sqlite3_backup_finish(b) != SQLITE_OK && r == 0)
		r = store__errno(sqlite3_errcode(to));
	/* the copy is a rollback-journal database: one file, nothing beside it to lose */
	if (r == 0)
		r = store__errno(sqlite3_exec(to, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL));
out:
	if (sqlite3_close(to) != SQLITE_OK && r == 0)
		r = -EIO;
	/* after the close: closing our descriptor would drop the connection's locks */
	if (r == 0)
		r = sync_file(tmp);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

void store__free(struct store *s)
{
	if (!s)
		return;
	ckpt_stop(s);
	for (size_t i = 0; i < s->n_stmts; i++)
		sqlite3_finalize(s->stmts[i].st);
	free(s->stmts);
	free(s->versions);
	sqlite3_close_v2(s->db);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->sql_lock);
	free(s->path);
	free(s);
}
