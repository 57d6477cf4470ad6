// SPDX-License-Identifier: Apache-2.0
/*
 * Sandbox state: the rows of the sandboxes table (loaded by id or name, their parsed
 * policy/spec cached, their JSON and the backend's view of them; GET of one and of the
 * list) and the state machine
 *
 *     creating -> running <-> paused -> stopped
 *         \          \           \
 *          +----------+-----------+--> failed -> stopped (DELETE)
 *
 * enforced here (wrong state = -EBUSY, the API's 409), every transition one store
 * transaction together with its audit entry; and the lifecycle step (an optional gate,
 * the backend's operation, the transition) that the API's requests (sandbox.c) and the
 * daemon's own enforcement (budget pauses, TTL stops: spend.c) share.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sqlite3.h>

#include "nucleusd/nucleusd-internal.h"

/* ---- rows ---- */

void sb_row__clear(struct sb_row *r)
{
	free(r->name);
	free(r->profile);
	free(r->reason);
	free(r->session_state);
	json_decref(r->policy);
	json_decref(r->spec);
	memset(r, 0, sizeof(*r));
}

static char *col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? strdup((const char *)t) : NULL;
}

#define ROW_COLS                                                                                   \
	"s.id, s.name, s.state, s.profile, s.policy, s.spec, s.vcpus, s.memory_mib, s.boot_ms, "   \
	"s.vmm_pid, s.reason, s.owner_uid, s.created_us, s.updated_us, ss.id, ss.state, "     \
	"s.parent_id"
/* A sandbox with its open policy session. */
#define ROW_FROM                                                                                   \
	" FROM sandboxes s LEFT JOIN sessions ss ON ss.sandbox_id = s.id AND ss.closed_us IS "     \
	"NULL"

/*
 * A sandbox's policy and spec, parsed: from a small LRU keyed by id, since both columns
 * are written by the create transaction (and the spec once more when the sandbox stops:
 * forget_env drops its entry) and ids are never reused. Saves parsing
 * a few KiB of JSON on every call; the objects are shared (refcounted), never modified.
 */
struct nd_sb_json {
	json_t *policy, *spec;
};

static void sb_json_free(void *p)
{
	struct nd_sb_json *j = p;

	json_decref(j->policy);
	json_decref(j->spec);
	free(j);
}

int nd__json_cache_new(struct nucleusd *nd)
{
	return nd_lru__new(ND_JSON_CACHE, sb_json_free, &nd->json_cache);
}

static void row_json(struct nucleusd *nd, sqlite3_stmt *st, struct sb_row *r)
{
	struct nd_sb_json *j = nd_lru__get(nd->json_cache, r->id);

	if (j) {
		r->policy = json_incref(j->policy);
		r->spec = json_incref(j->spec);
		return;
	}
	r->policy = json_loads((const char *)sqlite3_column_text(st, 4), 0, NULL);
	r->spec = json_loads((const char *)sqlite3_column_text(st, 5), 0, NULL);
	if (!r->policy || !r->spec)
		return;
	/* Not cached (out of memory) is only slower: the next load parses again. */
	j = nd->json_cache ? malloc(sizeof(*j)) : NULL;
	if (!j)
		return;
	j->policy = json_incref(r->policy);
	j->spec = json_incref(r->spec);
	nd_lru__put(nd->json_cache, r->id, j);
}

static int row_read(struct nucleusd *nd, sqlite3_stmt *st, struct sb_row *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", (const char *)sqlite3_column_text(st, 0));
	r->name = col_strdup(st, 1);
	snprintf(r->state, sizeof(r->state), "%s", (const char *)sqlite3_column_text(st, 2));
	r->profile = col_strdup(st, 3);
	row_json(nd, st, r);
	r->vcpus = (unsigned)sqlite3_column_int(st, 6);
	r->memory_mib = (unsigned)sqlite3_column_int(st, 7);
	r->boot_ms = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 8);
	r->vmm_pid = sqlite3_column_int64(st, 9);
	r->reason = col_strdup(st, 10);
	r->owner_uid = sqlite3_column_int64(st, 11);
	r->created_us = sqlite3_column_int64(st, 12);
	r->updated_us = sqlite3_column_int64(st, 13);
	if (sqlite3_column_text(st, 14))
		snprintf(r->session_id, sizeof(r->session_id), "%s",
			 (const char *)sqlite3_column_text(st, 14));
	r->session_state = col_strdup(st, 15);
	if (sqlite3_column_text(st, 16))
		snprintf(r->parent_id, sizeof(r->parent_id), "%s",
			 (const char *)sqlite3_column_text(st, 16));
	if (!r->policy || !r->spec) {
		sb_row__clear(r);
		return -EBADMSG;
	}
	return 0;
}

