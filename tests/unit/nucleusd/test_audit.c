// SPDX-License-Identifier: Apache-2.0
/* Audit log: key handling, append inside transactions, tamper detection by seq. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <criterion/criterion.h>

#include "nucleusd/nucleusd.h"
#include "tests/unit/nucleusd/helpers.h"

static char dir[256], db[300];
static struct store *s;
static struct audit_key *k;

static void setup(void)
{
	th_tmpdir(dir, sizeof(dir));
	snprintf(db, sizeof(db), "%s/nucleus.db", dir);
	cr_assert_eq(store__open(db, &s), 0);
	cr_assert_eq(audit__key_load(dir, &k), 0);
}

static void teardown(void)
{
	store__free(s);
	audit__key_free(k);
	th_rmrf(dir);
}

TestSuite(audit, .init = setup, .fini = teardown);

struct append_arg {
	int n;
	const char *sandbox;
};

static int append_n(struct store *st, void *arg)
{
	struct append_arg *a = arg;

	for (int i = 0; i < a->n; i++) {
		json_t *body = json_pack("{si ss}", "i", i, "what", "test");
		int r = audit__append(st, k, a->sandbox, 1000, "test.event", body, NULL);

		json_decref(body);
		if (r < 0)
			return r;
	}
	return 0;
}

static void append(int n)
{
	struct append_arg a = {n, "sb-0123456789abcdef"};

	cr_assert_eq(store__tx(s, append_n, &a), 0);
}

static struct audit_verify verify(void)
{
	struct audit_verify v;

	cr_assert_eq(audit__verify(s, k, &v), 0);
	return v;
}

/* Tampering needs the append-only triggers out of the way, as an attacker would. */
static void tamper(const char *sql)
{
	cr_assert_eq(store__exec(s, "DROP TRIGGER IF EXISTS audit_log_no_update;"
				    "DROP TRIGGER IF EXISTS audit_log_no_delete"),
		     0);
	cr_assert_eq(store__exec(s, sql), 0, "%s", sql);
}

