// SPDX-License-Identifier: Apache-2.0
/*
 * Profile JSON -> policy. Every unknown key and every bad value is an error that names
 * its JSON path ("$.paths.read[2]: expected string"). Schema: docs/policy.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

#define PATH_LEN 128

struct field {
	const char *key;
	int (*parse)(json_t *v, const char *path, struct policy *p, struct policy_error *err);
};

static void subpath(char *out, const char *path, const char *key)
{
	snprintf(out, PATH_LEN, "%s.%s", path, key);
}

/* Walk an object, dispatching known keys and rejecting unknown ones. */
static int walk(json_t *obj, const char *path, const struct field *fields, struct policy *p,
		struct policy_error *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj)) {
		perr(err, path, "expected object");
		return -EINVAL;
	}
	json_object_foreach(obj, key, v)
	{
		const struct field *f = fields;
		char sub[PATH_LEN];
		int rc;

		while (f->key && strcmp(f->key, key) != 0)
			f++;
		subpath(sub, path, key);
		if (!f->key) {
			perr(err, sub, "unknown key");
			return -EINVAL;
		}
		rc = f->parse(v, sub, p, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int compile(const char *text, int kind, void **ret, const char **why)
{
	if (kind == SET_EGRESS)
		return erule__parse(text, (struct erule **)ret, why);
	return glob__compile(text, kind, (struct glob **)ret, why);
}

/* An allow-set: "all", "none" or an array of patterns ([] = all). deny: array only. */
static int parse_set(json_t *v, const char *path, struct pset *s, int kind, bool deny,
		     struct policy_error *err)
{
	size_t i;
	json_t *e;

	pset__clear(s);
	s->all = false;
	if (json_is_string(v) && !deny) {
		const char *t = json_string_value(v);

		if (strcmp(t, "all") == 0 || strcmp(t, "none") == 0) {
			s->all = t[0] == 'a';
			return 0;
		}
	}
	if (!json_is_array(v)) {
		perr(err, path, deny ? "expected array" : "expected array, \"all\" or \"none\"");
		return -EINVAL;
	}
	s->all = !deny && json_array_size(v) == 0;
	json_array_foreach(v, i, e)
	{
		char sub[PATH_LEN];
		const char *why = NULL;
		void *elem = NULL;
		int rc;

		snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
		if (!json_is_string(e)) {
			perr(err, sub, "expected string");
			return -EINVAL;
		}
		rc = compile(json_string_value(e), kind, &elem, &why);
		if (rc < 0) {
			perr(err, sub, "%s: \"%s\"", why, json_string_value(e));
			return rc;
		}
		rc = pset__add(s, elem);
		if (rc < 0)
			return rc;
	}
	pset__normalize(s);
	return 0;
}

#define SET_FIELD(fn, member, kind, deny)                                                          \
	static int fn(json_t *v, const char *path, struct policy *p, struct policy_error *err)     \
	{                                                                                          \
		return parse_set(v, path, &p->member, kind, deny, err);                            \
	}

SET_FIELD(f_read, read, GLOB_PATH, false)
SET_FIELD(f_write, write, GLOB_PATH, false)
SET_FIELD(f_pdeny, path_deny, GLOB_PATH, true)
SET_FIELD(f_cmd, cmd, GLOB_CMD, false)
SET_FIELD(f_cdeny, cmd_deny, GLOB_CMD, true)
SET_FIELD(f_interp, interp, GLOB_CMD, false)
SET_FIELD(f_egress, egress, SET_EGRESS, false)
SET_FIELD(f_refs, refs, GLOB_REF, false)

static int f_string(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	if (!json_is_string(v)) {
		perr(err, path, "expected string");
		return -EINVAL;
	}
	return 0;
}

static int f_name(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	if (f_string(v, path, p, err) < 0)
		return -EINVAL;
	free(p->name);
	p->name = strdup(json_string_value(v));
	return p->name ? 0 : -ENOMEM;
}

static int f_levels(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	const char *key;
	json_t *l;

	if (!json_is_object(v)) {
		perr(err, path, "expected object");
		return -EINVAL;
	}
	json_object_foreach(v, key, l)
	{
		char sub[PATH_LEN];
		int op = policy__op_from_name(key), lv;

		subpath(sub, path, key);
		if (op < 0) {
			perr(err, sub, "unknown operation");
			return -EINVAL;
		}
		lv = json_is_string(l) ? level__from_name(json_string_value(l)) : -EINVAL;
		if (lv < 0) {
			perr(err, sub, "expected \"deny\", \"ask\" or \"allow\"");
			return -EINVAL;
		}
		p->level[op] = (uint8_t)lv;
	}
	return 0;
}

static int f_paths(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	static const struct field f[] = {
		{"read", f_read}, {"write", f_write}, {"deny", f_pdeny}, {NULL, NULL}};
	return walk(v, path, f, p, err);
}

static int f_commands(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	static const struct field f[] = {
		{"allow", f_cmd}, {"deny", f_cdeny}, {"interpreters", f_interp}, {NULL, NULL}};
	return walk(v, path, f, p, err);
}

static int f_egress_obj(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	static const struct field f[] = {{"allow", f_egress}, {NULL, NULL}};
	return walk(v, path, f, p, err);
}

static int f_git(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	static const struct field f[] = {{"refs", f_refs}, {NULL, NULL}};
	return walk(v, path, f, p, err);
}

/* A non-negative integer, or the word `word` meaning "no limit". */
static int parse_limit(json_t *v, const char *path, const char *word, uint64_t max, uint64_t *out,
		       struct policy_error *err)
{
	if (json_is_string(v) && strcmp(json_string_value(v), word) == 0) {
		*out = UINT64_MAX;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) >= max) {
		perr(err, path, "expected a non-negative integer or \"%s\"", word);
		return -EINVAL;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

#define LIMIT_FIELD(fn, member)                                                                    \
	static int fn(json_t *v, const char *path, struct policy *p, struct policy_error *err)     \
	{                                                                                          \
		return parse_limit(v, path, "unlimited", UINT64_MAX, &p->member, err);             \
	}

LIMIT_FIELD(f_max_calls, max_calls)
LIMIT_FIELD(f_max_net, max_net)
LIMIT_FIELD(f_max_spawn, max_spawn)

static int f_budget(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	static const struct field f[] = {{"max_calls", f_max_calls},
					 {"max_net", f_max_net},
					 {"max_spawn", f_max_spawn},
					 {NULL, NULL}};
	return walk(v, path, f, p, err);
}

static int parse_time(json_t *v, const char *path, int64_t *out, struct policy_error *err)
{
	if (!json_is_integer(v)) {
		perr(err, path, "expected integer (seconds)");
		return -EINVAL;
	}
	*out = json_integer_value(v);
	return 0;
}

static int f_nb(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	return parse_time(v, path, &p->not_before, err);
}

static int f_na(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	return parse_time(v, path, &p->not_after, err);
}

static int f_validity(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	static const struct field f[] = {{"not_before", f_nb}, {"not_after", f_na}, {NULL, NULL}};
	return walk(v, path, f, p, err);
}

static int f_uninhabitable(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	const char *s = json_is_string(v) ? json_string_value(v) : "";

	if (strcmp(s, "deny") && strcmp(s, "ask")) {
		perr(err, path, "expected \"deny\" or \"ask\"");
		return -EINVAL;
	}
	p->uninhabitable = s[0] == 'a' ? POLICY_ASK : POLICY_DENY;
	return 0;
}

static int f_quarantine(json_t *v, const char *path, struct policy *p, struct policy_error *err)
{
	uint64_t n;
	int rc = parse_limit(v, path, "never", POLICY_NEVER, &n, err);

	if (rc < 0)
		return rc;
	if (n == 0) {
		perr(err, path, "expected a positive integer or \"never\"");
		return -EINVAL;
	}
	p->quarantine_after = n == UINT64_MAX ? POLICY_NEVER : (uint32_t)n;
	return 0;
}

static const struct field root_fields[] = {
	{"name", f_name},
	{"description", f_string},
	{"levels", f_levels},
	{"paths", f_paths},
	{"commands", f_commands},
	{"egress", f_egress_obj},
	{"git", f_git},
	{"budget", f_budget},
	{"validity", f_validity},
	{"uninhabitable", f_uninhabitable},
	{"quarantine_after", f_quarantine},
	{NULL, NULL},
};

/* Defaults: every operation denied, every allow-set `all`, uninhabitable denied. */
int policy__from_json(json_t *root, const char *path, struct policy **ret, struct policy_error *err)
{
	struct policy *p = policy__alloc();
	int rc;

	if (!p) {
		perr(err, "$", "out of memory");
		return -ENOMEM;
	}
	memset(p->level, POLICY_DENY, sizeof(p->level));
	p->uninhabitable = POLICY_DENY;
	p->quarantine_after = 3;
	rc = walk(root, path, root_fields, p, err);
	if (rc < 0) {
		policy__free(p);
		return rc;
	}
	*ret = p;
	return 0;
}

int policy__profile_parse(const char *json_text, struct policy **ret, struct policy_error *err)
{
	json_error_t je;
	json_t *root;
	int rc;

	if (!json_text) {
		perr(err, "$", "no text");
		return -EINVAL;
	}
	root = json_loads(json_text, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		perr(err, "$", "JSON syntax error at line %d column %d: %s", je.line, je.column,
		     je.text);
		return -EINVAL;
	}
	rc = policy__from_json(root, "$", ret, err);
	json_decref(root);
	return rc;
}

int policy__profile_check(const char *json_text, struct policy_error *err)
{
	struct policy *p = NULL;
	int rc = policy__profile_parse(json_text, &p, err);

	policy__free(p);
	return rc;
}
