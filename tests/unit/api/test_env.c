// SPDX-License-Identifier: Apache-2.0
/*
 * spec.env: the create request's "env" reaches every `run` of the sandbox (the fake
 * backend's run result shows the environment a real run gets), a call's env goes on
 * top, and bad names, sizes and counts are 400 at create (nothing recorded) or at the
 * call. The values may be secrets: the audit log and every reply hold their digests
 * only, and the stored spec loses them when the sandbox stops.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <criterion/criterion.h>
#include <sodium.h>

#include "tests/unit/api/daemon.h"
#include "tests/unit/nucleusd/helpers.h"
#include "tests/unit/th_file.h"

THD_SUITE(env);

#define SPEC(env) "{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": 128" env "}"

/* POST tools/run with @args (JSON text); returns the response. */
static struct api_response run(const char *id, const char *args)
{
	char path[128], body[4096];

	snprintf(path, sizeof(path), "/v1/sandboxes/%s/tools/run", id);
	snprintf(body, sizeof(body), "{\"args\": %s}", args);
	return thd_call(&d, "POST", path, body);
}

static void expect_env(const char *id, const char *args, const char *want)
{
	struct api_response r = run(id, args);
	json_t *env, *expect = want ? json_loads(want, 0, NULL) : NULL;

	cr_assert_eq(r.status, 200, "%s: %d %s", args, r.status, r.body);
	env = json_object_get(json_object_get(r.json, "result"), "env");
	if (!want)
		cr_assert_null(env, "%s: an env where none was given: %s", args, r.body);
	else
		cr_assert(json_equal(env, expect), "%s: env %s, want %s", args, r.body, want);
	json_decref(expect);
	api_response__clear(&r);
}

Test(env, the_sandbox_env_reaches_every_run)
{
	char id[32];

	snprintf(id, sizeof(id), "%s",
		 thd_create(&d, SPEC(", \"env\": {\"FOO\": \"bar baz\", \"_x1\": \"\"}")));
	expect_env(id, "{\"argv\": [\"env\"]}", "{\"FOO\": \"bar baz\", \"_x1\": \"\"}");
	/* again: every run, not the first one only */
	expect_env(id, "{\"argv\": [\"env\"]}", "{\"FOO\": \"bar baz\", \"_x1\": \"\"}");
	/* the call's env goes on top */
	expect_env(id, "{\"argv\": [\"env\"], \"env\": {\"FOO\": \"over\", \"Z\": \"1\"}}",
		   "{\"FOO\": \"over\", \"_x1\": \"\", \"Z\": \"1\"}");
	/* no env anywhere: none is sent (the agent's default environment) */
	snprintf(id, sizeof(id), "%s", thd_create(&d, SPEC("")));
	expect_env(id, "{\"argv\": [\"env\"]}", NULL);
	expect_env(id, "{\"argv\": [\"env\"], \"env\": {\"A\": \"b\"}}", "{\"A\": \"b\"}");
	thd_finish(&d);
}

static void bad_create(const char *body, const char *code)
{
	struct api_response r = thd_call(&d, "POST", "/v1/sandboxes", body);

	cr_assert_eq(r.status, 400, "%.200s: %d %s", body, r.status, r.body);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "error")), code, "%.200s: %s",
			 body, r.body);
	api_response__clear(&r);
}

Test(env, bad_names_sizes_and_counts_are_400_at_create)
{
	static const char *const names[] = {"1X", "A-B", "", "A B", "A=B", "\\u00e9"};
	char *before = thd_dump(&d), *after, body[512], *big;
	size_t n;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(body, sizeof(body), SPEC(", \"env\": {\"%s\": \"v\"}"), names[i]);
		bad_create(body, "bad_value");
	}
	bad_create(SPEC(", \"env\": {\"A\": 1}"), "wrong_type");
	bad_create(SPEC(", \"env\": [\"A=b\"]"), "wrong_type");
	/* a value one byte over 32 KiB */
	n = (32u << 10) + 1;
	big = malloc(n + 256);
	cr_assert_not_null(big);
	n = (size_t)sprintf(big, "%s", SPEC(", \"env\": {\"A\": \""));
	n -= 1; /* drop SPEC's closing brace */
	memset(big + n, 'v', (32u << 10) + 1);
	n += (32u << 10) + 1;
	strcpy(big + n, "\"}}");
	bad_create(big, "bad_value");
	free(big);
	/* 257 variables */
	big = malloc(257 * 16 + 256);
	cr_assert_not_null(big);
	n = (size_t)sprintf(big, "%s",
			    "{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": "
			    "128, \"env\": {");
	for (int i = 0; i < 257; i++)
		n += (size_t)sprintf(big + n, "%s\"V%d\": \"x\"", i ? ", " : "", i);
	strcpy(big + n, "}}");
	bad_create(big, "out_of_range");
	free(big);
	after = thd_dump(&d);
	thd_assert_same_db(before, after, "a rejected create changed the database");
	thd_finish(&d);
}

