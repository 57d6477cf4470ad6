// SPDX-License-Identifier: Apache-2.0
/*
 * Budget kinds, per-sandbox limits from JSON, and exact decimal money (micro-USD).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "budget/budget.h"
#include "budget/internal.h"

static const char *const kind_names[BUDGET__N_KINDS] = {
	[BUDGET_CPU_MS] = "cpu_ms",
	[BUDGET_MEM_MIB_S] = "mem_mib_s",
	[BUDGET_MEM_PEAK_MIB] = "mem_peak_mib",
	[BUDGET_TOKENS] = "tokens",
	[BUDGET_USD_MICRO] = "usd_micro",
};

const char *budget_kind__name(enum budget_kind k)
{
	if ((unsigned)k >= BUDGET__N_KINDS)
		return "unknown";
	return kind_names[k];
}

int budget_kind__from_name(const char *name)
{
	for (int k = 0; k < BUDGET__N_KINDS; k++)
		if (name && strcmp(name, kind_names[k]) == 0)
			return k;
	return -EINVAL;
}

int budget_err__set(struct budget_err *e, const char *field, const char *key, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!e)
		return -EINVAL;
	if (key)
		n = snprintf(e->msg, sizeof(e->msg), "%s.%s: ", field, key);
	else
		n = snprintf(e->msg, sizeof(e->msg), "%s: ", field);
	if (n < 0 || (size_t)n >= sizeof(e->msg))
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(e->msg + n, sizeof(e->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int budget_json__amount(json_t *v, bool allow_zero, int64_t *ret)
{
	json_int_t x;

	if (!json_is_integer(v))
		return -EINVAL;
	x = json_integer_value(v);
	if (x < (allow_zero ? 0 : 1) || x > BUDGET_AMOUNT_MAX)
		return -EINVAL;
	*ret = (int64_t)x;
	return 0;
}

void budget__usd_format(int64_t micro, char *buf, size_t len)
{
	uint64_t m = micro < 0 ? (uint64_t)0 - (uint64_t)micro : (uint64_t)micro;

	snprintf(buf, len, "%s%" PRIu64 ".%06" PRIu64, micro < 0 ? "-" : "", m / 1000000,
		 m % 1000000);
}

int budget__usd_parse(const char *s, int64_t *ret)
{
	int64_t whole = 0, frac = 0;
	int ndig = 0, nfrac = 0;
	const char *p = s;

	if (!s)
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++, ndig++) {
		if (whole > BUDGET_AMOUNT_MAX / 10000000)
			return -ERANGE;
		whole = whole * 10 + (*p - '0');
	}
	if (ndig == 0)
		return -EINVAL;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, nfrac++) {
			if (nfrac == 6)
				return -EINVAL; /* finer than a micro-dollar */
			frac = frac * 10 + (*p - '0');
		}
		if (nfrac == 0)
			return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	for (; nfrac < 6; nfrac++)
		frac *= 10;
	*ret = whole * 1000000 + frac;
	return *ret > BUDGET_AMOUNT_MAX ? -ERANGE : 0;
}

static int parse_usd(json_t *v, const char *field, int64_t *ret, struct budget_err *e)
{
	int r;

	if (!json_is_string(v))
		return budget_err__set(e, field, "usd",
				       "expected a decimal string like \"1.50\" (whole dollars, "
				       "at most 6 decimals)");
	r = budget__usd_parse(json_string_value(v), ret);
	if (r == -ERANGE)
		return budget_err__set(e, field, "usd", "too large");
	if (r < 0 || *ret == 0)
		return budget_err__set(e, field, "usd",
				       "expected a positive decimal string like \"1.50\" (at most "
				       "6 decimals)");
	return 0;
}

int budget__limits_parse(json_t *json, const char *field, struct budget_limits *ret,
			 struct budget_err *e)
{
	struct budget_limits l = {0};
	const char *key;
	json_t *v;

	if (!json) {
		*ret = l;
		return 0;
	}
	if (!json_is_object(json))
		return budget_err__set(e, field, NULL, "expected an object");
	if (json_object_get(json, "usd") && json_object_get(json, "usd_micro"))
		return budget_err__set(e, field, "usd", "give either usd or usd_micro, not both");
	json_object_foreach(json, key, v)
	{
		int k = budget_kind__from_name(key);

		if (strcmp(key, "usd") == 0) {
			int r = parse_usd(v, field, &l.limit[BUDGET_USD_MICRO], e);

			if (r < 0)
				return r;
			continue;
		}
		if (k < 0)
			return budget_err__set(e, field, key,
					       "unknown key (expected cpu_ms, mem_mib_s, "
					       "mem_peak_mib, tokens, usd or usd_micro)");
		if (budget_json__amount(v, false, &l.limit[k]) < 0)
			return budget_err__set(e, field, key,
					       "expected a positive integer (at most %lld)",
					       (long long)BUDGET_AMOUNT_MAX);
	}
	*ret = l;
	return 0;
}

json_t *budget__limits_to_json(const struct budget_limits *l)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	for (int k = 0; k < BUDGET__N_KINDS; k++) {
		if (!l->limit[k])
			continue;
		if (json_object_set_new(o, kind_names[k], json_integer(l->limit[k])) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}