/*
 * Steps @sql (?1 = @ref, ?2 = the owner uid a row must have, NULL: any; with @own_first
 * ?3 = the caller's uid, to order by) for one row; 1 found, 0 none, or -errno.
 */
static int row_query(struct nucleusd *nd, const char *sql, const char *ref,
		     const struct nd_caller *who, bool own_first, struct sb_row *r)
{
	sqlite3_stmt *st = NULL;
	int rc, ret;

	ret = store__stmt_text(nd->store, sql, ref, &st);
	if (ret < 0)
		return ret;
	if (nd_caller__sees_all(who))
		ret = store__errno(sqlite3_bind_null(st, 2));
	else
		ret = store__errno(sqlite3_bind_int64(st, 2, (sqlite3_int64)who->uid));
	/* ?3 of a statement that orders by it: the caller's uid, whose own come first */
	if (ret == 0 && own_first)
		ret = store__errno(who ? sqlite3_bind_int64(st, 3, (sqlite3_int64)who->uid)
				       : sqlite3_bind_null(st, 3));
	rc = ret < 0 ? SQLITE_OK : sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = row_read(nd, st, r) < 0 ? -EBADMSG : 1;
	else if (ret == 0)
		ret = rc == SQLITE_DONE ? 0 : store__errno(rc);
	store__stmt_done(st);
	return ret;
}

bool nd_caller__sees_all(const struct nd_caller *who)
{
	return !who || who->admin;
}

/*
 * Finds a sandbox by id, else by name (the live one, else the newest), among those @who
 * may see: its own, or every one for an admin and the daemon itself (@who NULL). Another
 * owner's sandbox is not found: the same -ENOENT, code and message as an unknown @ref.
 * Two indexed lookups (primary key, then sandboxes_name): one query with "id = ? OR
 * name = ?" scanned every sandbox ever made, on every call.
 */
int sb_row__load(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
		 struct sb_row *r, struct nd_err *e)
{
	static const char by_id[] = "SELECT " ROW_COLS ROW_FROM " WHERE s.id = ?1 AND "
				    "(?2 IS NULL OR s.owner_uid = ?2)";
	/* names are unique per owner: an admin's own sandbox of a name comes first */
	static const char by_name[] = "SELECT " ROW_COLS ROW_FROM " WHERE s.name = ?1 AND "
				      "(?2 IS NULL OR s.owner_uid = ?2) "
				      "ORDER BY s.owner_uid IS ?3 DESC, "
				      "s.state NOT IN ('stopped', 'failed') DESC, "
				      "s.created_us DESC LIMIT 1";
	int ret;

	ret = row_query(nd, by_id, ref, who, false, r);
	if (ret == 0)
		ret = row_query(nd, by_name, ref, who, true, r);
	if (ret == 0)
		return nd_err__set(e, -ENOENT, "not_found", "no sandbox '%s'", ref);
	if (ret < 0)
		return nd_err__set(e, ret, "internal", "cannot read sandbox");
	return 0;
}

json_t *sb_row__json(const struct sb_row *r)
{
	json_t *o, *q;

	/* the env values only as digests, whatever the state */
	o = json_pack("{ss s:s? ss s:s? sI sI s:o? sI sI sI so}", "id", r->id, "name", r->name,
		      "state", r->state, "profile", r->profile, "vcpus", (json_int_t)r->vcpus,
		      "memory_mib", (json_int_t)r->memory_mib, "boot_ms",
		      r->boot_ms < 0 ? NULL : json_integer(r->boot_ms), "owner_uid",
		      (json_int_t)r->owner_uid, "created_us", (json_int_t)r->created_us,
		      "updated_us", (json_int_t)r->updated_us, "spec", nd_env__redact(r->spec));
	if (o && r->reason)
		json_object_set_new(o, "reason", json_string(r->reason));
	if (o && r->vmm_pid > 0)
		json_object_set_new(o, "vmm_pid", json_integer((json_int_t)r->vmm_pid));
	if (o)
		json_object_set_new(o, "parent", r->parent_id[0] ? json_string(r->parent_id)
								 : json_null());
	q = o ? nd_session__quarantine_json(r->session_state) : NULL;
	if (o)
		json_object_set_new(o, "quarantined", json_boolean(q != NULL));
	if (q)
		json_object_set_new(o, "quarantine", q);
	return o;
}

