/* SPDX-License-Identifier: Apache-2.0 */
#ifndef NUCLEUS_TESTS_BUDGET_HELPERS_H
#define NUCLEUS_TESTS_BUDGET_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

#include "tests/unit/th_file.h"

struct store;

/* A fresh directory under /tmp and its removal. */
/* Opens DIR/nucleus.db with the daemon's schemas (the store's core, then budget's). */
struct store *bt_store(const char *dir);
/* The same on a database file, without asserting (for forked writers and threads). */
int bt_store_open(const char *path, struct store **ret);
/* Inserts a running sandbox row with id sb-<16 hex of n>; returns the id (static buffer). */
const char *bt_sandbox(sqlite3 *db, unsigned n);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK, asserting success. */
void bt_begin(sqlite3 *db);
void bt_commit(sqlite3 *db);
void bt_rollback(sqlite3 *db);
/* First column of the first row of @sql as int64 (asserts a row). */
int64_t bt_int(sqlite3 *db, const char *sql);
/* The same as text (free it; "" for NULL). */
char *bt_text(sqlite3 *db, const char *sql);

#endif
