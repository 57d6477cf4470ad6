/* SPDX-License-Identifier: Apache-2.0 */
/*
 * env.c - the environment of a `run`: the sandbox's create-time env with the call's env
 * on top, checked against the agent's limits (guest/guest.h). Used by every backend.
 * And the one redaction of a create request's env values (they may be secrets): what
 * the audit log, the replies and a stopped sandbox's stored spec keep is a digest.
 */
#include <errno.h>
#include <string.h>
#include <sodium.h>

#include "guest/guest.h"
#include "nucleusd/nucleusd.h"

static int env_check(json_t *env, const char *what, size_t *count, size_t *bytes, struct nd_err *e)
{
	const char *k;
	json_t *x;

	if (!env)
		return 0;
	if (!json_is_object(env))
		return nd_err__set(e, -EINVAL, "bad_args", "%s must be an object", what);
	json_object_foreach(env, k, x)
	{
		if (!guest_env__name_ok(k, strlen(k)))
			return nd_err__set(
				e, -EINVAL, "bad_args",
				"%s: '%.64s' is not a variable name ([A-Za-z_][A-Za-z0-9_]*, "
				"at most %u bytes)",
				what, k, GUEST_ENV_NAME_MAX);
		if (!json_is_string(x) || strlen(json_string_value(x)) != json_string_length(x) ||
		    json_string_length(x) > GUEST_ENV_VALUE_MAX)
			return nd_err__set(
				e, -EINVAL, "bad_args",
				"%s: %s must be a string without NUL of at most %u bytes", what, k,
				GUEST_ENV_VALUE_MAX);
		(*count)++;
		*bytes += strlen(k) + 1 + json_string_length(x);
	}
	return 0;
}

int nd_env__merge(json_t *spec, json_t *args, json_t **ret, struct nd_err *e)
{
	json_t *base = json_object_get(spec, "env"), *call = json_object_get(args, "env"), *m;
	size_t count = 0, bytes = 0;
	int r;

	/* spec.env was checked at create; the merged result is counted below. */
	r = env_check(call, "run: 'env'", &count, &bytes, e);
	if (r < 0)
		return r;
	if (!json_object_size(base) && !call) {
		*ret = NULL; /* the agent's default environment */
		return 0;
	}
	m = json_object_size(base) ? json_deep_copy(base) : json_object();
	if (!m || (call && json_object_update(m, call) < 0)) {
		json_decref(m);
		return nd_err__set(e, -ENOMEM, "internal", "out of memory");
	}
	count = bytes = 0;
	r = env_check(m, "env", &count, &bytes, e);
	if (r == 0 && (count + 1 > GUEST_ENV_MAX || bytes + 64 > GUEST_ENV_TOTAL_MAX))
		r = nd_err__set(e, -E2BIG, "bad_args",
				"run: the environment (sandbox env + call env) has %zu variables "
				"and %zu bytes; the limits are %u and %u",
				count, bytes, GUEST_ENV_MAX - 1, GUEST_ENV_TOTAL_MAX - 64);
	if (r < 0) {
		json_decref(m);
		return r;
	}
	*ret = m;
	return 0;
}

#define DIGEST_PREFIX "sha256:"
#define DIGEST_LEN    (sizeof(DIGEST_PREFIX) - 1 + 2 * crypto_hash_sha256_BYTES)

/* "sha256:" and 64 lower-case hex digits: a value redacted already. */
static bool redacted(json_t *value)
{
	const char *v = json_string_value(value);

	return v && json_string_length(value) == DIGEST_LEN &&
	       strncmp(v, DIGEST_PREFIX, sizeof(DIGEST_PREFIX) - 1) == 0 &&
	       strspn(v + sizeof(DIGEST_PREFIX) - 1, "0123456789abcdef") ==
		       2 * crypto_hash_sha256_BYTES;
}

static json_t *digest(json_t *value)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char text[DIGEST_LEN + 1] = DIGEST_PREFIX;

	/* env values are strings (checked at create); anything else is digested as "" */
	crypto_hash_sha256(h, (const unsigned char *)(json_string_value(value) ?: ""),
			   json_string_length(value));
	sodium_bin2hex(text + sizeof(DIGEST_PREFIX) - 1, sizeof(text) - sizeof(DIGEST_PREFIX) + 1,
		       h, sizeof(h));
	return json_string(text);
}

json_t *nd_env__redact(json_t *spec)
{
	json_t *env = json_object_get(spec, "env"), *out, *red, *v;
	const char *k;
	bool plain = false;

	json_object_foreach(env, k, v)
	{
		plain = plain || !redacted(v);
	}
	if (!plain)
		return json_incref(spec);
	out = json_copy(spec); /* shallow: only "env" is replaced */
	red = json_object();
	if (!out || !red || json_object_set_new(out, "env", red) < 0) {
		json_decref(out);
		return NULL;
	}
	json_object_foreach(env, k, v)
	{
		if (json_object_set_new(red, k, redacted(v) ? json_incref(v) : digest(v)) < 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}