void sb_row__info(const struct sb_row *r, struct nd_sandbox_info *info)
{
	info->id = r->id;
	info->name = r->name;
	info->profile = r->profile;
	info->policy = r->policy;
	info->spec = r->spec;
	info->vcpus = r->vcpus;
	info->memory_mib = r->memory_mib;
	info->vmm_pid = r->vmm_pid;
	info->session_id = r->session_id[0] ? r->session_id : NULL;
	info->session_state = r->session_state;
}

/* ---- transitions ---- */

static bool state_in(const char *state, unsigned mask)
{
	static const char *const names[] = {"creating", "running", "paused", "stopped", "failed"};

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((mask & (1u << i)) && strcmp(state, names[i]) == 0)
			return true;
	return false;
}

/* The state of sandbox @id and its parent's id ("" when it has none). */
static int current_state(struct store *s, const char *id, char out[16], char parent[20])
{
	static const char sql[] = "SELECT state, parent_id FROM sandboxes WHERE id = ?1";
	sqlite3_stmt *st = NULL;
	const unsigned char *p;
	int r, rc;

	r = store__stmt_text(s, sql, id, &st);
	if (r < 0)
		return r;
	rc = r < 0 ? SQLITE_OK : sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(out, 16, "%s", (const char *)sqlite3_column_text(st, 0));
		p = sqlite3_column_text(st, 1);
		snprintf(parent, 20, "%s", p ? (const char *)p : "");
	}
	if (r == 0)
		r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : store__errno(rc);
	store__stmt_done(st);
	return r;
}

static int update_row(struct store *s, const struct transition *t)
{
	static const char sql[] = "UPDATE sandboxes SET state = ?2, updated_us = ?3, "
				  "boot_ms = coalesce(?4, boot_ms), vmm_pid = coalesce(?5, "
				  "vmm_pid), reason = coalesce(?6, reason) WHERE id = ?1";
	sqlite3_stmt *st = NULL;
	int r;

	r = store__stmt_text(s, sql, t->id, &st);
	if (r < 0)
		return r;
	if (r == 0)
		r = store__errno(sqlite3_bind_text(st, 2, t->to, -1, SQLITE_STATIC));
	if (r == 0)
		r = store__errno(sqlite3_bind_int64(st, 3, nd_clock__wall_us()));
	if (r == 0 && t->boot_ms >= 0)
		r = store__errno(sqlite3_bind_int64(st, 4, t->boot_ms));
	if (r == 0 && t->vmm_pid > 0)
		r = store__errno(sqlite3_bind_int64(st, 5, t->vmm_pid));
	if (r == 0 && t->reason)
		r = store__errno(sqlite3_bind_text(st, 6, t->reason, -1, SQLITE_STATIC));
	if (r == 0)
		r = store__errno(sqlite3_step(st));
	store__stmt_done(st);
	return r;
}

/* A sandbox that is gone takes no more decisions. */
static int close_sessions(struct store *s, const char *id)
{
	static const char sql[] = "UPDATE sessions SET closed_us = ?2 WHERE sandbox_id = ?1 AND "
				  "closed_us IS NULL";
	sqlite3_stmt *st = NULL;
	int r;

	r = store__stmt_text(s, sql, id, &st);
	if (r < 0)
		return r;
	if (r == 0)
		r = store__errno(sqlite3_bind_int64(st, 2, nd_clock__wall_us()));
	if (r == 0)
		r = store__errno(sqlite3_step(st));
	store__stmt_done(st);
	return r;
}

/*
 * A sandbox that will not boot or run again needs its env no more: the stored spec keeps
 * only the values' digests (nd_env__redact), and the parsed copy of the old one leaves
 * the cache. With secure_delete the old row's bytes do not stay in the database file.
 */
