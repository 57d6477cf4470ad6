// SPDX-License-Identifier: Apache-2.0
/* The strict request validator: every violation is caught and named. */
#include <errno.h>
#include <string.h>
#include <criterion/criterion.h>

#include "api/api.h"

static int check(const char *text, struct api_verr *e)
{
	json_t *v = json_loads(text, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);
	int r;

	cr_assert_not_null(v, "test JSON: %s", text);
	memset(e, 0, sizeof(*e));
	r = api__validate(v, api__create_spec, e);
	json_decref(v);
	return r;
}

#define OK_BASE "\"profile\": \"fake-open\", \"vcpus\": 2, \"memory_mib\": 256"

Test(validate, a_full_valid_request_passes)
{
	struct api_verr e;

	cr_assert_eq(check("{" OK_BASE ", \"name\": \"web-1\", \"image\": \"img\", "
			   "\"workspace\": {\"size_mib\": 64, \"persist\": false}, "
			   "\"budget\": {\"tokens\": 10, \"usd\": \"0.50\"}, \"ttl_seconds\": 60, "
			   "\"env\": {\"A\": \"b\"}}",
			   &e),
		     0, "%s", e.msg);
}

struct vcase {
	const char *json, *code, *field;
};

Test(validate, violations_are_named)
{
	static const struct vcase cases[] = {
		{"{" OK_BASE ", \"extra\": 1}", "unknown_field", "extra"},
		{"{\"profile\": \"fake-open\", \"vcpus\": 2}", "missing_field", "memory_mib"},
		{"{\"profile\": \"fake-open\", \"vcpus\": 2.5, \"memory_mib\": 256}", "wrong_type",
		 "vcpus"},
		{"{\"profile\": \"fake-open\", \"vcpus\": true, \"memory_mib\": 256}", "wrong_type",
		 "vcpus"},
		{"{\"profile\": \"fake-open\", \"vcpus\": 65, \"memory_mib\": 256}", "out_of_range",
		 "vcpus"},
		{"{" OK_BASE ", \"name\": \"\"}", "out_of_range", "name"},
		{"{" OK_BASE ", \"name\": \"-x\"}", "bad_value", "name"},
		{"{" OK_BASE ", \"name\": \"a\\u0000b\"}", "bad_value", "name"},
		{"{" OK_BASE ", \"workspace\": {\"size_mib\": 1}}", "missing_field",
		 "workspace.persist"},
		{"{" OK_BASE ", \"workspace\": {\"size_mib\": \"1\", \"persist\": true}}",
		 "wrong_type", "workspace.size_mib"},
		/* budget's keys are checked by nucleusd (budget__limits_parse), its type here */
		{"{" OK_BASE ", \"budget\": [1]}", "wrong_type", "budget"},
		{"{" OK_BASE ", \"env\": {\"A\": [\"b\"]}}", "wrong_type", "env.A"},
		{"{" OK_BASE ", \"policy\": []}", "wrong_type", "policy"},
	};
	struct api_verr e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(check(cases[i].json, &e), -EINVAL, "case %zu passed", i);
		cr_assert_str_eq(e.code, cases[i].code, "case %zu: %s", i, e.msg);
		cr_assert_eq(strncmp(e.msg, cases[i].field, strlen(cases[i].field)), 0,
			     "case %zu: '%s' does not start with '%s'", i, e.msg, cases[i].field);
	}
}

Test(validate, the_body_must_be_an_object)
{
	struct api_verr e;

	cr_assert_eq(check("[]", &e), -EINVAL);
	cr_assert_str_eq(e.code, "wrong_type");
	cr_assert_eq(check("\"x\"", &e), -EINVAL);
}

Test(validate, status_mapping)
{
	cr_assert_eq(api__status(-EINVAL), 400);
	cr_assert_eq(api__status(-ENOENT), 404);
	cr_assert_eq(api__status(-EBUSY), 409);
	cr_assert_eq(api__status(-EACCES), 403);
	cr_assert_eq(api__status(-EDQUOT), 402);
	cr_assert_eq(api__status(-EAGAIN), 503);
	cr_assert_eq(api__status(-ENOMEM), 500);
}
