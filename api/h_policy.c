// SPDX-License-Identifier: Apache-2.0
/*
 * The policy of a sandbox (docs/api.md): GET /v1/sandboxes/{id}/policy, POST
 * .../policy/narrow {"policy"} and .../policy/widen {"policy", "approval"?}.
 */
#include <errno.h>

#include "api/api-internal.h"

static void reply(struct api_req *r, int rc, const struct nd_err *e, json_t *o, json_t *extra)
{
	if (rc < 0)
		api__reply_nd_error(r, rc, e, extra);
	else
		api__reply_json(r, 200, o);
	json_decref(o);
	json_decref(extra);
}

void api__h_policy_show(struct api_req *r)
{
	struct nd_err e = {0};
	json_t *o = NULL;
	int rc;

	if (!api__req_body(r, NULL, false))
		return;
	rc = nucleusd__policy_show(r->srv->nd, &r->who, r->segs[2], &o, &e);
	reply(r, rc, &e, o, NULL);
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
	reply(r, rc, &e, o, NULL);
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
	reply(r, rc, &e, o, denial);
}
