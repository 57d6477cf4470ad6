// SPDX-License-Identifier: Apache-2.0
/*
 * The daemon's one profile registry. A profile is a policy of the policy engine (its
 * JSON, docs/policy.md) with optional default budget limits (docs/budget.md). The
 * built-in ones are upserted into the profiles table at start, and the table is then
 * the one source of both the body and the budget defaults that a create request by
 * profile name gets (nd__profile_load). Built-ins, whatever the backend:
 *
 *   the engine's      codegen, code-review, permissive-local, read-only, release,
 *                     research-web, under their own names
 *   default           = codegen: what nucleusctl asks for when given no profile
 *   fake-open         everything allowed (every operation, any path, command,
 *                     interpreter, host and ref; the uninhabitable state asks; no
 *                     quarantine): for the fake backend's test tools, which are decided
 *                     as `run` of a command named after the tool (nd__decide)
 *   fake-strict       fake-open, but write_file is denied and web_fetch asks
 *   fake-budget       fake-open with default limits tokens 1000, usd 1.00
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "nucleusd/nucleusd-internal.h"
#include "policy/policy.h"

struct nd_profile {
	const char *name;
	const char *body; /* engine policy JSON; NULL: the engine built-in named @alias */
	const char *alias;
	const char *budget; /* default budget limits (JSON) or NULL */
};

/* Everything allowed but @write_file and @web_fetch (levels) and the uninhabitable state. */
#define OPEN_BODY(name, description, write_file, web_fetch)                                        \
	"{\"name\": \"" name "\", \"description\": \"" description "\", "                          \
	"\"levels\": {\"read_file\": \"allow\", \"write_file\": \"" write_file "\", "              \
	"\"list\": \"allow\", \"search\": \"allow\", \"run\": \"allow\", "                         \
	"\"web_fetch\": \"" web_fetch "\", \"web_search\": \"allow\", "                            \
	"\"net_connect\": \"allow\", \"git_commit\": \"allow\", \"git_push\": \"allow\", "         \
	"\"create_pr\": \"allow\", \"spawn_agent\": \"allow\", \"manage_sandbox\": \"allow\"}, "   \
	"\"paths\": {\"read\": \"all\", \"write\": \"all\"}, "                                     \
	"\"commands\": {\"allow\": \"all\", \"interpreters\": \"all\"}, "                          \
	"\"egress\": {\"allow\": \"all\"}, \"git\": {\"refs\": \"all\"}, "                         \
	"\"uninhabitable\": \"ask\", \"quarantine_after\": \"never\"}"

static const struct nd_profile daemon_profiles[] = {
	{.name = "default", .alias = "codegen"},
	{.name = "fake-open",
	 .body = OPEN_BODY("fake-open",
			   "Everything allowed (the uninhabitable state asks): for trying the "
			   "fake backend's tools.",
			   "allow", "allow")},
	{.name = "fake-strict",
	 .body = OPEN_BODY("fake-strict",
			   "fake-open, but write_file is denied and web_fetch asks for an "
			   "approval.",
			   "deny", "ask")},
	{.name = "fake-budget",
	 .body = OPEN_BODY("fake-budget", "fake-open, with default budget limits.", "allow",
			   "allow"),
	 .budget = "{\"tokens\": 1000, \"usd\": \"1.00\"}"},
};
#define N_DAEMON_PROFILES (sizeof(daemon_profiles) / sizeof(daemon_profiles[0]))

static int upsert(struct store *s, const char *name, const char *body, const char *budget)
{
	static const char sql[] =
		"INSERT INTO profiles(name, body, budget, builtin, updated_us) VALUES "
		"(?1, json(?2), json(?3), 1, ?4) ON CONFLICT(name) DO UPDATE SET body = json(?2), "
		"budget = json(?3), builtin = 1, updated_us = ?4 WHERE body != json(?2) OR "
		"budget IS NOT json(?3)";
	sqlite3_stmt *st = NULL;
	int r;

	if (!body)
		return -ENOENT;
	r = store__stmt_text(s, sql, name, &st);
	if (r < 0)
		return r;
	r = store__errno(sqlite3_bind_text(st, 2, body, -1, SQLITE_STATIC));
	if (r == 0 && budget)
		r = store__errno(sqlite3_bind_text(st, 3, budget, -1, SQLITE_STATIC));
	if (r == 0)
		r = store__errno(sqlite3_bind_int64(st, 4, nd_clock__wall_us()));
	if (r == 0)
		r = store__errno(sqlite3_step(st));
	store__stmt_done(st);
	return r;
}

static bool daemon_defines(const char *name)
{
	for (size_t i = 0; i < N_DAEMON_PROFILES; i++)
		if (strcmp(daemon_profiles[i].name, name) == 0)
			return true;
	return false;
}

static int profiles_tx(struct store *s, void *arg)
{
	const char *const *names = policy__builtin_names();
	int r = 0;

	(void)arg;
	for (size_t i = 0; r == 0 && i < N_DAEMON_PROFILES; i++) {
		const struct nd_profile *p = &daemon_profiles[i];

		r = upsert(s, p->name, p->body ? p->body : policy__builtin_json(p->alias),
			   p->budget);
	}
	for (size_t i = 0; r == 0 && names[i]; i++)
		if (!daemon_defines(names[i]))
			r = upsert(s, names[i], policy__builtin_json(names[i]), NULL);
	return r;
}

int nd__profiles_register(struct nucleusd *nd)
{
	return store__tx(nd->store, profiles_tx, NULL);
}

int nd__profile_load(struct nucleusd *nd, const char *name, json_t **ret_policy,
		     json_t **ret_budget, struct nd_err *e)
{
	static const char sql[] = "SELECT body, budget FROM profiles WHERE name = ?1";
	json_t *policy = NULL, *budget = NULL;
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = store__stmt_text(nd->store, sql, name, &st);
	if (r < 0)
		return nd_err__set(e, r, "internal", "database error");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		policy = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			budget = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
		r = json_is_object(policy) && (sqlite3_column_type(st, 1) == SQLITE_NULL ||
					       json_is_object(budget))
			    ? 0
			    : nd_err__set(e, -EBADMSG, "internal", "profile '%s' unreadable", name);
	} else if (rc == SQLITE_DONE) {
		r = nd_err__set(e, -EINVAL, "unknown_profile", "no profile '%s'", name);
	} else {
		r = nd_err__set(e, store__errno(rc), "internal", "database error");
	}
	store__stmt_done(st);
	if (r < 0) {
		json_decref(policy);
		json_decref(budget);
		return r;
	}
	*ret_policy = policy;
	*ret_budget = budget;
	return 0;
}
