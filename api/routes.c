// SPDX-License-Identifier: Apache-2.0
/* The REST routes: path segments ("*" is any one segment) and a handler per method. */
#include "api/api-internal.h"

const struct api_route api__routes[] = {
	{{"v1", "health"}, .get = api__h_health},
	{{"v1", "metrics"}, .get = api__h_metrics},
	{{"v1", "sandboxes"}, .get = api__h_list, .post = api__h_create},
	{{"v1", "sandboxes", "*"}, .get = api__h_get, .del = api__h_delete},
	{{"v1", "sandboxes", "*", "pause"}, .post = api__h_pause},
	{{"v1", "sandboxes", "*", "resume"}, .post = api__h_resume},
	{{"v1", "sandboxes", "*", "tools", "*"}, .post = api__h_tool},
	{{"v1", "sandboxes", "*", "approvals"}, .post = api__h_approve},
	{{"v1", "sandboxes", "*", "approvals", "refuse"}, .post = api__h_approval_refuse},
	{{"v1", "sandboxes", "*", "audit"}, .get = api__h_audit},
	{{"v1", "sandboxes", "*", "audit", "verify"}, .get = api__h_audit_verify},
	{{"v1", "sandboxes", "*", "usage"}, .post = api__h_usage},
	{{"v1", "sandboxes", "*", "budget"}, .get = api__h_budget},
	{{"v1", "sandboxes", "*", "policy"}, .get = api__h_policy_show},
	{{"v1", "sandboxes", "*", "policy", "narrow"}, .post = api__h_policy_narrow},
	{{"v1", "sandboxes", "*", "policy", "widen"}, .post = api__h_policy_widen},
	{{"v1", "audit", "verify"}, .get = api__h_audit_verify},
	{{"v1", "policy", "check"}, .post = api__h_policy_check},
	{{"v1", "db", "check"}, .post = api__h_db_check},
	{{"v1", "policy", "explain"}, .post = api__h_policy_explain},
};

const size_t api__nroutes = sizeof(api__routes) / sizeof(api__routes[0]);