Test(audit, the_key_is_created_0600_and_reloaded)
{
	char path[400], a[65], b[65];
	struct audit_key *k2 = NULL;
	struct stat st;

	snprintf(path, sizeof(path), "%s/audit.key", dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(audit__key_load(dir, &k2), 0);
	audit__key_public_hex(k, a);
	audit__key_public_hex(k2, b);
	cr_assert_str_eq(a, b);
	audit__key_free(k2);
}

Test(audit, a_readable_key_is_refused)
{
	char path[400];
	struct audit_key *k2 = NULL;

	snprintf(path, sizeof(path), "%s/audit.key", dir);
	cr_assert_eq(chmod(path, 0644), 0);
	cr_assert_eq(audit__key_load(dir, &k2), -EPERM);
	cr_assert_null(k2);
}

Test(audit, append_outside_a_transaction_is_refused)
{
	json_t *body = json_object();

	cr_assert_eq(audit__append(s, k, NULL, -1, "x", body, NULL), -EINVAL);
	json_decref(body);
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM audit_log"), "0");
}

Test(audit, an_untouched_chain_verifies)
{
	struct audit_verify v;

	v = verify();
	cr_assert_eq(v.first_bad, 0);
	cr_assert_eq(v.entries, 0);
	append(5);
	append(3);
	v = verify();
	cr_assert_eq(v.first_bad, 0, "%s", v.problem);
	cr_assert_eq(v.entries, 8);
}

static int append_then_fail(struct store *st, void *arg)
{
	int r = append_n(st, arg);

	return r < 0 ? r : -ECANCELED;
}

Test(audit, a_rolled_back_entry_leaves_no_trace)
{
	struct append_arg a = {2, NULL};

	append(3);
	cr_assert_eq(store__tx(s, append_then_fail, &a), -ECANCELED);
	append(1);
	cr_assert_str_eq(th_query(s, "SELECT group_concat(seq) FROM audit_log"), "1,2,3,4");
	cr_assert_eq(verify().first_bad, 0);
}

Test(audit, the_log_is_append_only)
{
	append(2);
	cr_assert_lt(store__exec(s, "UPDATE audit_log SET body = '{}' WHERE seq = 1"), 0);
	cr_assert_lt(store__exec(s, "DELETE FROM audit_log WHERE seq = 2"), 0);
	cr_assert_eq(verify().first_bad, 0);
}

Test(audit, an_edited_body_is_reported_by_seq)
{
	struct audit_verify v;

	append(6);
	tamper("UPDATE audit_log SET body = '{\"i\":99,\"what\":\"test\"}' WHERE seq = 4");
	v = verify();
	cr_assert_eq(v.first_bad, 4, "%s", v.problem);
}

Test(audit, an_edited_actor_is_reported_by_seq)
{
	append(6);
	tamper("UPDATE audit_log SET actor_uid = 0 WHERE seq = 2");
	cr_assert_eq(verify().first_bad, 2);
}

Test(audit, a_rehashed_entry_fails_its_signature)
{
	struct audit_verify v;

	append(4);
	/* Forge the hash too (copy the link of another row): still caught. */
	tamper("UPDATE audit_log SET hash = (SELECT hash FROM audit_log WHERE seq = 1) "
	       "WHERE seq = 3");
	v = verify();
	cr_assert_eq(v.first_bad, 3, "%s", v.problem);
}

Test(audit, swapped_entries_are_reported_at_the_first_of_them)
{
	append(6);
	tamper("UPDATE audit_log SET seq = -1 WHERE seq = 3;"
	       "UPDATE audit_log SET seq = 3 WHERE seq = 5;"
	       "UPDATE audit_log SET seq = 5 WHERE seq = -1");
	cr_assert_eq(verify().first_bad, 3);
}

Test(audit, a_deleted_entry_is_reported_by_its_seq)
{
	struct audit_verify v;

	append(6);
	tamper("DELETE FROM audit_log WHERE seq = 4");
	v = verify();
	cr_assert_eq(v.first_bad, 4, "%s", v.problem);
}

Test(audit, a_deleted_last_entry_is_reported)
{
	struct audit_verify v;

	append(6);
	tamper("DELETE FROM audit_log WHERE seq = 6");
	v = verify();
	cr_assert_eq(v.first_bad, 6, "%s", v.problem);
}

Test(audit, a_renumbered_tail_is_reported)
{
	append(5);
	tamper("DELETE FROM audit_log WHERE seq = 2; UPDATE audit_log SET seq = seq - 1 WHERE "
	       "seq > 2");
	cr_assert_eq(verify().first_bad, 2);
}

Test(audit, entries_from_another_key_are_reported)
{
	struct audit_key *other = NULL;
	char dir2[256];

	append(2);
	th_tmpdir(dir2, sizeof(dir2));
	cr_assert_eq(audit__key_load(dir2, &other), 0);
	{
		struct audit_key *mine = k;

		k = other;
		append(1);
		k = mine;
	}
	append(2); /* the head is signed by the right key again: only entry 3 is foreign */
	cr_assert_eq(verify().first_bad, 3);
	audit__key_free(other);
	th_rmrf(dir2);
}

Test(audit, list_filters_by_sandbox_and_seq)
{
	struct append_arg other = {2, "sb-ffffffffffffffff"};
	json_t *arr = NULL;

	append(3);
	cr_assert_eq(store__tx(s, append_n, &other), 0);
	cr_assert_eq(audit__list(s, "sb-ffffffffffffffff", 0, 100, &arr), 0);
	cr_assert_eq(json_array_size(arr), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(arr, 0), "seq")), 4);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(arr, 0), "actor_uid")),
		     1000);
	json_decref(arr);
	cr_assert_eq(audit__list(s, NULL, 2, 2, &arr), 0);
	cr_assert_eq(json_array_size(arr), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(arr, 1), "seq")), 4);
	json_decref(arr);
}
