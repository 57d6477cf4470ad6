// SPDX-License-Identifier: Apache-2.0
/*
 * Budgets through the API: a real nucleusd (fake backend) driven through its
 * socket. Limits at create, usage reports (402, idempotency, concurrency, kill -9), tool
 * prices, metering a real process (fake:burn) until it is paused, TTL, metrics, and
 * `nucleusctl budget`.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "tests/unit/api/daemon.h"
#include "tests/unit/nucleusd/helpers.h"

static struct thd d;

static void setup(void)
{
	memset(&d, 0, sizeof(d));
}

static void teardown(void)
{
	thd_cleanup(&d);
}

TestSuite(budget_api, .init = setup, .fini = teardown, .timeout = 300);

#define BASIC "{\"profile\": \"fake-open\", \"vcpus\": 1, \"memory_mib\": 128"

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Starts the daemon and creates a sandbox from @body; its id in @id (32 bytes). */
static void start_with(char *id, const char *body)
{
	thd_start(&d);
	snprintf(id, 32, "%s", thd_create(&d, body));
}

/* POST @body to @p: 400 with an error code and a message that starts with @prefix. */
static void expect_400(const char *p, const char *body, const char *prefix)
{
	struct api_response r = thd_call(&d, "POST", p, body);
	const char *msg;

	cr_assert_eq(r.status, 400, "%s: %d %s", body, r.status, r.body);
	cr_assert_not_null(json_string_value(json_object_get(r.json, "error")), "%s", r.body);
	msg = json_string_value(json_object_get(r.json, "message"));
	cr_assert_not_null(msg, "%s", r.body);
	cr_assert_eq(strncmp(msg, prefix, strlen(prefix)), 0, "%s: %s", body, r.body);
	api_response__clear(&r);
}

/* A call refused with 402 for the budget @kind. */
static void expect_402(const char *method, const char *p, const char *body, const char *kind)
{
	struct api_response r = thd_call(&d, method, p, body);

	cr_assert_eq(r.status, 402, "%s %s: %d %s", method, p, r.status, r.body);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "budget")), kind);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "error")), "budget_exhausted");
	api_response__clear(&r);
}

static const char *ledger_sum(const char *id, const char *kind)
{
	char sql[200];

	snprintf(sql, sizeof(sql),
		 "SELECT coalesce(sum(amount), 0) FROM budget_ledger WHERE sandbox_id = '%s' AND "
		 "kind = '%s'",
		 id, kind);
	return th_query_file(d.db, sql);
}

/* POST usage; returns the status (and the "status" or "budget" field in @what). */
static int report(const char *id, const char *key, long in, long out, char what[32])
{
	char body[256];
	struct api_response r;
	int st;

	snprintf(body, sizeof(body),
		 "{\"key\": \"%s\", \"model\": \"m\", \"input_tokens\": %ld, \"output_tokens\": "
		 "%ld}",
		 key, in, out);
	r = thd_call(&d, "POST", thd_path(id, "/usage"), body);
	st = r.status;
	if (what) {
		const char *s = json_string_value(json_object_get(r.json, st == 200   ? "status"
									  : st == 402 ? "budget"
										      : "error"));

		snprintf(what, 32, "%s", s ? s : "-");
	}
	if (st == 402)
		cr_assert_str_eq(json_string_value(json_object_get(r.json, "error")),
				 "budget_exhausted", "%s", r.body);
	api_response__clear(&r);
	return st;
}

static int count_audit(const char *id, const char *kind)
{
	char sql[200];

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM audit_log WHERE sandbox_id = '%s' AND kind = '%s'", id,
		 kind);
	return atoi(th_query_file(d.db, sql));
}

