/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the budget/ sources; not part of the module's face. */
#ifndef NUCLEUS_BUDGET_INTERNAL_H
#define NUCLEUS_BUDGET_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "budget/budget.h"

/* Writes "FIELD.KEY: message" (or "FIELD: message") into @e; returns -EINVAL. */
int budget_err__set(struct budget_err *e, const char *field, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A JSON integer in [allow_zero ? 0 : 1, BUDGET_AMOUNT_MAX]. */
int budget_json__amount(json_t *v, bool allow_zero, int64_t *ret);

#endif
