// SPDX-License-Identifier: Apache-2.0
/*
 * The database's health: PRAGMA quick_check before the daemon opens it for writing
 * (nucleusd__db_check_at_start).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>

#include "nucleusd/nucleusd-internal.h"

/* quick_check's first problem, into the caller's buffer. */
struct first_problem {
	char *buf;
	size_t len;
};

/*
 * One problem of quick_check as one line: its rows start with a header line ("*** in
 * database main ***") when the problems are SQLite's b-tree ones.
 */
void nd__problem_line(const char *text, char *buf, size_t len)
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
		nd__problem_line((const char *)sqlite3_column_text(st, 0), f->buf, f->len);
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