static int forget_env(struct store *s, struct nucleusd *nd, const char *id)
{
	static const char get[] = "SELECT spec FROM sandboxes WHERE id = ?1";
	static const char set[] = "UPDATE sandboxes SET spec = ?2 WHERE id = ?1";
	sqlite3_stmt *st = NULL;
	json_t *spec = NULL, *red = NULL;
	char *text = NULL;
	void *cached;
	int r, rc;

	r = store__stmt_text(s, get, id, &st);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		spec = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	r = rc == SQLITE_ROW	? (spec ? 0 : -EBADMSG)
	    : rc == SQLITE_DONE ? -ENOENT
				: store__errno(rc);
	store__stmt_done(st);
	st = NULL;
	if (r < 0 || !json_object_get(spec, "env"))
		goto out;
	red = nd_env__redact(spec);
	if (red == spec)
		goto out; /* digests already (a failed sandbox that is now stopped) */
	text = red ? json_dumps(red, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	r = text ? store__stmt_text(s, set, id, &st) : -ENOMEM;
	if (r == 0)
		r = store__errno(sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC));
	if (r == 0)
		r = store__errno(sqlite3_step(st));
	store__stmt_done(st);
	if (r == 0 && nd->json_cache && (cached = nd_lru__take(nd->json_cache, id)))
		sb_json_free(cached);
out:
	free(text);
	json_decref(red);
	json_decref(spec);
	return r;
}

static int transition_tx(struct store *s, void *arg)
{
	struct transition *t = arg;
	char state[16], parent[20] = "";
	json_t *body;
	int r;

	r = current_state(s, t->id, state, parent);
	if (r < 0)
		return r;
	snprintf(t->was, sizeof(t->was), "%s", state);
	if (!state_in(state, t->from_mask))
		return -EBUSY;
	r = update_row(s, t);
	if (r < 0)
		return r;
	if (strcmp(t->to, "stopped") == 0 || strcmp(t->to, "failed") == 0) {
		r = close_sessions(s, t->id);
		if (r == 0)
			r = forget_env(s, t->nd, t->id);
		/* a child's unspent budget goes back to its parent, once */
		if (r == 0 && parent[0])
			r = nd__delegate_end_tx(s, t->nd, parent, t->id, t->actor_uid);
		if (r < 0)
			return r;
	}
	body = json_pack("{ss ss}", "from", state, "to", t->to);
	if (!body)
		return -ENOMEM;
	if (t->reason)
		json_object_set_new(body, "reason", json_string(t->reason));
	if (t->boot_ms >= 0)
		json_object_set_new(body, "boot_ms", json_integer(t->boot_ms));
	r = audit__append(s, t->nd->key, t->id, t->actor_uid, t->kind, body, NULL);
	json_decref(body);
	return r;
}

int nd__transition(struct transition *t, struct nd_err *e)
{
	int r = store__tx(t->nd->store, transition_tx, t);

	if (r == -EBUSY)
		return nd_err__set(e, r, "wrong_state", "sandbox %s is %s", t->id, t->was);
	if (r == -ENOENT)
		return nd_err__set(e, r, "not_found", "no sandbox '%s'", t->id);
	if (r < 0)
		return nd_err__set(e, r, "internal", "cannot record state change: %s",
				   strerror(-r));
	return 0;
}

int nd__row_reply(struct nucleusd *nd, const struct nd_caller *who, const char *id, json_t **ret,
		  struct nd_err *e)
{
	struct sb_row row;
	int r;

	r = sb_row__load(nd, who, id, &row, e);
	if (r < 0)
		return r;
	*ret = sb_row__json(&row);
	sb_row__clear(&row);
	return *ret ? 0 : nd_err__set(e, -ENOMEM, "internal", "out of memory");
}

/* ---- reading: get, list ---- */

static int add_child(sqlite3_stmt *st, void *arg)
{
	json_t *o = json_pack("{ss ss}", "id", (const char *)sqlite3_column_text(st, 0), "state",
			      (const char *)sqlite3_column_text(st, 1));

	return o && json_array_append_new(arg, o) == 0 ? 0 : -ENOMEM;
}

int nd__children(struct nucleusd *nd, const char *id, bool live, json_t **ret)
{
	static const char every[] = "SELECT id, state FROM sandboxes WHERE parent_id = ?1 "
				    "ORDER BY created_us";
	static const char alive[] = "SELECT id, state FROM sandboxes WHERE parent_id = ?1 AND "
				    "state IN ('creating', 'running', 'paused') ORDER BY created_us";
	sqlite3_stmt *st = NULL;
	int r;

	*ret = json_array();
	if (!*ret)
		return -ENOMEM;
	r = store__stmt_text(nd->store, live ? alive : every, id, &st);
	if (r == 0)
		r = store__rows(st, add_child, *ret);
	store__stmt_done(st);
	if (r < 0) {
		json_decref(*ret);
		*ret = NULL;
	}
	return r;
}

