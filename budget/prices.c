// SPDX-License-Identifier: Apache-2.0
/*
 * The price table: per tool call (by tool name), per 1k input/output tokens (by model),
 * per CPU second. Integer micro-USD; token and CPU prices round up once per report.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "budget/budget.h"
#include "budget/internal.h"

/* The documented default (docs/budget.md): tool calls free, tokens at 3 / 15 USD per 1M. */
const char BUDGET_DEFAULT_PRICES[] =
	"{\"tool_call_usd_micro\": {\"default\": 0},"
	" \"models\": {\"default\": {\"input_per_1k_usd_micro\": 3000,"
	"                          \"output_per_1k_usd_micro\": 15000}},"
	" \"cpu_per_s_usd_micro\": 0}";

struct budget_prices {
	json_t *tools;	/* name -> integer */
	json_t *models; /* name -> {input_per_1k_usd_micro, output_per_1k_usd_micro} */
	int64_t cpu_per_s;
};

void budget__prices_free(struct budget_prices *p)
{
	if (!p)
		return;
	json_decref(p->tools);
	json_decref(p->models);
	free(p);
}

typedef int (*entry_fn)(json_t *v, const char *field, const char *name, json_t *out,
			struct budget_err *e);

/* Every entry of the object @v through @fn; @key and @shape name it in the error. */
static int parse_entries(json_t *v, const char *field, const char *key, const char *shape,
			 entry_fn fn, json_t *out, struct budget_err *e)
{
	const char *name;
	json_t *x;
	int r;

	if (!json_is_object(v))
		return budget_err__set(e, field, key, "expected an object of %s", shape);
	json_object_foreach(v, name, x)
	{
		r = fn(x, field, name, out, e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_tool(json_t *price, const char *field, const char *name, json_t *out,
		      struct budget_err *e)
{
	int64_t x;

	if (budget_json__amount(price, true, &x) < 0)
		return budget_err__set(e, field, "tool_call_usd_micro",
				       "%s: expected an integer >= 0", name);
	return json_object_set_new(out, name, json_integer(x)) < 0 ? -ENOMEM : 0;
}

static int parse_model(json_t *m, const char *field, const char *name, json_t *out,
		       struct budget_err *e)
{
	const char *key;
	json_t *v, *entry;
	int64_t x;

	if (!json_is_object(m))
		return budget_err__set(e, field, "models", "%s: expected an object", name);
	entry = json_pack("{sIsI}", "input_per_1k_usd_micro", (json_int_t)0,
			  "output_per_1k_usd_micro", (json_int_t)0);
	if (!entry)
		return -ENOMEM;
	json_object_foreach(m, key, v)
	{
		if (strcmp(key, "input_per_1k_usd_micro") != 0 &&
		    strcmp(key, "output_per_1k_usd_micro") != 0) {
			json_decref(entry);
			return budget_err__set(e, field, "models",
					       "%s.%s: unknown key (expected "
					       "input_per_1k_usd_micro, output_per_1k_usd_micro)",
					       name, key);
		}
		if (budget_json__amount(v, true, &x) < 0) {
			json_decref(entry);
			return budget_err__set(e, field, "models",
					       "%s.%s: expected an integer >= 0", name, key);
		}
		json_object_set_new(entry, key, json_integer(x));
	}
	return json_object_set_new(out, name, entry) < 0 ? -ENOMEM : 0;
}

static int parse_key(struct budget_prices *p, const char *field, const char *key, json_t *v,
		     struct budget_err *e)
{
	if (strcmp(key, "tool_call_usd_micro") == 0)
		return parse_entries(v, field, key, "tool name -> integer micro-USD", parse_tool,
				     p->tools, e);
	if (strcmp(key, "models") == 0)
		return parse_entries(v, field, key, "model name -> prices", parse_model, p->models,
				     e);
	if (strcmp(key, "cpu_per_s_usd_micro") == 0) {
		if (budget_json__amount(v, true, &p->cpu_per_s) < 0)
			return budget_err__set(e, field, key, "expected an integer >= 0");
		return 0;
	}
	return budget_err__set(e, field, key,
			       "unknown key (expected tool_call_usd_micro, models, "
			       "cpu_per_s_usd_micro)");
}

int budget__prices_parse(json_t *json, const char *field, struct budget_prices **ret,
			 struct budget_err *e)
{
	struct budget_prices *p;
	const char *key;
	json_t *v;
	int r;

	if (!json_is_object(json))
		return budget_err__set(e, field, NULL, "expected an object");
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->tools = json_object();
	p->models = json_object();
	r = p->tools && p->models ? 0 : -ENOMEM;
	if (r < 0)
		goto fail;
	json_object_foreach(json, key, v)
	{
		r = parse_key(p, field, key, v, e);
		if (r < 0)
			goto fail;
	}
	*ret = p;
	return 0;
fail:
	budget__prices_free(p);
	return r;
}

int budget__prices_default(struct budget_prices **ret)
{
	json_t *j = json_loads(BUDGET_DEFAULT_PRICES, 0, NULL);
	int r;

	if (!j)
		return -ENOMEM;
	r = budget__prices_parse(j, "prices", ret, NULL);
	json_decref(j);
	return r;
}

json_t *budget__prices_to_json(const struct budget_prices *p)
{
	return json_pack("{sOsOsI}", "tool_call_usd_micro", p->tools, "models", p->models,
			 "cpu_per_s_usd_micro", (json_int_t)p->cpu_per_s);
}

int64_t budget__price_tool(const struct budget_prices *p, const char *tool)
{
	json_t *v = tool ? json_object_get(p->tools, tool) : NULL;

	if (!v)
		v = json_object_get(p->tools, "default");
	return v ? (int64_t)json_integer_value(v) : 0;
}

/* ceil(a * b / 1000) + *acc_numerator bookkeeping, with overflow checks. */
static int mul_add(int64_t a, int64_t b, int64_t *acc)
{
	int64_t x;

	if (a < 0 || b < 0)
		return -EINVAL;
	if (__builtin_mul_overflow(a, b, &x) || __builtin_add_overflow(*acc, x, acc))
		return -EOVERFLOW;
	return 0;
}

static int per_1k(int64_t numer, int64_t *ret)
{
	int64_t v = numer / 1000 + (numer % 1000 ? 1 : 0);

	if (v > BUDGET_AMOUNT_MAX)
		return -EOVERFLOW;
	*ret = v;
	return 0;
}

int budget__price_tokens(const struct budget_prices *p, const char *model, int64_t in, int64_t out,
			 int64_t *ret)
{
	json_t *m = model ? json_object_get(p->models, model) : NULL;
	int64_t pin = 0, pout = 0, numer = 0;
	int r;

	if (!m)
		m = json_object_get(p->models, "default");
	if (m) {
		pin = json_integer_value(json_object_get(m, "input_per_1k_usd_micro"));
		pout = json_integer_value(json_object_get(m, "output_per_1k_usd_micro"));
	}
	r = mul_add(in, pin, &numer);
	if (r < 0)
		return r;
	r = mul_add(out, pout, &numer);
	if (r < 0)
		return r;
	return per_1k(numer, ret);
}

int budget__price_cpu(const struct budget_prices *p, int64_t cpu_ms, int64_t *ret)
{
	int64_t numer = 0;
	int r = mul_add(cpu_ms, p->cpu_per_s, &numer);

	if (r < 0)
		return r;
	return per_1k(numer, ret);
}
