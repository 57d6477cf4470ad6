/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's SQLite store (nucleusd/store.c): internal, not part of nucleusd.h.
 *
 * Built as its own static library (nucleus_store, top-level meson.build) below budget/
 * and nucleusd/, the two modules that keep tables in the daemon's database: each brings
 * its schema (struct store_schema) and runs every statement through this store's
 * statement cache, transaction and savepoint helpers and its one SQLite-to-errno map.
 * Nothing above those two modules includes this header.
 */
#ifndef NUCLEUS_NUCLEUSD_STORE_H
#define NUCLEUS_NUCLEUSD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;
struct sqlite3_stmt;
struct store;

/*
 * One module's tables: its migrations, in order (migration i brings the module to
 * version i + 1), each applied in its own transaction and recorded as a row
 * (module, version) of schema_versions. Never edit one that has shipped: append.
 *
 * Before modules had versions of their own, the database had one list (table
 * schema_version, versions 1-4, every table in it). @legacy[v] (v < @n_legacy) is the
 * version of this module in such a database at version v: the first time a module
 * with no row of its own opens one, it is recorded at that version (its tables are
 * there already) and only its later migrations run.
 */
struct store_schema {
	const char *module;
	const char *const *migrations;
	size_t n;
	const int *legacy;
	size_t n_legacy;
};

/* nucleusd's own tables (profiles, sandboxes, sessions, approvals, audit log, meta). */
extern const struct store_schema store__core;

/*
 * Opens (creating if needed) the database at @path and brings each of @schemas, in
 * order, to its newest version (a module's tables may refer to an earlier module's).
 * -EPROTO when the database has a newer version of one of them (a newer nucleusd).
 */
int store__open(const char *path, const struct store_schema *const *schemas, size_t n,
		struct store **ret);
void store__free(struct store *s);

/* @module's current version (0: none of its migrations applied), -ENOENT: not opened. */
int store__version(struct store *s, const char *module);

typedef int (*store_tx_fn)(struct store *s, void *arg);
/* BEGIN IMMEDIATE; fn(); COMMIT, or ROLLBACK when fn returns < 0 or COMMIT fails. */
int store__tx(struct store *s, store_tx_fn fn, void *arg);
bool store__in_tx(struct store *s);
/*
 * Inside an open transaction (-EINVAL otherwise): fn() in a SAVEPOINT, rolled back to
 * it when fn returns < 0, so a failure half-way leaves the caller's transaction as it
 * was. Returns fn's result, or the error of releasing the savepoint.
 */
int store__savepoint(struct store *s, store_tx_fn fn, void *arg);
/*
 * One observer of transaction ends: @fn(@arg, committed) runs after every store__tx,
 * once it has committed or rolled back (the audit log promotes or drops its new head).
 */
typedef void (*store_tx_end_fn)(void *arg, bool committed);
void store__on_tx_end(struct store *s, store_tx_end_fn fn, void *arg);

/*
 * The store's prepared statement for @sql (prepared once, cached until store__free),
 * reset and with its bindings cleared. Do not finalize it; call store__stmt_done()
 * when finished (a SELECT left on a row keeps its read snapshot open). Use a string
 * with static storage for @sql (its address is the fast lookup key). -EBUSY when the
 * same statement is still in use up the stack. Every statement of nucleusd/ and
 * budget/ goes through here.
 */
int store__stmt(struct store *s, const char *sql, struct sqlite3_stmt **ret);
/*
 * store__stmt, then @text bound to ?1 (SQLITE_STATIC: @text must live until
 * store__stmt_done): the start of most statements, which name one row by its id.
 */
int store__stmt_text(struct store *s, const char *sql, const char *text, struct sqlite3_stmt **ret);
/* Resets @st and clears its bindings; NULL is fine. */
void store__stmt_done(struct sqlite3_stmt *st);
/*
 * Steps @st to its end, calling @fn(@st, @arg) on each row: 0, the first negative
 * result of @fn (which stops it), or -errno. The one loop of every listing (a
 * sandbox list, an audit page) that turns rows into JSON. @st stays for the caller's
 * store__stmt_done.
 */
typedef int (*store_row_fn)(struct sqlite3_stmt *st, void *arg);
int store__rows(struct sqlite3_stmt *st, store_row_fn fn, void *arg);
/*
 * A read-only connection to the existing database at @path, for a thread of its own
 * (WAL: it reads while the writer writes): no migrations, no checkpointer. -EBADMSG
 * when the file is not a database, -ENOENT when there is none.
 */
int store__open_reader(const char *path, struct store **ret);
/* Stops what runs on @s's connection at its next step (from any thread). */
void store__interrupt(struct store *s);
/* SQLite's words for the connection's last error. */
const char *store__errmsg(struct store *s);
/*
 * PRAGMA quick_check (at most @max problems, 0: 100): the number of problems found (0:
 * the database is sound) or -errno; @fn (may be NULL) gets each problem's row, its
 * text in column 0.
 */
int store__quick_check(struct store *s, unsigned max, store_row_fn fn, void *arg);
/*
 * Copies the database, as one snapshot, with SQLite's backup API to @path: written to
 * @path.tmp (mode 0600, fsync'd), then renamed over @path, so @path is always a whole
 * copy. The copy is a rollback-journal database (one file).
 */
int store__backup(struct store *s, const char *path);
/* Steps a statement without rows once (store__stmt, step, done): 0 or -errno. */
int store__step(struct store *s, const char *sql);
/*
 * The one-off helper: runs SQL text without parameters (several statements, not
 * cached), e.g. a migration. Statements that run more than once use store__stmt.
 */
int store__exec(struct store *s, const char *sql);

/* The one map from a SQLite result code to a negative errno. */
int store__errno(int sqlite_rc);

/* The raw connection, for tests that look at the database behind the store's back. */
struct sqlite3 *store__db(struct store *s);

/*
 * WAL checkpoints run on a background thread (PASSIVE, own connection) once the WAL
 * holds STORE_CKPT_FRAMES frames (pages) and the writer has paused for
 * STORE_CKPT_IDLE_MS; past STORE_CKPT_IN_COMMIT_FRAMES (a writer that never pauses)
 * the committing connection runs one itself.
 */
#define STORE_CKPT_FRAMES	    4000
#define STORE_CKPT_IN_COMMIT_FRAMES 16000
#define STORE_CKPT_IDLE_MS	    50
struct store_ckpt_stats {
	uint64_t background;  /* checkpoints completed by the background thread */
	uint64_t in_commit;   /* checkpoints run in a commit (the fallback) */
	uint64_t failed;      /* background checkpoints that failed (not SQLITE_BUSY) */
	unsigned last_frames; /* frames in the WAL after the newest commit */
};
void store__ckpt_stats(struct store *s, struct store_ckpt_stats *ret);

#endif