Test(budget_api, bad_limits_are_400_naming_the_key_and_store_nothing)
{
	static const char *const bad[][2] = {
		{"{\"cpu\": 1}", "budget.cpu: unknown key"},
		{"{\"cpu_ms\": 0}", "budget.cpu_ms: expected a positive integer"},
		{"{\"tokens\": -5}", "budget.tokens: expected a positive integer"},
		{"{\"tokens\": 1.5}", "budget.tokens: expected a positive integer"},
		{"{\"mem_mib_s\": \"10\"}", "budget.mem_mib_s: expected a positive integer"},
		{"{\"usd\": 1.5}", "budget.usd: expected a"},
		{"{\"usd\": \"1.1234567\"}", "budget.usd: expected a"},
		{"{\"usd\": \"1\", \"usd_micro\": 5}", "budget."},
		{"{\"cpu_ms\": 1000000000000001}", "budget.cpu_ms: expected a positive integer"},
	};
	char *before, *after, body[256];

	thd_start(&d);
	before = thd_dump(&d);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), BASIC ", \"budget\": %s}", bad[i][0]);
		expect_400("/v1/sandboxes", body, bad[i][1]);
	}
	after = thd_dump(&d);
	thd_assert_same_db(before, after, "a rejected create changed the database");
	thd_finish(&d);
}

Test(budget_api, profile_defaults_and_request_overrides)
{
	char id[32], id2[32];

	thd_start(&d);
	snprintf(
		id, sizeof(id), "%s",
		thd_create(&d, "{\"profile\": \"fake-budget\", \"vcpus\": 1, \"memory_mib\": 64}"));
	cr_assert_eq(thd_budget(&d, id, "tokens", "limit"), 1000);
	cr_assert_eq(thd_budget(&d, id, "usd_micro", "limit"), 1000000);
	cr_assert_eq(thd_budget(&d, id, "cpu_ms", "limit"), -1);
	snprintf(id2, sizeof(id2), "%s",
		 thd_create(&d, "{\"profile\": \"fake-budget\", \"vcpus\": 1, \"memory_mib\": 64, "
				"\"budget\": {\"tokens\": 50, \"cpu_ms\": 7}}"));
	cr_assert_eq(thd_budget(&d, id2, "tokens", "limit"), 50);
	cr_assert_eq(thd_budget(&d, id2, "cpu_ms", "limit"), 7);
	cr_assert_eq(thd_budget(&d, id2, "usd_micro", "limit"), 1000000);
	thd_finish(&d);
}

Test(budget_api, usage_bodies_are_checked_strictly)
{
	static const char *const bad[] = {
		"{\"key\": \"k\", \"input_tokens\": 1, \"output_tokens\": 1, \"x\": 1}",
		"{\"key\": \"k\", \"input_tokens\": \"1\", \"output_tokens\": 1}",
		"{\"key\": \"k\", \"input_tokens\": 1.5, \"output_tokens\": 1}",
		"{\"key\": \"k\", \"input_tokens\": -1, \"output_tokens\": 1}",
		"{\"input_tokens\": 1, \"output_tokens\": 1}",
		"{\"key\": \"k\", \"input_tokens\": 1}",
		"{\"key\": \"a b\", \"input_tokens\": 1, \"output_tokens\": 1}",
		"{\"key\": 5, \"input_tokens\": 1, \"output_tokens\": 1}",
		"[]",
	};
	char id[32], *before, *after;

	start_with(id, BASIC ", \"budget\": {\"tokens\": 100}}");
	before = thd_dump(&d);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_400(thd_path(id, "/usage"), bad[i], "");
	after = thd_dump(&d);
	thd_assert_same_db(before, after, "a rejected usage report changed the database");
	thd_finish(&d);
}

