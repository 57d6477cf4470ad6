// SPDX-License-Identifier: Apache-2.0
/*
 * A strict JSON request validator: every field has a spec (name, type, required,
 * bounds); unknown fields, wrong types and missing fields are always caught and named.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "guest/guest.h"

static const struct api_field workspace_spec[] = {
	{"size_mib", API_INT, true, 1, 1048576},
	{"persist", API_BOOL, true},
	{NULL},
};

const struct api_field api__create_spec[] = {
	{"name", API_STRING, false, 1, 63, .ident = true},
	{"profile", API_STRING, false, 1, 64, .ident = true},
	{"policy", API_OBJECT, false},
	{"vcpus", API_INT, true, 1, 64},
	{"memory_mib", API_INT, true, 16, 1048576},
	{"image", API_STRING, false, 1, 256},
	{"workspace", API_OBJECT, false, .fields = workspace_spec},
	/* Checked by nucleusd with budget__limits_parse (its messages name the key). */
	{"budget", API_OBJECT, false},
	{"ttl_seconds", API_INT, false, 1, 30 * 86400},
	{"env", API_STRMAP, false, 0, 256, .env = true},
	/* A child of this sandbox (id or name; docs/api.md "Delegation"). */
	{"parent", API_STRING, false, 1, 64, .ident = true},
	{NULL},
};

const struct api_field api__approval_spec[] = {
	{"nonce", API_STRING, true, 32, 32},
	{"approval", API_OBJECT, true},
	{NULL},
};

const struct api_field api__refusal_spec[] = {
	{"nonce", API_STRING, true, 32, 32},
	{NULL},
};

const struct api_field api__usage_spec[] = {
	{"key", API_STRING, true, 1, 128},
	{"model", API_STRING, false, 1, 128},
	{"input_tokens", API_INT, true, 0, INT64_C(1000000000000000)},
	{"output_tokens", API_INT, true, 0, INT64_C(1000000000000000)},
	{NULL},
};

const struct api_field api__policy_check_spec[] = {
	{"policy", API_OBJECT, true},
	{NULL},
};

const struct api_field api__policy_widen_spec[] = {
	{"policy", API_OBJECT, true},
	{"approval", API_OBJECT, false},
	{NULL},
};

/*
 * One of profile and policy: nucleusd says which is missing or both. A profile name that
 * create would refuse is simply not in the table (unknown_profile).
 */
const struct api_field api__policy_explain_spec[] = {
	{"profile", API_STRING, false, 1, 64},
	{"policy", API_OBJECT, false},
	{"call", API_OBJECT, true},
	{NULL},
};

const struct api_field api__tool_spec[] = {
	{"args", API_OBJECT, false},
	{"stream", API_BOOL, false},
	{NULL},
};

static const char *type_name(enum api_type t)
{
	switch (t) {
	case API_STRING:
		return "a string";
	case API_INT:
		return "an integer";
	case API_NUMBER:
		return "a number";
	case API_BOOL:
		return "a boolean";
	case API_OBJECT:
		return "an object";
	case API_ARRAY:
		return "an array";
	case API_STRMAP:
		return "an object of strings";
	}
	return "?";
}

static int fail(struct api_verr *err, const char *code, const char *path, const char *name,
		const char *what)
{
	if (err) {
		snprintf(err->code, sizeof(err->code), "%s", code);
		/* Truncation is fine: the message stays one readable line. */
		if (snprintf(err->msg, sizeof(err->msg), "%s%s%s: %s", path, *path ? "." : "", name,
			     what) >= (int)sizeof(err->msg))
			err->msg[sizeof(err->msg) - 2] = '~';
	}
	return -EINVAL;
}

static bool type_ok(json_t *v, enum api_type t)
{
	switch (t) {
	case API_STRING:
		return json_is_string(v);
	case API_INT:
		return json_is_integer(v);
	case API_NUMBER:
		return json_is_number(v);
	case API_BOOL:
		return json_is_boolean(v);
	case API_OBJECT:
	case API_STRMAP:
		return json_is_object(v);
	case API_ARRAY:
		return json_is_array(v);
	}
	return false;
}

