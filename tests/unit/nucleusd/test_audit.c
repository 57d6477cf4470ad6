// SPDX-License-Identifier: Apache-2.0
/*
 * Audit log: key handling (in nucleus-signer, restarted when it dies), append inside
 * transactions, seals, tamper detection by seq.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <sodium.h>
#include <sqlite3.h>

#include "nucleusd/audit.h"
#include "nucleusd/nucleusd.h"
#include "nucleusd/signer.h"
#include "nucleusd/store.h"
#include "tests/unit/nucleusd/helpers.h"
#include "tests/unit/nucleusd/legacy.h"

static char dir[256], db[300];
static struct store *s;
static struct audit_key *k;

static void setup(void)
{
	th_tmpdir(dir, sizeof(dir));
	snprintf(db, sizeof(db), "%s/nucleus.db", dir);
	cr_assert_eq(th_store_open(db, &s), 0);
	cr_assert_eq(audit__key_load(dir, SIGNER_PATH, NULL, &k), 0);
	cr_assert_eq(audit__attach(k, s, NULL, NULL), 0);
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

static void seal(void)
{
	cr_assert_eq(audit__seal(s, k), 1);
	cr_assert_eq(audit__unsealed(k), 0);
}

/* Two batches of three entries, each sealed: seals at 3 and 6. */
static void two_sealed_batches(void)
{
	append(3);
	seal();
	append(3);
	seal();
}

static struct audit_verify verify(void)
{
	struct audit_verify v;

	cr_assert_eq(audit__verify(s, k, &v), 0);
	return v;
}

/* verify() must find the first bad entry at @seq (0: none). */
static void expect_first_bad(uint64_t seq)
{
	struct audit_verify v = verify();

	cr_assert_eq(v.first_bad, seq, "first bad %llu, want %llu: %s",
		     (unsigned long long)v.first_bad, (unsigned long long)seq, v.problem);
}