Test(budget_api, a_report_past_the_limit_is_402_and_so_is_every_later_call)
{
	char id[32], what[32];

	start_with(id, BASIC ", \"budget\": {\"tokens\": 100}}");
	cr_assert_eq(report(id, "r1", 40, 20, what), 200);
	cr_assert_str_eq(what, "charged");
	cr_assert_eq(thd_budget(&d, id, "tokens", "spent"), 60);
	/* The tool works while the budget lasts. */
	thd_expect(&d, "POST", thd_path(id, "/tools/echo"), "{\"args\": {}}", 200);

	cr_assert_eq(report(id, "r2", 30, 20, what), 402);
	cr_assert_str_eq(what, "tokens");
	/* The tokens were spent: the budget is now exhausted, exactly at its limit. */
	cr_assert_eq(thd_budget(&d, id, "tokens", "spent"), 100);
	cr_assert_eq(thd_budget(&d, id, "tokens", "exhausted"), 1);
	cr_assert_str_eq(ledger_sum(id, "tokens"), "100");

	expect_402("POST", thd_path(id, "/tools/echo"), "{\"args\": {}}", "tokens");
	thd_expect(&d, "POST", thd_path(id, "/tools/run"),
		   "{\"args\": {\"argv\": [\"x\", \"hi\"]}, \"stream\": true}", 402);
	cr_assert_eq(report(id, "r3", 1, 0, what), 402);
	cr_assert_eq(report(id, "r2", 30, 20, what), 402, "the refused report's retry");
	cr_assert_str_eq(ledger_sum(id, "tokens"), "100");
	/* Each enforcement is in the audit log; no decision was recorded for the refused calls. */
	cr_assert_eq(count_audit(id, "budget.exhausted"), 5);
	cr_assert_eq(count_audit(id, "tool.decision"), 1);
	/* Pausing and resuming is refused too. */
	thd_expect(&d, "POST", thd_path(id, "/pause"), NULL, 200);
	expect_402("POST", thd_path(id, "/resume"), NULL, "tokens");
	thd_finish(&d);
}

