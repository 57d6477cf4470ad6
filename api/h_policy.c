// SPDX-License-Identifier: Apache-2.0
/*
 * The policy of a sandbox (docs/api.md): GET /v1/sandboxes/{id}/policy, POST
 * .../policy/narrow {"policy"} and .../policy/widen {"policy", "approval"?}.
 */
#include "api/api-internal.h"

void api__h_policy_show(struct api_req *r)
{
	struct nd_err e = {0};
	json_t *o = NULL;
	int rc;

	if (!api__req_body(r, NULL, false))
		return;
	rc = nucleusd__policy_show(r->srv->nd, &r->who, r->segs[2], &o, &e);
	api__reply_result(r, rc, &e, o, NULL);
}

void api__h_policy_narrow(struct api_req *r)
{
	struct nd_err e = {0};
	json_t *o = NULL;
	int rc;

	if (!api__req_body(r, api__policy_check_spec, true))
		return;
	rc = nucleusd__policy_narrow(r->srv->nd, &r->who, r->segs[2],
				     json_object_get(r->body, "policy"), &o, &e);
	api__reply_result(r, rc, &e, o, NULL);
}

void api__h_policy_widen(struct api_req *r)
{
	struct nd_err e = {0};
	json_t *o = NULL, *denial = NULL;
	int rc;

	if (!api__req_body(r, api__policy_widen_spec, true))
		return;
	rc = nucleusd__policy_widen(r->srv->nd, &r->who, r->segs[2],
				    json_object_get(r->body, "policy"),
				    json_object_get(r->body, "approval"), &o, &denial, &e);
	api__reply_result(r, rc, &e, o, denial);
}