/* One sandbox, with its children (delegation): ids and states. */
int nucleusd__sandbox_get(struct nucleusd *nd, const struct nd_caller *who, const char *ref,
			  json_t **ret, struct nd_err *e)
{
	json_t *ch = NULL;
	int r = nd__row_reply(nd, who, ref, ret, e);

	if (r < 0)
		return r;
	r = nd__children(nd, json_string_value(json_object_get(*ret, "id")), false, &ch);
	if (r == 0)
		r = json_object_set_new(*ret, "children", ch) < 0 ? -ENOMEM : 0;
	if (r < 0) {
		json_decref(*ret);
		*ret = NULL;
		return nd_err__set(e, r, "internal", "cannot read the sandbox's children");
	}
	return 0;
}

struct list_ctx {
	struct nucleusd *nd;
	json_t *arr;
	unsigned limit;	 /* 0: no limit */
	bool more;	 /* a row past the limit came */
	int64_t last_us; /* created_us and id of the last row in arr */
	char last_id[32];
};

static int list_row(sqlite3_stmt *st, void *arg)
{
	struct list_ctx *c = arg;
	struct sb_row row;
	int r;

	if (c->limit && json_array_size(c->arr) == c->limit) {
		c->more = true; /* the statement's LIMIT is one more: this is the last row */
		return 0;
	}
	r = row_read(c->nd, st, &row);
	if (r < 0)
		return r;
	c->last_us = row.created_us;
	snprintf(c->last_id, sizeof(c->last_id), "%s", row.id);
	r = json_array_append_new(c->arr, sb_row__json(&row)) < 0 ? -ENOMEM : 0;
	sb_row__clear(&row);
	return r;
}

/*
 * A cursor is the (created_us, id) of a page's last sandbox, as "US.ID": the list's
 * order, so the next page starts right after it whatever was made since.
 */
static int cursor_parse(const char *s, int64_t *us, const char **id)
{
	char *end;
	long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end != '.' || strlen(end + 1) != 19 || strncmp(end + 1, "sb-", 3) ||
	    strspn(end + 4, "0123456789abcdef") != 16)
		return -EINVAL;
	*us = v;
	*id = end + 1;
	return 0;
}

/*
 * Four statements, each in the order of its index (migrations 6 and 7): the live
 * sandboxes from a partial index of them, every sandbox from sandboxes_created, and
 * the same two of one owner from the owner's indexes; a page starts after its cursor,
 * a search of that index. One statement with "?1 OR state != 'stopped'" scanned and
 * sorted the whole table.
 */
int nucleusd__sandbox_list(struct nucleusd *nd, const struct nd_caller *who,
			   const struct nd_list_opts *o, json_t **ret, char **next,
			   struct nd_err *e)
{
#define LIST_PAGE " AND (s.created_us, s.id) > (?1, ?2) ORDER BY s.created_us, s.id LIMIT ?3"
	static const char every[] = "SELECT " ROW_COLS ROW_FROM " WHERE 1" LIST_PAGE;
	static const char live[] =
		"SELECT " ROW_COLS ROW_FROM " WHERE s.state != 'stopped'" LIST_PAGE;
	static const char every_own[] =
		"SELECT " ROW_COLS ROW_FROM " WHERE s.owner_uid = ?4" LIST_PAGE;
	static const char live_own[] = "SELECT " ROW_COLS ROW_FROM
				       " WHERE s.owner_uid = ?4 AND s.state != 'stopped'" LIST_PAGE;
#undef LIST_PAGE
	static const char *const sql[2][2] = {{live, every}, {live_own, every_own}};
	struct list_ctx c = {nd, NULL, o->limit, false, INT64_MIN, ""};
	bool own = who && !o->all_owners;
	sqlite3_stmt *st = NULL;
	const char *after_id = "";
	int r, rc;

	*next = NULL;
	if (o->all_owners && !nd_caller__sees_all(who))
		return nd_err__set(e, -EACCES, "forbidden",
				   "only an admin lists every owner's sandboxes (all_owners)");
	if (o->cursor && cursor_parse(o->cursor, &c.last_us, &after_id) < 0)
		return nd_err__set(e, -EINVAL, "bad_value", "cursor: not one a list returned");
	c.arr = json_array();
	if (!c.arr)
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	r = store__stmt(nd->store, sql[own][o->all], &st);
	if (r < 0)
		goto fail;
	rc = sqlite3_bind_int64(st, 1, c.last_us);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, after_id, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, o->limit ? (sqlite3_int64)o->limit + 1 : -1);
	if (rc == SQLITE_OK && own)
		rc = sqlite3_bind_int64(st, 4, (sqlite3_int64)who->uid);
	r = rc == SQLITE_OK ? store__rows(st, list_row, &c) : store__errno(rc);
	if (r < 0)
		goto fail;
	store__stmt_done(st);
	if (c.more && asprintf(next, "%" PRId64 ".%s", c.last_us, c.last_id) < 0) {
		*next = NULL;
		r = -ENOMEM;
		goto fail_done;
	}
	*ret = c.arr;
	return 0;
