// SPDX-License-Identifier: Apache-2.0
/*
 * A database as nucleusd made it before modules had versions: the one migration list
 * of nucleusd/store.c as it shipped (versions 1-4, every table in it, one table
 * schema_version), applied the way that store applied it. The migrations are frozen as
 * data, tests/unit/nucleusd/legacy/vN.sql: tests open what they make with today's store
 * to show that old databases keep their data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <criterion/criterion.h>
#include <sqlite3.h>

#include "tests/unit/nucleusd/legacy.h"
#include "tests/unit/th_file.h"

void th_legacy_db(const char *path, int version)
{
	char sql[128], file[512], *migration;
	sqlite3 *db = NULL;

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
		snprintf(file, sizeof(file), "%s/v%d.sql", LEGACY_SQL_DIR, v + 1);
		migration = th_slurp(file);
		cr_assert_eq(sqlite3_exec(db, migration, NULL, NULL, NULL), SQLITE_OK,
			     "legacy migration %d: %s", v + 1, sqlite3_errmsg(db));
		free(migration);
		cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		cr_assert_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	}
	cr_assert_eq(sqlite3_close(db), SQLITE_OK);
}
