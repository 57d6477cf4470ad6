// SPDX-License-Identifier: Apache-2.0
/* nucleusctl driven as a user would, against a real nucleusd (fake backend). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <criterion/criterion.h>
#include <sqlite3.h>

#include "tests/unit/api/daemon.h"
#include "tests/unit/nucleusd/helpers.h"
#include "tests/unit/th_file.h"

THD_SUITE(cli);

static int lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(cli, create_ls_show_pause_resume_rm)
{
	struct thd_run *r;
	json_t *j;
	char id[32];

	r = thd_ctl(d.sock, "--json", "create", "--name", "box", "--vcpus", "2", "--memory", "128",
		    NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	j = json_loads(r->out, 0, NULL);
	cr_assert_not_null(j, "--json printed no JSON: %s", r->out);
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "running");
	cr_assert_eq(json_integer_value(json_object_get(j, "vcpus")), 2);
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);

	r = thd_ctl(d.sock, "ls", NULL);
	cr_assert_eq(r->code, 0);
	cr_assert_not_null(strstr(r->out, "STATE"), "no table header: %s", r->out);
	cr_assert_not_null(strstr(r->out, id));
	cr_assert_not_null(strstr(r->out, "box"));
	cr_assert_eq(lines(r->out), 2);

	r = thd_ctl(d.sock, "show", "box", NULL);
	cr_assert_eq(r->code, 0);
	cr_assert_not_null(strstr(r->out, "running"));
	r = thd_ctl(d.sock, "pause", id, NULL);
	cr_assert_eq(r->code, 0);
	cr_assert_not_null(strstr(r->out, "paused"));
	r = thd_ctl(d.sock, "pause", id, NULL);
	cr_assert_eq(r->code, 1);
	cr_assert_eq(lines(r->err), 1, "not one line: %s", r->err);
	cr_assert_not_null(strstr(r->err, "wrong_state (409)"), "%s", r->err);
	r = thd_ctl(d.sock, "resume", id, NULL);
	cr_assert_eq(r->code, 0);
	r = thd_ctl(d.sock, "audit", id, NULL);
	cr_assert_eq(r->code, 0);
	cr_assert_not_null(strstr(r->out, "sandbox.pause"), "%s", r->out);
	r = thd_ctl(d.sock, "audit", id, "verify", NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	cr_assert_not_null(strstr(r->out, "intact"));
	r = thd_ctl(d.sock, "rm", id, NULL);
	cr_assert_eq(r->code, 0);
	r = thd_ctl(d.sock, "--json", "ls", NULL);
	cr_assert_eq(r->code, 0);
	j = json_loads(r->out, 0, NULL);
	cr_assert(json_is_array(j) && json_array_size(j) == 0, "%s", r->out);
	json_decref(j);
	r = thd_ctl(d.sock, "ls", "--all", NULL);
	cr_assert_not_null(strstr(r->out, "stopped"));
	thd_finish(&d);
}

/* @n stopped sandboxes, put in the database behind the daemon's back. */
static void insert_sandboxes(int n)
{
	char sql[512];
	sqlite3 *db = NULL;

	snprintf(sql, sizeof(sql),
		 "WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < %d) "
		 "INSERT INTO sandboxes(id, state, policy, spec, vcpus, memory_mib, owner_uid, "
		 "created_us, updated_us) SELECT printf('sb-%%016x', n), 'stopped', '{}', '{}', "
		 "1, 64, 0, n, n FROM i",
		 n);
	cr_assert_eq(sqlite3_open(d.db, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* 1234 sandboxes: ls reads every page. */
Test(cli, ls_reads_every_page)
{
	struct thd_run *r;
	json_t *j;

	insert_sandboxes(1234);
	r = thd_ctl(d.sock, "--json", "ls", "--all", NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	j = json_loads(r->out, 0, NULL);
	cr_assert(json_is_array(j), "%.200s", r->out);
	cr_assert_eq(json_array_size(j), 1234, "two pages of 1000 and 234");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 1233), "id")),
			 "sb-00000000000004d2");
	json_decref(j);
	r = thd_ctl(d.sock, "ls", "--all", NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	cr_assert_eq(lines(r->out), 1235, "the header and every sandbox");
	thd_finish(&d);
}

Test(cli, errors_are_one_line_with_exit_codes)
{
	struct thd_run *r;

	r = thd_ctl(d.sock, "show", "sb-0000000000000000", NULL);
	cr_assert_eq(r->code, 1);
	cr_assert_eq(lines(r->err), 1, "%s", r->err);
	cr_assert_not_null(strstr(r->err, "not_found (404)"), "%s", r->err);
	r = thd_ctl(d.sock, "create", "--profile", "nope", NULL);
	cr_assert_eq(r->code, 1);
	cr_assert_not_null(strstr(r->err, "unknown_profile"), "%s", r->err);
	r = thd_ctl(d.sock, "create", "--vcpus", "many", NULL);
	cr_assert_eq(r->code, 2);
	r = thd_ctl(d.sock, "frobnicate", NULL);
	cr_assert_eq(r->code, 2);
	cr_assert_eq(lines(r->err), 1);
	r = thd_ctl(d.sock, "show", NULL);
	cr_assert_eq(r->code, 2);
	r = thd_ctl(d.sock, "--json", "show", "nope", NULL);
	cr_assert_eq(r->code, 1);
	cr_assert_not_null(strstr(r->out, "\"error\""), "--json error not JSON: %s", r->out);
	r = thd_ctl("/tmp/nucleus-test-no/such.sock", "ls", NULL);
	cr_assert_eq(r->code, 3);
	cr_assert_not_null(strstr(r->err, "cannot reach nucleusd"));
	thd_finish(&d);
}

Test(cli, audit_verify_names_the_tampered_entry)
{
	sqlite3 *db = NULL;
	struct thd_run *r;
	char id[32], seq[32], sql[256];

	r = thd_ctl(d.sock, "--json", "create", NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	{
		json_t *j = json_loads(r->out, 0, NULL);

		snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
		json_decref(j);
	}
	cr_assert_eq(thd_ctl(d.sock, "pause", id, NULL)->code, 0);
	cr_assert_eq(thd_ctl(d.sock, "resume", id, NULL)->code, 0);
	thd_stop(&d);
	snprintf(sql, sizeof(sql),
		 "SELECT seq FROM audit_log WHERE sandbox_id = '%s' AND kind = 'sandbox.pause'",
		 id);
	snprintf(seq, sizeof(seq), "%s", th_query_file(d.db, sql));
	cr_assert_eq(sqlite3_open(d.db, &db), SQLITE_OK);
	snprintf(sql, sizeof(sql),
		 "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET body = "
		 "'{\"from\":\"running\",\"to\":\"stopped\"}' WHERE seq = %s",
		 seq);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	thd_restart(&d);
	r = thd_ctl(d.sock, "audit", id, "verify", NULL);
	cr_assert_eq(r->code, 1);
	snprintf(sql, sizeof(sql), "broken at seq %s:", seq);
	cr_assert_not_null(strstr(r->err, sql), "%s", r->err);
	r = thd_ctl(d.sock, "--json", "audit", id, "verify", NULL);
	cr_assert_eq(r->code, 1);
	cr_assert_not_null(strstr(r->out, "\"first_bad_seq\""), "%s", r->out);
	thd_finish(&d);
}

/* nucleusctl --json create: the new sandbox's id into @id. */
static void ctl_create(char id[32])
{
	struct thd_run *r = thd_ctl(d.sock, "--json", "create", NULL);
	json_t *j;

	cr_assert_eq(r->code, 0, "%s", r->err);
	j = json_loads(r->out, 0, NULL);
	snprintf(id, 32, "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
}

/* `audit --all-owners verify`: the whole log (an admin's; the tests run as root). */
Test(cli, audit_all_owners_verify_checks_the_whole_log)
{
	char id[32];
	struct thd_run *r;

	ctl_create(id);
	r = thd_ctl(d.sock, "audit", "--all-owners", "verify", NULL);
	cr_assert_eq(r->code, 0, "%s %s", r->out, r->err);
	cr_assert_not_null(strstr(r->out, "audit chain intact"), "%s", r->out);
	r = thd_ctl(d.sock, "--json", "audit", "--all-owners", "verify", NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	cr_assert_not_null(strstr(r->out, "\"ok\": true"), "%s", r->out);
	/* the listing is one sandbox's: --all-owners is not one of its options */
	r = thd_ctl(d.sock, "audit", "--all-owners", id, NULL);
	cr_assert_eq(r->code, 2, "%s", r->err);
	thd_finish(&d);
}

/* `audit ID verify` after a restart: exit 1 naming uncovered entries from @from on. */
static void assert_not_covered_from(const char *id, long long from)
{
	struct thd_run *r;
	char want[64];
	json_t *j, *nc;

	r = thd_ctl(d.sock, "audit", id, "verify", NULL);
	cr_assert_eq(r->code, 1, "%s%s", r->out, r->err);
	snprintf(want, sizeof(want), "seq %lld-", from);
	cr_assert_not_null(strstr(r->err, "not covered by a seal"), "%s", r->err);
	cr_assert_not_null(strstr(r->err, want), "%s", r->err);
	r = thd_ctl(d.sock, "--json", "audit", id, "verify", NULL);
	cr_assert_eq(r->code, 1);
	j = json_loads(r->out, 0, NULL);
	cr_assert(json_is_true(json_object_get(j, "ok")), "the chain itself is intact: %s", r->out);
	nc = json_object_get(j, "not_covered");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(nc, 0), "from")), from, "%s",
		     r->out);
	cr_assert_geq(json_integer_value(json_object_get(j, "unsealed_at_start")), 1, "%s", r->out);
	json_decref(j);
}

/*
 * The laundering of issue 19 with the daemon stopped: triggers dropped, @edit applied,
 * the chain re-hashed from the first entry @from_sql names, the seals from there on
 * deleted; restart. Returns the seq the not covered range must start at.
 */
static long long launder(const char *edit, const char *from_sql)
{
	long long from, kept;
	sqlite3 *db = NULL;
	char sql[256];

	thd_stop(&d);
	from = atoll(th_query_file(d.db, from_sql));
	cr_assert_gt(from, 0);
	snprintf(sql, sizeof(sql), "SELECT coalesce(max(seq), 0) FROM audit_seals WHERE seq < %lld",
		 from);
	kept = atoll(th_query_file(d.db, sql));
	cr_assert_eq(sqlite3_open(d.db, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db,
				  "DROP TRIGGER audit_log_no_update; DROP TRIGGER "
				  "audit_seals_no_delete",
				  NULL, NULL, NULL),
		     SQLITE_OK, "%s", sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_exec(db, edit, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	th_rehash_from(db, (uint64_t)from);
	snprintf(sql, sizeof(sql), "DELETE FROM audit_seals WHERE seq >= %lld", from);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	thd_restart(&d);
	return kept + 1;
}

Test(cli, audit_verify_reports_a_laundered_tail)
{
	char id[32];
	long long from;

	ctl_create(id);
	cr_assert_eq(thd_ctl(d.sock, "pause", id, NULL)->code, 0);
	cr_assert_eq(thd_ctl(d.sock, "resume", id, NULL)->code, 0);
	from = launder("UPDATE audit_log SET actor_uid = 0 WHERE kind = 'sandbox.pause'",
		       "SELECT seq FROM audit_log WHERE kind = 'sandbox.pause'");
	assert_not_covered_from(id, from);
	thd_finish(&d);
}

Test(cli, audit_verify_reports_a_laundered_whole_log)
{
	char id[32];

	ctl_create(id);
	cr_assert_eq(thd_ctl(d.sock, "pause", id, NULL)->code, 0);
	cr_assert_eq(launder("UPDATE audit_log SET actor_uid = 0", "SELECT 1"), 1);
	assert_not_covered_from(id, 1);
	thd_finish(&d);
}

Test(cli, audit_verify_reports_an_appended_forged_entry)
{
	char id[32];
	long long from;

	ctl_create(id);
	from = launder("INSERT INTO audit_log(seq, at_us, sandbox_id, actor_uid, kind, body, "
		       "prev_hash, hash) SELECT seq + 1, at_us, sandbox_id, actor_uid, kind, "
		       "body, hash, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
		       "SELECT max(seq) FROM audit_log");
	assert_not_covered_from(id, from);
	thd_finish(&d);
}

Test(cli, a_tail_a_killed_daemon_left_unsealed_is_not_sealed_at_restart)
{
	char id[32];
	long long tail = 0;

	/*
	 * Killed within the seal delay after a commit: until that leaves a tail (a slow
	 * machine may seal first). A restart fails the fake backend's sandboxes: each try
	 * pauses a new one.
	 */
	for (int i = 0; i < 10 && !tail; i++) {
		char path[96];

		ctl_create(id);
		/* in process: a nucleusctl's exit alone can outlast the seal delay */
		snprintf(path, sizeof(path), "/v1/sandboxes/%s/pause", id);
		thd_expect(&d, "POST", path, NULL, 200);
		thd_kill9(&d);
		tail = atoll(th_query_file(d.db,
					   "SELECT (SELECT max(seq) FROM audit_log) - "
					   "(SELECT coalesce(max(seq), 0) FROM audit_seals)"));
		thd_restart(&d);
	}
	cr_assert_gt(tail, 0, "the daemon was never killed before its seal");
	cr_assert_str_eq(th_query_file(d.db, "SELECT count(*) FROM audit_log WHERE kind = "
					     "'audit.epoch'"),
			 "1");
	assert_not_covered_from(
		id, atoll(th_query_file(d.db, "SELECT json_extract(body, '$.unsealed_from') "
					      "FROM audit_log WHERE kind = 'audit.epoch'")));
	thd_finish(&d);
	{
		char log[1 << 16] = "";
		FILE *f = fopen(d.log, "r");

		cr_assert_not_null(f);
		log[fread(log, 1, sizeof(log) - 1, f)] = '\0';
		fclose(f);
		cr_assert_not_null(strstr(log, "were found unsealed at start"), "%s", log);
	}
}

Test(cli, a_garbled_audit_page_answers_ok_false_by_seq)
{
	struct api_response resp;
	struct thd_run *r;
	char id[32], path[96];

	ctl_create(id);
	for (int i = 0; i < 80; i++) {
		snprintf(path, sizeof(path), "/v1/sandboxes/%s/%s", id, i % 2 ? "resume" : "pause");
		resp = thd_call(&d, "POST", path, NULL);
		cr_assert_eq(resp.status, 200, "%s", resp.body);
		api_response__clear(&resp);
	}
	/*
	 * Under the running daemon (a corrupt database does not start: the next test),
	 * idle: everything sealed, and its db check answered after its start's backup.
	 */
	thd_settle(&d);
	thd_expect(&d, "POST", "/v1/db/check", NULL, 200);
	th_garble_page(d.db, "audit_log");
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/audit/verify", id);
	resp = thd_call(&d, "GET", path, NULL);
	cr_assert_eq(resp.status, 200, "%s", resp.body);
	cr_assert(json_is_false(json_object_get(resp.json, "ok")), "%s", resp.body);
	cr_assert_gt(json_integer_value(json_object_get(resp.json, "first_bad_seq")), 1, "%s",
		     resp.body);
	cr_assert_not_null(strstr(json_string_value(json_object_get(resp.json, "problem")),
				  "database corrupt"),
			   "%s", resp.body);
	api_response__clear(&resp);
	r = thd_ctl(d.sock, "audit", id, "verify", NULL);
	cr_assert_eq(r->code, 1);
	cr_assert_not_null(strstr(r->err, "restore nucleus.db from a backup"), "%s", r->err);
	/* quick_check finds the page too: every problem on stdout, one error line, exit 1 */
	r = thd_ctl(d.sock, "db", "check", NULL);
	cr_assert_eq(r->code, 1, "%s", r->out);
	cr_assert_not_null(strstr(r->out, "problem: "), "%s", r->out);
	cr_assert_not_null(strstr(r->err, "database corrupt"), "%s", r->err);
	cr_assert_eq(lines(r->err), 1, "%s", r->err);
	thd_kill9(&d); /* a daemon on a corrupt database: its clean stop is not the point */
}

/* A page of the sandboxes table garbled while the daemon was stopped: it refuses to start. */
Test(cli, a_corrupt_database_is_named_at_start)
{
	char *log;

	insert_sandboxes(300);
	thd_stop(&d);
	th_garble_page(d.db, "sandboxes");
	cr_assert_eq(thd_restart_fails(&d), 1);
	log = th_slurp(d.log);
	cr_assert_not_null(strstr(log, "database corrupt: "), "%s", log);
	cr_assert_null(strstr(log, "database corrupt: ***"), "the problem, not a header: %s", log);
	cr_assert_not_null(strstr(log, "backup/nucleus.db"), "the way out: %s", log);
	cr_assert_null(strstr(log, "Bad message"), "%s", log);
	free(log);
}

Test(cli, db_check_of_a_sound_database_exits_0)
{
	struct thd_run *r = thd_ctl(d.sock, "db", "check", NULL);

	cr_assert_eq(r->code, 0, "%s", r->err);
	cr_assert_not_null(strstr(r->out, "database ok"), "%s", r->out);
	r = thd_ctl(d.sock, "db", "vacuum", NULL);
	cr_assert_eq(r->code, 2, "usage: %s", r->err);
	thd_finish(&d);
}

/* POST /v1/db/check; its "backup" (a new reference, JSON null when there is none). */
static json_t *db_check_backup(void)
{
	struct api_response r = thd_call(&d, "POST", "/v1/db/check", NULL);
	json_t *b;

	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(json_is_true(json_object_get(r.json, "ok")), "%s", r.body);
	b = json_incref(json_object_get(r.json, "backup"));
	cr_assert_not_null(b, "%s", r.body);
	api_response__clear(&r);
	return b;
}

/* The daemon restarted with @arg as its --backup-interval. */
static void restart_with_interval(const char *arg)
{
	thd_stop(&d);
	d.extra[0] = "--backup-interval";
	d.extra[1] = arg;
	thd_restart(&d);
}

/*
 * The start's backup: one job queue, so a db check answered after the start has seen
 * it written. It is a whole database (quick_check ok) with the sandbox, mode 0600.
 */
Test(cli, the_start_takes_a_backup_that_opens_and_has_the_rows)
{
	char id[32], path[400], sql[160];
	struct stat st;
	json_t *b;

	ctl_create(id);
	thd_stop(&d);
	thd_restart(&d);
	b = db_check_backup();
	snprintf(path, sizeof(path), "%s/backup/nucleus.db", d.data);
	cr_assert_str_eq(json_string_value(json_object_get(b, "path")), path);
	cr_assert(json_integer_value(json_object_get(b, "at_us")) > 0);
	json_decref(b);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "%o", st.st_mode & 0777);
	cr_assert_str_eq(th_query_file(path, "PRAGMA quick_check"), "ok");
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM sandboxes WHERE id = '%s'", id);
	cr_assert_str_eq(th_query_file(path, sql), "1");
	cr_assert_str_eq(th_query_file(path, "PRAGMA journal_mode"), "delete", "one file");
	snprintf(path, sizeof(path), "%s/backup/nucleus.db.tmp", d.data);
	cr_assert_neq(access(path, F_OK), 0, "the temporary copy is gone");
	cr_assert_eq(thd_metric(&d, "nucleus_db_backups_total"), 1);
	cr_assert_eq(thd_metric(&d, "nucleus_db_backup_failures_total"), 0);
	cr_assert_geq(thd_metric(&d, "nucleus_db_backup_age_seconds"), 0);
	thd_finish(&d);
}

/* --backup-interval 1: backups keep coming (no time asserted: a generous bound). */
Test(cli, backups_repeat_every_interval)
{
	long long n = 0;

	restart_with_interval("1");
	for (int i = 0; i < 600 && n < 3; i++) {
		n = thd_metric(&d, "nucleus_db_backups_total");
		if (n < 3)
			usleep(100 * 1000);
	}
	cr_assert_geq(n, 3, "backups: %lld", n);
	cr_assert_eq(thd_metric(&d, "nucleus_db_backup_failures_total"), 0);
	thd_finish(&d);
}

/* --backup-interval 0: none at all. */
Test(cli, backup_interval_0_takes_none)
{
	char path[400];
	json_t *b;

	snprintf(path, sizeof(path), "%s/backup/nucleus.db", d.data);
	thd_stop(&d);
	unlink(path); /* the suite's own start took one */
	restart_with_interval("0");
	b = db_check_backup();
	cr_assert(json_is_null(b));
	json_decref(b);
	cr_assert_eq(thd_metric(&d, "nucleus_db_backups_total"), 0);
	cr_assert_eq(thd_metric(&d, "nucleus_db_backup_age_seconds"), -1, "no backup, no age");
	cr_assert_neq(access(path, F_OK), 0);
	thd_finish(&d);
}

Test(cli, a_bad_backup_interval_refuses_the_start)
{
	static const char *const bad[] = {"-1", "x", "604801", "", "1.5"};
	char *log;

	thd_stop(&d);
	d.extra[0] = "--backup-interval";
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d.extra[1] = bad[i];
		cr_assert_eq(thd_restart_fails(&d), 2, "--backup-interval '%s'", bad[i]);
	}
	log = th_slurp(d.log);
	cr_assert_not_null(strstr(log, "bad option value '604801'"), "%s", log);
	free(log);
}

/*
 * A full disk: the stopped daemon's data dir copied onto a 1 MiB tmpfs (mounted in a
 * mount namespace of the child's own), which is then filled; nucleusd on it refuses to
 * start and the log says that the disk is full (before: "Input/output error").
 */
Test(cli, a_full_disk_is_named_at_start)
{
	char full[320], cmd[2400];
	int status, fd;
	char *log;
	pid_t pid;

	thd_stop(&d);
	snprintf(full, sizeof(full), "%s/full", d.dir);
	cr_assert_eq(mkdir(full, 0700), 0);
	snprintf(cmd, sizeof(cmd),
		 "cp -a %s %s/data && (cat /dev/zero > %s/fill) 2>/dev/null; "
		 "exec %s --fake-backend --data-dir %s/data --socket %s/full.sock",
		 d.data, full, full, NUCLEUSD_PATH, full, d.dir);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		fd = open(d.log, O_WRONLY | O_APPEND);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		if (unshare(CLONE_NEWNS) < 0 && unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
			_exit(77);
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", full, "tmpfs", 0, "size=1m") < 0)
			_exit(77);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		cr_skip_test("no mount namespace here for a small tmpfs");
	cr_assert_eq(WEXITSTATUS(status), 1);
	log = th_slurp(d.log);
	cr_assert_not_null(strstr(log, "is full ("), "%s", log);
	cr_assert_not_null(strstr(log, "free some space"), "%s", log);
	free(log);
}

Test(cli, health_says_which_backend)
{
	struct thd_run *r = thd_ctl(d.sock, "health", NULL);

	cr_assert_eq(r->code, 0);
	cr_assert_not_null(strstr(r->out, "fake"));
	cr_assert_not_null(strstr(r->out, "not the product"));
	thd_finish(&d);
}

/* run streams: stdout and stderr to the matching stream, exit code (128 + signal). */
Test(cli, run_streams_output_and_exits_with_the_commands_code)
{
	const char *id = thd_create(&d, "{\"profile\": \"fake-open\", \"vcpus\": 1, "
					"\"memory_mib\": 128}");
	char sid[32];
	struct thd_run *r;

	snprintf(sid, sizeof(sid), "%s", id);
	/* fake run: argv words are stdout lines, err:X a stderr line, exit:N the code */
	r = thd_ctl(d.sock, "run", sid, "--", "prog", "one", "err:oops", "two", "exit:4", NULL);
	cr_assert_eq(r->code, 4, "exit %d: %s", r->code, r->err);
	cr_assert_str_eq(r->out, "one\ntwo\n");
	cr_assert_str_eq(r->err, "oops\n");
	r = thd_ctl(d.sock, "run", sid, "--", "prog", "bye", "sig:9", NULL);
	cr_assert_eq(r->code, 128 + 9, "exit %d: %s", r->code, r->err);
	cr_assert_str_eq(r->out, "bye\n");
	r = thd_ctl(d.sock, "--json", "run", sid, "--", "prog", "whole", "exit:2", NULL);
	cr_assert_eq(r->code, 2, "exit %d: %s", r->code, r->err);
	cr_assert_not_null(strstr(r->out, "\"stdout\": \"whole\\n\""), "%s", r->out);
	thd_finish(&d);
}

/* Writes @text to DIR/@name; the path in @path. */
static void put_file(const char *name, const char *text, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", d.dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

/*
 * `policy check FILE` exits @code and prints one line, FILE then @rest: on stdout when it
 * exits 0, else on stderr after "nucleusctl: "; nothing on the other stream.
 */
static void policy_check(const char *file, int code, const char *rest)
{
	struct thd_run *r = thd_ctl(d.sock, "policy", "check", file, NULL);
	char want[512];

	cr_assert_eq(r->code, code, "%s", r->err);
	snprintf(want, sizeof(want), "%s%s%s", code ? "nucleusctl: " : "", file, rest);
	cr_assert_str_eq(code ? r->err : r->out, want);
	cr_assert_str_eq(code ? r->out : r->err, "");
}

/* policy check FILE: "FILE: ok" and 0; the engine's problem on one line and 1. */
Test(cli, policy_check_says_ok_or_names_the_problem)
{
	char good[320], bad[320], broken[320];
	struct thd_run *r;

	snprintf(good, sizeof(good), "%s/policy/profiles/codegen.json", SOURCE_ROOT);
	policy_check(good, 0, ": ok\n");
	put_file("bad.json", "{\"deny\": []}", bad, sizeof(bad));
	policy_check(bad, 1, ": $.deny: unknown key\n");
	put_file("broken.json", "{\"name\": \"x\"\n", broken, sizeof(broken));
	policy_check(broken, 1,
		     ": $: JSON syntax error at line 2 column 0: '}' expected near end of file\n");

	r = thd_ctl(d.sock, "policy", "check", "/nonexistent/p.json", NULL);
	cr_assert_eq(r->code, 2);
	cr_assert_str_eq(r->err, "nucleusctl: /nonexistent/p.json: No such file or directory\n");
	r = thd_ctl(d.sock, "policy", "check", NULL);
	cr_assert_eq(r->code, 2);
	cr_assert_eq(lines(r->err), 1, "%s", r->err);
	thd_finish(&d);
}

/* `policy explain PROFILE CALL` exits @code (0 only for allow) and prints @out. */
static void explain(const char *profile, const char *call, int code, const char *out)
{
	struct thd_run *r = thd_ctl(d.sock, "policy", "explain", profile, call, NULL);

	cr_assert_eq(r->code, code, "%s", r->err);
	cr_assert_str_eq(r->out, out);
}

/* policy explain: the engine's explanation, exit 0 only for allow; errors on one line. */
Test(cli, policy_explain_prints_the_verdict_and_exits_by_it)
{
	char file[320], bad[320], want[512];
	struct thd_run *r;

	explain("codegen", "{\"op\": \"read_file\", \"path\": \"/workspace/src/main.c\"}", 0,
		"#1 read_file: allow (ALLOWED): allowed by the envelope; exposure: call private, "
		"session none -> private\n");
	explain("codegen", "{\"op\": \"web_fetch\", \"url\": \"https://example.com/\"}", 1,
		"#1 web_fetch: deny (OP_DENIED): the operation is denied by the envelope "
		"[web_fetch]; exposure: call none, session none -> none\n");
	explain("codegen",
		"{\"op\": \"git_push\", \"remote\": \"https://github.com/a/b\", \"ref\": "
		"\"refs/heads/feature/x\"}",
		1,
		"#1 git_push: ask (OP_ASK): the operation needs an approval [github.com:22,443]; "
		"exposure: call exfil, session none -> none\n");
	r = thd_ctl(d.sock, "--json", "policy", "explain", "read-only",
		    "{\"op\": \"read_file\", \"path\": \"/workspace/a\"}", NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	cr_assert_str_eq(r->out, "{\"verdict\": \"allow\", \"reason\": \"ALLOWED\"}\n");

	snprintf(file, sizeof(file), "@%s/policy/profiles/read-only.json", SOURCE_ROOT);
	explain(file, "{\"op\": \"write_file\", \"path\": \"/workspace/a\"}", 1,
		"#1 write_file: deny (OP_DENIED): the operation is denied by the envelope "
		"[write_file]; exposure: call none, session none -> none\n");

	r = thd_ctl(d.sock, "policy", "explain", "nope",
		    "{\"op\": \"read_file\", \"path\": \"/a\"}", NULL);
	cr_assert_eq(r->code, 2);
	cr_assert_str_eq(r->err, "nucleusctl: no built-in profile 'nope'\n");
	r = thd_ctl(d.sock, "policy", "explain", "no such", "{\"op\": \"list\", \"path\": \"/a\"}",
		    NULL);
	cr_assert_eq(r->code, 2);
	cr_assert_str_eq(r->err, "nucleusctl: no built-in profile 'no such'\n");
	r = thd_ctl(d.sock, "policy", "explain", "codegen", "{\"op\": \"fly\"}", NULL);
	cr_assert_eq(r->code, 2);
	cr_assert_str_eq(r->err, "nucleusctl: call: $.op: unknown operation\n");
	r = thd_ctl(d.sock, "policy", "explain", "codegen", "{\"op\":", NULL);
	cr_assert_eq(r->code, 2);
	cr_assert_str_eq(r->err, "nucleusctl: call: $: JSON syntax error at line 1 column 6: "
				 "unexpected token near end of file\n");
	put_file("bad.json", "{\"deny\": []}", bad + 1, sizeof(bad) - 1);
	bad[0] = '@';
	r = thd_ctl(d.sock, "policy", "explain", bad, "{\"op\": \"read_file\", \"path\": \"/a\"}",
		    NULL);
	cr_assert_eq(r->code, 1);
	snprintf(want, sizeof(want), "nucleusctl: %s: $.deny: unknown key\n", bad + 1);
	cr_assert_str_eq(r->err, want);
	r = thd_ctl(d.sock, "policy", "explain", "@/nonexistent/p.json",
		    "{\"op\": \"read_file\", \"path\": \"/a\"}", NULL);
	cr_assert_eq(r->code, 2);
	cr_assert_str_eq(r->err, "nucleusctl: /nonexistent/p.json: No such file or directory\n");
	r = thd_ctl(d.sock, "policy", "explain", "codegen", NULL);
	cr_assert_eq(r->code, 2);
	thd_finish(&d);
}
