// SPDX-License-Identifier: Apache-2.0
/* Limits and price-table JSON: accepted shapes, precise errors, exact money. */
#include <errno.h>
#include <string.h>
#include <criterion/criterion.h>
#include <jansson.h>

#include "budget/budget.h"

typedef int (*parse_fn)(json_t *j, void *out, struct budget_err *e);

/* @text parsed as JSON, then by @fn; a test's own bad JSON fails the test. */
static int parse(const char *text, parse_fn fn, void *out, struct budget_err *e)
{
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	int r;

	cr_assert_not_null(j, "bad test JSON %s", text);
	memset(e, 0, sizeof(*e));
	r = fn(j, out, e);
	json_decref(j);
	return r;
}

static int limits_fn(json_t *j, void *out, struct budget_err *e)
{
	return budget__limits_parse(j, "budget", out, e);
}

static int prices_fn(json_t *j, void *out, struct budget_err *e)
{
	return budget__prices_parse(j, "prices", out, e);
}

static int parse_limits(const char *text, struct budget_limits *l, struct budget_err *e)
{
	return parse(text, limits_fn, l, e);
}

static int parse_prices(const char *text, struct budget_prices **p, struct budget_err *e)
{
	return parse(text, prices_fn, p, e);
}

static void expect_limits_error(const char *text, const char *msg)
{
	struct budget_limits l;
	struct budget_err e;

	cr_expect_eq(parse_limits(text, &l, &e), -EINVAL, "%s accepted", text);
	cr_expect_str_eq(e.msg, msg, "%s", text);
}

Test(limits, parses_every_kind)
{
	struct budget_limits l;
	struct budget_err e;

	cr_assert_eq(parse_limits("{\"cpu_ms\": 60000, \"mem_mib_s\": 1000, \"mem_peak_mib\": "
				  "512, \"tokens\": 100000, \"usd\": \"2.5\"}",
				  &l, &e),
		     0, "%s", e.msg);
	cr_expect_eq(l.limit[BUDGET_CPU_MS], 60000);
	cr_expect_eq(l.limit[BUDGET_MEM_MIB_S], 1000);
	cr_expect_eq(l.limit[BUDGET_MEM_PEAK_MIB], 512);
	cr_expect_eq(l.limit[BUDGET_TOKENS], 100000);
	cr_expect_eq(l.limit[BUDGET_USD_MICRO], 2500000);
}

Test(limits, missing_keys_are_unlimited_and_round_trip)
{
	struct budget_limits l, back;
	struct budget_err e;
	json_t *j;

	cr_assert_eq(parse_limits("{\"usd_micro\": 42}", &l, &e), 0);
	cr_expect_eq(l.limit[BUDGET_CPU_MS], 0);
	cr_expect_eq(l.limit[BUDGET_USD_MICRO], 42);
	j = budget__limits_to_json(&l);
	cr_assert_eq(budget__limits_parse(j, "budget", &back, &e), 0);
	cr_expect_eq(memcmp(&l, &back, sizeof(l)), 0);
	cr_expect_eq(json_object_size(j), 1);
	json_decref(j);
	cr_assert_eq(budget__limits_parse(NULL, "budget", &l, &e), 0);
	cr_expect_eq(l.limit[BUDGET_TOKENS], 0);
}

Test(limits, errors_name_the_field)
{
	expect_limits_error("{\"cpu_ms\": 0}",
			    "budget.cpu_ms: expected a positive integer (at most "
			    "1000000000000000)");
	expect_limits_error("{\"cpu_ms\": -5}",
			    "budget.cpu_ms: expected a positive integer (at most "
			    "1000000000000000)");
	expect_limits_error("{\"tokens\": \"100\"}",
			    "budget.tokens: expected a positive integer (at most "
			    "1000000000000000)");
	expect_limits_error("{\"tokens\": 1.5}",
			    "budget.tokens: expected a positive integer (at most "
			    "1000000000000000)");
	expect_limits_error("{\"mem_mib_s\": 1000000000000001}",
			    "budget.mem_mib_s: expected a positive integer (at most "
			    "1000000000000000)");
	expect_limits_error("{\"cpu\": 5}", "budget.cpu: unknown key (expected cpu_ms, "
					    "mem_mib_s, mem_peak_mib, tokens, usd or usd_micro)");
	expect_limits_error("[1]", "budget: expected an object");
	expect_limits_error("{\"usd\": \"1\", \"usd_micro\": 5}",
			    "budget.usd: give either usd or usd_micro, not both");
}

Test(limits, money_is_never_a_float)
{
	const char *bad = "budget.usd: expected a decimal string like \"1.50\" (whole dollars, "
			  "at most 6 decimals)";
	const char *badstr =
		"budget.usd: expected a positive decimal string like \"1.50\" (at most 6 "
		"decimals)";

	expect_limits_error("{\"usd\": 1.5}", bad);
	expect_limits_error("{\"usd\": 2}", bad);
	expect_limits_error("{\"usd\": \"1.0000001\"}", badstr);
	expect_limits_error("{\"usd\": \"-1\"}", badstr);
	expect_limits_error("{\"usd\": \"1.\"}", badstr);
	expect_limits_error("{\"usd\": \"0\"}", badstr);
	expect_limits_error("{\"usd\": \"1e3\"}", badstr);
}