/* Tampering needs the append-only triggers out of the way, as an attacker would. */
static void tamper(const char *sql)
{
	cr_assert_eq(store__exec(s, "DROP TRIGGER IF EXISTS audit_log_no_update;"
				    "DROP TRIGGER IF EXISTS audit_log_no_delete;"
				    "DROP TRIGGER IF EXISTS audit_seals_no_update;"
				    "DROP TRIGGER IF EXISTS audit_seals_no_delete"),
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
	cr_assert_eq(audit__key_load(dir, SIGNER_PATH, NULL, &k2), 0);
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
	cr_assert_eq(audit__key_load(dir, SIGNER_PATH, NULL, &k2), -EPERM);
	cr_assert_null(k2);
}

static void rehash_from(uint64_t from)
{
	th_rehash_from(store__db(s), from);
}

Test(audit, append_outside_a_transaction_is_refused)
{
	json_t *body = json_object();

	cr_assert_eq(audit__append(s, k, NULL, -1, "x", body, NULL), -EINVAL);
	json_decref(body);
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM audit_log"), "0");
}

Test(audit, an_untouched_chain_verifies_and_seals_cover_it)
{
	struct audit_verify v;

	v = verify();
	cr_assert_eq(v.first_bad, 0);
	cr_assert_eq(v.entries, 0);
	cr_assert_eq(audit__seal(s, k), 0, "nothing to seal");
	append(5);
	cr_assert_eq(audit__unsealed(k), 5);
	v = verify();
	cr_assert_eq(v.first_bad, 0, "%s", v.problem);
	cr_assert_eq(v.sealed_through, 0);
	seal();
	append(3);
	seal();
	v = verify();
	cr_assert_eq(v.first_bad, 0, "%s", v.problem);
	cr_assert_eq(v.entries, 8);
	cr_assert_eq(v.seals, 2);
	cr_assert_eq(v.sealed_through, 8);
	cr_assert_str_eq(th_query(s, "SELECT group_concat(seq) FROM audit_seals"), "5,8");
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
	seal();
	cr_assert_eq(store__tx(s, append_then_fail, &a), -ECANCELED);
	cr_assert_eq(audit__unsealed(k), 0, "a rolled back entry is not to be sealed");
	append(1);
	seal();
	cr_assert_str_eq(th_query(s, "SELECT group_concat(seq) FROM audit_log"), "1,2,3,4");
	expect_first_bad(0);
}

Test(audit, the_log_and_its_seals_are_append_only)
{
	append(2);
	seal();
	cr_assert_lt(store__exec(s, "UPDATE audit_log SET body = '{}' WHERE seq = 1"), 0);
	cr_assert_lt(store__exec(s, "DELETE FROM audit_log WHERE seq = 2"), 0);
	cr_assert_lt(store__exec(s, "UPDATE audit_seals SET seq = 1"), 0);
	cr_assert_lt(store__exec(s, "DELETE FROM audit_seals"), 0);
	expect_first_bad(0);
}

Test(audit, an_edited_body_is_reported_by_seq)
{
	append(6);
	seal();
	tamper("UPDATE audit_log SET body = '{\"i\":99,\"what\":\"test\"}' WHERE seq = 4");
	expect_first_bad(4);
}

Test(audit, an_edited_actor_is_reported_by_seq_sealed_or_not)
{
	append(6);
	tamper("UPDATE audit_log SET actor_uid = 0 WHERE seq = 2");
	expect_first_bad(2);
}

Test(audit, a_copied_hash_breaks_the_link)
{
	append(4);
	seal();
	tamper("UPDATE audit_log SET hash = (SELECT hash FROM audit_log WHERE seq = 1) "
	       "WHERE seq = 3");
	expect_first_bad(3);
}

Test(audit, a_rewritten_chain_no_longer_matches_its_seal)
{
	struct audit_verify v;

	two_sealed_batches();
	/* Entry 5 edited and the chain recomputed from it: every link holds again. */
	tamper("UPDATE audit_log SET body = '{\"i\":99,\"what\":\"test\"}' WHERE seq = 5");
	rehash_from(5);
	v = verify();
	cr_assert_eq(v.first_bad, 4, "%s", v.problem); /* after the last seal that matches */
	cr_assert(strstr(v.problem, "seal at seq 6"), "%s", v.problem);
	cr_assert_eq(v.sealed_through, 3);
}

Test(audit, a_chain_rehashed_without_an_edit_still_verifies)
{
	/* The check above fails for the edit, not for the rehash itself. */
	append(4);
	seal();
	tamper("SELECT 1");
	rehash_from(1);
	expect_first_bad(0);
}

Test(audit, swapped_entries_are_reported_at_the_first_of_them)
{
	append(6);
	seal();
	tamper("UPDATE audit_log SET seq = 100 WHERE seq = 3;"
	       "UPDATE audit_log SET seq = 3 WHERE seq = 5;"
	       "UPDATE audit_log SET seq = 5 WHERE seq = 100");
	expect_first_bad(3);
}

Test(audit, a_deleted_entry_is_reported_by_its_seq)
{
	append(6);
	tamper("DELETE FROM audit_log WHERE seq = 4");
	expect_first_bad(4);
}

Test(audit, a_deleted_sealed_tail_is_reported)
{
	append(6);
	seal();
	tamper("DELETE FROM audit_log WHERE seq >= 5");
	expect_first_bad(5);
}

Test(audit, a_renumbered_tail_is_reported)
{
	append(5);
	tamper("DELETE FROM audit_log WHERE seq = 2; UPDATE audit_log SET seq = seq - 1 WHERE "
	       "seq > 2");
	expect_first_bad(2);
}

Test(audit, a_seal_from_another_key_is_reported)
{
	struct audit_key *other = NULL;
	struct audit_verify v;
	char dir2[256];

	append(2);
	seal();
	th_tmpdir(dir2, sizeof(dir2));
	cr_assert_eq(audit__key_load(dir2, SIGNER_PATH, NULL, &other), 0);
	cr_assert_eq(audit__attach(other, s, NULL, NULL), 0);
	{
		struct audit_key *mine = k;

		k = other;
		append(1);
		seal();
		k = mine;
	}
	cr_assert_eq(audit__attach(k, s, NULL, NULL), 0);
	append(2);
	seal();
	v = verify();
	/* entries 1-2 are still attested; 3 is the other writer's epoch, 4 its entry */
	cr_assert_eq(v.first_bad, 3, "%s", v.problem);
	cr_assert(strstr(v.problem, "bad signature on the seal at seq 4"), "%s", v.problem);
	audit__key_free(other);
	th_rmrf(dir2);
}

Test(audit, an_entry_written_behind_the_writers_back_stops_it)
{
	struct append_arg a = {1, NULL};

	append(2);
	seal();
	/* A forged entry 3 with a valid link: the chain alone cannot tell. */
	tamper("INSERT INTO audit_log(seq, at_us, sandbox_id, actor_uid, kind, body, prev_hash, "
	       "hash) SELECT 3, at_us, sandbox_id, actor_uid, kind, body, hash, hash FROM "
	       "audit_log WHERE seq = 2");
	rehash_from(3);
	expect_first_bad(0);
	cr_assert_eq(store__tx(s, append_n, &a), -EBADMSG);
	cr_assert_eq(audit__seal(s, k), 0, "the writer seals only what it committed");
	cr_assert_eq(verify().sealed_through, 2);
	cr_assert_str_eq(th_query(s, "SELECT count(*) FROM audit_log"), "3");
}

/* The daemon stopped and started again on the same files: a new writer with the key. */
static void restart(void)
{
	struct audit_key *k2 = NULL;

	cr_assert_eq(audit__key_load(dir, SIGNER_PATH, NULL, &k2), 0);
	audit__key_free(k);
	k = k2;
	cr_assert_eq(audit__attach(k, s, NULL, NULL), 0);
	if (audit__unsealed(k))
		seal();
}

static void assert_ranges(const struct audit_range *r, unsigned n, const char *want)
{
	char got[256] = "";
	size_t at = 0;

	for (unsigned i = 0; i < n; i++)
		at += (size_t)snprintf(got + at, sizeof(got) - at, "%s%llu-%llu", i ? "," : "",
				       (unsigned long long)r[i].from, (unsigned long long)r[i].to);
	cr_assert_str_eq(got, want);
}

/* What the log says about itself after a restart: intact chain, found range, coverage. */
static void assert_found(const char *covered, const char *not_covered, uint64_t found)
{
	struct audit_verify v = verify();

	cr_assert_eq(v.first_bad, 0, "%s", v.problem);
	assert_ranges(v.covered, v.n_covered, covered);
	assert_ranges(v.not_covered, v.n_not_covered, not_covered);
	cr_assert_eq(v.unsealed_at_start, found);
	cr_assert(strstr(v.problem, "not covered by a seal"), "%s", v.problem);
}

/* The epoch entry at @seq names @from..@to. */
static void assert_epoch(uint64_t seq, uint64_t from, uint64_t to)
{
	char sql[400], want[100];

	snprintf(sql, sizeof(sql),
		 "SELECT kind || ' ' || ifnull(sandbox_id, '-') || ' ' || ifnull(actor_uid, '-') "
		 "|| ' ' || json_extract(body, '$.unsealed_from') || '-' || "
		 "json_extract(body, '$.unsealed_to') FROM audit_log WHERE seq = %llu",
		 (unsigned long long)seq);
	snprintf(want, sizeof(want), "audit.epoch - - %llu-%llu", (unsigned long long)from,
		 (unsigned long long)to);
	cr_assert_str_eq(th_query(s, sql), want);
}

Test(audit, a_tail_left_by_a_killed_writer_is_reported_not_sealed)
{
	append(3);
	seal();
	append(2); /* committed, not sealed: the daemon was killed here */
	restart();
	assert_epoch(6, 4, 5);
	{
		uint64_t from = 0, to = 0;

		cr_assert(audit__found_at_start(k, &from, &to));
		cr_assert_eq(from, 4);
		cr_assert_eq(to, 5);
	}
	append(1);
	seal();
	assert_found("1-3,6-7", "4-5", 2);
	/* a clean stop and start finds nothing: no new epoch, nothing more uncovered */
	restart();
	cr_assert_str_eq(th_query(s, "SELECT max(seq) FROM audit_log"), "7");
	{
		uint64_t from = 1, to = 1;

		cr_assert_not(audit__found_at_start(k, &from, &to));
		cr_assert_eq(from, 0);
	}
	assert_found("1-3,6-7", "4-5", 2);
}

Test(audit, a_clean_log_is_covered_whole)
{
	struct audit_verify v;

	append(3);
	seal();
	restart();
	v = verify();
	cr_assert_str_eq(v.problem, "intact");
	assert_ranges(v.covered, v.n_covered, "1-3");
	cr_assert_eq(v.n_not_covered, 0);
	cr_assert_eq(v.unsealed_at_start, 0);
}

/* The seals after @after go, as an attacker without the key would make them go. */
static void delete_seals_after(uint64_t after)
{
	char sql[100];

	snprintf(sql, sizeof(sql), "DELETE FROM audit_seals WHERE seq > %llu",
		 (unsigned long long)after);
	tamper(sql);
}

/* Issue 19's laundering: @edit, the chain re-hashed from @from, seals after @keep gone. */
static void launder(const char *edit, uint64_t from, uint64_t keep)
{
	tamper(edit);
	rehash_from(from);
	delete_seals_after(keep);
	restart();
}

Test(audit, laundering_a_rewritten_tail_is_reported_after_restart)
{
	two_sealed_batches();
	launder("UPDATE audit_log SET body = '{\"i\":99,\"what\":\"test\"}' WHERE seq = 5", 5, 3);
	assert_epoch(7, 4, 6);
	assert_found("1-3,7-7", "4-6", 3);
}

Test(audit, laundering_a_rewritten_whole_log_is_reported_after_restart)
{
	two_sealed_batches();
	launder("UPDATE audit_log SET actor_uid = 0", 1, 0);
	assert_epoch(7, 1, 6);
	assert_found("7-7", "1-6", 6);
}

Test(audit, laundering_an_appended_forged_entry_is_reported_after_restart)
{
	append(2);
	seal();
	launder("INSERT INTO audit_log(seq, at_us, sandbox_id, actor_uid, kind, body, prev_hash, "
		"hash) SELECT 3, at_us, sandbox_id, actor_uid, kind, body, hash, hash FROM "
		"audit_log WHERE seq = 2",
		3, 2);
	assert_epoch(4, 3, 3);
	assert_found("1-2,4-4", "3-3", 1);
}

Test(audit, a_narrowed_epoch_is_found_again_at_the_next_start)
{
	append(3);
	seal();
	append(3); /* killed */
	restart(); /* epoch 7: 4-6 */
	/* the attacker shrinks the epoch to 6-6, re-hashes, drops the seal over it */
	launder("UPDATE audit_log SET body = json_set(body, '$.unsealed_from', 6) WHERE seq = 7", 7,
		3);
	assert_epoch(8, 4, 7);
	assert_found("1-3,8-8", "4-7", 4);
}

Test(audit, a_rewrite_before_the_newest_seal_stays_a_broken_chain_after_restart)
{
	struct audit_verify v;

	two_sealed_batches();
	tamper("UPDATE audit_log SET body = '{\"i\":99,\"what\":\"test\"}' WHERE seq = 2");
	rehash_from(2);
	restart(); /* no seal matches: everything is found, and the seals still disagree */
	assert_epoch(7, 1, 6);
	v = verify();
	cr_assert_eq(v.first_bad, 1, "%s", v.problem);
	cr_assert(strstr(v.problem, "seal at seq 3"), "%s", v.problem);
}

Test(audit, found_ranges_merge_and_stay_bounded)
{
	/* 20 kills in a row, each leaving one entry: every epoch's range is separate */
	for (int i = 0; i < AUDIT_RANGES + 4; i++) {
		append(1);
		restart();
	}
	{
		struct audit_verify v = verify();
		uint64_t n = 0;

		cr_assert_eq(v.first_bad, 0, "%s", v.problem);
		cr_assert_eq(v.n_not_covered, AUDIT_RANGES);
		for (unsigned i = 0; i < v.n_not_covered; i++)
			n += v.not_covered[i].to - v.not_covered[i].from + 1;
		cr_assert_geq(n, AUDIT_RANGES + 4, "every found entry stays not covered");
		cr_assert_eq(v.not_covered[0].from, 1);
		cr_assert_geq(v.not_covered[AUDIT_RANGES - 1].to, 2 * (AUDIT_RANGES + 4) - 1);
	}
}

Test(audit, a_garbled_page_is_reported_as_corruption_by_seq)
{
	struct audit_verify v;
	int leaves;

	append(300);
	seal();
	store__free(s);
	s = NULL;
	leaves = th_garble_page(db, "audit_log");
	cr_assert_eq(th_store_open(db, &s), 0);
	restart();
	cr_assert_eq(audit__verify(s, k, &v), 0);
	/* the middle leaf: entries before it read, the first one on it does not */
	cr_assert_gt(v.first_bad, 300 / leaves, "%llu", (unsigned long long)v.first_bad);
	cr_assert_lt(v.first_bad, 300, "%llu", (unsigned long long)v.first_bad);
	cr_assert_eq(v.intact_through, v.first_bad - 1);
	cr_assert(v.corrupt);
	cr_assert(strstr(v.problem, "database corrupt") &&
			  strstr(v.problem, "restore nucleus.db from a backup"),
		  "%s", v.problem);
}

static int unsealed_calls;

static void count_unsealed(void *arg)
{
	(void)arg;
	unsealed_calls++;
}

Test(audit, the_writer_hears_once_when_entries_become_unsealed)
{
	unsealed_calls = 0;
	cr_assert_eq(audit__attach(k, s, count_unsealed, NULL), 0);
	append(2);
	append(1);
	cr_assert_eq(unsealed_calls, 1);
	seal();
	append(1);
	cr_assert_eq(unsealed_calls, 2);
	cr_assert_eq(audit__seal(s, k), 1);
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

/* A version 2 log (per-entry signatures, signed head row) keeps verifying after migration 3. */
Test(audit, migration_3_turns_the_signed_head_into_the_first_seal)
{
	struct store *old = NULL;
	struct audit_verify v;
	char path[400], sql[1024];
	sqlite3 *raw = NULL;

	append(3);
	seal();
	snprintf(path, sizeof(path), "%s/old.db", dir);
	th_legacy_db(path, 2);
	cr_assert_eq(sqlite3_open(path, &raw), SQLITE_OK);
	snprintf(
		sql, sizeof(sql),
		"ATTACH '%s' AS cur;"
		"INSERT INTO audit_log(seq, at_us, sandbox_id, actor_uid, kind, body, prev_hash, "
		"hash, sig) SELECT seq, at_us, sandbox_id, actor_uid, kind, body, prev_hash, hash, "
		"zeroblob(64) FROM cur.audit_log;"
		"INSERT INTO audit_head(id, seq, hash, sig) SELECT 1, seq, hash, sig FROM "
		"cur.audit_seals;"
		"DETACH cur",
		db);
	cr_assert_eq(sqlite3_exec(raw, sql, NULL, NULL, NULL), SQLITE_OK, "%s",
		     sqlite3_errmsg(raw));
	sqlite3_close(raw);

	cr_assert_eq(th_store_open(path, &old), 0);
	cr_assert_eq(store__version(old, "core"), (int)store__core.n);
	cr_assert_str_eq(th_query(old, "SELECT count(*) FROM sqlite_master WHERE name = "
				       "'audit_head'"),
			 "0");
	cr_assert_str_eq(th_query(old, "SELECT group_concat(seq) FROM audit_seals"), "3");
	cr_assert_eq(audit__verify(old, k, &v), 0);
	cr_assert_eq(v.first_bad, 0, "%s", v.problem);
	cr_assert_eq(v.entries, 3);
	cr_assert_eq(v.sealed_through, 3);
	cr_assert_lt(store__exec(old, "UPDATE audit_log SET kind = 'x' WHERE seq = 1"), 0);
	cr_assert_lt(store__exec(old, "DELETE FROM audit_seals"), 0);
	/* The migrated log goes on: the writer takes over its head. */
	cr_assert_eq(audit__attach(k, old, NULL, NULL), 0);
	{
		struct store *mine = s;

		s = old;
		append(2);
		seal();
		cr_assert_eq(verify().sealed_through, 5);
		s = mine;
	}
	store__free(old);
	cr_assert_eq(audit__attach(k, s, NULL, NULL), 0);
}

/* ---- the signer behind the key (nucleusd/signer.h) ---- */

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000}, NULL);
}

