// SPDX-License-Identifier: Apache-2.0
/*
 * Query plans of the listings (issue #19 item 6): the sandbox list (live and all) and
 * an audit page (one sandbox's, everyone's) each read an index, never the whole table
 * and never a sort of it. The daemon's own functions run under sqlite3_trace_v2, which
 * catches the text of each SELECT they step; the test asks SQLite for that text's plan
 * (EXPLAIN QUERY PLAN), so the SQL checked is the SQL that ran.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>
#include <event2/event.h>
#include <sqlite3.h>

#include "nucleusd/audit.h"
#include "nucleusd/nucleusd-internal.h"
#include "tests/unit/nucleusd/helpers.h"

static char dir[256];
static struct event_base *base;
static struct nucleusd *nd;

#define MAX_SQL 16
struct caught {
	char *sql[MAX_SQL];
	size_t n;
};

static void setup(void)
{
	struct nd_backend *be = NULL;
	struct nd_config cfg = {.data_dir = dir, .signer = SIGNER_PATH};

	th_tmpdir(dir, sizeof(dir));
	base = event_base_new();
	cr_assert_not_null(base);
	cr_assert_eq(nd_fake_backend__new(&be), 0);
	cr_assert_eq(nucleusd__new(base, &cfg, be, &nd), 0);
}

static void teardown(void)
{
	nucleusd__free(nd);
	event_base_free(base);
	th_rmrf(dir);
}

TestSuite(plans, .init = setup, .fini = teardown);

static int on_stmt(unsigned type, void *arg, void *p, void *x)
{
	struct caught *c = arg;
	const char *sql = sqlite3_sql(p);

	(void)type;
	(void)x;
	if (sql && strncmp(sql, "SELECT", 6) == 0 && c->n < MAX_SQL)
		c->sql[c->n++] = strdup(sql);
	return 0;
}

static void catch_start(struct caught *c)
{
	memset(c, 0, sizeof(*c));
	cr_assert_eq(
		sqlite3_trace_v2(store__db(nucleusd__store(nd)), SQLITE_TRACE_STMT, on_stmt, c),
		SQLITE_OK);
}

/*
 * Stops catching; the plans of every caught SELECT, one detail a line (malloc'd). Every
 * table read is a SEARCH, or a SCAN of an index: no "SCAN t" of a table, no sort.
 */
static char *catch_plans(struct caught *c)
{
	sqlite3 *db = store__db(nucleusd__store(nd));
	size_t len = 0;
	char *all = NULL;

	cr_assert_eq(sqlite3_trace_v2(db, 0, NULL, NULL), SQLITE_OK);
	cr_assert_gt(c->n, 0, "the function ran a SELECT");
	for (size_t i = 0; i < c->n; i++) {
		char q[2048];
		sqlite3_stmt *st = NULL;

		snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", c->sql[i]);
		cr_assert_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK, "%s",
			     sqlite3_errmsg(db));
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *d = (const char *)sqlite3_column_text(st, 3);

			cr_expect(strncmp(d, "SCAN ", 5) || strstr(d, " USING "),
				  "a table scan: %s\nin: %s", d, c->sql[i]);
			cr_expect_null(strstr(d, "TEMP B-TREE"), "a sort: %s\nin: %s", d,
				       c->sql[i]);
			all = realloc(all, len + strlen(d) + 2);
			cr_assert_not_null(all);
			len += (size_t)sprintf(all + len, "%s\n", d);
		}
		sqlite3_finalize(st);
		free(c->sql[i]);
	}
	return all;
}

Test(plans, the_sandbox_lists_read_an_index_in_order)
{
	static const struct nd_caller owner = {.uid = 4242, .gid = 4242, .pid = 1};
	/* every owner's (the daemon's own list, all_owners) and one owner's */
	const struct nd_caller *who[] = {NULL, NULL, &owner, &owner};
	bool all[] = {false, true, false, true};
	const char *index[] = {
		"USING INDEX sandboxes_live_created ((created_us,id)>(?,?))",
		"USING INDEX sandboxes_created ((created_us,id)>(?,?))",
		"USING INDEX sandboxes_owner_live_created (owner_uid=? AND (created_us,id)>(?,?))",
		"USING INDEX sandboxes_owner_created (owner_uid=? AND (created_us,id)>(?,?))"};

	for (size_t i = 0; i < 4; i++) {
		struct caught c;
		json_t *arr = NULL;
		char *plans;

		struct nd_list_opts o = {.all = all[i], .limit = 10};
		char *next = NULL;

		catch_start(&c);
		cr_assert_eq(nucleusd__sandbox_list(nd, who[i], &o, &arr, &next, NULL), 0);
		json_decref(arr);
		o.cursor = "1.sb-0123456789abcdef";
		cr_assert_eq(nucleusd__sandbox_list(nd, who[i], &o, &arr, &next, NULL), 0);
		json_decref(arr);
		plans = catch_plans(&c);
		cr_expect_not_null(strstr(plans, index[i]), "case %zu: %s", i, plans);
		free(plans);
	}
}

Test(plans, an_audit_page_reads_an_index)
{
	struct store *s = nucleusd__store(nd);
	struct caught c;
	json_t *arr = NULL;
	char *plans;

	catch_start(&c);
	cr_assert_eq(audit__list(s, "sb-ffffffffffffffff", 3, 100, &arr), 0);
	json_decref(arr);
	plans = catch_plans(&c);
	cr_expect_not_null(strstr(plans, "USING INDEX audit_log_sandbox (sandbox_id=? AND seq>?)"),
			   "one sandbox's page: %s", plans);
	free(plans);

	catch_start(&c);
	cr_assert_eq(audit__list(s, NULL, 3, 100, &arr), 0);
	json_decref(arr);
	plans = catch_plans(&c);
	cr_expect_not_null(strstr(plans, "USING INTEGER PRIMARY KEY (rowid>?)"), "every entry: %s",
			   plans);
	free(plans);
}

/* A sandbox's children (delegation: GET of a sandbox, narrowings, an ending parent). */
Test(plans, a_sandboxs_children_are_read_from_an_index_in_order)
{
	for (int live = 0; live < 2; live++) {
		struct caught c;
		json_t *arr = NULL;
		char *plans;

		catch_start(&c);
		cr_assert_eq(nd__children(nd, "sb-ffffffffffffffff", live, &arr), 0);
		cr_assert_eq(json_array_size(arr), 0);
		json_decref(arr);
		plans = catch_plans(&c);
		cr_expect_not_null(strstr(plans, "USING INDEX sandboxes_parent (parent_id=?)"),
				   "live %d: %s", live, plans);
		free(plans);
	}
}
