// SPDX-License-Identifier: Apache-2.0
/*
 * The database's health and the daemon's long reads: PRAGMA quick_check before the
 * daemon opens it for writing (nucleusd__db_check_at_start); the maintenance thread (one
 * worker of nucleusd/pool.h with the daemon's read-only connection, nd->reader) that
 * runs audit verify (sandbox.c) and POST /v1/db/check off the event loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "nucleusd/nucleusd-internal.h"
#include "nucleusd/pool.h"

/* quick_check's first problem, into the caller's buffer. */
struct first_problem {
	char *buf;
	size_t len;
};

/*
 * One problem of quick_check as one line: its rows start with a header line ("*** in
 * database main ***") when the problems are SQLite's b-tree ones.
 */
static void problem_line(const char *text, char *buf, size_t len)
{
	const char *nl;

	if (!text)
		text = "";
	if (strncmp(text, "*** ", 4) == 0 && (nl = strchr(text, '\n')))
		text = nl + 1;
	snprintf(buf, len, "%s", text);
	for (char *p = buf; (p = strchr(p, '\n'));)
		*p = ' ';
}

static int first_problem(sqlite3_stmt *st, void *arg)
{
	struct first_problem *f = arg;

	if (!f->buf[0])
		problem_line((const char *)sqlite3_column_text(st, 0), f->buf, f->len);
	return 0;
}

