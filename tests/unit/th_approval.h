/* SPDX-License-Identifier: Apache-2.0 */
/* Signing approvals as an approver would, for tests that drive the daemon. */
#ifndef NUCLEUS_TESTS_TH_APPROVAL_H
#define NUCLEUS_TESTS_TH_APPROVAL_H

#include <jansson.h>

/*
 * The approval of @request (a 403's approval_request: its session and nonce) for the
 * engine call @call_json (the op and its arguments, as decided), signed with @sk.
 * Returns the body to POST to /v1/sandboxes/{id}/approvals (free it). Asserts.
 */
char *th_approval_body(json_t *request, const char *call_json, const unsigned char sk[64]);

#endif
