// SPDX-License-Identifier: Apache-2.0
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <sqlite3.h>

#include "budget/budget.h"
#include "tests/unit/nucleusd/helpers.h"

const struct store_schema *const th_schemas[TH_N_SCHEMAS] = {&store__core, &budget__schema};

int th_store_open(const char *path, struct store **ret)
{
	return store__open(path, th_schemas, TH_N_SCHEMAS, ret);
}

void th_tmpdir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/nucleus-test-XXXXXX");
	cr_assert_not_null(mkdtemp(buf));
	cr_assert_eq(chmod(buf, 0755), 0);
}

void th_rmrf(const char *dir)
{
	char cmd[512];

	if (!dir[0] || strncmp(dir, "/tmp/nucleus-test-", 18) != 0)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
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

void th_garble_page(const char *path, const char *marker)
{
	size_t mlen = strlen(marker), page;
	unsigned char *junk;
	sqlite3 *db = NULL;
	char *buf = NULL, *at;
	FILE *f;
	long len;

	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
		     SQLITE_OK);
	sqlite3_close(db);
	f = fopen(path, "r+b");
	cr_assert_not_null(f);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	cr_assert_gt(len, 100);
	buf = malloc((size_t)len);
	cr_assert_not_null(buf);
	rewind(f);
	cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
	/* the page size: big-endian at offset 16, 1 meaning 65536 */
	page = (size_t)((unsigned char)buf[16] << 8 | (unsigned char)buf[17]);
	page = page == 1 ? 65536 : page;
	at = memmem(buf, (size_t)len, marker, mlen);
	cr_assert_not_null(at, "%s not in %s", marker, path);
	cr_assert_null(memmem(at + 1, (size_t)len - (size_t)(at + 1 - buf), marker, mlen),
		       "%s twice in %s", marker, path);
	junk = malloc(page);
	cr_assert_not_null(junk);
	for (size_t i = 0; i < page; i++)
		junk[i] = (unsigned char)(0xa5 ^ (i * 131));
	cr_assert_eq(fseek(f, (long)((size_t)(at - buf) / page * page), SEEK_SET), 0);
	cr_assert_eq(fwrite(junk, 1, page, f), page);
	cr_assert_eq(fclose(f), 0);
	free(junk);
	free(buf);
}
