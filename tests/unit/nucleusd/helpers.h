/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the nucleusd and api unit tests. */
#ifndef NUCLEUS_TESTS_ND_HELPERS_H
#define NUCLEUS_TESTS_ND_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

#include "nucleusd/nucleusd.h"
#include "nucleusd/store.h"
#include "tests/unit/th_file.h"

/* The daemon's schemas (core, then budget), as nucleusd__new opens its database. */
extern const struct store_schema *const th_schemas[];
#define TH_N_SCHEMAS 2
/* store__open(@path) with th_schemas. */
int th_store_open(const char *path, struct store **ret);
/* th_store_open that must succeed. */
struct store *th_open(const char *path);

/* A fresh directory under /tmp (mode 0755 so other uids can reach a socket in it). */
/* First column of the first row as text ("" for none/NULL); valid until the 8th next call. */
const char *th_query(struct store *s, const char *sql);
/* Same on a database file, opened read-only for the one query. */
const char *th_query_file(const char *db, const char *sql);
/* Every row of every table, as text (malloc'd): for "nothing changed" checks. */
char *th_dump(const char *db);

/*
 * What an attacker without the key can do: recompute the audit chain of @db from seq
 * @from on, by the format documented in nucleusd/audit.c (so this also pins it down).
 * The append-only triggers must be gone.
 */
void th_rehash_from(sqlite3 *db, uint64_t from);
/*
 * Writes junk over the middle leaf page of @table in database file @db (checkpointed
 * first, completely; a running daemon must be idle): one corrupted page. Returns the number of
 * leaf pages @table has (at least 3).
 */
int th_garble_page(const char *db, const char *table);

#endif