Test(money, parse_and_format_are_exact)
{
	int64_t m;
	char buf[32];

	cr_assert_eq(budget__usd_parse("0.1", &m), 0);
	cr_expect_eq(m, 100000);
	cr_assert_eq(budget__usd_parse("12.000007", &m), 0);
	cr_expect_eq(m, 12000007);
	cr_assert_eq(budget__usd_parse("7", &m), 0);
	cr_expect_eq(m, 7000000);
	cr_expect_eq(budget__usd_parse("", &m), -EINVAL);
	cr_expect_eq(budget__usd_parse(".5", &m), -EINVAL);
	cr_expect_eq(budget__usd_parse("99999999999999999999", &m), -ERANGE);
	budget__usd_format(12000007, buf, sizeof(buf));
	cr_expect_str_eq(buf, "12.000007");
	budget__usd_format(0, buf, sizeof(buf));
	cr_expect_str_eq(buf, "0.000000");
	budget__usd_format(-1500000, buf, sizeof(buf));
	cr_expect_str_eq(buf, "-1.500000");
}

static void expect_prices_error(const char *text, const char *msg)
{
	struct budget_prices *p = NULL;
	struct budget_err e;

	cr_expect_eq(parse_prices(text, &p, &e), -EINVAL, "%s accepted", text);
	cr_expect_null(p);
	cr_expect_str_eq(e.msg, msg, "%s", text);
}

Test(prices, tool_and_model_lookup_with_default)
{
	struct budget_prices *p = NULL;
	struct budget_err e;
	int64_t v;

	cr_assert_eq(parse_prices("{\"tool_call_usd_micro\": {\"default\": 10, \"web.fetch\": "
				  "2000}, \"models\": {\"default\": {\"input_per_1k_usd_micro\": "
				  "1000, \"output_per_1k_usd_micro\": 2000}, \"big\": "
				  "{\"input_per_1k_usd_micro\": 15000}}, "
				  "\"cpu_per_s_usd_micro\": 30}",
				  &p, &e),
		     0, "%s", e.msg);
	cr_expect_eq(budget__price_tool(p, "web.fetch"), 2000);
	cr_expect_eq(budget__price_tool(p, "fs.read"), 10);
	/* default model: 1500 * 1000 / 1000 + 10 * 2000 / 1000 = 1500 + 20 */
	cr_assert_eq(budget__price_tokens(p, "unknown-model", 1500, 10, &v), 0);
	cr_expect_eq(v, 1520);
	/* "big": output price unset in its entry = 0; one input token rounds up to 15. */
	cr_assert_eq(budget__price_tokens(p, "big", 1, 1000, &v), 0);
	cr_expect_eq(v, 15);
	cr_assert_eq(budget__price_tokens(p, NULL, 1, 0, &v), 0);
	cr_expect_eq(v, 1, "a fraction of a micro-dollar rounds up");
	cr_assert_eq(budget__price_cpu(p, 1500, &v), 0);
	cr_expect_eq(v, 45);
	cr_expect_eq(budget__price_tokens(p, "big", INT64_MAX / 2, 0, &v), -EOVERFLOW);
	budget__prices_free(p);
}

Test(prices, default_table_is_documented_and_used)
{
	struct budget_prices *p = NULL;
	int64_t v;
	json_t *j;

	cr_assert_eq(budget__prices_default(&p), 0);
	cr_expect_eq(budget__price_tool(p, "anything"), 0);
	cr_assert_eq(budget__price_tokens(p, "m", 1000000, 1000000, &v), 0);
	cr_expect_eq(v, 18000000, "3 + 15 USD per 1M tokens");
	j = budget__prices_to_json(p);
	cr_assert_not_null(j);
	cr_expect_eq(json_integer_value(json_object_get(
			     json_object_get(json_object_get(j, "models"), "default"),
			     "output_per_1k_usd_micro")),
		     15000);
	json_decref(j);
	budget__prices_free(p);
	budget__prices_free(NULL);
}

Test(prices, errors_name_the_field)
{
	expect_prices_error("{\"tools\": {}}",
			    "prices.tools: unknown key (expected tool_call_usd_micro, models, "
			    "cpu_per_s_usd_micro)");
	expect_prices_error("{\"tool_call_usd_micro\": {\"x\": -1}}",
			    "prices.tool_call_usd_micro: x: expected an integer >= 0");
	expect_prices_error("{\"tool_call_usd_micro\": {\"x\": 0.5}}",
			    "prices.tool_call_usd_micro: x: expected an integer >= 0");
	expect_prices_error("{\"models\": {\"m\": {\"input_per_1k\": 3}}}",
			    "prices.models: m.input_per_1k: unknown key (expected "
			    "input_per_1k_usd_micro, output_per_1k_usd_micro)");
	expect_prices_error("{\"models\": {\"m\": 3}}", "prices.models: m: expected an object");
	expect_prices_error("{\"cpu_per_s_usd_micro\": \"1\"}",
			    "prices.cpu_per_s_usd_micro: expected an integer >= 0");
	expect_prices_error("3", "prices: expected an object");
}
