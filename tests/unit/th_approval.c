// SPDX-License-Identifier: Apache-2.0
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <criterion/criterion.h>
#include <sodium.h>

#include "policy/policy.h"
#include "tests/unit/th_approval.h"

static const char *field(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	cr_assert_not_null(s, "approval_request without %s", key);
	return s;
}

char *th_approval_body(json_t *request, const char *call_json, const unsigned char sk[64])
{
	const char *nonce = field(request, "nonce"), *session = field(request, "session");
	struct policy_call_owned *pcall = NULL;
	struct policy_approval a = {0};
	struct policy_error pe;
	char *aj = NULL, *body = NULL;

	cr_assert_eq(policy__call_parse(call_json, &pcall, &pe), 0, "%s", pe.msg);
	cr_assert_eq(sodium_hex2bin(a.session_id, sizeof(a.session_id), session, strlen(session),
				    NULL, NULL, NULL),
		     0);
	cr_assert_eq(
		sodium_hex2bin(a.nonce, sizeof(a.nonce), nonce, strlen(nonce), NULL, NULL, NULL),
		0);
	a.op = (uint8_t)policy__call_get(pcall)->op;
	cr_assert_eq(policy__call_digest(policy__call_get(pcall), a.args_digest), 0);
	a.expires = (int64_t)time(NULL) + 120;
	policy__call_free(pcall);
	cr_assert_eq(policy__approval_sign(&a, sk), 0);
	cr_assert_eq(policy__approval_to_json(&a, &aj), 0);
	cr_assert_gt(asprintf(&body, "{\"nonce\": \"%s\", \"approval\": %s}", nonce, aj), 0);
	free(aj);
	return body;
}