static bool is_ident(const char *s)
{
	if (!isalnum((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
			return false;
	return true;
}

static int validate_at(json_t *obj, const struct api_field *spec, const char *path,
		       struct api_verr *err);

static int check_bounds(json_t *v, const struct api_field *f, const char *path,
			struct api_verr *err)
{
	char what[96];
	double n;

	if (f->min >= f->max)
		return 0;
	switch (f->type) {
	case API_INT:
		n = (double)json_integer_value(v);
		break;
	case API_NUMBER:
		n = json_number_value(v);
		break;
	case API_STRING:
		n = (double)json_string_length(v);
		break;
	case API_ARRAY:
		n = (double)json_array_size(v);
		break;
	case API_STRMAP:
	case API_OBJECT:
		n = (double)json_object_size(v);
		break;
	default:
		return 0;
	}
	if (n >= (double)f->min && n <= (double)f->max)
		return 0;
	snprintf(what, sizeof(what), "%s must be between %lld and %lld",
		 f->type == API_STRING	 ? "length"
		 : f->type >= API_OBJECT ? "count"
					 : "value",
		 (long long)f->min, (long long)f->max);
	return fail(err, "out_of_range", path, f->name, what);
}

static int check_field(json_t *v, const struct api_field *f, const char *path, struct api_verr *err)
{
	char what[64], sub[256];
	const char *key;
	json_t *x;
	int r;

	if (!type_ok(v, f->type)) {
		snprintf(what, sizeof(what), "must be %s", type_name(f->type));
		return fail(err, "wrong_type", path, f->name, what);
	}
	r = check_bounds(v, f, path, err);
	if (r < 0)
		return r;
	if (f->type == API_STRING && f->ident && !is_ident(json_string_value(v)))
		return fail(err, "bad_value", path, f->name,
			    "must be letters, digits, '_', '.', '-' (starting alphanumeric)");
	if (f->type == API_STRING && strlen(json_string_value(v)) != json_string_length(v))
		return fail(err, "bad_value", path, f->name, "must not contain NUL");
	if (snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", f->name) >=
	    (int)sizeof(sub))
		return fail(err, "bad_value", "", f->name, "nested too deep");
	if (f->type == API_STRMAP) {
		size_t bytes = 0;

		json_object_foreach(v, key, x)
		{
			if (!json_is_string(x))
				return fail(err, "wrong_type", sub, key, "must be a string");
			if (f->env && !guest_env__name_ok(key, strlen(key)))
				return fail(err, "bad_value", sub, key,
					    "is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
			if (f->env && (strlen(json_string_value(x)) != json_string_length(x) ||
				       json_string_length(x) > GUEST_ENV_VALUE_MAX))
				return fail(err, "bad_value", sub, key,
					    "must be at most 32768 bytes, without NUL");
			bytes += strlen(key) + 1 + json_string_length(x);
		}
		if (f->env && bytes > GUEST_ENV_TOTAL_MAX / 2)
			return fail(err, "out_of_range", path, f->name,
				    "is more than 131072 bytes in all");
	}
	if (f->type == API_OBJECT && f->fields)
		return validate_at(v, f->fields, sub, err);
	return 0;
}

static int validate_at(json_t *obj, const struct api_field *spec, const char *path,
		       struct api_verr *err)
{
	const struct api_field *f;
	const char *key;
	json_t *v;
	int r;

	json_object_foreach(obj, key, v)
	{
		for (f = spec; f->name && strcmp(f->name, key) != 0; f++)
			;
		if (!f->name)
			return fail(err, "unknown_field", path, key, "unknown field");
		r = check_field(v, f, path, err);
		if (r < 0)
			return r;
	}
	for (f = spec; f->name; f++)
		if (f->required && !json_object_get(obj, f->name))
			return fail(err, "missing_field", path, f->name, "required field missing");
	return 0;
}

int api__validate(json_t *v, const struct api_field *spec, struct api_verr *err)
{
	if (!json_is_object(v)) {
		if (err) {
			snprintf(err->code, sizeof(err->code), "wrong_type");
			snprintf(err->msg, sizeof(err->msg), "request body must be a JSON object");
		}
		return -EINVAL;
	}
	return validate_at(v, spec, "", err);
}
