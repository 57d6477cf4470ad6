/* SPDX-License-Identifier: Apache-2.0 */
/* Reading GET /v1/sandboxes/{id}/budget replies in tests (unit and VM suites alike). */
#ifndef NUCLEUS_TESTS_TH_BUDGET_H
#define NUCLEUS_TESTS_TH_BUDGET_H

#include <jansson.h>

/* budgets.@kind.@field of a budget reply: an integer, a boolean as 0/1, anything else -1. */
static inline long long th_budget_field(const json_t *reply, const char *kind, const char *field)
{
	const json_t *v =
		json_object_get(json_object_get(json_object_get(reply, "budgets"), kind), field);

	if (json_is_integer(v))
		return (long long)json_integer_value(v);
	if (json_is_boolean(v))
		return json_is_true(v);
	return -1;
}

#endif