Test(budget_api, a_retried_report_is_charged_once_and_a_reused_key_is_409)
{
	struct api_response r;
	char id[32], what[32];

	start_with(id, BASIC "}");
	cr_assert_eq(report(id, "same-key", 1000, 500, what), 200);
	cr_assert_str_eq(what, "charged");
	r = thd_call(&d, "POST", thd_path(id, "/usage"),
		     "{\"key\": \"same-key\", \"model\": \"m\", \"input_tokens\": 1000, "
		     "\"output_tokens\": 500}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "duplicate");
	cr_assert_eq(
		json_integer_value(json_object_get(json_object_get(r.json, "charged"), "tokens")),
		1500);
	/* default prices: 3 USD / 1M input, 15 USD / 1M output = 3000 + 7500 micro-USD */
	cr_assert_eq(json_integer_value(
			     json_object_get(json_object_get(r.json, "charged"), "usd_micro")),
		     10500);
	api_response__clear(&r);
	cr_assert_eq(report(id, "same-key", 1000, 501, what), 409);
	cr_assert_str_eq(what, "key_reused");
	cr_assert_eq(thd_budget(&d, id, "tokens", "spent"), 1500);
	cr_assert_eq(thd_budget(&d, id, "usd_micro", "spent"), 10500);
	cr_assert_str_eq(ledger_sum(id, "tokens"), "1500");
	/* The same key in another sandbox is another report. */
	{
		char id2[32];

		snprintf(id2, sizeof(id2), "%s", thd_create(&d, BASIC "}"));
		cr_assert_eq(report(id2, "same-key", 1, 1, what), 200);
		cr_assert_str_eq(what, "charged");
	}
	thd_finish(&d);
}

struct worker {
	const char *id;
	int n, base, failures;
	char sock[300];
};

/* Posts n reports (keys base..base+n-1) of 7 tokens, each retried once. */
static void *reporter(void *arg)
{
	struct worker *w = arg;
	struct api_client *c = NULL;

	if (api_client__new(w->sock, &c) < 0) {
		w->failures = w->n;
		return NULL;
	}
	for (int i = 0; i < w->n; i++) {
		for (int t = 0; t < 2; t++) {
			struct api_response r = {0};
			char p[160];
			json_t *b = json_pack("{ss si si}", "key", "", "input_tokens", 3,
					      "output_tokens", 4);
			char key[32];

			snprintf(key, sizeof(key), "k%d", w->base + i);
			json_object_set_new(b, "key", json_string(key));
			snprintf(p, sizeof(p), "/v1/sandboxes/%s/usage", w->id);
			if (api_client__call(c, "POST", p, b, &r) < 0 || r.status != 200)
				w->failures++;
			api_response__clear(&r);
			json_decref(b);
		}
	}
	api_client__free(c);
	return NULL;
}

Test(budget_api, twenty_concurrent_reporters_sum_exactly)
{
	struct worker w[20];
	pthread_t t[20];
	char id[32];

	start_with(id, BASIC "}");
	for (int i = 0; i < 20; i++) {
		w[i] = (struct worker){.id = id, .n = 5, .base = i * 5};
		snprintf(w[i].sock, sizeof(w[i].sock), "%s", d.sock);
		cr_assert_eq(pthread_create(&t[i], NULL, reporter, &w[i]), 0);
	}
	for (int i = 0; i < 20; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(w[i].failures, 0, "worker %d", i);
	}
	cr_assert_eq(thd_budget(&d, id, "tokens", "spent"), 20 * 5 * 7);
	cr_assert_str_eq(ledger_sum(id, "tokens"), "700");
	/* 3 in + 4 out at 3000/15000 micro-USD per 1k: (9000 + 60000) / 1000 = 69 each */
	cr_assert_eq(thd_budget(&d, id, "usd_micro", "spent"), 100 * 69);
	thd_finish(&d);
}

struct killer_arg {
	const char *id;
	char sock[300];
	int sent; /* reports answered 200 */
};

static void *serial_reporter(void *arg)
{
	struct killer_arg *k = arg;
	struct api_client *c = NULL;

	if (api_client__new(k->sock, &c) < 0)
		return NULL;
	for (int i = 0; i < 100000; i++) {
		struct api_response r = {0};
		char p[160], key[32];
		json_t *b;

		snprintf(key, sizeof(key), "kill-%d", i);
		b = json_pack("{ss si si}", "key", key, "input_tokens", 2, "output_tokens", 3);
		snprintf(p, sizeof(p), "/v1/sandboxes/%s/usage", k->id);
		if (api_client__call(c, "POST", p, b, &r) < 0 || r.status != 200) {
			api_response__clear(&r);
			json_decref(b);
			break; /* the daemon is gone */
		}
		k->sent = i + 1;
		api_response__clear(&r);
		json_decref(b);
	}
	api_client__free(c);
	return NULL;
}

Test(budget_api, kill_9_between_debits_then_restart_balances_equal_the_ledger)
{
	struct killer_arg k = {0};
	pthread_t t;
	char id[32], what[32], key[32];
	int rows, charged = 0, dup = 0;

	start_with(id, BASIC ", \"budget\": {\"tokens\": 100000000}}");
	k.id = id;
	snprintf(k.sock, sizeof(k.sock), "%s", d.sock);
	cr_assert_eq(pthread_create(&t, NULL, serial_reporter, &k), 0);
	for (int i = 0; i < 3000; i++) {
		if (atoi(th_query_file(d.db, "SELECT count(*) FROM budget_ledger")) >= 60)
			break;
		sleep_ms(10);
	}
	thd_kill9(&d);
	pthread_join(t, NULL);
	thd_restart(&d);
	rows = atoi(th_query_file(d.db, "SELECT count(DISTINCT idem_key) FROM budget_ledger "
					"WHERE kind = 'tokens'"));
	cr_assert_geq(rows, k.sent, "an answered report was lost");
	cr_assert_geq(rows, 30);
	/* Balance = ledger, and each committed report is whole (tokens and money). */
	cr_assert_eq(thd_budget(&d, id, "tokens", "spent"), atoll(ledger_sum(id, "tokens")));
	cr_assert_eq(thd_budget(&d, id, "tokens", "spent"), 5LL * rows);
	cr_assert_eq(thd_budget(&d, id, "usd_micro", "spent"), atoll(ledger_sum(id, "usd_micro")));
	/* 2 in + 3 out: (6000 + 45000) / 1000 = 51 micro-USD per report */
	cr_assert_eq(thd_budget(&d, id, "usd_micro", "spent"), 51LL * rows);
	/* Replay every key the client may have sent: committed ones are duplicates. */
	for (int i = 0; i < rows + 5; i++) {
		snprintf(key, sizeof(key), "kill-%d", i);
		cr_assert_eq(report(id, key, 2, 3, what), 200);
		if (strcmp(what, "duplicate") == 0)
			dup++;
		else
			charged++;
	}
	cr_assert_eq(dup, rows);
	cr_assert_eq(charged, 5);
	cr_assert_eq(thd_budget(&d, id, "tokens", "spent"), 5LL * (rows + 5));
	cr_assert_str_eq(th_query_file(d.db, "SELECT count(*) FROM budget_ledger WHERE kind = "
					     "'tokens'"),
			 th_query_file(d.db, "SELECT count(DISTINCT idem_key) FROM budget_ledger "
					     "WHERE kind = 'tokens'"));
	thd_finish(&d);
}

static void write_prices(const char *file, const char *json)
{
	FILE *f = fopen(file, "w");

	cr_assert_not_null(f);
	fputs(json, f);
	fclose(f);
}

Test(budget_api, a_tool_price_is_charged_and_refused_past_the_limit)
{
	static char dir[256], prices[300];
	struct api_response r;
	char id[32];

	th_tmpdir(dir, sizeof(dir));
	snprintf(prices, sizeof(prices), "%s/prices.json", dir);
	write_prices(prices, "{\"tool_call_usd_micro\": {\"default\": 0, \"echo\": 2000}}");
	d.extra[0] = "--prices";
	d.extra[1] = prices;
	start_with(id, BASIC ", \"budget\": {\"usd\": \"0.005\"}}");
	for (int i = 0; i < 2; i++) {
		thd_expect(&d, "POST", thd_path(id, "/tools/echo"), "{\"args\": {}}", 200);
	}
	cr_assert_eq(thd_budget(&d, id, "usd_micro", "spent"), 4000);
	expect_402("POST", thd_path(id, "/tools/echo"), "{\"args\": {}}", "usd_micro");
	/* A refused price is not spent; a free call still fits. */
	cr_assert_eq(thd_budget(&d, id, "usd_micro", "spent"), 4000);
	cr_assert_eq(thd_budget(&d, id, "usd_micro", "exhausted"), 0);
	thd_expect(&d, "POST", thd_path(id, "/tools/slow"), "{\"args\": {\"ms\": 0}}", 200);
	cr_assert_eq(count_audit(id, "budget.debit"), 2);
	cr_assert_eq(count_audit(id, "budget.exhausted"), 1);
	/* Metrics: spend over all sandboxes and the enforcement. */
	r = thd_call(&d, "GET", "/v1/metrics", NULL);
	cr_assert_not_null(strstr(r.body, "nucleus_budget_spent_total{kind=\"usd_micro\"} 4000\n"),
			   "%s", r.body);
	cr_assert_not_null(
		strstr(r.body, "nucleus_budget_exhaustions_total{kind=\"usd_micro\"} 1\n"));
	api_response__clear(&r);
	thd_finish(&d);
	th_rmrf(dir);
}

static const char *wait_state(const char *id, const char *want)
{
	static char state[16];

	/* Bounded polling, generous for a loaded machine: no time is asserted. */
	for (int i = 0; i < 6000; i++) {
		struct api_response r = thd_call(&d, "GET", thd_path(id, ""), NULL);

		snprintf(state, sizeof(state), "%s",
			 json_string_value(json_object_get(r.json, "state")));
		api_response__clear(&r);
		if (strcmp(state, want) == 0)
			break;
		sleep_ms(10);
	}
	return state;
}

static const char *reason_of(const char *id)
{
	static char reason[128];
	struct api_response r = thd_call(&d, "GET", thd_path(id, ""), NULL);
	const char *s = json_string_value(json_object_get(r.json, "reason"));

	snprintf(reason, sizeof(reason), "%s", s ? s : "");
	api_response__clear(&r);
	return reason;
}

Test(budget_api, ttl_expiry_stops_the_sandbox_and_says_why)
{
	char id[32], id2[32];

	d.extra[0] = "--meter-interval-ms";
	d.extra[1] = "50";
	start_with(id, BASIC ", \"ttl_seconds\": 1}");
	snprintf(id2, sizeof(id2), "%s", thd_create(&d, BASIC ", \"ttl_seconds\": 100000}"));
	cr_assert_str_eq(wait_state(id, "stopped"), "stopped");
	cr_assert_eq(strncmp(reason_of(id), "ttl_expired", 11), 0, "%s", reason_of(id));
	cr_assert_eq(count_audit(id, "sandbox.stop"), 1);
	cr_assert_str_eq(wait_state(id2, "running"), "running", "the long TTL is not expired");
	thd_finish(&d);
}

/*
 * fake:burn boots a real process spinning on one CPU. With a cpu_ms limit the meter
 * pauses it. Tolerance: the meter debits what was burnt since the last sample, so the
 * overshoot is at most one sample interval of one spinning thread (50 ms here); we
 * allow 20 intervals (1000 ms) because a loaded 2-core machine fires timers late.
 */
#define BURN_LIMIT     300
#define BURN_TOLERANCE (20 * 50)

Test(budget_api, a_cpu_burning_sandbox_is_paused_at_its_cpu_limit)
{
	struct api_response r;
	char id[32];
	long long spent;

	d.extra[0] = "--meter-interval-ms";
	d.extra[1] = "50";
	thd_start(&d);
	snprintf(
		id, sizeof(id), "%s",
		thd_create(&d, BASIC ", \"image\": \"fake:burn\", \"budget\": {\"cpu_ms\": 300}}"));
	cr_assert_str_eq(wait_state(id, "paused"), "paused");
	cr_assert_str_eq(reason_of(id), "budget:cpu_ms");
	spent = thd_budget(&d, id, "cpu_ms", "spent");
	cr_assert_geq(spent, BURN_LIMIT);
	cr_assert_leq(spent, BURN_LIMIT + BURN_TOLERANCE, "spent %lld", spent);
	cr_assert_eq(thd_budget(&d, id, "cpu_ms", "exhausted"), 1);
	cr_assert_gt(thd_budget(&d, id, "mem_peak_mib", "spent"), 0, "RSS was metered");
	cr_assert_eq(spent, atoll(ledger_sum(id, "cpu_ms")));
	/* Paused (SIGSTOP): nothing more is metered. */
	sleep_ms(200);
	cr_assert_eq(thd_budget(&d, id, "cpu_ms", "spent"), spent);
	expect_402("POST", thd_path(id, "/resume"), NULL, "cpu_ms");
	cr_assert_geq(count_audit(id, "budget.exhausted"), 2);
	cr_assert_eq(count_audit(id, "sandbox.pause"), 1);
	r = thd_call(&d, "GET", "/v1/metrics", NULL);
	cr_assert_not_null(strstr(r.body, "nucleus_budget_exhaustions_total{kind=\"cpu_ms\"} 2\n"),
			   "%s", r.body);
	api_response__clear(&r);
	/* Stopping kills the burner. */
	thd_expect(&d, "DELETE", thd_path(id, ""), NULL, 200);
	thd_finish(&d);
}

/*
 * The meter samples every interval but writes the ledger every 10 intervals (or at once
 * when a limit is reached, above), so a long-running sandbox does not add rows every
 * second. Reading the budget writes what is pending first: spent is current, and still
 * equal to the ledger.
 */
Test(budget_api, metered_debits_are_coalesced_and_reading_the_budget_is_current)
{
	char id[32], sql[200];
	long long rows, spent;

	d.extra[0] = "--meter-interval-ms";
	d.extra[1] = "20";
	start_with(id, BASIC ", \"image\": \"fake:burn\"}");
	sleep_ms(1200); /* about 60 samples */
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM budget_ledger WHERE sandbox_id = '%s' AND kind = 'cpu_ms'",
		 id);
	rows = atoll(th_query_file(d.db, sql));
	cr_expect_leq(rows, 12, "%lld ledger rows for about 60 samples", rows);
	spent = thd_budget(&d, id, "cpu_ms", "spent");
	cr_assert_gt(spent, 100, "the burner's CPU is current when read: %lld ms", spent);
	cr_assert_eq(spent, atoll(ledger_sum(id, "cpu_ms")));
	thd_expect(&d, "DELETE", thd_path(id, ""), NULL, 200);
	thd_finish(&d);
}

