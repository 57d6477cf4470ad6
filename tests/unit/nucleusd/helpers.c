// SPDX-License-Identifier: Apache-2.0
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <sodium.h>
#include <sqlite3.h>

#include "budget/budget.h"
#include "tests/unit/nucleusd/helpers.h"

const struct store_schema *const th_schemas[TH_N_SCHEMAS] = {&store__core, &budget__schema};

int th_store_open(const char *path, struct store **ret)
{
	return store__open(path, th_schemas, TH_N_SCHEMAS, ret);
}

struct store *th_open(const char *path)
{
	struct store *s = NULL;

	cr_assert_eq(th_store_open(path, &s), 0, "store__open %s", path);
	return s;
}

static const char *query_db(sqlite3 *db, const char *sql)
{
	static char bufs[8][4096];
	static int next;
	char *out = bufs[next++ % 8];
	sqlite3_stmt *st = NULL;

	out[0] = '\0';
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
		     sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, 4096, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return out;
}

const char *th_query(struct store *s, const char *sql)
{
	return query_db(store__db(s), sql);
}

const char *th_query_file(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	const char *r;

	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	r = query_db(db, sql);
	sqlite3_close(db);
	return r;
}

static void dump_table(sqlite3 *db, const char *table, FILE *f)
{
	sqlite3_stmt *st = NULL;
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\" ORDER BY rowid", table);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	fprintf(f, "[%s]\n", table);
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			const unsigned char *b = sqlite3_column_blob(st, i);
			int n = sqlite3_column_bytes(st, i);

			for (int k = 0; k < n; k++)
				fprintf(f, "%02x", b[k]);
			fputc('|', f);
		}
		fputc('\n', f);
	}
	sqlite3_finalize(st);
}

char *th_dump(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	cr_assert_eq(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db,
					"SELECT name FROM sqlite_master WHERE type = 'table' "
					"AND name NOT LIKE 'sqlite_%' ORDER BY name",
					-1, &st, NULL),
		     SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		dump_table(db, (const char *)sqlite3_column_text(st, 0), f);
	sqlite3_finalize(st);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	fclose(f);
	return buf;
}

int th_garble_page(const char *path, const char *table)
{
	static const char sql[] = "SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = "
				  "'leaf' ORDER BY path";
	int pages[4096], n = 0, page, size;
	unsigned char *junk;
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	FILE *f;

	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	/*
	 * Every page in the file, none left in the WAL (whose copy readers would read
	 * instead): a running daemon's reader may hold a snapshot for a moment, so until
	 * the checkpoint says it was not blocked (its first column, busy, is 0).
	 */
	for (int i = 0; strcmp(query_db(db, "PRAGMA wal_checkpoint(TRUNCATE)"), "0") != 0; i++) {
		cr_assert_lt(i, 1000, "the WAL cannot be checkpointed");
		usleep(10000);
	}
	size = atoi(query_db(db, "PRAGMA page_size"));
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s",
		     sqlite3_errmsg(db));
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while (n < 4096 && sqlite3_step(st) == SQLITE_ROW)
		pages[n++] = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	cr_assert_geq(n, 3, "%s has %d leaf pages: too few to garble the middle one", table, n);
	page = pages[n / 2];
	junk = malloc((size_t)size);
	cr_assert_not_null(junk);
	for (int i = 0; i < size; i++)
		junk[i] = (unsigned char)(0xa5 ^ (i * 131));
	f = fopen(path, "r+b");
	cr_assert_not_null(f);
	cr_assert_eq(fseek(f, (long)(page - 1) * size, SEEK_SET), 0);
	cr_assert_eq(fwrite(junk, 1, (size_t)size, f), (size_t)size);
	cr_assert_eq(fclose(f), 0);
	free(junk);
	return n;
}

/*
 * What an attacker without the key can do: recompute the chain from @from on, by the
 * format documented in audit.c (so this also pins that format down).
 */
static void hash64(crypto_generichash_state *h, uint64_t v)
{
	unsigned char b[8];

	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)v;
	crypto_generichash_update(h, b, sizeof(b));
}

static void hash_lp(crypto_generichash_state *h, const void *p, size_t n)
{
	unsigned char b[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
			      (unsigned char)(n >> 8), (unsigned char)n};

	crypto_generichash_update(h, b, sizeof(b));
	crypto_generichash_update(h, p, n);
}

void th_rehash_from(sqlite3 *conn, uint64_t from)
{
	static const char tag[] = "nucleus-audit-v1";
	unsigned char prev[32] = {0}, hash[32];
	sqlite3_stmt *st = NULL, *up = NULL;

	cr_assert_eq(sqlite3_prepare_v2(conn,
					"SELECT seq, at_us, sandbox_id, actor_uid, kind, "
					"body, hash FROM audit_log ORDER BY seq",
					-1, &st, NULL),
		     SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(conn,
					"UPDATE audit_log SET prev_hash = ?, hash = ? "
					"WHERE seq = ?",
					-1, &up, NULL),
		     SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
		crypto_generichash_state h;

		if (seq < from) {
			memcpy(prev, sqlite3_column_blob(st, 6), 32);
			continue;
		}
		crypto_generichash_init(&h, NULL, 0, 32);
		crypto_generichash_update(&h, prev, 32);
		crypto_generichash_update(&h, (const unsigned char *)tag, sizeof(tag));
		hash64(&h, seq);
		hash64(&h, (uint64_t)sqlite3_column_int64(st, 1));
		hash64(&h, sqlite3_column_type(st, 3) == SQLITE_NULL
				   ? (uint64_t)-1
				   : (uint64_t)sqlite3_column_int64(st, 3));
		if (sqlite3_column_type(st, 2) == SQLITE_NULL) /* no sandbox: ff ff ff ff */
			crypto_generichash_update(&h, (const unsigned char *)"\xff\xff\xff\xff", 4);
		else
			hash_lp(&h, sqlite3_column_text(st, 2),
				(size_t)sqlite3_column_bytes(st, 2));
		hash_lp(&h, sqlite3_column_text(st, 4), (size_t)sqlite3_column_bytes(st, 4));
		hash_lp(&h, sqlite3_column_text(st, 5), (size_t)sqlite3_column_bytes(st, 5));
		crypto_generichash_final(&h, hash, 32);
		sqlite3_bind_blob(up, 1, prev, 32, SQLITE_TRANSIENT);
		sqlite3_bind_blob(up, 2, hash, 32, SQLITE_TRANSIENT);
		sqlite3_bind_int64(up, 3, (sqlite3_int64)seq);
		cr_assert_eq(sqlite3_step(up), SQLITE_DONE);
		sqlite3_reset(up);
		memcpy(prev, hash, 32);
	}
	sqlite3_finalize(st);
	sqlite3_finalize(up);
}