Test(env, a_bad_call_env_is_400)
{
	char id[32];
	struct api_response r;

	snprintf(id, sizeof(id), "%s", thd_create(&d, SPEC(", \"env\": {\"FOO\": \"bar\"}")));
	r = run(id, "{\"argv\": [\"env\"], \"env\": {\"9lives\": \"x\"}}");
	cr_assert_eq(r.status, 400, "%d %s", r.status, r.body);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "error")), "bad_args", "%s",
			 r.body);
	api_response__clear(&r);
	r = run(id, "{\"argv\": [\"env\"], \"env\": \"FOO=1\"}");
	cr_assert_eq(r.status, 400, "%d %s", r.status, r.body);
	api_response__clear(&r);
	thd_finish(&d);
}

#define SECRET "sk-live-0123456789-not-for-your-eyes"

/* "sha256:<hex>" of @value, computed here (static buffer). */
static const char *digest_of(const char *value)
{
	static char text[7 + 2 * crypto_hash_sha256_BYTES + 1] = "sha256:";
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, (const unsigned char *)value, strlen(value));
	sodium_bin2hex(text + 7, sizeof(text) - 7, h, sizeof(h));
	return text;
}

/* @o's spec.env: KEY is the digest of SECRET, and nothing in @text is the secret. */
static void expect_redacted(json_t *o, const char *text, const char *what)
{
	json_t *env = json_object_get(json_object_get(o, "spec"), "env");

	cr_assert_str_eq(json_string_value(json_object_get(env, "KEY")), digest_of(SECRET),
			 "%s: %s", what, text);
	cr_assert_str_eq(json_string_value(json_object_get(env, "E")), digest_of(""), "%s: %s",
			 what, text);
	cr_assert_null(strstr(text, SECRET), "%s shows the secret: %s", what, text);
}

/* The stored spec of sandbox @id has SECRET's digest and not SECRET. */
static void expect_stored_digests(const char *id)
{
	char sql[160];
	const char *spec;

	snprintf(sql, sizeof(sql), "SELECT spec FROM sandboxes WHERE id = '%s'", id);
	spec = th_query_file(d.db, sql);
	cr_assert_not_null(strstr(spec, digest_of(SECRET)), "%s", spec);
	cr_assert_null(strstr(spec, SECRET), "the stored spec keeps the secret: %s", spec);
}

Test(env, values_are_digests_in_the_audit_and_replies_and_gone_from_the_spec_at_stop)
{
	char id[32], path[160], *file;
	struct api_response r;
	struct stat st;

	r = thd_call(&d, "POST", "/v1/sandboxes",
		     SPEC(", \"env\": {\"KEY\": \"" SECRET "\", \"E\": \"\"}"));
	cr_assert_eq(r.status, 201, "%s", r.body);
	expect_redacted(r.json, r.body, "the create's reply");
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.json, "id")));
	api_response__clear(&r);
	/* while it runs, a run gets the plain value */
	expect_env(id, "{\"argv\": [\"env\"]}", "{\"KEY\": \"" SECRET "\", \"E\": \"\"}");
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	r = thd_call(&d, "GET", path, NULL);
	expect_redacted(r.json, r.body, "GET");
	api_response__clear(&r);
	r = thd_call(&d, "GET", "/v1/sandboxes", NULL);
	expect_redacted(json_array_get(thd_sandboxes(&r), 0), r.body, "the list");
	api_response__clear(&r);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/audit", id);
	r = thd_call(&d, "GET", path, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(r.json, 0), "kind")),
			 "sandbox.create");
	expect_redacted(json_object_get(json_array_get(r.json, 0), "body"), r.body,
			"the create's audit entry");
	api_response__clear(&r);
	/* stopped: the stored spec has the digests only (still the same in a GET) */
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	r = thd_call(&d, "DELETE", path, NULL);
	cr_assert_eq(r.status, 200, "%s", r.body);
	expect_redacted(r.json, r.body, "the stop's reply");
	api_response__clear(&r);
	expect_stored_digests(id);
	/* and once the daemon checkpointed and closed, no byte of the database has it */
	thd_finish(&d);
	file = th_slurp(d.db);
	cr_assert_eq(stat(d.db, &st), 0);
	cr_assert_null(memmem(file, (size_t)st.st_size, SECRET, strlen(SECRET)),
		       "nucleus.db still holds the secret");
	free(file);
}

/* A sandbox that failed to boot will not run: its stored spec keeps the digests only. */
Test(env, a_failed_sandbox_keeps_digests_only)
{
	struct api_response r;
	json_t *sb;

	r = thd_call(&d, "POST", "/v1/sandboxes",
		     SPEC(", \"image\": \"fake:fail\", \"env\": {\"KEY\": \"" SECRET "\", \"E\": \"\"}"));
	cr_assert_eq(r.status, 502, "%s", r.body);
	sb = json_object_get(r.json, "sandbox");
	cr_assert_str_eq(json_string_value(json_object_get(sb, "state")), "failed", "%s", r.body);
	expect_redacted(sb, r.body, "the failed create's reply");
	expect_stored_digests(json_string_value(json_object_get(sb, "id")));
	api_response__clear(&r);
	thd_finish(&d);
}
