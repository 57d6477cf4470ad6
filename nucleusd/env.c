/* SPDX-License-Identifier: Apache-2.0 */
/*
 * env.c - the environment of a `run`: the sandbox's create-time env with the call's env
 * on top, checked against the agent's limits (guest/guest.h). Used by every backend.
 */
#include <errno.h>
#include <string.h>

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
