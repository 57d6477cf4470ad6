// SPDX-License-Identifier: Apache-2.0
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>

#include "budget/budget.h"
#include "nucleusd/store.h"
#include "tests/unit/budget/helpers.h"

int bt_store_open(const char *path, struct store **ret)
{
	static const struct store_schema *const schemas[] = {&store__core, &budget__schema};

	return store__open(path, schemas, 2, ret);
}

struct store *bt_store(const char *dir)
{
	struct store *s = NULL;
	char path[512];

	snprintf(path, sizeof(path), "%s/nucleus.db", dir);
	cr_assert_eq(bt_store_open(path, &s), 0, "store__open %s", path);
	return s;
}

const char *bt_sandbox(sqlite3 *db, unsigned n)
{
	static char id[8][32];
	static unsigned next;
	char *out = id[next++ % 8];
	char sql[512];

	snprintf(out, 32, "sb-%016x", n);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO sandboxes(id, state, policy, spec, vcpus, memory_mib, owner_uid, "
		 "created_us, updated_us) VALUES ('%s', 'running', '{}', '{}', 1, 64, 0, 1, 1)",
		 out);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	return out;
}

void bt_begin(sqlite3 *db)
{
	cr_assert_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
}

void bt_commit(sqlite3 *db)
{
	cr_assert_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
}

void bt_rollback(sqlite3 *db)
{
	cr_assert_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
}

int64_t bt_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v;

	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
		     sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

char *bt_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *t;
	char *v;

	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
		     sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
	t = sqlite3_column_text(st, 0);
	v = strdup(t ? (const char *)t : "");
	cr_assert(v);
	sqlite3_finalize(st);
	return v;
}