static pid_t signer_pid(void)
{
	return signer__pid(audit__signer(k));
}

/* @pid was reaped (by the key's signer client, not by this test). */
static void assert_reaped(pid_t pid)
{
	cr_assert_eq(waitpid(pid, NULL, WNOHANG), -1, "signer %d not reaped", (int)pid);
	cr_assert_eq(errno, ECHILD);
}

Test(audit, a_killed_signer_is_restarted_and_sealing_resumes)
{
	pid_t first = signer_pid();
	struct audit_verify v;

	append(2);
	seal();
	cr_assert_gt(first, 0);
	cr_assert_eq(kill(first, SIGKILL), 0);
	append(1);
	cr_assert_eq(audit__seal(s, k), -EPIPE);
	cr_assert_eq(signer_pid(), 0);
	assert_reaped(first);
	cr_assert(strstr(signer__problem(audit__signer(k)), "is gone") &&
			  strstr(signer__problem(audit__signer(k)), "signal 9"),
		  "%s", signer__problem(audit__signer(k)));
	cr_assert_eq(audit__unsealed(k), 1, "the entry waits, chained");
	/* one restart per second at most: within it, the same error */
	cr_assert_eq(audit__seal(s, k), -EPIPE);
	cr_assert_eq(signer__restarts(audit__signer(k)), 0);
	sleep_ms(SIGNER_RESTART_MS + 100);
	cr_assert_eq(audit__seal(s, k), 1);
	cr_assert_eq(signer__restarts(audit__signer(k)), 1);
	cr_assert_gt(signer_pid(), 0);
	cr_assert_neq(signer_pid(), first);
	append(2);
	seal();
	v = verify();
	cr_assert_eq(v.first_bad, 0, "%s", v.problem);
	cr_assert_eq(v.seals, 3);
	cr_assert_eq(v.sealed_through, 5);
	cr_assert_str_eq(v.problem, "intact");
}