fail:
	store__stmt_done(st);
fail_done:
	json_decref(c.arr);
	return nd_err__set(e, r, "internal", "cannot list the sandboxes: %s", strerror(-r));
}

/* ---- lifecycle ---- */

/*
 * A parent that ended (stopped, failed) ends its children, and they theirs: each running
 * or paused one is stopped, one still booting fails (its boot then stops its VM).
 */
static void end_children(struct nucleusd *nd, const char *id)
{
	char reason[64];
	json_t *arr = NULL, *ch;
	size_t i;

	if (nd__children(nd, id, true, &arr) < 0)
		return; /* logged by nobody: the next stop of the parent tries again */
	snprintf(reason, sizeof(reason), "its parent %s ended", id);
	json_array_foreach(arr, i, ch)
	{
		const char *cid = json_string_value(json_object_get(ch, "id"));

		if (strcmp(json_string_value(json_object_get(ch, "state")), "creating") == 0)
			nucleusd__sandbox_failed(nd, cid, reason);
		else
			nd__stop_for(nd, cid, reason);
	}
	json_decref(arr);
}

int nd__lifecycle(struct nucleusd *nd, const struct nd_caller *who, const char *ref, nd_be_op op,
		  const struct nd_lifecycle *l, const char *reason, json_t **ret, struct nd_err *e)
{
	int64_t actor_uid = who ? (int64_t)who->uid : -1;
	struct nd_sandbox_info info;
	struct sb_row row;
	struct transition t = {0};
	int r;

	r = sb_row__load(nd, who, ref, &row, e);
	if (r < 0)
		return r;
	if (!state_in(row.state, l->from_mask)) {
		r = nd_err__set(e, -EBUSY, "wrong_state", "cannot %s sandbox %s: it is %s", l->verb,
				row.id, row.state);
		goto out;
	}
	if (l->gate) {
		r = l->gate(nd, &row, actor_uid, e);
		if (r < 0)
			goto out;
	}
	sb_row__info(&row, &info);
	if (op) {
		r = op(nd->be->ctx, &info, e);
		if (r < 0 && !(l->tolerate_backend_error && strcmp(row.state, "failed") == 0)) {
			if (e && !e->code[0])
				nd_err__set(e, r, "backend_error", "cannot %s sandbox %s: %s",
					    l->verb, row.id, strerror(-r));
			goto out;
		}
	}
	t = (struct transition){.nd = nd,
				.id = row.id,
				.from_mask = l->from_mask,
				.to = l->to,
				.kind = l->kind,
				.actor_uid = actor_uid,
				.boot_ms = -1,
				.reason = reason};
	r = nd__transition(&t, e);
	if (r == 0 && strcmp(l->to, "stopped") == 0)
		end_children(nd, row.id);
	if (r == 0 && ret)
		r = nd__row_reply(nd, NULL, row.id, ret, e);
out:
	sb_row__clear(&row);
	return r;
}

int nd__pause_for(struct nucleusd *nd, const char *id, const char *reason)
{
	static const struct nd_lifecycle l = {SB_RUNNING, "paused", "sandbox.pause", "pause"};

	return nd__lifecycle(nd, NULL, id, nd->be->pause, &l, reason, NULL, NULL);
}

int nd__stop_for(struct nucleusd *nd, const char *id, const char *reason)
{
	static const struct nd_lifecycle l = {SB_RUNNING | SB_PAUSED, "stopped", "sandbox.stop",
					      "stop"};

	return nd__lifecycle(nd, NULL, id, nd->be->stop, &l, reason, NULL, NULL);
}

void nucleusd__sandbox_failed(struct nucleusd *nd, const char *id, const char *reason)
{
	struct transition t = {.nd = nd,
			       .id = id,
			       .from_mask = SB_CREATING | SB_RUNNING | SB_PAUSED,
			       .to = "failed",
			       .kind = "sandbox.failed",
			       .actor_uid = -1,
			       .boot_ms = -1,
			       .reason = reason ? reason : "unknown"};

	if (nd__transition(&t, NULL) == 0) {
		nd->m.failures++;
		end_children(nd, id);
	}
}