int nucleusd__db_check_at_start(const char *data_dir, char *problem, size_t len)
{
	struct first_problem f = {problem, len};
	struct store *s = NULL;
	char path[4096];
	int r;

	problem[0] = '\0';
	if (snprintf(path, sizeof(path), "%s/nucleus.db", data_dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (access(path, F_OK) < 0)
		return errno == ENOENT ? 0 : -errno; /* a first start: nothing to check */
	r = store__open_reader(path, &s);
	if (r == -EBADMSG)
		snprintf(problem, len, "not a database (its header is damaged)");
	if (r < 0)
		return r;
	r = store__quick_check(s, 1, first_problem, &f);
	if (r == -EBADMSG && !problem[0])
		snprintf(problem, len, "%s", store__errmsg(s));
	store__free(s);
	return r > 0 ? -EBADMSG : r;
}

/* ---- the maintenance thread ---- */

static struct nd_maint_job *maint_job(struct nd_pool_job *pj)
{
	return (struct nd_maint_job *)pj;
}

static void maint_work(struct nd_pool_job *pj)
{
	struct nd_maint_job *j = maint_job(pj);

	j->rc = j->run(j, j->nd->reader);
}

static void maint_done(struct nd_pool_job *pj, bool dropped)
{
	struct nd_maint_job *j = maint_job(pj);

	j->done(j, dropped);
}

/* nd_pool__free while a job runs: SQLite stops it at its next step. */
static void maint_cancel(struct nd_pool_job *pj)
{
	store__interrupt(maint_job(pj)->nd->reader);
}

int nd__maint_queue(struct nucleusd *nd, size_t size,
		    int (*run)(struct nd_maint_job *j, struct store *reader),
		    void (*done)(struct nd_maint_job *j, bool dropped), nd_reply_fn reply,
		    void *arg, struct nd_err *e)
{
	struct nd_maint_job *j = calloc(1, size);
	int r;

	if (!j)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	*j = (struct nd_maint_job){
		.pj = {.work = maint_work, .done = maint_done, .cancel = maint_cancel},
		.nd = nd,
		.run = run,
		.done = done,
		.reply = reply,
		.arg = arg,
	};
	r = nd_pool__submit(nd->maint, &j->pj);
	if (r == 0)
		return 0;
	free(j);
	if (r == -EAGAIN)
		return nd_err__set(e, r, "maintenance_busy",
				   "%d maintenance jobs wait already: try later", ND_MAINT_QUEUE);
	return nd_err__set(e, r, "internal", "cannot queue the job: %s", strerror(-r));
}

void nd__maint_reply(nd_reply_fn reply, void *arg, int rc, json_t *o, const char *what)
{
	struct nd_err e = {0};

	if (rc == 0 && !o)
		rc = -ENOMEM;
	if (rc < 0)
		reply(arg, nd_err__set(&e, rc, "internal", "%s: %s", what, strerror(-rc)), &e,
		      NULL);
	else
		reply(arg, 0, NULL, o);
	json_decref(o);
}

/* ---- online backups ---- */

/* Maintenance thread: a copy only of a sound database (a bad one keeps the last good). */
static int backup_run(struct nd_maint_job *m, struct store *reader)
{
	int r = store__quick_check(reader, 1, NULL, NULL);

	if (r > 0)
		return -EBADMSG;
	/* nd->backup_path is fixed before the thread starts */
	return r < 0 ? r : store__backup(reader, m->nd->backup_path);
}

static void backup_done(struct nd_maint_job *m, bool dropped)
{
	struct nucleusd *nd = m->nd;

	if (!dropped) {
		nd->backup_queued = false;
		if (m->rc == 0) {
			nd->m.backups++;
			nd->m.backup_mono_us = nd_clock__mono_us();
		} else {
			nd->m.backup_failures++;
		}
	}
	free(m);
}

static void backup_now(struct nucleusd *nd)
{
	if (nd->backup_queued)
		return; /* the one queued will be as new */
	if (nd__maint_queue(nd, sizeof(struct nd_maint_job), backup_run, backup_done, NULL, NULL,
			    NULL) < 0)
		nd->m.backup_failures++;
	else
		nd->backup_queued = true;
}

static void backup_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	backup_now(arg);
}

/* The backup directory (0700: the copy is as private as the database) and the timer. */
static int backup_init(struct nucleusd *nd, unsigned interval_s)
{
	struct timeval tv = {(time_t)interval_s, 0};
	char dir[sizeof(nd->backup_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", nd->backup_path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	nd->backup_ev = event_new(nd->base, -1, EV_PERSIST, backup_fire, nd);
	if (!nd->backup_ev || event_add(nd->backup_ev, &tv) < 0)
		return -ENOMEM;
	backup_now(nd); /* the start's, after the start's quick_check found it sound */
	return 0;
}

void nd__maint_metrics(struct nucleusd *nd, FILE *f)
{
	fprintf(f,
		"# HELP nucleus_db_backups_total Online backups of the database written.\n"
		"# TYPE nucleus_db_backups_total counter\n"
		"nucleus_db_backups_total %llu\n"
		"# HELP nucleus_db_backup_failures_total Online backups that failed (or found the "
		"database corrupt and kept the last copy).\n"
		"# TYPE nucleus_db_backup_failures_total counter\n"
		"nucleus_db_backup_failures_total %llu\n",
		(unsigned long long)nd->m.backups, (unsigned long long)nd->m.backup_failures);
	if (nd->m.backup_mono_us)
		fprintf(f,
			"# HELP nucleus_db_backup_age_seconds Seconds since this daemon wrote its "
			"newest backup.\n"
			"# TYPE nucleus_db_backup_age_seconds gauge\n"
			"nucleus_db_backup_age_seconds %.3f\n",
			(double)(nd_clock__mono_us() - nd->m.backup_mono_us) / 1e6);
}

int nd__maint_init(struct nucleusd *nd, const struct nd_config *cfg, const char *db_path)
{
	int r;

	if (snprintf(nd->backup_path, sizeof(nd->backup_path), "%s/" ND_BACKUP_FILE,
		     cfg->data_dir) >= (int)sizeof(nd->backup_path))
		return -ENAMETOOLONG;
	r = store__open_reader(db_path, &nd->reader);
	if (r < 0)
		return r;
	/* one thread: one reader connection, and maintenance never takes two cores */
	r = nd_pool__new(nd->base, 1, ND_MAINT_QUEUE, &nd->maint);
	if (r == 0 && cfg->backup_interval_s)
		r = backup_init(nd, cfg->backup_interval_s);
	return r;
}

void nd__maint_fini(struct nucleusd *nd)
{
	if (nd->backup_ev)
		event_free(nd->backup_ev);
	nd->backup_ev = NULL;
	nd_pool__free(nd->maint); /* interrupts the running job, joins, drops the rest */
	nd->maint = NULL;
	store__free(nd->reader);
	nd->reader = NULL;
}

/* ---- POST /v1/db/check ---- */

/*
 * Who may check the database: the one place that decides it. The whole database is every
 * owner's, so an admin (or the daemon itself), like a verify of the whole audit log.
 */
static int db_check_allowed(const struct nd_caller *who, struct nd_err *e)
{
	if (!nd_caller__sees_all(who))
		return nd_err__set(e, -EACCES, "forbidden", "only an admin checks the database");
	return 0;
}

struct check_job {
	struct nd_maint_job m; /* first */
	json_t *problems;
};

static int add_problem(sqlite3_stmt *st, void *arg)
{
	char line[512];

	problem_line((const char *)sqlite3_column_text(st, 0), line, sizeof(line));
	return json_array_append_new(arg, json_string(line)) < 0 ? -ENOMEM : 0;
}

/* Maintenance thread. */
static int check_run(struct nd_maint_job *m, struct store *reader)
{
	struct check_job *j = (struct check_job *)m;
	int r;

	j->problems = json_array();
	if (!j->problems)
		return -ENOMEM;
	r = store__quick_check(reader, 100, add_problem, j->problems);
	/* too damaged for quick_check to walk: that is its answer */
	if (r == -EBADMSG)
		r = json_array_append_new(j->problems, json_string(store__errmsg(reader))) < 0
			    ? -ENOMEM
			    : 0;
	return r < 0 ? r : 0;
}

static json_t *backup_json(struct nucleusd *nd)
{
	struct stat st;

	if (stat(nd->backup_path, &st) < 0)
		return json_null();
	return json_pack("{ss sI}", "path", nd->backup_path, "at_us",
			 (json_int_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000);
}

static void check_done(struct nd_maint_job *m, bool dropped)
{
	struct check_job *j = (struct check_job *)m;

	if (!dropped)
		nd__maint_reply(m->reply, m->arg, m->rc,
				m->rc < 0 ? NULL
					  : json_pack("{sb sO so}", "ok",
						      json_array_size(j->problems) == 0, "problems",
						      j->problems, "backup", backup_json(m->nd)),
				"cannot check the database");
	json_decref(j->problems);
	free(j);
}

int nucleusd__db_check(struct nucleusd *nd, const struct nd_caller *who, nd_reply_fn reply,
		       void *arg, struct nd_err *e)
{
	int r = db_check_allowed(who, e);

	return r < 0 ? r
		     : nd__maint_queue(nd, sizeof(struct check_job), check_run, check_done, reply,
				       arg, e);
}