Test(audit, a_signer_that_stops_answering_times_out_and_is_replaced, .timeout = 60)
{
	pid_t first = signer_pid();

	append(1);
	cr_assert_eq(kill(first, SIGSTOP), 0);
	cr_assert_eq(audit__seal(s, k), -ETIMEDOUT);
	assert_reaped(first);
	cr_assert(strstr(signer__problem(audit__signer(k)), "did not answer"), "%s",
		  signer__problem(audit__signer(k)));
	/* the timeout outlasted the restart interval: the next seal starts a signer */
	seal();
	cr_assert_eq(signer__restarts(audit__signer(k)), 1);
	expect_first_bad(0);
}

static void write_key_bytes(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

Test(audit, a_restarted_signer_with_another_key_is_refused)
{
	char path[400], *mine;
	unsigned char pk[32], sk[64], other[21 + 64];

	snprintf(path, sizeof(path), "%s/audit.key", dir);
	mine = th_slurp(path); /* magic + 64 bytes (and th_slurp's NUL) */
	crypto_sign_keypair(pk, sk);
	memcpy(other, "nucleus-audit-key-v1\n", 21);
	memcpy(other + 21, sk, 64);
	write_key_bytes(path, other, sizeof(other)); /* the key file swapped behind its back */
	kill(signer_pid(), SIGKILL);
	append(1);
	cr_assert_eq(audit__seal(s, k), -EPIPE);
	sleep_ms(SIGNER_RESTART_MS + 100);
	cr_assert_eq(audit__seal(s, k), -EKEYREJECTED);
	cr_assert(strstr(signer__problem(audit__signer(k)), "another public key"), "%s",
		  signer__problem(audit__signer(k)));
	cr_assert_eq(signer_pid(), 0, "a signer with another key is not kept");
	write_key_bytes(path, mine, sizeof(other));
	free(mine);
	sleep_ms(SIGNER_RESTART_MS + 100);
	seal();
	expect_first_bad(0);
	cr_assert_eq(verify().sealed_through, 1);
}

/* The head message as docs/daemon.md describes it, computed here again. */
static void head_message(uint64_t seq, const unsigned char hash[32], unsigned char out[32])
{
	unsigned char in[22 + 8 + 32];

	memcpy(in, "nucleus-audit-head-v1", 22); /* with its NUL */
	for (int i = 0; i < 8; i++)
		in[22 + i] = (unsigned char)(seq >> (56 - 8 * i));
	memcpy(in + 30, hash, 32);
	crypto_generichash(out, 32, in, sizeof(in), NULL, 0);
}

/* A seal at the head @seq as the daemon made it before the signer: its own sk, in-process. */
static void old_seal(uint64_t seq, const unsigned char sk[64])
{
	char sql[256];
	sqlite3_stmt *st = NULL;
	unsigned char hash[32], msg[32], sig[64];

	snprintf(sql, sizeof(sql), "SELECT hash FROM audit_log WHERE seq = %llu",
		 (unsigned long long)seq);
	cr_assert_eq(sqlite3_prepare_v2(store__db(s), sql, -1, &st, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	memcpy(hash, sqlite3_column_blob(st, 0), 32);
	sqlite3_finalize(st);
	head_message(seq, hash, msg);
	crypto_sign_detached(sig, NULL, msg, sizeof(msg), sk);
	cr_assert_eq(sqlite3_prepare_v2(store__db(s),
					"INSERT INTO audit_seals(seq, hash, sig, at_us) "
					"VALUES (?, ?, ?, 0)",
					-1, &st, NULL),
		     SQLITE_OK);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	sqlite3_bind_blob(st, 2, hash, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, sig, 64, SQLITE_STATIC);
	cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

/*
 * A data dir from before the signer: its key file (magic + libsodium sk) and seals the
 * daemon made with it in-process. The signer takes the same key; old and new seals verify
 * together, and so they do with the public half read from the file alone.
 */
Test(audit, an_existing_data_dirs_key_and_seals_keep_working)
{
	unsigned char pk[32], sk[64], file[21 + 64];
	char path[400], hex[65], want[65];
	struct audit_key *pub = NULL;
	struct audit_verify v;
	uint64_t from, to;

	crypto_sign_keypair(pk, sk);
	sodium_bin2hex(want, sizeof(want), pk, sizeof(pk));
	memcpy(file, "nucleus-audit-key-v1\n", 21);
	memcpy(file + 21, sk, 64);
	snprintf(path, sizeof(path), "%s/audit.key", dir);
	cr_assert_eq(unlink(path), 0);
	write_key_bytes(path, file, sizeof(file));
	restart(); /* the writer on the old key, through the signer */
	audit__key_public_hex(k, hex);
	cr_assert_str_eq(hex, want);
	append(3);
	old_seal(3, sk); /* the old daemon sealed and stopped */
	restart();
	cr_assert_not(audit__found_at_start(k, &from, &to), "the old seal covers 1-3");
	append(2);
	seal();
	v = verify();
	cr_assert_str_eq(v.problem, "intact");
	cr_assert_eq(v.seals, 2);
	cr_assert_eq(v.sealed_through, 5);
	assert_ranges(v.covered, v.n_covered, "1-5");
	/* the public half alone, as offline checks read it */
	cr_assert_eq(audit__key_load_public(dir, &pub), 0);
	cr_assert_null(audit__signer(pub));
	audit__key_public_hex(pub, hex);
	cr_assert_str_eq(hex, want);
	cr_assert_eq(audit__verify(s, pub, &v), 0);
	cr_assert_str_eq(v.problem, "intact");
	cr_assert_eq(v.sealed_through, 5);
	/* it verifies, it does not seal */
	cr_assert_eq(audit__attach(pub, s, NULL, NULL), 0);
	{
		struct audit_key *mine = k;

		k = pub;
		append(1);
		cr_assert_eq(audit__seal(s, pub), -ENOKEY);
		k = mine;
	}
	cr_assert_eq(audit__attach(k, s, NULL, NULL), 0); /* the store's writer again */
	audit__key_free(pub);
}