Test(budget_api, nucleusctl_budget_prints_the_table_and_json)
{
	struct thd_run *r;
	char id[32], what[32];
	json_t *j;

	start_with(id, BASIC ", \"budget\": {\"tokens\": 100, \"usd\": \"2.5\"}}");
	cr_assert_eq(report(id, "a", 30, 10, what), 200);
	r = thd_ctl(d.sock, "budget", id, NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	cr_assert_not_null(strstr(r->out, "KIND"), "%s", r->out);
	cr_assert_not_null(strstr(r->out, "EXHAUSTED"), "%s", r->out);
	/* tokens: limit 100, spent 40, remaining 60, not exhausted */
	cr_assert(strstr(r->out, "tokens") != NULL);
	{
		char kind[32], lim[32], sp[32], rem[32], ex[8];
		const char *line = strstr(r->out, "\ntokens");

		cr_assert_not_null(line, "%s", r->out);
		cr_assert_eq(sscanf(line + 1, "%31s %31s %31s %31s %7s", kind, lim, sp, rem, ex),
			     5);
		cr_assert_str_eq(lim, "100");
		cr_assert_str_eq(sp, "40");
		cr_assert_str_eq(rem, "60");
		cr_assert_str_eq(ex, "no");
		line = strstr(r->out, "\nusd ");
		cr_assert_not_null(line, "%s", r->out);
		cr_assert_eq(sscanf(line + 1, "%31s %31s %31s %31s %7s", kind, lim, sp, rem, ex),
			     5);
		cr_assert_str_eq(lim, "2.500000");
		/* 30 in x 3000/1k + 10 out x 15000/1k = 90 + 150 = 240 micro-USD */
		cr_assert_str_eq(sp, "0.000240");
		line = strstr(r->out, "\ncpu_ms");
		cr_assert_not_null(line);
		cr_assert_eq(sscanf(line + 1, "%31s %31s", kind, lim), 2);
		cr_assert_str_eq(lim, "-");
	}
	r = thd_ctl(d.sock, "--json", "budget", id, NULL);
	cr_assert_eq(r->code, 0, "%s", r->err);
	j = json_loads(r->out, 0, NULL);
	cr_assert_not_null(j, "%s", r->out);
	cr_assert_eq(json_integer_value(json_object_get(
			     json_object_get(json_object_get(j, "budgets"), "tokens"), "spent")),
		     40);
	json_decref(j);
	r = thd_ctl(d.sock, "budget", "sb-0000000000000000", NULL);
	cr_assert_eq(r->code, 1);
	cr_assert_not_null(strstr(r->err, "not_found"), "%s", r->err);
	/* create --budget sets the limits; a bad one is the daemon's 400. */
	r = thd_ctl(d.sock, "--json", "create", "--name", "b2", "--budget", NULL);
	cr_assert_eq(r->code, 2, "missing --budget value: %s", r->err);
	{
		const char *argv_ok[] = {"--json", "create", "--budget", "{\"tokens\": 5}"};

		r = thd_ctl(d.sock, argv_ok[0], argv_ok[1], argv_ok[2], argv_ok[3], NULL);
		cr_assert_eq(r->code, 0, "%s", r->err);
		j = json_loads(r->out, 0, NULL);
		cr_assert_not_null(j, "%s", r->out);
		snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
		json_decref(j);
		cr_assert_eq(thd_budget(&d, id, "tokens", "limit"), 5);
		r = thd_ctl(d.sock, "create", "--budget", "{\"tokens\": 0}", NULL);
		cr_assert_eq(r->code, 1);
		cr_assert_not_null(strstr(r->err, "budget.tokens"), "%s", r->err);
	}
	thd_finish(&d);
}
